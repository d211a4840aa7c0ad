"""TLS termination: certificates by SNI, versions, ALPN, resumption, mTLS,
OCSP stapling, handshake timeout, certificate reload (docs/tls.md).

A throw-away PKI is made with the openssl CLI for the module: a server CA,
a default certificate (a.test), a wildcard one (*.wild.test), an exact one
(exact.wild.test), a client CA with one client certificate, and a client
certificate from an unrelated CA."""
import json
import os
import re
import signal
import socket
import ssl
import subprocess
import time

import pytest

from conftest import curl, free_port, run_tollgate, wait_until


def sh(*args, cwd=None, inp=None):
    cp = subprocess.run(args, cwd=cwd, capture_output=True, input=inp, timeout=60)
    assert cp.returncode == 0, f'{args}: {cp.stderr.decode(errors="replace")}'
    return cp.stdout


def make_ca(d, name, cn):
    sh('openssl', 'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes',
       '-keyout', f'{name}.key', '-out', f'{name}.pem', '-days', '2', '-subj', f'/CN={cn}', cwd=d)


def make_cert(d, name, ca, subj, san=None, client=False):
    sh('openssl', 'req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes',
       '-keyout', f'{name}.key', '-out', f'{name}.csr', '-subj', subj, cwd=d)
    ext = [f'subjectAltName={san}'] if san else []
    ext.append('extendedKeyUsage=' + ('clientAuth' if client else 'serverAuth'))
    (d / f'{name}.ext').write_text('\n'.join(ext) + '\n')
    sh('openssl', 'x509', '-req', '-in', f'{name}.csr', '-CA', f'{ca}.pem', '-CAkey', f'{ca}.key',
       '-CAcreateserial', '-out', f'{name}.pem', '-days', '2', '-extfile', f'{name}.ext', cwd=d)


@pytest.fixture(scope='module')
def pki(tmp_path_factory):
    d = tmp_path_factory.mktemp('pki')
    make_ca(d, 'ca', 'tollgate test CA')
    make_cert(d, 'a', 'ca', '/CN=a.test', 'DNS:a.test')
    make_cert(d, 'wild', 'ca', '/CN=*.wild.test', 'DNS:*.wild.test')
    make_cert(d, 'exact', 'ca', '/CN=exact.wild.test', 'DNS:exact.wild.test')
    make_ca(d, 'cca', 'client CA')
    make_cert(d, 'client', 'cca', '/C=DE/O=Acme, Inc./CN=alice', client=True)
    make_ca(d, 'evil', 'other CA')
    make_cert(d, 'stranger', 'evil', '/CN=mallory', client=True)
    return d


TLS_CFG = '''
server:
  listen:
    - address: "$listen"
      tls:
        certificates:
          - { cert: $pki/a.pem, key: $pki/a.key }
          - { cert: $pki/wild.pem, key: $pki/wild.key }
          - { cert: $pki/exact.pem, key: $pki/exact.key }
$extra
  workers: 2
  limits: { header_timeout: $ht }
upstreams:
  b: { servers: ["$backend"] }
routes:
  - { match: { path: / }, upstream: b }
'''


def start(tollgate, backend, pki, extra='', ht='10s'):
    return tollgate(TLS_CFG, pki=pki, backend=backend.addr, extra=extra, ht=ht)


def peer_cn(port, server_name, cafile, version=None):
    ctx = ssl.create_default_context(cafile=str(cafile))
    ctx.check_hostname = False
    if version:
        ctx.minimum_version = ctx.maximum_version = version
    with socket.create_connection(('127.0.0.1', port), timeout=10) as raw:
        with ctx.wrap_socket(raw, server_hostname=server_name) as s:
            cert = s.getpeercert()
            return dict(x[0] for x in cert['subject'])['commonName'], s.version()


def https(gw, path, pki, *args, host='a.test'):
    return curl('--cacert', str(pki / 'ca.pem'), '--resolve', f'{host}:{gw.port}:127.0.0.1',
                '-w', '\n%{http_version}', *args, f'https://{host}:{gw.port}{path}')


def echo_of(cp):
    body, _, version = cp.stdout.decode().rpartition('\n')
    return json.loads(body), version


