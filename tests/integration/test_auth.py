"""Authentication (route auth): API keys, Basic (consumers and htpasswd), JWT
(HS/RS/PS/ES with JWKS files and a JWKS server with key rotation), `any`,
challenges, optional, upstream identity headers, and the attacks of issue 6.
Tokens are minted with python3-jwt + python3-cryptography; htpasswd files
with Debian's htpasswd."""
import base64
import hashlib
import http.server
import json
import socketserver
import subprocess
import threading
import time

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric import ed25519
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm

from conftest import assert_gateway_error, http_request, wait_until

HS_SECRET = 'an-hmac-secret-that-is-long-enough-0123456789'


def rsa_key():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def jwk_of(key, kid, alg):
    pub = key.public_key()
    conv = RSAAlgorithm if alg[0] in 'RP' else OKPAlgorithm if alg == 'EdDSA' else ECAlgorithm
    d = json.loads(conv.to_jwk(pub))
    d.update(kid=kid, use='sig')
    return d


def token(key, alg, kid=None, **claims):
    now = int(time.time())
    body = {'iss': 'https://id.test/', 'aud': 'api', 'sub': 'alice', 'iat': now, 'exp': now + 300}
    body.update(claims)
    body = {k: v for k, v in body.items() if v is not None}
    return jwt.encode(body, key, algorithm=alg, headers={'kid': kid} if kid else None)


def b64u(data):
    return base64.urlsafe_b64encode(data).rstrip(b'=').decode()


class Keys:
    def __init__(self):
        self.rsa, self.rsa2, self.ec = rsa_key(), rsa_key(), ec.generate_private_key(ec.SECP256R1())
        self.ec384, self.ed = ec.generate_private_key(ec.SECP384R1()), ed25519.Ed25519PrivateKey.generate()

    def jwks(self, *pairs):
        return {'keys': [jwk_of(k, kid, alg) for k, kid, alg in pairs]}


@pytest.fixture(scope='module')
def keys():
    return Keys()


