"""Rate limiting (docs/rate-limiting.md): GCRA with nginx-style burst, 429 JSON with
Retry-After, IETF RateLimit-Policy / RateLimit fields on every answer of a limited route,
keys (route, client_ip behind trusted_proxies, consumer fallback, header:, query:, jwt:),
the shared bucket of requests without a key value, several limits (strictest wins, no
charge when refused), name: sharing, accuracy against the exact GCRA figure (local with 4
workers; Redis shared by three gateways), and Redis failure: bounded waits, on_error,
reconnect, AUTH, NOSCRIPT reload.

The Redis tests start their own redis-server (Debian package) on a free loopback port."""
import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import time

import pytest

from conftest import RawConn, assert_gateway_error, free_port, http_request, wait_until

REDIS_BIN = shutil.which('redis-server') or '/usr/bin/redis-server'


# ------------------------------------------------------------------ helpers

def rl_config(entries, workers=1, extra_top='', routes_extra=''):
    """One `respond:` route /r (name rl) with the given rate_limit entries (YAML flow list)."""
    return f"""
        server:
          listen: ["$listen"]
          workers: {workers}
          access_log: {{ format: off }}
          trusted_proxies: [127.0.0.1]
        {extra_top}
        routes:
          - name: rl
            match: {{ path: /r }}
            respond: {{ status: 200, body: "ok" }}
            rate_limit: {entries}
          {routes_extra}
        """


@pytest.fixture
def tollgate(tollgate):
    """conftest's factory, returning once the start-up line is logged: the listeners
    accept a little before the signal handlers are installed, and a very short test must
    not send its teardown SIGTERM into that gap."""
    def start(*args, **kwargs):
        gw = tollgate(*args, **kwargs)
        wait_until(lambda: ' started: ' in gw.stderr(), timeout=15, what='the start-up log line')
        return gw
    return start


def get(conn, path='/r', headers=()):
    return conn.request('GET', path, headers)


def parse_items(value):
    """'"a";r=1;t=2, "b";r=0;t=5' -> {'a': {'r': 1, 't': 2}, 'b': {...}}"""
    out = {}
    for item in re.split(r',\s*', value.strip()):
        m = re.fullmatch(r'"((?:[^"\\]|\\.)*)"((?:;[a-z]+=\d+)*)', item)
        assert m, f'not an sf-list item: {item!r} in {value!r}'
        params = dict((k, int(v)) for k, v in re.findall(r';([a-z]+)=(\d+)', m.group(2)))
        out[m.group(1)] = params
    return out


def gcra_exact(times, rate_per_s, burst):
    """The exact number GCRA accepts for requests at `times` (seconds, sorted)."""
    T = 1.0 / rate_per_s
    tau = burst * T
    tat = None
    n = 0
    for t in times:
        eff = t if tat is None or tat < t else tat
        if eff - t <= tau + 1e-12:
            tat = eff + T
            n += 1
    return n


def blast(ports, rate, seconds, nconn, path='/r'):
    """Sends `rate` requests/s for `seconds` over nconn keep-alive connections spread over
    `ports`; returns sorted [(send_time, status, latency)]."""
    out = []
    lock = threading.Lock()
    t0 = time.monotonic() + 0.2
    per = rate / nconn
    errors = []

    def run(k):
        port = ports[k % len(ports)]
        mine = []
        try:
            with RawConn(port, timeout=20) as c:
                i = 0
                while True:
                    due = t0 + k / rate + i / per
                    if due >= t0 + seconds:
                        break
                    now = time.monotonic()
                    if due > now:
                        time.sleep(due - now)
                    ts = time.monotonic()
                    r = c.request('GET', path)
                    mine.append((ts, r.status, time.monotonic() - ts))
                    i += 1
        except Exception as e:  # reported below: a failed client must fail the test
            errors.append(repr(e))
        with lock:
            out.extend(mine)
    threads = [threading.Thread(target=run, args=(k,)) for k in range(nconn)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=seconds + 60)
    assert not errors, errors[:3]
    out.sort()
    return out


# -------------------------------------------------------------------- redis

