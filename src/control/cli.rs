//! Client commands: `status`, `bans`, `ban`, `unban`, `reload`, `report`.
//!
//! They call the daemon's D-Bus API through the proxies generated from
//! the server's own interface definitions: over the control socket first
//! (works without a bus), then the system bus. Output is an aligned table
//! for people, or with `--json` the shapes documented in
//! `docs/cli-json.md`, which stay stable.
//!
//! Exit status: 0 done; 1 the request was valid but could not be done
//! (daemon not running, access denied, not banned, ignored address,
//! daemon failure); 2 the request is wrong (usage, unknown jail, bad
//! address or duration) or, for `reload`, the configuration is.

use std::collections::HashMap;
use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use clap_complete::engine::ArgValueCompleter;
use jiff::Timestamp;
use serde::Serialize;
use zbus::{Connection, OwnedVariant};

use super::dbus::{ManagerProxy, PERMANENT_USEC, list_all_bans};
use super::error::{CallError, Error};
use super::format::{Cell, Colour, Style, local_time, rfc3339, short_duration, time_left};
use super::{BUS_NAME, MANAGER_PATH, SOCKET_ENV};
use crate::config::DEFAULT_SOCKET;
use crate::config::duration::{BanTime, parse_bantime};
use crate::daemon::control::FileBacklog;

/// How long a call may take: long enough for a person to answer a polkit
/// password prompt.
const CALL_TIMEOUT: Duration = Duration::from_secs(120);
/// How long connecting may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Where to find the daemon.
#[derive(Debug, Clone, clap::Args)]
pub struct Connect {
    /// Control socket [default: $JAILWARDEN_SOCKET, then /run/jailwarden/control.sock].
    #[arg(long, value_name = "PATH")]
    pub socket: Option<PathBuf>,
}

/// The client subcommands.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum Command {
    /// Show the daemon and its jails (one jail in detail when named).
    ///
    /// The first line counts jails and bans; while the daemon still reads
    /// the journal logged before it started (a first start reads the
    /// longest findtime back), a second line shows how far it got. Then one
    /// row per jail: enabled, filter, failures and bans now and ever,
    /// maxretry, findtime, bantime. With JAIL: that jail's settings and its
    /// bans.
    Status {
        /// Only this jail, with its bans.
        #[arg(add = ArgValueCompleter::new(crate::cli::complete::jails))]
        jail: Option<String>,
        /// Print JSON (see docs/cli-json.md).
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        connect: Connect,
    },
    /// List the bans in force.
    Bans {
        /// Only this jail's.
        #[arg(long, add = ArgValueCompleter::new(crate::cli::complete::jails))]
        jail: Option<String>,
        /// Print JSON (see docs/cli-json.md).
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        connect: Connect,
    },
    /// Ban an address in a jail.
    ///
    /// The ban is made like one the jail decided: in its sets, with its
    /// actions, recorded in the state database and the journal. Again on
    /// a banned address: the ban gets the new end.
    Ban {
        /// The jail.
        #[arg(add = ArgValueCompleter::new(crate::cli::complete::jails))]
        jail: String,
        /// An IPv4 or IPv6 address (with ipv6_prefix, its prefix is banned).
        address: String,
        /// How long ("30m", "1h 30m", "1w", "permanent") [default: the jail's bantime].
        #[arg(long = "for", value_name = "DURATION")]
        duration: Option<String>,
        #[command(flatten)]
        connect: Connect,
    },
    /// Lift bans of addresses (or CIDR ranges), or every ban.
    ///
    /// A CIDR range lifts every ban inside it. An address that is not
    /// banned is reported (exit status 1); the others are still lifted.
    /// --all is 0.0.0.0/0 and ::/0. With --origin or --fleet, only remote
    /// bans (other fleet hosts', in the fleet sets) are lifted and local
    /// bans stay; they stay lifted until their end, unless their origin
    /// bans them again.
    Unban {
        /// Only in this jail [default: every jail].
        #[arg(long, add = ArgValueCompleter::new(crate::cli::complete::jails))]
        jail: Option<String>,
        /// Addresses or CIDR ranges.
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        addresses: Vec<String>,
        /// Lift every ban (of --jail, or of every jail; with --origin or
        /// --fleet, every remote ban of those).
        #[arg(long)]
        all: bool,
        /// Only remote bans that fleet host HOST decided.
        #[arg(long, value_name = "HOST", conflicts_with_all = ["jail", "fleet"])]
        origin: Option<String>,
        /// Only remote bans, of every fleet host.
        #[arg(long, conflicts_with = "jail")]
        fleet: bool,
        #[command(flatten)]
        connect: Connect,
    },
    /// Reload the configuration (the running one stays if it has problems).
    ///
    /// Like systemctl reload jailwarden, but waits for the result and prints
    /// every problem as file:line:column (exit status 2). Bans in force
    /// stay; jails added or removed take effect at once; [daemon] keys
    /// marked "at start" in jailwarden.toml(5) wait for a restart.
    Reload {
        #[command(flatten)]
        connect: Connect,
    },
    /// Report a failed attempt from an address, as if a log line said so.
    ///
    /// For applications that know about abuse without logging it: the
    /// failure counts in the jail's window like a matched line (and may
    /// lead to a ban); prints counted, banned or already-banned.
    Report {
        /// The jail.
        #[arg(add = ArgValueCompleter::new(crate::cli::complete::jails))]
        jail: String,
        /// The IPv4 or IPv6 address that failed.
        address: String,
        #[command(flatten)]
        connect: Connect,
    },
    /// Follow bans, unbans and reloads as they happen (until interrupted;
    /// waits for the daemon when it is away).
    Watch {
        /// Only this jail's bans and unbans.
        #[arg(long)]
        jail: Option<String>,
        /// One JSON object per line (see docs/cli-json.md).
        #[arg(long)]
        json: bool,
        /// Also post desktop notifications (session bus), rate-limited.
        #[arg(long)]
        notify: bool,
        #[command(flatten)]
        connect: Connect,
    },
    /// The fleet: bans shared with other hosts through Redis ([fleet]).
    #[command(subcommand)]
    Fleet(FleetCommand),
}

