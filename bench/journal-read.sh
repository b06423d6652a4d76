#!/bin/sh
# bench/journal-read.sh [ENTRIES]
#
# Throughput of jailwarden's journal source against journalctl on the same
# matching entries. Builds a journal of ENTRIES (default 1,000,000) with
# systemd-journal-remote: 90% from other units, 10% sshd failures
# (_SYSTEMD_UNIT=ssh.service) from many addresses, ~14 fields per entry like
# real journald entries. Then times, best of 3 runs each (warm page cache):
#   journalctl -D DIR -o cat _SYSTEMD_UNIT=ssh.service | wc -l
#   target/release/examples/journal_read DIR _SYSTEMD_UNIT=ssh.service
# and prints entries/s and our/journalctl ratio. Needs systemd-journal-remote
# and /usr/bin/python3; no root. Run from the repository root.
set -eu
N=${1:-1000000}
W=$(mktemp -d "${TMPDIR:-/tmp}/jw-bench-journal.XXXXXX")
trap 'rm -rf "$W"' EXIT INT TERM
mkdir "$W/journal"
calc() { awk "BEGIN { printf \"%.3f\", $1 }"; }

echo "building the reader (release)..." >&2
cargo build --quiet --release --example journal_read
READER=target/release/examples/journal_read

echo "generating $N entries with systemd-journal-remote..." >&2
t0=$(date +%s.%N)
/usr/bin/python3 - "$N" <<'PY' | /lib/systemd/systemd-journal-remote -o "$W/journal/remote.journal" - 2>/dev/null
import sys
n = int(sys.argv[1])
w = sys.stdout.write
boot = "0123456789abcdef0123456789abcdef"
machine = "fedcba9876543210fedcba9876543210"
others = [
    ("cron.service", "CRON", "cron", "(root) CMD (command -v debian-sa1 > /dev/null && debian-sa1 1 1)"),
    ("nginx.service", "nginx", "nginx", "2023/11/14 22:13:20 [error] 1234#1234: *1 open() \"/var/www/favicon.ico\" failed (2: No such file or directory)"),
    ("systemd-logind.service", "systemd-logind", "systemd-logind", "New session 42 of user alice."),
    ("postfix@-.service", "postfix/smtpd", "smtpd", "connect from unknown[203.0.113.9]"),
    ("dbus.service", "dbus-daemon", "dbus-daemon", "[system] Successfully activated service 'org.freedesktop.hostname1'"),
    ("systemd-timesyncd.service", "systemd-timesyncd", "systemd-timesyn", "Initial synchronization to time server 192.0.2.123:123 (ntp.example)."),
]
for i in range(n):
    if i % 10 == 3:
        unit, ident, comm = "ssh.service", "sshd", "sshd"
        msg = f"Failed password for invalid user u{i % 97} from 198.51.{(i // 250) % 100}.{i % 250 + 1} port {1024 + i % 60000} ssh2"
    else:
        unit, ident, comm, msg = others[i % len(others)]
    w(f"__REALTIME_TIMESTAMP={1700000000000000 + i * 1000}\n"
      f"__MONOTONIC_TIMESTAMP={1000000 + i * 1000}\n"
      f"_BOOT_ID={boot}\n_MACHINE_ID={machine}\n_HOSTNAME=bench\n"
      f"_TRANSPORT=syslog\nPRIORITY={5 + i % 2}\nSYSLOG_FACILITY={4 if unit == 'ssh.service' else 3}\n"
      f"_UID=0\n_GID=0\n_PID={1000 + i % 5000}\n_COMM={comm}\n"
      f"_SYSTEMD_UNIT={unit}\n_SYSTEMD_SLICE=system.slice\n"
      f"SYSLOG_IDENTIFIER={ident}\nMESSAGE={msg}\n\n")
PY
t1=$(date +%s.%N)
echo "generated in $(calc "$t1 - $t0") s: $(du -sh "$W/journal" | cut -f1), $(ls "$W/journal" | wc -l) files" >&2

best() { # best-of-3 wall time of "$@" (stdout of the last run kept in $W/out)
  b=""
  for _ in 1 2 3; do
    s=$(date +%s.%N); "$@" > "$W/out"; e=$(date +%s.%N)
    t=$(calc "$e - $s")
    if [ -z "$b" ] || [ "$(calc "$t < $b")" = 1.000 ]; then b=$t; fi
  done
  echo "$b"
}
jctl() { journalctl -D "$W/journal" -o cat _SYSTEMD_UNIT=ssh.service | wc -l; }
ours() { "$READER" "$W/journal" _SYSTEMD_UNIT=ssh.service 2>/dev/null; }

jctl > /dev/null   # warm the page cache
tj=$(best jctl); nj=$(cat "$W/out")
to=$(best ours); no=$(cut -d' ' -f1 "$W/out")

if [ "$nj" != "$no" ]; then
  echo "MISMATCH: journalctl read $nj entries, jailwarden $no" >&2
  exit 1
fi
rj=$(awk "BEGIN { printf \"%d\", $nj / $tj }"); ro=$(awk "BEGIN { printf \"%d\", $no / $to }")
echo "machine:    $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
echo "journal:    $N entries, $nj matching _SYSTEMD_UNIT=ssh.service"
echo "journalctl: $tj s  $rj entries/s"
echo "jailwarden: $to s  $ro entries/s"
echo "ratio:      $(awk "BEGIN { printf \"%.0f\", $ro * 100 / $rj }")% of journalctl (target for the daemon: >= 70%)"
