//! The daemon against a real (private) journald and real files: bans
//! decided from journal entries and log lines, checked through the daemon's
//! own journal events and its state database.

mod support;

use std::time::Duration;

use support::daemon::{CONFIG_ERROR_ID, Daemon, UNBAN_ID};
use support::{PrivateJournald, wait_until};

const SSHD: &str = r#"
[daemon]
backend = "none"
journal_directory = "{journal}"
filter_dirs = ["{filters}"]
[defaults]
ignoreip = ["127.0.0.0/8", "198.51.100.0/24"]
ignoreself = false
[jails.sshd]
journal_match = ["_UID=0", "SYSLOG_IDENTIFIER=sshd"]
maxretry = 3
findtime = "10m"
bantime = "10m"
"#;

fn failed(j: &PrivateJournald, addr: &str) {
    j.syslog(
        "sshd",
        &format!("Failed password for root from {addr} port 4242 ssh2"),
    );
}

#[test]
fn bans_at_maxretry_and_spares_ignored_and_successful_addresses() {
    support::needs_root!();
    let j = PrivateJournald::started();
    let d = Daemon::start(&j, SSHD);
    for _ in 0..5 {
        failed(&j, "198.51.100.7"); // ignoreip
        failed(&j, "127.0.0.1"); // ignoreip
    }
    failed(&j, "192.0.2.8");
    failed(&j, "192.0.2.8");
    j.syslog(
        "sshd",
        "Accepted password for deploy from 192.0.2.8 port 4242 ssh2",
    );
    for _ in 0..3 {
        failed(&j, "192.0.2.7");
    }
    // A user name carrying an address never bans that address.
    for _ in 0..3 {
        j.syslog(
            "sshd",
            "Failed password for invalid user x from 192.0.2.66 port 22 ssh2 from 192.0.2.9 port 5555 ssh2",
        );
    }
    let ban = d.wait_ban("sshd", "192.0.2.7");
    assert_eq!((ban.failures, ban.bantime_usec), (3, 600_000_000));
    d.wait_ban("sshd", "192.0.2.9");
    std::thread::sleep(Duration::from_millis(300));
    let banned: Vec<String> = d.bans().into_iter().map(|b| b.address).collect();
    assert_eq!(banned, ["192.0.2.7", "192.0.2.9"]);
    assert_eq!(
        d.stored_bans(),
        [
            ("sshd".to_string(), "192.0.2.7/32".to_string()),
            ("sshd".to_string(), "192.0.2.9/32".to_string())
        ]
    );
    assert_eq!(d.stored_failures("sshd", "192.0.2.8"), 2);
    assert_eq!(d.stored_failures("sshd", "198.51.100.7"), 0);
}

/// Restart after SIGTERM and after SIGKILL: reading resumes at the stored
/// cursor, so failures are neither lost nor counted twice.
#[test]
fn restarts_resume_from_the_cursor_without_loss_or_double_count() {
    support::needs_root!();
    for kill in [false, true] {
        let j = PrivateJournald::started();
        let mut d = Daemon::start(&j, &SSHD.replace("maxretry = 3", "maxretry = 4"));
        failed(&j, "192.0.2.20");
        failed(&j, "192.0.2.20");
        assert!(wait_until(Duration::from_secs(10), || d
            .stored_failures("sshd", "192.0.2.20")
            == 2));
        if kill {
            d.kill();
        } else {
            d.term();
        }
        // Written while the daemon is down: read once at restart.
        failed(&j, "192.0.2.20");
        d.spawn();
        assert!(
            wait_until(Duration::from_secs(10), || d
                .stored_failures("sshd", "192.0.2.20")
                == 3),
            "kill={kill}: {} failures stored",
            d.stored_failures("sshd", "192.0.2.20")
        );
        // Double counting would have banned by now (2 + 2 + 1 >= 4).
        std::thread::sleep(Duration::from_millis(300));
        assert!(d.bans().is_empty(), "kill={kill}: {:?}", d.bans());
        failed(&j, "192.0.2.20");
        let ban = d.wait_ban("sshd", "192.0.2.20");
        assert_eq!(ban.failures, 4, "kill={kill}");
    }
}

#[test]
fn a_first_start_catches_an_attack_already_under_way() {
    support::needs_root!();
    let j = PrivateJournald::started();
    for _ in 0..3 {
        failed(&j, "192.0.2.30");
    }
    let d = Daemon::start(&j, SSHD);
    d.wait_ban("sshd", "192.0.2.30");
}

