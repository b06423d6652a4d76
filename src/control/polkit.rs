//! Who may change things: root, or whoever polkit allows the action
//! `org.jailwarden1.manage` (Cockpit, GNOME front ends).
//!
//! The subject polkit is asked about is always the **caller**: on the bus
//! the message's sender (`system-bus-name`), on the control socket the peer
//! process from `SO_PEERCRED` (`unix-process`: pid plus its start time, so
//! a recycled pid cannot inherit the answer). Never the daemon itself.
//! When polkit cannot be asked (not installed, not running, no system bus)
//! the answer is no.

use std::collections::HashMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tracing::{debug, info};
use zbus::message::{Flags, Header};
use zbus::{Connection, Type, Variant};

use super::POLKIT_ACTION;
use super::error::CallError;

/// polkit's `CheckAuthorization` flag: the user may be asked to authenticate.
const ALLOW_USER_INTERACTION: u32 = 1;
/// How long to wait for polkit when no one is asked to type a password.
const QUICK_TIMEOUT: Duration = Duration::from_secs(10);
/// ... and when an authentication agent may be prompting a person.
const INTERACTIVE_TIMEOUT: Duration = Duration::from_secs(300);

/// A polkit subject: `(sa{sv})`.
#[derive(Debug, Serialize, Type)]
pub struct Subject<'a> {
    kind: &'a str,
    details: HashMap<&'a str, Variant<'a>>,
}

/// `CheckAuthorization`'s answer: `(bba{ss})`.
#[derive(Debug, Deserialize, Type)]
pub struct AuthorizationResult {
    /// Allowed.
    pub is_authorized: bool,
    /// Allowed after authentication, which was not asked for.
    pub is_challenge: bool,
    /// polkit's extra details (unused).
    pub details: HashMap<String, String>,
}

#[zbus::proxy(
    interface = "org.freedesktop.PolicyKit1.Authority",
    default_service = "org.freedesktop.PolicyKit1",
    default_path = "/org/freedesktop/PolicyKit1/Authority"
)]
trait Authority {
    fn check_authorization(
        &self,
        subject: &Subject<'_>,
        action_id: &str,
        details: &HashMap<&str, &str>,
        flags: u32,
        cancellation_id: &str,
    ) -> zbus::Result<AuthorizationResult>;
}

/// A control-socket peer, from `SO_PEERCRED` at accept time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerCred {
    /// The peer's process id when it connected.
    pub pid: u32,
    /// Its user id.
    pub uid: u32,
    /// The process's start time (clock ticks since boot, /proc/PID/stat
    /// field 22), read right after accept; `None` if it already exited.
    pub start_time: Option<u64>,
}

impl PeerCred {
    /// The peer of a connected Unix socket.
    pub fn of(fd: &impl std::os::fd::AsFd) -> std::io::Result<PeerCred> {
        let cred = rustix::net::sockopt::socket_peercred(fd)?;
        let pid = u32::try_from(cred.pid.as_raw_nonzero().get()).unwrap_or(0);
        Ok(PeerCred {
            pid,
            uid: cred.uid.as_raw(),
            start_time: process_start_time(pid),
        })
    }
}

/// Field 22 (`starttime`) of /proc/PID/stat. The command name (field 2) may
/// hold spaces and parentheses, so fields are counted after its last `)`.
pub fn process_start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_start_time(&stat)
}

fn parse_start_time(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    // After ")": field 3 (state) is the first; starttime is field 22.
    rest.split_ascii_whitespace().nth(22 - 3)?.parse().ok()
}

/// Where a call came from, for [`authorize`].
pub enum Caller<'a> {
    /// A bus client: the message header names the sender; `conn` is our
    /// bus connection (to ask the bus and polkit).
    Bus {
        header: &'a Header<'a>,
        conn: &'a Connection,
    },
    /// A control-socket peer; `bus` is our system bus connection, if any,
    /// to ask polkit.
    Peer {
        cred: PeerCred,
        header: &'a Header<'a>,
        bus: Option<Connection>,
    },
}

