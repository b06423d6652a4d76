//! What an admin checks, per jail: the built jailwarden, configured from
//! the shipped files (config/jailwarden.toml and the example jails of
//! config/jail.d/examples, with the Debian paths they name), follows the
//! real daemon's log inside the lab's sandbox and bans in the server
//! namespace's nftables. Then:
//!
//! - two attackers (one IPv4, one IPv6) fail `maxretry - 1` times: counted
//!   exactly that often, nobody banned;
//! - meanwhile a real user mistypes `maxretry - 1` times and then logs in:
//!   it works, and the user is never banned;
//! - a client that only connects and leaves is not counted (normal modes);
//! - one more failure each: both banned, the ban events name them with
//!   `maxretry` failures; their TCP connections to the service fail while
//!   a bystander's and the user's still open;
//! - no address but theirs was ever counted or banned (the "wrong host"
//!   column: forged headers name the bystander and the server itself).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use crate::lab::{Lab, repo, run_limited};
use crate::support::daemon::{BAN_ID, READY_ID};
use crate::support::wait_until;

/// Who makes an attempt (services pick user names by it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Who {
    /// Guesses for a user that does not exist.
    Attacker,
    /// Guesses for an existing account (the IPv6 attacker).
    AttackerKnownUser,
    /// The real user, mistyping.
    User,
}

/// One failed attempt: `Ok` when the server answered as it does to a
/// failure (refused the password, rejected the request), `Err` with what
/// happened instead.
pub type Attempt = Box<dyn Fn(&Lab, Who, &str) -> Result<(), String> + Send + Sync>;
/// `n` failed attempts from `src` on one connection (`Ok` when the server
/// refused them all).
pub type Burst = Box<dyn Fn(&Lab, &str, u32) -> Result<(), String> + Send + Sync>;
/// One successful use from `src`: `Ok` when the server accepted it.
pub type Success = Box<dyn Fn(&Lab, &str) -> Result<(), String> + Send + Sync>;

