"""Routing: host (exact, wildcard), path prefix at a segment boundary, path_exact,
path_regex, methods, headers (exact / present / ~regex), query, first match wins,
no route -> 404 JSON, respond: direct responses."""
import httpx
import pytest

from conftest import RawConn, assert_gateway_error

CONFIG = r"""
server:
  listen: ["$listen"]
upstreams:
  u: { servers: ["$b1"] }
routes:
  - name: fw-a
    match: { path: /fw }
    respond: { status: 200, body: "fw-a" }
  - name: fw-b
    match: { path: /fw/deeper }
    respond: { status: 200, body: "fw-b" }
  - name: host-exact
    match: { host: [api.example.com], path: /h }
    respond: { status: 200, body: "host-exact" }
  - name: host-wild
    match: { host: ["*.example.com"], path: /h }
    respond: { status: 200, body: "host-wild" }
  - name: prefix
    match: { path: /v1/users }
    respond: { status: 200, body: "prefix" }
  - name: exact
    match: { path_exact: /health }
    respond: { status: 200, body: "exact" }
  - name: regex
    match: { path_regex: '^/items/(\d+)$' }
    respond: { status: 200, body: "regex" }
  - name: methods
    match: { path: /m, methods: [GET, POST] }
    respond: { status: 200, body: "methods" }
  - name: methods-fallback
    match: { path: /m }
    respond: { status: 200, body: "methods-fallback" }
  - name: hdr-exact
    match: { path: /hdr, headers: { X-Api-Version: "2" } }
    respond: { status: 200, body: "hdr-exact" }
  - name: hdr-present
    match: { path: /hdr, headers: { X-Canary: present } }
    respond: { status: 200, body: "hdr-present" }
  - name: hdr-regex
    match: { path: /hdr, headers: { X-Tenant: "~^t-[0-9]+$" } }
    respond: { status: 200, body: "hdr-regex" }
  - name: query
    match: { path: /q, query: { beta: "1" } }
    respond: { status: 200, body: "query" }
  - name: combined
    match: { host: [shop.example.net], path: /c, methods: [POST], headers: { X-K: "v" }, query: { a: "b" } }
    respond: { status: 200, body: "combined" }
  - name: to-backend
    match: { path: /backend }
    upstream: u
  - name: teapot
    match: { path_exact: /teapot }
    respond: { status: 418, body: "short and stout", headers: { X-Pot: tea, Content-Type: text/plain } }
  - name: empty
    match: { path_exact: /empty }
    respond: { status: 204 }
"""


@pytest.fixture
def gw(backends, tollgate):
    b1, = backends(1)
    g = tollgate(CONFIG, b1=b1.addr)
    g.backend = b1
    return g


@pytest.fixture
def client(gw):
    with httpx.Client(base_url=gw.url(), trust_env=False, timeout=10) as c:
        yield c


def route_of(client, path, method='GET', **kw):
    """The body of a respond: route (its name), or 404."""
    r = client.request(method, path, **kw)
    if r.status_code == 404:
        return 404
    assert r.status_code == 200, (path, r.status_code, r.text)
    return r.text


def test_host_exact_and_wildcard(client):
    assert route_of(client, '/h', headers={'Host': 'api.example.com'}) == 'host-exact'
    assert route_of(client, '/h', headers={'Host': 'API.Example.COM:8080'}) == 'host-exact'
    assert route_of(client, '/h', headers={'Host': 'foo.example.com'}) == 'host-wild'
    assert route_of(client, '/h', headers={'Host': 'a.b.example.com'}) in ('host-wild', 404)
    assert route_of(client, '/h', headers={'Host': 'example.com'}) == 404
    assert route_of(client, '/h', headers={'Host': 'fooexample.com'}) == 404
    assert route_of(client, '/h', headers={'Host': 'other.org'}) == 404


def test_path_prefix_at_segment_boundary(client):
    for p in ('/v1/users', '/v1/users/', '/v1/users/7', '/v1/users/7/orders', '/v1/users?x=1'):
        assert route_of(client, p) == 'prefix', p
    for p in ('/v1/usersx', '/v1/user', '/v1', '/v2/users', '/V1/users'):
        assert route_of(client, p) == 404, p


def test_path_is_normalised_before_matching(gw):
    with RawConn(gw.port) as c:
        for target in ('/v1/./users/7', '/v1/x/../users', '/v1//users/7', '/v1/%75sers'):
            r = c.request('GET', target)
            assert r.status == 200 and r.body == b'prefix', (target, r)
        r = c.request('GET', '/v1/users/../../health')
        assert r.body == b'exact', r


