//! Every configuration and filter key, in one table: the reader takes its
//! lists of known keys from here, and jailwarden.toml(5) and
//! jailwarden-filter(5) are generated from it, so the page and the code
//! cannot disagree. A key added to the reader goes here first (with its
//! default, meaning and an example value); tests load every example and
//! check that each key is read and documented.

/// When a changed `[daemon]` key takes effect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applies {
    /// On `jailwarden reload` (SIGHUP, `Reload()`).
    OnReload,
    /// Only when the daemon starts; a reload keeps the running value (and
    /// says so in its journal event).
    AtStart,
}

/// One key.
#[derive(Debug, Clone, Copy)]
pub struct Key {
    pub name: &'static str,
    /// The default as the page shows it (`-`: none).
    pub default: &'static str,
    /// What it does, for the page (plain text, one paragraph).
    pub meaning: &'static str,
    /// A valid TOML value (tests load it; the page shows it).
    pub example: &'static str,
    pub applies: Applies,
}

const fn key(
    name: &'static str,
    default: &'static str,
    example: &'static str,
    meaning: &'static str,
) -> Key {
    Key {
        name,
        default,
        meaning,
        example,
        applies: Applies::OnReload,
    }
}

const fn at_start(k: Key) -> Key {
    Key {
        applies: Applies::AtStart,
        ..k
    }
}

/// The names of `keys`, for the reader's unknown-key checks.
pub fn names(keys: &[Key]) -> Vec<&'static str> {
    keys.iter().map(|k| k.name).collect()
}

/// A table of keys as the pages show it.
#[derive(Debug, Clone, Copy)]
pub struct Section {
    /// How it is written, e.g. `[daemon]`.
    pub title: &'static str,
    pub intro: &'static str,
    pub keys: &'static [Key],
}

/// Top-level tables of jailwarden.toml and jail.d files.
pub const TOP: &[Key] = &[
    key(
        "daemon",
        "-",
        "{ backend = \"nftables\" }",
        "The daemon's own settings.",
    ),
    key(
        "defaults",
        "-",
        "{ bantime = \"1h\" }",
        "Jail keys every jail inherits.",
    ),
    key(
        "jails",
        "-",
        "{ sshd = { port = \"ssh\" } }",
        "One table per jail, [jails.NAME].",
    ),
    key(
        "fleet",
        "-",
        "{ url = \"redis://127.0.0.1:6379\", host = \"web1\" }",
        "Share bans with other hosts through Redis or Valkey ([fleet]).",
    ),
];

/// `[fleet]`.
pub const FLEET: &[Key] = &[
    at_start(key(
        "url",
        "-",
        "\"rediss://fleet.example.net:6379\"",
        "The Redis (or Valkey) server: redis://[USER@]HOST[:PORT][/DB], redis+unix:///PATH[?user=USER] for a local socket, or rediss://[USER@]HOST[:PORT] for TLS (the server's certificate checked against the system's CAs, or ca_file). USER is this host's ACL user. Never a password: see password_file. Required.",
    )),
    at_start(key(
        "password_file",
        "-",
        "\"/etc/jailwarden/fleet.password\"",
        "A file holding the password of the ACL user (or of requirepass), first line. Absolute; readable by the daemon only.",
    )),
    at_start(key(
        "ca_file",
        "the system's CAs",
        "\"/etc/jailwarden/fleet-ca.pem\"",
        "With a rediss:// url: the PEM certificates of the CAs the server's certificate must chain to, instead of the system's store (a private CA, or a self-signed server certificate). Absolute.",
    )),
    at_start(key(
        "sentinels",
        "none",
        "[\"redis://10.0.0.5:26379\", \"redis://10.0.0.6:26379\"]",
        "Redis Sentinels (redis://HOST:PORT, or rediss:// with TLS) that know where the master is: then url is redis://[USER@]NAME (or rediss://), NAME the master's name in the Sentinels' configuration, and the link asks them on every (re)connect, so it follows a failover. No password for the Sentinels themselves.",
    )),
    at_start(key(
        "host",
        "the host name",
        "\"web1\"",
        "This host's name in the fleet: it writes only the keys jailwarden:bans:HOST, jailwarden:active:HOST and jailwarden:member:HOST. Letters, digits, '-', '_', '.'.",
    )),
    key(
        "publish",
        "every jail",
        "[\"sshd\"]",
        "Jails whose bans this host shares. Bans received from other hosts are never published again.",
    ),
    key(
        "accept",
        "true",
        "false",
        "Apply the other hosts' bans (in the sets fleet-inet and fleet-inet6, apart from the jails' own).",
    ),
    key(
        "trust",
        "every fleet member",
        "[\"web2\", \"db1\"]",
        "Origins whose bans are applied; others are counted as refused.",
    ),
    key(
        "max_bantime",
        "\"1d\"",
        "\"6h\"",
        "Remote bans last at most this long here (permanent ones too).",
    ),
    key(
        "quorum",
        "1",
        "2",
        "How many distinct origins must ban an address before it is banned here.",
    ),
    key(
        "max_rate",
        "1000",
        "200",
        "Remote bans accepted per origin and second, with a burst of a minute's worth; the rest are refused (counted and logged).",
    ),
];

