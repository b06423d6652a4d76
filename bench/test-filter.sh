#!/bin/bash
# bench/test-filter.sh [AUTH_LINES] [APACHE_LINES]
#
# `jailwarden test-filter` against `fail2ban-regex` (Debian's fail2ban) on
# the same generated logs, in one run, with `rg -c` and an equivalent
# pattern as the ceiling (a plain search, no host extraction, no dates):
#   - an sshd auth.log (default 1,000,000 lines: thousands of addresses,
#     ~30% failures, IPv6, noise from other daemons), filter sshd;
#   - an Apache error log (default 300,000 lines), filter apache-auth;
#   - an Apache access log (default 300,000 lines), filter apache-botsearch
#     for us, apache-noscript... Fail2ban's botsearch reads error logs, so
#     the access log is compared with apache-badbots on both sides.
# fail2ban-rs 1.5.4 runs its own jail for sshd and apache-auth (it has no
# apache-badbots) with `dry-run`; the ratio to it is per CPU-second.
# Logs come from bench/gen-logs.py with a fixed seed. Prints lines/s (wall
# and per CPU second), max RSS and the ratios. Run from the repository root.
set -euo pipefail
AUTH=${1:-1000000}
APACHE=${2:-300000}
W=$(mktemp -d "${TMPDIR:-/tmp}/jw-bench-tf.XXXXXX")
trap 'rm -rf "$W"' EXIT INT TERM
calc() { awk "BEGIN { printf \"%.2f\", $1 }"; }

# fail2ban-rs 1.5.4 (the closest Rust rewrite) from crates.io, into a cache.
CACHE=${XDG_CACHE_HOME:-$HOME/.cache}/jailwarden-bench
F2B_RS=$CACHE/bin/fail2ban-rs
if [ ! -x "$F2B_RS" ]; then
  echo "installing fail2ban-rs 1.5.4 into $CACHE..." >&2
  cargo install fail2ban-rs --version 1.5.4 --locked --quiet --root "$CACHE"
fi
command -v rg >/dev/null || { echo "rg (Debian package ripgrep) is needed for the ceiling" >&2; exit 1; }
echo "building (release)..." >&2
cargo build --quiet --release
JW=$PWD/target/release/jailwarden
F=$PWD/config/filters
echo "generating logs..." >&2
python3 bench/gen-logs.py auth "$AUTH" 42 > "$W/auth.log"
python3 bench/gen-logs.py apache-error "$APACHE" 43 > "$W/error.log"
python3 bench/gen-logs.py apache "$APACHE" 44 > "$W/access.log"

# run NAME LINES CMD...: wall seconds, CPU seconds, max RSS KiB, count
run() {
  local name=$1 lines=$2; shift 2
  /usr/bin/time -f "%e %U %S %M" -o "$W/time" "$@" > "$W/out" 2>/dev/null || true
  read -r wall user sys rss < "$W/time"
  local cpu; cpu=$(calc "$user + $sys")
  printf "%-34s %9s %9s %12.0f %12.0f %9s\n" "$name" "$wall" "$cpu" \
    "$(calc "$lines / ($wall > 0 ? $wall : 0.001)")" "$(calc "$lines / ($cpu > 0 ? $cpu : 0.001)")" "$rss"
  echo "$wall" > "$W/last_wall"
  echo "$cpu" > "$W/last_cpu"
}

bench() { # LOG LINES OURS_FILTER F2B_FILTER RG_PATTERN [FAIL2BAN_RS_FILTER]
  local log=$1 lines=$2 ours=$3 theirs=$4 pattern=$5 rs=${6:-}
  echo
  echo "== $(basename "$log"): $lines lines; jailwarden $ours vs fail2ban-regex $theirs"
  printf "%-34s %9s %9s %12s %12s %9s\n" "tool" "wall s" "cpu s" "lines/s" "lines/cpu-s" "RSS KiB"
  run "rg -c (ceiling)" "$lines" rg -c "$pattern" "$log"; local rg; rg=$(cat "$W/last_wall")
  echo "   rg counted $(cat "$W/out") lines"
  run "jailwarden test-filter" "$lines" "$JW" test-filter --filter-dir "$F" "$ours" "$log"; local jw; jw=$(cat "$W/last_wall"); local jw_cpu; jw_cpu=$(cat "$W/last_cpu")
  echo "   jailwarden: $(grep -E "^Attempts:" "$W/out" | cut -d'(' -f1)"
  if [ -n "$rs" ]; then
    # Its own shipped jail for the service (gen-config), reading this log.
    { echo "[global]"; "$F2B_RS" gen-config "$rs" | sed "s|^log_path = .*|log_path = \"$log\"|"; } > "$W/f2b-rs.toml"
    run "fail2ban-rs dry-run" "$lines" "$F2B_RS" dry-run -c "$W/f2b-rs.toml" -j "$rs" "$log"
    echo "   fail2ban-rs: $(grep -E "Matches:" "$W/out" | sed 's/^ *//')"
    local rs_cpu; rs_cpu=$(cat "$W/last_cpu")
  fi
  run "fail2ban-regex" "$lines" fail2ban-regex "$log" "/etc/fail2ban/filter.d/$theirs.conf"; local f2b; f2b=$(cat "$W/last_wall")
  echo "   fail2ban: $(grep -E "^Lines:" "$W/out")"
  echo "   ratios (wall): jailwarden/fail2ban-regex $(calc "$f2b / $jw")x, jailwarden/rg $(calc "$rg / $jw")"
  if [ -n "$rs" ]; then
    echo "   ratio (lines per CPU-second): jailwarden/fail2ban-rs $(calc "$rs_cpu / $jw_cpu")"
  else
    echo "   (fail2ban-rs ships no $ours filter: not compared)"
  fi
}

echo "machine: $(nproc) cores; load: $(cut -d' ' -f1-3 /proc/loadavg)"
bench "$W/auth.log" "$AUTH" sshd sshd \
  'sshd\[[0-9]+\]: (Failed \S+ for (invalid user )?.* from \S+ port [0-9]+ ssh2|Invalid user .* from \S+ port [0-9]+)$' sshd
bench "$W/error.log" "$APACHE" apache-auth apache-auth \
  '\[client [0-9a-f.:]+:[0-9]+\] AH01618: user .* not found' apache-auth
bench "$W/access.log" "$APACHE" apache-badbots apache-badbots \
  '^\S+ - \S+ \[[^]]+\] "[A-Z]+ [^"]*" [0-9]+ [0-9]+ "[^"]*" "(EmailCollector|WebBandit[^"]*)"$'
