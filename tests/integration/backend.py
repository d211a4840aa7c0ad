#!/usr/bin/python3
"""A configurable HTTP/1.1 origin server for tollgate's integration tests and demo.

    /usr/bin/python3 tests/integration/backend.py --port 0 --name b1

Prints "READY <port>" on stdout once it listens (port 0 = pick a free one).
One thread per connection, keep-alive, request bodies read as they stream
(Content-Length or chunked, trailers kept). Standard library only.

Behaviour is chosen by the request path, so one backend serves every test
(any path not listed below is an echo):

  /echo...            200 JSON: name, method, path (raw target), version, headers
                      ([name, value] as received), body_len, body_sha256, trailers,
                      conn (connection serial), peer_port
  /status/NNN         status NNN, short text body (none for 1xx/204/304)
  /slow?ms=N          waits N ms before the response head (then an echo)
  /stall              never answers; holds the connection until the peer closes it
  /drip?n=5&ms=100&size=8
                      chunked: head at once, then n chunks of `size` bytes, ms apart
  /bytes?n=N[&cl=1][&tag=T][&sndbuf=B]
                      streams N bytes of a fixed pseudo-random pattern (chunked, or
                      Content-Length with cl=1); X-Content-Sha256 when N <= 64 MiB
  /upload[?ms=N][&tag=T][&nohash=1][&rcvbuf=B]
                      reads the body as it streams (sleeping ms per 64 KiB), answers
                      JSON body_len, body_sha256, trailers, chunked
  /close-mid[?chunked=1]
                      announces a 1,000,000-byte body, sends 1000 bytes, closes
  /close-early        reads the request, closes without answering
  /garbage            answers bytes that are not HTTP, then closes
  /raw?b64=B[&split=N&ms=M][&keep=1]
                      reads the request, answers exactly the bytes of B (urlsafe
                      base64; without b64: the request body) and closes (keep=1:
                      reads the next request instead);
                      with split, the first N bytes go first and the rest M ms
                      later (a response that turns bad mid-body)
  /reset              reads the request, closes with RST (SO_LINGER 0)
  /trailers           chunked body followed by trailer fields
  /100[?n=1][&ms=0]   n "103 Early Hints" informational responses, then an echo
  /keepalive-close[?ms=0]
                      a normal keep-alive echo response, then (ms later) the
                      server closes the connection without saying so beforehand
  /_log               JSON list of the request heads received (not /_ ones)
  /_reset_log         clears the log and the counters
  /_stats             JSON counters: connections (accepted, open), requests, progress
                      (bytes sent or received per tag)

Every response except /_ ones carries "X-Backend: <name>" and "Server:
tollgate-test-backend"; `h=Name:Value` query parameters add response headers
(on echo, status, slow, bytes, drip, 100, keepalive-close).
"""
import argparse
import base64
import hashlib
import json
import random
import socket
import struct
import sys
import threading
import time
import urllib.parse

MAX_HEAD = 64 * 1024
BLOCK = random.Random(20261127).randbytes(1 << 20)   # the /bytes pattern, repeated
HASH_LIMIT = 64 << 20


class State:
    def __init__(self, name):
        self.name = name
        self.lock = threading.Lock()
        self.log = []
        self.conn_seq = 0
        self.accepted = 0
        self.open = 0
        self.closed = 0
        self.requests = 0
        self.progress = {}

    def reset(self):
        with self.lock:
            self.log = []
            self.accepted = 0
            self.closed = 0
            self.requests = 0
            self.progress = {}

    def add_progress(self, tag, n):
        if tag:
            with self.lock:
                self.progress[tag] = self.progress.get(tag, 0) + n


class Closed(Exception):
    """The peer went away (or sent something we cannot read)."""


