//! `backend = "nftables"`: every ban is an element of an nftables set whose
//! kernel timeout is the remaining ban time, so the kernel lifts bans on
//! time even while the daemon is down.
//!
//! # Layout
//!
//! ```text
//! table inet jailwarden {
//!   set sshd-v4 { type ipv4_addr; flags timeout; [size N;] }
//!   set sshd-v6 { type ipv6_addr; flags timeout[, interval]; [size N;] }
//!   chain input {
//!     type filter hook input priority filter - 10; policy accept;
//!     meta nfproto ipv4 ip saddr @sshd-v4 [meta l4proto tcp th dport { 22, 2222 }]
//!       counter drop comment "jailwarden sshd-v4 <digest>"
//!     (the same for sshd-v6, and for every other jail)
//!   }
//! }
//! ```
//!
//! The v6 set is an interval set when the jail bans IPv6 by prefix
//! (`v6_prefix < 128`). Set names come from jail names
//! (`layout::set_base_name`: long or odd names are cleaned and hashed).
//! Rules carry a comment with a digest of what they encode; a rule whose
//! comment is not wanted is replaced.
//!
//! # Reconcile, never flush
//!
//! [`Banner::configure`] and [`Banner::reconcile`] read the table back and
//! change only what differs: nothing is ever flushed, so bans stay in force
//! across restarts. Changes go in one netlink transaction (split only when
//! bigger than the socket's send buffer, 256 MiB with CAP_NET_ADMIN).
//!
//! # Reading elements back
//!
//! The kernel (6.18 here) answers a set element dump with a walk that starts
//! again from the first element for every 32 KiB reply, so dumping a set of
//! n elements costs O(n²): one million elements take about 50 s, for
//! `nft list set` too. Reconcile therefore reads a set by dump only when it
//! is small, holds intervals, or the kernel cannot tell its size; otherwise
//! it looks the wanted elements up by key (O(n)) and compares their number
//! with the set's element count (`NFTA_SET_COUNT`, Linux 6.16). Only when
//! the set holds more than the wanted elements found does it dump, to find
//! the extra ones.
//!
//! # Kernel limits
//!
//! The first [`Banner::configure`] probes the kernel in a throwaway set
//! (`jw-probe`): the largest element timeout it accepts and
//! reports back intact (timeouts are clamped to it), whether re-adding an
//! element updates its timeout, whether `DESTROYSETELEM` exists, and whether
//! sets report their element count. Older kernels get slower fallbacks.

mod layout;
mod netlink;

use std::collections::{BTreeSet, HashMap, HashSet};
use std::io;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use ipnet::IpNet;
use jiff::Timestamp;
use rustables::MsgType;
use rustables::sys as nf;

use self::layout::{Family, SetSpec, Span};
use self::netlink::{Batch, ElemIn, ElemOut, NlError, RsObject, Socket};
use super::{Ban, BanError, Banner, JailFirewall, ReconcileReport};

pub use self::layout::{CHAIN, CHAIN_PRIORITY, PROBE_SET, TABLE};

/// How far the kernel's expiry of an element may drift from the ban's end
/// before reconcile renews it. Covers jiffy rounding, the time between the
/// caller's `now` and the kernel's reply, and the kernel's own pace within
/// one batch: each element's expiry starts when the kernel reaches it, and
/// a batch of a million elements takes it about 2.5 s (Linux 6.18, 2 vCPU).
pub const DRIFT_TOLERANCE: Duration = Duration::from_secs(5);

/// Sets with at most this many elements are read by dump; bigger ones by
/// key (see the module docs). A dump of 50,000 elements takes ~0.1 s.
const DUMP_AT_MOST: u32 = 50_000;

/// What the kernel supports, found by probing at the first configure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KernelLimits {
    /// Largest element timeout the kernel accepts and reports back intact.
    /// Longer bans get this timeout and must be renewed; see
    /// [`Nftables::renewals_due`].
    pub max_timeout: Duration,
    /// Re-adding an element sets its new timeout (else: delete and add).
    pub timeout_update: bool,
    /// `NFT_MSG_DESTROYSETELEM` exists (else: delete, skipping absent ones).
    pub destroy: bool,
    /// Sets report their element count (else reconcile always dumps).
    pub set_count: bool,
}

/// A set element as the kernel holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelElement {
    /// First and last address covered (equal for single addresses).
    pub first: IpAddr,
    pub last: IpAddr,
    /// The element's timeout; `None` when it never expires.
    pub timeout: Option<Duration>,
    /// Time left when read.
    pub expires_in: Option<Duration>,
}

impl KernelElement {
    /// The network covered, when it is one (always, for our elements).
    pub fn net(&self) -> Option<IpNet> {
        let (family, first, last) = match (self.first, self.last) {
            (IpAddr::V4(a), IpAddr::V4(b)) => (
                Family::V4,
                u128::from(u32::from(a)),
                u128::from(u32::from(b)),
            ),
            (IpAddr::V6(a), IpAddr::V6(b)) => (Family::V6, u128::from(a), u128::from(b)),
            _ => return None,
        };
        Span { first, last }.to_net(family)
    }
}

/// The nftables backend. Owns one netlink socket; the daemon owns it and
/// calls it from one thread at a time (see [`Banner`]).
pub struct Nftables {
    sock: Socket,
    /// Configured jails and their two sets, in configuration order.
    jails: Vec<(JailFirewall, [SetSpec; 2])>,
    limits: Option<KernelLimits>,
    /// For elements installed with a timeout shorter than their ban (capped
    /// at `max_timeout`): when the kernel will drop them. Keyed by set name.
    lapses: HashMap<(String, Span), Timestamp>,
}

/// One element change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Add,
    Delete,
}

#[derive(Debug, Clone, Copy)]
struct Op {
    /// Index into `Nftables::sets()`.
    set: usize,
    kind: Kind,
    span: Span,
    timeout_ms: Option<u64>,
}

/// What a ban asks of its set.
#[derive(Debug, Clone, Copy)]
struct Want {
    /// Kernel timeout to set; `None` for permanent bans.
    timeout_ms: Option<u64>,
    /// The ban's end.
    end: Option<Timestamp>,
    /// The timeout was capped at the kernel's maximum.
    clamped: bool,
}

/// An element as read from the kernel.
#[derive(Debug, Clone, Copy)]
struct Seen {
    timeout_ms: Option<u64>,
    expires_ms: Option<u64>,
    /// When it was read, from the start of the operation.
    at: Duration,
}

/// A set as the kernel describes it.
#[derive(Debug, Clone, Default)]
struct SetInfo {
    flags: u32,
    key_len: u32,
    size: u32,
    count: Option<u32>,
}

impl Nftables {
    /// Open the netlink socket. Changes nothing in the kernel; the first
    /// [`Banner::configure`] creates the table and probes the kernel.
    pub fn new() -> Result<Nftables, BanError> {
        let sock = Socket::open().map_err(|e| map_err(e, "open", None))?;
        Ok(Nftables {
            sock,
            jails: Vec::new(),
            limits: None,
            lapses: HashMap::new(),
        })
    }

    /// What the kernel supports; `None` before the first configure.
    pub fn kernel_limits(&self) -> Option<KernelLimits> {
        self.limits
    }

    /// Replace the probed limits, to exercise the fallbacks for older
    /// kernels in tests. Not for production use.
    #[doc(hidden)]
    pub fn assume_kernel_limits(&mut self, limits: KernelLimits) {
        self.limits = Some(limits);
    }

    /// The names of a jail's IPv4 and IPv6 sets in table `inet jailwarden`.
    pub fn set_names(jail: &str) -> [String; 2] {
        let base = layout::set_base_name(jail);
        [format!("{base}-v4"), format!("{base}-v6")]
    }

