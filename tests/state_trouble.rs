//! The state directory in trouble, with the real daemon, journal and
//! nftables (in a network namespace of the test's own): a full disk (a
//! small tmpfs mounted on the state directory in the private journald's
//! mount namespace, where the daemon runs), a read-only state directory,
//! and a database that is truncated, overwritten, of another schema
//! version, from a newer jailwarden or gone.

mod support;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use support::daemon::Daemon;
use support::{NamedNetns, PrivateJournald, wait_until};

const CONFIG: &str = r#"
[daemon]
backend = "nftables"
recheck = "1s"
journal_directory = "{journal}"
filter_dirs = ["{filters}"]
[defaults]
ignoreself = false
findtime = "1h"
bantime = "1h"
[jails.sshd]
journal_match = ["_UID=0", "SYSLOG_IDENTIFIER=sshd"]
maxretry = 3
"#;

fn failed(j: &PrivateJournald, addrs: &[&str], times: usize) {
    let msgs: Vec<String> = addrs
        .iter()
        .flat_map(|a| {
            (0..times)
                .map(move |i| format!("Failed password for root from {a} port {} ssh2", 1000 + i))
        })
        .collect();
    let entries: Vec<[(&str, &[u8]); 2]> = msgs
        .iter()
        .map(|m| {
            [
                ("MESSAGE", m.as_bytes()),
                ("SYSLOG_IDENTIFIER", b"sshd".as_slice()),
            ]
        })
        .collect();
    let refs: Vec<&[(&str, &[u8])]> = entries.iter().map(|e| e.as_slice()).collect();
    j.send(&refs);
}

/// The addresses in the jail's IPv4 set, in the namespace.
fn kernel(ns: &NamedNetns) -> BTreeSet<String> {
    ns.set_elements("sshd-v4")
        .into_iter()
        .map(|(addr, _)| addr)
        .collect()
}

fn stored(db: &Path) -> BTreeSet<String> {
    let Ok(c) =
        rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
    else {
        return BTreeSet::new();
    };
    let Ok(mut st) = c.prepare("SELECT net FROM bans WHERE jail = 'sshd'") else {
        return BTreeSet::new();
    };
    st.query_map([], |r| r.get::<_, String>(0))
        .map(|rows| {
            rows.flatten()
                .map(|n| n.trim_end_matches("/32").to_string())
                .collect()
        })
        .unwrap_or_default()
}

fn set(v: &[&str]) -> BTreeSet<String> {
    v.iter().map(|s| s.to_string()).collect()
}

/// How each case damages the database (the daemon stopped).
fn damage(case: &str, db: &Path) {
    // Everything in the main file first (no write-ahead log left beside
    // it), as after a clean close.
    {
        let c = rusqlite::Connection::open(db).expect("open db");
        c.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
            .expect("checkpoint");
        c.pragma_update(None, "journal_mode", "DELETE")
            .expect("journal_mode");
    }
    match case {
        "truncated" => {
            let len = std::fs::metadata(db).expect("db").len();
            let f = std::fs::OpenOptions::new()
                .write(true)
                .open(db)
                .expect("open db");
            // Keep the header and the first pages: the schema says more
            // pages exist than the file has.
            f.set_len((len / 2).max(4096 + 100).min(len - 1))
                .expect("truncate");
        }
        "overwritten" => {
            let mut bytes = std::fs::read(db).expect("read db");
            for (i, b) in bytes.iter_mut().enumerate().skip(16) {
                *b = (i as u8).wrapping_mul(37) ^ 0x5a;
            }
            std::fs::write(db, bytes).expect("write db");
        }
        "other schema" => {
            // A version 3 database that says it is version 1: migrating it
            // again fails.
            let c = rusqlite::Connection::open(db).expect("open db");
            c.pragma_update(None, "user_version", 1)
                .expect("set version");
        }
        "newer jailwarden" => {
            let c = rusqlite::Connection::open(db).expect("open db");
            c.pragma_update(None, "user_version", 999)
                .expect("set version");
        }
        "deleted" => std::fs::remove_file(db).expect("remove db"),
        other => panic!("unknown case {other}"),
    }
}

