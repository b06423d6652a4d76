//! jailwarden.toml(5): every key from `config::keys` (the reader's own
//! table), with the layering, durations, journal matches, actions and
//! placeholders around it.

use super::roff::{esc, example, header, paragraphs, section};
use crate::ban::actions::template::{BAN_VARS, JAIL_VARS, Var};
use crate::config::keys::CONFIG_SECTIONS;

pub fn page() -> String {
    let mut out = header(
        "JAILWARDEN.TOML",
        "5",
        "jailwarden.toml",
        "jailwarden configuration: daemon settings, jails, actions",
    );
    out.push_str(
        ".SH SYNOPSIS\n/etc/jailwarden/jailwarden.toml\n.br\n/etc/jailwarden/jail.d/*.toml\n",
    );
    out.push_str(".SH DESCRIPTION\n");
    paragraphs(&mut out, DESCRIPTION);
    out.push_str(".SH LAYERING\n");
    paragraphs(&mut out, LAYERING);
    out.push_str(".SH DURATIONS\n");
    paragraphs(&mut out, DURATIONS);
    out.push_str(".SH KEYS\n");
    for s in CONFIG_SECTIONS {
        section(&mut out, s);
    }
    out.push_str(".SH JOURNAL MATCHES\n");
    paragraphs(&mut out, JOURNAL_MATCH);
    example(&mut out, JOURNAL_MATCH_EXAMPLE);
    out.push_str(".SH ACTIONS\n");
    paragraphs(&mut out, ACTIONS);
    out.push_str(".SS Placeholders\n");
    paragraphs(&mut out, PLACEHOLDERS);
    for v in BAN_VARS {
        let only = if JAIL_VARS.contains(v) {
            " Also in start and stop."
        } else {
            ""
        };
        out.push_str(&format!(
            ".TP\n\\fB{{{}}}\\fR, \\fB{}\\fR\n{}{only}\n",
            v.name(),
            esc(&v.env_name()),
            esc(meaning(*v))
        ));
    }
    out.push_str(".SH STATE DIRECTORY\n");
    paragraphs(&mut out, STATE);
    out.push_str(".SH EXAMPLE\n");
    example(&mut out, EXAMPLE);
    out.push_str(".SH SEE ALSO\n");
    out.push_str("\\fBjailwarden\\fR(8), \\fBjailwarden\\-filter\\fR(5), \\fBsystemd.journal\\-fields\\fR(7), \\fBjournalctl\\fR(1), \\fBhosts.deny\\fR(5)\n");
    out
}

fn meaning(v: Var) -> &'static str {
    match v {
        Var::Address => {
            "The banned address as the daemon shows it: 192.0.2.7, 2001:db8::1, or the prefix (2001:db8::/64) for prefix bans."
        }
        Var::Net => "The banned network, always with its prefix length: 192.0.2.7/32.",
        Var::Family => "inet or inet6.",
        Var::Jail => "The jail's name.",
        Var::Bantime => "The ban's length in seconds, or permanent.",
        Var::Timeout => {
            "Seconds the ban has left when the command runs (at least 1); 0 for permanent bans (ipset's and nft's \"no timeout\")."
        }
        Var::Failures => "Failures that led to the ban (0 for bans by hand).",
    }
}

const DESCRIPTION: &str = "
jailwarden(8) reads its configuration from /etc/jailwarden/jailwarden.toml (another file with --config), then every *.toml file in the jail.d directory beside it. The files are TOML. [daemon] holds the daemon's settings, [defaults] jail keys every jail inherits, and each [jails.NAME] table declares a jail: a filter, what it reads (journal entries or log files), and when and how long to ban.

Every problem (unknown keys, with a suggestion when one is close, bad values, regexes, addresses, durations, placeholders) is reported as file:line:column: message. jailwarden check-config prints them all and exits 2; the daemon does not start with them (exit 2, not restarted by systemd), and a reload keeps the running configuration. Key names follow Fail2ban's where Fail2ban has them.
";

const LAYERING: &str = "
Files are read in order: jailwarden.toml, then jail.d/*.toml by name. For each jail, a key's value comes from the last place that sets it: the jail's tables in later files, then in earlier ones, then [defaults] (later files first again). Keys are layered one by one, so a jail.d file can change bantime alone. Tables such as increment are layered key by key too. Lists are not merged: the last layer that has the key gives the whole list (action = [] turns inherited actions off).

A jail exists once a [jails.NAME] table names it in any file; enabled = false keeps it listed but idle.
";

const DURATIONS: &str = "
Durations are strings of numbers with units s, m, h, d, w, combined as \"1h 30m\", or integers (seconds): \"30s\", \"10m\", \"1d\", 600. bantime also takes \"permanent\".
";

const JOURNAL_MATCH: &str = "
journal_match lists journalctl(1) match terms FIELD=VALUE, applied by the journal itself. Terms on the same field are alternatives (OR), terms on different fields must all hold (AND), and \"+\" starts another group OR'ed with the previous ones. Use fields journald sets itself (_SYSTEMD_UNIT, _COMM, _TRANSPORT, _UID; see systemd.journal-fields(7)), not fields the logging program chooses such as SYSLOG_IDENTIFIER, which any local user can forge. When a jail has no journal_match, its filter's applies, unless the jail has logpath only; journal_match = [] reads no journal.
";

const JOURNAL_MATCH_EXAMPLE: &str = r#"
journal_match = ["_SYSTEMD_UNIT=ssh.service", "+", "_SYSTEMD_UNIT=sshd.service"]
journal_match = ["_SYSTEMD_UNIT=postfix@-.service", "_COMM=smtpd"]
"#;

const ACTIONS: &str = "
Besides the firewall backend, a jail may run actions on each ban and unban: [[jails.NAME.action]] (or [[defaults.action]]) tables, several of them, each with a type. Action failures are journal events and never stop the daemon or undo the ban. The hardened unit gives the daemon little besides CAP_NET_ADMIN; actions that need more get it from a drop-in (examples in /usr/share/doc/jailwarden/examples/: hosts-deny.conf.example, mail.conf.example, commands.conf.example; copy one to /etc/systemd/system/jailwarden.service.d/ without .example and restart).
";

const PLACEHOLDERS: &str = "
Arguments of ban and unban commands may hold these placeholders; start and stop only {jail}. {{ and }} are literal braces. The program (first argument) is fixed. The same values are in the command's environment.
";

const STATE: &str = "
The state database is jailwarden.sqlite3 in the state directory. Its place: jailwarden daemon --state-dir, else $STATE_DIRECTORY, else [daemon] state_dir, else /var/lib/jailwarden. The shipped unit sets StateDirectory=jailwarden, so under systemd $STATE_DIRECTORY is /var/lib/jailwarden and state_dir is not used: the daemon logs a warning when it overrides a state_dir that differs. To move it, change StateDirectory= in a drop-in.
";

const EXAMPLE: &str = r#"
[daemon]
backend = "nftables"

[defaults]
findtime = "10m"
maxretry = 5
bantime = "10m"
ignoreip = ["127.0.0.0/8", "::1"]

[jails.sshd]
port = "ssh"
maxretry = 3

[jails.sshd.increment]
factor = 2.0
maxtime = "1w"

[jails.nginx-http-auth]
logpath = ["/var/log/nginx/error.log"]
port = "http,https"

[[jails.sshd.action]]
type = "mail"
dest = "root@localhost"
"#;
