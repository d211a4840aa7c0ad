"""Access log: one JSON line per request with the issue's fields, combined format,
a file path, off, no interleaving across workers, and a log that cannot be
written never blocks a worker."""
import datetime
import http.client
import json
import os
import re
import signal
import stat
import threading
import time

from conftest import RawConn, http_request, wait_until

FIELDS = ('time', 'request_id', 'client_ip', 'method', 'host', 'path', 'status', 'bytes_in',
          'bytes_out', 'duration_ms', 'route', 'upstream_addr', 'upstream_status', 'upstream_ms')


def config(b, access_log, extra=''):
    return f"""
        server:
          listen: ["$listen"]
          access_log: {access_log}
          {extra}
        upstreams:
          u: {{ servers: ["{b.addr}"] }}
        routes:
          - name: api
            match: {{ path: /api }}
            upstream: u
            rewrite: {{ strip_prefix: /api }}
          - name: pot
            match: {{ path_exact: /teapot }}
            respond: {{ status: 418, body: "tea" }}
        """


def json_lines(text):
    out = []
    for line in text.splitlines():
        if line.startswith('{'):
            out.append(json.loads(line))
    return out


def wait_entry(read, rid, timeout=5):
    def find():
        for e in json_lines(read()):
            if e.get('request_id') == rid:
                return e
        return None
    return wait_until(find, timeout=timeout, what=f'access log line for {rid}')


def is_number(x):
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def check_time(t):
    now = time.time()
    if is_number(t):
        assert abs(t - now) < 120 or abs(t / 1000 - now) < 120, t
    else:
        assert isinstance(t, str) and re.match(r'\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}', t), t
        ts = datetime.datetime.fromisoformat(t.replace('Z', '+00:00'))
        if ts.tzinfo is None:
            ts = ts.replace(tzinfo=datetime.timezone.utc)
        assert abs(ts.timestamp() - now) < 120, t


def test_json_line_fields(backends, tollgate):
    b, = backends(1)
    gw = tollgate(config(b, '{ path: stdout, format: json }'))
    body = b'p' * 1234
    r = http_request(gw.port, 'POST', '/api/echo/log', body=body,
                     headers={'Host': 'logs.example.com', 'X-Request-Id': 'rid-fields-1'})
    assert r.status == 200
    e = wait_entry(gw.stdout, 'rid-fields-1')
    for f in FIELDS:
        assert f in e, f'{f} missing from {e}'
    check_time(e['time'])
    assert e['client_ip'] == '127.0.0.1'
    assert e['method'] == 'POST'
    assert e['host'] == 'logs.example.com'
    assert e['path'].startswith('/api/echo/log')
    assert e['status'] == 200
    assert is_number(e['bytes_in']) and e['bytes_in'] >= len(body)
    assert is_number(e['bytes_out']) and e['bytes_out'] >= len(r.body)
    assert e['route'] == 'api'
    assert e['upstream_addr'] == b.addr
    assert e['upstream_status'] == 200
    assert is_number(e['duration_ms']) and is_number(e['upstream_ms'])
    assert 0 <= e['upstream_ms'] <= e['duration_ms'] + 1


def test_json_line_durations_and_local_answers(backends, tollgate):
    b, = backends(1)
    gw = tollgate(config(b, '{ format: json }'))
    r = http_request(gw.port, 'GET', '/api/slow?ms=300', headers={'X-Request-Id': 'rid-slow'})
    assert r.status == 200
    e = wait_entry(gw.stdout, 'rid-slow')
    assert e['duration_ms'] >= 290 and e['upstream_ms'] >= 290, e
    assert e['duration_ms'] < 5000
    r = http_request(gw.port, 'GET', '/api/status/503', headers={'X-Request-Id': 'rid-503'})
    e = wait_entry(gw.stdout, 'rid-503')
    assert e['status'] == 503 and e['upstream_status'] == 503
    r = http_request(gw.port, 'GET', '/nowhere')
    assert r.status == 404
    e = wait_entry(gw.stdout, r.header('x-request-id'))
    assert e['status'] == 404 and e['path'] == '/nowhere'
    assert e['upstream_addr'] in (None, '', '-')
    r = http_request(gw.port, 'GET', '/teapot')
    e = wait_entry(gw.stdout, r.header('x-request-id'))
    assert e['status'] == 418 and e['route'] == 'pot'
    assert e['bytes_out'] >= 3


def test_client_ip_from_trusted_proxy(backends, tollgate):
    b, = backends(1)
    gw = tollgate(config(b, '{ format: json }', 'trusted_proxies: [127.0.0.1]'))
    http_request(gw.port, 'GET', '/api/echo', headers={'X-Request-Id': 'rid-xff',
                                                       'X-Forwarded-For': '203.0.113.7'})
    assert wait_entry(gw.stdout, 'rid-xff')['client_ip'] == '203.0.113.7'


