"""Proxying: the head sent upstream is re-serialized; keep-alive, pipelining,
Connection: close, HTTP/1.0, chunked bodies both ways, trailers, 100-continue,
HEAD, 1xx; rewrite; request/response header operations; forwarded headers,
hop-by-hop removal, Host, X-Request-Id; request limits."""
import http.client
import json
import re
import time

import pytest

from conftest import (RawConn, assert_gateway_error, build_request, curl, http_request,
                      raw_exchange, sha256, wait_until)

CONFIG = r"""
server:
  listen: ["$listen"]
upstreams:
  u: { servers: ["$b1"] }
routes:
  - name: strip
    match: { path: /api }
    upstream: u
    rewrite: { strip_prefix: /api }
  - name: replace
    match: { path: /v1 }
    upstream: u
    rewrite: { replace_prefix: { from: /v1, to: /internal/v2 } }
  - name: regex
    match: { path_regex: '^/users/(\d+)/orders/(\d+)$' }
    upstream: u
    rewrite: { regex: { pattern: '^/users/(\d+)/orders/(\d+)$', replace: '/u/$1/o/$2' } }
  - name: hdrs
    match: { path: /hdrs }
    upstream: u
    request_headers:
      set: { X-Env: prod, X-Set-New: new }
      add: { X-Multi: b }
      remove: [Cookie, X-Remove-Me]
    response_headers:
      set: { X-Frame-Options: DENY, X-Backend: overridden }
      add: { X-Added: "yes" }
      remove: [Server, X-Secret]
  - name: sethost
    match: { path: /sethost }
    upstream: u
    request_headers: { set: { Host: internal.svc } }
  - name: all
    match: { path: / }
    upstream: u
"""


@pytest.fixture
def gw(backends, tollgate):
    b1, = backends(1)
    g = tollgate(CONFIG, b1=b1.addr)
    g.backend = b1
    return g


def hv(doc, name):
    """Values of header `name` as the backend received them (echo JSON)."""
    return [v for n, v in doc['headers'] if n.lower() == name.lower()]


def one(doc, name):
    vals = hv(doc, name)
    assert len(vals) == 1, f'{name}: {vals} in {doc["headers"]}'
    return vals[0]


def split_list(vals):
    return [x.strip() for v in vals for x in v.split(',') if x.strip()]


# ------------------------------------------------------------ serialization

def test_head_is_reserialized(gw):
    raw = (b'GET /echo/ser HTTP/1.1\r\nHost: test.local\r\n'
           b'X-Spaces:    padded value   \r\nx-lower-case: v\r\nX-Tab:\tv2\t\r\n\r\n')
    with RawConn(gw.port) as c:
        c.send(raw)
        r = c.read_response()
    assert r.status == 200
    entry = gw.backend.log()[-1]
    assert entry['version'] == 'HTTP/1.1'
    lines = {ln.split(':', 1)[0].lower(): ln for ln in entry['raw']}
    # one space after the colon, no padding: the gateway wrote the field itself
    assert re.fullmatch(r'(?i)x-spaces: padded value', lines['x-spaces']), lines
    assert re.fullmatch(r'(?i)x-tab: v2', lines['x-tab']), lines
    assert re.fullmatch(r'(?i)x-lower-case: v', lines['x-lower-case']), lines


def test_absolute_form_target_becomes_origin_form(gw):
    with RawConn(gw.port) as c:
        r = c.request('GET', 'http://test.local/echo/abs?x=1', host='test.local')
    assert r.status == 200, r
    assert r.json()['path'] == '/echo/abs?x=1'


def test_path_sent_upstream_is_normalised(gw):
    with RawConn(gw.port) as c:
        r = c.request('GET', '/echo/./a/../b//c?x=%20y')
    assert r.status == 200, r
    assert r.json()['path'] == '/echo/b/c?x=%20y'


