#!/bin/bash
# bench/idle.sh [SECONDS] [EVERY]
#
# Idle memory of jailwarden with the shipped config (config/jailwarden.toml:
# one sshd jail on the journal, nftables) beside fail2ban-rs 1.5.4's daemon
# with the equivalent sshd jail (journal backend, a `true` script backend),
# in one run. Both run in one private network namespace (their own
# nftables) and the mount namespace of a private journald, so nothing on
# the host changes. For SECONDS (default 3600) both see the same periodic
# work: every EVERY seconds (default 60, at least 60) a burst of sshd
# failures from 30 new addresses (bans, which expire after the shipped 10
# minutes, and their unbans). RSS (and its heap part, RssAnon) is sampled
# 5 s after each burst ("busy") and just before the next ("idle", the
# steady figure), side by side, with jailwarden's RSS split by mapping at
# the end.
# Needs root, python3-systemd; fail2ban-rs is installed by the script
# (cargo install --locked) into ~/.cache/jailwarden-bench. Run from the
# repository root.
set -euo pipefail
DURATION=${1:-3600}
EVERY=${2:-60}
W=$(mktemp -d "${TMPDIR:-/tmp}/jw-bench-idle.XXXXXX")
NS=jw-idle-$$
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  ip netns del "$NS" 2>/dev/null || true
  rm -rf "$W"
}
trap cleanup EXIT INT TERM
rss() { awk '/VmRSS/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }
anon() { awk '/RssAnon/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }

CACHE=${XDG_CACHE_HOME:-$HOME/.cache}/jailwarden-bench
F2B_RS=$CACHE/bin/fail2ban-rs
if [ ! -x "$F2B_RS" ]; then
  echo "installing fail2ban-rs 1.5.4 into $CACHE..." >&2
  cargo install fail2ban-rs --version 1.5.4 --locked --quiet --root "$CACHE"
fi
echo "building (release)..." >&2
cargo build --quiet --release
JW=$PWD/target/release/jailwarden

ip netns add "$NS"
JPID=$(sh tests/support/private-journald.sh "$W/journal"); PIDS+=("$JPID")
# Run a command in the network namespace and the journald's mount namespace.
inside() { ip netns exec "$NS" nsenter -t "$JPID" -m "$@"; }

# The shipped configuration as it is, but for what a bench run must not
# share with the host: no system bus, a private socket, the checkout's filters.
sed -e "s|^\[daemon\]|[daemon]\ndbus = false\nsocket = \"$W/jw.sock\"\nfilter_dirs = [\"$PWD/config/filters\"]|" \
  config/jailwarden.toml > "$W/jailwarden.toml"
mkdir -p "$W/jw-state" "$W/f2b"
cat > "$W/f2b.toml" <<EOF
[global]
state_file = "$W/f2b/state.bin"
socket_path = "$W/f2b/fail2ban-rs.sock"
[jail.sshd]
enabled = true
log_backend = "systemd"
journalmatch = ["_SYSTEMD_UNIT=ssh.service", "_SYSTEMD_UNIT=sshd.service"]
date_format = "syslog"
filter = [
    'Failed password for .* from <HOST> port \d+',
    'Invalid user .* from <HOST> port \d+',
]
port = ["22"]
max_retry = 3
find_time = "10m"
ban_time = "10m"
ignoreip = ["127.0.0.1/8", "::1/128"]
[jail.sshd.backend.script]
ban_cmd = "true"
unban_cmd = "true"
EOF

(exec ip netns exec "$NS" nsenter -t "$JPID" -m "$JW" daemon --config "$W/jailwarden.toml" --state-dir "$W/jw-state" 2>"$W/jw.err") &
JW_PID=$!; PIDS+=("$JW_PID")
(exec ip netns exec "$NS" nsenter -t "$JPID" -m "$F2B_RS" run -c "$W/f2b.toml" >"$W/f2b.err" 2>&1) &
F2B_PID=$!; PIDS+=("$F2B_PID")
# Its log goes to the private journal: ready is when `status` answers.
for _ in $(seq 100); do ip netns exec "$NS" "$JW" status --socket "$W/jw.sock" >/dev/null 2>&1 && break; sleep 0.1; done
sleep 2
for p in "$JW_PID" "$F2B_PID"; do
  case "$(cat "/proc/$p/comm" 2>/dev/null)" in jailwarden|fail2ban-rs) ;; *) echo "PID $p is not a daemon" >&2; exit 1;; esac
  kill -0 "$p" 2>/dev/null || { echo "a daemon did not start:" >&2; cat "$W/jw.err" "$W/f2b.err" >&2; exit 1; }
