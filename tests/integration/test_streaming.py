"""Streaming with backpressure: 2 GiB each way through the gateway with bounded
RSS, and a side that does not read makes the gateway stop reading the other."""
import hashlib
import threading
import time

import pytest

import backend as origin
from conftest import RawConn, build_request, http_request, san_enabled

GiB = 1 << 30
MiB = 1 << 20
RSS_BUDGET_KB = (64 if san_enabled() else 16) * 1024   # ASan shadow memory and quarantine
BACKLOG_LIMIT = 64 * MiB   # what kernel socket buffers may hold in a stopped stream


def config(b):
    return f"""
        server:
          listen: ["$listen"]
          workers: 1
          limits: {{ max_body_bytes: 4GiB }}
        upstreams:
          u:
            servers: ["{b.addr}"]
            timeouts: {{ response: 30s }}
        routes:
          - match: {{ path: / }}
            upstream: u
        """


class RssPeak(threading.Thread):
    """Samples the gateway's VmRSS every 10 ms; .peak_kb is the largest seen."""

    def __init__(self, gw):
        super().__init__(daemon=True)
        self.gw = gw
        self.base_kb = gw.rss_kb()
        self.peak_kb = self.base_kb
        self.stop_ev = threading.Event()

    def run(self):
        while not self.stop_ev.wait(0.01):
            try:
                self.peak_kb = max(self.peak_kb, self.gw.rss_kb())
            except (OSError, KeyError):
                return

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *a):
        self.stop_ev.set()
        self.join()
        try:
            self.peak_kb = max(self.peak_kb, self.gw.rss_kb())
        except (OSError, KeyError):
            pass

    @property
    def growth_kb(self):
        return self.peak_kb - self.base_kb


@pytest.fixture
def gw(backends, tollgate):
    b, = backends(1)
    g = tollgate(config(b))
    g.backend = b
    # warm up: a small download and upload, so pools and buffers exist before measuring
    assert http_request(g.port, 'GET', f'/bytes?n={MiB}&cl=1').status == 200
    assert http_request(g.port, 'POST', '/upload', body=b'w' * MiB).status == 200
    return g


def recv_exactly_count(c, n):
    """Reads n body bytes from a RawConn (after its head), counting only."""
    got = len(c.buf)
    c.buf = b''
    mv = memoryview(bytearray(MiB))
    while got < n:
        k = c.sock.recv_into(mv)
        if not k:
            break
        got += k
    return got


def test_download_2gib_bounded_memory(gw):
    n = 2 * GiB
    t0 = time.monotonic()
    with RssPeak(gw) as rss, RawConn(gw.port, timeout=30) as c:
        c.send(build_request('GET', f'/bytes?n={n}&cl=1'))
        r = c.read_head()
        assert r.status == 200
        assert int(r.header('content-length')) == n
        got = recv_exactly_count(c, n)
    assert got == n, f'{got} of {n} bytes'
    assert rss.growth_kb < RSS_BUDGET_KB, f'RSS grew by {rss.growth_kb} KiB'
    print(f'2 GiB download in {time.monotonic() - t0:.1f}s, RSS +{rss.growth_kb} KiB')


def test_upload_2gib_bounded_memory(gw):
    n = 2 * GiB
    blk = memoryview(origin.BLOCK)
    t0 = time.monotonic()
    with RssPeak(gw) as rss, RawConn(gw.port, timeout=30) as c:
        c.send(build_request('POST', '/upload?nohash=1', headers={'Content-Length': str(n)}))
        sent = 0
        while sent < n:
            k = min(len(blk), n - sent)
            c.sock.sendall(blk[:k])
            sent += k
        r = c.read_response('POST')
    assert r.status == 200, r
    assert r.json()['body_len'] == n
    assert rss.growth_kb < RSS_BUDGET_KB, f'RSS grew by {rss.growth_kb} KiB'
    print(f'2 GiB upload in {time.monotonic() - t0:.1f}s, RSS +{rss.growth_kb} KiB')