def test_combined_format(backends, tollgate, tmp_path):
    b, = backends(1)
    log = tmp_path / 'combined.log'
    gw = tollgate(config(b, f'{{ path: "{log}", format: combined }}'))
    r = http_request(gw.port, 'GET', '/api/echo/c?q=1',
                     headers={'User-Agent': 'tg-test/1.0', 'Referer': 'http://ref.example/'})
    assert r.status == 200
    pat = re.compile(r'^127\.0\.0\.1 - \S+ \[\d{2}/[A-Z][a-z]{2}/\d{4}:\d{2}:\d{2}:\d{2} [+-]\d{4}\] '
                     r'"GET /api/echo/c\?q=1 HTTP/1\.1" 200 (\d+|-) "http://ref\.example/" "tg-test/1\.0"$')

    def line():
        text = log.read_text() if log.exists() else ''
        return [ln for ln in text.splitlines() if '/api/echo/c' in ln]
    lines = wait_until(line, timeout=5, what='combined log line')
    assert len(lines) == 1 and pat.match(lines[0]), lines


def test_log_to_file_not_stdout(backends, tollgate, tmp_path):
    b, = backends(1)
    log = tmp_path / 'access.log'
    gw = tollgate(config(b, f'{{ path: "{log}", format: json }}'))
    http_request(gw.port, 'GET', '/api/echo', headers={'X-Request-Id': 'rid-file'})
    wait_entry(lambda: log.read_text() if log.exists() else '', 'rid-file')
    assert 'rid-file' not in gw.stdout()


def test_log_off(backends, tollgate):
    b, = backends(1)
    gw = tollgate(config(b, '{ format: off }'))
    for i in range(5):
        assert http_request(gw.port, 'GET', '/api/echo', headers={'X-Request-Id': f'rid-off-{i}'}).status == 200
    gw.proc.send_signal(signal.SIGTERM)      # exit flushes anything queued
    assert gw.wait_exit(10) == 0
    assert 'rid-off' not in gw.stdout()


def test_lines_never_interleave(backends, tollgate, tmp_path):
    b, = backends(1)
    log = tmp_path / 'access.log'
    gw = tollgate(config(b, f'{{ path: "{log}", format: json }}', 'workers: 2'))
    threads, per_thread = 8, 40
    pad = 'x' * 3000                          # long lines make torn writes likely if any
    errors = []

    def client(t):
        try:
            c = http.client.HTTPConnection('127.0.0.1', gw.port, timeout=15)
            for i in range(per_thread):
                c.request('GET', f'/api/echo/{t}/{i}?pad={pad}', headers={'X-Request-Id': f'rid-{t}-{i}'})
                r = c.getresponse()
                r.read()
                if r.status != 200:
                    errors.append(r.status)
            c.close()
        except Exception as e:     # reported below
            errors.append(repr(e))
    ts = [threading.Thread(target=client, args=(t,)) for t in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(60)
    assert not errors, errors[:5]
    gw.proc.send_signal(signal.SIGTERM)
    assert gw.wait_exit(10) == 0
    lines = log.read_text().splitlines()
    ids = set()
    for ln in lines:
        ids.add(json.loads(ln)['request_id'])     # every line is one whole JSON object
    assert len(lines) == threads * per_thread
    assert ids == {f'rid-{t}-{i}' for t in range(threads) for i in range(per_thread)}


def test_unwritable_log_never_blocks_requests(backends, tollgate, tmp_path):
    b, = backends(1)
    fifo = tmp_path / 'access.fifo'
    os.mkfifo(fifo)
    # a reader that never reads: the pipe fills after 64 KiB and the writer blocks
    rfd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    stop = threading.Event()
    gw = None
    try:
        gw = tollgate(config(b, f'{{ path: "{fifo}", format: json }}'))
        assert stat.S_ISFIFO(os.stat(fifo).st_mode)
        pad = 'y' * 4000
        t0 = time.monotonic()
        with RawConn(gw.port, timeout=5) as c:
            for i in range(1500):            # ~6 MB of log lines: more than the log's queue holds
                r = c.request('GET', f'/teapot?pad={pad}&i={i}')
                assert r.status == 418
        assert time.monotonic() - t0 < 30
    finally:
        # drain so that the gateway can flush and exit at teardown
        def drain():
            while not stop.is_set():
                try:
                    if not os.read(rfd, 1 << 16):
                        return
                except BlockingIOError:
                    time.sleep(0.01)
        th = threading.Thread(target=drain, daemon=True)
        th.start()
        if gw is not None and gw.proc.poll() is None:
            gw.proc.send_signal(signal.SIGTERM)
            rc = gw.wait_exit(15)
        else:
            rc = 0
        stop.set()
        th.join(5)
        os.close(rfd)
    assert rc == 0
