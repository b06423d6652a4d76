//! What jailwarden's table looks like, as plain data: set names, element
//! spans and their wire keys, and the rule of each jail (built with
//! rustables' expressions). Nothing here talks to the kernel.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;
use rustables::expr::{
    Cmp, CmpOp, Counter, HighLevelPayload, IPv4HeaderField, IPv6HeaderField, IcmpCode, Immediate,
    Lookup, Meta, MetaType, NetworkHeaderField, Reject, RejectType, TCPHeaderField,
    TransportHeaderField, VerdictKind,
};
use rustables::{Chain, ChainPolicy, ChainType, Hook, HookClass, ProtocolFamily, Rule, Set, Table};

use crate::ban::{JailFirewall, PortRange, Protocol, Verdict};

/// Our table, `inet jailwarden`.
pub const TABLE: &str = "jailwarden";
/// Our base chain.
pub const CHAIN: &str = "input";
/// Hook priority of the chain: `filter - 10`, so bans apply before the
/// usual filter chains (priority 0) can accept the traffic.
pub const CHAIN_PRIORITY: i32 = -10;
/// The throwaway set used to probe the kernel's limits at start.
pub const PROBE_SET: &str = "jw-probe";
/// Changes whenever the encoding of rules changes, so that an upgrade
/// replaces rules written by an older version.
const RULE_FORMAT: u32 = 1;
/// Prefix of our rules' comments.
pub const RULE_COMMENT_PREFIX: &str = "jailwarden ";
/// Longest jail name used as is in set names; longer or odd names are
/// shortened and get a hash suffix. Well below the kernel's 255-byte limit
/// (`NFT_SET_MAXNAMELEN` is 256 with the NUL), so names stay readable and
/// the rule comment (at most 255 bytes) has room for them.
const MAX_NAME_PART: usize = 64;

/// nftables data types (nft's `datatype.h`; informational for the kernel,
/// used by nft to print elements).
pub const TYPE_IPV4_ADDR: u32 = 7;
pub const TYPE_IPV6_ADDR: u32 = 8;
pub const TYPE_INET_PROTO: u32 = 12;
pub const TYPE_INET_SERVICE: u32 = 13;

/// Address family of a set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Family {
    V4,
    V6,
}

impl Family {
    pub fn key_len(self) -> usize {
        match self {
            Family::V4 => 4,
            Family::V6 => 16,
        }
    }

    pub fn key_type(self) -> u32 {
        match self {
            Family::V4 => TYPE_IPV4_ADDR,
            Family::V6 => TYPE_IPV6_ADDR,
        }
    }

    /// Largest address value.
    pub fn max(self) -> u128 {
        match self {
            Family::V4 => u128::from(u32::MAX),
            Family::V6 => u128::MAX,
        }
    }

    fn bits(self) -> u32 {
        match self {
            Family::V4 => 32,
            Family::V6 => 128,
        }
    }

    fn nfproto(self) -> u8 {
        match self {
            Family::V4 => libc::NFPROTO_IPV4 as u8,
            Family::V6 => libc::NFPROTO_IPV6 as u8,
        }
    }
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Family::V4 => "ipv4",
            Family::V6 => "ipv6",
        })
    }
}

/// One of a jail's two sets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetSpec {
    pub jail: String,
    pub name: String,
    pub family: Family,
    /// Holds prefixes (interval set).
    pub interval: bool,
    /// Element cap, 0 for none.
    pub size: u32,
}

impl SetSpec {
    /// The `NFTA_SET_FLAGS` this set has.
    pub fn flags(&self) -> u32 {
        let mut f = libc::NFT_SET_TIMEOUT as u32;
        if self.interval {
            f |= libc::NFT_SET_INTERVAL as u32;
        }
        f
    }
}

/// The two sets of a jail.
pub fn jail_sets(fw: &JailFirewall) -> [SetSpec; 2] {
    if fw.jail == crate::ban::FLEET_JAIL {
        return [
            SetSpec {
                jail: fw.jail.clone(),
                name: "fleet-inet".into(),
                family: Family::V4,
                interval: false,
                size: fw.set_size,
            },
            SetSpec {
                jail: fw.jail.clone(),
                name: "fleet-inet6".into(),
                family: Family::V6,
                interval: true,
                size: fw.set_size,
            },
        ];
    }
    let base = set_base_name(&fw.jail);
    [
        SetSpec {
            jail: fw.jail.clone(),
            name: format!("{base}-v4"),
            family: Family::V4,
            interval: false,
            size: fw.set_size,
        },
        SetSpec {
            jail: fw.jail.clone(),
            name: format!("{base}-v6"),
            family: Family::V6,
            interval: fw.v6_prefix < 128,
            size: fw.set_size,
        },
    ]
}

