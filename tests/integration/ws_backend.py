#!/usr/bin/python3
"""A WebSocket test backend on python3-websockets. Prints "READY <port>".

Paths (any prefix): .../echo echoes every message; .../close sends "bye" and
closes with code 4001; .../headers sends the handshake's request headers as
JSON; .../push sends N (query n) numbered messages without being asked."""
import argparse
import asyncio
import json
import sys
from urllib.parse import parse_qs, urlsplit

import websockets


async def handler(ws, path):
    u = urlsplit(path)
    p = u.path
    try:
        if p.endswith('/echo'):
            async for m in ws:
                await ws.send(m)
        elif p.endswith('/close'):
            await ws.send('bye')
            await ws.close(4001, 'done')
        elif p.endswith('/headers'):
            await ws.send(json.dumps({k.lower(): v for k, v in ws.request_headers.raw_items()}))
            await ws.wait_closed()
        elif p.endswith('/push'):
            n = int(parse_qs(u.query).get('n', ['10'])[0])
            for i in range(n):
                await ws.send(f'msg {i}')
            await ws.wait_closed()
    except websockets.ConnectionClosed:
        pass


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--port', type=int, default=0)
    a = ap.parse_args()
    async with websockets.serve(handler, '127.0.0.1', a.port, max_size=None) as srv:
        port = srv.sockets[0].getsockname()[1]
        sys.stdout.write(f'READY {port}\n')
        sys.stdout.flush()
        await asyncio.Future()


if __name__ == '__main__':
    asyncio.run(main())