/// `jailwarden fleet ...`.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum FleetCommand {
    /// Show the link to Redis and the peers: per peer the remote bans
    /// received, applied and refused, bans held, its last event and the
    /// lag (from when the peer wrote it to when it arrived here).
    Status {
        /// Print JSON (see docs/cli-json.md).
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        connect: Connect,
    },
}

/// A failed command: what to print, and the exit status.
#[derive(Debug)]
pub(super) struct Failure {
    pub(super) code: i32,
    pub(super) message: String,
}

impl Failure {
    fn runtime(message: impl Into<String>) -> Failure {
        Failure {
            code: 1,
            message: message.into(),
        }
    }

    pub(super) fn usage(message: impl Into<String>) -> Failure {
        Failure {
            code: 2,
            message: message.into(),
        }
    }
}

impl From<CallError> for Failure {
    fn from(e: CallError) -> Failure {
        let code = match &e {
            CallError::Api(
                Error::NoSuchJail(_)
                | Error::InvalidAddress(_)
                | Error::InvalidDuration(_)
                | Error::Config(_),
            ) => 2,
            _ => 1,
        };
        let message = match &e {
            CallError::AccessDenied(why) => {
                format!(
                    "access denied: {why}\n(changing bans needs root, or polkit's org.jailwarden1.manage)"
                )
            }
            CallError::Api(Error::Config(problems)) => {
                format!("reload refused; the running configuration stays:\n{problems}")
            }
            e => e.to_string(),
        };
        Failure { code, message }
    }
}

impl From<zbus::Error> for Failure {
    fn from(e: zbus::Error) -> Failure {
        Failure::from(CallError::from(e))
    }
}

/// Run a client command; returns the exit status.
pub fn run(command: Command) -> i32 {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("jailwarden: cannot start the async runtime: {e}");
            return 1;
        }
    };
    let style = Style::detect();
    match runtime.block_on(dispatch(command, style)) {
        Ok(out) => {
            // A closed pipe (`| head`) is not an error worth a message.
            let _ = std::io::stdout().lock().write_all(out.as_bytes());
            0
        }
        Err(f) => {
            eprintln!("jailwarden: {}", f.message);
            f.code
        }
    }
}

