//! The bans in force, indexed compactly: a million active bans must fit in
//! well under 200 MB, so an entry is a jail number, the network and three
//! integers (about 100 bytes with the expiry and listing indexes), not a
//! [`Ban`] with its own copy of the jail's name. [`Ban`]s are made on
//! demand, in listing order (jail name, then ban time, then network) and a
//! page at a time if asked: listing never sorts, nor copies more than it
//! answers.

use std::collections::{BTreeSet, HashMap};
use std::ops::Bound;

use ipnet::IpNet;
use jiff::Timestamp;

use crate::ban::Ban;

/// A jail's number in the index: assigned on first use, never reused, so
/// numbers stay valid across reloads.
type JailNo = u16;

#[derive(Debug, Clone, Copy)]
struct Entry {
    banned_at: i64,
    /// Microseconds; `i64::MAX` for permanent bans.
    expires_at: i64,
    failures: u32,
}

const PERMANENT: i64 = i64::MAX;

/// Bans in force by (jail, network), with their expiries in order.
#[derive(Debug, Default)]
pub struct BanIndex {
    names: Vec<String>,
    numbers: HashMap<String, JailNo>,
    bans: HashMap<(JailNo, IpNet), Entry>,
    expiries: BTreeSet<(i64, JailNo, IpNet)>,
    /// Listing order within each jail: (banned_at, net).
    order: BTreeSet<(JailNo, i64, IpNet)>,
    per_jail: HashMap<JailNo, u32>,
}

fn usec(t: Timestamp) -> i64 {
    t.as_microsecond()
}

fn time(u: i64) -> Timestamp {
    Timestamp::from_microsecond(u).unwrap_or(Timestamp::MAX)
}

impl BanIndex {
    /// An empty index.
    pub fn new() -> Self {
        Self::default()
    }

    fn number(&mut self, jail: &str) -> JailNo {
        if let Some(n) = self.numbers.get(jail) {
            return *n;
        }
        let n = JailNo::try_from(self.names.len()).unwrap_or(JailNo::MAX);
        self.names.push(jail.to_string());
        self.numbers.insert(jail.to_string(), n);
        n
    }

    fn ban(&self, no: JailNo, net: IpNet, e: &Entry) -> Ban {
        Ban {
            jail: self.names.get(usize::from(no)).cloned().unwrap_or_default(),
            net,
            banned_at: time(e.banned_at),
            expires_at: (e.expires_at != PERMANENT).then(|| time(e.expires_at)),
            failures: e.failures,
        }
    }

    /// Add or replace a ban; returns the one it replaced.
    pub fn insert(&mut self, b: &Ban) -> Option<Ban> {
        let old = self.remove(&b.jail, b.net);
        let no = self.number(&b.jail);
        let e = Entry {
            banned_at: usec(b.banned_at),
            expires_at: b.expires_at.map_or(PERMANENT, usec),
            failures: b.failures,
        };
        if e.expires_at != PERMANENT {
            self.expiries.insert((e.expires_at, no, b.net));
        }
        self.order.insert((no, e.banned_at, b.net));
        self.bans.insert((no, b.net), e);
        *self.per_jail.entry(no).or_default() += 1;
        old
    }

    /// Remove a ban; returns it.
    pub fn remove(&mut self, jail: &str, net: IpNet) -> Option<Ban> {
        let no = *self.numbers.get(jail)?;
        let e = self.bans.remove(&(no, net))?;
        if e.expires_at != PERMANENT {
            self.expiries.remove(&(e.expires_at, no, net));
        }
        self.order.remove(&(no, e.banned_at, net));
        if let Some(c) = self.per_jail.get_mut(&no) {
            *c = c.saturating_sub(1);
        }
        Some(self.ban(no, net, &e))
    }

    /// Is `net` banned in `jail`?
    pub fn contains(&self, jail: &str, net: IpNet) -> bool {
        self.numbers
            .get(jail)
            .is_some_and(|no| self.bans.contains_key(&(*no, net)))
    }

    /// Bans in force.
    pub fn len(&self) -> usize {
        self.bans.len()
    }

    /// None in force?
    pub fn is_empty(&self) -> bool {
        self.bans.is_empty()
    }

    /// Bans in force in one jail.
    pub fn count(&self, jail: &str) -> u32 {
        self.numbers
            .get(jail)
            .and_then(|no| self.per_jail.get(no))
            .copied()
            .unwrap_or(0)
    }

    /// When the next ban ends.
    pub fn next_expiry(&self) -> Option<Timestamp> {
        self.expiries.first().map(|(t, _, _)| time(*t))
    }

    /// The first ban ending at or before `now`, if any: `(jail, net)`.
    pub fn first_expired(&self, now: Timestamp) -> Option<(String, IpNet)> {
        let (t, no, net) = self.expiries.first()?;
        (*t <= usec(now)).then(|| (self.names[usize::from(*no)].clone(), *net))
    }