    /// How many of `addrs` (IPv4) are elements of `jail`'s IPv4 set now,
    /// looked up by key (cheap for a few keys in a huge set, where a listing
    /// costs seconds): for probes that an element never goes missing.
    pub fn count_present(
        &mut self,
        jail: &str,
        addrs: &[std::net::Ipv4Addr],
    ) -> Result<usize, BanError> {
        let [v4, _] = Self::set_names(jail);
        let mut found = 0;
        self.sock
            .lookup(
                TABLE,
                &v4,
                addrs.len(),
                &|i| layout::key(layout::Family::V4, u128::from(u32::from(addrs[i]))),
                &mut |_, _| found += 1,
            )
            .map_err(|e| map_err(e, "look up set elements", None))?;
        Ok(found)
    }

    /// Which bans must be re-asserted (passed to [`Banner::ban`]) because
    /// their kernel element will time out before the ban ends, within
    /// `horizon` from `now`.
    ///
    /// Contract: the kernel caps element timeouts at
    /// [`KernelLimits::max_timeout`] (about 557 years on Linux 6.18, much
    /// less on some kernels); a ban lasting longer is installed with the cap
    /// and lapses early unless renewed. The daemon's periodic check calls
    /// this at least once per `horizon` (which must be well below
    /// `max_timeout`, e.g. one hour) with the store's active bans and passes
    /// the result to `ban()`. Permanent bans are never returned: their
    /// elements carry no timeout, and the kernel keeps them until deleted.
    /// A ban this instance has not installed or read back counts as due when
    /// it outlasts `max_timeout`.
    pub fn renewals_due(&self, bans: &[Ban], now: Timestamp, horizon: Duration) -> Vec<Ban> {
        let Some(limits) = self.limits else {
            return Vec::new();
        };
        let deadline = now
            .checked_add(
                jiff::SignedDuration::try_from(horizon).unwrap_or(jiff::SignedDuration::MAX),
            )
            .unwrap_or(Timestamp::MAX);
        bans.iter()
            .filter(|ban| {
                let Some(end) = ban.expires_at else {
                    return false;
                };
                let Some((spec, span)) = self.locate(ban) else {
                    return false;
                };
                match self.lapses.get(&(spec.name.clone(), span)) {
                    Some(lapse) => *lapse < end && *lapse <= deadline,
                    None => ban
                        .remaining(now)
                        .is_some_and(|left| left > limits.max_timeout),
                }
            })
            .cloned()
            .collect()
    }

    /// Every element of a jail's two sets, read by dump (for listings and
    /// diagnostics; reconcile reads big sets more cheaply). Costs O(n²) in
    /// the kernel for a set of n elements: see the module docs.
    pub fn elements(&mut self, jail: &str) -> Result<Vec<KernelElement>, BanError> {
        let Some((_, specs)) = self.jails.iter().find(|(fw, _)| fw.jail == jail) else {
            return Err(BanError::UnknownJail { jail: jail.into() });
        };
        let specs = specs.clone();
        let t0 = Instant::now();
        let mut out = Vec::new();
        for spec in &specs {
            for (span, seen) in self.read_dump(spec, t0)? {
                out.push(KernelElement {
                    first: layout::addr(spec.family, span.first),
                    last: layout::addr(spec.family, span.last),
                    timeout: seen
                        .timeout_ms
                        .filter(|t| *t != 0)
                        .map(Duration::from_millis),
                    expires_in: seen.expires_ms.map(Duration::from_millis),
                });
            }
        }
        Ok(out)
    }

    /// All configured sets, jail by jail (v4, v6).
    fn sets(&self) -> Vec<&SetSpec> {
        self.jails.iter().flat_map(|(_, s)| s.iter()).collect()
    }

    /// The set and span a ban goes to, without validation.
    fn locate(&self, ban: &Ban) -> Option<(&SetSpec, Span)> {
        let (family, span) = Span::of_net(canonical_net(ban.net));
        let (_, sets) = self.jails.iter().find(|(fw, _)| fw.jail == ban.jail)?;
        Some((&sets[usize::from(family == Family::V6)], span))
    }

    /// Validate bans and sort them into sets: per set index, the spans and
    /// what they want, sorted by span, one entry per span (the longest ban
    /// wins). Expired bans are left out.
    fn wanted(&self, bans: &[Ban], now: Timestamp) -> Result<Vec<Vec<(Span, Want)>>, BanError> {
        let limits = self.limits_or_err()?;
        let max_ms = u64::try_from(limits.max_timeout.as_millis()).unwrap_or(u64::MAX);
        let index: HashMap<&str, usize> = self
            .jails
            .iter()
            .enumerate()
            .map(|(i, (fw, _))| (fw.jail.as_str(), i))
            .collect();
        let mut per_set: Vec<Vec<(Span, Want)>> = vec![Vec::new(); self.jails.len() * 2];
        for ban in bans {
            let j = *index
                .get(ban.jail.as_str())
                .ok_or_else(|| BanError::UnknownJail {
                    jail: ban.jail.clone(),
                })?;
            let net = canonical_net(ban.net);
            let (family, span) = Span::of_net(net);
            let si = j * 2 + usize::from(family == Family::V6);
            let spec = &self.jails[j].1[usize::from(family == Family::V6)];
            layout::check_element(spec, span).map_err(|e| BanError::BadElement {
                jail: ban.jail.clone(),
                element: net.to_string(),
                reason: e.to_string(),
            })?;
            let want = match ban.remaining(now) {
                None => Want {
                    timeout_ms: None,
                    end: None,
                    clamped: false,
                },
                Some(left) if left.is_zero() => continue,
                Some(left) => {
                    // Round up: a timeout of 0 would mean "never expires".
                    let ms = u64::try_from(left.as_nanos().div_ceil(1_000_000)).unwrap_or(u64::MAX);
                    Want {
                        timeout_ms: Some(ms.clamp(1, max_ms)),
                        end: ban.expires_at,
                        clamped: ms > max_ms,
                    }
                }
            };
            per_set[si].push((span, want));
        }
        for (si, v) in per_set.iter_mut().enumerate() {
            let interval = self.jails[si / 2].1[si % 2].interval;
            if !interval {
                // Single addresses: plain order, the longest ban first among
                // equal ones (dedup keeps the first).
                v.sort_unstable_by(|a, b| a.0.cmp(&b.0).then_with(|| longer(&b.1, &a.1)));
                v.dedup_by(|later, earlier| later.0 == earlier.0);
                continue;
            }
            // Containers before what they contain, then as above.
            v.sort_by(|a, b| {
                (a.0.first, b.0.last)
                    .cmp(&(b.0.first, a.0.last))
                    .then_with(|| longer(&b.1, &a.1))
            });
            v.dedup_by(|later, earlier| later.0 == earlier.0);
            drop_covered(v);
            // The merge with the kernel's list needs plain span order.
            v.sort_by_key(|(span, _)| *span);
        }
        Ok(per_set)
    }

    fn limits_or_err(&self) -> Result<KernelLimits, BanError> {
        self.limits
            .ok_or_else(|| BanError::Other("nftables backend used before configure()".into()))
    }

