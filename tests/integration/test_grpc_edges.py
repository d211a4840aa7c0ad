"""gRPC edge cases: a deadline that passes after the answer's head went out
(ended with grpc-status 4 in trailers, the upstream stream cancelled),
grpc-web-text bodies split anywhere with whitespace and per-message padding,
bad gRPC-Web bodies answered 3 INVALID_ARGUMENT, and half-closed HTTP/2
upstream streams (the server answers while the client is still sending).

Real peers: python3-grpcio servers and clients, a raw HTTP/2 client
(python3-h2, test_h2.H2) and a raw HTTP/2 "gRPC" server below that answers
with a head and one message and then stalls, ignoring grpc-timeout, so that
only the gateway's deadline can end the call."""
import base64
import concurrent.futures
import select
import socket
import threading
import time

import grpc
import h2.config
import h2.connection
import h2.events
import h2.exceptions
import h2.settings
import pytest

from conftest import wait_until
from test_grpc import cfg, grpc_frame, parse_web_frames, read_http1_until_close, web_trailers
from test_h2 import H2

SVC = 'test.Svc'
CANCEL = 0x8


BIG = b'b' * 60000  # one message, within the default HTTP/2 windows of the upstream hop


class StallingGrpc:
    """Answers every stream with 200 application/grpc and one message
    (b'first', or BIG for a path ending in "Big"), then never ends it; a path
    ending in "Early" is ended at once
    (grpc-status 0), without waiting for the request body and without a
    RST_STREAM of its own. Records the RST_STREAM codes it gets."""

    def __init__(self):
        self.lsock = socket.socket()
        self.lsock.bind(('127.0.0.1', 0))
        self.lsock.listen(16)
        self.port = self.lsock.getsockname()[1]
        self.resets = []
        self.requests = []
        self.ended = []  # streams whose request body ended (END_STREAM)
        self.go, self.sent_all = threading.Event(), threading.Event()  # for "Two" paths
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    @property
    def addr(self):
        return f'127.0.0.1:{self.port}'

    def _accept(self):
        while not self.stop.is_set():
            r, _, _ = select.select([self.lsock], [], [], 0.1)
            if r:
                conn, _ = self.lsock.accept()
                threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, sock):
        c = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False,
                                                                 header_encoding='utf-8'))
        c.initiate_connection()
        sock.sendall(c.data_to_send())
        try:
            while not self.stop.is_set():
                r, _, _ = select.select([sock], [], [], 0.1)
                if not r:
                    continue
                data = sock.recv(65536)
                if not data:
                    break
                for ev in c.receive_data(data):
                    if isinstance(ev, h2.events.RequestReceived):
                        self.requests.append(dict(ev.headers))
                        c.send_headers(ev.stream_id, [(':status', '200'),
                                                      ('content-type', 'application/grpc')])
                        path = dict(ev.headers)[':path']
                        msg = grpc_frame(BIG if path.endswith(('Big', 'Two')) else b'first')
                        if path.endswith('Two'):  # the rest once the test says so
                            rest, msg = msg[16384:], msg[:16384]
                            c.send_data(ev.stream_id, msg)
                            sock.sendall(c.data_to_send())
                            self.go.wait(10)
                            msg = rest
                        for i in range(0, len(msg), 16384):  # within the default frame size
                            c.send_data(ev.stream_id, msg[i:i + 16384])
                        if path.endswith('Two'):
                            sock.sendall(c.data_to_send())
                            self.sent_all.set()
                        if path.endswith('Early'):  # done, body or not
                            c.send_headers(ev.stream_id, [('grpc-status', '0')], end_stream=True)
                    elif isinstance(ev, h2.events.DataReceived):
                        c.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
                    elif isinstance(ev, h2.events.StreamEnded):
                        self.ended.append(ev.stream_id)
                    elif isinstance(ev, h2.events.StreamReset):
                        self.resets.append(ev.error_code)
                sock.sendall(c.data_to_send())
        except (OSError, h2.exceptions.ProtocolError):
            pass
        finally:
            sock.close()

    def close(self):
        self.stop.set()
        self.thread.join(timeout=5)
        self.lsock.close()


@pytest.fixture
def stalling():
    s = StallingGrpc()
    yield s
    s.close()


