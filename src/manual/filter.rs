//! jailwarden-filter(5): the filter file, its keys from `config::keys`,
//! patterns, roles, modes, snippets and the host rule.

use super::roff::{esc, example, header, paragraphs, section};
use crate::config::keys::FILTER_SECTIONS;
use crate::filter::def::Role;

pub fn page() -> String {
    let mut out = header(
        "JAILWARDEN\\-FILTER",
        "5",
        "jailwarden-filter",
        "jailwarden filter files: how log lines become failures of an address",
    );
    out.push_str(".SH SYNOPSIS\n/etc/jailwarden/filters/\\fINAME\\fR.toml\n.br\n/usr/share/jailwarden/filters/\\fINAME\\fR.toml\n.br\n\\fIfilters\\fR/common.toml\n");
    out.push_str(".SH DESCRIPTION\n");
    paragraphs(&mut out, DESCRIPTION);
    out.push_str(".SH KEYS\n");
    for s in FILTER_SECTIONS {
        section(&mut out, s);
    }
    out.push_str(".SH PATTERNS\n");
    paragraphs(&mut out, PATTERNS);
    for (tag, meaning) in TAGS {
        out.push_str(&format!(".TP\n\\fB{}\\fR\n{}\n", esc(tag), esc(meaning)));
    }
    out.push_str(".SH ROLES\n");
    paragraphs(&mut out, ROLES);
    for (role, meaning) in roles() {
        out.push_str(&format!(".TP\n\\fB{}\\fR\n{}\n", role.name(), esc(meaning)));
    }
    out.push_str(".SH MODES\n");
    paragraphs(&mut out, MODES);
    out.push_str(".SH THE HOST RULE\n");
    paragraphs(&mut out, HOST_RULE);
    out.push_str(".SH DATES\n");
    paragraphs(&mut out, DATES);
    out.push_str(".SH TESTING A FILTER\n");
    paragraphs(&mut out, TESTING);
    example(&mut out, TESTING_EXAMPLE);
    out.push_str(".SH EXAMPLE\n");
    example(&mut out, EXAMPLE);
    out.push_str(".SH SEE ALSO\n");
    out.push_str("\\fBjailwarden\\fR(8), \\fBjailwarden.toml\\fR(5), \\fBjournalctl\\fR(1)\n");
    out
}

