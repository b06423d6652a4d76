#!/bin/sh
# private-journald.sh DIR  -> starts a private systemd-journald, prints its PID.
#
# Stop it with `kill PID` (by PID only: other tests run their own journalds).
#
# journald runs in its own mount namespace with tmpfs/bind mounts over its
# paths, so nothing on the host changes (see TESTING.md section 1):
#   sockets:  DIR/sock/{socket,stdout,dev-log,io.systemd.journal}
#             (the last is varlink: `nsenter -t PID -m journalctl --sync|--rotate`)
#   files:    DIR/log/<machine-id>/system.journal   (read with journalctl -D DIR/log)
#   output:   DIR/journald.out
# Tools with hard-coded socket paths (systemd-cat, logger --journald, python
# journal.send) must run in its namespace: `nsenter -t PID -m CMD`. Syslog
# datagrams can go to DIR/sock/dev-log from anywhere (`logger -u`).
# Starting it again on the same DIR (after the first one exited) reuses the
# journal files, like a journald restart; stale sockets are removed first so
# the wait below sees the new journald's.
set -eu
D=$(realpath -m "$1"); mkdir -p "$D/sock" "$D/log"
printf '[Journal]\nStorage=persistent\nReadKMsg=no\nForwardToSyslog=no\nForwardToWall=no\nForwardToConsole=no\nRateLimitIntervalSec=0\n' > "$D/journald.conf"
rm -f "$D/sock/socket" "$D/sock/stdout" "$D/sock/dev-log" "$D/sock/io.systemd.journal"
touch "$D/sock/flushed"   # else journald writes to /run/log/journal until SIGUSR1
unshare -m --propagation private sh -c '
  D=$1
  mount -t tmpfs -o mode=0755 tmpfs /run/systemd      # hide host /run/systemd
  mkdir /run/systemd/journal
  mount --bind "$D/sock" /run/systemd/journal
  mount --bind "$D/log" /var/log/journal
  mount -t tmpfs tmpfs /run/log
  mount --bind "$D/journald.conf" /etc/systemd/journald.conf
  exec /lib/systemd/systemd-journald
' sh "$D" </dev/null >"$D/journald.out" 2>&1 &
PID=$!
for i in $(seq 100); do
  [ -S "$D/sock/socket" ] && [ -S "$D/sock/stdout" ] && [ -S "$D/sock/dev-log" ] &&
    [ -S "$D/sock/io.systemd.journal" ] && break
  sleep 0.05
done
echo $PID