def resp_cmd(port, *args, password=None, timeout=5):
    """One RESP command on a fresh connection; returns the decoded reply (errors as
    ('ERR', text))."""
    def enc(parts):
        b = f'*{len(parts)}\r\n'.encode()
        for p in parts:
            p = p if isinstance(p, bytes) else str(p).encode()
            b += f'${len(p)}\r\n'.encode() + p + b'\r\n'
        return b
    with socket.create_connection(('127.0.0.1', port), timeout=timeout) as s:
        f = s.makefile('rb')
        if password:
            s.sendall(enc(['AUTH', password]))
            _read_resp(f)
        s.sendall(enc(list(args)))
        return _read_resp(f)


def _read_resp(f):
    line = f.readline()
    if not line:
        raise EOFError('redis closed')
    kind, rest = line[:1], line[1:-2]
    if kind == b'+':
        return rest.decode()
    if kind == b'-':
        return ('ERR', rest.decode())
    if kind == b':':
        return int(rest)
    if kind == b'$':
        n = int(rest)
        if n < 0:
            return None
        data = f.read(n + 2)[:-2]
        return data.decode(errors='replace')
    if kind == b'*':
        n = int(rest)
        return None if n < 0 else [_read_resp(f) for _ in range(n)]
    raise AssertionError(f'bad RESP line {line!r}')


class Redis:
    def __init__(self, tmp_path, password=None):
        self.port = free_port()
        self.password = password
        self.tmp = tmp_path
        self.proc = None
        self.start()

    @property
    def addr(self):
        return f'127.0.0.1:{self.port}'

    def start(self):
        args = [REDIS_BIN, '--port', str(self.port), '--bind', '127.0.0.1', '--save', '',
                '--appendonly', 'no', '--dir', str(self.tmp), '--protected-mode', 'no']
        if self.password:
            args += ['--requirepass', self.password]
        log = open(self.tmp / f'redis-{self.port}.log', 'ab')
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        log.close()

        def ready():
            if self.proc.poll() is not None:
                raise AssertionError(f'redis-server exited: {self.proc.returncode}')
            try:
                return resp_cmd(self.port, 'PING', password=self.password, timeout=1) == 'PONG'
            except OSError:
                return False
        wait_until(ready, timeout=15, what='redis-server to answer PING')

    def cmd(self, *args):
        return resp_cmd(self.port, *args, password=self.password)

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def stop_signal(self, sig):
        os.kill(self.proc.pid, sig)


@pytest.fixture
def redis_server(tmp_path):
    if not os.access(REDIS_BIN, os.X_OK):
        pytest.fail('redis-server not installed (scripts/deps.sh installs it)', pytrace=False)
    servers = []

    def start(password=None):
        r = Redis(tmp_path, password)
        servers.append(r)
        return r
    yield start
    for r in servers:
        if r.proc.poll() is None:
            try:
                os.kill(r.proc.pid, signal.SIGCONT)
            except OSError:
                pass
        r.kill()


def redis_top(r, timeout='200ms', on_error='allow', password=None):
    pw = f', password: "{password}"' if password else ''
    return f'redis: {{ address: "{r.addr}", timeout: {timeout}, on_error: {on_error}{pw} }}'


# ------------------------------------------------------- semantics and headers

def test_burst_then_limited_with_headers(tollgate):
    gw = tollgate(rl_config('[ { key: route, rate: 1/m, burst: 2 } ]'))
    with RawConn(gw.port) as c:
        seen = []
        for _ in range(3):
            r = get(c)
            assert r.status == 200, r
            assert parse_items(r.header('ratelimit-policy')) == {'rl.0': {'q': 1, 'w': 60}}
            seen.append(parse_items(r.header('ratelimit'))['rl.0'])
        assert [s['r'] for s in seen] == [2, 1, 0]
        # t: until full while requests remain, else until the next one is allowed
        assert 0 < seen[0]['t'] <= 60 and 60 < seen[1]['t'] <= 120 and 0 < seen[2]['t'] <= 60, seen
        r = get(c)
        doc = assert_gateway_error(r.status, r.header, r.body, 429)
        assert doc['error'] == 'rate_limited'
        ra = int(r.header('retry-after'))
        assert 1 <= ra <= 60, ra
        item = parse_items(r.header('ratelimit'))['rl.0']
        assert item['r'] == 0 and 1 <= item['t'] <= 60
        assert parse_items(r.header('ratelimit-policy')) == {'rl.0': {'q': 1, 'w': 60}}