@pytest.mark.parametrize('raw,expected', [
    (b'GET /echo HTTP/1.1\r\n\r\n', (400,)),                                   # no Host
    (b'GET /echo HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n', (400,)),             # two Hosts
    (b'POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: abc\r\n\r\n', (400,)),  # bad length
    (b'GET /echo HTTP/1.1\r\nHost: a\r\nBad Header: x\r\n\r\n', (400,)),       # space in name
    (b'GET /echo HTTP/1.1\r\nHost: a\r\nX-Folded: a\r\n b\r\n\r\n', (400,)),   # obs-fold
    (b'GET /%2e%2e/%2e%2e/etc/passwd HTTP/1.1\r\nHost: a\r\n\r\n', (400, 403)),  # climbs above /
    (b'GET /a%2fb HTTP/1.1\r\nHost: a\r\n\r\n', (400, 403)),                   # encoded slash
], ids=['no-host', 'two-hosts', 'bad-length', 'space-in-name', 'obs-fold', 'dotdot', 'pct2f'])
def test_bad_requests_are_rejected_and_not_forwarded(gw, raw, expected):
    with RawConn(gw.port, timeout=5) as c:
        c.send(raw)
        r = c.read_response()
    assert r.version == 'HTTP/1.1', r
    assert r.status in expected, r
    assert_gateway_error(r.status, r.header, r.body, r.status)
    assert gw.backend.log() == []


def test_header_and_uri_limits(gw):
    r = http_request(gw.port, 'GET', '/echo', headers={'X-Big': 'a' * 20000})
    assert_gateway_error(r.status, r.header, r.body, 431)
    r = http_request(gw.port, 'GET', '/echo', headers={f'X-H{i}': 'v' for i in range(120)})
    assert_gateway_error(r.status, r.header, r.body, 431)
    r = http_request(gw.port, 'GET', '/echo?' + 'q' * 9000)
    assert_gateway_error(r.status, r.header, r.body, 414)
    assert gw.backend.log() == []
    # just under the limits still passes
    r = http_request(gw.port, 'GET', '/echo', headers={'X-Big': 'a' * 8000})
    assert r.status == 200
    assert one(r.json(), 'X-Big') == 'a' * 8000


# -------------------------------------------------------------- connections

def test_keepalive_many_requests_one_connection(gw):
    with RawConn(gw.port) as c:
        for i in range(10):
            r = c.request('GET', f'/echo/{i}')
            assert r.status == 200
            assert r.json()['path'] == f'/echo/{i}'
            assert 'close' not in (r.header('connection') or '').lower()
        assert not c.eof
    # http.client too: one socket for all requests
    hc = http.client.HTTPConnection('127.0.0.1', gw.port, timeout=10)
    hc.request('GET', '/echo/a')
    assert hc.getresponse().read()
    sock = hc.sock
    for i in range(5):
        hc.request('POST', '/echo/b', body=b'x' * i * 1000)
        r = hc.getresponse()
        assert json.loads(r.read())['body_len'] == i * 1000
        assert hc.sock is sock
    hc.close()


def test_pipelined_requests_answered_in_order(gw):
    reqs = (build_request('GET', '/slow?ms=300')
            + build_request('POST', '/echo/2', body=b'two')
            + build_request('GET', '/drip?n=3&ms=50')
            + build_request('GET', '/echo/4'))
    with RawConn(gw.port) as c:
        c.send(reqs)
        rs = [c.read_final()[1] for _ in range(4)]
    assert [r.status for r in rs] == [200] * 4
    assert rs[0].json()['path'] == '/slow?ms=300'
    assert rs[1].json()['path'] == '/echo/2' and rs[1].json()['body_len'] == 3
    assert rs[2].body == b'000000001111111122222222'
    assert rs[3].json()['path'] == '/echo/4'


def test_connection_close(gw):
    with RawConn(gw.port) as c:
        r = c.request('GET', '/echo', headers={'Connection': 'close'})
        assert r.status == 200
        assert 'close' in (r.header('connection') or '').lower()
        assert c.wait_closed(5), 'gateway kept the connection open after Connection: close'
        assert c.buf == b''


