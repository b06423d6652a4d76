//! Enforcement: the [`Banner`] a jail's bans go through.
//!
//! The store is the truth about what should be banned until when; a banner
//! makes the firewall equal to it. Backends: [`none::LogOnly`] (detect and log
//! only) and the nftables one. Bans are plain data so that reconcile can
//! compare what the kernel holds with what the store says. Besides the
//! banner, a jail's [`actions`] (commands, hosts.deny, mail) hear of every
//! ban and unban.

pub mod actions;
pub mod nftables;
pub mod none;

use std::fmt;
use std::net::IpAddr;

use ipnet::IpNet;
use jiff::Timestamp;

/// The pseudo-jail of bans received from other fleet hosts: its sets are
/// `fleet-inet` and `fleet-inet6` (a jail's sets always end in `-v4`/`-v6`,
/// and no jail can be named this), kept apart from the jails' own.
pub const FLEET_JAIL: &str = "@fleet";

/// The firewall of the fleet's remote bans: every port, drop, IPv6
/// prefixes allowed (peers may ban by prefix).
pub fn fleet_firewall() -> JailFirewall {
    JailFirewall {
        jail: FLEET_JAIL.to_string(),
        ports: Vec::new(),
        protocols: Vec::new(),
        verdict: Verdict::Drop,
        v6_prefix: 64,
        set_size: 0,
    }
}

/// One ban as the firewall sees it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Ban {
    /// The jail that decided it.
    pub jail: String,
    /// The address banned (a /32 or /128) or, for jails banning IPv6 by
    /// prefix, the prefix.
    pub net: IpNet,
    /// When it started.
    pub banned_at: Timestamp,
    /// When it ends; `None` is permanent.
    pub expires_at: Option<Timestamp>,
    /// Failures that led to it (0 for manual bans).
    pub failures: u32,
}

/// One ban another fleet member decided, as this host holds it (the
/// fleet link, the store and the journal events share it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteBan {
    pub origin: String,
    pub jail: String,
    pub net: IpNet,
    pub banned_at: Timestamp,
    /// After the `max_bantime` cap; `None` only if restored from an
    /// older store without one (never made here).
    pub expires_at: Option<Timestamp>,
    pub failures: u32,
    pub reason: String,
    /// The stream entry it came from (`resync` when read from a set).
    pub event_id: String,
}

impl Ban {
    /// The remaining time at `now`, `None` for permanent bans, zero when
    /// already over.
    pub fn remaining(&self, now: Timestamp) -> Option<std::time::Duration> {
        self.expires_at.map(|end| {
            let left = end.duration_since(now);
            std::time::Duration::try_from(left).unwrap_or_default()
        })
    }

    /// The address family: true for IPv6.
    pub fn is_ipv6(&self) -> bool {
        matches!(self.net.addr(), IpAddr::V6(_))
    }
}

/// What to do with traffic from a banned address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Verdict {
    /// Silently drop.
    #[default]
    Drop,
    /// Reject (TCP reset / ICMP unreachable), so clients fail fast.
    Reject,
}

/// Transport protocol a jail's rule is limited to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Tcp,
    Udp,
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        })
    }
}

/// An inclusive port range (`22`, `8000-8080`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct PortRange {
    pub first: u16,
    pub last: u16,
}

/// What one jail needs from the firewall: its sets and its rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JailFirewall {
    /// Jail name (sets and rules are named after it).
    pub jail: String,
    /// Ports the rule is limited to; empty means every port.
    pub ports: Vec<PortRange>,
    /// Protocols the port limit applies to (ignored without ports).
    pub protocols: Vec<Protocol>,
    /// Drop or reject.
    pub verdict: Verdict,
    /// IPv6 bans cover this prefix length; 128 means single addresses,
    /// anything shorter makes the IPv6 set an interval set.
    pub v6_prefix: u8,
    /// Largest number of elements per set (0: no cap).
    pub set_size: u32,
}

/// What a reconcile found and did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReconcileReport {
    /// Elements the kernel held and should: left alone.
    pub kept: usize,
    /// Elements missing from the kernel: added.
    pub added: usize,
    /// Elements the kernel held without a ban in the store: removed.
    pub removed: usize,
    /// Elements whose kernel timeout was renewed.
    pub renewed: usize,
}