    /// Read the structure back and create or fix what is missing or
    /// different, in one transaction. Returns the sets as the kernel now
    /// has them (with element counts where the kernel gives them).
    fn ensure_structure(&mut self) -> Result<HashMap<String, SetInfo>, BanError> {
        let chain = self.our_chain()?;
        // A chain changed by hand is recreated with its rules (the kernel
        // cannot move a base chain to another hook or priority).
        let recreate_chain = chain == Some(false);
        let mut existing = self.list_sets()?;
        let rules = if chain.is_some() {
            self.list_rules()?
        } else {
            Vec::new()
        };
        let sets: Vec<SetSpec> = self.sets().into_iter().cloned().collect();

        // Sets whose kind changed (family, intervals, size) are recreated:
        // the kernel cannot change them in place.
        let mut recreate = HashSet::new();
        for spec in &sets {
            if let Some(info) = existing.get(&spec.name) {
                let kind_mask = (libc::NFT_SET_INTERVAL
                    | libc::NFT_SET_TIMEOUT
                    | libc::NFT_SET_MAP
                    | libc::NFT_SET_CONSTANT
                    | libc::NFT_SET_ANONYMOUS) as u32;
                if info.flags & kind_mask != spec.flags()
                    || info.key_len != spec.family.key_len() as u32
                    || info.size != spec.size
                {
                    recreate.insert(spec.name.clone());
                }
            }
        }
        let wanted_names: HashSet<&str> = sets.iter().map(|s| s.name.as_str()).collect();
        let stale_sets: Vec<String> = existing
            .iter()
            .filter(|(name, info)| {
                info.flags & libc::NFT_SET_ANONYMOUS as u32 == 0
                    && (!wanted_names.contains(name.as_str()) || recreate.contains(*name))
            })
            .map(|(name, _)| name.clone())
            .collect();

        let mut next_id = 0u32;
        let mut alloc = || {
            next_id += 1;
            next_id
        };
        let mut jail_rules = Vec::new();
        for (fw, specs) in &self.jails {
            for spec in specs {
                let r = layout::jail_rule(spec, fw, &mut alloc).map_err(|e| {
                    BanError::Other(format!("building the rule of {}: {e}", spec.name))
                })?;
                jail_rules.push((spec.name.clone(), r));
            }
        }
        let mut keep: HashSet<String> = HashSet::new();
        let mut stale_rules = Vec::new();
        for (handle, comment) in &rules {
            let wanted = comment.as_ref().filter(|c| {
                !recreate_chain
                    && jail_rules
                        .iter()
                        .any(|(set, r)| &r.comment == *c && !recreate.contains(set))
            });
            match wanted {
                Some(c) if keep.insert(c.clone()) => {}
                _ => stale_rules.push(*handle),
            }
        }
        let missing_sets: Vec<&SetSpec> = sets
            .iter()
            .filter(|s| !existing.contains_key(&s.name) || recreate.contains(&s.name))
            .collect();
        let missing_rules: Vec<_> = jail_rules
            .iter()
            .filter(|(_, r)| !keep.contains(&r.comment))
            .collect();
        if chain == Some(true)
            && stale_rules.is_empty()
            && stale_sets.is_empty()
            && missing_sets.is_empty()
            && missing_rules.is_empty()
        {
            return Ok(existing);
        }

        let mut b = self.sock.batch();
        let nl = |e| map_err(e, "configure", None);
        b.rustables(
            RsObject::Table(&layout::table()),
            MsgType::Add,
            "table inet jailwarden",
        )
        .map_err(nl)?;
        let chain = layout::chain();
        for handle in &stale_rules {
            let rule = rustables::Rule::new(&chain)
                .map_err(|e| BanError::Other(e.to_string()))?
                .with_handle(*handle);
            b.rustables(
                RsObject::Rule(&rule),
                MsgType::Del,
                format!("delete rule {handle}"),
            )
            .map_err(nl)?;
        }
        if recreate_chain {
            tracing::warn!("chain inet {TABLE} {CHAIN} was changed behind our back; recreating it");
            // By name only: with a hook attribute, deletion means something
            // else for netdev chains.
            let by_name = rustables::Chain::new(&layout::table()).with_name(CHAIN);
            b.rustables(
                RsObject::Chain(&by_name),
                MsgType::Del,
                "delete the changed chain",
            )
            .map_err(nl)?;
        }
        b.rustables(RsObject::Chain(&chain), MsgType::Add, "chain input")
            .map_err(nl)?;
        for name in &stale_sets {
            b.message(
                nf::NFT_MSG_DELSET as u16,
                0,
                libc::NFPROTO_INET as u8,
                format!("delete set {name}"),
                |w| {
                    w.put_str(nf::NFTA_SET_TABLE, TABLE);
                    w.put_str(nf::NFTA_SET_NAME, name);
                },
            );
            existing.remove(name);
        }
        for spec in &missing_sets {
            let id = alloc();
            add_set_message(&mut b, spec, id);
            existing.insert(
                spec.name.clone(),
                SetInfo {
                    flags: spec.flags(),
                    key_len: spec.family.key_len() as u32,
                    size: spec.size,
                    count: Some(0),
                },
            );
        }
        for (set, r) in &missing_rules {
            for anon in &r.anon_sets {
                b.message(
                    nf::NFT_MSG_NEWSET as u16,
                    nf::NLM_F_CREATE as u16,
                    libc::NFPROTO_INET as u8,
                    format!("anonymous set of the rule for {set}"),
                    |w| {
                        w.put_str(nf::NFTA_SET_TABLE, TABLE);
                        w.put_str(nf::NFTA_SET_NAME, layout::AnonSet::NAME);
                        w.put_u32(nf::NFTA_SET_FLAGS, anon.flags());
                        w.put_u32(nf::NFTA_SET_KEY_TYPE, anon.key_type);
                        w.put_u32(nf::NFTA_SET_KEY_LEN, anon.key_len);
                        w.put_u32(nf::NFTA_SET_ID, anon.id);
                    },
                );
                b.elements(
                    nf::NFT_MSG_NEWSETELEM as u16,
                    nf::NLM_F_CREATE as u16,
                    TABLE,
                    layout::AnonSet::NAME,
                    Some(anon.id),
                    &format!("elements of the rule for {set}"),
                    anon.elements.iter().map(|(k, flags)| {
                        let (key, key_len) = ElemOut::key_from(k);
                        ElemOut {
                            id: 0,
                            key,
                            key_len,
                            flags: *flags,
                            timeout_ms: None,
                        }
                    }),
                );
            }
            b.rustables(
                RsObject::Rule(&r.rule),
                MsgType::Add,
                format!("rule for set {set}"),
            )
            .map_err(nl)?;
        }
        tracing::info!(
            stale_rules = stale_rules.len(),
            stale_sets = stale_sets.len(),
            new_sets = missing_sets.len(),
            new_rules = missing_rules.len(),
            "updating table inet {TABLE}"
        );
        self.sock.commit(b.finish()).map_err(nl)?;
        Ok(existing)
    }

    /// Our chain as the kernel has it: `None` when it (or the table) is
    /// missing, `Some(true)` when it is the base chain we create,
    /// `Some(false)` when its hook, priority, type or policy were changed
    /// (a `policy drop` set by hand would cut the host off).
    fn our_chain(&mut self) -> Result<Option<bool>, BanError> {
        let mut found = None;
        let r = retry_dump(|| {
            found = None;
            self.sock.dump(
                nf::NFT_MSG_GETCHAIN as u16,
                libc::NFPROTO_INET as u8,
                |w| w.put_str(nf::NFTA_CHAIN_TABLE, TABLE),
                &mut |m| {
                    let (mut table, mut name, mut ty) =
                        (String::new(), String::new(), String::new());
                    let (mut hook, mut prio, mut policy) = (None, None, None);
                    for (t, v) in m.attrs()? {
                        match t {
                            nf::NFTA_CHAIN_TABLE => table = netlink::string(v),
                            nf::NFTA_CHAIN_NAME => name = netlink::string(v),
                            nf::NFTA_CHAIN_TYPE => ty = netlink::string(v),
                            nf::NFTA_CHAIN_POLICY => policy = netlink::be_u32(v),
                            nf::NFTA_CHAIN_HOOK => {
                                for (t, v) in netlink::Attrs::new(v) {
                                    match t {
                                        nf::NFTA_HOOK_HOOKNUM => hook = netlink::be_u32(v),
                                        nf::NFTA_HOOK_PRIORITY => {
                                            prio = netlink::be_u32(v).map(|p| p as i32)
                                        }
                                        _ => {}
                                    }
                                }
                            }
                            _ => {}
                        }
                    }
                    if table == TABLE && name == CHAIN {
                        found = Some(
                            hook == Some(libc::NF_INET_LOCAL_IN as u32)
                                && prio == Some(CHAIN_PRIORITY)
                                && policy == Some(libc::NF_ACCEPT as u32)
                                && ty == "filter",
                        );
                    }
                    Ok(())
                },
            )
        });
        match r {
            Ok(()) => Ok(found),
            Err(e) if e.errno() == Some(libc::ENOENT) => Ok(None),
            Err(e) => Err(map_err(e, "list chains", None)),
        }
    }

