"""Trailers on request bodies the gateway buffers (validate.json_schema and
match.json routes): a chunked request that ends with trailer fields is
replayed upstream chunked, with its trailers; one without trailers goes
with Content-Length (test_validate covers that case)."""
import hashlib
import json

import pytest

from conftest import RawConn, build_request

CONFIG = r"""
server: { listen: ["$listen"] }
upstreams:
  u: { servers: ["$b1"] }
routes:
  - name: validated
    match: { path: /orders }
    upstream: u
    validate: { content_types: [application/json], json_schema: schema.json }
  - name: by-json
    match: { path: /routed, json: { "/kind": "a" } }
    upstream: u
"""

SCHEMA = {"type": "object", "required": ["kind"], "properties": {"kind": {"type": "string"}}}
BODY = json.dumps({"kind": "a", "pad": "x" * 3000}).encode()


@pytest.fixture
def gw(tollgate, backend, tmp_path):
    (tmp_path / 'schema.json').write_text(json.dumps(SCHEMA))
    return tollgate(CONFIG, b1=backend.addr)


def chunked(body, trailers=b''):
    third = len(body) // 3
    parts = [body[:third], body[third:2 * third], body[2 * third:]]
    return b''.join(b'%x\r\n%s\r\n' % (len(p), p) for p in parts) + b'0\r\n' + trailers + b'\r\n'


@pytest.mark.parametrize('path', ['/orders/echo', '/routed/echo'])
def test_buffered_chunked_body_keeps_its_trailers(gw, path):
    with RawConn(gw.port) as c:
        for i in range(2):  # twice on one connection: the framing stays in step
            c.send(build_request('POST', path, {'Content-Type': 'application/json',
                                                'Transfer-Encoding': 'chunked', 'Trailer': 'X-Checksum'})
                   + chunked(BODY, b'X-Checksum: sha256=%d\r\nX-Other: two words\r\n' % i))
            resp = c.read_response()
            assert resp.status == 200, resp
            doc = resp.json()
            assert doc['body_sha256'] == hashlib.sha256(BODY).hexdigest()
            assert doc['trailers'] == [['X-Checksum', f'sha256={i}'], ['X-Other', 'two words']], doc
            heads = {n.lower(): v for n, v in doc['headers']}
            assert heads.get('transfer-encoding') == 'chunked' and 'content-length' not in heads, heads


def test_invalid_body_with_trailers_is_still_refused(gw, backend):
    bad = json.dumps({"kind": 7}).encode()
    with RawConn(gw.port) as c:
        c.send(build_request('POST', '/orders/echo', {'Content-Type': 'application/json',
                                                      'Transfer-Encoding': 'chunked'})
               + chunked(bad, b'X-Checksum: 1\r\n'))
        assert c.read_response().status == 400
    assert backend.log() == []


def test_buffered_chunked_body_without_trailers_goes_with_content_length(gw):
    with RawConn(gw.port) as c:
        c.send(build_request('POST', '/routed/echo', {'Content-Type': 'application/json',
                                                      'Transfer-Encoding': 'chunked'}) + chunked(BODY))
        resp = c.read_response()
        assert resp.status == 200, resp
        doc = resp.json()
        heads = {n.lower(): v for n, v in doc['headers']}
        assert heads['content-length'] == str(len(BODY)) and doc['trailers'] == [], doc
