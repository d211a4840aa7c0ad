#!/usr/bin/env bash
# Builds the libFuzzer harnesses with clang (ASan + UBSan) and runs each for
# SECONDS (default 60) on its corpus in tests/fuzz/corpus/<target>/. New
# inputs go to build-fuzz/corpus/<target>/ so the committed seeds stay small;
# crashes, leaks, UB and hangs (> 25 s on one input) are written to tests/fuzz/
# and fail the run (exit 1) after every target has had its turn. Each target's
# execution count is printed.
set -euo pipefail
secs="${1:-60}"
cd "$(dirname "$0")/.."
CC=clang cmake -S . -B build-fuzz -DTG_FUZZ=ON -DTG_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug >/dev/null
cmake --build build-fuzz -j "$(nproc)" >/dev/null
status=0
for bin in build-fuzz/fuzz_*; do
  [ -x "$bin" ] || continue
  target=$(basename "$bin"); target=${target#fuzz_}
  mkdir -p "build-fuzz/corpus/$target"
  echo "== fuzz $target for ${secs}s"
  if ! "$bin" -max_total_time="$secs" -timeout=25 -print_final_stats=1 -artifact_prefix=tests/fuzz/ \
       "build-fuzz/corpus/$target" "tests/fuzz/corpus/$target" 2>"build-fuzz/$target.log"; then
    echo "   FAILED: see build-fuzz/$target.log"; status=1
    grep -aE "^==[0-9]+==ERROR|runtime error:|^SUMMARY|Test unit written" "build-fuzz/$target.log" \
      | head -5 | sed 's/^/   /' || true
  fi
  # No stats after a crash: the grep may find nothing, which must not end the loop.
  grep -aE "stat::number_of_executed_units|stat::peak_rss_mb" "build-fuzz/$target.log" \
    | sed 's/^/   /' || true
done
exit $status
