"""JWKS over https (route auth.jwt with an https:// jwks and jwks_ca), and
requests waiting for a JWKS fetch being woken when it ends.

A throw-away PKI is made per module with the openssl CLI (helpers from
test_tls): a trusted CA, an untrusted one, and server certificates for
127.0.0.1/localhost or for another name only. The key server is Python's
ssl module on loopback."""
import http.server
import json
import socket
import socketserver
import ssl
import threading
import time

import pytest

from conftest import assert_gateway_error, http_request, run_tollgate, wait_until
from test_auth import Keys, check_401, token
from test_tls import make_cert, sh


def make_ca(d, name, cn):
    """An RFC 5280 CA certificate (key usage included: the fetcher checks
    chains strictly, as X509_V_FLAG_X509_STRICT does)."""
    sh('openssl', 'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes',
       '-keyout', f'{name}.key', '-out', f'{name}.pem', '-days', '2', '-subj', f'/CN={cn}',
       '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign',
       cwd=d)


@pytest.fixture(scope='module')
def keys():
    return Keys()


@pytest.fixture(scope='module')
def jpki(tmp_path_factory):
    d = tmp_path_factory.mktemp('jwks-pki')
    make_ca(d, 'ca', 'jwks test CA')
    make_cert(d, 'ok', 'ca', '/CN=127.0.0.1', 'IP:127.0.0.1,DNS:localhost')
    make_cert(d, 'wrongname', 'ca', '/CN=keys.example.net', 'DNS:keys.example.net')
    make_ca(d, 'evil', 'untrusted CA')
    make_cert(d, 'stranger', 'evil', '/CN=127.0.0.1', 'IP:127.0.0.1,DNS:localhost')
    return d


class HttpsJwks:
    """A JWKS endpoint over TLS. `gate` (when set) holds answers until the
    test releases it: requests waiting for the fetch can be observed."""

    def __init__(self, pki, cert, doc, gate=None):
        self.doc, self.hits, self.gate, self.handshakes = doc, 0, gate, 0
        outer = self

        class H(http.server.BaseHTTPRequestHandler):
            def setup(self):
                self.request.do_handshake()  # in the handler thread, not accept()
                outer.handshakes += 1
                super().setup()

            def do_GET(self):
                outer.hits += 1
                if outer.gate is not None:
                    outer.gate.wait(30)
                body = json.dumps(outer.doc).encode()
                self.send_response(200)
                self.send_header('Content-Type', 'application/json')
                self.send_header('Content-Length', str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *a):
                pass

        class S(socketserver.ThreadingTCPServer):
            daemon_threads = True

            def handle_error(self, request, client_address):
                pass  # refused handshakes are expected in these tests

        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(str(pki / f'{cert}.pem'), str(pki / f'{cert}.key'))
        self.srv = S(('127.0.0.1', 0), H)
        self.srv.socket = ctx.wrap_socket(self.srv.socket, server_side=True, do_handshake_on_connect=False)
        self.port = self.srv.server_address[1]
        self.t = threading.Thread(target=self.srv.serve_forever, daemon=True)
        self.t.start()

    def stop(self):
        if self.gate is not None:
            self.gate.set()
        self.srv.shutdown()
        self.srv.server_close()


@pytest.fixture
def jwks_server():
    servers = []

    def start(*a, **kw):
        s = HttpsJwks(*a, **kw)
        servers.append(s)
        return s
    yield start
    for s in servers:
        s.stop()


CONFIG = r"""
server: { listen: ["$listen"], workers: 2 }
upstreams:
  u: { servers: ["$b1"] }
routes:
  - name: rs
    upstream: u
    auth:
      jwt: { jwks: "https://$host:$jwks_port/jwks.json", jwks_ca: "$ca", algorithms: [RS256],
             jwks_refresh: 1h }
"""


def get(gw, path, headers=None, timeout=10.0):
    return http_request(gw.port, 'GET', path, headers=headers, timeout=timeout)


def bearer(key, kid):
    return {'Authorization': 'Bearer ' + token(key, 'RS256', kid)}


def start_gw(tollgate, backend, jpki, srv, host='127.0.0.1', ca='ca'):
    return tollgate(CONFIG, b1=backend.addr, jwks_port=srv.port, host=host, ca=jpki / f'{ca}.pem')


@pytest.mark.parametrize('host', ['127.0.0.1', 'localhost'])
def test_https_jwks_from_trusted_ca_is_used(tollgate, backend, keys, jpki, jwks_server, host):
    srv = jwks_server(jpki, 'ok', keys.jwks((keys.rsa, 'r1', 'RS256')))
    gw = start_gw(tollgate, backend, jpki, srv, host=host)
    r = get(gw, '/echo', bearer(keys.rsa, 'r1'))
    assert r.status == 200, r
    assert srv.hits >= 1
    # a token signed with another key is still refused
    check_401(get(gw, '/echo', bearer(keys.rsa2, 'r1')), 'Bearer realm="tollgate"')


