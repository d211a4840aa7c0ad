"""The admin API: listener, endpoints, bearer token, error shapes (docs/operations.md)."""
import json
import socket

from conftest import (RawConn, assert_gateway_error, free_port, http_request, port_accepts,
                      wait_until)

TOKEN = 's3cr3t-admin-token'

CFG = '''
server:
  listen: "$listen"
  workers: 2
  access_log: { format: off }
admin:
  listen: 127.0.0.1:$admin
  $token_line
upstreams:
  app:
    servers: ["$b1", { address: "$b2", weight: 3, backup: true }]
routes:
  - name: api
    match: { path: /api }
    upstream: app
    request_headers: { set: { X-Api-Token: hidden-value } }
'''


def start(tollgate, backends, token=TOKEN):
    b1, b2 = backends(2)
    admin = free_port()
    gw = tollgate(CFG, admin=admin, b1=b1.addr, b2=b2.addr,
                  token_line=f'token: "{token}"' if token else '')
    wait_until(lambda: port_accepts(admin), timeout=10, what='admin listener')
    return gw, admin, b1, b2


def auth(token=TOKEN):
    return {'Authorization': f'Bearer {token}'}


def test_open_endpoints_need_no_token(tollgate, backends):
    gw, admin, _, _ = start(tollgate, backends)
    r = http_request(admin, 'GET', '/health')
    assert r.status == 200 and r.json() == {'status': 'ok'}
    r = http_request(admin, 'GET', '/ready')
    assert r.status == 200 and r.json()['status'] == 'ready' and r.json()['generation'] == 1
    r = http_request(admin, 'GET', '/metrics')
    assert r.status == 200
    assert r.header('content-type').startswith('text/plain; version=0.0.4')
    assert b'tollgate_config_generation 1\n' in r.body


def test_protected_endpoints_401_without_403_wrong(tollgate, backends):
    gw, admin, _, _ = start(tollgate, backends)
    for method, path in (('GET', '/upstreams'), ('GET', '/config'), ('GET', '/stats'), ('POST', '/reload')):
        r = http_request(admin, method, path)
        doc = assert_gateway_error(r.status, r.header, r.body, 401)
        assert doc['error'] == 'unauthorized'
        assert r.header('www-authenticate', ).startswith('Bearer realm=')
        r = http_request(admin, method, path, headers=auth('wrong-token-of-other-len'))
        assert_gateway_error(r.status, r.header, r.body, 403)
        r = http_request(admin, method, path, headers=auth('s3cr3t-admin-tokeX'))  # same length
        assert_gateway_error(r.status, r.header, r.body, 403)
        r = http_request(admin, method, path, headers={'Authorization': 'Basic eDp5'})
        assert_gateway_error(r.status, r.header, r.body, 401)


def test_without_token_everything_is_open(tollgate, backends):
    gw, admin, _, _ = start(tollgate, backends, token=None)
    assert http_request(admin, 'GET', '/upstreams').status == 200
    assert http_request(admin, 'GET', '/config').status == 200


def test_upstreams_shape(tollgate, backends):
    gw, admin, b1, b2 = start(tollgate, backends)
    for _ in range(3):
        assert http_request(gw.port, 'GET', '/api/x').status == 200
    def settled():  # the try ends just after the answer's last byte was written
        r = http_request(admin, 'GET', '/upstreams', headers=auth())
        return r if r.json()['upstreams'][0]['servers'][0]['active'] == 0 else None
    r = wait_until(settled, timeout=10, what='active back to 0')
    assert r.status == 200 and r.header('content-type') == 'application/json'
    doc = r.json()
    assert list(doc) == ['upstreams']
    [up] = doc['upstreams']
    assert up['name'] == 'app' and up['balance'] == 'round_robin'
    s1, s2 = up['servers']
    assert s1 == {'address': b1.addr, 'weight': 1, 'backup': False, 'health': 'up', 'active': 0,
                  'requests': 3, 'failures': 0, 'ejections': 0}
    assert s2['address'] == b2.addr and s2['weight'] == 3 and s2['backup'] is True
    assert s2['requests'] == 0


def test_config_is_effective_json_with_secrets_redacted(tollgate, backends):
    gw, admin, _, _ = start(tollgate, backends)
    r = http_request(admin, 'GET', '/config', headers=auth())
    assert r.status == 200
    doc = r.json()
    assert doc['admin']['token'] == '[redacted]'
    assert TOKEN.encode() not in r.body and b'hidden-value' not in r.body
    assert doc['routes'][0]['name'] == 'api'
    assert doc['server']['workers'] == 2


