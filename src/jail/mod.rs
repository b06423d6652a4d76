//! A jail's decisions: per address, failures within `findtime`; at
//! `maxretry`, a ban. Pure logic (no I/O, time passed in), so it is tested
//! without root and replayed identically after a restart.
//!
//! Memory is bounded: at most `maxtracked` addresses are tracked, the
//! oldest evicted first (and counted), and each keeps at most `maxretry`
//! failure times, which is all a decision needs.

pub mod escalation;

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};

use crate::addr::{AddrList, canonical};

/// What a failure led to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// The address is in `ignoreip` (or is this host's own).
    Ignored,
    /// Counted; `failures` within findtime so far.
    Counted { failures: u32 },
    /// `maxretry` reached: ban, with this many failures.
    Ban { failures: u32 },
    /// Too old to matter (before now − findtime).
    Stale,
    /// A repeat-only failure (filter role `repeat`) of an address with no
    /// counted failure in its window: not counted.
    Alone,
}

#[derive(Debug)]
struct Track {
    /// Failure times, oldest first, at most `maxretry`.
    times: VecDeque<Timestamp>,
    /// Matches `Jail::order` entries; stale entries there are skipped.
    generation: u64,
}

/// The limits of a jail that its decisions depend on.
#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    pub findtime: Duration,
    pub maxretry: u32,
    pub maxtracked: u32,
}

/// One jail's failure windows.
#[derive(Debug)]
pub struct Jail {
    limits: Limits,
    ignore: AddrList,
    tracked: HashMap<IpAddr, Track>,
    /// Insertion order for eviction: (address, generation).
    order: VecDeque<(IpAddr, u64)>,
    generation: u64,
    /// Failures counted since start (for status).
    pub total_failed: u64,
    /// Addresses evicted because `maxtracked` was reached.
    pub evicted: u64,
}

impl Jail {
    /// An empty jail; `ignore` holds `ignoreip` (plus this host's
    /// addresses when `ignoreself`).
    pub fn new(limits: Limits, ignore: AddrList) -> Self {
        Jail {
            limits,
            ignore,
            tracked: HashMap::new(),
            order: VecDeque::new(),
            generation: 0,
            total_failed: 0,
            evicted: 0,
        }
    }

    /// Change limits and ignore list, keeping the windows (a reload).
    pub fn reconfigure(&mut self, limits: Limits, ignore: AddrList) {
        self.limits = limits;
        self.ignore = ignore;
        let max = self.limits.maxretry as usize;
        for t in self.tracked.values_mut() {
            while t.times.len() > max {
                t.times.pop_front();
            }
        }
        self.enforce_cap();
    }

    /// The limits in force.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Is this address exempt?
    pub fn is_ignored(&self, addr: IpAddr) -> bool {
        self.ignore.contains(addr)
    }

    /// Addresses with failures in their window.
    pub fn currently_failed(&self) -> usize {
        self.tracked.len()
    }

    /// Failures of an address still in the window (for status and tests).
    pub fn failures_of(&self, addr: IpAddr) -> usize {
        self.tracked
            .get(&canonical(addr))
            .map_or(0, |t| t.times.len())
    }

    /// Record `attempts` failures of `addr` at `time`, judged at `now`.
    /// Times in the future are taken as `now`; times before
    /// `now − findtime` are stale.
    pub fn record(
        &mut self,
        addr: IpAddr,
        time: Timestamp,
        attempts: u32,
        now: Timestamp,
    ) -> Decision {
        self.record_failure(addr, time, attempts, false, now)
    }

    /// [`record`](Self::record) a failure that counts only as a repeat:
    /// when `addr` already has a counted failure in its window (else
    /// [`Decision::Alone`]). It may complete a ban, never start one.
    pub fn record_repeat(&mut self, addr: IpAddr, time: Timestamp, now: Timestamp) -> Decision {
        self.record_failure(addr, time, 1, true, now)
    }

