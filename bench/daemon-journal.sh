#!/bin/bash
# bench/daemon-journal.sh [ENTRIES]
#
# The daemon consuming a journal backlog, side by side with the ceiling
# (journalctl -o cat on the same matching entries) and Fail2ban's systemd
# backend (fail2ban-regex over the same journal), in one run; then the
# latency from an entry being written to the ban decision (p50/p99 over
# 1,000 bans, live, with a private journald), and the daemon's idle RSS
# with the shipped sshd jail.
#
# The journal: ENTRIES (default 1,000,000) built with systemd-journal-remote,
# 90% from other units, 10% sshd failures (_SYSTEMD_UNIT=ssh.service) from
# 25,000 addresses, timestamps in the last minutes (so a first start, which
# reads back one findtime, reads them all). Needs root (private journald in a
# mount namespace), fail2ban, systemd-journal-remote, python3-systemd.
# Run from the repository root.
set -euo pipefail
N=${1:-1000000}
W=$(mktemp -d "${TMPDIR:-/tmp}/jw-bench-daemon.XXXXXX")
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$W"
}
trap cleanup EXIT INT TERM
calc() { awk "BEGIN { printf \"%.3f\", $1 }"; }
now() { date +%s.%N; }
rss() { awk '/VmRSS/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }

echo "building (release)..." >&2
cargo build --quiet --release
JW=$PWD/target/release/jailwarden
mkdir -p "$W/journal" "$W/state"

echo "generating $N entries..." >&2
/usr/bin/python3 - "$N" <<'PY' | /lib/systemd/systemd-journal-remote -o "$W/journal/remote.journal" - 2>/dev/null
import sys, time
n = int(sys.argv[1])
w = sys.stdout.write
start = int(time.time() * 1e6) - n * 100 - 5_000_000
boot = "0123456789abcdef0123456789abcdef"
others = [
    ("cron.service", "CRON", "(root) CMD (command -v debian-sa1 > /dev/null && debian-sa1 1 1)"),
    ("nginx.service", "nginx", "2023/11/14 22:13:20 [error] 1234#1234: *1 open() \"/var/www/favicon.ico\" failed"),
    ("systemd-logind.service", "systemd-logind", "New session 42 of user alice."),
    ("postfix@-.service", "postfix/smtpd", "connect from unknown[203.0.113.9]"),
    ("dbus.service", "dbus-daemon", "[system] Successfully activated service 'org.freedesktop.hostname1'"),
]
for i in range(n):
    if i % 10 == 3:
        unit, ident = "ssh.service", "sshd"
        msg = f"Failed password for invalid user u{i % 97} from 198.51.{(i // 250) % 100}.{i % 250 + 1} port {1024 + i % 60000} ssh2"
    else:
        unit, ident, msg = others[i % len(others)]
    w(f"__REALTIME_TIMESTAMP={start + i * 100}\n__MONOTONIC_TIMESTAMP={1000000 + i * 100}\n"
      f"_BOOT_ID={boot}\n_HOSTNAME=bench\n_TRANSPORT=syslog\nPRIORITY=6\n_UID=0\n_GID=0\n"
      f"_PID={1000 + i % 5000}\n_COMM={ident}\n_SYSTEMD_UNIT={unit}\n"
      f"SYSLOG_IDENTIFIER={ident}\nMESSAGE={msg}\n\n")
PY
MATCHING=$((N / 10))
LAST_USEC=$(journalctl -D "$W/journal" -o export -n 1 _SYSTEMD_UNIT=ssh.service | awk -F= '/^__REALTIME_TIMESTAMP/ {print $2}')

echo "journalctl -o cat (ceiling)..." >&2
t0=$(now); n_jc=$(journalctl -D "$W/journal" -o cat _SYSTEMD_UNIT=ssh.service | wc -l); t1=$(now)
T_JC=$(calc "$t1 - $t0")

echo "jailwarden daemon (backlog)..." >&2
cat > "$W/jw.toml" <<EOF
[daemon]
backend = "none"
journal_directory = "$W/journal"
filter_dirs = ["$PWD/config/filters"]
[jails.sshd]
journal_match = ["_SYSTEMD_UNIT=ssh.service"]
maxretry = 5
findtime = "1h"
EOF
t0=$(now)
"$JW" daemon --config "$W/jw.toml" --state-dir "$W/state" 2>"$W/jw.err" &
JPID=$!; PIDS+=("$JPID")
MAXRSS=0; SAMPLES=""
while :; do
  r=$(rss "$JPID"); [ "$r" -gt "$MAXRSS" ] && MAXRSS=$r
  SAMPLES="$SAMPLES $r"
  pos=$(/usr/bin/python3 -c '
import json, sqlite3, sys
try:
    c = sqlite3.connect("file:" + sys.argv[1] + "?mode=ro", uri=True)
    v = c.execute("select value from positions where source = \"journal\"").fetchone()
    print(json.loads(v[0])["time_usec"] if v else 0)
except Exception:
    print(0)' "$W/state/jailwarden.sqlite3")
  [ "$pos" -ge "$LAST_USEC" ] && break
  kill -0 "$JPID" 2>/dev/null || { cat "$W/jw.err" >&2; exit 1; }
  sleep 0.05
done
t1=$(now)
T_JW=$(calc "$t1 - $t0")
kill "$JPID"; wait "$JPID" 2>/dev/null || true

echo "fail2ban-regex, systemd backend..." >&2
t0=$(now)
fail2ban-regex "systemd-journal[journalpath=$W/journal]" 'sshd[journalmatch="_SYSTEMD_UNIT=ssh.service"]' > "$W/f2b.out" 2>&1 || true
t1=$(now)
T_F2B=$(calc "$t1 - $t0")
F2B_LINES=$(awk '/^Lines:/ {print $2}' "$W/f2b.out")

echo "latency: 1,000 bans, live private journald..." >&2
JD=$W/live
JPID2=$(sh tests/support/private-journald.sh "$JD"); PIDS+=("$JPID2")
mkdir -p "$W/state2"
cat > "$W/live.toml" <<EOF
[daemon]
backend = "none"
journal_directory = "$JD/log"
filter_dirs = ["$PWD/config/filters"]
[jails.sshd]
journal_match = ["SYSLOG_IDENTIFIER=sshd"]
maxretry = 1
EOF
nsenter -t "$JPID2" -m "$JW" daemon --config "$W/live.toml" --state-dir "$W/state2" 2>"$W/live.err" &
DPID=$!; PIDS+=("$DPID")
for _ in $(seq 100); do journalctl -D "$JD/log" -o cat MESSAGE_ID=81fd7018acd5491989e86f286c9ac619 | grep -q ready && break; sleep 0.1; done
IDLE_START=$(rss "$DPID")
nsenter -t "$JPID2" -m /usr/bin/python3 -c '
import time
from systemd import journal
for i in range(1000):
    journal.send("Failed password for root from 203.0.%d.%d port 22 ssh2" % (i // 250, i % 250 + 1), SYSLOG_IDENTIFIER="sshd", SYSLOG_PID="7")
    time.sleep(0.003)
'
sleep 1
nsenter -t "$JPID2" -m journalctl --sync
/usr/bin/python3 - "$JD/log" <<'PY' > "$W/latency"
import json, subprocess, sys
def entries(*m):
    out = subprocess.run(["journalctl", "-D", sys.argv[1], "-o", "json", *m], capture_output=True, text=True).stdout
    return [json.loads(l) for l in out.splitlines() if l]
sent = {}
for e in entries("SYSLOG_IDENTIFIER=sshd"):
    addr = e["MESSAGE"].split(" from ")[1].split(" ")[0]
    sent[addr] = int(e["__REALTIME_TIMESTAMP"])
lat = []
for e in entries("MESSAGE_ID=20f4993d915743ba897492a7b5b7ca50"):
    a = e.get("JAILWARDEN_ADDRESS")
    if a in sent:
        lat.append((int(e["__REALTIME_TIMESTAMP"]) - sent[a]) / 1000.0)
lat.sort()
if not lat:
    print("0 0 0")
else:
    print(len(lat), lat[len(lat) // 2], lat[min(len(lat) - 1, int(len(lat) * 0.99))])
PY
read -r NLAT P50 P99 < "$W/latency"
sleep 3
IDLE=$(rss "$DPID")

RATE_JC=$(calc "$MATCHING / $T_JC")
RATE_JW=$(calc "$MATCHING / $T_JW")
RATE_F2B=$(calc "${F2B_LINES:-$MATCHING} / $T_F2B")
echo
echo "journal backlog: $N entries, $MATCHING matching (sshd), machine: $(nproc) cores"
printf "%-34s %10s %14s %12s\n" "reader" "time (s)" "entries/s" "vs journalctl"
printf "%-34s %10s %14.0f %12s\n" "journalctl -o cat (ceiling)" "$T_JC" "$RATE_JC" "1.00"
printf "%-34s %10s %14.0f %12s\n" "jailwarden daemon" "$T_JW" "$RATE_JW" "$(calc "$RATE_JW / $RATE_JC")"
printf "%-34s %10s %14.0f %12s\n" "fail2ban-regex (systemd backend)" "$T_F2B" "$RATE_F2B" "$(calc "$RATE_F2B / $RATE_JC")"
echo "jailwarden vs Fail2ban: $(calc "$RATE_JW / $RATE_F2B")x"
echo "daemon RSS while reading the backlog (KiB): max $MAXRSS; samples:$(echo "$SAMPLES" | tr ' ' '\n' | awk 'NR%10==2' | tr '\n' ' ')"
echo "decision latency over $NLAT bans: p50 ${P50} ms, p99 ${P99} ms"
echo "idle RSS: $IDLE KiB after the latency run ($IDLE_START KiB at ready)"