/// The part of set names taken from the jail name: the name itself when it
/// is short and made of `[A-Za-z0-9_]` (and `-`, `.` inside), starting with a
/// letter, so `nft list set inet jailwarden sshd-v4` works unquoted;
/// otherwise a cleaned, shortened form plus a hash of the full name, so
/// distinct jails keep distinct sets and the same jail always gets the same
/// name.
pub fn set_base_name(jail: &str) -> String {
    let plain = !jail.is_empty()
        && jail.len() <= MAX_NAME_PART
        && jail.as_bytes()[0].is_ascii_alphabetic()
        && jail
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.');
    if plain {
        return jail.to_string();
    }
    let mut clean: String = jail
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .take(MAX_NAME_PART - 17)
        .collect();
    if !clean.starts_with(|c: char| c.is_ascii_alphabetic()) {
        clean.insert(0, 'j');
    }
    format!("{clean}_{:016x}", fnv1a(jail.as_bytes()))
}

/// FNV-1a, 64 bit: stable across versions and platforms (unlike std's
/// hasher), which names and rule digests need.
pub fn fnv1a(data: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in data {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// A set element as an inclusive range of addresses: one address, a
/// prefix, or (read from the kernel) any interval.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Span {
    pub first: u128,
    pub last: u128,
}

impl Span {
    /// The span of a network (its first to its last address).
    pub fn of_net(net: IpNet) -> (Family, Span) {
        match net.trunc() {
            IpNet::V4(n) => (
                Family::V4,
                Span {
                    first: u128::from(u32::from(n.network())),
                    last: u128::from(u32::from(n.broadcast())),
                },
            ),
            IpNet::V6(n) => (
                Family::V6,
                Span {
                    first: u128::from(n.network()),
                    last: u128::from(n.broadcast()),
                },
            ),
        }
    }

    /// The network this span is, if it is one (aligned, power-of-two size).
    pub fn to_net(self, family: Family) -> Option<IpNet> {
        if self.last < self.first || self.last > family.max() {
            return None;
        }
        let size_minus_1 = self.last - self.first;
        // size is a power of two iff size-1 is all ones.
        if size_minus_1 & size_minus_1.wrapping_add(1) != 0 || self.first & size_minus_1 != 0 {
            return None;
        }
        let host_bits = 128 - size_minus_1.leading_zeros();
        let prefix = (family.bits() - host_bits) as u8;
        let addr = match family {
            Family::V4 => IpAddr::V4(Ipv4Addr::from(self.first as u32)),
            Family::V6 => IpAddr::V6(Ipv6Addr::from(self.first)),
        };
        IpNet::new(addr, prefix).ok()
    }

    /// Text for messages: the address, the prefix, or `first-last`.
    pub fn display(self, family: Family) -> String {
        match self.to_net(family) {
            Some(n) if n.prefix_len() == n.max_prefix_len() => n.addr().to_string(),
            Some(n) => n.to_string(),
            None => format!(
                "{}-{}",
                Span::addr(family, self.first),
                Span::addr(family, self.last)
            ),
        }
    }

    pub(crate) fn addr(family: Family, v: u128) -> IpAddr {
        match family {
            Family::V4 => IpAddr::V4(Ipv4Addr::from(v as u32)),
            Family::V6 => IpAddr::V6(Ipv6Addr::from(v)),
        }
    }
}

/// The address of value `v` in `family`.
pub fn addr(family: Family, v: u128) -> IpAddr {
    Span::addr(family, v)
}

/// The wire key of address value `v` in a set of `family`.
pub fn key(family: Family, v: u128) -> ([u8; 16], u8) {
    let mut k = [0u8; 16];
    match family {
        Family::V4 => k[..4].copy_from_slice(&(v as u32).to_be_bytes()),
        Family::V6 => k.copy_from_slice(&v.to_be_bytes()),
    }
    (k, family.key_len() as u8)
}

/// The address value of a wire key, if it has the family's length.
pub fn key_value(family: Family, key: &[u8]) -> Option<u128> {
    match family {
        Family::V4 => Some(u128::from(u32::from_be_bytes(key.try_into().ok()?))),
        Family::V6 => Some(u128::from_be_bytes(key.try_into().ok()?)),
    }
}

/// Why a ban cannot go into a jail's set.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ElementError {
    #[error("IPv4 networks cannot be banned: the IPv4 set holds single addresses")]
    V4Network,
    #[error(
        "IPv6 prefixes cannot be banned in this jail: its IPv6 set holds single addresses (v6_prefix = 128)"
    )]
    V6PrefixInAddressSet,
    #[error("a /0 prefix would ban every address")]
    Everything,
}

