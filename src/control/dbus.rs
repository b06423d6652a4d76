//! The `org.jailwarden1.Manager` and `org.jailwarden1.Jail` interfaces:
//! thin newtypes over the [`CoreHandle`], one set per connection (the
//! system bus, and each peer on the control socket), so each knows how its
//! callers are identified.
//!
//! Arguments are hostile: jail names and addresses are checked by the
//! core, durations here, and errors echo at most a short prefix of what
//! was sent. Reading is open; Ban, Unban, UnbanRemote, Reload and Report go through
//! [`polkit::authorize`] first.
//!
//! The `proxy(...)` attributes generate [`ManagerProxy`] and [`JailProxy`]
//! from these same blocks, for the CLI. The doc comments below become XML
//! comments in the introspection data; `dbus/org.jailwarden1.xml` is the
//! documented copy, kept equal by a test.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use ipnet::IpNet;
use jiff::Timestamp;
use zbus::message::Header;
use zbus::object_server::SignalEmitter;
use zbus::zvariant::Type;
use zbus::{Connection, DeserializeDict, OwnedObjectPath, SerializeDict, fdo, interface};

use super::error::{CallError, Error, echo};
use super::jail_path;
use super::limit::{Limited, Limits, Permit};
use super::polkit::{self, Caller, PeerCred};
use crate::addr::net_text;
use crate::ban::Ban;
use crate::config::duration::BanTime;
use crate::daemon::control::{ControlError, CoreHandle, JailStatus, Reported, Status};
use crate::store::{HistogramQuery, HistoryQuery};

/// A D-Bus `duration_usec` that asks for a permanent ban.
pub const PERMANENT_USEC: u64 = u64::MAX;
/// Durations from this one up are permanent too: 2^53 µs (285 years) is
/// the first "permanent" that clients whose numbers are doubles can send
/// (JavaScript; Cockpit's bridge takes no integer beyond i64::MAX).
pub const PERMANENT_FROM_USEC: u64 = 1 << 53;
/// The longest finite ban accepted (as in the configuration: 100 years).
pub const MAX_BAN_USEC: u64 = 100 * 366 * 86_400 * 1_000_000;
/// The shortest ban accepted: nftables timeouts count milliseconds, and a
/// ban shorter than a second is a mistake, not a ban.
pub const MIN_BAN_USEC: u64 = 1_000_000;
/// Jail names are at most 64 bytes; anything longer cannot exist.
const MAX_NAME: usize = 64;
/// Addresses (with a prefix length, for Unban) fit in this.
const MAX_ADDRESS: usize = 64;
/// History answers hold at most this many bans (the default when the
/// caller asks for 0).
pub const HISTORY_MAX: u32 = 10_000;
pub const HISTORY_DEFAULT: u32 = 1_000;
/// BanHistogram answers cover at most this many buckets.
pub const HISTOGRAM_MAX_BUCKETS: u32 = 1_000;
/// ListBans, ListBanDetails and Jail.ListBans answer at most this many
/// bans in one reply (LimitsExceeded beyond: use ListBansPaged). 100,000
/// bans are 6 MB as a(sstt) and 16 MB as ListBanDetails, under the 32 MiB
/// a system bus passes in one message.
pub const UNPAGED_MAX: u32 = 100_000;
/// ListBansPaged pages: the default (limit 0) and the most.
pub const PAGE_DEFAULT: u32 = 1_000;
pub const PAGE_MAX: u32 = 10_000;
/// A ListBansPaged cursor is at most this long (jail, time, address).
const MAX_CURSOR: usize = 160;
/// Status snapshots are reused this long at most (and never across an
/// event): a GetAll or GetManagedObjects reads many properties at once.
const SNAPSHOT_TTL: Duration = Duration::from_millis(250);

/// How the callers of a connection are identified.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// The system bus: each message names its sender.
    Bus,
    /// A control-socket peer: one caller per connection.
    Peer(PeerCred),
}

struct Snapshot {
    generation: u64,
    taken: Instant,
    status: Arc<Status>,
}

struct Shared {
    core: CoreHandle,
    /// Our system bus connection, once we own the name: polkit is asked
    /// through it about control-socket peers too.
    bus: std::sync::Mutex<Option<Connection>>,
    snapshot: tokio::sync::Mutex<Option<Snapshot>>,
    /// Bumped whenever the core reports a change, so a snapshot never
    /// outlives what it shows.
    generation: AtomicU64,
    /// What reading may cost: on the system bus (open to every local
    /// user), and apart from it on the control socket (root only), so a
    /// flood on the bus never locks root out of the socket.
    bus_limits: Limits,
    socket_limits: Limits,
}

/// What every interface object shares: the core handle, the bus
/// connection (for polkit), and a short-lived status snapshot.
#[derive(Clone)]
pub struct Context(Arc<Shared>);

impl Context {
    /// A context for the surfaces of one daemon.
    pub fn new(core: CoreHandle) -> Self {
        Context(Arc::new(Shared {
            core,
            bus: std::sync::Mutex::new(None),
            snapshot: tokio::sync::Mutex::new(None),
            generation: AtomicU64::new(0),
            bus_limits: Limits::new(),
            socket_limits: Limits::new(),
        }))
    }

    /// The core the interfaces forward to.
    pub fn core(&self) -> &CoreHandle {
        &self.0.core
    }

    /// Set (or clear) the system bus connection.
    pub fn set_bus(&self, conn: Option<Connection>) {
        // A poisoned lock only means a panic elsewhere; the value is still fine.
        *self.0.bus.lock().unwrap_or_else(|p| p.into_inner()) = conn;
    }

