//! Other hosts' bans, and the policy that decides which apply here. Pure:
//! time comes in as an argument, nothing here talks to Redis or the
//! kernel; the core feeds it what the link received and turns what it
//! says into store rows and firewall elements.
//!
//! A remote ban is kept per (address, origin, jail). An address is banned
//! here (in the fleet sets) while at least `quorum` distinct trusted
//! origins ban it, until the latest of their expiries, each capped at
//! `max_bantime` from when it arrived. Never banned: this host's
//! `ignoreip`/`ignoreself` and the fleet members' own addresses.
//! Each origin may have `max_rate` bans per second accepted (a burst of a
//! minute's worth); events are applied once, by (origin, stream ID).

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use ipnet::IpNet;
use jiff::{SignedDuration, Timestamp};

use super::wire::{Event, Kind, StreamId, is_after};
use crate::addr::AddrList;
use crate::config::fleet::FleetConfig;

pub use crate::ban::RemoteBan;

/// Why a remote ban was not applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The origin is not in `trust` (or accept = false).
    Untrusted,
    /// This host's ignoreip/ignoreself, or a fleet member's address.
    Ignored,
    /// The origin's rate cap.
    Rate,
    /// Already over when it arrived.
    Expired,
    /// A range no jail bans (an IPv4 network, an IPv6 prefix under /16).
    Range,
}

impl Refusal {
    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::Untrusted => "origin not trusted",
            Refusal::Ignored => "ignored address (ignoreip, ignoreself or a fleet member)",
            Refusal::Rate => "origin over its rate cap",
            Refusal::Expired => "already expired",
            Refusal::Range => "a range no jail bans (IPv4 networks, IPv6 prefixes under /16)",
        }
    }
}

/// Why a remote ban held here ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// Its origin unbanned it.
    Unban,
    /// Its end came.
    Expired,
    /// Lifted by hand here (`unban --origin`, `unban --fleet`).
    Manual,
    /// No longer in its origin's active set when that was read again.
    Resync,
    /// The policy changed on reload (trust, ignore lists, fleet members).
    Policy,
}

impl Ended {
    pub fn as_str(self) -> &'static str {
        match self {
            Ended::Unban => "unban",
            Ended::Expired => "expired",
            Ended::Manual => "manual",
            Ended::Resync => "resync",
            Ended::Policy => "policy",
        }
    }
}

/// Counters of one origin.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OriginStats {
    pub received: u64,
    pub applied: u64,
    pub refused: u64,
    /// When its last event arrived here.
    pub last_event: Option<Timestamp>,
    /// When its last event was written (the stream ID's time).
    pub last_event_written: Option<Timestamp>,
    /// The last stream ID applied.
    pub last_id: Option<StreamId>,
}

#[derive(Debug, Clone, Default)]
struct Origin {
    stats: OriginStats,
    tokens: f64,
    refilled: Option<Timestamp>,
}

/// What applying remote events changed.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Rows to write (new or changed remote bans).
    pub stored: Vec<RemoteBan>,
    /// Rows to delete: (origin, jail, net).
    pub removed: Vec<(String, String, IpNet)>,
    /// Remote bans that ended here, and why (for the RemoteUnbanned
    /// signal): the same rows as `removed`.
    pub ended: Vec<(String, String, IpNet, Ended)>,
    /// Fleet set elements to add or re-assert with this expiry.
    pub enforce: Vec<(IpNet, Option<Timestamp>)>,
    /// Fleet set elements to remove.
    pub lift: Vec<IpNet>,
    /// Newly applied bans, to log with their origin.
    pub applied: Vec<RemoteBan>,
    /// Refused bans (logged, rate-limited by the caller).
    pub refused: Vec<(RemoteBan, Refusal)>,
    /// Positions to store: origin → last stream ID.
    pub positions: Vec<(String, StreamId)>,
}

/// What the policy needs besides the configuration.
pub struct Policy<'a> {
    pub config: &'a FleetConfig,
    /// Never banned: ignore lists, own addresses, fleet members'.
    pub never: &'a AddrList,
}