/// `[daemon]`.
pub const DAEMON: &[Key] = &[
    at_start(key(
        "backend",
        "\"nftables\"",
        "\"none\"",
        "Where bans go: \"nftables\" (sets in table inet jailwarden, over netlink) or \"none\" (detect, count and log only).",
    )),
    key(
        "journal_directory",
        "-",
        "\"/var/log/journal/remote\"",
        "Read journal files from this directory instead of the local journal (e.g. what systemd-journal-remote receives). Absolute.",
    ),
    key(
        "filter_dirs",
        "[]",
        "[\"filters.local\"]",
        "Directories searched for filters before /etc/jailwarden/filters and /usr/share/jailwarden/filters; relative paths are relative to the main configuration file's directory. check-config and the daemon use them; filters and test-filter use them when given --config.",
    ),
    key(
        "dbpurgeage",
        "\"1d\"",
        "\"30d\"",
        "How long ended bans are kept in the ban history (what increment and overalljails look back on).",
    ),
    at_start(key(
        "flush_on_exit",
        "false",
        "true",
        "Remove table inet jailwarden when the daemon stops. Normally bans stay in the kernel (their timeouts run on) across restarts and upgrades.",
    )),
    at_start(key(
        "socket",
        "\"/run/jailwarden/control.sock\"",
        "\"/run/jailwarden/control.sock\"",
        "The control socket the daemon creates when systemd passes none (with jailwarden.socket, the socket unit decides). Clients do not read this key: they use --socket or $JAILWARDEN_SOCKET.",
    )),
    at_start(key(
        "dbus",
        "true",
        "false",
        "Also serve org.jailwarden1 on the system bus; false: the control socket only.",
    )),
    at_start(key(
        "state_dir",
        "\"/var/lib/jailwarden\"",
        "\"/var/lib/jailwarden\"",
        "Where the state database lives. --state-dir and $STATE_DIRECTORY (set by the unit's StateDirectory=) win over it: under systemd, change StateDirectory= in a drop-in instead; the daemon logs a warning when this key is overridden.",
    )),
    at_start(key(
        "recheck",
        "\"60s\"",
        "\"5m\"",
        "How often the firewall is compared with the store and repaired (elements removed or changed behind our back). At least 1s.",
    )),
];

