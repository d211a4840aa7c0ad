#!/usr/bin/python3
"""Measurement engine behind bench/tls_h2.sh (Python 3 standard library only).

bench/tls_h2.sh writes the configurations and starts the origin and the
proxies; this file only
  ports N      prints N free loopback TCP ports (bound together, then released)
  run ...      runs the interleaved h2load rounds against already-running
               proxies and writes summary.md / summary.json

The measuring rules are those of the shared harness (../shared/bench/
proxy_compare.py, h2c mode), applied to TLS h2:
  * per run: req/s from h2load's "finished in ... req/s"; proxy CPU = utime +
    stime delta of the proxy's process tree (/proc/PID/stat) / requests done;
    client CPU from wait4() rusage; origin CPU from /proc/PID/stat; foreign
    CPU = busy CPU in /proc/stat minus what those three used, in % of a core.
  * a run with foreign CPU above --max-foreign is rerun up to --retries times
    and the least disturbed attempt is kept.
  * round r runs the targets starting at target r mod T (rotating start);
    ratios vs nginx are computed per round, then their median is reported.
Every h2load this file starts is bounded in time and reaped (or killed) here.
"""
import argparse
import json
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import time

CLK_TCK = os.sysconf('SC_CLK_TCK')
RUNNING = []            # h2load processes in flight, killed on the way out


# ------------------------------------------------------------ /proc readers

