//! Configuration loading: layering, and every error with its position.

use std::fs;
use std::path::Path;

use super::*;

const FILTER: &str = r#"
description = "test service"
journal_match = ["_SYSTEMD_UNIT=svc.service"]
failregex = ['^fail from <HOST>$']
[modes.aggressive]
failregex = ['^probe from <HOST>$']
"#;

fn setup(main: &str, jail_d: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    fs::create_dir_all(dir.path().join("filters")).unwrap();
    fs::write(dir.path().join("filters/svc.toml"), FILTER).unwrap();
    fs::write(dir.path().join("jailwarden.toml"), main).unwrap();
    if !jail_d.is_empty() {
        fs::create_dir_all(dir.path().join("jail.d")).unwrap();
        for (name, text) in jail_d {
            fs::write(dir.path().join("jail.d").join(name), text).unwrap();
        }
    }
    dir
}

fn errors(dir: &Path) -> Vec<String> {
    match load(&dir.join("jailwarden.toml")) {
        Ok(_) => Vec::new(),
        Err(d) => d
            .iter()
            .map(|d| d.to_string().replace(&format!("{}/", dir.display()), ""))
            .collect(),
    }
}

#[test]
fn defaults_are_inherited_and_jail_d_overrides_key_by_key() {
    let dir = setup(
        r#"
[daemon]
backend = "none"
[defaults]
findtime = "1h 30m"
maxretry = 4
bantime = "1d"
ignoreip = ["127.0.0.0/8", "::1"]
[jails.svc]
maxretry = 3
"#,
        &[
            ("10-more.toml", "[jails.svc]\nbantime = \"permanent\"\n"),
            (
                "20-last.toml",
                "[jails.svc]\nmode = \"aggressive\"\n[jails.other]\nfilter = \"svc\"\nenabled = false\n",
            ),
        ],
    );
    let c = load(&dir.path().join("jailwarden.toml")).expect("valid");
    assert_eq!(c.daemon.backend, Backend::None);
    let j = &c.jails["svc"];
    assert_eq!(j.findtime, Duration::from_secs(5400));
    assert_eq!(j.maxretry, 3);
    assert_eq!(j.bantime, BanTime::Permanent);
    assert_eq!(j.mode, "aggressive");
    assert_eq!(j.filter.mode(), "aggressive");
    assert!(j.ignoreip.contains("::1".parse().unwrap()));
    assert_eq!(j.journal_match.to_string(), "_SYSTEMD_UNIT=svc.service");
    assert!(!c.jails["other"].enabled);
    assert_eq!(c.enabled().count(), 1);
    assert_eq!(c.files.len(), 3);
}

#[test]
fn every_problem_is_reported_with_file_line_column() {
    let dir = setup(
        r#"[daemon]
backend = "iptables"
[defaults]
maxretyr = 3
[jails.svc]
findtime = "10 parsecs"
maxretry = 0
ignoreip = ["192.0.2.0/33", "::1"]
mode = "nope"
journal_match = ["unit"]
port = "ssh,nosuchport"
"#,
        &[(
            "x.toml",
            "[jails.y]\nfilter = \"missing\"\n[jails.svc.increment]\nfactor = -1\n",
        )],
    );
    assert_eq!(
        errors(dir.path()),
        [
            "jail.d/x.toml:2:10: no filter \"missing\" (searched FILTERS)",
            "jail.d/x.toml:4:10: increment.factor must be a number above 0 and below 1000000",
            "jailwarden.toml:2:11: backend must be \"nftables\" or \"none\", not \"iptables\"",
            "jailwarden.toml:4:1: unknown key \"defaults.maxretyr\" (did you mean \"maxretry\"?)",
            "jailwarden.toml:6:12: findtime: duration \"10 parsecs\": unknown unit \"parsecs\" (use s, m, h, d or w)",
            "jailwarden.toml:7:12: jails.svc.maxretry must be between 1 and 100000",
            "jailwarden.toml:8:13: ignoreip: \"192.0.2.0/33\" is not an IP address or CIDR network (e.g. 192.0.2.0/24, 2001:db8::/32)",
            "jailwarden.toml:9:8: filter svc has no mode \"nope\" (modes: normal, aggressive)",
            "jailwarden.toml:10:18: journal match term \"unit\" is not FIELD=VALUE or \"+\"",
            "jailwarden.toml:11:8: port: \"nosuchport\" is not a port number, range (8000:8080) or known service name",
        ]
        .map(|s| s.replace("FILTERS", "filters, /usr/share/jailwarden/filters"))
    );
}

