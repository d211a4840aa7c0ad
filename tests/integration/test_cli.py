"""Command line: --version, --help, -t (check only) with the contract's error format,
${ENV} expansion, missing files."""
import re
import textwrap

from conftest import free_port, http_request, run_tollgate

GOOD = """\
server:
  listen: ["127.0.0.1:{port}"]
  workers: 1
upstreams:
  users:
    servers: ["127.0.0.1:9", {{ address: "localhost:10", weight: 3 }}]
    timeouts: {{ connect: 250ms, response: 5s }}
routes:
  - name: users
    match: {{ host: [api.example.com, "*.example.org"], path: /v1/users, methods: [GET, POST] }}
    upstream: users
    rewrite: {{ strip_prefix: /v1 }}
  - match: {{ path_exact: /hello }}
    respond: {{ status: 200, body: "hi" }}
"""


def write(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(textwrap.dedent(text))
    return p


def assert_clean_exit(cp, rc):
    # never a crash (negative = killed by a signal), exactly the contract's code
    assert cp.returncode == rc, f'rc={cp.returncode}\nstdout:{cp.stdout}\nstderr:{cp.stderr}'


def test_version():
    cp = run_tollgate(['--version'])
    assert_clean_exit(cp, 0)
    out = cp.stdout + cp.stderr
    assert 'tollgate' in out.lower()
    assert re.search(r'\d+\.\d+\.\d+', out), out


def test_help_mentions_options():
    cp = run_tollgate(['--help'])
    assert_clean_exit(cp, 0)
    out = cp.stdout + cp.stderr
    for opt in ('-c', '-t', '--version'):
        assert opt in out, f'{opt} missing from --help: {out}'


def test_unknown_option_fails():
    cp = run_tollgate(['--no-such-option'])
    assert cp.returncode > 0, cp


def test_check_good_config(tmp_path):
    port = free_port()
    cfg = write(tmp_path, 'good.yaml', GOOD.format(port=port))
    cp = run_tollgate(['-t', '-c', str(cfg)])
    assert_clean_exit(cp, 0)
    assert 'error' not in (cp.stdout + cp.stderr).lower(), cp.stderr


def test_check_reports_unknown_upstream(tmp_path):
    write(tmp_path, 'bad.yaml', """\
        server:
          listen: ["127.0.0.1:1"]
        upstreams:
          users:
            servers: ["127.0.0.1:9"]
          billing:
            servers: ["127.0.0.1:9"]
        routes:
          - match: { path: / }
            upstream: orders
        """)
    cp = run_tollgate(['-t', '-c', 'bad.yaml'], cwd=tmp_path)
    assert_clean_exit(cp, 1)
    out = cp.stderr + cp.stdout
    m = re.search(r'bad\.yaml:(\d+):(\d+): routes\[0\]\.upstream: '
                  r'no upstream named "orders" \(defined: users, billing\)', out)
    assert m, out
    assert m.group(1) == '10', out
    # the column of the key (5) or of its value (15)
    assert m.group(2) in ('5', '15'), out


def test_check_unknown_key_suggests(tmp_path):
    write(tmp_path, 'bad.yaml', """\
        server:
          listen: ["127.0.0.1:1"]
          workres: 2
        routes:
          - match: { path: / }
            respond: { status: 200 }
        """)
    cp = run_tollgate(['-t', '-c', 'bad.yaml'], cwd=tmp_path)
    assert_clean_exit(cp, 1)
    out = cp.stderr + cp.stdout
    m = re.search(r'bad\.yaml:3:(\d+): server\.workres: (.*)', out)
    assert m, out
    assert 'did you mean' in m.group(2) and 'workers' in m.group(2), out


def test_check_unknown_key_in_route(tmp_path):
    write(tmp_path, 'bad.yaml', """\
        server:
          listen: ["127.0.0.1:1"]
        upstreams:
          users: { servers: ["127.0.0.1:9"] }
        routes:
          - match: { path: / }
            upstraem: users
        """)
    cp = run_tollgate(['-t', '-c', 'bad.yaml'], cwd=tmp_path)
    assert_clean_exit(cp, 1)
    out = cp.stderr + cp.stdout
    m = re.search(r'bad\.yaml:7:\d+: routes\[0\]\.upstraem: (.*)', out)
    assert m, out
    assert 'did you mean' in m.group(1) and 'upstream' in m.group(1), out


def test_check_reports_every_error(tmp_path):
    write(tmp_path, 'bad.yaml', """\
        server:
          listen: ["127.0.0.1:1"]
          workers: many
        upstreams:
          users:
            servers: ["127.0.0.1:9"]
            timeouts: { connect: 5 parsecs }
        routes:
          - match: { path: / }
            upstream: nobody
        """)
    cp = run_tollgate(['-t', '-c', 'bad.yaml'], cwd=tmp_path)
    assert_clean_exit(cp, 1)
    out = cp.stderr + cp.stdout
    assert re.search(r'bad\.yaml:3:\d+: server\.workers: ', out), out
    assert re.search(r'bad\.yaml:7:\d+: upstreams\.users\.timeouts\.connect: ', out), out
    assert re.search(r'bad\.yaml:10:\d+: routes\[0\]\.upstream: no upstream named "nobody"', out), out


def test_check_yaml_syntax_error(tmp_path):
    write(tmp_path, 'bad.yaml', """\
        server:
          listen: ["127.0.0.1:1"
        routes: []
        """)
    cp = run_tollgate(['-t', '-c', 'bad.yaml'], cwd=tmp_path)
    assert_clean_exit(cp, 1)
    assert re.search(r'bad\.yaml:\d+:\d+: ', cp.stderr + cp.stdout), cp.stderr


def test_check_missing_file(tmp_path):
    cp = run_tollgate(['-t', '-c', str(tmp_path / 'nope.yaml')])
    assert_clean_exit(cp, 1)
    assert 'nope.yaml' in cp.stderr + cp.stdout


def test_run_missing_file_exits(tmp_path):
    cp = run_tollgate(['-c', str(tmp_path / 'nope.yaml')], timeout=10)
    assert cp.returncode > 0, cp
    assert 'nope.yaml' in cp.stderr + cp.stdout


def test_run_bad_config_does_not_serve(tmp_path):
    port = free_port()
    write(tmp_path, 'bad.yaml', f"""\
        server:
          listen: ["127.0.0.1:{port}"]
        routes:
          - match: {{ path: / }}
            upstream: ghost
        """)
    cp = run_tollgate(['-c', 'bad.yaml'], cwd=tmp_path, timeout=10)
    assert cp.returncode > 0, cp
    assert re.search(r'bad\.yaml:5:\d+: routes\[0\]\.upstream: no upstream named "ghost"',
                     cp.stderr + cp.stdout), cp.stderr


def test_env_expansion(tollgate):
    gw = tollgate("""
        server:
          listen: ["127.0.0.1:${TG_TEST_PORT}"]
        routes:
          - match: { path: /env }
            respond: { status: 200, body: "hello ${TG_TEST_BODY}!", headers: { X-From-Env: "${TG_TEST_HDR}" } }
        """, env={'TG_TEST_PORT': '$port', 'TG_TEST_BODY': 'from-env', 'TG_TEST_HDR': 'v1'})
    r = http_request(gw.port, 'GET', '/env')
    assert r.status == 200
    assert r.body == b'hello from-env!'
    assert r.header('X-From-Env') == 'v1'


def test_check_env_expansion(tmp_path):
    port = free_port()
    write(tmp_path, 'env.yaml', """\
        server:
          listen: ["127.0.0.1:${TG_TEST_PORT}"]
        upstreams:
          u: { servers: ["${TG_TEST_UP}"] }
        routes:
          - match: { path: / }
            upstream: u
        """)
    cp = run_tollgate(['-t', '-c', 'env.yaml'], cwd=tmp_path,
                      env={'TG_TEST_PORT': str(port), 'TG_TEST_UP': '127.0.0.1:9'})
    assert_clean_exit(cp, 0)
    # the same file with a value that does not parse once expanded is an error
    cp = run_tollgate(['-t', '-c', 'env.yaml'], cwd=tmp_path,
                      env={'TG_TEST_PORT': 'notaport', 'TG_TEST_UP': '127.0.0.1:9'})
    assert_clean_exit(cp, 1)
    assert re.search(r'env\.yaml:2:\d+: server\.listen', cp.stderr + cp.stdout), cp.stderr