/// Jail keys: `[jails.NAME]` and `[defaults]`.
pub const JAIL: &[Key] = &[
    key(
        "enabled",
        "true",
        "false",
        "A declared jail runs unless this is false (then it reads and bans nothing, but is listed).",
    ),
    key(
        "filter",
        "the jail's name",
        "\"sshd\"",
        "The filter: a name searched along the filter path, or a path to a filter file.",
    ),
    key(
        "mode",
        "\"normal\"",
        "\"aggressive\"",
        "A mode the filter defines (jailwarden filters lists them).",
    ),
    key(
        "journal_match",
        "the filter's",
        "[\"_SYSTEMD_UNIT=ssh.service\", \"+\", \"_SYSTEMD_UNIT=sshd.service\"]",
        "Journal entries the jail reads, as journalctl match terms FIELD=VALUE: terms on the same field are OR'ed, different fields AND'ed, \"+\" starts a new OR'ed group. [] reads no journal. Without it, the filter's own journal_match applies, unless logpath is given. Every group must name its writer by a field journald sets itself and no unprivileged local user can choose: _SYSTEMD_UNIT, _SYSTEMD_SLICE, _SYSTEMD_CGROUP, _UID, _GID, or _TRANSPORT=kernel/audit/driver; a group of only other fields (SYSLOG_IDENTIFIER, MESSAGE_ID, _COMM, _EXE: logger --journald, logger -t or a renamed or copied program write those for anyone) is a configuration error at its first term. Add the service's unit to it (\"_SYSTEMD_UNIT=apache2.service\", \"SYSLOG_IDENTIFIER=apache2\"), or _UID=0 for a root daemon without a unit of its own.",
    ),
    key(
        "logpath",
        "-",
        "[\"/var/log/nginx/access.log\"]",
        "Files to follow, absolute paths or globs (new matches are picked up, rotation by rename or copytruncate handled). A jail with logpath and no journal_match reads no journal.",
    ),
    key(
        "findtime",
        "\"10m\"",
        "\"1h\"",
        "The window in which maxretry failures lead to a ban.",
    ),
    key(
        "maxretry",
        "5",
        "3",
        "Failures within findtime that lead to a ban (1-100000).",
    ),
    key(
        "bantime",
        "\"10m\"",
        "\"1h\"",
        "How long a ban lasts (before increment), or \"permanent\".",
    ),
    key(
        "increment",
        "- (off)",
        "{ factor = 2.0, maxtime = \"1w\" }",
        "Longer bans for repeat offenders: a table of the increment keys below.",
    ),
    key(
        "ignoreip",
        "[]",
        "[\"127.0.0.0/8\", \"::1\", \"192.0.2.0/24\"]",
        "Addresses and CIDR ranges (IPv4, IPv6) never banned.",
    ),
    key(
        "trusted_proxies",
        "[]",
        "[\"10.0.0.0/8\", \"2001:db8:1::/48\"]",
        "Addresses and CIDR ranges of the reverse proxies in front of the service. Where a filter reads an X-Forwarded-For list (sogo-auth, roundcube-auth, guacamole), the client is the rightmost address that is not one of these: each trusted proxy appended the address it saw, everything left of the client is the client's own say. A trusted proxy is never banned, and a request whose every hop is trusted (or whose next hop is no address) counts for no one.",
    ),
    key(
        "ignoreself",
        "true",
        "false",
        "Never ban this host's own addresses.",
    ),
    key(
        "usedns",
        "\"no\"",
        "\"warn\"",
        "What to do when <HOST> captured a host name: \"no\" logs it and counts nothing; \"yes\" resolves it and counts every address; \"warn\" does so with a warning. The attacker controls their DNS: keep \"no\" unless a service logs only names.",
    ),
    key(
        "maxmatches",
        "maxretry",
        "10",
        "Matched lines kept per address, for actions that show them (mail); 0-1000.",
    ),
    key(
        "maxtracked",
        "50000",
        "100000",
        "Addresses tracked with failures per jail; under a flood the oldest are forgotten first, so memory stays bounded.",
    ),
    key(
        "port",
        "- (all ports)",
        "\"ssh,2222\"",
        "Limit the firewall rule to these ports: names from /etc/services, numbers, ranges \"8000:8080\", comma-separated, a string or a list. Without port the ban covers every port and protocol.",
    ),
    key(
        "protocol",
        "\"tcp\"",
        "\"udp\"",
        "\"tcp\", \"udp\" or \"all\" (both). Only used with port: a ban without port blocks every protocol.",
    ),
    key(
        "blocktype",
        "\"drop\"",
        "\"reject\"",
        "What the firewall rule does: \"drop\" or \"reject\".",
    ),
    key(
        "ipv6_prefix",
        "128",
        "64",
        "Ban IPv6 attackers by prefix of this length (16-128; 64 covers a typical allocation).",
    ),
    key(
        "set_size",
        "0 (no limit)",
        "65536",
        "Cap on elements per kernel set; 0 for none.",
    ),
    key(
        "action",
        "[]",
        "[{ type = \"command\", ban = [\"logger\", \"banned {address}\"] }]",
        "Actions besides the firewall, as [[jails.NAME.action]] tables (see ACTIONS). Lists are not merged: the last layer with action gives the whole list; [] turns inherited actions off.",
    ),
    key(
        "line_limit",
        "the filter's",
        "8096",
        "Bytes: lines this long or longer may have been cut by a relay (a syslog daemon's message size: rsyslog's $MaxMessageSize is 8096 by default, busybox syslogd and many UDP relays cut at 1024); their end is never taken for the end of the line. The lower of this and the filter's line_limit applies.",
    ),
];

