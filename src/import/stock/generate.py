#!/usr/bin/python3
"""Regenerate stock-filters.txt: the normalized texts' SHA-256 of every
filter.d/*.conf Fail2ban has shipped, so that import-fail2ban can tell a
stock filter (mapped to jailwarden's filter of the same name) from a
changed one (translated).

Usage: generate.py FAIL2BAN_GIT_CHECKOUT [DEBIAN_FILTER_DIR LABEL]... > stock-filters.txt

  FAIL2BAN_GIT_CHECKOUT  a clone of https://github.com/fail2ban/fail2ban
                         (every release tag from 0.9.0 on, and HEAD)
  DEBIAN_FILTER_DIR      an installed filter.d (e.g. /etc/fail2ban/filter.d
                         of Debian's fail2ban package, checked with dpkg -V)

Normalization (src/import/stock.rs does the same): lines split at \\n
(\\r dropped), lines that are blank or whose first non-blank character is
'#' or ';' dropped, trailing whitespace removed, joined with \\n.
"""
import hashlib
import os
import re
import subprocess
import sys


def normalize(text):
    out = []
    for line in text.replace("\r", "").split("\n"):
        s = line.strip()
        if not s or s[0] in "#;":
            continue
        out.append(line.rstrip())
    return "\n".join(out)


def digest(text):
    return hashlib.sha256(normalize(text).encode("utf-8")).hexdigest()


def main():
    repo = sys.argv[1]
    found = {}  # (name, hash) -> [labels]

    def add(name, text, label):
        found.setdefault((name, digest(text)), []).append(label)

    def git(*args):
        return subprocess.run(["git", "-C", repo] + list(args), check=True,
                              capture_output=True).stdout.decode("utf-8", "replace")

    tags = [t for t in git("tag").split()
            if re.fullmatch(r"\d+\.\d+(\.\d+)*([ab]\d+|\.beta\d+)?", t)
            and tuple(int(x) for x in re.findall(r"\d+", t)[:2]) >= (0, 9)]
    head = git("rev-parse", "HEAD").strip()
    for ref, label in [(t, "upstream-" + t) for t in tags] + [(head, "upstream-" + head[:12])]:
        for path in git("ls-tree", "-r", "--name-only", ref, "config/filter.d/").split("\n"):
            if path.endswith(".conf"):
                name = os.path.basename(path)[:-5]
                add(name, git("show", ref + ":" + path), label)
    args = sys.argv[2:]
    for d, label in zip(args[0::2], args[1::2]):
        for f in sorted(os.listdir(d)):
            if f.endswith(".conf"):
                with open(os.path.join(d, f), encoding="utf-8", errors="replace") as fh:
                    add(f[:-5], fh.read(), label)
    print("# Stock Fail2ban filter files: NAME SHA256 SOURCES (see generate.py).")
    print("# Generated from fail2ban/fail2ban %s (release tags %s..%s and HEAD)" % (head, tags[0], tags[-1]))
    print("# and: %s" % ", ".join("%s = %s" % (l, d) for d, l in zip(args[0::2], args[1::2])))
    for (name, h), labels in sorted(found.items()):
        # Collapse runs of versions to keep the file short.
        print("%s %s %s" % (name, h, ",".join(labels)))


if __name__ == "__main__":
    main()