def test_refill_at_rate_and_quota_units(tollgate):
    gw = tollgate(rl_config('[ { key: route, rate: 1/s, burst: 0 } ]', routes_extra="""
          - name: quota
            match: { path: /q }
            respond: { status: 200 }
            rate_limit: [ { key: route, rate: 86400/d, burst: 4 } ]"""))
    with RawConn(gw.port) as c:
        assert get(c).status == 200
        assert get(c).status == 429          # a second has not passed (unless the machine stalls)
        wait_until(lambda: get(c).status == 200, timeout=5, what='a token after 1 s')
        for _ in range(5):
            r = get(c, '/q')
            assert r.status == 200, r
        assert parse_items(r.header('ratelimit-policy')) == {'quota.0': {'q': 86400, 'w': 86400}}
        r = get(c, '/q')
        assert r.status == 429
        assert int(r.header('retry-after')) == 1


def test_keys_and_shared_bucket_for_missing_values(tollgate):
    gw = tollgate(rl_config("""[ { key: route, rate: 1/m, burst: 1000 } ]""", routes_extra="""
          - { name: h, match: { path: /h }, respond: { status: 200 }, rate_limit: [ { key: "header:X-Tenant", rate: 1/m } ] }
          - { name: q, match: { path: /q }, respond: { status: 200 }, rate_limit: [ { key: "query:k", rate: 1/m } ] }
          - { name: ip, match: { path: /ip }, respond: { status: 200 }, rate_limit: [ { key: client_ip, rate: 1/m } ] }
          - { name: c, match: { path: /c }, respond: { status: 200 }, rate_limit: [ { key: consumer, rate: 1/m } ] }
          - { name: j, match: { path: /j }, respond: { status: 200 }, rate_limit: [ { key: "jwt:sub", rate: 1/m } ] }"""))
    with RawConn(gw.port) as c:
        st = lambda path, hdrs=(): get(c, path, hdrs).status  # noqa: E731
        # header: one bucket per value; requests without it share one
        assert st('/h', {'X-Tenant': 'a'}) == 200
        assert st('/h', {'X-Tenant': 'a'}) == 429
        assert st('/h', {'X-Tenant': 'b'}) == 200
        assert st('/h') == 200
        assert st('/h') == 429
        assert st('/h', {'X-Tenant': ''}) == 429  # empty counts as missing
        # query: decoded parameter values
        assert st('/q?k=x') == 200
        assert st('/q?a=1&k=%78') == 429         # %78 is "x"
        assert st('/q?k=y') == 200
        assert st('/q?other=1') == 200
        assert st('/q') == 429
        # client_ip: the address behind a trusted proxy
        assert st('/ip', {'X-Forwarded-For': '192.0.2.1'}) == 200
        assert st('/ip', {'X-Forwarded-For': '192.0.2.1'}) == 429
        assert st('/ip', {'X-Forwarded-For': '192.0.2.2'}) == 200
        # consumer: anonymous requests count per client address
        assert st('/c', {'X-Forwarded-For': '192.0.2.1'}) == 200
        assert st('/c', {'X-Forwarded-For': '192.0.2.1'}) == 429
        assert st('/c', {'X-Forwarded-For': '192.0.2.9'}) == 200
        # jwt: without a verified token every request shares the missing-value bucket
        assert st('/j', {'X-Forwarded-For': '192.0.2.1'}) == 200
        assert st('/j', {'X-Forwarded-For': '192.0.2.2'}) == 429


