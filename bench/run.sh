#!/usr/bin/env bash
# bench/run.sh BIN [proxy-compare args...] — `make bench`.
#
# Runs the shared side-by-side benchmark (../shared/bench/proxy-compare.sh beside
# the repository) with tollgate added as an extra target: one worker, listening
# on 127.0.0.1:9000, upstream = the benchmark's nginx origin on 127.0.0.1:18080
# with keep-alive, access log off, pinned to CPU 1 like the peer proxies.
#
# Defaults: --mode h1, --proxies = those of nginx, haproxy, caddy, h2o that are
# installed. Every other argument is passed to proxy-compare.sh unchanged, e.g.
#   bench/run.sh build/tollgate --mode h1,idle --rounds 7
#   bench/run.sh build/tollgate --layout none
# Config variants (docs/performance.md): TG_BENCH_BALANCE (default round_robin)
# and TG_BENCH_SERVERS (a YAML flow list, default ["127.0.0.1:18080"]), e.g.
#   TG_BENCH_BALANCE=p2c TG_BENCH_SERVERS='["127.0.0.1:18080", "127.1:18080"]' bench/run.sh ...
# Also measured unless TG_BENCH_NGINX_FWD=0: nginx-fwd, the peer nginx set up to
# add the forwarded headers, Via and request id that tollgate adds (equal work).
# TG_BENCH_ROUTE_EXTRA adds keys to the route (one line of YAML), e.g.
#   TG_BENCH_ROUTE_EXTRA='rate_limit: [ { key: client_ip, rate: 1000000/s, burst: 1000000 } ]'
set -euo pipefail

usage() { echo "usage: bench/run.sh path/to/tollgate [proxy-compare.sh args...]" >&2; exit 2; }
[ $# -ge 1 ] || usage
bin="$(realpath "$1")"; shift
[ -x "$bin" ] || { echo "bench: no executable tollgate at $bin (run: make build)" >&2; exit 1; }

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
top="$(git -C "$here" rev-parse --show-toplevel 2>/dev/null || (cd "$here/.." && pwd))"
shared="$top/../shared/bench"
if [ ! -x "$shared/proxy-compare.sh" ]; then
    echo "bench: $shared/proxy-compare.sh not found." >&2
    echo "bench: the benchmark harness lives in ../shared/bench beside the repository root ($top)." >&2
    exit 1
fi

# What the caller already chose; we only add defaults for the rest.
have() { local k="$1"; shift; for a in "$@"; do case "$a" in "$k"|"$k"=*) return 0;; esac; done; return 1; }
layout=pinned
prev=
for a in "$@"; do
    case "$a" in --layout=*) layout="${a#--layout=}";; esac
    [ "$prev" = --layout ] && layout="$a"
    prev="$a"
done

