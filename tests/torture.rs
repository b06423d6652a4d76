//! Crash torture: a known stream of failures (journal and a log file, three
//! jails, attackers crossing maxretry at known points, ignored addresses,
//! successes) is written while the daemon (nftables, in a network
//! namespace of the test's own) is SIGKILLed at seeded random moments and
//! restarted: at plain moments, during a reload, while a large batch of
//! bans is decided, and during start-up (with a kernel to reconcile). At
//! the end everything is compared with an oracle computed from the stream:
//! every address banned when it should be and only then, once (store, ban
//! history, ban events in the journal), failure counts exact (the store's
//! failures and totals), and the kernel's sets equal to the store's bans.
//!
//! Seeded: a failure message names the seed; replay it with
//! `JAILWARDEN_TORTURE_SEED=N cargo test --test torture`. The long variant
//! (more kills, a bigger stream) is `bench/torture.sh`
//! (`JAILWARDEN_TORTURE_KILLS`, `JAILWARDEN_TORTURE_SCALE`).

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::time::{Duration, Instant};

use support::daemon::{Daemon, UNBAN_ID};
use support::{NamedNetns, PrivateJournald, wait_until};

const CONFIG: &str = r#"
[daemon]
backend = "nftables"
recheck = "2s"
journal_directory = "{journal}"
filter_dirs = ["{filters}"]
[defaults]
ignoreip = ["203.0.113.0/24"]
ignoreself = false
findtime = "1h"
bantime = "1h"
[jails.sshd]
journal_match = ["_UID=0", "SYSLOG_IDENTIFIER=sshd"]
maxretry = 3
[jails.sshd-slow]
filter = "sshd"
journal_match = ["_UID=0", "SYSLOG_IDENTIFIER=sshd"]
maxretry = 5
[jails.sshd-file]
filter = "sshd"
logpath = ["{dir}/auth.log"]
maxretry = 4
"#;

/// Jails, their source and maxretry.
const JAILS: &[(&str, Source, u32)] = &[
    ("sshd", Source::Journal, 3),
    ("sshd-slow", Source::Journal, 5),
    ("sshd-file", Source::File, 4),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Source {
    Journal,
    File,
}

/// splitmix64: small, seeded, the same on every machine.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// In `lo..=hi`.
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo + 1)
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
    fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            let j = (self.next() % (i as u64 + 1)) as usize;
            v.swap(i, j);
        }
    }
}

/// One line of the stream.
#[derive(Debug, Clone)]
struct Line {
    source: Source,
    addr: String,
    fail: bool,
}

/// What the daemon must end with, from the stream alone.
#[derive(Debug, Default)]
struct Oracle {
    /// Failures written per (source, address), ignored ones included.
    failures: BTreeMap<(Source, String), u32>,
}

impl Oracle {
    fn add(&mut self, l: &Line) {
        if l.fail {
            *self.failures.entry((l.source, l.addr.clone())).or_default() += 1;
        }
    }

    fn ignored(addr: &str) -> bool {
        addr.starts_with("203.0.113.")
    }

    /// (jail, address) → failures expected in the store (not banned), or
    /// `None` when banned.
    fn expected(&self) -> BTreeMap<(String, String), Option<u32>> {
        let mut out = BTreeMap::new();
        for ((source, addr), n) in &self.failures {
            if Self::ignored(addr) {
                continue;
            }
            for (jail, s, maxretry) in JAILS {
                if s == source {
                    out.insert(
                        (jail.to_string(), addr.clone()),
                        (*n < *maxretry).then_some(*n),
                    );
                }
            }
        }
        out
    }

    /// Per jail: (failures counted, bans).
    fn totals(&self) -> BTreeMap<String, (i64, i64)> {
        let mut out: BTreeMap<String, (i64, i64)> = BTreeMap::new();
        for ((source, addr), n) in &self.failures {
            if Self::ignored(addr) {
                continue;
            }
            for (jail, s, maxretry) in JAILS {
                if s == source {
                    let t = out.entry(jail.to_string()).or_default();
                    t.0 += i64::from((*n).min(*maxretry));
                    t.1 += i64::from(*n >= *maxretry);
                }
            }
        }
        out
    }
}

