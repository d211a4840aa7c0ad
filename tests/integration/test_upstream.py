"""Upstreams: smooth weighted round robin, keep-alive pool, timeouts, and what a
client gets when a backend is down, stalls, answers garbage or dies mid-response."""
import collections
import socket
import time

import pytest

from conftest import (RawConn, assert_gateway_error, free_port, http_request, wait_until)


def proxy_config(servers, upstream_extra='', workers=1, route_extra=''):
    """One upstream `u` with the given server entries (YAML flow items), one catch-all route."""
    return f"""
        server:
          listen: ["$listen"]
          workers: {workers}
        upstreams:
          u:
            servers: [{', '.join(servers)}]
            {upstream_extra}
        routes:
          - match: {{ path: / }}
            upstream: u
            {route_extra}
        """


def names_of(port, n, path='/echo'):
    """Sends n requests on one keep-alive connection; returns the X-Backend of each."""
    out = []
    with RawConn(port) as c:
        for _ in range(n):
            r = c.request('GET', path)
            assert r.status == 200, r
            out.append(r.header('x-backend'))
    return out


# -------------------------------------------------------------- balancing

def test_swrr_exact_distribution(backends, tollgate):
    a, b, c = backends(names=['a', 'b', 'c'])
    gw = tollgate(proxy_config([f'{{ address: "{a.addr}", weight: 1 }}',
                                f'{{ address: "{b.addr}", weight: 2 }}',
                                f'{{ address: "{c.addr}", weight: 3 }}']))
    counts = collections.Counter(names_of(gw.port, 600))
    assert counts == {'a': 100, 'b': 200, 'c': 300}


def test_swrr_interleaving_order(backends, tollgate):
    a, b, c = backends(names=['a', 'b', 'c'])
    gw = tollgate(proxy_config([f'{{ address: "{a.addr}", weight: 5 }}',
                                f'{{ address: "{b.addr}", weight: 1 }}',
                                f'{{ address: "{c.addr}", weight: 1 }}']))
    # nginx's smooth weighted round robin: {a:5, b:1, c:1} -> a a b a c a a, repeating
    assert ''.join(names_of(gw.port, 14)) == 'aabacaa' * 2


def test_default_weights_plain_round_robin(backends, tollgate):
    bs = backends(names=['a', 'b', 'c'])
    gw = tollgate(proxy_config([f'"{b.addr}"' for b in bs]))
    seq = names_of(gw.port, 9)
    assert collections.Counter(seq) == {'a': 3, 'b': 3, 'c': 3}
    assert len(set(seq[:3])) == 3 and seq[:3] * 3 == seq


def test_dns_name_localhost(backends, tollgate):
    b, = backends(names=['dns'], args=['--also-v6'])
    gw = tollgate(proxy_config([f'"localhost:{b.port}"']))
    r = http_request(gw.port, 'GET', '/echo/dns')
    assert r.status == 200, r
    assert r.json()['name'] == 'dns'


# ----------------------------------------------------------------- pooling

def test_keepalive_pool_reuses_connections(backends, tollgate):
    b, = backends(1)
    gw = tollgate(proxy_config([f'"{b.addr}"'], workers=2))
    for i in range(20):          # a new client connection each time
        assert http_request(gw.port, 'GET', f'/echo/{i}').status == 200
    log = b.log()
    assert len(log) == 20
    conns = {e['conn'] for e in log}
    assert len(conns) <= 2, conns          # one per worker at most


def test_pooled_connection_idle_timeout(backends, tollgate):
    b, = backends(1)
    gw = tollgate(proxy_config([f'"{b.addr}"'],
                               'keepalive: { idle_timeout: 300ms }\n'
                               '            timeouts: { idle: 300ms }'))
    assert http_request(gw.port, 'GET', '/echo').status == 200
    # the gateway closes its idle upstream connection; only our /_stats connection stays open
    wait_until(lambda: b.stats()['open'] == 1, timeout=5, what='pooled connection closed')


def test_pooled_connection_closed_by_server_is_not_used(backends, tollgate):
    b, = backends(1)
    gw = tollgate(proxy_config([f'"{b.addr}"']))
    with RawConn(gw.port) as c:
        # the server answers, then closes the kept-alive connection 200 ms later
        r = c.request('GET', '/keepalive-close?ms=200')
        assert r.status == 200
        wait_until(lambda: b.stats()['open'] == 1, timeout=5, what='backend closed its side')
        r = c.request('GET', '/echo/next')
        assert r.status == 200, r
        assert r.json()['path'] == '/echo/next'


def test_pooled_connection_closed_right_after_response(backends, tollgate):
    b, = backends(1)
    gw = tollgate(proxy_config([f'"{b.addr}"']))
    with RawConn(gw.port) as c:
        for i in range(20):
            r = c.request('GET', '/keepalive-close')
            assert r.status == 200, (i, r)
            r = c.request('GET', f'/echo/{i}')          # races the server's FIN
            assert r.status == 200, (i, r)
            assert r.json()['path'] == f'/echo/{i}'


# ------------------------------------------------------------------ errors

def test_backend_down_is_502(tollgate):
    dead = free_port()              # nothing listens there
    gw = tollgate(proxy_config([f'"127.0.0.1:{dead}"']))
    t0 = time.monotonic()
    r = http_request(gw.port, 'GET', '/echo')
    assert_gateway_error(r.status, r.header, r.body, 502)
    assert time.monotonic() - t0 < 3