def test_sni_picks_exact_then_wildcard_then_default(tollgate, backend, pki):
    gw = start(tollgate, backend, pki)
    ca = pki / 'ca.pem'
    assert peer_cn(gw.port, 'a.test', ca)[0] == 'a.test'
    assert peer_cn(gw.port, 'exact.wild.test', ca)[0] == 'exact.wild.test'  # exact beats wildcard
    assert peer_cn(gw.port, 'x.wild.test', ca)[0] == '*.wild.test'
    assert peer_cn(gw.port, 'deep.x.wild.test', ca)[0] == 'a.test'  # one label only: default
    assert peer_cn(gw.port, 'unknown.example', ca)[0] == 'a.test'
    assert peer_cn(gw.port, None, ca)[0] == 'a.test'  # no SNI: the first certificate


def test_alpn_h2_and_http11_and_forwarded_proto(tollgate, backend, pki):
    gw = start(tollgate, backend, pki)
    doc, version = echo_of(https(gw, '/echo', pki))
    assert version == '2'
    hdrs = {k.lower(): v for k, v in doc['headers']}
    assert hdrs['x-forwarded-proto'] == 'https'
    assert 'proto=https' in hdrs['forwarded']
    doc, version = echo_of(https(gw, '/echo', pki, '--http1.1'))
    assert version == '1.1'
    assert {k.lower(): v for k, v in doc['headers']}['x-forwarded-proto'] == 'https'


def test_alpn_follows_protocols(tollgate, backend, pki):
    gw = start(tollgate, backend, pki, extra='      protocols: [http/1.1]')
    _, version = echo_of(https(gw, '/echo', pki))
    assert version == '1.1'  # curl offered h2 first; the listener only speaks http/1.1


@pytest.mark.parametrize('flag', ['-tls1_2', '-tls1_3'])
def test_tls12_and_tls13_accepted(tollgate, backend, pki, flag):
    gw = start(tollgate, backend, pki)
    cp = subprocess.run(['openssl', 's_client', flag, '-connect', f'127.0.0.1:{gw.port}',
                         '-servername', 'a.test', '-CAfile', str(pki / 'ca.pem')],
                        input=b'', capture_output=True, timeout=20)
    out = cp.stdout.decode(errors='replace')
    assert 'Verify return code: 0 (ok)' in out, out[-2000:]


@pytest.mark.parametrize('flag', ['-tls1', '-tls1_1'])
def test_old_tls_versions_refused(tollgate, backend, pki, flag):
    gw = start(tollgate, backend, pki)
    # The client allows old versions (security level 0): only the server can refuse.
    base = ['openssl', 's_client', '-connect', f'127.0.0.1:{gw.port}', '-servername', 'a.test',
            '-cipher', 'DEFAULT:@SECLEVEL=0']
    ok = subprocess.run(base + ['-tls1_2'], input=b'', capture_output=True, timeout=20)
    assert b'Cipher is' in ok.stdout and b'Cipher is (NONE)' not in ok.stdout, ok.stdout[-1000:]
    cp = subprocess.run(base + [flag], input=b'', capture_output=True, timeout=20)
    out = (cp.stdout + cp.stderr).decode(errors='replace')
    assert 'Cipher is (NONE)' in out and 'protocol version' in out, out[-2000:]


def resumed_chain(port, pki, version, n):
    """n connections, each offering the session of the one before; returns reuse flags."""
    ctx = ssl.create_default_context(cafile=str(pki / 'ca.pem'))
    ctx.minimum_version = ctx.maximum_version = version
    ctx.set_alpn_protocols(['http/1.1'])
    session, flags = None, []
    for _ in range(n):
        with socket.create_connection(('127.0.0.1', port), timeout=10) as raw:
            with ctx.wrap_socket(raw, server_hostname='a.test', session=session) as s:
                s.sendall(b'GET /echo HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n')
                data = b''
                while True:  # reading the answer also reads the TLS 1.3 ticket
                    piece = s.recv(65536)
                    if not piece:
                        break
                    data += piece
                assert data.startswith(b'HTTP/1.1 200'), data[:200]
                flags.append(s.session_reused)
                session = s.session
    return flags


@pytest.mark.parametrize('version', [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3])
def test_session_resumption_with_tickets_across_workers(tollgate, backend, pki, version):
    gw = start(tollgate, backend, pki)
    flags = resumed_chain(gw.port, pki, version, 8)
    # The first is a full handshake; all later ones resume, whichever of the two
    # workers (SO_REUSEPORT) accepts them: the ticket keys are shared.
    assert flags[0] is False and all(flags[1:]), flags


MTLS_CFG = '''
server:
  listen:
    - address: "$listen"
      tls:
        certificates: [{ cert: $pki/a.pem, key: $pki/a.key }]
        client_ca: $pki/cca.pem
  limits: { header_timeout: 10s }
upstreams:
  b: { servers: ["$backend"] }
routes:
  - { match: { path: / }, upstream: b }
'''


