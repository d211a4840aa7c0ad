#!/usr/bin/python3
"""bench/ratelimit_ab.py BIN [ROUNDS] — the cost of a local rate limit (docs/performance.md).

Two tollgate instances (one worker each, pinned to CPU 1) proxy to a third tollgate that
answers 200 itself (CPU 0, with wrk): `base` has a plain route, `rl` the same route with
`rate_limit: [{key: client_ip, rate: 1000000/s, burst: 1000000}]` (never limits, always does
the work: key, store, headers). Rounds alternate the order; reported per variant: median req/s
and median proxy CPU microseconds per request (from /proc/PID/stat), and their ratio.
Uses loopback ports 29000-29002."""
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

BIN = os.path.realpath(sys.argv[1]) if len(sys.argv) > 1 else sys.exit(__doc__)
ROUNDS = int(sys.argv[2]) if len(sys.argv) > 2 else 6
TMP = tempfile.mkdtemp(prefix='tg-rl-ab-')
ORIGIN = """server: { listen: ["127.0.0.1:29000"], workers: 1, access_log: { format: off }, limits: { idle_timeout: 300s } }
routes: [ { match: { path: / }, respond: { status: 200, body: "hello\\n" } } ]
"""
GATEWAY = """server: { listen: ["127.0.0.1:%d"], workers: 1, access_log: { format: off }, limits: { idle_timeout: 300s } }
upstreams: { origin: { servers: ["127.0.0.1:29000"], keepalive: { max_idle: 128, idle_timeout: 300s }, timeouts: { idle: 300s } } }
routes:
  - match: { path: / }
    upstream: origin
%s
"""
RL = '    rate_limit: [ { key: client_ip, rate: 1000000/s, burst: 1000000 } ]'


def start(name, text, cpu):
    path = os.path.join(TMP, name + '.yaml')
    with open(path, 'w') as f:
        f.write(text)
    return subprocess.Popen(['taskset', '-c', cpu, BIN, '-c', path], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)


def cpu_seconds(pid):
    f = open(f'/proc/{pid}/stat').read().rsplit(')', 1)[1].split()
    return (int(f[11]) + int(f[12])) / os.sysconf('SC_CLK_TCK')


def wrk(port, secs):
    out = subprocess.run(['taskset', '-c', '0', 'wrk', '-t1', '-c64', f'-d{secs}s', f'http://127.0.0.1:{port}/'],
                         capture_output=True, text=True).stdout
    return float(re.search(r'Requests/sec:\s+([\d.]+)', out).group(1))


def main():
    procs = [start('origin', ORIGIN, '0')]
    gw = {'base': (start('base', GATEWAY % (29001, ''), '1'), 29001),
          'rl': (start('rl', GATEWAY % (29002, RL), '1'), 29002)}
    procs += [p for p, _ in gw.values()]
    try:
        time.sleep(1)
        for _, port in gw.values():
            wrk(port, 2)  # warm-up
        res = {k: [] for k in gw}
        for rnd in range(ROUNDS):
            for name in (['base', 'rl'] if rnd % 2 == 0 else ['rl', 'base']):
                p, port = gw[name]
                c0 = cpu_seconds(p.pid)
                rps = wrk(port, 5)
                us = (cpu_seconds(p.pid) - c0) / (rps * 5) * 1e6
                res[name].append((rps, us))
                print(f'round {rnd} {name:4} {rps:9.0f} req/s {us:6.2f} cpu-us/req', flush=True)
        med = {k: (statistics.median(r for r, _ in v), statistics.median(u for _, u in v)) for k, v in res.items()}
        for k, (r, u) in med.items():
            print(f'{k:4} median {r:9.0f} req/s {u:6.2f} cpu-us/req')
        print(f'rl/base: req/s {med["rl"][0] / med["base"][0]:.3f}, cpu-us/req {med["rl"][1] / med["base"][1]:.3f}')
    finally:
        for p in procs:
            p.terminate()
            p.wait()


main()