    fn record_failure(
        &mut self,
        addr: IpAddr,
        time: Timestamp,
        attempts: u32,
        repeat: bool,
        now: Timestamp,
    ) -> Decision {
        let addr = canonical(addr);
        if self.ignore.contains(addr) {
            return Decision::Ignored;
        }
        let time = time.min(now);
        let horizon = self.horizon(now);
        if time < horizon {
            return Decision::Stale;
        }
        if repeat {
            let in_window = self
                .tracked
                .get(&addr)
                .is_some_and(|t| t.times.iter().any(|x| *x >= horizon));
            if !in_window {
                return Decision::Alone;
            }
        }
        let attempts = attempts.max(1);
        self.total_failed += u64::from(attempts);
        let max = self.limits.maxretry.max(1) as usize;
        let generation = self.generation;
        let track = self.tracked.entry(addr).or_insert_with(|| Track {
            times: VecDeque::with_capacity(max.min(8)),
            generation,
        });
        let is_new = track.times.is_empty();
        if is_new {
            track.generation = generation;
        }
        for _ in 0..attempts.min(max as u32) {
            // Keep times sorted: a late line may carry an earlier time.
            let pos = track.times.partition_point(|t| *t <= time);
            track.times.insert(pos, time);
            if track.times.len() > max {
                track.times.pop_front();
            }
        }
        while track.times.front().is_some_and(|t| *t < horizon) {
            track.times.pop_front();
        }
        let count = track.times.len() as u32;
        if count >= max as u32 {
            self.tracked.remove(&addr);
            return Decision::Ban {
                failures: count.max(attempts),
            };
        }
        if is_new {
            self.generation += 1;
            self.order.push_back((addr, generation));
            self.enforce_cap();
        }
        Decision::Counted { failures: count }
    }

    /// Forget an address's failures (it was banned or unbanned by hand).
    pub fn forget(&mut self, addr: IpAddr) {
        self.tracked.remove(&canonical(addr));
    }

    /// Drop windows that ended before `now − findtime`.
    pub fn prune(&mut self, now: Timestamp) {
        let horizon = self.horizon(now);
        self.tracked.retain(|_, t| {
            while t.times.front().is_some_and(|x| *x < horizon) {
                t.times.pop_front();
            }
            !t.times.is_empty()
        });
        self.compact_order();
    }

    /// Every tracked address with its failure times (for persistence).
    pub fn windows(&self) -> impl Iterator<Item = (IpAddr, &VecDeque<Timestamp>)> {
        self.tracked.iter().map(|(a, t)| (*a, &t.times))
    }

    fn horizon(&self, now: Timestamp) -> Timestamp {
        let window = SignedDuration::try_from(self.limits.findtime).unwrap_or(SignedDuration::MAX);
        now.checked_sub(window).unwrap_or(Timestamp::MIN)
    }

    fn enforce_cap(&mut self) {
        let cap = self.limits.maxtracked.max(1) as usize;
        while self.tracked.len() > cap {
            let Some((addr, generation)) = self.order.pop_front() else {
                break;
            };
            if self
                .tracked
                .get(&addr)
                .is_some_and(|t| t.generation == generation)
            {
                self.tracked.remove(&addr);
                self.evicted += 1;
            }
        }
        if self.order.len() > 2 * cap + 64 {
            self.compact_order();
        }
    }

