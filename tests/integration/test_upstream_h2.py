"""HTTP/2 upstreams: h2c (prior knowledge) and h2 over TLS with ALPN, driven by
HTTP/1.1 clients through the gateway (protocol translation HTTP/1.1 -> HTTP/2).
The upstream is h2_backend.py (python3-h2); TLS material is made by openssl."""
import concurrent.futures
import http.client
import json
import os
import re
import socket
import subprocess
import time

import pytest

from conftest import PY, HERE, read_ready, run_tollgate

H2_BACKEND = HERE / 'h2_backend.py'


class H2Backend:
    def __init__(self, proc, port):
        self.proc, self.port = proc, port

    @property
    def addr(self):
        return f'127.0.0.1:{self.port}'


def start_h2_backend(tmp_path, *args):
    err = open(tmp_path / f'h2-backend-{time.monotonic_ns()}.stderr', 'wb')
    proc = subprocess.Popen([PY, str(H2_BACKEND), *args], stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=err)
    m = read_ready(proc, 'h2 backend')
    return H2Backend(proc, int(m.group(1)))


@pytest.fixture
def h2_backends(tmp_path):
    started = []

    def start(*args):
        b = start_h2_backend(tmp_path, *args)
        started.append(b)
        return b
    yield start
    for b in started:
        b.proc.kill()
        b.proc.wait(timeout=10)


def make_ca(tmp_path, names=('localhost',), ips=('127.0.0.1',), prefix='srv'):
    """A CA and a server certificate signed by it; returns (ca, cert, key) paths."""
    ca_key, ca_crt = tmp_path / f'{prefix}-ca.key', tmp_path / f'{prefix}-ca.pem'
    key, csr, crt = tmp_path / f'{prefix}.key', tmp_path / f'{prefix}.csr', tmp_path / f'{prefix}.pem'
    ext = tmp_path / f'{prefix}.ext'
    san = ','.join([f'DNS:{n}' for n in names] + [f'IP:{i}' for i in ips])
    ext.write_text(f'subjectAltName={san}\nbasicConstraints=CA:FALSE\n')
    run = lambda *a: subprocess.run(['openssl', *a], check=True, capture_output=True)  # noqa: E731
    run('req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes',
        '-keyout', str(ca_key), '-out', str(ca_crt), '-days', '2', '-subj', f'/CN={prefix} test CA')
    run('req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes',
        '-keyout', str(key), '-out', str(csr), '-subj', f'/CN={names[0]}')
    run('x509', '-req', '-in', str(csr), '-CA', str(ca_crt), '-CAkey', str(ca_key),
        '-CAcreateserial', '-out', str(crt), '-days', '2', '-extfile', str(ext))
    return ca_crt, crt, key


def cfg(upstream, protocol='h2c', extra_up='', extra_route='', workers=1):
    return f"""
server:
  listen: ["$listen"]
  workers: {workers}
  access_log: {{ format: off }}
upstreams:
  app:
    servers: ["{upstream}"]
    protocol: {protocol}
{extra_up}
routes:
  - upstream: app
{extra_route}
"""


def get(gw, path, method='GET', body=None, headers=None, timeout=20):
    c = http.client.HTTPConnection('127.0.0.1', gw.port, timeout=timeout)
    try:
        c.request(method, path, body=body, headers=headers or {})
        r = c.getresponse()
        return r, r.read()
    finally:
        c.close()


def raw(gw, data, timeout=20):
    """Sends raw bytes, reads until the server closes."""
    s = socket.create_connection(('127.0.0.1', gw.port), timeout=timeout)
    s.sendall(data)
    out = b''
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        out += chunk
    s.close()
    return out


def test_h2c_get_translates_head(tollgate, h2_backends):
    b = h2_backends()
    gw = tollgate(cfg(b.addr))
    r, body = get(gw, '/echo?x=1', headers={'Host': 'api.example.com', 'X-Custom': 'v',
                                            'Connection': 'keep-alive, X-Hop', 'X-Hop': 'gone',
                                            'Cookie': 'a=1; b=2', 'TE': 'trailers'})
    assert r.status == 200, body
    e = json.loads(body)
    assert e['method'] == 'GET' and e['path'] == '/echo?x=1' and e['scheme'] == 'http'
    assert e['authority'] == 'api.example.com'
    names = [k for k, _ in e['headers']]
    assert all(n == n.lower() for n in names)
    hd = dict(e['headers'])
    for hop in ('host', 'connection', 'x-hop', 'keep-alive', 'transfer-encoding'):
        assert hop not in hd, hop
    assert hd['x-custom'] == 'v' and hd['cookie'] == 'a=1; b=2' and hd['te'] == 'trailers'
    assert hd['x-forwarded-for'] == '127.0.0.1' and 'x-request-id' in hd
    assert r.getheader('Content-Length') == str(len(body))
    assert r.getheader('Via') == '2 tollgate'  # the version the gateway received