    /// Every ban (made on demand), optionally of one jail only, in no
    /// particular order.
    pub fn bans<'a>(&'a self, jail: Option<&str>) -> impl Iterator<Item = Ban> + 'a {
        let want = jail.map(|j| self.numbers.get(j).copied());
        self.bans
            .iter()
            .filter(move |((no, _), _)| match want {
                None => true,
                Some(w) => w == Some(*no),
            })
            .map(|((no, net), e)| self.ban(*no, *net, e))
    }

    /// Bans in listing order (jail name, ban time, network), of one jail
    /// or all, starting after `after` (a [`Ban`] key: jail, banned_at µs,
    /// net), made on demand: take as many as a page holds.
    pub fn listed<'a>(
        &'a self,
        jail: Option<&str>,
        after: Option<(&str, i64, IpNet)>,
    ) -> impl Iterator<Item = Ban> + 'a {
        let mut jails: Vec<(&str, JailNo)> = self
            .numbers
            .iter()
            .filter(|(name, _)| jail.is_none_or(|j| j == name.as_str()))
            .filter(|(name, _)| after.is_none_or(|(a, _, _)| name.as_str() >= a))
            .map(|(name, no)| (name.as_str(), *no))
            .collect();
        jails.sort_unstable();
        let after = after.map(|(j, at, net)| (j.to_string(), at, net));
        jails.into_iter().flat_map(move |(name, no)| {
            let start = match &after {
                Some((j, at, net)) if j == name => Bound::Excluded((no, *at, *net)),
                _ => Bound::Included((no, i64::MIN, IpNet::V4(Default::default()))),
            };
            self.order
                .range((start, Bound::Unbounded))
                .take_while(move |(n, _, _)| *n == no)
                .filter_map(move |(n, _, net)| {
                    self.bans.get(&(*n, *net)).map(|e| self.ban(*n, *net, e))
                })
        })
    }

    /// `(jail, net)` of the bans matching `keep`.
    pub fn keys(&self, mut keep: impl FnMut(&str, IpNet) -> bool) -> Vec<(String, IpNet)> {
        self.bans
            .keys()
            .filter(|(no, net)| keep(&self.names[usize::from(*no)], *net))
            .map(|(no, net)| (self.names[usize::from(*no)].clone(), *net))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ban(jail: &str, net: &str, until: Option<i64>) -> Ban {
        Ban {
            jail: jail.into(),
            net: net.parse().unwrap(),
            banned_at: Timestamp::from_second(1_700_000_000).unwrap(),
            expires_at: until.map(|s| Timestamp::from_second(1_700_000_000 + s).unwrap()),
            failures: 3,
        }
    }

    #[test]
    fn insert_remove_and_expire_in_order() {
        let mut x = BanIndex::new();
        assert!(x.insert(&ban("sshd", "192.0.2.1/32", Some(20))).is_none());
        x.insert(&ban("sshd", "192.0.2.2/32", Some(10)));
        x.insert(&ban("web", "192.0.2.1/32", None));
        assert_eq!((x.len(), x.count("sshd"), x.count("web")), (3, 2, 1));
        assert!(x.contains("web", "192.0.2.1/32".parse().unwrap()));
        assert_eq!(x.next_expiry(), Timestamp::from_second(1_700_000_010).ok());
        let now = Timestamp::from_second(1_700_000_015).unwrap();
        let (j, n) = x.first_expired(now).unwrap();
        assert_eq!(
            (j.as_str(), n.to_string().as_str()),
            ("sshd", "192.0.2.2/32")
        );
        let b = x.remove(&j, n).unwrap();
        assert_eq!(b, ban("sshd", "192.0.2.2/32", Some(10)));
        assert!(x.first_expired(now).is_none());
        // Replacing keeps one entry and one expiry.
        let old = x.insert(&ban("sshd", "192.0.2.1/32", Some(99))).unwrap();
        assert_eq!(old.expires_at, Timestamp::from_second(1_700_000_020).ok());
        assert_eq!(x.len(), 2);
        assert_eq!(x.expiries.len(), 1);
        assert_eq!(
            x.bans(Some("web")).collect::<Vec<_>>(),
            [ban("web", "192.0.2.1/32", None)]
        );
        assert_eq!(x.bans(Some("nope")).count(), 0);
    }

    #[test]
    fn listing_is_ordered_and_pages_resume_after_a_key() {
        let mut x = BanIndex::new();
        let at = |b: &Ban| b.banned_at.as_microsecond();
        for (jail, net, t) in [
            ("web", "192.0.2.1/32", 5),
            ("sshd", "192.0.2.9/32", 7),
            ("sshd", "192.0.2.3/32", 7),
            ("sshd", "2001:db8::/64", 1),
            ("web", "192.0.2.2/32", 2),
        ] {
            let mut b = ban(jail, net, None);
            b.banned_at = Timestamp::from_second(1_700_000_000 + t).unwrap();
            x.insert(&b);
        }
        let all: Vec<Ban> = x.listed(None, None).collect();
        let keys: Vec<String> = all
            .iter()
            .map(|b| format!("{} {}", b.jail, b.net))
            .collect();
        assert_eq!(
            keys,
            [
                "sshd 2001:db8::/64",
                "sshd 192.0.2.3/32",
                "sshd 192.0.2.9/32",
                "web 192.0.2.2/32",
                "web 192.0.2.1/32"
            ]
        );
        // The same as sorting what bans() gives, as ListBans did.
        let mut sorted: Vec<Ban> = x.bans(None).collect();
        sorted.sort_by(|a, b| (&a.jail, a.banned_at, a.net).cmp(&(&b.jail, b.banned_at, b.net)));
        assert_eq!(sorted, all);
        // Resume after each ban in turn: the rest, in order.
        for (i, b) in all.iter().enumerate() {
            let rest: Vec<Ban> = x
                .listed(None, Some((b.jail.as_str(), at(b), b.net)))
                .collect();
            assert_eq!(rest, all[i + 1..], "after {i}");
        }
        let web: Vec<Ban> = x.listed(Some("web"), None).collect();
        assert_eq!(web, all[3..]);
        // After a key that is gone (unbanned meanwhile): from where it was.
        let gone = all[1].clone();
        x.remove(&gone.jail, gone.net);
        let rest: Vec<Ban> = x
            .listed(None, Some((gone.jail.as_str(), at(&gone), gone.net)))
            .collect();
        assert_eq!(rest, all[2..]);
        assert_eq!(x.order.len(), 4);
        assert_eq!(x.listed(Some("nope"), None).count(), 0);
    }
}
