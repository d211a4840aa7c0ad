"""HTTPS to HTTP/1.1 upstreams (`protocol: http1` with `tls:`): verification
(CA, name, SNI), client certificates, keep-alive reuse of TLS connections,
large bodies both ways, backpressure, idle pooled connections the server
closes, chunked uploads, a handshake that never finishes (504) and a
WebSocket tunnel over TLS. The origin is https_backend.py (backend.py's
behaviours over Python's ssl); certificates are made by openssl in the test."""
import asyncio
import hashlib
import http.client
import json
import os
import socket
import ssl
import subprocess
import threading
import time

import pytest

import backend as origin
from conftest import (HERE, PY, RawConn, assert_gateway_error, build_request, http_request,
                      read_ready, run_tollgate, wait_until)
from test_upstream_h2 import make_ca

HTTPS_BACKEND = HERE / 'https_backend.py'
MiB = 1 << 20


class HttpsBackend:
    def __init__(self, proc, host, port, ctl_port):
        self.proc, self.host, self.port, self.ctl_port = proc, host, port, ctl_port

    @property
    def addr(self):
        return f'{self.host}:{self.port}'

    def ctl(self, path):
        """GET on the plaintext control port (no TLS connection of its own)."""
        c = http.client.HTTPConnection(self.host, self.ctl_port, timeout=10)
        try:
            c.request('GET', path)
            return json.loads(c.getresponse().read())
        finally:
            c.close()

    def tls(self):
        return self.ctl('/_tls')


@pytest.fixture
def https_backends(tmp_path):
    started = []

    def start(cert, key, *args, host='127.0.0.1'):
        err = open(tmp_path / f'https-backend-{len(started)}.stderr', 'wb')
        proc = subprocess.Popen([PY, str(HTTPS_BACKEND), '--cert', str(cert), '--key', str(key),
                                 '--host', host, *args],
                                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=err)
        m = read_ready(proc, 'https backend')
        assert m.group(2), 'https backend: no control port in its READY line'
        b = HttpsBackend(proc, host, int(m.group(1)), int(m.group(2)))
        started.append(b)
        return b
    yield start
    for b in started:
        b.proc.kill()
        b.proc.wait(timeout=10)


@pytest.fixture
def pki(tmp_path):
    """A server CA + certificate (localhost, 127.0.0.1, api.internal), another
    CA, and a client CA + client certificate."""
    ca, crt, key = make_ca(tmp_path, names=('localhost', 'api.internal'), prefix='srv')
    other_ca, _, _ = make_ca(tmp_path, prefix='other')
    cli_ca, cli_crt, cli_key = make_ca(tmp_path, names=('tollgate-client',), ips=(), prefix='cli')
    return {'ca': ca, 'crt': crt, 'key': key, 'other_ca': other_ca,
            'cli_ca': cli_ca, 'cli_crt': cli_crt, 'cli_key': cli_key}


def cfg(server, tls, extra_up='', extra_route='', limits=''):
    return f"""
server:
  listen: ["$listen"]
  workers: 1
  access_log: {{ format: off }}
{limits}
upstreams:
  app:
    servers: ["{server}"]
    protocol: http1
    tls: {{ {tls} }}
{extra_up}
routes:
  - upstream: app
{extra_route}
"""


def get(gw, path, method='GET', body=None, headers=None, timeout=30):
    return http_request(gw.port, method, path, headers=headers, body=body, timeout=timeout)


def test_verify_ok_with_ca(tollgate, https_backends, pki):
    b = https_backends(pki['crt'], pki['key'])
    gw = tollgate(cfg(b.addr, f"ca: {pki['ca']}"))
    r = get(gw, '/echo?x=1', headers={'Host': 'api.example.com', 'X-Custom': 'v'})
    assert r.status == 200, r.body
    doc = json.loads(r.body)
    assert doc['path'] == '/echo?x=1'
    hdrs = {k.lower(): v for k, v in doc['headers']}
    assert hdrs['host'] == 'api.example.com' and hdrs['x-custom'] == 'v'
    assert r.header('x-backend') == 'https'
    assert b.tls()['handshakes'] == 1


def test_wrong_ca_is_502(tollgate, https_backends, pki):
    b = https_backends(pki['crt'], pki['key'])
    gw = tollgate(cfg(b.addr, f"ca: {pki['other_ca']}"))
    r = get(gw, '/echo')
    assert_gateway_error(r.status, r.header, r.body, 502)
    assert b.ctl('/_stats')['requests'] == 0
    wait_until(lambda: 'TLS handshake' in gw.stderr(), timeout=10, what='a logged handshake failure')
    assert 'certificate' in gw.stderr()