#[test]
fn filter_errors_point_into_the_filter_file() {
    let dir = setup("[jails.bad]\n", &[]);
    fs::write(
        dir.path().join("filters/bad.toml"),
        "journal_match = [\"_UID=0\"]\nfailregex = ['^x <HOST> (']\n",
    )
    .unwrap();
    assert_eq!(
        errors(dir.path()),
        ["filters/bad.toml:2:14: failregex: unclosed group"]
    );
}

#[test]
fn syntax_errors_and_nothing_to_read() {
    let dir = setup("[jails.svc\n", &[]);
    let errs = errors(dir.path());
    assert!(errs[0].starts_with("jailwarden.toml:1:"), "{errs:?}");
    let dir = setup("[jails.svc]\njournal_match = []\n", &[]);
    assert_eq!(
        errors(dir.path()),
        [
            "jailwarden.toml:1:8: jail svc reads nothing: give journal_match or logpath (its filter has no default journal_match)"
        ]
    );
}

#[test]
fn logpath_only_jails_do_not_read_the_journal() {
    let dir = setup("[jails.svc]\nlogpath = [\"/var/log/svc/*.log\"]\n", &[]);
    let c = load(&dir.path().join("jailwarden.toml")).expect("valid");
    assert!(c.jails["svc"].journal_match.is_empty());
    assert_eq!(c.jails["svc"].logpath, ["/var/log/svc/*.log"]);
    let dir = setup("[jails.svc]\nlogpath = [\"relative.log\"]\n", &[]);
    assert_eq!(
        errors(dir.path()),
        ["jailwarden.toml:2:12: logpath entries must be absolute paths (globs allowed)"]
    );
}

#[test]
fn increment_tables_layer_too() {
    let dir = setup(
        "[defaults.increment]\nmaxtime = \"1w\"\n[jails.svc.increment]\nmultipliers = [1, 2, 4]\n",
        &[],
    );
    let c = load(&dir.path().join("jailwarden.toml")).expect("valid");
    let inc = c.jails["svc"].increment.as_ref().expect("increment");
    assert_eq!(inc.maxtime, Duration::from_secs(604_800));
    assert_eq!(inc.multipliers, [1.0, 2.0, 4.0]);
}

#[test]
fn increment_numbers_refuse_nan_infinity_and_zero() {
    let range = "increment.multipliers must list numbers above 0 and below 1000000";
    let numbers = "jails.svc.increment.multipliers must list numbers";
    for (bad, at, message) in [
        ("[nan]", "2:16", numbers),
        ("[1, inf]", "2:19", numbers),
        ("[0]", "2:15", range),
        ("[-2]", "2:15", range),
        ("[]", "2:15", range),
        ("[1e9]", "2:15", range),
    ] {
        let dir = setup(
            &format!("[jails.svc.increment]\nmultipliers = {bad}\n"),
            &[],
        );
        assert_eq!(
            errors(dir.path()),
            [format!("jailwarden.toml:{at}: {message}")],
            "multipliers = {bad}"
        );
    }
    let dir = setup("[jails.svc.increment]\nfactor = nan\n", &[]);
    assert_eq!(errors(dir.path()).len(), 1, "factor = nan");
}