/// A broken database is set aside (never deleted), named in the journal;
/// a new one is started with the bans in force taken from the kernel's
/// sets; the daemon runs and bans as before.
#[test]
fn a_broken_database_is_kept_aside_and_the_bans_come_back_from_the_kernel() {
    support::needs_root!();
    for case in [
        "truncated",
        "overwritten",
        "other schema",
        "newer jailwarden",
        "deleted",
    ] {
        let ns = NamedNetns::new("broken");
        let j = PrivateJournald::started();
        let mut d = Daemon::start_in(&j, CONFIG, Some(&ns.0));
        // Enough rows that the file has many pages to damage.
        let many: Vec<String> = (1..=200).map(|i| format!("192.0.2.{i}")).collect();
        let many: Vec<&str> = many.iter().map(String::as_str).collect();
        failed(&j, &many[..100], 2);
        failed(&j, &["198.51.100.1", "198.51.100.2"], 3);
        let db = d.state_dir().join("jailwarden.sqlite3");
        let both = set(&["198.51.100.1", "198.51.100.2"]);
        assert!(
            wait_until(Duration::from_secs(15), || stored(&db) == both
                && kernel(&ns) == both),
            "{case}: not banned: store {:?}, kernel {:?}",
            stored(&db),
            kernel(&ns)
        );
        d.term();
        let before = std::fs::read(&db).expect("read db");
        damage(case, &db);
        let damaged = std::fs::read(&db).ok();
        d.spawn();
        // The file is kept aside, byte for byte, and named in the journal.
        let aside: Vec<PathBuf> = std::fs::read_dir(d.state_dir())
            .expect("state dir")
            .flatten()
            .map(|e| e.path())
            .filter(|p| {
                p.file_name().is_some_and(|n| {
                    n.to_string_lossy()
                        .starts_with("jailwarden.sqlite3.broken-")
                }) && p.extension().is_none_or(|e| e != "sqlite3-wal")
            })
            .filter(|p| {
                !p.to_string_lossy().ends_with("-wal") && !p.to_string_lossy().ends_with("-shm")
            })
            .collect();
        let log = d.log().join("\n");
        match &damaged {
            Some(bytes) => {
                assert_eq!(aside.len(), 1, "{case}: set aside: {aside:?}\n{log}");
                let kept = std::fs::read(&aside[0]).unwrap_or_default();
                assert!(
                    kept == *bytes,
                    "{case}: the file set aside ({} bytes) is not the damaged one ({} bytes), unchanged",
                    kept.len(),
                    bytes.len()
                );
                assert!(
                    log.contains("the state database is unusable")
                        && log.contains(&aside[0].display().to_string()),
                    "{case}: no clear message naming the file set aside:\n{log}"
                );
                assert!(*bytes != before, "{case}: the damage did nothing");
            }
            None => assert!(aside.is_empty(), "{case}: nothing to set aside: {aside:?}"),
        }
        // The bans in force were taken from the kernel; nothing was lifted.
        assert!(
            wait_until(Duration::from_secs(10), || stored(&db) == both),
            "{case}: bans not recovered into the new store: {:?}\n{log}",
            stored(&db)
        );
        assert_eq!(kernel(&ns), both, "{case}: the kernel's bans stay");
        assert!(
            d.log()
                .iter()
                .any(|l| l.contains("were taken from the firewall")),
            "{case}: the recovery is not told"
        );
        // And the daemon goes on banning.
        failed(&j, &["198.51.100.3"], 3);
        let three = set(&["198.51.100.1", "198.51.100.2", "198.51.100.3"]);
        assert!(
            wait_until(Duration::from_secs(15), || stored(&db) == three
                && kernel(&ns) == three),
            "{case}: no new ban after recovery: store {:?}, kernel {:?}",
            stored(&db),
            kernel(&ns)
        );
        // One ban event per ban: recovering is not banning again.
        let events: Vec<String> = d.bans().into_iter().map(|b| b.address).collect();
        assert_eq!(
            events,
            ["198.51.100.1", "198.51.100.2", "198.51.100.3"],
            "{case}"
        );
        d.term();
    }
}