class JwksServer:
    """A JWKS endpoint whose document the test changes (key rotation)."""

    def __init__(self, doc):
        self.doc, self.hits = doc, 0
        outer = self

        class H(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                outer.hits += 1
                body = json.dumps(outer.doc).encode()
                self.send_response(200)
                self.send_header('Content-Type', 'application/json')
                self.send_header('Content-Length', str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *a):
                pass
        self.srv = socketserver.ThreadingTCPServer(('127.0.0.1', 0), H)
        self.srv.daemon_threads = True
        self.port = self.srv.server_address[1]
        self.t = threading.Thread(target=self.srv.serve_forever, daemon=True)
        self.t.start()

    def stop(self):
        self.srv.shutdown()
        self.srv.server_close()


CONFIG = r"""
server: { listen: ["$listen"] }
consumers:
  - { name: alice, groups: [paid, beta], api_keys: ["plain-key-alice"] }
  - { name: bob, api_keys: ["sha256:$bob_hash"], basic_password: "$bob_bcrypt" }
  - { name: carol, groups: [staff] }
htpasswd: $tmp/htpasswd
upstreams:
  u: { servers: ["$b1"] }
routes:
  - name: key
    match: { path: /key }
    upstream: u
    auth: { api_key: { header: X-API-Key, query: api_key } }
  - name: key-visible
    match: { path: /keep }
    upstream: u
    auth: { api_key: { hide: false, realm: keys } }
  - name: basic
    match: { path: /basic }
    upstream: u
    auth: { basic: { realm: users } }
  - name: hs
    match: { path: /hs }
    upstream: u
    auth:
      jwt: { secret: "$hs_secret", issuer: "https://id.test/", audiences: [api], consumer_claim: sub,
             claims_to_headers: { sub: X-User-Id, scope: X-Scopes } }
  - name: rs
    match: { path: /rs }
    upstream: u
    auth:
      jwt: { jwks: $tmp/jwks.json, algorithms: [RS256, PS256, ES256], issuer: "https://id.test/",
             audiences: [api], consumer_claim: sub, clock_skew: 5s }
  - name: mixed
    match: { path: /mixed }
    upstream: u
    auth: { jwt: { jwks: $tmp/jwks-all.json, algorithms: [HS256, RS512, PS384, ES384, EdDSA] } }
  - name: any
    match: { path: /any }
    upstream: u
    auth:
      any: [jwt, api_key, basic]
      jwt: { secret: "$hs_secret", consumer_claim: sub }
  - name: optional
    match: { path: /optional }
    upstream: u
    auth: { api_key: {}, optional: true }
"""


@pytest.fixture
def gw(tollgate, backend, keys, tmp_path):
    subprocess.run(['htpasswd', '-cbB', '-C', '5', str(tmp_path / 'htpasswd'), 'dave', 'dave-pw'], check=True,
                   capture_output=True)
    subprocess.run(['htpasswd', '-b5', str(tmp_path / 'htpasswd'), 'erin', 'erin-pw'], check=True,
                   capture_output=True)
    (tmp_path / 'jwks.json').write_text(json.dumps(keys.jwks((keys.rsa, 'r1', 'RS256'), (keys.ec, 'e1', 'ES256'))))
    (tmp_path / 'jwks-all.json').write_text(json.dumps(keys.jwks(
        (keys.rsa, 'r1', 'RS512'), (keys.ec384, 'e3', 'ES384'), (keys.ed, 'd1', 'EdDSA'))))
    bcrypt = subprocess.run(['htpasswd', '-nbB', '-C', '5', 'bob', 'bob-pw'], check=True, capture_output=True,
                            text=True).stdout.strip().split(':', 1)[1]
    g = tollgate(CONFIG, b1=backend.addr, bob_hash=hashlib.sha256(b'bob-key').hexdigest(),
                 bob_bcrypt=bcrypt.replace('$', '$$'), hs_secret=HS_SECRET)
    g.backend = backend
    return g


def get(gw, path, headers=None):
    return http_request(gw.port, 'GET', path, headers=headers)


def upstream_headers(r):
    return {n.lower(): v for n, v in r.json()['headers']}


def check_401(r, *challenges):
    doc = assert_gateway_error(r.status, r.header, r.body, 401)
    got = [v for n, v in r.headers if n.lower() == 'www-authenticate']
    assert got == list(challenges), got
    return doc


def basic(user, pw):
    return {'Authorization': 'Basic ' + base64.b64encode(f'{user}:{pw}'.encode()).decode()}


# ---------------------------------------------------------------- API keys

def test_api_key_header_query_plain_and_hashed(gw):
    r = get(gw, '/key/echo', {'X-API-Key': 'plain-key-alice'})
    assert r.status == 200
    h = upstream_headers(r)
    assert h['x-consumer-name'] == 'alice' and h['x-consumer-groups'] == 'paid,beta'
    assert 'x-api-key' not in h  # removed before forwarding (hide: true)
    r = get(gw, '/key/echo?a=1&api_key=bob-key&b=2')
    assert r.status == 200
    assert upstream_headers(r)['x-consumer-name'] == 'bob' and 'x-consumer-groups' not in upstream_headers(r)
    assert r.json()['path'] == '/key/echo?a=1&b=2'
    r = get(gw, '/key/echo?api_key=bob-key', {'X-API-Key': 'plain-key-alice'})  # the header wins
    assert upstream_headers(r)['x-consumer-name'] == 'alice' and r.json()['path'] == '/key/echo'


def test_api_key_wrong_missing_and_hide_false(gw):
    check_401(get(gw, '/key/echo', {'X-API-Key': 'plain-key-alicE'}), 'ApiKey realm="tollgate"')
    doc = check_401(get(gw, '/key/echo'), 'ApiKey realm="tollgate"')
    assert doc['error'] == 'unauthorized'
    r = get(gw, '/keep/echo', {'X-API-Key': 'plain-key-alice'})
    assert r.status == 200 and upstream_headers(r)['x-api-key'] == 'plain-key-alice'
    check_401(get(gw, '/keep/echo?api_key=plain-key-alice'), 'ApiKey realm="keys"')  # key in the wrong place


def test_spoofed_consumer_headers_are_removed(gw):
    spoof = {'X-Consumer-Name': 'admin', 'X-Consumer-Groups': 'staff', 'X-API-Key': 'bob-key'}
    h = upstream_headers(get(gw, '/key/echo', spoof))
    assert h['x-consumer-name'] == 'bob' and 'x-consumer-groups' not in h
    r = get(gw, '/optional/echo', {'X-Consumer-Name': 'admin', 'X-Consumer-Groups': 'staff'})
    assert r.status == 200
    h = upstream_headers(r)
    assert 'x-consumer-name' not in h and 'x-consumer-groups' not in h


def test_optional_lets_anonymous_through_but_not_bad_keys(gw):
    assert get(gw, '/optional/echo').status == 200
    assert upstream_headers(get(gw, '/optional/echo', {'X-API-Key': 'plain-key-alice'}))['x-consumer-name'] == 'alice'
    check_401(get(gw, '/optional/echo', {'X-API-Key': 'nope'}), 'ApiKey realm="tollgate"')


# ---------------------------------------------------------------- Basic

def test_basic_consumer_and_htpasswd_users(gw):
    h = upstream_headers(get(gw, '/basic/echo', basic('bob', 'bob-pw')))
    assert h['x-consumer-name'] == 'bob'
    h = upstream_headers(get(gw, '/basic/echo', basic('dave', 'dave-pw')))  # htpasswd bcrypt
    assert h['x-consumer-name'] == 'dave'
    h = upstream_headers(get(gw, '/basic/echo', basic('erin', 'erin-pw')))  # htpasswd sha256-crypt
    assert h['x-consumer-name'] == 'erin'
    for _ in range(2):  # the second check is served from the verified-credential cache
        assert get(gw, '/basic/echo', basic('dave', 'dave-pw')).status == 200


def test_basic_failures(gw):
    check_401(get(gw, '/basic/echo', basic('dave', 'wrong')), 'Basic realm="users"')
    check_401(get(gw, '/basic/echo', basic('nobody', 'dave-pw')), 'Basic realm="users"')
    check_401(get(gw, '/basic/echo', {'Authorization': 'Basic !!!notbase64'}), 'Basic realm="users"')
    check_401(get(gw, '/basic/echo'), 'Basic realm="users"')


def test_basic_hashing_does_not_block_other_requests(gw):
    """bcrypt runs on the thread pool: a burst of uncached checks must not stall
    a plain request on the same (single) worker loop."""
    results = []

    def slow():
        results.append(get(gw, '/basic/echo', basic('dave', 'wrong-%d' % len(results))).status)
    ts = [threading.Thread(target=slow) for _ in range(6)]
    for t in ts:
        t.start()
    assert get(gw, '/key/echo', {'X-API-Key': 'plain-key-alice'}).status == 200
    for t in ts:
        t.join(30)
    assert results == [401] * 6


# ---------------------------------------------------------------- JWT

def test_jwt_hs256_identity_scopes_and_claim_headers(gw):
    t = token(HS_SECRET, 'HS256', sub='carol', scope='users:read users:write')
    r = get(gw, '/hs/echo', {'Authorization': 'Bearer ' + t, 'X-User-Id': 'spoofed'})
    assert r.status == 200, r
    h = upstream_headers(r)
    assert h['x-consumer-name'] == 'carol' and h['x-consumer-groups'] == 'staff'
    assert h['x-user-id'] == 'carol' and h['x-scopes'] == 'users:read users:write'
    # an unconfigured consumer: the name, no groups
    h = upstream_headers(get(gw, '/hs/echo', {'Authorization': 'Bearer ' + token(HS_SECRET, 'HS256', sub='zed')}))
    assert h['x-consumer-name'] == 'zed' and 'x-consumer-groups' not in h


def test_jwt_rs_ps_es_from_jwks_file(gw, keys):
    for key, alg, kid in [(keys.rsa, 'RS256', 'r1'), (keys.rsa, 'PS256', 'r1'), (keys.ec, 'ES256', 'e1')]:
        r = get(gw, '/rs/echo', {'Authorization': 'Bearer ' + token(key, alg, kid)})
        assert r.status == 200, (alg, r)
        assert upstream_headers(r)['x-consumer-name'] == 'alice'


@pytest.mark.parametrize('attack', ['none', 'confusion', 'expired', 'not_yet', 'iss', 'aud', 'bad_sig',
                                    'unknown_kid', 'tampered', 'wrong_alg_key', 'no_exp', 'garbage',
                                    'hs_unlisted'])
def test_jwt_attacks_are_401(gw, keys, attack):
    now = int(time.time())
    pem = keys.rsa.public_key().public_bytes(serialization.Encoding.PEM,
                                             serialization.PublicFormat.SubjectPublicKeyInfo)
    good = token(keys.rsa, 'RS256', 'r1')
    h, p, s = good.split('.')
    if attack == 'none':
        t = b64u(json.dumps({'alg': 'none', 'kid': 'r1'}).encode()) + '.' + p + '.'
    elif attack == 'confusion':  # the RSA public key used as an HMAC secret
        hdr = b64u(json.dumps({'alg': 'HS256', 'kid': 'r1', 'typ': 'JWT'}).encode())
        import hmac
        sig = hmac.new(pem, f'{hdr}.{p}'.encode(), hashlib.sha256).digest()
        t = f'{hdr}.{p}.{b64u(sig)}'
    elif attack == 'expired':
        t = token(keys.rsa, 'RS256', 'r1', exp=now - 60)
    elif attack == 'not_yet':
        t = token(keys.rsa, 'RS256', 'r1', nbf=now + 120)
    elif attack == 'iss':
        t = token(keys.rsa, 'RS256', 'r1', iss='https://evil.test/')
    elif attack == 'aud':
        t = token(keys.rsa, 'RS256', 'r1', aud='other')
    elif attack == 'bad_sig':
        t = token(keys.rsa2, 'RS256', 'r1')
    elif attack == 'unknown_kid':
        t = token(keys.rsa, 'RS256', 'nope')
    elif attack == 'tampered':
        claims = json.loads(base64.urlsafe_b64decode(p + '=' * (-len(p) % 4)))
        claims['sub'] = 'admin'
        t = f'{h}.{b64u(json.dumps(claims).encode())}.{s}'
    elif attack == 'wrong_alg_key':  # an ES256 header naming the RSA key
        t = token(keys.ec, 'ES256', 'r1')
    elif attack == 'no_exp':
        t = token(keys.rsa, 'RS256', 'r1', exp=None)
    elif attack == 'garbage':
        t = 'abc.def'
    else:  # HS256 is not in this route's algorithms
        t = token(HS_SECRET, 'HS256', 'r1')
    doc = check_401(get(gw, '/rs/echo', {'Authorization': 'Bearer ' + t}), 'Bearer realm="tollgate"')
    assert doc['error'] == 'invalid_credentials'
    assert gw.backend.log() == []  # nothing reached the backend


def test_jwt_clock_skew(gw, keys):
    now = int(time.time())
    assert get(gw, '/rs/echo', {'Authorization': 'Bearer ' + token(keys.rsa, 'RS256', 'r1', exp=now - 2)}).status == 200
    assert get(gw, '/rs/echo', {'Authorization': 'Bearer ' + token(keys.rsa, 'RS256', 'r1', nbf=now + 2)}).status == 200


def test_jwt_token_in_query_is_not_read(gw, keys):
    check_401(get(gw, '/rs/echo?access_token=' + token(keys.rsa, 'RS256', 'r1')), 'Bearer realm="tollgate"')


# ---------------------------------------------------------------- any

def test_any_first_present_credential_decides(gw):
    ch = ('Bearer realm="tollgate"', 'ApiKey realm="tollgate"', 'Basic realm="tollgate"')
    check_401(get(gw, '/any/echo'), *ch)
    assert upstream_headers(get(gw, '/any/echo', {'X-API-Key': 'plain-key-alice'}))['x-consumer-name'] == 'alice'
    assert upstream_headers(get(gw, '/any/echo', basic('bob', 'bob-pw')))['x-consumer-name'] == 'bob'
    t = token(HS_SECRET, 'HS256', sub='carol')
    assert upstream_headers(get(gw, '/any/echo', {'Authorization': 'Bearer ' + t}))['x-consumer-name'] == 'carol'
    # a bad JWT is 401 even with a good API key: no fall-through
    r = get(gw, '/any/echo', {'Authorization': 'Bearer x.y.z', 'X-API-Key': 'plain-key-alice'})
    check_401(r, *ch)


# ---------------------------------------------------------------- JWKS URL

JWKS_URL_CONFIG = r"""
server: { listen: ["$listen"] }
upstreams:
  u: { servers: ["$b1"] }
routes:
  - name: rs
    upstream: u
    auth: { jwt: { jwks: "http://127.0.0.1:$jwks_port/jwks.json", algorithms: [RS256], jwks_refresh: 1h } }
"""


def test_jwks_url_rotation_and_outage(tollgate, backend, keys):
    srv = JwksServer(keys.jwks((keys.rsa, 'r1', 'RS256')))
    try:
        gw = tollgate(JWKS_URL_CONFIG, b1=backend.addr, jwks_port=srv.port)
        auth = lambda key, kid: {'Authorization': 'Bearer ' + token(key, 'RS256', kid)}
        wait_until(lambda: get(gw, '/echo', auth(keys.rsa, 'r1')).status == 200, 15, what='first JWKS fetch')
        # rotation: a new kid is fetched on demand
        srv.doc = keys.jwks((keys.rsa2, 'r2', 'RS256'))
        hits = srv.hits
        r = get(gw, '/echo', auth(keys.rsa2, 'r2'))
        assert r.status == 200, r
        assert srv.hits == hits + 1
        # another unknown kid right after: no refetch within 10 s, 401
        check_401(get(gw, '/echo', auth(keys.rsa, 'r9')), 'Bearer realm="tollgate"')
        assert srv.hits == hits + 1
        # the key server goes down: the last good set keeps working
        srv.stop()
        assert get(gw, '/echo', auth(keys.rsa2, 'r2')).status == 200
    finally:
        srv.stop() if srv.t.is_alive() else None


def test_jwks_never_fetched_is_503(tollgate, backend, keys):
    from conftest import free_port
    gw = tollgate(JWKS_URL_CONFIG, b1=backend.addr, jwks_port=free_port())
    r = get(gw, '/echo', {'Authorization': 'Bearer ' + token(keys.rsa, 'RS256', 'r1')})
    doc = assert_gateway_error(r.status, r.header, r.body, 503)
    assert doc['error'] == 'auth_unavailable'


# ---------------------------------------------------------------- config errors

def test_config_errors_name_file_line_and_key(tmp_path):
    from conftest import run_tollgate
    cfg = tmp_path / 't.yaml'
    cfg.write_text(
        'consumers:\n'
        '  - { name: a, api_keys: ["sha256:xyz"] }\n'
        '  - { name: a, basic_password: "$apr1$abc$def" }\n'
        'upstreams: { u: { servers: ["127.0.0.1:1"] } }\n'
        'routes:\n'
        '  - upstream: u\n'
        '    auth: { any: [jwt], jwt: { algorithms: [none], secret: short }, api_key: {} }\n'
        '    match: { json: { "order": x } }\n')
    cp = run_tollgate(['-t', '-c', str(cfg)])
    assert cp.returncode == 1
    err = cp.stderr + cp.stdout
    for want in ['t.yaml:2:27: consumers[0].api_keys[0]: sha256: must be followed by 64 hex digits',
                 't.yaml:3:5: consumers[1]: duplicate consumer name "a"',
                 'consumers[1].basic_password: MD5 hashes',
                 'routes[0].auth.jwt.algorithms: unknown or refused algorithm "none"',
                 'routes[0].auth.jwt.secret: an HMAC secret needs at least 32 bytes',
                 'routes[0].auth.api_key: configured but not listed in auth.any',
                 'routes[0].match.json.order: "order" is not a JSON Pointer']:
        assert want in err, (want, err)


METRICS_CONFIG = r"""
server: { listen: ["$listen"] }
admin: { listen: "127.0.0.1:$admin_port" }
consumers: [ { name: alice, api_keys: [k1] } ]
upstreams:
  u: { servers: ["$b1"] }
routes:
  - name: keyed
    upstream: u
    auth: { api_key: {} }
"""


def test_auth_failures_metric(tollgate, backend):
    from conftest import free_port
    admin = free_port()
    gw = tollgate(METRICS_CONFIG, b1=backend.addr, admin_port=admin)
    assert get(gw, '/x').status == 401
    assert get(gw, '/x', {'X-API-Key': 'bad'}).status == 401
    assert get(gw, '/x', {'X-API-Key': 'bad'}).status == 401
    assert get(gw, '/x', {'X-API-Key': 'k1'}).status == 200
    text = wait_until(lambda: (lambda r: r.status == 200 and r.body.decode())(http_request(admin, 'GET', '/metrics')),
                      10, what='metrics')
    assert 'tollgate_auth_failures_total{route="keyed",method="none"} 1' in text, text
    assert 'tollgate_auth_failures_total{route="keyed",method="api_key"} 2' in text, text


def test_jwt_rs512_ps384_es384_eddsa(gw, keys):
    for key, alg, kid in [(keys.rsa, 'RS512', 'r1'), (keys.rsa, 'PS384', 'r1'), (keys.ec384, 'ES384', 'e3'),
                          (keys.ed, 'EdDSA', 'd1'), (keys.ed, 'EdDSA', None)]:
        r = get(gw, '/mixed/echo', {'Authorization': 'Bearer ' + token(key, alg, kid)})
        assert r.status == 200, (alg, r)


def test_alg_confusion_when_hs256_is_allowed(gw, keys):
    """HS256 is an allowed algorithm here, yet an RSA (or EC) public key must
    never serve as its HMAC secret: the key type has to fit the algorithm."""
    import hmac
    _, p, _ = token(keys.rsa, 'RS512', 'r1').split('.')
    for key in (keys.rsa, keys.ec384):
        for fmt in (serialization.PublicFormat.SubjectPublicKeyInfo, serialization.PublicFormat.PKCS1):
            if fmt == serialization.PublicFormat.PKCS1 and key is keys.ec384:
                continue
            pem = key.public_key().public_bytes(serialization.Encoding.PEM, fmt)
            for kid in ('r1', 'e3', None):
                hdr = b64u(json.dumps({'alg': 'HS256', 'typ': 'JWT', **({'kid': kid} if kid else {})}).encode())
                sig = hmac.new(pem, f'{hdr}.{p}'.encode(), hashlib.sha256).digest()
                r = get(gw, '/mixed/echo', {'Authorization': f'Bearer {hdr}.{p}.{b64u(sig)}'})
                check_401(r, 'Bearer realm="tollgate"')


RELOAD_CONFIG = r"""
server: { listen: ["$listen"] }
admin: { listen: "127.0.0.1:$admin_port" }
htpasswd: $tmp/reload.htpasswd
upstreams:
  u: { servers: ["$b1"] }
routes:
  - name: basic
    upstream: u
    auth: { basic: {} }
"""


def test_reload_rereads_the_htpasswd_file(tollgate, backend, tmp_path):
    from conftest import free_port
    pw = tmp_path / 'reload.htpasswd'
    subprocess.run(['htpasswd', '-cbB', '-C', '5', str(pw), 'old', 'old-pw'], check=True, capture_output=True)
    admin = free_port()
    gw = tollgate(RELOAD_CONFIG, b1=backend.addr, admin_port=admin)
    assert get(gw, '/echo', basic('old', 'old-pw')).status == 200
    assert get(gw, '/echo', basic('new', 'new-pw')).status == 401
    subprocess.run(['htpasswd', '-bB', '-C', '5', str(pw), 'new', 'new-pw'], check=True, capture_output=True)
    subprocess.run(['htpasswd', '-D', str(pw), 'old'], check=True, capture_output=True)
    r = http_request(admin, 'POST', '/reload')
    assert r.status == 200, r
    assert get(gw, '/echo', basic('new', 'new-pw')).status == 200
    assert get(gw, '/echo', basic('old', 'old-pw')).status == 401  # the old cache went with the old config


def test_effective_config_shows_security_and_redacts_credentials(tollgate, backend):
    from conftest import free_port
    admin = free_port()
    gw = tollgate(METRICS_CONFIG, b1=backend.addr, admin_port=admin)
    r = http_request(admin, 'GET', '/config')
    assert r.status == 200
    doc = r.json()
    assert doc['consumers'] == [{'name': 'alice', 'groups': [], 'api_keys': ['[redacted]']}]
    assert doc['routes'][0]['auth'] == {'any': ['api_key'], 'optional': False,
                                        'api_key': {'header': 'X-API-Key', 'hide': True, 'realm': 'tollgate'}}
    assert b'k1' not in r.body


SHORT_COORD_CONFIG = r"""
server: { listen: ["$listen"] }
upstreams:
  u: { servers: ["$b1"] }
routes:
  - match: { path: /ec }
    upstream: u
    auth: { jwt: { jwks: $jwks, algorithms: [ES256] } }
"""


def test_ec_jwk_with_stripped_leading_zero_coordinate(tollgate, backend, tmp_path):
    """PyJWT < 2.7 (Debian's) strips leading zero bytes from EC coordinates
    (RFC 7518 wants full length). The key is the same integer: it must load
    and verify, and a token signed by another key must still be refused."""
    for _ in range(4096):  # about 1 key in 128 has a coordinate below 2**248
        key = ec.generate_private_key(ec.SECP256R1())
        nums = key.public_key().public_numbers()
        if nums.x < 1 << 248 or nums.y < 1 << 248:
            break
    else:
        pytest.fail('no EC key with a short coordinate found')
    jwk = jwk_of(key, 'short', 'ES256')
    raw = base64.urlsafe_b64decode(jwk['x'] + '==') if nums.x < 1 << 248 else \
        base64.urlsafe_b64decode(jwk['y'] + '==')
    assert len(raw) < 32  # the producer really wrote a short coordinate
    path = tmp_path / 'jwks-short.json'
    path.write_text(json.dumps({'keys': [jwk]}))
    g = tollgate(SHORT_COORD_CONFIG, b1=backend.addr, jwks=str(path))
    ok = http_request(g.port, 'GET', '/ec', headers={'Authorization': 'Bearer ' + token(key, 'ES256', 'short')})
    assert ok.status == 200, ok
    other = ec.generate_private_key(ec.SECP256R1())
    bad = http_request(g.port, 'GET', '/ec', headers={'Authorization': 'Bearer ' + token(other, 'ES256', 'short')})
    assert bad.status == 401