args=()
have --mode "$@" || args+=(--mode h1)
if ! have --proxies "$@"; then
    proxies=()
    for p in nginx haproxy caddy h2o; do
        command -v "$p" >/dev/null 2>&1 && proxies+=("$p")
    done
    [ ${#proxies[@]} -gt 0 ] || { echo "bench: none of nginx haproxy caddy h2o is installed (make bench installs nginx and haproxy)" >&2; exit 1; }
    args+=(--proxies "$(IFS=,; echo "${proxies[*]}")")
fi
out=
if have --out "$@"; then
    prev=
    for a in "$@"; do
        case "$a" in --out=*) out="${a#--out=}";; esac
        [ "$prev" = --out ] && out="$a"
        prev="$a"
    done
else
    out="/tmp/proxy-bench/$(date +%Y%m%d-%H%M%S)-$layout-tollgate"
    args+=(--out "$out")
fi
mkdir -p "$out"

listen=127.0.0.1:9000
if curl --noproxy '*' -s -o /dev/null --max-time 1 "http://$listen/"; then
    echo "bench: something already listens on $listen; stop it first" >&2
    exit 1
fi

cfg="$out/tollgate.yaml"
cat >"$cfg" <<EOF
server:
  listen: ["$listen"]
  workers: 1
  access_log: { format: off }
  limits: { idle_timeout: 300s }
upstreams:
  origin:
    servers: ${TG_BENCH_SERVERS:-["127.0.0.1:18080"]}
    balance: ${TG_BENCH_BALANCE:-round_robin}
    keepalive: { max_idle: 128, idle_timeout: 300s }
    timeouts: { idle: 300s }
routes:
  - match: { path: / }
    upstream: origin
    ${TG_BENCH_ROUTE_EXTRA:-}
EOF
"$bin" -t -c "$cfg" || { echo "bench: tollgate rejected $cfg" >&2; exit 1; }

# 10,000 idle connections (idle mode) need the hard fd limit, as the peers get.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
pin=()
if [ "$layout" = pinned ]; then
    [ "$(nproc)" -ge 2 ] || { echo "bench: the pinned layout needs 2 CPUs (try --layout none)" >&2; exit 1; }
    pin=(taskset -c 1)
fi
# In its own session, as the harness starts its peer proxies (start_new_session):
# with autogroup scheduling (kernel.sched_autogroup_enabled=1, the Debian
# default) a proxy left in this script's session shares wrk's task group, and
# CFS splits that group's weight between CPU 1 (the proxy) and CPU 0 (wrk), so
# wrk gets less of CPU 0 than the origin and every rate drops (measured: 0.89x
# nginx in the same session, 1.0x in its own; docs/performance.md). setsid
# execs in place here (a background job of a script is no group leader), so
# $! is tollgate's pid.
setsid "${pin[@]}" "$bin" -c "$cfg" >"$out/tollgate.log" 2>&1 &
pid=$!
fwd_pid=
stop() {
    if [ -n "$fwd_pid" ] && kill -0 "$fwd_pid" 2>/dev/null; then
        kill -TERM "$fwd_pid" 2>/dev/null || true
        wait "$fwd_pid" 2>/dev/null || true
    fi
    if kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
}
trap stop EXIT
trap 'exit 130' INT TERM

# ready = the listener accepts (the origin does not run yet: any answer will do)
for i in $(seq 100); do
    kill -0 "$pid" 2>/dev/null || { echo "bench: tollgate exited at start:" >&2; cat "$out/tollgate.log" >&2; exit 1; }
    if (exec 3<>/dev/tcp/127.0.0.1/9000) 2>/dev/null; then break; fi
    [ "$i" = 100 ] && { echo "bench: tollgate is not listening on $listen after 10 s" >&2; exit 1; }
    sleep 0.1
done

echo "bench: tollgate pid $pid on $listen (layout $layout), results in $out"

# nginx-fwd: the peer nginx doing the work the contract makes tollgate do on
# every request (docs/performance.md "Equal work"): forwarded headers, Via and
# a request id both ways. The shared harness's nginx forwards bare requests;
# the origin and wrk share CPU 0, so those headers' parsing shows in req/s.
# TG_BENCH_NGINX_FWD=0 leaves it out (it always is when nginx is missing).
fwd=()
if [ "${TG_BENCH_NGINX_FWD:-1}" = 1 ] && command -v nginx >/dev/null 2>&1; then
    fwd_listen=127.0.0.1:9100
    mkdir -p "$out/nginx-fwd-tmp"
    cat >"$out/nginx-fwd.conf" <<NGINX
worker_processes 1;
daemon off;
master_process off;
pid $out/nginx-fwd.pid;
error_log $out/nginx-fwd.error.log warn;
worker_rlimit_nofile 20000;
events { worker_connections 20000; }
http {
  access_log off;
  keepalive_requests 1000000;
  keepalive_timeout 300s;
  client_body_temp_path $out/nginx-fwd-tmp/body;
  proxy_temp_path $out/nginx-fwd-tmp/proxy;
  fastcgi_temp_path $out/nginx-fwd-tmp/fastcgi;
  uwsgi_temp_path $out/nginx-fwd-tmp/uwsgi;
  scgi_temp_path $out/nginx-fwd-tmp/scgi;
  upstream be { server 127.0.0.1:18080; keepalive 128; keepalive_requests 1000000; keepalive_timeout 300s; }
  server {
    listen $fwd_listen;
    location / {
      proxy_pass http://be;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host \$http_host;
      proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
      proxy_set_header X-Forwarded-Proto \$scheme;
      proxy_set_header X-Forwarded-Host \$http_host;
      proxy_set_header X-Real-IP \$remote_addr;
      proxy_set_header Forwarded "for=\$remote_addr;host=\\"\$http_host\\";proto=\$scheme";
      proxy_set_header Via "1.1 nginx";
      proxy_set_header X-Request-Id \$request_id;
      add_header Via "1.1 nginx";
      add_header X-Request-Id \$request_id;
    }
  }
}
NGINX
    setsid "${pin[@]}" nginx -c "$out/nginx-fwd.conf" >"$out/nginx-fwd.log" 2>&1 & # own session: see above
    fwd_pid=$!
    for i in $(seq 100); do
        kill -0 "$fwd_pid" 2>/dev/null || { echo "bench: nginx-fwd exited at start:" >&2; cat "$out/nginx-fwd.log" "$out/nginx-fwd.error.log" >&2; exit 1; }
        if (exec 3<>/dev/tcp/127.0.0.1/9100) 2>/dev/null; then break; fi
        [ "$i" = 100 ] && { echo "bench: nginx-fwd is not listening on $fwd_listen after 10 s" >&2; exit 1; }
        sleep 0.1
    done
    fwd=(--extra "nginx-fwd=http://$fwd_listen/" --extra-pid "nginx-fwd=$fwd_pid")
    echo "bench: nginx-fwd pid $fwd_pid on $fwd_listen (nginx with tollgate's forwarded headers)"
fi

set +e
# h2c is served on the same listener (prior knowledge): docs/protocols.md
"$shared/proxy-compare.sh" "${args[@]}" --extra "tollgate=http://$listen/" \
    --extra-h2c "tollgate=http://$listen/" --extra-pid "tollgate=$pid" "${fwd[@]}" "$@"
rc=$?
set -e
if [ -f "$out/summary.md" ]; then
    echo "bench: summary: $out/summary.md"
else
    echo "bench: no summary written (proxy-compare exited $rc); logs in $out" >&2
fi
exit "$rc"
