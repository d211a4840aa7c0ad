#!/usr/bin/env bash
# shellcheck disable=SC2317  # stop_pid/cleanup/descendants run from the EXIT trap
# bench/tls_h2.sh path/to/tollgate [--rounds N] [--duration S]
#
# TLS HTTP/2 side-by-side benchmark (issue 4): tollgate, nginx and h2o as
# TLS-terminating HTTP/2 reverse proxies, each with ONE worker/thread, in front
# of the same origin, laid out like the shared harness's h2c mode
# (../shared/bench/proxy_compare.py, layout "pinned"):
#   origin  nginx, 1 worker, `return 200 "hello\n"`, keepalive_requests 1e6,
#           plain HTTP/1.1 on a free 127.0.0.1 port, pinned to CPU 0
#   proxies pinned to CPU 1, HTTP/1.1 keep-alive to the origin:
#           nginx  `listen ... ssl http2`, upstream keepalive 128,
#                  proxy_http_version 1.1, Connection ""
#           h2o    num-threads 1, listen with ssl, proxy.reverse.url
#           tollgate workers 1, one TLS listener (protocols h2, http/1.1),
#                  access log off, upstream keep-alive (as bench/run.sh)
#   load    taskset -c 0 h2load -t1 -c8 -m8 -D<S> --warm-up-time 1 https://...
#           (ALPN h2; TLS 1.3 where both ends have it)
# One throwaway EC P-256 self-signed certificate serves all three proxies.
# Rounds are interleaved with a rotating start; per run: req/s, proxy CPU
# µs/request (/proc/PID/stat of the proxy's process tree), foreign CPU (a run
# with > 12% of a core used by others is rerun up to 2x, least disturbed kept).
# The measuring is done by bench/tls_h2.py (Python 3 standard library).
#
# Defaults: 5 rounds of 5 s (about 2 min). Results: /tmp/proxy-bench/
# <timestamp>-tls-h2/ with summary.md (also printed), summary.json, raw/ (every
# h2load output), run/ (configs and logs), cert.pem/key.pem.
# Every process started here is stopped by PID on exit (trap), Ctrl-C included.
set -euo pipefail

usage() { echo "usage: bench/tls_h2.sh path/to/tollgate [--rounds N] [--duration S]" >&2; exit 2; }
[ $# -ge 1 ] || usage
case "$1" in -h|--help) usage;; esac
bin="$(realpath "$1")"; shift
[ -x "$bin" ] || { echo "tls_h2: no executable tollgate at $bin (run: make build)" >&2; exit 1; }

rounds=5
duration=5
while [ $# -gt 0 ]; do
    case "$1" in
        --rounds) [ $# -ge 2 ] || usage; rounds="$2"; shift 2;;
        --rounds=*) rounds="${1#--rounds=}"; shift;;
        --duration) [ $# -ge 2 ] || usage; duration="$2"; shift 2;;
        --duration=*) duration="${1#--duration=}"; shift;;
        *) usage;;
    esac
done
[[ "$rounds" =~ ^[1-9][0-9]*$ ]] || { echo "tls_h2: --rounds wants a positive integer" >&2; exit 2; }
[[ "$duration" =~ ^[1-9][0-9]*$ ]] || { echo "tls_h2: --duration wants whole seconds > 0" >&2; exit 2; }

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
py=/usr/bin/python3
for tool in nginx h2o h2load openssl taskset curl "$py"; do
    command -v "$tool" >/dev/null 2>&1 || {
        echo "tls_h2: missing $tool (apt-get install -y nginx h2o nghttp2-client openssl util-linux curl python3)" >&2
        exit 1
    }
done
[ "$(nproc)" -ge 2 ] || { echo "tls_h2: the pinned layout needs 2 CPUs" >&2; exit 1; }

out="/tmp/proxy-bench/$(date +%Y%m%d-%H%M%S)-tls-h2"
run="$out/run"
mkdir -p "$run" "$out/raw"

# ------------------------------------------------------------ processes
pids=()            # every process we started, in start order

