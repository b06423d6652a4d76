#!/usr/bin/python3
"""Hammer every read method of org.jailwarden1 from many connections at once.

    flood.py BUS_ADDRESS SECONDS [CONNECTIONS [THREADS]]

Run as an unprivileged user (tests/dbus_flood.rs, bench/dbus-flood.sh run it as
nobody). CONNECTIONS processes (default 8), each with its own bus connection
(its own unique name) and THREADS threads (default 5: one more than a caller may have in flight; at
most 5 replies of <= 20 MB wait for it in dbus-daemon, under its 127 MB queue) calling in turn:
Manager ListJails, GetJail, ListBans (of all jails and of one), ListBanDetails,
ListBansPaged (walking pages), History, BanHistogram, ListRemoteBans,
FleetPeers, Properties.GetAll of the
manager and a jail, GetManagedObjects, Introspect, and Jail.ListBans, until
SECONDS have passed. Prints one JSON line: calls served, refused
(org.jailwarden1.Error.LimitsExceeded), unanswered (NoReply after 120 s) and
failed otherwise, by method, and
the errors seen (a few of each kind).
"""
import json
import os
import multiprocessing
import sys
import threading
import time

import dbus
import dbus.lowlevel

NAME = "org.jailwarden1"
ROOT = "/org/jailwarden1"
MGR = "org.jailwarden1.Manager"
JAIL = "org.jailwarden1.Jail"
PROPS = "org.freedesktop.DBus.Properties"
SSHD = ROOT + "/jail/sshd"
LIMITS = "org.jailwarden1.Error.LimitsExceeded"
# No answer within the timeout (120 s): counted apart, see tests/dbus_flood.rs.
NO_REPLY = "org.freedesktop.DBus.Error.NoReply"


def calls():
    """(label, path, interface, method, signature, args), in turn."""
    return [
        ("ListBans(all)", ROOT, MGR, "ListBans", "s", ("",)),
        ("ListBans(sshd)", ROOT, MGR, "ListBans", "s", ("sshd",)),
        ("ListBanDetails", ROOT, MGR, "ListBanDetails", "s", ("nginx-http-auth",)),
        ("ListBansPaged", ROOT, MGR, "ListBansPaged", "ssu", None),
        ("History", ROOT, MGR, "History", "sstu", ("", "", 0, 10000)),
        ("BanHistogram", ROOT, MGR, "BanHistogram", "sttu",
         ("", int(time.time() - 86400) * 1000000, 3600 * 1000000, 1000)),
        ("ListJails", ROOT, MGR, "ListJails", "", ()),
        ("GetJail", ROOT, MGR, "GetJail", "s", ("sshd",)),
        ("GetAll(Manager)", ROOT, PROPS, "GetAll", "s", (MGR,)),
        ("GetAll(Jail)", SSHD, PROPS, "GetAll", "s", (JAIL,)),
        ("GetManagedObjects", ROOT, "org.freedesktop.DBus.ObjectManager",
         "GetManagedObjects", "", ()),
        ("Introspect", ROOT, "org.freedesktop.DBus.Introspectable", "Introspect", "", ()),
        ("Jail.ListBans", SSHD, JAIL, "ListBans", "", ()),
        ("ListRemoteBans", ROOT, MGR, "ListRemoteBans", "", ()),
        ("FleetPeers", ROOT, MGR, "FleetPeers", "", ()),
    ]


def worker(address, deadline, threads, offset, out):
    bus = dbus.bus.BusConnection(address)
    lock = threading.Lock()
    stats = {}
    errors = {}
    cursor = [""]

    def count(label, kind):
        with lock:
            s = stats.setdefault(label, {"served": 0, "refused": 0, "no_reply": 0, "failed": 0})
            s[kind] += 1

    def run(t):
        todo = calls()
        only = os.environ.get("JW_FLOOD_ONLY")
        if only:
            todo = [c for c in todo if c[0] in only.split(",")]
        i = offset + t
        while time.time() < deadline:
            label, path, iface, method, sig, args = todo[i % len(todo)]
            i += 1
            if args is None:
                with lock:
                    args = ("", cursor[0], 10000)
            try:
                msg = dbus.lowlevel.MethodCallMessage(NAME, path, iface, method)
                if sig:
                    msg.append(*args, signature=sig)
                # The reply is not unpacked (that would cost the client more
                # than the daemon), except for the cursor of a page.
                reply = bus.send_message_with_reply_and_block(msg, 120)
                count(label, "served")
                if method == "ListBansPaged":
                    next_cursor = str(reply.get_args_list()[2])
                    with lock:
                        cursor[0] = next_cursor
            except dbus.exceptions.DBusException as e:
                name = e.get_dbus_name()
                kind = {LIMITS: "refused", NO_REPLY: "no_reply"}.get(name, "failed")
                count(label, kind)
                with lock:
                    seen = errors.setdefault(f"{label} {name}", [])
                    if len(seen) < 2:
                        seen.append(e.get_dbus_message()[:200])
                if kind == "refused":
                    time.sleep(0.01)

    ts = [threading.Thread(target=run, args=(t,)) for t in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    out.put((stats, errors))


def main():
    address = sys.argv[1]
    seconds = float(sys.argv[2])
    conns = int(sys.argv[3]) if len(sys.argv) > 3 else 8
    threads = int(sys.argv[4]) if len(sys.argv) > 4 else 5
    deadline = time.time() + seconds
    q = multiprocessing.Queue()
    ps = [multiprocessing.Process(target=worker, args=(address, deadline, threads, k, q))
          for k in range(conns)]
    for p in ps:
        p.start()
    total = {}
    errors = {}
    for _ in ps:
        stats, errs = q.get(timeout=seconds + 300)
        for label, s in stats.items():
            t = total.setdefault(label, {"served": 0, "refused": 0, "no_reply": 0, "failed": 0})
            for k, v in s.items():
                t[k] += v
        for k, v in errs.items():
            errors.setdefault(k, v)
    for p in ps:
        p.join(timeout=30)
    summary = {k: sum(t[k] for t in total.values())
               for k in ("served", "refused", "no_reply", "failed")}
    print(json.dumps({"total": summary, "by_method": total, "errors": errors}))


if __name__ == "__main__":
    main()
