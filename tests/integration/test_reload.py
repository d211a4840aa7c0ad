"""Hot reload: SIGHUP and POST /reload (docs/operations.md "Reload")."""
import json
import signal
import socket
import threading

from conftest import RawConn, free_port, http_request, port_accepts, wait_until

TOKEN = 'reload-token'


def config(port, admin, route_upstream, upstreams, body='v1', extra_listen=None, workers=2,
           route_name='api'):
    listen = [f'127.0.0.1:{port}'] + ([f'127.0.0.1:{extra_listen}'] if extra_listen else [])
    ups = '\n'.join(f'  {name}: {{ servers: [{", ".join(json.dumps(a) for a in addrs)}] }}'
                    for name, addrs in upstreams.items())
    return f'''
server:
  listen: {json.dumps(listen)}
  workers: {workers}
  access_log: {{ format: off }}
admin: {{ listen: "127.0.0.1:{admin}", token: "{TOKEN}" }}
upstreams:
{ups}
routes:
  - {{ name: {route_name}, match: {{ path: /api }}, upstream: {route_upstream}, rewrite: {{ strip_prefix: /api }} }}
  - {{ name: version, match: {{ path_exact: /version }}, respond: {{ status: 200, body: "{body}" }} }}
'''


def start_gateway(tollgate, backends, workers=2, n=2):
    bs = backends(n)
    admin = free_port()
    ups = {f'u{i + 1}': [b.addr] for i, b in enumerate(bs)}
    gw = tollgate(config('$port', admin, 'u1', ups, workers=workers))
    wait_until(lambda: port_accepts(admin), timeout=10, what='admin listener')
    return gw, admin, bs, ups


def write(gw, text):
    gw.cfg.write_text(text)


def post_reload(admin, timeout=30):
    return http_request(admin, 'POST', '/reload', headers={'Authorization': f'Bearer {TOKEN}'},
                        body=b'', timeout=timeout)


def body_of(port, path):
    r = http_request(port, 'GET', path)
    return r.status, r.body


def metric(admin, line_prefix):
    text = http_request(admin, 'GET', '/metrics').body.decode()
    for line in text.splitlines():
        if line.startswith(line_prefix + ' '):
            return float(line.split()[-1])
    return None


def test_post_reload_answers_when_live_everywhere(tollgate, backends):
    gw, admin, bs, ups = start_gateway(tollgate, backends)
    assert body_of(gw.port, '/version') == (200, b'v1')
    write(gw, config(gw.port, admin, 'u2', ups, body='v2'))
    r = post_reload(admin)
    assert r.status == 200, r
    assert r.json() == {'generation': 2}
    # live on every worker when the answer came: new connections (any worker) see it
    for _ in range(20):
        assert body_of(gw.port, '/version') == (200, b'v2')
        assert http_request(gw.port, 'GET', '/api/x').header('x-backend') == bs[1].name
    assert metric(admin, 'tollgate_config_generation') == 2
    assert metric(admin, 'tollgate_config_reloads_total{result="ok"}') == 1
    assert http_request(admin, 'GET', '/ready').json()['generation'] == 2


def test_sighup_reloads(tollgate, backends):
    gw, admin, bs, ups = start_gateway(tollgate, backends)
    write(gw, config(gw.port, admin, 'u1', ups, body='from-hup'))
    gw.proc.send_signal(signal.SIGHUP)
    wait_until(lambda: body_of(gw.port, '/version') == (200, b'from-hup'), timeout=15,
               what='SIGHUP reload')
    wait_until(lambda: metric(admin, 'tollgate_config_generation') == 2, timeout=10, what='generation 2')
    assert gw.proc.poll() is None


def test_invalid_config_is_refused_and_old_keeps_serving(tollgate, backends):
    gw, admin, bs, ups = start_gateway(tollgate, backends)
    good = config(gw.port, admin, 'u1', ups)
    write(gw, good.replace('upstream: u1', 'upstream: nowhere'))
    r = post_reload(admin)
    assert r.status == 400
    doc = r.json()
    assert doc['error'] == 'invalid_config' and doc['status'] == 400 and doc['request_id']
    assert doc['generation'] == 1
    assert any('routes[0].upstream: no upstream named "nowhere"' in d for d in doc['details']), doc
    assert any(d.startswith(str(gw.cfg) + ':') for d in doc['details']), doc  # file:line:col
    assert body_of(gw.port, '/version') == (200, b'v1')
    assert http_request(gw.port, 'GET', '/api/x').status == 200
    # YAML syntax error through SIGHUP: logged, nothing changes
    write(gw, 'server: [\n')
    gw.proc.send_signal(signal.SIGHUP)
    wait_until(lambda: metric(admin, 'tollgate_config_reloads_total{result="failed"}') == 2, timeout=15,
               what='failed SIGHUP reload')
    assert 'configuration reload failed' in gw.stderr()
    assert body_of(gw.port, '/version') == (200, b'v1')
    # restart-only change: refused with a reason
    write(gw, config(gw.port, admin, 'u1', ups, workers=3))
    r = post_reload(admin)
    assert r.status == 400 and any('server.workers' in d for d in r.json()['details'])
    assert metric(admin, 'tollgate_config_generation') == 1