def fingerprint(pem):
    out = sh('openssl', 'x509', '-in', str(pem), '-noout', '-fingerprint', '-sha256').decode()
    return out.strip().split('=', 1)[1].replace(':', '').lower()


@pytest.mark.parametrize('proto', ['--http1.1', '--http2'])
def test_mtls_verified_identity_goes_upstream(tollgate, backend, pki, proto):
    gw = tollgate(MTLS_CFG, pki=pki, backend=backend.addr)
    cp = https(gw, '/echo', pki, proto, '--cert', str(pki / 'client.pem'), '--key', str(pki / 'client.key'),
               '-H', 'X-Client-Cert-Subject: CN=forged', '-H', 'X-Client-Cert-Fingerprint: 00')
    assert cp.returncode == 0, cp.stderr
    doc, _ = echo_of(cp)
    subj = [v for k, v in doc['headers'] if k.lower() == 'x-client-cert-subject']
    fp = [v for k, v in doc['headers'] if k.lower() == 'x-client-cert-fingerprint']
    assert subj == ['CN=alice,O=Acme\\, Inc.,C=DE'], doc['headers']  # RFC 4514: reversed, escaped
    assert fp == [fingerprint(pki / 'client.pem')]


def test_mtls_refuses_missing_and_untrusted_certificates(tollgate, backend, pki):
    gw = tollgate(MTLS_CFG, pki=pki, backend=backend.addr)
    none = https(gw, '/echo', pki)
    assert none.returncode != 0 and b'"name"' not in none.stdout
    bad = https(gw, '/echo', pki, '--cert', str(pki / 'stranger.pem'), '--key', str(pki / 'stranger.key'))
    assert bad.returncode != 0 and b'"name"' not in bad.stdout
    good = https(gw, '/echo', pki, '--cert', str(pki / 'client.pem'), '--key', str(pki / 'client.key'))
    assert good.returncode == 0, good.stderr
    assert [r['target'] for r in backend.log()] == ['/echo']  # only the verified client got through


def test_plaintext_clients_cannot_inject_identity_headers(tollgate, backend):
    gw = tollgate('''
        server: { listen: "$listen" }
        upstreams: { b: { servers: ["%s"] } }
        routes: [ { match: { path: / }, upstream: b } ]
    ''' % backend.addr)
    cp = curl('-H', 'X-Client-Cert-Subject: CN=forged', '-H', 'X-Client-Cert-Fingerprint: ab', gw.url('/echo'))
    names = [k.lower() for k, _ in json.loads(cp.stdout)['headers']]
    assert 'x-client-cert-subject' not in names and 'x-client-cert-fingerprint' not in names


def test_stalled_handshake_is_closed_by_header_timeout(tollgate, backend, pki):
    gw = start(tollgate, backend, pki, ht='1s')
    s = socket.create_connection(('127.0.0.1', gw.port), timeout=10)
    s.sendall(b'\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03')  # a ClientHello that never ends
    t0 = time.monotonic()
    try:
        data = s.recv(100)
    except ConnectionResetError:
        data = b''
    took = time.monotonic() - t0
    s.close()
    assert data == b'', data
    assert 0.5 <= took < 6, took
    # the loop was never blocked meanwhile: a normal handshake works
    assert peer_cn(gw.port, 'a.test', pki / 'ca.pem')[0] == 'a.test'


def test_many_stalled_handshakes_do_not_block_others(tollgate, backend, pki):
    gw = start(tollgate, backend, pki, ht='5s')
    socks = [socket.create_connection(('127.0.0.1', gw.port), timeout=10) for _ in range(50)]
    for s in socks:
        s.sendall(b'\x16\x03\x01')
    t0 = time.monotonic()
    doc, _ = echo_of(https(gw, '/echo', pki))
    assert doc['path'] == '/echo' and time.monotonic() - t0 < 3
    for s in socks:
        s.close()