/// The running daemon's jail names, for shell completion: `None` when no
/// daemon answers within a second (the caller falls back to the files).
pub fn jail_names() -> Option<Vec<String>> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .ok()?;
    runtime.block_on(async {
        let ask = async {
            let conn = connect(&Connect { socket: None }).await.ok()?;
            let jails = manager(&conn).await.ok()?.list_jails().await.ok()?;
            Some(jails.into_iter().map(|(name, _)| name).collect())
        };
        tokio::time::timeout(Duration::from_secs(1), ask)
            .await
            .ok()
            .flatten()
    })
}

pub(super) fn socket_path(c: &Connect) -> PathBuf {
    c.socket
        .clone()
        .or_else(|| std::env::var_os(SOCKET_ENV).map(PathBuf::from))
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or_else(|| PathBuf::from(DEFAULT_SOCKET))
}

/// Connect to the daemon as the client commands do (the control socket,
/// else the system bus); the error says why not. For other clients of
/// the API (import-fail2ban --bans, the fail2ban-client mode).
pub async fn connect_daemon(socket: Option<PathBuf>) -> Result<Connection, String> {
    connect(&Connect { socket }).await.map_err(|f| f.message)
}

/// Connect to the daemon: the control socket, else the system bus.
pub(super) async fn connect(c: &Connect) -> Result<Connection, Failure> {
    let path = socket_path(c);
    let socket_problem = match std::os::unix::net::UnixStream::connect(&path) {
        Ok(stream) => {
            let build = zbus::connection::Builder::unix_stream(stream)
                .p2p()
                .method_timeout(CALL_TIMEOUT)
                .build();
            match tokio::time::timeout(CONNECT_TIMEOUT, build).await {
                Ok(Ok(conn)) => return Ok(conn),
                Ok(Err(e)) => format!("the control socket at {} failed: {e}", path.display()),
                Err(_) => format!("the control socket at {} does not answer", path.display()),
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => format!(
            "no permission to use the control socket at {} (run as root)",
            path.display()
        ),
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused
            ) =>
        {
            format!("no control socket at {}", path.display())
        }
        Err(e) => format!("cannot use the control socket at {}: {e}", path.display()),
    };
    let bus_problem = match bus().await {
        Ok(conn) => return Ok(conn),
        Err(p) => p,
    };
    Err(Failure::runtime(format!(
        "jailwarden is not running ({socket_problem}, {bus_problem})"
    )))
}

async fn bus() -> Result<Connection, String> {
    let build = zbus::connection::Builder::system()
        .method_timeout(CALL_TIMEOUT)
        .build();
    let conn = match tokio::time::timeout(CONNECT_TIMEOUT, build).await {
        Ok(Ok(c)) => c,
        Ok(Err(_)) | Err(_) => return Err("no system bus".into()),
    };
    // Asking first keeps a bus-activatable name from starting the daemon
    // for a status query.
    let owned = match zbus::fdo::DBusProxy::new(&conn).await {
        Ok(p) => p
            .name_has_owner(BUS_NAME.try_into().map_err(|_| "bad name")?)
            .await
            .unwrap_or(false),
        Err(_) => false,
    };
    if owned {
        Ok(conn)
    } else {
        Err(format!("no {BUS_NAME} on the system bus"))
    }
}

async fn manager(conn: &Connection) -> Result<ManagerProxy<'_>, Failure> {
    Ok(ManagerProxy::builder(conn)
        .cache_properties(zbus::proxy::CacheProperties::No)
        .build()
        .await?)
}

