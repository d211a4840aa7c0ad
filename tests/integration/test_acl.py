"""Authorization (route allow/deny): consumer groups, JWT scopes (scope string
and scp array), client IP CIDRs (v4 and v6, with trusted_proxies), deny wins,
403 JSON; X-Forwarded-For from an untrusted peer is not believed."""
import time

import jwt
import pytest

from conftest import assert_gateway_error, http_request

SECRET = 'an-hmac-secret-that-is-long-enough-0123456789'

CONFIG = r"""
server:
  listen: ["$listen", "[::1]:$port"]
  trusted_proxies: [127.0.0.2]
consumers:
  - { name: alice, groups: [paid], api_keys: [alice-key] }
  - { name: bob, groups: [free, banned], api_keys: [bob-key] }
upstreams:
  u: { servers: ["$b1"] }
routes:
  - name: groups
    match: { path: /paid }
    upstream: u
    auth: { api_key: {} }
    allow: { groups: [paid, gold] }
  - name: deny-wins
    match: { path: /both }
    upstream: u
    auth: { api_key: {} }
    allow: { groups: [paid, free] }
    deny: { groups: [banned] }
  - name: scopes
    match: { path: /scoped }
    upstream: u
    auth: { jwt: { secret: "$secret" } }
    allow: { scopes: [users:read, users:write] }
  - name: ip
    match: { path: /ip }
    upstream: u
    allow: { ip: [127.0.0.0/8, "::1"] }
    deny: { ip: [127.0.0.3/32, 10.66.0.0/16] }
  - name: xff
    match: { path: /office }
    upstream: u
    allow: { ip: [203.0.113.0/24] }
"""


@pytest.fixture
def gw(tollgate, backend):
    return tollgate(CONFIG, b1=backend.addr, secret=SECRET)


def get(port, path, headers=None, host='127.0.0.1', src=None):
    import http.client
    c = http.client.HTTPConnection(host, port, timeout=10, source_address=(src, 0) if src else None)
    try:
        c.request('GET', path, headers=headers or {})
        r = c.getresponse()
        return r.status, r.getheader, r.read()
    finally:
        c.close()


def forbidden(res):
    status, hget, body = res
    assert assert_gateway_error(status, hget, body, 403)['error'] == 'forbidden'


def tok(**claims):
    claims.setdefault('exp', int(time.time()) + 300)
    return {'Authorization': 'Bearer ' + jwt.encode(claims, SECRET, algorithm='HS256')}


def test_groups(gw):
    assert get(gw.port, '/paid', {'X-API-Key': 'alice-key'})[0] == 200
    forbidden(get(gw.port, '/paid', {'X-API-Key': 'bob-key'}))


def test_deny_wins_over_allow(gw):
    assert get(gw.port, '/both', {'X-API-Key': 'alice-key'})[0] == 200
    forbidden(get(gw.port, '/both', {'X-API-Key': 'bob-key'}))


def test_scopes_string_and_array(gw):
    assert get(gw.port, '/scoped', tok(scope='users:read users:write admin'))[0] == 200
    assert get(gw.port, '/scoped', tok(scp=['users:write', 'users:read']))[0] == 200
    forbidden(get(gw.port, '/scoped', tok(scope='users:read')))
    forbidden(get(gw.port, '/scoped', tok()))


def test_ip_v4_v6_and_deny(gw):
    assert get(gw.port, '/ip')[0] == 200
    assert get(gw.port, '/ip', host='::1')[0] == 200
    forbidden(get(gw.port, '/ip', src='127.0.0.3'))


def test_xff_spoofing_from_untrusted_peer(gw):
    # 127.0.0.1 is not a trusted proxy: its X-Forwarded-For is ignored
    forbidden(get(gw.port, '/office', {'X-Forwarded-For': '203.0.113.7'}))
    forbidden(get(gw.port, '/ip', {'X-Forwarded-For': '127.0.0.1'}, src='127.0.0.3'))
    # a trusted proxy's X-Forwarded-For is believed
    assert get(gw.port, '/office', {'X-Forwarded-For': '203.0.113.7'}, src='127.0.0.2')[0] == 200
    forbidden(get(gw.port, '/ip', {'X-Forwarded-For': '10.66.1.1'}, src='127.0.0.2'))