    /// Remove order entries of addresses no longer tracked (or re-added).
    fn compact_order(&mut self) {
        let tracked = &self.tracked;
        self.order
            .retain(|(a, g)| tracked.get(a).is_some_and(|t| t.generation == *g));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jail(findtime: u64, maxretry: u32, maxtracked: u32) -> Jail {
        let mut ignore = AddrList::new();
        ignore.push_str("127.0.0.0/8").unwrap();
        Jail::new(
            Limits {
                findtime: Duration::from_secs(findtime),
                maxretry,
                maxtracked,
            },
            ignore,
        )
    }

    fn t(s: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + s).unwrap()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn bans_at_maxretry_within_findtime() {
        let mut j = jail(600, 3, 100);
        let a = ip("192.0.2.1");
        assert_eq!(
            j.record(a, t(0), 1, t(0)),
            Decision::Counted { failures: 1 }
        );
        assert_eq!(
            j.record(a, t(10), 1, t(10)),
            Decision::Counted { failures: 2 }
        );
        assert_eq!(j.record(a, t(20), 1, t(20)), Decision::Ban { failures: 3 });
        assert_eq!(j.failures_of(a), 0, "a ban resets the window");
        assert_eq!(j.total_failed, 3);
    }

    #[test]
    fn findtime_edges() {
        let mut j = jail(600, 3, 100);
        let a = ip("192.0.2.1");
        j.record(a, t(0), 1, t(0));
        j.record(a, t(300), 1, t(300));
        // At exactly findtime after the first, it still counts...
        assert_eq!(
            j.record(a, t(600), 1, t(600)),
            Decision::Ban { failures: 3 }
        );
        j.record(a, t(1000), 1, t(1000));
        j.record(a, t(1300), 1, t(1300));
        // ...one second later the first has left the window.
        assert_eq!(
            j.record(a, t(1601), 1, t(1601)),
            Decision::Counted { failures: 2 }
        );
        // Old lines (before now - findtime) do not count at all.
        assert_eq!(j.record(ip("192.0.2.2"), t(0), 1, t(5000)), Decision::Stale);
        // Future times are taken as now.
        let b = ip("192.0.2.3");
        j.record(b, t(999_999), 1, t(5000));
        j.record(b, t(5001), 1, t(5001));
        assert_eq!(
            j.record(b, t(5002), 1, t(5002)),
            Decision::Ban { failures: 3 }
        );
    }

    #[test]
    fn ignoreip_and_mapped_addresses() {
        let mut j = jail(600, 1, 100);
        assert_eq!(j.record(ip("127.0.0.5"), t(0), 1, t(0)), Decision::Ignored);
        assert_eq!(
            j.record(ip("::ffff:127.0.0.5"), t(0), 1, t(0)),
            Decision::Ignored
        );
        assert_eq!(
            j.record(ip("::ffff:192.0.2.9"), t(0), 1, t(0)),
            Decision::Ban { failures: 1 }
        );
    }

    #[test]
    fn multi_attempt_lines_count_fully() {
        let mut j = jail(600, 5, 100);
        let a = ip("192.0.2.1");
        assert_eq!(
            j.record(a, t(0), 3, t(0)),
            Decision::Counted { failures: 3 }
        );
        assert_eq!(j.record(a, t(1), 3, t(1)), Decision::Ban { failures: 5 });
    }

    #[test]
    fn repeats_count_only_after_a_counted_failure() {
        let mut j = jail(600, 3, 100);
        let a = ip("192.0.2.1");
        // An outage: every client gets the line; alone, it never counts.
        for s in 0..10 {
            assert_eq!(j.record_repeat(a, t(s), t(s)), Decision::Alone);
        }
        assert_eq!(j.failures_of(a), 0);
        assert_eq!(j.total_failed, 0);
        // After a real failure, it does, and may complete a ban.
        j.record(a, t(20), 1, t(20));
        assert_eq!(
            j.record_repeat(a, t(21), t(21)),
            Decision::Counted { failures: 2 }
        );
        assert_eq!(
            j.record_repeat(a, t(22), t(22)),
            Decision::Ban { failures: 3 }
        );
        // Once the counted failure left the window, alone again.
        let b = ip("192.0.2.2");
        j.record(b, t(100), 1, t(100));
        assert_eq!(j.record_repeat(b, t(701), t(701)), Decision::Alone);
    }

    #[test]
    fn tracked_addresses_stay_within_the_cap() {
        let mut j = jail(3600, 5, 1000);
        for i in 0..100_000u32 {
            let a = IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + i));
            j.record(a, t(i64::from(i) / 100), 1, t(i64::from(i) / 100));
            assert!(j.currently_failed() <= 1000);
        }
        assert_eq!(j.evicted, 99_000);
        // The newest are the ones kept.
        assert_eq!(
            j.failures_of(IpAddr::from(std::net::Ipv4Addr::from(
                0x0a00_0000 + 99_999u32
            ))),
            1
        );
        assert_eq!(j.failures_of(ip("10.0.0.0")), 0);
        assert!(j.order.len() <= 2 * 1000 + 64);
    }

    #[test]
    fn prune_and_reconfigure_keep_what_matters() {
        let mut j = jail(600, 5, 100);
        let a = ip("192.0.2.1");
        for s in 0..4 {
            j.record(a, t(s), 1, t(s));
        }
        j.prune(t(700));
        assert_eq!(j.currently_failed(), 0);
        for s in 0..4 {
            j.record(a, t(1000 + s), 1, t(1000 + s));
        }
        j.reconfigure(
            Limits {
                findtime: Duration::from_secs(600),
                maxretry: 2,
                maxtracked: 100,
            },
            AddrList::new(),
        );
        assert_eq!(j.failures_of(a), 2);
        assert_eq!(
            j.record(a, t(1010), 1, t(1010)),
            Decision::Ban { failures: 2 }
        );
    }
}