/// Every remote ban held, and the fleet sets' wanted content.
#[derive(Debug, Default)]
pub struct Remote {
    bans: BTreeMap<(IpNet, String, String), RemoteBan>,
    origins: BTreeMap<String, Origin>,
    /// Elements of the fleet sets (what the firewall should hold).
    effective: HashMap<IpNet, Option<Timestamp>>,
    /// The IPv6 prefixes (under /128) among them: an interval set cannot
    /// hold an address inside a prefix it holds.
    prefixes: std::collections::BTreeSet<IpNet>,
    /// Remote bans lifted by hand, until their end: a resync of their
    /// origin's active set does not bring them back (a new ban event
    /// from the origin does).
    lifted: HashMap<(IpNet, String, String), Option<Timestamp>>,
    /// The bans held that end, by their end (expiry finds them here).
    ends: std::collections::BTreeSet<(Timestamp, IpNet, String, String)>,
}

type Key = (IpNet, String, String);

impl Remote {
    /// Restore from the store (at start): no policy, no rate; the
    /// positions say where each origin's stream was read to.
    pub fn restore(
        &mut self,
        bans: Vec<RemoteBan>,
        positions: impl IntoIterator<Item = (String, StreamId)>,
        quorum: u32,
        now: Timestamp,
    ) {
        let mut nets = Vec::new();
        for b in bans {
            nets.push(b.net);
            self.origin(&b.origin);
            self.insert(b);
        }
        for (o, id) in positions {
            self.origin(&o).stats.last_id = Some(id);
        }
        let mut out = Outcome::default();
        for n in nets {
            self.recompute(n, quorum, now, &mut out);
        }
    }

    fn origin(&mut self, name: &str) -> &mut Origin {
        self.origins.entry(name.to_string()).or_default()
    }

    /// The last stream ID applied from `origin`.
    pub fn last_id(&self, origin: &str) -> Option<StreamId> {
        self.origins.get(origin).and_then(|o| o.stats.last_id)
    }

    /// Counters per origin.
    pub fn stats(&self) -> impl Iterator<Item = (&String, &OriginStats)> {
        self.origins.iter().map(|(k, o)| (k, &o.stats))
    }

    /// Remote bans held (by address, origin, jail).
    pub fn bans(&self) -> impl Iterator<Item = &RemoteBan> {
        self.bans.values()
    }