@pytest.mark.parametrize('how', ['sni', 'address'])
def test_wrong_name_is_502(tollgate, https_backends, pki, how):
    if how == 'sni':   # the certificate does not name the configured SNI
        b = https_backends(pki['crt'], pki['key'])
        gw = tollgate(cfg(b.addr, f"ca: {pki['ca']}, sni: not-the-server.test"))
    else:              # it names 127.0.0.1, the server is 127.0.0.2
        b = https_backends(pki['crt'], pki['key'], host='127.0.0.2')
        gw = tollgate(cfg(b.addr, f"ca: {pki['ca']}"))
    r = get(gw, '/echo')
    assert_gateway_error(r.status, r.header, r.body, 502)
    assert b.ctl('/_stats')['requests'] == 0


def test_verify_false_accepts_self_signed(tollgate, https_backends, pki, tmp_path):
    # the other CA's own certificate: self-signed, no name of ours
    b = https_backends(tmp_path / 'other-ca.pem', tmp_path / 'other-ca.key')
    gw = tollgate(cfg(b.addr, 'verify: false'))
    assert get(gw, '/echo').status == 200
    gw2 = tollgate(cfg(b.addr, f"ca: {pki['ca']}"))   # and verified, it is refused
    r = get(gw2, '/echo')
    assert_gateway_error(r.status, r.header, r.body, 502)


def test_sni_is_the_configured_one(tollgate, https_backends, pki):
    b = https_backends(pki['crt'], pki['key'])
    gw = tollgate(cfg(b.addr, f"ca: {pki['ca']}, sni: api.internal"))
    assert get(gw, '/echo').status == 200
    assert b.tls()['sni'] == ['api.internal']
    # default: the server's host; a name is sent, an IP address is not (RFC 6066)
    b2 = https_backends(pki['crt'], pki['key'])
    gw2 = tollgate(cfg(f'localhost:{b2.port}', f"ca: {pki['ca']}"))
    assert get(gw2, '/echo').status == 200
    assert b2.tls()['sni'] == ['localhost']
    b3 = https_backends(pki['crt'], pki['key'])
    gw3 = tollgate(cfg(b3.addr, f"ca: {pki['ca']}"))
    assert get(gw3, '/echo').status == 200
    assert b3.tls()['sni'] == [None]


def test_client_certificate(tollgate, https_backends, pki):
    b = https_backends(pki['crt'], pki['key'], '--client-ca', str(pki['cli_ca']))
    gw = tollgate(cfg(b.addr, f"ca: {pki['ca']}, cert: {pki['cli_crt']}, key: {pki['cli_key']}"))
    r = get(gw, '/echo')
    assert r.status == 200, r.body
    assert b.tls()['client_subjects'] == ['commonName=tollgate-client']
    # without one, the server refuses the handshake: 502
    gw2 = tollgate(cfg(b.addr, f"ca: {pki['ca']}"))
    r = get(gw2, '/echo')
    assert_gateway_error(r.status, r.header, r.body, 502)
    assert b.ctl('/_stats')['requests'] == 1


def test_keepalive_reuses_one_tls_connection(tollgate, https_backends, pki):
    b = https_backends(pki['crt'], pki['key'])
    gw = tollgate(cfg(b.addr, f"ca: {pki['ca']}"))
    conns = set()
    for i in range(20):
        r = get(gw, f'/echo?i={i}', method='POST' if i % 2 else 'GET',
                body=b'x' * (i * 1000) if i % 2 else None)
        assert r.status == 200
        doc = json.loads(r.body)
        assert doc['body_len'] == (i * 1000 if i % 2 else 0)
        conns.add(doc['conn'])
    assert len(conns) == 1, conns
    t = b.tls()
    assert t['handshakes'] == 1 and t['failed'] == 0, t