#[test]
fn actions_layer_as_a_whole_and_are_validated() {
    use crate::ban::actions::{ActionKind, Family};
    let dir = setup(
        r#"
[[defaults.action]]
type = "mail"
dest = ["root@localhost", "ops@example.org"]
max_per_hour = 5
[jails.svc]
[jails.quiet]
filter = "svc"
action = []
"#,
        &[(
            "10-ipt.toml",
            r#"
[[jails.ipt.action]]
type = "command"
name = "iptables"
ban = ["iptables", "-I", "jw-{jail}", "-s", "{address}", "-j", "DROP"]
unban = ["iptables", "-D", "jw-{jail}", "-s", "{address}", "-j", "DROP"]
start = [["iptables", "-N", "jw-{jail}"], ["iptables", "-I", "INPUT", "-j", "jw-{jail}"]]
stop = ["iptables", "-X", "jw-{jail}"]
family = "inet"
timeout = "5s"
[[jails.ipt.action]]
type = "hosts-deny"
path = "/tmp/x/hosts.deny"
daemon = "sshd"
[jails.ipt]
filter = "svc"
"#,
        )],
    );
    let c = load(&dir.path().join("jailwarden.toml")).expect("valid");
    let svc = &c.jails["svc"].actions;
    assert_eq!(svc.len(), 1);
    assert_eq!(svc[0].label, "mail#1");
    assert!(
        matches!(&svc[0].kind, ActionKind::Mail(m) if m.max_per_hour == 5 && m.dest.len() == 2)
    );
    assert!(
        c.jails["quiet"].actions.is_empty(),
        "action = [] turns defaults off"
    );
    let ipt = &c.jails["ipt"].actions;
    assert_eq!(
        ipt.len(),
        2,
        "the jail's own list replaces the defaults' as a whole"
    );
    let ActionKind::Command(cmd) = &ipt[0].kind else {
        panic!("{ipt:?}")
    };
    assert_eq!(ipt[0].label, "iptables");
    assert_eq!((cmd.start.len(), cmd.stop.len()), (2, 1));
    assert_eq!(cmd.family, Some(Family::Inet));
    assert_eq!(cmd.timeout, Duration::from_secs(5));
    assert_eq!(cmd.concurrency, 4);
    assert!(cmd.restore);
    assert_eq!(ipt[1].label, "hosts-deny#2");
    assert!(matches!(&ipt[1].kind, ActionKind::HostsDeny(h) if h.daemon == "sshd"));
}

#[test]
fn action_errors_are_positioned() {
    let dir = setup(
        r#"[jails.svc]
[[jails.svc.action]]
type = "command"
ban = ["ipset", "add", "jw", "{adress}"]
unban = "ipset del jw {address}"
start = [["ipset", "create", "jw-{net}"]]
timout = "5s"
[[jails.svc.action]]
type = "mail"
dest = ["root@localhost\nBcc: x@example.org"]
sendmail = "sendmail"
[[jails.svc.action]]
type = "hosts-deny"
daemon = "ALL: 10.0.0.1"
[[jails.svc.action]]
type = "carrier-pigeon"
[[jails.svc.action]]
ban = ["x"]
[[jails.svc.action]]
type = "command"
ban = []
"#,
        &[],
    );
    let errs = errors(dir.path());
    let want = [
        "jailwarden.toml:4:30: ban: unknown placeholder {adress} (known: {address}, {net}, {family}, {jail}, {bantime}, {timeout}, {failures})",
        "jailwarden.toml:5:9: jails.svc.action.unban must be a list of strings, the program and its arguments (run without a shell), e.g. [\"ipset\", \"add\", \"jw\", \"{address}\"]",
        "jailwarden.toml:6:30: start: placeholder {net} has no value in start commands (they know {jail})",
        "jailwarden.toml:7:1: unknown key \"jails.svc.action.timout\" (did you mean \"timeout\"?)",
        "jailwarden.toml:10:9: dest: \"root@localhost\\nBcc: x@example.org\" is not a plain mail address (local@domain, no names, quotes or spaces)",
        "jailwarden.toml:11:12: sendmail must be an absolute file path",
        "jailwarden.toml:14:10: daemon must be a tcp_wrappers daemon list such as \"ALL\", \"sshd\" or \"sshd, vsftpd\" (no ':' or '#')",
        "jailwarden.toml:16:8: action type must be \"command\", \"hosts-deny\" or \"mail\", not \"carrier-pigeon\"",
    ];
    for w in want {
        assert!(errs.contains(&w.to_string()), "missing {w}\nin {errs:#?}");
    }
    assert!(
        errs.iter().any(|e| e.contains("an action needs type = ")),
        "{errs:#?}"
    );
    assert!(
        errs.iter()
            .any(|e| e.starts_with("jailwarden.toml:21:7: ") && e.contains("must not be empty")),
        "{errs:#?}"
    );
    assert_eq!(errs.len(), want.len() + 2, "{errs:#?}");
}

