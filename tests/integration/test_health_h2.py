"""Active health checks against HTTP/2 upstreams (src/upstream/health_h2.c): h2c with
prior knowledge and h2 over TLS (h2_backend.py, python3-h2) judged by :status like the
HTTP/1.1 check, and gRPC servers (python3-grpcio) checked with the standard
grpc.health.v1.Health/Check call, implemented here with a generic handler (no
grpc_health package in Debian's python3-grpcio)."""
import concurrent.futures
import re
import threading

import grpc
import pytest

from conftest import free_port, http_request, run_tollgate, wait_until
from test_upstream_h2 import h2_backends, make_ca, start_h2_backend  # noqa: F401 (fixture)

# HealthCheckResponse { status: SERVING (1) | NOT_SERVING (2) } in protobuf wire format
SERVING, NOT_SERVING = b'\x08\x01', b'\x08\x02'


def log_seen(gw, pattern, timeout=15):
    wait_until(lambda: re.search(pattern, gw.stderr()), timeout=timeout, interval=0.02,
               what=f'log line {pattern!r}')


def upstreams(admin):
    doc = http_request(admin, 'GET', '/upstreams').json()
    return {u['name']: {s['address']: s for s in u['servers']} for u in doc['upstreams']}


def hc(path='/status/200', unhealthy=2, healthy=2, extra=''):
    return (f'health_check: {{ path: {path}, interval: 500ms, timeout: 500ms, '
            f'healthy: {healthy}, unhealthy: {unhealthy}{extra} }}')


# ------------------------------------------------------------------ h2c / h2

def test_h2c_server_killed_goes_down_and_comes_back(tollgate, h2_backends):
    a, b = h2_backends(), h2_backends()
    admin = free_port()
    gw = tollgate(f"""
        server: {{ listen: ["$listen"], workers: 2 }}
        admin: {{ listen: "127.0.0.1:{admin}" }}
        upstreams:
          app:
            servers: ["{a.addr}", "{b.addr}"]
            protocol: h2c
            {hc()}
        routes:
          - upstream: app
        """)
    port = b.port
    b.proc.kill()
    b.proc.wait(timeout=10)
    log_seen(gw, rf'upstream app: server 127\.0\.0\.1:{port} is down \(2 health check\(s\) failed')
    # every request goes to the live server (no retries configured: one 502 would show)
    codes = [http_request(gw.port, 'GET', '/echo').status for _ in range(20)]
    assert codes == [200] * 20, codes
    srv = upstreams(admin)['app']
    assert srv[a.addr]['health'] == 'up' and srv[b.addr]['health'] == 'down', srv
    assert srv[b.addr]['requests'] == 0 and srv[a.addr]['requests'] >= 20, srv
    b2 = start_h2_backend(gw.cfg.parent, '--port', str(port))
    try:
        log_seen(gw, rf'server 127\.0\.0\.1:{port} is up \(2 health check\(s\) passed\)')
        assert upstreams(admin)['app'][b.addr]['health'] == 'up'
        codes = [http_request(gw.port, 'GET', '/echo').status for _ in range(10)]
        assert codes == [200] * 10, codes
        wait_until(lambda: upstreams(admin)['app'][b.addr]['requests'] > 0, timeout=10,
                   what='requests to the server that came back')
    finally:
        b2.proc.kill()
        b2.proc.wait(timeout=10)
    assert f'server {a.addr} is down' not in gw.stderr()


def test_h2c_unexpected_status_takes_server_out(tollgate, h2_backends):
    b = h2_backends()
    gw = tollgate(f"""
        server: {{ listen: ["$listen"], workers: 1 }}
        upstreams:
          bad: {{ servers: ["{b.addr}"], protocol: h2c, {hc('/status/503', unhealthy=1)} }}
          good: {{ servers: ["{b.addr}"], protocol: h2c, {hc('/status/503', unhealthy=1, extra=', expect: [503]')} }}
        routes:
          - {{ match: {{ path: /good }}, upstream: good }}
          - {{ upstream: bad }}
        """)
    log_seen(gw, r'upstream bad: server \S+ is down \(1 health check\(s\) failed, last: status 503\)')
    assert http_request(gw.port, 'GET', '/echo').status == 503     # no server left
    assert http_request(gw.port, 'GET', '/good/echo').status == 404  # routed, h2_backend's 404
    assert 'upstream good: server' not in gw.stderr()


