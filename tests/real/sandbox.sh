#!/bin/sh
# sandbox.sh --work DIR [OPTIONS] -- PROGRAM [ARGS...]
#
# Runs PROGRAM (exec'd: it keeps this script's PID, so the caller stops it
# by PID) in a private mount namespace where the paths daemons hard-code
# (/etc, /var/log/..., /run, /dev/log) lead into the test's own
# directories; nothing outside the namespace changes. Options apply in
# order:
#   --work DIR            scratch directory (first option; must exist)
#   --cgroup DIR          join the cgroup2 directory DIR first (journald
#                         derives _SYSTEMD_UNIT from it)
#   --keep PATH           PATH (a mount such as the private journald's
#                         /var/log/journal or /run/systemd/journal) is put
#                         back as it was after the mounts below
#   --overlay DST LOWER   DST shows LOWER (a colon-separated stack, leftmost
#                         on top) over its own files, read-only
#   --overlay-rw DST LOWER UPPER WORKDIR   the same, writes go to UPPER;
#                         LOWER "-" for DST alone
#   --tmpfs DST           an empty tmpfs over DST (/run, /tmp)
#   --dev                 a private /dev (null, zero, full, random, urandom,
#                         tty, pts, shm) with /dev/log ->
#                         /run/systemd/journal/dev-log (run under
#                         `nsenter -t JOURNALD -m`: the private journald)
#   --bind SRC DST        bind-mount SRC over DST (DST must exist)
# Usage of the namespace by other processes: nsenter -t PID -m.
set -eu
if [ "${1:-}" != --stage2 ]; then
  # Stage 1, in the caller's mount namespace: only the cgroup.
  prev=
  for a in "$@"; do
    [ "$a" = -- ] && break
    [ "$prev" = --cgroup ] && echo $$ > "$a/cgroup.procs"
    prev=$a
  done
  exec unshare -m --propagation private -- "$0" --stage2 "$@"
fi
shift
[ "${1:-}" = --work ] || { echo "sandbox.sh: --work DIR must come first" >&2; exit 2; }
W=$2; shift 2
mkdir -p "$W/keep" "$W/dev"
kept=0
while [ $# -gt 0 ] && [ "$1" != -- ]; do
  case $1 in
    --cgroup) shift 2 ;;
    --keep)
      kept=$((kept + 1)); mkdir -p "$W/keep/$kept"
      mount --bind "$2" "$W/keep/$kept"; printf '%s\n' "$2" > "$W/keep/$kept.path"
      shift 2 ;;
    --overlay)
      if [ "$3" = - ]; then low=$2; else low=$3:$2; fi
      mount -t overlay jwoverlay -o "lowerdir=$low" "$2"; shift 3 ;;
    --overlay-rw)
      if [ "$3" = - ]; then low=$2; else low=$3:$2; fi
      mount -t overlay jwoverlay -o "lowerdir=$low,upperdir=$4,workdir=$5" "$2"; shift 5 ;;
    --tmpfs) mount -t tmpfs -o mode=0755 jwtmp "$2"; shift 2 ;;
    --dev)
      d=$W/dev; shift
      mkdir -p "$d/host" "$d/new"
      mount --rbind /dev "$d/host"
      mount -t tmpfs -o mode=0755 jwdev "$d/new"
      for n in null zero full random urandom tty; do
        touch "$d/new/$n"; mount --bind "$d/host/$n" "$d/new/$n"
      done
      mkdir "$d/new/pts" "$d/new/shm"
      mount --rbind "$d/host/pts" "$d/new/pts"
      mount -t tmpfs -o mode=1777 jwshm "$d/new/shm"
      ln -s pts/ptmx "$d/new/ptmx"
      ln -s /proc/self/fd "$d/new/fd"
      ln -s /proc/self/fd/0 "$d/new/stdin"
      ln -s /proc/self/fd/1 "$d/new/stdout"
      ln -s /proc/self/fd/2 "$d/new/stderr"
      ln -s /run/systemd/journal/dev-log "$d/new/log"
      mount --move "$d/new" /dev
      umount -l "$d/host"
      ;;
    --bind) mount --bind "$2" "$3"; shift 3 ;;
    *) echo "sandbox.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
shift
# Put the kept mounts back where they were.
i=1
while [ "$i" -le "$kept" ]; do
  path=$(cat "$W/keep/$i.path")
  mkdir -p "$path"
  mount --bind "$W/keep/$i" "$path"
  umount -l "$W/keep/$i"
  i=$((i + 1))
done
exec "$@"
