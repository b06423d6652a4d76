#!/usr/bin/python3
"""Generate realistic benchmark logs from a seed (deterministic).

  gen-logs.py auth   N SEED > auth.log      # sshd-heavy auth.log, ~30% failures
  gen-logs.py apache N SEED > access.log    # Apache access log with bot probes
  gen-logs.py apache-error N SEED > error.log
  gen-logs.py noise  N SEED > noise.log     # mixed daemons, for filter speed

Addresses come from documentation and private ranges plus random public
ones, thousands of them, some IPv6.
"""
import random
import sys

MONTHS = "Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec".split()


def addr(r):
    k = r.random()
    if k < 0.12:
        return "2001:db8:%x:%x::%x" % (r.randrange(65536), r.randrange(65536), r.randrange(1, 65536))
    return "%d.%d.%d.%d" % (r.randrange(1, 224), r.randrange(256), r.randrange(256), r.randrange(1, 255))


def syslog_date(i):
    s = i // 40
    return "%s %2d %02d:%02d:%02d" % (MONTHS[(s // 2592000) % 12], 1 + (s // 86400) % 28, (s // 3600) % 24, (s // 60) % 60, s % 60)


def auth(n, r):
    attackers = [addr(r) for _ in range(3000)]
    users = ["root", "admin", "test", "oracle", "postgres", "ubuntu", "git", "user", "guest", "pi"]
    out = sys.stdout
    for i in range(n):
        d = syslog_date(i)
        pid = 1000 + r.randrange(60000)
        k = r.random()
        a = r.choice(attackers)
        port = r.randrange(1024, 65536)
        if k < 0.15:
            line = f"{d} srv sshd[{pid}]: Failed password for {r.choice(users)} from {a} port {port} ssh2"
        elif k < 0.25:
            line = f"{d} srv sshd[{pid}]: Failed password for invalid user {r.choice(users)}{r.randrange(100)} from {a} port {port} ssh2"
        elif k < 0.30:
            line = f"{d} srv sshd[{pid}]: Invalid user {r.choice(users)}{r.randrange(100)} from {a} port {port}"
        elif k < 0.40:
            line = f"{d} srv sshd[{pid}]: Connection closed by {a} port {port} [preauth]"
        elif k < 0.48:
            line = f"{d} srv sshd[{pid}]: Accepted publickey for deploy from 192.0.2.{r.randrange(1, 255)} port {port} ssh2: ED25519 SHA256:abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
        elif k < 0.55:
            line = f"{d} srv sshd[{pid}]: pam_unix(sshd:session): session opened for user deploy(uid=1000) by (uid=0)"
        elif k < 0.60:
            line = f"{d} srv sshd[{pid}]: Received disconnect from {a} port {port}:11: Bye Bye [preauth]"
        elif k < 0.70:
            line = f"{d} srv CRON[{pid}]: pam_unix(cron:session): session opened for user root(uid=0) by (uid=0)"
        elif k < 0.78:
            line = f"{d} srv systemd-logind[512]: New session {r.randrange(99999)} of user deploy."
        elif k < 0.86:
            line = f"{d} srv sudo[{pid}]:   deploy : TTY=pts/0 ; PWD=/home/deploy ; USER=root ; COMMAND=/usr/bin/systemctl status nginx"
        elif k < 0.93:
            line = f"{d} srv postfix/smtpd[{pid}]: connect from unknown[{a}]"
        else:
            line = f"{d} srv kernel: [{r.randrange(99999)}.{r.randrange(999999):06d}] IN=eth0 OUT= MAC=00:16:3e:00:00:01 SRC={a} DST=198.51.100.1 LEN=40 PROTO=TCP SPT={port} DPT=23"
        out.write(line + "\n")


def apache(n, r):
    hosts = [addr(r) for _ in range(2000)]
    paths = ["/", "/index.html", "/about", "/static/app.js", "/img/logo.png", "/blog/2024/01/post"]
    probes = ["/wp-login.php", "/phpmyadmin/index.php", "/.env", "/cgi-bin/test.cgi", "/admin/config.php"]
    agents = ["Mozilla/5.0 (X11; Linux x86_64) Firefox/120.0", "curl/8.4.0", "Googlebot/2.1", "EmailCollector", "WebBandit 3.50"]
    for i in range(n):
        s = i // 20
        d = "%02d/%s/2024:%02d:%02d:%02d +0100" % (1 + (s // 86400) % 28, MONTHS[(s // 2592000) % 12], (s // 3600) % 24, (s // 60) % 60, s % 60)
        h = r.choice(hosts)
        k = r.random()
        if k < 0.1:
            p, st = r.choice(probes), 404
        elif k < 0.15:
            p, st = "/private/", 401
        else:
            p, st = r.choice(paths), 200
        sys.stdout.write(f'{h} - - [{d}] "GET {p} HTTP/1.1" {st} {r.randrange(100, 50000)} "-" "{r.choice(agents)}"\n')


def apache_error(n, r):
    hosts = [addr(r) for _ in range(2000)]
    for i in range(n):
        s = i // 20
        d = "%s %s %02d %02d:%02d:%02d.%06d 2024" % ("Mon", MONTHS[(s // 2592000) % 12], 1 + (s // 86400) % 28, (s // 3600) % 24, (s // 60) % 60, s % 60, r.randrange(999999))
        h = r.choice(hosts)
        k = r.random()
        if k < 0.2:
            m = f"[auth_basic:error] [pid {r.randrange(9999)}:tid 1401] [client {h}:{r.randrange(1024, 65535)}] AH01618: user bob not found: /private/"
        elif k < 0.35:
            m = f"[core:info] [pid {r.randrange(9999)}:tid 1401] [client {h}:{r.randrange(1024, 65535)}] AH00128: File does not exist: /var/www/html/wp-login.php"
        else:
            m = f"[mpm_event:notice] [pid {r.randrange(9999)}:tid 1401] AH00489: Apache/2.4.57 (Debian) configured -- resuming normal operations"
        sys.stdout.write(f"[{d}] {m}\n")


def main():
    kind, n, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    r = random.Random(seed)
    {"auth": auth, "apache": apache, "apache-error": apache_error, "noise": auth}[kind](n, r)


if __name__ == "__main__":
    main()
