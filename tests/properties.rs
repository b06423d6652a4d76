//! Property tests of the pure parts, each against a naive model or an
//! invariant: the jail window (with restarts), ban-time escalation, the
//! configuration reader, durations, `journal_match`, address lists and
//! date parsing.
//!
//! CI runs a modest number of cases per property (see [`cases`]);
//! `bench/fuzz.sh` runs the same properties with `PROPTEST_CASES` set
//! much higher. A failure prints the shrunk case and the seed; each bug
//! found here is also spelled out below as a regular regression test.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use jiff::tz::{Offset, TimeZone};
use jiff::{SignedDuration, Timestamp};
use proptest::prelude::*;

use jailwarden::addr::{AddrList, canonical};
use jailwarden::config::Increment;
use jailwarden::config::duration::{BanTime, format_duration, parse_bantime, parse_duration};
use jailwarden::config::journal_match::JournalMatch;
use jailwarden::filter::date::DateFinder;
use jailwarden::jail::escalation::escalate;
use jailwarden::jail::{Decision, Jail, Limits};

/// `ci` cases unless `PROPTEST_CASES` says otherwise (bench/fuzz.sh).
fn cases(ci: u32) -> ProptestConfig {
    let mut c = ProptestConfig::default();
    if std::env::var_os("PROPTEST_CASES").is_none() {
        c.cases = ci;
    }
    // Failures are kept as regular regression tests below, not in a
    // proptest-regressions file.
    c.failure_persistence = None;
    c
}

fn t0() -> Timestamp {
    Timestamp::from_second(1_700_000_000).unwrap()
}

// ---------------------------------------------------------------------------
// The jail window against a naive model.

/// A small pool of addresses, with IPv4-mapped spellings of the same
/// address and one that `ignoreip` covers.
fn pool(i: usize) -> IpAddr {
    const POOL: [&str; 7] = [
        "192.0.2.1",
        "::ffff:192.0.2.1",
        "192.0.2.2",
        "2001:db8::1",
        "2001:db8::2",
        "198.51.100.7",
        "127.0.0.1",
    ];
    POOL[i % POOL.len()].parse().unwrap()
}

#[derive(Debug, Clone)]
enum Op {
    /// A failure of `pool(addr)`, written `back` seconds before now
    /// (negative: in the future), of `attempts`, maybe repeat-only.
    Fail {
        addr: usize,
        back: i64,
        attempts: u32,
        repeat: bool,
    },
    /// The clock moves on.
    Advance(u32),
    /// Housekeeping.
    Prune,
    /// Banned or unbanned by hand: the window is forgotten.
    Forget(usize),
    /// The daemon restarts: a fresh jail replays the stored failures.
    Restart,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0..7usize, -5i64..120, 1u32..4, prop::bool::weighted(0.2)).prop_map(
            |(addr, back, attempts, repeat)| Op::Fail { addr, back, attempts, repeat }
        ),
        3 => (0u32..90).prop_map(Op::Advance),
        1 => Just(Op::Prune),
        1 => (0..7usize).prop_map(Op::Forget),
        1 => Just(Op::Restart),
    ]
}

/// What the daemon stores of a counted failure (`store.rs` failures).
#[derive(Debug, Clone)]
struct Stored {
    addr: IpAddr,
    time: Timestamp,
    attempts: u32,
}

/// The naive model: every counted failure time of an address, forever;
/// a decision looks at those within `[now - findtime, now]`.
struct Model {
    limits: Limits,
    ignore: Vec<ipnet::IpNet>,
    times: HashMap<IpAddr, Vec<Timestamp>>,
}

impl Model {
    fn record(
        &mut self,
        addr: IpAddr,
        time: Timestamp,
        attempts: u32,
        repeat: bool,
        now: Timestamp,
    ) -> Decision {
        let addr = canonical(addr);
        let limits = &self.limits;
        if self.ignore.iter().any(|n| n.contains(&addr)) {
            return Decision::Ignored;
        }
        let time = time.min(now);
        let horizon = now - SignedDuration::try_from(limits.findtime).unwrap();
        if time < horizon {
            return Decision::Stale;
        }
        let times = self.times.entry(addr).or_default();
        let in_window = times.iter().filter(|t| **t >= horizon).count() as u32;
        if repeat && in_window == 0 {
            return Decision::Alone;
        }
        let attempts = attempts.max(1);
        let count = in_window + attempts;
        let max = limits.maxretry.max(1);
        if count >= max {
            times.clear();
            // As implemented: the count reported is capped at maxretry,
            // unless one line alone carried more attempts.
            return Decision::Ban {
                failures: max.max(attempts),
            };
        }
        times.extend(std::iter::repeat_n(time, attempts as usize));
        Decision::Counted { failures: count }
    }
}

