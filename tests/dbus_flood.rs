//! Reading is open to every local user, so a flood of it must not hurt
//! (issue #12): with 200,000 bans in force, the user nobody hammers every
//! read method over a private system bus from many connections at once
//! (tests/bus_support/flood.py) while a failure is written to a jail's log
//! file. The daemon's memory stays within the unit's MemoryMax= (and much
//! of it is given back afterwards), the failure is banned within a bound,
//! no ban is lost, refusals are logged at a bounded rate, and the daemon
//! keeps its bus name throughout.
//!
//! The flood lasts FLOOD_SECS here; bench/dbus-flood.sh runs it for 60 s
//! and prints the figures. Needs root (setpriv to nobody), `dbus`,
//! `python3-dbus`.

mod bus_support;

use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use bus_support::{Daemon, DaemonSpec, PrivateBus, bus_pid, ok, wait_for};
use jailwarden::store::Store;

/// How long the flood lasts; `JW_FLOOD_SECS` overrides it
/// (bench/dbus-flood.sh: 60 s).
const FLOOD_SECS: u64 = 20;

fn flood_secs() -> u64 {
    std::env::var("JW_FLOOD_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(FLOOD_SECS)
}
/// Bans in force: half in sshd, half in nginx-http-auth.
const BANS: u32 = 200_000;
/// A failure written during the flood is banned within this (it takes
/// milliseconds when the daemon is idle).
const DECISION_BOUND: Duration = Duration::from_secs(15);
const FLOOD_JAIL: &str = "flooded";
const ATTACKER: &str = "203.0.113.77";

/// The unit's `KEY=` value in bytes (`512M` style).
fn unit_bytes(key: &str) -> u64 {
    let unit = std::fs::read_to_string(bus_support::repo().join("units/jailwarden.service"))
        .expect("read units/jailwarden.service");
    let value = unit
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{key}=")))
        .unwrap_or_else(|| panic!("units/jailwarden.service sets no {key}="));
    let (num, mult) = match value.trim().chars().last() {
        Some('K') => (&value[..value.len() - 1], 1u64 << 10),
        Some('M') => (&value[..value.len() - 1], 1 << 20),
        Some('G') => (&value[..value.len() - 1], 1 << 30),
        _ => (value, 1),
    };
    num.trim().parse::<u64>().expect("a size") * mult
}

/// `VmRSS` or `VmHWM` of a process, bytes.
fn vm(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// 200,000 bans in force (and their history rows), in the daemon's own
/// schema (Store::open makes it), written by SQL before it starts.
fn seed(state: &Path) {
    drop(Store::open(state).expect("create the state database"));
    let db = rusqlite::Connection::open(state.join(jailwarden::store::DB_FILE)).expect("open it");
    let now = jiff::Timestamp::now().as_microsecond();
    let day = 86_400_000_000i64;
    db.execute_batch(&format!(
        "BEGIN;
         CREATE TEMP TABLE seq AS WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < {last})
           SELECT i, CASE i % 2 WHEN 0 THEN 'sshd' ELSE 'nginx-http-auth' END AS jail,
             '100.' || (64 + (i >> 16)) || '.' || ((i >> 8) & 255) || '.' || (i & 255) AS addr,
             {now} - (i % 3600) * 1000000 AS at FROM n;
         INSERT INTO bans (jail, net, banned_at, expires_at, failures)
           SELECT jail, addr || '/32', at, at + {day}, 3 FROM seq;
         INSERT INTO history (jail, addr, banned_at, bantime, failures)
           SELECT jail, addr, at, {day}, 3 FROM seq;
         INSERT OR REPLACE INTO totals (jail, failed, banned) VALUES
           ('sshd', {half}, {half}), ('nginx-http-auth', {half}, {half});
         COMMIT;",
        last = BANS - 1,
        half = BANS / 2,
    ))
    .expect("seed the bans");
}

/// Bans in the daemon's store.
fn stored_bans(state: &Path) -> i64 {
    let db = rusqlite::Connection::open(state.join(jailwarden::store::DB_FILE)).expect("open it");
    db.query_row("SELECT count(*) FROM bans", [], |r| r.get(0))
        .expect("count the bans")
}

fn mb(bytes: u64) -> f64 {
    bytes as f64 / (1 << 20) as f64
}

#[test]
fn an_unprivileged_read_flood_leaves_memory_bounded_decisions_on_time_and_nothing_lost() {
    bus_support::needs_root!();
    let secs = flood_secs();
    let memory_max = unit_bytes("MemoryMax");
    let bus = PrivateBus::start();
    let mut d = Daemon::prepare(&DaemonSpec {
        bus: Some(&bus),
        ..Default::default()
    });
    let log = d.dir().join("flooded.log");
    std::fs::write(&log, "").expect("create the jail's log");
    d.rewrite_config(&format!(
        "[jails.{FLOOD_JAIL}]\nenabled = true\nfilter = \"dummy\"\nlogpath = [\"{}\"]\nmaxretry = 1\n",
        log.display()
    ));
    let t = Instant::now();
    seed(&d.dir().join("state"));
    eprintln!("seeded {BANS} bans in {:.1} s", t.elapsed().as_secs_f64());
    let t = Instant::now();
    d.spawn();
    d.wait_ready(Some(&bus));
    eprintln!("daemon ready in {:.1} s", t.elapsed().as_secs_f64());
    let pid = d.pid();
    let owner = bus
        .owner("org.jailwarden1")
        .expect("the daemon owns its name");
    let active = || {
        let out = ok(&bus.busctl(&[
            "get-property",
            "org.jailwarden1",
            "/org/jailwarden1",
            "org.jailwarden1.Manager",
            "ActiveBans",
        ]));
        out.trim()
            .strip_prefix("u ")
            .and_then(|n| n.parse::<u32>().ok())
    };
    assert_eq!(active(), Some(BANS), "the seeded bans are in force");
    let before = vm(pid, "VmRSS");

    // The flood, as nobody, from its own copy of the script.
    let script = d.dir().join("flood.py");
    std::fs::copy(
        bus_support::repo().join("tests/bus_support/flood.py"),
        &script,
    )
    .expect("copy flood.py");
    let flood = Command::new("setpriv")
        .args(["--reuid=nobody", "--regid=nogroup", "--clear-groups"])
        .arg("/usr/bin/python3")
        .arg(&script)
        .arg(bus.address())
        .arg(secs.to_string())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run flood.py as nobody (package python3-dbus)");
    let start = Instant::now();
    let mut peak = before;
    let mut owner_lost = false;
    let mut threads = 0;
    let mut latency = None;
    let mut fed = None;
    while start.elapsed() < Duration::from_secs(secs) {
        peak = peak.max(vm(pid, "VmRSS"));
        threads = threads.max(vm(pid, "Threads") / 1024);
        if fed.is_none() && start.elapsed() >= Duration::from_secs(secs / 2) {
            let now = jiff::Timestamp::now();
            let mut f = std::fs::OpenOptions::new()
                .append(true)
                .open(&log)
                .expect("open the jail's log");
            writeln!(f, "{now} failure from {ATTACKER}").expect("write the failure");
            fed = Some(Instant::now());
        }
        if let (Some(at), None) = (fed, latency) {
            if d.log().contains(&format!("[{FLOOD_JAIL}] Ban {ATTACKER}")) {
                latency = Some(at.elapsed());
            }
        }
        if bus.owner("org.jailwarden1").as_deref() != Some(owner.as_str()) {
            owner_lost = true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = flood.wait_with_output().expect("flood.py finishes");
    eprintln!(
        "flood.py done {:.1} s after it started",
        start.elapsed().as_secs_f64()
    );
    let report = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "flood.py failed: {}\n{report}",
        String::from_utf8_lossy(&out.stderr)
    );
    peak = peak.max(vm(pid, "VmRSS"));
    let hwm = vm(pid, "VmHWM");
    if latency.is_none() {
        let at = fed.expect("the failure was written");
        latency = Some(wait_for(DECISION_BOUND, "the flood jail's ban", || {
            d.log()
                .contains(&format!("[{FLOOD_JAIL}] Ban {ATTACKER}"))
                .then(|| at.elapsed())
        }));
    }
    let latency = latency.expect("measured");
    // Memory handed back once the replies are gone.
    std::thread::sleep(Duration::from_secs(2));
    let after = vm(pid, "VmRSS");
    let v: serde_json::Value = serde_json::from_str(report.trim()).expect("flood.py JSON");
    let refusals = d.log().matches("control: refused").count();
    eprintln!(
        "RSS before {:.0} MB, peak {:.0} MB (VmHWM {:.0} MB), after {:.0} MB; MemoryMax {:.0} MB\n\
         ban latency during the flood: {:.0} ms\ncalls: {}\nrefusal lines logged: {refusals}\n\
         daemon threads at most: {threads}",
        mb(before),
        mb(peak),
        mb(hwm),
        mb(after),
        mb(memory_max),
        latency.as_secs_f64() * 1e3,
        v["total"],
    );
    eprintln!("by method: {}\nerrors: {}", v["by_method"], v["errors"]);
    let daemon_log = d.log();
    let notable: Vec<&str> = daemon_log
        .lines()
        .filter(|l| l.contains("WARN") || l.contains("ERROR") || l.contains("bus"))
        .take(20)
        .collect();
    eprintln!("daemon warnings and bus lines:\n{}", notable.join("\n"));

    assert!(
        hwm < memory_max,
        "the daemon's peak RSS {:.0} MB reached the unit's MemoryMax {:.0} MB",
        mb(hwm),
        mb(memory_max)
    );
    assert!(
        after <= before + (hwm.saturating_sub(before)) / 2 + (32 << 20),
        "memory not given back: {:.0} MB before, {:.0} MB peak, {:.0} MB after",
        mb(before),
        mb(hwm),
        mb(after)
    );
    assert!(
        latency < DECISION_BOUND,
        "a failure during the flood took {latency:?} to be banned"
    );
    assert!(!owner_lost, "the daemon lost its bus name during the flood");
    assert_eq!(
        bus.owner("org.jailwarden1").as_deref(),
        Some(owner.as_str())
    );
    assert_eq!(bus_pid(&bus, &owner), Some(pid));
    // The flood was served, and refused where it asked too much.
    let total = &v["total"];
    assert!(total["served"].as_u64().unwrap_or(0) > 20, "{total}");
    assert!(total["refused"].as_u64().unwrap_or(0) > 0, "{total}");
    assert_eq!(total["failed"].as_u64(), Some(0), "{}", v["errors"]);
    // A reply the client never got (NoReply after 120 s). Seen only in the
    // 60 s release bench, 1 to 3 of ~1,200 calls, never in this test: most
    // likely dbus-daemon dropping replies to a client whose own queue
    // (127 MB by default) its five threads' large answers filled (not
    // verified). Rare, or it is the daemon's doing.
    let served = total["served"].as_u64().unwrap_or(0);
    let unanswered = total["no_reply"].as_u64().unwrap_or(0);
    assert!(
        unanswered * 100 <= served,
        "{unanswered} calls never answered ({served} served): {}",
        v["errors"]
    );
    assert_eq!(
        v["by_method"]["ListBans(all)"]["served"].as_u64(),
        Some(0),
        "ListBans of 200,000 bans is refused (paged instead)"
    );
    for method in [
        "ListBans(sshd)",
        "ListBansPaged",
        "History",
        "GetAll(Manager)",
    ] {
        assert!(
            v["by_method"][method]["served"].as_u64().unwrap_or(0) > 0,
            "{method} never answered: {}",
            v["by_method"]
        );
    }
    // Refusals are logged, one line per caller per 10 s at most: 8
    // connections for the flood's length (and one line for all others).
    let most = 8 * (secs as usize / 10 + 1) + 1;
    assert!(
        (1..=most).contains(&refusals),
        "{refusals} refusal lines (expected 1 to {most})"
    );
    // Nothing lost: every ban is there, in the daemon and in its store,
    // and the new one too (listed by the CLI, which pages).
    assert_eq!(active(), Some(BANS + 1));
    assert_eq!(stored_bans(&d.dir().join("state")), i64::from(BANS) + 1);
    let json = ok(&d.cli(&["bans", "--jail", FLOOD_JAIL, "--json"]));
    let listed: serde_json::Value = serde_json::from_str(&json).expect("bans --json");
    let bans = listed["bans"].as_array().expect("bans");
    assert!(
        bans.iter()
            .any(|b| b["jail"] == FLOOD_JAIL && b["address"] == ATTACKER),
        "the ban made during the flood is listed: {json}"
    );
}