    /// The system bus connection, when we have one.
    pub fn bus(&self) -> Option<Connection> {
        self.0.bus.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The limits of calls arriving over `transport`.
    pub fn limits(&self, transport: Transport) -> &Limits {
        match transport {
            Transport::Bus => &self.0.bus_limits,
            Transport::Peer(_) => &self.0.socket_limits,
        }
    }

    /// Admit a read call that may answer up to `rows` rows (see
    /// [`Limits::admit`]).
    async fn admit(
        &self,
        transport: Transport,
        header: &Header<'_>,
        method: &str,
        rows: usize,
    ) -> Result<Permit, CallError> {
        self.limits(transport)
            .admit(transport, header, method, rows)
            .await
    }

    /// How many bans an unpaged listing of `jail` ("" = all) would
    /// answer, as far as the last snapshot knows: refused beyond
    /// [`UNPAGED_MAX`] before anything is built.
    async fn unpaged_rows(&self, jail: &str) -> Result<usize, CallError> {
        let status = self.status().await?;
        let n = if jail.is_empty() {
            status.active_bans
        } else {
            status
                .jails
                .iter()
                .find(|j| j.name == jail)
                .map_or(0, |j| j.currently_banned)
        };
        if n > UNPAGED_MAX {
            return Err(Error::LimitsExceeded(format!(
                "{n} bans in force: more than {UNPAGED_MAX} are listed a page at a time (ListBansPaged)"
            ))
            .into());
        }
        Ok(n as usize)
    }

    /// Forget the snapshot: something changed.
    pub fn invalidate(&self) {
        self.0.generation.fetch_add(1, Ordering::Relaxed);
    }

    /// The daemon's status: a snapshot at most [`SNAPSHOT_TTL`] old and
    /// taken after the last change, else a fresh one from the core.
    /// Concurrent callers wait for one fetch rather than each asking.
    pub async fn status(&self) -> Result<Arc<Status>, ControlError> {
        let mut slot = self.0.snapshot.lock().await;
        let generation = self.0.generation.load(Ordering::Relaxed);
        if let Some(s) = slot.as_ref() {
            if s.generation == generation && s.taken.elapsed() < SNAPSHOT_TTL {
                return Ok(s.status.clone());
            }
        }
        let status = Arc::new(self.0.core.status().await?);
        *slot = Some(Snapshot {
            generation,
            taken: Instant::now(),
            status: status.clone(),
        });
        Ok(status)
    }

    /// One jail's status.
    async fn jail(&self, name: &str) -> Result<JailStatus, ControlError> {
        self.status()
            .await?
            .jails
            .iter()
            .find(|j| j.name == name)
            .cloned()
            .ok_or_else(|| ControlError::NoSuchJail(echo(name)))
    }

    /// Let the caller change things, or say why not.
    async fn authorize(
        &self,
        transport: Transport,
        header: &Header<'_>,
        conn: &Connection,
    ) -> Result<(), CallError> {
        let caller = match transport {
            Transport::Bus => Caller::Bus { header, conn },
            Transport::Peer(cred) => Caller::Peer {
                cred,
                header,
                bus: self.bus(),
            },
        };
        polkit::authorize(caller).await
    }

    async fn ban(&self, jail: &str, address: &str, duration_usec: u64) -> Result<(), CallError> {
        let duration = ban_duration(duration_usec)?;
        let (jail, address) = (checked_name(jail)?, checked_address(address)?);
        self.core().ban(jail, address, duration).await?;
        self.invalidate();
        Ok(())
    }

    async fn unban(&self, jail: &str, address: &str) -> Result<(), CallError> {
        let jail = if jail.is_empty() {
            None
        } else {
            Some(checked_name(jail)?)
        };
        let address = checked_address(address)?;
        let n = self.core().unban(jail, address.clone()).await?;
        self.invalidate();
        if n == 0 {
            return Err(Error::NotBanned(format!("{address} is not banned")).into());
        }
        Ok(())
    }

    async fn unban_remote(&self, origin: &str, address: &str) -> Result<u32, CallError> {
        let origin = if origin.is_empty() {
            None
        } else {
            Some(checked_origin(origin)?)
        };
        let address = checked_address(address)?;
        let address = Some(address).filter(|a| !a.trim().is_empty());
        let n = self
            .core()
            .unban_remote(origin.clone(), address.clone())
            .await?;
        self.invalidate();
        if n == 0 {
            if let Some(a) = address {
                let from = origin.map(|o| format!(" from {o}")).unwrap_or_default();
                return Err(Error::NotBanned(format!("{a}: no remote ban{from}")).into());
            }
        }
        Ok(n)
    }

    async fn list_bans(&self, jail: &str) -> Result<Vec<Ban>, CallError> {
        Ok(self
            .core()
            .list_bans(optional_jail(jail)?, UNPAGED_MAX as usize)
            .await?)
    }

    /// An unpaged listing, admitted by the limits of `transport`.
    async fn list_bans_limited(
        &self,
        transport: Transport,
        header: &Header<'_>,
        method: &str,
        jail: &str,
    ) -> Result<(Vec<Ban>, Permit), CallError> {
        let jail = optional_jail(jail)?;
        let rows = self.unpaged_rows(jail.as_deref().unwrap_or("")).await?;
        let permit = self.admit(transport, header, method, rows).await?;
        let bans = self.list_bans(jail.as_deref().unwrap_or("")).await?;
        Ok((bans, permit))
    }
}

/// A jail argument that may be "" (all jails).
fn optional_jail(jail: &str) -> Result<Option<String>, CallError> {
    if jail.is_empty() {
        Ok(None)
    } else {
        checked_name(jail).map(Some)
    }
}

/// An address or range argument that may be "" (any): as bans show it,
/// an address or a prefix.
fn optional_net(address: &str) -> Result<Option<IpNet>, CallError> {
    let text = checked_address(address)?;
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    if let Ok(net) = text.parse::<IpNet>() {
        let net = net.trunc();
        return Ok(Some(match net.addr() {
            std::net::IpAddr::V6(v6) if net.prefix_len() == 128 => {
                IpNet::from(crate::addr::canonical(std::net::IpAddr::V6(v6)))
            }
            _ => net,
        }));
    }
    crate::addr::parse_addr(text)
        .map(|a| Some(IpNet::from(a)))
        .ok_or_else(|| ControlError::InvalidAddress(echo(text)).into())
}

/// A ListBansPaged cursor: where the page ended, as
/// `jail/banned_at_usec/address` (jail names hold no `/`).
fn make_cursor(b: &Ban) -> String {
    format!("{}/{}/{}", b.jail, b.banned_at.as_microsecond(), b.net)
}

/// A cursor back into (jail, banned_at µs, net); "" = from the start.
#[allow(clippy::type_complexity)]
fn parse_cursor(cursor: &str) -> Result<Option<(String, i64, IpNet)>, CallError> {
    if cursor.is_empty() {
        return Ok(None);
    }
    let bad = || Error::InvalidArgs(format!("not a ListBansPaged cursor: {:?}", echo(cursor)));
    if cursor.len() > MAX_CURSOR {
        return Err(bad().into());
    }
    let mut parts = cursor.splitn(3, '/');
    let (Some(jail), Some(at), Some(net)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(bad().into());
    };
    let at: i64 = at.parse().map_err(|_| bad())?;
    let net: IpNet = net.parse().map_err(|_| bad())?;
    if jail.is_empty() || jail.len() > MAX_NAME {
        return Err(bad().into());
    }
    Ok(Some((jail.to_string(), at, net)))
}

fn timestamp(usec: u64) -> Timestamp {
    i64::try_from(usec)
        .ok()
        .and_then(|u| Timestamp::from_microsecond(u).ok())
        .unwrap_or(Timestamp::MAX)
}

/// The duration argument of Ban: 0 = the jail's bantime, `u64::MAX` =
/// permanent, otherwise 1 s to 100 years.
pub fn ban_duration(usec: u64) -> Result<Option<BanTime>, CallError> {
    match usec {
        0 => Ok(None),
        u if u >= PERMANENT_FROM_USEC => Ok(Some(BanTime::Permanent)),
        u if u < MIN_BAN_USEC => {
            Err(Error::InvalidDuration(format!("a ban lasts at least 1 s ({u} µs given)")).into())
        }
        u if u > MAX_BAN_USEC => Err(Error::InvalidDuration(format!(
            "a ban lasts at most 100 years ({u} µs given; {PERMANENT_USEC} is permanent)"
        ))
        .into()),
        u => Ok(Some(BanTime::For(Duration::from_micros(u)))),
    }
}

fn checked_name(jail: &str) -> Result<String, CallError> {
    if jail.is_empty() || jail.len() > MAX_NAME {
        return Err(ControlError::NoSuchJail(echo(jail)).into());
    }
    Ok(jail.to_string())
}

/// A fleet host name, as `[fleet]` host names are.
fn checked_origin(origin: &str) -> Result<String, CallError> {
    if !crate::config::fleet::valid_host(origin) {
        return Err(
            Error::InvalidArgs(format!("not a fleet host name: {:?}", echo(origin))).into(),
        );
    }
    Ok(origin.to_string())
}

fn checked_address(address: &str) -> Result<String, CallError> {
    if address.len() > MAX_ADDRESS {
        return Err(ControlError::InvalidAddress(echo(address)).into());
    }
    Ok(address.to_string())
}

/// Realtime microseconds for the API; 0 for none (permanent) or pre-1970.
pub fn usec(t: Option<Timestamp>) -> u64 {
    t.and_then(|t| u64::try_from(t.as_microsecond()).ok())
        .unwrap_or(0)
}

fn failed(e: ControlError) -> fdo::Error {
    fdo::Error::Failed(e.to_string())
}

/// One ban of ListBanDetails: a dictionary (`a{sv}`) on the wire, built
/// straight from the ban (no map per ban). Keys a client does not know
/// are ignored when reading one.
#[derive(Debug, Clone, PartialEq, Eq, SerializeDict, DeserializeDict, Type)]
#[zbus(signature = "a{sv}")]
pub struct BanDetail {
    pub address: String,
    pub banned_at_usec: u64,
    pub expires_at_usec: u64,
    pub failures: u32,
    pub jail: String,
}

/// `/org/jailwarden1`: the daemon as a whole.
pub struct Manager {
    ctx: Context,
    transport: Transport,
}

impl Manager {
    /// The manager object for one connection.
    pub fn new(ctx: Context, transport: Transport) -> Self {
        Manager { ctx, transport }
    }
}

#[interface(
    name = "org.jailwarden1.Manager",
    proxy(default_service = "org.jailwarden1", default_path = "/org/jailwarden1")
)]
impl Manager {
    /// Every configured jail (enabled or not) and its object path.
    #[zbus(out_args("jails"))]
    async fn list_jails(
        &self,
        #[zbus(header)] header: Header<'_>,
    ) -> Result<Vec<(String, OwnedObjectPath)>, CallError> {
        let _permit = self
            .ctx
            .admit(self.transport, &header, "ListJails", 0)
            .await?;
        let status = self.ctx.status().await?;
        Ok(status
            .jails
            .iter()
            .map(|j| (j.name.clone(), jail_path(&j.name)))
            .collect())
    }