#[test]
fn line_limit_is_a_jail_key_in_range() {
    let dir = setup(
        "[jails.svc]\nline_limit = 1024\n[jails.b]\nfilter = \"svc\"\nline_limit = 10\n",
        &[],
    );
    assert_eq!(
        errors(dir.path()),
        ["jailwarden.toml:5:14: jails.b.line_limit must be between 64 and 65536"]
    );
    let dir = setup("[jails.svc]\nline_limit = 1024\n", &[]);
    let c = load(&dir.path().join("jailwarden.toml")).expect("valid");
    assert_eq!(c.jails["svc"].line_limit, Some(1024));
}

#[test]
fn jails_on_one_filter_share_one_compiled_copy() {
    // 1,000 jails each compiling their own copy took 1.4 GB and 20 s.
    let mut main = String::from("[daemon]\nbackend = \"none\"\n");
    for i in 0..1000 {
        main.push_str(&format!("[jails.j{i}]\nfilter = \"svc\"\n"));
    }
    main.push_str("[jails.a1]\nfilter = \"svc\"\nmode = \"aggressive\"\n");
    main.push_str("[jails.a2]\nfilter = \"svc\"\nmode = \"aggressive\"\n");
    let dir = setup(&main, &[]);
    let cfg = load(&dir.path().join("jailwarden.toml")).expect("loads");
    let first = &cfg.jails["j0"].filter;
    for i in 0..1000 {
        assert!(
            Arc::ptr_eq(first, &cfg.jails[&format!("j{i}")].filter),
            "j{i}"
        );
    }
    let aggressive = &cfg.jails["a1"].filter;
    assert!(Arc::ptr_eq(aggressive, &cfg.jails["a2"].filter));
    assert!(
        !Arc::ptr_eq(first, aggressive),
        "another mode is another filter"
    );
    assert_eq!(aggressive.mode(), "aggressive");
}

#[test]
fn a_broken_filter_shared_by_jails_is_reported_once() {
    let dir = setup(
        "[daemon]\nbackend = \"none\"\n[jails.a]\nfilter = \"bad\"\n[jails.b]\nfilter = \"bad\"\n[jails.c]\nfilter = \"bad\"\nmode = \"x\"\n",
        &[],
    );
    fs::write(
        dir.path().join("filters/bad.toml"),
        "journal_match = [\"_SYSTEMD_UNIT=bad.service\"]\nfailregex = ['^fail from <HOST> (']\n",
    )
    .unwrap();
    let errs = errors(dir.path());
    assert_eq!(
        errs,
        [
            "filters/bad.toml:2:14: failregex: unclosed group",
            "jailwarden.toml:9:8: filter bad has no mode \"x\" (modes: normal)",
        ],
        "{errs:#?}"
    );
}

