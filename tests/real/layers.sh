#!/bin/sh
# layers.sh CACHE GROUP...
#
# Builds the package layers tests/real runs its servers on. Some of the
# servers conflict as Debian packages (postfix/exim4, vsftpd/proftpd-core/
# pure-ftpd, dovecot/courier): one machine cannot have them all installed.
# So each group is installed with apt-get inside a private mount namespace
# (sandbox.sh) whose /etc, /usr, /var, ... are overlays over the host's:
# apt resolves the dependencies and removes the conflicting package, the
# maintainer scripts run (users, configuration, certificates, exactly as
# on a Debian 12 machine; policy-rc.d keeps them from starting anything),
# and every change lands in CACHE/GROUP/<dir>, never on the host. The
# suite mounts those directories as lower layers under each server.
# Every group also gets the suite's test user (jwreal) with its password.
#
# Groups: host (the packages of .ci/packages/real-servers.txt, installed on
# the host; the layer only adds the user), exim4, proftpd, pure-ftpd,
# courier. A layer is rebuilt when its package list changes. Needs root
# and the Debian mirror apt uses (apt-get update first).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
CACHE=$1; shift
TEST_USER=jwreal
TEST_PASSWORD=Correct-Horse-7
# /var last: the layers live under /var/cache, and an upper directory must
# not be reached through an overlay already mounted.
DIRS="etc usr srv opt home root var"

packages() {
  case $1 in
    host) echo "" ;;
    exim4) echo "exim4-daemon-light" ;;
    proftpd) echo "proftpd-core" ;;
    pure-ftpd) echo "pure-ftpd" ;;
    courier) echo "courier-imap courier-pop" ;;
    *) echo "layers.sh: unknown group $1" >&2; exit 2 ;;
  esac
}

for group in "$@"; do
  pkgs=$(packages "$group")
  L=$CACHE/$group
  stamp="packages: $pkgs; user: $TEST_USER"
  if [ -f "$L/.done" ] && [ "$(cat "$L/.done")" = "$stamp" ]; then
    continue
  fi
  echo "layers.sh: building $group (${pkgs:-test user only})" >&2
  rm -rf "$L"
  mkdir -p "$L/.work/sandbox"
  set --
  for d in $DIRS; do
    mkdir -p "$L/$d" "$L/.work/$d"
    set -- "$@" --overlay-rw "/$d" - "$L/$d" "$L/.work/$d"
  done
  "$here/sandbox.sh" --work "$L/.work/sandbox" "$@" --tmpfs /run -- sh -euc '
    mkdir -p /run/lock
    export DEBIAN_FRONTEND=noninteractive
    if [ -n "$1" ]; then
      apt-get -o DPkg::Lock::Timeout=600 install -y -q --no-install-recommends $1 \
        > /tmp/.jw-layers-$$.log 2>&1 || { cat /tmp/.jw-layers-$$.log >&2; exit 1; }
      rm -f /tmp/.jw-layers-$$.log
      apt-get clean
    fi
    id "$2" >/dev/null 2>&1 || useradd -m -s /bin/sh "$2"
    echo "$2:$3" | chpasswd
  ' sh "$pkgs" "$TEST_USER" "$TEST_PASSWORD"
  rm -rf "$L/.work"
  printf '%s' "$stamp" > "$L/.done"
done