/// Writes lines to the journal (one sender process per chunk: one pid, so
/// sshd's sessions stay apart from other chunks) and to the log file.
struct Writer<'a> {
    j: &'a PrivateJournald,
    log: std::path::PathBuf,
    pid: u64,
}

impl Writer<'_> {
    fn write(&mut self, chunk: &[Line], oracle: &mut Oracle) {
        let journal: Vec<String> = chunk
            .iter()
            .filter(|l| l.source == Source::Journal)
            .map(|l| message(l, &mut self.pid))
            .collect();
        if !journal.is_empty() {
            let entries: Vec<[(&str, &[u8]); 3]> = journal
                .iter()
                .map(|m| {
                    [
                        ("MESSAGE", m.as_bytes()),
                        ("SYSLOG_IDENTIFIER", b"sshd".as_slice()),
                        ("PRIORITY", b"5".as_slice()),
                    ]
                })
                .collect();
            let refs: Vec<&[(&str, &[u8])]> = entries.iter().map(|e| e.as_slice()).collect();
            self.j.send(&refs);
        }
        let mut text = String::new();
        let now = jiff::Timestamp::now()
            .to_zoned_datetime(jiff::tz::TimeZone::system())
            .strftime("%b %e %H:%M:%S")
            .to_string();
        for l in chunk.iter().filter(|l| l.source == Source::File) {
            self.pid += 1;
            let m = message(l, &mut self.pid);
            text.push_str(&format!("{now} srv sshd[{}]: {m}\n", self.pid));
        }
        if !text.is_empty() {
            let mut f = std::fs::OpenOptions::new()
                .append(true)
                .create(true)
                .open(&self.log)
                .expect("open the log file");
            f.write_all(text.as_bytes())
                .expect("append to the log file");
        }
        for l in chunk {
            oracle.add(l);
        }
    }
}

fn message(l: &Line, port: &mut u64) -> String {
    *port += 1;
    let port = 1024 + *port % 60000;
    if l.fail {
        format!("Failed password for root from {} port {port} ssh2", l.addr)
    } else {
        format!(
            "Accepted password for deploy from {} port {port} ssh2",
            l.addr
        )
    }
}

/// The stream: attackers with 1..=7 failures on each source (crossing the
/// jails' maxretry at 3, 4 and 5 or not), ignored addresses failing often,
/// and successes, interleaved in a seeded order. Successes go in chunks of
/// their own (a sender's "Accepted" for another user would confirm its
/// session's waiting failures, as sshd's sessions do).
fn stream(rng: &mut Rng, scale: u64) -> Vec<Vec<Line>> {
    let mut lines = Vec::new();
    let mut successes = Vec::new();
    for i in 0..40 * scale {
        let (a, b) = (i / 250, i % 250 + 1);
        let addr = if i % 5 == 4 {
            // As the daemon writes it (canonical text).
            format!("2001:db8:{a}::{b:x}")
                .parse::<std::net::IpAddr>()
                .map(|a| a.to_string())
                .unwrap_or_default()
        } else {
            format!("192.0.{}.{b}", 2 + a)
        };
        for source in [Source::Journal, Source::File] {
            for _ in 0..rng.range(1, 7) {
                lines.push(Line {
                    source,
                    addr: addr.clone(),
                    fail: true,
                });
            }
            if rng.chance(20) {
                successes.push(Line {
                    source,
                    addr: addr.clone(),
                    fail: false,
                });
            }
        }
    }
    for i in 0..4 {
        for source in [Source::Journal, Source::File] {
            for _ in 0..8 {
                lines.push(Line {
                    source,
                    addr: format!("203.0.113.{}", i + 1),
                    fail: true,
                });
            }
        }
    }
    rng.shuffle(&mut lines);
    let mut chunks = Vec::new();
    let mut rest = &lines[..];
    while !rest.is_empty() {
        let n = (rng.range(1, 30) as usize).min(rest.len());
        chunks.push(rest[..n].to_vec());
        rest = &rest[n..];
        if rng.chance(15) {
            if let Some(s) = successes.pop() {
                chunks.push(vec![s]);
            }
        }
    }
    chunks.extend(successes.into_iter().map(|s| vec![s]));
    chunks
}

