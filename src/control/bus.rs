//! The system bus: serve the objects, then ask for `org.jailwarden1`.
//!
//! The name is requested only after the objects are in place (a call that
//! arrives in between would be lost otherwise), without queueing and
//! without replacing an owner. Not getting it is not fatal: with no bus at
//! all, or another owner, or a bus policy that refuses us, the daemon says
//! so once and serves the control socket alone. A bus that appears later
//! (started after us) or restarts is joined again.

use std::time::Duration;

use tracing::{info, warn};
use zbus::fdo::{RequestNameFlags, RequestNameReply};

use super::BUS_NAME;
use super::dbus::{Context, Transport};
use super::hub::Hub;

/// Retry joining the bus after this long, doubling up to [`RETRY_MAX`].
const RETRY_MIN: Duration = Duration::from_secs(1);
const RETRY_MAX: Duration = Duration::from_secs(60);

/// Why we are not on the bus.
enum Absent {
    /// No bus to connect to (yet): try again later.
    NoBus(zbus::Error),
    /// On the bus, but the name is not ours: stay off.
    NameRefused(String),
}

/// Join the system bus in the background.
pub fn spawn(ctx: Context, hub: Hub) {
    tokio::spawn(run(ctx, hub));
}

async fn run(ctx: Context, hub: Hub) {
    let mut delay = RETRY_MIN;
    let mut said_absent = false;
    loop {
        match join(&ctx, &hub).await {
            Ok(conn) => {
                delay = RETRY_MIN;
                said_absent = false;
                conn.closed().await;
                ctx.set_bus(None);
                warn!("lost the system bus; serving the control socket only until it is back");
            }
            Err(Absent::NoBus(e)) => {
                if !said_absent {
                    info!(
                        "no system bus ({e}); serving the control socket only, and joining the bus when it appears"
                    );
                    said_absent = true;
                }
            }
            Err(Absent::NameRefused(why)) => {
                warn!(
                    "cannot own {BUS_NAME} on the system bus: {why}; serving the control socket only"
                );
                return;
            }
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(RETRY_MAX);
    }
}

async fn join(ctx: &Context, hub: &Hub) -> Result<zbus::Connection, Absent> {
    let conn = hub
        .serve(ctx, zbus::connection::Builder::system(), Transport::Bus)
        .await
        .map_err(Absent::NoBus)?;
    let refused = |why: String| async {
        // Leaving the bus detaches the connection from the hub too.
        let _ = conn.clone().close().await;
        Err(Absent::NameRefused(why))
    };
    match conn
        .request_name_with_flags(BUS_NAME, RequestNameFlags::DO_NOT_QUEUE)
        .await
    {
        Ok(RequestNameReply::PrimaryOwner | RequestNameReply::AlreadyOwner) => {}
        Ok(RequestNameReply::Exists | RequestNameReply::InQueue) | Err(zbus::Error::NameTaken) => {
            return refused(format!(
                "another process owns it (another jailwarden? see busctl status {BUS_NAME})"
            ))
            .await;
        }
        Err(e) => {
            return refused(format!(
                "{e} (is dbus/org.jailwarden1.conf installed in /usr/share/dbus-1/system.d, and are we root or user jailwarden?)"
            ))
            .await;
        }
    }
    info!(
        "serving {BUS_NAME} on the system bus as {}",
        conn.unique_name().map(|n| n.as_str()).unwrap_or("?")
    );
    ctx.set_bus(Some(conn.clone()));
    Ok(conn)
}
