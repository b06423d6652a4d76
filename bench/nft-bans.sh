#!/bin/sh
# bench/nft-bans.sh — how fast the nftables backend installs bans and reads
# them back, side by side with `nft -f` (reference) and with Fail2ban's way
# (one `nft add element` process per ban).
#
# Everything runs in throwaway network namespaces (`unshare -n`): the
# machine's own ruleset is never touched. Needs root.
#
#   bench/nft-bans.sh [N=100000] [READBACK=1000000] [F2B_SAMPLE=2000]
#
# SKIP_DUMP=1 leaves out the full listing of READBACK elements by dump,
# which the kernel makes quadratic (~50 s for 1,000,000 here). Times are
# wall clock; CPU times are shown too, as other load on the machine
# stretches the former.
set -eu
N=${1:-100000}
RB=${2:-1000000}
K=${3:-2000}
cd "$(dirname "$0")/.."
LOAD0=$(cut -d' ' -f1 /proc/loadavg)
cargo build --release --quiet --example nft_bench
BIN=$PWD/target/release/examples/nft_bench
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

field() { awk -v k="$1" '$1 == k { print $2 }' "$2"; }
# Counts the elements of set bench-v4 in `nft -j` output (a sanity check
# that every method loaded all N).
cat > "$TMP/count.py" <<'PY'
import json, sys
d = json.load(sys.stdin)
print(sum(len(i["set"].get("elem", [])) for i in d["nftables"] if "set" in i))
PY
COUNT="nft -j list set inet jailwarden bench-v4 | /usr/bin/python3 $TMP/count.py"

# 1. jailwarden: N bans, one ban() call, one netlink transaction.
unshare -n sh -c "\"$BIN\" install $N > $TMP/ours && $COUNT > $TMP/ours_count"
ours=$(field install_secs "$TMP/ours")
max_ms=$(field max_timeout_ms "$TMP/ours")

# 2. nft -f: the same set created first, then the same N elements loaded
#    from a file (in chunks of 10,000 per `add element`, as nft users do).
"$BIN" script "$N" > "$TMP/elems.nft"
printf 'table inet jailwarden {\n  set bench-v4 {\n    type ipv4_addr\n    flags timeout\n  }\n}\n' > "$TMP/structure.nft"
unshare -n sh -c '
    nft -f "$1"
    s=$(date +%s%N); nft -f "$2"; e=$(date +%s%N)
    echo "nftf_secs $(awk -v s=$s -v e=$e "BEGIN { printf \"%.3f\", (e - s) / 1e9 }")"
    s=$(date +%s%N); nft list set inet jailwarden bench-v4 > /dev/null; e=$(date +%s%N)
    echo "nftlist_secs $(awk -v s=$s -v e=$e "BEGIN { printf \"%.3f\", (e - s) / 1e9 }")"
    echo "nftf_count $(sh -c "$3")"
' sh "$TMP/structure.nft" "$TMP/elems.nft" "$COUNT" > "$TMP/nftf"
nftf=$(field nftf_secs "$TMP/nftf")
nftlist=$(field nftlist_secs "$TMP/nftf")

# 3. Fail2ban's way: one `nft add element` process per ban. K of them,
#    extrapolated to N.
unshare -n sh -c '
    nft -f "$1"
    i=0; s=$(date +%s%N)
    while [ $i -lt "$2" ]; do
        nft add element inet jailwarden bench-v4 "{ 10.$((i / 65536 % 256)).$((i / 256 % 256)).$((i % 256)) timeout 3600s }"
        i=$((i + 1))
    done
    e=$(date +%s%N)
    echo "f2b_secs $(awk -v s=$s -v e=$e "BEGIN { printf \"%.3f\", (e - s) / 1e9 }")"
' sh "$TMP/structure.nft" "$K" > "$TMP/f2b"
f2b=$(field f2b_secs "$TMP/f2b")

