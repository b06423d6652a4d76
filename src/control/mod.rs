//! Control surfaces: the `org.jailwarden1` D-Bus API, served on the system
//! bus and peer-to-peer on the control socket, and the CLI that calls it.
//!
//! ```text
//!   CoreHandle ◀── dbus::{Manager, Jail}  (#[interface] newtypes, one set per connection)
//!        │              ▲        ▲
//!        │ events       │        └── socket.rs: control socket, p2p connections, SO_PEERCRED
//!        ▼              └─────────── bus.rs: system bus connection, the well-known name
//!     hub.rs: signals, coalesced PropertiesChanged, jail objects added/removed on reload
//!   polkit.rs: who may change things (root, or polkit's org.jailwarden1.manage)
//!   limit.rs: what reading may cost (calls in flight per caller and in all, rows in flight)
//!   cli.rs: `jailwarden status|bans|ban|unban|reload|report`, over the proxies
//!   watch.rs + desktop.rs: `jailwarden watch [--json] [--notify]`, the signals live
//! ```
//!
//! The proxies the CLI uses are generated from the very `#[interface]`
//! blocks the daemon serves (`proxy(...)` attribute), so names and types
//! are written once. `dbus/org.jailwarden1.xml` documents the API; a test
//! compares it with what the running daemon introspects.

pub mod bus;
pub mod cli;
pub mod dbus;
pub mod desktop;
pub mod error;
mod format;
pub mod hub;
pub mod limit;
pub mod polkit;
pub mod socket;
pub mod watch;

use std::sync::Arc;

use anyhow::Result;
use zbus::OwnedObjectPath;

use crate::config::Config;
use crate::daemon::Surface;
use crate::daemon::control::CoreHandle;

/// The well-known bus name.
pub const BUS_NAME: &str = "org.jailwarden1";
/// The manager object.
pub const MANAGER_PATH: &str = "/org/jailwarden1";
/// Jail objects live below this path.
pub const JAIL_PATH_PREFIX: &str = "/org/jailwarden1/jail";
/// The manager interface.
pub const MANAGER_INTERFACE: &str = "org.jailwarden1.Manager";
/// The per-jail interface.
pub const JAIL_INTERFACE: &str = "org.jailwarden1.Jail";
/// The polkit action that guards Ban, Unban, UnbanRemote, Reload and Report.
pub const POLKIT_ACTION: &str = "org.jailwarden1.manage";
/// Environment variable naming the control socket for clients.
pub const SOCKET_ENV: &str = "JAILWARDEN_SOCKET";

/// The object path of a jail: `/org/jailwarden1/jail/<escaped name>`.
///
/// Escaped as systemd's `sd_bus_path_encode` does (so `busctl` users
/// recognise it): ASCII letters stay, digits stay except in the first
/// position, everything else becomes `_xx` (lowercase hex of each byte);
/// the empty name is `_`. Jail names are `[A-Za-z0-9_.-]{1,64}`, so
/// `nginx-http-auth` is `nginx_2dhttp_2dauth`.
pub fn jail_path(name: &str) -> OwnedObjectPath {
    let path = format!("{JAIL_PATH_PREFIX}/{}", escape_path_label(name));
    // Escaping leaves only [A-Za-z0-9_], which is always a valid element.
    OwnedObjectPath::try_from(path).expect("an escaped label is a valid object path element")
}

/// Escape one object path element (see [`jail_path`]).
pub fn escape_path_label(name: &str) -> String {
    if name.is_empty() {
        return "_".to_string();
    }
    let mut out = String::with_capacity(name.len());
    for (i, b) in name.bytes().enumerate() {
        if b.is_ascii_alphabetic() || (i > 0 && b.is_ascii_digit()) {
            out.push(char::from(b));
        } else {
            out.push('_');
            out.push_str(&format!("{b:02x}"));
        }
    }
    out
}

/// Reverse [`escape_path_label`]; `None` for text it cannot have produced.
pub fn unescape_path_label(label: &str) -> Option<String> {
    if label == "_" {
        return Some(String::new());
    }
    let bytes = label.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'_' {
            let hex = label.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// The control surfaces of the daemon, for [`crate::daemon::run_with`]:
/// the control socket (always) and the system bus (`[daemon] dbus`).
///
/// Binding the control socket happens before READY and fails the start
/// when another daemon answers on it; the system bus is joined in the
/// background, and its absence only means the socket serves alone.
pub fn surfaces() -> Vec<Surface> {
    vec![Box::new(start)]
}

fn start(core: CoreHandle, cfg: Arc<Config>) -> Result<()> {
    let ctx = dbus::Context::new(core.clone());
    let hub = hub::Hub::spawn(core, ctx.clone());
    socket::serve(&cfg.daemon.socket, ctx.clone(), hub.clone())?;
    if cfg.daemon.dbus {
        bus::spawn(ctx, hub);
    } else {
        tracing::info!("[daemon] dbus = false: serving the control socket only");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jail_paths_are_escaped_like_systemd() {
        for (name, label) in [
            ("sshd", "sshd"),
            ("nginx-http-auth", "nginx_2dhttp_2dauth"),
            ("a_b", "a_5fb"),
            ("a.b", "a_2eb"),
            ("3proxy", "_33proxy"),
            ("x9", "x9"),
            ("", "_"),
        ] {
            assert_eq!(escape_path_label(name), label, "{name}");
            assert_eq!(unescape_path_label(label).as_deref(), Some(name), "{label}");
            assert_eq!(
                jail_path(name).as_str(),
                format!("/org/jailwarden1/jail/{label}")
            );
        }
        assert_eq!(unescape_path_label("_zz"), None);
        assert_eq!(unescape_path_label("ab_2"), None);
    }
}
