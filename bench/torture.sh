#!/bin/bash
# bench/torture.sh [KILLS] [SCALE] [RUNS]
#
# The long variant of tests/torture.rs's crash torture: the daemon (nftables,
# in a network namespace of the test's own) SIGKILLed KILLS times (default
# 200; CI runs 24) at seeded random moments (plain, during reloads, during a
# large batch of bans, during start-up reconcile) while a stream SCALE times
# CI's (default 10) is written; RUNS runs (default 3), each with a new seed,
# each compared with the oracle (lost, doubled, kernel = store). A failing
# run prints its seed and the command replaying it. Needs root. Run from the
# repository root.
set -euo pipefail
KILLS=${1:-200}
SCALE=${2:-10}
RUNS=${3:-3}
cargo test --quiet --test torture --no-run
ok=0
for run in $(seq "$RUNS"); do
  seed=${JAILWARDEN_TORTURE_SEED:-$(od -An -N8 -tu8 /dev/urandom | tr -d ' ')}
  start=$(date +%s.%N)
  log=$(mktemp)
  status=0
  JAILWARDEN_TORTURE_SEED=$seed JAILWARDEN_TORTURE_KILLS=$KILLS JAILWARDEN_TORTURE_SCALE=$SCALE \
    nice -n 10 cargo test --quiet --test torture -- --exact sigkill_at_random_moments_loses_nothing_and_doubles_nothing --nocapture \
    >"$log" 2>&1 || status=$?
  grep -E '^torture:|problems|panicked|lost|doubled|kernel' "$log" || true
  rm -f "$log"
  end=$(date +%s.%N)
  if [ "$status" = 0 ]; then ok=$((ok + 1)); r=ok; else r=FAILED; fi
  printf 'run %d: seed %s, %d kills, scale %d: %s in %.1f s\n' "$run" "$seed" "$KILLS" "$SCALE" "$r" \
    "$(awk "BEGIN { print $end - $start }")"
done
printf 'scenario | runs | lost | doubled | kernel = store\n'
printf 'crash torture (%d kills, scale %d) | %d | %s | %s | %s\n' "$KILLS" "$SCALE" "$RUNS" \
  "$([ $ok = "$RUNS" ] && echo 0 || echo see above)" "$([ $ok = "$RUNS" ] && echo 0 || echo see above)" \
  "$([ $ok = "$RUNS" ] && echo yes || echo see above)"
[ "$ok" = "$RUNS" ]