/// Where a service writes what a jail reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Capture {
    /// Journal entries: a name for the fixture and the journalctl matches
    /// (the jail's journal_match).
    Journal(&'static str, &'static [&'static str]),
    /// A file in the sandbox.
    File(&'static str),
}

impl Capture {
    /// The fixture's file name for `service`.
    pub fn fixture_name(&self, service: &str) -> String {
        match self {
            Capture::Journal(name, _) => format!("{service}.{name}.journal"),
            Capture::File(path) => {
                format!("{service}.{}", path.rsplit('/').next().unwrap_or("log"))
            }
        }
    }
}

/// A jail under test.
pub struct JailTest {
    /// The jail's name in the example file.
    pub jail: &'static str,
    /// The example file (config/jail.d/examples/NAME.toml.example).
    pub example: &'static str,
    /// The TCP port whose connections a ban must stop.
    pub port: u16,
    pub fail: Attempt,
    pub succeed: Success,
    /// Attackers use IPv6 too (the service listens on both).
    pub ipv6: bool,
    /// What the jail reads (kept as a fixture).
    pub source: Capture,
    /// What one attempt is, for the report and the fixture header.
    pub what: &'static str,
    /// The jail's maxretry, if not [`MAXRETRY`].
    pub maxretry: Option<u32>,
    /// Several attempts on one connection (a client that keeps its
    /// connection: sshd's password prompts, FTP logins, IMAP LOGINs): one
    /// failure each, however the service logs them.
    pub burst: Option<Burst>,
    /// The package whose version the report gives, if not the service's.
    pub package: Option<&'static str>,
}

/// The addresses of the jail at `index` within its lab.
#[derive(Debug, Clone)]
pub struct Addrs {
    pub attacker4: String,
    pub attacker6: String,
    pub user: String,
    pub bystander: String,
    pub prober: String,
    pub burst: String,
}

impl Addrs {
    pub fn of(index: usize) -> Addrs {
        let base = 2 + 10 * index;
        Addrs {
            attacker4: format!("192.0.2.{base}"),
            attacker6: format!("2001:db8::{base}"),
            user: format!("192.0.2.{}", base + 1),
            bystander: format!("192.0.2.{}", base + 2),
            prober: format!("192.0.2.{}", base + 3),
            burst: format!("192.0.2.{}", base + 4),
        }
    }
}

/// The measured result of one jail.
#[derive(Debug, Clone)]
pub struct Row {
    pub service: String,
    pub jail: String,
    pub version: String,
    pub what: String,
    pub maxretry: u32,
    /// Failed attempts the clients made.
    pub attempts: u32,
    /// Failures the jail counted (its total_failed).
    pub counted: u64,
    /// `failures` of each ban event of the attackers.
    pub banned_after: Vec<u32>,
    /// Addresses counted or banned that were not a failing client.
    pub wrong_hosts: Vec<String>,
    pub seconds: f64,
    /// Failures each client made (what the fixture must count).
    pub expected: BTreeMap<String, u32>,
}

/// A ban event from the journal.
#[derive(Debug, Clone)]
pub struct BanEvent {
    pub jail: String,
    pub address: String,
    pub failures: u32,
}

/// The built jailwarden in a lab's sandbox.
pub struct Warden<'l, 's> {
    pub lab: &'l Lab<'s>,
    pub pid: u32,
    pub dir: PathBuf,
}

pub const MAXRETRY: u32 = 3;

impl<'l, 's> Warden<'l, 's> {
    /// Start it with the shipped main configuration and the example jails
    /// of `tests`, enabled, with the suite's limits.
    pub fn start(lab: &'l Lab<'s>, tests: &[JailTest]) -> Warden<'l, 's> {
        let dir = lab.dir.join("jailwarden");
        let jail_d = dir.join("jail.d");
        std::fs::create_dir_all(&jail_d).expect("jail.d");
        std::fs::copy(
            repo().join("config/jailwarden.toml"),
            dir.join("jailwarden.toml"),
        )
        .expect("copy the shipped config");
        let mut examples: Vec<&str> = tests.iter().map(|t| t.example).collect();
        examples.dedup();
        for ex in examples {
            if ex == "jailwarden" {
                continue; // the sshd jail is in the main file
            }
            let src = repo().join(format!("config/jail.d/examples/{ex}.toml.example"));
            std::fs::copy(&src, jail_d.join(format!("50-{ex}.toml")))
                .unwrap_or_else(|e| panic!("{}: {e}", src.display()));
        }
        let mut over = format!(
            "# tests/real: the suite's daemon settings and limits.\n[daemon]\nsocket = \"{}\"\ndbus = false\nfilter_dirs = [\"{}\"]\n\n",
            dir.join("control.sock").display(),
            repo().join("config/filters").display()
        );
        if !tests.iter().any(|t| t.jail == "sshd") {
            over.push_str("[jails.sshd]\nenabled = false\n\n");
        }
        for t in tests {
            over.push_str(&format!(
                "[jails.{}]\nenabled = true\nmaxretry = {}\nfindtime = \"10m\"\nbantime = \"10m\"\n\n",
                t.jail,
                t.maxretry.unwrap_or(MAXRETRY)
            ));
        }
        std::fs::write(jail_d.join("99-tests-real.toml"), over).expect("write overrides");
        let config = dir.join("jailwarden.toml");
        let check = run_limited(
            {
                let mut c = Command::new(env!("CARGO_BIN_EXE_jailwarden"));
                c.arg("check-config").arg("--config").arg(&config);
                c
            },
            Duration::from_secs(30),
        );
        assert!(
            check.status.success(),
            "{}: check-config: {}{}",
            lab.name,
            String::from_utf8_lossy(&check.stdout),
            String::from_utf8_lossy(&check.stderr)
        );
        let bin = env!("CARGO_BIN_EXE_jailwarden");
        let config_s = config.display().to_string();
        let state_s = dir.join("state").display().to_string();
        let pid = lab.spawn(
            "jailwarden",
            None,
            &[
                bin,
                "daemon",
                "--config",
                &config_s,
                "--state-dir",
                &state_s,
            ],
        );
        let w = Warden { lab, pid, dir };
        let ok = wait_until(Duration::from_secs(30), || {
            !lab.suite
                .journal_json(&[
                    "SYSLOG_IDENTIFIER=jailwarden",
                    &format!("MESSAGE_ID={READY_ID}"),
                    &format!("_PID={pid}"),
                ])
                .is_empty()
        });
        assert!(
            ok,
            "{}: jailwarden did not become ready: {}",
            lab.name,
            std::fs::read_to_string(lab.dir.join("jailwarden.out")).unwrap_or_default()
        );
        w
    }

    /// `jailwarden status --json` over its control socket.
    pub fn status(&self) -> serde_json::Value {
        let out = run_limited(
            {
                let mut c = Command::new(env!("CARGO_BIN_EXE_jailwarden"));
                c.args(["status", "--json", "--socket"])
                    .arg(self.dir.join("control.sock"));
                c
            },
            Duration::from_secs(20),
        );
        serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null)
    }

    /// The jail's total_failed.
    pub fn total_failed(&self, jail: &str) -> Option<u64> {
        self.status()["jails"]
            .as_array()?
            .iter()
            .find(|j| j["name"] == jail)?["total_failed"]
            .as_u64()
    }

    /// Ban events this daemon logged.
    pub fn bans(&self) -> Vec<BanEvent> {
        self.lab
            .suite
            .journal_json(&[
                "SYSLOG_IDENTIFIER=jailwarden",
                &format!("MESSAGE_ID={BAN_ID}"),
                &format!("_PID={}", self.pid),
            ])
            .into_iter()
            .map(|v| BanEvent {
                jail: v["JAILWARDEN_JAIL"].as_str().unwrap_or("").to_string(),
                address: v["JAILWARDEN_ADDRESS"].as_str().unwrap_or("").to_string(),
                failures: v["JAILWARDEN_FAILURES"]
                    .as_str()
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(0),
            })
            .collect()
    }

    /// Failures counted per address (stored failures and the failures
    /// that made a ban), from the daemon's state database.
    pub fn counted(&self, jail: &str) -> BTreeMap<String, i64> {
        let mut out = BTreeMap::new();
        let db = rusqlite::Connection::open_with_flags(
            self.dir.join("state/jailwarden.sqlite3"),
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
        );
        if let Ok(db) = db {
            if let Ok(mut st) =
                db.prepare("SELECT addr, sum(attempts) FROM failures WHERE jail = ?1 GROUP BY addr")
            {
                if let Ok(rows) = st.query_map([jail], |r| {
                    Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?))
                }) {
                    for (a, n) in rows.flatten() {
                        *out.entry(a).or_insert(0) += n;
                    }
                }
            }
        }
        out
    }

    /// What to show when a check on the kernel or the daemon fails: the
    /// ruleset and the daemon's last messages.
    pub fn diagnose(&self) -> String {
        let nft = run_limited(
            {
                let mut c = Command::new("ip");
                c.args([
                    "netns",
                    "exec",
                    &self.lab.server_ns,
                    "nft",
                    "list",
                    "table",
                    "inet",
                    "jailwarden",
                ]);
                c
            },
            Duration::from_secs(20),
        );
        let log = self
            .lab
            .suite
            .journal_text(&[&format!("_PID={}", self.pid)]);
        let tail: Vec<&str> = log.lines().rev().take(15).collect();
        format!(
            "\n--- nft list table inet jailwarden ---\n{}{}\n--- jailwarden's last messages ---\n{}\n--- its stderr ---\n{}",
            String::from_utf8_lossy(&nft.stdout),
            String::from_utf8_lossy(&nft.stderr),
            tail.into_iter().rev().collect::<Vec<_>>().join("\n"),
            std::fs::read_to_string(self.lab.dir.join("jailwarden.out")).unwrap_or_default()
        )
    }

    /// Is `addr` in one of the server namespace's jailwarden sets?
    pub fn in_kernel(&self, addr: &str) -> bool {
        let out = run_limited(
            {
                let mut c = Command::new("ip");
                c.args([
                    "netns",
                    "exec",
                    &self.lab.server_ns,
                    "nft",
                    "-j",
                    "list",
                    "table",
                    "inet",
                    "jailwarden",
                ]);
                c
            },
            Duration::from_secs(20),
        );
        let v: serde_json::Value =
            serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null);
        v["nftables"].as_array().is_some_and(|items| {
            items.iter().any(|i| {
                i["set"]["elem"].as_array().is_some_and(|elems| {
                    elems.iter().any(|e| {
                        let val = e.get("elem").map_or(e, |inner| &inner["val"]);
                        val.as_str() == Some(addr)
                    })
                })
            })
        })
    }
}

