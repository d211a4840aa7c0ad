"""Upstream resilience: balancers (least_conn, random, p2c, hash), active health checks,
passive outlier ejection, circuit breakers and retries (conditions, methods, budget), with
real backends that are killed, restarted, slowed and made to answer 5xx."""
import collections
import re
import socket
import threading
import time

import pytest

from conftest import (RawConn, assert_gateway_error, free_port, http_request, run_tollgate,
                      start_backend, wait_until)


def config(servers, upstream_extra='', workers=2):
    """One upstream `u` with the given server entries (YAML flow items), one catch-all route."""
    extra = '\n'.join('            ' + line for line in upstream_extra.strip().splitlines())
    return f"""
        server:
          listen: ["$listen"]
          workers: {workers}
        upstreams:
          u:
            servers: [{', '.join(servers)}]
{extra}
        routes:
          - match: {{ path: / }}
            upstream: u
        """


def q(addr, **kw):
    items = ''.join(f', {k}: {v}' for k, v in kw.items())
    return f'{{ address: "{addr}"{items} }}'


def names_of(port, n, path='/echo', headers=()):
    """n requests on one keep-alive connection; the X-Backend of each (None when not 200)."""
    out = []
    with RawConn(port) as c:
        for _ in range(n):
            r = c.request('GET', path, headers=headers)
            out.append(r.header('x-backend') if r.status == 200 else None)
    return out


