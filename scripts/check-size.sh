#!/usr/bin/env bash
# Flags source files over 800 lines and functions over 80 lines (style.md §5).
set -uo pipefail
cd "$(dirname "$0")/.."
bad=0
for f in $(git ls-files 'src/*.c' 'src/*.h'); do
  n=$(wc -l < "$f")
  if [ "$n" -gt 800 ]; then echo "$f: $n lines (max 800)"; bad=1; fi
  # A function body starts at a line "{" in column 0 and ends at "}" in column 0.
  awk -v f="$f" '/^\{/ { start = NR } /^\}/ && start { len = NR - start; if (len > 80) { printf "%s:%d: function of %d lines (max 80)\n", f, start, len; bad = 1 } start = 0 } END { exit bad }' "$f" || bad=1
done
[ $bad -eq 0 ] && echo "size check: ok"
exit $bad