class Conn:
    def __init__(self, sock, state, serial, peer):
        self.sock = sock
        self.st = state
        self.serial = serial
        self.peer = peer
        self.buf = b''

    # ---- reading
    def fill(self):
        try:
            data = self.sock.recv(256 * 1024)
        except OSError:
            data = b''
        if not data:
            raise Closed()
        self.buf += data

    def read_line(self, limit=MAX_HEAD):
        while True:
            i = self.buf.find(b'\r\n')
            if i >= 0:
                line, self.buf = self.buf[:i], self.buf[i + 2:]
                return line
            if len(self.buf) > limit:
                raise Closed()
            self.fill()

    def read_head(self):
        while True:
            i = self.buf.find(b'\r\n\r\n')
            if i >= 0:
                head, self.buf = self.buf[:i], self.buf[i + 4:]
                return head
            if len(self.buf) > MAX_HEAD:
                raise Closed()
            self.fill()

    def read_some(self, limit):
        if self.buf:
            data, self.buf = self.buf[:limit], self.buf[limit:]
            return data
        try:
            data = self.sock.recv(min(limit, 1 << 20))
        except OSError:
            data = b''
        if not data:
            raise Closed()
        return data

    def read_body(self, req, on_data, pace_ms=0):
        """Streams the request body to on_data(bytes); returns trailers."""
        te = req.header('transfer-encoding')
        step = 64 * 1024 if pace_ms else 1 << 20
        if te is not None and 'chunked' in te.lower():
            trailers = []
            while True:
                size_line = self.read_line()
                size = int(size_line.split(b';', 1)[0].strip(), 16)
                if size == 0:
                    while True:
                        line = self.read_line()
                        if not line:
                            return trailers
                        n, _, v = line.decode('latin-1').partition(':')
                        trailers.append([n.strip(), v.strip()])
                left = size
                while left:
                    data = self.read_some(min(left, step))
                    left -= len(data)
                    on_data(data)
                    if pace_ms:
                        time.sleep(pace_ms / 1000.0)
                if self.read_line() != b'':
                    raise Closed()
        cl = req.header('content-length')
        left = int(cl) if cl is not None else 0
        while left:
            data = self.read_some(min(left, step))
            left -= len(data)
            on_data(data)
            if pace_ms:
                time.sleep(pace_ms / 1000.0)
        return []

    # ---- writing
    def send(self, data):
        self.sock.sendall(data)


class Request:
    def __init__(self, head):
        lines = head.split(b'\r\n')
        parts = lines[0].decode('latin-1').split(' ')
        if len(parts) != 3:
            raise Closed()
        self.method, self.target, self.version = parts
        self.raw_lines = [ln.decode('latin-1') for ln in lines[1:]]
        self.headers = []
        for ln in self.raw_lines:
            n, _, v = ln.partition(':')
            self.headers.append([n, v.strip(' \t')])
        u = urllib.parse.urlsplit(self.target)
        self.path = u.path if self.target.startswith('/') else self.target
        self.qs = urllib.parse.parse_qs(u.query, keep_blank_values=True)

    def header(self, name):
        name = name.lower()
        for n, v in self.headers:
            if n.strip().lower() == name:
                return v
        return None

    def q(self, name, default=None, conv=str):
        v = self.qs.get(name)
        return conv(v[0]) if v else default

    def wants_close(self):
        conn = (self.header('connection') or '').lower()
        tokens = [t.strip() for t in conn.split(',')]
        if self.version == 'HTTP/1.0':
            return 'keep-alive' not in tokens
        return 'close' in tokens


def status_line(code):
    reasons = {100: 'Continue', 103: 'Early Hints', 200: 'OK', 204: 'No Content',
               304: 'Not Modified', 404: 'Not Found', 500: 'Internal Server Error',
               502: 'Bad Gateway', 503: 'Service Unavailable'}
    return f'HTTP/1.1 {code} {reasons.get(code, "Status")}\r\n'