def grpc_call_h2(gw, path, body, headers=(), timeout=20):
    """One call over a raw HTTP/2 connection, without a client-side deadline:
    returns (client, stream id) once the stream ended or was reset."""
    h = H2(gw.port)
    sid = h.request(path, method='POST', body=body,
                    headers=[('content-type', 'application/grpc'), ('te', 'trailers'), *headers])
    h.pump(timeout=timeout, until=lambda: sid in h.ended or sid in h.resets)
    return h, sid


# ---------------------------------------------------------------- 1. deadlines after the head

def test_deadline_after_head_ends_with_grpc_status_h2(tollgate, stalling):
    gw = tollgate(cfg(stalling.addr))
    t0 = time.monotonic()
    h, sid = grpc_call_h2(gw, f'/{SVC}/ServerStream', grpc_frame(b'x'), [('grpc-timeout', '1S')])
    elapsed = time.monotonic() - t0
    try:
        assert sid not in h.resets, f'stream reset ({h.resets[sid]}) instead of ended with a status'
        assert sid in h.ended
        assert h.heads[sid][':status'] == '200'
        assert h.data.get(sid) == grpc_frame(b'first')  # what came before the deadline
        assert h.trailers[sid]['grpc-status'] == '4'
        assert h.trailers[sid]['grpc-message'] == 'deadline exceeded'
        assert 0.9 <= elapsed < 10, elapsed
    finally:
        h.sock.close()
    assert stalling.requests[0]['grpc-timeout'] == '1S'
    # the upstream stream is cancelled, not left open
    wait_until(lambda: CANCEL in stalling.resets, timeout=10, what='RST_STREAM(CANCEL) upstream')


def test_deadline_with_bytes_queued_for_a_slow_h2_client_still_ends_with_status(tollgate, stalling):
    """The deadline passes while part of a message still waits for the
    client's stream window: the client gets the bytes the gateway had queued,
    intact, then the status in trailers, not a reset stream."""
    gw = tollgate(cfg(stalling.addr))
    h = H2(gw.port, settings={h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 1024})
    try:
        sid = h.request(f'/{SVC}/ServerStreamBig', method='POST', body=grpc_frame(b'x'),
                        headers=[('content-type', 'application/grpc'), ('te', 'trailers'),
                                 ('grpc-timeout', '1S')])
        # read the first KiB without opening the stream window again
        assert h.pump(timeout=10, ack=False, until=lambda: len(h.data.get(sid, b'')) >= 1024)
        # the deadline passes and the upstream stream is cancelled while the
        # rest of the message is still queued in the gateway
        wait_until(lambda: CANCEL in stalling.resets, timeout=10, what='RST_STREAM(CANCEL) upstream')
        assert sid not in h.ended and sid not in h.resets
        h.c.increment_flow_control_window(1 << 20, stream_id=sid)
        h.flush()
        h.pump(timeout=10, until=lambda: sid in h.ended or sid in h.resets)
        assert sid not in h.resets, f'stream reset ({h.resets[sid]}) instead of ended with a status'
        got = h.data[sid]
        # what the gateway had queued for the client arrives intact after the
        # deadline (a prefix of the message: the rest was still upstream)
        assert len(got) > 1024 and grpc_frame(BIG).startswith(got), len(got)
        assert h.trailers[sid]['grpc-status'] == '4', h.trailers.get(sid)
        assert h.trailers[sid]['grpc-message'] == 'deadline exceeded'
    finally:
        h.sock.close()


def test_upstream_data_arriving_while_a_slow_h2_client_holds_earlier_bytes(tollgate, stalling):
    """Bytes of an HTTP/2 upstream stream lent to a slow client's queue must
    not move when more DATA arrives and the stream's buffer grows: the
    client gets the message intact (ASan: no use after free)."""
    gw = tollgate(cfg(stalling.addr))
    h = H2(gw.port, settings={h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 1024})
    try:
        sid = h.request(f'/{SVC}/ServerStreamTwo', method='POST', body=grpc_frame(b'x'),
                        headers=[('content-type', 'application/grpc'), ('te', 'trailers')])
        # the first 16 KiB are queued in the gateway for this client: 1 KiB came
        assert h.pump(timeout=10, ack=False, until=lambda: len(h.data.get(sid, b'')) >= 1024)
        stalling.go.set()  # now the rest, into the gateway's growing buffer
        assert stalling.sent_all.wait(10)
        h.c.increment_flow_control_window(1 << 20, stream_id=sid)
        h.flush()
        want = grpc_frame(BIG)
        h.pump(timeout=10, until=lambda: len(h.data.get(sid, b'')) >= len(want) or sid in h.resets)
        assert sid not in h.resets
        assert h.data[sid] == want
    finally:
        h.sock.close()