    /// The sets of our table.
    fn list_sets(&mut self) -> Result<HashMap<String, SetInfo>, BanError> {
        let mut sets = HashMap::new();
        let r = retry_dump(|| {
            sets.clear();
            self.sock.dump(
                nf::NFT_MSG_GETSET as u16,
                libc::NFPROTO_INET as u8,
                |w| w.put_str(nf::NFTA_SET_TABLE, TABLE),
                &mut |m| {
                    let mut table = String::new();
                    let mut name = String::new();
                    let mut info = SetInfo::default();
                    for (ty, v) in m.attrs()? {
                        match ty {
                            nf::NFTA_SET_TABLE => table = netlink::string(v),
                            nf::NFTA_SET_NAME => name = netlink::string(v),
                            nf::NFTA_SET_FLAGS => info.flags = netlink::be_u32(v).unwrap_or(0),
                            nf::NFTA_SET_KEY_LEN => info.key_len = netlink::be_u32(v).unwrap_or(0),
                            nf::NFTA_SET_DESC => {
                                for (ty, v) in netlink::Attrs::new(v) {
                                    if ty == nf::NFTA_SET_DESC_SIZE {
                                        info.size = netlink::be_u32(v).unwrap_or(0);
                                    }
                                }
                            }
                            netlink::NFTA_SET_COUNT => info.count = netlink::be_u32(v),
                            _ => {}
                        }
                    }
                    if table == TABLE {
                        sets.insert(name, info);
                    }
                    Ok(())
                },
            )
        });
        match r {
            Ok(()) => Ok(sets),
            Err(e) if e.errno() == Some(libc::ENOENT) => Ok(HashMap::new()),
            Err(e) => Err(map_err(e, "list sets", None)),
        }
    }

    /// The rules of our chain: handle and comment.
    fn list_rules(&mut self) -> Result<Vec<(u64, Option<String>)>, BanError> {
        let mut rules = Vec::new();
        let r = retry_dump(|| {
            rules.clear();
            self.sock.dump(
                nf::NFT_MSG_GETRULE as u16,
                libc::NFPROTO_INET as u8,
                |w| {
                    w.put_str(nf::NFTA_RULE_TABLE, TABLE);
                    w.put_str(nf::NFTA_RULE_CHAIN, CHAIN);
                },
                &mut |m| {
                    let mut handle = None;
                    let mut comment = None;
                    let mut chain = String::new();
                    for (ty, v) in m.attrs()? {
                        match ty {
                            nf::NFTA_RULE_HANDLE => handle = netlink::be_u64(v),
                            nf::NFTA_RULE_USERDATA => comment = layout::udata_comment(v),
                            nf::NFTA_RULE_CHAIN => chain = netlink::string(v),
                            _ => {}
                        }
                    }
                    if let (Some(h), true) = (handle, chain == CHAIN) {
                        rules.push((h, comment));
                    }
                    Ok(())
                },
            )
        });
        match r {
            Ok(()) => Ok(rules),
            Err(e) if e.errno() == Some(libc::ENOENT) => Ok(Vec::new()),
            Err(e) => Err(map_err(e, "list rules", None)),
        }
    }

    /// Every element of a set, by dump, as sorted spans.
    fn read_dump(&mut self, spec: &SetSpec, t0: Instant) -> Result<Vec<(Span, Seen)>, BanError> {
        let mut raw: Vec<(u128, bool, Seen)> = Vec::new();
        let family = spec.family;
        retry_dump(|| {
            raw.clear();
            self.sock.dump(
                nf::NFT_MSG_GETSETELEM as u16,
                libc::NFPROTO_INET as u8,
                |w| {
                    w.put_str(nf::NFTA_SET_ELEM_LIST_TABLE, TABLE);
                    w.put_str(nf::NFTA_SET_ELEM_LIST_SET, &spec.name);
                },
                &mut |m| {
                    let at = t0.elapsed();
                    netlink::parse_elements(m, &mut |e: ElemIn| {
                        if let Some(v) = layout::key_value(family, e.key) {
                            let end = e.flags & libc::NFT_SET_ELEM_INTERVAL_END as u32 != 0;
                            raw.push((
                                v,
                                end,
                                Seen {
                                    timeout_ms: e.timeout_ms,
                                    expires_ms: e.expires_ms,
                                    at,
                                },
                            ));
                        }
                    })
                },
            )
        })
        .map_err(|e| map_err(e, "list set elements", None))?;
        Ok(assemble_spans(raw, spec.interval, family))
    }

    /// The wanted elements of a (non-interval) set, looked up by key:
    /// `None` where the kernel has no element.
    fn read_keys(
        &mut self,
        spec: &SetSpec,
        spans: &[Span],
        t0: Instant,
    ) -> Result<Vec<Option<Seen>>, BanError> {
        // (Splitting this over threads with a socket each did not help: the
        // kernel's ~2.5 µs per key did not overlap.)
        lookup_spans(&mut self.sock, spec, spans, t0)
    }

    /// The kernel's elements of set `spec`, read the cheapest correct way
    /// (see the module docs), sorted by span.
    fn read_set(
        &mut self,
        spec: &SetSpec,
        want: &[(Span, Want)],
        count: Option<u32>,
        t0: Instant,
    ) -> Result<Vec<(Span, Seen)>, BanError> {
        match count {
            Some(c) if !spec.interval && c > DUMP_AT_MOST => {
                let spans: Vec<Span> = want.iter().map(|(s, _)| *s).collect();
                let found = self.read_keys(spec, &spans, t0)?;
                let present = found.iter().filter(|f| f.is_some()).count();
                if present as u64 >= u64::from(c) {
                    return Ok(spans
                        .into_iter()
                        .zip(found)
                        .filter_map(|(s, f)| f.map(|f| (s, f)))
                        .collect());
                }
                // More elements than we want: find the others.
                tracing::debug!(set = %spec.name, count = c, present, "set holds unwanted elements; dumping it");
                self.read_dump(spec, t0)
            }
            _ => self.read_dump(spec, t0),
        }
    }