class Handler:
    def __init__(self, conn, req, state):
        self.c = conn
        self.req = req
        self.st = state
        self.close_after = req.wants_close()

    def extra_headers(self):
        out = []
        for hv in self.req.qs.get('h', []):
            n, _, v = hv.partition(':')
            out.append((n.strip(), v.strip()))
        return out

    def head(self, code, headers, length=None, chunked=False):
        h = [('Server', 'tollgate-test-backend'), ('X-Backend', self.st.name)]
        h += headers
        h += self.extra_headers()
        if chunked:
            h.append(('Transfer-Encoding', 'chunked'))
        elif length is not None:
            h.append(('Content-Length', str(length)))
        if self.close_after:
            h.append(('Connection', 'close'))
        return (status_line(code) + ''.join(f'{n}: {v}\r\n' for n, v in h) + '\r\n').encode('latin-1')

    def respond(self, code, body=b'', ctype='text/plain', headers=()):
        no_body = self.req.method == 'HEAD' or code in (204, 304) or 100 <= code < 200
        h = list(headers)
        if ctype and not no_body:
            h.append(('Content-Type', ctype))
        data = self.head(code, h, None if code in (204, 304) else len(body))
        if not no_body:
            data += body
        self.c.send(data)

    def consume_body(self, pace_ms=0, tag=None, hashing=True):
        sha = hashlib.sha256()
        n = [0]

        def on_data(d):
            n[0] += len(d)
            if hashing:
                sha.update(d)
            self.st.add_progress(tag, len(d))
        if self.has_body() and 'continue' in (self.req.header('expect') or '').lower():
            self.c.send(b'HTTP/1.1 100 Continue\r\n\r\n')
        trailers = self.c.read_body(self.req, on_data, pace_ms)
        return n[0], (sha.hexdigest() if hashing else None), trailers

    def has_body(self):
        te = self.req.header('transfer-encoding')
        cl = self.req.header('content-length')
        return (te is not None) or (cl is not None and int(cl) > 0)

    def echo_doc(self, body_len, sha, trailers):
        return {'name': self.st.name, 'method': self.req.method, 'path': self.req.target,
                'version': self.req.version, 'headers': self.req.headers,
                'body_len': body_len, 'body_sha256': sha, 'trailers': trailers,
                'conn': self.c.serial, 'peer_port': self.c.peer[1]}

    def echo(self, code=200, headers=()):
        body_len, sha, trailers = self.consume_body()
        doc = self.echo_doc(body_len, sha, trailers)
        self.respond(code, json.dumps(doc, separators=(',', ':')).encode(), 'application/json',
                     headers)

    # ---- behaviours
    def run(self):
        p = self.req.path
        if p == '/_log':
            self.consume_body()
            with self.st.lock:
                body = json.dumps(self.st.log).encode()
            return self.respond(200, body, 'application/json')
        if p == '/_reset_log':
            self.consume_body()
            self.st.reset()
            return self.respond(200, b'{}', 'application/json')
        if p == '/_stats':
            self.consume_body()
            with self.st.lock:
                body = json.dumps({'name': self.st.name, 'connections': self.st.accepted,
                                   'open': self.st.open, 'closed': self.st.closed,
                                   'requests': self.st.requests,
                                   'progress': self.st.progress}).encode()
            return self.respond(200, body, 'application/json')
        if p.startswith('/status/'):
            self.consume_body()
            code = int(p.split('/')[2])
            return self.respond(code, f'status {code}\n'.encode())
        if p == '/slow':
            time.sleep(self.req.q('ms', 1000, int) / 1000.0)
            return self.echo()
        if p == '/stall':
            self.close_after = True
            try:
                while True:
                    self.c.fill()
                    self.c.buf = b''
            except Closed:
                return
        if p == '/drip':
            self.consume_body()
            n, ms, size = self.req.q('n', 5, int), self.req.q('ms', 100, int), self.req.q('size', 8, int)
            self.c.send(self.head(200, [('Content-Type', 'text/plain')], chunked=True))
            if self.req.method == 'HEAD':
                return
            for i in range(n):
                if i and ms:
                    time.sleep(ms / 1000.0)
                piece = (f'{i}' * size)[:size].encode()
                self.c.send(b'%x\r\n%s\r\n' % (len(piece), piece))
            return self.c.send(b'0\r\n\r\n')
        if p == '/bytes':
            return self.bytes_()
        if p == '/upload':
            ms = self.req.q('ms', 0, int)
            rcvbuf = self.req.q('rcvbuf', 0, int)
            if rcvbuf:
                self.c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
            body_len, sha, trailers = self.consume_body(ms, self.req.q('tag'),
                                                         not self.req.q('nohash', 0, int))
            te = (self.req.header('transfer-encoding') or '').lower()
            doc = {'name': self.st.name, 'body_len': body_len, 'body_sha256': sha,
                   'trailers': trailers, 'chunked': 'chunked' in te}
            return self.respond(200, json.dumps(doc).encode(), 'application/json')
        if p == '/close-mid':
            self.consume_body()
            self.close_after = False
            if self.req.q('chunked', 0, int):
                self.c.send(self.head(200, [('Content-Type', 'application/octet-stream')], chunked=True)
                            + b'3e8\r\n' + b'x' * 1000 + b'\r\n')
            else:
                self.c.send(self.head(200, [('Content-Type', 'application/octet-stream')], 1000000)
                            + b'x' * 1000)
            raise Closed()
        if p == '/close-early':
            raise Closed()
        if p == '/raw':
            parts = []
            self.c.read_body(self.req, parts.append)
            b64 = self.req.q('b64')
            data = base64.urlsafe_b64decode(b64) if b64 is not None else b''.join(parts)
            split = self.req.q('split', len(data), int)
            self.c.send(data[:split])
            if split < len(data):
                time.sleep(self.req.q('ms', 0, int) / 1000.0)
                self.c.send(data[split:])
            if self.req.q('keep', 0, int):
                self.close_after = False
                return None
            raise Closed()
        if p == '/garbage':
            self.c.send(b'this is not HTTP at all\r\n\x00\xff\xfe garbage \x01\x02\r\n\r\n')
            raise Closed()
        if p == '/reset':
            self.c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack('ii', 1, 0))
            raise Closed()
        if p == '/trailers':
            self.consume_body()
            self.c.send(self.head(200, [('Content-Type', 'text/plain'),
                                        ('Trailer', 'X-Checksum, X-Trailer-Two')], chunked=True))
            if self.req.method == 'HEAD':
                return
            self.c.send(b'6\r\nhello \r\n8\r\ntrailers\r\n'
                        b'0\r\nX-Checksum: abc123\r\nX-Trailer-Two: 2\r\n\r\n')
            return
        if p == '/100':
            for _ in range(self.req.q('n', 1, int)):
                self.c.send(b'HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n')
            ms = self.req.q('ms', 0, int)
            if ms:
                time.sleep(ms / 1000.0)
            return self.echo()
        if p == '/keepalive-close':
            self.echo()
            ms = self.req.q('ms', 0, int)
            if ms:
                time.sleep(ms / 1000.0)
            raise Closed()
        return self.echo()

    def bytes_(self):
        self.consume_body()
        n = self.req.q('n', 1024, int)
        cl = self.req.q('cl', 0, int)
        tag = self.req.q('tag')
        sndbuf = self.req.q('sndbuf', 0, int)
        if sndbuf:
            self.c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, sndbuf)
        hdrs = [('Content-Type', 'application/octet-stream')]
        if n <= HASH_LIMIT:
            hdrs.append(('X-Content-Sha256', pattern_sha256(n)))
        self.c.send(self.head(200, hdrs, n if cl else None, chunked=not cl))
        if self.req.method == 'HEAD':
            return
        view = memoryview(BLOCK)
        step = 256 * 1024
        sent = 0
        while sent < n:
            off = sent % len(BLOCK)
            k = min(step, n - sent, len(BLOCK) - off)
            piece = view[off:off + k]
            if cl:
                self.c.send(piece)
            else:
                self.c.send(b'%x\r\n' % k + bytes(piece) + b'\r\n')
            sent += k
            self.st.add_progress(tag, k)
        if not cl:
            self.c.send(b'0\r\n\r\n')


