"""Fixtures and helpers for tollgate's integration tests.

Real processes only: tollgate ($TOLLGATE_BIN, default build/tollgate) and the
backend in backend.py, driven by real clients (raw sockets, http.client, httpx,
curl). Nothing sleeps to synchronise: readiness is polled with a deadline.

Fixtures
  backends   factory: backends(n=1, names=None, args=()) -> [Backend]; killed at teardown
  tollgate   factory: tollgate(yaml, **subs) -> Gateway. The YAML is a string.Template:
             $listen (127.0.0.1:<free port>), $port, $tmp and every keyword given are
             substituted; anything else (e.g. ${ENV}) is left as written. Teardown sends
             SIGTERM and requires exit code 0 within TEARDOWN_S seconds; with
             TOLLGATE_SAN=1 a sanitizer report on stderr fails the test.
Helpers (import from conftest)
  free_port(), RawConn, raw_exchange(), http_request(), assert_gateway_error(),
  wait_until(), curl(), run_tollgate()
"""
import hashlib
import http.client
import json
import os
import pathlib
import random
import re
import selectors
import signal
import socket
import string
import subprocess
import textwrap
import time

import pytest

HERE = pathlib.Path(__file__).resolve().parent
REPO = HERE.parent.parent
BACKEND_PY = HERE / 'backend.py'
PY = '/usr/bin/python3'
TEARDOWN_S = 35.0   # > the default shutdown_grace (30s): a drain may legitimately take that long
SAN_PATTERNS = ('ERROR: AddressSanitizer', 'runtime error:', 'ERROR: LeakSanitizer')


def tollgate_bin():
    b = os.environ.get('TOLLGATE_BIN') or str(REPO / 'build' / 'tollgate')
    if not os.access(b, os.X_OK):
        pytest.fail(f'tollgate binary not found or not executable: {b} (set TOLLGATE_BIN)',
                    pytrace=False)
    return b


def san_enabled():
    return os.environ.get('TOLLGATE_SAN', '0') not in ('', '0')


def san_problems(text):
    return [line for line in text.splitlines() if any(p in line for p in SAN_PATTERNS)]


# ------------------------------------------------------------------- ports

_rng = random.Random(os.getpid() ^ time.time_ns())
_handed_out = set()


def free_port():
    """A loopback TCP port that is free now, below the ephemeral range (so that
    outgoing connections do not take it meanwhile), never handed out twice in a
    session."""
    for _ in range(500):
        p = _rng.randint(20000, 32000)
        if p in _handed_out:
            continue
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            s.bind(('127.0.0.1', p))
        except OSError:
            continue
        finally:
            s.close()
        _handed_out.add(p)
        return p
    raise RuntimeError('no free port found')