def test_ocsp_staple_from_file(tollgate, backend, pki, tmp_path):
    d = tmp_path
    (d / 'index.txt').write_text('')
    sh('openssl', 'ocsp', '-issuer', str(pki / 'ca.pem'), '-cert', str(pki / 'a.pem'),
       '-reqout', 'req.der', '-no_nonce', cwd=d)
    sh('openssl', 'ocsp', '-index', 'index.txt', '-rsigner', str(pki / 'ca.pem'), '-rkey',
       str(pki / 'ca.key'), '-CA', str(pki / 'ca.pem'), '-reqin', 'req.der', '-respout', 'resp.der',
       '-ndays', '1', cwd=d)
    gw = tollgate('''
        server:
          listen:
            - address: "$listen"
              tls:
                certificates: [{ cert: $pki/a.pem, key: $pki/a.key, ocsp: $resp }]
        upstreams: { b: { servers: ["$backend"] } }
        routes: [ { match: { path: / }, upstream: b } ]
    ''', pki=pki, resp=d / 'resp.der', backend=backend.addr)
    cp = subprocess.run(['openssl', 's_client', '-status', '-connect', f'127.0.0.1:{gw.port}',
                         '-servername', 'a.test'], input=b'', capture_output=True, timeout=20)
    out = cp.stdout.decode(errors='replace')
    assert 'OCSP Response Status: successful' in out, out[:3000]
    assert 'OCSP response: no response sent' not in out


def test_config_errors_are_positioned(tmp_path, pki):
    cfg = tmp_path / 't.yaml'
    cfg.write_text(f'''server:
  listen:
    - address: "127.0.0.1:{free_port()}"
      tls:
        certificates:
          - {{ cert: {pki}/a.pem, key: {pki}/wild.key }}
          - {{ cert: {tmp_path}/missing.pem, key: {pki}/a.key }}
        client_ca: {tmp_path}/nope.pem
    - address: "127.0.0.1:{free_port()}"
      tls:
        acme: {{ directory: https://acme.invalid/dir, email: a@b.c, domains: [a.test], storage: /tmp }}
      protocols: [h2, h3]
routes:
  - {{ match: {{ path: / }}, respond: {{ status: 200 }} }}
''')
    cp = run_tollgate(['-t', '-c', str(cfg)])
    assert cp.returncode == 1
    err = cp.stderr
    assert re.search(r't\.yaml:6:\d+: server\.listen\[0\]\.tls\.certificates\[0\]: .*does not match', err), err
    assert re.search(r't\.yaml:7:\d+: server\.listen\[0\]\.tls\.certificates\[1\]\.cert: cannot open', err), err
    assert re.search(r't\.yaml:8:\d+: server\.listen\[0\]\.tls\.client_ca: cannot open', err), err
    assert re.search(r'server\.listen\[1\]\.tls\.acme: not supported by this build yet', err), err
    assert re.search(r'server\.listen\[1\]\.protocols\[1\]: expected one of http/1\.1, h2', err), err


def test_certificates_reload_on_sighup_without_dropping_connections(tollgate, backend, pki, tmp_path):
    d = tmp_path
    for ext in ('pem', 'key'):
        (d / f'live.{ext}').write_bytes((pki / f'a.{ext}').read_bytes())
    gw = tollgate('''
        server:
          listen:
            - address: "$listen"
              tls: { certificates: [{ cert: $d/live.pem, key: $d/live.key }] }
        upstreams: { b: { servers: ["$backend"] } }
        routes: [ { match: { path: / }, upstream: b } ]
    ''', d=d, backend=backend.addr)
    ctx = ssl.create_default_context(cafile=str(pki / 'ca.pem'))
    ctx.set_alpn_protocols(['http/1.1'])
    old = ctx.wrap_socket(socket.create_connection(('127.0.0.1', gw.port), timeout=10),
                          server_hostname='a.test')
    old_serial = old.getpeercert()['serialNumber']
    # a renewed certificate for the same name, from the same CA
    for ext in ('pem', 'key', 'srl'):
        if (pki / f'ca.{ext}').exists():
            (d / f'ca.{ext}').write_bytes((pki / f'ca.{ext}').read_bytes())
    make_cert(d, 'renewed', 'ca', '/CN=a.test', 'DNS:a.test')
    os.replace(d / 'renewed.key', d / 'live.key')
    os.replace(d / 'renewed.pem', d / 'live.pem')
    gw.proc.send_signal(signal.SIGHUP)

    def serial_now():
        with socket.create_connection(('127.0.0.1', gw.port), timeout=10) as raw:
            with ctx.wrap_socket(raw, server_hostname='a.test') as s:
                return s.getpeercert()['serialNumber']
    wait_until(lambda: serial_now() != old_serial, timeout=15, what='the renewed certificate')
    # the connection made before the reload still works
    old.sendall(b'GET /echo HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n')
    data = b''
    while True:
        piece = old.recv(65536)
        if not piece:
            break
        data += piece
    old.close()
    assert data.startswith(b'HTTP/1.1 200'), data[:300]