/// Check that `span` fits a set of `spec`'s kind.
pub fn check_element(spec: &SetSpec, span: Span) -> Result<(), ElementError> {
    if span.first == span.last {
        return Ok(());
    }
    if span.first == 0 && span.last == spec.family.max() {
        return Err(ElementError::Everything);
    }
    match (spec.family, spec.interval) {
        (_, true) => Ok(()),
        (Family::V4, false) => Err(ElementError::V4Network),
        (Family::V6, false) => Err(ElementError::V6PrefixInAddressSet),
    }
}

/// Sorted, merged port ranges (overlapping or adjacent ones joined): the
/// kernel's interval sets refuse overlaps.
pub fn normalize_ports(ports: &[PortRange]) -> Vec<PortRange> {
    let mut v: Vec<PortRange> = ports
        .iter()
        .map(|p| PortRange {
            first: p.first.min(p.last),
            last: p.first.max(p.last),
        })
        .collect();
    v.sort();
    let mut out: Vec<PortRange> = Vec::with_capacity(v.len());
    for p in v {
        match out.last_mut() {
            Some(last) if u32::from(p.first) <= u32::from(last.last) + 1 => {
                last.last = last.last.max(p.last)
            }
            _ => out.push(p),
        }
    }
    out
}

/// Protocols a port limit applies to: sorted, deduplicated, TCP when the
/// configuration names none (Fail2ban's default too).
pub fn normalize_protocols(protocols: &[Protocol]) -> Vec<Protocol> {
    let mut v: Vec<Protocol> = Vec::new();
    for p in [Protocol::Tcp, Protocol::Udp] {
        if protocols.contains(&p) {
            v.push(p);
        }
    }
    if v.is_empty() {
        v.push(Protocol::Tcp);
    }
    v
}

fn ipproto(p: Protocol) -> u8 {
    match p {
        Protocol::Tcp => libc::IPPROTO_TCP as u8,
        Protocol::Udp => libc::IPPROTO_UDP as u8,
    }
}

/// An anonymous, constant set bound to a rule (ports or protocols), created
/// in the same batch as the rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnonSet {
    /// Transaction-local id the rule's lookup refers to.
    pub id: u32,
    pub key_type: u32,
    pub key_len: u32,
    pub interval: bool,
    /// (key, element flags)
    pub elements: Vec<(Vec<u8>, u32)>,
}

impl AnonSet {
    /// Name template: the kernel picks the number.
    pub const NAME: &'static str = "__set%d";

    pub fn flags(&self) -> u32 {
        let mut f = (libc::NFT_SET_ANONYMOUS | libc::NFT_SET_CONSTANT) as u32;
        if self.interval {
            f |= libc::NFT_SET_INTERVAL as u32;
        }
        f
    }
}

/// A jail's rule for one family, with what it needs created alongside.
#[derive(Debug)]
pub struct JailRule {
    pub rule: Rule,
    pub anon_sets: Vec<AnonSet>,
    /// The rule's comment: identifies it when reading rules back.
    pub comment: String,
}

/// The table.
pub fn table() -> Table {
    Table::new(ProtocolFamily::Inet).with_name(TABLE)
}

/// The base chain: filter type, input hook, priority `filter - 10`,
/// policy accept (the chain only ever drops what is banned).
pub fn chain() -> Chain {
    Chain::new(&table())
        .with_name(CHAIN)
        .with_hook(Hook::new(HookClass::In, CHAIN_PRIORITY))
        .with_policy(ChainPolicy::Accept)
        .with_type(ChainType::Filter)
}

