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
