"""Content-based routing (match.json): JSON Pointer → value; only routes that
ask for it read the body; non-JSON bodies fail the matcher; the body is
forwarded unchanged to whichever route wins."""
import hashlib
import json

import pytest

from conftest import http_request

CONFIG = r"""
server: { listen: ["$listen"] }
upstreams:
  a: { servers: ["$ba"] }
  b: { servers: ["$bb"] }
routes:
  - name: wholesale
    match: { path: /orders, json: { "/order/type": wholesale, "/order/qty": "10" } }
    upstream: a
  - name: vip
    match: { path: /orders, json: { "/customer/tier": "~^(gold|platinum)$", "/flags/0": present } }
    upstream: a
  - name: small
    match: { path: /orders, json: { "/order/type": retail } }
    limits: { max_body_bytes: 64 }
    upstream: a
  - name: other
    match: { path: /orders }
    upstream: b
"""


@pytest.fixture
def gw(tollgate, backends):
    ba, bb = backends(2, names=['A', 'B'])
    return tollgate(CONFIG, ba=ba.addr, bb=bb.addr)


def post(gw, body, ctype='application/json'):
    data = json.dumps(body).encode() if not isinstance(body, bytes) else body
    r = http_request(gw.port, 'POST', '/orders/echo', headers={'Content-Type': ctype}, body=data)
    assert r.status == 200, r
    assert r.json()['body_sha256'] == hashlib.sha256(data).hexdigest()
    return r.json()['name']


def test_json_values_choose_the_route(gw):
    assert post(gw, {"order": {"type": "wholesale", "qty": 10}}) == 'A'
    assert post(gw, {"order": {"type": "wholesale", "qty": 11}}) == 'B'
    assert post(gw, {"customer": {"tier": "gold"}, "flags": [False]}) == 'A'
    assert post(gw, {"customer": {"tier": "bronze"}, "flags": [1]}) == 'B'


def test_not_json_and_no_body_fail_the_matcher(gw):
    assert post(gw, b'order=wholesale', 'application/x-www-form-urlencoded') == 'B'
    r = http_request(gw.port, 'GET', '/orders/echo')
    assert r.status == 200 and r.json()['name'] == 'B'


def test_body_over_the_candidate_limit_moves_on(gw):
    assert post(gw, {"order": {"type": "retail"}}) == 'A'
    assert post(gw, {"order": {"type": "retail", "note": "x" * 100}}) == 'B'