fn limits() -> impl Strategy<Value = Limits> {
    (1u64..200, 0u32..6).prop_map(|(findtime, maxretry)| Limits {
        findtime: Duration::from_secs(findtime),
        maxretry,
        // Eviction has its own property below; here nothing is evicted.
        maxtracked: 1000,
    })
}

/// Run `ops` through the jail (with the daemon's store and restart
/// replay around it) and through the model; every decision must agree.
fn run_window(limits: &Limits, ops: &[Op]) -> Result<(), TestCaseError> {
    let ignore_nets: Vec<ipnet::IpNet> = vec!["127.0.0.0/8".parse().unwrap()];
    let mut ignore = AddrList::new();
    ignore.push_str("127.0.0.0/8").unwrap();
    let mut jail = Jail::new(limits.clone(), ignore.clone());
    let mut model = Model {
        limits: limits.clone(),
        ignore: ignore_nets,
        times: HashMap::new(),
    };
    let mut store: Vec<Stored> = Vec::new();
    let mut now = t0();
    for (step, op) in ops.iter().enumerate() {
        match *op {
            Op::Fail {
                addr,
                back,
                attempts,
                repeat,
            } => {
                let a = pool(addr);
                let time = now - SignedDuration::from_secs(back);
                let got = if repeat {
                    jail.record_repeat(a, time, now)
                } else {
                    jail.record(a, time, attempts, now)
                };
                let attempts = if repeat { 1 } else { attempts };
                let want = model.record(a, time, attempts, repeat, now);
                prop_assert_eq!(&got, &want, "step {}: {:?}", step, op);
                match got {
                    Decision::Counted { .. } => store.push(Stored {
                        addr: canonical(a),
                        time: time.min(now),
                        attempts,
                    }),
                    Decision::Ban { .. } => store.retain(|s| s.addr != canonical(a)),
                    _ => {}
                }
            }
            Op::Advance(s) => now += SignedDuration::from_secs(i64::from(s)),
            Op::Prune => jail.prune(now),
            Op::Forget(i) => {
                let a = canonical(pool(i));
                jail.forget(a);
                model.times.remove(&a);
                store.retain(|s| s.addr != a);
            }
            Op::Restart => {
                // As Core::start: failures since now - findtime, by time.
                let horizon = now - SignedDuration::try_from(limits.findtime).unwrap();
                store.retain(|s| s.time >= horizon);
                store.sort_by_key(|s| s.time);
                jail = Jail::new(limits.clone(), ignore.clone());
                for s in &store {
                    let d = jail.record(s.addr, s.time, s.attempts, now);
                    prop_assert!(
                        matches!(d, Decision::Counted { .. }),
                        "step {}: replaying {:?} after a restart gave {:?}",
                        step,
                        s,
                        d
                    );
                }
            }
        }
        // The window itself agrees with the model.
        let horizon = now - SignedDuration::try_from(limits.findtime).unwrap();
        for i in 0..7 {
            let a = canonical(pool(i));
            let want = model
                .times
                .get(&a)
                .map_or(0, |v| v.iter().filter(|t| **t >= horizon).count());
            let got = jail.failures_of(a);
            // The jail drops times lazily (on the address's next failure
            // or a prune): it may still hold some that left the window.
            prop_assert!(got >= want, "step {}: {} has {} < {}", step, a, got, want);
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(cases(256))]

    #[test]
    fn jail_window_agrees_with_a_naive_model(
        limits in limits(),
        ops in prop::collection::vec(op(), 1..80),
    ) {
        run_window(&limits, &ops)?;
    }

    /// Tracking stays within `maxtracked`, every eviction is counted, and
    /// the addresses kept are the most recently started windows.
    #[test]
    fn tracking_is_capped_and_evictions_counted(
        cap in 1u32..20,
        addrs in prop::collection::vec(0u32..60, 1..300),
    ) {
        let limits = Limits { findtime: Duration::from_secs(10_000), maxretry: 1000, maxtracked: cap };
        let mut jail = Jail::new(limits, AddrList::new());
        // Model: windows in the order they started.
        let mut order: Vec<u32> = Vec::new();
        let mut evicted = 0u64;
        for (i, a) in addrs.iter().enumerate() {
            let ip = IpAddr::V4(Ipv4Addr::from(0xc633_6400 + a));
            let now = t0() + SignedDuration::from_secs(i as i64);
            jail.record(ip, now, 1, now);
            if !order.contains(a) {
                order.push(*a);
                if order.len() > cap as usize {
                    order.remove(0);
                    evicted += 1;
                }
            }
            prop_assert!(jail.currently_failed() <= cap as usize);
            prop_assert_eq!(jail.currently_failed(), order.len());
            prop_assert_eq!(jail.evicted, evicted);
        }
        for a in &order {
            prop_assert!(jail.failures_of(IpAddr::V4(Ipv4Addr::from(0xc633_6400 + a))) > 0);
        }
    }
}

// ---------------------------------------------------------------------------
// Ban-time escalation (bantime.increment as implemented).

fn increment() -> impl Strategy<Value = Increment> {
    (
        prop_oneof![Just(1.0), Just(2.0), 0.001f64..1e6],
        prop_oneof![Just(Vec::new()), prop::collection::vec(0.001f64..1e4, 1..8),],
        0u64..100 * 366 * 86_400,
        0u64..100_000,
    )
        .prop_map(|(factor, multipliers, maxtime, rnd)| Increment {
            factor,
            multipliers,
            maxtime: Duration::from_secs(maxtime),
            rndtime: Duration::from_secs(rnd),
            overalljails: false,
        })
}

/// Every ban time a configuration can give (durations stop at 100 × 366 days).
fn bantime() -> impl Strategy<Value = BanTime> {
    prop_oneof![
        1 => Just(BanTime::Permanent),
        8 => (0u64..100 * 366 * 86_400).prop_map(|s| BanTime::For(Duration::from_secs(s))),
        2 => (0u64..100_000).prop_map(|s| BanTime::For(Duration::from_secs(s))),
    ]
}

/// Escalation stops at 100 years (of 365 days).
const HUNDRED_YEARS: f64 = 100.0 * 365.0 * 86_400.0;

proptest! {
    #![proptest_config(cases(512))]

    #[test]
    fn escalation_follows_bantime_increment(
        base in bantime(),
        inc in increment(),
        previous in prop_oneof![0u32..70, Just(u32::MAX)],
        random in 0f64..1.0,
    ) {
        let got = escalate(base, Some(&inc), previous, random);
        prop_assert_eq!(escalate(base, None, previous, random), base);
        let BanTime::For(b) = base else {
            prop_assert_eq!(got, BanTime::Permanent);
            return Ok(());
        };
        let BanTime::For(g) = got else {
            return Err(TestCaseError::fail("a finite base gave a permanent ban"));
        };
        if previous == 0 {
            prop_assert_eq!(g, b, "a first offence gets bantime as it is");
            return Ok(());
        }
        // Never above max(maxtime, bantime) plus the random extra.
        let ceiling = inc.maxtime.max(b) + inc.rndtime.mul_f64(random) + Duration::from_secs(1);
        prop_assert!(g <= ceiling, "{:?} > {:?}", g, ceiling);
        // The random extra is at most rndtime, and follows `random`.
        let none = escalate(base, Some(&inc), previous, 0.0).duration().unwrap();
        prop_assert!(g >= none);
        prop_assert!(g <= none + inc.rndtime + Duration::from_millis(1));
        if inc.multipliers.is_empty() {
            // bantime × factor × 2^previous, never less than bantime: a
            // repeat offender never gets a shorter ban than a first one.
            prop_assert!(none >= b, "repeat offender {:?} < first offence {:?}", none, b);
            // More previous bans never shorten the ban.
            if previous < u32::MAX {
                let next = escalate(base, Some(&inc), previous + 1, 0.0).duration().unwrap();
                prop_assert!(next >= none, "{} bans: {:?}, {} bans: {:?}", previous, none, previous + 1, next);
            }
            let exact = (b.as_secs_f64() * inc.factor * 2f64.powi(previous.min(62) as i32))
                .max(b.as_secs_f64())
                .min(inc.maxtime.as_secs_f64().max(b.as_secs_f64()))
                .min(HUNDRED_YEARS.max(b.as_secs_f64()));
            prop_assert!((none.as_secs_f64() - exact).abs() <= exact * 1e-9 + 1e-6);
        } else {
            let m = inc.multipliers[(previous as usize).min(inc.multipliers.len() - 1)];
            let exact = (b.as_secs_f64() * inc.factor * m)
                .min(inc.maxtime.as_secs_f64().max(b.as_secs_f64()))
                .min(HUNDRED_YEARS.max(b.as_secs_f64()));
            prop_assert!((none.as_secs_f64() - exact).abs() <= exact * 1e-9 + 1e-6);
        }
    }
}

// ---------------------------------------------------------------------------
// Durations.

proptest! {
    #![proptest_config(cases(1024))]

    #[test]
    fn durations_round_trip_and_never_panic(secs in 0u64..100 * 366 * 86_400, junk in ".{0,24}") {
        let d = Duration::from_secs(secs);
        let text = format_duration(d);
        prop_assert_eq!(parse_duration(&text), Ok(d), "{}", text);
        prop_assert_eq!(parse_bantime(&text), Ok(BanTime::For(d)));
        // Bare seconds, Fail2ban style.
        prop_assert_eq!(parse_duration(&secs.to_string()), Ok(d));
        // Any text: a result, never a panic; what parses formats back to
        // the same duration.
        if let Ok(d) = parse_duration(&junk) {
            prop_assert_eq!(parse_duration(&format_duration(d)), Ok(d));
        }
        let _ = parse_bantime(&junk);
    }

    #[test]
    fn durations_add_up_their_parts(parts in prop::collection::vec((0u64..10_000, 0usize..5, 0usize..3), 1..6)) {
        const UNITS: [(&[&str], u64); 5] = [
            (&["s", "sec", "seconds"], 1),
            (&["m", "min", "minutes"], 60),
            (&["h", "hr", "hours"], 3600),
            (&["d", "day", "days"], 86_400),
            (&["w", "week", "weeks"], 604_800),
        ];
        let mut text = String::new();
        let mut total = 0u64;
        for (n, u, spelling) in &parts {
            let (names, size) = UNITS[*u];
            text.push_str(&format!("{n}{} ", names[spelling % names.len()]));
            total += n * size;
        }
        let got = parse_duration(&text);
        if total > 100 * 366 * 86_400 {
            prop_assert!(got.is_err());
        } else {
            prop_assert_eq!(got, Ok(Duration::from_secs(total)), "{}", text);
        }
    }
}

// ---------------------------------------------------------------------------
// journal_match: the parsed expression against journalctl's semantics
// evaluated directly on the terms.

fn field() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("_SYSTEMD_UNIT".to_string()),
        Just("SYSLOG_IDENTIFIER".to_string()),
        Just("_UID".to_string()),
        Just("_TRANSPORT".to_string()),
    ]
}

fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("a".to_string()),
        Just("b".to_string()),
        Just("".to_string()),
        Just("x=y".to_string()),
    ]
}

fn term() -> impl Strategy<Value = String> {
    prop_oneof![
        8 => (field(), value()).prop_map(|(f, v)| format!("{f}={v}")),
        2 => Just("+".to_string()),
        1 => "[A-Za-z0-9_=+ ]{0,8}",
    ]
}

/// journalctl's rule on the terms themselves: split at "+"; within a
/// group, same field OR, different fields AND; groups OR.
fn naive_matches(terms: &[String], entry: &HashMap<String, String>) -> bool {
    terms.split(|t| t == "+").any(|group| {
        let mut fields: HashMap<&str, Vec<&str>> = HashMap::new();
        for t in group {
            let (f, v) = t.split_once('=').unwrap();
            fields.entry(f).or_default().push(v);
        }
        fields.iter().all(|(f, vs)| {
            entry
                .get(*f)
                .is_some_and(|have| vs.contains(&have.as_str()))
        })
    })
}

proptest! {
    #![proptest_config(cases(1024))]

    #[test]
    fn journal_match_is_journalctl_semantics(
        terms in prop::collection::vec(term(), 0..8),
        entry in prop::collection::hash_map(field(), value(), 0..4),
    ) {
        let Ok(m) = JournalMatch::parse(&terms) else {
            // Refused: a malformed term or an empty group, nothing else.
            let malformed = terms.iter().any(|t| t != "+" && !t.split_once('=').is_some_and(|(f, _)| {
                jailwarden::config::journal_match::valid_field_name(f)
            }));
            let empty_group = !terms.is_empty() && terms.split(|t| t == "+").any(|g| g.is_empty());
            prop_assert!(malformed || empty_group, "{:?} refused", terms);
            return Ok(());
        };
        prop_assert!(!terms.split(|t| t == "+").any(|g| g.is_empty()) || terms.is_empty());
        let got = m.matches(|f| entry.get(f).map(|v| v.as_bytes()));
        prop_assert_eq!(got, !terms.is_empty() && naive_matches(&terms, &entry), "{:?} on {:?}", terms, entry);
        // The groups, written back as terms, parse to the same expression.
        let mut again: Vec<String> = Vec::new();
        for (i, g) in m.groups().iter().enumerate() {
            if i > 0 {
                again.push("+".into());
            }
            for (f, vs) in g.terms() {
                for v in vs {
                    again.push(format!("{f}={}", String::from_utf8_lossy(v)));
                }
            }
        }
        prop_assert_eq!(JournalMatch::parse(&again), Ok(m));
    }
}