done

# A burst of sshd failures, sent from a cgroup named ssh.service (inside a
# slice of this run's own, so no host unit is touched): journald gives the
# entries _SYSTEMD_UNIT=ssh.service from the sender's cgroup, as for sshd.
CG_ROOT=/sys/fs/cgroup; [ -e /sys/fs/cgroup/unified/cgroup.procs ] && CG_ROOT=/sys/fs/cgroup/unified
CG=$CG_ROOT/jw-idle-$$.slice/ssh.service
mkdir -p "$CG"
trap 'cleanup; rmdir "$CG" "$(dirname "$CG")" 2>/dev/null || true' EXIT INT TERM
burst() { # N: addresses 203.0.N.1-30, 3 failures each
  sh -c 'echo $$ > "$1/cgroup.procs" && shift && exec "$@"' sh "$CG" \
    nsenter -t "$JPID" -m /usr/bin/python3 - "$1" <<'PY'
import sys
from systemd import journal
n = int(sys.argv[1]) % 250
for a in range(1, 31):
    for _ in range(3):
        journal.send(f"Failed password for root from 203.0.{n}.{a} port 2222 ssh2",
                     SYSLOG_IDENTIFIER="sshd", SYSLOG_PID="4242")
PY
}

# Each burst is followed by two samples: 5 s after it (the daemons have
# just worked) and 55 s after it (idle again), the latter the steady figure.
printf "%8s %6s %14s %14s %14s %14s\n" "time s" "" "jailwarden" "(heap)" "fail2ban-rs" "(heap)"
sample() { printf "%8s %6s %11s KiB %10s KiB %11s KiB %10s KiB\n" "$1" "$2" "$(rss "$JW_PID")" "$(anon "$JW_PID")" "$(rss "$F2B_PID")" "$(anon "$F2B_PID")"; }
sample 0 start
begin=$(date +%s); i=0
while [ $(( $(date +%s) - begin + EVERY )) -le "$DURATION" ]; do
  t0=$(date +%s)
  burst "$i"; i=$((i + 1))
  sleep 5; sample "$(( $(date +%s) - begin ))" busy
  sleep $(( EVERY - 5 - ($(date +%s) - t0) > 0 ? EVERY - 5 - ($(date +%s) - t0) : 0 ))
  sample "$(( $(date +%s) - begin ))" idle
done
JW_RSS=$(rss "$JW_PID"); F2B_RSS=$(rss "$F2B_PID")
echo
echo "after ${DURATION} s: jailwarden $JW_RSS KiB, fail2ban-rs $F2B_RSS KiB (ratio $(awk "BEGIN { printf \"%.2f\", $JW_RSS / $F2B_RSS }"))"
echo "jailwarden's RSS by mapping (KiB):"
awk -v exe="$(readlink "/proc/$JW_PID/exe")" '
  /^[0-9a-f]+-[0-9a-f]+ / { name = ($6 == "" ? "[anon]" : $6); if (name == exe) name = "jailwarden (binary)"; next }
  /^Rss:/ { rss[name] += $2 }
  END { for (n in rss) if (rss[n] > 0) printf "  %8d  %s\n", rss[n], n }' "/proc/$JW_PID/smaps" | sort -rn | head -12
