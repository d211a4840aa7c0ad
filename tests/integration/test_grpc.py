"""gRPC through the gateway: python3-grpcio server and client (generic handlers,
bytes in and out: no generated code), all four call kinds, trailers, status
propagation, deadlines and the gateway's own errors as gRPC errors. gRPC-Web
framing is tested with raw HTTP/1.1 requests."""
import base64
import concurrent.futures
import http.client
import socket
import struct
import threading
import time

import grpc
import pytest

from conftest import free_port

SVC = 'test.Svc'


def _unary(req, ctx):
    if req == b'fail':
        ctx.abort(grpc.StatusCode.INVALID_ARGUMENT, 'bad input')
    if req.startswith(b'sleep'):
        time.sleep(float(req[5:] or b'3'))
    ctx.set_trailing_metadata((('x-trail', 'yes'),))
    return b'echo:' + req


def _server_stream(req, ctx):
    for i in range(int(req or b'10')):
        yield b'item %d' % i


def _client_stream(it, ctx):
    return b'|'.join(it)


def _bidi(it, ctx):
    for m in it:
        yield m.upper()


HANDLER = grpc.method_handlers_generic_handler(SVC, {
    'Unary': grpc.unary_unary_rpc_method_handler(_unary),
    'ServerStream': grpc.unary_stream_rpc_method_handler(_server_stream),
    'ClientStream': grpc.stream_unary_rpc_method_handler(_client_stream),
    'Bidi': grpc.stream_stream_rpc_method_handler(_bidi),
})


@pytest.fixture
def grpc_server():
    srv = grpc.server(concurrent.futures.ThreadPoolExecutor(8),
                      options=[('grpc.max_receive_message_length', 64 << 20),
                               ('grpc.max_send_message_length', 64 << 20)])
    srv.add_generic_rpc_handlers((HANDLER,))
    port = srv.add_insecure_port('127.0.0.1:0')
    srv.start()
    yield f'127.0.0.1:{port}'
    srv.stop(0)


def cfg(addr, grpc_web='false', extra_route=''):
    return f"""
server:
  listen: ["$listen"]
  workers: 1
  access_log: {{ format: off }}
upstreams:
  g:
    servers: ["{addr}"]
    protocol: grpc
routes:
  - match: {{ path: /test.Svc }}
    upstream: g
    grpc_web: {grpc_web}
{extra_route}
"""


@pytest.fixture
def channel_to():
    chans = []

    def make(gw):
        ch = grpc.insecure_channel(gw.addr, options=[('grpc.max_receive_message_length', 64 << 20),
                                                     ('grpc.max_send_message_length', 64 << 20)])
        chans.append(ch)
        return ch
    yield make
    for ch in chans:
        ch.close()


def test_grpc_unary_with_trailers(tollgate, grpc_server, channel_to):
    ch = channel_to(tollgate(cfg(grpc_server)))
    resp, call = ch.unary_unary(f'/{SVC}/Unary').with_call(b'hi', timeout=20)
    assert resp == b'echo:hi'
    trailers = dict(call.trailing_metadata())
    assert trailers['x-trail'] == 'yes'
    assert call.code() == grpc.StatusCode.OK


def test_grpc_streaming_kinds(tollgate, grpc_server, channel_to):
    ch = channel_to(tollgate(cfg(grpc_server)))
    out = list(ch.unary_stream(f'/{SVC}/ServerStream')(b'200', timeout=30))
    assert out == [b'item %d' % i for i in range(200)]
    resp = ch.stream_unary(f'/{SVC}/ClientStream')(iter([b'a', b'b', b'c'] * 50), timeout=30)
    assert resp == b'|'.join([b'a', b'b', b'c'] * 50)
    big = [bytes([65 + i]) * (1 << 20) for i in range(5)]
    got = list(ch.stream_stream(f'/{SVC}/Bidi')(iter(big), timeout=60))
    assert [len(m) for m in got] == [1 << 20] * 5 and got[2] == b'C' * (1 << 20)