def test_h2c_request_bodies(tollgate, h2_backends):
    b = h2_backends()
    gw = tollgate(cfg(b.addr))
    data = os.urandom(300_000).hex()[:300_000]
    r, body = get(gw, '/echo', 'POST', body=data, headers={'Content-Type': 'text/plain'})
    assert r.status == 200
    assert json.loads(body)['body'] == data

    # chunked request with trailers -> DATA frames, then a trailing HEADERS frame
    chunks = b''.join(b'%x\r\n%s\r\n' % (len(p), p) for p in (b'hello ', b'chunked ', b'world'))
    resp = raw(gw, b'POST /echo HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n'
                   b'Connection: close\r\nTrailer: x-sum\r\n\r\n' + chunks + b'0\r\nx-sum: 42\r\n\r\n')
    head, _, rest = resp.partition(b'\r\n\r\n')
    assert head.startswith(b'HTTP/1.1 200'), resp[:300]
    e = json.loads(rest)
    assert e['body'] == 'hello chunked world'
    assert ['x-sum', '42'] in e['trailers']


def test_h2c_large_response_streams(tollgate, h2_backends):
    b = h2_backends()
    gw = tollgate(cfg(b.addr))
    n = 8 * 1024 * 1024
    r, body = get(gw, f'/big?n={n}', timeout=60)
    assert r.status == 200 and len(body) == n and body == b'x' * n
    assert r.getheader('Content-Length') == str(n)


def test_h2c_response_trailers_to_http11_chunked(tollgate, h2_backends):
    b = h2_backends()
    gw = tollgate(cfg(b.addr))
    resp = raw(gw, b'GET /trailers HTTP/1.1\r\nHost: h\r\nTE: trailers\r\nConnection: close\r\n\r\n')
    head, _, rest = resp.partition(b'\r\n\r\n')
    assert b'transfer-encoding: chunked' in head.lower(), head
    assert rest.startswith(b'5\r\nhello\r\n'), rest
    tail = rest[len(b'5\r\nhello\r\n'):].lower()
    assert tail.startswith(b'0\r\n') and b'x-checksum: abc\r\n' in tail and tail.endswith(b'\r\n\r\n')


def test_h2c_unknown_length_becomes_chunked(tollgate, h2_backends):
    b = h2_backends()
    gw = tollgate(cfg(b.addr))
    resp = raw(gw, b'GET /nolen HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n')
    head, _, rest = resp.partition(b'\r\n\r\n')
    assert b'transfer-encoding: chunked' in head.lower()
    assert rest == b'3\r\nabc\r\n0\r\n\r\n'
    r, body = get(gw, '/big?n=10', 'HEAD')
    assert r.status == 200 and body == b''


def test_h2c_multiplexes_one_connection(tollgate, h2_backends):
    b = h2_backends()
    gw = tollgate(cfg(b.addr))
    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        results = list(pool.map(lambda i: get(gw, f'/slow?ms=300&i={i}'), range(32)))
    assert all(r.status == 200 and body == b'slow' for r, body in results)
    r, body = get(gw, '/_stats')
    st = json.loads(body)
    assert st['streams'] >= 33
    assert st['connections'] == 1, st  # one worker, streams shared on one connection


def test_h2c_errors(tollgate, h2_backends):
    b = h2_backends()
    from conftest import free_port
    dead = free_port()
    gw = tollgate(cfg(b.addr, extra_route='    timeouts: { response: 500ms }'))
    t0 = time.monotonic()
    r, body = get(gw, '/slow?ms=5000')
    assert r.status == 504 and json.loads(body)['error'] == 'upstream_timeout'
    assert time.monotonic() - t0 < 4
    r, body = get(gw, '/reset')
    assert r.status == 502, body
    r, body = get(gw, '/status/503')
    assert r.status == 503 and body == b's'
    r, body = get(gw, '/echo')  # the connection survived all of that
    assert r.status == 200
    gw2 = tollgate(cfg(f'127.0.0.1:{dead}'))
    r, body = get(gw2, '/echo')
    assert r.status == 502 and json.loads(body)['error'] == 'bad_gateway'


def tls_cfg(b, ca, extra=''):
    return cfg(b.addr, 'h2', extra_up=f'    tls: {{ ca: "{ca}"{extra} }}')


