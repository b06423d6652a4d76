#!/bin/sh
# A flood of unprivileged reading over the system bus (issue #12), 60 s by
# default: 200,000 bans in force, the user nobody hammering every read method
# from 8 connections x 5 threads (tests/bus_support/flood.py), a failure
# written to a jail's log half-way. Prints the daemon's RSS before / peak /
# after (and MemoryMax), calls served, refused and unanswered by method,
# refusal lines logged, the daemon's threads, and the ban latency.
#
#   bench/dbus-flood.sh [SECONDS]        (root; default 60)
#
# It is tests/dbus_flood.rs (same setup, same asserts) with a longer flood,
# built in release mode; CI runs the test with a 20 s flood.
# JW_FLOOD_ONLY=ListBansPaged,History (labels of flood.py) floods with those only.
set -eu
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "needs root (setpriv to nobody, the bus policy)" >&2; exit 1; }
echo "machine: $(nproc) cores, $(uname -r), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
OUT=$(mktemp /tmp/jw-bench-flood.XXXXXX)
trap 'rm -f "$OUT"' EXIT INT TERM
status=0
JW_FLOOD_SECS=${1:-60} cargo test --release --quiet --test dbus_flood -- --nocapture >"$OUT" 2>&1 || status=$?
grep -v '^running \|^test result\|^$\|control: refused\|^ *[0-9]*: \|^ *at ' "$OUT"
exit $status