def test_deadline_after_head_grpc_web_trailer_frame(tollgate, stalling):
    gw = tollgate(cfg(stalling.addr, grpc_web='true'))
    s = socket.create_connection(('127.0.0.1', gw.port), timeout=20)
    body = grpc_frame(b'x')
    s.sendall(b'POST /test.Svc/ServerStream HTTP/1.1\r\nHost: h\r\n'
              b'Content-Type: application/grpc-web+proto\r\ngrpc-timeout: 1S\r\n'
              b'Connection: close\r\nContent-Length: %d\r\n\r\n' % len(body) + body)
    head, decoded = read_http1_until_close(s)
    assert head.startswith(b'HTTP/1.1 200'), head
    assert b'transfer-encoding: chunked' in head.lower()
    frames = parse_web_frames(decoded)
    assert frames[0] == (0, b'first')
    assert frames[-1][0] == 0x80
    t = web_trailers(frames[-1][1])
    assert t['grpc-status'] == '4' and t['grpc-message'] == 'deadline exceeded'
    wait_until(lambda: CANCEL in stalling.resets, timeout=10, what='RST_STREAM(CANCEL) upstream')


RELEASE = threading.Event()


def _one_then_stall(req, ctx):
    yield b'first'
    RELEASE.wait(30)  # released at teardown


def _bidi_early(it, ctx):
    got = [next(it), next(it)]
    yield b'got ' + b','.join(got)  # and return (status OK) with the client still sending


def _client_early(it, ctx):
    return b'early:' + next(it)  # answers after one message of many


def _unary(req, ctx):
    return b'echo:' + req


HANDLER = grpc.method_handlers_generic_handler(SVC, {
    'Unary': grpc.unary_unary_rpc_method_handler(_unary),
    'Stall': grpc.unary_stream_rpc_method_handler(_one_then_stall),
    'BidiEarly': grpc.stream_stream_rpc_method_handler(_bidi_early),
    'ClientEarly': grpc.stream_unary_rpc_method_handler(_client_early),
})

MAX_STREAMS = 8  # a leaked (never closed) upstream stream soon blocks new calls


@pytest.fixture
def grpc_edge_server():
    RELEASE.clear()
    srv = grpc.server(concurrent.futures.ThreadPoolExecutor(16),
                      options=[('grpc.max_concurrent_streams', MAX_STREAMS)])
    srv.add_generic_rpc_handlers((HANDLER,))
    port = srv.add_insecure_port('127.0.0.1:0')
    srv.start()
    yield port
    RELEASE.set()
    srv.stop(0)


@pytest.fixture
def chan():
    chans = []

    def make(gw):
        ch = grpc.insecure_channel(gw.addr)
        chans.append(ch)
        return ch
    yield make
    for ch in chans:
        ch.close()


def test_timeout_after_head_grpcio_client_sees_gateway_status(tollgate, grpc_edge_server, chan):
    """grpcio end to end: the server sends one message and stalls; the route's
    response timeout (the gap between upstream reads) fires in the gateway,
    far before the client's own 30 s deadline: the client gets the message,
    then DEADLINE_EXCEEDED with the gateway's message."""
    gw = tollgate(cfg(f'127.0.0.1:{grpc_edge_server}', extra_route='    timeouts: { response: 1s }'))
    call = chan(gw).unary_stream(f'/{SVC}/Stall')(b'', timeout=30)
    got = []
    t0 = time.monotonic()
    with pytest.raises(grpc.RpcError) as ei:
        for m in call:
            got.append(m)
    assert got == [b'first']
    assert ei.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert ei.value.details() == 'upstream_timeout'
    assert time.monotonic() - t0 < 20


# ---------------------------------------------------------------- 2. grpc-web-text bodies

