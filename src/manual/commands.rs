//! jailwarden(8): every command and option, from the clap definitions
//! (rendered by clap_mangen), with the prose a daemon's page needs.

use clap_mangen::Man;

use super::roff::{esc, example, header, paragraphs};
use crate::events;

/// The page, for the binary's command line.
pub fn page(cmd: clap::Command) -> String {
    let mut cmd = cmd.disable_help_subcommand(true);
    cmd.build();
    let mut out = header(
        "JAILWARDEN",
        "8",
        "jailwarden",
        "intrusion prevention: follows the journal and log files, bans in nftables sets",
    );

    out.push_str(".SH SYNOPSIS\n");
    let subs = visible(&cmd);
    for (i, sub) in subs.iter().enumerate() {
        if i > 0 {
            out.push_str(".br\n");
        }
        out.push_str(&synopsis(sub));
    }

    out.push_str(".SH DESCRIPTION\n");
    paragraphs(&mut out, DESCRIPTION);

    out.push_str(".SH COMMANDS\n");
    for sub in &subs {
        command(&mut out, sub);
    }

    out.push_str(".SH FILTER SEARCH PATH\n");
    paragraphs(&mut out, FILTER_PATH);
    out.push_str(".SH CONNECTING TO THE DAEMON\n");
    paragraphs(&mut out, CONNECTING);
    out.push_str(".SH EXIT STATUS\n");
    for (code, meaning) in EXIT {
        out.push_str(&format!(".TP\n\\fB{code}\\fR\n{}\n", esc(meaning)));
    }
    out.push_str(".SH ENVIRONMENT\n");
    for (var, meaning) in ENVIRONMENT {
        out.push_str(&format!(".TP\n\\fB{}\\fR\n{}\n", esc(var), esc(meaning)));
    }
    out.push_str(".SH SIGNALS\n");
    for (sig, meaning) in SIGNALS {
        out.push_str(&format!(".TP\n\\fB{sig}\\fR\n{}\n", esc(meaning)));
    }
    out.push_str(".SH FILES\n");
    for (file, meaning) in FILES {
        out.push_str(&format!(".TP\n\\fI{}\\fR\n{}\n", esc(file), esc(meaning)));
    }
    out.push_str(".SH JOURNAL\n");
    paragraphs(&mut out, JOURNAL);
    for (id, meaning) in journal_events() {
        out.push_str(&format!(".TP\n\\fBMESSAGE_ID={id}\\fR\n{}\n", esc(meaning)));
    }
    out.push_str(".SH EXAMPLES\n");
    for (i, (what, text)) in EXAMPLES.iter().enumerate() {
        if i > 0 {
            out.push_str(".PP\n");
        }
        out.push_str(&format!("{}\n", esc(what)));
        example(&mut out, text);
    }
    out.push_str(".SH SEE ALSO\n");
    out.push_str(
        "\\fBjailwarden.toml\\fR(5), \\fBjailwarden\\-filter\\fR(5), \\fBsystemd.service\\fR(5), \
         \\fBjournalctl\\fR(1), \\fBnft\\fR(8), \\fBbusctl\\fR(1)\n",
    );
    out
}

/// Subcommands a user sees (hidden ones such as `generate` stay out),
/// nested ones flattened as `fleet status`.
fn visible(cmd: &clap::Command) -> Vec<clap::Command> {
    let mut out = Vec::new();
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        if sub.has_subcommands() {
            out.extend(visible(sub));
        } else {
            out.push(sub.clone());
        }
    }
    out
}