// ---------------------------------------------------------------------------
// Addresses, CIDRs and ignoreip ranges.

/// Addresses near interesting edges (zero, the top, mapped IPv4, the
/// boundaries of a few networks) so ranges touch and overlap.
fn v6_addr() -> impl Strategy<Value = u128> {
    prop_oneof![
        Just(0u128),
        Just(u128::MAX),
        Just(u128::MAX - 1),
        (any::<u32>()).prop_map(|v| 0xffff_0000_0000u128 | u128::from(v)),
        (any::<u16>()).prop_map(|v| (0x2001_0db8u128 << 96) | u128::from(v)),
        (any::<u16>()).prop_map(|v| (0x2001_0db8u128 << 96) | (u128::from(v) << 64)),
        any::<u128>(),
    ]
}

fn v4_addr() -> impl Strategy<Value = u32> {
    prop_oneof![
        Just(0u32),
        Just(u32::MAX),
        any::<u16>().prop_map(|v| 0xc000_0200 | u32::from(v & 0xff)),
        any::<u16>().prop_map(|v| 0xc633_0000 | u32::from(v)),
        any::<u32>(),
    ]
}

#[derive(Debug, Clone)]
enum Entry {
    V4(u32, Option<u8>),
    V6(u128, Option<u8>),
}