    /// The fleet sets' wanted elements, unexpired at `now`.
    pub fn effective(
        &self,
        now: Timestamp,
    ) -> impl Iterator<Item = (IpNet, Option<Timestamp>)> + '_ {
        self.effective
            .iter()
            .filter(move |(n, e)| e.is_none_or(|e| e > now) && !self.shadowed(**n))
            .map(|(n, e)| (*n, *e))
    }

    /// Elements in the fleet sets.
    pub fn len(&self) -> usize {
        self.effective.len()
    }

    pub fn is_empty(&self) -> bool {
        self.effective.is_empty()
    }

    /// One event of `origin`'s stream.
    pub fn receive(
        &mut self,
        origin: &str,
        id: StreamId,
        ev: &Event,
        policy: &Policy,
        now: Timestamp,
        out: &mut Outcome,
    ) {
        if !is_after(id, self.last_id(origin)) {
            return; // seen: applied once
        }
        {
            let o = self.origin(origin);
            o.stats.last_id = Some(id);
            o.stats.last_event = Some(now);
            o.stats.last_event_written = Timestamp::from_millisecond(id.ms as i64).ok();
        }
        out.positions.retain(|(o, _)| o != origin);
        out.positions.push((origin.to_string(), id));
        match ev.kind {
            Kind::Ban => {
                // A new decision of the origin: a lift by hand no longer holds.
                self.lifted
                    .remove(&(ev.net, origin.to_string(), ev.jail.clone()));
                let b = self.admit(origin, ev, &id.to_string(), policy, now, out);
                if let Some(b) = b {
                    self.hold(b, policy.config.quorum, now, out);
                }
            }
            Kind::Unban => {
                self.origin(origin).stats.received += 1;
                let key = (ev.net, origin.to_string(), ev.jail.clone());
                self.lifted.remove(&key);
                if self.bans.contains_key(&key) {
                    self.origin(origin).stats.applied += 1;
                    self.end(key, Ended::Unban, policy.config.quorum, now, out);
                }
            }
            Kind::Resync => {}
        }
    }

    /// `origin`'s active set, read whole: it replaces what was held from
    /// that origin; reading continues after `last`.
    pub fn resync(
        &mut self,
        origin: &str,
        set: &[Event],
        last: StreamId,
        policy: &Policy,
        now: Timestamp,
        out: &mut Outcome,
    ) {
        let old: Vec<(IpNet, String, String)> = self
            .bans
            .keys()
            .filter(|(_, o, _)| o == origin)
            .cloned()
            .collect();
        let mut keep = std::collections::HashSet::new();
        for ev in set {
            let key = (ev.net, origin.to_string(), ev.jail.clone());
            if self.lifted.contains_key(&key) {
                continue; // lifted by hand here: not brought back by a resync
            }
            if let Some(held) = self.bans.get(&key) {
                // Already held as it is: not received again.
                let capped = cap(ev.expires_at, policy.config.max_bantime, held.banned_at);
                if held.expires_at == capped {
                    keep.insert(key);
                    continue;
                }
            }
            if let Some(b) = self.admit(origin, ev, "resync", policy, now, out) {
                keep.insert(key);
                self.hold(b, policy.config.quorum, now, out);
            }
        }
        for key in old {
            if !keep.contains(&key) {
                self.end(key, Ended::Resync, policy.config.quorum, now, out);
            }
        }
        let o = self.origin(origin);
        if is_after(last, o.stats.last_id) {
            o.stats.last_id = Some(last);
        }
        let id = o.stats.last_id.unwrap_or(last);
        out.positions.retain(|(o, _)| o != origin);
        out.positions.push((origin.to_string(), id));
    }

    /// The checks of a ban event: counted as received, then applied or
    /// refused; the ban to hold if applied.
    fn admit(
        &mut self,
        origin: &str,
        ev: &Event,
        event_id: &str,
        policy: &Policy,
        now: Timestamp,
        out: &mut Outcome,
    ) -> Option<RemoteBan> {
        let max_rate = f64::from(policy.config.max_rate);
        let trusted = policy.config.trusts(origin);
        let o = self.origin(origin);
        o.stats.received += 1;
        let ban = RemoteBan {
            origin: origin.to_string(),
            jail: ev.jail.clone(),
            net: ev.net,
            banned_at: now,
            expires_at: cap(ev.expires_at, policy.config.max_bantime, now),
            failures: ev.failures,
            reason: ev.reason.clone(),
            event_id: event_id.to_string(),
        };
        let range_ok = match ev.net {
            IpNet::V4(n) => n.prefix_len() == 32,
            IpNet::V6(n) => n.prefix_len() >= 16,
        };
        let refusal = if !trusted {
            Some(Refusal::Untrusted)
        } else if !range_ok {
            Some(Refusal::Range)
        } else if policy.never.overlaps(ev.net) {
            Some(Refusal::Ignored)
        } else if ban.expires_at.is_some_and(|e| e <= now) {
            Some(Refusal::Expired)
        } else {
            // Token bucket: max_rate per second, a minute's worth of burst.
            let burst = max_rate * 60.0;
            let since = o.refilled.map_or(burst, |t| {
                now.duration_since(t).as_secs_f64().max(0.0) * max_rate
            });
            o.tokens = (o.tokens + since).min(burst);
            o.refilled = Some(now);
            if o.tokens >= 1.0 {
                o.tokens -= 1.0;
                None
            } else {
                Some(Refusal::Rate)
            }
        };
        match refusal {
            Some(r) => {
                o.stats.refused += 1;
                out.refused.push((ban, r));
                None
            }
            None => {
                o.stats.applied += 1;
                Some(ban)
            }
        }
    }

    fn hold(&mut self, b: RemoteBan, quorum: u32, now: Timestamp, out: &mut Outcome) {
        let net = b.net;
        out.stored.push(b.clone());
        out.applied.push(b.clone());
        self.insert(b);
        self.recompute(net, quorum, now, out);
    }

    /// Drop remote bans over at `now` (the kernel lifted their elements).
    pub fn expire(&mut self, quorum: u32, now: Timestamp, out: &mut Outcome) {
        let over: Vec<Key> = self
            .ends
            .iter()
            .take_while(|(e, _, _, _)| *e <= now)
            .map(|(_, n, o, j)| (*n, o.clone(), j.clone()))
            .collect();
        for key in over {
            self.end(key, Ended::Expired, quorum, now, out);
        }
        self.lifted.retain(|_, e| e.is_none_or(|e| e > now));
    }

    /// When the next remote ban held ends.
    pub fn next_end(&self) -> Option<Timestamp> {
        self.ends.first().map(|(e, _, _, _)| *e)
    }

    /// Hold a ban (replacing the one of its key).
    fn insert(&mut self, b: RemoteBan) {
        let key = (b.net, b.origin.clone(), b.jail.clone());
        self.remove(&key);
        if let Some(e) = b.expires_at {
            self.ends
                .insert((e, b.net, b.origin.clone(), b.jail.clone()));
        }
        self.bans.insert(key, b);
    }

    /// Stop holding a ban.
    fn remove(&mut self, key: &Key) -> Option<RemoteBan> {
        let b = self.bans.remove(key)?;
        if let Some(e) = b.expires_at {
            self.ends.remove(&(e, key.0, key.1.clone(), key.2.clone()));
        }
        Some(b)
    }

    /// Lift by hand the remote bans held from `origin` (`None`: from every
    /// origin) of addresses in `range` (`None`: every address); how many
    /// ended. They stay lifted until they would have ended, unless their
    /// origin bans them again.
    pub fn lift(
        &mut self,
        origin: Option<&str>,
        range: Option<IpNet>,
        quorum: u32,
        now: Timestamp,
        out: &mut Outcome,
    ) -> u32 {
        let hits: Vec<(IpNet, String, String)> = self
            .bans
            .keys()
            .filter(|(n, o, _)| {
                origin.is_none_or(|w| o == w)
                    && range.is_none_or(|r| n.contains(&r.addr()) || r.contains(n))
            })
            .cloned()
            .collect();
        let n = hits.len() as u32;
        for key in hits {
            let until = self.bans.get(&key).and_then(|b| b.expires_at);
            self.lifted.insert(key.clone(), until);
            self.end(key, Ended::Manual, quorum, now, out);
        }
        n
    }

    /// Drop one remote ban held, and say so.
    fn end(
        &mut self,
        key: (IpNet, String, String),
        why: Ended,
        quorum: u32,
        now: Timestamp,
        out: &mut Outcome,
    ) {
        if self.remove(&key).is_none() {
            return;
        }
        let (net, origin, jail) = key;
        out.removed.push((origin.clone(), jail.clone(), net));
        out.ended.push((origin, jail, net, why));
        self.recompute(net, quorum, now, out);
    }

    /// Re-evaluate every address (quorum or ignore lists changed on reload).
    pub fn reevaluate(&mut self, policy: &Policy, now: Timestamp, out: &mut Outcome) {
        let gone: Vec<(IpNet, String, String)> = self
            .bans
            .keys()
            .filter(|(n, o, _)| !policy.config.trusts(o) || policy.never.overlaps(*n))
            .cloned()
            .collect();
        for key in gone {
            if self.remove(&key).is_some() {
                out.removed.push((key.1.clone(), key.2.clone(), key.0));
                out.ended.push((key.1, key.2, key.0, Ended::Policy));
            }
        }
        let nets: Vec<IpNet> = self
            .bans
            .keys()
            .map(|(n, _, _)| *n)
            .chain(self.effective.keys().copied())
            .collect();
        for n in nets {
            self.recompute(n, policy.config.quorum, now, out);
        }
    }

    /// The fleet element of `net` from the bans held.
    fn recompute(&mut self, net: IpNet, quorum: u32, now: Timestamp, out: &mut Outcome) {
        let live = self
            .bans
            .range((net, String::new(), String::new())..)
            .take_while(|((n, _, _), _)| *n == net)
            .map(|(_, b)| b)
            .filter(|b| b.expires_at.is_none_or(|e| e > now));
        let mut origins: Vec<&str> = Vec::new();
        let mut until: Option<Option<Timestamp>> = None;
        for b in live {
            if !origins.contains(&b.origin.as_str()) {
                origins.push(&b.origin);
            }
            until = Some(match (until, b.expires_at) {
                (None, e) => e,
                (Some(None), _) | (_, None) => None,
                (Some(Some(a)), Some(e)) => Some(a.max(e)),
            });
        }
        let wanted = until.filter(|_| origins.len() as u32 >= quorum.max(1));
        let current = self.effective.get(&net).copied();
        let prefix = matches!(net, IpNet::V6(n) if n.prefix_len() < 128);
        match (current, wanted) {
            (Some(c), Some(w)) if c == w => {}
            (_, Some(w)) => {
                self.effective.insert(net, w);
                if prefix {
                    self.prefixes.insert(net);
                    // What it covers leaves the kernel while it holds.
                    out.lift.extend(self.inside(net));
                }
                out.enforce.push((net, w));
            }
            (Some(_), None) => {
                self.effective.remove(&net);
                out.lift.push(net);
                if prefix {
                    self.prefixes.remove(&net);
                    // What it covered goes back in.
                    for n in self.inside(net) {
                        if let Some(e) = self.effective.get(&n) {
                            out.enforce.push((n, *e));
                        }
                    }
                }
            }
            (None, None) => {}
        }
    }

    /// Whether another element (an IPv6 prefix) covers `net`: then `net`
    /// stays out of the kernel (the interval set refuses overlaps).
    pub fn shadowed(&self, net: IpNet) -> bool {
        !self.prefixes.is_empty() && self.prefixes.iter().any(|p| *p != net && p.contains(&net))
    }

    /// Elements strictly inside `prefix`.
    fn inside(&self, prefix: IpNet) -> Vec<IpNet> {
        self.effective
            .keys()
            .filter(|n| **n != prefix && prefix.contains(*n))
            .copied()
            .collect()
    }
}