def test_http10_client(gw):
    # a chunked upstream response is delivered to an HTTP/1.0 client without chunked coding
    data = raw_exchange(gw.port, b'GET /drip?n=3&ms=10 HTTP/1.0\r\nHost: test.local\r\n\r\n')
    head, _, body = data.partition(b'\r\n\r\n')
    assert re.match(rb'HTTP/1\.[01] 200 ', head), data
    assert b'chunked' not in head.lower()
    m = re.search(rb'(?im)^content-length:\s*(\d+)', head)
    if m:
        body = body[:int(m.group(1))]
    assert body == b'000000001111111122222222'
    # and the connection was closed (raw_exchange returned at EOF, not at its timeout)
    data = raw_exchange(gw.port, b'GET /echo/ten HTTP/1.0\r\nHost: test.local\r\n\r\n', timeout=5)
    head, _, body = data.partition(b'\r\n\r\n')
    assert re.match(rb'HTTP/1\.[01] 200 ', head), data
    assert json.loads(body[:int(re.search(rb'(?i)content-length:\s*(\d+)', head).group(1))])['path'] == '/echo/ten'


def test_http10_closes_connection(gw):
    with RawConn(gw.port) as c:
        c.send(b'GET /echo HTTP/1.0\r\nHost: test.local\r\n\r\n')
        assert c.wait_closed(5)
        assert b' 200 ' in c.buf.split(b'\r\n', 1)[0]


# ------------------------------------------------------------------- bodies

def test_chunked_request_body(gw):
    body = b'a' * 10 + b'b' * 70000 + b'c'
    chunks = (b'a\r\n' + body[:10] + b'\r\n'
              + b'11170;ext=1\r\n' + body[10:70010] + b'\r\n'
              + b'1\r\n' + body[70010:] + b'\r\n0\r\n\r\n')
    with RawConn(gw.port) as c:
        r = c.request('POST', '/upload', headers={'Transfer-Encoding': 'chunked'}, body=chunks)
    assert r.status == 200, r
    doc = r.json()
    assert doc['body_len'] == len(body)
    assert doc['body_sha256'] == sha256(body)


def test_chunked_request_body_with_curl(gw, tmp_path):
    f = tmp_path / 'payload.bin'
    payload = bytes(range(256)) * 4000
    f.write_bytes(payload)
    cp = curl('-H', 'Transfer-Encoding: chunked', '--data-binary', f'@{f}', gw.url('/upload'))
    assert cp.returncode == 0, cp.stderr
    doc = json.loads(cp.stdout)
    assert doc['body_len'] == len(payload)
    assert doc['body_sha256'] == sha256(payload)


def test_chunked_response(gw):
    with RawConn(gw.port) as c:
        r = c.request('GET', '/drip?n=4&ms=50&size=10')
        assert r.status == 200 and r.chunked and r.complete
        assert r.body == b'0' * 10 + b'1' * 10 + b'2' * 10 + b'3' * 10
        r = c.request('GET', f'/bytes?n={5 << 20}')
        assert r.status == 200 and r.complete
        assert sha256(r.body) == r.header('x-content-sha256')
    r = http_request(gw.port, 'GET', '/bytes?n=300000')
    assert r.status == 200 and sha256(r.body) == r.header('x-content-sha256')


def test_response_trailers_passed_through(gw):
    with RawConn(gw.port) as c:
        r = c.request('GET', '/trailers', headers={'TE': 'trailers'})
    assert r.status == 200 and r.chunked, r
    assert r.body == b'hello trailers'
    t = {n.lower(): v for n, v in r.trailers}
    assert t.get('x-checksum') == 'abc123', r.trailers
    assert t.get('x-trailer-two') == '2', r.trailers


