#!/usr/bin/env bash
# Installs the Debian packages tollgate needs to build, test and run (and, with
# --bench, to benchmark). Idempotent: only missing packages are installed.
# Not root: prints the exact apt-get line and exits 1.
set -euo pipefail

build_pkgs=(build-essential cmake pkg-config clang libclang-rt-14-dev
            libuv1-dev libyaml-dev libpcre2-dev libjansson-dev libssl-dev libnghttp2-dev check
            libhiredis-dev  # hiredis: async Redis client for `store: redis` rate limits
            libcrypt-dev)   # crypt_r for Basic auth password hashes (bcrypt, sha-crypt, yescrypt)
test_pkgs=(curl python3 python3-pytest python3-httpx python3-h2 openssl
           redis-server  # the rate-limit tests start their own redis-server
           python3-jwt python3-cryptography apache2-utils  # security tests: JWTs, keys, htpasswd
           python3-grpcio python3-websockets)  # gRPC and WebSocket peers (test_grpc, test_websocket)
bench_pkgs=(nginx haproxy wrk nghttp2-client
            h2o)  # the h2c and TLS h2 comparisons (issue 4) are against nginx and h2o

want=("${build_pkgs[@]}" "${test_pkgs[@]}")
[ "${1:-}" = "--bench" ] && want+=("${bench_pkgs[@]}")

missing=()
for p in "${want[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

line="apt-get install -y --no-install-recommends ${missing[*]}"
if [ "$(id -u)" -ne 0 ]; then
  echo "tollgate needs these Debian packages; run as root:" >&2
  echo "  apt-get update && $line" >&2
  exit 1
fi
echo "installing: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# shellcheck disable=SC2086
$line -qq
# Debian starts nginx/haproxy/h2o/redis services on install; tests and benches start their own.
for svc in nginx haproxy h2o redis-server; do
  if command -v systemctl >/dev/null 2>&1; then systemctl stop "$svc" 2>/dev/null || true; fi
  service "$svc" stop >/dev/null 2>&1 || true
done
