#!/bin/bash
# bench/daemon-bans.sh [BANS] [BIG]
#
# The daemon with many active bans, nftables backend, in a network namespace
# of its own (never the host's ruleset):
#   - restart with BANS (default 100,000) active bans: time from exec to
#     READY, while sampling the kernel set: no element may ever be missing;
#   - BIG (default 1,000,000) active bans held: the daemon's RSS.
# Bans are written into the state database directly (as a long-running
# daemon would have accumulated them). Needs root. Run from the repository
# root.
set -euo pipefail
BANS=${1:-100000}
BIG=${2:-1000000}
W=$(mktemp -d "${TMPDIR:-/tmp}/jw-bench-bans.XXXXXX")
NS=jwbench-$$
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  ip netns del "$NS" 2>/dev/null || true
  rm -rf "$W"
}
trap cleanup EXIT INT TERM
calc() { awk "BEGIN { printf \"%.3f\", $1 }"; }
now() { date +%s.%N; }

cargo build --quiet --release --examples
cargo build --quiet --release
JW=$PWD/target/release/jailwarden
ip netns add "$NS"
mkdir -p "$W/journal" "$W/state"
cat > "$W/jw.toml" <<EOF
[daemon]
backend = "nftables"
journal_directory = "$W/journal"
filter_dirs = ["$PWD/config/filters"]
dbus = false
socket = "$W/control.sock"
[jails.sshd]
journal_match = ["_SYSTEMD_UNIT=ssh.service"]
bantime = "1d"
EOF

start() { # sets DPID and T (seconds from exec to the "ready" log line)
  : > "$W/err"
  local t0; t0=$(now)
  ip netns exec "$NS" "$JW" daemon --config "$W/jw.toml" --state-dir "$W/state" 2>"$W/err" &
  DPID=$!; PIDS+=("$DPID")
  until grep -q " ready: " "$W/err"; do
    kill -0 "$DPID" 2>/dev/null || { cat "$W/err" >&2; exit 1; }
    sleep 0.005
  done
  T=$(calc "$(now) - $t0")
}
stop() { kill "$DPID"; wait "$DPID" 2>/dev/null || true; }
count() { ip netns exec "$NS" nft -j list set inet jailwarden sshd-v4 2>/dev/null | python3 -c '
import json, sys
try:
    d = json.load(sys.stdin)
    print(sum(len(o["set"].get("elem", [])) for o in d["nftables"] if "set" in o))
except Exception:
    print(0)'; }
fill() { # N: active bans in the store, expiring in a day
  python3 - "$W/state/jailwarden.sqlite3" "$1" <<'PY'
import sqlite3, sys, time
db = sqlite3.connect(sys.argv[1])
n = int(sys.argv[2])
now = int(time.time() * 1e6)
db.execute("delete from bans")
db.executemany("insert into bans (jail, net, banned_at, expires_at, failures) values ('sshd', ?, ?, ?, 5)",
               ((f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}/32", now, now + 86_400_000_000) for i in range(n)))
db.commit()
PY
}

echo "first start (creates the state)..." >&2
start; stop
fill "$BANS"
echo "start with $BANS bans in the store (installs them)..." >&2
start; T_FIRST=$T
N_FIRST=$(count)
echo "restart with $BANS bans, sampling the kernel set..." >&2
# 1,000 of the bans, looked up by key in a loop during the whole restart
# (listing 100,000 elements would take nft seconds per look).
ip netns exec "$NS" target/release/examples/nft_bench probe "$BANS" 4 sshd > "$W/probe" &
SAMPLER=$!; PIDS+=("$SAMPLER")
sleep 0.5
stop
start; T_RESTART=$T
wait "$SAMPLER" || true
PROBES=$(awk '$1 == "probes" {print $2}' "$W/probe")
SHORT=$(awk '$1 == "short" {print $2}' "$W/probe")
FEWEST=$(awk '$1 == "fewest" {print $2}' "$W/probe")
N_AFTER=$(count)
stop

echo "holding $BIG bans..." >&2
fill "$BIG"
start; T_BIG=$T
sleep 2
RSS=$(awk '/VmRSS/ {print $2}' "/proc/$DPID/status")
ANON=$(awk '/RssAnon/ {print $2}' "/proc/$DPID/status")
stop

echo
echo "nftables backend, network namespace of its own; $(nproc) cores, load $(cut -d' ' -f1 /proc/loadavg)"
echo "start installing $BANS bans: READY in $T_FIRST s; kernel set holds $N_FIRST"
echo "restart with $BANS bans: READY in $T_RESTART s; during the stop and restart, $PROBES lookups of 1,000 sampled elements: $SHORT came up short (fewest found: $FEWEST); after: $N_AFTER elements"
echo "holding $BIG bans: READY in $T_BIG s; RSS $RSS KiB (heap $ANON KiB)"
