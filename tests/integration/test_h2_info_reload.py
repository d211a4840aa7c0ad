"""HTTP/2 downstream: 1xx informational answers (103 Early Hints) relayed to
HTTP/2 clients, and GOAWAY to HTTP/2 client connections on reload (open
streams finish; new streams go to new connections)."""
import signal
import socket
import time

import h2.events

from conftest import wait_until
from test_h2 import H2

CFG = '''
server:
  listen: "$listen"
  workers: 1
  access_log: { format: off }
upstreams:
  b: { servers: ["$backend"] }
routes:
  - { match: { path: / }, upstream: b }
'''


def test_early_hints_relayed_to_h2_client(tollgate, backend):
    gw = tollgate(CFG, backend=backend.addr)
    c = H2(gw.port)
    sid = c.request('/100?n=2')
    assert c.pump(timeout=15, until=lambda: sid in c.ended)
    info = [e for e in c.events if isinstance(e, h2.events.InformationalResponseReceived)
            and e.stream_id == sid]
    assert len(info) == 2, c.events
    for e in info:
        h = dict((k.decode() if isinstance(k, bytes) else k, v.decode() if isinstance(v, bytes) else v)
                 for k, v in e.headers)
        assert h[':status'] == '103'
        assert h['link'] == '</style.css>; rel=preload'
    assert c.heads[sid][':status'] == '200'
    # the informational heads came before the final one
    kinds = [type(e) for e in c.events if getattr(e, 'stream_id', None) == sid]
    assert kinds.index(h2.events.ResponseReceived) > kinds.index(h2.events.InformationalResponseReceived)


def read_frames(c, until, timeout=20.0):
    """Reads raw frames from H2 client c's socket (python3-h2 refuses any frame
    after a GOAWAY, which RFC 9113 allows): [(type, flags, stream, payload)]
    until until(frames) holds or the peer closes."""
    frames, buf = [], b''
    deadline = time.monotonic() + timeout
    while not until(frames) and time.monotonic() < deadline:
        c.sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            data = c.sock.recv(1 << 16)
        except socket.timeout:
            break
        except ConnectionResetError:
            data = b''
        if not data:
            frames.append(('closed', 0, 0, b''))
            break
        buf += data
        while len(buf) >= 9:
            n = int.from_bytes(buf[:3], 'big')
            if len(buf) < 9 + n:
                break
            ftype, flags = buf[3], buf[4]
            sid = int.from_bytes(buf[5:9], 'big') & 0x7fffffff
            frames.append((ftype, flags, sid, buf[9:9 + n]))
            buf = buf[9 + n:]
    return frames


HEADERS, DATA, GOAWAY, END_STREAM = 1, 0, 7, 1


def test_goaway_on_reload_open_streams_finish(tollgate, backend):
    gw = tollgate(CFG, backend=backend.addr)
    c = H2(gw.port)
    first = c.request('/')
    assert c.pump(timeout=15, until=lambda: first in c.ended)
    slow = c.request('/slow?ms=3000')
    # the slow stream is at the backend before the reload
    wait_until(lambda: any('/slow' in str(x) for x in backend.log()), timeout=10, what='slow request')
    gw.cfg.write_text(gw.cfg.read_text() + '\n# reloaded\n')
    gw.proc.send_signal(signal.SIGHUP)

    def slow_done(fs):
        return any(f[2] == slow and f[1] & END_STREAM for f in fs) or any(f[0] == 'closed' for f in fs)
    frames = read_frames(c, slow_done)
    goaways = [f for f in frames if f[0] == GOAWAY]
    assert goaways, f'no GOAWAY after reload: {frames}'
    last_id = int.from_bytes(goaways[0][3][:4], 'big') & 0x7fffffff
    code = int.from_bytes(goaways[0][3][4:8], 'big')
    assert code == 0 and last_id >= slow  # NO_ERROR; the open stream is kept
    heads = [f for f in frames if f[0] == HEADERS and f[2] == slow]
    assert heads, frames
    status = dict(c.c.decoder.decode(heads[0][3])).get(':status')
    assert status in ('200', b'200')
    assert any(f[2] == slow and f[1] & END_STREAM for f in frames), 'slow stream did not finish'
    # then the connection closes
    frames = read_frames(c, lambda fs: any(f[0] == 'closed' for f in fs))
    assert frames and frames[-1][0] == 'closed'
    # a new connection works on the new configuration
    c2 = H2(gw.port)
    sid = c2.request('/')
    assert c2.pump(timeout=15, until=lambda: sid in c2.ended)
    assert c2.heads[sid][':status'] == '200'
    assert c2.goaway is None