def test_request_trailers_passed_through(gw):
    chunks = b'5\r\nhello\r\n0\r\nX-Req-Trailer: t1\r\n\r\n'
    with RawConn(gw.port) as c:
        r = c.request('POST', '/upload',
                      headers={'Transfer-Encoding': 'chunked', 'Trailer': 'X-Req-Trailer'},
                      body=chunks)
    assert r.status == 200, r
    doc = r.json()
    assert doc['body_len'] == 5
    assert ['X-Req-Trailer', 't1'] in [[n, v] for n, v in doc['trailers']] or \
        ['x-req-trailer', 't1'] in [[n.lower(), v] for n, v in doc['trailers']], doc


def test_expect_100_continue(gw):
    with RawConn(gw.port, timeout=5) as c:
        c.send(b'POST /upload HTTP/1.1\r\nHost: test.local\r\nContent-Length: 11\r\n'
               b'Expect: 100-continue\r\n\r\n')
        first = c.read_response('POST')        # must arrive before the body is sent
        assert first.status == 100, first
        c.send(b'hello world')
        infos, r = c.read_final('POST')
        assert all(i.status == 100 for i in infos)
    assert r.status == 200, r
    assert r.json()['body_len'] == 11
    assert r.json()['body_sha256'] == sha256(b'hello world')


def test_expect_100_continue_with_curl(gw, tmp_path):
    f = tmp_path / 'p.bin'
    f.write_bytes(b'z' * 2_000_000)           # curl sends Expect: 100-continue for > 1 MiB
    cp = curl('-v', '--expect100-timeout', '5', '--data-binary', f'@{f}', gw.url('/upload'))
    assert cp.returncode == 0, cp.stderr
    assert b'< HTTP/1.1 100' in cp.stderr, cp.stderr
    assert json.loads(cp.stdout)['body_len'] == 2_000_000


def test_head_has_no_body(gw):
    with RawConn(gw.port) as c:
        c.send(build_request('HEAD', '/bytes?n=1000&cl=1') + build_request('HEAD', '/drip?n=2')
               + build_request('GET', '/echo/after'))
        r1 = c.read_response('HEAD')
        r2 = c.read_response('HEAD')
        r3 = c.read_response('GET')
    assert r1.status == 200 and r1.body == b''
    assert r1.header('content-length') in ('1000', None)
    assert r2.status == 200 and r2.body == b''
    # the next response starts right after the heads: no stray body bytes in between
    assert r3.status == 200 and r3.json()['path'] == '/echo/after'
    assert [e['method'] for e in gw.backend.log()][:2] == ['HEAD', 'HEAD']


def test_1xx_informational_forwarded(gw):
    with RawConn(gw.port) as c:
        c.send(build_request('GET', '/100?n=2&ms=50'))
        infos, r = c.read_final()
    assert [i.status for i in infos] == [103, 103], infos
    assert infos[0].header('link') == '</style.css>; rel=preload'
    assert r.status == 200 and r.json()['path'] == '/100?n=2&ms=50'


def test_1xx_not_sent_to_http10_client(gw):
    data = raw_exchange(gw.port, b'GET /100 HTTP/1.0\r\nHost: test.local\r\n\r\n')
    assert re.match(rb'HTTP/1\.[01] 200 ', data), data[:200]
    assert b' 103 ' not in data


# ------------------------------------------------------------------ rewrite

@pytest.mark.parametrize('sent,seen', [
    ('/api/echo/x?q=1', '/echo/x?q=1'),
    ('/api', '/'),
    ('/api/', '/'),
    ('/api?z=1', '/?z=1'),
    ('/apix/y', '/apix/y'),                      # not the /api segment: the catch-all route
    ('/v1/items?a=b', '/internal/v2/items?a=b'),
    ('/v1', '/internal/v2'),
    ('/users/12/orders/34', '/u/12/o/34'),
    ('/users/12/orders/34?x=y', '/u/12/o/34?x=y'),
    ('/users/12/orders/x', '/users/12/orders/x'),
])
def test_rewrite(gw, sent, seen):
    r = http_request(gw.port, 'GET', sent)
    assert r.status == 200, r
    assert r.json()['path'] == seen