def test_stats(tollgate, backends):
    gw, admin, _, _ = start(tollgate, backends)
    doc = http_request(admin, 'GET', '/stats', headers=auth()).json()
    assert doc['generation'] == 1 and doc['workers'] == 2 and doc['draining'] is False
    assert doc['reloads'] == {'ok': 0, 'failed': 0}


def test_unknown_path_404_wrong_method_405_json(tollgate, backends):
    gw, admin, _, _ = start(tollgate, backends)
    r = http_request(admin, 'GET', '/nope')
    assert assert_gateway_error(r.status, r.header, r.body, 404)['error'] == 'not_found'
    r = http_request(admin, 'POST', '/health', body=b'')
    assert_gateway_error(r.status, r.header, r.body, 405)
    r = http_request(admin, 'GET', '/reload', headers=auth())
    assert_gateway_error(r.status, r.header, r.body, 405)


def test_keep_alive_and_pipelining(tollgate, backends):
    gw, admin, _, _ = start(tollgate, backends)
    with RawConn(admin) as c:
        c.send(b'GET /health HTTP/1.1\r\nHost: a\r\n\r\nGET /ready HTTP/1.1\r\nHost: a\r\n\r\n')
        r1 = c.read_response()
        r2 = c.read_response()
        assert r1.status == 200 and r1.json() == {'status': 'ok'}
        assert r2.status == 200 and r2.json()['status'] == 'ready'
        r3 = c.request('GET', '/health')
        assert r3.status == 200
        c.send(b'GET /health HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n')
        r4 = c.read_response()
        assert r4.header('connection') == 'close'
        assert c.wait_closed(10)


def test_malformed_request_gets_json_400_and_close(tollgate, backends):
    gw, admin, _, _ = start(tollgate, backends)
    with RawConn(admin) as c:
        c.send(b'GET /health HTTP/1.1\r\nHost: a\r\nBad Header\r\n\r\n')
        r = c.read_response()
        assert_gateway_error(r.status, r.header, r.body, 400)
        assert c.wait_closed(10)
    # chunked bodies are refused: the admin API takes Content-Length only
    with RawConn(admin) as c:
        c.send(b'POST /reload HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n')
        r = c.read_response()
        assert_gateway_error(r.status, r.header, r.body, 411)


def test_no_admin_section_no_listener(tollgate, backend):
    admin = free_port()
    gw = tollgate('''
        server: { listen: "$listen", access_log: { format: off } }
        upstreams: { app: { servers: ["$b"] } }
        routes: [ { upstream: app } ]
    ''', b=backend.addr)
    assert http_request(gw.port, 'GET', '/x').status == 200
    s = socket.socket()
    s.settimeout(2)
    # nothing listens on the default admin address's port we probe, and the
    # gateway log never mentions an admin API
    assert 'admin API' not in gw.stderr()
    s.close()
    assert not port_accepts(admin)


def test_admin_port_taken_fails_startup(tmp_path, backend):
    from conftest import run_tollgate
    blocker = socket.socket()
    blocker.bind(('127.0.0.1', 0))
    blocker.listen(1)
    port = blocker.getsockname()[1]
    cfg = tmp_path / 'c.yaml'
    cfg.write_text(f'''
server: {{ listen: "127.0.0.1:{free_port()}", access_log: {{ format: off }} }}
admin: {{ listen: "127.0.0.1:{port}" }}
upstreams: {{ app: {{ servers: ["{backend.addr}"] }} }}
routes: [ {{ upstream: app }} ]
''')
    try:
        cp = run_tollgate(['-c', str(cfg)], timeout=30)
    finally:
        blocker.close()
    assert cp.returncode == 1
    assert 'admin: cannot listen' in cp.stderr
    # it stops before any traffic port opens: no worker was started
    assert 'started' not in cp.stderr, cp.stderr


def test_admin_answers_as_soon_as_the_traffic_port_accepts(tollgate, backends):
    # No wait for the admin port: the tollgate fixture returns once the proxy
    # port accepts, and by then the admin listener must be up.
    b1, b2 = backends(2)
    for _ in range(3):
        admin = free_port()
        gw = tollgate(CFG, admin=admin, b1=b1.addr, b2=b2.addr, token_line='')
        r = http_request(admin, 'GET', '/health')
        assert r.status == 200, r
        err = gw.stderr()
        assert err.index('admin API listening') < err.index('started:'), err
