"""Edge hardening, framing (RFC 9112): every malformed request is answered by the
gateway itself (400/501/505 JSON, Connection: close), the connection is closed,
and the backend behind it sees nothing; every malformed upstream response becomes
a 502 (or, once the head has gone out, a cut connection) and no byte of it that
follows the error reaches the client. Each row is raw bytes on a real socket.

Near-valid twins of the rejected inputs are accepted (so that a gateway that
rejected everything would fail here too), and the backend then sees exactly one
well-formed request."""
import base64
import json

import pytest

from conftest import RawConn, assert_gateway_error, build_request, http_request, wait_until

CONFIG = """
server:
  listen: ["$listen"]
upstreams:
  u: { servers: ["$b1"], timeouts: { response: 10s } }
routes:
  - match: { path: / }
    upstream: u
"""


@pytest.fixture
def gw(backends, tollgate):
    b1, = backends(1)
    g = tollgate(CONFIG, b1=b1.addr)
    g.backend = b1
    return g


H = b'Host: test.local\r\n'
SMUGGLED = b'GET /smuggled HTTP/1.1\r\nHost: test.local\r\n\r\n'


def post(headers, body=b'', version=b'HTTP/1.1', host=True):
    return (b'POST /echo ' + version + b'\r\n' + (H if host else b'') + headers + b'\r\n' + body)


def chunked(body):
    return post(b'Transfer-Encoding: chunked\r\n', body)


def get_with(field_lines):
    return b'GET /echo HTTP/1.1\r\n' + H + field_lines + b'\r\n'