class StatusServer:
    """A real HTTP/1.1 origin that answers every request with one fixed status
    (keep-alive), counting requests: the 5xx-answering backend."""

    def __init__(self, status):
        self.status, self.hits, self.lock = status, 0, threading.Lock()
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(('127.0.0.1', 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.addr = f'127.0.0.1:{self.port}'
        self.closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.closed:
            try:
                s, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(s,), daemon=True).start()

    def _serve(self, s):
        buf = b''
        try:
            while True:
                while b'\r\n\r\n' not in buf:
                    d = s.recv(65536)
                    if not d:
                        return
                    buf += d
                head, buf = buf.split(b'\r\n\r\n', 1)
                m = re.search(rb'(?im)^content-length:\s*(\d+)', head)
                need = int(m.group(1)) if m else 0
                while len(buf) < need:
                    d = s.recv(65536)
                    if not d:
                        return
                    buf += d
                buf = buf[need:]
                with self.lock:
                    self.hits += 1
                body = b'failing\n'
                s.sendall(b'HTTP/1.1 %d Failing\r\nX-Backend: failing\r\nContent-Length: %d\r\n\r\n%s'
                          % (self.status, len(body), body))
        except OSError:
            pass
        finally:
            s.close()

    def close(self):
        self.closed = True
        self.sock.close()


@pytest.fixture
def status_server():
    made = []

    def make(status):
        s = StatusServer(status)
        made.append(s)
        return s
    yield make
    for s in made:
        s.close()


def log_time(gw, pattern, timeout):
    """Polls the gateway's error log for a regex; returns the monotonic time it was seen."""
    wait_until(lambda: re.search(pattern, gw.stderr()), timeout=timeout, interval=0.01,
               what=f'log line {pattern!r}')
    return time.monotonic()


# -------------------------------------------------------------- balancing

def test_least_conn_sends_new_requests_to_idle_server(backends, tollgate):
    a, b = backends(names=['a', 'b'])
    gw = tollgate(config([f'"{a.addr}"', f'"{b.addr}"'], 'balance: least_conn', workers=2))
    slow = {}

    def hold():
        slow['r'] = http_request(gw.port, 'GET', '/slow?ms=6000', timeout=30)
    t = threading.Thread(target=hold)
    t.start()
    try:
        busy = wait_until(lambda: next((x for x in (a, b) if any(e['target'].startswith('/slow') for e in x.log())),
                                       None), timeout=10, what='the slow request reached a backend')
        idle = b if busy is a else a
        # new connections land on either worker: least_conn counts process-wide
        got = [http_request(gw.port, 'GET', f'/echo/{i}').header('x-backend') for i in range(10)]
        assert got == [idle.name] * 10, got
    finally:
        t.join(30)
    assert slow['r'].status == 200


@pytest.mark.parametrize('balance', ['random', 'p2c'])
def test_weighted_distribution(backends, tollgate, balance):
    a, b = backends(names=['a', 'b'])
    gw = tollgate(config([q(a.addr, weight=1), q(b.addr, weight=3)], f'balance: {balance}', workers=1))
    n = 2000
    counts = collections.Counter(names_of(gw.port, n))
    assert None not in counts, counts
    # sequential requests: every server is idle at each pick, so p2c follows the weights too
    assert abs(counts['b'] / n - 0.75) < 0.05, counts


@pytest.mark.parametrize('key,make', [
    ('header:X-User', lambda u: ([('X-User', u)], '/echo')),
    ('cookie:uid', lambda u: ([('Cookie', f'a=1; uid={u}; z=2')], '/echo')),
    ('query:user', lambda u: ([], f'/echo?x=1&user={u}')),
    ('path', lambda u: ([], f'/echo/{u}')),
])
def test_hash_is_sticky_and_spreads(backends, tollgate, key, make):
    bs = backends(names=['a', 'b', 'c'])
    gw = tollgate(config([f'"{x.addr}"' for x in bs], f'balance: hash\nhash_key: "{key}"'))
    seen = {}
    for i in range(40):
        headers, path = make(f'user-{i}')
        got = set(names_of(gw.port, 3, path=path, headers=headers))
        assert len(got) == 1 and None not in got, (i, got)
        seen[i] = got.pop()
    assert len(set(seen.values())) == 3, seen


def test_hash_remaps_only_removed_servers_keys(backends, tollgate):
    bs = backends(names=['a', 'b', 'c', 'd'])
    hdr = lambda i: [('X-User', f'user-{i}')]
    gw = tollgate(config([f'"{x.addr}"' for x in bs], 'balance: hash\nhash_key: header:X-User'))
    before = {i: names_of(gw.port, 1, headers=hdr(i))[0] for i in range(200)}
    gw2 = tollgate(config([f'"{x.addr}"' for x in bs[:3]], 'balance: hash\nhash_key: header:X-User'))
    after = {i: names_of(gw2.port, 1, headers=hdr(i))[0] for i in range(200)}
    moved = [i for i in before if before[i] != after[i]]
    assert all(before[i] == 'd' for i in moved), 'only keys of the removed server move'
    assert 20 <= len(moved) <= 90, len(moved)     # about 1/4 of 200


# ------------------------------------------------------------------- health

HC = 'health_check: {{ path: {path}, interval: 200ms, timeout: 200ms, healthy: 2, unhealthy: 2 }}'


def test_health_check_takes_server_out_and_back(backends, tollgate, tmp_path):
    a, b = backends(names=['a', 'b'])
    gw = tollgate(config([f'"{a.addr}"', f'"{b.addr}"'], HC.format(path='/echo/hc')))
    assert set(names_of(gw.port, 4)) == {'a', 'b'}
    port = b.port
    b.stop()
    t_kill = time.monotonic()
    t_down = log_time(gw, rf'server 127\.0\.0\.1:{port} is down \(2 health check\(s\) failed', timeout=10)
    # 2 failed checks 200 ms apart: at most 2 intervals + a timeout (+ margin for load)
    assert t_down - t_kill <= 0.6 + 2.0, t_down - t_kill
    assert names_of(gw.port, 20) == ['a'] * 20          # no request is lost to the dead server
    b2 = start_backend('b', tmp_path, ['--port', str(port)])
    try:
        t_start = time.monotonic()
        t_up = log_time(gw, rf'server 127\.0\.0\.1:{port} is up \(2 health check\(s\) passed\)', timeout=10)
        assert t_up - t_start <= 0.6 + 2.0, t_up - t_start
        assert set(names_of(gw.port, 10)) == {'a', 'b'}
    finally:
        b2.stop()


def test_health_checks_run_once_per_process(backends, tollgate):
    b, = backends(1)
    gw = tollgate(config([f'"{b.addr}"'], HC.format(path='/echo/hc'), workers=4))
    wait_until(lambda: len(b.log()) >= 2, timeout=10, what='first checks')
    b.reset_log()
    t0 = time.monotonic()
    wait_until(lambda: time.monotonic() - t0 >= 1.0 and len(b.log()) >= 3, timeout=10, what='checks')
    elapsed = time.monotonic() - t0
    hits = [e for e in b.log() if e['target'] == '/echo/hc']
    # one checker for the process: about elapsed / 200 ms, never one per worker (4x)
    assert len(hits) <= elapsed / 0.2 + 2, (len(hits), elapsed)
    heads = {k.lower(): v for k, v in hits[0]['headers']}
    assert heads['user-agent'] == 'tollgate-health-check'


def test_health_check_expect_statuses(backends, tollgate):
    b, = backends(1)
    # /status/204 is not in [200]: the only server goes down; no server → 503
    gw = tollgate(config([f'"{b.addr}"'], 'health_check: { path: /status/204, interval: 100ms, '
                                          'timeout: 100ms, unhealthy: 1, expect: [200, 300-399] }'))
    log_time(gw, r'is down \(1 health check\(s\) failed, last: status 204\)', timeout=10)
    r = http_request(gw.port, 'GET', '/echo')
    assert_gateway_error(r.status, r.header, r.body, 503)


# ------------------------------------------------------------------ outliers

def test_outlier_ejects_and_returns(backends, tollgate, tmp_path):
    a, = backends(names=['a'])
    dead = free_port()
    gw = tollgate(config([f'"{a.addr}"', f'"127.0.0.1:{dead}"'],
                         'outlier: { consecutive_failures: 3, eject: 1s }'))
    codes = []
    while codes.count(502) < 3:
        t_eject = time.monotonic()          # at or before the ejection (made by this request)
        codes.append(http_request(gw.port, 'GET', '/echo').status)
        assert len(codes) < 20, codes
    log_time(gw, rf'server 127\.0\.0\.1:{dead} ejected for 1000 ms after 3 consecutive failures', 5)
    assert names_of(gw.port, 20) == ['a'] * 20           # ejected: no more failures
    back = start_backend('back', tmp_path, ['--port', str(dead)])
    try:
        wait_until(lambda: 'back' in names_of(gw.port, 4), timeout=10, what='the server is tried again')
        t_back = time.monotonic()
        assert t_back - t_eject >= 0.95, t_back - t_eject  # not before `eject` (1 s) is over
        assert t_back - t_eject <= 1.0 + 4.0
        assert re.search(rf'server 127\.0\.0\.1:{dead} returns after its ejection', gw.stderr())
    finally:
        back.stop()


def test_outlier_counts_5xx_answers(status_server, tollgate):
    bad = status_server(500)
    gw = tollgate(config([f'"{bad.addr}"'], 'outlier: { consecutive_failures: 2, eject: 30s }'))
    for _ in range(2):
        assert http_request(gw.port, 'GET', '/x').status == 500
    log_time(gw, rf'server {re.escape(bad.addr)} ejected for 30000 ms after 2 consecutive failures', 5)
    # the only server is ejected: panic mode still uses it rather than failing everything
    assert http_request(gw.port, 'GET', '/x').status == 500


# ---------------------------------------------------------- circuit breaker

def test_circuit_breaker_answers_503_fast(backend, tollgate):
    gw = tollgate(config([f'"{backend.addr}"'], 'circuit_breaker: { max_connections: 2 }'))
    results = []

    def slow():
        results.append(http_request(gw.port, 'GET', '/slow?ms=2500', timeout=20).status)
    ts = [threading.Thread(target=slow) for _ in range(2)]
    for t in ts:
        t.start()
    try:
        wait_until(lambda: len(backend.log()) == 2, timeout=10, what='two slow requests in flight')
        t0 = time.monotonic()
        r = http_request(gw.port, 'GET', '/echo/third')
        doc = assert_gateway_error(r.status, r.header, r.body, 503)
        assert doc['error'] == 'upstream_overloaded'
        assert time.monotonic() - t0 < 2.0          # the slow ones take 2.5 s: not queued
    finally:
        for t in ts:
            t.join(30)
    assert results == [200, 200]
    assert http_request(gw.port, 'GET', '/echo/after').status == 200


# ------------------------------------------------------------------ retries

def test_retry_connect_failure_goes_to_other_server(backend, tollgate):
    dead = free_port()
    gw = tollgate(config([f'"127.0.0.1:{dead}"', f'"{backend.addr}"'],
                         'retries: { attempts: 1, budget: 100% }'))
    assert names_of(gw.port, 10) == ['b1'] * 10
    # a new client connection each time too (several workers)
    for i in range(6):
        assert http_request(gw.port, 'GET', f'/echo/{i}').status == 200


@pytest.mark.parametrize('status', [502, 503])
def test_retry_on_5xx_goes_to_other_server(backend, status_server, tollgate, status):
    bad = status_server(status)
    gw = tollgate(config([f'"{bad.addr}"', f'"{backend.addr}"'],
                         f'retries: {{ attempts: 1, on: [{status}], budget: 100% }}', workers=1))
    assert names_of(gw.port, 10) == ['b1'] * 10
    assert 4 <= bad.hits <= 6, bad.hits          # round robin: every other first try
    assert len(backend.log()) == 10


def test_retry_exhausted_returns_the_last_answer(status_server, tollgate):
    bad1, bad2 = status_server(503), status_server(503)
    gw = tollgate(config([f'"{bad1.addr}"', f'"{bad2.addr}"'],
                         'retries: { attempts: 2, on: [503], budget: 100% }', workers=1))
    r = http_request(gw.port, 'GET', '/x')
    assert r.status == 503 and r.header('x-backend') == 'failing', r
    assert bad1.hits + bad2.hits == 3            # attempts: 2 → at most 3 tries


def test_no_retry_for_post_unless_configured(backend, status_server, tollgate):
    bad = status_server(502)
    servers = [f'"{bad.addr}"', f'"{backend.addr}"']
    gw = tollgate(config(servers, 'retries: { attempts: 1, on: [502], budget: 100% }', workers=1))
    codes = [http_request(gw.port, 'POST', '/echo', body=b'').status for _ in range(10)]
    assert codes.count(502) == bad.hits and bad.hits >= 4, (codes, bad.hits)
    # GET on the same gateway is retried
    assert [http_request(gw.port, 'GET', '/echo').status for _ in range(6)] == [200] * 6
    gw2 = tollgate(config(servers, 'retries: { attempts: 1, on: [502], budget: 100%, non_idempotent: true }',
                          workers=1))
    codes = [http_request(gw2.port, 'POST', '/echo', body=b'').status for _ in range(10)]
    assert codes == [200] * 10, codes


def test_no_retry_after_body_was_sent(backend, status_server, tollgate):
    bad = status_server(503)
    gw = tollgate(config([f'"{bad.addr}"', f'"{backend.addr}"'],
                         'retries: { attempts: 1, on: [503], budget: 100% }', workers=1))
    codes = [http_request(gw.port, 'PUT', '/upload', body=b'x' * 1000).status for _ in range(6)]
    assert sorted(set(codes)) == [200, 503] and codes.count(503) == bad.hits, codes


def test_retry_budget_caps_retries_under_outage(backend, status_server, tollgate):
    bad = status_server(503)
    gw = tollgate(config([f'"{bad.addr}"', f'"{backend.addr}"'],
                         'retries: { attempts: 2, on: [503], budget: 20% }', workers=2))
    n = 200
    with RawConn(gw.port) as c:
        codes = [c.request('GET', '/echo').status for _ in range(n)]
    failed = codes.count(503)
    retried = bad.hits - failed                  # first tries on the bad server that were retried
    # about half the requests need a retry; the budget allows 20% (+ a floor of 3) per 10 s
    assert retried <= 0.2 * n + 3 + 2, (retried, failed)
    assert failed >= 0.2 * n, (retried, failed)
    assert codes.count(200) + failed == n


# ------------------------------------------------------------------- config

@pytest.mark.parametrize('extra,message', [
    ('health_check: { interval: 1s, timeout: 2s }', r'upstreams\.u\.health_check\.timeout: must not exceed interval'),
    ('health_check: { expect: [200-99] }', r'upstreams\.u\.health_check\.expect\[0\]: expected a status'),
    ('health_check: { path: "no-slash" }', r'upstreams\.u\.health_check\.path: expected a request path'),
    ('health_check: { healthy: 0 }', r'upstreams\.u\.health_check\.healthy: must be between 1'),
    ('outlier: { consecutive_failure: 3 }',
     r'upstreams\.u\.outlier\.consecutive_failure: unknown key "consecutive_failure" \(did you mean "consecutive_failures"\?\)'),
    ('circuit_breaker: { max_pending: -1 }', r'upstreams\.u\.circuit_breaker\.max_pending: expected an integer'),
    ('retries: { non_idempotent: maybe }', r'upstreams\.u\.retries\.non_idempotent:'),
])
def test_config_errors(tmp_path, extra, message):
    p = tmp_path / 'bad.yaml'
    p.write_text(f'upstreams:\n  u:\n    servers: ["127.0.0.1:9"]\n    {extra}\n'
                 f'routes:\n  - {{ upstream: u }}\n')
    cp = run_tollgate(['-t', '-c', str(p)])
    assert cp.returncode == 1, cp
    assert re.search(r'bad\.yaml:\d+:\d+: ' + message, cp.stderr + cp.stdout), cp.stderr


# ------------------------------------------------------- what operators see

def test_upstreams_endpoint_shows_health_ejections_and_counters(backend, tollgate):
    dead, admin = free_port(), free_port()
    gw = tollgate(f"""
        server: {{ listen: ["$listen"], workers: 1 }}
        admin: {{ listen: "127.0.0.1:{admin}" }}
        upstreams:
          u:
            servers: ["{backend.addr}", "127.0.0.1:{dead}"]
            outlier: {{ consecutive_failures: 1, eject: 60s }}
          h:
            servers: ["127.0.0.1:{dead}"]
            health_check: {{ path: /, interval: 100ms, timeout: 100ms, unhealthy: 1 }}
        routes:
          - {{ match: {{ path: /h }}, upstream: h }}
          - {{ match: {{ path: / }}, upstream: u }}
        """)
    # one worker: its round robin sends the first two requests to the two servers
    codes = sorted(http_request(gw.port, 'GET', '/echo').status for _ in range(2))
    assert codes == [200, 502], codes
    log_time(gw, rf'upstream h: server 127\.0\.0\.1:{dead} is down', timeout=10)
    doc = http_request(admin, 'GET', '/upstreams').json()
    ups = {u['name']: u for u in doc['upstreams']}
    srv = {s['address']: s for s in ups['u']['servers']}
    assert srv[f'127.0.0.1:{dead}']['health'] == 'ejected', srv
    assert srv[f'127.0.0.1:{dead}']['ejections'] == 1 and srv[f'127.0.0.1:{dead}']['failures'] == 1, srv
    assert srv[backend.addr]['health'] == 'up' and srv[backend.addr]['requests'] == 1, srv
    assert ups['h']['servers'][0]['health'] == 'down', ups['h']