def test_h2_over_tls_checks(tollgate, h2_backends, tmp_path):
    ca, crt, key = make_ca(tmp_path)
    b = h2_backends('--cert', str(crt), '--key', str(key))
    noalpn = h2_backends('--cert', str(crt), '--key', str(key), '--alpn', 'http/1.1')
    tls = f'tls: {{ ca: "{ca}" }}'
    gw = tollgate(f"""
        server: {{ listen: ["$listen"], workers: 1 }}
        upstreams:
          bad: {{ servers: ["{b.addr}"], protocol: h2, {tls}, {hc('/status/200', unhealthy=3, extra=', expect: [204]')} }}
          good: {{ servers: ["{b.addr}"], protocol: h2, {tls}, {hc('/status/204', unhealthy=1)} }}
          alpn: {{ servers: ["{noalpn.addr}"], protocol: h2, {tls}, {hc(unhealthy=1)} }}
        routes:
          - {{ match: {{ path: /bad }}, upstream: bad }}
          - {{ match: {{ path: /alpn }}, upstream: alpn }}
          - {{ upstream: good }}
        """)
    # three failed checks of `bad` mean `good` (same interval, one failure enough) was checked too
    log_seen(gw, r'upstream bad: server \S+ is down \(3 health check\(s\) failed, last: status 200\)')
    log_seen(gw, r'upstream alpn: server \S+ is down \(1 health check\(s\) failed, last: '
                 r'server did not select h2 \(ALPN\)\)')
    assert 'upstream good: server' not in gw.stderr()
    r = http_request(gw.port, 'GET', '/echo')
    assert r.status == 200 and b'"scheme": "https"' in r.body, r.body


# ---------------------------------------------------------------------- gRPC

class GrpcServer:
    """A gRPC server answering test.Svc/Unary with its name and, unless
    `health` is None, grpc.health.v1.Health/Check with the current status."""

    def __init__(self, name, health=SERVING):
        self.name, self.health = name, health
        self.checks = []
        self.services = {}   # raw HealthCheckRequest -> status, for named services
        self.lock = threading.Lock()
        handlers = [grpc.method_handlers_generic_handler('test.Svc', {
            'Unary': grpc.unary_unary_rpc_method_handler(lambda req, ctx: self.name.encode())})]
        if health is not None:
            handlers.append(grpc.method_handlers_generic_handler('grpc.health.v1.Health', {
                'Check': grpc.unary_unary_rpc_method_handler(self._check)}))
        self.srv = grpc.server(concurrent.futures.ThreadPoolExecutor(4))
        self.srv.add_generic_rpc_handlers(handlers)
        self.port = self.srv.add_insecure_port('127.0.0.1:0')
        self.srv.start()

    def _check(self, req, ctx):
        with self.lock:
            self.checks.append(req)
            return self.services.get(req, self.health)

    @property
    def addr(self):
        return f'127.0.0.1:{self.port}'


@pytest.fixture
def grpc_servers():
    started = []

    def start(name, health=SERVING):
        s = GrpcServer(name, health)
        started.append(s)
        return s
    yield start
    for s in started:
        s.srv.stop(0)


def grpc_cfg(servers, admin, extra=''):
    addrs = ', '.join(f'"{s.addr}"' for s in servers)
    return f"""
        server: {{ listen: ["$listen"], workers: 1 }}
        admin: {{ listen: "127.0.0.1:{admin}" }}
        upstreams:
          g:
            servers: [{addrs}]
            protocol: grpc
            {hc(extra=extra)}
        routes:
          - {{ match: {{ path: /test.Svc }}, upstream: g }}
        """


