#!/bin/sh
# Ban history speed: what the Cockpit page asks for (History newest first,
# of everything and of one address; BanHistogram per hour over a day and
# per day over 30 days) on a state database holding N bans over 30 days,
# on the read-only connection the daemon answers them from, and the
# upgrade of a schema-1 database of that size (the history gained end
# times, failures and reasons in schema 2). No daemon, nothing outside a
# temporary directory.
#
#   bench/history.sh [N]        (default 1000000)
set -eu
cd "$(dirname "$0")/.."
cargo build --release --quiet --example history_bench
exec target/release/examples/history_bench "${1:-1000000}"