def test_in_flight_request_finishes_on_its_config(tollgate, backends):
    gw, admin, bs, ups = start_gateway(tollgate, backends)
    result = {}

    def slow():
        r = http_request(gw.port, 'GET', '/api/slow?ms=2500', timeout=30)
        result['r'] = r
    t = threading.Thread(target=slow)
    t.start()
    wait_until(lambda: any(e['target'].startswith('/slow') for e in bs[0].log()), timeout=10,
               what='slow request at the backend')
    write(gw, config(gw.port, admin, 'u2', {'u2': ups['u2']}, body='v2'))  # u1 removed entirely
    r = post_reload(admin)
    assert r.status == 200
    assert http_request(gw.port, 'GET', '/api/x').header('x-backend') == bs[1].name
    t.join(30)
    assert result['r'].status == 200
    assert result['r'].header('x-backend') == bs[0].name  # the old route, the old upstream


def test_listener_added_and_removed(tollgate, backends):
    gw, admin, bs, ups = start_gateway(tollgate, backends)
    extra = free_port()
    assert not port_accepts(extra)
    write(gw, config(gw.port, admin, 'u1', ups, extra_listen=extra))
    assert post_reload(admin).status == 200
    for _ in range(10):  # every worker accepts on it
        assert body_of(extra, '/version') == (200, b'v1')
    with RawConn(gw.port) as kept:  # a connection on a kept listener survives both reloads
        assert kept.request('GET', '/version').status == 200
        write(gw, config(gw.port, admin, 'u1', ups))
        assert post_reload(admin).status == 200
        assert not port_accepts(extra)
        assert kept.request('GET', '/version').status == 200
    # a new address that is taken fails the reload, nothing changes
    blocker = socket.socket()
    blocker.bind(('127.0.0.1', 0))
    blocker.listen(1)
    try:
        write(gw, config(gw.port, admin, 'u1', ups, body='v3', extra_listen=blocker.getsockname()[1]))
        r = post_reload(admin)
        assert r.status == 400 and any('cannot listen' in d for d in r.json()['details']), r
    finally:
        blocker.close()
    assert body_of(gw.port, '/version') == (200, b'v1')


def test_unchanged_upstream_keeps_pool_and_state(tollgate, backends):
    gw, admin, bs, ups = start_gateway(tollgate, backends, workers=1)

    def gateway_conns():  # upstream connections the backend saw, by the gateway's port
        return {e['peer_port'] for e in bs[0].log()}
    with RawConn(gw.port) as c:
        for _ in range(5):
            assert c.request('GET', '/api/x').status == 200
    assert len(gateway_conns()) == 1
    write(gw, config(gw.port, admin, 'u1', ups, body='v2', route_name='api2', workers=1))  # u1 unchanged
    assert post_reload(admin).status == 200
    with RawConn(gw.port) as c:
        for _ in range(5):
            assert c.request('GET', '/api/x').status == 200
    assert len(gateway_conns()) == 1  # the pooled connection was reused
    up = http_request(admin, 'GET', '/upstreams', headers={'Authorization': f'Bearer {TOKEN}'}).json()
    u1 = [u for u in up['upstreams'] if u['name'] == 'u1'][0]
    assert u1['servers'][0]['requests'] == 10  # counters carried over
    # a changed definition starts afresh: its pool is closed, new connections
    ups2 = dict(ups, u1=[bs[0].addr, bs[1].addr])
    write(gw, config(gw.port, admin, 'u1', ups2, body='v3', workers=1))
    assert post_reload(admin).status == 200
    with RawConn(gw.port) as c:
        for _ in range(4):
            assert c.request('GET', '/api/x').status == 200
    assert len(gateway_conns()) == 2


def test_reload_under_load_fails_nothing(tollgate, backends):
    """Keep-alive and new-connection clients hammer the gateway while routes
    and upstreams change several times: no request fails, no kept-alive
    connection is dropped."""
    gw, admin, bs, ups = start_gateway(tollgate, backends, n=3)
    stop = threading.Event()
    stats = {'ok': 0, 'fail': []}
    lock = threading.Lock()

    def keepalive_client():
        try:
            c = RawConn(gw.port, timeout=20)
            while not stop.is_set():
                r = c.request('GET', '/api/k')
                with lock:
                    if r.status == 200 and r.header('connection') != 'close':
                        stats['ok'] += 1
                    else:
                        stats['fail'].append(('ka', r.status, r.header('connection')))
            c.close()
        except Exception as e:  # a dropped connection is a failure
            with lock:
                stats['fail'].append(('ka', repr(e)))

    def new_conn_client():
        while not stop.is_set():
            try:
                r = http_request(gw.port, 'GET', '/api/n', timeout=20)
                with lock:
                    if r.status == 200:
                        stats['ok'] += 1
                    else:
                        stats['fail'].append(('new', r.status))
            except Exception as e:
                with lock:
                    stats['fail'].append(('new', repr(e)))

    threads = [threading.Thread(target=keepalive_client) for _ in range(4)]
    threads += [threading.Thread(target=new_conn_client) for _ in range(3)]
    for t in threads:
        t.start()
    try:
        wait_until(lambda: stats['ok'] > 200, timeout=20, what='load to build up')
        plans = [('u2', {'u1': ups['u1'], 'u2': ups['u2']}),
                 ('u3', {'u3': ups['u3']}),
                 ('u1', {'u1': ups['u1'], 'u3': ups['u3']}),
                 ('u2', {'u2': ups['u2']})]
        for i, (target, ups_now) in enumerate(plans):
            write(gw, config(gw.port, admin, target, ups_now, body=f'v{i + 2}', route_name=f'api{i}'))
            mark = stats['ok']
            r = post_reload(admin)
            assert r.status == 200 and r.json()['generation'] == i + 2, r
            wait_until(lambda: stats['ok'] > mark + 100, timeout=20, what='traffic after reload')
    finally:
        stop.set()
        for t in threads:
            t.join(30)
    assert not stats['fail'], stats['fail'][:10]
    assert stats['ok'] > 600