def test_all_servers_down(tollgate):
    gw = tollgate(proxy_config([f'"127.0.0.1:{free_port()}"', f'"127.0.0.1:{free_port()}"']))
    for _ in range(4):
        r = http_request(gw.port, 'GET', '/echo')
        assert r.status in (502, 503), r
        assert_gateway_error(r.status, r.header, r.body, r.status)


def test_stall_is_504_after_response_timeout(backends, tollgate):
    b, = backends(1)
    gw = tollgate(proxy_config([f'"{b.addr}"'], 'timeouts: { connect: 1s, response: 1s }'))
    t0 = time.monotonic()
    r = http_request(gw.port, 'GET', '/stall', timeout=15)
    took = time.monotonic() - t0
    assert_gateway_error(r.status, r.header, r.body, 504)
    assert 0.9 <= took < 5, took
    # and the gateway gave up the stalled upstream connection
    wait_until(lambda: b.stats()['open'] == 1, timeout=5, what='stalled connection closed')


def test_route_response_timeout_overrides_upstream(backends, tollgate):
    b, = backends(1)
    gw = tollgate(proxy_config([f'"{b.addr}"'], 'timeouts: { response: 30s }',
                               route_extra='timeouts: { response: 500ms }'))
    t0 = time.monotonic()
    r = http_request(gw.port, 'GET', '/stall', timeout=15)
    assert_gateway_error(r.status, r.header, r.body, 504)
    assert 0.4 <= time.monotonic() - t0 < 4


def test_response_timeout_applies_between_body_reads(backends, tollgate):
    b, = backends(1)
    gw = tollgate(proxy_config([f'"{b.addr}"'], 'timeouts: { response: 1s }'))
    # gaps of 400 ms: the whole body takes longer than 1 s, yet no gap does
    r = http_request(gw.port, 'GET', '/drip?n=5&ms=400', timeout=15)
    assert r.status == 200 and r.body == b''.join(str(i).encode() * 8 for i in range(5))
    # a 3 s gap mid-body: the response is cut off (connection closed, no last chunk)
    with RawConn(gw.port, timeout=10) as c:
        t0 = time.monotonic()
        r = c.request('GET', '/drip?n=3&ms=3000')
        took = time.monotonic() - t0
    assert r.status == 200
    assert not r.complete, r
    assert took < 2.9, took


def test_connect_timeout(tollgate):
    # A listener whose accept queue is full: the kernel drops further SYNs, so a
    # connect to it neither succeeds nor fails until the connect timeout.
    ls = socket.socket()
    ls.bind(('127.0.0.1', 0))
    ls.listen(0)
    port = ls.getsockname()[1]
    held = []
    try:
        for _ in range(2):
            s = socket.socket()
            s.setblocking(False)
            s.connect_ex(('127.0.0.1', port))
            held.append(s)
        probe = socket.socket()
        probe.settimeout(0.3)
        try:
            probe.connect(('127.0.0.1', port))
            pytest.skip('cannot make a hanging connect on loopback here (SYN not dropped)')
        except socket.timeout:
            pass
        finally:
            probe.close()
        gw = tollgate(proxy_config([f'"127.0.0.1:{port}"'], 'timeouts: { connect: 500ms, response: 20s }'))
        t0 = time.monotonic()
        r = http_request(gw.port, 'GET', '/echo', timeout=15)
        took = time.monotonic() - t0
        assert_gateway_error(r.status, r.header, r.body, 504)
        assert 0.4 <= took < 3, took
    finally:
        for s in held:
            s.close()
        ls.close()


@pytest.mark.parametrize('path', ['/garbage', '/close-early', '/reset'])
def test_broken_backend_is_502(backends, tollgate, path):
    b, = backends(1)
    gw = tollgate(proxy_config([f'"{b.addr}"']))
    r = http_request(gw.port, 'GET', path)
    assert_gateway_error(r.status, r.header, r.body, 502)
    # the gateway is unharmed
    assert http_request(gw.port, 'GET', '/echo').status == 200


@pytest.mark.parametrize('path', ['/close-mid', '/close-mid?chunked=1'])
def test_backend_dies_mid_body(backends, tollgate, path):
    b, = backends(1)
    gw = tollgate(proxy_config([f'"{b.addr}"']))
    with RawConn(gw.port, timeout=10) as c:
        r = c.request('GET', path)
        assert r.status == 200
        # the client sees a cut-off body and a closed connection, never a hang or a
        # well-formed end of message
        assert not r.complete, r
        assert len(r.body) < 1000000
        assert c.eof
    assert http_request(gw.port, 'GET', '/echo').status == 200


def test_backend_status_passed_through(backends, tollgate):
    b, = backends(1)
    gw = tollgate(proxy_config([f'"{b.addr}"']))
    for code in (404, 500, 503):
        r = http_request(gw.port, 'GET', f'/status/{code}')
        assert r.status == code
        assert r.body == f'status {code}\n'.encode()
        assert r.header('x-backend') == 'b1'


def test_one_server_down_others_serve(backends, tollgate):
    a, = backends(names=['a'])
    gw = tollgate(proxy_config([f'"{a.addr}"', f'"127.0.0.1:{free_port()}"']))
    got = collections.Counter()
    for _ in range(10):
        r = http_request(gw.port, 'GET', '/echo')
        got[r.status] += 1
        assert r.status in (200, 502, 503), r
    assert got[200] >= 5, got