def test_several_limits_strictest_wins_refused_costs_nothing(tollgate):
    gw = tollgate(rl_config('[ { key: route, rate: 1/m, burst: 3 }, '
                            '{ key: "header:X-User", rate: 1/m, name: per-user } ]'))
    with RawConn(gw.port) as c:
        r = get(c, headers={'X-User': 'a'})
        assert r.status == 200
        items = parse_items(r.header('ratelimit'))
        assert items == {'rl.0': {'r': 3, 't': items['rl.0']['t']}, 'per-user': {'r': 0, 't': items['per-user']['t']}}
        assert parse_items(r.header('ratelimit-policy')) == {'rl.0': {'q': 1, 'w': 60},
                                                             'per-user': {'q': 1, 'w': 60}}
        for _ in range(3):  # refused by per-user: the route bucket is not charged
            r = get(c, headers={'X-User': 'a'})
            assert r.status == 429
            assert parse_items(r.header('ratelimit'))['rl.0']['r'] == 3
        for u in 'bcd':
            assert get(c, headers={'X-User': u}).status == 200
        r = get(c, headers={'X-User': 'e'})
        assert r.status == 429                    # the route limit is spent now
        items = parse_items(r.header('ratelimit'))
        assert items['rl.0']['r'] == 0 and items['per-user']['r'] == 1


def test_name_shares_buckets_across_routes(tollgate):
    gw = tollgate(rl_config('[ { key: route, rate: 1/m, burst: 1, name: shared } ]', routes_extra="""
          - { name: other, match: { path: /o }, respond: { status: 200 }, rate_limit: [ { key: route, rate: 1/m, burst: 1, name: shared } ] }
          - { name: alone, match: { path: /a }, respond: { status: 200 }, rate_limit: [ { key: route, rate: 1/m, burst: 1 } ] }"""))
    with RawConn(gw.port) as c:
        assert get(c, '/r').status == 200
        r = get(c, '/o')
        assert r.status == 200 and parse_items(r.header('ratelimit'))['shared']['r'] == 0
        assert get(c, '/r').status == 429
        assert get(c, '/o').status == 429
        assert get(c, '/a').status == 200     # an unnamed entry is its route's own bucket
        assert get(c, '/a').status == 200


def test_headers_on_proxied_responses(tollgate, backend):
    gw = tollgate(f"""
        server: {{ listen: ["$listen"] }}
        upstreams: {{ u: {{ servers: ["{backend.addr}"] }} }}
        routes:
          - name: api
            match: {{ path: / }}
            upstream: u
            rate_limit: [ {{ key: client_ip, rate: 10/s, burst: 4 }} ]
        """)
    with RawConn(gw.port) as c:
        r = c.request('GET', '/echo')
        assert r.status == 200
        assert parse_items(r.header('ratelimit-policy')) == {'api.0': {'q': 10, 'w': 1}}
        assert parse_items(r.header('ratelimit'))['api.0']['r'] == 4


def metrics(port):
    """name{labels} -> value from the admin /metrics text."""
    res = http_request(port, 'GET', '/metrics')
    assert res.status == 200, res
    out = {}
    for line in res.body.decode().splitlines():
        if line and not line.startswith('#'):
            k, _, v = line.rpartition(' ')
            out[k] = float(v)
    return out


def test_decision_metrics(tollgate):
    admin = free_port()
    gw = tollgate(rl_config('[ { key: route, rate: 1/m } ]',
                            extra_top=f'admin: {{ listen: "127.0.0.1:{admin}" }}'))
    with RawConn(gw.port) as c:
        assert get(c).status == 200
        assert get(c).status == 429
        assert get(c).status == 429
    m = metrics(admin)
    assert m['tollgate_ratelimit_decisions_total{route="rl",result="allowed"}'] == 1, m
    assert m['tollgate_ratelimit_decisions_total{route="rl",result="limited"}'] == 2, m
    assert 'tollgate_redis_connections_up' in m and 'tollgate_redis_errors_total{kind="timeout"}' in m


def test_config_errors_name_the_place(tmp_path):
    from conftest import run_tollgate
    p = tmp_path / 'bad.yaml'
    p.write_text('routes:\n  - respond: { status: 200 }\n    rate_limit: [ { key: route, rate: 10/x } ]\n')
    cp = run_tollgate(['-t', '-c', str(p)])
    assert cp.returncode == 1
    assert re.search(r'bad\.yaml:3:\d+: routes\[0\]\.rate_limit\[0\]\.rate: expected a rate', cp.stderr), cp.stderr


