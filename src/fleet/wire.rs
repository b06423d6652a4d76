//! The fleet's data in Redis, as plain data: key names, stream entry
//! fields, active-set members and scores, stream IDs. Pure: tested
//! without a server.
//!
//! Per origin host:
//! - stream `jailwarden:bans:<host>`: one entry per decision, fields
//!   `type` (`ban`, `unban`, or `resync`: "read my active set again"),
//!   `addr` (address or prefix), `jail`, `at` and `expires` (Unix
//!   seconds; `expires` 0 = permanent), `failures`, `reason`; the entry's
//!   stream ID is the event ID;
//! - sorted set `jailwarden:active:<host>`: member `addr|jail`, score the
//!   expiry in Unix seconds (`+inf`: permanent);
//! - hash `jailwarden:member:<host>`: `addrs` (this host's own addresses,
//!   comma-separated: peers never ban them), `since`.

use std::cmp::Ordering;
use std::net::IpAddr;
use std::str::FromStr;

use ipnet::IpNet;
use jiff::Timestamp;

use crate::addr::net_text;

/// Key prefix of every fleet key.
pub const PREFIX: &str = "jailwarden";

/// The stream of `host`'s decisions.
pub fn stream_key(host: &str) -> String {
    format!("{PREFIX}:bans:{host}")
}

/// The sorted set of `host`'s bans in force.
pub fn active_key(host: &str) -> String {
    format!("{PREFIX}:active:{host}")
}

/// The hash describing `host` (its addresses).
pub fn member_key(host: &str) -> String {
    format!("{PREFIX}:member:{host}")
}

/// The host a member key names.
pub fn host_of_member_key(key: &str) -> Option<&str> {
    key.strip_prefix(PREFIX)?.strip_prefix(":member:")
}

/// A stream entry ID (`ms-seq`), ordered as Redis orders them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct StreamId {
    pub ms: u64,
    pub seq: u64,
}

impl StreamId {
    /// Before every entry (`0-0`).
    pub const ZERO: StreamId = StreamId { ms: 0, seq: 0 };
}

impl FromStr for StreamId {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        let (ms, seq) = s.split_once('-').unwrap_or((s, "0"));
        Ok(StreamId {
            ms: ms.parse().map_err(|_| ())?,
            seq: seq.parse().map_err(|_| ())?,
        })
    }
}

impl std::fmt::Display for StreamId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.ms, self.seq)
    }
}

/// What an entry says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Ban,
    Unban,
    /// The origin rewrote its active set (after a reconnect): read it again.
    Resync,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Ban => "ban",
            Kind::Unban => "unban",
            Kind::Resync => "resync",
        }
    }
}

/// One decision of one host, as published and as received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub kind: Kind,
    pub jail: String,
    pub net: IpNet,
    pub banned_at: Timestamp,
    /// `None`: permanent.
    pub expires_at: Option<Timestamp>,
    pub failures: u32,
    pub reason: String,
}

impl Event {
    /// The stream entry's fields.
    pub fn fields(&self) -> Vec<(&'static str, String)> {
        vec![
            ("type", self.kind.as_str().to_string()),
            ("addr", net_text(self.net)),
            ("jail", self.jail.clone()),
            ("at", self.banned_at.as_second().to_string()),
            (
                "expires",
                self.expires_at.map_or(0, |e| e.as_second()).to_string(),
            ),
            ("failures", self.failures.to_string()),
            ("reason", self.reason.clone()),
        ]
    }

    /// The active set's member for this ban.
    pub fn member(&self) -> String {
        member(self.net, &self.jail)
    }

    /// The active set's score for this ban.
    pub fn score(&self) -> String {
        self.expires_at
            .map_or("+inf".to_string(), |e| e.as_second().to_string())
    }

    /// Read an entry's fields; `None` for anything malformed (a peer's
    /// data is not trusted: bounded lengths, valid names and addresses).
    pub fn parse(field: impl Fn(&str) -> Option<String>) -> Option<Event> {
        let kind = match field("type")?.as_str() {
            "ban" => Kind::Ban,
            "unban" => Kind::Unban,
            "resync" => Kind::Resync,
            _ => return None,
        };
        if kind == Kind::Resync {
            return Some(Event {
                kind,
                jail: String::new(),
                net: IpNet::from(IpAddr::from([0, 0, 0, 0])),
                banned_at: Timestamp::UNIX_EPOCH,
                expires_at: None,
                failures: 0,
                reason: String::new(),
            });
        }
        let jail = field("jail")?;
        if !valid_jail(&jail) {
            return None;
        }
        let net = parse_net(&field("addr")?)?;
        let secs = |name: &str| -> Option<i64> { field(name)?.parse::<i64>().ok() };
        let banned_at = Timestamp::from_second(secs("at").unwrap_or(0)).ok()?;
        let expires_at = match secs("expires") {
            Some(0) | None if kind == Kind::Unban => None,
            Some(0) => None,
            Some(e) => Some(Timestamp::from_second(e).ok()?),
            None => return None,
        };
        let failures = field("failures").and_then(|f| f.parse().ok()).unwrap_or(0);
        let mut reason = field("reason").unwrap_or_default();
        reason.truncate(64);
        Some(Event {
            kind,
            jail,
            net,
            banned_at,
            expires_at,
            failures,
            reason,
        })
    }
}