# (id, raw request, expected status). Every row would be a request smuggling or
# desync vector (or an ambiguity a backend could read differently) if passed on.
BAD_REQUESTS = [
    # -- Content-Length and Transfer-Encoding together (RFC 9112 §6.1, §6.3 rule 3)
    ('cl-te', post(b'Content-Length: 6\r\nTransfer-Encoding: chunked\r\n', b'0\r\n\r\n' + SMUGGLED), 400),
    ('te-cl', post(b'Transfer-Encoding: chunked\r\nContent-Length: 6\r\n', b'0\r\n\r\n' + SMUGGLED), 400),
    ('cl-te-http10', post(b'Content-Length: 5\r\nTransfer-Encoding: chunked\r\n', b'0\r\n\r\n',
                          version=b'HTTP/1.0'), 400),
    # -- Content-Length values (RFC 9110 §8.6, RFC 9112 §6.3 rule 5)
    ('cl-twice-differ', post(b'Content-Length: 5\r\nContent-Length: 6\r\n', b'hello!'), 400),
    ('cl-list-differ', post(b'Content-Length: 5, 6\r\n', b'hello!'), 400),
    ('cl-plus', post(b'Content-Length: +5\r\n', b'hello'), 400),
    ('cl-minus', post(b'Content-Length: -5\r\n', b'hello'), 400),
    ('cl-space-inside', post(b'Content-Length: 1 0\r\n', b'0123456789'), 400),
    ('cl-hex', post(b'Content-Length: 0x5\r\n', b'hello'), 400),
    ('cl-letters', post(b'Content-Length: 5abc\r\n', b'hello'), 400),
    ('cl-decimal', post(b'Content-Length: 5.0\r\n', b'hello'), 400),
    ('cl-empty', post(b'Content-Length: \r\n', b''), 400),
    ('cl-overflow-u64', post(b'Content-Length: 18446744073709551621\r\n', b'hello'), 400),
    ('cl-overflow-huge', post(b'Content-Length: 99999999999999999999999999\r\n', b'hello'), 400),
    ('cl-list-trailing-comma', post(b'Content-Length: 5,\r\n', b'hello'), 400),
    # -- Transfer-Encoding (RFC 9112 §6.1, §6.3 rule 4: chunked must be final)
    ('te-chunked-identity', post(b'Transfer-Encoding: chunked, identity\r\n', b'0\r\n\r\n'), 400),
    ('te-xchunked', post(b'Transfer-Encoding: xchunked\r\n', b'0\r\n\r\n'), 400),
    ('te-chunkedx', post(b'Transfer-Encoding: chunkedx\r\n', b'0\r\n\r\n'), 400),
    ('te-gzip-only', post(b'Transfer-Encoding: gzip\r\n', b'0\r\n\r\n'), 400),
    ('te-identity', post(b'Transfer-Encoding: identity\r\n', b'hello'), 400),
    ('te-twice-fields', post(b'Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n',
                             b'0\r\n\r\n'), 400),
    ('te-twice-list', post(b'Transfer-Encoding: chunked, chunked\r\n', b'0\r\n\r\n'), 400),
    ('te-chunked-then-gzip', post(b'Transfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n',
                                  b'0\r\n\r\n'), 400),
    ('te-empty', post(b'Transfer-Encoding: \r\n', b''), 400),
    ('te-empty-member', post(b'Transfer-Encoding: ,chunked\r\n', b'0\r\n\r\n'), 400),
    ('te-params', post(b'Transfer-Encoding: chunked;q=1\r\n', b'0\r\n\r\n'), 400),
    ('te-quoted', post(b'Transfer-Encoding: "chunked"\r\n', b'0\r\n\r\n'), 400),
    ('te-vtab', post(b'Transfer-Encoding: \x0bchunked\r\n', b'0\r\n\r\n'), 400),
    ('te-http10', post(b'Transfer-Encoding: chunked\r\n', b'0\r\n\r\n', version=b'HTTP/1.0',
                       host=False), 400),
    ('te-unknown-before-chunked', post(b'Transfer-Encoding: gzip, chunked\r\n', b'0\r\n\r\n'), 501),
    # -- chunked body (RFC 9112 §7.1)
    ('chunk-size-nonhex', chunked(b'zz\r\nhello\r\n0\r\n\r\n'), 400),
    ('chunk-size-0x', chunked(b'0x5\r\nhello\r\n0\r\n\r\n'), 400),
    ('chunk-size-negative', chunked(b'-5\r\nhello\r\n0\r\n\r\n'), 400),
    ('chunk-size-plus', chunked(b'+5\r\nhello\r\n0\r\n\r\n'), 400),
    ('chunk-size-leading-space', chunked(b' 5\r\nhello\r\n0\r\n\r\n'), 400),
    ('chunk-size-trailing-junk', chunked(b'5x\r\nhello\r\n0\r\n\r\n'), 400),
    ('chunk-size-trailing-space', chunked(b'5 \r\nhello\r\n0\r\n\r\n'), 400),
    ('chunk-size-empty', chunked(b'\r\nhello\r\n0\r\n\r\n'), 400),
    ('chunk-size-overflow', chunked(b'10000000000000005\r\nhello\r\n0\r\n\r\n'), 400),
    ('chunk-size-bare-lf', chunked(b'5\nhello\r\n0\r\n\r\n'), 400),
    ('chunk-size-bare-cr', chunked(b'5\rhello\r\n0\r\n\r\n'), 400),
    ('chunk-data-no-crlf', chunked(b'5\r\nhelloXX0\r\n\r\n'), 400),
    ('chunk-data-too-long', chunked(b'3\r\nhello\r\n0\r\n\r\n'), 400),
    ('chunk-data-bare-lf', chunked(b'5\r\nhello\n0\r\n\r\n'), 400),
    ('chunk-last-bare-lf', chunked(b'0\r\n\n'), 400),
    ('chunk-ext-oversize', chunked(b'5;' + b'e' * 2000 + b'\r\nhello\r\n0\r\n\r\n'), 400),
    ('chunk-ext-bad-char', chunked(b'5;a@b\r\nhello\r\n0\r\n\r\n'), 400),
    ('chunk-ext-unterminated-quote', chunked(b'5;a="x\r\nhello\r\n0\r\n\r\n'), 400),
    ('chunk-ext-nul', chunked(b'5;a\x00\r\nhello\r\n0\r\n\r\n'), 400),
    ('trailer-oversize', chunked(b'0\r\nX-T: ' + b't' * 9000 + b'\r\n\r\n'), 400),
    ('trailer-obs-fold', chunked(b'0\r\nX-T: a\r\n b\r\n\r\n'), 400),
    ('trailer-space-before-colon', chunked(b'0\r\nX-T : a\r\n\r\n'), 400),
    ('trailer-bare-lf', chunked(b'0\r\nX-T: a\n\r\n'), 400),
    ('trailer-nul', chunked(b'0\r\nX-T: a\x00b\r\n\r\n'), 400),
    ('trailer-no-colon', chunked(b'0\r\nX-T\r\n\r\n'), 400),
    # -- field syntax (RFC 9112 §5, RFC 9110 §5.5)
    ('obs-fold', get_with(b'X-A: one\r\n two\r\n'), 400),
    ('obs-fold-tab', get_with(b'X-A: one\r\n\ttwo\r\n'), 400),
    ('first-line-folded', b'GET /echo HTTP/1.1\r\n ' + H + b'\r\n', 400),
    ('space-before-colon', get_with(b'X-A : v\r\n'), 400),
    ('tab-before-colon', get_with(b'X-A\t: v\r\n'), 400),
    ('space-before-colon-te', post(b'Transfer-Encoding : chunked\r\n', b'0\r\n\r\n'), 400),
    ('space-before-colon-cl', post(b'Content-Length : 5\r\n', b'hello'), 400),
    ('bare-cr-in-value', get_with(b'X-A: a\rb\r\n'), 400),
    ('bare-cr-line-end', get_with(b'X-A: a\rX-B: b\r\n'), 400),
    ('nul-in-value', get_with(b'X-A: a\x00b\r\n'), 400),
    ('ctl-01-in-value', get_with(b'X-A: a\x01b\r\n'), 400),
    ('ctl-esc-in-value', get_with(b'X-A: a\x1b[31mb\r\n'), 400),
    ('del-in-value', get_with(b'X-A: a\x7fb\r\n'), 400),
    ('vtab-in-value', get_with(b'X-A: a\x0bb\r\n'), 400),
    ('formfeed-in-value', get_with(b'X-A: a\x0cb\r\n'), 400),
    ('name-with-space', get_with(b'Bad Name: v\r\n'), 400),
    ('name-with-at', get_with(b'X@A: v\r\n'), 400),
    ('name-with-paren', get_with(b'X(A): v\r\n'), 400),
    ('name-with-slash', get_with(b'X/A: v\r\n'), 400),
    ('name-with-nul', get_with(b'X\x00A: v\r\n'), 400),
    ('name-non-ascii', get_with(b'X-\xc3\xa4: v\r\n'), 400),
    ('name-empty', get_with(b': v\r\n'), 400),
    ('no-colon', get_with(b'X-A v\r\n'), 400),
    # -- request line (RFC 9112 §3)
    ('method-paren', b'GE(T /echo HTTP/1.1\r\n' + H + b'\r\n', 400),
    ('method-at', b'G@T /echo HTTP/1.1\r\n' + H + b'\r\n', 400),
    ('method-nul', b'G\x00T /echo HTTP/1.1\r\n' + H + b'\r\n', 400),
    ('method-non-ascii', b'G\xc3\xa9T /echo HTTP/1.1\r\n' + H + b'\r\n', 400),
    ('method-empty', b' /echo HTTP/1.1\r\n' + H + b'\r\n', 400),
    ('method-tab-sep', b'GET\t/echo HTTP/1.1\r\n' + H + b'\r\n', 400),
    ('double-space', b'GET  /echo HTTP/1.1\r\n' + H + b'\r\n', 400),
    ('trailing-space', b'GET /echo HTTP/1.1 \r\n' + H + b'\r\n', 400),
    ('target-ctl', b'GET /ec\x01ho HTTP/1.1\r\n' + H + b'\r\n', 400),
    ('target-non-ascii', b'GET /\xc3\xa9 HTTP/1.1\r\n' + H + b'\r\n', 400),
    ('target-fragment', b'GET /echo#frag HTTP/1.1\r\n' + H + b'\r\n', 400),
    ('target-asterisk-get', b'GET * HTTP/1.1\r\n' + H + b'\r\n', 400),
    ('target-relative', b'GET echo HTTP/1.1\r\n' + H + b'\r\n', 400),
    ('version-lowercase', b'GET /echo http/1.1\r\n' + H + b'\r\n', 400),
    ('version-garbage', b'GET /echo HTTP/x.y\r\n' + H + b'\r\n', 400),
    ('version-missing', b'GET /echo\r\n' + H + b'\r\n', 400),
    ('version-1.2', b'GET /echo HTTP/1.2\r\n' + H + b'\r\n', 505),
    ('version-2.0', b'GET /echo HTTP/2.0\r\n' + H + b'\r\n', 505),
    # -- Host (RFC 9112 §3.2, RFC 9110 §7.2)
    ('host-missing', b'GET /echo HTTP/1.1\r\nX-A: b\r\n\r\n', 400),
    ('host-twice-same', b'GET /echo HTTP/1.1\r\n' + H + H + b'\r\n', 400),
    ('host-twice-differ', b'GET /echo HTTP/1.1\r\n' + H + b'Host: evil.local\r\n\r\n', 400),
    ('host-list', b'GET /echo HTTP/1.1\r\nHost: a.local, b.local\r\n\r\n', 400),
    ('host-empty', b'GET /echo HTTP/1.1\r\nHost: \r\n\r\n', 400),
    ('host-userinfo', b'GET /echo HTTP/1.1\r\nHost: user@test.local\r\n\r\n', 400),
    ('host-slash', b'GET /echo HTTP/1.1\r\nHost: test.local/x\r\n\r\n', 400),
    ('host-bad-port', b'GET /echo HTTP/1.1\r\nHost: test.local:99999\r\n\r\n', 400),
    ('host-absolute-mismatch', b'GET http://other.local/echo HTTP/1.1\r\n' + H + b'\r\n', 400),
    ('host-absolute-port-mismatch', b'GET http://test.local:81/echo HTTP/1.1\r\n' + H + b'\r\n', 400),
    ('absolute-userinfo', b'GET http://u@test.local/echo HTTP/1.1\r\n' + H + b'\r\n', 400),
    ('absolute-bad-scheme', b'GET ftp://test.local/echo HTTP/1.1\r\n' + H + b'\r\n', 400),
    # -- line endings (RFC 9112 §2.2; bare LF is refused by decision, see docs/security.md)
    ('bare-lf-everywhere', b'GET /echo HTTP/1.1\nHost: test.local\n\n', 400),
    ('bare-lf-request-line', b'GET /echo HTTP/1.1\n' + H + b'\r\n', 400),
    ('bare-lf-one-field', b'GET /echo HTTP/1.1\r\nHost: test.local\nX-A: b\r\n\r\n', 400),
    ('bare-lf-end-of-head', b'GET /echo HTTP/1.1\r\n' + H + b'\n', 400),
    ('bare-cr-end-of-head', b'GET /echo HTTP/1.1\r\n' + H + b'\rX', 400),
]