/// A configuration setting every documented key to its documented example
/// (jailwarden.toml(5) shows them): it loads, so every key the page names
/// is accepted and every example is valid.
#[test]
fn every_documented_key_with_its_example_loads() {
    let repo_filters = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/filters");
    let mut text = String::from("[daemon]\n");
    for k in keys::DAEMON {
        match k.name {
            // Relative to the config file: point it at the shipped filters.
            "filter_dirs" => text.push_str(&format!("filter_dirs = [{:?}]\n", repo_filters)),
            _ => text.push_str(&format!("{} = {}\n", k.name, k.example)),
        }
    }
    for table in ["defaults", "jails.sshd"] {
        text.push_str(&format!("[{table}]\n"));
        for k in keys::JAIL {
            text.push_str(&format!("{} = {}\n", k.name, k.example));
        }
    }
    text.push_str("[jails.sshd2.increment]\n");
    for k in keys::INCREMENT {
        if k.name != "enabled" {
            text.push_str(&format!("{} = {}\n", k.name, k.example));
        }
    }
    text.push_str("[jails.sshd2]\nfilter = \"sshd\"\n");
    for (ty, list) in [
        ("command", keys::COMMAND_ACTION),
        ("hosts-deny", keys::HOSTS_DENY_ACTION),
        ("mail", keys::MAIL_ACTION),
    ] {
        text.push_str("[[jails.sshd2.action]]\n");
        for k in list {
            match k.name {
                "type" => text.push_str(&format!("type = {ty:?}\n")),
                "name" => text.push_str(&format!("name = \"{ty}-example\"\n")),
                _ => text.push_str(&format!("{} = {}\n", k.name, k.example)),
            }
        }
    }
    text.push_str("[fleet]\n");
    for k in keys::FLEET {
        text.push_str(&format!("{} = {}\n", k.name, k.example));
    }
    let dir = setup(&text, &[]);
    assert_eq!(errors(dir.path()), Vec::<String>::new(), "{text}");
}

/// Each key in the table is really read: given a value of the wrong type
/// (an inline table; for the table-valued keys, one with a bogus key), the
/// reader reports that key. A key listed but ignored would pass silently.
#[test]
fn every_documented_key_is_read_by_the_reader() {
    let bad = |key: &str| format!("{key} = {{ bogus = 1 }}\n");
    let jail = "[jails.svc]\n";
    let mut cases: Vec<(String, String)> = Vec::new();
    for k in keys::DAEMON {
        cases.push((format!("[daemon]\n{}{jail}", bad(k.name)), k.name.into()));
    }
    for k in keys::JAIL {
        let name = match k.name {
            "increment" => "increment.bogus".into(),
            n => n.to_string(),
        };
        cases.push((format!("[jails.svc]\n{}", bad(k.name)), name));
    }
    for k in keys::INCREMENT {
        cases.push((
            format!("{jail}[jails.svc.increment]\n{}", bad(k.name)),
            format!("increment.{}", k.name),
        ));
    }
    for (ty, list) in [
        ("command", keys::COMMAND_ACTION),
        ("hosts-deny", keys::HOSTS_DENY_ACTION),
        ("mail", keys::MAIL_ACTION),
    ] {
        for k in list.iter().filter(|k| k.name != "type") {
            let mut t = format!("{jail}[[jails.svc.action]]\ntype = {ty:?}\n");
            for (required, value) in [("dest", "\"a@b.c\""), ("ban", "[\"x\"]")] {
                if required != k.name {
                    t.push_str(&format!("{required} = {value}\n"));
                }
            }
            t.push_str(&bad(k.name));
            cases.push((t, k.name.to_string()));
        }
    }
    for k in keys::FLEET {
        let url = if k.name == "url" {
            ""
        } else {
            "url = \"redis://h\"\n"
        };
        cases.push((
            format!("{jail}[fleet]\n{url}{}", bad(k.name)),
            k.name.into(),
        ));
    }
    for (text, key) in cases {
        let dir = setup(&text, &[]);
        let errs = errors(dir.path());
        assert!(
            errs.iter().any(
                |e| e.contains(&key) && (key.ends_with(".bogus") || !e.contains("unknown key"))
            ),
            "{key}: not read (no error naming it) for\n{text}\n{errs:#?}"
        );
    }
}

/// Every at-start key of the table is compared on reload, and only those.
#[test]
fn reload_names_the_changed_at_start_keys() {
    let dir = setup("[daemon]\nbackend = \"none\"\n[jails.svc]\n", &[]);
    let old = load(&dir.path().join("jailwarden.toml")).unwrap().daemon;
    for k in keys::DAEMON
        .iter()
        .filter(|k| k.applies == keys::Applies::AtStart)
    {
        assert_eq!(
            old.differs(k.name, &old),
            Some(false),
            "{} is not compared",
            k.name
        );
    }
    assert!(old.changed_at_start(&old).is_empty());
    let dir2 = setup(
        "[daemon]\nbackend = \"nftables\"\nrecheck = \"5m\"\ndbpurgeage = \"3d\"\n[jails.svc]\n",
        &[],
    );
    let new = load(&dir2.path().join("jailwarden.toml")).unwrap().daemon;
    assert_eq!(old.changed_at_start(&new), ["backend", "recheck"]);
}