/// A jail name as jails are named (`[A-Za-z0-9._-]{1,64}`).
pub fn valid_jail(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
}

/// An address or a prefix, truncated to its network.
pub fn parse_net(s: &str) -> Option<IpNet> {
    if s.len() > 64 {
        return None;
    }
    match s.parse::<IpNet>() {
        Ok(n) => Some(n.trunc()),
        Err(_) => s.parse::<IpAddr>().ok().map(IpNet::from),
    }
}

/// An active-set member.
pub fn member(net: IpNet, jail: &str) -> String {
    format!("{}|{jail}", net_text(net))
}

/// A ban read from an active set: member and score.
pub fn parse_member(member: &str, score: f64) -> Option<Event> {
    let (addr, jail) = member.split_once('|')?;
    if !valid_jail(jail) {
        return None;
    }
    let net = parse_net(addr)?;
    let expires_at = if score.is_infinite() && score > 0.0 {
        None
    } else if score.is_finite() && score > 0.0 && score < 1e12 {
        Some(Timestamp::from_second(score as i64).ok()?)
    } else {
        return None;
    };
    Some(Event {
        kind: Kind::Ban,
        jail: jail.to_string(),
        net,
        banned_at: Timestamp::UNIX_EPOCH,
        expires_at,
        failures: 0,
        reason: "resync".to_string(),
    })
}

/// Compare for "strictly after" (idempotence by ID).
pub fn is_after(id: StreamId, last: Option<StreamId>) -> bool {
    last.is_none_or(|l| id.cmp(&l) == Ordering::Greater)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_round_trip_through_fields() {
        let e = Event {
            kind: Kind::Ban,
            jail: "sshd".into(),
            net: "2001:db8::/64".parse().unwrap(),
            banned_at: Timestamp::from_second(1_700_000_000).unwrap(),
            expires_at: Some(Timestamp::from_second(1_700_000_600).unwrap()),
            failures: 5,
            reason: "failures".into(),
        };
        let f = e.fields();
        let got = Event::parse(|k| f.iter().find(|(n, _)| *n == k).map(|(_, v)| v.clone()));
        assert_eq!(got, Some(e.clone()));
        assert_eq!(e.member(), "2001:db8::/64|sshd");
        let m = parse_member(&e.member(), 1_700_000_600.0).unwrap();
        assert_eq!((m.net, m.expires_at), (e.net, e.expires_at));
        assert_eq!(
            parse_member("192.0.2.1|sshd", f64::INFINITY)
                .unwrap()
                .expires_at,
            None
        );
    }

    #[test]
    fn hostile_entries_are_refused() {
        let ok = |k: &str| -> Option<String> {
            Some(
                match k {
                    "type" => "ban",
                    "addr" => "192.0.2.1",
                    "jail" => "sshd",
                    "expires" => "1700000600",
                    _ => "0",
                }
                .to_string(),
            )
        };
        assert!(Event::parse(ok).is_some());
        for (key, bad) in [
            ("type", "nuke"),
            ("addr", "not-an-address"),
            ("jail", "a b"),
            ("jail", ""),
            ("expires", "soon"),
        ] {
            let f = |k: &str| {
                if k == key {
                    Some(bad.to_string())
                } else {
                    ok(k)
                }
            };
            assert_eq!(Event::parse(f), None, "{key}={bad}");
        }
        assert!(parse_member("192.0.2.1", 1.0).is_none());
        assert!(parse_member("192.0.2.1|x", f64::NAN).is_none());
    }

    #[test]
    fn stream_ids_order_as_redis_does() {
        let a: StreamId = "1700000000000-5".parse().unwrap();
        let b: StreamId = "1700000000000-10".parse().unwrap();
        assert!(b > a && a > StreamId::ZERO);
        assert_eq!(a.to_string(), "1700000000000-5");
        assert!(is_after(b, Some(a)) && !is_after(a, Some(a)) && is_after(a, None));
        assert!("x-1".parse::<StreamId>().is_err());
        assert_eq!(host_of_member_key("jailwarden:member:web1"), Some("web1"));
    }
}