    /// Apply element changes, in as few transactions as the socket allows
    /// (one unless the batch exceeds the send buffer). Errors name the
    /// jail and element the kernel refused.
    ///
    /// Timeouts were computed at `since` (the caller's `now`); each batch
    /// takes off the time gone by before it is sent, so that a big batch
    /// does not end its bans late.
    fn apply(
        &mut self,
        mut ops: Vec<Op>,
        what: &'static str,
        since: Instant,
    ) -> Result<(), BanError> {
        let limits = self.limits_or_err()?;
        let sets: Vec<SetSpec> = self.sets().into_iter().cloned().collect();
        let limit = self
            .sock
            .max_batch_bytes()
            .saturating_sub(256 * 1024)
            .max(64 * 1024);
        let mut start = 0;
        let mut retries = 0usize;
        while start < ops.len() {
            let mut b = self.sock.batch();
            let lag_ms = u64::try_from(since.elapsed().as_millis()).unwrap_or(u64::MAX);
            let mut end = start;
            while end < ops.len() && b.bytes() < limit {
                let first = ops[end];
                let mut j = end + 1;
                while j < ops.len()
                    && j - end < 4096
                    && ops[j].set == first.set
                    && ops[j].kind == first.kind
                {
                    j += 1;
                }
                let Some(spec) = sets.get(first.set) else {
                    return Err(BanError::Other(
                        "internal: element of an unknown set".into(),
                    ));
                };
                let (msg, flags, label) = match first.kind {
                    Kind::Add => (
                        nf::NFT_MSG_NEWSETELEM as u16,
                        nf::NLM_F_CREATE as u16,
                        "add",
                    ),
                    Kind::Delete if limits.destroy => {
                        (netlink::NFT_MSG_DESTROYSETELEM, 0, "delete")
                    }
                    Kind::Delete => (nf::NFT_MSG_DELSETELEM as u16, 0, "delete"),
                };
                b.elements(
                    msg,
                    flags,
                    TABLE,
                    &spec.name,
                    None,
                    label,
                    ops[end..j]
                        .iter()
                        .enumerate()
                        .flat_map(|(k, op)| encode(spec, op, (end + k) as u32, lag_ms)),
                );
                end = j;
            }
            match self.sock.commit(b.finish()) {
                Ok(()) => start = end,
                Err(e) => {
                    // Without DESTROYSETELEM, deleting an element that is
                    // already gone (expired) fails the batch with ENOENT:
                    // drop that deletion and try again.
                    if let (
                        Some(libc::ENOENT),
                        NlError::Kernel {
                            element: Some(id), ..
                        },
                    ) = (e.errno(), &e)
                    {
                        let id = *id as usize;
                        if !limits.destroy
                            && ops.get(id).is_some_and(|op| op.kind == Kind::Delete)
                            && retries < ops.len()
                        {
                            ops.remove(id);
                            retries += 1;
                            continue;
                        }
                    }
                    let element = match &e {
                        NlError::Kernel {
                            element: Some(id), ..
                        } => ops
                            .get(*id as usize)
                            .and_then(|op| sets.get(op.set).map(|s| (s, op.span))),
                        _ => None,
                    };
                    return Err(map_err(
                        e,
                        what,
                        element.map(|(s, span)| (s.jail.clone(), span.display(s.family))),
                    ));
                }
            }
        }
        Ok(())
    }

    /// Probe the kernel in a throwaway set; see the module docs.
    fn probe(&mut self) -> Result<KernelLimits, BanError> {
        let spec = SetSpec {
            jail: "(probe)".into(),
            name: PROBE_SET.into(),
            family: Family::V4,
            interval: false,
            size: 0,
        };
        let err = |e| map_err(e, "probe the kernel", None);
        // A probe set left over by a crash: delete it (absent is fine).
        let mut b = self.sock.batch();
        b.message(
            nf::NFT_MSG_DELSET as u16,
            0,
            libc::NFPROTO_INET as u8,
            "delete probe set",
            |w| {
                w.put_str(nf::NFTA_SET_TABLE, TABLE);
                w.put_str(nf::NFTA_SET_NAME, PROBE_SET);
            },
        );
        match self.sock.commit(b.finish()) {
            Err(e) if e.errno() != Some(libc::ENOENT) => return Err(err(e)),
            _ => {}
        }
        let mut b = self.sock.batch();
        add_set_message(&mut b, &spec, 1);
        self.sock.commit(b.finish()).map_err(err)?;

        let result = self.probe_in();

        let mut b = self.sock.batch();
        b.message(
            nf::NFT_MSG_DELSET as u16,
            0,
            libc::NFPROTO_INET as u8,
            "delete probe set",
            |w| {
                w.put_str(nf::NFTA_SET_TABLE, TABLE);
                w.put_str(nf::NFTA_SET_NAME, PROBE_SET);
            },
        );
        self.sock.commit(b.finish()).map_err(err)?;
        let limits = result?;
        tracing::info!(?limits, "probed nf_tables");
        Ok(limits)
    }

    fn probe_in(&mut self) -> Result<KernelLimits, BanError> {
        let err = |e| map_err(e, "probe the kernel", None);
        // Keys from 10.0.0.0/8, in the throwaway set only (no rule uses it).
        let mut keys = 0x0a00_0000u32..;

        // Deleting an absent element with DESTROYSETELEM.
        let destroy = match self.probe_elem(netlink::NFT_MSG_DESTROYSETELEM, keys.next(), None) {
            Ok(()) => true,
            Err(e) if matches!(e.errno(), Some(libc::EOPNOTSUPP | libc::EINVAL | 524)) => false,
            Err(e) => return Err(err(e)),
        };

        // Sets reporting their element count.
        let set_count = self
            .list_sets()?
            .get(PROBE_SET)
            .is_some_and(|i| i.count.is_some());

        // Re-adding an element with a new timeout updates it.
        let k = keys.next();
        let add = nf::NFT_MSG_NEWSETELEM as u16;
        self.probe_elem(add, k, Some(60_000)).map_err(err)?;
        self.probe_elem(add, k, Some(120_000)).map_err(err)?;
        let timeout_update = self.probe_read(k).map_err(err)?.is_some_and(|t| t > 60_000);

        // The largest timeout: binary search to the second.
        let mut lo = 1000u64;
        if !self.probe_accepts(keys.next(), lo)? {
            return Err(BanError::Unsupported(io::Error::other(
                "the kernel refuses set element timeouts",
            )));
        }
        let max_ms = if self.probe_accepts(keys.next(), u64::MAX)? {
            u64::MAX
        } else {
            let mut hi = u64::MAX;
            while hi - lo > 1000 {
                let mid = lo + (hi - lo) / 2;
                if self.probe_accepts(keys.next(), mid)? {
                    lo = mid;
                } else {
                    hi = mid;
                }
            }
            lo
        };
        Ok(KernelLimits {
            max_timeout: Duration::from_millis(max_ms),
            timeout_update,
            destroy,
            set_count,
        })
    }

    /// One element message on the probe set, in a batch of its own.
    fn probe_elem(
        &mut self,
        op: u16,
        key: Option<u32>,
        timeout_ms: Option<u64>,
    ) -> Result<(), NlError> {
        let (key, key_len) = ElemOut::key_from(&key.unwrap_or(0x0a00_0000).to_be_bytes());
        let flags = if op == nf::NFT_MSG_NEWSETELEM as u16 {
            nf::NLM_F_CREATE as u16
        } else {
            0
        };
        let mut b = self.sock.batch();
        let elem = ElemOut {
            id: 0,
            key,
            key_len,
            flags: 0,
            timeout_ms,
        };
        b.elements(op, flags, TABLE, PROBE_SET, None, "probe", [elem]);
        self.sock.commit(b.finish())
    }

    /// The timeout the kernel reports for a probe element.
    fn probe_read(&mut self, key: Option<u32>) -> Result<Option<u64>, NlError> {
        let k = ElemOut::key_from(&key.unwrap_or(0x0a00_0000).to_be_bytes());
        let mut got = None;
        self.sock
            .lookup(TABLE, PROBE_SET, 1, &|_| k, &mut |_, e| got = e.timeout_ms)?;
        Ok(got)
    }

    /// Does the kernel take an element timeout of `ms` and report it back
    /// intact (not refused, not wrapped around)?
    fn probe_accepts(&mut self, key: Option<u32>, ms: u64) -> Result<bool, BanError> {
        match self.probe_elem(nf::NFT_MSG_NEWSETELEM as u16, key, Some(ms)) {
            Ok(()) => {}
            Err(e)
                if matches!(
                    e.errno(),
                    Some(libc::ERANGE | libc::EINVAL | libc::EOVERFLOW)
                ) =>
            {
                return Ok(false);
            }
            Err(e) => return Err(map_err(e, "probe the kernel", None)),
        }
        let got = self
            .probe_read(key)
            .map_err(|e| map_err(e, "probe the kernel", None))?;
        // Jiffies round the timeout down a little.
        Ok(got.is_some_and(|t| t <= ms && ms - t <= 1000))
    }

    /// Record when clamped elements lapse; forget the others.
    fn note_lapses(&mut self, sets: &[SetSpec], changes: &[(usize, Span, Option<Timestamp>)]) {
        for (si, span, lapse) in changes {
            let Some(spec) = sets.get(*si) else { continue };
            let key = (spec.name.clone(), *span);
            match lapse {
                Some(t) => {
                    self.lapses.insert(key, *t);
                }
                None => {
                    self.lapses.remove(&key);
                }
            }
        }
    }
}