#[test]
fn repeat_offenders_get_escalating_bans_and_bans_expire() {
    support::needs_root!();
    let j = PrivateJournald::started();
    let config = SSHD
        .replace("bantime = \"10m\"", "bantime = \"2s\"")
        .replace(
            "[jails.sshd]",
            "[jails.sshd.increment]\nfactor = 1.0\nmaxtime = \"1h\"\n[jails.sshd]",
        );
    let d = Daemon::start(&j, &config);
    for _ in 0..3 {
        failed(&j, "192.0.2.40");
    }
    assert_eq!(d.wait_ban("sshd", "192.0.2.40").bantime_usec, 2_000_000);
    assert!(
        wait_until(Duration::from_secs(10), || d
            .messages(UNBAN_ID)
            .contains(&"[sshd] Unban 192.0.2.40 (expired)".to_string())),
        "no expiry"
    );
    assert!(d.stored_bans().is_empty());
    for _ in 0..3 {
        failed(&j, "192.0.2.40");
    }
    assert!(wait_until(Duration::from_secs(10), || d.bans().len() == 2));
    assert_eq!(
        d.bans()[1].bantime_usec,
        4_000_000,
        "second ban lasts twice as long"
    );
}

#[test]
fn keeps_working_when_journald_restarts_under_it() {
    support::needs_root!();
    let mut j = PrivateJournald::started();
    let d = Daemon::start(&j, SSHD);
    failed(&j, "192.0.2.50");
    j.crash();
    j.restart();
    failed(&j, "192.0.2.50");
    failed(&j, "192.0.2.50");
    // The daemon logs into the old journald's namespace, now gone: check
    // the decision in the store instead of the journal.
    assert!(
        wait_until(Duration::from_secs(15), || d.stored_bans().len() == 1),
        "not banned after journald restart; failures stored: {}",
        d.stored_failures("sshd", "192.0.2.50")
    );
}

#[test]
fn follows_log_files_through_rotation_by_rename_and_copytruncate() {
    support::needs_root!();
    let j = PrivateJournald::started();
    let logs = tempfile::tempdir().expect("tempdir");
    let log = logs.path().join("auth.log");
    std::fs::write(&log, "").unwrap();
    let config = SSHD.replace(
        "journal_match = [\"_UID=0\", \"SYSLOG_IDENTIFIER=sshd\"]",
        &format!("logpath = [\"{}\"]", log.display()),
    );
    let d = Daemon::start(&j, &config);
    let line = |addr: &str| {
        let now = jiff::Timestamp::now()
            .to_zoned_datetime(jiff::tz::TimeZone::system())
            .strftime("%b %e %H:%M:%S")
            .to_string();
        format!("{now} srv sshd[77]: Failed password for root from {addr} port 22 ssh2\n")
    };
    let append = |path: &std::path::Path, text: &str| {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(path)
            .unwrap();
        f.write_all(text.as_bytes()).unwrap();
    };
    append(&log, &line("192.0.2.60"));
    assert!(wait_until(Duration::from_secs(10), || d
        .stored_failures("sshd", "192.0.2.60")
        == 1));
    // Rename rotation; a line still written to the old file is not lost.
    std::fs::rename(&log, logs.path().join("auth.log.1")).unwrap();
    append(&logs.path().join("auth.log.1"), &line("192.0.2.60"));
    append(&log, &line("192.0.2.60"));
    d.wait_ban("sshd", "192.0.2.60");
    // Copytruncate: the file shrinks to zero and grows again.
    append(&log, &line("192.0.2.61"));
    append(&log, &line("192.0.2.61"));
    assert!(wait_until(Duration::from_secs(10), || d
        .stored_failures("sshd", "192.0.2.61")
        == 2));
    std::fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(&log)
        .unwrap();
    append(&log, &line("192.0.2.61"));
    d.wait_ban("sshd", "192.0.2.61");
}