def expect_rejected(gw, raw, status):
    with RawConn(gw.port, timeout=10) as c:
        c.send(raw)
        r = c.read_response()
        assert_gateway_error(r.status, r.header, r.body, status)
        assert r.version == 'HTTP/1.1', r
        assert (r.header('connection') or '').lower() == 'close', r
        # closed, never reused: nothing after the error (no answer to a smuggled request)
        assert c.wait_closed(10), 'connection left open after a framing error'
        assert c.buf == b'', c.buf[:200]
    return r


@pytest.mark.parametrize('raw,status', [c[1:] for c in BAD_REQUESTS], ids=[c[0] for c in BAD_REQUESTS])
def test_bad_request_rejected_closed_and_not_forwarded(gw, raw, status):
    expect_rejected(gw, raw, status)
    assert gw.backend.log() == [], 'the backend saw a request'


def test_bad_chunk_after_head_was_forwarded_closes_both_sides(gw):
    """A body that turns bad after the head went upstream: the client gets 400 and
    a closed connection; the backend's connection is cut before any end of message,
    so it never sees a complete request (and nothing after the bad chunk)."""
    with RawConn(gw.port, timeout=10) as c:
        c.send(post(b'Transfer-Encoding: chunked\r\n', b'5\r\nhello\r\n').replace(b'/echo', b'/upload'))
        wait_until(lambda: gw.backend.log(), timeout=10, what='the head to reach the backend')
        c.send(b'zz\r\n' + SMUGGLED)
        r = c.read_response()
        assert_gateway_error(r.status, r.header, r.body, 400)
        assert c.wait_closed(10)
    # (the /_stats query is itself the one open connection)
    wait_until(lambda: gw.backend.stats()['open'] <= 1, timeout=10,
               what='the upstream connection to be closed')
    log = gw.backend.log()
    assert [e['target'] for e in log] == ['/upload'], log   # never /smuggled