impl Banner for Nftables {
    fn name(&self) -> &'static str {
        "nftables"
    }

    fn configure(&mut self, jails: &[JailFirewall]) -> Result<(), BanError> {
        let mut seen_jails = HashSet::new();
        let mut seen_sets = HashSet::new();
        let mut new = Vec::with_capacity(jails.len());
        for fw in jails {
            let bad = |reason: String| BanError::BadConfig {
                jail: fw.jail.clone(),
                reason,
            };
            if !seen_jails.insert(fw.jail.as_str()) {
                return Err(bad("configured twice".into()));
            }
            if fw.v6_prefix == 0 || fw.v6_prefix > 128 {
                return Err(bad(format!(
                    "v6_prefix must be 1..=128, not {}",
                    fw.v6_prefix
                )));
            }
            let sets = layout::jail_sets(fw);
            for s in &sets {
                if !seen_sets.insert(s.name.clone()) {
                    return Err(bad(format!("set name {} is taken by another jail", s.name)));
                }
            }
            new.push((fw.clone(), sets));
        }
        self.jails = new;
        self.ensure_structure()?;
        if self.limits.is_none() {
            self.limits = Some(self.probe()?);
        }
        let names: HashSet<String> = self.sets().iter().map(|s| s.name.clone()).collect();
        self.lapses.retain(|(set, _), _| names.contains(set));
        Ok(())
    }

    fn reconcile(&mut self, bans: &[Ban], now: Timestamp) -> Result<ReconcileReport, BanError> {
        // `now` is taken as this instant: kernel times are measured from it.
        let started = Instant::now();
        let limits = self.limits_or_err()?;
        let wanted = self.wanted(bans, now)?;
        let infos = self.ensure_structure()?;
        let sets: Vec<SetSpec> = self.sets().into_iter().cloned().collect();
        let t0 = started;
        let half_max = limits.max_timeout / 2;
        let mut report = ReconcileReport::default();
        let mut ops = Vec::new();
        let mut lapses = Vec::new();
        for (si, spec) in sets.iter().enumerate() {
            let want = &wanted[si];
            let count = infos.get(&spec.name).and_then(|i| i.count);
            let count = if limits.set_count { count } else { None };
            let read_start = t0.elapsed();
            let kernel = self.read_set(spec, want, count, t0)?;
            tracing::debug!(
                set = %spec.name,
                elements = kernel.len(),
                took = ?(t0.elapsed() - read_start),
                "read set back"
            );
            // Merge the two sorted lists.
            let (mut w, mut k) = (0, 0);
            while w < want.len() || k < kernel.len() {
                let order = match (want.get(w), kernel.get(k)) {
                    (Some(a), Some(b)) => a.0.cmp(&b.0),
                    (Some(_), None) => std::cmp::Ordering::Less,
                    _ => std::cmp::Ordering::Greater,
                };
                match order {
                    std::cmp::Ordering::Less => {
                        let (span, want) = want[w];
                        ops.push(add_op(si, span, want));
                        lapses.push((si, span, lapse_of(&want, now)));
                        report.added += 1;
                        w += 1;
                    }
                    std::cmp::Ordering::Greater => {
                        let (span, _) = kernel[k];
                        ops.push(Op {
                            set: si,
                            kind: Kind::Delete,
                            span,
                            timeout_ms: None,
                        });
                        lapses.push((si, span, None));
                        report.removed += 1;
                        k += 1;
                    }
                    std::cmp::Ordering::Equal => {
                        let (span, want) = want[w];
                        let seen = kernel[k].1;
                        let kernel_end = seen_end(&seen, now);
                        if fits(&want, &seen, kernel_end, now, half_max) {
                            report.kept += 1;
                            // Remember an early kernel expiry (clamped,
                            // possibly by another instance).
                            let lapse = match (kernel_end, want.end) {
                                (Some(ke), Some(end)) if ke < end - DRIFT_TOLERANCE => Some(ke),
                                _ => None,
                            };
                            lapses.push((si, span, lapse));
                        } else {
                            if !limits.timeout_update {
                                ops.push(Op {
                                    set: si,
                                    kind: Kind::Delete,
                                    span,
                                    timeout_ms: None,
                                });
                            }
                            ops.push(add_op(si, span, want));
                            lapses.push((si, span, lapse_of(&want, now)));
                            report.renewed += 1;
                        }
                        w += 1;
                        k += 1;
                    }
                }
            }
        }
        // Deletions first: they may make room in capped sets.
        ops.sort_by_key(|op| (op.kind == Kind::Add, op.set));
        tracing::debug!(changes = ops.len(), took = ?started.elapsed(), "reconcile compared");
        self.apply(ops, "reconcile", started)?;
        tracing::debug!(?report, took = ?started.elapsed(), "reconciled");
        self.note_lapses(&sets, &lapses);
        Ok(report)
    }

    fn ban(&mut self, bans: &[Ban], now: Timestamp) -> Result<(), BanError> {
        let started = Instant::now();
        let limits = self.limits_or_err()?;
        let wanted = self.wanted(bans, now)?;
        let sets: Vec<SetSpec> = self.sets().into_iter().cloned().collect();
        let mut ops = Vec::new();
        let mut lapses = Vec::new();
        let t0 = started;
        for (si, want) in wanted.iter().enumerate() {
            if want.is_empty() {
                continue;
            }
            if !limits.timeout_update {
                // Re-adding would keep the old timeout: delete what exists.
                let spec = &sets[si];
                let present: Vec<Span> = if spec.interval {
                    let wanted_spans: BTreeSet<Span> = want.iter().map(|(s, _)| *s).collect();
                    self.read_dump(spec, t0)?
                        .into_iter()
                        .map(|(s, _)| s)
                        .filter(|s| wanted_spans.contains(s))
                        .collect()
                } else {
                    let spans: Vec<Span> = want.iter().map(|(s, _)| *s).collect();
                    let found = self.read_keys(spec, &spans, t0)?;
                    spans
                        .into_iter()
                        .zip(found)
                        .filter_map(|(s, f)| f.map(|_| s))
                        .collect()
                };
                ops.extend(present.into_iter().map(|span| Op {
                    set: si,
                    kind: Kind::Delete,
                    span,
                    timeout_ms: None,
                }));
            }
            for (span, w) in want {
                ops.push(add_op(si, *span, *w));
                lapses.push((si, *span, lapse_of(w, now)));
            }
        }
        if let Err(e) = self.apply(ops.clone(), "ban", started) {
            // Our table or set was deleted behind our back (`nft flush
            // ruleset`, another firewall manager): put it back, ban again.
            if !set_missing(&e) {
                return Err(e);
            }
            tracing::warn!("table inet {TABLE} lost its sets; recreating them: {e}");
            self.ensure_structure()?;
            self.apply(ops, "ban", started)?;
        }
        self.note_lapses(&sets, &lapses);
        Ok(())
    }

    fn unban(&mut self, bans: &[Ban]) -> Result<(), BanError> {
        let started = Instant::now();
        self.limits_or_err()?;
        let sets: Vec<SetSpec> = self.sets().into_iter().cloned().collect();
        let mut ops = Vec::new();
        let mut lapses = Vec::new();
        for ban in bans {
            let net = canonical_net(ban.net);
            let (family, span) = Span::of_net(net);
            let Some(si) = self
                .jails
                .iter()
                .position(|(fw, _)| fw.jail == ban.jail)
                .map(|j| j * 2 + usize::from(family == Family::V6))
            else {
                return Err(BanError::UnknownJail {
                    jail: ban.jail.clone(),
                });
            };
            // A network the set cannot hold was never banned; deleting its
            // first address instead would lift the wrong ban.
            layout::check_element(&sets[si], span).map_err(|e| BanError::BadElement {
                jail: ban.jail.clone(),
                element: net.to_string(),
                reason: e.to_string(),
            })?;
            ops.push(Op {
                set: si,
                kind: Kind::Delete,
                span,
                timeout_ms: None,
            });
            lapses.push((si, span, None));
        }
        ops.sort_by_key(|op| (op.set, op.span));
        ops.dedup_by_key(|op| (op.set, op.span));
        match self.apply(ops, "unban", started) {
            // The set (or table) is gone, and its bans with it.
            Err(e) if set_missing(&e) => {}
            r => r?,
        }
        self.note_lapses(&sets, &lapses);
        Ok(())
    }

    fn shrink(&mut self) {
        self.sock.release_buffer();
    }

    fn shutdown(&mut self, flush: bool) -> Result<(), BanError> {
        if !flush {
            // Bans stay in force; their timeouts keep running.
            return Ok(());
        }
        let mut b = self.sock.batch();
        b.rustables(
            RsObject::Table(&layout::table()),
            MsgType::Del,
            "delete table inet jailwarden",
        )
        .map_err(|e| map_err(e, "shutdown", None))?;
        match self.sock.commit(b.finish()) {
            Ok(()) => {}
            Err(e) if e.errno() == Some(libc::ENOENT) => {}
            Err(e) => return Err(map_err(e, "shutdown", None)),
        }
        self.lapses.clear();
        Ok(())
    }

    fn recover(&mut self, now: Timestamp) -> Result<Vec<Ban>, BanError> {
        let jails: Vec<String> = self.jails.iter().map(|(fw, _)| fw.jail.clone()).collect();
        let mut out = Vec::new();
        for jail in jails {
            for e in self.elements(&jail)? {
                let Some(net) = e.net() else { continue };
                let (banned_at, expires_at) = match (e.timeout, e.expires_in) {
                    (Some(timeout), left) => {
                        let left = jiff::SignedDuration::try_from(left.unwrap_or(timeout))
                            .unwrap_or_default();
                        let ran = jiff::SignedDuration::try_from(timeout)
                            .unwrap_or_default()
                            .checked_sub(left)
                            .unwrap_or_default();
                        (
                            now.checked_sub(ran).unwrap_or(now),
                            Some(now.checked_add(left).unwrap_or(now)),
                        )
                    }
                    (None, _) => (now, None),
                };
                out.push(Ban {
                    jail: jail.clone(),
                    net,
                    banned_at,
                    expires_at,
                    failures: 0,
                });
            }
        }
        Ok(out)
    }
}

