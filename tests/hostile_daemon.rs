//! The daemon against hostile input, end to end (a private journald, the
//! built binary): reverse proxies and `trusted_proxies`, forged journal
//! entries from unprivileged local users.
//!
//! Needs root (private journald, cgroups, nsenter), like CI.

mod support;

use std::process::Command;
use std::time::Duration;

use support::PrivateJournald;
use support::daemon::Daemon;

fn sogo_login(j: &PrivateJournald, list: &str) {
    j.syslog(
        "sogod",
        &format!(
            "SOGoRootPage Login from '{list}' for user 'admin' might not have worked - \
             password policy: 65535  grace: -1  expire: -1  bound: 0"
        ),
    );
}

/// The CLI against the daemon's control socket.
fn cli(d: &Daemon, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_jailwarden"))
        .args(args)
        .arg("--socket")
        .arg(d.dir.path().join("control.sock"))
        .output()
        .expect("run jailwarden")
}

#[test]
fn behind_trusted_proxies_the_client_is_banned_never_a_proxy() {
    let j = PrivateJournald::started();
    let d = Daemon::start(
        &j,
        r#"
[daemon]
backend = "none"
journal_directory = "{journal}"
filter_dirs = ["{filters}"]
[jails.sogo-auth]
journal_match = ["_UID=0", "SYSLOG_IDENTIFIER=sogod"]
trusted_proxies = ["10.0.0.0/8"]
ignoreself = false
maxretry = 3
"#,
    );
    // The client 203.0.113.5 forges 192.0.2.9 in its own header; two
    // trusted proxies appended what they saw.
    for _ in 0..3 {
        sogo_login(&j, "192.0.2.9, 203.0.113.5, 10.0.0.1");
    }
    // Requests the proxies make themselves: every hop trusted.
    for _ in 0..5 {
        sogo_login(&j, "10.0.0.7, 10.0.0.1");
    }
    let ban = d.wait_ban("sogo-auth", "203.0.113.5");
    assert_eq!(ban.failures, 3);
    std::thread::sleep(Duration::from_millis(300));
    let banned: Vec<String> = d.bans().into_iter().map(|b| b.address).collect();
    assert_eq!(banned, ["203.0.113.5"]);
    for proxy in ["10.0.0.1", "10.0.0.7"] {
        assert_eq!(d.stored_failures("sogo-auth", proxy), 0, "{proxy}");
    }
    assert_eq!(d.stored_failures("sogo-auth", "192.0.2.9"), 0);
    // Nor by hand: a trusted proxy is an ignored address.
    let out = cli(&d, &["ban", "sogo-auth", "10.0.0.1"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("trusted_proxies"),
        "{out:?}"
    );
}

/// A forged entry, written by user nobody with `logger --journald`: any
/// field without a leading "_" is the writer's to choose.
fn forge(j: &PrivateJournald, fields: &[(&str, &str)]) {
    use std::io::Write;
    let mut child = j
        .as_nobody("logger")
        .arg("--journald")
        .stdin(std::process::Stdio::piped())
        .spawn()
        .expect("run logger --journald as nobody");
    let mut text = String::new();
    for (k, v) in fields {
        text.push_str(&format!("{k}={v}\n"));
    }
    child
        .stdin
        .take()
        .expect("piped")
        .write_all(text.as_bytes())
        .expect("feed logger");
    assert!(
        child.wait().expect("wait for logger").success(),
        "logger failed"
    );
    j.sync();
}

/// The same as a syslog datagram to /dev/log (`logger -t`), as nobody.
fn forge_syslog(j: &PrivateJournald, ident: &str, message: &str) {
    let status = j
        .as_nobody("logger")
        .args([
            "-u",
            "/run/systemd/journal/dev-log",
            "-t",
            ident,
            "-i",
            "--",
            message,
        ])
        .status()
        .expect("run logger as nobody");
    assert!(status.success(), "logger -t failed");
    j.sync();
}

fn failed_password(addr: &str) -> String {
    format!("Failed password for root from {addr} port 4242 ssh2")
}

#[test]
fn forged_journal_entries_from_an_unprivileged_user_ban_no_one() {
    let j = PrivateJournald::started();
    let unit = j.unit("ssh.service");
    let d = Daemon::start(
        &j,
        &format!(
            r#"
[daemon]
backend = "none"
journal_directory = "{{journal}}"
filter_dirs = ["{{filters}}"]
[defaults]
ignoreself = false
[jails.sshd]
journal_match = ["_SYSTEMD_UNIT={unit}"]
maxretry = 3
[jails.recidive]
maxretry = 2
findtime = "1d"
bantime = "1w"
# The shipped filters' own journal_match (they used to accept
# SYSLOG_IDENTIFIER=vsftpd / nginx from anyone).
[jails.vsftpd]
maxretry = 2
[jails.nginx-http-auth]
maxretry = 2
"#
        ),
    );
    const VICTIM: &str = "198.51.100.66";
    const VICTIM2: &str = "198.51.100.77";
    for _ in 0..4 {
        // journald keeps only its own _SYSTEMD_UNIT, whatever the writer says.
        forge(
            &j,
            &[
                ("MESSAGE", &failed_password(VICTIM)),
                ("SYSLOG_IDENTIFIER", "sshd"),
                ("_SYSTEMD_UNIT", &unit),
                ("_UID", "0"),
            ],
        );
        forge_syslog(&j, "sshd", &failed_password(VICTIM));
        // jailwarden's own ban event, as anyone can write it.
        forge(
            &j,
            &[
                (
                    "MESSAGE",
                    &format!("[sshd] Ban {VICTIM2} for 10m after 3 failures"),
                ),
                ("MESSAGE_ID", "20f4993d915743ba897492a7b5b7ca50"),
                ("SYSLOG_IDENTIFIER", "jailwarden"),
                ("JAILWARDEN_JAIL", "sshd"),
                ("JAILWARDEN_ADDRESS", VICTIM2),
                ("JAILWARDEN_BANTIME_USEC", "600000000"),
                ("JAILWARDEN_FAILURES", "3"),
            ],
        );
    }
    const VICTIM3: &str = "198.51.100.88";
    for _ in 0..3 {
        forge_syslog(
            &j,
            "vsftpd",
            &format!("[pid 1] [x] FAIL LOGIN: Client \"{VICTIM3}\""),
        );
        forge_syslog(
            &j,
            "nginx",
            &format!(
                "2025/11/25 10:20:30 [error] 1#1: *1 user \"x\": password mismatch, client: \
                 {VICTIM3}, server: s, request: \"GET / HTTP/1.1\", host: \"h\""
            ),
        );
    }
    // The real sshd, in its unit: 203.0.113.5 is banned by sshd, and its
    // (real) ban events feed recidive.
    let real = failed_password("203.0.113.5");
    for _ in 0..3 {
        j.send_in_unit(
            &unit,
            &[&[("MESSAGE", real.as_bytes()), ("SYSLOG_IDENTIFIER", b"sshd")]],
        );
    }
    d.wait_ban("sshd", "203.0.113.5");
    // A second real ban of it (by hand, as root) is its second offence.
    let out = cli(&d, &["ban", "sshd", "203.0.113.5", "--for", "1m"]);
    assert!(out.status.success(), "{out:?}");
    d.wait_ban("recidive", "203.0.113.5");
    std::thread::sleep(Duration::from_millis(500));
    let bans: Vec<(String, String)> = d
        .bans()
        .into_iter()
        .filter(|b| b.pid == d.pid())
        .map(|b| (b.jail, b.address))
        .collect();
    assert!(
        !bans
            .iter()
            .any(|(_, a)| a == VICTIM || a == VICTIM2 || a == VICTIM3),
        "forged entries banned someone: {bans:?}"
    );
    assert_eq!(d.stored_failures("sshd", VICTIM), 0);
    assert_eq!(d.stored_failures("recidive", VICTIM2), 0);
    assert_eq!(d.stored_failures("vsftpd", VICTIM3), 0);
    assert_eq!(d.stored_failures("nginx-http-auth", VICTIM3), 0);
    // The forged entries did reach the journal (the test forged something).
    assert_eq!(
        j.messages(&["_UID=65534", "SYSLOG_IDENTIFIER=sshd"]).len(),
        8,
        "forged sshd entries in the journal"
    );
    assert_eq!(
        j.messages(&["_UID=65534", "MESSAGE_ID=20f4993d915743ba897492a7b5b7ca50"])
            .len(),
        4
    );
}

#[test]
fn socket_activated_ssh_instances_are_read_through_their_slice() {
    // The shipped sshd filter's own journal_match: ssh.service / sshd.service,
    // and the per-connection ssh@....service instances of ssh.socket
    // (Accept=yes), in system-ssh.slice. OpenSSH 9.8+ logs from
    // sshd-session (its own identifier) inside the same unit.
    let j = PrivateJournald::started();
    let d = Daemon::start(
        &j,
        r#"
[daemon]
backend = "none"
journal_directory = "{journal}"
filter_dirs = ["{filters}"]
[defaults]
ignoreself = false
[jails.sshd]
maxretry = 2
"#,
    );
    let instance = format!(
        "system.slice/system-ssh.slice/ssh@{}-192.0.2.1:22-203.0.113.5:4242.service",
        j.unit("0")
    );
    for ident in ["sshd", "sshd-session"] {
        j.send_in_cgroup(
            &instance,
            &[&[
                ("MESSAGE", failed_password("203.0.113.5").as_bytes()),
                ("SYSLOG_IDENTIFIER", ident.as_bytes()),
            ]],
        );
    }
    let ban = d.wait_ban("sshd", "203.0.113.5");
    assert_eq!(ban.failures, 2);
    assert!(
        j.messages(&["_SYSTEMD_SLICE=system-ssh.slice"]).len() >= 2,
        "journald put the instance in system-ssh.slice"
    );
}

#[test]
fn a_journal_match_any_user_can_satisfy_is_a_configuration_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = dir.path().join("jailwarden.toml");
    std::fs::write(
        &cfg,
        format!(
            "[daemon]\nfilter_dirs = [{:?}]\n[jails.apache-auth]\njournal_match = [\"SYSLOG_IDENTIFIER=apache2\"]\n",
            support::daemon::filters_dir()
        ),
    )
    .expect("write config");
    let out = Command::new(env!("CARGO_BIN_EXE_jailwarden"))
        .args(["check-config", "--config"])
        .arg(&cfg)
        .output()
        .expect("run check-config");
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("jailwarden.toml:4:18: journal_match group \"SYSLOG_IDENTIFIER=apache2\" names no writer"),
        "{err}"
    );
}