#[test]
fn reload_adds_a_jail_and_a_broken_config_keeps_the_running_one() {
    support::needs_root!();
    let j = PrivateJournald::started();
    let d = Daemon::start(&j, SSHD);
    failed(&j, "192.0.2.70");
    assert!(wait_until(Duration::from_secs(10), || d
        .stored_failures("sshd", "192.0.2.70")
        == 1));
    let filters = d.state().join("filters");
    std::fs::create_dir_all(&filters).unwrap();
    std::fs::write(
        filters.join("demo.toml"),
        "description = \"demo\"\nfailregex = ['^\\S+ demo(?:\\[\\d+\\])?: bad login from <ADDR>$']\n",
    )
    .unwrap();
    let more = format!(
        "{SSHD}\n[jails.demo]\njournal_match = [\"_UID=0\", \"SYSLOG_IDENTIFIER=demo\"]\nmaxretry = 2\n"
    )
    .replace(
        "filter_dirs = [\"{filters}\"]",
        "filter_dirs = [\"{dir}/filters\", \"{filters}\"]",
    );
    // A broken configuration first: reported with its position, not applied.
    d.write_config(&more.replace("maxretry = 2", "maxretry = \"two\""));
    d.reload();
    let errors = d.messages(CONFIG_ERROR_ID);
    assert!(
        errors
            .iter()
            .any(|e| e.contains("jailwarden.toml:") && e.contains("maxretry must be an integer")),
        "{errors:?}"
    );
    j.syslog("demo", "bad login from 192.0.2.71");
    j.syslog("demo", "bad login from 192.0.2.71");
    std::thread::sleep(Duration::from_millis(500));
    assert!(d.bans().is_empty());
    // The running jail still works and kept its counter.
    failed(&j, "192.0.2.70");
    assert!(wait_until(Duration::from_secs(10), || d
        .stored_failures("sshd", "192.0.2.70")
        == 2));
    // Now the good one.
    d.write_config(&more);
    d.reload();
    j.syslog("demo", "bad login from 192.0.2.72");
    j.syslog("demo", "bad login from 192.0.2.72");
    d.wait_ban("demo", "192.0.2.72");
    failed(&j, "192.0.2.70");
    d.wait_ban("sshd", "192.0.2.70");
}

#[test]
fn a_flood_of_distinct_addresses_stays_within_the_tracking_cap() {
    support::needs_root!();
    let j = PrivateJournald::started();
    let d = Daemon::start(
        &j,
        &SSHD.replace("maxretry = 3", "maxretry = 3\nmaxtracked = 1000"),
    );
    let before = d.rss_kib();
    // 100,000 distinct attackers, one failure each, in one burst.
    let script = r#"
from systemd import journal
for i in range(100000):
    journal.send("Failed password for root from 10.%d.%d.%d port 22 ssh2" % (i >> 16, (i >> 8) & 255, i & 255),
                 SYSLOG_IDENTIFIER="sshd", SYSLOG_PID="99")
journal.send("Failed password for root from 192.0.2.90 port 22 ssh2", SYSLOG_IDENTIFIER="sshd", SYSLOG_PID="99")
"#;
    let status = j
        .in_namespace("/usr/bin/python3")
        .arg("-c")
        .arg(script)
        .status()
        .expect("python");
    assert!(status.success());
    j.sync();
    assert!(
        wait_until(Duration::from_secs(60), || d
            .stored_failures("sshd", "192.0.2.90")
            == 1),
        "the flood was not read"
    );
    let after = d.rss_kib();
    // Tracking is capped at 1,000 addresses: memory does not grow with the flood.
    assert!(
        after < before + 20_000,
        "RSS grew from {before} KiB to {after} KiB"
    );
    let capped = d
        .log()
        .into_iter()
        .rfind(|m| m.contains("tracking capped at maxtracked = 1000"));
    let evicted: u64 = capped
        .as_deref()
        .and_then(|m| m.split('(').nth(1))
        .and_then(|m| m.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    // Evictions are logged at powers of two: 65,536 of the 99,000 so far.
    assert_eq!(evicted, 65_536, "{capped:?}");
}

/// Rss (KiB) of the daemon's mappings of journal files, from its smaps.
fn journal_rss_kib(pid: u32) -> u64 {
    let smaps = std::fs::read_to_string(format!("/proc/{pid}/smaps")).unwrap_or_default();
    let mut journal = false;
    let mut total = 0;
    for line in smaps.lines() {
        let first = line.split_whitespace().next().unwrap_or("");
        if first.contains('-') && !first.ends_with(':') {
            journal = line.ends_with(".journal") || line.ends_with(".journal~");
        } else if journal && first == "Rss:" {
            total += line
                .split_whitespace()
                .nth(1)
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0);
        }
    }
    total
}