# ------------------------------------------------------------------ headers

def test_request_header_operations(gw):
    with RawConn(gw.port) as c:
        r = c.request('GET', '/hdrs', headers=[('X-Env', 'dev'), ('X-Multi', 'a'),
                                               ('Cookie', 'c=1'), ('X-Remove-Me', '1'),
                                               ('x-env', 'dev2'), ('X-Keep', 'k')])
    assert r.status == 200, r
    doc = r.json()
    assert hv(doc, 'X-Env') == ['prod']
    assert hv(doc, 'X-Set-New') == ['new']
    assert split_list(hv(doc, 'X-Multi')) == ['a', 'b']
    assert hv(doc, 'Cookie') == [] and hv(doc, 'X-Remove-Me') == []
    assert hv(doc, 'X-Keep') == ['k']


def test_response_header_operations(gw):
    r = http_request(gw.port, 'GET', '/hdrs?h=X-Secret:s&h=X-Frame-Options:SAMEORIGIN&h=X-Other:o')
    assert r.status == 200
    got = [(n.lower(), v) for n, v in r.headers]
    assert [v for n, v in got if n == 'x-frame-options'] == ['DENY']
    assert [v for n, v in got if n == 'x-backend'] == ['overridden']
    assert [v for n, v in got if n == 'x-added'] == ['yes']
    assert [v for n, v in got if n == 'x-secret'] == []
    assert 'tollgate-test-backend' not in [v for n, v in got if n == 'server']
    assert [v for n, v in got if n == 'x-other'] == ['o']


def test_host_passed_through_or_set(gw):
    r = http_request(gw.port, 'GET', '/echo/h', headers={'Host': 'api.example.com:8443'})
    assert one(r.json(), 'Host') == 'api.example.com:8443'
    r = http_request(gw.port, 'GET', '/sethost', headers={'Host': 'outside.example.com'})
    assert one(r.json(), 'Host') == 'internal.svc'


def test_forwarded_headers_from_untrusted_client(gw):
    r = http_request(gw.port, 'GET', '/echo/fwd', headers={
        'Host': 'shop.example.com', 'X-Forwarded-For': '1.2.3.4', 'X-Real-IP': '6.6.6.6',
        'X-Forwarded-Proto': 'https', 'X-Forwarded-Host': 'evil.example',
        'Forwarded': 'for=6.6.6.6;proto=https'})
    doc = r.json()
    assert one(doc, 'X-Forwarded-For').replace(' ', '') == '1.2.3.4,127.0.0.1'
    assert one(doc, 'X-Real-IP') == '127.0.0.1'
    assert one(doc, 'X-Forwarded-Proto') == 'http'
    assert one(doc, 'X-Forwarded-Host') == 'shop.example.com'
    last = split_list(hv(doc, 'Forwarded'))[-1].lower()
    assert re.search(r'(^|;)\s*for="?127\.0\.0\.1"?\s*(;|$)', last), last
    assert re.search(r'(^|;)\s*proto=http\s*(;|$)', last), last
    via = hv(doc, 'Via')
    assert via and re.match(r'(HTTP/)?1\.1 \S+', split_list(via)[-1]), via


def test_forwarded_headers_without_client_values(gw):
    doc = http_request(gw.port, 'GET', '/echo/fwd2', headers={'Host': 'shop.example.com'}).json()
    assert one(doc, 'X-Forwarded-For') == '127.0.0.1'
    assert one(doc, 'X-Real-IP') == '127.0.0.1'
    assert one(doc, 'X-Forwarded-Proto') == 'http'
    assert one(doc, 'X-Forwarded-Host') == 'shop.example.com'
    assert len(split_list(hv(doc, 'Forwarded'))) == 1
    assert hv(doc, 'Via')