#[test]
fn trusted_proxies_are_cidrs_with_positioned_errors() {
    let dir = setup(
        "[jails.svc]\ntrusted_proxies = [\"10.0.0.0/8\", \"10.0.0.0/33\", \"proxy.example\"]\n",
        &[],
    );
    let errs = errors(dir.path());
    assert_eq!(errs.len(), 2, "{errs:?}");
    assert!(
        errs[0].starts_with("jailwarden.toml:2:34: trusted_proxies: \"10.0.0.0/33\" is not"),
        "{errs:?}"
    );
    assert!(
        errs[1].starts_with("jailwarden.toml:2:49: trusted_proxies: \"proxy.example\" is not"),
        "{errs:?}"
    );
    let dir = setup(
        "[defaults]\ntrusted_proxies = [\"10.0.0.0/8\", \"2001:db8:1::/48\"]\n[jails.svc]\n",
        &[],
    );
    let c = load(&dir.path().join("jailwarden.toml")).expect("valid");
    let t = &c.jails["svc"].trusted_proxies;
    assert!(t.contains("10.1.2.3".parse().unwrap()));
    assert!(t.contains("2001:db8:1::9".parse().unwrap()));
    assert!(!t.contains("192.0.2.1".parse().unwrap()));
}

#[test]
fn journal_matches_must_name_their_writer() {
    // Any local user writes SYSLOG_IDENTIFIER, MESSAGE_ID, _COMM...: such a
    // group alone is refused, at its first term.
    let dir = setup(
        "[jails.svc]\njournal_match = [\"_SYSTEMD_UNIT=svc.service\", \"+\", \"SYSLOG_IDENTIFIER=svc\", \"_COMM=svc\"]\n",
        &[],
    );
    let errs = errors(dir.path());
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(
        errs[0].starts_with(
            "jailwarden.toml:2:52: journal_match group \"SYSLOG_IDENTIFIER=svc _COMM=svc\" names no writer"
        ),
        "{errs:?}"
    );
    // With a field journald vouches for, in the same group, it loads.
    let dir = setup(
        "[jails.svc]\njournal_match = [\"_UID=0\", \"SYSLOG_IDENTIFIER=svc\", \"+\", \"_SYSTEMD_SLICE=system-svc.slice\", \"+\", \"_TRANSPORT=kernel\"]\n",
        &[],
    );
    assert_eq!(errors(dir.path()), Vec::<String>::new());
    // A filter's own default is checked in the filter file.
    fs::write(
        dir.path().join("filters/forged.toml"),
        "journal_match = [\"SYSLOG_IDENTIFIER=x\"]\nfailregex = ['^x <HOST>$']\n",
    )
    .unwrap();
    fs::write(dir.path().join("jailwarden.toml"), "[jails.forged]\n").unwrap();
    let errs = errors(dir.path());
    assert!(
        errs.len() == 1 && errs[0].starts_with("filters/forged.toml:1:18: journal_match group"),
        "{errs:?}"
    );
    // A filter over jailwarden's own events gets the daemon's _UID added
    // to any match: MESSAGE_ID alone is fine there.
    fs::write(
        dir.path().join("filters/own.toml"),
        "journal_match = [\"MESSAGE_ID=x\"]\njournal_own_events = true\nfailregex = ['^x <HOST>$']\n",
    )
    .unwrap();
    fs::write(
        dir.path().join("jailwarden.toml"),
        "[jails.own]\n[jails.own2]\nfilter = \"own\"\njournal_match = [\"MESSAGE_ID=y\"]\n",
    )
    .unwrap();
    assert_eq!(errors(dir.path()), Vec::<String>::new());
}

