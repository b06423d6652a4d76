//! What the manual pages and docs say about behaviour that used to be
//! silent, checked against the real daemon (private journald) and the
//! shipped files: a reload names the [daemon] keys that wait for a
//! restart, a state_dir that loses to --state-dir is named in a warning,
//! and every drop-in the catalog and the pages name ships under that name.
//!
//! The daemon tests need root (the private journald; TESTING.md 1).

mod support;

use std::path::Path;

use support::PrivateJournald;
use support::daemon::{Daemon, RELOAD_ID};

const CONFIG: &str = r#"
[daemon]
backend = "none"
journal_directory = "{journal}"
filter_dirs = ["{filters}"]
recheck = "60s"
[jails.sshd]
journal_match = ["_UID=0", "SYSLOG_IDENTIFIER=sshd"]
"#;

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// jailwarden.toml(5): keys marked "at start" keep their running value on
/// reload, and the reload event names them; the others apply.
#[test]
fn reload_names_daemon_keys_that_wait_for_a_restart() {
    support::needs_root!();
    let j = PrivateJournald::started();
    let d = Daemon::start(&j, CONFIG);
    d.reload();
    let last = |d: &Daemon| d.messages(RELOAD_ID).last().cloned().unwrap_or_default();
    assert!(!last(&d).contains("next start"), "{}", last(&d));
    // recheck and dbus wait for a restart; dbpurgeage applies now.
    d.write_config(
        &CONFIG
            .replace("recheck = \"60s\"", "recheck = \"5m\"\ndbpurgeage = \"3d\"")
            .replace("[daemon]", "[daemon]\ndbus = true"),
    );
    d.reload();
    let msg = last(&d);
    assert!(
        msg.contains("changed [daemon] dbus, recheck take effect at the next start"),
        "{msg}"
    );
    let fields = d.journal_fields(&[&format!("MESSAGE_ID={RELOAD_ID}")]);
    assert!(
        fields.contains("JAILWARDEN_RESTART_NEEDED=dbus recheck"),
        "{fields}"
    );
    // Back to what the daemon started with: nothing waits any more.
    d.write_config(CONFIG);
    d.reload();
    assert!(!last(&d).contains("next start"), "{}", last(&d));
}

/// jailwarden.toml(5), STATE DIRECTORY: --state-dir and $STATE_DIRECTORY
/// win over [daemon] state_dir, and the daemon says so.
#[test]
fn an_overridden_state_dir_is_named_in_a_warning() {
    support::needs_root!();
    let j = PrivateJournald::started();
    let d = Daemon::start(
        &j,
        &CONFIG.replace("[daemon]", "[daemon]\nstate_dir = \"/var/lib/jw-nowhere\""),
    );
    let log = d.log().join("\n");
    assert!(
        log.contains("[daemon] state_dir /var/lib/jw-nowhere is overridden by --state-dir")
            && log.contains(&d.state().display().to_string()),
        "{log}"
    );
    assert!(!Path::new("/var/lib/jw-nowhere").exists());
}

/// Every drop-in the catalog, the unit and the man pages name is shipped
/// under that name (as NAME.conf.example, to copy as NAME.conf).
#[test]
fn every_named_drop_in_ships() {
    let shipped: Vec<String> = std::fs::read_dir(repo().join("units/jailwarden.service.d"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_jailwarden"))
        .args(["generate", "man"])
        .arg(std::env::temp_dir().join(format!("jw-claims-man-{}", std::process::id())))
        .output()
        .unwrap();
    // (text, strict): where a text describes the examples directory, a
    // bare NAME.conf is a file that is not there; only a path into
    // jailwarden.service.d/ (where the copy goes) may drop .example.
    let mut texts = vec![
        (
            std::fs::read_to_string(repo().join("units/jailwarden.catalog")).unwrap(),
            true,
        ),
        (
            std::fs::read_to_string(repo().join("units/jailwarden.service")).unwrap(),
            false,
        ),
        // The README also names Fail2ban's files: only its lines about drop-ins.
        (
            std::fs::read_to_string(repo().join("README.md"))
                .unwrap()
                .lines()
                .filter(|l| l.contains("drop-in") || l.contains(".service.d"))
                .collect::<Vec<_>>()
                .join("\n"),
            true,
        ),
    ];
    for page in String::from_utf8_lossy(&out.stdout).lines() {
        texts.push((
            std::fs::read_to_string(page).unwrap().replace("\\-", "-"),
            true,
        ));
        let _ = std::fs::remove_file(page);
    }
    let mut named = 0;
    for (text, strict) in &texts {
        for word in
            text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '.' || c == '/'))
        {
            // Paths elsewhere (/etc/nftables.conf) are not drop-ins.
            // `in_dir`: a path into our examples or drop-in directory.
            let (word, copy, in_dir) = match word.rsplit_once('/') {
                Some((dir, file)) if dir.ends_with("examples") => (file, false, true),
                Some((dir, file)) if dir.ends_with("jailwarden.service.d") => (file, true, true),
                Some(_) => continue,
                None => (word, false, false),
            };
            let word = word.trim_end_matches('.');
            let Some(stem) = word
                .strip_suffix(".conf.example")
                .or_else(|| word.strip_suffix(".conf"))
            else {
                continue;
            };
            if stem.is_empty() || stem.contains('.') || stem == "jailwarden" {
                continue;
            }
            let ours = shipped.contains(&format!("{stem}.conf.example"));
            if !ours && !in_dir && !word.ends_with(".conf.example") {
                // Another program's file (Fail2ban's jail.conf, ...).
                continue;
            }
            named += 1;
            assert!(
                !strict || copy || word.ends_with(".conf.example"),
                "{word}: the shipped file is {stem}.conf.example"
            );
            assert!(
                shipped.contains(&format!("{stem}.conf.example")),
                "{word} is named but units/jailwarden.service.d/{stem}.conf.example does not exist"
            );
        }
    }
    assert!(named >= 6, "only {named} drop-in names found");
}

