"""Edge hardening, path normalisation: routing decides on the normalised path
(unreserved escapes decoded, dot segments removed, '//' merged) and the upstream
receives exactly that path, so a rule on /admin cannot be dodged by spelling;
spellings a backend could read as another path are refused with 400."""
import pytest

from conftest import RawConn, assert_gateway_error

CONFIG = """
server:
  listen: ["$listen"]
upstreams:
  u: { servers: ["$b1"] }
routes:
  - name: admin
    match: { path: /admin }
    upstream: u
  - name: private
    match: { path_exact: /private/area }
    respond: { status: 200, body: "private" }
  - name: public
    match: { path: / }
    respond: { status: 200, body: "public" }
"""


@pytest.fixture
def gw(backends, tollgate):
    b1, = backends(1)
    g = tollgate(CONFIG, b1=b1.addr)
    g.backend = b1
    return g


def get(gw, target):
    with RawConn(gw.port, timeout=10) as c:
        return c.request('GET', target)


# target -> the path (and query) the upstream must receive
TO_ADMIN = [
    ('/admin', '/admin'),
    ('//admin', '/admin'),
    ('///admin//x', '/admin/x'),
    ('/./admin', '/admin'),
    ('/x/../admin', '/admin'),
    ('/x/y/../../admin', '/admin'),
    ('/%61dmin', '/admin'),
    ('/%61%64%6D%69%6e', '/admin'),
    ('/x/%2e%2e/admin', '/admin'),
    ('/x/%2E%2E/admin', '/admin'),
    ('/%2e/admin', '/admin'),
    ('/admin/.', '/admin/'),
    ('/admin/x/..', '/admin/'),
    ('/admin/%7euser', '/admin/~user'),
    ('/admin/a%3ab', '/admin/a%3Ab'),     # other escapes: kept, hex upper-cased
    ('//admin?next=%2F..%2F&x=/../', '/admin?next=%2F..%2F&x=/../'),  # the query is not touched
]


@pytest.mark.parametrize('target,seen', TO_ADMIN, ids=[t for t, _ in TO_ADMIN])
def test_spellings_of_admin_reach_admin_and_upstream_gets_normalised_path(gw, target, seen):
    r = get(gw, target)
    assert r.status == 200 and r.body != b'public', (target, r)
    assert r.json()['path'] == seen
    assert [e['target'] for e in gw.backend.log()] == [seen]


TO_PRIVATE = ['/private/area', '//private//area', '/x/../private/./area', '/%70rivate/%61rea',
              '/private/x/%2e%2e/area']


@pytest.mark.parametrize('target', TO_PRIVATE)
def test_spellings_of_respond_route(gw, target):
    r = get(gw, target)
    assert r.status == 200 and r.body == b'private', (target, r)


# Case-sensitive matching (documented): these are other paths, not /admin.
NOT_ADMIN = ['/ADMIN', '/Admin', '/%41dmin', '/adminx', '/admin%3B', '/admin/..', '/x/..']


@pytest.mark.parametrize('target', NOT_ADMIN)
def test_other_paths_do_not_reach_admin(gw, target):
    r = get(gw, target)
    assert r.status == 200 and r.body == b'public', (target, r)
    assert gw.backend.log() == []


# Spellings a backend could read differently from the gateway: refused.
REFUSED = [
    '/admin;x',            # path parameters (Tomcat/Jetty strip them)
    '/admin;jsessionid=1/x',
    '/admin%20',           # trailing encoded space (trimmed by some servers)
    '/admin%09',
    '/admin%20/x',
    '/x%2Fadmin',          # encoded separator
    '/x%2fadmin',
    '/admin%2Fx',
    '/x%5Cadmin',          # encoded backslash
    '/x%5cadmin',
    '/x\\admin',           # raw backslash
    '/admin%00',           # NUL
    '/admin%00.json',
    '/../x',               # climbing above /
    '/..',
    '/x/../../admin',
    '/%2e%2e/admin',
    '/%2E%2E/%2E%2E/etc/passwd',
    '/admin%2',            # broken escapes
    '/admin%zz',
    '/admin%',
    '/admin%C3%A9%',
]


@pytest.mark.parametrize('target', REFUSED)
def test_ambiguous_paths_are_400(gw, target):
    r = get(gw, target)
    doc = assert_gateway_error(r.status, r.header, r.body, 400)
    assert doc['error'] == 'bad_path', doc
    assert gw.backend.log() == []


def test_refusal_does_not_depend_on_the_route(gw):
    """Normalisation happens before routing: a bad path is 400 even where no route
    would match it (never a 404 that leaks which spellings would have matched)."""
    for target in ('/nothing;x', '/nothing/%2F', '/../nothing'):
        r = get(gw, target)
        assert_gateway_error(r.status, r.header, r.body, 400)