/// `nsenter` into the private journald's mount namespace (where the daemon
/// runs), running `args`.
fn in_journald_ns(j: &PrivateJournald, args: &[&str]) -> std::process::Output {
    Command::new("nsenter")
        .arg("-t")
        .arg(j.pid().to_string())
        .arg("-m")
        .args(args)
        .output()
        .expect("nsenter")
}

fn ok(o: &std::process::Output, what: &str) {
    assert!(
        o.status.success(),
        "{what}: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
}

/// Rows of `sql` on the database at `db` as the daemon sees it (inside
/// journald's mount namespace, where the small tmpfs is), read-only.
/// (SQLite resolves `/proc/PID/root` to `/`, so the test cannot open it
/// from outside.)
fn ns_query(j: &PrivateJournald, db: &Path, sql: &str) -> Vec<Vec<serde_json::Value>> {
    const Q: &str = "import json, sqlite3, sys\n\
c = sqlite3.connect('file:' + sys.argv[1] + '?mode=ro', uri=True)\n\
print(json.dumps(c.execute(sys.argv[2]).fetchall()))";
    let o = in_journald_ns(
        j,
        &["/usr/bin/python3", "-c", Q, &db.display().to_string(), sql],
    );
    serde_json::from_slice(&o.stdout).unwrap_or_default()
}

fn ns_stored(j: &PrivateJournald, db: &Path) -> BTreeSet<String> {
    ns_query(j, db, "SELECT net FROM bans WHERE jail = 'sshd'")
        .into_iter()
        .filter_map(|r| {
            r.first()
                .and_then(|v| v.as_str())
                .map(|n| n.trim_end_matches("/32").to_string())
        })
        .collect()
}

#[test]
fn a_read_only_state_directory_is_named_in_a_clear_error() {
    support::needs_root!();
    let j = PrivateJournald::started();
    let mut d = Daemon::prepare_in(&j, CONFIG.replace("nftables", "none").as_str(), None);
    let state = d.state_dir();
    std::fs::create_dir_all(&state).expect("state dir");
    let s = state.display().to_string();
    ok(
        &in_journald_ns(
            &j,
            &["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", &s],
        ),
        "mount a read-only tmpfs",
    );
    d.spawn_unready();
    let status = d.wait_exit();
    assert_eq!(status.code(), Some(1), "{status}");
    let log = d.log().join("\n");
    assert!(
        log.contains(&format!(
            "the state directory {s} cannot be used: it is on a read-only filesystem"
        )),
        "no clear error naming the directory:\n{log}"
    );
}

/// The state directory's filesystem fills up: bans still reach the kernel,
/// `status`, the journal and STATUS= say the database cannot be written,
/// and once there is room again everything is written (nothing lost, no
/// ban twice, a sound database).
#[test]
fn a_full_disk_keeps_banning_says_so_and_catches_up() {
    support::needs_root!();
    let ns = NamedNetns::new("full");
    let j = PrivateJournald::started();
    let mut d = Daemon::prepare_in(&j, CONFIG, Some(&ns.0));
    let state = d.state_dir();
    std::fs::create_dir_all(&state).expect("state dir");
    let s = state.display().to_string();
    ok(
        &in_journald_ns(&j, &["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", &s]),
        "mount a small tmpfs",
    );
    let notify_path = d.dir.path().join("notify.sock");
    let notify = std::os::unix::net::UnixDatagram::bind(&notify_path).expect("bind notify");
    notify
        .set_read_timeout(Some(Duration::from_millis(100)))
        .expect("timeout");
    d.set_env("NOTIFY_SOCKET", &notify_path.display().to_string());
    d.spawn();
    let db = state.join("jailwarden.sqlite3");
    let stored = |db: &Path| ns_stored(&j, db);
    failed(&j, &["198.51.100.1"], 3);
    assert!(
        wait_until(Duration::from_secs(15), || stored(&db)
            == set(&["198.51.100.1"])),
        "no first ban: {:?}",
        stored(&db)
    );
    // Fill the filesystem.
    let filler = format!("{s}/filler");
    let _ = in_journald_ns(
        &j,
        &["dd", "if=/dev/zero", &format!("of={filler}"), "bs=4k"],
    );
    // Attackers while it is full: banned in the kernel all the same.
    let attackers: Vec<String> = (2..=41).map(|i| format!("198.51.100.{i}")).collect();
    let attackers: Vec<&str> = attackers.iter().map(String::as_str).collect();
    failed(&j, &attackers, 3);
    failed(&j, &["192.0.2.77"], 2);
    let mut all: BTreeSet<String> = attackers.iter().map(|a| a.to_string()).collect();
    all.insert("198.51.100.1".into());
    assert!(
        wait_until(Duration::from_secs(15), || kernel(&ns) == all),
        "not banned in the kernel with the disk full: {} of {}",
        kernel(&ns).len(),
        all.len()
    );
    assert_eq!(
        stored(&db),
        set(&["198.51.100.1"]),
        "the disk is full: nothing more can have been written"
    );
    // Said in the journal, in `status` and in STATUS=.
    assert!(
        wait_until(Duration::from_secs(5), || d
            .log()
            .iter()
            .any(|l| l.contains("cannot write the state database"))),
        "not said in the journal:\n{}",
        d.log().join("\n")
    );
    let out = d.cli(&["status"]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        text.contains("state database: cannot write the state database since"),
        "status does not say it: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value =
        serde_json::from_slice(&d.cli(&["status", "--json"]).stdout).expect("status --json");
    assert!(
        json["store_problem"]
            .as_str()
            .is_some_and(|p| p.contains("full")),
        "status --json: {json}"
    );
    let mut buf = [0u8; 4096];
    let mut said = false;
    for _ in 0..100 {
        if let Ok(n) = notify.recv(&mut buf) {
            let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
            if msg.contains("STATUS=") && msg.contains("cannot write the state database") {
                said = true;
                break;
            }
        }
    }
    assert!(said, "STATUS= does not say it");
    // Room again: everything is written, once.
    ok(&in_journald_ns(&j, &["rm", &filler]), "remove the filler");
    assert!(
        wait_until(Duration::from_secs(40), || stored(&db) == all),
        "not caught up: {} of {} bans stored",
        stored(&db).len(),
        all.len()
    );
    assert!(
        wait_until(Duration::from_secs(5), || d
            .log()
            .iter()
            .any(|l| l.contains("is written again"))),
        "catching up is not told"
    );
    let one = |sql: &str| ns_query(&j, &db, sql).first().cloned().unwrap_or_default();
    assert_eq!(one("PRAGMA integrity_check"), [serde_json::json!("ok")]);
    assert_eq!(
        one("SELECT coalesce(sum(attempts), 0) FROM failures WHERE addr = '192.0.2.77'"),
        [serde_json::json!(2)],
        "the failures counted while full are stored"
    );
    assert_eq!(
        one("SELECT failed, banned FROM totals WHERE jail = 'sshd'"),
        [serde_json::json!(3 * 41 + 2), serde_json::json!(41)]
    );
    // A restart finds it all and bans nothing twice.
    d.kill();
    d.spawn();
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(stored(&db), all);
    assert_eq!(kernel(&ns), all);
    assert_eq!(d.bans().len(), 41, "one ban event per ban");
}