/// jailwarden(8), status: while a first start reads the journal backlog
/// (the last findtime), `status` shows how far it got; `status --json` has
/// it as `backlog` (docs/cli-json.md), `null` once read.
#[test]
fn status_shows_the_backlog_progress_of_a_first_start() {
    support::needs_root!();
    let j = PrivateJournald::started();
    let backlog = tempfile::tempdir().unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_micros() as u64;
    const N: u64 = 300_000;
    let span = 9 * 60 * 1_000_000u64;
    let messages: Vec<String> = (0..N)
        .map(|i| {
            format!(
                "Connection closed by 192.0.2.{} port {} [preauth]",
                i % 250,
                1024 + i % 60000
            )
        })
        .collect();
    type Entry<'a> = (u64, Vec<(&'a str, &'a [u8])>);
    let entries: Vec<Entry> = messages
        .iter()
        .enumerate()
        .map(|(i, m)| {
            (
                now - span + span * i as u64 / N,
                vec![
                    ("MESSAGE", m.as_bytes()),
                    ("SYSLOG_IDENTIFIER", b"sshd".as_slice()),
                    // The jail's match names the writer by a trusted field.
                    ("_UID", b"0".as_slice()),
                ],
            )
        })
        .collect();
    let refs: Vec<(u64, support::Fields)> =
        entries.iter().map(|(t, f)| (*t, f.as_slice())).collect();
    support::write_journal_file(&backlog.path().join("backlog.journal"), &refs);
    let config = CONFIG.replace("{journal}", &backlog.path().display().to_string());
    let d = Daemon::start(&j, &config);
    let status = |json: bool| {
        let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_jailwarden"));
        c.arg("status")
            .arg("--socket")
            .arg(d.dir.path().join("control.sock"))
            .env("DBUS_SYSTEM_BUS_ADDRESS", "unix:path=/nonexistent");
        if json {
            c.arg("--json");
        }
        let o = c.output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    let mut seen = Vec::new();
    let mut text_seen = None;
    let end = std::time::Instant::now() + std::time::Duration::from_secs(120);
    loop {
        // The text form too, on every round until it showed the backlog
        // (it may be over between two calls).
        if text_seen.is_none() {
            let t = status(false);
            if t.contains("reading the journal backlog: ") {
                text_seen = Some(t);
            }
        }
        let v: serde_json::Value = serde_json::from_str(&status(true)).unwrap();
        if v["backlog"].is_null() {
            if !seen.is_empty() {
                break;
            }
        } else {
            let f = v["backlog"]["fraction"].as_f64().unwrap();
            let n = v["backlog"]["entries"].as_u64().unwrap();
            assert!(
                v["backlog"]["position"].is_string()
                    && v["backlog"]["position_usec"].as_u64() > Some(now - span - 1)
            );
            seen.push((f, n));
        }
        assert!(
            std::time::Instant::now() < end,
            "backlog never seen or never finished: {seen:?}\n{}",
            d.log().join("\n")
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(
        seen.iter()
            .any(|(f, n)| *f > 0.0 && *f < 1.0 && *n > 0 && *n < N),
        "no progress seen mid-way: {seen:?}"
    );
    assert!(
        seen.windows(2).all(|w| w[0].1 <= w[1].1),
        "entries only grow: {seen:?}"
    );
    let text = text_seen.expect("status (text) showed the backlog");
    assert!(
        text.lines()
            .nth(1)
            .is_some_and(|l| l.contains("% ") || l.contains("%,")),
        "{text}"
    );
    // Done: the text status is back to its header and table.
    assert!(!status(false).contains("backlog"));
}
