#!/usr/bin/env bash
# bench/balance.sh BIN [proxy-compare args...] — balancer cost, in ONE run.
#
# Starts three tollgate instances that differ only in `balance:` (round_robin,
# least_conn, p2c), each with one worker, pinned to CPU 1, and two servers that
# both reach the shared benchmark's nginx origin (127.0.0.1:18080 and the same
# address spelled 127.1:18080, so the balancer really chooses). The shared
# harness (../shared/bench/proxy-compare.sh) then loads them interleaved,
# round by round, with nginx as the anchor; ratios within the run compare the
# balancers (docs/performance.md).
#   bench/balance.sh build/tollgate --rounds 5
set -euo pipefail

[ $# -ge 1 ] || { echo "usage: bench/balance.sh path/to/tollgate [proxy-compare.sh args...]" >&2; exit 2; }
bin="$(realpath "$1")"; shift
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
shared="$here/../../shared/bench"
[ -x "$shared/proxy-compare.sh" ] || { echo "bench: $shared/proxy-compare.sh not found" >&2; exit 1; }
out="/tmp/proxy-bench/$(date +%Y%m%d-%H%M%S)-balance"
mkdir -p "$out"

pids=()
stop() {
    for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
}
trap stop EXIT
trap 'exit 130' INT TERM

extras=()
port=9100
for balance in round_robin least_conn p2c; do
    cfg="$out/tollgate-$balance.yaml"
    cat >"$cfg" <<EOF
server:
  listen: ["127.0.0.1:$port"]
  workers: 1
  access_log: { format: off }
  limits: { idle_timeout: 300s }
upstreams:
  origin:
    servers: ["127.0.0.1:18080", "127.1:18080"]
    balance: $balance
    keepalive: { max_idle: 128, idle_timeout: 300s }
routes:
  - match: { path: / }
    upstream: origin
EOF
    "$bin" -t -c "$cfg" >/dev/null
    taskset -c 1 "$bin" -c "$cfg" >"$out/tollgate-$balance.log" 2>&1 &
    pids+=("$!")
    for i in $(seq 100); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then break; fi
        [ "$i" = 100 ] && { echo "bench: tollgate ($balance) not listening" >&2; exit 1; }
        sleep 0.1
    done
    extras+=(--extra "tg-$balance=http://127.0.0.1:$port/" --extra-pid "tg-$balance=${pids[-1]}")
    port=$((port + 2))
done

"$shared/proxy-compare.sh" --mode h1 --proxies nginx --out "$out" "${extras[@]}" "$@"
echo "bench: summary: $out/summary.md"