fn entry() -> impl Strategy<Value = Entry> {
    prop_oneof![
        (v4_addr(), prop::option::of(0u8..=32)).prop_map(|(a, p)| Entry::V4(a, p)),
        (v6_addr(), prop::option::of(0u8..=128)).prop_map(|(a, p)| Entry::V6(a, p)),
    ]
}

impl Entry {
    fn text(&self) -> String {
        match self {
            Entry::V4(a, None) => Ipv4Addr::from(*a).to_string(),
            Entry::V4(a, Some(p)) => format!("{}/{p}", Ipv4Addr::from(*a)),
            Entry::V6(a, None) => Ipv6Addr::from(*a).to_string(),
            Entry::V6(a, Some(p)) => format!("{}/{p}", Ipv6Addr::from(*a)),
        }
    }

    /// Naive membership on 128-bit integers; IPv4 lives in ::ffff:0:0/96
    /// (an IPv6 entry shorter than /96 covers IPv6 addresses only: an
    /// IPv4 address is looked up as IPv4).
    fn contains(&self, probe: IpAddr) -> bool {
        let (x, is_v4) = match canonical(probe) {
            IpAddr::V4(v4) => (0xffff_0000_0000u128 | u128::from(u32::from(v4)), true),
            IpAddr::V6(v6) => (u128::from(v6), false),
        };
        let (base, len) = match *self {
            Entry::V4(a, p) => (
                0xffff_0000_0000u128 | u128::from(a),
                96 + u32::from(p.unwrap_or(32)),
            ),
            Entry::V6(a, p) => {
                let len = u32::from(p.unwrap_or(128));
                let mapped = (a >> 32) == 0xffff;
                if is_v4 && !(mapped && len >= 96) {
                    return false;
                }
                (a, len)
            }
        };
        len == 0 || (x ^ base) >> (128 - len) == 0
    }
}

fn probe() -> impl Strategy<Value = IpAddr> {
    prop_oneof![
        v4_addr().prop_map(|a| IpAddr::V4(Ipv4Addr::from(a))),
        v4_addr().prop_map(|a| IpAddr::V6(Ipv4Addr::from(a).to_ipv6_mapped())),
        v6_addr().prop_map(|a| IpAddr::V6(Ipv6Addr::from(a))),
    ]
}

proptest! {
    #![proptest_config(cases(512))]

    #[test]
    fn ignoreip_lists_agree_with_a_plain_scan(
        entries in prop::collection::vec(entry(), 0..24),
        probes in prop::collection::vec(probe(), 0..40),
    ) {
        let mut l = AddrList::new();
        for e in &entries {
            prop_assert!(l.push_str(&e.text()).is_ok(), "{} refused", e.text());
        }
        // Probes at the entries' own edges, where ranges touch.
        let mut probes = probes;
        for e in &entries {
            if let Entry::V6(a, _) = e {
                probes.push(IpAddr::V6(Ipv6Addr::from(*a)));
                probes.push(IpAddr::V6(Ipv6Addr::from(a.wrapping_add(1))));
                probes.push(IpAddr::V6(Ipv6Addr::from(a.wrapping_sub(1))));
            }
            if let Entry::V4(a, _) = e {
                probes.push(IpAddr::V4(Ipv4Addr::from(a.wrapping_add(1))));
                probes.push(IpAddr::V4(Ipv4Addr::from(a.wrapping_sub(1))));
            }
        }
        for p in probes {
            let want = entries.iter().any(|e| e.contains(p));
            prop_assert_eq!(l.contains(p), want, "{} in {:?}", p, entries.iter().map(Entry::text).collect::<Vec<_>>());
        }
    }

    #[test]
    fn addresses_parse_back_as_written(p in probe(), bracket in any::<bool>()) {
        let text = if bracket { format!("[{p}]") } else { p.to_string() };
        prop_assert_eq!(jailwarden::addr::parse_addr(&text), Some(canonical(p)));
        let host = jailwarden::addr::parse_host(&text);
        prop_assert_eq!(host.and_then(|h| h.addr()), Some(canonical(p)));
        // Leading zeros in a dotted quad are decimal, never octal.
        if let IpAddr::V4(v4) = canonical(p) {
            let o = v4.octets();
            let padded = format!("{:03}.{:03}.{:03}.{:03}", o[0], o[1], o[2], o[3]);
            prop_assert_eq!(jailwarden::addr::parse_addr(&padded), Some(IpAddr::V4(v4)));
        }
    }

    #[test]
    fn ban_nets_contain_their_address(p in probe(), prefix in 0u8..=128) {
        let net = jailwarden::addr::ban_net(p, prefix);
        prop_assert!(net.contains(&canonical(p)));
        match canonical(p) {
            IpAddr::V4(_) => prop_assert_eq!(net.prefix_len(), 32),
            IpAddr::V6(_) => prop_assert_eq!(net.prefix_len(), prefix),
        }
        prop_assert_eq!(net, net.trunc());
    }

    #[test]
    fn host_parsing_never_panics(text in "\\PC{0,40}", bytes in prop::collection::vec(any::<u8>(), 0..60)) {
        let _ = jailwarden::addr::parse_host(&text);
        let _ = jailwarden::addr::parse_addr(&text);
        let _ = AddrList::new().push_str(&text);
        let f = jailwarden::addr::parse_forwarded(&bytes);
        prop_assert!(f.len() <= jailwarden::addr::MAX_FORWARDED + 1);
    }
}