/// The comment identifying the rule for `spec`: the set name and a digest
/// of everything the rule encodes. A rule whose comment differs from the
/// wanted one is replaced.
pub fn rule_comment(spec: &SetSpec, fw: &JailFirewall) -> String {
    let ports = normalize_ports(&fw.ports);
    let protos = if ports.is_empty() {
        Vec::new()
    } else {
        normalize_protocols(&fw.protocols)
    };
    let desc = format!(
        "{RULE_FORMAT}|{}|{}|{}|{:?}|{:?}|{:?}",
        spec.name, spec.family, spec.interval, ports, protos, fw.verdict
    );
    format!(
        "{RULE_COMMENT_PREFIX}{} {:016x}",
        spec.name,
        fnv1a(desc.as_bytes())
    )
}

/// Build the rule matching traffic from `spec`'s set:
///
/// `meta nfproto ipv4 ip saddr @<set> [meta l4proto tcp th dport {…}]
///  counter drop|reject`
///
/// `next_id` hands out transaction-local ids for the anonymous sets.
pub fn jail_rule(
    spec: &SetSpec,
    fw: &JailFirewall,
    next_id: &mut dyn FnMut() -> u32,
) -> Result<JailRule, rustables::error::BuilderError> {
    let mut rule = Rule::new(&chain())?;
    // `inet` tables see both families: check the family before loading an
    // address of that family's header layout.
    rule.add_expr(Meta::new(MetaType::NfProto));
    rule.add_expr(Cmp::new(CmpOp::Eq, [spec.family.nfproto()]));
    rule.add_expr(
        HighLevelPayload::Network(match spec.family {
            Family::V4 => NetworkHeaderField::IPv4(IPv4HeaderField::Saddr),
            Family::V6 => NetworkHeaderField::IPv6(IPv6HeaderField::Saddr),
        })
        .build(),
    );
    rule.add_expr(Lookup::new(&Set::default().with_name(spec.name.as_str()))?);

    let mut anon_sets = Vec::new();
    let ports = normalize_ports(&fw.ports);
    let protos = normalize_protocols(&fw.protocols);
    if !ports.is_empty() {
        // Must match the transport protocol before loading its header.
        rule.add_expr(Meta::new(MetaType::L4Proto));
        if let [p] = protos[..] {
            rule.add_expr(Cmp::new(CmpOp::Eq, [ipproto(p)]));
        } else {
            let set = AnonSet {
                id: next_id(),
                key_type: TYPE_INET_PROTO,
                key_len: 1,
                interval: false,
                elements: protos.iter().map(|p| (vec![ipproto(*p)], 0)).collect(),
            };
            rule.add_expr(anon_lookup(&set)?);
            anon_sets.push(set);
        }
        // The destination port sits at the same offset in TCP and UDP
        // headers (nft's `th dport`).
        rule.add_expr(
            HighLevelPayload::Transport(TransportHeaderField::Tcp(TCPHeaderField::Dport)).build(),
        );
        if let [p] = ports[..]
            && p.first == p.last
        {
            rule.add_expr(Cmp::new(CmpOp::Eq, p.first.to_be_bytes()));
        } else {
            let mut elements = Vec::new();
            for p in &ports {
                elements.push((p.first.to_be_bytes().to_vec(), 0));
                // An interval ends at the first value after it; the last
                // one reaching 65535 has no end element.
                if p.last < u16::MAX {
                    elements.push((
                        (p.last + 1).to_be_bytes().to_vec(),
                        libc::NFT_SET_ELEM_INTERVAL_END as u32,
                    ));
                }
            }
            let set = AnonSet {
                id: next_id(),
                key_type: TYPE_INET_SERVICE,
                key_len: 2,
                interval: true,
                elements,
            };
            rule.add_expr(anon_lookup(&set)?);
            anon_sets.push(set);
        }
    }
    rule.add_expr(Counter::default());
    match fw.verdict {
        Verdict::Drop => rule.add_expr(Immediate::new_verdict(VerdictKind::Drop)),
        Verdict::Reject => {
            // A TCP reset where only TCP can match, an ICMP(v6) port
            // unreachable otherwise: both make clients fail at once.
            if !ports.is_empty() && protos == [Protocol::Tcp] {
                rule.add_expr(Reject::default().with_type(RejectType::TcpRst));
            } else {
                rule.add_expr(
                    Reject::default()
                        .with_type(RejectType::IcmpxUnreach)
                        .with_icmp_code(IcmpCode::PortUnreach),
                );
            }
        }
    }
    let comment = rule_comment(spec, fw);
    rule.set_userdata(comment_udata(&comment));
    Ok(JailRule {
        rule,
        anon_sets,
        comment,
    })
}