# Near-valid twins: accepted, and the backend sees exactly one well-formed request.
GOOD_REQUESTS = [
    ('cl-list-identical', post(b'Content-Length: 5, 5\r\n', b'hello'), 'hello'),
    ('cl-twice-identical', post(b'Content-Length: 5\r\nContent-Length: 5\r\n', b'hello'), 'hello'),
    ('cl-leading-zeros', post(b'Content-Length: 005\r\n', b'hello'), 'hello'),
    ('te-mixed-case', post(b'Transfer-Encoding: ChUnKeD\r\n', b'5\r\nhello\r\n0\r\n\r\n'), 'hello'),
    ('te-ows', post(b'Transfer-Encoding:   chunked  \r\n', b'5\r\nhello\r\n0\r\n\r\n'), 'hello'),
    ('chunk-upper-hex-ext', chunked(b'A;name="q \\"x\\"";tok=v\r\n0123456789\r\n0\r\n\r\n'), '0123456789'),
    ('chunk-leading-zeros', chunked(b'0005\r\nhello\r\n0\r\n\r\n'), 'hello'),
    ('chunk-trailers', chunked(b'5\r\nhello\r\n0\r\nX-T: a\r\n\r\n'), 'hello'),
    ('http10-no-host', b'POST /echo HTTP/1.0\r\nConnection: keep-alive\r\nContent-Length: 5\r\n\r\nhello',
     'hello'),
    ('absolute-matching-host', b'POST http://test.local/echo HTTP/1.1\r\n' + H +
     b'Content-Length: 5\r\n\r\nhello', 'hello'),
    ('leading-empty-line', b'\r\n' + post(b'Content-Length: 5\r\n', b'hello'), 'hello'),
    ('value-obs-text-and-tab', post(b'X-A: caf\xe9\tok\r\nContent-Length: 5\r\n', b'hello'), 'hello'),
]