// ---------------------------------------------------------------------------
// Dates: an instant written in a format the finder knows parses back to
// the same instant.

#[derive(Debug, Clone, Copy)]
enum Format {
    /// `2024-01-02T03:04:05.123456+01:00`
    Iso,
    /// `2024-01-02 03:04:05` (local)
    IsoLocal,
    /// `Jan  2 03:04:05` (local, no year)
    Syslog,
    /// `<13>Jan  2 03:04:05`
    SyslogPri,
    /// `[02/Jan/2024:03:04:05 +0100]` inside an access log line
    Apache,
    /// `2024/01/02 03:04:05` (nginx error log, local)
    Nginx,
    /// `Tue Jan  2 03:04:05 2024` (local)
    Ctime,
    /// `1700000000.123456` epoch at the start
    Epoch,
}

fn format() -> impl Strategy<Value = Format> {
    prop_oneof![
        Just(Format::Iso),
        Just(Format::IsoLocal),
        Just(Format::Syslog),
        Just(Format::SyslogPri),
        Just(Format::Apache),
        Just(Format::Nginx),
        Just(Format::Ctime),
        Just(Format::Epoch),
    ]
}

fn zone() -> impl Strategy<Value = TimeZone> {
    prop_oneof![
        Just(TimeZone::UTC),
        (-12 * 4..=14 * 4i32).prop_map(|q| TimeZone::fixed(Offset::from_seconds(q * 900).unwrap())),
        prop_oneof![
            Just("Europe/Berlin"),
            Just("America/New_York"),
            Just("Australia/Lord_Howe"),
            Just("Asia/Kolkata"),
        ]
        .prop_map(|n| TimeZone::get(n).unwrap_or(TimeZone::UTC)),
    ]
}

/// The line, and the instant it should parse to (at the precision the
/// format writes).
fn write_date(f: Format, t: Timestamp, tz: &TimeZone) -> (String, Timestamp) {
    let z = t.to_zoned_datetime(tz.clone());
    let whole = Timestamp::from_second(t.as_second()).unwrap();
    let rest = " sshd[42]: Failed password for root from 192.0.2.7 port 22 ssh2";
    match f {
        Format::Iso => (
            format!("{}{rest}", z.strftime("%Y-%m-%dT%H:%M:%S%.6f%:z")),
            { Timestamp::from_microsecond(t.as_microsecond()).unwrap() },
        ),
        Format::IsoLocal => (format!("{}{rest}", z.strftime("%Y-%m-%d %H:%M:%S")), whole),
        Format::Syslog => (format!("{}{rest}", z.strftime("%b %e %H:%M:%S")), whole),
        Format::SyslogPri => (format!("<13>{}{rest}", z.strftime("%b %e %H:%M:%S")), whole),
        Format::Apache => (
            format!(
                "192.0.2.7 - - [{}] \"GET / HTTP/1.1\" 401 0",
                z.strftime("%d/%b/%Y:%H:%M:%S %z")
            ),
            whole,
        ),
        Format::Nginx => (
            format!(
                "{} [error] 12#12: *1 no user/password",
                z.strftime("%Y/%m/%d %H:%M:%S")
            ),
            whole,
        ),
        Format::Ctime => (
            format!("{}{rest}", z.strftime("%a %b %e %H:%M:%S %Y")),
            whole,
        ),
        Format::Epoch => (
            format!("{}.{:06}{rest}", t.as_second(), t.subsec_microsecond()),
            Timestamp::from_microsecond(t.as_microsecond()).unwrap(),
        ),
    }
}