/// The `b`-th big batch: `n` new attackers, each failing 5 times on each
/// source (banned by every jail), written while the daemon is down so that
/// it reads them in large batches at start.
fn big_batch(n: u64, b: u64) -> Vec<Line> {
    let mut v = Vec::new();
    for i in 0..n {
        let addr = format!("10.{}.{}.{}", b % 256, i / 250, i % 250 + 1);
        for source in [Source::Journal, Source::File] {
            for _ in 0..5 {
                v.push(Line {
                    source,
                    addr: addr.clone(),
                    fail: true,
                });
            }
        }
    }
    v
}

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

#[test]
fn sigkill_at_random_moments_loses_nothing_and_doubles_nothing() {
    support::needs_root!();
    let seed = env_u64("JAILWARDEN_TORTURE_SEED").unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1)
    });
    let kills = env_u64("JAILWARDEN_TORTURE_KILLS").unwrap_or(24).max(20);
    let scale = env_u64("JAILWARDEN_TORTURE_SCALE").unwrap_or(1).max(1);
    let replay = format!(
        "seed {seed} (replay: JAILWARDEN_TORTURE_SEED={seed} JAILWARDEN_TORTURE_KILLS={kills} JAILWARDEN_TORTURE_SCALE={scale} cargo test --test torture)"
    );
    eprintln!("torture: {replay}");
    let mut rng = Rng(seed);
    let ns = NamedNetns::new("torture");
    let j = PrivateJournald::started();
    let logs = tempfile::tempdir().expect("tempdir");
    let log = logs.path().join("auth.log");
    std::fs::write(&log, "").expect("create the log file");
    let config = CONFIG.replace("{dir}/auth.log", &log.display().to_string());
    let mut d = Daemon::start_in(&j, &config, Some(&ns.0));
    let mut w = Writer {
        j: &j,
        log,
        pid: 1000,
    };
    let mut oracle = Oracle::default();
    let chunks = stream(&mut rng, scale);
    let per_kill = chunks.len().div_ceil(kills as usize).max(1);
    let started = Instant::now();
    let mut kinds: BTreeMap<&str, u32> = BTreeMap::new();
    let mut next = chunks.iter();
    for k in 0..kills {
        // Write some of the stream while the daemon runs, killing it at a
        // random moment within or after the writing.
        let kill_after = rng.range(0, per_kill as u64) as usize;
        for i in 0..per_kill {
            if i == kill_after && rng.chance(50) {
                break;
            }
            let Some(c) = next.next() else { break };
            w.write(c, &mut oracle);
        }
        std::thread::sleep(Duration::from_millis(rng.range(0, 150)));
        let kind = match k % 6 {
            // During a reload (SIGHUP, then SIGKILL within 0-40 ms).
            1 => {
                d.hup();
                std::thread::sleep(Duration::from_millis(rng.range(0, 40)));
                "reload"
            }
            // During a large batch of bans, read at start.
            3 => {
                d.kill();
                w.write(&big_batch(150 * scale, k / 6), &mut oracle);
                d.spawn();
                std::thread::sleep(Duration::from_millis(rng.range(0, 200)));
                "big ban batch"
            }
            // During start-up reconcile: the kernel's sets emptied while
            // the daemon is down, then killed 0-150 ms into its start.
            5 => {
                d.kill();
                let _ = ns.exec(&["nft", "delete", "table", "inet", "jailwarden"]);
                d.spawn_unready();
                std::thread::sleep(Duration::from_millis(rng.range(0, 150)));
                "start-up reconcile"
            }
            _ => "plain",
        };
        d.kill();
        *kinds.entry(kind).or_default() += 1;
        d.spawn();
    }
    for c in next {
        w.write(c, &mut oracle);
    }
    // Let the last daemon read everything.
    let totals = oracle.totals();
    let want_failed: i64 = totals.values().map(|t| t.0).sum();
    let stored_failed = || -> i64 {
        d.db()
            .query_row("SELECT coalesce(sum(failed), 0) FROM totals", [], |r| {
                r.get(0)
            })
            .unwrap_or(-1)
    };
    let caught_up = wait_until(Duration::from_secs(60), || stored_failed() >= want_failed);
    std::thread::sleep(Duration::from_millis(500));
    eprintln!(
        "torture: {kills} kills ({kinds:?}), {} chunks, {} lines, in {:.1} s",
        chunks.len(),
        oracle.failures.values().sum::<u32>(),
        started.elapsed().as_secs_f64()
    );
    let report = check(&d, &ns, &oracle);
    // By kind (the words before the first `(`), a few of each.
    let mut kinds_of: BTreeMap<String, Vec<&String>> = BTreeMap::new();
    for p in &report {
        let kind = p.split('(').next().unwrap_or(p).trim().to_string();
        kinds_of.entry(kind).or_default().push(p);
    }
    let summary: Vec<String> = kinds_of
        .iter()
        .map(|(k, v)| {
            let some: Vec<&str> = v.iter().take(4).map(|s| s.as_str()).collect();
            format!("{} x {k}\n    {}", v.len(), some.join("\n    "))
        })
        .collect();
    assert!(
        caught_up && report.is_empty(),
        "{replay}: {} problems (caught up: {caught_up}):\n{}",
        report.len(),
        summary.join("\n")
    );
}

