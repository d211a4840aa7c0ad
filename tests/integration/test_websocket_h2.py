"""WebSocket over HTTP/2 (RFC 8441 extended CONNECT) through the gateway.

The client is raw python3-h2 (prior knowledge) sending `:method CONNECT`,
`:protocol websocket`; WebSocket frames are built and parsed by hand (client
frames masked, RFC 6455 §5). The upstream is the python3-websockets server of
ws_backend.py, reached with an HTTP/1.1 Upgrade."""
import json
import os
import struct
import time

import h2.events
import h2.settings

from test_h2 import H2
from test_websocket import ws_backend  # noqa: F401  (fixture)

CFG = """
server:
  listen: ["$listen"]
  workers: 1
  access_log: {{ format: off }}
  limits: {{ body_timeout: {body} }}
upstreams:
  ws:
    servers: ["{addr}"]
    timeouts: {{ idle: 60s }}
routes:
  - match: {{ path: /ws }}
    upstream: ws
    websocket: {websocket}
  - match: {{ path: /plain }}
    upstream: ws
"""

ENABLE_CONNECT_PROTOCOL = h2.settings.SettingCodes.ENABLE_CONNECT_PROTOCOL


def cfg(addr, websocket='true', body='60s'):
    return CFG.format(addr=addr, websocket=websocket, body=body)


def ws_frame(opcode, payload, fin=True):
    """A masked client frame."""
    mask = os.urandom(4)
    n = len(payload)
    head = bytes([(0x80 if fin else 0) | opcode])
    if n < 126:
        head += bytes([0x80 | n])
    elif n < 65536:
        head += bytes([0x80 | 126]) + struct.pack('!H', n)
    else:
        head += bytes([0x80 | 127]) + struct.pack('!Q', n)
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return head + mask + masked


def ws_parse(buf):
    """(frames, rest): complete server frames (fin, opcode, payload); they must be unmasked."""
    out = []
    while len(buf) >= 2:
        fin, op = buf[0] & 0x80, buf[0] & 0x0f
        assert not buf[1] & 0x80, 'server frames are never masked'
        n, off = buf[1] & 0x7f, 2
        if n == 126:
            if len(buf) < 4:
                break
            n, off = struct.unpack('!H', buf[2:4])[0], 4
        elif n == 127:
            if len(buf) < 10:
                break
            n, off = struct.unpack('!Q', buf[2:10])[0], 10
        if len(buf) < off + n:
            break
        out.append((bool(fin), op, buf[off:off + n]))
        buf = buf[off + n:]
    return out, buf


class WsH2(H2):
    """An H2 client that can open RFC 8441 tunnels and speak WebSocket on them."""

    def __init__(self, port):
        super().__init__(port)
        self.wsbuf = {}

    def peer_setting(self, code):
        self.pump(timeout=10, until=lambda: code in self.c.remote_settings or self.c.remote_settings.acknowledged)
        return self.c.remote_settings.get(code)

    def connect_ws(self, path, protocol='websocket', extra=()):
        self.pump(timeout=10, until=lambda: self.c.remote_settings.get(ENABLE_CONNECT_PROTOCOL) == 1)
        sid = self.c.get_next_available_stream_id()
        hs = [(':method', 'CONNECT'), (':protocol', protocol), (':scheme', 'http'),
              (':authority', 'gw.test'), (':path', path), ('sec-websocket-version', '13')]
        self.c.send_headers(sid, hs + list(extra))
        self.flush()
        assert self.pump(timeout=15, until=lambda: sid in self.heads or sid in self.resets), \
            f'no answer on stream {sid}'
        return sid

    def send_all(self, sid, data, timeout=60):
        """Sends data as the flow-control windows allow."""
        deadline = time.monotonic() + timeout
        while data:
            room = min(self.c.local_flow_control_window(sid), self.c.max_outbound_frame_size)
            if room <= 0:
                assert time.monotonic() < deadline, 'window never reopened'
                self.pump(timeout=1, until=lambda: self.c.local_flow_control_window(sid) > 0)
                continue
            self.c.send_data(sid, data[:room])
            data = data[room:]
            self.flush()

    def send_ws(self, sid, opcode, payload):
        self.send_all(sid, ws_frame(opcode, payload))

    def recv_ws(self, sid, count=1, timeout=30):
        got = []

        def have():
            frames, rest = ws_parse(self.data.get(sid, b''))
            if frames:
                got.extend(frames)
                self.data[sid] = rest
            return len(got) >= count or sid in self.resets
        assert self.pump(timeout=timeout, until=have), f'got {len(got)} of {count} frames'
        return got


def test_settings_advertise_extended_connect_only_with_websocket_routes(tollgate, ws_backend):
    gw = tollgate(cfg(ws_backend))
    c = WsH2(gw.port)
    assert c.pump(timeout=10, until=lambda: c.c.remote_settings.get(ENABLE_CONNECT_PROTOCOL) == 1)
    gw2 = tollgate(cfg(ws_backend, websocket='false'))
    c2 = WsH2(gw2.port)
    sid = c2.request('/plain/echo')  # any answer proves the server SETTINGS arrived
    c2.pump(timeout=10, until=lambda: sid in c2.heads)
    assert sid in c2.heads
    assert c2.c.remote_settings.get(ENABLE_CONNECT_PROTOCOL) in (None, 0)