@pytest.mark.parametrize('raw,body', [c[1:] for c in GOOD_REQUESTS], ids=[c[0] for c in GOOD_REQUESTS])
def test_near_valid_twins_are_forwarded_once(gw, raw, body):
    with RawConn(gw.port, timeout=10) as c:
        c.send(raw + build_request('GET', '/echo/after'))
        r = c.read_response()
        assert r.status == 200, r
        doc = r.json()
        assert doc['body_len'] == len(body), doc
        assert c.read_response().status == 200   # the connection stayed in step
    log = gw.backend.log()
    assert [e['target'] for e in log] == ['/echo', '/echo/after'], log
    # re-serialized framing: exactly one Content-Length or one chunked coding
    names = [n.lower() for n, _ in log[0]['headers']]
    assert names.count('content-length') + names.count('transfer-encoding') == 1, log[0]


# ------------------------------------------------------------ response side

def raw_request(data, **q):
    """A request that makes the backend answer exactly `data` (sent as the body)."""
    qs = '&'.join(f'{k}={v}' for k, v in q.items())
    return build_request('POST', '/raw' + ('?' + qs if qs else ''), body=data)


OK = b'HTTP/1.1 200 OK\r\n'
EVIL = b'EVIL-MARKER'

BAD_RESPONSES = [
    ('cl-te', OK + b'Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nEVIL-MARKER\r\n0\r\n\r\n'),
    ('te-cl', OK + b'Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n5\r\nEVIL-MARKER\r\n0\r\n\r\n'),
    ('cl-twice-differ', OK + b'Content-Length: 5\r\nContent-Length: 11\r\n\r\nEVIL-MARKER'),
    ('cl-list-differ', OK + b'Content-Length: 11, 5\r\n\r\nEVIL-MARKER'),
    ('cl-plus', OK + b'Content-Length: +11\r\n\r\nEVIL-MARKER'),
    ('cl-minus', OK + b'Content-Length: -11\r\n\r\nEVIL-MARKER'),
    ('cl-space-inside', OK + b'Content-Length: 1 1\r\n\r\nEVIL-MARKER'),
    ('cl-hex', OK + b'Content-Length: 0xb\r\n\r\nEVIL-MARKER'),
    ('cl-overflow', OK + b'Content-Length: 99999999999999999999999\r\n\r\nEVIL-MARKER'),
    ('te-chunked-identity', OK + b'Transfer-Encoding: chunked, identity\r\n\r\nb\r\nEVIL-MARKER\r\n0\r\n\r\n'),
    ('te-xchunked', OK + b'Transfer-Encoding: xchunked\r\n\r\nb\r\nEVIL-MARKER\r\n0\r\n\r\n'),
    ('te-gzip', OK + b'Transfer-Encoding: gzip\r\n\r\nEVIL-MARKER'),
    ('te-twice', OK + b'Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n'
     b'b\r\nEVIL-MARKER\r\n0\r\n\r\n'),
    ('te-http10', b'HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nb\r\nEVIL-MARKER\r\n0\r\n\r\n'),
    ('obs-fold', OK + b'X-Evil: a\r\n EVIL-MARKER\r\nContent-Length: 0\r\n\r\n'),
    ('space-before-colon', OK + b'X-Evil : EVIL-MARKER\r\nContent-Length: 0\r\n\r\n'),
    ('space-before-colon-cl', OK + b'Content-Length : 11\r\n\r\nEVIL-MARKER'),
    ('bare-cr', OK + b'X-Evil: a\rEVIL-MARKER\r\nContent-Length: 0\r\n\r\n'),
    ('nul', OK + b'X-Evil: a\x00EVIL-MARKER\r\nContent-Length: 0\r\n\r\n'),
    ('ctl', OK + b'X-Evil: a\x01EVIL-MARKER\r\nContent-Length: 0\r\n\r\n'),
    ('bad-name', OK + b'X@Evil: EVIL-MARKER\r\nContent-Length: 0\r\n\r\n'),
    ('no-colon', OK + b'X-Evil EVIL-MARKER\r\nContent-Length: 0\r\n\r\n'),
    ('bare-lf-everywhere', b'HTTP/1.1 200 OK\nContent-Length: 11\n\nEVIL-MARKER'),
    ('bare-lf-one-field', OK + b'X-Evil: EVIL-MARKER\nContent-Length: 0\r\n\r\n'),
    ('status-4-digits', b'HTTP/1.1 2000 OK\r\nContent-Length: 11\r\n\r\nEVIL-MARKER'),
    ('status-2-digits', b'HTTP/1.1 20 OK\r\nContent-Length: 11\r\n\r\nEVIL-MARKER'),
    ('status-below-100', b'HTTP/1.1 099 X\r\nContent-Length: 11\r\n\r\nEVIL-MARKER'),
    ('status-above-599', b'HTTP/1.1 600 X\r\nContent-Length: 11\r\n\r\nEVIL-MARKER'),
    ('version-1.2', b'HTTP/1.2 200 OK\r\nContent-Length: 11\r\n\r\nEVIL-MARKER'),
    ('version-2', b'HTTP/2 200\r\nContent-Length: 11\r\n\r\nEVIL-MARKER'),
    ('version-lowercase', b'http/1.1 200 OK\r\nContent-Length: 11\r\n\r\nEVIL-MARKER'),
    ('no-status-line', b'Content-Length: 11\r\n\r\nEVIL-MARKER'),
    ('switching-protocols-unasked', b'HTTP/1.1 101 Switching Protocols\r\nUpgrade: evil\r\n'
     b'Connection: upgrade\r\n\r\nEVIL-MARKER'),
    ('head-too-large', OK + b'X-Big: ' + b'b' * 70000 + b'\r\nContent-Length: 11\r\n\r\nEVIL-MARKER'),
]


