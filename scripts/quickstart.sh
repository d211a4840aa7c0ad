#!/usr/bin/env bash
# quickstart.sh BIN [CONFIG] — the `make run` demo: three demo backends (b1, b2, b3 on
# 127.0.0.1:9101-9103), then BIN -c examples/quickstart.yaml (listening on :8080),
# prints curl lines to try, and stays in the foreground. Ctrl-C (or any exit)
# stops everything it started, by PID.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bin="${1:-$root/build/tollgate}"
cfg="${2:-$root/examples/quickstart.yaml}"
backend="$root/tests/integration/backend.py"
py=/usr/bin/python3
port=8080

die() { echo "quickstart: $*" >&2; exit 1; }
[ -x "$bin" ] || die "no tollgate binary at $bin (run: make build)"
[ -f "$cfg" ] || die "missing $cfg"
[ -x "$py" ] || die "missing $py (apt-get install python3)"
command -v curl >/dev/null || die "missing curl (apt-get install curl)"

pids=()
cleanup() {
    trap - EXIT INT TERM
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
}
trap cleanup EXIT
trap 'echo; echo "stopping"; exit 0' INT TERM

# true once something answers HTTP on 127.0.0.1:$1 (any status)
answers() { curl --noproxy '*' -s -o /dev/null --max-time 1 "http://127.0.0.1:$1$2"; }

# wait_for PORT PATH PID WHAT: poll until it answers, the process dies, or 10 s pass
wait_for() {
    local i
    for i in $(seq 100); do
        answers "$1" "$2" && return 0
        kill -0 "$3" 2>/dev/null || die "$4 exited during start-up"
        sleep 0.1
    done
    die "$4 did not answer on port $1 within 10 s"
}

for p in 9101 9102 9103 "$port"; do
    answers "$p" / && die "port $p is already in use; stop what listens there first"
done

for i in 1 2 3; do
    "$py" "$backend" --port "910$i" --name "b$i" >/dev/null &
    pids+=($!)
done
for i in 1 2 3; do wait_for "910$i" /_stats "${pids[$((i - 1))]}" "backend b$i"; done

"$bin" -c "$cfg" &
gw=$!
pids+=("$gw")
wait_for "$port" /hello "$gw" "tollgate"

cat <<EOF

tollgate is listening on http://localhost:$port (config: ${cfg#$root/})
demo backends b1, b2, b3 on 127.0.0.1:9101-9103; access log below.

Try, in another terminal:

  # a direct response from the gateway (route /hello)
  curl -i localhost:$port/hello

  # proxied to the "demo" upstream, /api stripped: the backend echoes what it got
  curl -s localhost:$port/api/echo/users?id=7

  # load balancing: weighted round robin over b1, b2, b3 (weights in the config)
  for i in 1 2 3 4; do curl -s localhost:$port/api/echo | grep -o '"name":"[^"]*"'; done

  # headers the backend received (X-Forwarded-For, X-Request-Id, Via, ...)
  curl -s localhost:$port/api/echo -H 'X-Request-Id: demo-1'

  # no route: a JSON error
  curl -i localhost:$port/nope

Ctrl-C stops tollgate and the backends.

EOF

set +e
wait "$gw"
rc=$?
set -e
echo "tollgate exited ($rc)"
exit "$rc"
