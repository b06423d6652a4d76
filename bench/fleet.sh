#!/bin/bash
# bench/fleet.sh [BANS] [BULK]
#
# The fleet ([fleet], src/fleet/) through a real redis-server: one origin
# host and three receivers, each daemon in a network namespace of its own
# (own nftables table, own state), redis-server in another, reached over a
# unix socket. Never touches the host's ruleset. Needs root, redis-server.
#   1. propagation: BANS (default 1,000) bans made one by one on the origin
#      (jailwarden ban); for each, the time from the element appearing in
#      the origin's kernel set to it appearing in each receiver's fleet-inet
#      (nft monitor in every namespace): p50, p99, max; and from the
#      request (the CLI call) to the receivers;
#   2. fan-out: a second origin starts with BULK (default 100,000) bans in
#      force (written into its state database): the time until every
#      receiver holds all of them (its active set, read by each receiver).
# Side by side: CrowdSec's bouncers poll their API every 10 s by default.
# Run from the repository root.
set -euo pipefail
BANS=${1:-1000}
BULK=${2:-100000}
W=$(mktemp -d "${TMPDIR:-/tmp}/jw-bench-fleet.XXXXXX")
PIDS=()
NSS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  for n in "${NSS[@]}"; do ip netns del "$n" 2>/dev/null || true; done
  rm -rf "$W"
}
trap cleanup EXIT INT TERM

cargo build --quiet --release
JW=$PWD/target/release/jailwarden
command -v redis-server >/dev/null || { echo "needs redis-server" >&2; exit 1; }

ns() { local n="jwbf-$$-$1"; ip netns add "$n"; ip -n "$n" link set lo up; NSS+=("$n"); echo "$n"; }
RNS=$(ns redis)
ip netns exec "$RNS" redis-server --port 0 --unixsocket "$W/redis.sock" --unixsocketperm 777 \
  --save "" --appendonly no --dir "$W" >"$W/redis.log" 2>&1 &
PIDS+=("$!")
until redis-cli -s "$W/redis.sock" ping >/dev/null 2>&1; do sleep 0.05; done

start_host() { # NAME ADDR -> starts the daemon in its namespace
  local name=$1 addr=$2 n
  n=$(ns "$name")
  ip -n "$n" addr add "$addr/32" dev lo
  mkdir -p "$W/$name/state" "$W/$name/journal"
  cat > "$W/$name/jw.toml" <<TOML
[daemon]
backend = "nftables"
journal_directory = "$W/$name/journal"
filter_dirs = ["$PWD/config/filters"]
dbus = false
socket = "$W/$name/control.sock"
[jails.sshd]
journal_match = ["_SYSTEMD_UNIT=ssh.service"]
bantime = "1h"
[fleet]
url = "redis+unix://$W/redis.sock"
host = "$name"
max_rate = 1000000
TOML
  : > "$W/$name/err"
  ip netns exec "$n" "$JW" daemon --config "$W/$name/jw.toml" --state-dir "$W/$name/state" 2>"$W/$name/err" &
  PIDS+=("$!")
  echo "$!" > "$W/$name/pid"
  until grep -q "connected to Redis" "$W/$name/err"; do sleep 0.01; done
}
for h in r1 r2 r3; do start_host "$h" "198.51.100.1${h#r}"; done
start_host origin 198.51.100.10
sleep 1.5   # every host has seen the others (peers are looked for every second)

/usr/bin/python3 - "$W" "$JW" "$BANS" "$BULK" "$$" <<'PY'
import ipaddress, os, re, signal, sqlite3, statistics, subprocess, sys, threading, time
W, JW, BANS, BULK, PID = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
ADDR = re.compile(rb"(198\.1[89]\.\d+\.\d+)")
seen = {}          # (host, addr) -> monotonic time first seen
counts = {}
lock = threading.Lock()

def monitor(host):
    p = subprocess.Popen(["ip", "netns", "exec", f"jwbf-{PID}-{host}", "nft", "monitor", "new", "elements"],
                         stdout=subprocess.PIPE, bufsize=0)
    def read():
        buf = b""
        while True:
            chunk = p.stdout.read(65536)
            if not chunk:
                return
            t = time.monotonic()
            buf += chunk
            *lines, buf = buf.split(b"\n")
            with lock:
                for line in lines:
                    for a in ADDR.findall(line):
                        k = (host, a.decode())
                        if k not in seen:
                            seen[k] = t
                            counts[host] = counts.get(host, 0) + 1
    threading.Thread(target=read, daemon=True).start()
    return p

hosts = ["r1", "r2", "r3"]
mons = [monitor(h) for h in hosts + ["origin"]]
time.sleep(0.5)

def pct(v, q):
    v = sorted(v)
    return v[min(len(v) - 1, int(q * len(v)))]