    /// The object path of a jail; NoSuchJail if it is not configured.
    #[zbus(out_args("jail"))]
    async fn get_jail(
        &self,
        name: &str,
        #[zbus(header)] header: Header<'_>,
    ) -> Result<OwnedObjectPath, CallError> {
        let _permit = self
            .ctx
            .admit(self.transport, &header, "GetJail", 0)
            .await?;
        let name = checked_name(name)?;
        Ok(jail_path(&self.ctx.jail(&name).await?.name))
    }

    /// Ban an address in a jail. duration_usec: 0 = the jail's bantime
    /// (with its increment), 18446744073709551615 (u64 max), or anything
    /// from 9007199254740992 (2^53) up, = permanent, else 1 s to 100
    /// years. address may be a range the jail bans by (an IPv6 prefix of
    /// its ipv6_prefix). Needs root or polkit org.jailwarden1.manage.
    #[zbus(proxy(allow_interactive_auth))]
    async fn ban(
        &self,
        jail: &str,
        address: &str,
        duration_usec: u64,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<(), CallError> {
        self.ctx.authorize(self.transport, &header, conn).await?;
        self.ctx.ban(jail, address, duration_usec).await
    }

    /// Lift the bans of an address (or of every address in a CIDR range)
    /// in one jail, or in every jail when jail is "". NotBanned if none
    /// matched. Needs root or polkit org.jailwarden1.manage.
    #[zbus(proxy(allow_interactive_auth))]
    async fn unban(
        &self,
        jail: &str,
        address: &str,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<(), CallError> {
        self.ctx.authorize(self.transport, &header, conn).await?;
        self.ctx.unban(jail, address).await
    }

    /// Lift remote bans (those other fleet hosts decided, in the fleet
    /// sets) held from origin ("" = every origin) of an address, or of
    /// every address in a CIDR range ("" = every address); local bans
    /// stay. lifted: how many ended. Lifted bans stay lifted until their
    /// end unless their origin bans them again. NotBanned if an address
    /// was given and none matched; Failed without [fleet]. Needs root or
    /// polkit org.jailwarden1.manage.
    #[zbus(proxy(allow_interactive_auth), out_args("lifted"))]
    async fn unban_remote(
        &self,
        origin: &str,
        address: &str,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<u32, CallError> {
        self.ctx.authorize(self.transport, &header, conn).await?;
        self.ctx.unban_remote(origin, address).await
    }

    /// Active bans of one jail, or of all when jail is "": (jail, address,
    /// banned_at_usec, expires_at_usec), realtime microseconds, expiry 0 =
    /// permanent; by jail, then ban time. At most 100000 bans
    /// (LimitsExceeded beyond: ListBansPaged lists any number).
    #[zbus(out_args("bans"))]
    async fn list_bans(
        &self,
        jail: &str,
        #[zbus(header)] header: Header<'_>,
    ) -> Result<Limited<Vec<(String, String, u64, u64)>>, CallError> {
        let (bans, permit) = self
            .ctx
            .list_bans_limited(self.transport, &header, "ListBans", jail)
            .await?;
        let rows = bans
            .into_iter()
            .map(|b| {
                (
                    b.jail,
                    net_text(b.net),
                    usec(Some(b.banned_at)),
                    usec(b.expires_at),
                )
            })
            .collect();
        Ok(Limited::new(rows, permit))
    }

    /// Active bans a page at a time, in the order of ListBans: of jail
    /// (or all: ""), after cursor ("" for the first page; else the
    /// next_cursor of the page before), at most limit (0: 1000, at most
    /// 10000). Each: (jail, address, banned_at_usec, expires_at_usec (0 =
    /// permanent), failures). now_usec: the daemon's clock; next_cursor:
    /// "" after the last page. Bans made or lifted between pages are
    /// listed, or not, once; InvalidArgs for a cursor it did not give.
    #[zbus(out_args("now_usec", "bans", "next_cursor"))]
    async fn list_bans_paged(
        &self,
        jail: &str,
        cursor: &str,
        limit: u32,
        #[zbus(header)] header: Header<'_>,
    ) -> Result<(u64, Limited<Vec<(String, String, u64, u64, u32)>>, String), CallError> {
        let jail = optional_jail(jail)?;
        let after = parse_cursor(cursor)?;
        let limit = match limit {
            0 => PAGE_DEFAULT,
            n => n.min(PAGE_MAX),
        };
        let permit = self
            .ctx
            .admit(self.transport, &header, "ListBansPaged", limit as usize)
            .await?;
        let (bans, more) = self
            .ctx
            .core()
            .list_bans_page(jail, after, limit as usize)
            .await?;
        let next = match bans.last() {
            Some(b) if more => make_cursor(b),
            _ => String::new(),
        };
        let rows = bans
            .into_iter()
            .map(|b| {
                (
                    b.jail,
                    net_text(b.net),
                    usec(Some(b.banned_at)),
                    usec(b.expires_at),
                    b.failures,
                )
            })
            .collect();
        let now = usec(Some(Timestamp::now()));
        Ok((now, Limited::new(rows, permit), next))
    }

    /// Active bans with every detail, of one jail or of all when jail is
    /// "": the daemon's clock now (to count down against), and per ban a
    /// dictionary: jail s, address s, banned_at_usec t, expires_at_usec t
    /// (0 = permanent), failures u; more keys may come. At most 100000
    /// bans, as ListBans.
    #[zbus(out_args("now_usec", "bans"))]
    async fn list_ban_details(
        &self,
        jail: &str,
        #[zbus(header)] header: Header<'_>,
    ) -> Result<(u64, Limited<Vec<BanDetail>>), CallError> {
        let (bans, permit) = self
            .ctx
            .list_bans_limited(self.transport, &header, "ListBanDetails", jail)
            .await?;
        let now = usec(Some(Timestamp::now()));
        let details = bans
            .into_iter()
            .map(|b| BanDetail {
                address: net_text(b.net),
                banned_at_usec: usec(Some(b.banned_at)),
                expires_at_usec: usec(b.expires_at),
                failures: b.failures,
                jail: b.jail,
            })
            .collect();
        Ok((now, Limited::new(details, permit)))
    }

    /// Bans from the history (kept for dbpurgeage), newest first: of jail
    /// (or all: ""), of address (an address or prefix as bans show it;
    /// "": all), started at or after since_usec; at most limit (0: 1000,
    /// at most 10000). Each: (jail, address, banned_at_usec, ended_at_usec
    /// (0 while in force), failures, reason ("" while in force; else as
    /// Unbanned says, or "unknown" for bans recorded before the history kept it)).
    #[zbus(out_args("bans"))]
    async fn history(
        &self,
        jail: &str,
        address: &str,
        since_usec: u64,
        limit: u32,
        #[zbus(header)] header: Header<'_>,
    ) -> Result<Limited<Vec<(String, String, u64, u64, u32, String)>>, CallError> {
        let q = HistoryQuery {
            jail: optional_jail(jail)?,
            net: optional_net(address)?,
            since: timestamp(since_usec),
            limit: match limit {
                0 => HISTORY_DEFAULT,
                n => n.min(HISTORY_MAX),
            },
        };
        let permit = self
            .ctx
            .admit(self.transport, &header, "History", q.limit as usize)
            .await?;
        let rows = self.ctx.core().history(q).await?;
        let rows = rows
            .into_iter()
            .map(|h| {
                (
                    h.jail,
                    net_text(h.net),
                    usec(Some(h.banned_at)),
                    usec(h.ended_at),
                    h.failures,
                    h.reason.unwrap_or_default(),
                )
            })
            .collect();
        Ok(Limited::new(rows, permit))
    }

    /// How many bans started in each of buckets consecutive time buckets
    /// of bucket_usec (at least 1 s) from since_usec, per jail (of jail, or
    /// all: ""): (jail, bucket, count) for the buckets that are not empty;
    /// buckets at most 1000. From the history, so as far back as
    /// dbpurgeage keeps.
    #[zbus(out_args("counts"))]
    async fn ban_histogram(
        &self,
        jail: &str,
        since_usec: u64,
        bucket_usec: u64,
        buckets: u32,
        #[zbus(header)] header: Header<'_>,
    ) -> Result<Limited<Vec<(String, u32, u32)>>, CallError> {
        if !(MIN_BAN_USEC..=MAX_BAN_USEC).contains(&bucket_usec)
            || buckets == 0
            || buckets > HISTOGRAM_MAX_BUCKETS
        {
            return Err(Error::Failed(format!(
                "buckets must be 1 to {HISTOGRAM_MAX_BUCKETS}, of 1 s to 100 years ({buckets} of {bucket_usec} µs asked)"
            ))
            .into());
        }
        let q = HistogramQuery {
            jail: optional_jail(jail)?,
            since: timestamp(since_usec),
            bucket_usec: i64::try_from(bucket_usec).unwrap_or(i64::MAX),
            buckets,
        };
        // A row per jail and bucket at most.
        let jails = if q.jail.is_some() {
            1
        } else {
            self.ctx.status().await?.jails.len().max(1)
        };
        let permit = self
            .ctx
            .admit(
                self.transport,
                &header,
                "BanHistogram",
                jails.saturating_mul(buckets as usize),
            )
            .await?;
        let rows = self.ctx.core().histogram(q).await?;
        let rows = rows
            .into_iter()
            .map(|b| (b.jail, b.index, b.count))
            .collect();
        Ok(Limited::new(rows, permit))
    }

    /// Reload the configuration; on problems (Config error) the running
    /// configuration stays. Needs root or polkit org.jailwarden1.manage.
    #[zbus(proxy(allow_interactive_auth))]
    async fn reload(
        &self,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<(), CallError> {
        self.ctx.authorize(self.transport, &header, conn).await?;
        let r = self.ctx.core().reload().await;
        self.ctx.invalidate();
        Ok(r?)
    }

    /// An application reports a failed attempt from an address, counted
    /// like a matching log line (findtime, maxretry, ignoreip). outcome:
    /// "counted" (failures = now in the window), "banned" (this report
    /// reached maxretry; failures = those that led to it) or
    /// "already-banned" (failures = 0). Needs root or polkit
    /// org.jailwarden1.manage.
    #[zbus(out_args("outcome", "failures"), proxy(allow_interactive_auth))]
    async fn report(
        &self,
        jail: &str,
        address: &str,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<(String, u32), CallError> {
        self.ctx.authorize(self.transport, &header, conn).await?;
        let (jail, address) = (checked_name(jail)?, checked_address(address)?);
        let r = self.ctx.core().report(jail, address).await;
        self.ctx.invalidate();
        Ok(match r? {
            Reported::Counted { failures } => ("counted".to_string(), failures),
            Reported::Banned(ban) => ("banned".to_string(), ban.failures),
            Reported::AlreadyBanned => ("already-banned".to_string(), 0),
        })
    }

    /// The daemon's version.
    #[zbus(property(emits_changed_signal = "const"))]
    fn version(&self) -> String {
        env!("CARGO_PKG_VERSION").to_string()
    }

    /// Bans in force now, all jails.
    #[zbus(property)]
    async fn active_bans(&self) -> fdo::Result<u32> {
        Ok(self.ctx.status().await.map_err(failed)?.active_bans)
    }

    /// Bans ever made, all jails (kept in the state database).
    #[zbus(property)]
    async fn total_bans(&self) -> fdo::Result<u64> {
        Ok(self.ctx.status().await.map_err(failed)?.total_bans)
    }

    /// The firewall backend: "nftables", or "none" (bans are logged, not
    /// enforced).
    #[zbus(property(emits_changed_signal = "const"))]
    async fn backend(&self) -> fdo::Result<String> {
        Ok(self.ctx.status().await.map_err(failed)?.backend.clone())
    }

    /// How long the ban history is kept (dbpurgeage), microseconds.
    #[zbus(property, name = "DbPurgeAgeUSec")]
    async fn db_purge_age_usec(&self) -> fdo::Result<u64> {
        let d = self.ctx.status().await.map_err(failed)?.dbpurgeage;
        Ok(u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
    }

    /// Whether the daemon is still reading what was logged before it
    /// started (first start: the longest findtime back; after a restart:
    /// since its saved position). Polled: no PropertiesChanged.
    #[zbus(property(emits_changed_signal = "false"))]
    async fn backlog_active(&self) -> fdo::Result<bool> {
        Ok(self.ctx.status().await.map_err(failed)?.backlog.is_some())
    }

    /// Share of the backlog's time span read, 0 to 1 (1 when none is read).
    #[zbus(property(emits_changed_signal = "false"))]
    async fn backlog_fraction(&self) -> fdo::Result<f64> {
        let b = self.ctx.status().await.map_err(failed)?.backlog;
        Ok(b.map_or(1.0, |b| b.fraction))
    }

    /// Entries of the backlog read so far (0 when none is read).
    #[zbus(property(emits_changed_signal = "false"))]
    async fn backlog_entries(&self) -> fdo::Result<u64> {
        let b = self.ctx.status().await.map_err(failed)?.backlog;
        Ok(b.map_or(0, |b| b.entries))
    }

    /// The time of the last backlog entry read, realtime µs (0 when none).
    #[zbus(property(emits_changed_signal = "false"), name = "BacklogPositionUSec")]
    async fn backlog_position_usec(&self) -> fdo::Result<u64> {
        let b = self.ctx.status().await.map_err(failed)?.backlog;
        Ok(b.map_or(0, |b| {
            u64::try_from(b.position.as_microsecond()).unwrap_or(0)
        }))
    }

    /// Whether the daemon is reading log files that grew while it did not
    /// read them (at least 64 MB left when it began), until it reaches
    /// their end. Polled: no PropertiesChanged.
    #[zbus(property(emits_changed_signal = "false"))]
    async fn file_backlog_active(&self) -> fdo::Result<bool> {
        Ok(self
            .ctx
            .status()
            .await
            .map_err(failed)?
            .file_backlog
            .is_some())
    }

    /// Bytes of the log files' backlog read so far (0 when none is read).
    #[zbus(property(emits_changed_signal = "false"))]
    async fn file_backlog_bytes_read(&self) -> fdo::Result<u64> {
        let b = self.ctx.status().await.map_err(failed)?.file_backlog;
        Ok(b.map_or(0, |b| b.bytes_read))
    }

    /// Bytes of the log files' backlog left to read (0 when none is read).
    #[zbus(property(emits_changed_signal = "false"))]
    async fn file_backlog_bytes_left(&self) -> fdo::Result<u64> {
        let b = self.ctx.status().await.map_err(failed)?.file_backlog;
        Ok(b.map_or(0, |b| b.bytes_left))
    }

    /// Why the state database cannot be written, "" while it can (bans
    /// still reach the firewall; the rest waits in memory).
    #[zbus(property(emits_changed_signal = "false"))]
    async fn store_problem(&self) -> fdo::Result<String> {
        let st = self.ctx.status().await.map_err(failed)?;
        Ok(st.store_problem.clone().unwrap_or_default())
    }

    /// Bans received from other fleet hosts and held here: (origin, jail,
    /// address, banned_at_usec (when it arrived), expires_at_usec); empty
    /// without [fleet]. Several origins may ban one address.
    #[zbus(out_args("bans"))]
    async fn list_remote_bans(
        &self,
        #[zbus(header)] header: Header<'_>,
    ) -> Result<Limited<Vec<(String, String, String, u64, u64)>>, CallError> {
        let held = self
            .ctx
            .core()
            .fleet_status()
            .await?
            .map_or(0, |s| s.remote_bans);
        let permit = self
            .ctx
            .admit(self.transport, &header, "ListRemoteBans", held as usize)
            .await?;
        let (_, bans) = self.ctx.core().fleet().await?;
        let rows = bans
            .into_iter()
            .map(|b| {
                (
                    b.origin,
                    b.jail,
                    net_text(b.net),
                    usec(Some(b.banned_at)),
                    usec(b.expires_at),
                )
            })
            .collect();
        Ok(Limited::new(rows, permit))
    }

    /// The fleet's peers: (name, received, applied, refused,
    /// last_event_usec (when its last event arrived; 0: none yet),
    /// lag_usec (arrival minus the time the origin wrote it), bans held
    /// from it); empty without [fleet].
    #[zbus(out_args("peers"))]
    async fn fleet_peers(
        &self,
        #[zbus(header)] header: Header<'_>,
    ) -> Result<Vec<(String, u64, u64, u64, u64, u64, u32)>, CallError> {
        let _permit = self
            .ctx
            .admit(self.transport, &header, "FleetPeers", 0)
            .await?;
        let status = self.ctx.core().fleet_status().await?;
        Ok(status
            .map(|s| {
                s.peers
                    .into_iter()
                    .map(|p| {
                        let lag = match (p.stats.last_event, p.stats.last_event_written) {
                            (Some(a), Some(w)) => {
                                u64::try_from(a.as_microsecond() - w.as_microsecond()).unwrap_or(0)
                            }
                            _ => 0,
                        };
                        (
                            p.name,
                            p.stats.received,
                            p.stats.applied,
                            p.stats.refused,
                            usec(p.stats.last_event),
                            lag,
                            p.bans,
                        )
                    })
                    .collect()
            })
            .unwrap_or_default())
    }

    /// This host's name in the fleet; "" without [fleet].
    #[zbus(property(emits_changed_signal = "false"))]
    async fn fleet_host(&self) -> fdo::Result<String> {
        let s = self.ctx.core().fleet_status().await.map_err(failed)?;
        Ok(s.map(|s| s.host).unwrap_or_default())
    }

    /// Whether the fleet link to Redis is up (false without [fleet]).
    #[zbus(property(emits_changed_signal = "false"))]
    async fn fleet_connected(&self) -> fdo::Result<bool> {
        let s = self.ctx.core().fleet_status().await.map_err(failed)?;
        Ok(s.is_some_and(|s| s.link.connected))
    }

    /// Why the fleet link last failed ("" while up or never failed).
    #[zbus(property(emits_changed_signal = "false"))]
    async fn fleet_last_error(&self) -> fdo::Result<String> {
        let s = self.ctx.core().fleet_status().await.map_err(failed)?;
        Ok(s.and_then(|s| s.link.last_error).unwrap_or_default())
    }

    /// This host's decisions written to its fleet stream since start.
    #[zbus(property(emits_changed_signal = "false"))]
    async fn fleet_published(&self) -> fdo::Result<u64> {
        let s = self.ctx.core().fleet_status().await.map_err(failed)?;
        Ok(s.map_or(0, |s| s.link.published))
    }

    /// Addresses banned here for other fleet hosts (elements of the fleet sets).
    #[zbus(property(emits_changed_signal = "false"))]
    async fn remote_bans(&self) -> fdo::Result<u32> {
        let s = self.ctx.core().fleet_status().await.map_err(failed)?;
        Ok(s.map_or(0, |s| s.remote_bans))
    }

    /// An address was banned; expires_at_usec 0 = permanent; failures 0
    /// for bans by hand.
    #[zbus(signal)]
    pub async fn banned(
        emitter: &SignalEmitter<'_>,
        jail: &str,
        address: &str,
        expires_at_usec: u64,
        failures: u32,
    ) -> zbus::Result<()>;

    /// A ban decided by fleet host origin (in its jail) was applied here,
    /// in the fleet sets, until expires_at_usec (after max_bantime).
    #[zbus(signal)]
    pub async fn remote_banned(
        emitter: &SignalEmitter<'_>,
        origin: &str,
        jail: &str,
        address: &str,
        expires_at_usec: u64,
    ) -> zbus::Result<()>;

    /// A remote ban held here (from fleet host origin, its jail) ended;
    /// reason: "unban" (origin lifted it), "expired", "manual" (lifted
    /// here: UnbanRemote), "resync" (gone from origin's active set),
    /// "policy" (trust or ignore lists changed on reload). The address
    /// leaves the fleet sets unless another origin still bans it.
    #[zbus(signal)]
    pub async fn remote_unbanned(
        emitter: &SignalEmitter<'_>,
        origin: &str,
        jail: &str,
        address: &str,
        reason: &str,
    ) -> zbus::Result<()>;

    /// A ban ended; reason: "expired", "manual", "jail removed".
    #[zbus(signal)]
    pub async fn unbanned(
        emitter: &SignalEmitter<'_>,
        jail: &str,
        address: &str,
        reason: &str,
    ) -> zbus::Result<()>;

    /// The configuration was reloaded; jails: every configured jail now.
    #[zbus(signal)]
    pub async fn reloaded(emitter: &SignalEmitter<'_>, jails: Vec<String>) -> zbus::Result<()>;
}

/// Client side: every active ban of `jail` ("" = all), as ListBans
/// gives them but read a page at a time (ListBansPaged), so any number
/// can be listed.
pub async fn list_all_bans(
    proxy: &ManagerProxy<'_>,
    jail: &str,
) -> Result<Vec<(String, String, u64, u64)>, CallError> {
    let mut all = Vec::new();
    let mut cursor = String::new();
    // Each page moves the cursor on; the bound only guards against a
    // daemon that would not.
    for _ in 0..(u32::MAX / PAGE_MAX) {
        let (_, page, next) = proxy.list_bans_paged(jail, &cursor, PAGE_MAX).await?;
        all.extend(
            page.into_inner()
                .into_iter()
                .map(|(j, a, at, exp, _)| (j, a, at, exp)),
        );
        if next.is_empty() || next == cursor {
            break;
        }
        cursor = next;
    }
    Ok(all)
}

/// `/org/jailwarden1/jail/<name>`: one jail.
pub struct Jail {
    ctx: Context,
    transport: Transport,
    name: String,
}

impl Jail {
    /// The object of jail `name` for one connection.
    pub fn new(ctx: Context, transport: Transport, name: String) -> Self {
        Jail {
            ctx,
            transport,
            name,
        }
    }

    async fn status(&self) -> fdo::Result<JailStatus> {
        self.ctx.jail(&self.name).await.map_err(|e| match e {
            ControlError::NoSuchJail(_) => {
                fdo::Error::UnknownObject(format!("jail {:?} was removed", self.name))
            }
            e => failed(e),
        })
    }
}

#[interface(
    name = "org.jailwarden1.Jail",
    proxy(default_service = "org.jailwarden1")
)]
impl Jail {
    /// Ban an address in this jail; see Manager.Ban for duration_usec.
    #[zbus(proxy(allow_interactive_auth))]
    async fn ban(
        &self,
        address: &str,
        duration_usec: u64,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<(), CallError> {
        self.ctx.authorize(self.transport, &header, conn).await?;
        self.ctx.ban(&self.name, address, duration_usec).await
    }

    /// Lift this jail's bans of an address (or CIDR range).
    #[zbus(proxy(allow_interactive_auth))]
    async fn unban(
        &self,
        address: &str,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<(), CallError> {
        self.ctx.authorize(self.transport, &header, conn).await?;
        self.ctx.unban(&self.name, address).await
    }

    /// This jail's active bans: (address, banned_at_usec, expires_at_usec);
    /// at most 100000, as Manager.ListBans.
    #[zbus(out_args("bans"))]
    async fn list_bans(
        &self,
        #[zbus(header)] header: Header<'_>,
    ) -> Result<Limited<Vec<(String, u64, u64)>>, CallError> {
        let (bans, permit) = self
            .ctx
            .list_bans_limited(self.transport, &header, "ListBans", &self.name)
            .await?;
        let rows = bans
            .into_iter()
            .map(|b| (net_text(b.net), usec(Some(b.banned_at)), usec(b.expires_at)))
            .collect();
        Ok(Limited::new(rows, permit))
    }

    /// The jail's name, as in the configuration.
    #[zbus(property(emits_changed_signal = "const"))]
    fn name(&self) -> String {
        self.name.clone()
    }

    /// The filter it uses.
    #[zbus(property)]
    async fn filter(&self) -> fdo::Result<String> {
        Ok(self.status().await?.filter)
    }

    /// Whether it is enabled (disabled jails are listed but do nothing).
    #[zbus(property)]
    async fn enabled(&self) -> fdo::Result<bool> {
        Ok(self.status().await?.enabled)
    }

    /// Failures within findtime that lead to a ban.
    #[zbus(property, name = "MaxRetry")]
    async fn max_retry(&self) -> fdo::Result<u32> {
        Ok(self.status().await?.maxretry)
    }

    /// The window failures are counted in, microseconds.
    #[zbus(property, name = "FindTimeUSec")]
    async fn find_time_usec(&self) -> fdo::Result<u64> {
        let d = self.status().await?.findtime;
        Ok(u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
    }

    /// The base ban length, microseconds; 0 = permanent.
    #[zbus(property, name = "BanTimeUSec")]
    async fn ban_time_usec(&self) -> fdo::Result<u64> {
        Ok(self.status().await?.bantime.as_usec())
    }

    /// Addresses with failures in their window now.
    #[zbus(property)]
    async fn currently_failed(&self) -> fdo::Result<u32> {
        Ok(self.status().await?.currently_failed)
    }

    /// Failures counted, ever.
    #[zbus(property)]
    async fn total_failed(&self) -> fdo::Result<u64> {
        Ok(self.status().await?.total_failed)
    }

    /// Bans in force now.
    #[zbus(property)]
    async fn currently_banned(&self) -> fdo::Result<u32> {
        Ok(self.status().await?.currently_banned)
    }

    /// Bans made, ever.
    #[zbus(property)]
    async fn total_banned(&self) -> fdo::Result<u64> {
        Ok(self.status().await?.total_banned)
    }

    /// The journal entries it reads, in journalctl's syntax
    /// (`A=x B=y + C=z`); empty when it reads no journal.
    #[zbus(property)]
    async fn journal_match(&self) -> fdo::Result<String> {
        Ok(self.status().await?.journal_match)
    }

    /// The log files it reads, as configured (paths or globs).
    #[zbus(property)]
    async fn log_path(&self) -> fdo::Result<Vec<String>> {
        Ok(self.status().await?.logpath)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_are_checked() {
        assert_eq!(ban_duration(0).ok(), Some(None));
        assert_eq!(
            ban_duration(PERMANENT_USEC).ok(),
            Some(Some(BanTime::Permanent))
        );
        assert_eq!(
            ban_duration(90_000_000).ok(),
            Some(Some(BanTime::For(Duration::from_secs(90))))
        );
        for bad in [1, 999_999, MAX_BAN_USEC + 1, PERMANENT_FROM_USEC - 1] {
            assert!(ban_duration(bad).is_err(), "{bad}");
        }
        for permanent in [PERMANENT_FROM_USEC, i64::MAX as u64, u64::MAX - 1] {
            assert_eq!(ban_duration(permanent).ok(), Some(Some(BanTime::Permanent)));
        }
    }

    #[test]
    fn long_arguments_are_refused_before_the_core() {
        assert!(checked_name(&"x".repeat(65)).is_err());
        assert!(checked_name("").is_err());
        assert!(checked_address(&"1".repeat(1 << 20)).is_err());
        assert_eq!(usec(None), 0);
        assert_eq!(usec(Timestamp::from_second(-5).ok()), 0);
    }
}