async fn dispatch(command: Command, style: Style) -> Result<String, Failure> {
    match command {
        Command::Status {
            jail,
            json,
            connect: c,
        } => status(&connect(&c).await?, jail.as_deref(), json, &style).await,
        Command::Bans {
            jail,
            json,
            connect: c,
        } => bans(&connect(&c).await?, jail.as_deref(), json, &style).await,
        Command::Ban {
            jail,
            address,
            duration,
            connect: c,
        } => {
            let usec = match duration.as_deref() {
                None => 0,
                Some(text) => match parse_bantime(text) {
                    Ok(BanTime::Permanent) => PERMANENT_USEC,
                    Ok(BanTime::For(d)) if d < Duration::from_secs(1) => {
                        return Err(Failure::usage("--for: a ban lasts at least 1s"));
                    }
                    Ok(BanTime::For(d)) => u64::try_from(d.as_micros()).unwrap_or(PERMANENT_USEC),
                    Err(e) => return Err(Failure::usage(format!("--for: {e}"))),
                },
            };
            let conn = connect(&c).await?;
            manager(&conn).await?.ban(&jail, &address, usec).await?;
            let how = match duration {
                Some(d) if usec == PERMANENT_USEC => format!(" ({d})"),
                Some(d) => format!(" for {d}"),
                None => String::new(),
            };
            Ok(format!("banned {address} in {jail}{how}\n"))
        }
        Command::Unban {
            origin,
            fleet,
            addresses,
            all,
            connect: c,
            ..
        } if origin.is_some() || fleet => {
            unban_remote(&connect(&c).await?, origin.as_deref(), &addresses, all).await
        }
        Command::Unban {
            jail,
            addresses,
            all,
            connect: c,
            ..
        } => unban(&connect(&c).await?, jail.as_deref(), &addresses, all).await,
        Command::Reload { connect: c } => {
            manager(&connect(&c).await?).await?.reload().await?;
            Ok("reloaded\n".into())
        }
        Command::Watch {
            jail,
            json,
            notify,
            connect: c,
        } => super::watch::run(jail, json, notify, &c, style).await,
        Command::Fleet(FleetCommand::Status { json, connect: c }) => {
            fleet_status(&connect(&c).await?, json, &style).await
        }
        Command::Report {
            jail,
            address,
            connect: c,
        } => {
            let (outcome, failures) = manager(&connect(&c).await?)
                .await?
                .report(&jail, &address)
                .await?;
            Ok(match outcome.as_str() {
                "counted" => format!("{jail}: {address} has {failures} failure(s) in the window\n"),
                "banned" => format!("{jail}: {address} banned after {failures} failures\n"),
                "already-banned" => format!("{jail}: {address} is already banned\n"),
                other => format!("{jail}: {address}: {other} ({failures})\n"),
            })
        }
    }
}

/// One jail, as `status` shows it (and its JSON shape).
#[derive(Debug, Clone, Serialize)]
struct JailRow {
    name: String,
    path: String,
    filter: String,
    enabled: bool,
    maxretry: u32,
    findtime_usec: u64,
    /// 0 = permanent.
    bantime_usec: u64,
    currently_failed: u32,
    total_failed: u64,
    currently_banned: u32,
    total_banned: u64,
}

#[derive(Debug, Serialize)]
struct StatusJson {
    version: String,
    active_bans: u32,
    total_bans: u64,
    /// The journal backlog being read; `null` once it is.
    backlog: Option<BacklogJson>,
    /// The log files' backlog being read; `null` when none is.
    file_backlog: Option<FileBacklogJson>,
    /// Why the state database cannot be written; `null` while it can.
    store_problem: Option<String>,
    jails: Vec<JailRow>,
}

/// `status --json`'s `file_backlog`.
#[derive(Debug, Serialize)]
struct FileBacklogJson {
    fraction: f64,
    bytes_read: u64,
    bytes_left: u64,
}

impl From<FileBacklog> for FileBacklogJson {
    fn from(b: FileBacklog) -> Self {
        FileBacklogJson {
            fraction: b.fraction(),
            bytes_read: b.bytes_read,
            bytes_left: b.bytes_left,
        }
    }
}

/// `status --json`'s `backlog`.
#[derive(Debug, Serialize)]
struct BacklogJson {
    fraction: f64,
    entries: u64,
    position: Option<String>,
    position_usec: u64,
}

/// One ban, as `bans --json` prints it.
#[derive(Debug, Serialize)]
struct BanJson {
    jail: String,
    address: String,
    banned_at: Option<String>,
    banned_at_usec: u64,
    /// `null` for permanent bans.
    expires_at: Option<String>,
    expires_at_usec: Option<u64>,
    permanent: bool,
    /// The fleet host that decided it (remote bans only).
    #[serde(skip_serializing_if = "Option::is_none")]
    origin: Option<String>,
}

#[derive(Debug, Serialize)]
struct BansJson {
    bans: Vec<BanJson>,
    /// Bans received from other fleet hosts (only with [fleet]).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    remote_bans: Vec<BanJson>,
}

#[derive(Debug, Serialize)]
struct PeerJson {
    name: String,
    received: u64,
    applied: u64,
    refused: u64,
    bans: u32,
    last_event: Option<String>,
    last_event_usec: Option<u64>,
    lag_usec: Option<u64>,
}

