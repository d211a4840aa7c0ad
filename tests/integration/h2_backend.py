#!/usr/bin/python3
"""An HTTP/2 test backend on python3-h2 (asyncio): h2c with prior knowledge, or
h2 over TLS with ALPN (--cert/--key). Prints "READY <port>" when listening.

Paths
  /echo...        200 JSON {method, path, authority, scheme, headers, body, trailers}
  /big?n=N        200 with N bytes of 'x' (flow control respected)
  /trailers       200 "hello" then trailers x-checksum: abc, x-count: 2
  /slow?ms=N      waits N ms, then 200 "slow"
  /status/N       status N, body "s"
  /nolen          200 "abc" without content-length
  /reset          RST_STREAM (INTERNAL_ERROR) without a response
  /_stats         {"connections": N, "streams": N}  (how multiplexing went)
"""
import argparse
import asyncio
import json
import ssl
import sys
from urllib.parse import parse_qs, urlsplit

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions

STATS = {'connections': 0, 'streams': 0}


class Conn:
    def __init__(self, reader, writer):
        self.r, self.w = reader, writer
        self.h2 = h2.connection.H2Connection(h2.config.H2Configuration(
            client_side=False, header_encoding='utf-8', validate_inbound_headers=True))
        self.streams = {}
        self.window_open = asyncio.Event()

    async def run(self):
        STATS['connections'] += 1
        self.h2.initiate_connection()
        await self.flush()
        try:
            while True:
                data = await self.r.read(65536)
                if not data:
                    break
                for ev in self.h2.receive_data(data):
                    self.handle(ev)
                await self.flush()
        except (ConnectionError, h2.exceptions.ProtocolError):
            pass
        finally:
            self.w.close()

    async def flush(self):
        out = self.h2.data_to_send()
        if out:
            self.w.write(out)
            await self.w.drain()

    def handle(self, ev):
        if isinstance(ev, h2.events.RequestReceived):
            STATS['streams'] += 1
            self.streams[ev.stream_id] = {'headers': ev.headers, 'body': b'', 'trailers': []}
            if ev.stream_ended:
                asyncio.ensure_future(self.respond(ev.stream_id))
        elif isinstance(ev, h2.events.DataReceived):
            s = self.streams.get(ev.stream_id)
            if s is not None:
                s['body'] += ev.data
            self.h2.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
        elif isinstance(ev, h2.events.TrailersReceived):
            self.streams[ev.stream_id]['trailers'] = ev.headers
        elif isinstance(ev, h2.events.StreamEnded):
            asyncio.ensure_future(self.respond(ev.stream_id))
        elif isinstance(ev, h2.events.WindowUpdated):
            self.window_open.set()
        elif isinstance(ev, h2.events.StreamReset):
            self.streams.pop(ev.stream_id, None)

    async def send_body(self, sid, data, end=True):
        view, off = memoryview(data), 0   # no copies: bodies may be large
        while off < len(data):
            while self.h2.local_flow_control_window(sid) < 1:
                self.window_open.clear()
                await self.window_open.wait()
            n = min(len(data) - off, self.h2.local_flow_control_window(sid), self.h2.max_outbound_frame_size)
            self.h2.send_data(sid, bytes(view[off:off + n]))
            off += n
            await self.flush()
        if end:
            self.h2.end_stream(sid)
            await self.flush()

    async def respond(self, sid):
        s = self.streams.get(sid)
        if s is None:
            return
        hd = dict(s['headers'])
        u = urlsplit(hd.get(':path', '/'))
        q = {k: v[0] for k, v in parse_qs(u.query).items()}
        p = u.path
        try:
            await self.route(sid, s, hd, p, q)
        except h2.exceptions.StreamClosedError:
            pass
        self.streams.pop(sid, None)

    async def route(self, sid, s, hd, p, q):
        if p.startswith('/echo'):
            body = json.dumps({
                'method': hd.get(':method'), 'path': hd.get(':path'), 'authority': hd.get(':authority'),
                'scheme': hd.get(':scheme'), 'headers': [[k, v] for k, v in s['headers']],
                'body': s['body'].decode('latin-1'), 'trailers': [[k, v] for k, v in s['trailers']],
            }).encode()
            self.h2.send_headers(sid, [(':status', '200'), ('content-type', 'application/json'),
                                       ('content-length', str(len(body)))])
            await self.send_body(sid, body)
        elif p == '/big':
            n = int(q.get('n', '1000'))
            head = hd.get(':method') == 'HEAD'
            self.h2.send_headers(sid, [(':status', '200'), ('content-length', str(n))], end_stream=head)
            if head:
                await self.flush()
            else:
                await self.send_body(sid, b'x' * n)
        elif p == '/trailers':
            self.h2.send_headers(sid, [(':status', '200'), ('content-type', 'text/plain')])
            await self.send_body(sid, b'hello', end=False)
            self.h2.send_headers(sid, [('x-checksum', 'abc'), ('x-count', '2')], end_stream=True)
            await self.flush()
        elif p == '/slow':
            await asyncio.sleep(int(q.get('ms', '1000')) / 1000)
            self.h2.send_headers(sid, [(':status', '200'), ('content-length', '4')])
            await self.send_body(sid, b'slow')
        elif p.startswith('/status/'):
            self.h2.send_headers(sid, [(':status', p.split('/')[2]), ('content-length', '1')])
            await self.send_body(sid, b's')
        elif p == '/nolen':
            self.h2.send_headers(sid, [(':status', '200')])
            await self.send_body(sid, b'abc')
        elif p == '/reset':
            self.h2.reset_stream(sid, h2.errors.ErrorCodes.INTERNAL_ERROR)
            await self.flush()
        elif p == '/_stats':
            body = json.dumps(STATS).encode()
            self.h2.send_headers(sid, [(':status', '200'), ('content-length', str(len(body)))])
            await self.send_body(sid, body)
        else:
            self.h2.send_headers(sid, [(':status', '404'), ('content-length', '0')], end_stream=True)
            await self.flush()


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--port', type=int, default=0)
    ap.add_argument('--cert')
    ap.add_argument('--key')
    ap.add_argument('--alpn', default='h2')
    a = ap.parse_args()
    ctx = None
    if a.cert:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(a.cert, a.key)
        ctx.set_alpn_protocols([a.alpn])
    srv = await asyncio.start_server(lambda r, w: Conn(r, w).run(), '127.0.0.1', a.port, ssl=ctx)
    port = srv.sockets[0].getsockname()[1]
    sys.stdout.write(f'READY {port}\n')
    sys.stdout.flush()
    async with srv:
        await srv.serve_forever()


if __name__ == '__main__':
    asyncio.run(main())