def web_text_post(gw, body_chunks, ctype=b'application/grpc-web-text', path=b'/test.Svc/ClientEarly'):
    """POSTs a chunked body, one chunk per element, to a fresh connection;
    returns (head, decoded body) with the base64 answer decoded."""
    s = socket.create_connection(('127.0.0.1', gw.port), timeout=20)
    s.sendall(b'POST ' + path + b' HTTP/1.1\r\nHost: h\r\nContent-Type: ' + ctype +
              b'\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n')
    for c in body_chunks:
        if c:
            s.sendall(b'%x\r\n%s\r\n' % (len(c), c))
    s.sendall(b'0\r\n\r\n')
    head, body = read_http1_until_close(s)
    return head, body if b'transfer-encoding: chunked' in head.lower() else b''


def split_oddly(b, sizes=(1, 2, 5, 3, 7, 4, 11)):
    out, i, k = [], 0, 0
    while i < len(b):
        n = sizes[k % len(sizes)]
        out.append(b[i:i + n])
        i += n
        k += 1
    return out


def test_grpc_web_text_whitespace_and_padding_across_chunks(tollgate, grpc_edge_server):
    gw = tollgate(cfg(f'127.0.0.1:{grpc_edge_server}', grpc_web='true'))
    # Each message encoded on its own (padding inside the stream: "...=" then
    # a new group), CRLF every 8 characters (inside groups too), spaces and tabs.
    msgs = [b'a', b'bb', b'ccc', b'dddd']
    text = b''.join(base64.b64encode(grpc_frame(m)) for m in msgs)
    assert text.count(b'=') >= 2
    wrapped = b'\r\n'.join(text[i:i + 6] for i in range(0, len(text), 6)) + b'\r\n'
    wrapped = wrapped.replace(b'A', b' A\t', 2)
    head, body = web_text_post(gw, split_oddly(wrapped))
    assert head.startswith(b'HTTP/1.1 200'), head
    frames = parse_web_frames(base64.b64decode(body))
    assert frames[0] == (0, b'early:a'), frames
    assert web_trailers(frames[-1][1])['grpc-status'] == '0'


def _status_of(head, body):
    """grpc-status/message of an answer: trailers-only (in the head) or trailer frame."""
    hs = {}
    for line in head.split(b'\r\n')[1:]:
        k, _, v = line.partition(b':')
        hs[k.strip().lower().decode()] = v.strip().decode()
    if 'grpc-status' in hs:
        return hs['grpc-status'], hs.get('grpc-message')
    t = web_trailers(parse_web_frames(base64.b64decode(body))[-1][1])
    return t['grpc-status'], t.get('grpc-message')


@pytest.mark.parametrize('body,word', [
    (b'AAAA!AAA', 'bad_grpc_web_text'),                       # not the alphabet
    (b'AB=C', 'bad_grpc_web_text'),                           # '=' then data in a group
    (b'=AAA', 'bad_grpc_web_text'),                           # '=' first
    (base64.b64encode(grpc_frame(b'x')) + b'QUJ', 'bad_grpc_web_text'),  # ends mid-group
    (base64.b64encode(b'\x00\x00\x00\x00\x0aab'), 'truncated_grpc_web_frame'),  # 10 announced, 2 sent
    (base64.b64encode(b'\x80\x00\x00\x00\x00'), 'bad_grpc_web_frame'),  # a trailer frame in a request
])
def test_grpc_web_text_invalid_is_invalid_argument(tollgate, grpc_edge_server, body, word):
    gw = tollgate(cfg(f'127.0.0.1:{grpc_edge_server}', grpc_web='true'))
    head, out = web_text_post(gw, split_oddly(body), path=b'/test.Svc/Unary')
    assert head.startswith(b'HTTP/1.1 200'), head
    assert _status_of(head, out) == ('3', word)


def test_grpc_web_binary_bad_frame_flag(tollgate, grpc_edge_server):
    gw = tollgate(cfg(f'127.0.0.1:{grpc_edge_server}', grpc_web='true'))
    head, out = web_text_post(gw, [b'\x02\x00\x00\x00\x01x'], ctype=b'application/grpc-web',
                              path=b'/test.Svc/Unary')
    assert head.startswith(b'HTTP/1.1 200'), head
    hs = head.lower()
    assert b'grpc-status: 3\r\n' in hs and b'grpc-message: bad_grpc_web_frame' in hs, head
    # a good body on the same route still works
    head, out = web_text_post(gw, split_oddly(grpc_frame(b'ok')), ctype=b'application/grpc-web',
                              path=b'/test.Svc/Unary')
    assert parse_web_frames(out)[0] == (0, b'echo:ok')


