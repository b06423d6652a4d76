#!/bin/bash
# bench/filters.sh [LINES]
#
# Every shipped filter over the same LINES (default 100,000) lines of mixed
# noise: an sshd-heavy auth.log, Apache access and error logs, and every
# line of the corpus (so each filter meets lines it matches). Prints the
# ten slowest filters in lines per CPU-second (CPU time, so a busy machine
# does not skew the comparison; compile time measured on an empty input is
# subtracted) and each one's slowdown against sshd. No filter may be more
# than 5x slower than sshd. Run from the repository root.
set -euo pipefail
LINES=${1:-100000}
W=$(mktemp -d "${TMPDIR:-/tmp}/jw-bench-filters.XXXXXX")
trap 'rm -rf "$W"' EXIT INT TERM

cargo build --quiet --release
JW=$PWD/target/release/jailwarden
F=$PWD/config/filters
{
  python3 bench/gen-logs.py auth $((LINES * 4 / 10)) 1
  python3 bench/gen-logs.py apache $((LINES * 2 / 10)) 2
  python3 bench/gen-logs.py apache-error $((LINES * 2 / 10)) 3
  find tests/corpus -maxdepth 1 -type f ! -name PROVENANCE.md -exec cat {} + | grep -v -e '^#' -e '^$'
} | python3 -c '
import random, sys
lines = sys.stdin.read().splitlines()
random.Random(7).shuffle(lines)
n = int(sys.argv[1])
sys.stdout.write("\n".join((lines * (n // len(lines) + 1))[:n]) + "\n")' "$LINES" > "$W/mixed.log"
: > "$W/empty.log"

cpu() { # FILTER LOG -> CPU seconds (user + sys), one worker thread
  /usr/bin/time -f "%U %S" -o "$W/t" "$JW" test-filter --filter-dir "$F" "$1" "$2" > /dev/null 2>&1 || true
  awk '{ printf "%.4f", $1 + $2 }' "$W/t"
}

: > "$W/results"
for f in "$F"/*.toml; do
  name=$(basename "$f" .toml)
  [ "$name" = common ] && continue
  base=$(cpu "$name" "$W/empty.log")
  best=""
  for _ in 1 2 3; do
    t=$(cpu "$name" "$W/mixed.log")
    best=$(awk -v a="$t" -v b="$best" 'BEGIN { if (b == "" || a < b) print a; else print b }')
  done
  net=$(awk -v t="$best" -v b="$base" 'BEGIN { d = t - b; if (d < 0.001) d = 0.001; printf "%.4f", d }')
  echo "$name $net" >> "$W/results"
done
SSHD=$(awk '$1 == "sshd" {print $2}' "$W/results")
echo "machine: $(nproc) cores; $LINES mixed lines; $(wc -l < "$W/results") filters"
printf "%-24s %10s %14s %12s\n" "filter" "cpu s" "lines/cpu-s" "vs sshd"
sort -k2 -rn "$W/results" | head -10 | while read -r name t; do
  printf "%-24s %10s %14.0f %11.2fx\n" "$name" "$t" "$(awk -v n="$LINES" -v t="$t" 'BEGIN{print n/t}')" \
    "$(awk -v t="$t" -v s="$SSHD" 'BEGIN{print t/s}')"
done
printf "%-24s %10s %14.0f %11s\n" "sshd (reference)" "$SSHD" "$(awk -v n="$LINES" -v t="$SSHD" 'BEGIN{print n/t}')" "1.00x"
WORST=$(sort -k2 -rn "$W/results" | head -1)
echo "slowest: $WORST; limit 5x sshd: $(awk -v w="${WORST#* }" -v s="$SSHD" 'BEGIN { print (w / s <= 5) ? "met" : "NOT met" }')"