/// `[jails.NAME.increment]`.
pub const INCREMENT: &[Key] = &[
    key(
        "enabled",
        "true",
        "false",
        "false turns an inherited increment off.",
    ),
    key(
        "factor",
        "1.0",
        "2.0",
        "A repeat offender gets bantime × factor × 2^(previous bans of the address), never less than bantime; a first offence, bantime (as Fail2ban).",
    ),
    key(
        "multipliers",
        "-",
        "[1, 2, 4, 8, 16]",
        "Instead of 2^n: bantime × factor × multipliers[n] for an address banned n times before (the last one repeats; a first offence gets bantime).",
    ),
    key(
        "maxtime",
        "bantime × 168, at most 5w",
        "\"1w\"",
        "The longest ban increment makes.",
    ),
    key(
        "rndtime",
        "\"0s\"",
        "\"5m\"",
        "Up to this much random time added, so a botnet cannot predict the unban.",
    ),
    key(
        "overalljails",
        "false",
        "true",
        "Count the address's previous bans in every jail, not only this one.",
    ),
];

/// Keys every action has.
const ACTION_COMMON: [Key; 2] = [
    key(
        "type",
        "required",
        "\"command\"",
        "\"command\", \"hosts-deny\" or \"mail\".",
    ),
    key(
        "name",
        "TYPE#N",
        "\"ipset\"",
        "A label for events and errors, unique per jail (letters, digits, '-', '_', '.').",
    ),
];

/// `type = "command"`.
pub const COMMAND_ACTION: &[Key] = &[
    ACTION_COMMON[0],
    ACTION_COMMON[1],
    key(
        "ban",
        "required",
        "[\"ipset\", \"add\", \"-exist\", \"jw-{jail}-{family}\", \"{net}\", \"timeout\", \"{timeout}\"]",
        "The program and its arguments, run for each ban (never through a shell; the program itself takes no placeholders).",
    ),
    key(
        "unban",
        "-",
        "[\"ipset\", \"del\", \"-exist\", \"jw-{jail}-{family}\", \"{net}\"]",
        "Run when a ban ends or is lifted.",
    ),
    key(
        "start",
        "-",
        "[[\"ipset\", \"create\", \"-exist\", \"jw-{jail}-inet\", \"hash:net\", \"timeout\", \"0\"]]",
        "Run when the jail starts: one argv, or a list of argvs run in order. Only {jail}.",
    ),
    key(
        "stop",
        "-",
        "[\"ipset\", \"destroy\", \"jw-{jail}-inet\"]",
        "Run when the jail stops. Only {jail}.",
    ),
    key(
        "timeout",
        "\"10s\"",
        "\"30s\"",
        "A command running longer is killed with its whole process group (at most 1d).",
    ),
    key(
        "family",
        "- (both)",
        "\"inet\"",
        "Only bans of this family: \"inet\" (IPv4) or \"inet6\" (IPv6).",
    ),
    key(
        "concurrency",
        "4",
        "1",
        "Commands run at once (1-64); the commands of one address always run in order.",
    ),
    key(
        "restore",
        "true",
        "false",
        "At start, run ban again for the bans in force (for targets that do not survive a reboot, like ipsets).",
    ),
];

/// `type = "hosts-deny"`.
pub const HOSTS_DENY_ACTION: &[Key] = &[
    ACTION_COMMON[0],
    ACTION_COMMON[1],
    key(
        "path",
        "\"/etc/hosts.deny\"",
        "\"/etc/hosts.deny\"",
        "The file; jailwarden keeps one marked block per jail in it, replaced atomically under a lock.",
    ),
    key(
        "daemon",
        "\"ALL\"",
        "\"sshd, vsftpd\"",
        "The tcp_wrappers daemon list the lines name.",
    ),
];

/// `type = "mail"`.
pub const MAIL_ACTION: &[Key] = &[
    ACTION_COMMON[0],
    ACTION_COMMON[1],
    key(
        "dest",
        "required",
        "[\"root@localhost\"]",
        "Recipients: a plain address or a list.",
    ),
    key(
        "sender",
        "-",
        "\"jailwarden@localhost\"",
        "The From: address (default: sendmail's).",
    ),
    key(
        "sendmail",
        "\"/usr/sbin/sendmail\"",
        "\"/usr/sbin/sendmail\"",
        "The sendmail program, run with -t.",
    ),
    key(
        "max_per_hour",
        "10",
        "20",
        "Mails per hour at most (1-10000); bans beyond are summarized in the next mail.",
    ),
    key(
        "timeout",
        "\"30s\"",
        "\"1m\"",
        "sendmail running longer is killed.",
    ),
];

