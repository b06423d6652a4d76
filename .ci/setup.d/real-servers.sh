#!/bin/bash
# tests/real: the package layers of the servers that conflict with the
# host's (exim4, proftpd, pure-ftpd, courier), each installed by apt inside
# a private mount namespace over the host (tests/real/layers.sh), plus the
# suite's test user. Idempotent: a layer is rebuilt only when its package
# list changes. About a minute on a fresh machine.
set -euo pipefail
cd "$(dirname "$0")/../.."
tests/real/layers.sh /var/cache/jailwarden-real host exim4 proftpd pure-ftpd courier
