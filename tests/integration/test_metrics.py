"""GET /metrics: the Prometheus text exposition (0.0.4), checked by a strict
parser written here (Debian's prometheus package would bring promtool, but a
whole server for a test tool is not worth it), and the counts it reports."""
import math
import re

from conftest import free_port, http_request, port_accepts, wait_until

NAME = r'[a-zA-Z_:][a-zA-Z0-9_:]*'
LABEL = r'[a-zA-Z_][a-zA-Z0-9_]*'
VALUE = r'(?:[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?|[+-]Inf|NaN)'
SAMPLE_RE = re.compile(rf'^({NAME})(?:\{{(.*)\}})? ({VALUE})(?: (-?\d+))?$')
LABEL_RE = re.compile(rf'({LABEL})="((?:[^"\\\n]|\\[\\"n])*)"(,|$)')


def parse_exposition(text):
    """Strict 0.0.4 parser: returns {family: {'type', 'help', 'samples': [(name, labels, value)]}}.
    Raises AssertionError on anything a Prometheus server would reject or frown at:
    bad syntax, samples before their TYPE, a family's samples not contiguous,
    duplicate series, histogram buckets not cumulative or without +Inf."""
    assert text.endswith('\n'), 'exposition must end with a newline'
    fams, current, seen_series = {}, None, set()
    for ln, line in enumerate(text.split('\n')[:-1], 1):
        if line.startswith('# HELP ') or line.startswith('# TYPE '):
            kind, name, rest = line[2:6], *line[7:].split(' ', 1)
            assert re.fullmatch(NAME, name), (ln, line)
            f = fams.setdefault(name, {'type': None, 'help': None, 'samples': []})
            if kind == 'TYPE':
                assert f['type'] is None and not f['samples'], f'line {ln}: TYPE repeated or late'
                assert rest in ('counter', 'gauge', 'histogram', 'summary', 'untyped'), (ln, line)
                f['type'] = rest
            else:
                assert f['help'] is None, f'line {ln}: HELP repeated'
                f['help'] = rest
            assert current is None or current == name or not fams[name]['samples'], \
                f'line {ln}: family {name} is not contiguous'
            current = name
            continue
        assert line and not line.startswith('#'), f'line {ln}: unexpected {line!r}'
        m = SAMPLE_RE.match(line)
        assert m, f'line {ln}: bad sample {line!r}'
        name, labels_text, value = m.group(1), m.group(2), m.group(3)
        labels = {}
        if labels_text:
            pos = 0
            while pos < len(labels_text):
                lm = LABEL_RE.match(labels_text, pos)
                assert lm, f'line {ln}: bad labels {labels_text!r}'
                assert lm.group(1) not in labels, f'line {ln}: duplicate label'
                labels[lm.group(1)] = re.sub(r'\\(.)', lambda e: '\n' if e.group(1) == 'n' else e.group(1),
                                             lm.group(2))
                pos = lm.end()
        base = current
        assert base is not None and (name == base or (fams[base]['type'] == 'histogram' and
                                                      name in (base + '_bucket', base + '_sum', base + '_count'))), \
            f'line {ln}: sample {name} outside its family ({base})'
        key = (name, tuple(sorted(labels.items())))
        assert key not in seen_series, f'line {ln}: duplicate series {key}'
        seen_series.add(key)
        v = float(value.replace('Inf', 'inf'))
        if fams[base]['type'] == 'counter':
            assert v >= 0 and not math.isnan(v), f'line {ln}: negative counter'
        fams[base]['samples'].append((name, labels, v))
    for name, f in fams.items():
        assert f['type'], f'{name}: no TYPE'
        if f['type'] == 'histogram':
            check_histogram(name, f['samples'])
    return fams


def check_histogram(name, samples):
    groups = {}
    for n, labels, v in samples:
        key = tuple(sorted((k, x) for k, x in labels.items() if k != 'le'))
        groups.setdefault(key, []).append((n, labels.get('le'), v))
    for key, rows in groups.items():
        buckets = [(float(le.replace('Inf', 'inf')), v) for n, le, v in rows if n == name + '_bucket']
        assert buckets and buckets[-1][0] == math.inf, f'{name}{key}: no +Inf bucket'
        assert [b for b, _ in buckets] == sorted(b for b, _ in buckets), f'{name}{key}: le not ascending'
        assert all(a[1] <= b[1] for a, b in zip(buckets, buckets[1:])), f'{name}{key}: not cumulative'
        count = [v for n, _, v in rows if n == name + '_count']
        assert count == [buckets[-1][1]], f'{name}{key}: _count != +Inf bucket'
        assert len([1 for n, _, _ in rows if n == name + '_sum']) == 1


def sample(fams, family, name=None, **labels):
    for n, lab, v in fams[family]['samples']:
        if n == (name or family) and all(lab.get(k) == str(x) for k, x in labels.items()):
            return v
    return None


CFG = '''
server: { listen: "$listen", workers: 2, access_log: { format: off } }
admin: { listen: "127.0.0.1:$admin" }
upstreams:
  app: { servers: ["$b1"] }
  dead: { servers: ["127.0.0.1:$dead"], timeouts: { connect: 500ms } }
routes:
  - { name: api, match: { path: /api }, upstream: app }
  - { name: gone, match: { path: /gone }, upstream: dead }
  - { name: "quo\\"te", match: { path: /hello }, respond: { status: 200, body: "hi" } }
'''


def scrape(admin):
    r = http_request(admin, 'GET', '/metrics')
    assert r.status == 200
    assert r.header('content-type') == 'text/plain; version=0.0.4; charset=utf-8'
    return parse_exposition(r.body.decode())


