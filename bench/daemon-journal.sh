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
# BACKLOG_ONLY=1: only the backlog read (with status answer times), for the
# 10M-entry first start; skips fail2ban-regex and the latency runs.
BACKLOG_ONLY=${BACKLOG_ONLY:-0}
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
anon() { awk '/RssAnon/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }

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
dbus = false
socket = "$W/control.sock"
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
MAXRSS=0; MAXANON=0; POLLS=(); K=0; PROGRESS=""
while ! grep -q "journal backlog read" "$W/jw.err"; do
  r=$(rss "$JPID"); [ "$r" -gt "$MAXRSS" ] && MAXRSS=$r
  a=$(anon "$JPID"); [ "$a" -gt "$MAXANON" ] && MAXANON=$a
  kill -0 "$JPID" 2>/dev/null || { cat "$W/jw.err" >&2; exit 1; }
  K=$((K + 1))
  # Every ~0.5 s: how long `status` takes to answer while the backlog is read.
  if [ $((K % 40)) = 0 ] && [ -S "$W/control.sock" ]; then
    p0=$(now)
    if out=$("$JW" status --socket "$W/control.sock" 2>/dev/null); then
      POLLS+=("$(calc "($(now) - $p0) * 1000")")
      line=$(grep -o "reading the journal backlog: .*" <<<"$out" || true)
      [ -n "$line" ] && PROGRESS=$line
    fi
  fi
  sleep 0.01
done
t1=$(now)
T_JW=$(calc "$t1 - $t0")
JW_SAID=$(grep -o "journal backlog read: .*" "$W/jw.err" | head -1)
kill "$JPID"; wait "$JPID" 2>/dev/null || true
POLL=$(printf '%s\n' "${POLLS[@]:-0}" | sort -n | awk '{a[NR]=$1} END {printf "p50 %s ms, max %s ms over %d calls", a[int((NR+1)/2)], a[NR], NR}')
if [ "$BACKLOG_ONLY" = 1 ]; then
  echo
  echo "journal backlog: $N entries, $MATCHING matching (sshd); machine: $(nproc) cores, load $(cut -d' ' -f1 /proc/loadavg)"
  echo "journalctl -o cat (ceiling): $T_JC s; jailwarden daemon, start to done: $T_JW s ($(calc "$T_JC / $T_JW") of journalctl)"
  echo "daemon's own report: $JW_SAID"
  echo "RSS while reading the backlog: max $MAXRSS KiB, heap (RssAnon) max $MAXANON KiB"
  echo "status while reading: $POLL; last progress seen: ${PROGRESS:-none}"
  exit 0
fi

echo "fail2ban-regex, systemd backend..." >&2
t0=$(now)
fail2ban-regex "systemd-journal[journalpath=$W/journal]" 'sshd[journalmatch="_SYSTEMD_UNIT=ssh.service"]' > "$W/f2b.out" 2>&1 || true
t1=$(now)
T_F2B=$(calc "$t1 - $t0")
F2B_LINES=$(awk '/^Lines:/ {print $2}' "$W/f2b.out")

echo "latency: 1,000 bans through the journal, 1,000 through a log file..." >&2
JD=$W/live
JPID2=$(sh tests/support/private-journald.sh "$JD"); PIDS+=("$JPID2")
mkdir -p "$W/state2"
: > "$W/auth.log"
cat > "$W/live.toml" <<EOF
[daemon]
backend = "none"
dbus = false
socket = "$W/control-$RANDOM.sock"
journal_directory = "$JD/log"
filter_dirs = ["$PWD/config/filters"]
[jails.sshd]
journal_match = ["_UID=0", "SYSLOG_IDENTIFIER=sshd"]
maxretry = 1
[jails.sshd-file]
filter = "sshd"
logpath = ["$W/auth.log"]
maxretry = 1
EOF
nsenter -t "$JPID2" -m "$JW" daemon --config "$W/live.toml" --state-dir "$W/state2" 2>"$W/live.err" &
DPID=$!; PIDS+=("$DPID")
for _ in $(seq 100); do journalctl -D "$JD/log" -o cat MESSAGE_ID=81fd7018acd5491989e86f286c9ac619 | grep -q ready && break; sleep 0.1; done
IDLE_START=$(rss "$DPID")
# The reference: journalctl -f, stamping when each entry reaches it.
journalctl -D "$JD/log" -f -n 0 -o json SYSLOG_IDENTIFIER=sshd | /usr/bin/python3 -c '
import sys, time, json
for l in sys.stdin:
    e = json.loads(l)
    print(e["MESSAGE"].split(" from ")[1].split(" ")[0], int(time.time() * 1e6), flush=True)' > "$W/jcf" &
JCF=$!; PIDS+=("$JCF")
sleep 1
nsenter -t "$JPID2" -m /usr/bin/python3 - "$W/auth.log" "$W/written" <<'PY'
import sys, time
from systemd import journal
for i in range(1000):
    journal.send("Failed password for root from 203.0.%d.%d port 22 ssh2" % (i // 250, i % 250 + 1), SYSLOG_IDENTIFIER="sshd", SYSLOG_PID="7")
    time.sleep(0.003)
with open(sys.argv[1], "a") as log, open(sys.argv[2], "w") as out:
    for i in range(1000):
        addr = "203.1.%d.%d" % (i // 250, i % 250 + 1)
        stamp = time.strftime("%b %e %H:%M:%S")
        t = int(time.time() * 1e6)
        log.write(f"{stamp} srv sshd[9]: Failed password for root from {addr} port 22 ssh2\n")
        log.flush()
        out.write(f"{addr} {t}\n")
        time.sleep(0.003)
PY
sleep 2
nsenter -t "$JPID2" -m journalctl --sync
/usr/bin/python3 - "$JD/log" "$W/written" "$W/jcf" <<'PY' > "$W/latency"
import json, subprocess, sys
def entries(*m):
    out = subprocess.run(["journalctl", "-D", sys.argv[1], "-o", "json", *m], capture_output=True, text=True).stdout
    return [json.loads(l) for l in out.splitlines() if l]
sent = {}
for e in entries("SYSLOG_IDENTIFIER=sshd"):
    sent[e["MESSAGE"].split(" from ")[1].split(" ")[0]] = int(e["__REALTIME_TIMESTAMP"])
written = dict((a, int(t)) for a, t in (l.split() for l in open(sys.argv[2])))
bans = {e.get("JAILWARDEN_ADDRESS"): int(e["__REALTIME_TIMESTAMP"]) for e in entries("MESSAGE_ID=20f4993d915743ba897492a7b5b7ca50")}
def pct(v):
    v.sort()
    return "%d %.2f %.2f" % (len(v), v[len(v) // 2], v[min(len(v) - 1, int(len(v) * 0.99))]) if v else "0 0 0"
jrn = [(bans[a] - t) / 1000 for a, t in sent.items() if a in bans]
fil = [(bans[a] - t) / 1000 for a, t in written.items() if a in bans]
jcf = [(int(t) - sent[a]) / 1000 for a, t in (l.split() for l in open(sys.argv[3])) if a in sent]
print(pct(jrn)); print(pct(fil)); print(pct(jcf))
PY
{ read -r NJ J50 J99; read -r NF F50 F99; read -r NC C50 C99; } < "$W/latency"
sleep 3
IDLE=$(rss "$DPID")
IDLE_ANON=$(anon "$DPID")

RATE_JC=$(calc "$MATCHING / $T_JC")
RATE_JW=$(calc "$MATCHING / $T_JW")
RATE_F2B=$(calc "${F2B_LINES:-$MATCHING} / $T_F2B")
echo
echo "journal backlog: $N entries, $MATCHING matching (sshd); machine: $(nproc) cores"
printf "%-36s %9s %12s %14s\n" "reader" "time (s)" "entries/s" "vs journalctl"
printf "%-36s %9s %12.0f %14s\n" "journalctl -o cat (ceiling)" "$T_JC" "$RATE_JC" "1.00"
printf "%-36s %9s %12.0f %14s\n" "jailwarden daemon (start to done)" "$T_JW" "$RATE_JW" "$(calc "$RATE_JW / $RATE_JC")"
printf "%-36s %9s %12.0f %14s\n" "fail2ban-regex (systemd backend)" "$T_F2B" "$RATE_F2B" "$(calc "$RATE_F2B / $RATE_JC")"
echo "jailwarden vs Fail2ban: $(calc "$RATE_JW / $RATE_F2B")x"
echo "daemon's own report: $JW_SAID"
echo "RSS while reading the backlog: max $MAXRSS KiB, heap (RssAnon) max $MAXANON KiB; status while reading: $POLL"
echo "  (the difference is the journal files mapped by sd-journal: shared page cache, as for journalctl)"
echo "latency, entry written -> ban decision (ms):          n      p50      p99"
printf "  %-46s %5s %8s %8s\n" "through journald (end to end)" "$NJ" "$J50" "$J99"
printf "  %-46s %5s %8s %8s\n" "journalctl -f on the same entries (reference)" "$NC" "$C50" "$C99"
printf "  %-46s %5s %8s %8s\n" "through a log file (inotify)" "$NF" "$F50" "$F99"
echo "idle RSS: $IDLE KiB ($IDLE_ANON KiB heap) after the latency run; $IDLE_START KiB at ready"