/// A filter file's top level.
pub const FILTER: &[Key] = &[
    key(
        "attempt",
        "[]",
        "[\"user\", \"pam\", \"result\", \"limit\"]",
        "The steps of one authentication attempt, in the order the service logs them for one connection (at most 16). Patterns name their step (step = \"...\"); the lines of one connection telling the steps of one attempt in this order count once.",
    ),
    key(
        "description",
        "\"\"",
        "\"OpenSSH server\"",
        "One line for jailwarden filters.",
    ),
    key(
        "journal_match",
        "[]",
        "[\"_SYSTEMD_UNIT=ssh.service\", \"+\", \"_SYSTEMD_UNIT=sshd.service\"]",
        "The journal entries a jail using this filter reads unless it sets its own journal_match or logpath. Every group must name its writer by a field journald sets itself and no unprivileged local user can choose: _SYSTEMD_UNIT, _SYSTEMD_SLICE, _SYSTEMD_CGROUP, _UID, _GID, or _TRANSPORT=kernel/audit/driver; a group of only other fields (SYSLOG_IDENTIFIER, MESSAGE_ID, _COMM, _EXE: logger --journald, logger -t or a renamed or copied program write those for anyone) is a configuration error at its first term. Add the service's unit to it (\"_SYSTEMD_UNIT=apache2.service\", \"SYSLOG_IDENTIFIER=apache2\"), or _UID=0 for a root daemon without a unit of its own.",
    ),
    key(
        "prefregex",
        "-",
        "'^<SYSLOG_HEAD>sshd<SYSLOG_TAIL><F-CONTENT>.+</F-CONTENT>$'",
        "A prefix every line must match first; failregex and ignoreregex then match what <F-CONTENT>...</F-CONTENT> captured. Lines it does not match are missed.",
    ),
    key(
        "failregex",
        "required (here or in a mode)",
        "['^Failed password for <F-USER>\\S+</F-USER> from <HOST> port \\d+ ssh2$', { regex = '^Connection from <HOST> port \\d+', role = \"note\" }]",
        "The patterns: strings, or tables { regex = '...', role = \"...\" } (see ROLES). Each must capture <HOST> or <ADDR>, unless its role takes the host from the session.",
    ),
    key(
        "ignoreregex",
        "[]",
        "['^Failed password for invalid user backup ']",
        "Lines matching one of these are ignored even if a failregex matches.",
    ),
    key(
        "snippets",
        "-",
        "{ PORT = '(?: port \\d+)' }",
        "Named pieces for patterns: <NAME> in a pattern is replaced by snippets.NAME, else by NAME from the first common.toml on the filter path.",
    ),
    key(
        "modes",
        "-",
        "{ aggressive = { include = [\"ddos\"] }, ddos = { failregex = ['^Did not receive identification string from <HOST>$'] } }",
        "[modes.NAME] tables (see MODES); normal is the base set.",
    ),
    key(
        "session_timeout",
        "\"10m\"",
        "\"5m\"",
        "How long a connection's story (keyed by the process id) is kept without news.",
    ),
    key(
        "journal_host_field",
        "-",
        "\"JAILWARDEN_ADDRESS\"",
        "For journal entries: take the host from this field instead of the message (jailwarden's own events, for recidive).",
    ),
    key(
        "journal_own_events",
        "false",
        "true",
        "The filter reads jailwarden's own events from the journal (recidive): a jail using it reads only entries the daemon wrote itself, whatever its journal_match says, because the daemon adds its own _UID to every group. Other entries with the same MESSAGE_ID, which any local user can write, are never read.",
    ),
    key(
        "date_after",
        "- (the date starts the line)",
        "'^(?:[^\"\\\\]|\\\\.)*\\['",
        "Where a file line's date is: it begins right where this pattern, matched from the line's start, ends. Without it the date must start the line (after a syslog <PRI> or a [). Never the first date anywhere: in an access log the user field (any Authorization header) comes before the date, in a JSON log the client's fields may; a date written there would date the line. Journal entries always use the entry's time.",
    ),
    key(
        "line_limit",
        "-",
        "2047",
        "Bytes: the longest line the service writes (it cuts longer ones itself: nginx's error log 2047, Apache's 8190, sshd 500). A line this long or longer may have been cut, like one jailwarden cut at 64 KiB or journald at its LineMax=: its end is not an end ($ does not match there, a host may not end there), so attacker text pushed up to the cut never passes for the line's structure.",
    ),
];