@pytest.mark.parametrize('cert,why', [('stranger', 'unable to get local issuer certificate'),
                                      ('wrongname', 'IP address mismatch')])
def test_https_jwks_untrusted_or_wrong_name_is_refused(tollgate, backend, keys, jpki, jwks_server, cert, why):
    srv = jwks_server(jpki, cert, keys.jwks((keys.rsa, 'r1', 'RS256')))
    gw = start_gw(tollgate, backend, jpki, srv)
    r = get(gw, '/echo', bearer(keys.rsa, 'r1'), timeout=20)
    doc = assert_gateway_error(r.status, r.header, r.body, 503)
    assert doc['error'] == 'auth_unavailable'
    assert srv.hits == 0  # no HTTP request was ever sent to that server
    wait_until(lambda: why in gw.stderr(), 10, what=f'"{why}" in the log')


def test_system_trust_store_does_not_trust_a_private_ca(tollgate, backend, keys, jpki, jwks_server):
    """Without jwks_ca the system store applies: the test CA is not in it."""
    srv = jwks_server(jpki, 'ok', keys.jwks((keys.rsa, 'r1', 'RS256')))
    gw = tollgate(CONFIG.replace(', jwks_ca: "$ca"', ''), b1=backend.addr, jwks_port=srv.port, host='127.0.0.1')
    r = get(gw, '/echo', bearer(keys.rsa, 'r1'), timeout=20)
    assert_gateway_error(r.status, r.header, r.body, 503)
    assert srv.hits == 0


def test_https_jwks_rotation(tollgate, backend, keys, jpki, jwks_server):
    srv = jwks_server(jpki, 'ok', keys.jwks((keys.rsa, 'r1', 'RS256')))
    gw = start_gw(tollgate, backend, jpki, srv)
    assert get(gw, '/echo', bearer(keys.rsa, 'r1')).status == 200
    srv.doc = keys.jwks((keys.rsa2, 'r2', 'RS256'))
    hits = srv.hits
    r = get(gw, '/echo', bearer(keys.rsa2, 'r2'))
    assert r.status == 200, r
    assert srv.hits == hits + 1
    # the old key is gone from the new set, and the refetch is rate limited
    check_401(get(gw, '/echo', bearer(keys.rsa, 'r1')), 'Bearer realm="tollgate"')
    assert srv.hits == hits + 1
    # the key server goes away: the last good set keeps working
    srv.stop()
    assert get(gw, '/echo', bearer(keys.rsa2, 'r2')).status == 200


def test_waiting_requests_resume_when_the_fetch_ends(tollgate, backend, keys, jpki, jwks_server):
    """Requests on both workers wait for a held first fetch, one client gives
    up while waiting (its waiter must be unregistered: ASan checks the later
    wake-up), and the rest are answered as soon as the key set arrives."""
    gate = threading.Event()
    srv = jwks_server(jpki, 'ok', keys.jwks((keys.rsa, 'r1', 'RS256')), gate=gate)
    gw = start_gw(tollgate, backend, jpki, srv)
    wait_until(lambda: srv.hits == 1, 15, what='the first fetch to reach the key server')
    quitter = socket.create_connection(('127.0.0.1', gw.port))
    quitter.sendall(b'GET /echo HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer '
                    + token(keys.rsa, 'RS256', 'r1').encode() + b'\r\n\r\n')
    results, threads = [], []
    for _ in range(6):
        t = threading.Thread(target=lambda: results.append(get(gw, '/echo', bearer(keys.rsa, 'r1'), 30)))
        t.start()
        threads.append(t)
    quitter.close()
    assert results == []  # nobody was answered while the fetch was held
    released = time.monotonic()
    gate.set()
    for t in threads:
        t.join(30)
    elapsed = time.monotonic() - released
    assert [r.status for r in results] == [200] * 6, results
    # woken by the fetch, not by the 10 s bound
    assert elapsed < 5, elapsed


def test_jwks_ca_config_errors(tmp_path, jpki):
    cfg = tmp_path / 't.yaml'
    (tmp_path / 'junk.pem').write_text('not a certificate\n')
    cfg.write_text(
        'upstreams: { u: { servers: ["127.0.0.1:1"] } }\n'
        'routes:\n'
        '  - upstream: u\n'
        '    match: { path: /a }\n'
        '    auth: { jwt: { jwks: "https://127.0.0.1:1/k", jwks_ca: junk.pem } }\n'
        '  - upstream: u\n'
        '    match: { path: /b }\n'
        f'    auth: {{ jwt: {{ jwks: "http://127.0.0.1:1/k", jwks_ca: "{jpki}/ca.pem" }} }}\n')
    cp = run_tollgate(['-t', '-c', str(cfg)])
    assert cp.returncode == 1
    err = cp.stderr + cp.stdout
    for want in ['t.yaml:5:60: routes[0].auth.jwt.jwks_ca: ', 'junk.pem: no PEM certificate could be read',
                 'routes[1].auth.jwt: jwks_ca applies only to a jwks https:// URL']:
        assert want in err, (want, err)