fn join_all<T: Send>(tasks: Vec<Box<dyn FnOnce() -> T + Send + '_>>) -> Vec<T> {
    std::thread::scope(|s| {
        let handles: Vec<_> = tasks.into_iter().map(|t| s.spawn(t)).collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect()
    })
}

/// Run the admin's checks for one jail; panics with the reason when one
/// fails.
pub fn run_jail(warden: &Warden, t: &JailTest, index: usize, version: &str) -> Row {
    let lab = warden.lab;
    let started = std::time::Instant::now();
    let a = Addrs::of(index);
    let m = t.maxretry.unwrap_or(MAXRETRY);
    let attackers: Vec<(String, Who)> = if t.ipv6 {
        vec![
            (a.attacker4.clone(), Who::Attacker),
            (a.attacker6.clone(), Who::AttackerKnownUser),
        ]
    } else {
        vec![(a.attacker4.clone(), Who::Attacker)]
    };
    let name = format!("{}/{}", lab.name, t.jail);
    let fails = |who: Who, src: &str, n: u32| -> Result<(), String> {
        for k in 0..n {
            (t.fail)(lab, who, src).map_err(|e| format!("{src} attempt {}: {e}", k + 1))?;
        }
        Ok(())
    };
    // Phase 1: maxretry - 1 failures each, the user's typos and login, a
    // client that connects and leaves.
    let mut tasks: Vec<Box<dyn FnOnce() -> Result<(), String> + Send + '_>> = Vec::new();
    for (src, who) in &attackers {
        let (src, who) = (src.clone(), *who);
        tasks.push(Box::new(move || fails(who, &src, m - 1)));
    }
    let user = a.user.clone();
    tasks.push(Box::new(move || {
        fails(Who::User, &user, m - 1)?;
        (t.succeed)(lab, &user).map_err(|e| format!("the real user's login failed: {e}"))
    }));
    let prober = a.prober.clone();
    let port = t.port;
    tasks.push(Box::new(move || {
        for _ in 0..2 {
            lab.tcp_connects(&prober, port);
        }
        Ok(())
    }));
    for r in join_all(tasks) {
        if let Err(e) = r {
            panic!("{name}: {e}");
        }
    }
    let want = u64::from(m - 1) * (attackers.len() as u64 + 1);
    let mut per_address: BTreeMap<String, i64> = attackers
        .iter()
        .map(|(s, _)| (s.clone(), i64::from(m - 1)))
        .collect();
    per_address.insert(a.user.clone(), i64::from(m - 1));
    let reached = wait_until(Duration::from_secs(30), || {
        warden.total_failed(t.jail) == Some(want) && warden.counted(t.jail) == per_address
    });
    // Lines written after the last answer (disconnects) must not add more.
    std::thread::sleep(Duration::from_secs(2));
    let counted_before = warden.total_failed(t.jail);
    assert!(
        reached && counted_before == Some(want) && warden.counted(t.jail) == per_address,
        "{name}: after maxretry - 1 = {} failed attempts from each of {} attackers and the user, the jail counted {:?} (want {want}); per address {:?}, want {per_address:?}",
        m - 1,
        attackers.len(),
        counted_before,
        warden.counted(t.jail)
    );
    let early: Vec<BanEvent> = warden
        .bans()
        .into_iter()
        .filter(|b| b.jail == t.jail)
        .collect();
    assert!(
        early.is_empty(),
        "{name}: banned before maxretry: {early:?}"
    );
    for (src, _) in &attackers {
        assert!(
            !warden.in_kernel(src),
            "{name}: {src} in the kernel set too early"
        );
    }
    // Phase 2: the maxretry-th failure. A service may log the counted
    // failure before the client has finished talking to it (sshd logs
    // "Invalid user" before the client sends its password): the ban can
    // then land mid-connection and the client hangs until its time limit.
    // That attempt is done once its address is in the kernel set; the
    // event, count and kernel checks below still decide the test.
    let mut tasks: Vec<Box<dyn FnOnce() -> Result<(), String> + Send + '_>> = Vec::new();
    for (src, who) in &attackers {
        let (src, who) = (src.clone(), *who);
        let name = &name;
        tasks.push(Box::new(move || match fails(who, &src, 1) {
            Err(e) if warden.in_kernel(&src) => {
                eprintln!(
                    "{name}: {src}: banned before its client finished ({e}): the attempt is done"
                );
                Ok(())
            }
            r => r,
        }));
    }
    for r in join_all(tasks) {
        if let Err(e) = r {
            panic!("{name}: {e}");
        }
    }
    let mut events = Vec::new();
    let banned = wait_until(Duration::from_secs(30), || {
        events = warden
            .bans()
            .into_iter()
            .filter(|b| b.jail == t.jail)
            .collect();
        attackers
            .iter()
            .all(|(src, _)| events.iter().any(|b| &b.address == src))
    });
    assert!(
        banned,
        "{name}: after {m} failures the attackers were not banned; bans {events:?}, counted {:?} per address {:?}",
        warden.total_failed(t.jail),
        warden.counted(t.jail)
    );
    let mut banned_after = Vec::new();
    for (src, _) in &attackers {
        let ev = events.iter().find(|b| &b.address == src).expect("found");
        assert_eq!(
            ev.failures, m,
            "{name}: the ban event of {src} says {} failures, want {m}",
            ev.failures
        );
        banned_after.push(ev.failures);
        assert!(
            warden.in_kernel(src),
            "{name}: {src} banned but not in the kernel set{}",
            warden.diagnose()
        );
        assert!(
            !lab.tcp_connects(src, t.port),
            "{name}: {src} is banned but still connects to port {}",
            t.port
        );
    }
    assert!(
        lab.tcp_connects(&a.bystander, t.port),
        "{name}: a bystander ({}) cannot connect to port {}",
        a.bystander,
        t.port
    );
    assert!(
        lab.tcp_connects(&a.user, t.port),
        "{name}: the real user cannot connect"
    );
    (t.succeed)(lab, &a.user)
        .unwrap_or_else(|e| panic!("{name}: the real user's login after the bans failed: {e}"));
    // Several attempts on one connection: banned after maxretry of them.
    let mut expected_burst = None;
    if let Some(burst) = &t.burst {
        burst(lab, &a.burst, m).unwrap_or_else(|e| panic!("{name}: burst from {}: {e}", a.burst));
        let mut ev = None;
        let ok = wait_until(Duration::from_secs(30), || {
            ev = warden
                .bans()
                .into_iter()
                .find(|b| b.jail == t.jail && b.address == a.burst);
            ev.is_some()
        });
        assert!(
            ok,
            "{name}: {m} attempts on one connection from {} did not ban it; counted {:?}",
            a.burst,
            warden.counted(t.jail)
        );
        let failures = ev.map_or(0, |e| e.failures);
        assert_eq!(
            failures, m,
            "{name}: {m} attempts on one connection banned after {failures} failures"
        );
        assert!(
            wait_until(Duration::from_secs(10), || warden.in_kernel(&a.burst)),
            "{name}: {} banned but not in the kernel set{}",
            a.burst,
            warden.diagnose()
        );
        assert!(
            !lab.tcp_connects(&a.burst, t.port),
            "{name}: {} is banned but still connects",
            a.burst
        );
        banned_after.push(failures);
        expected_burst = Some(a.burst.clone());
    }
    // Whoever else was counted or banned is a wrong host.
    std::thread::sleep(Duration::from_secs(1));
    let failing: Vec<&str> = attackers
        .iter()
        .map(|(s, _)| s.as_str())
        .chain([a.user.as_str()])
        .chain(expected_burst.as_deref())
        .collect();
    let mut wrong: Vec<String> = warden
        .counted(t.jail)
        .keys()
        .filter(|addr| !failing.contains(&addr.as_str()))
        .cloned()
        .collect();
    for b in warden.bans() {
        if b.jail == t.jail
            && !attackers.iter().any(|(s, _)| *s == b.address)
            && expected_burst.as_deref() != Some(b.address.as_str())
        {
            wrong.push(b.address);
        }
    }
    wrong.sort();
    wrong.dedup();
    assert!(
        wrong.is_empty(),
        "{name}: counted or banned addresses that made no failed attempt: {wrong:?}"
    );
    let counted = warden.total_failed(t.jail).unwrap_or(0);
    let mut expected: BTreeMap<String, u32> =
        attackers.iter().map(|(s, _)| (s.clone(), m)).collect();
    expected.insert(a.user.clone(), m - 1);
    if let Some(b) = &expected_burst {
        expected.insert(b.clone(), m);
    }
    Row {
        expected,
        service: lab.name.clone(),
        jail: t.jail.to_string(),
        version: version.to_string(),
        what: t.what.to_string(),
        maxretry: m,
        attempts: m * attackers.len() as u32
            + (m - 1)
            + if expected_burst.is_some() { m } else { 0 },
        counted,
        banned_after,
        wrong_hosts: wrong,
        seconds: started.elapsed().as_secs_f64(),
    }
}

/// The bystander of the jail whose attacker or user is `src`: forged
/// headers name it, so a filter that believes them bans an innocent.
pub fn bystander_of(src: &str) -> String {
    let last: usize = src
        .rsplit(['.', ':'])
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(2);
    let index = last.saturating_sub(2) / 10;
    Addrs::of(index).bystander
}