# ------------------------------------------------------------------ accuracy

def test_accuracy_local_four_workers(tollgate):
    """200/s burst 20, clients offering 1000/s for 10 s over 4 workers: the accepted count
    is within 2% of the exact GCRA figure for the actual send times."""
    gw = tollgate(rl_config('[ { key: route, rate: 200/s, burst: 20 } ]', workers=4))
    res = blast([gw.port], rate=1000, seconds=10, nconn=8)
    assert len(res) >= 9000, len(res)           # the clients kept close to the offered rate
    accepted = sum(1 for _, s, _ in res if s == 200)
    assert all(s in (200, 429) for _, s, _ in res)
    exact = gcra_exact([t for t, _, _ in res], 200, 20)
    print(f'local: sent {len(res)} accepted {accepted} exact {exact}')
    assert abs(accepted - exact) <= 0.02 * exact, (accepted, exact)


def test_accuracy_redis_three_gateways(tollgate, redis_server):
    r = redis_server()
    cfg = rl_config('[ { key: route, rate: 200/s, burst: 20, store: redis } ]', workers=1,
                    extra_top=redis_top(r, timeout='5s'))  # never on_error: this is about accuracy
    gws = [tollgate(cfg) for _ in range(3)]
    res = blast([g.port for g in gws], rate=1000, seconds=6, nconn=9)
    assert len(res) >= 5000, len(res)
    assert all(s in (200, 429) for _, s, _ in res), {s for _, s, _ in res}
    accepted = sum(1 for _, s, _ in res if s == 200)
    exact = gcra_exact([t for t, _, _ in res], 200, 20)
    print(f'redis: sent {len(res)} accepted {accepted} exact {exact}')
    assert abs(accepted - exact) <= 0.02 * exact, (accepted, exact)


# --------------------------------------------------------------------- redis

def test_redis_limits_auth_and_noscript_reload(tollgate, redis_server):
    r = redis_server(password='s3cret')
    gw = tollgate(rl_config('[ { key: "header:X-K", rate: 1/m, burst: 1, store: redis } ]',
                            extra_top=redis_top(r, timeout='2s', on_error='deny', password='s3cret')))
    with RawConn(gw.port) as c:
        assert get(c, headers={'X-K': 'a'}).status == 200
        r2 = get(c, headers={'X-K': 'a'})
        assert r2.status == 200 and parse_items(r2.header('ratelimit'))['rl.0']['r'] == 0
        assert get(c, headers={'X-K': 'a'}).status == 429
        keys = r.cmd('KEYS', 'tg:rl:*')
        assert len(keys) == 1 and keys[0].endswith(':va'), keys
        assert r.cmd('SCRIPT', 'FLUSH') == 'OK'
        assert get(c, headers={'X-K': 'a'}).status == 429     # reloaded on NOSCRIPT, state kept
        assert get(c, headers={'X-K': 'b'}).status == 200


def test_redis_wrong_password_follows_on_error(tollgate, redis_server):
    r = redis_server(password='right')
    admin = free_port()
    gw = tollgate(rl_config('[ { key: route, rate: 1/m, store: redis } ]',
                            extra_top=redis_top(r, on_error='deny', password='wrong') +
                            f'\n        admin: {{ listen: "127.0.0.1:{admin}" }}'))
    with RawConn(gw.port) as c:
        res = get(c)
        doc = assert_gateway_error(res.status, res.header, res.body, 503)
        assert doc['error'] == 'rate_limit_unavailable'
    wait_until(lambda: 'redis: down' in gw.stderr(), timeout=10, what='the down log line')
    assert 'AUTH refused' in gw.stderr()
    m = metrics(admin)
    assert m['tollgate_ratelimit_decisions_total{route="rl",result="error_denied"}'] >= 1, m
    assert m['tollgate_redis_connections_up'] == 0