# Stop one server: SIGTERM, up to 10 s to exit, then SIGKILL; its descendants
# (nginx workers) are collected first and killed too if they outlive it.
stop_pid() {
    local pid="$1" kids=() k i
    mapfile -t kids < <(descendants "$pid")
    kill -TERM "$pid" 2>/dev/null || true
    for i in $(seq 100); do
        kill -0 "$pid" 2>/dev/null || break
        [ "$i" != 100 ] || kill -KILL "$pid" 2>/dev/null || true
        sleep 0.1
    done
    wait "$pid" 2>/dev/null || true
    for k in "${kids[@]}"; do kill -KILL "$k" 2>/dev/null || true; done
}
descendants() {
    local c
    for c in $(pgrep -P "$1" || true); do echo "$c"; descendants "$c"; done
}
cleanup() {
    local i
    for ((i = ${#pids[@]} - 1; i >= 0; i--)); do stop_pid "${pids[i]}"; done
    pids=()
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM HUP

# start CPU LOG argv...: background, pinned; records the PID (taskset
# execs the server, so $! is the server itself).
start() {
    local cpu="$1" log="$2"; shift 2
    taskset -c "$cpu" "$@" >"$log" 2>&1 </dev/null &
    pids+=("$!")
    last_pid=$!
}

# ready = the port accepts connections while the process is still alive
# (polled with a deadline; nothing here waits a fixed time).
wait_port() {
    local name="$1" port="$2" pid="$3" log="$4" deadline=$((SECONDS + 30))
    while :; do
        kill -0 "$pid" 2>/dev/null || { echo "tls_h2: $name exited at start:" >&2; cat "$log" >&2; exit 1; }
        (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return 0
        [ "$SECONDS" -lt "$deadline" ] || { echo "tls_h2: $name not listening on :$port after 30 s" >&2; exit 1; }
        sleep 0.1
    done
}

# the proxy must answer over TLS + HTTP/2 with the origin's body
check_h2() {
    local name="$1" port="$2" got
    got="$(curl --noproxy '*' -sk --http2 --max-time 10 -o "$run/$name.check.body" \
        -w '%{http_code} %{http_version}' "https://127.0.0.1:$port/" || true)"
    if [ "$got" != "200 2" ] || [ "$(cat "$run/$name.check.body")" != hello ]; then
        echo "tls_h2: $name on :$port answered '$got' (want '200 2' and body hello)" >&2
        exit 1
    fi
}

# ------------------------------------------------------------ certificate
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
    -subj /CN=localhost -addext 'subjectAltName=DNS:localhost,IP:127.0.0.1' \
    -keyout "$out/key.pem" -out "$out/cert.pem" 2>"$run/openssl.log"
cert="$out/cert.pem"
key="$out/key.pem"

read -r p_origin p_nginx p_h2o p_tollgate < <("$py" "$here/tls_h2.py" ports 4)

# ------------------------------------------------------------ configs
nginx_common() {   # tag
    mkdir -p "$run/$1-tmp"
    cat <<EOF
worker_processes 1;
daemon off;
master_process on;
user root;
pid $run/$1.pid;
error_log $run/$1.error.log warn;
worker_rlimit_nofile 20000;
events { worker_connections 20000; }
http {
  access_log off;
  keepalive_requests 1000000;
  keepalive_timeout 300s;
  client_body_temp_path $run/$1-tmp/body;
  proxy_temp_path $run/$1-tmp/proxy;
  fastcgi_temp_path $run/$1-tmp/fastcgi;
  uwsgi_temp_path $run/$1-tmp/uwsgi;
  scgi_temp_path $run/$1-tmp/scgi;
EOF
}

{ nginx_common origin; cat <<EOF
  server {
    listen 127.0.0.1:$p_origin;
    location / { default_type text/plain; return 200 "hello\n"; }
  }
}
EOF
} >"$run/origin.nginx.conf"

{ nginx_common nginx; cat <<EOF
  upstream be {
    server 127.0.0.1:$p_origin;
    keepalive 128;
    keepalive_requests 1000000;
    keepalive_timeout 300s;
  }
  server {
    listen 127.0.0.1:$p_nginx ssl http2;
    ssl_certificate $cert;
    ssl_certificate_key $key;
    ssl_protocols TLSv1.2 TLSv1.3;
    location / {
      proxy_pass http://be;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
  }
}
EOF
} >"$run/nginx.conf"

# h2o: proxy_compare.py's h2c config plus ssl; OCSP stapling off (a
# self-signed certificate has no responder; h2o would spawn a fetcher).
cat >"$run/h2o.conf" <<EOF
num-threads: 1
max-connections: 20000
http1-request-timeout: 300
http2-idle-timeout: 300
user: root
error-log: $run/h2o.error.log
listen:
  host: 127.0.0.1
  port: $p_h2o
  ssl:
    certificate-file: $cert
    key-file: $key
    minimum-version: TLSv1.2
    ocsp-update-interval: 0
hosts:
  default:
    paths:
      /:
        proxy.reverse.url: http://127.0.0.1:$p_origin/
        proxy.timeout.keepalive: 300000
EOF

cat >"$run/tollgate.yaml" <<EOF
server:
  listen:
    - address: "127.0.0.1:$p_tollgate"
      tls:
        certificates:
          - { cert: $cert, key: $key }
      protocols: [h2, http/1.1]
  workers: 1
  access_log: { format: off }
  limits: { idle_timeout: 300s }
  shutdown_grace: 2s
upstreams:
  origin:
    servers: ["127.0.0.1:$p_origin"]
    keepalive: { max_idle: 128, idle_timeout: 300s }
    timeouts: { idle: 300s }
routes:
  - match: { path: / }
    upstream: origin
EOF
"$bin" -t -c "$run/tollgate.yaml" >"$run/tollgate.check.log" 2>&1 ||
    { echo "tls_h2: tollgate rejected $run/tollgate.yaml:" >&2; cat "$run/tollgate.check.log" >&2; exit 1; }

# ------------------------------------------------------------ start
start 0 "$run/origin.log" nginx -p "$run" -e "$run/origin.error.log" -c "$run/origin.nginx.conf"
origin_pid=$last_pid
wait_port origin "$p_origin" "$origin_pid" "$run/origin.log"

start 1 "$run/nginx.log" nginx -p "$run" -e "$run/nginx.error.log" -c "$run/nginx.conf"
nginx_pid=$last_pid
start 1 "$run/h2o.log" h2o -c "$run/h2o.conf"
h2o_pid=$last_pid
start 1 "$run/tollgate.log" "$bin" -c "$run/tollgate.yaml"
tollgate_pid=$last_pid
wait_port nginx "$p_nginx" "$nginx_pid" "$run/nginx.log"
wait_port h2o "$p_h2o" "$h2o_pid" "$run/h2o.log"
wait_port tollgate "$p_tollgate" "$tollgate_pid" "$run/tollgate.log"
check_h2 nginx "$p_nginx"
check_h2 h2o "$p_h2o"
check_h2 tollgate "$p_tollgate"

# ------------------------------------------------------------ measure
rev="$(git -C "$here" describe --always --dirty 2>/dev/null || echo '?')"
header="# TLS h2 reverse-proxy benchmark $(date '+%Y-%m-%d %H:%M:%S')

command: \`bench/tls_h2.sh $bin --rounds $rounds --duration $duration\` (tree $rev)

versions: $(nginx -v 2>&1 | head -1); $(h2o --version 2>&1 | head -1); $("$bin" --version 2>&1 | head -1); $(h2load --version 2>&1 | head -1); $(openssl version); kernel $(uname -r); $(nproc) CPUs; load average at start: $(cut -d' ' -f1-3 /proc/loadavg)

layout: origin nginx (1 worker, :$p_origin, HTTP/1.1) and h2load on CPU 0; each proxy (1 worker) on CPU 1, HTTP/1.1 keep-alive to the origin; EC P-256 self-signed certificate. Ports: nginx :$p_nginx, h2o :$p_h2o, tollgate :$p_tollgate. Configs in run/, h2load outputs in raw/.

"
echo "tls_h2: origin :$p_origin, nginx :$p_nginx, h2o :$p_h2o, tollgate :$p_tollgate; results in $out"
# In the background + wait, so that a SIGTERM to this script is acted on at
# once (the trap stops the helper first, which kills its h2load).
"$py" "$here/tls_h2.py" run --out "$out" --rounds "$rounds" --duration "$duration" \
    --origin-pid "$origin_pid" --header "$header" \
    --target "nginx=$p_nginx:$nginx_pid" --target "h2o=$p_h2o:$h2o_pid" \
    --target "tollgate=$p_tollgate:$tollgate_pid" </dev/null &
helper=$!
pids+=("$helper")
rc=0
wait "$helper" || rc=$?
unset 'pids[-1]'
echo "tls_h2: summary: $out/summary.md"
exit "$rc"