def test_h2_tls_verified(tollgate, h2_backends, tmp_path):
    ca, crt, key = make_ca(tmp_path)
    b = h2_backends('--cert', str(crt), '--key', str(key))
    gw = tollgate(tls_cfg(b, ca, ', sni: localhost'))
    r, body = get(gw, '/echo', 'POST', body='over tls')
    assert r.status == 200, body
    e = json.loads(body)
    assert e['scheme'] == 'https' and e['body'] == 'over tls'
    r, body = get(gw, '/big?n=2000000', timeout=60)
    assert r.status == 200 and len(body) == 2000000
    # the server is named by its IP address when no sni is given
    gw2 = tollgate(tls_cfg(b, ca))
    r, body = get(gw2, '/echo')
    assert r.status == 200


def test_h2_tls_refuses_bad_peers(tollgate, h2_backends, tmp_path):
    ca, crt, key = make_ca(tmp_path)
    other_ca, _, _ = make_ca(tmp_path, prefix='other')
    b = h2_backends('--cert', str(crt), '--key', str(key))
    gw = tollgate(tls_cfg(b, other_ca))                      # wrong CA
    r, body = get(gw, '/echo')
    assert r.status == 502
    gw = tollgate(tls_cfg(b, ca, ', sni: not-the-server.test'))  # wrong name
    r, body = get(gw, '/echo')
    assert r.status == 502
    gw = tollgate(tls_cfg(b, other_ca, ', verify: false'))   # explicitly unverified
    r, body = get(gw, '/echo')
    assert r.status == 200
    b11 = h2_backends('--cert', str(crt), '--key', str(key), '--alpn', 'http/1.1')
    gw = tollgate(tls_cfg(b11, ca))                          # no h2 in ALPN
    r, body = get(gw, '/echo')
    assert r.status == 502
    assert 'ALPN' in gw.stderr() or 'h2' in gw.stderr()


@pytest.mark.parametrize('yaml_up,yaml_route,msg', [
    ('    protocol: h2', '', 'needs tls'),
    ('    protocol: h2c\n    tls: { verify: true }', '', 'h2c is cleartext HTTP/2'),
    ('    protocol: h2c', '    websocket: true', 'WebSocket is tunnelled to HTTP/1.1 upstreams'),
    ('    protocol: h2c', '    grpc_web: true', 'needs an upstream with protocol: grpc'),
    ('    protocol: grpc\n    tls: { ca: missing.pem }', '', 'cannot load ca'),
    ('    protocol: grpc\n    tls: { cert: c.pem }', '', 'cert and key go together'),
])
def test_config_errors(tmp_path, yaml_up, yaml_route, msg):
    f = tmp_path / 'bad.yaml'
    f.write_text(f"""server:
  listen: [":8080"]
upstreams:
  app:
    servers: ["127.0.0.1:1"]
{yaml_up}
routes:
  - upstream: app
{yaml_route}
""")
    r = run_tollgate(['-t', '-c', str(f)])
    assert r.returncode == 1
    assert msg in r.stderr + r.stdout, r.stderr
    assert re.search(r'bad\.yaml:\d+:\d+: ', r.stderr + r.stdout)


def test_h2c_slow_client_does_not_stall_other_streams(tollgate, h2_backends):
    """A client that stops reading a large answer holds only its stream's
    window: other requests on the same upstream connection go on."""
    b = h2_backends()
    gw = tollgate(cfg(b.addr))
    rss0 = gw.rss_kb()
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.connect(('127.0.0.1', gw.port))
    s.sendall(b'GET /big?n=50000000 HTTP/1.1\r\nHost: h\r\n\r\n')
    assert s.recv(100).startswith(b'HTTP/1.1 200')  # the stream is open, then never read
    t0 = time.monotonic()
    for i in range(5):
        r, body = get(gw, f'/echo?i={i}')
        assert r.status == 200
    assert time.monotonic() - t0 < 5
    r, body = get(gw, '/_stats')
    assert json.loads(body)['connections'] == 1  # the same upstream connection
    # flow control holds the unread answer upstream, not in the gateway
    assert gw.rss_kb() - rss0 < 20 * 1024
    s.close()


def test_grpc_timeout_enforced_by_gateway(tollgate, h2_backends):
    """grpc-timeout bounds the upstream wait even when the server ignores it."""
    b = h2_backends()
    gw = tollgate(cfg(b.addr, 'grpc'))
    t0 = time.monotonic()
    r, body = get(gw, '/slow?ms=4000', 'POST', body=b'\0\0\0\0\0',
                  headers={'Content-Type': 'application/grpc', 'grpc-timeout': '300m'})
    assert r.status == 200 and r.getheader('grpc-status') == '4' and body == b''
    assert time.monotonic() - t0 < 3
    r, body = get(gw, '/slow?ms=10', 'POST', body=b'\0\0\0\0\0',
                  headers={'Content-Type': 'application/grpc', 'grpc-timeout': '5S'})
    assert r.status == 200 and body == b'slow'