def test_extended_connect_echo_text_and_binary(tollgate, ws_backend):
    gw = tollgate(cfg(ws_backend))
    c = WsH2(gw.port)
    sid = c.connect_ws('/ws/echo')
    assert c.heads[sid][':status'] == '200', c.heads[sid]
    assert 'sec-websocket-accept' not in c.heads[sid]
    for i in range(10):
        c.send_ws(sid, 0x1, f'hello {i}'.encode())
        [(fin, op, data)] = c.recv_ws(sid)
        assert (fin, op, data) == (True, 0x1, f'hello {i}'.encode())
    blob = os.urandom(1000)
    c.send_ws(sid, 0x2, blob)
    assert c.recv_ws(sid) == [(True, 0x2, blob)]
    # close handshake: the server answers the close frame and ends the stream
    c.send_ws(sid, 0x8, struct.pack('!H', 1000) + b'bye')
    [(fin, op, data)] = c.recv_ws(sid)
    assert op == 0x8 and struct.unpack('!H', data[:2])[0] == 1000
    c.pump(timeout=15, until=lambda: sid in c.ended or sid in c.resets)
    assert sid in c.ended or sid in c.resets


def test_extended_connect_large_messages_both_ways_with_flow_control(tollgate, ws_backend):
    """3 MiB each way: far beyond the 64 KiB stream window, so WINDOW_UPDATEs must flow."""
    gw = tollgate(cfg(ws_backend))
    c = WsH2(gw.port)
    sid = c.connect_ws('/ws/echo')
    assert c.heads[sid][':status'] == '200'
    big = os.urandom(3 * 1024 * 1024)
    c.send_ws(sid, 0x2, big)
    assert c.recv_ws(sid, timeout=90) == [(True, 0x2, big)]


def test_upstream_sees_http1_upgrade(tollgate, ws_backend):
    gw = tollgate(cfg(ws_backend))
    c = WsH2(gw.port)
    sid = c.connect_ws('/ws/headers', extra=[('x-hello', 'world')])
    [(fin, op, data)] = c.recv_ws(sid)
    h = json.loads(data)
    assert h['upgrade'].lower() == 'websocket'
    assert 'upgrade' in h['connection'].lower()
    assert h['sec-websocket-version'] == '13'
    assert len(h['sec-websocket-key']) == 24  # base64 of 16 bytes
    assert h['host'] == 'gw.test'
    assert h['x-hello'] == 'world'


def test_server_close_and_push(tollgate, ws_backend):
    gw = tollgate(cfg(ws_backend))
    c = WsH2(gw.port)
    sid = c.connect_ws('/ws/push?n=40')
    frames = c.recv_ws(sid, count=40)
    assert [f[2] for f in frames[:40]] == [f'msg {i}'.encode() for i in range(40)]
    sid2 = c.connect_ws('/ws/close')  # a second tunnel on the same connection
    frames = c.recv_ws(sid2, count=2)
    assert frames[0] == (True, 0x1, b'bye')
    assert frames[1][1] == 0x8 and struct.unpack('!H', frames[1][2][:2])[0] == 4001
    c.send_ws(sid2, 0x8, struct.pack('!H', 4001))
    assert c.pump(timeout=15, until=lambda: sid2 in c.ended or sid2 in c.resets)
    # the first tunnel is still alive
    c.send_ws(sid, 0x8, struct.pack('!H', 1000))
    assert c.recv_ws(sid)[-1][1] == 0x8


def test_client_reset_ends_tunnel_and_others_go_on(tollgate, ws_backend):
    gw = tollgate(cfg(ws_backend))
    c = WsH2(gw.port)
    a = c.connect_ws('/ws/echo')
    b = c.connect_ws('/ws/echo')
    c.send_ws(a, 0x1, b'one')
    assert c.recv_ws(a) == [(True, 0x1, b'one')]
    c.c.reset_stream(a)
    c.flush()
    for i in range(5):
        c.send_ws(b, 0x1, f'still {i}'.encode())
        assert c.recv_ws(b) == [(True, 0x1, f'still {i}'.encode())]
    d = c.connect_ws('/ws/echo')
    c.send_ws(d, 0x1, b'new')
    assert c.recv_ws(d) == [(True, 0x1, b'new')]


def test_tunnel_outlives_body_timeout(tollgate, ws_backend):
    """Silence in a tunnel is bounded by the upstream idle timeout, not body_timeout."""
    gw = tollgate(cfg(ws_backend, body='1s'))
    c = WsH2(gw.port)
    sid = c.connect_ws('/ws/echo')
    c.send_ws(sid, 0x1, b'before')
    assert c.recv_ws(sid) == [(True, 0x1, b'before')]
    c.pump(timeout=2.5)  # 2.5 s of silence (reading only): the feature is about timing
    assert sid not in c.resets and not c.closed
    c.send_ws(sid, 0x1, b'after')
    assert c.recv_ws(sid) == [(True, 0x1, b'after')]


def test_extended_connect_refused_where_not_websocket(tollgate, ws_backend):
    gw = tollgate(cfg(ws_backend))
    c = WsH2(gw.port)
    sid = c.connect_ws('/plain/echo')  # a route without websocket: true
    assert c.heads[sid][':status'] == '501'
    sid = c.connect_ws('/ws/echo', protocol='something-else')
    assert c.heads[sid][':status'] == '501'
    # the connection is still fine
    sid = c.connect_ws('/ws/echo')
    assert c.heads[sid][':status'] == '200'