/// A section of clap_mangen's rendering of `cmd`, without its `.SH` line.
fn body(
    render: impl FnOnce(&Man, &mut Vec<u8>) -> std::io::Result<()>,
    cmd: &clap::Command,
) -> String {
    // Every command has -h/--help: said once in the page, not per command.
    let cmd = if cmd.get_arguments().any(|a| a.get_id() == "help") {
        cmd.clone().mut_arg("help", |a| a.hide(true))
    } else {
        cmd.clone()
    };
    let man = Man::new(cmd);
    let mut buf = Vec::new();
    if render(&man, &mut buf).is_err() {
        return String::new();
    }
    let text = String::from_utf8_lossy(&buf).into_owned();
    // Without the section heading, blank lines (vertical space mandoc
    // complains about) and the line breaks around them.
    let mut out = String::new();
    for line in text.lines() {
        if line.starts_with(".SH ") || line.trim().is_empty() {
            continue;
        }
        if line == ".br" && out.ends_with(".br\n") {
            continue;
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// `jailwarden ban [--for DURATION] [--socket PATH] JAIL ADDRESS`: options
/// with their value names (clap_mangen's synopsis leaves those out).
fn synopsis(cmd: &clap::Command) -> String {
    let name = cmd.get_bin_name().unwrap_or(cmd.get_name());
    let mut line = format!("\\fB{}\\fR", esc(name));
    let args: Vec<&clap::Arg> = cmd
        .get_arguments()
        .filter(|a| !a.is_hide_set() && !matches!(a.get_id().as_str(), "help" | "version"))
        .collect();
    for a in args.iter().filter(|a| !a.is_positional()) {
        let Some(long) = a.get_long() else { continue };
        let takes = a.get_num_args().is_some_and(|n| n.takes_values());
        let mut item = format!("\\fB\\-\\-{}\\fR", esc(long));
        if takes {
            let value = a
                .get_value_names()
                .and_then(|v| v.first())
                .map_or_else(|| a.get_id().as_str().to_uppercase(), |v| v.to_string());
            item.push_str(&format!(" \\fI{}\\fR", esc(&value)));
        }
        if a.is_required_set() {
            line.push_str(&format!(" {item}"));
        } else {
            line.push_str(&format!(" [{item}]"));
        }
    }
    for a in args.iter().filter(|a| a.is_positional()) {
        let value = a
            .get_value_names()
            .and_then(|v| v.first())
            .map_or_else(|| a.get_id().as_str().to_uppercase(), |v| v.to_string());
        let many = a.get_num_args().is_some_and(|n| n.max_values() > 1);
        let item = format!("\\fI{}\\fR{}", esc(&value), if many { "..." } else { "" });
        if a.is_required_set() {
            line.push_str(&format!(" {item}"));
        } else {
            line.push_str(&format!(" [{item}]"));
        }
    }
    line.push('\n');
    line
}

fn command(out: &mut String, cmd: &clap::Command) {
    let name = cmd.get_bin_name().unwrap_or(cmd.get_name());
    let short = name.strip_prefix("jailwarden ").unwrap_or(name);
    out.push_str(&format!(".SS {}\n", esc(short)));
    out.push_str(&synopsis(cmd));
    out.push_str(".PP\n");
    if let Some(about) = cmd.get_long_about().or_else(|| cmd.get_about()) {
        paragraphs(out, &about.to_string());
    }
    let has_args = cmd
        .get_arguments()
        .any(|a| !a.is_hide_set() && a.get_id() != "help" && a.get_id() != "version");
    if has_args {
        // clap_mangen's options, in an indented block under the command.
        out.push_str(".RS\n");
        out.push_str(&body(|m, b| m.render_options_section(b), cmd));
        out.push_str(".RE\n");
    }
}

/// Every MESSAGE_ID the daemon logs, with what it means (events.rs).
fn journal_events() -> [(&'static str, &'static str); 8] {
    [
        (
            events::MESSAGE_ID_BAN,
            "[JAIL] Ban ADDRESS for DURATION after N failures; fields JAILWARDEN_JAIL, JAILWARDEN_ADDRESS, JAILWARDEN_BANTIME_USEC (0 = permanent), JAILWARDEN_FAILURES.",
        ),
        (
            events::MESSAGE_ID_UNBAN,
            "[JAIL] Unban ADDRESS (REASON); fields JAILWARDEN_JAIL, JAILWARDEN_ADDRESS, JAILWARDEN_REASON (expired, manual, jail removed).",
        ),
        (
            events::MESSAGE_ID_READY,
            "Ready: sources, bans in force and the control surfaces are up.",
        ),
        (
            events::MESSAGE_ID_RELOAD,
            "The configuration was reloaded. [daemon] keys that only apply at start and changed are named in the message.",
        ),
        (
            events::MESSAGE_ID_CONFIG_ERROR,
            "A configuration problem, one per file:line:column; at start the daemon exits with status 2, on reload the running configuration stays.",
        ),
        (
            events::MESSAGE_ID_REMOTE_BAN,
            "[fleet:ORIGIN] Ban ADDRESS for DURATION (jail JAIL, N failures): a ban shared by fleet host ORIGIN, applied here in the fleet sets; fields JAILWARDEN_ORIGIN, JAILWARDEN_JAIL, JAILWARDEN_ADDRESS, JAILWARDEN_BANTIME_USEC, JAILWARDEN_FAILURES.",
        ),
        (
            events::MESSAGE_ID_BACKEND_ERROR,
            "The firewall backend failed; retried (at most 5 minutes apart). Field JAILWARDEN_BACKEND.",
        ),
        (
            events::MESSAGE_ID_ACTION_ERROR,
            "[JAIL] action LABEL failed: PROBLEM; the ban stands. Fields JAILWARDEN_JAIL, JAILWARDEN_ACTION, JAILWARDEN_ADDRESS (when it concerned one ban).",
        ),
    ]
}

const DESCRIPTION: &str = "
jailwarden follows the systemd journal and plain log files, recognises failed logins and other abuse with per-service filters (jailwarden-filter(5)), counts failures per address in jails, and bans addresses that fail too often in native nftables sets whose elements expire in the kernel. Bans survive restarts and upgrades: the state database is the truth, and the firewall is made equal to it.

The daemon (jailwarden daemon) runs as a Type=notify service (jailwarden.service, socket-activated by jailwarden.socket), as user jailwarden with only CAP_NET_ADMIN. It is controlled over D-Bus (org.jailwarden1 on the system bus, and the same objects on the control socket) and by the client commands below; every ban and unban is a structured journal entry.

The configuration is /etc/jailwarden/jailwarden.toml and the files in /etc/jailwarden/jail.d/ (jailwarden.toml(5)). Offline commands (check-config, filters, test-filter) need no daemon and no privileges beyond reading the files.
";

const FILTER_PATH: &str = "
Filters are found by name along the filter path, first match wins. The daemon and check-config use [daemon] filter_dirs (relative ones resolved against the configuration file's directory), then the filters directory beside the configuration file (/etc/jailwarden/filters), then /usr/share/jailwarden/filters.

filters and test-filter search, in this order: each --filter-dir; the directories in $JAILWARDEN_FILTER_PATH (colon-separated); the configuration's path as above, from --config (default /etc/jailwarden/jailwarden.toml; a missing default file is skipped, a broken one is reported and skipped); when the binary runs from a source checkout (target/*/jailwarden next to the checkout's Cargo.toml), the checkout's config/filters; finally /etc/jailwarden/filters and /usr/share/jailwarden/filters. filters prints the path it searched. A FILTER argument containing a slash or ending in .toml is a file, taken as is.
";

const CONNECTING: &str = "
status, bans, ban, unban, reload and report (and the other client commands) connect to the control socket first: --socket PATH, else $JAILWARDEN_SOCKET, else /run/jailwarden/control.sock. The socket is mode 0600 and belongs to the daemon's user jailwarden (systemd hands /run/jailwarden and the socket to it), so root and user jailwarden connect there. Otherwise they use org.jailwarden1 on the system bus if the name has an owner (a client never starts the daemon through the bus).

Reading (status, bans) is open to everyone on the bus. Changing things (ban, unban, reload, report) needs root, or polkit's action org.jailwarden1.manage for the calling user; without polkit only root may.

Text output is for people and may change; --json output has stable shapes, documented in /usr/share/doc/jailwarden/cli-json.md: fields are only ever added.
";

const EXIT: &[(&str, &str)] = &[
    ("0", "Done."),
    (
        "1",
        "The request was valid but could not be done: the daemon is not running, access denied, the address is not banned or is ignored, the daemon failed or is stopping, a log file is unreadable.",
    ),
    (
        "2",
        "The request is wrong (usage, unknown jail, bad address or duration) or the configuration is (check-config, reload, the daemon at start). Configuration problems are printed as file:line:column: message.",
    ),
];

const ENVIRONMENT: &[(&str, &str)] = &[
    (
        "JAILWARDEN_SOCKET",
        "The control socket client commands connect to (--socket wins).",
    ),
    (
        "JAILWARDEN_FILTER_PATH",
        "Colon-separated directories filters and test-filter search after --filter-dir.",
    ),
    (
        "STATE_DIRECTORY",
        "Set by systemd from StateDirectory=: the daemon's state directory. --state-dir wins over it; it wins over [daemon] state_dir (the daemon warns when it overrides that key).",
    ),
    (
        "LISTEN_FDS, LISTEN_FDNAMES, NOTIFY_SOCKET, WATCHDOG_USEC",
        "From systemd: the control socket (fd name control), readiness and watchdog notifications.",
    ),
    (
        "JAILWARDEN_COMPLETE",
        "Set by the shell completion scripts (bash, zsh, fish) when they ask the binary for candidates; not for interactive use.",
    ),
];

const SIGNALS: &[(&str, &str)] = &[
    (
        "SIGHUP",
        "Reload the configuration (what systemctl reload and jailwarden reload do). On problems the running configuration stays and each problem is logged.",
    ),
    (
        "SIGTERM, SIGINT",
        "Stop. Bans stay in the kernel unless --flush-on-exit or [daemon] flush_on_exit.",
    ),
];

const FILES: &[(&str, &str)] = &[
    (
        "/etc/jailwarden/jailwarden.toml",
        "The main configuration file (jailwarden.toml(5)).",
    ),
    (
        "/etc/jailwarden/jail.d/*.toml",
        "Read after it, in name order; later files win, key by key.",
    ),
    (
        "/etc/jailwarden/filters/, /usr/share/jailwarden/filters/",
        "Local and shipped filters (jailwarden-filter(5)); a local file of the same name wins.",
    ),
    (
        "/var/lib/jailwarden/jailwarden.sqlite3",
        "The state database: bans in force, ban history, failures in their window, journal cursor and file positions.",
    ),
    (
        "/run/jailwarden/control.sock",
        "The control socket (peer-to-peer D-Bus).",
    ),
    (
        "/usr/lib/systemd/system/jailwarden.service, jailwarden.socket",
        "The units. Drop-in examples for actions and logfiles: /usr/share/doc/jailwarden/examples/*.conf.example, to copy to /etc/systemd/system/jailwarden.service.d/ without the .example suffix.",
    ),
    (
        "/usr/share/doc/jailwarden/examples/jail.d/",
        "Example jail.d files with Debian's paths (Apache, nginx, lighttpd, FTP servers, ipset, iptables, hosts.deny, mail).",
    ),
    (
        "/usr/share/doc/jailwarden/services.md",
        "A guide per service: which log, the setting it needs, the jail to add, how to check it with test-filter.",
    ),
    (
        "/usr/share/doc/jailwarden/cli-json.md",
        "The --json output of the client commands, field by field.",
    ),
];

const JOURNAL: &str = "
The daemon logs with SYSLOG_IDENTIFIER=jailwarden; journalctl -x explains each event from the catalog. Fields are named JAILWARDEN_*; the ban and unban texts are stable.
";

const EXAMPLES: &[(&str, &str)] = &[
    (
        "Check the configuration, then reload it:",
        "jailwarden check-config && systemctl reload jailwarden",
    ),
    (
        "See what the sshd filter finds in a log, one failure per line:",
        "jailwarden test-filter sshd /var/log/auth.log --format tsv\njournalctl -u ssh -o short | jailwarden test-filter sshd -",
    ),
    (
        "The jails, then one jail and its bans:",
        "jailwarden status\njailwarden status sshd",
    ),
    (
        "Ban by hand for an hour, lift it again, lift a whole range:",
        "jailwarden ban sshd 203.0.113.7 --for 1h\njailwarden unban 203.0.113.7\njailwarden unban --jail sshd 198.51.100.0/24",
    ),
    (
        "One address's history in the journal:",
        "journalctl -u jailwarden JAILWARDEN_ADDRESS=203.0.113.7",
    ),
    (
        "From a source checkout, the shipped filters without installing:",
        "cargo run -q -- filters\ncargo run -q -- test-filter sshd /var/log/auth.log",
    ),
];
