#!/usr/bin/python3
"""backend.py's HTTP/1.1 origin over TLS, for upstream HTTPS tests.

    /usr/bin/python3 tests/integration/https_backend.py --cert C --key K
        [--client-ca CA] [--close-notify] [--name N]

Prints "READY <tls_port> <control_port>" once both listen. The TLS port serves
every behaviour of backend.py (same paths, same State); the control port
serves the same in plaintext (so a test can read /_stats or /_log without a
TLS connection of its own) plus

  /_tls   JSON: handshakes (completed), failed (handshakes that failed),
          sni (server names received, one per ClientHello, null when none),
          client_subjects (verified client certificate subjects, one per
          handshake), close_notify (connections ended with close_notify),
          closed (TLS connections closed after a handshake)

--client-ca makes a client certificate required (signed by CA).
--close-notify: connections the server ends are ended with a TLS close_notify
(SSLSocket.unwrap) before the TCP close, instead of a bare TCP close.
Standard library only.
"""
import argparse
import json
import socket
import ssl
import sys
import threading

import backend as B


class TLSState:
    def __init__(self):
        self.lock = threading.Lock()
        self.handshakes = 0
        self.failed = 0
        self.sni = []
        self.client_subjects = []
        self.close_notify = 0
        self.closed = 0

    def doc(self):
        with self.lock:
            return {'handshakes': self.handshakes, 'failed': self.failed, 'sni': list(self.sni),
                    'client_subjects': list(self.client_subjects),
                    'close_notify': self.close_notify, 'closed': self.closed}


TLS = TLSState()


class Handler(B.Handler):
    """backend.py's handler plus /_tls."""

    def run(self):
        if self.req.path == '/_tls':
            self.consume_body()
            return self.respond(200, json.dumps(TLS.doc()).encode(), 'application/json')
        return super().run()


B.Handler = Handler  # serve_conn looks the name up at call time


class ClosingSocket:
    """An SSLSocket whose close() sends close_notify first."""

    def __init__(self, s):
        self._s = s

    def __getattr__(self, name):
        return getattr(self._s, name)

    def close(self):
        try:
            self._s.settimeout(2)
            self._s.unwrap()
        except (OSError, ValueError) as e:
            print(f'unwrap: {e!r}', file=sys.stderr, flush=True)
        with TLS.lock:
            TLS.close_notify += 1
        self._s.close()


def subject_str(cert):
    return ','.join(f'{k}={v}' for rdn in cert.get('subject', ()) for k, v in rdn)


def serve_tls(ctx, sock, peer, state, close_notify):
    s = ctx.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
    try:
        s.settimeout(30)
        s.do_handshake()
        s.settimeout(None)
    except (OSError, ValueError):
        with TLS.lock:
            TLS.failed += 1
        s.close()
        return
    cert = s.getpeercert()
    with TLS.lock:
        TLS.handshakes += 1
        if cert:
            TLS.client_subjects.append(subject_str(cert))
    B.serve_conn(ClosingSocket(s) if close_notify else s, peer, state)
    with TLS.lock:
        TLS.closed += 1


def listen(host):
    ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind((host, 0))
    ls.listen(1024)
    return ls


def accept_loop(ls, serve):
    while True:
        try:
            s, peer = ls.accept()
        except OSError:
            continue
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        threading.Thread(target=serve, args=(s, peer), daemon=True).start()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--host', default='127.0.0.1')
    ap.add_argument('--name', default='https')
    ap.add_argument('--cert', required=True)
    ap.add_argument('--key', required=True)
    ap.add_argument('--client-ca')
    ap.add_argument('--close-notify', action='store_true')
    args = ap.parse_args()
    state = B.State(args.name)

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(args.cert, args.key)
    ctx.set_alpn_protocols(['http/1.1'])
    if args.client_ca:
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.load_verify_locations(args.client_ca)

    def on_sni(sslobj, name, _ctx):
        with TLS.lock:
            TLS.sni.append(name)
    ctx.sni_callback = on_sni

    tls_ls, ctl_ls = listen(args.host), listen(args.host)
    threading.Thread(target=accept_loop, daemon=True,
                     args=(ctl_ls, lambda s, p: B.serve_conn(s, p, state))).start()
    print(f'READY {tls_ls.getsockname()[1]} {ctl_ls.getsockname()[1]}', flush=True)
    try:
        accept_loop(tls_ls, lambda s, p: serve_tls(ctx, s, p, state, args.close_notify))
    except KeyboardInterrupt:
        pass


if __name__ == '__main__':
    main()