/// Every role, with what it does (the filter reader's own list).
fn roles() -> [(Role, &'static str); 6] {
    [
        (
            Role::Fail,
            "The default. A failure of the host on the line; without a host there, the session's host (from an earlier note); without one either, it waits for a line of the session that names the host.",
        ),
        (
            Role::Pending,
            "An attempt that counts only when confirmed: by a later failure, a second distinct user, the session closing without success, or a success for another user. A legitimate user offering several keys before the right one is not punished.",
        ),
        (
            Role::Note,
            "No failure; remembers the session's host (and user) for its later lines.",
        ),
        (
            Role::Close,
            "The session ends: anything pending is reported, the session forgotten.",
        ),
        (
            Role::Success,
            "Authentication succeeded: pending attempts for the same user are dropped; for a different user they count, plus one.",
        ),
        (
            Role::Repeat,
            "A failure that counts only for an address that already has a counted failure in the jail's window (findtime); it never bans alone. For lines every client gets when the service itself is broken (postfix: \"Connection lost to authentication server\"), which from a steady guesser are still guesses.",
        ),
    ]
}

const DESCRIPTION: &str = "
A filter says which log lines are failures and whose. jailwarden.toml(5) names it in a jail (filter = \"NAME\", default the jail's name); it is found as NAME.toml along the filter path (jailwarden(8), FILTER SEARCH PATH), a local file in /etc/jailwarden/filters shadowing a shipped one of the same name. jailwarden filters lists the filters found, with their modes.

A line is matched in steps: dates are found and cut off (file lines; journal entries carry their own time), prefregex must match and its <F-CONTENT> part is what failregex and ignoreregex see, a line matching an ignoreregex is ignored, otherwise the first failregex that matches decides, with its role. Patterns use the syntax of Rust's regex crate, which runs in linear time: no backreferences or lookaround, and no pattern can be made slow by its input.
";

const PATTERNS: &str = "
In prefregex, failregex and ignoreregex these tags are replaced before compiling:
";

const TAGS: &[(&str, &str)] = &[
    (
        "<HOST>",
        "The address that failed: IPv4, IPv6, IPv4-mapped ::ffff:a.b.c.d, bracketed [2001:db8::1], or a host name (resolved only with usedns).",
    ),
    ("<ADDR>", "An address only, never a host name."),
    (
        "<F-USER>...</F-USER>",
        "The user name tried (sessions tell users apart with it; mail actions show it).",
    ),
    (
        "<F-CONTENT>...</F-CONTENT>",
        "In prefregex: the part of the line the other patterns see.",
    ),
    (
        "<F-SESSION>...</F-SESSION>",
        "What ties a connection's lines together when it is not the syslog pid.",
    ),
    (
        "<F-ATTEMPTS>...</F-ATTEMPTS>",
        "Digits: how many failed attempts the line reports itself (dovecot's \"auth failed, 3 attempts\"); the line counts that many failures (at least 1, at most 1000).",
    ),
    (
        "<F-FORWARDED>...</F-FORWARDED>",
        "An X-Forwarded-For list (\"a, b, c\") the service logged right before the <HOST> it names as the hop it saw: the chain list-then-host is walked from the right past the jail's trusted_proxies, and the first other address is the client (without trusted_proxies, <HOST> itself).",
    ),
    (
        "<F-NAME>...</F-NAME>",
        "Any other named capture, kept with the failure.",
    ),
    (
        "<NAME>",
        "A snippet: from the filter's [snippets], else from the first common.toml on the filter path (for example <SYSLOG_HEAD>, <SYSLOG_TAIL>, <PORT>).",
    ),
];

const ROLES: &str = "
Daemons such as sshd, postfix or dovecot tell a connection's story over several lines. A failregex entry written as a table, { regex = '...', role = \"...\" }, gives its role in that story; lines of one session are those with the same process id (or <F-SESSION>). One attempt counts once, however many lines tell of it: a filter lists an attempt's steps in attempt, each pattern names its step, and lines of one connection telling those steps in order are one failure.
";

const MODES: &str = "
mode = \"NAME\" in a jail selects a mode of its filter. normal is the base set: the top-level failregex and ignoreregex. Any other mode adds its own failregex and ignoreregex, tried before the base set's, and those of the modes it includes. A mode without patterns of its own is a pure combination, like sshd's aggressive = normal + ddos + extra.
";

const HOST_RULE: &str = "
The banned address must be the one the line's structure puts there, never text the attacker chose. Anchor patterns (^...$), and capture <HOST> where the service writes the peer's address, after every field an attacker controls (user names, URLs, headers, HELO names, paths, passwords, commands) has been matched by something that cannot swallow the real address: a greedy .* before <HOST> lets a user name such as \"x from 203.0.113.9\" choose the ban. Each shipped filter's header says how its patterns follow this rule (its host rule).

Where attacker text comes before the address, anchor the pattern at the end of the line with a tail attacker text cannot imitate: fields that always follow the client, quote-free or one-token fields. Where attacker text sits on both sides and may hold the structure's delimiters, the line may have been written by either of two clients: let it not match.

Bound captures against every message of the service that begins the same way, not only the one the pattern is for: vsftpd ends its OK LOGIN line with the anonymous password, so a FAIL LOGIN pattern whose user field may hold a quote matches an OK LOGIN line that ends in a forged FAIL LOGIN.

A cut line has no end. A line as long as the service ever writes (line_limit), one jailwarden cut at 64 KiB, or one journald cut at its LineMax= (_LINE_BREAK=line-max) is the head of a longer line: $ does not match at the cut and a host may not end there. A pattern that needs the line's end then does not match; one that does not still does, if its host lies before the cut. A jail's own line_limit lowers the filter's, for a relay (a syslog daemon) that cuts shorter. line_limit is compared with the line as read (the file line; for the journal, the rendered HOSTNAME IDENTIFIER[PID]: MESSAGE), which errs on the side of cut when a syslog head was added.

For journal entries use journal_match terms journald sets itself; journal_host_field takes the host from a trusted field instead of the message.
";

const DATES: &str = "
File lines: a failure's time is the line's own date, read where the format puts it: at the start of the line (syslog, ISO 8601 / RFC 3339, bracketed, epoch seconds, and more; after a syslog <PRI>), or, for formats that put it elsewhere, right where the filter's date_after pattern ends (an access log's bracket after the user field: <ACCESS_DATE>). A date anywhere else on the line is text: in an access log the user field, filled from any Authorization header, comes before the real date, and a date written there would date the line to a time long gone, so the attack would never count. A line without a date where its format puts one counts as read now.

Journal entries use the entry's realtime (when journald received it), never a date written in the message.
";

const TESTING: &str = "
jailwarden test-filter NAME LOG runs a filter over a log file (or - for standard input) and prints the failures found, which pattern matched how often, and lines missed. --mode selects a mode; --format tsv prints LINE, HOST and TIME of every failure, --format json one document. On a terminal it shows a progress line while it reads large files.
";

const TESTING_EXAMPLE: &str = "
jailwarden test-filter sshd /var/log/auth.log
jailwarden test-filter ./myservice.toml /var/log/myservice.log --format tsv
journalctl -u nginx -o short-iso | jailwarden test-filter nginx-http-auth -
";

const EXAMPLE: &str = r#"
description = "OpenSSH server"
journal_match = ["_SYSTEMD_UNIT=ssh.service", "+", "_SYSTEMD_UNIT=sshd.service"]
prefregex = '^<SYSLOG_HEAD>sshd<SYSLOG_TAIL><F-CONTENT>.+</F-CONTENT>$'
failregex = [
  '^Failed \S+ for (?:invalid user )?<F-USER>\S*</F-USER> from <HOST><PORT>?(?: ssh\d*)?$',
  { regex = '^Connection from <HOST><PORT>$', role = "note" },
  { regex = '^Accepted \S+ for <F-USER>\S+</F-USER> from <HOST>', role = "success" },
]

[modes.ddos]
failregex = ['^Did not receive identification string from <HOST><PORT>?$']

[modes.aggressive]
include = ["ddos"]
"#;
