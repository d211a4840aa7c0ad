"""Response caching (docs/caching.md): hits, freshness, Vary, conditionals,
revalidation, collapsing, stale serving, purge, invalidation, auth ordering.

The origin is a small HTTP/1.1 server started as its own process (so that it
can be killed): every response header comes from the query string, and it
counts the requests it answers per path (GET /_count?p=/path)."""
import concurrent.futures
import http.client
import json
import os
import re
import selectors
import subprocess
import sys
import time

import pytest

from conftest import free_port, http_request, port_accepts, wait_until

ORIGIN = r'''
import json, sys, threading, time, urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
counts, lock = {}, threading.Lock()
class H(BaseHTTPRequestHandler):
    protocol_version = 'HTTP/1.1'
    def log_message(self, *a): pass
    def do_POST(self): self.do_GET()
    def do_GET(self):
        u = urllib.parse.urlsplit(self.path)
        q = dict(urllib.parse.parse_qsl(u.query, keep_blank_values=True))
        n = int(self.headers.get('Content-Length') or 0)
        if n: self.rfile.read(n)
        if u.path == '/_count':
            body = json.dumps(counts.get(q.get('p', ''), {})).encode()
            return self.answer(200, {}, body)
        with lock:
            c = counts.setdefault(u.path, {'n': 0, 'n304': 0, 'inm': None})
            c['n'] += 1
            c['inm'] = self.headers.get('If-None-Match')
            serial = c['n']
        if 'delay' in q: time.sleep(int(q['delay']) / 1000)
        hdrs = {}
        for k in ('cache-control', 'etag', 'vary', 'cache-tag', 'set-cookie', 'expires', 'last-modified'):
            if k in q: hdrs[k] = q[k]
        etag = q.get('etag')
        if etag and self.headers.get('If-None-Match') == etag:
            with lock: c['n304'] += 1
            return self.answer(304, hdrs, b'')
        size = int(q.get('size', 0))
        body = (f'{u.path} n={serial} lang={self.headers.get("Accept-Language")}\n').encode()
        body += b'x' * size
        self.answer(int(q.get('status', 200)), hdrs, body)
    def answer(self, code, hdrs, body):
        self.send_response(code)
        for k, v in hdrs.items(): self.send_header(k, v)
        if code != 304: self.send_header('Content-Length', str(len(body)))
        self.end_headers()
        if code != 304 and self.command != 'HEAD': self.wfile.write(body)
    do_HEAD = do_GET
ThreadingHTTPServer.request_queue_size = 256
s = ThreadingHTTPServer(('127.0.0.1', 0), H)
s.daemon_threads = True
print('READY', s.server_address[1], flush=True)
s.serve_forever()
'''


class Origin:
    def __init__(self, tmp_path):
        script = tmp_path / 'origin.py'
        script.write_text(ORIGIN)
        self.proc = subprocess.Popen(['/usr/bin/python3', str(script)], stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
        sel = selectors.DefaultSelector()
        sel.register(self.proc.stdout, selectors.EVENT_READ)
        assert sel.select(15), 'origin did not start'
        line = self.proc.stdout.readline().decode()
        sel.close()
        m = re.match(r'READY (\d+)', line)
        assert m, line
        self.port = int(m.group(1))

    def count(self, path):
        c = http.client.HTTPConnection('127.0.0.1', self.port, timeout=10)
        try:
            c.request('GET', '/_count?p=' + path)
            return json.loads(c.getresponse().read()) or {'n': 0, 'n304': 0, 'inm': None}
        finally:
            c.close()

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=10)


@pytest.fixture
def origin(tmp_path):
    o = Origin(tmp_path)
    yield o
    o.kill()


TOKEN = 'cache-admin-token'

CFG = '''
server:
  listen: ["$listen"]
  workers: 2
  access_log: { format: off }
admin:
  listen: 127.0.0.1:$admin
  token: $token
cache:
  memory: 16MiB
upstreams:
  origin:
    servers: ["127.0.0.1:$oport"]
    timeouts: { connect: 1s, response: 5s }
consumers:
  - name: alice
    api_keys: [alice-key]
routes:
  - name: secured
    match: { path: /secure }
    upstream: origin
    auth: { api_key: { header: X-API-Key } }
    cache: { ttl: 60s }
  - name: cached
    match: { path: / }
    upstream: origin
    cache:
      ttl: 0s
      max_object_bytes: 64KiB
      key: [method, host, path, query]
      stale_if_error: 60s
      stale_while_revalidate: 30s
      tags_header: Cache-Tag
'''


@pytest.fixture
def gw(tollgate, origin):
    admin = free_port()
    g = tollgate(CFG, oport=origin.port, admin=admin, token=TOKEN)
    wait_until(lambda: port_accepts(admin), timeout=10, what='admin listener')
    g.admin = admin
    return g


def get(gw, path, headers=None, method='GET'):
    return http_request(gw.port, method, path, headers=headers or {})


def purge(gw, doc):
    r = http_request(gw.admin, 'POST', '/cache/purge', body=json.dumps(doc).encode(),
                     headers={'Authorization': f'Bearer {TOKEN}', 'Content-Type': 'application/json'})
    assert r.status == 200, r
    return r.json()['purged']