# 4. Read back RB elements: a restarted daemon reconciling the same bans
#    (keyed lookups), and a full listing by dump.
unshare -n "$BIN" readback "$RB" > "$TMP/rb"

awk -v n="$N" -v rb="$RB" -v k="$K" -v ours="$ours" -v nftf="$nftf" -v nftlist="$nftlist" \
    -v f2b="$f2b" -v max_ms="$max_ms" \
    -v ours_count="$(cat "$TMP/ours_count")" -v nftf_count="$(field nftf_count "$TMP/nftf")" \
    -v rec="$(field reconcile_secs "$TMP/rb")" -v kept="$(field reconcile_kept "$TMP/rb")" \
    -v rec_cpu="$(field reconcile_cpu_secs "$TMP/rb")" -v dump_cpu="$(field dump_cpu_secs "$TMP/rb")" \
    -v ours_cpu="$(field install_cpu_secs "$TMP/ours")" \
    -v changed="$(field reconcile_changed "$TMP/rb")" \
    -v dump="$(field dump_secs "$TMP/rb")" -v dumped="$(field dump_elements "$TMP/rb")" \
    -v rss_bans="$(field rss_bans_kib "$TMP/rb")" -v rss_rec="$(field rss_reconcile_peak_kib "$TMP/rb")" \
    -v rss_dump="$(field rss_holding_dump_kib "$TMP/rb")" \
    -v host="$(uname -r), $(nproc) CPUs, nft $(nft --version | cut -d' ' -f2), load average $LOAD0 at start, $(cut -d' ' -f1 /proc/loadavg) at end" '
function per(t, n) { return sprintf("%.1f µs", t / n * 1e6) }
BEGIN {
    f2b_per = f2b / k; f2b_total = f2b_per * n
    printf "nftables ban benchmark (Linux %s)\n\n", host
    printf "%-58s %10s %12s %10s\n", "install " n " bans with 1 h timeouts, empty set", "time", "per ban", "ratio"
    printf "%-58s %9.3fs %12s %10s   (CPU %ss)\n", "jailwarden: one ban() call, one netlink transaction", ours, per(ours, n), "1.0x", ours_cpu
    printf "%-58s %9.3fs %12s %9.1fx\n", "nft -f (reference), 10,000 elements per add element", nftf, per(nftf, n), nftf / ours
    printf "%-58s %9.1fs %12s %9.0fx\n", "Fail2ban way: one nft process per ban (" k " run, extrapolated)", f2b_total, per(f2b_per, 1), f2b_per / (ours / n)
    printf "  elements in the set afterwards: jailwarden %s, nft -f %s\n\n", ours_count, nftf_count
    printf "%-58s %10s\n", "read back " rb " elements", "time"
    printf "%-58s %9.3fs   (CPU %ss; kept %s, changed %s)\n", "reconcile of a restarted daemon (count + keyed lookups)", rec, rec_cpu, kept, changed
    if (dump != "") printf "%-58s %9.3fs   (CPU %ss; %s elements)\n", "full listing by dump (Nftables::elements)", dump, dump_cpu, dumped
    printf "%-58s %9.3fs   (%s elements, for comparison)\n", "nft list set", nftlist, n
    printf "\nRSS: %d MiB holding %d Ban structs (the caller'"'"'s); peak %d MiB during reconcile", rss_bans / 1024, rb, rss_rec / 1024
    if (rss_dump != "") printf "; %d MiB holding the dump as well", rss_dump / 1024
    printf "\nlargest element timeout the kernel accepts: %s ms (%.0f years)\n", max_ms, max_ms / 1000 / 86400 / 365.25
    printf "\ntargets: no slower than nft -f: %s; >= 1000x Fail2ban per ban: %s; read back %d in < 2 s: %s\n",
        (ours <= nftf ? "met" : "MISSED"), (f2b_per / (ours / n) >= 1000 ? "met" : "MISSED"), rb, (rec < 2 ? "met" : "MISSED")
}'