def test_forwarded_headers_from_trusted_proxy(backends, tollgate):
    b1, = backends(1)
    gw = tollgate("""
        server:
          listen: ["$listen"]
          trusted_proxies: [127.0.0.0/8]
        upstreams:
          u: { servers: ["$b1"] }
        routes:
          - match: { path: / }
            upstream: u
        """, b1=b1.addr)
    doc = http_request(gw.port, 'GET', '/echo', headers={
        'X-Forwarded-For': '203.0.113.9, 127.0.0.5'}).json()
    assert one(doc, 'X-Real-IP') == '203.0.113.9'
    assert one(doc, 'X-Forwarded-For').replace(' ', '') == '203.0.113.9,127.0.0.5,127.0.0.1'
    doc = http_request(gw.port, 'GET', '/echo', headers={
        'X-Forwarded-For': '198.51.100.1, 203.0.113.9'}).json()
    assert one(doc, 'X-Real-IP') == '203.0.113.9'


def test_hop_by_hop_request_headers_removed(gw):
    with RawConn(gw.port) as c:
        r = c.request('GET', '/echo/hop', headers=[
            ('Connection', 'keep-alive, X-Drop-Me, x-drop-too'), ('X-Drop-Me', '1'),
            ('X-Drop-Too', '2'), ('Keep-Alive', 'timeout=5'), ('Proxy-Connection', 'keep-alive'),
            ('Upgrade', 'example/1'), ('X-Keep', 'k')])
    assert r.status == 200, r
    doc = r.json()
    for name in ('X-Drop-Me', 'X-Drop-Too', 'Keep-Alive', 'Proxy-Connection', 'Upgrade'):
        assert hv(doc, name) == [], (name, doc['headers'])
    for tok in split_list(hv(doc, 'Connection')):
        assert tok.lower() in ('keep-alive', 'close'), doc['headers']
    assert hv(doc, 'X-Keep') == ['k']


def test_hop_by_hop_response_headers_removed(gw):
    with RawConn(gw.port) as c:
        r = c.request('GET', '/echo/hop?h=Connection:X-Resp-Hop&h=X-Resp-Hop:1'
                      '&h=Keep-Alive:timeout%3D5&h=Proxy-Connection:keep-alive&h=X-Resp-Keep:1')
        assert r.status == 200
        names = [n.lower() for n, _ in r.headers]
        assert 'x-resp-hop' not in names, r.headers
        assert 'proxy-connection' not in names, r.headers
        assert r.header('keep-alive') != 'timeout=5', r.headers
        assert r.header('x-resp-keep') == '1'
        # the client connection is still usable
        assert c.request('GET', '/echo/again').status == 200


def test_request_id_kept_when_sent(gw):
    r = http_request(gw.port, 'GET', '/echo/rid', headers={'X-Request-Id': 'abc-123'})
    assert one(r.json(), 'X-Request-Id') == 'abc-123'
    assert r.header('X-Request-Id') == 'abc-123'


def test_request_id_generated_when_absent(gw):
    ids = set()
    for _ in range(3):
        r = http_request(gw.port, 'GET', '/echo/rid')
        sent_up = one(r.json(), 'X-Request-Id')
        assert sent_up and r.header('X-Request-Id') == sent_up
        ids.add(sent_up)
    assert len(ids) == 3


def test_curl_through_gateway(gw):
    cp = curl('-D', '-', '-H', 'X-Curl: 1', gw.url('/api/echo/curl?x=1'))
    assert cp.returncode == 0, cp.stderr
    head, _, body = cp.stdout.partition(b'\r\n\r\n')
    assert head.startswith(b'HTTP/1.1 200'), head
    doc = json.loads(body)
    assert doc['path'] == '/echo/curl?x=1'
    assert hv(doc, 'X-Curl') == ['1']


# -------------------------------------------------------- server limits

LIMITS = """
server:
  listen: ["$listen"]
  workers: 3
  limits: { header_timeout: 500ms, idle_timeout: 500ms, body_timeout: 500ms, max_body_bytes: 1KiB }
upstreams:
  u: { servers: ["$b1"] }
routes:
  - name: big
    match: { path: /big }
    upstream: u
    limits: { max_body_bytes: 64KiB }
  - match: { path: / }
    upstream: u
"""