def test_large_bodies_both_ways(tollgate, https_backends, pki):
    b = https_backends(pki['crt'], pki['key'])
    gw = tollgate(cfg(b.addr, f"ca: {pki['ca']}", limits='  limits: { max_body_bytes: 64MiB }'))
    n = 20 * MiB
    body = (origin.BLOCK * 21)[:n]
    r = get(gw, '/upload', method='POST', body=body, timeout=120)
    assert r.status == 200, r.body
    doc = json.loads(r.body)
    assert doc['body_len'] == n and doc['body_sha256'] == hashlib.sha256(body).hexdigest()
    for framing in ('&cl=1', ''):   # Content-Length, then chunked
        r = get(gw, f'/bytes?n={n}{framing}', timeout=120)
        assert r.status == 200
        assert len(r.body) == n
        assert hashlib.sha256(r.body).hexdigest() == r.header('x-content-sha256')
    assert b.tls()['handshakes'] == 1


def test_chunked_post(tollgate, https_backends, pki):
    b = https_backends(pki['crt'], pki['key'])
    gw = tollgate(cfg(b.addr, f"ca: {pki['ca']}"))
    pieces = [os.urandom(k) for k in (1, 100, 70000, 5, 300000)]
    with RawConn(gw.port, timeout=30) as c:
        c.send(build_request('POST', '/upload', headers={'Transfer-Encoding': 'chunked'}))
        for p in pieces:
            c.send(b'%x\r\n' % len(p) + p + b'\r\n')
        c.send(b'0\r\nX-Sum: 1\r\n\r\n')
        r = c.read_response()
    assert r.status == 200, r.body
    doc = json.loads(r.body)
    whole = b''.join(pieces)
    assert doc['chunked'] is True
    assert doc['body_len'] == len(whole)
    assert doc['body_sha256'] == hashlib.sha256(whole).hexdigest()


@pytest.mark.parametrize('close_notify', [True, False], ids=['close_notify', 'tcp_close'])
def test_server_closes_idle_pooled_connection(tollgate, https_backends, pki, close_notify):
    b = https_backends(pki['crt'], pki['key'], *(['--close-notify'] if close_notify else []))
    gw = tollgate(cfg(b.addr, f"ca: {pki['ca']}"))
    r = get(gw, '/keepalive-close?ms=50')
    assert r.status == 200
    first = json.loads(r.body)['conn']
    # the server has closed the pooled connection (with or without close_notify)
    wait_until(lambda: b.tls()['closed'] == 1, timeout=15, what='the server close')
    if close_notify:
        assert b.tls()['close_notify'] == 1
    for i in range(3):
        r = get(gw, '/echo')
        assert r.status == 200, r.body
        assert json.loads(r.body)['conn'] != first
    assert b.tls()['handshakes'] == 2


def test_slow_client_stops_upstream_reads(tollgate, https_backends, pki):
    """Backpressure through TLS: a client that reads nothing makes the
    gateway stop reading the upstream, and reading again resumes it."""
    b = https_backends(pki['crt'], pki['key'])
    gw = tollgate(cfg(b.addr, f"ca: {pki['ca']}"))
    n = 512 * MiB
    with RawConn(gw.port, timeout=30, rcvbuf=64 * 1024) as c:
        c.send(build_request('GET', f'/bytes?n={n}&cl=1&tag=slow&sndbuf=65536'))
        assert c.read_head().status == 200
        hist = []

        def settled():
            hist.append(b.ctl('/_stats')['progress'].get('slow', 0))
            return len(hist) > 10 and hist[-1] == hist[-11]   # no progress for ~1 s
        wait_until(settled, timeout=60, interval=0.1, what='the backend to stall')
        stalled_at = hist[-1]
        assert stalled_at < 64 * MiB, f'backend wrote {stalled_at} bytes to a client reading none'
        c.discard(stalled_at + 32 * MiB)
        assert b.ctl('/_stats')['progress']['slow'] > stalled_at


def test_slow_upstream_stops_client_reads(tollgate, https_backends, pki):
    """Backpressure through TLS the other way: an upstream that reads 64 KiB
    a second makes the gateway stop reading the client."""
    b = https_backends(pki['crt'], pki['key'])
    gw = tollgate(cfg(b.addr, f"ca: {pki['ca']}", limits='  limits: { max_body_bytes: 4GiB }'))
    n = 1 << 30
    blk = memoryview(origin.BLOCK)
    with RawConn(gw.port, timeout=30) as c:
        c.send(build_request('POST', '/upload?ms=1000&nohash=1&rcvbuf=65536',
                             headers={'Content-Length': str(n)}))
        c.sock.setblocking(False)
        sent, hist = [0], []

        def settled():
            while True:
                try:
                    sent[0] += c.sock.send(blk)
                except BlockingIOError:
                    break
            hist.append(sent[0])
            return len(hist) > 10 and hist[-1] == hist[-11]
        wait_until(settled, timeout=60, interval=0.1, what='the client to stall')
        assert sent[0] < 64 * MiB, f'gateway accepted {sent[0]} bytes for a server reading 64 KiB/s'
    b.proc.kill()   # ends the exchange from the upstream side (no long drain at teardown)