/// IPv4-mapped IPv6 addresses are banned as the IPv4 address
/// (see [`crate::addr::canonical`]).
fn canonical_net(net: IpNet) -> IpNet {
    match net {
        IpNet::V6(n) if n.prefix_len() == 128 => {
            IpNet::from(crate::addr::canonical(n.addr().into()))
        }
        n => n,
    }
}

/// Orders wants: the one lasting longer first.
fn longer(a: &Want, b: &Want) -> std::cmp::Ordering {
    match (a.end, b.end) {
        (None, None) => std::cmp::Ordering::Equal,
        (None, Some(_)) => std::cmp::Ordering::Greater,
        (Some(_), None) => std::cmp::Ordering::Less,
        (Some(x), Some(y)) => x.cmp(&y),
    }
}

/// In an interval set, a span inside another wanted span (a /128 inside a
/// banned /64) would overlap it, which the kernel refuses. Drop it when the
/// outer ban lasts at least as long: it adds nothing. `v` is sorted with
/// containers first; prefixes nest or are disjoint, so a stack of the
/// enclosing spans finds the innermost one.
fn drop_covered(v: &mut Vec<(Span, Want)>) {
    let mut out: Vec<(Span, Want)> = Vec::with_capacity(v.len());
    let mut enclosing: Vec<(Span, Want)> = Vec::new();
    for (span, want) in v.drain(..) {
        while enclosing
            .last()
            .is_some_and(|(outer, _)| outer.last < span.first)
        {
            enclosing.pop();
        }
        if let Some((outer, ow)) = enclosing.last()
            && span.last <= outer.last
            && longer(ow, &want) != std::cmp::Ordering::Less
        {
            continue;
        }
        enclosing.push((span, want));
        out.push((span, want));
    }
    *v = out;
}

fn add_op(set: usize, span: Span, want: Want) -> Op {
    Op {
        set,
        kind: Kind::Add,
        span,
        timeout_ms: want.timeout_ms,
    }
}

/// When the kernel will drop an element installed now for `want`, if that
/// is before the ban's end (its timeout was clamped).
fn lapse_of(want: &Want, now: Timestamp) -> Option<Timestamp> {
    if !want.clamped {
        return None;
    }
    let ms = want.timeout_ms?;
    now.checked_add(jiff::SignedDuration::from_millis(
        i64::try_from(ms).unwrap_or(i64::MAX),
    ))
    .ok()
}

/// When the kernel will drop an element it reported.
fn seen_end(seen: &Seen, now: Timestamp) -> Option<Timestamp> {
    let left = Duration::from_millis(seen.expires_ms?) + seen.at;
    now.checked_add(jiff::SignedDuration::try_from(left).ok()?)
        .ok()
}

/// Does the kernel's element do what the ban wants?
fn fits(
    want: &Want,
    seen: &Seen,
    kernel_end: Option<Timestamp>,
    now: Timestamp,
    half_max: Duration,
) -> bool {
    let tol = jiff::SignedDuration::try_from(DRIFT_TOLERANCE).unwrap_or_default();
    match (want.timeout_ms, seen.timeout_ms.filter(|t| *t != 0)) {
        (None, None) => true,
        (None, Some(_)) | (Some(_), None) => false,
        (Some(_), Some(_)) => {
            let (Some(ke), Some(end)) = (kernel_end, want.end) else {
                return false;
            };
            if want.clamped {
                // Fine while it has at least half the maximum left and does
                // not outlast the ban.
                let half = jiff::SignedDuration::try_from(half_max).unwrap_or_default();
                ke <= end + tol && now.checked_add(half).is_ok_and(|h| ke >= h)
            } else {
                (ke - end).abs() <= tol
            }
        }
    }
}

/// Turn raw elements (value, is interval end, seen) into spans. Hash sets:
/// one address each. Interval sets: a start element up to the next end
/// element (exclusive), or to the next start, or to the top.
fn assemble_spans(
    mut raw: Vec<(u128, bool, Seen)>,
    interval: bool,
    family: Family,
) -> Vec<(Span, Seen)> {
    if !interval {
        let mut v: Vec<(Span, Seen)> = raw
            .into_iter()
            .filter(|(_, end, _)| !end)
            .map(|(v, _, s)| (Span { first: v, last: v }, s))
            .collect();
        v.sort_by_key(|(s, _)| *s);
        return v;
    }
    // At equal values, an end (of one interval) comes before a start (of
    // the adjacent one).
    raw.sort_by_key(|(v, end, _)| (*v, !*end));
    let mut out = Vec::new();
    let mut open: Option<(u128, Seen)> = None;
    for (v, end, seen) in raw {
        if end {
            // A lone end (nft adds one at 0) closes nothing.
            if let Some((first, s)) = open.take()
                && v > first
            {
                out.push((Span { first, last: v - 1 }, s));
            }
        } else {
            if let Some((first, s)) = open.take()
                && v > first
            {
                out.push((Span { first, last: v - 1 }, s));
            }
            open = Some((v, seen));
        }
    }
    if let Some((first, s)) = open {
        out.push((
            Span {
                first,
                last: family.max(),
            },
            s,
        ));
    }
    out
}