def pattern_bytes(n):
    """The first n bytes of the /bytes stream (for small n)."""
    reps = n // len(BLOCK) + 1
    return (BLOCK * reps)[:n]


def pattern_sha256(n):
    sha = hashlib.sha256()
    full, rest = divmod(n, len(BLOCK))
    for _ in range(full):
        sha.update(BLOCK)
    sha.update(BLOCK[:rest])
    return sha.hexdigest()


def serve_conn(sock, peer, state):
    with state.lock:
        state.conn_seq += 1
        serial = state.conn_seq
        state.accepted += 1
        state.open += 1
    c = Conn(sock, state, serial, peer)
    try:
        while True:
            head = c.read_head()
            req = Request(head)
            if not req.path.startswith('/_'):
                with state.lock:
                    state.requests += 1
                    state.log.append({'conn': serial, 'peer_port': peer[1], 'method': req.method,
                                      'target': req.target, 'version': req.version,
                                      'headers': req.headers, 'raw': req.raw_lines,
                                      'time': time.time()})
            h = Handler(c, req, state)
            h.run()
            if h.close_after:
                break
    except (Closed, OSError, ValueError):
        pass
    finally:
        try:
            sock.close()
        except OSError:
            pass
        with state.lock:
            state.open -= 1
            state.closed += 1


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--port', type=int, default=0)
    ap.add_argument('--host', default='127.0.0.1')
    ap.add_argument('--also-v6', action='store_true',
                    help='also listen on [::1] with the same port (for "localhost" tests)')
    ap.add_argument('--name', default='backend')
    args = ap.parse_args()
    state = State(args.name)

    listeners = []
    ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind((args.host, args.port))
    ls.listen(1024)
    port = ls.getsockname()[1]
    listeners.append(ls)
    if args.also_v6:
        try:
            l6 = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
            l6.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            l6.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            l6.bind(('::1', port))
            l6.listen(1024)
            listeners.append(l6)
        except OSError as e:
            print(f'backend: no [::1] listener: {e}', file=sys.stderr)

    def accept_loop(lsock):
        while True:
            try:
                s, peer = lsock.accept()
            except OSError:
                continue
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            threading.Thread(target=serve_conn, args=(s, peer, state), daemon=True).start()

    for extra in listeners[1:]:
        threading.Thread(target=accept_loop, args=(extra,), daemon=True).start()
    print(f'READY {port}', flush=True)
    try:
        accept_loop(listeners[0])
    except KeyboardInterrupt:
        pass


if __name__ == '__main__':
    main()