MAXAGE = '?cache-control=max-age%3D60'


def test_miss_then_hit_with_age_and_cache_status(gw, origin):
    a = get(gw, '/a' + MAXAGE)
    b = get(gw, '/a' + MAXAGE)
    assert a.status == b.status == 200
    assert a.body == b.body and b'n=1' in b.body
    assert origin.count('/a')['n'] == 1
    assert 'fwd=uri-miss' in a.header('Cache-Status') and 'stored' in a.header('Cache-Status')
    assert b.header('Cache-Status').startswith('tollgate; hit; ttl=')
    assert b.header('Age') is not None and int(b.header('Age')) >= 0
    assert b.header('X-Request-Id') != a.header('X-Request-Id')
    head = get(gw, '/a' + MAXAGE, method='HEAD')  # HEAD from the GET entry
    assert head.status == 200 and head.body == b'' and 'hit' in head.header('Cache-Status')
    assert int(head.header('Content-Length')) == len(a.body)
    assert origin.count('/a')['n'] == 1


def test_expiry_with_short_max_age(gw, origin):
    path = '/e?cache-control=max-age%3D1'
    first = get(gw, path)
    assert b'n=1' in get(gw, path).body  # still fresh
    # Poll (no fixed sleep): once a second has passed the entry is stale and
    # the origin is asked again (no validators: a plain refetch).
    wait_until(lambda: b'n=2' in get(gw, path).body, timeout=10, interval=0.1, what='expiry')
    assert first.status == 200 and origin.count('/e')['n'] == 2


@pytest.mark.parametrize('cc', ['no-store', 'private', 'max-age%3D0'])
def test_uncacheable_responses(gw, origin, cc):
    for _ in range(2):
        assert get(gw, f'/u?cache-control={cc}').status == 200
    assert origin.count('/u')['n'] == 2


def test_set_cookie_not_shared(gw, origin):
    for _ in range(2):
        r = get(gw, '/sc' + MAXAGE + '&set-cookie=s%3D1')
        assert r.header('Set-Cookie') == 's=1'
    assert origin.count('/sc')['n'] == 2


def test_vary_variants_and_star(gw, origin):
    p = '/v' + MAXAGE + '&vary=Accept-Language'
    en1 = get(gw, p, {'Accept-Language': 'en'})
    fr = get(gw, p, {'Accept-Language': 'fr'})
    en2 = get(gw, p, {'Accept-Language': 'en'})
    assert b'lang=en' in en1.body and b'lang=fr' in fr.body and en2.body == en1.body
    assert 'fwd=vary-miss' in fr.header('Cache-Status')
    assert origin.count('/v')['n'] == 2
    ae = '/ae' + MAXAGE + '&vary=Accept-Encoding'
    get(gw, ae, {'Accept-Encoding': 'gzip, br'})
    assert 'hit' in get(gw, ae, {'Accept-Encoding': 'br,gzip'}).header('Cache-Status')
    assert origin.count('/ae')['n'] == 1
    for _ in range(2):
        get(gw, '/star' + MAXAGE + '&vary=*')
    assert origin.count('/star')['n'] == 2


def test_client_conditional_answered_304_from_cache(gw, origin):
    p = '/c' + MAXAGE + '&etag=%22v1%22&last-modified=Mon,%2001%20Jan%202024%2000:00:00%20GMT'
    full = get(gw, p)
    assert full.status == 200
    r = get(gw, p, {'If-None-Match': '"v1"'})
    assert r.status == 304 and r.body == b'' and r.header('ETag') == '"v1"'
    assert get(gw, p, {'If-None-Match': '"other"'}).status == 200
    r = get(gw, p, {'If-Modified-Since': 'Tue, 02 Jan 2024 00:00:00 GMT'})
    assert r.status == 304
    assert origin.count('/c')['n'] == 1


def test_origin_304_refreshes_entry_and_client_gets_full_body(gw, origin):
    p = '/r' + MAXAGE + '&etag=%22v1%22'
    first = get(gw, p)
    # A client's no-cache makes the gateway revalidate with its stored validator.
    r = get(gw, p, {'Cache-Control': 'no-cache'})
    c = origin.count('/r')
    assert c['n'] == 2 and c['n304'] == 1 and c['inm'] == '"v1"'
    assert r.status == 200 and r.body == first.body
    assert 'fwd-status=304' in r.header('Cache-Status')
    assert 'hit' in get(gw, p).header('Cache-Status')
    assert origin.count('/r')['n'] == 2


def test_collapsing_100_concurrent_misses(gw, origin):
    p = '/slow' + MAXAGE + '&delay=500'

    def one(_):
        return http_request(gw.port, 'GET', p, timeout=30)
    with concurrent.futures.ThreadPoolExecutor(max_workers=100) as pool:
        results = list(pool.map(one, range(100)))
    assert all(r.status == 200 for r in results), [r.status for r in results]
    assert len({r.body for r in results}) == 1
    assert origin.count('/slow')['n'] == 1