#[test]
fn an_idle_daemon_gives_back_the_journal_pages_it_read_and_still_bans() {
    support::needs_root!();
    let j = PrivateJournald::started();
    let d = Daemon::start(&j, SSHD);
    // 20,000 entries of ~1 KB for the jail (not failures): megabytes of
    // journal file the reader maps and reads.
    let script = r#"
from systemd import journal
for i in range(20000):
    journal.send("Connection closed by 10.1.%d.%d port 22 [preauth] %s" % (i >> 8, i & 255, "x" * 1000),
                 SYSLOG_IDENTIFIER="sshd", SYSLOG_PID="99")
journal.send("Failed password for root from 192.0.2.91 port 22 ssh2", SYSLOG_IDENTIFIER="sshd", SYSLOG_PID="99")
"#;
    let status = j
        .in_namespace("/usr/bin/python3")
        .arg("-c")
        .arg(script)
        .status()
        .expect("python");
    assert!(status.success());
    j.sync();
    assert!(
        wait_until(Duration::from_secs(60), || d
            .stored_failures("sshd", "192.0.2.91")
            == 1),
        "the entries were not read"
    );
    let read = journal_rss_kib(d.pid());
    assert!(
        read >= 1024,
        "reading 20 MB of journal mapped only {read} KiB of it: the test shows nothing"
    );
    // 20 s with nothing to read: the reader drops the pages it mapped.
    let mut idle = read;
    assert!(
        wait_until(Duration::from_secs(60), || {
            idle = journal_rss_kib(d.pid());
            idle <= 256
        }),
        "journal pages still mapped after a minute idle: {idle} KiB (were {read} KiB)"
    );
    // The reader maps what it reads next again: the jail still works.
    for _ in 0..3 {
        failed(&j, "192.0.2.92");
    }
    d.wait_ban("sshd", "192.0.2.92");
}

/// With `backend = "nftables"` (in a network namespace of the test's own):
/// bans become kernel set elements with timeouts, are restored after
/// tampering by the periodic check, and stay in the kernel across a restart.
#[test]
fn nftables_bans_reach_the_kernel_and_survive_tampering_and_restarts() {
    support::needs_root!();
    let ns = support::NamedNetns::new("daemon");
    let j = PrivateJournald::started();
    let config = SSHD
        .replace(
            "backend = \"none\"",
            "backend = \"nftables\"\nrecheck = \"1s\"",
        )
        .replace("maxretry = 3", "maxretry = 3\nport = \"ssh\"");
    let mut d = Daemon::start_in(&j, &config, Some(&ns.0));
    let elements = || ns.set_elements("sshd-v4");
    for _ in 0..3 {
        failed(&j, "192.0.2.80");
    }
    d.wait_ban("sshd", "192.0.2.80");
    assert!(
        wait_until(Duration::from_secs(5), || !elements().is_empty()),
        "no element"
    );
    let e = elements();
    assert_eq!(e[0].0, "192.0.2.80");
    assert!(
        e[0].1.is_some_and(|t| (590..=600).contains(&t)),
        "timeout {:?}",
        e[0].1
    );
    // The rule drops ssh traffic from the set.
    let rules = String::from_utf8_lossy(
        &ns.exec(&["nft", "list", "chain", "inet", "jailwarden", "input"])
            .stdout,
    )
    .into_owned();
    assert!(
        rules.contains("@sshd-v4") && rules.contains("dport 22") && rules.contains("drop"),
        "{rules}"
    );
    // Tampering is undone by the periodic check.
    ns.exec_ok(&["nft", "flush", "set", "inet", "jailwarden", "sshd-v4"]);
    assert!(
        wait_until(Duration::from_secs(10), || elements().len() == 1),
        "not restored after flush"
    );
    ns.exec_ok(&["nft", "delete", "table", "inet", "jailwarden"]);
    assert!(
        wait_until(Duration::from_secs(10), || elements().len() == 1),
        "not restored after delete table"
    );
    // A restart leaves the element in place all along.
    d.term();
    assert_eq!(
        elements().len(),
        1,
        "the ban must stay in the kernel while the daemon is down"
    );
    d.spawn();
    assert_eq!(elements().len(), 1);
    assert_eq!(d.bans().len(), 1, "no second ban after the restart");
}