/// Does this local time name one instant only (not in a DST fold)?
fn unambiguous(t: Timestamp, tz: &TimeZone) -> bool {
    let dt = tz.to_datetime(t);
    matches!(tz.to_ambiguous_timestamp(dt).unambiguous(), Ok(u) if u.as_second() == t.as_second())
}

proptest! {
    #![proptest_config(cases(512))]

    #[test]
    fn dates_parse_back_to_the_instant_written(
        tz in zone(),
        now_s in 1_500_000_000i64..2_000_000_000,
        // Lines from the last 300 days up to 23 h ahead of "now": the
        // year of a year-less date is then the one written.
        lines in prop::collection::vec((format(), -300 * 86_400i64..23 * 3600, 0i64..1_000_000), 1..12),
    ) {
        let now = Timestamp::from_second(now_s).unwrap();
        let mut finder = DateFinder::new(tz.clone(), now);
        for (f, offset, micros) in lines {
            let t = Timestamp::from_microsecond((now_s + offset) * 1_000_000 + micros).unwrap();
            if !unambiguous(t, &tz) {
                continue;
            }
            let (line, want) = write_date(f, t, &tz);
            let found = finder.find(line.as_bytes());
            prop_assert_eq!(found.as_ref().map(|d| d.time), Some(want), "{:?} {:?} in {}", line, f, tz.iana_name().unwrap_or("fixed"));
            let found = found.unwrap();
            // The span covers the date only: what follows is the message.
            let after = &line[found.span.end..];
            prop_assert!(after.starts_with(' ') || after.starts_with('"') || after.starts_with(" [") , "{:?} cut at {}", line, found.span.end);
        }
    }

    #[test]
    fn date_finding_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..120), now_s in 0i64..4_000_000_000) {
        let now = Timestamp::from_second(now_s).unwrap();
        let mut finder = DateFinder::new(TimeZone::UTC, now);
        if let Some(d) = finder.find(&bytes) {
            prop_assert!(d.span.start <= d.span.end && d.span.end <= bytes.len());
        }
        let _ = finder.find_start(&bytes);
        for at in 0..bytes.len().min(8) {
            if let Some(d) = finder.find_at(&bytes, at) {
                prop_assert!(d.span.end <= bytes.len());
            }
        }
    }
}

// ---------------------------------------------------------------------------
// The configuration reader: any text, no panic; every error positioned.

use jailwarden::config::keys;

/// Keys the reader knows, so that generated files reach validation and
/// not only the unknown-key check.
fn known_key() -> impl Strategy<Value = (&'static str, &'static str)> {
    let mut all: Vec<(&'static str, &'static str)> = Vec::new();
    for table in [
        keys::DAEMON,
        keys::JAIL,
        keys::INCREMENT,
        keys::COMMAND_ACTION,
        keys::HOSTS_DENY_ACTION,
        keys::MAIL_ACTION,
        keys::FILTER,
        keys::PATTERN,
    ] {
        all.extend(table.iter().map(|k| (k.name, k.example)));
    }
    prop::sample::select(all)
}

/// A TOML value: a key's own example (maybe damaged), or any of the
/// shapes and extremes TOML has.
fn toml_value(example: &'static str) -> impl Strategy<Value = String> {
    let scalar = prop_oneof![
        Just("0".to_string()),
        Just("-1".to_string()),
        Just("9223372036854775807".to_string()),
        Just("-9223372036854775808".to_string()),
        Just("nan".to_string()),
        Just("inf".to_string()),
        Just("-inf".to_string()),
        Just("1e308".to_string()),
        Just("0.000001".to_string()),
        Just("true".to_string()),
        Just("1979-05-27T07:32:00Z".to_string()),
        Just("\"\"".to_string()),
        Just("\"permanent\"".to_string()),
        Just("\"99999999999999999999s\"".to_string()),
        Just("\"<HOST>\"".to_string()),
        Just("'^(?P<host>'".to_string()),
        Just("\"\\u0000\"".to_string()),
        "\"[a-zA-Z0-9 <>=+%/._:-]{0,12}\"",
    ];
    prop_oneof![
        4 => Just(example.to_string()),
        2 => (0..example.len().max(1), any::<char>()).prop_map(move |(at, c)| {
            let mut s = example.to_string();
            let at = (0..=at.min(s.len())).rev().find(|i| s.is_char_boundary(*i)).unwrap_or(0);
            s.insert(at, c);
            s
        }),
        1 => (0..example.len().max(1)).prop_map(move |cut| {
            let cut = (0..=cut.min(example.len())).rev().find(|i| example.is_char_boundary(*i)).unwrap_or(0);
            example[..cut].to_string()
        }),
        3 => scalar.clone(),
        1 => prop::collection::vec(scalar.clone(), 0..4).prop_map(|v| format!("[{}]", v.join(", "))),
        1 => prop::collection::vec(scalar, 0..3).prop_map(|v| {
            let items: Vec<String> = v.iter().enumerate().map(|(i, x)| format!("k{i} = {x}")).collect();
            format!("{{ {} }}", items.join(", "))
        }),
    ]
}