/// Every difference between the daemon's state and the oracle.
fn check(d: &Daemon, ns: &NamedNetns, oracle: &Oracle) -> Vec<String> {
    let mut problems = Vec::new();
    let expected = oracle.expected();
    let want_bans: BTreeSet<(String, String)> = expected
        .iter()
        .filter(|(_, v)| v.is_none())
        .map(|(k, _)| k.clone())
        .collect();
    let maxretry = |jail: &str| JAILS.iter().find(|j| j.0 == jail).map_or(0, |j| j.2);
    // Ban events in the journal: one per ban, with the failures that made it.
    let mut events: BTreeMap<(String, String), Vec<u32>> = BTreeMap::new();
    for b in d.bans() {
        events
            .entry((b.jail.clone(), b.address.clone()))
            .or_default()
            .push(b.failures);
    }
    for key in &want_bans {
        match events.get(key).map(Vec::as_slice) {
            None => problems.push(format!("lost: no ban event for {key:?}")),
            Some([f]) if *f == maxretry(&key.0) => {}
            Some([f]) => problems.push(format!(
                "ban event for {key:?} says {f} failures, not {}",
                maxretry(&key.0)
            )),
            Some(more) => problems.push(format!(
                "doubled: {} ban events for {key:?} ({more:?})",
                more.len()
            )),
        }
    }
    for key in events.keys().filter(|k| !want_bans.contains(*k)) {
        problems.push(format!("ban event for {key:?}, which should not be banned"));
    }
    let unbans = d.messages(UNBAN_ID);
    if !unbans.is_empty() {
        problems.push(format!("unban events (none expected): {unbans:?}"));
    }
    // The store's bans in force and history.
    let net = |addr: &str| {
        if addr.contains(':') {
            format!("{addr}/128")
        } else {
            format!("{addr}/32")
        }
    };
    let stored: BTreeSet<(String, String)> = d.stored_bans().into_iter().collect();
    let want_nets: BTreeSet<(String, String)> =
        want_bans.iter().map(|(j, a)| (j.clone(), net(a))).collect();
    for k in want_nets.difference(&stored) {
        problems.push(format!("lost: {k:?} not banned in the store"));
    }
    for k in stored.difference(&want_nets) {
        problems.push(format!("{k:?} banned in the store, should not be"));
    }
    let db = d.db();
    let mut history: BTreeMap<(String, String), u32> = BTreeMap::new();
    {
        let mut st = db.prepare("SELECT jail, addr FROM history").expect("query");
        for row in st
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
            .expect("rows")
            .flatten()
        {
            *history.entry(row).or_default() += 1;
        }
    }
    for key in &want_bans {
        match history.get(key) {
            Some(1) => {}
            n => problems.push(format!("history rows for {key:?}: {n:?}, not 1")),
        }
    }
    for key in history.keys().filter(|k| !want_bans.contains(*k)) {
        problems.push(format!("history row for {key:?}, never banned"));
    }
    // Failure counts of those not banned.
    let mut failures: BTreeMap<(String, String), i64> = BTreeMap::new();
    {
        let mut st = db
            .prepare("SELECT jail, addr, sum(attempts) FROM failures GROUP BY jail, addr")
            .expect("query");
        for (j, a, n) in st
            .query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, i64>(2)?,
                ))
            })
            .expect("rows")
            .flatten()
        {
            failures.insert((j, a), n);
        }
    }
    for (key, want) in &expected {
        let got = failures.get(key).copied().unwrap_or(0);
        let want = i64::from(want.unwrap_or(0));
        if got != want {
            let what = if got < want { "lost" } else { "doubled" };
            problems.push(format!(
                "{what}: {key:?} has {got} failures stored, not {want}"
            ));
        }
    }
    for key in failures.keys().filter(|k| !expected.contains_key(*k)) {
        problems.push(format!("failures stored for {key:?}, which sent none"));
    }
    let mut st = db
        .prepare("SELECT jail, failed, banned FROM totals")
        .expect("query");
    let totals: BTreeMap<String, (i64, i64)> = st
        .query_map([], |r| {
            Ok((r.get::<_, String>(0)?, (r.get::<_, i64>(1)?, r.get(2)?)))
        })
        .expect("rows")
        .flatten()
        .collect();
    for (jail, want) in oracle.totals() {
        let got = totals.get(&jail).copied().unwrap_or_default();
        if got != want {
            problems.push(format!(
                "totals of {jail} (failed, banned): {got:?}, not {want:?}"
            ));
        }
    }
    // The kernel's sets equal the store's bans.
    let kernel = kernel_bans(ns);
    if kernel != stored {
        let missing: Vec<_> = stored.difference(&kernel).take(10).collect();
        let extra: Vec<_> = kernel.difference(&stored).take(10).collect();
        problems.push(format!(
            "kernel != store: {} in the store only (e.g. {missing:?}), {} in the kernel only (e.g. {extra:?})",
            stored.difference(&kernel).count(),
            kernel.difference(&stored).count()
        ));
    }
    problems
}