def _ppid_map():
    m = {}
    for d in os.listdir('/proc'):
        if d.isdigit():
            try:
                with open(f'/proc/{d}/stat') as f:
                    m[int(d)] = int(f.read().rsplit(')', 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                pass
    return m


def tree(pid):
    """pid and all its descendants (nginx master + worker, ...)."""
    m = _ppid_map()
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        if p in m or p == pid:
            out.append(p)
            todo.extend(c for c, pp in m.items() if pp == p)
    return out


def ticks(pids):
    """utime + stime (clock ticks) summed over pids; threads are included."""
    t = 0
    for p in pids:
        try:
            with open(f'/proc/{p}/stat') as f:
                fl = f.read().rsplit(')', 1)[1].split()
            t += int(fl[11]) + int(fl[12])
        except OSError:
            pass
    return t


def cpu_stat():
    out = {}
    with open('/proc/stat') as f:
        for line in f:
            if line.startswith('cpu') and line[3].isdigit():
                parts = line.split()
                vals = list(map(int, parts[1:]))
                idle = vals[3] + vals[4]
                out[parts[0]] = (sum(vals) - idle, sum(vals))
    return out


def cpu_busy(a, b):
    return {k: 100.0 * (b[k][0] - a[k][0]) / max(1, b[k][1] - a[k][1]) for k in a}


# ------------------------------------------------------------ h2load runs

def parse_h2load(out):
    r = {}
    m = re.search(r'finished in [\d.]+s, ([\d.]+) req/s', out)
    r['rps'] = float(m.group(1)) if m else 0.0
    m = re.search(r'requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, '
                  r'(\d+) failed, (\d+) errored, (\d+) timeout', out)
    r['requests'] = int(m.group(4)) if m else 0
    r['errors'] = (int(m.group(5)) + int(m.group(6)) + int(m.group(7))) if m else -1
    m = re.search(r'status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx', out)
    if m:
        r['errors'] += int(m.group(3)) + int(m.group(4))
    # h2load's own "time for request" mean (no --log-file: the client core is
    # the scarce one with TLS, so the per-request log is not written)
    m = re.search(r'time for request:\s+\S+\s+\S+\s+(\S+)', out)
    r['req_mean_ms'] = to_ms(m.group(1)) if m else float('nan')
    m = re.search(r'TLS Protocol: (\S+)', out)
    r['tls'] = m.group(1) if m else '?'
    m = re.search(r'Cipher: (\S+)', out)
    r['cipher'] = m.group(1) if m else '?'
    m = re.search(r'Application protocol: (\S+)', out)
    r['alpn'] = m.group(1) if m else '?'
    return r


UNIT = {'us': 1e-3, 'ms': 1.0, 's': 1e3}


def to_ms(s):
    m = re.match(r'([\d.]+)(us|ms|s)$', s)
    return float(m.group(1)) * UNIT[m.group(2)] if m else float('nan')


def measure_once(t, args, label, origin_pids):
    argv = ['h2load', '-t1', f'-c{args.conns}', f'-m{args.streams}', f'-D{args.duration}',
            '--warm-up-time', '1', f'https://127.0.0.1:{t["port"]}/']
    pids = tree(t['pid'])
    rawpath = f'{args.out}/raw/{label}.txt'
    with open(rawpath, 'w') as f:
        f.write(' '.join(argv) + '\n')
        f.flush()
        s0, p0, o0, w0 = cpu_stat(), ticks(pids), ticks(origin_pids), time.time()
        p = subprocess.Popen(argv, stdout=f, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                             preexec_fn=lambda: os.sched_setaffinity(0, args.client_cpus))
        RUNNING.append(p)
        deadline = time.time() + args.duration + 60
        while True:                          # bounded wait, then reap with rusage
            wpid, status, ru = os.wait4(p.pid, os.WNOHANG)
            if wpid:
                break
            if time.time() > deadline:
                os.kill(p.pid, signal.SIGKILL)
                wpid, status, ru = os.wait4(p.pid, 0)
                break
            time.sleep(0.05)
        p.returncode = os.waitstatus_to_exitcode(status)
        RUNNING.remove(p)
        s1, p1, o1, w1 = cpu_stat(), ticks(pids), ticks(origin_pids), time.time()
    with open(rawpath) as f:
        r = parse_h2load(f.read())
    wall = w1 - w0
    busy = cpu_busy(s0, s1)
    proxy_s = (p1 - p0) / CLK_TCK
    origin_s = (o1 - o0) / CLK_TCK
    client_s = ru.ru_utime + ru.ru_stime
    r['cpu_busy'] = {k: round(v, 1) for k, v in busy.items()}
    r['proxy_cpu_pct'] = 100.0 * proxy_s / wall
    r['proxy_us_per_req'] = 1e6 * proxy_s / r['requests'] if r['requests'] else float('nan')
    r['origin_cpu_pct'] = 100.0 * origin_s / wall
    r['client_cpu_pct'] = 100.0 * client_s / wall
    # busy CPU none of our processes used (other users, unattributed softirq)
    r['foreign_pct'] = sum(busy.values()) - 100.0 * (client_s + origin_s + proxy_s) / wall
    r['h2load_rc'] = p.returncode
    return r


def measure(t, args, label, origin_pids):
    """Run once; rerun while foreign CPU > --max-foreign (at most --retries
    times) and keep the least disturbed attempt."""
    best = None
    for attempt in range(args.retries + 1):
        lab = label if attempt == 0 else f'{label}-retry{attempt}'
        r = measure_once(t, args, lab, origin_pids)
        if best is None or r['foreign_pct'] < best['foreign_pct']:
            best = r
        if r['foreign_pct'] <= args.max_foreign or attempt == args.retries:
            break
        print(f'  ({label}: {r["foreign_pct"]:.0f}% of a core used by other processes, '
              f'{r["rps"]:.0f} req/s; retrying)', flush=True)
    best['attempts'] = attempt + 1
    return best


# ------------------------------------------------------------ summary

def med(xs):
    xs = [x for x in xs if x == x]
    return statistics.median(xs) if xs else float('nan')


def fmt(x, nd=1):
    return '—' if x != x else f'{x:,.{nd}f}'


def summarize(names, rounds, args):
    rows, js, retried = [], {}, 0
    for n in names:
        rs = [rd[n] for rd in rounds]
        rps = [r['rps'] for r in rs]
        retried += sum(r['attempts'] - 1 for r in rs)
        ratios = [rd[n]['rps'] / rd['nginx']['rps'] for rd in rounds
                  if 'nginx' in rd and rd['nginx']['rps'] > 0]
        vn = (med(ratios), min(ratios), max(ratios)) if ratios else (float('nan'),) * 3
        d = {'rps_median': med(rps), 'rps_min': min(rps), 'rps_max': max(rps),
             'vs_nginx': vn,
             'proxy_us_per_req': med([r['proxy_us_per_req'] for r in rs]),
             'proxy_us_per_req_min': min(r['proxy_us_per_req'] for r in rs),
             'proxy_us_per_req_max': max(r['proxy_us_per_req'] for r in rs),
             'proxy_cpu_pct': med([r['proxy_cpu_pct'] for r in rs]),
             'client_cpu_pct': med([r['client_cpu_pct'] for r in rs]),
             'origin_cpu_pct': med([r['origin_cpu_pct'] for r in rs]),
             'cpu0_busy': med([r['cpu_busy'].get('cpu0', float('nan')) for r in rs]),
             'cpu1_busy': med([r['cpu_busy'].get('cpu1', float('nan')) for r in rs]),
             'foreign_pct': med([r['foreign_pct'] for r in rs]),
             'req_mean_ms': med([r['req_mean_ms'] for r in rs]),
             'errors': sum(r['errors'] for r in rs),
             'negotiated': sorted({f'{r["tls"]} {r["cipher"]} ALPN {r["alpn"]}' for r in rs})}
        js[n] = d
        rows.append(
            f"| {n} | {fmt(d['rps_median'], 0)} | {fmt(d['rps_min'], 0)}–{fmt(d['rps_max'], 0)} "
            f"| {fmt(vn[0], 2)} ({fmt(vn[1], 2)}–{fmt(vn[2], 2)}) "
            f"| {fmt(d['proxy_us_per_req'], 1)} ({fmt(d['proxy_us_per_req_min'], 1)}–"
            f"{fmt(d['proxy_us_per_req_max'], 1)}) | {fmt(d['proxy_cpu_pct'], 0)} "
            f"| {fmt(d['client_cpu_pct'], 0)}/{fmt(d['origin_cpu_pct'], 0)} "
            f"| {fmt(d['cpu0_busy'], 0)}/{fmt(d['cpu1_busy'], 0)} | {fmt(d['foreign_pct'], 0)} "
            f"| {fmt(d['req_mean_ms'], 2)} | {d['errors']} |")
    hdr = (f'### TLS h2: h2load -t1 -c{args.conns} -m{args.streams} -D{args.duration} '
           f'--warm-up-time 1 https://127.0.0.1:PORT/; rounds={len(rounds)} '
           f'(interleaved, start target rotates each round)\n\n'
           '| target | req/s median | min–max | vs nginx median (min–max) '
           '| proxy CPU µs/req median (min–max) | proxy CPU % | h2load/origin CPU % '
           '| cpu0/cpu1 busy % | foreign CPU % | mean ms/req | errors |\n'
           '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n')
    neg = '; '.join(f'{n}: {", ".join(js[n]["negotiated"])}' for n in names)
    foot = (f'\nNegotiated (h2load): {neg}.\n\n'
            'Ratios are per round (same round, same conditions), then the median. proxy CPU = '
            'utime+stime of the proxy process tree over the run / requests done. foreign CPU = busy '
            'CPU (/proc/stat) not used by h2load, the origin or the proxy, in % of one core; runs '
            f'above {args.max_foreign:g}% were rerun (up to {args.retries}x, least disturbed kept): '
            f'{retried} reruns in this table. When the proxy CPU % is well below 100, CPU 0 '
            '(h2load\'s TLS + the origin) limits req/s and proxy CPU µs/req is the figure to '
            'compare.\n')
    return hdr + '\n'.join(rows) + '\n' + foot, js


# ------------------------------------------------------------ commands

def cmd_ports(n):
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(('127.0.0.1', 0))
            socks.append(s)
        print(' '.join(str(s.getsockname()[1]) for s in socks))
    finally:
        for s in socks:
            s.close()


def parse_target(s):
    m = re.match(r'^([\w.-]+)=(\d+):(\d+)$', s)
    if not m:
        sys.exit(f'--target {s!r}: expected NAME=PORT:PID')
    return m.group(1), {'port': int(m.group(2)), 'pid': int(m.group(3))}


def cmd_run(argv):
    ap = argparse.ArgumentParser(prog='tls_h2.py run')
    ap.add_argument('--out', required=True)
    ap.add_argument('--rounds', type=int, default=5)
    ap.add_argument('--duration', type=int, default=5)
    ap.add_argument('--conns', type=int, default=8)
    ap.add_argument('--streams', type=int, default=8)
    ap.add_argument('--warmup', type=int, default=2, help='unscored seconds per target first')
    ap.add_argument('--max-foreign', type=float, default=12.0)
    ap.add_argument('--retries', type=int, default=2)
    ap.add_argument('--client-cpu', type=int, default=0)
    ap.add_argument('--origin-pid', type=int, required=True)
    ap.add_argument('--target', action='append', required=True, metavar='NAME=PORT:PID')
    ap.add_argument('--header', default='', help='markdown put before the table')
    args = ap.parse_args(argv)
    args.client_cpus = {args.client_cpu}
    targets = dict(parse_target(s) for s in args.target)
    names = list(targets)
    origin_pids = tree(args.origin_pid)
    os.makedirs(f'{args.out}/raw', exist_ok=True)

    if args.warmup > 0:
        w = argparse.Namespace(**vars(args))
        w.duration, w.retries = args.warmup, 0
        for n in names:
            measure(targets[n], w, f'warmup-{n}', origin_pids)
    rounds = []
    for r in range(args.rounds):
        order = names[r % len(names):] + names[:r % len(names)]
        rd = {}
        for n in order:
            res = measure(targets[n], args, f'r{r}-{n}', origin_pids)
            rd[n] = res
            print(f'[round {r + 1}/{args.rounds}] {n:9s} {res["rps"]:9.0f} req/s '
                  f'proxy {res["proxy_us_per_req"]:.1f} us/req ({res["proxy_cpu_pct"]:.0f}%) '
                  f'h2load={res["client_cpu_pct"]:.0f}% origin={res["origin_cpu_pct"]:.0f}% '
                  f'busy={res["cpu_busy"]} foreign={res["foreign_pct"]:.0f}% '
                  f'{res["tls"]}/{res["alpn"]} err={res["errors"]}', flush=True)
        rounds.append(rd)
    md, js = summarize(names, rounds, args)
    with open(f'{args.out}/summary.md', 'w') as f:
        f.write(args.header + md)
    with open(f'{args.out}/summary.json', 'w') as f:
        json.dump({'args': {k: v for k, v in vars(args).items() if k != 'client_cpus'},
                   'summary': js, 'rounds': rounds}, f, indent=1)
    print('\n' + md, flush=True)
    bad = [n for n in names if js[n]['errors'] or js[n]['rps_median'] <= 0]
    if bad:
        print(f'tls_h2: errors or no requests for: {", ".join(bad)} (see {args.out}/raw)',
              file=sys.stderr)
        return 1
    return 0


def main():
    def on_signal(sig, frm):
        raise SystemExit(128 + sig)
    for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(s, on_signal)
    if len(sys.argv) == 3 and sys.argv[1] == 'ports':
        cmd_ports(int(sys.argv[2]))
        return 0
    if len(sys.argv) > 1 and sys.argv[1] == 'run':
        try:
            return cmd_run(sys.argv[2:])
        finally:
            for p in RUNNING:
                if p.poll() is None:
                    p.kill()
                    p.wait()
    sys.exit('usage: tls_h2.py ports N | tls_h2.py run --out DIR --origin-pid PID '
             '--target NAME=PORT:PID ... (normally started by bench/tls_h2.sh)')


if __name__ == '__main__':
    sys.exit(main())