def test_uncacheable_collapsed_requests_fall_back(gw, origin):
    p = '/nc?cache-control=no-store&delay=300'
    with concurrent.futures.ThreadPoolExecutor(max_workers=10) as pool:
        results = list(pool.map(lambda _: http_request(gw.port, 'GET', p, timeout=30), range(10)))
    assert all(r.status == 200 for r in results), [r.status for r in results]
    assert origin.count('/nc')['n'] == 10


def test_stale_if_error_with_origin_killed(gw, origin):
    p = '/sie?cache-control=max-age%3D1'
    first = get(gw, p)
    origin.kill()
    # Forced revalidation while the origin is gone: the stored answer.
    r = get(gw, p, {'Cache-Control': 'no-cache'})
    assert r.status == 200 and r.body == first.body
    assert 'stale-if-error' in r.header('Cache-Status')
    # And once it is really stale (polled, no fixed sleep): this route's
    # stale_while_revalidate window answers first; its background refresh
    # fails against the dead origin and the stored answer stays in use.
    wait_until(lambda: 'stale' in (get(gw, p).header('Cache-Status') or ''), timeout=10,
               interval=0.1, what='stale entry')
    for _ in range(3):
        r = get(gw, p)
        assert r.status == 200 and r.body == first.body, r


def test_stale_while_revalidate_refreshes_in_background(gw, origin):
    p = '/swr?cache-control=max-age%3D1'
    assert b'n=1' in get(gw, p).body
    seen = []

    def stale_served():
        r = get(gw, p)
        seen.append(r)
        return 'stale-while-revalidate' in (r.header('Cache-Status') or '')
    wait_until(stale_served, timeout=10, interval=0.1, what='stale-while-revalidate answer')
    assert b'n=1' in seen[-1].body  # the stale copy, at once
    wait_until(lambda: origin.count('/swr')['n'] == 2, timeout=10, what='background refresh')
    wait_until(lambda: b'n=2' in get(gw, p).body, timeout=10, what='refreshed entry')


def test_max_object_bytes_streams_through_unstored(gw, origin):
    p = '/big' + MAXAGE + '&size=100000'
    for _ in range(2):
        r = get(gw, p)
        assert r.status == 200 and len(r.body) > 100000
    assert origin.count('/big')['n'] == 2
    small = '/small' + MAXAGE + '&size=1000'
    get(gw, small)
    get(gw, small)
    assert origin.count('/small')['n'] == 1


def test_purge_by_url_prefix_and_tag(gw, origin):
    get(gw, '/p/one' + MAXAGE)
    get(gw, '/p/two' + MAXAGE + '&cache-tag=red,%20blue')
    get(gw, '/q/three' + MAXAGE + '&cache-tag=blue')
    assert purge(gw, {'url': '/p/one' + MAXAGE}) == 1
    get(gw, '/p/one' + MAXAGE)
    assert origin.count('/p/one')['n'] == 2
    assert purge(gw, {'tag': 'blue'}) == 2
    assert purge(gw, {'tags': ['red', 'blue']}) == 0
    get(gw, '/q/three' + MAXAGE + '&cache-tag=blue')
    assert origin.count('/q/three')['n'] == 2
    assert purge(gw, {'prefix': '/p/'}) == 1  # /p/one again
    assert purge(gw, {'url': '/q/three' + MAXAGE + '&cache-tag=blue', 'host': 'elsewhere'}) == 0
    bad = http_request(gw.admin, 'POST', '/cache/purge', body=b'{"nope":1}',
                       headers={'Authorization': f'Bearer {TOKEN}'})
    assert bad.status == 400
    assert http_request(gw.admin, 'POST', '/cache/purge', body=b'{"tag":"x"}').status == 401


def test_unsafe_method_invalidates(gw, origin):
    p = '/inv' + MAXAGE
    get(gw, p)
    assert 'hit' in get(gw, p).header('Cache-Status')
    assert get(gw, p, method='POST').status == 200
    get(gw, p)
    assert origin.count('/inv')['n'] == 3  # GET, POST, GET again


def test_refused_client_never_gets_cached_answer(gw, origin):
    p = '/secure' + MAXAGE + '&cache-control=public,%20max-age%3D60'
    ok = get(gw, p, {'X-API-Key': 'alice-key'})
    assert ok.status == 200
    assert 'hit' in get(gw, p, {'X-API-Key': 'alice-key'}).header('Cache-Status')
    r = get(gw, p)
    assert r.status == 401 and b'n=1' not in r.body
    r = get(gw, p, {'X-API-Key': 'wrong'})
    assert r.status == 401 and b'n=1' not in r.body
    assert origin.count('/secure')['n'] == 1


def test_metrics(gw, origin):
    get(gw, '/m' + MAXAGE)
    get(gw, '/m' + MAXAGE)
    text = http_request(gw.admin, 'GET', '/metrics').body.decode()
    assert re.search(r'tollgate_cache_lookups_total\{route="cached",result="hit"\} [1-9]', text), text
    assert re.search(r'tollgate_cache_lookups_total\{route="cached",result="miss"\} [1-9]', text)
    assert re.search(r'^tollgate_cache_bytes [1-9]', text, re.M)