/// (jail, net) of every element of the jails' sets in the namespace.
fn kernel_bans(ns: &NamedNetns) -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    for (jail, _, _) in JAILS {
        for family in ["v4", "v6"] {
            let o = ns.exec(&[
                "nft",
                "-j",
                "list",
                "set",
                "inet",
                "jailwarden",
                &format!("{jail}-{family}"),
            ]);
            let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap_or_default();
            for e in v["nftables"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|o| o["set"]["elem"].as_array())
                .flatten()
            {
                let val = match &e["elem"] {
                    serde_json::Value::Object(m) => m["val"].as_str().unwrap_or("").to_string(),
                    other => other.as_str().unwrap_or("").to_string(),
                };
                let net = if val.contains(':') {
                    format!("{val}/128")
                } else {
                    format!("{val}/32")
                };
                out.insert((jail.to_string(), net));
            }
        }
    }
    out
}

const STORIES: &str = r#"
[daemon]
backend = "none"
journal_directory = "{journal}"
filter_dirs = ["{filters}"]
[defaults]
ignoreself = false
findtime = "1h"
bantime = "1h"
[jails.sshd]
logpath = ["{log}"]
maxretry = 10
"#;

/// Multi-line stories in progress at a SIGKILL (sshd's: one attempt told
/// by "Invalid user", PAM and "Failed password"; a host named by an
/// earlier line than the failure; a PAM failure confirmed by the
/// connection closing) go on after the restart from where they were:
/// nothing lost, nothing counted twice. Each story's pid is in the log
/// line, so a story spans the kill.
#[test]
fn stories_told_across_a_sigkill_are_neither_lost_nor_counted_twice() {
    support::needs_root!();
    let j = PrivateJournald::started();
    let logs = tempfile::tempdir().expect("tempdir");
    let log = logs.path().join("auth.log");
    std::fs::write(&log, "").expect("create the log file");
    let mut d = Daemon::start(&j, &STORIES.replace("{log}", &log.display().to_string()));
    let append = |lines: &[(u32, &str)]| {
        let now = jiff::Timestamp::now()
            .to_zoned_datetime(jiff::tz::TimeZone::system())
            .strftime("%b %e %H:%M:%S")
            .to_string();
        let text: String = lines
            .iter()
            .map(|(pid, m)| format!("{now} srv sshd[{pid}]: {m}\n"))
            .collect();
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&log)
            .expect("open the log file");
        f.write_all(text.as_bytes()).expect("append");
    };
    // First halves.
    append(&[
        (101, "Invalid user admin from 192.0.2.10 port 4000"),
        (
            102,
            "Connection from 192.0.2.11 port 4001 on 10.0.0.1 port 22 rdomain \"\"",
        ),
        (
            103,
            "pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost=192.0.2.12  user=root",
        ),
        // A marker: once it is counted, the lines before it are committed.
        (
            104,
            "Failed password for root from 192.0.2.13 port 4003 ssh2",
        ),
    ]);
    assert!(
        wait_until(Duration::from_secs(10), || d
            .stored_failures("sshd", "192.0.2.13")
            == 1),
        "the first halves were not read"
    );
    assert_eq!(d.stored_failures("sshd", "192.0.2.10"), 1);
    d.kill();
    // Second halves, read by the next run.
    append(&[
        (
            101,
            "pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost=192.0.2.10",
        ),
        (
            101,
            "Failed password for invalid user admin from 192.0.2.10 port 4000 ssh2",
        ),
        (
            102,
            "Disconnecting: Too many authentication failures [preauth]",
        ),
        (
            103,
            "Connection closed by authenticating user root 192.0.2.12 port 4002 [preauth]",
        ),
        (
            104,
            "Failed password for root from 192.0.2.13 port 4003 ssh2",
        ),
    ]);
    d.spawn();
    assert!(
        wait_until(Duration::from_secs(10), || d
            .stored_failures("sshd", "192.0.2.13")
            == 2),
        "the second halves were not read"
    );
    let got: Vec<(&str, i64)> = ["192.0.2.10", "192.0.2.11", "192.0.2.12"]
        .into_iter()
        .map(|a| (a, d.stored_failures("sshd", a)))
        .collect();
    assert_eq!(
        got,
        [("192.0.2.10", 1), ("192.0.2.11", 1), ("192.0.2.12", 1)],
        "one attempt each: counted once (not again after the restart), hostless and pending ones not lost"
    );
    // The story that ended is forgotten by the store too.
    let open: i64 = d
        .db()
        .query_row("SELECT count(*) FROM sessions", [], |r| r.get(0))
        .expect("sessions");
    assert!(open <= 3, "{open} sessions kept after their stories ended");
}

