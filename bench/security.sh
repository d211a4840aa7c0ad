#!/usr/bin/env bash
# bench/security.sh BIN [ROUNDS] [SECONDS] — the cost of authentication on the
# proxy path (docs/performance.md, "Authentication cost").
#
# One tollgate worker pinned on CPU 1, proxying to a local nginx origin that
# answers "ok" (keep-alive both sides, access log off); wrk -t1 -c64 pinned on
# CPU 0. Config variants, interleaved round by round (the start rotates):
#   base        no auth
#   api_key     auth.api_key, a sha256: key (X-API-Key on every request)
#   jwt         auth.jwt RS256 from a JWKS file, the same token every time
#               (the per-worker verified-token cache answers)
#   jwt_nocache RS256 with 8192 distinct tokens in rotation: every request
#               pays an RSA-2048 signature verification
# Reported per variant: req/s (median) and the gateway's CPU per request
# (utime+stime from /proc/PID/stat over the run / requests), which stays
# meaningful on a busy machine where req/s does not.
set -euo pipefail
[ $# -ge 1 ] || { echo "usage: bench/security.sh path/to/tollgate [rounds] [seconds]" >&2; exit 2; }
bin="$(realpath "$1")"; rounds="${2:-3}"; secs="${3:-5}"
for t in wrk nginx taskset curl; do command -v "$t" >/dev/null || { echo "bench: needs $t" >&2; exit 1; }; done
[ "$(nproc)" -ge 2 ] || { echo "bench: needs 2 CPUs" >&2; exit 1; }

dir="$(mktemp -d /tmp/tollgate-secbench.XXXXXX)"
origin_port=18181 gw_port=9100
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

# Keys, JWKS and tokens (python3-jwt, python3-cryptography).
/usr/bin/python3 - "$dir" <<'EOF'
import json, sys, time, jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm
d = sys.argv[1]
k = rsa.generate_private_key(public_exponent=65537, key_size=2048)
jwk = json.loads(RSAAlgorithm.to_jwk(k.public_key())); jwk.update(kid='k1', use='sig')
open(f'{d}/jwks.json', 'w').write(json.dumps({'keys': [jwk]}))
exp = int(time.time()) + 3600
mint = lambda i: jwt.encode({'sub': f'u{i}', 'exp': exp, 'jti': str(i)}, k, algorithm='RS256', headers={'kid': 'k1'})
open(f'{d}/token', 'w').write(mint(0))
with open(f'{d}/tokens.lua', 'w') as f:
    f.write('local t = {\n' + ',\n'.join('"%s"' % mint(i) for i in range(8192)) + '\n}\n')
    f.write('local i = 0\nrequest = function()\n  i = i % #t + 1\n'
            '  return wrk.format("GET", "/", { ["Authorization"] = "Bearer " .. t[i] })\nend\n')
EOF
key="bench-key-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"
keyhash="$(printf %s "$key" | sha256sum | cut -d' ' -f1)"

cat >"$dir/nginx.conf" <<EOF
worker_processes 1;
daemon off;
pid $dir/nginx.pid;
error_log $dir/nginx.err;
events { worker_connections 1024; }
http {
    access_log off;
    keepalive_requests 1000000;
    server { listen 127.0.0.1:$origin_port; location / { return 200 "ok\n"; } }
}
EOF
taskset -c 0 nginx -c "$dir/nginx.conf" -e "$dir/nginx.err" &
pids+=($!)

config() { # $1 = variant
    local auth=""
    case "$1" in
        api_key) auth="auth: { api_key: {} }" ;;
        jwt|jwt_nocache) auth="auth: { jwt: { jwks: $dir/jwks.json, algorithms: [RS256] } }" ;;
    esac
    cat <<EOF