@pytest.mark.parametrize('data', [c[1] for c in BAD_RESPONSES], ids=[c[0] for c in BAD_RESPONSES])
def test_bad_response_is_502_and_not_passed_on(gw, data):
    with RawConn(gw.port, timeout=15) as c:
        c.send(raw_request(data))
        r = c.read_response()
        assert_gateway_error(r.status, r.header, r.body, 502)
        assert EVIL not in r.raw_head + r.body, r
        # the client connection is fine (the gateway's own answer is well-formed)
        assert c.request('GET', '/echo/next').status == 200
    assert EVIL not in c.buf


# Bad framing in the body, after a good head: the head may already be on its way,
# so the only safe answer is to cut the client connection before the end of the
# message (nginx does the same). Either way the client never sees the bytes at or
# after the error, nor a well-formed end of message.
BAD_RESPONSE_BODIES = [
    ('chunk-size-nonhex', b'zz\r\nEVIL-MARKER\r\n0\r\n\r\n'),
    ('chunk-size-overflow', b'10000000000000005\r\nEVIL-MARKER\r\n0\r\n\r\n'),
    ('chunk-size-junk', b'b x\r\nEVIL-MARKER\r\n0\r\n\r\n'),
    ('chunk-size-bare-lf', b'b\nEVIL-MARKER\r\n0\r\n\r\n'),
    ('chunk-data-no-crlf', b'2\r\nokEVIL-MARKER\r\n0\r\n\r\n'),
    ('chunk-ext-oversize', b'b;' + b'e' * 2000 + b'\r\nEVIL-MARKER\r\n0\r\n\r\n'),
    ('trailer-oversize', b'0\r\nX-Evil: ' + b'E' * 9000 + b'EVIL-MARKER\r\n\r\n'),
    ('trailer-obs-fold', b'0\r\nX-T: a\r\n EVIL-MARKER\r\n\r\n'),
]