/// Why the firewall could not be changed. The daemon reports it as an
/// event, keeps running and retries with backoff; the store loses nothing.
#[derive(Debug, thiserror::Error)]
pub enum BanError {
    #[error("no permission to change the firewall (CAP_NET_ADMIN is needed): {0}")]
    Permission(#[source] std::io::Error),
    #[error("the kernel has no nf_tables support: {0}")]
    Unsupported(#[source] std::io::Error),
    #[error("set of jail {jail} is full; {element} was not added")]
    SetFull { jail: String, element: String },
    #[error("netlink {op} failed{}: {source}", element.as_ref().map(|e| format!(" on element {e}")).unwrap_or_default())]
    Netlink {
        op: &'static str,
        element: Option<String>,
        #[source]
        source: std::io::Error,
    },
    /// A ban names a jail that [`Banner::configure`] was not given.
    #[error("jail {jail} has no firewall sets (it is not configured)")]
    UnknownJail { jail: String },
    /// A ban cannot go into its jail's set (e.g. an IPv6 prefix in a jail
    /// whose IPv6 set holds single addresses).
    #[error("cannot ban {element} in jail {jail}: {reason}")]
    BadElement {
        jail: String,
        element: String,
        reason: String,
    },
    /// A jail's firewall settings are unusable.
    #[error("jail {jail}: {reason}")]
    BadConfig { jail: String, reason: String },
    #[error("{0}")]
    Other(String),
}

/// A firewall backend. The daemon calls it from one thread at a time (it
/// owns it), with many bans per call where it can, and never while holding
/// the store's transaction. Implementations must never flush or delete what
/// they did not create, and never touch other programs' tables.
pub trait Banner: Send {
    /// Short name for logs (`nftables`, `none`).
    fn name(&self) -> &'static str;

    /// Make the firewall's structure fit these jails: create what is
    /// missing, adjust rules that changed, drop the sets of jails no longer
    /// configured. Elements of remaining jails are left as they are.
    fn configure(&mut self, jails: &[JailFirewall]) -> Result<(), BanError>;

    /// Make the firewall hold exactly `bans` (expired ones excluded by the
    /// caller): add what is missing, remove what should not be there, renew
    /// timeouts that drifted, leave the rest.
    fn reconcile(&mut self, bans: &[Ban], now: Timestamp) -> Result<ReconcileReport, BanError>;

    /// Add these bans (or re-assert them with their new expiry) in one go.
    fn ban(&mut self, bans: &[Ban], now: Timestamp) -> Result<(), BanError>;

    /// Remove these bans in one go; bans already gone are not an error.
    fn unban(&mut self, bans: &[Ban]) -> Result<(), BanError>;

    /// The daemon stops. Bans stay in force (their timeouts keep running)
    /// unless `flush` asks to remove everything this backend created.
    fn shutdown(&mut self, flush: bool) -> Result<(), BanError>;

    /// The bans the firewall holds for the configured jails (after
    /// [`configure`](Self::configure)), as far as it knows them: for a
    /// store that was lost or set aside. Start and end come from the
    /// element's timeout and time left; failures are not known (0). A
    /// backend that holds nothing returns nothing.
    fn recover(&mut self, _now: Timestamp) -> Result<Vec<Ban>, BanError> {
        Ok(Vec::new())
    }

    /// Give back buffers the last work grew (an idle daemon); the next
    /// call allocates what it needs again.
    fn shrink(&mut self) {}
}

/// The nftables backend. Opening the netlink socket can fail (no
/// nf_tables, a sandbox); the backend then retries on every call, so the
/// daemon reports the error, keeps running and recovers when it can.
pub fn nftables_backend() -> Box<dyn Banner> {
    Box::new(Retrying { inner: None })
}

struct Retrying {
    inner: Option<nftables::Nftables>,
}

impl Retrying {
    fn get(&mut self) -> Result<&mut nftables::Nftables, BanError> {
        if self.inner.is_none() {
            self.inner = Some(nftables::Nftables::new()?);
        }
        self.inner
            .as_mut()
            .ok_or_else(|| BanError::Other("nftables backend unavailable".into()))
    }
}

impl Banner for Retrying {
    fn name(&self) -> &'static str {
        "nftables"
    }
    fn configure(&mut self, jails: &[JailFirewall]) -> Result<(), BanError> {
        self.get()?.configure(jails)
    }
    fn reconcile(&mut self, bans: &[Ban], now: Timestamp) -> Result<ReconcileReport, BanError> {
        self.get()?.reconcile(bans, now)
    }
    fn ban(&mut self, bans: &[Ban], now: Timestamp) -> Result<(), BanError> {
        self.get()?.ban(bans, now)
    }
    fn unban(&mut self, bans: &[Ban]) -> Result<(), BanError> {
        self.get()?.unban(bans)
    }
    fn shrink(&mut self) {
        if let Some(inner) = self.inner.as_mut() {
            inner.shrink();
        }
    }
    fn shutdown(&mut self, flush: bool) -> Result<(), BanError> {
        match self.inner.as_mut() {
            Some(n) => n.shutdown(flush),
            None => Ok(()),
        }
    }
    fn recover(&mut self, now: Timestamp) -> Result<Vec<Ban>, BanError> {
        self.get()?.recover(now)
    }
}
