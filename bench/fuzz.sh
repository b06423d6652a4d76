#!/bin/bash
# bench/fuzz.sh [CASES]
#
# The property tests with many more cases than CI runs: tests/properties.rs
# (jail window vs a naive model with restarts, escalation, config reader,
# durations, journal_match, ignoreip ranges, addresses, dates) and the
# properties inside the library (file tailing model, address lists).
# CASES (default 20000) is PROPTEST_CASES per property. Release build (its
# own target dir stays ./target). A failure prints the shrunk case; add it
# as a regular regression test next to the fix. Run from the repository
# root. Prints per-suite case counts and wall time.
set -euo pipefail
CASES=${1:-20000}
export PROPTEST_CASES=$CASES
now() { date +%s.%N; }
run() {
  local name=$1; shift
  local t0 t1 out
  t0=$(now)
  out=$(nice -n 10 cargo test --quiet --release "$@" 2>&1) || { echo "$out"; echo "FAILED: $name" >&2; exit 1; }
  t1=$(now)
  local n
  n=$(echo "$out" | awk '/test result: ok/ { s += $4 } END { print s + 0 }')
  printf '%-28s %6d properties x %d cases  %8.1f s\n' "$name" "$n" "$CASES" "$(awk "BEGIN { print $t1 - $t0 }")"
}
echo "building (release)..." >&2
cargo build --quiet --release --tests
run "tests/properties.rs" --test properties
# The library's own property tests (the filter's tailing model, addr.rs).
run "lib: file tailing model" --lib -- source::file::model_tests::every_complete_line
run "lib: address lists" --lib -- addr::tests::lookups_agree
echo "all properties held"