def check_cut_or_502(c, r):
    if r.status == 502:
        assert_gateway_error(r.status, r.header, r.body, 502)
    else:
        assert r.status == 200, r
        assert not r.complete, 'a malformed response body was passed on with a clean end'
        assert c.eof
    assert EVIL not in r.raw_head + r.body + c.buf


@pytest.mark.parametrize('body', [c[1] for c in BAD_RESPONSE_BODIES],
                         ids=[c[0] for c in BAD_RESPONSE_BODIES])
@pytest.mark.parametrize('split', [False, True], ids=['one-write', 'after-head'])
def test_bad_response_body_is_never_completed(gw, body, split):
    head = OK + b'Transfer-Encoding: chunked\r\n\r\n2\r\nok\r\n'
    q = {'split': len(head), 'ms': 300} if split else {}
    with RawConn(gw.port, timeout=15) as c:
        c.send(raw_request(head + body, **q))
        r = c.read_response()
        check_cut_or_502(c, r)
    assert http_request(gw.port, 'GET', '/echo').status == 200


def test_extra_bytes_after_response_never_reach_the_next_request(gw):
    """A response followed by bytes it did not announce (a second, smuggled response):
    the upstream connection is never pooled, so no later request reads them."""
    data = OK + b'Content-Length: 2\r\n\r\nok' + b'HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\nEVIL-MARKER'
    with RawConn(gw.port, timeout=15) as c:
        c.send(raw_request(data, keep=1))
        r = c.read_response()
        assert r.status == 200 and r.body == b'ok', r
        for _ in range(3):
            r = c.request('GET', '/echo/next')
            assert r.status == 200 and EVIL not in r.body, r
            assert json.loads(r.body)['path'] == '/echo/next'
    log = gw.backend.log()
    assert log[0]['target'].startswith('/raw')
    assert all(e['conn'] != log[0]['conn'] for e in log[1:]), 'the desynchronised connection was reused'


def test_upstream_connection_not_reused_after_bad_response(gw):
    """After a malformed response the upstream connection is closed, even though
    the backend would keep it open."""
    bad = OK + b'Content-Length: 2\r\nContent-Length: 3\r\n\r\nok'
    with RawConn(gw.port, timeout=15) as c:
        c.send(raw_request(bad, keep=1))
        r = c.read_response()
        assert_gateway_error(r.status, r.header, r.body, 502)
        assert c.request('GET', '/echo/next').status == 200
    log = gw.backend.log()
    assert [e['target'].split('?')[0] for e in log] == ['/raw', '/echo/next'], log
    assert log[1]['conn'] != log[0]['conn']


def test_bad_response_on_pooled_connection_is_not_replayed(gw):
    """A malformed answer on a reused keep-alive connection is the server's answer,
    not a stale connection: 502, and the request is not sent again."""
    with RawConn(gw.port, timeout=15) as c:
        assert c.request('GET', '/echo/first').status == 200     # pools a connection
        # a GET without a body: the case a stale-connection retry would replay
        bad = base64.urlsafe_b64encode(OK + b'Content-Length: 2\r\nContent-Length: 3\r\n\r\nok')
        c.send(build_request('GET', f'/raw?keep=1&b64={bad.decode()}'))
        r = c.read_response()
        assert_gateway_error(r.status, r.header, r.body, 502)
    log = gw.backend.log()
    assert [e['target'].split('?')[0] for e in log] == ['/echo/first', '/raw'], log
    assert log[1]['conn'] == log[0]['conn'], 'the pooled connection was not reused'
