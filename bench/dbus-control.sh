#!/bin/sh
# Control API speed: ListBans over 100,000 bans, 1,000 Ban calls in a row,
# and the daemon's CPU while a client polls status 10 times a second, over
# the control socket and over a private system bus.
#
#   bench/dbus-control.sh [BANS]        (default 100000; needs root for the bus policy)
#
# Builds the release binary and examples/control_bench.rs, runs the daemon
# with backend "none" in a temporary directory (nothing touches the host's
# firewall or bus), and stops what it started by PID.
set -eu
cd "$(dirname "$0")/.."
BANS=${1:-100000}
cargo build --release --quiet --bin jailwarden --example control_bench
BIN=$PWD/target/release/jailwarden
CLIENT=$PWD/target/release/examples/control_bench
T=$(mktemp -d /tmp/jw-bench-control.XXXXXX)
DPID= JPID=
cleanup() {
    [ -n "$JPID" ] && kill "$JPID" 2>/dev/null && wait "$JPID" 2>/dev/null || true
    [ -n "$DPID" ] && kill "$DPID" 2>/dev/null || true
    rm -rf "$T"
}
trap cleanup EXIT INT TERM

mkdir -p "$T/etc/filters" "$T/journal" "$T/state"
printf 'description = "bench"\nfailregex = ['"'"'^failure from <HOST>$'"'"']\n' > "$T/etc/filters/dummy.toml"
cat > "$T/etc/jailwarden.toml" <<EOF
[daemon]
backend = "none"
journal_directory = "$T/journal"
socket = "$T/run/control.sock"
[defaults]
ignoreip = []
[jails.bench]
enabled = true
filter = "dummy"
journal_match = ["_SYSTEMD_UNIT=bench.service"]
bantime = "1h"
EOF

cat > "$T/bus.conf" <<EOF
<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type> <auth>EXTERNAL</auth>
  <listen>unix:path=$T/bus.sock</listen>
  <policy context="default">
    <allow user="*"/> <deny own="*"/> <deny send_type="method_call"/> <allow send_type="signal"/>
    <allow send_requested_reply="true" send_type="method_return"/>
    <allow send_requested_reply="true" send_type="error"/>
    <allow receive_type="method_call"/> <allow receive_type="method_return"/>
    <allow receive_type="error"/> <allow receive_type="signal"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus"/>
  </policy>
  <include>$PWD/dbus/org.jailwarden1.conf</include>
</busconfig>
EOF
dbus-daemon --config-file="$T/bus.conf" --nofork --nopidfile 2>/dev/null &
DPID=$!
BUS="unix:path=$T/bus.sock"
i=0; until [ -S "$T/bus.sock" ]; do i=$((i+1)); [ $i -lt 200 ] || { echo "no bus" >&2; exit 1; }; sleep 0.05; done

DBUS_SYSTEM_BUS_ADDRESS=$BUS JAILWARDEN_LOG=warn "$BIN" daemon --config "$T/etc/jailwarden.toml" \
    --state-dir "$T/state" --foreground 2>"$T/daemon.log" &
JPID=$!
i=0; until busctl --address="$BUS" status org.jailwarden1 >/dev/null 2>&1 && [ -S "$T/run/control.sock" ]; do
    i=$((i+1)); [ $i -lt 400 ] || { echo "daemon not ready" >&2; cat "$T/daemon.log" >&2; exit 1; }; sleep 0.05
done

echo "machine: $(nproc) cores, $(uname -r), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
echo "== control socket (peer-to-peer) =="
"$CLIENT" --socket "$T/run/control.sock" --pid "$JPID" --bans "$BANS"
echo "== system bus (private dbus-daemon) =="
"$CLIENT" --bus "$BUS" --pid "$JPID" --bans "$BANS"
echo "== jailwarden status, a new process 10 times a second =="
c0=$(awk '{sub(/.*\) /,""); print $12+$13}' /proc/$JPID/stat)
t0=$(date +%s.%N)
n=0
while [ $n -lt 100 ]; do
    JAILWARDEN_SOCKET="$T/run/control.sock" "$BIN" status >/dev/null
    n=$((n+1)); sleep 0.1
done
c1=$(awk '{sub(/.*\) /,""); print $12+$13}' /proc/$JPID/stat)
t1=$(date +%s.%N)
echo "$c0 $c1 $t0 $t1 $(getconf CLK_TCK)" | awk '{printf "daemon CPU while the CLI polls status: %.2f %% over %.1f s (100 runs)\n", ($2-$1)/$5/($4-$3)*100, $4-$3}'
echo "daemon RSS: $(awk '/VmRSS/{print $2, $3}' /proc/$JPID/status)"
