#!/usr/bin/python3
"""Real protocol clients for tests/real, one attempt per run.

    clients.py ftp  SRC HOST USER PASSWORD
    clients.py ftp-burst SRC HOST USER PASSWORD N      (N wrong logins on one connection)
    clients.py smtp-auth SRC HOST USER PASSWORD        (AUTH PLAIN on port 25)
    clients.py smtp-relay SRC HOST SENDER RECIPIENT     (RCPT for a foreign domain)
    clients.py imap SRC HOST USER PASSWORD [starttls]
    clients.py imap-burst SRC HOST USER PASSWORD N [starttls]   (N wrong LOGINs on one connection)
    clients.py pop3 SRC HOST USER PASSWORD [stls]

Exit status: 0 the server accepted (logged in, took the recipient), 1 it
refused as a server does for a wrong password or a relay attempt, 2
anything else (no connection, protocol surprise): the suite treats 2 as a
broken test, never as a refusal. What happened goes to stdout.
"""

import ftplib
import imaplib
import poplib
import smtplib
import socket
import ssl
import sys

TIMEOUT = 30


def tls_context():
    # The servers use Debian's snakeoil certificates: no verification.
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def connect(src, host, port):
    return socket.create_connection((host, port), timeout=TIMEOUT, source_address=(src, 0))


def ftp(src, host, user, password):
    f = ftplib.FTP(timeout=TIMEOUT, source_address=(src, 0))
    print(f.connect(host, 21))
    try:
        print(f.login(user, password))
    except ftplib.error_perm as e:
        print("refused:", e)
        return 1
    f.quit()
    return 0


def ftp_burst(src, host, user, password, n):
    f = ftplib.FTP(timeout=TIMEOUT, source_address=(src, 0))
    print(f.connect(host, 21))
    refused = 0
    for _ in range(int(n)):
        try:
            print(f.login(user, password))
            return 0
        except ftplib.error_perm as e:
            print("refused:", e)
            refused += 1
        except (EOFError, OSError) as e:
            # The server hung up after its last allowed attempt.
            print("closed:", e)
            break
    return 1 if refused else 2


def smtp_auth(src, host, user, password):
    s = smtplib.SMTP(host, 25, timeout=TIMEOUT, source_address=(src, 0))
    s.ehlo("client.example.net")
    if s.has_extn("starttls"):
        s.starttls(context=tls_context())
        s.ehlo("client.example.net")
    try:
        print(s.login(user, password))
    except smtplib.SMTPAuthenticationError as e:
        print("refused:", e)
        return 1
    finally:
        try:
            s.quit()
        except (smtplib.SMTPException, OSError):
            pass
    return 0


def smtp_relay(src, host, sender, recipient):
    s = smtplib.SMTP(host, 25, timeout=TIMEOUT, source_address=(src, 0))
    s.ehlo("client.example.net")
    code, msg = s.mail(sender)
    print("MAIL", code, msg)
    code, msg = s.rcpt(recipient)
    print("RCPT", code, msg)
    try:
        s.quit()
    except (smtplib.SMTPException, OSError):
        pass
    if 200 <= code < 300:
        return 0
    return 1 if 400 <= code < 600 else 2


def imap(src, host, user, password, tls=None):
    sock = connect(src, host, 143)

    class Client(imaplib.IMAP4):
        def _create_socket(self, timeout):
            return sock

    m = Client(host, 143, timeout=TIMEOUT)
    if tls == "starttls":
        m.starttls(ssl_context=tls_context())
    try:
        print(m.login(user, password))
    except imaplib.IMAP4.error as e:
        print("refused:", e)
        return 1
    m.logout()
    return 0


def imap_burst(src, host, user, password, n, tls=None):
    sock = connect(src, host, 143)

    class Client(imaplib.IMAP4):
        def _create_socket(self, timeout):
            return sock

    m = Client(host, 143, timeout=TIMEOUT)
    if tls == "starttls":
        m.starttls(ssl_context=tls_context())
    refused = 0
    for _ in range(int(n)):
        try:
            print(m.login(user, password))
            return 0
        except imaplib.IMAP4.abort as e:
            print("closed:", e)
            break
        except imaplib.IMAP4.error as e:
            print("refused:", e)
            refused += 1
    try:
        m.logout()
    except (imaplib.IMAP4.error, OSError):
        pass
    return 1 if refused else 2


def pop3(src, host, user, password, tls=None):
    sock = connect(src, host, 110)

    class Client(poplib.POP3):
        def _create_socket(self, timeout):
            return sock

    p = Client(host, 110, timeout=TIMEOUT)
    if tls == "stls":
        p.stls(context=tls_context())
    try:
        print(p.user(user))
        print(p.pass_(password))
    except poplib.error_proto as e:
        print("refused:", e)
        return 1
    p.quit()
    return 0


def main(argv):
    commands = {
        "ftp": ftp,
        "ftp-burst": ftp_burst,
        "smtp-auth": smtp_auth,
        "smtp-relay": smtp_relay,
        "imap": imap,
        "imap-burst": imap_burst,
        "pop3": pop3,
    }
    if len(argv) < 2 or argv[1] not in commands:
        print(__doc__, file=sys.stderr)
        return 2
    try:
        return commands[argv[1]](*argv[2:])
    except (OSError, EOFError, ftplib.Error, smtplib.SMTPException, imaplib.IMAP4.error,
            poplib.error_proto, ssl.SSLError) as e:
        print("error:", type(e).__name__, e)
        return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
