"""Signals: SIGTERM/SIGQUIT drain (in-flight requests finish, no new connections,
idle keep-alive connections closed, exit 0, bounded by shutdown_grace); SIGINT
stops at once."""
import signal
import time

import pytest

from conftest import RawConn, build_request, port_accepts, wait_until


def config(b, grace):
    return f"""
        server:
          listen: ["$listen"]
          workers: 2
          shutdown_grace: {grace}
        upstreams:
          u: {{ servers: ["{b.addr}"], timeouts: {{ response: 60s }} }}
        routes:
          - match: {{ path: / }}
            upstream: u
        """


def wait_backend_saw(b, prefix):
    wait_until(lambda: any(e['target'].startswith(prefix) for e in b.log()),
               timeout=5, what=f'backend received {prefix}')


def test_sigterm_idle_gateway_exits_0(backends, tollgate):
    b, = backends(1)
    gw = tollgate(config(b, '10s'))
    t0 = time.monotonic()
    gw.proc.send_signal(signal.SIGTERM)
    assert gw.wait_exit(5) == 0
    assert time.monotonic() - t0 < 3


@pytest.mark.parametrize('sig', [signal.SIGTERM, signal.SIGQUIT], ids=['TERM', 'QUIT'])
def test_drain_finishes_inflight_and_refuses_new(backends, tollgate, sig):
    b, = backends(1)
    gw = tollgate(config(b, '10s'))
    with RawConn(gw.port, timeout=15) as c:
        c.send(build_request('GET', '/slow?ms=2500'))
        wait_backend_saw(b, '/slow')
        t0 = time.monotonic()
        gw.proc.send_signal(sig)
        # new connections are refused while the request is still in flight
        wait_until(lambda: not port_accepts(gw.port, 0.2), timeout=1.5, what='listener closed')
        assert gw.proc.poll() is None, 'exited before the in-flight request finished'
        r = c.read_response()
        assert r.status == 200, r
        assert r.json()['path'] == '/slow?ms=2500'
        # the finished keep-alive connection does not hold up the exit (client still connected)
        assert gw.wait_exit(5) == 0
        assert time.monotonic() - t0 < 7


def test_sigterm_closes_idle_keepalive_connections(backends, tollgate):
    b, = backends(1)
    gw = tollgate(config(b, '10s'))
    with RawConn(gw.port, timeout=15) as idle, RawConn(gw.port, timeout=15) as busy:
        assert idle.request('GET', '/echo/idle').status == 200
        busy.send(build_request('GET', '/slow?ms=3000'))
        wait_backend_saw(b, '/slow')
        gw.proc.send_signal(signal.SIGTERM)
        # the idle connection is closed promptly, while the busy one is still served
        assert idle.wait_closed(2.0), 'idle keep-alive connection not closed on SIGTERM'
        assert idle.buf == b''
        assert gw.proc.poll() is None
        r = busy.read_response()
        assert r.status == 200
    assert gw.wait_exit(10) == 0


def test_shutdown_grace_bounds_the_drain(backends, tollgate):
    b, = backends(1)
    gw = tollgate(config(b, '1s'))
    with RawConn(gw.port, timeout=15) as c:
        c.send(build_request('GET', '/stall'))
        wait_backend_saw(b, '/stall')
        t0 = time.monotonic()
        gw.proc.send_signal(signal.SIGTERM)
        rc = gw.wait_exit(8)
        took = time.monotonic() - t0
        assert rc == 0, rc
        assert 0.9 <= took < 5, took
        assert c.wait_closed(2)


def test_sigint_stops_at_once(backends, tollgate):
    b, = backends(1)
    gw = tollgate(config(b, '30s'))
    with RawConn(gw.port, timeout=15) as c:
        c.send(build_request('GET', '/stall'))
        wait_backend_saw(b, '/stall')
        t0 = time.monotonic()
        gw.proc.send_signal(signal.SIGINT)
        rc = gw.wait_exit(5)
        assert rc is not None, 'still running 5 s after SIGINT'
        assert time.monotonic() - t0 < 2
        assert rc in (0, 130, -signal.SIGINT), rc
        assert c.wait_closed(2)