/// A DNS server for `evil.test` (A 192.0.2.99) on 127.0.0.1:53 of the
/// namespace it runs in; each answer waits 2.5 s while the file `slow`
/// (first argument) exists.
const SLOW_DNS: &str = r#"
import os, socket, struct, sys, time
slow, ready = sys.argv[1], sys.argv[2]
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.1", 53))
open(ready, "w").close()
while True:
    data, peer = s.recvfrom(512)
    if os.path.exists(slow):
        time.sleep(2.5)
    i = 12
    while data[i] != 0:
        i += data[i] + 1
    question = data[12:i + 5]
    qtype = struct.unpack(">H", data[i + 1:i + 3])[0]
    if qtype == 1:
        answer = b"\xc0\x0c" + struct.pack(">HHIH", 1, 1, 60, 4) + socket.inet_aton("192.0.2.99")
        counts = struct.pack(">HHHH", 1, 1, 0, 0)
    else:
        answer, counts = b"", struct.pack(">HHHH", 1, 0, 0, 0)
    s.sendto(data[:2] + b"\x81\x80" + counts + question + answer, peer)
"#;

/// Failures from a host name (usedns = "yes") are saved with the position
/// of their lines until the name is resolved: a SIGKILL while the answer
/// is awaited loses none of them; the next run resolves and counts them.
#[test]
fn failures_waiting_for_dns_survive_a_sigkill() {
    support::needs_root!();
    let ns = NamedNetns::new("dns");
    let j = PrivateJournald::started();
    let work = tempfile::tempdir().expect("tempdir");
    let slow = work.path().join("slow");
    let ready = work.path().join("ready");
    std::fs::write(&slow, "").expect("slow");
    let mut dns = std::process::Command::new("ip")
        .args(["netns", "exec", &ns.0, "/usr/bin/python3", "-c", SLOW_DNS])
        .arg(&slow)
        .arg(&ready)
        .spawn()
        .expect("start the DNS server");
    struct Stop<'a>(&'a mut std::process::Child);
    impl Drop for Stop<'_> {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let _stop = Stop(&mut dns);
    assert!(
        wait_until(Duration::from_secs(10), || ready.exists()),
        "the DNS server did not start"
    );
    // The daemon's resolver asks it (in journald's mount namespace, where
    // the daemon runs: the host's resolv.conf is untouched).
    let resolv = work.path().join("resolv.conf");
    std::fs::write(
        &resolv,
        "nameserver 127.0.0.1\noptions timeout:5 attempts:1\n",
    )
    .expect("resolv.conf");
    let out = j
        .in_namespace("mount")
        .arg("--bind")
        .arg(&resolv)
        .arg("/etc/resolv.conf")
        .output()
        .expect("mount");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let log = work.path().join("auth.log");
    std::fs::write(&log, "").expect("create the log file");
    let config = STORIES
        .replace("{log}", &log.display().to_string())
        .replace("maxretry = 10", "maxretry = 3\nusedns = \"yes\"");
    let mut d = Daemon::start_in(&j, &config, Some(&ns.0));
    let now = jiff::Timestamp::now()
        .to_zoned_datetime(jiff::tz::TimeZone::system())
        .strftime("%b %e %H:%M:%S")
        .to_string();
    let text: String = (0..3)
        .map(|i| {
            format!(
                "{now} srv sshd[{}]: Failed password for root from evil.test port 22 ssh2\n",
                200 + i
            )
        })
        .collect();
    std::fs::OpenOptions::new()
        .append(true)
        .open(&log)
        .and_then(|mut f| f.write_all(text.as_bytes()))
        .expect("append");
    let waiting = |d: &Daemon| -> i64 {
        d.db()
            .query_row("SELECT count(*) FROM names", [], |r| r.get(0))
            .unwrap_or(-1)
    };
    assert!(
        wait_until(Duration::from_secs(10), || waiting(&d) == 3),
        "the names waiting were not saved: {}",
        waiting(&d)
    );
    // Killed while the answer is awaited.
    d.kill();
    std::fs::remove_file(&slow).expect("fast again");
    d.spawn();
    let ban = d.wait_ban("sshd", "192.0.2.99");
    assert_eq!(ban.failures, 3);
    assert!(
        wait_until(Duration::from_secs(5), || waiting(&d) == 0),
        "resolved names are forgotten: {}",
        waiting(&d)
    );
    assert_eq!(d.bans().len(), 1);
}