def timed_get(c, headers=()):
    t = time.monotonic()
    res = get(c, headers=headers)
    return res, time.monotonic() - t


@pytest.mark.parametrize('on_error', ['deny', 'allow'])
def test_redis_killed_mid_test(tollgate, redis_server, on_error):
    r = redis_server()
    timeout = 0.2
    gw = tollgate(rl_config('[ { key: "header:X-K", rate: 1/m, burst: 0, store: redis } ]',
                            extra_top=redis_top(r, timeout='200ms', on_error=on_error)))
    failed_status = 503 if on_error == 'deny' else 200
    margin = 1.0   # a loaded 2-core machine; the bound itself is the 200 ms timeout
    with RawConn(gw.port) as c:
        assert get(c, headers={'X-K': 'a'}).status == 200
        assert get(c, headers={'X-K': 'a'}).status == 429
        # slow: a stopped Redis answers nothing; each request waits about the timeout
        r.stop_signal(signal.SIGSTOP)
        for i in range(3):
            res, took = timed_get(c, {'X-K': f's{i}'})
            assert res.status == failed_status, res
            assert took <= timeout + margin, took
            assert took >= timeout * 0.9, took   # it did wait for Redis
        r.stop_signal(signal.SIGCONT)
        wait_until(lambda: get(c, headers={'X-K': 'a'}).status == 429, timeout=10,
                   what='limits back after SIGCONT')
        # down: killed; answers are immediate and follow on_error
        r.kill()
        for i in range(20):
            res, took = timed_get(c, {'X-K': 'a'})
            assert res.status == failed_status, res
            assert took <= timeout + margin, took
            if on_error == 'deny':
                assert res.json()['error'] == 'rate_limit_unavailable'
        wait_until(lambda: 'redis: down' in gw.stderr(), timeout=10, what='the down log line')
        # back: the gateway reconnects within a second; limits resume (the state was lost)
        r.start()
        t_back = time.monotonic()
        n = iter(range(10 ** 6))

        def limited_again():
            key = {'X-K': f'after-{next(n)}'}
            return get(c, headers=key).status == 200 and get(c, headers=key).status == 429
        wait_until(limited_again, timeout=10, what='limits to resume after Redis returned')
        assert time.monotonic() - t_back < 1.0 + margin * 3
    wait_until(lambda: gw.stderr().count('redis: up') >= 2, timeout=10, what='the up log lines')


# -------------------------------------------------------------------- reload

def reload(gw, text):
    before = gw.stderr().count('configuration reloaded')
    gw.cfg.write_text(text)
    gw.proc.send_signal(signal.SIGHUP)
    wait_until(lambda: gw.stderr().count('configuration reloaded') > before, timeout=15,
               what='the reload to go live')


def test_reload_keeps_local_buckets_and_moves_redis(tollgate, redis_server):
    a, b = redis_server(), redis_server()
    entries = ('[ { key: "header:X-K", rate: 1/m, store: redis }, '
               '{ key: "header:X-L", rate: 1/m, name: local-one } ]')
    cfg_a = rl_config(entries, extra_top=redis_top(a, timeout='2s', on_error='deny'))
    gw = tollgate(cfg_a)
    with RawConn(gw.port) as c:
        assert get(c, headers={'X-K': 'k1', 'X-L': 'l1'}).status == 200
        assert get(c, headers={'X-K': 'k1', 'X-L': 'l2'}).status == 429   # Redis bucket spent
        assert get(c, headers={'X-K': 'k2', 'X-L': 'l1'}).status == 429   # local bucket spent
    text = gw.cfg.read_text().replace(a.addr, b.addr)
    assert b.addr in text
    reload(gw, text)
    with RawConn(gw.port) as c:
        assert get(c, headers={'X-K': 'k1', 'X-L': 'l3'}).status == 200   # new Redis: fresh
        assert get(c, headers={'X-K': 'k3', 'X-L': 'l1'}).status == 429   # local state survived
    assert len(a.cmd('KEYS', 'tg:rl:*')) == 1 and len(b.cmd('KEYS', 'tg:rl:*')) == 1