def settled(admin, total):
    """Scrapes until `total` requests are counted: a worker counts an exchange
    just after its last byte was written, so a client may read the answer first."""
    def ready():
        fams = scrape(admin)
        n = sum(v for _, _, v in fams['tollgate_requests_total']['samples'])
        return fams if n >= total else None
    return wait_until(ready, timeout=10, what=f'{total} requests counted')


def start(tollgate, backends):
    (b1,) = backends(1)
    admin = free_port()
    gw = tollgate(CFG, admin=admin, b1=b1.addr, dead=free_port())
    wait_until(lambda: port_accepts(admin), timeout=10, what='admin listener')
    return gw, admin, b1


def test_parser_rejects_what_prometheus_rejects():
    good = '# HELP a_total x\n# TYPE a_total counter\na_total{l="v"} 1\n'
    parse_exposition(good)
    for bad in (good.replace(' 1\n', ' one\n'), good + 'a_total{l="v"} 2\n', good[:-1],
                good.replace('l="v"', 'l=v'), '# TYPE a counter\na -1\n',
                '# TYPE h histogram\nh_bucket{le="1"} 2\nh_bucket{le="+Inf"} 1\nh_sum 1\nh_count 1\n'):
        try:
            parse_exposition(bad)
        except AssertionError:
            continue
        raise AssertionError(f'accepted {bad!r}')


def test_every_contract_family_with_its_labels(tollgate, backends):
    gw, admin, b1 = start(tollgate, backends)
    assert http_request(gw.port, 'GET', '/api/x').status == 200
    assert http_request(gw.port, 'GET', '/gone').status == 502
    assert http_request(gw.port, 'GET', '/hello').status == 200
    fams = settled(admin, 3)
    want = {'tollgate_requests_total': 'counter', 'tollgate_request_duration_seconds': 'histogram',
            'tollgate_upstream_requests_total': 'counter', 'tollgate_upstream_duration_seconds': 'histogram',
            'tollgate_upstream_server_up': 'gauge', 'tollgate_connections_active': 'gauge',
            'tollgate_connections_total': 'counter', 'tollgate_bytes_received_total': 'counter',
            'tollgate_bytes_sent_total': 'counter', 'tollgate_config_reloads_total': 'counter',
            'tollgate_config_generation': 'gauge'}
    for name, typ in want.items():
        assert name in fams and fams[name]['type'] == typ, name
    labels = {'tollgate_requests_total': {'route', 'method', 'code'},
              'tollgate_request_duration_seconds': {'route', 'le'},
              'tollgate_upstream_requests_total': {'upstream', 'server', 'code'},
              'tollgate_upstream_duration_seconds': {'upstream', 'le'},
              'tollgate_upstream_server_up': {'upstream', 'server'},
              'tollgate_config_reloads_total': {'result'}}
    for name, keys in labels.items():
        for n, lab, _ in fams[name]['samples']:
            if not n.endswith(('_sum', '_count')):
                assert set(lab) == keys, (name, lab)


def test_counts(tollgate, backends):
    gw, admin, b1 = start(tollgate, backends)
    for _ in range(5):
        assert http_request(gw.port, 'GET', '/api/x').status == 200
    assert http_request(gw.port, 'POST', '/api/y', body=b'abc').status == 200
    assert http_request(gw.port, 'GET', '/nothing-here').status == 404
    assert http_request(gw.port, 'GET', '/gone').status == 502
    assert http_request(gw.port, 'BREW', '/hello').status == 200
    fams = settled(admin, 9)
    rq = 'tollgate_requests_total'
    assert sample(fams, rq, route='api', method='GET', code=200) == 5
    assert sample(fams, rq, route='api', method='POST', code=200) == 1
    assert sample(fams, rq, route='', method='GET', code=404) == 1
    assert sample(fams, rq, route='gone', method='GET', code=502) == 1
    assert sample(fams, rq, route='quo"te', method='other', code=200) == 1   # escaped, bounded
    d = 'tollgate_request_duration_seconds'
    assert sample(fams, d, d + '_count', route='api') == 6
    assert sample(fams, d, d + '_bucket', route='api', le='+Inf') == 6
    assert 0 < sample(fams, d, d + '_sum', route='api') < 60
    up = 'tollgate_upstream_requests_total'
    assert sample(fams, up, upstream='app', server=b1.addr, code=200) == 6
    dead = [lab for n, lab, v in fams[up]['samples'] if lab['upstream'] == 'dead']
    assert len(dead) == 1 and dead[0]['code'] == 'error'
    ud = 'tollgate_upstream_duration_seconds'
    assert sample(fams, ud, ud + '_count', upstream='app') == 6
    assert sample(fams, 'tollgate_connections_total') >= 9
    assert sample(fams, 'tollgate_bytes_received_total') > 9 * 30
    assert sample(fams, 'tollgate_bytes_sent_total') > 9 * 50
    assert sample(fams, 'tollgate_upstream_server_up', upstream='app', server=b1.addr) == 1
    assert sample(fams, 'tollgate_config_generation') == 1
    assert sample(fams, 'tollgate_config_reloads_total', result='ok') == 0


def test_connections_active_and_sums_over_workers(tollgate, backends):
    from conftest import RawConn
    gw, admin, b1 = start(tollgate, backends)
    conns = [RawConn(gw.port) for _ in range(6)]
    try:
        for c in conns:
            assert c.request('GET', '/api/k').status == 200
        fams = settled(admin, 6)
        assert sample(fams, 'tollgate_connections_active') == 6
        # 6 requests spread over 2 workers, summed into one series
        assert sample(fams, 'tollgate_requests_total', route='api', method='GET', code=200) == 6
    finally:
        for c in conns:
            c.close()
    wait_until(lambda: sample(scrape(admin), 'tollgate_connections_active') == 0, timeout=10,
               what='connections to close')