# 1. propagation, one ban at a time
asked = {}
addrs = [f"198.18.{i // 250}.{i % 250 + 1}" for i in range(BANS)]
for a in addrs:
    asked[a] = time.monotonic()
    subprocess.run([JW, "ban", "sshd", a, "--socket", f"{W}/origin/control.sock"],
                   check=True, stdout=subprocess.DEVNULL)
deadline = time.monotonic() + 30
while time.monotonic() < deadline:
    with lock:
        if all(counts.get(h, 0) >= BANS for h in hosts):
            break
    time.sleep(0.05)
with lock:
    fleet = [seen[(h, a)] - seen[("origin", a)] for h in hosts for a in addrs
             if (h, a) in seen and ("origin", a) in seen]
    e2e = [seen[(h, a)] - asked[a] for h in hosts for a in addrs if (h, a) in seen]
    missing = BANS * len(hosts) - len(e2e)
ms = lambda x: f"{x * 1000:.1f} ms"
print(f"propagation of {BANS} bans to {len(hosts)} hosts ({len(e2e)} arrivals, {missing} missing):")
print(f"  origin kernel -> receiver kernel: p50 {ms(pct(fleet, 0.5))}  p99 {ms(pct(fleet, 0.99))}  max {ms(max(fleet))}")
print(f"  request (jailwarden ban) -> receiver kernel: p50 {ms(pct(e2e, 0.5))}  p99 {ms(pct(e2e, 0.99))}")
print(f"  vs CrowdSec bouncer default poll (10 s; mean wait 5 s): p50 {5 / pct(fleet, 0.5):.0f}x sooner")

# 2. fan-out of BULK bans held by a host that joins
bulk = f"{W}/bulk"
os.makedirs(f"{bulk}/state", exist_ok=True)
os.makedirs(f"{bulk}/journal", exist_ok=True)
cfg = open(f"{W}/origin/jw.toml").read().replace(f"{W}/origin", bulk).replace('host = "origin"', 'host = "bulk"')
open(f"{bulk}/jw.toml", "w").write(cfg)
subprocess.run(["ip", "netns", "add", f"jwbf-{PID}-bulk"], check=True)
def run_bulk():
    return subprocess.Popen(["ip", "netns", "exec", f"jwbf-{PID}-bulk", JW, "daemon", "--config", f"{bulk}/jw.toml",
                             "--state-dir", f"{bulk}/state"], stderr=open(f"{bulk}/err", "w"))
p = run_bulk()   # once, for the schema
while b" ready: " not in open(f"{bulk}/err", "rb").read():
    time.sleep(0.02)
p.send_signal(signal.SIGTERM); p.wait()
BASE = int(ipaddress.IPv4Address("198.18.16.0"))  # 198.18.16.0 on: apart from part 1's
assert BULK <= 2**17 - 4096
db = sqlite3.connect(f"{bulk}/state/jailwarden.sqlite3")
now = int(time.time() * 1e6)
db.executemany("INSERT INTO bans (jail, net, banned_at, expires_at, failures) VALUES ('sshd', ?, ?, ?, 5)",
               ((f"{ipaddress.IPv4Address(BASE + i)}/32", now, now + 3600 * 10**6) for i in range(BULK)))
db.commit(); db.close()
before = {h: counts.get(h, 0) for h in hosts}
t0 = time.monotonic()
p = run_bulk()
ready = None
done = {}
deadline = t0 + 300
while time.monotonic() < deadline and len(done) < len(hosts):
    if ready is None and b" ready: " in open(f"{bulk}/err", "rb").read():
        ready = time.monotonic() - t0
    with lock:
        for h in hosts:
            if h not in done and counts.get(h, 0) - before[h] >= BULK:
                done[h] = time.monotonic() - t0
    time.sleep(0.05)
p.send_signal(signal.SIGTERM); p.wait()
subprocess.run(["ip", "netns", "del", f"jwbf-{PID}-bulk"])
print(f"fan-out of {BULK} bans held by a joining host to {len(hosts)} hosts:")
print(f"  its daemon ready after {ready:.2f} s (own {BULK} bans reconciled)")
for h in hosts:
    print(f"  {h}: all {BULK} in its kernel {done.get(h, float('nan')):.2f} s after the start "
          f"({(done.get(h, float('nan')) - ready):.2f} s after ready)")
if done:
    worst = max(done.values()) - ready
    print(f"  rate: {BULK / worst:,.0f} bans/s per receiver; vs one CrowdSec poll (10 s): {10 / worst:.1f}x")
for m in mons:
    m.kill()
PY
for h in r1 r2 r3; do
  echo "== $h: jailwarden fleet status"
  "$JW" fleet status --socket "$W/$h/control.sock" | head -4
done