def test_grpc_health_service_drives_membership(tollgate, grpc_servers):
    a, b = grpc_servers('a'), grpc_servers('b')
    admin = free_port()
    gw = tollgate(grpc_cfg([a, b], admin))
    wait_until(lambda: len(b.checks) >= 3, timeout=15, what='health checks of b')
    assert set(b.checks) == {b''}                  # HealthCheckRequest { service: "" }
    assert 'is down' not in gw.stderr()
    with grpc.insecure_channel(gw.addr) as ch:
        call = ch.unary_unary('/test.Svc/Unary')
        assert {call(b'x', timeout=20) for _ in range(6)} == {b'a', b'b'}
        b.health = NOT_SERVING
        log_seen(gw, rf'upstream g: server {b.addr} is down \(2 health check\(s\) failed, '
                     r'last: NOT_SERVING\)')
        assert [call(b'x', timeout=20) for _ in range(10)] == [b'a'] * 10
        assert upstreams(admin)['g'][b.addr]['health'] == 'down'
        b.health = SERVING
        log_seen(gw, rf'server {b.addr} is up \(2 health check\(s\) passed\)')
        assert b'b' in {call(b'x', timeout=20) for _ in range(6)}
    assert f'server {a.addr} is down' not in gw.stderr()


def test_grpc_server_without_health_service_or_killed_goes_down(tollgate, grpc_servers):
    a, nohealth, dead = grpc_servers('a'), grpc_servers('n', health=None), grpc_servers('d')
    gw = tollgate(grpc_cfg([a, nohealth, dead], free_port()))
    dead.srv.stop(0)
    # grpc-status 12 UNIMPLEMENTED: the service does not exist there
    log_seen(gw, rf'server {nohealth.addr} is down \(2 health check\(s\) failed, last: grpc-status 12\)')
    log_seen(gw, rf'server {dead.addr} is down \(2 health check\(s\) failed')
    with grpc.insecure_channel(gw.addr) as ch:
        got = [ch.unary_unary('/test.Svc/Unary')(b'x', timeout=20) for _ in range(9)]
    assert got == [b'a'] * 9, got
    assert f'server {a.addr} is down' not in gw.stderr()


def test_grpc_health_check_asks_for_the_configured_service(tollgate, grpc_servers):
    # HealthCheckRequest { service: "pkg.Orders" }: field 1, wire type 2, length 10
    orders = b'\x0a\x0apkg.Orders'
    a, b = grpc_servers('a'), grpc_servers('b')
    a.services[orders] = SERVING
    b.services[orders] = NOT_SERVING   # the server is up, that service is not
    gw = tollgate(grpc_cfg([a, b], free_port(), extra=', service: pkg.Orders'))
    log_seen(gw, rf'upstream g: server {b.addr} is down \(2 health check\(s\) failed, '
                 r'last: NOT_SERVING\)')
    assert set(a.checks) == {orders} and set(b.checks) == {orders}, (a.checks, b.checks)
    with grpc.insecure_channel(gw.addr) as ch:
        got = [ch.unary_unary('/test.Svc/Unary')(b'x', timeout=20) for _ in range(6)]
    assert got == [b'a'] * 6, got
    assert f'server {a.addr} is down' not in gw.stderr()


@pytest.mark.parametrize('up, service, message', [
    ('protocol: h2c', 'pkg.Orders', 'service names the gRPC health service: it needs protocol: grpc'),
    ('protocol: grpc', '"pkg Orders"', 'expected a gRPC service name'),
    ('protocol: grpc', 'x' * 128, 'expected a gRPC service name'),
])
def test_grpc_health_service_config_errors(tmp_path, up, service, message):
    cfgp = tmp_path / 't.yaml'
    cfgp.write_text('upstreams:\n'
                    f'  g:\n    servers: ["127.0.0.1:1"]\n    {up}\n'
                    f'    health_check:\n      service: {service}\n'
                    'routes:\n  - { upstream: g }\n')
    r = run_tollgate(['-t', '-c', str(cfgp)])
    assert r.returncode == 1, r.stderr
    assert f'{cfgp}:6:16' in r.stderr and 'upstreams.g.health_check.service' in r.stderr, r.stderr
    assert message in r.stderr, r.stderr


def test_health_check_on_http2_upstream_is_accepted(tmp_path):
    cfgp = tmp_path / 't.yaml'
    cfgp.write_text('upstreams:\n  g: { servers: ["127.0.0.1:1"], protocol: grpc, health_check: {} }\n'
                    '  h: { servers: ["127.0.0.1:1"], protocol: h2c, health_check: { path: /hz } }\n'
                    'routes:\n  - { upstream: g }\n')
    r = run_tollgate(['-t', '-c', str(cfgp)])
    assert r.returncode == 0, r.stderr