# ---------------------------------------------------------------- 4. half-closed upstream streams

def _gen_until(first, done, more):
    """Yields `first`, then waits (the client "still sending") until the call
    is over, then offers `more` (dropped by the library)."""
    yield from first
    done.wait(20)
    yield from more


def established_to(port):
    """Established TCP connections from this host to 127.0.0.1:port."""
    n = 0
    with open('/proc/net/tcp') as f:
        for line in f.readlines()[1:]:
            parts = line.split()
            rem, st = parts[2], parts[3]
            if st == '01' and int(rem.split(':')[1], 16) == port:
                n += 1
    return n


def test_upstream_answers_while_client_still_sends(tollgate, grpc_edge_server, chan):
    """Bidi and client-streaming calls the server ends (status OK) before the
    client's body ended: the gateway resets its upstream stream (NO_ERROR),
    stops the client's upload, and the upstream connection stays usable.
    Three times the server's stream limit: a stream left open would block."""
    gw = tollgate(cfg(f'127.0.0.1:{grpc_edge_server}'))
    ch = chan(gw)
    bidi = ch.stream_stream(f'/{SVC}/BidiEarly')
    client = ch.stream_unary(f'/{SVC}/ClientEarly')
    for i in range(3 * MAX_STREAMS):
        done = threading.Event()
        call = bidi(_gen_until([b'a', b'b'], done, [b'c'] * 5), timeout=20)
        assert list(call) == [b'got a,b']
        assert call.code() == grpc.StatusCode.OK
        done.set()
        done = threading.Event()
        big = [b'%d' % i] + [b'z' * 65536] * 8  # more than the stream windows
        resp, c2 = client.with_call(_gen_until(big, done, [b'y'] * 5), timeout=20)
        done.set()
        assert resp == b'early:%d' % i and c2.code() == grpc.StatusCode.OK
    assert ch.unary_unary(f'/{SVC}/Unary')(b'after', timeout=20) == b'echo:after'
    assert established_to(grpc_edge_server) == 1  # one multiplexed upstream connection


def test_client_half_close_while_upstream_streams(tollgate, stalling):
    """The client ends its body (END_STREAM) and the upstream keeps the
    response open: the gateway sends END_STREAM upstream and keeps relaying."""
    gw = tollgate(cfg(stalling.addr))
    h = H2(gw.port)
    try:
        sid = h.request(f'/{SVC}/Stall', method='POST', body=grpc_frame(b'x'),
                        headers=[('content-type', 'application/grpc'), ('te', 'trailers')])
        assert h.pump(timeout=20, until=lambda: h.data.get(sid) == grpc_frame(b'first'))
        assert sid not in h.ended and sid not in h.resets
        # the gateway passed our END_STREAM on, and reset nothing
        wait_until(lambda: stalling.ended, timeout=10, what='END_STREAM upstream')
        assert not stalling.resets
    finally:
        h.sock.close()
    wait_until(lambda: CANCEL in stalling.resets, timeout=10,
               what='RST_STREAM(CANCEL) upstream after the client left')


def test_upstream_ends_first_stream_reset_no_error(tollgate, stalling):
    """RFC 9113 §8.1: the upstream's response is complete while the request
    body is still open. The gateway relays the whole answer, resets its
    upstream stream with NO_ERROR (it will send no more), tells the client to
    stop its upload the same way, and both connections stay usable."""
    gw = tollgate(cfg(stalling.addr))
    h = H2(gw.port)
    try:
        for i in range(3):
            sid = h.request(f'/{SVC}/Early', method='POST', body=grpc_frame(b'part'), end=False,
                            headers=[('content-type', 'application/grpc'), ('te', 'trailers')])
            assert h.pump(timeout=20, until=lambda: sid in h.ended and sid in h.resets)
            assert h.data[sid] == grpc_frame(b'first') and h.trailers[sid]['grpc-status'] == '0'
            assert h.resets[sid] == 0  # NO_ERROR: stop sending, the answer stands
            wait_until(lambda: stalling.resets.count(0) == i + 1, timeout=10,
                       what='RST_STREAM(NO_ERROR) upstream')
        assert CANCEL not in stalling.resets and not stalling.ended
    finally:
        h.sock.close()
