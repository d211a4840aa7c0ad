"""Validation (route validate, limits): content_types (415), body size (413,
Content-Length and chunked), json_schema (400 invalid_body with the pointer);
valid bodies are forwarded unchanged."""
import hashlib
import json

import pytest

from conftest import RawConn, assert_gateway_error, build_request, http_request

SCHEMA = {
    "$defs": {"qty": {"type": "integer", "minimum": 1, "maximum": 100}},
    "type": "object",
    "required": ["order"],
    "properties": {
        "order": {
            "type": "object",
            "required": ["sku", "qty"],
            "additionalProperties": False,
            "properties": {
                "sku": {"type": "string", "pattern": "^[A-Z]{3}-\\d+$"},
                "qty": {"$ref": "#/$defs/qty"},
                "tags": {"type": "array", "items": {"enum": ["gift", "rush"]}, "maxItems": 2},
            },
        }
    },
}

CONFIG = r"""
server: { listen: ["$listen"] }
upstreams:
  u: { servers: ["$b1"] }
routes:
  - name: orders
    match: { path: /orders }
    upstream: u
    validate: { content_types: [application/json], json_schema: schema.json }
    limits: { max_body_bytes: 2KiB }
  - name: types
    match: { path: /types }
    upstream: u
    validate: { content_types: [text/plain, application/xml] }
"""


@pytest.fixture
def gw(tollgate, backend, tmp_path):
    (tmp_path / 'schema.json').write_text(json.dumps(SCHEMA))
    return tollgate(CONFIG, b1=backend.addr)


def post(gw, path, body, ctype='application/json'):
    return http_request(gw.port, 'POST', path, headers={'Content-Type': ctype}, body=body)


GOOD = json.dumps({"order": {"sku": "ABC-12", "qty": 3, "tags": ["gift"]}}).encode()


def test_valid_body_is_forwarded_unchanged(gw):
    r = post(gw, '/orders/echo', GOOD, 'application/json; charset=utf-8')
    assert r.status == 200, r
    assert r.json()['body_sha256'] == hashlib.sha256(GOOD).hexdigest()


@pytest.mark.parametrize('body,pointer', [
    ({"order": {"sku": "ABC-12", "qty": 0}}, '/order/qty'),
    ({"order": {"sku": "abc", "qty": 1}}, '/order/sku'),
    ({"order": {"sku": "ABC-1"}}, '/order/qty'),
    ({}, '/order'),
    ({"order": {"sku": "ABC-1", "qty": 1, "x": 1}}, '/order/x'),
    ({"order": {"sku": "ABC-1", "qty": 1, "tags": ["gift", "nope"]}}, '/order/tags/1'),
    ({"order": {"sku": "ABC-1", "qty": "1"}}, '/order/qty'),
])
def test_invalid_bodies_name_the_pointer(gw, backend, body, pointer):
    r = post(gw, '/orders/echo', json.dumps(body).encode())
    doc = assert_gateway_error(r.status, r.header, r.body, 400)
    assert doc['error'] == 'invalid_body' and doc['pointer'] == pointer and doc['reason'], doc
    assert backend.log() == []


def test_not_json_is_400(gw):
    r = post(gw, '/orders/echo', b'{"order": ')
    assert assert_gateway_error(r.status, r.header, r.body, 400)['pointer'] == ''


def test_content_type_415(gw):
    r = post(gw, '/orders/echo', GOOD, 'text/plain')
    assert_gateway_error(r.status, r.header, r.body, 415)
    r = post(gw, '/types/echo', b'x', 'application/XML')
    assert r.status == 200
    assert http_request(gw.port, 'GET', '/types/echo').status == 200  # no body: no check


def test_body_limit_413_content_length_and_chunked(gw):
    big = b'{"order": "' + b'x' * 3000 + b'"}'
    r = post(gw, '/orders/echo', big)
    assert_gateway_error(r.status, r.header, r.body, 413)
    with RawConn(gw.port) as c:
        chunks = b''.join(b'%x\r\n%s\r\n' % (500, b'y' * 500) for _ in range(6)) + b'0\r\n\r\n'
        c.send(build_request('POST', '/orders/echo', {'Content-Type': 'application/json',
                                                      'Transfer-Encoding': 'chunked'}) + chunks)
        resp = c.read_response()
        assert resp.status == 413


def test_chunked_valid_body_becomes_content_length(gw):
    with RawConn(gw.port) as c:
        half = len(GOOD) // 2
        body = b'%x\r\n%s\r\n%x\r\n%s\r\n0\r\n\r\n' % (half, GOOD[:half], len(GOOD) - half, GOOD[half:])
        c.send(build_request('POST', '/orders/echo', {'Content-Type': 'application/json',
                                                      'Transfer-Encoding': 'chunked'}) + body)
        resp = c.read_response()
        assert resp.status == 200, resp
        doc = resp.json()
        assert doc['body_sha256'] == hashlib.sha256(GOOD).hexdigest()
        heads = {n.lower(): v for n, v in doc['headers']}
        assert heads['content-length'] == str(len(GOOD)) and 'transfer-encoding' not in heads


def test_bodiless_requests_are_not_schema_checked(gw):
    assert http_request(gw.port, 'GET', '/orders/echo').status == 200
    r = http_request(gw.port, 'POST', '/orders/echo', headers={'Content-Type': 'application/json'}, body=b'')
    assert r.status == 200