fn anon_lookup(set: &AnonSet) -> Result<Lookup, rustables::error::BuilderError> {
    Lookup::new(&Set::default().with_name(AnonSet::NAME).with_id(set.id))
}

/// nft's rule user data: TLVs of (type u8, length u8, value); type 0 is the
/// comment (NUL-terminated), which `nft list` prints.
const UDATA_RULE_COMMENT: u8 = 0;

pub fn comment_udata(comment: &str) -> Vec<u8> {
    let bytes = &comment.as_bytes()[..comment.len().min(254)];
    let mut v = Vec::with_capacity(bytes.len() + 3);
    v.push(UDATA_RULE_COMMENT);
    v.push((bytes.len() + 1) as u8);
    v.extend_from_slice(bytes);
    v.push(0);
    v
}

/// The comment in a rule's user data, if it has one.
pub fn udata_comment(udata: &[u8]) -> Option<String> {
    let mut rest = udata;
    while let [ty, len, tail @ ..] = rest {
        let len = usize::from(*len);
        let value = tail.get(..len)?;
        if *ty == UDATA_RULE_COMMENT {
            let value = value.strip_suffix(&[0]).unwrap_or(value);
            return Some(String::from_utf8_lossy(value).into_owned());
        }
        rest = &tail[len..];
    }
    None
}