/// Allow root; ask polkit about anyone else; deny when polkit can't answer.
pub async fn authorize(caller: Caller<'_>) -> Result<(), CallError> {
    match caller {
        Caller::Bus { header, conn } => {
            let sender = header
                .sender()
                .ok_or_else(|| CallError::AccessDenied("the call has no sender".into()))?;
            let dbus = zbus::fdo::DBusProxy::new(conn)
                .await
                .map_err(|e| CallError::AccessDenied(format!("cannot ask the bus: {e}")))?;
            let uid = dbus
                .get_connection_unix_user(sender.clone().into())
                .await
                .map_err(|e| {
                    CallError::AccessDenied(format!("cannot learn who {sender} is: {e}"))
                })?;
            if uid == 0 {
                return Ok(());
            }
            let subject = Subject {
                kind: "system-bus-name",
                details: HashMap::from([("name", Variant::from(sender.as_str()))]),
            };
            check(conn, &subject, interactive(header), uid).await
        }
        Caller::Peer { cred, header, bus } => {
            if cred.uid == 0 {
                return Ok(());
            }
            let Some(bus) = bus else {
                return Err(CallError::AccessDenied(format!(
                    "uid {} is not root, and polkit cannot be asked (no system bus)",
                    cred.uid
                )));
            };
            let Some(start_time) = cred.start_time else {
                return Err(CallError::AccessDenied(format!(
                    "the calling process {} has exited",
                    cred.pid
                )));
            };
            let subject = Subject {
                kind: "unix-process",
                details: HashMap::from([
                    ("pid", Variant::from(cred.pid)),
                    ("start-time", Variant::from(start_time)),
                    ("uid", Variant::from(i32::try_from(cred.uid).unwrap_or(-1))),
                ]),
            };
            check(&bus, &subject, interactive(header), cred.uid).await
        }
    }
}

/// The caller set ALLOW_INTERACTIVE_AUTH: polkit may prompt for a password.
fn interactive(header: &Header<'_>) -> bool {
    header
        .primary()
        .flags()
        .contains(Flags::ALLOW_INTERACTIVE_AUTH)
}

async fn check(
    conn: &Connection,
    subject: &Subject<'_>,
    interactive: bool,
    uid: u32,
) -> Result<(), CallError> {
    let unavailable = |e: String| {
        info!(uid, "polkit cannot be asked ({e}); denying");
        CallError::AccessDenied(format!(
            "uid {uid} is not root, and polkit is not available to authorize {POLKIT_ACTION} ({e})"
        ))
    };
    let authority = AuthorityProxy::builder(conn)
        .cache_properties(zbus::proxy::CacheProperties::No)
        .build()
        .await
        .map_err(|e| unavailable(e.to_string()))?;
    let (flags, limit) = if interactive {
        (ALLOW_USER_INTERACTION, INTERACTIVE_TIMEOUT)
    } else {
        (0, QUICK_TIMEOUT)
    };
    let details = HashMap::new();
    let call = authority.check_authorization(subject, POLKIT_ACTION, &details, flags, "");
    let result = match tokio::time::timeout(limit, call).await {
        Err(_) => return Err(unavailable("no answer in time".into())),
        Ok(Err(e)) => return Err(unavailable(e.to_string())),
        Ok(Ok(r)) => r,
    };
    debug!(uid, ?subject, ?result, "polkit answered");
    if result.is_authorized {
        Ok(())
    } else if result.is_challenge {
        Err(CallError::AccessDenied(format!(
            "{POLKIT_ACTION} needs authentication (call with interactive authorization, e.g. busctl --allow-interactive-authorization=yes, from a session with a polkit agent)"
        )))
    } else {
        Err(CallError::AccessDenied(format!(
            "uid {uid} is not allowed {POLKIT_ACTION} by polkit"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_time_survives_odd_command_names() {
        let stat =
            "4242 (a) b (c) S 1 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 10";
        assert_eq!(parse_start_time(stat), Some(987_654));
        assert_eq!(parse_start_time("garbage"), None);
        assert!(process_start_time(std::process::id()).is_some());
    }
}