#[derive(Debug, Serialize)]
struct FleetJson {
    host: String,
    connected: bool,
    last_error: Option<String>,
    published: u64,
    remote_bans: u32,
    peers: Vec<PeerJson>,
}

async fn fleet_status(conn: &Connection, json: bool, style: &Style) -> Result<String, Failure> {
    let m = manager(conn).await?;
    let host = m.fleet_host().await.map_err(CallError::from)?;
    if host.is_empty() {
        return Err(Failure::runtime("no [fleet] is configured"));
    }
    let connected = m.fleet_connected().await.map_err(CallError::from)?;
    let last_error = m.fleet_last_error().await.map_err(CallError::from)?;
    let published = m.fleet_published().await.map_err(CallError::from)?;
    let remote_bans = m.remote_bans().await.map_err(CallError::from)?;
    let peers = m.fleet_peers().await?;
    let peers: Vec<PeerJson> = peers
        .into_iter()
        .map(
            |(name, received, applied, refused, last, lag, bans)| PeerJson {
                name,
                received,
                applied,
                refused,
                bans,
                last_event: rfc3339(last),
                last_event_usec: (last != 0).then_some(last),
                lag_usec: (last != 0).then_some(lag),
            },
        )
        .collect();
    if json {
        return to_json(&FleetJson {
            host,
            connected,
            last_error: (!last_error.is_empty()).then_some(last_error),
            published,
            remote_bans,
            peers,
        });
    }
    let mut out = format!(
        "fleet host {host}: {}, {published} decisions published, {remote_bans} remote bans in force\n",
        if connected {
            "connected to Redis".to_string()
        } else if last_error.is_empty() {
            "not connected yet".to_string()
        } else {
            format!("NOT connected ({last_error}); local bans go on")
        }
    );
    if peers.is_empty() {
        out.push_str("no peers seen\n");
        return Ok(out);
    }
    let rows: Vec<Vec<Cell>> = peers
        .iter()
        .map(|p| {
            vec![
                Cell::text(&p.name),
                Cell::text(p.received.to_string()),
                Cell::text(p.applied.to_string()),
                Cell::text(p.refused.to_string()),
                Cell::text(p.bans.to_string()),
                Cell::text(p.last_event_usec.map_or("-".into(), local_time)),
                Cell::text(
                    p.lag_usec
                        .map_or("-".into(), |l| format!("{:.1} ms", l as f64 / 1000.0)),
                ),
            ]
        })
        .collect();
    out.push_str(&super::format::table(
        style,
        &[
            "PEER",
            "RECEIVED",
            "APPLIED",
            "REFUSED",
            "BANS",
            "LAST EVENT",
            "LAG",
        ],
        &rows,
    ));
    Ok(out)
}

/// Properties as GetAll / GetManagedObjects return them.
pub(crate) type Props = HashMap<String, OwnedVariant>;

/// A property, or its type's default when absent or of another type.
pub(crate) fn prop<T>(p: &Props, key: &str) -> T
where
    T: for<'a> TryFrom<&'a OwnedVariant> + Default,
{
    p.get(key)
        .and_then(|v| T::try_from(v).ok())
        .unwrap_or_default()
}

/// A string property, or "".
pub(crate) fn prop_string(p: &Props, key: &str) -> String {
    p.get(key)
        .and_then(|v| <&str>::try_from(v).ok())
        .unwrap_or_default()
        .to_string()
}