/// nft's set user data: the key byte order (big endian for addresses), so
/// `nft list` prints our sets as it prints its own.
pub fn set_udata() -> Vec<u8> {
    const UDATA_SET_KEYBYTEORDER: u8 = 0;
    const BYTEORDER_BIG_ENDIAN: u32 = 2;
    let mut v = vec![UDATA_SET_KEYBYTEORDER, 4];
    v.extend_from_slice(&BYTEORDER_BIG_ENDIAN.to_ne_bytes());
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fw(jail: &str) -> JailFirewall {
        JailFirewall {
            jail: jail.into(),
            ports: vec![],
            protocols: vec![],
            verdict: Verdict::Drop,
            v6_prefix: 128,
            set_size: 0,
        }
    }

    #[test]
    fn set_names_are_safe_and_stable() {
        assert_eq!(set_base_name("sshd"), "sshd");
        assert_eq!(set_base_name("nginx-http_auth.2"), "nginx-http_auth.2");
        for odd in ["", "my jail", "ünïcode", "1st", "a\"b", &"x".repeat(300)] {
            let n = set_base_name(odd);
            assert!(n.len() <= MAX_NAME_PART, "{n}");
            assert!(n.as_bytes()[0].is_ascii_alphabetic(), "{n}");
            assert!(
                n.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'),
                "{n}"
            );
            assert_eq!(n, set_base_name(odd), "deterministic");
        }
        // Names that clean to the same text stay distinct.
        assert_ne!(set_base_name("a b"), set_base_name("a/b"));
        assert_ne!(
            set_base_name(&"y".repeat(65)),
            set_base_name(&"y".repeat(66))
        );
        let [v4, v6] = jail_sets(&fw("sshd"));
        assert_eq!((v4.name.as_str(), v6.name.as_str()), ("sshd-v4", "sshd-v6"));
    }

    #[test]
    fn spans_and_networks() {
        let (f, s) = Span::of_net("192.0.2.7/32".parse().unwrap());
        assert_eq!(f, Family::V4);
        assert_eq!(s.first, s.last);
        assert_eq!(s.display(f), "192.0.2.7");
        let (f, s) = Span::of_net("2001:db8:1:2:3::/64".parse().unwrap());
        assert_eq!(s.to_net(f).unwrap().to_string(), "2001:db8:1:2::/64");
        assert_eq!(s.display(f), "2001:db8:1:2::/64");
        let odd = Span { first: 1, last: 2 };
        assert_eq!(odd.to_net(Family::V4), None);
        assert_eq!(odd.display(Family::V4), "0.0.0.1-0.0.0.2");
        let all = Span {
            first: 0,
            last: u128::MAX,
        };
        assert_eq!(all.to_net(Family::V6).unwrap().to_string(), "::/0");
        let (k, n) = key(Family::V4, 0xc000_0207);
        assert_eq!(&k[..usize::from(n)], &[192, 0, 2, 7]);
        assert_eq!(key_value(Family::V4, &[192, 0, 2, 7]), Some(0xc000_0207));
        assert_eq!(key_value(Family::V6, &[1, 2, 3]), None);
    }

    #[test]
    fn elements_must_fit_the_set() {
        let mut f = fw("j");
        let [v4, v6] = jail_sets(&f);
        let net = |s: &str| Span::of_net(s.parse().unwrap()).1;
        assert_eq!(check_element(&v4, net("192.0.2.1/32")), Ok(()));
        assert_eq!(
            check_element(&v4, net("192.0.2.0/24")),
            Err(ElementError::V4Network)
        );
        assert_eq!(
            check_element(&v6, net("2001:db8::/64")),
            Err(ElementError::V6PrefixInAddressSet)
        );
        f.v6_prefix = 64;
        let [_, v6] = jail_sets(&f);
        assert!(v6.interval);
        assert_eq!(check_element(&v6, net("2001:db8::/64")), Ok(()));
        assert_eq!(
            check_element(&v6, net("::/0")),
            Err(ElementError::Everything)
        );
    }

    #[test]
    fn ports_merge_and_protocols_default() {
        let p = |first, last| PortRange { first, last };
        assert_eq!(
            normalize_ports(&[
                p(2222, 2222),
                p(22, 22),
                p(8000, 8080),
                p(8081, 8090),
                p(30, 20)
            ]),
            vec![p(20, 30), p(2222, 2222), p(8000, 8090)]
        );
        assert_eq!(normalize_protocols(&[]), vec![Protocol::Tcp]);
        assert_eq!(
            normalize_protocols(&[Protocol::Udp, Protocol::Tcp, Protocol::Udp]),
            vec![Protocol::Tcp, Protocol::Udp]
        );
    }

    #[test]
    fn rule_comments_follow_the_rule() {
        let mut f = fw("sshd");
        let [v4, _] = jail_sets(&f);
        let c0 = rule_comment(&v4, &f);
        assert!(c0.starts_with("jailwarden sshd-v4 "));
        f.verdict = Verdict::Reject;
        let c1 = rule_comment(&v4, &f);
        assert_ne!(c0, c1);
        f.ports = vec![PortRange {
            first: 22,
            last: 22,
        }];
        let c2 = rule_comment(&v4, &f);
        assert_ne!(c1, c2);
        // Same meaning, different spelling: same rule.
        f.protocols = vec![Protocol::Tcp];
        assert_eq!(c2, rule_comment(&v4, &f));
        assert_eq!(
            udata_comment(&comment_udata(&c2)).as_deref(),
            Some(c2.as_str())
        );
        assert_eq!(udata_comment(&[0, 200, 1]), None);
    }

    #[test]
    fn rules_get_anonymous_sets_only_when_needed() {
        let mut ids = 0;
        let mut next = || {
            ids += 1;
            ids
        };
        let mut f = fw("web");
        let [v4, _] = jail_sets(&f);
        assert!(jail_rule(&v4, &f, &mut next).unwrap().anon_sets.is_empty());
        f.ports = vec![PortRange {
            first: 80,
            last: 80,
        }];
        assert!(jail_rule(&v4, &f, &mut next).unwrap().anon_sets.is_empty());
        f.ports.push(PortRange {
            first: 443,
            last: 443,
        });
        f.ports.push(PortRange {
            first: 60000,
            last: 65535,
        });
        f.protocols = vec![Protocol::Tcp, Protocol::Udp];
        let r = jail_rule(&v4, &f, &mut next).unwrap();
        assert_eq!(r.anon_sets.len(), 2);
        let ports = &r.anon_sets[1];
        assert!(ports.interval);
        // 80, end 81, 443, end 444, 60000 (open to 65535)
        assert_eq!(ports.elements.len(), 5);
        assert_eq!(ports.elements[4], (60000u16.to_be_bytes().to_vec(), 0));
    }
}
