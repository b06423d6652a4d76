//! Addresses as the rest of jailwarden sees them: what a filter's `<HOST>`
//! captured, normalized, and the address lists of `ignoreip`.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::{Arc, OnceLock};

use ipnet::IpNet;

/// What a `<HOST>` capture denotes once normalized.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Host {
    /// An IPv4 or IPv6 address (IPv4-mapped IPv6 is stored as IPv4).
    Addr(IpAddr),
    /// A DNS name; banning it needs resolution, which `usedns` governs.
    Name(String),
}

impl Host {
    /// The address, if this is one.
    pub fn addr(&self) -> Option<IpAddr> {
        match self {
            Host::Addr(a) => Some(*a),
            Host::Name(_) => None,
        }
    }
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Host::Addr(a) => a.fmt(f),
            Host::Name(n) => f.write_str(n),
        }
    }
}

/// Normalize captured host text: strip `[...]`, turn `::ffff:a.b.c.d` into
/// the IPv4 address, accept dotted quads written with leading zeros as
/// decimal (never octal, unlike inet_aton: `192.030.0.6` is 192.30.0.6),
/// and keep anything else that looks like a DNS name as a name.
/// Returns `None` for text that is neither.
pub fn parse_host(text: &str) -> Option<Host> {
    let t = text.trim();
    let t = t
        .strip_prefix('[')
        .and_then(|s| s.strip_suffix(']'))
        .unwrap_or(t);
    if t.is_empty() {
        return None;
    }
    if let Some(a) = parse_addr(t) {
        return Some(Host::Addr(a));
    }
    is_dns_name(t).then(|| Host::Name(t.to_ascii_lowercase()))
}

/// Parse an address only (what `<ADDR>` captures), normalized as
/// [`parse_host`] does.
pub fn parse_addr(text: &str) -> Option<IpAddr> {
    let t = text
        .strip_prefix('[')
        .and_then(|s| s.strip_suffix(']'))
        .unwrap_or(text);
    if let Ok(v6) = t.parse::<Ipv6Addr>() {
        return Some(canonical(IpAddr::V6(v6)));
    }
    if let Ok(v4) = t.parse::<Ipv4Addr>() {
        return Some(IpAddr::V4(v4));
    }
    lenient_ipv4(t).map(IpAddr::V4)
}

/// Most X-Forwarded-For elements kept from one line: the nearest ones.
/// A client may send any number; only a walk through trusted proxies
/// needs them, and one that runs past this many cannot end in a client.
pub const MAX_FORWARDED: usize = 32;

/// The elements of an X-Forwarded-For list as a service logged it
/// (`a, b, c`; an element may be `[v6]`, `[v6]:port` or `v4:port`), left
/// to right, at most the last [`MAX_FORWARDED`]; an element that is no
/// address (`unknown`, an obfuscated name, garbage the client sent) is
/// `None`. The list is cut at the left if longer: a leading `None` then
/// stands for what was dropped.
pub fn parse_forwarded(text: &[u8]) -> Vec<Option<IpAddr>> {
    let text = String::from_utf8_lossy(text);
    let elements: Vec<&str> = text
        .split(',')
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .collect();
    let skip = elements.len().saturating_sub(MAX_FORWARDED);
    let mut out: Vec<Option<IpAddr>> = Vec::with_capacity(elements.len() - skip + 1);
    if skip > 0 {
        out.push(None);
    }
    out.extend(elements[skip..].iter().map(|e| forwarded_element(e)));
    out
}

fn forwarded_element(e: &str) -> Option<IpAddr> {
    if let Some(rest) = e.strip_prefix('[') {
        let (addr, after) = rest.split_once(']')?;
        if !(after.is_empty() || after.strip_prefix(':').is_some_and(is_port)) {
            return None;
        }
        return parse_addr(addr);
    }
    if let Some(a) = parse_addr(e) {
        return Some(a);
    }
    // "192.0.2.7:5555" (a single colon: never an IPv6 address)
    let (addr, port) = e.split_once(':')?;
    (!port.contains(':') && is_port(port))
        .then(|| addr.parse::<Ipv4Addr>().ok().map(IpAddr::V4))
        .flatten()
}

fn is_port(p: &str) -> bool {
    p.bytes().all(|b| b.is_ascii_digit()) && p.parse::<u16>().is_ok()
}