@pytest.fixture
def lgw(backends, tollgate):
    b1, = backends(1)
    g = tollgate(LIMITS, b1=b1.addr)
    g.backend = b1
    return g


def listening_sockets(port):
    n = 0
    for f in ('/proc/net/tcp', '/proc/net/tcp6'):
        with open(f) as fh:
            for line in fh.readlines()[1:]:
                parts = line.split()
                if parts[1].endswith(':%04X' % port) and parts[3] == '0A':
                    n += 1
    return n


def test_each_worker_has_its_own_listener(lgw):
    # workers: 3 -> three SO_REUSEPORT listening sockets on the port
    assert listening_sockets(lgw.port) == 3


def test_body_limit_content_length(lgw):
    r = http_request(lgw.port, 'POST', '/echo', body=b'x' * 2000)
    assert_gateway_error(r.status, r.header, r.body, 413)
    assert lgw.backend.log() == []
    assert http_request(lgw.port, 'POST', '/echo', body=b'x' * 1000).status == 200
    # a route's own limit
    assert http_request(lgw.port, 'POST', '/big', body=b'x' * 60000).status == 200
    r = http_request(lgw.port, 'POST', '/big', body=b'x' * 70000)
    assert_gateway_error(r.status, r.header, r.body, 413)


def test_body_limit_chunked(lgw):
    body = b''.join(b'100\r\n' + b'c' * 256 + b'\r\n' for _ in range(8)) + b'0\r\n\r\n'
    with RawConn(lgw.port) as c:
        c.send(build_request('POST', '/echo', headers={'Transfer-Encoding': 'chunked'}, body=body))
        r = c.read_response()
    assert_gateway_error(r.status, r.header, r.body, 413)


def test_header_timeout(lgw):
    with RawConn(lgw.port, timeout=5) as c:
        c.send(b'GET /echo HTTP/1.1\r\nHost: a\r\nX-Slow: ')
        t0 = time.monotonic()
        assert c.wait_closed(4), 'no header_timeout'
        assert time.monotonic() - t0 >= 0.3
    if c.buf:   # an answer is optional; if there is one it is 408 JSON
        assert c.buf.startswith(b'HTTP/1.1 408 '), c.buf[:100]
    assert lgw.backend.log() == []


def test_idle_timeout(lgw):
    with RawConn(lgw.port, timeout=5) as c:
        assert c.request('GET', '/echo').status == 200
        t0 = time.monotonic()
        assert c.wait_closed(4), 'idle keep-alive connection not closed'
        assert time.monotonic() - t0 >= 0.3
        assert c.buf == b''


def test_body_timeout(lgw):
    with RawConn(lgw.port, timeout=5) as c:
        c.send(b'POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\n0123456789')
        assert c.wait_closed(4), 'no body_timeout'
    if c.buf:
        assert re.match(rb'HTTP/1\.1 (408|502|504) ', c.buf), c.buf[:100]


def test_upstream_pool_max_idle(backends, tollgate):
    b, = backends(1)
    gw = tollgate("""
        server: { listen: ["$listen"], workers: 1 }
        upstreams:
          u: { servers: ["$b1"], keepalive: { max_idle: 1 } }
        routes:
          - match: { path: / }
            upstream: u
        """, b1=b.addr)
    conns = [RawConn(gw.port) for _ in range(4)]
    try:
        for c in conns:          # four requests in flight at once: four upstream connections
            c.send(build_request('GET', '/slow?ms=300'))
        for c in conns:
            assert c.read_response().status == 200
    finally:
        for c in conns:
            c.close()
    assert len({e['conn'] for e in b.log()}) == 4
    # at most one stays pooled (plus our own /_stats connection)
    wait_until(lambda: b.stats()['open'] <= 2, timeout=5, what='idle connections beyond max_idle closed')