async fn status(
    conn: &Connection,
    only: Option<&str>,
    json: bool,
    style: &Style,
) -> Result<String, Failure> {
    let props = zbus::fdo::PropertiesProxy::builder(conn)
        .destination(BUS_NAME)
        .path(MANAGER_PATH)
        .cache_properties(zbus::proxy::CacheProperties::No)
        .build()
        .await?;
    let m = props
        .get_all(zbus::names::InterfaceName::from_static_str_unchecked(
            super::MANAGER_INTERFACE,
        ))
        .await
        .map_err(zbus::Error::from)?;
    let objects = zbus::fdo::ObjectManagerProxy::builder(conn)
        .destination(BUS_NAME)
        .path(MANAGER_PATH)
        .cache_properties(zbus::proxy::CacheProperties::No)
        .build()
        .await?
        .get_managed_objects()
        .await
        .map_err(zbus::Error::from)?;
    let mut jails: Vec<JailRow> = objects
        .iter()
        .filter_map(|(path, ifaces)| {
            let p = ifaces
                .iter()
                .find(|(name, _)| name.as_str() == super::JAIL_INTERFACE)?
                .1;
            Some(JailRow {
                name: prop_string(p, "Name"),
                path: path.to_string(),
                filter: prop_string(p, "Filter"),
                enabled: prop(p, "Enabled"),
                maxretry: prop(p, "MaxRetry"),
                findtime_usec: prop(p, "FindTimeUSec"),
                bantime_usec: prop(p, "BanTimeUSec"),
                currently_failed: prop(p, "CurrentlyFailed"),
                total_failed: prop(p, "TotalFailed"),
                currently_banned: prop(p, "CurrentlyBanned"),
                total_banned: prop(p, "TotalBanned"),
            })
        })
        .collect();
    jails.sort_by(|a, b| a.name.cmp(&b.name));
    if let Some(name) = only {
        jails.retain(|j| j.name == name);
        if jails.is_empty() {
            return Err(Failure::usage(format!("no jail named {name:?}")));
        }
    }
    let backlog = prop::<bool>(&m, "BacklogActive").then(|| {
        let position_usec: u64 = prop(&m, "BacklogPositionUSec");
        BacklogJson {
            fraction: prop(&m, "BacklogFraction"),
            entries: prop(&m, "BacklogEntries"),
            position: rfc3339(position_usec),
            position_usec,
        }
    });
    let file_backlog = prop::<bool>(&m, "FileBacklogActive").then(|| FileBacklog {
        bytes_read: prop(&m, "FileBacklogBytesRead"),
        bytes_left: prop(&m, "FileBacklogBytesLeft"),
    });
    let st = StatusJson {
        version: prop_string(&m, "Version"),
        active_bans: prop(&m, "ActiveBans"),
        total_bans: prop(&m, "TotalBans"),
        backlog,
        file_backlog: file_backlog.map(FileBacklogJson::from),
        store_problem: Some(prop_string(&m, "StoreProblem")).filter(|p| !p.is_empty()),
        jails,
    };
    if json {
        return to_json(&st);
    }
    let mut out = String::new();
    if let Some(j) = st.jails.first().filter(|_| only.is_some()) {
        out.push_str(&jail_detail(conn, j, style).await?);
        return Ok(out);
    }
    out.push_str(&format!(
        "jailwarden {}: {} jail{}, {} ban{} in force, {} ever\n",
        st.version,
        st.jails.len(),
        if st.jails.len() == 1 { "" } else { "s" },
        st.active_bans,
        if st.active_bans == 1 { "" } else { "s" },
        st.total_bans
    ));
    if let Some(b) = &st.backlog {
        out.push_str(&format!(
            "reading the journal backlog: {:.0}%, {} entries{}\n",
            b.fraction * 100.0,
            b.entries,
            Some(b.position_usec)
                .filter(|u| *u > 0)
                .map(|u| format!(", logged up to {}", local_time(u)))
                .unwrap_or_default()
        ));
    }
    if let Some(b) = file_backlog {
        out.push_str(&format!("reading log files: {}\n", b.describe()));
    }
    if let Some(p) = &st.store_problem {
        out.push_str(&format!(
            "{}\n",
            style.paint(&format!("state database: {p}"), Some(Colour::Red))
        ));
    }
    out.push('\n');
    let rows: Vec<Vec<Cell>> = st
        .jails
        .iter()
        .map(|j| {
            vec![
                Cell::text(&j.name),
                Cell::text(if j.enabled { "yes" } else { "no" }).colour(if j.enabled {
                    Some(Colour::Green)
                } else {
                    Some(Colour::Dim)
                }),
                Cell::text(&j.filter),
                Cell::num(j.currently_failed),
                Cell::num(j.total_failed),
                Cell::num(j.currently_banned)
                    .colour((j.currently_banned > 0).then_some(Colour::Red)),
                Cell::num(j.total_banned),
                Cell::num(j.maxretry),
                Cell::text(short_duration(Duration::from_micros(j.findtime_usec))),
                Cell::text(bantime_text(j.bantime_usec)),
            ]
        })
        .collect();
    out.push_str(&super::format::table(
        style,
        &[
            "JAIL", "ENABLED", "FILTER", "FAILING", "FAILURES", "BANNED", "BANS", "MAXRETRY",
            "FINDTIME", "BANTIME",
        ],
        &rows,
    ));
    Ok(out)
}