/// The client behind trusted proxies. `peer` is the hop the service saw
/// (or the nearest element a proxy appended), `forwarded` the elements
/// before it: walking from `peer` to the left, the first address that is
/// not in `trusted` is the client. Each trusted proxy appended the address
/// it saw connect, so everything right of the client is proxies' record
/// and everything left of it the client's own say, never believed.
/// `None` when every hop is trusted (a proxy's own request: never banned)
/// or the walk meets an element that is no address first (no one can
/// tell who sent the request).
pub fn client_behind(
    peer: &Host,
    forwarded: &[Option<IpAddr>],
    trusted: &AddrList,
) -> Option<Host> {
    match peer {
        Host::Addr(a) if trusted.contains(*a) => {}
        other => return Some(other.clone()),
    }
    for hop in forwarded.iter().rev() {
        match hop {
            Some(a) if trusted.contains(*a) => continue,
            Some(a) => return Some(Host::Addr(*a)),
            None => return None,
        }
    }
    None
}

/// IPv4-mapped IPv6 addresses count as the IPv4 address.
pub fn canonical(a: IpAddr) -> IpAddr {
    match a {
        IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map(IpAddr::V4)
            .unwrap_or(IpAddr::V6(v6)),
        v4 => v4,
    }
}

/// Dotted quad with decimal leading zeros (`192.030.000.006`).
fn lenient_ipv4(t: &str) -> Option<Ipv4Addr> {
    let mut octets = [0u8; 4];
    let mut n = 0;
    for part in t.split('.') {
        if n == 4 || part.is_empty() || part.len() > 3 || !part.bytes().all(|b| b.is_ascii_digit())
        {
            return None;
        }
        octets[n] = part.parse().ok()?;
        n += 1;
    }
    (n == 4).then(|| Ipv4Addr::from(octets))
}