def test_path_exact(client):
    assert route_of(client, '/health') == 'exact'
    assert route_of(client, '/health?probe=1') == 'exact'
    for p in ('/health/', '/health/x', '/healthz', '/'):
        assert route_of(client, p) == 404, p


def test_path_regex(client):
    assert route_of(client, '/items/42') == 'regex'
    assert route_of(client, '/items/42?full=1') == 'regex'
    for p in ('/items/abc', '/items/42/x', '/items/', '/xitems/42'):
        assert route_of(client, p) == 404, p


def test_methods_fall_through_to_next_route(client):
    assert route_of(client, '/m', 'GET') == 'methods'
    assert route_of(client, '/m', 'POST', content=b'x') == 'methods'
    assert route_of(client, '/m', 'PUT', content=b'x') == 'methods-fallback'
    assert route_of(client, '/m', 'DELETE') == 'methods-fallback'


def test_header_matchers(client):
    assert route_of(client, '/hdr', headers={'X-Api-Version': '2'}) == 'hdr-exact'
    assert route_of(client, '/hdr', headers={'x-api-version': '2'}) == 'hdr-exact'
    assert route_of(client, '/hdr', headers={'X-Api-Version': '3'}) == 404
    assert route_of(client, '/hdr', headers={'X-Canary': 'yes'}) == 'hdr-present'
    assert route_of(client, '/hdr', headers={'X-Api-Version': '3', 'X-Canary': '1'}) == 'hdr-present'
    assert route_of(client, '/hdr', headers={'X-Tenant': 't-42'}) == 'hdr-regex'
    assert route_of(client, '/hdr', headers={'X-Tenant': 't-x'}) == 404
    assert route_of(client, '/hdr', headers={'X-Tenant': 'xt-42'}) == 404
    assert route_of(client, '/hdr') == 404


def test_query_matcher(client):
    assert route_of(client, '/q?beta=1') == 'query'
    assert route_of(client, '/q?a=2&beta=1') == 'query'
    assert route_of(client, '/q?beta=2') == 404
    assert route_of(client, '/q?alpha=1') == 404
    assert route_of(client, '/q') == 404


def test_all_matchers_must_hold(client):
    ok = dict(headers={'Host': 'shop.example.net', 'X-K': 'v'}, content=b'{}')
    assert route_of(client, '/c?a=b', 'POST', **ok) == 'combined'
    assert route_of(client, '/c?a=c', 'POST', **ok) == 404
    assert route_of(client, '/c?a=b', 'PUT', **ok) == 404
    assert route_of(client, '/c?a=b', 'POST', headers={'Host': 'shop.example.net'}) == 404
    assert route_of(client, '/c?a=b', 'POST', headers={'Host': 'x.example.net', 'X-K': 'v'}) == 404


def test_first_match_wins(client):
    # /fw/deeper matches both fw-a (a prefix, listed first) and fw-b: file order decides
    assert route_of(client, '/fw/deeper') == 'fw-a'
    assert route_of(client, '/fw') == 'fw-a'


def test_no_route_is_404_json(gw, client):
    r = client.get('/nowhere/at/all')
    doc = assert_gateway_error(r.status_code, r.headers.get, r.content, 404)
    assert r.headers.get('x-request-id') == doc['request_id']
    r2 = client.post('/nowhere', content=b'x' * 1000)
    doc2 = assert_gateway_error(r2.status_code, r2.headers.get, r2.content, 404)
    assert doc2['request_id'] != doc['request_id']
    assert gw.backend.log() == []


def test_upstream_route_reaches_backend(gw, client):
    r = client.get('/backend/x')
    assert r.status_code == 200
    assert r.json()['name'] == 'b1'
    assert r.json()['path'] == '/backend/x'


def test_respond_direct(gw, client):
    r = client.get('/teapot')
    assert r.status_code == 418
    assert r.content == b'short and stout'
    assert r.headers['x-pot'] == 'tea'
    assert r.headers['content-type'] == 'text/plain'
    assert r.headers['content-length'] == str(len(b'short and stout'))
    r = client.get('/empty')
    assert r.status_code == 204
    assert r.content == b''
    assert gw.backend.log() == []


def test_respond_discards_request_body_and_keeps_connection(gw):
    with RawConn(gw.port) as c:
        r = c.request('POST', '/teapot', body=b'y' * 100000)
        assert r.status == 418 and r.body == b'short and stout'
        r = c.request('POST', '/teapot', headers=[('Transfer-Encoding', 'chunked')],
                      body=b'5\r\nhello\r\n0\r\n\r\n')
        assert r.status == 418 and r.body == b'short and stout'
        r = c.request('GET', '/teapot')
        assert r.status == 418 and r.body == b'short and stout'