server: { listen: ["127.0.0.1:$gw_port"], workers: 1, access_log: { format: off }, limits: { idle_timeout: 300s } }
consumers: [ { name: bench, api_keys: ["sha256:$keyhash"] } ]
upstreams:
  origin: { servers: ["127.0.0.1:$origin_port"], keepalive: { max_idle: 128, idle_timeout: 300s } }
routes:
  - upstream: origin
    $auth
EOF
}

wait_ready() { # $1 = url, $2.. = curl args
    local url="$1"; shift
    for _ in $(seq 200); do
        [ "$(curl --noproxy '*' -s -o /dev/null -w '%{http_code}' "$@" "$url")" = 200 ] && return 0
        sleep 0.05
    done
    echo "bench: $url not ready" >&2; return 1
}
wait_ready "http://127.0.0.1:$origin_port/"

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

run_variant() { # $1 = variant → "req/s us_per_req"
    local v="$1" hdr=() wargs=()
    config "$v" >"$dir/$v.yaml"
    "$bin" -t -c "$dir/$v.yaml" >/dev/null
    taskset -c 1 "$bin" -c "$dir/$v.yaml" >"$dir/$v.log" 2>&1 &
    local gp=$!
    case "$v" in
        api_key) hdr=(-H "X-API-Key: $key") ;;
        jwt) hdr=(-H "Authorization: Bearer $(cat "$dir/token")") ;;
        jwt_nocache) wargs=(-s "$dir/tokens.lua"); hdr=(-H "Authorization: Bearer $(cat "$dir/token")") ;;
    esac
    wait_ready "http://127.0.0.1:$gw_port/" "${hdr[@]}"
    # refused without the credential (so the variant really authenticates)
    if [ "$v" != base ]; then
        [ "$(curl --noproxy '*' -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$gw_port/")" = 401 ] ||
            { echo "bench: $v does not authenticate" >&2; exit 1; }
    fi
    local t0; t0="$(cpu_ticks "$gp")"
    local out; out="$(taskset -c 0 wrk -t1 -c64 -d"${secs}s" "${wargs[@]}" "${hdr[@]}" "http://127.0.0.1:$gw_port/")"
    local t1; t1="$(cpu_ticks "$gp")"
    kill "$gp"; wait "$gp" 2>/dev/null || true
    if grep -q "Non-2xx" <<<"$out"; then echo "bench: $v had non-2xx answers:" >&2; echo "$out" >&2; exit 1; fi
    local reqs rps hz
    reqs="$(awk '/requests in/ {print $1}' <<<"$out")"
    rps="$(awk '/Requests\/sec/ {print $2}' <<<"$out")"
    hz="$(getconf CLK_TCK)"
    awk -v r="$reqs" -v s="$rps" -v a="$t0" -v b="$t1" -v hz="$hz" \
        'BEGIN { printf "%.0f %.2f\n", s, (b - a) / hz * 1e6 / r }'
}

variants=(base api_key jwt jwt_nocache)
for ((r = 0; r < rounds; r++)); do
    for ((i = 0; i < ${#variants[@]}; i++)); do
        v="${variants[$(( (i + r) % ${#variants[@]} ))]}"
        res="$(run_variant "$v")"
        echo "round $((r + 1)) $v $res" | tee -a "$dir/results"
    done
done

echo
echo "| variant | req/s (median) | gateway CPU µs/req (median) | CPU vs base |"
echo "|---|---:|---:|---:|"
median() { sort -n | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }
base_cpu="$(awk '$3 == "base" {print $5}' "$dir/results" | median)"
for v in "${variants[@]}"; do
    rps="$(awk -v v="$v" '$3 == v {print $4}' "$dir/results" | median)"
    cpu="$(awk -v v="$v" '$3 == v {print $5}' "$dir/results" | median)"
    awk -v v="$v" -v r="$rps" -v c="$cpu" -v b="$base_cpu" \
        'BEGIN { printf "| %s | %d | %.2f | %+.1f%% |\n", v, r, c, (c / b - 1) * 100 }'
done
echo "(results: $dir/results)"