/// A plausible DNS name: labels of letters, digits, `-` and `_`, separated
/// by dots, at least one letter somewhere (so `1.2.3` is not a name).
fn is_dns_name(t: &str) -> bool {
    t.len() <= 253
        && t.bytes().any(|b| b.is_ascii_alphabetic())
        && t.trim_end_matches('.').split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

/// A list of addresses and networks (`ignoreip`).
///
/// Lookups go through the ranges the entries cover, sorted and merged, so
/// they cost a binary search whatever the length (a million entries load in
/// well under a second); the ranges are built on the first lookup after a
/// change, and clones share them. Only membership is asked ("is this
/// address ignored?"), so merged intervals answer it exactly; a prefix trie
/// (longest match, which entry matched) would carry more than is needed.
#[derive(Debug, Clone, Default)]
pub struct AddrList {
    nets: Vec<IpNet>,
    ranges: OnceLock<Arc<Ranges>>,
}

/// Inclusive address ranges, sorted, disjoint and not adjacent.
#[derive(Debug, Default)]
struct Ranges {
    v4: Vec<(u32, u32)>,
    v6: Vec<(u128, u128)>,
}

impl Ranges {
    fn of(nets: &[IpNet]) -> Ranges {
        let mut v4 = Vec::new();
        let mut v6 = Vec::new();
        for n in nets {
            match n {
                IpNet::V4(n) => v4.push((u32::from(n.network()), u32::from(n.broadcast()))),
                IpNet::V6(n) => v6.push((u128::from(n.network()), u128::from(n.broadcast()))),
            }
        }
        Ranges {
            v4: merged(v4),
            v6: merged(v6),
        }
    }
}

/// Sort ranges and join those that overlap or touch.
fn merged<T: Copy + Ord + num_like::Successor>(mut r: Vec<(T, T)>) -> Vec<(T, T)> {
    r.sort_unstable();
    let mut out: Vec<(T, T)> = Vec::with_capacity(r.len());
    for (start, end) in r {
        match out.last_mut() {
            Some(last) if last.1.successor().is_none_or(|next| start <= next) => {
                last.1 = last.1.max(end);
            }
            _ => out.push((start, end)),
        }
    }
    out.shrink_to_fit();
    out
}

/// Is `x` in one of the sorted, disjoint `ranges`?
fn covered<T: Copy + Ord>(ranges: &[(T, T)], x: T) -> bool {
    let after = ranges.partition_point(|r| r.0 <= x);
    after > 0 && ranges[after - 1].1 >= x
}

mod num_like {
    /// The next integer, `None` at the top.
    pub trait Successor: Sized {
        fn successor(self) -> Option<Self>;
    }
    impl Successor for u32 {
        fn successor(self) -> Option<u32> {
            self.checked_add(1)
        }
    }
    impl Successor for u128 {
        fn successor(self) -> Option<u128> {
            self.checked_add(1)
        }
    }
}

impl PartialEq for AddrList {
    fn eq(&self, other: &Self) -> bool {
        self.nets == other.nets
    }
}

impl Eq for AddrList {}

/// Why an `ignoreip` entry was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not an IP address or CIDR network (e.g. 192.0.2.0/24, 2001:db8::/32)")]
pub struct BadNet(pub String);

impl AddrList {
    /// An empty list.
    pub fn new() -> Self {
        Self::default()
    }

    /// Parse an address (`192.0.2.7`) or a network (`192.0.2.0/24`,
    /// `2001:db8::/32`) and add it.
    pub fn push_str(&mut self, text: &str) -> Result<(), BadNet> {
        let t = text.trim();
        let net = if t.contains('/') {
            let net: IpNet = t.parse().map_err(|_| BadNet(text.to_string()))?;
            match net {
                // ::ffff:0:0/96-style entries are written for mapped IPv4.
                IpNet::V6(n) if n.prefix_len() >= 96 && n.addr().to_ipv4_mapped().is_some() => {
                    let v4 = n.addr().to_ipv4_mapped().map(IpAddr::V4);
                    match v4 {
                        Some(a) => IpNet::new(a, n.prefix_len() - 96)
                            .map_err(|_| BadNet(text.to_string()))?,
                        None => net,
                    }
                }
                n => n.trunc(),
            }
        } else {
            IpNet::from(parse_addr(t).ok_or_else(|| BadNet(text.to_string()))?)
        };
        self.push(net);
        Ok(())
    }

    /// Add a network (in constant time: the lookup ranges are rebuilt on
    /// the next lookup).
    pub fn push(&mut self, net: IpNet) {
        self.nets.push(net);
        self.ranges = OnceLock::new();
    }

    fn ranges(&self) -> &Ranges {
        self.ranges.get_or_init(|| Arc::new(Ranges::of(&self.nets)))
    }

    /// Does any entry contain this address?
    pub fn contains(&self, addr: IpAddr) -> bool {
        match canonical(addr) {
            IpAddr::V4(a) => covered(&self.ranges().v4, u32::from(a)),
            IpAddr::V6(a) => covered(&self.ranges().v6, u128::from(a)),
        }
    }

    /// Does any entry lie inside `net` or contain it (a prefix ban that
    /// would cover a listed address)? Linear in the entries.
    pub fn overlaps(&self, net: IpNet) -> bool {
        self.contains(net.addr())
            || self
                .nets
                .iter()
                .any(|n| net.contains(&n.addr()) || n.contains(&net.addr()))
    }

    /// The entries, as added (an entry given twice is listed twice).
    pub fn nets(&self) -> &[IpNet] {
        &self.nets
    }

    /// True when nothing is listed.
    pub fn is_empty(&self) -> bool {
        self.nets.is_empty()
    }
}

/// The network a ban covers: the address itself, or for IPv6 with a
/// prefix length below 128, the whole prefix (attackers hop within a /64).
pub fn ban_net(addr: IpAddr, v6_prefix: u8) -> IpNet {
    match canonical(addr) {
        IpAddr::V6(v6) if v6_prefix < 128 => {
            IpNet::new(IpAddr::V6(v6), v6_prefix).map_or(IpNet::from(IpAddr::V6(v6)), |n| n.trunc())
        }
        a => IpNet::from(a),
    }
}

/// How a ban's target is shown: a plain address for single-address nets,
/// else `addr/len` (logs, events, actions, the control surfaces, the fleet).
pub fn net_text(net: IpNet) -> String {
    if net.prefix_len() == net.max_prefix_len() {
        net.addr().to_string()
    } else {
        net.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(t: &str) -> Option<IpAddr> {
        Some(t.parse().unwrap())
    }

    fn list(nets: &[&str]) -> AddrList {
        let mut l = AddrList::new();
        for n in nets {
            l.push_str(n).unwrap();
        }
        l
    }

    #[test]
    fn forwarded_lists_parse_every_element_form() {
        assert_eq!(
            parse_forwarded(b"192.0.2.1, 2001:db8::1,[2001:db8::2]:443 , 198.51.100.7:8080, unknown, ::ffff:192.0.2.9"),
            [
                ip("192.0.2.1"),
                ip("2001:db8::1"),
                ip("2001:db8::2"),
                ip("198.51.100.7"),
                None,
                ip("192.0.2.9"),
            ]
        );
        assert_eq!(parse_forwarded(b""), Vec::<Option<IpAddr>>::new());
        assert_eq!(
            parse_forwarded(b"[::1]x, 1.2.3.4:99999, a:b:c:1"),
            [None, None, None]
        );
        // A flood of elements keeps the nearest ones, and says it cut.
        let many = vec!["192.0.2.1"; 1000].join(", ");
        let parsed = parse_forwarded(many.as_bytes());
        assert_eq!(parsed.len(), MAX_FORWARDED + 1);
        assert_eq!(parsed[0], None);
        assert_eq!(parsed[1], ip("192.0.2.1"));
    }

    #[test]
    fn the_client_is_the_rightmost_address_that_is_no_trusted_proxy() {
        let trusted = list(&["10.0.0.0/8", "2001:db8:1::/48"]);
        let addr = |t: &str| Host::Addr(t.parse().unwrap());
        // client-supplied 192.0.2.9, real client 203.0.113.5, two proxies
        let fwd = [ip("192.0.2.9"), ip("203.0.113.5"), ip("10.1.1.1")];
        assert_eq!(
            client_behind(&addr("10.0.0.2"), &fwd, &trusted),
            Some(addr("203.0.113.5"))
        );
        // Without trusted proxies the hop the service saw is the client.
        assert_eq!(
            client_behind(&addr("10.0.0.2"), &fwd, &AddrList::new()),
            Some(addr("10.0.0.2"))
        );
        // An untrusted peer is the client, whatever its list says.
        assert_eq!(
            client_behind(&addr("198.51.100.1"), &fwd, &trusted),
            Some(addr("198.51.100.1"))
        );
        // Every hop trusted: no one to blame (never the proxy).
        assert_eq!(
            client_behind(&addr("10.0.0.2"), &[ip("2001:db8:1::5")], &trusted),
            None
        );
        assert_eq!(client_behind(&addr("10.0.0.2"), &[], &trusted), None);
        // An element that is no address, before any client: no one.
        assert_eq!(
            client_behind(&addr("10.0.0.2"), &[ip("203.0.113.5"), None], &trusted),
            None
        );
        // ... but one left of the client does not matter.
        assert_eq!(
            client_behind(&addr("10.0.0.2"), &[None, ip("203.0.113.5")], &trusted),
            Some(addr("203.0.113.5"))
        );
        // A name (usedns) is never a trusted proxy.
        assert_eq!(
            client_behind(&Host::Name("h.example".into()), &fwd, &trusted),
            Some(Host::Name("h.example".into()))
        );
    }

    fn host(t: &str) -> Option<String> {
        parse_host(t).map(|h| h.to_string())
    }

    #[test]
    fn normalizes_hosts() {
        assert_eq!(host("192.0.2.7").as_deref(), Some("192.0.2.7"));
        assert_eq!(host("::ffff:192.0.2.7").as_deref(), Some("192.0.2.7"));
        assert_eq!(host("[2001:db8::1]").as_deref(), Some("2001:db8::1"));
        assert_eq!(host("2001:DB8:0::1").as_deref(), Some("2001:db8::1"));
        assert_eq!(host("192.030.0.6").as_deref(), Some("192.30.0.6"));
        assert_eq!(host("Example.COM").as_deref(), Some("example.com"));
        assert_eq!(host("1.2.3"), None);
        assert_eq!(host("256.1.1.1"), None);
        assert_eq!(host("a b"), None);
        assert_eq!(host(""), None);
        assert_eq!(host("[]"), None);
    }

    #[test]
    fn addr_lists_match_addresses_and_networks() {
        let mut l = AddrList::new();
        for e in [
            "127.0.0.0/8",
            "::1",
            "2001:db8::/32",
            "192.0.2.7",
            "::ffff:10.0.0.0/104",
        ] {
            l.push_str(e).unwrap();
        }
        assert!(l.contains("127.1.2.3".parse().unwrap()));
        assert!(l.contains("::1".parse().unwrap()));
        assert!(l.contains("2001:db8:ffff::9".parse().unwrap()));
        assert!(l.contains("::ffff:192.0.2.7".parse().unwrap()));
        assert!(l.contains("10.9.9.9".parse().unwrap()));
        assert!(!l.contains("192.0.2.8".parse().unwrap()));
        assert!(!l.contains("2001:db9::1".parse().unwrap()));
        assert!(l.push_str("192.0.2.0/33").is_err());
        assert!(l.push_str("example.com").is_err());
        // A network written with host bits set is taken as its network.
        let mut m = AddrList::new();
        m.push_str("192.0.2.77/24").unwrap();
        assert!(m.contains("192.0.2.1".parse().unwrap()));
    }

    #[test]
    fn overlapping_and_adjacent_entries_merge_exactly() {
        let mut l = AddrList::new();
        for e in [
            "10.0.0.0/24",
            "10.0.1.0/24",
            "10.0.0.128/25",
            "10.0.3.0/24",
            "255.255.255.255",
            "0.0.0.0",
            "::/128",
            "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
            "2001:db8::/64",
            "2001:db8:0:1::/64",
        ] {
            l.push_str(e).unwrap();
        }
        assert_eq!(
            l.ranges().v4,
            [
                (0, 0),
                (0x0a00_0000, 0x0a00_01ff),
                (0x0a00_0300, 0x0a00_03ff),
                (u32::MAX, u32::MAX)
            ]
        );
        assert_eq!(l.ranges().v6.len(), 3);
        for (a, want) in [
            ("10.0.1.255", true),
            ("10.0.2.0", false),
            ("10.0.3.7", true),
            ("9.255.255.255", false),
            ("0.0.0.0", true),
            ("0.0.0.1", false),
            ("255.255.255.255", true),
            ("2001:db8:0:1:ffff::1", true),
            ("2001:db8:0:2::", false),
            ("::", true),
            ("::2", false),
        ] {
            assert_eq!(l.contains(a.parse().unwrap()), want, "{a}");
        }
        // Pushing after a lookup is seen by the next lookup; clones agree.
        l.push_str("10.0.2.0/24").unwrap();
        let c = l.clone();
        assert!(c.contains("10.0.2.9".parse().unwrap()));
        assert_eq!(c.ranges().v4.len(), 3);
        assert_eq!(c, l);
    }

    #[test]
    fn a_million_entries_load_in_linear_time() {
        // Was a linear duplicate check per entry: a million took minutes.
        let started = std::time::Instant::now();
        let mut l = AddrList::new();
        for i in 0..1_000_000u32 {
            l.push_str(&Ipv4Addr::from(0x0a00_0000 + 2 * i).to_string())
                .unwrap();
        }
        assert!(l.contains("10.0.0.0".parse().unwrap()));
        assert!(!l.contains("10.0.0.1".parse().unwrap()));
        for i in 0..100_000u32 {
            let a = Ipv4Addr::from(0x0a00_0000 + 2 * (i * 7 % 1_000_000));
            assert!(l.contains(IpAddr::V4(a)));
        }
        assert!(
            !l.contains("10.30.132.128".parse().unwrap()),
            "just past the last"
        );
        // Unoptimized and on a busy machine this takes about a second.
        let took = started.elapsed();
        assert!(took < std::time::Duration::from_secs(20), "{took:?}");
    }

    proptest::proptest! {
        #[test]
        fn lookups_agree_with_a_plain_scan(
            entries in proptest::collection::vec((proptest::prelude::any::<u32>(), 16u8..=32), 0..40),
            probes in proptest::collection::vec(proptest::prelude::any::<u32>(), 0..60),
        ) {
            let mut l = AddrList::new();
            let mut nets = Vec::new();
            for (a, len) in entries {
                // Cluster addresses so that entries overlap and touch.
                let net = IpNet::new(IpAddr::V4(Ipv4Addr::from(a & 0xff0f_ffff)), len).unwrap().trunc();
                l.push(net);
                nets.push(net);
            }
            for p in probes {
                let addr = IpAddr::V4(Ipv4Addr::from(p & 0xff0f_ffff));
                proptest::prop_assert_eq!(l.contains(addr), nets.iter().any(|n| n.contains(&addr)));
            }
        }
    }

    #[test]
    fn ban_nets() {
        let a: IpAddr = "2001:db8:1:2:3:4:5:6".parse().unwrap();
        assert_eq!(ban_net(a, 64).to_string(), "2001:db8:1:2::/64");
        assert_eq!(ban_net(a, 128).to_string(), "2001:db8:1:2:3:4:5:6/128");
        let m: IpAddr = "::ffff:192.0.2.1".parse().unwrap();
        assert_eq!(ban_net(m, 64).to_string(), "192.0.2.1/32");
    }
}