def test_grpc_bidi_is_interleaved(tollgate, grpc_server, channel_to):
    """Each answer arrives before the next request is sent: true streaming."""
    ch = channel_to(tollgate(cfg(grpc_server)))
    q = []
    cv = threading.Condition()

    def requests():
        for i in range(20):
            yield b'm%d' % i
            with cv:
                assert cv.wait_for(lambda: len(q) > i, timeout=20), f'no answer to m{i}'
    for m in ch.stream_stream(f'/{SVC}/Bidi')(requests(), timeout=60):
        with cv:
            q.append(m)
            cv.notify_all()
    assert q == [b'M%d' % i for i in range(20)]


def test_grpc_status_and_deadline(tollgate, grpc_server, channel_to):
    ch = channel_to(tollgate(cfg(grpc_server)))
    with pytest.raises(grpc.RpcError) as ei:
        ch.unary_unary(f'/{SVC}/Unary')(b'fail', timeout=20)
    assert ei.value.code() == grpc.StatusCode.INVALID_ARGUMENT and ei.value.details() == 'bad input'
    t0 = time.monotonic()
    with pytest.raises(grpc.RpcError) as ei:
        ch.unary_unary(f'/{SVC}/Unary')(b'sleep3', timeout=0.5)
    assert ei.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert time.monotonic() - t0 < 2.5


def grpc_frame(msg, flags=0):
    return struct.pack('>BI', flags, len(msg)) + msg


def post(gw, path, body, headers, timeout=20):
    c = http.client.HTTPConnection('127.0.0.1', gw.port, timeout=timeout)
    try:
        c.request('POST', path, body=body, headers=headers)
        r = c.getresponse()
        return r, r.read()
    finally:
        c.close()


def raw_http(gw, data, timeout=20):
    s = socket.create_connection(('127.0.0.1', gw.port), timeout=timeout)
    s.sendall(data)
    out = b''
    while True:
        c = s.recv(65536)
        if not c:
            break
        out += c
    s.close()
    return out


def test_gateway_errors_are_grpc_errors(tollgate, grpc_server, channel_to):
    dead = free_port()
    gw = tollgate(cfg(f'127.0.0.1:{dead}'))
    ch = channel_to(gw)
    with pytest.raises(grpc.RpcError) as ei:
        ch.unary_unary(f'/{SVC}/Unary')(b'x', timeout=20)
    assert ei.value.code() == grpc.StatusCode.UNAVAILABLE  # connect failure -> 14
    # the same answer, seen raw: HTTP 200 + grpc-status, no JSON body
    r, body = post(gw, f'/{SVC}/Unary', grpc_frame(b'x'), {'Content-Type': 'application/grpc'})
    assert r.status == 200 and r.getheader('grpc-status') == '14' and body == b''
    assert r.getheader('content-type') == 'application/grpc'
    # grpc-timeout is the upstream deadline: answered 4 DEADLINE_EXCEEDED by the gateway
    # (whichever of the gateway and the server notices first answers: the
    # status is then in the head or in the chunked trailers)
    gw2 = tollgate(cfg(grpc_server))
    t0 = time.monotonic()
    resp = raw_http(gw2, b'POST /test.Svc/Unary HTTP/1.1\r\nHost: h\r\nContent-Type: application/grpc\r\n'
                         b'grpc-timeout: 400m\r\nTE: trailers\r\nConnection: close\r\n'
                         b'Content-Length: 11\r\n\r\n' + grpc_frame(b'sleep3'))
    assert resp.startswith(b'HTTP/1.1 200'), resp
    assert b'grpc-status: 4\r\n' in resp.lower(), resp
    assert time.monotonic() - t0 < 2.5
    # a route timeout is DEADLINE_EXCEEDED too
    gw3 = tollgate(cfg(grpc_server, extra_route='    timeouts: { response: 300ms }'))
    with pytest.raises(grpc.RpcError) as ei:
        channel_to(gw3).unary_unary(f'/{SVC}/Unary')(b'sleep2', timeout=20)
    assert ei.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED


def test_grpc_no_route_is_not_grpc(tollgate, grpc_server):
    """Outside gRPC routes the gateway keeps its JSON errors."""
    gw = tollgate(cfg(grpc_server))
    r, body = post(gw, '/other', b'x', {'Content-Type': 'application/grpc'})
    assert r.status == 404 and b'no_route' in body