/// A remote expiry capped at `max` from `from`.
fn cap(expires: Option<Timestamp>, max: Duration, from: Timestamp) -> Option<Timestamp> {
    let limit = SignedDuration::try_from(max)
        .ok()
        .and_then(|d| from.checked_add(d).ok());
    match (expires, limit) {
        (Some(e), Some(l)) => Some(e.min(l)),
        (None, l) => l,
        (e, None) => e,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> FleetConfig {
        FleetConfig {
            url: "redis://x".into(),
            password_file: None,
            ca_file: None,
            sentinels: None,
            host: "me".into(),
            publish: None,
            accept: true,
            trust: None,
            max_bantime: Duration::from_secs(3600),
            quorum: 1,
            max_rate: 1000,
        }
    }

    fn t(s: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + s).unwrap()
    }

    fn ban(addr: &str, expires: Option<i64>) -> Event {
        Event {
            kind: Kind::Ban,
            jail: "sshd".into(),
            net: addr.parse::<std::net::IpAddr>().unwrap().into(),
            banned_at: t(0),
            expires_at: expires.map(t),
            failures: 5,
            reason: String::new(),
        }
    }

    fn id(n: u64) -> StreamId {
        StreamId { ms: n, seq: 0 }
    }

    #[test]
    fn applied_once_capped_and_lifted() {
        let c = cfg();
        let never = AddrList::new();
        let p = Policy {
            config: &c,
            never: &never,
        };
        let mut r = Remote::default();
        let mut out = Outcome::default();
        // Permanent remotely: capped at max_bantime from arrival.
        r.receive("a", id(1), &ban("192.0.2.1", None), &p, t(0), &mut out);
        r.receive("a", id(1), &ban("192.0.2.1", None), &p, t(0), &mut out);
        assert_eq!(
            out.enforce,
            [("192.0.2.1/32".parse().unwrap(), Some(t(3600)))]
        );
        assert_eq!(out.applied.len(), 1);
        let mut unban = ban("192.0.2.1", None);
        unban.kind = Kind::Unban;
        let mut out = Outcome::default();
        r.receive("a", id(2), &unban, &p, t(1), &mut out);
        assert_eq!(out.lift, ["192.0.2.1/32".parse::<IpNet>().unwrap()]);
        assert_eq!(r.last_id("a"), Some(id(2)));
        assert!(r.is_empty());
    }

    #[test]
    fn refusals() {
        let mut c = cfg();
        c.trust = Some(vec!["a".into()]);
        c.max_rate = 1;
        let mut never = AddrList::new();
        never.push_str("198.51.100.0/24").unwrap();
        let p = Policy {
            config: &c,
            never: &never,
        };
        let mut r = Remote::default();
        let mut out = Outcome::default();
        r.receive("b", id(1), &ban("192.0.2.1", Some(100)), &p, t(0), &mut out);
        r.receive(
            "a",
            id(1),
            &ban("198.51.100.7", Some(100)),
            &p,
            t(0),
            &mut out,
        );
        r.receive("a", id(2), &ban("192.0.2.2", Some(-5)), &p, t(0), &mut out);
        let kinds: Vec<Refusal> = out.refused.iter().map(|(_, r)| *r).collect();
        assert_eq!(
            kinds,
            [Refusal::Untrusted, Refusal::Ignored, Refusal::Expired]
        );
        // Rate: one per second, 60 of burst.
        let mut out = Outcome::default();
        for i in 0..70u64 {
            let a = format!("203.0.113.{}", i + 1);
            r.receive("a", id(10 + i), &ban(&a, Some(100)), &p, t(1), &mut out);
        }
        assert_eq!(out.applied.len(), 60);
        assert!(out.refused.iter().all(|(_, r)| *r == Refusal::Rate));
    }

    #[test]
    fn quorum_needs_distinct_origins() {
        let mut c = cfg();
        c.quorum = 2;
        let never = AddrList::new();
        let p = Policy {
            config: &c,
            never: &never,
        };
        let mut r = Remote::default();
        let mut out = Outcome::default();
        r.receive("a", id(1), &ban("192.0.2.1", Some(100)), &p, t(0), &mut out);
        let mut other = ban("192.0.2.1", Some(200));
        other.jail = "nginx".into();
        r.receive("a", id(2), &other, &p, t(0), &mut out);
        assert!(out.enforce.is_empty(), "one origin, two jails: no quorum");
        r.receive("b", id(1), &ban("192.0.2.1", Some(150)), &p, t(0), &mut out);
        assert_eq!(
            out.enforce,
            [("192.0.2.1/32".parse().unwrap(), Some(t(200)))]
        );
    }

    #[test]
    fn prefixes_shadow_what_they_cover_and_bad_ranges_are_refused() {
        let c = cfg();
        let never = AddrList::new();
        let p = Policy {
            config: &c,
            never: &never,
        };
        let mut r = Remote::default();
        let mut out = Outcome::default();
        let one: IpNet = "2001:db8::5/128".parse().unwrap();
        let pfx: IpNet = "2001:db8::/64".parse().unwrap();
        let mut e = ban("2001:db8::5", Some(100));
        r.receive("a", id(1), &e, &p, t(0), &mut out);
        e.net = pfx;
        r.receive("b", id(1), &e, &p, t(0), &mut out);
        assert_eq!(out.lift, [one], "the address leaves for the prefix");
        let now: Vec<IpNet> = r.effective(t(1)).map(|(n, _)| n).collect();
        assert_eq!(now, [pfx]);
        for (n, bad) in ["192.0.2.0/24", "2001::/8"].iter().enumerate() {
            e.net = bad.parse().unwrap();
            let mut out = Outcome::default();
            r.receive("b", id(9 + n as u64), &e, &p, t(0), &mut out);
            assert_eq!(out.refused[0].1, Refusal::Range, "{bad}");
        }
    }

    #[test]
    fn resync_replaces_an_origins_bans() {
        let c = cfg();
        let never = AddrList::new();
        let p = Policy {
            config: &c,
            never: &never,
        };
        let mut r = Remote::default();
        let mut out = Outcome::default();
        r.receive("a", id(1), &ban("192.0.2.1", Some(100)), &p, t(0), &mut out);
        let mut out = Outcome::default();
        r.resync(
            "a",
            &[ban("192.0.2.2", Some(100))],
            id(5),
            &p,
            t(1),
            &mut out,
        );
        assert_eq!(out.lift, ["192.0.2.1/32".parse::<IpNet>().unwrap()]);
        assert_eq!(out.enforce.len(), 1);
        assert_eq!(r.last_id("a"), Some(id(5)));
        // Read again: nothing changes, nothing is counted twice.
        let mut out = Outcome::default();
        let before = r.stats().next().unwrap().1.received;
        r.resync(
            "a",
            &[ban("192.0.2.2", Some(100))],
            id(5),
            &p,
            t(2),
            &mut out,
        );
        assert!(out.enforce.is_empty() && out.lift.is_empty() && out.applied.is_empty());
        assert_eq!(r.stats().next().unwrap().1.received, before);
    }

    #[test]
    fn lifted_by_hand_per_origin_until_the_origin_bans_again() {
        let c = cfg();
        let never = AddrList::new();
        let p = Policy {
            config: &c,
            never: &never,
        };
        let mut r = Remote::default();
        let mut out = Outcome::default();
        let one: IpNet = "192.0.2.1/32".parse().unwrap();
        r.receive("a", id(1), &ban("192.0.2.1", Some(100)), &p, t(0), &mut out);
        r.receive("b", id(1), &ban("192.0.2.1", Some(50)), &p, t(0), &mut out);
        r.receive("a", id(2), &ban("192.0.2.2", Some(100)), &p, t(0), &mut out);
        assert_eq!(r.next_end(), Some(t(50)));
        // A's bans in 192.0.2.0/31: .1 stays (B bans it), its end is B's.
        let mut out = Outcome::default();
        let n = r.lift(Some("a"), Some(one), 1, t(1), &mut out);
        assert_eq!(n, 1);
        assert_eq!(out.ended, [("a".into(), "sshd".into(), one, Ended::Manual)]);
        assert_eq!(out.enforce, [(one, Some(t(50)))]);
        assert!(out.lift.is_empty());
        // A resync of A does not bring it back; a new ban event does.
        let mut out = Outcome::default();
        let set = [ban("192.0.2.1", Some(100)), ban("192.0.2.2", Some(100))];
        r.resync("a", &set, id(3), &p, t(2), &mut out);
        assert!(out.applied.is_empty(), "{:?}", out.applied);
        assert_eq!(r.bans().filter(|b| b.origin == "a").count(), 1);
        r.receive("a", id(4), &ban("192.0.2.1", Some(200)), &p, t(3), &mut out);
        assert_eq!(out.applied.len(), 1);
        // Every origin, every address.
        let mut out = Outcome::default();
        assert_eq!(r.lift(None, None, 1, t(4), &mut out), 3);
        assert!(r.is_empty() && r.next_end().is_none());
        assert_eq!(out.lift.len(), 2);
    }

    #[test]
    fn expiry_ends_by_the_index_and_says_why() {
        let c = cfg();
        let never = AddrList::new();
        let p = Policy {
            config: &c,
            never: &never,
        };
        let mut r = Remote::default();
        let mut out = Outcome::default();
        r.receive("a", id(1), &ban("192.0.2.1", Some(10)), &p, t(0), &mut out);
        r.receive("a", id(2), &ban("192.0.2.2", Some(20)), &p, t(0), &mut out);
        // Renewed: the old end leaves the index.
        r.receive("a", id(3), &ban("192.0.2.1", Some(30)), &p, t(0), &mut out);
        assert_eq!(r.next_end(), Some(t(20)));
        let mut out = Outcome::default();
        r.expire(1, t(25), &mut out);
        let two: IpNet = "192.0.2.2/32".parse().unwrap();
        assert_eq!(
            out.ended,
            [("a".into(), "sshd".into(), two, Ended::Expired)]
        );
        assert_eq!(r.next_end(), Some(t(30)));
        let mut unban = ban("192.0.2.1", None);
        unban.kind = Kind::Unban;
        let mut out = Outcome::default();
        r.receive("a", id(4), &unban, &p, t(26), &mut out);
        assert_eq!(out.ended[0].3, Ended::Unban);
        assert!(r.next_end().is_none());
    }
}