/// A failregex entry written as a table.
pub const PATTERN: &[Key] = &[
    key(
        "regex",
        "required",
        "'^Failed password for <F-USER>\\S+</F-USER> from <HOST> port \\d+ ssh2$'",
        "The pattern.",
    ),
    key(
        "role",
        "\"fail\"",
        "\"pending\"",
        "What a match means for the connection's story (see ROLES).",
    ),
    key(
        "step",
        "-",
        "\"pam\"",
        "The step of an attempt (a name from attempt) this line tells.",
    ),
];

/// `[modes.NAME]` in a filter file.
pub const MODE: &[Key] = &[
    key(
        "description",
        "\"\"",
        "\"also connections dropped before authentication\"",
        "Shown by jailwarden filters.",
    ),
    key(
        "include",
        "[]",
        "[\"ddos\", \"extra\"]",
        "Other modes whose patterns this mode adds (depth first, each once).",
    ),
    key(
        "failregex",
        "[]",
        "['^Did not receive identification string from <HOST>$']",
        "Patterns added to the base set; a mode's patterns are tried before the base set's.",
    ),
    key(
        "ignoreregex",
        "[]",
        "['^Connection closed by <HOST> port \\d+ \\[preauth\\]$']",
        "Ignore patterns added to the base set.",
    ),
];

/// The tables of jailwarden.toml(5), in page order.
pub const CONFIG_SECTIONS: &[Section] = &[
    Section {
        title: "top level",
        intro: "Tables a configuration file may have.",
        keys: TOP,
    },
    Section {
        title: "[daemon]",
        intro: "Keys marked \"at start\" are read when the daemon starts: a reload keeps the running value and its journal event names the changed keys that wait for a restart. The others apply on reload.",
        keys: DAEMON,
    },
    Section {
        title: "[jails.NAME], [defaults]",
        intro: "NAME is 1-64 letters, digits, '-', '_' or '.'. Every key may also be set in [defaults], which every jail inherits. All apply on reload.",
        keys: JAIL,
    },
    Section {
        title: "[jails.NAME.increment], [defaults.increment]",
        intro: "Present (and not enabled = false), it makes bans of repeat offenders longer.",
        keys: INCREMENT,
    },
    Section {
        title: "action type = \"command\"",
        intro: "Runs programs; every argument may hold placeholders.",
        keys: COMMAND_ACTION,
    },
    Section {
        title: "action type = \"hosts-deny\"",
        intro: "tcp_wrappers' hosts.deny, for services that still read it.",
        keys: HOSTS_DENY_ACTION,
    },
    Section {
        title: "[fleet]",
        intro: "Bans shared with other hosts through Redis streams (README: Fleet). Keys marked \"at start\" are read when the daemon starts; the others apply on reload.",
        keys: FLEET,
    },
    Section {
        title: "action type = \"mail\"",
        intro: "A mail per ban through sendmail -t, with the matched lines, rate-limited.",
        keys: MAIL_ACTION,
    },
];

/// The tables of jailwarden-filter(5).
pub const FILTER_SECTIONS: &[Section] = &[
    Section {
        title: "top level",
        intro: "Keys of a filter file.",
        keys: FILTER,
    },
    Section {
        title: "failregex = [{ regex = ..., role = ..., step = ... }]",
        intro: "A pattern written as a table, with its role and step.",
        keys: PATTERN,
    },
    Section {
        title: "[modes.NAME]",
        intro: "A mode adds patterns to the base set.",
        keys: MODE,
    },
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_per_table() {
        for s in CONFIG_SECTIONS.iter().chain(FILTER_SECTIONS) {
            let mut n = names(s.keys);
            n.sort();
            let len = n.len();
            n.dedup();
            assert_eq!(n.len(), len, "a key twice in {}", s.title);
        }
    }

    #[test]
    fn every_key_is_explained() {
        for s in CONFIG_SECTIONS.iter().chain(FILTER_SECTIONS) {
            for k in s.keys {
                assert!(!k.meaning.is_empty() && !k.example.is_empty(), "{}", k.name);
                assert!(!k.default.is_empty(), "{} has no default shown", k.name);
                toml::from_str::<toml::Table>(&format!("v = {}", k.example))
                    .unwrap_or_else(|e| panic!("{}: example is not TOML: {e}", k.name));
            }
        }
    }
}