# ---------------------------------------------------------------- gRPC-Web

def read_http1_until_close(s):
    """Reads an HTTP/1.1 answer on socket s until the server closes; returns
    (head, body) with a chunked body de-chunked. Closes s."""
    data = b''
    while True:
        c = s.recv(65536)
        if not c:
            break
        data += c
    s.close()
    head, _, rest = data.partition(b'\r\n\r\n')
    if b'transfer-encoding: chunked' not in head.lower():
        return head, rest
    body = b''
    while rest:
        line, _, rest = rest.partition(b'\r\n')
        n = int(line, 16)
        if n == 0:
            break
        body += rest[:n]
        rest = rest[n + 2:]
    return head, body


def parse_web_frames(body):
    frames = []
    while body:
        flags, n = struct.unpack('>BI', body[:5])
        frames.append((flags, body[5:5 + n]))
        body = body[5 + n:]
    return frames


def web_trailers(payload):
    out = {}
    for line in payload.decode().split('\r\n'):
        if line:
            k, _, v = line.partition(':')
            out[k.strip().lower()] = v.strip()
    return out


def test_grpc_web_binary(tollgate, grpc_server):
    gw = tollgate(cfg(grpc_server, grpc_web='true'))
    r, body = post(gw, f'/{SVC}/Unary', grpc_frame(b'web'),
                   {'Content-Type': 'application/grpc-web+proto', 'X-Grpc-Web': '1'})
    assert r.status == 200 and r.getheader('content-type') == 'application/grpc-web+proto'
    frames = parse_web_frames(body)
    assert frames[0] == (0, b'echo:web')
    assert frames[-1][0] == 0x80
    t = web_trailers(frames[-1][1])
    assert t['grpc-status'] == '0' and t['x-trail'] == 'yes'
    r, body = post(gw, f'/{SVC}/ServerStream', grpc_frame(b'3'),
                   {'Content-Type': 'application/grpc-web'})
    frames = parse_web_frames(body)
    assert [f[1] for f in frames[:-1]] == [b'item 0', b'item 1', b'item 2']
    assert web_trailers(frames[-1][1])['grpc-status'] == '0'
    r, body = post(gw, f'/{SVC}/Unary', grpc_frame(b'fail'), {'Content-Type': 'application/grpc-web'})
    frames = parse_web_frames(body)
    got = web_trailers(frames[-1][1]) if frames else {k.lower(): v for k, v in r.getheaders()}
    assert got['grpc-status'] == '3' and got['grpc-message'] == 'bad input'


def test_grpc_web_text(tollgate, grpc_server):
    gw = tollgate(cfg(grpc_server, grpc_web='true'))
    req = base64.b64encode(grpc_frame(b'texty'))
    r, body = post(gw, f'/{SVC}/Unary', req, {'Content-Type': 'application/grpc-web-text'})
    assert r.status == 200 and r.getheader('content-type') == 'application/grpc-web-text'
    frames = parse_web_frames(base64.b64decode(body))
    assert frames[0] == (0, b'echo:texty')
    assert web_trailers(frames[-1][1])['grpc-status'] == '0'
    # a body split at awkward places (chunked, 3 bytes per chunk) decodes the same
    s = socket.create_connection(('127.0.0.1', gw.port), timeout=20)
    chunks = b''.join(b'%x\r\n%s\r\n' % (len(req[i:i + 3]), req[i:i + 3]) for i in range(0, len(req), 3))
    s.sendall(b'POST /test.Svc/Unary HTTP/1.1\r\nHost: h\r\nContent-Type: application/grpc-web-text\r\n'
              b'Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n' + chunks + b'0\r\n\r\n')
    head, decoded = read_http1_until_close(s)
    assert head.startswith(b'HTTP/1.1 200'), head
    frames = parse_web_frames(base64.b64decode(decoded))
    assert frames[0] == (0, b'echo:texty')


def test_grpc_web_route_serves_native_grpc(tollgate, grpc_server, channel_to):
    ch = channel_to(tollgate(cfg(grpc_server, grpc_web='true')))
    assert ch.unary_unary(f'/{SVC}/Unary')(b'native', timeout=20) == b'echo:native'