def test_chunked_download_256mib_intact(gw):
    n = 256 * MiB
    with RssPeak(gw) as rss, RawConn(gw.port, timeout=30) as c:
        r = c.request('GET', f'/bytes?n={n}')
    assert r.status == 200 and r.complete and r.chunked
    assert len(r.body) == n
    assert hashlib.sha256(r.body).hexdigest() == origin.pattern_sha256(n)
    assert rss.growth_kb < RSS_BUDGET_KB, f'RSS grew by {rss.growth_kb} KiB'


def test_chunked_upload_256mib_intact(gw):
    n = 256 * MiB
    blk = origin.BLOCK
    frame = b'%x\r\n' % len(blk) + blk + b'\r\n'
    with RssPeak(gw) as rss, RawConn(gw.port, timeout=30) as c:
        c.send(build_request('POST', '/upload', headers={'Transfer-Encoding': 'chunked'}))
        for _ in range(n // len(blk)):
            c.sock.sendall(frame)
        c.sock.sendall(b'0\r\n\r\n')
        r = c.read_response('POST')
    assert r.status == 200, r
    doc = r.json()
    assert doc['body_len'] == n
    assert doc['body_sha256'] == origin.pattern_sha256(n)
    assert rss.growth_kb < RSS_BUDGET_KB, f'RSS grew by {rss.growth_kb} KiB'


def plateau(sample, quiet_s=1.5, slack=2 * MiB, deadline_s=20):
    """Polls sample() until it grows by less than `slack` over `quiet_s`; returns the value."""
    hist = []
    t_end = time.monotonic() + deadline_s
    while time.monotonic() < t_end:
        now = time.monotonic()
        v = sample()
        hist.append((now, v))
        old = [x for t, x in hist if now - t >= quiet_s]
        if old and v - old[-1] < slack:
            return v
        time.sleep(0.1)
    raise AssertionError(f'no plateau within {deadline_s}s: last {hist[-1][1]} bytes')


def test_slow_client_stops_backend_reads(gw):
    b = gw.backend
    n = GiB
    with RssPeak(gw) as rss, RawConn(gw.port, timeout=30, rcvbuf=64 * 1024) as c:
        c.send(build_request('GET', f'/bytes?n={n}&cl=1&tag=slow&sndbuf=65536'))
        r = c.read_head()
        assert r.status == 200
        # the client reads nothing more: the backend must soon be unable to write
        stalled_at = plateau(lambda: b.stats()['progress'].get('slow', 0))
        assert stalled_at < BACKLOG_LIMIT, f'backend wrote {stalled_at} bytes to a client reading none'
        growth = rss.growth_kb
        print(f'backend stalled after {stalled_at} bytes; gateway RSS +{growth} KiB')
        # reading again resumes the stream
        c.discard(stalled_at + 32 * MiB)
        assert b.stats()['progress']['slow'] > stalled_at
    assert growth < RSS_BUDGET_KB, f'RSS grew by {growth} KiB while the client did not read'


def test_slow_backend_stops_client_reads(gw):
    n = GiB
    blk = memoryview(origin.BLOCK)
    with RssPeak(gw) as rss, RawConn(gw.port, timeout=30) as c:
        # the backend reads 64 KiB per second
        c.send(build_request('POST', '/upload?ms=1000&nohash=1&rcvbuf=65536&tag=up',
                             headers={'Content-Length': str(n)}))
        c.sock.setblocking(False)
        sent = [0]

        def push():
            while True:
                try:
                    k = c.sock.send(blk)
                except BlockingIOError:
                    return sent[0]
                sent[0] += k
                if sent[0] >= n:
                    return sent[0]
        accepted = plateau(push)
        print(f'client stalled after {accepted} bytes')
        assert accepted < BACKLOG_LIMIT, f'gateway accepted {accepted} bytes for a backend reading 64 KiB/s'
        growth = rss.growth_kb
    # The gateway cannot see that the client left while it does not read from it, and
    # the backend would need minutes to drain what is queued: end the exchange from the
    # upstream side so that shutdown does not wait for shutdown_grace.
    gw.backend.stop()
    assert growth < RSS_BUDGET_KB, f'RSS grew by {growth} KiB'