def wait_until(pred, timeout=5.0, interval=0.02, what='condition'):
    """Polls pred() until it returns a truthy value (returned) or the deadline passes."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError(f'timed out after {timeout}s waiting for {what}')
        time.sleep(interval)


def port_accepts(port, timeout=0.5):
    try:
        with socket.create_connection(('127.0.0.1', port), timeout=timeout):
            return True
    except OSError:
        return False


# ---------------------------------------------------------------- backends

class Backend:
    def __init__(self, name, proc, port, errpath):
        self.name, self.proc, self.port, self.errpath = name, proc, port, errpath

    @property
    def addr(self):
        return f'127.0.0.1:{self.port}'

    def _get(self, path):
        c = http.client.HTTPConnection('127.0.0.1', self.port, timeout=10)
        try:
            c.request('GET', path)
            r = c.getresponse()
            return json.loads(r.read())
        finally:
            c.close()

    def log(self):
        """The request heads this backend received (excluding /_ paths)."""
        return self._get('/_log')

    def reset_log(self):
        self._get('/_reset_log')

    def stats(self):
        return self._get('/_stats')

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=10)


def read_ready(proc, what, errpath=None, timeout=15):
    """Waits (bounded) for a helper process's first stdout line ("READY <port> ...")
    and returns the match of rb'READY (\\d+)(?: (\\d+))?'. The readiness signal of
    every test peer (backend.py, h2_backend.py, https_backend.py, ws_backend.py)."""
    why = lambda: f': {errpath.read_text()}' if errpath else ''
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    deadline = time.monotonic() + timeout
    line = b''
    try:
        while not line.endswith(b'\n'):
            left = deadline - time.monotonic()
            if left <= 0 or not sel.select(left):
                proc.kill()
                raise RuntimeError(f'{what} did not start{why()}')
            chunk = os.read(proc.stdout.fileno(), 256)
            if not chunk:
                raise RuntimeError(f'{what} exited{why()}')
            line += chunk
    finally:
        sel.close()
    m = re.match(rb'READY (\d+)(?: (\d+))?', line)
    assert m, line
    return m


def start_backend(name, tmp_path, args=()):
    errpath = tmp_path / f'backend-{name}.stderr'
    with open(errpath, 'wb') as err:
        proc = subprocess.Popen([PY, str(BACKEND_PY), '--port', '0', '--name', name, *args],
                                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=err)
    m = read_ready(proc, f'backend {name}', errpath)
    proc.stdout.close()
    return Backend(name, proc, int(m.group(1)), errpath)


@pytest.fixture
def backends(tmp_path):
    started = []

    def start(n=1, names=None, args=()):
        names = names or [f'b{len(started) + i + 1}' for i in range(n)]
        out = []
        for name in names:
            b = start_backend(name, tmp_path, args)
            started.append(b)
            out.append(b)
        return out
    yield start
    for b in started:
        b.stop()


@pytest.fixture
def backend(backends):
    return backends(1)[0]


# ----------------------------------------------------------------- gateway

class Gateway:
    def __init__(self, proc, port, cfg, out, err):
        self.proc, self.port, self.cfg, self.out, self.err = proc, port, cfg, out, err

    @property
    def pid(self):
        return self.proc.pid

    @property
    def addr(self):
        return f'127.0.0.1:{self.port}'

    def url(self, path='/'):
        return f'http://127.0.0.1:{self.port}{path}'

    def stdout(self):
        return self.out.read_text(errors='replace')

    def stderr(self):
        return self.err.read_text(errors='replace')

    def status_kb(self, field):
        with open(f'/proc/{self.pid}/status') as f:
            for line in f:
                if line.startswith(field + ':'):
                    return int(line.split()[1])
        raise KeyError(field)

    def rss_kb(self):
        return self.status_kb('VmRSS')

    def wait_exit(self, timeout):
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None


def _start_gateway(cfg_text, tmp_path, idx, env):
    b = tollgate_bin()
    for attempt in range(3):
        port = free_port()
        subs = {'listen': f'127.0.0.1:{port}', 'port': port}
        text = string.Template(cfg_text).safe_substitute(subs)
        e = dict(os.environ)
        if san_enabled():
            # a small quarantine keeps RSS measurements meaningful under ASan
            e.setdefault('ASAN_OPTIONS', 'quarantine_size_mb=8:detect_leaks=1')
            e.setdefault('UBSAN_OPTIONS', 'print_stacktrace=1')
        e.update({k: string.Template(v).safe_substitute(subs) for k, v in env.items()})
        cfg = tmp_path / f'tollgate-{idx}-{attempt}.yaml'
        cfg.write_text(text)
        out = tmp_path / f'tollgate-{idx}-{attempt}.stdout'
        err = tmp_path / f'tollgate-{idx}-{attempt}.stderr'
        with open(out, 'wb') as fo, open(err, 'wb') as fe:
            proc = subprocess.Popen([b, '-c', str(cfg)], stdin=subprocess.DEVNULL,
                                    stdout=fo, stderr=fe, env=e, cwd=str(tmp_path))
        gw = Gateway(proc, port, cfg, out, err)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                break
            if port_accepts(port, 0.5):
                return gw
            time.sleep(0.02)
        if proc.poll() is None:
            proc.kill()
            proc.wait()
            pytest.fail(f'tollgate did not listen on {port} within 15s\nconfig:\n{text}\n'
                        f'stderr:\n{gw.stderr()[-3000:]}', pytrace=False)
        if 'in use' not in gw.stderr().lower():
            pytest.fail(f'tollgate exited at start (rc={proc.returncode})\nconfig:\n{text}\n'
                        f'stderr:\n{gw.stderr()[-3000:]}', pytrace=False)
    pytest.fail('tollgate: no free port after 3 attempts', pytrace=False)


@pytest.hookimpl(tryfirst=True, hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, 'rep_' + rep.when, rep)


@pytest.fixture
def tollgate(request, tmp_path, backends):
    """Factory: tollgate(yaml_text, env=None, **subs) -> Gateway (listening).
    env values may use $port / $listen too."""
    gws = []

    def start(cfg_text, env=None, **subs):
        text = string.Template(textwrap.dedent(cfg_text)).safe_substitute(
            tmp=str(tmp_path), **{k: str(v) for k, v in subs.items()})
        gw = _start_gateway(text, tmp_path, len(gws), env or {})
        gws.append(gw)
        return gw
    yield start

    problems = []
    for gw in gws:
        if gw.proc.poll() is None:
            gw.proc.send_signal(signal.SIGTERM)
            rc = gw.wait_exit(TEARDOWN_S)
            if rc is None:
                gw.proc.kill()
                gw.proc.wait()
                problems.append(f'tollgate pid {gw.pid} did not exit within {TEARDOWN_S}s of SIGTERM')
            elif rc != 0:
                problems.append(f'tollgate exited with {rc} after SIGTERM')
        if san_enabled():
            bad = san_problems(gw.stderr())
            if bad:
                problems.append('sanitizer report:\n' + '\n'.join(bad[:20]))
    failed = getattr(request.node, 'rep_call', None)
    if problems or (failed is not None and failed.failed):
        for gw in gws:
            print(f'--- tollgate {gw.cfg.name} stderr (last 3000 bytes) ---\n{gw.stderr()[-3000:]}')
    if problems:
        pytest.fail('\n'.join(problems) + '\nstderr:\n' + gws[-1].stderr()[-3000:], pytrace=False)


def run_tollgate(args, timeout=20, env=None, cwd=None):
    """Runs tollgate to completion (CLI checks). Fails on sanitizer reports."""
    e = dict(os.environ)
    e.update(env or {})
    cp = subprocess.run([tollgate_bin(), *args], stdin=subprocess.DEVNULL, capture_output=True,
                        text=True, timeout=timeout, env=e, cwd=cwd)
    if san_enabled():
        bad = san_problems(cp.stderr)
        assert not bad, 'sanitizer report:\n' + '\n'.join(bad[:20])
    return cp


# ------------------------------------------------------------ raw clients

class Resp:
    def __init__(self, version, status, reason, headers, raw_head):
        self.version, self.status, self.reason = version, status, reason
        self.headers = headers          # [(name, value)] in order received
        self.raw_head = raw_head
        self.body = b''
        self.trailers = []
        self.complete = True            # False: the connection closed mid-body
        self.chunked = False

    def header(self, name):
        name = name.lower()
        for n, v in self.headers:
            if n.lower() == name:
                return v
        return None

    def header_all(self, name):
        name = name.lower()
        return [v for n, v in self.headers if n.lower() == name]

    def json(self):
        return json.loads(self.body)

    def __repr__(self):
        return f'<Resp {self.status} {self.headers} body={self.body[:200]!r}>'


class RawConn:
    """A plain client socket with an HTTP/1.1 response reader. Every recv is
    bounded by the socket timeout, so a stuck gateway fails the test instead
    of hanging it."""

    def __init__(self, port, timeout=10.0, rcvbuf=None):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(timeout)
        self.sock.connect(('127.0.0.1', port))
        self.buf = b''
        self.eof = False

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def send(self, data):
        if isinstance(data, str):
            data = data.encode('latin-1')
        self.sock.sendall(data)

    def discard(self, n):
        """Reads and drops body bytes until n have come after the head
        (those already buffered count); fails if the stream ends first."""
        got = len(self.buf)
        self.buf = b''
        mv = memoryview(bytearray(1 << 20))
        while got < n:
            k = self.sock.recv_into(mv)
            assert k, 'stream ended early'
            got += k

    def _fill(self):
        if self.eof:
            return False
        try:
            data = self.sock.recv(1 << 20)
        except ConnectionResetError:
            data = b''
        if not data:
            self.eof = True
            return False
        self.buf += data
        return True

    def _line(self):
        while b'\r\n' not in self.buf:
            if not self._fill():
                raise EOFError('connection closed while reading a line')
        line, self.buf = self.buf.split(b'\r\n', 1)
        return line

    def _exact(self, n, resp):
        out = []
        while n:
            if not self.buf and not self._fill():
                resp.complete = False
                break
            piece, self.buf = self.buf[:n], self.buf[n:]
            out.append(piece)
            n -= len(piece)
        return b''.join(out)

    def read_head(self):
        while b'\r\n\r\n' not in self.buf:
            if not self._fill():
                raise EOFError(f'connection closed before a full response head: {self.buf[:300]!r}')
        head, self.buf = self.buf.split(b'\r\n\r\n', 1)
        lines = head.decode('latin-1').split('\r\n')
        m = re.match(r'(HTTP/\d\.\d) (\d{3})(?: (.*))?$', lines[0])
        assert m, f'bad status line {lines[0]!r}'
        headers = []
        for ln in lines[1:]:
            n, sep, v = ln.partition(':')
            assert sep, f'bad header line {ln!r}'
            headers.append((n, v.strip(' \t')))
        return Resp(m.group(1), int(m.group(2)), m.group(3) or '', headers, head)

    def read_response(self, method='GET'):
        """One response message (a 1xx is returned on its own, without body)."""
        r = self.read_head()
        if 100 <= r.status < 200 or method == 'HEAD' or r.status in (204, 304):
            return r
        te = (r.header('transfer-encoding') or '').lower()
        if 'chunked' in te:
            r.chunked = True
            parts = []
            try:
                while True:
                    size = int(self._line().split(b';', 1)[0].strip(), 16)
                    if size == 0:
                        while True:
                            ln = self._line()
                            if not ln:
                                break
                            n, _, v = ln.decode('latin-1').partition(':')
                            r.trailers.append((n.strip(), v.strip()))
                        break
                    parts.append(self._exact(size, r))
                    if not r.complete:
                        break
                    if self._line() != b'':
                        raise AssertionError('bad chunk terminator')
            except EOFError:
                r.complete = False
            r.body = b''.join(parts)
        elif r.header('content-length') is not None:
            r.body = self._exact(int(r.header('content-length')), r)
        else:
            while self._fill():
                pass
            r.body, self.buf = self.buf, b''
        return r

    def read_final(self, method='GET'):
        """Skips informational responses; returns (list of 1xx, final response)."""
        infos = []
        while True:
            r = self.read_response(method)
            if r.status >= 200:
                return infos, r
            infos.append(r)

    def request(self, method, path, headers=(), body=None, host='test.local'):
        """Sends one HTTP/1.1 request and returns the final response."""
        self.send(build_request(method, path, headers, body, host))
        return self.read_final(method)[1]

    def read_until_close(self):
        while self._fill():
            pass
        data, self.buf = self.buf, b''
        return data

    def wait_closed(self, timeout):
        """True when the peer closes (EOF or RST) within timeout; data read meanwhile is kept."""
        old = self.sock.gettimeout()
        self.sock.settimeout(timeout)
        try:
            while self._fill():
                pass
            return True
        except socket.timeout:
            return False
        finally:
            self.sock.settimeout(old)


def build_request(method, path, headers=(), body=None, host='test.local', version='HTTP/1.1'):
    h = []
    if host is not None:
        h.append(('Host', host))
    h += list(headers.items() if isinstance(headers, dict) else headers)
    if body is not None and not any(n.lower() in ('content-length', 'transfer-encoding') for n, _ in h):
        h.append(('Content-Length', str(len(body))))
    data = f'{method} {path} {version}\r\n' + ''.join(f'{n}: {v}\r\n' for n, v in h) + '\r\n'
    data = data.encode('latin-1')
    if body is not None:
        data += body if isinstance(body, bytes) else body.encode()
    return data


def raw_exchange(port, data, timeout=10.0):
    """Sends raw bytes, half-closes nothing, reads until the peer closes or the
    timeout passes; returns everything read."""
    with RawConn(port, timeout) as c:
        c.send(data)
        try:
            return c.read_until_close()
        except socket.timeout:
            return c.buf


class HttpResult:
    def __init__(self, status, headers, body):
        self.status, self.headers, self.body = status, headers, body

    def header(self, name):
        for n, v in self.headers:
            if n.lower() == name.lower():
                return v
        return None

    def json(self):
        return json.loads(self.body)

    def __repr__(self):
        return f'<HttpResult {self.status} {self.headers} body={self.body[:200]!r}>'


def http_request(port, method, path, headers=None, body=None, timeout=10.0):
    """One request with http.client on a fresh connection."""
    c = http.client.HTTPConnection('127.0.0.1', port, timeout=timeout)
    try:
        c.request(method, path, body=body, headers=headers or {})
        r = c.getresponse()
        data = r.read()
        return HttpResult(r.status, r.getheaders(), data)
    finally:
        c.close()


def curl(*args, timeout=30):
    """Runs curl (no proxy from the environment) and returns CompletedProcess (bytes)."""
    return subprocess.run(['curl', '--noproxy', '*', '-sS', '--max-time', str(timeout), *args],
                          capture_output=True, timeout=timeout + 10)


def assert_gateway_error(status, headers_get, body, expected):
    """The gateway's own error shape: JSON {"error": word, "status": N, "request_id": id}."""
    assert status == expected, f'status {status}, wanted {expected}; body {body[:300]!r}'
    ctype = headers_get('content-type') or ''
    assert ctype.split(';')[0].strip().lower() == 'application/json', f'content-type {ctype!r}'
    doc = json.loads(body)
    assert isinstance(doc.get('error'), str) and re.fullmatch(r'[a-z0-9_]+', doc['error']), doc
    assert doc.get('status') == expected, doc
    assert isinstance(doc.get('request_id'), str) and doc['request_id'], doc
    rid = headers_get('x-request-id')
    if rid is not None:
        assert rid == doc['request_id'], (rid, doc)
    return doc


def sha256(data):
    return hashlib.sha256(data).hexdigest()