fn bantime_text(usec: u64) -> String {
    if usec == 0 {
        "permanent".into()
    } else {
        short_duration(Duration::from_micros(usec))
    }
}

/// `status JAIL`: settings and counters, then its bans.
async fn jail_detail(conn: &Connection, j: &JailRow, style: &Style) -> Result<String, Failure> {
    let mgr = manager(conn).await?;
    let bans: Vec<(String, u64, u64)> = list_all_bans(&mgr, &j.name)
        .await?
        .into_iter()
        .map(|(_, a, at, exp)| (a, at, exp))
        .collect();
    let mut out = String::new();
    let key = |k: &str| style.paint(&format!("{k:<19}"), Some(Colour::Bold));
    out.push_str(&format!("{}{}\n", key("jail"), j.name));
    out.push_str(&format!(
        "{}{}\n",
        key("enabled"),
        if j.enabled { "yes" } else { "no" }
    ));
    out.push_str(&format!("{}{}\n", key("filter"), j.filter));
    out.push_str(&format!(
        "{}{} within {}, banned for {}\n",
        key("maxretry"),
        j.maxretry,
        short_duration(Duration::from_micros(j.findtime_usec)),
        bantime_text(j.bantime_usec)
    ));
    out.push_str(&format!(
        "{}{} now, {} total\n",
        key("failing addresses"),
        j.currently_failed,
        j.total_failed
    ));
    out.push_str(&format!(
        "{}{} now, {} total\n",
        key("banned"),
        j.currently_banned,
        j.total_banned
    ));
    if !bans.is_empty() {
        out.push('\n');
        let now = Timestamp::now();
        let rows: Vec<Vec<Cell>> = bans
            .iter()
            .map(|(addr, at, exp)| ban_cells(None, addr, *at, *exp, now))
            .collect();
        out.push_str(&super::format::table(
            style,
            &["ADDRESS", "BANNED AT", "EXPIRES"],
            &rows,
        ));
    }
    Ok(out)
}

fn ban_cells(jail: Option<&str>, addr: &str, at: u64, exp: u64, now: Timestamp) -> Vec<Cell> {
    let mut row = Vec::with_capacity(4);
    if let Some(j) = jail {
        row.push(Cell::text(j));
    }
    row.push(Cell::text(addr));
    row.push(Cell::text(local_time(at)));
    row.push(Cell::text(time_left(exp, now)).colour(Some(if exp == 0 {
        Colour::Red
    } else {
        Colour::Yellow
    })));
    row
}

async fn bans(
    conn: &Connection,
    jail: Option<&str>,
    json: bool,
    style: &Style,
) -> Result<String, Failure> {
    let m = manager(conn).await?;
    let bans = list_all_bans(&m, jail.unwrap_or("")).await?;
    // A daemon without the method (older) or without [fleet]: none.
    let remote: Vec<(String, String, String, u64, u64)> = m
        .list_remote_bans()
        .await
        .map(|b| b.into_inner())
        .unwrap_or_default()
        .into_iter()
        .filter(|(_, j, _, _, _)| jail.is_none_or(|w| w == j))
        .collect();
    let json_ban =
        |jail: String, address: String, at: u64, exp: u64, origin: Option<String>| BanJson {
            jail,
            address,
            banned_at: rfc3339(at),
            banned_at_usec: at,
            expires_at: rfc3339(exp),
            expires_at_usec: (exp != 0).then_some(exp),
            permanent: exp == 0,
            origin,
        };
    if json {
        let out = BansJson {
            bans: bans
                .into_iter()
                .map(|(jail, address, at, exp)| json_ban(jail, address, at, exp, None))
                .collect(),
            remote_bans: remote
                .into_iter()
                .map(|(o, jail, address, at, exp)| json_ban(jail, address, at, exp, Some(o)))
                .collect(),
        };
        return to_json(&out);
    }
    if bans.is_empty() && remote.is_empty() {
        return Ok("no bans in force\n".into());
    }
    let now = Timestamp::now();
    if remote.is_empty() {
        let rows: Vec<Vec<Cell>> = bans
            .iter()
            .map(|(j, a, at, exp)| ban_cells(Some(j), a, *at, *exp, now))
            .collect();
        return Ok(super::format::table(
            style,
            &["JAIL", "ADDRESS", "BANNED AT", "EXPIRES"],
            &rows,
        ));
    }
    let mut rows: Vec<Vec<Cell>> = bans
        .iter()
        .map(|(j, a, at, exp)| {
            let mut r = ban_cells(Some(j), a, *at, *exp, now);
            r.push(Cell::text("local"));
            r
        })
        .collect();
    for (o, j, a, at, exp) in &remote {
        let mut r = ban_cells(Some(j), a, *at, *exp, now);
        r.push(Cell::text(format!("fleet:{o}")));
        rows.push(r);
    }
    Ok(super::format::table(
        style,
        &["JAIL", "ADDRESS", "BANNED AT", "EXPIRES", "ORIGIN"],
        &rows,
    ))
}