def test_handshake_timeout_is_504(tollgate):
    """A server that accepts TCP but never answers the ClientHello: the
    connect timeout bounds the handshake too."""
    ls = socket.socket()
    ls.bind(('127.0.0.1', 0))
    ls.listen(16)
    try:
        gw = tollgate(cfg(f'127.0.0.1:{ls.getsockname()[1]}', 'verify: false',
                          extra_up='    timeouts: { connect: 500ms }'))
        t0 = time.monotonic()
        r = get(gw, '/echo')
        took = time.monotonic() - t0
        assert_gateway_error(r.status, r.header, r.body, 504)
        assert 0.4 < took < 10, took
    finally:
        ls.close()


def test_websocket_over_tls_upstream(tollgate, pki):
    websockets = pytest.importorskip('websockets')
    ready, port, stop = threading.Event(), [0], []

    async def echo(ws, path):
        async for m in ws:
            await ws.send(m)

    def serve():
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(str(pki['crt']), str(pki['key']))

        async def main():
            async with websockets.serve(echo, '127.0.0.1', 0, ssl=ctx, max_size=None) as srv:
                port[0] = srv.sockets[0].getsockname()[1]
                done = asyncio.get_running_loop().create_future()
                stop.append((asyncio.get_running_loop(), done))
                ready.set()
                await done
        asyncio.run(main())
    th = threading.Thread(target=serve, daemon=True)
    th.start()
    assert ready.wait(15)
    try:
        gw = tollgate(cfg(f'127.0.0.1:{port[0]}', f"ca: {pki['ca']}", extra_route='    websocket: true'))

        async def client():
            async with websockets.connect(f'ws://127.0.0.1:{gw.port}/chat', max_size=None) as ws:
                for i in range(10):
                    await ws.send(f'hello {i}')
                    assert await ws.recv() == f'hello {i}'
                blob = os.urandom(3 * MiB)
                await ws.send(blob)
                assert await ws.recv() == blob
        asyncio.run(asyncio.wait_for(client(), 60))
    finally:
        loop, done = stop[0]
        loop.call_soon_threadsafe(done.set_result, None)
        th.join(15)


def test_config_accepts_http1_with_tls(tmp_path, pki):
    f = tmp_path / 'ok.yaml'
    f.write_text(f"""server:
  listen: ["127.0.0.1:8080"]
upstreams:
  app:
    servers: ["127.0.0.1:8443"]
    protocol: http1
    tls: {{ verify: true, ca: {pki['ca']}, sni: api.internal, cert: {pki['cli_crt']}, key: {pki['cli_key']} }}
  short:
    servers: ["127.0.0.1:8444"]
    tls: true
routes:
  - upstream: app
""")
    r = run_tollgate(['-t', '-c', str(f)])
    assert r.returncode == 0, r.stderr + r.stdout


def test_health_checks_go_over_tls(tollgate, https_backends, pki):
    b = https_backends(pki['crt'], pki['key'])
    gw = tollgate(cfg(b.addr, f"ca: {pki['ca']}",
                      extra_up='    health_check: { path: /echo, interval: 1s, timeout: 1s, '
                               'healthy: 1, unhealthy: 3 }'))

    def checks():
        return [e for e in b.ctl('/_log')
                if dict((k.lower(), v) for k, v in e['headers']).get('user-agent') == 'tollgate-health-check']
    wait_until(lambda: len(checks()) >= 2, timeout=20, what='two health checks over TLS')
    assert get(gw, '/echo').status == 200
    assert 'is down' not in gw.stderr()
    # a check that cannot verify the server takes it out: 503, no usable server
    gw2 = tollgate(cfg(b.addr, f"ca: {pki['other_ca']}",
                       extra_up='    health_check: { path: /echo, interval: 300ms, timeout: 300ms, '
                                'healthy: 1, unhealthy: 1 }'))
    wait_until(lambda: 'is down' in gw2.stderr(), timeout=20, what='the server marked down')
    assert 'TLS handshake failed' in gw2.stderr()
    r = get(gw2, '/echo')
    assert_gateway_error(r.status, r.header, r.body, 503)
