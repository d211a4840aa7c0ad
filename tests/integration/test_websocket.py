"""WebSocket through the gateway (route `websocket: true`): python3-websockets
client and server (ws_backend.py), HTTP/1.1 Upgrade tunnelled to the upstream."""
import asyncio
import json
import os
import socket
import subprocess
import time

import pytest
import websockets

from conftest import PY, HERE, read_ready

WS_BACKEND = HERE / 'ws_backend.py'


@pytest.fixture
def ws_backend(tmp_path):
    err = open(tmp_path / 'ws-backend.stderr', 'wb')
    proc = subprocess.Popen([PY, str(WS_BACKEND)], stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=err)
    port = int(read_ready(proc, 'ws backend').group(1))
    yield f'127.0.0.1:{port}'
    proc.kill()
    proc.wait(timeout=10)


def cfg(addr, websocket='true', idle='60s'):
    return f"""
server:
  listen: ["$listen"]
  workers: 1
  access_log: {{ format: off }}
upstreams:
  ws:
    servers: ["{addr}"]
    timeouts: {{ idle: {idle} }}
routes:
  - match: {{ path: /ws }}
    upstream: ws
    websocket: {websocket}
"""


def run(coro, timeout=60):
    return asyncio.run(asyncio.wait_for(coro, timeout))


def test_ws_echo_text_and_binary(tollgate, ws_backend):
    gw = tollgate(cfg(ws_backend))

    async def go():
        async with websockets.connect(f'ws://127.0.0.1:{gw.port}/ws/echo', max_size=None) as ws:
            for i in range(20):
                await ws.send(f'hello {i}')
                assert await ws.recv() == f'hello {i}'
            blob = os.urandom(1000)
            await ws.send(blob)
            assert await ws.recv() == blob
    run(go())


def test_ws_large_messages_both_ways(tollgate, ws_backend):
    gw = tollgate(cfg(ws_backend))

    async def go():
        async with websockets.connect(f'ws://127.0.0.1:{gw.port}/ws/echo', max_size=None,
                                      write_limit=2**20) as ws:
            big = os.urandom(8 * 1024 * 1024)
            await ws.send(big)
            assert await ws.recv() == big
            # several in flight at once
            msgs = [os.urandom(300_000) for _ in range(5)]
            for m in msgs:
                await ws.send(m)
            for m in msgs:
                assert await ws.recv() == m
    run(go(), timeout=120)


def test_ws_server_push_and_close_code(tollgate, ws_backend):
    gw = tollgate(cfg(ws_backend))

    async def go():
        async with websockets.connect(f'ws://127.0.0.1:{gw.port}/ws/push?n=50') as ws:
            got = [await ws.recv() for _ in range(50)]
            assert got == [f'msg {i}' for i in range(50)]
        async with websockets.connect(f'ws://127.0.0.1:{gw.port}/ws/close') as ws:
            assert await ws.recv() == 'bye'
            with pytest.raises(websockets.ConnectionClosed) as ei:
                await ws.recv()
            assert ei.value.code == 4001 and ei.value.reason == 'done'
    run(go())


def test_ws_handshake_headers_forwarded(tollgate, ws_backend):
    gw = tollgate(cfg(ws_backend))

    async def go():
        async with websockets.connect(f'ws://127.0.0.1:{gw.port}/ws/headers',
                                      extra_headers={'X-Token': 't1'}) as ws:
            h = json.loads(await ws.recv())
            assert h['upgrade'].lower() == 'websocket' and 'upgrade' in h['connection'].lower()
            assert h['x-token'] == 't1' and h['x-forwarded-for'] == '127.0.0.1'
            assert 'sec-websocket-key' in h and 'x-request-id' in h
    run(go())


def test_ws_refused_without_websocket_route(tollgate, ws_backend):
    gw = tollgate(cfg(ws_backend, websocket='false'))

    async def go():
        with pytest.raises(websockets.InvalidStatusCode) as ei:
            async with websockets.connect(f'ws://127.0.0.1:{gw.port}/ws/echo'):
                pass
        assert ei.value.status_code != 101
    run(go())


def test_ws_idle_timeout_closes_tunnel(tollgate, ws_backend):
    gw = tollgate(cfg(ws_backend, idle='1s'))

    async def go():
        async with websockets.connect(f'ws://127.0.0.1:{gw.port}/ws/echo', ping_interval=None) as ws:
            await ws.send('x')
            assert await ws.recv() == 'x'
            t0 = time.monotonic()
            with pytest.raises(websockets.ConnectionClosed):
                await ws.recv()
            assert 0.5 < time.monotonic() - t0 < 15
    run(go())


def test_ws_client_eof_closes_upstream(tollgate, ws_backend):
    """A client that just goes away ends the tunnel; the gateway keeps serving."""
    gw = tollgate(cfg(ws_backend))
    s = socket.create_connection(('127.0.0.1', gw.port), timeout=10)
    s.sendall(b'GET /ws/echo HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n'
              b'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n')
    head = b''
    while b'\r\n\r\n' not in head:
        chunk = s.recv(4096)
        assert chunk
        head += chunk
    assert head.startswith(b'HTTP/1.1 101'), head
    assert b'sec-websocket-accept: s3pplmbitxaq9kygzzhzrbk+xoo=' in head.lower()
    assert b'content-length' not in head.lower() and b'transfer-encoding' not in head.lower()
    s.close()

    async def go():
        async with websockets.connect(f'ws://127.0.0.1:{gw.port}/ws/echo') as ws:
            await ws.send('still here')
            assert await ws.recv() == 'still here'
    run(go())


def test_ws_handshake_goes_through_auth_and_rate_limits(tollgate, ws_backend):
    gw = tollgate(f"""
server:
  listen: ["$listen"]
  workers: 1
  access_log: {{ format: off }}
consumers:
  - {{ name: alice, api_keys: ["k-alice"] }}
upstreams:
  ws:
    servers: ["{ws_backend}"]
routes:
  - match: {{ path: /ws }}
    upstream: ws
    websocket: true
    auth: {{ api_key: {{ header: X-API-Key }} }}
    rate_limit: [ {{ key: consumer, rate: 1/m, burst: 0 }} ]
""")

    async def go():
        url = f'ws://127.0.0.1:{gw.port}/ws/headers'
        with pytest.raises(websockets.InvalidStatusCode) as ei:
            async with websockets.connect(url):
                pass
        assert ei.value.status_code == 401
        async with websockets.connect(url, extra_headers={'X-API-Key': 'k-alice'}) as ws:
            h = json.loads(await ws.recv())
            assert h['x-consumer-name'] == 'alice' and 'x-api-key' not in h
        with pytest.raises(websockets.InvalidStatusCode) as ei:  # the second handshake is over the rate
            async with websockets.connect(url, extra_headers={'X-API-Key': 'k-alice'}):
                pass
        assert ei.value.status_code == 429
    run(go())