async fn unban(
    conn: &Connection,
    jail: Option<&str>,
    addresses: &[String],
    all: bool,
) -> Result<String, Failure> {
    let m = manager(conn).await?;
    let j = jail.unwrap_or("");
    let scope = jail.map(|j| format!(" in {j}")).unwrap_or_default();
    if all {
        // Every address is in one of these two ranges.
        let mut lifted = false;
        for range in ["0.0.0.0/0", "::/0"] {
            match m.unban(j, range).await {
                Ok(()) => lifted = true,
                Err(CallError::Api(Error::NotBanned(_))) => {}
                Err(e) => return Err(e.into()),
            }
        }
        return Ok(if lifted {
            format!("lifted every ban{scope}\n")
        } else {
            format!("no bans in force{scope}\n")
        });
    }
    let mut each = PerAddress::default();
    for a in addresses {
        match m.unban(j, a).await {
            Ok(()) => each.done(format!("unbanned {a}{scope}\n")),
            Err(e) => each.failed(e.into()),
        }
    }
    each.finish(addresses.len())
}

/// `unban --origin HOST` / `unban --fleet`: remote bans only.
async fn unban_remote(
    conn: &Connection,
    origin: Option<&str>,
    addresses: &[String],
    all: bool,
) -> Result<String, Failure> {
    let m = manager(conn).await?;
    let o = origin.unwrap_or("");
    let from = origin
        .map(|o| format!(" of {o}"))
        .unwrap_or_else(|| " of every fleet host".into());
    if all {
        let n = m.unban_remote(o, "").await?;
        return Ok(match n {
            0 => format!("no remote bans{from}\n"),
            1 => format!("lifted 1 remote ban{from}\n"),
            n => format!("lifted {n} remote bans{from}\n"),
        });
    }
    let mut each = PerAddress::default();
    for a in addresses {
        match m.unban_remote(o, a).await {
            Ok(n) => {
                let s = if n == 1 { "" } else { "s" };
                each.done(format!("unbanned {a} ({n} remote ban{s}{from})\n"));
            }
            Err(e) => each.failed(e.into()),
        }
    }
    each.finish(addresses.len())
}

/// A command's results over several addresses: the lines of those done
/// (printed even when others failed) and the gravest failure (its exit
/// code wins); each failure is said on stderr as it happens.
#[derive(Default)]
struct PerAddress {
    out: String,
    done: usize,
    worst: Option<Failure>,
}

impl PerAddress {
    fn done(&mut self, line: String) {
        self.out.push_str(&line);
        self.done += 1;
    }

    fn failed(&mut self, f: Failure) {
        eprintln!("jailwarden: {}", f.message);
        if self.worst.as_ref().is_none_or(|w| f.code > w.code) {
            self.worst = Some(f);
        }
    }

    fn finish(self, total: usize) -> Result<String, Failure> {
        match self.worst {
            None => Ok(self.out),
            Some(f) => {
                let _ = std::io::stdout().lock().write_all(self.out.as_bytes());
                Err(Failure {
                    code: f.code,
                    message: format!("{} of {total} not unbanned", total - self.done),
                })
            }
        }
    }
}

fn to_json<T: Serialize>(v: &T) -> Result<String, Failure> {
    let mut s = serde_json::to_string_pretty(v)
        .map_err(|e| Failure::runtime(format!("cannot write JSON: {e}")))?;
    s.push('\n');
    Ok(s)
}