fn config_line() -> impl Strategy<Value = String> {
    let header = prop_oneof![
        Just("[daemon]".to_string()),
        Just("[defaults]".to_string()),
        Just("[defaults.increment]".to_string()),
        Just("[jails.svc]".to_string()),
        Just("[jails.svc.increment]".to_string()),
        Just("[[jails.svc.actions]]".to_string()),
        Just("[jails.other]".to_string()),
        Just("[jails.\"\"]".to_string()),
        Just("[jails]".to_string()),
        Just("[[jails]]".to_string()),
        Just("[nonsense]".to_string()),
    ];
    prop_oneof![
        3 => header,
        8 => known_key().prop_flat_map(|(k, example)| {
            toml_value(example).prop_map(move |v| format!("{k} = {v}"))
        }),
        1 => "[a-z_]{1,10} = [0-9\"\\[\\]{}a-z]{0,10}",
        1 => "\\PC{0,30}",
        1 => Just("enabled = true".to_string()),
        1 => Just("filter = \"svc\"".to_string()),
    ]
}

const PROPERTY_FILTER: &str = r#"
description = "test service"
journal_match = ["_SYSTEMD_UNIT=svc.service"]
failregex = ['^fail from <HOST>$']
"#;

/// Load a configuration whose main file, `jail.d` file and filter file
/// are `main`, `extra` and `filter`; every diagnostic must name its file
/// and a line and column inside it.
fn check_config(main: &[u8], extra: &[u8], filter: &[u8]) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir_all(d.join("filters")).unwrap();
    std::fs::create_dir_all(d.join("jail.d")).unwrap();
    std::fs::write(d.join("filters/svc.toml"), filter).unwrap();
    std::fs::write(d.join("jailwarden.toml"), main).unwrap();
    std::fs::write(d.join("jail.d/10-x.toml"), extra).unwrap();
    let texts: HashMap<std::path::PathBuf, String> = [
        (d.join("jailwarden.toml"), main),
        (d.join("jail.d/10-x.toml"), extra),
        (d.join("filters/svc.toml"), filter),
    ]
    .into_iter()
    .map(|(p, b)| (p, String::from_utf8_lossy(b).into_owned()))
    .collect();
    let Err(diags) = jailwarden::config::load(&d.join("jailwarden.toml")) else {
        return Ok(());
    };
    prop_assert!(!diags.is_empty());
    for diag in &diags {
        let text = texts.get(&diag.path);
        prop_assert!(
            text.is_some(),
            "{} names a file that is not part of the configuration",
            diag
        );
        let text = text.unwrap();
        prop_assert!(diag.line >= 1 && diag.column >= 1, "no position: {}", diag);
        let lines: Vec<&str> = text.split('\n').collect();
        prop_assert!(
            diag.line <= lines.len(),
            "{}: past the end ({} lines)",
            diag,
            lines.len()
        );
        let chars = lines[diag.line - 1].chars().count();
        prop_assert!(
            diag.column <= chars + 1,
            "{}: past the end of the line ({} chars)",
            diag,
            chars
        );
        prop_assert!(!diag.message.trim().is_empty(), "{}: no message", diag);
    }
    Ok(())
}

proptest! {
    #![proptest_config(cases(256))]

    #[test]
    fn config_reader_positions_every_error(
        main in prop::collection::vec(config_line(), 0..14),
        extra in prop::collection::vec(config_line(), 0..4),
        filter in prop::collection::vec(config_line(), 0..6),
    ) {
        let mut main = main.join("\n");
        // Most cases configure the jail the filter is for, so the
        // filter and jail validation is reached.
        main.insert_str(0, "[daemon]\nbackend = \"none\"\n[jails.svc]\n");
        let filter = format!("{PROPERTY_FILTER}{}", filter.join("\n"));
        check_config(main.as_bytes(), extra.join("\n").as_bytes(), filter.as_bytes())?;
    }

    #[test]
    fn config_reader_takes_any_bytes(text in "\\PC{0,200}", bytes in prop::collection::vec(any::<u8>(), 0..200)) {
        check_config(text.as_bytes(), b"", PROPERTY_FILTER.as_bytes())?;
        check_config(b"[jails.svc]\n", &bytes, PROPERTY_FILTER.as_bytes())?;
        check_config(b"[jails.svc]\n", b"", &bytes)?;
    }
}