/// The wire elements of one change: one element, or for an interval set a
/// start element (with the timeout) and an end element (without: the
/// kernel refuses timeouts on interval ends) unless the span reaches the
/// top of the address space.
fn encode(spec: &SetSpec, op: &Op, id: u32, lag_ms: u64) -> impl Iterator<Item = ElemOut> {
    let (key, key_len) = layout::key(spec.family, op.span.first);
    let timeout_ms = match op.kind {
        // Never 0 (that would mean "never expires").
        Kind::Add => op.timeout_ms.map(|t| t.saturating_sub(lag_ms).max(1)),
        Kind::Delete => None,
    };
    let start = ElemOut {
        id,
        key,
        key_len,
        flags: 0,
        timeout_ms,
    };
    let end = (spec.interval && op.span.last < spec.family.max()).then(|| {
        let (key, key_len) = layout::key(spec.family, op.span.last + 1);
        ElemOut {
            id,
            key,
            key_len,
            flags: libc::NFT_SET_ELEM_INTERVAL_END as u32,
            timeout_ms: None,
        }
    });
    std::iter::once(start).chain(end)
}

/// `NFT_MSG_NEWSET` for one of our sets (rustables' `Set` has no size).
fn add_set_message(b: &mut Batch, spec: &SetSpec, id: u32) {
    b.message(
        nf::NFT_MSG_NEWSET as u16,
        nf::NLM_F_CREATE as u16,
        libc::NFPROTO_INET as u8,
        format!("set {}", spec.name),
        |w| {
            w.put_str(nf::NFTA_SET_TABLE, TABLE);
            w.put_str(nf::NFTA_SET_NAME, &spec.name);
            w.put_u32(nf::NFTA_SET_FLAGS, spec.flags());
            w.put_u32(nf::NFTA_SET_KEY_TYPE, spec.family.key_type());
            w.put_u32(nf::NFTA_SET_KEY_LEN, spec.family.key_len() as u32);
            w.put_u32(nf::NFTA_SET_ID, id);
            if spec.size > 0 {
                let d = w.nest(nf::NFTA_SET_DESC);
                w.put_u32(nf::NFTA_SET_DESC_SIZE, spec.size);
                w.end_nest(d);
            }
            w.put(nf::NFTA_SET_USERDATA, &layout::set_udata());
        },
    );
}

/// Look `spans` (single addresses) of set `spec` up by key on `sock`.
fn lookup_spans(
    sock: &mut Socket,
    spec: &SetSpec,
    spans: &[Span],
    t0: Instant,
) -> Result<Vec<Option<Seen>>, BanError> {
    let family = spec.family;
    let mut out = vec![None; spans.len()];
    sock.lookup(
        TABLE,
        &spec.name,
        spans.len(),
        &|i| layout::key(family, spans[i].first),
        &mut |i, e| {
            if let Some(slot) = out.get_mut(i) {
                *slot = Some(Seen {
                    timeout_ms: e.timeout_ms,
                    expires_ms: e.expires_ms,
                    at: t0.elapsed(),
                });
            }
        },
    )
    .map_err(|e| map_err(e, "look up set elements", None))?;
    Ok(out)
}

/// Is this the kernel saying a set (or our table) does not exist, rather
/// than pointing at an element?
fn set_missing(e: &BanError) -> bool {
    matches!(e, BanError::Netlink { element: None, source, .. }
        if source.raw_os_error() == Some(libc::ENOENT))
}

/// Run a dump again when a concurrent ruleset change interrupted it.
fn retry_dump(mut f: impl FnMut() -> Result<(), NlError>) -> Result<(), NlError> {
    let mut tries = 0;
    loop {
        match f() {
            Err(NlError::Interrupted) if tries < 5 => tries += 1,
            r => return r,
        }
    }
}

/// Map a netlink failure to the daemon's error, naming the element
/// (jail, element text) when we know it.
fn map_err(e: NlError, op: &'static str, element: Option<(String, String)>) -> BanError {
    let errno = e.errno();
    let io_of = |e: NlError| match e {
        NlError::Open(s) | NlError::Send(s) | NlError::Recv(s) => s,
        NlError::Kernel { source, .. } => source,
        other => io::Error::other(other),
    };
    match errno {
        Some(libc::EPERM | libc::EACCES) => BanError::Permission(io_of(e)),
        Some(libc::EPROTONOSUPPORT | libc::EAFNOSUPPORT) => BanError::Unsupported(io_of(e)),
        Some(libc::EOPNOTSUPP) if element.is_none() => BanError::Unsupported(io_of(e)),
        Some(libc::ENFILE | libc::ENOSPC) if element.is_some() => {
            let (jail, element) = element.unwrap_or_default();
            BanError::SetFull { jail, element }
        }
        _ => BanError::Netlink {
            op,
            element: element.map(|(jail, el)| format!("{el} (jail {jail})")),
            source: io_of(e),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seen() -> Seen {
        Seen {
            timeout_ms: None,
            expires_ms: None,
            at: Duration::ZERO,
        }
    }

    #[test]
    fn interval_elements_become_spans() {
        let end = true;
        let raw = vec![
            (0, end, seen()), // nft's lone leading end
            (0x20, false, seen()),
            (0x30, end, seen()),
            (0x30, false, seen()), // adjacent interval
            (0x40, end, seen()),
            (0x80, false, seen()), // open to the top
        ];
        let spans: Vec<Span> = assemble_spans(raw, true, Family::V4)
            .into_iter()
            .map(|(s, _)| s)
            .collect();
        assert_eq!(
            spans,
            vec![
                Span {
                    first: 0x20,
                    last: 0x2f
                },
                Span {
                    first: 0x30,
                    last: 0x3f
                },
                Span {
                    first: 0x80,
                    last: u128::from(u32::MAX)
                },
            ]
        );
    }

    #[test]
    fn covered_spans_are_dropped_only_when_the_outer_ban_lasts() {
        let t = |s| Timestamp::from_second(s).unwrap();
        let w = |end| Want {
            timeout_ms: Some(1),
            end: Some(t(end)),
            clamped: false,
        };
        let outer = Span {
            first: 0,
            last: 0xff,
        };
        let inner = Span { first: 5, last: 5 };
        let mut v = vec![(outer, w(100)), (inner, w(50))];
        drop_covered(&mut v);
        assert_eq!(v.len(), 1);
        let mut v = vec![(outer, w(100)), (inner, w(500))];
        drop_covered(&mut v);
        assert_eq!(v.len(), 2, "the inner ban outlasts the outer one");
        // Nesting and siblings: a /56-like outer, two inner blocks, the
        // first outlasting the outer, and an address inside the first.
        let outer = Span {
            first: 0,
            last: 0xff,
        };
        let a = Span {
            first: 0,
            last: 0x0f,
        };
        let a1 = Span { first: 3, last: 3 };
        let b = Span {
            first: 0x10,
            last: 0x1f,
        };
        let mut v = vec![(outer, w(100)), (a, w(500)), (a1, w(400)), (b, w(50))];
        drop_covered(&mut v);
        let kept: Vec<Span> = v.iter().map(|(s, _)| *s).collect();
        assert_eq!(kept, [outer, a]);
    }

    #[test]
    fn drift_within_tolerance_is_kept() {
        let now = Timestamp::from_second(1_000_000).unwrap();
        let end = now + jiff::SignedDuration::from_secs(600);
        let want = Want {
            timeout_ms: Some(600_000),
            end: Some(end),
            clamped: false,
        };
        let at = |ms| Seen {
            timeout_ms: Some(600_000),
            expires_ms: Some(ms),
            at: Duration::ZERO,
        };
        let half = Duration::from_secs(1 << 40);
        for (ms, ok) in [
            (600_000, true),
            (599_000, true),
            (590_000, false),
            (700_000, false),
        ] {
            let s = at(ms);
            assert_eq!(fits(&want, &s, seen_end(&s, now), now, half), ok, "{ms}");
        }
        let permanent = Want {
            timeout_ms: None,
            end: None,
            clamped: false,
        };
        assert!(fits(&permanent, &seen(), None, now, half));
        let s = at(5000);
        assert!(!fits(&permanent, &s, seen_end(&s, now), now, half));
    }
}