/// Found by tests/properties.rs: a file that is not UTF-8 was reported
/// without a position ("byte N" only).
#[test]
fn a_file_that_is_not_utf8_is_positioned_where_it_stops_being_text() {
    let dir = setup("[jails.svc]\n", &[]);
    fs::create_dir_all(dir.path().join("jail.d")).unwrap();
    fs::write(
        dir.path().join("jail.d/x.toml"),
        b"[jails.svc]\nbantime = \"1\xe9h\"\n",
    )
    .unwrap();
    fs::write(dir.path().join("jail.d/y.toml"), b"\x00\x00\x80").unwrap();
    assert_eq!(
        errors(dir.path()),
        [
            "jail.d/x.toml:2:13: not valid UTF-8 (byte 24)",
            "jail.d/y.toml:1:3: not valid UTF-8 (byte 2)",
        ]
    );
}

/// `[fleet]`: defaults, and its problems with file:line:column.
#[test]
fn fleet_is_read_with_defaults_and_positioned_errors() {
    let dir = setup(
        "[jails.svc]\n[fleet]\nurl = \"redis://web1@h:6379\"\nhost = \"web1\"\n",
        &[],
    );
    let cfg = load(&dir.path().join("jailwarden.toml")).unwrap();
    let f = cfg.fleet.expect("fleet");
    assert_eq!((f.host.as_str(), f.accept, f.quorum), ("web1", true, 1));
    assert_eq!(f.max_bantime, Duration::from_secs(86_400));
    assert!(f.publishes("any") && f.trusts("web2") && !f.trusts("web1"));
    let dir = setup(
        "[jails.svc]\n[fleet]\nurl = \"redis://u:secret@h\"\nhost = \"a:b\"\nquorum = 0\n",
        &[],
    );
    let errs = errors(dir.path());
    assert_eq!(errs.len(), 3, "{errs:#?}");
    assert!(
        errs[0].starts_with("jailwarden.toml:3:7: fleet.url must not hold a password"),
        "{errs:#?}"
    );
    assert!(
        errs[1].starts_with("jailwarden.toml:4:8: fleet.host \"a:b\""),
        "{errs:#?}"
    );
    assert!(
        errs[2].starts_with("jailwarden.toml:5:10: fleet.quorum must be between 1"),
        "{errs:#?}"
    );
    // rediss:// with a CA file; the CA file only with TLS, absolute; no
    // #insecure.
    let dir = setup(
        "[jails.svc]\n[fleet]\nurl = \"rediss://web1@h:6380\"\nca_file = \"/etc/ca.pem\"\nhost = \"web1\"\n",
        &[],
    );
    let f = load(&dir.path().join("jailwarden.toml"))
        .unwrap()
        .fleet
        .expect("fleet");
    assert_eq!(
        f.ca_file.as_deref(),
        Some(std::path::Path::new("/etc/ca.pem"))
    );
    let dir = setup(
        "[jails.svc]\n[fleet]\nurl = \"redis://web1@fleetmaster\"\nsentinels = [\"redis://s1:26379\", \"redis://s2:26379\"]\nhost = \"web1\"\n",
        &[],
    );
    let f = load(&dir.path().join("jailwarden.toml"))
        .unwrap()
        .fleet
        .expect("fleet");
    assert_eq!(f.sentinels.map(|s| s.len()), Some(2));
    for (text, want) in [
        (
            "url = \"redis://h\"\nca_file = \"/etc/ca.pem\"",
            "is for a rediss://",
        ),
        (
            "url = \"rediss://h\"\nca_file = \"ca.pem\"",
            "must be an absolute path",
        ),
        ("url = \"rediss://h/#insecure\"", "#insecure"),
        (
            "url = \"redis://m\"\nsentinels = [\"tcp://s:26379\"]",
            "must be redis://HOST:PORT",
        ),
        (
            "url = \"redis+unix:///run/r.sock\"\nsentinels = [\"redis://s:26379\"]",
            "MASTER-NAME",
        ),
    ] {
        let dir = setup(
            &format!("[jails.svc]\n[fleet]\nhost = \"a\"\n{text}\n"),
            &[],
        );
        let errs = errors(dir.path());
        assert!(
            errs.len() == 1 && errs[0].contains(want),
            "{text}: {errs:#?}"
        );
    }
}
