//! The control socket: the same D-Bus objects, served peer-to-peer on a
//! Unix socket, so the CLI works with no system bus at all (early boot,
//! containers, minimal hosts).
//!
//! The listening socket comes from systemd (`jailwarden.socket`,
//! `LISTEN_FDS`, fd name `control`) when socket-activated; otherwise the
//! daemon creates it, mode 0600 in a 0755 directory. A socket file left by
//! a dead daemon is replaced; one a live daemon answers on is not (two
//! daemons would fight over the firewall). Each accepted connection gets
//! its own objects, which know the peer from `SO_PEERCRED`.

use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::net::UnixListener as StdListener;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use tokio::net::UnixListener;
use tokio::sync::Semaphore;
use tracing::{debug, info, warn};

use super::dbus::{Context, Transport};
use super::hub::Hub;
use super::polkit::PeerCred;

/// Peers served at once; more wait in the listen backlog.
const MAX_PEERS: usize = 64;
/// A peer must finish the D-Bus handshake within this.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// The fd name `jailwarden.socket` gives the control socket.
const FD_NAME: &str = "control";

/// The socket file we created, removed when serving stops (when the
/// runtime drops the accept task) if it is still ours.
struct SocketFile {
    path: PathBuf,
    dev: u64,
    ino: u64,
}

impl Drop for SocketFile {
    fn drop(&mut self) {
        if let Ok(m) = std::fs::symlink_metadata(&self.path) {
            if m.dev() == self.dev && m.ino() == self.ino {
                let _ = std::fs::remove_file(&self.path);
            }
        }
    }
}

/// Start serving the control socket (systemd's, or `path`): binds now, so
/// errors fail the daemon's start; accepts in the background.
pub fn serve(path: &Path, ctx: Context, hub: Hub) -> Result<()> {
    let (listener, file) = match from_systemd()? {
        Some(l) => {
            info!("control socket handed over by systemd");
            (l, None)
        }
        None => {
            let (l, f) = create(path)?;
            info!(path = %path.display(), "control socket created");
            (l, Some(f))
        }
    };
    listener.set_nonblocking(true)?;
    let listener = UnixListener::from_std(listener).context("cannot watch the control socket")?;
    tokio::spawn(accept_loop(listener, file, ctx, hub));
    Ok(())
}

/// Taken once per process: the fd belongs to whoever takes it first.
static TAKEN: AtomicBool = AtomicBool::new(false);

/// The listening socket systemd passed, if any: the one named `control`,
/// or the only one.
fn from_systemd() -> Result<Option<StdListener>> {
    let fds: Vec<(i32, String)> = sd_notify::listen_fds_with_names()
        .context("LISTEN_FDS is set but unusable")?
        .collect();
    let pick = fds
        .iter()
        .find(|(_, name)| name == FD_NAME)
        .or(if fds.len() == 1 { fds.first() } else { None });
    let Some(&(fd, ref name)) = pick else {
        if !fds.is_empty() {
            warn!(
                "systemd passed {} sockets but none named {FD_NAME:?}; creating our own",
                fds.len()
            );
        }
        return Ok(None);
    };
    if TAKEN.swap(true, Ordering::SeqCst) {
        return Ok(None);
    }
    // SAFETY: LISTEN_PID named this process, so systemd passed `fd` to us,
    // open; nothing else in the process uses LISTEN_FDS, and TAKEN makes
    // sure it is owned once.
    let owned = unsafe { OwnedFd::from_raw_fd(fd) };
    let kind = rustix::net::sockopt::socket_type(&owned)
        .with_context(|| format!("passed fd {fd} ({name}) is not a socket"))?;
    let listening = rustix::net::sockopt::socket_acceptconn(&owned).unwrap_or(false);
    let unix = matches!(
        rustix::net::getsockname(&owned),
        Ok(a) if a.address_family() == rustix::net::AddressFamily::UNIX
    );
    if kind != rustix::net::SocketType::STREAM || !listening || !unix {
        bail!(
            "the socket systemd passed ({name}) must be a listening Unix stream socket (ListenStream=)"
        );
    }
    Ok(Some(StdListener::from(owned)))
}

/// Create the socket at `path`: directory 0755 if missing, socket 0600,
/// bound under a temporary name and renamed so it never exists with
/// looser permissions.
fn create(path: &Path) -> Result<(StdListener, SocketFile)> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let Some(file_name) = path.file_name() else {
        bail!("control socket path {} names no file", path.display());
    };
    if !dir.exists() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
    }
    match std::fs::symlink_metadata(path) {
        Ok(m) if !m.file_type().is_socket() => bail!(
            "{} exists and is not a socket; not replacing it",
            path.display()
        ),
        Ok(_) => match std::os::unix::net::UnixStream::connect(path) {
            Ok(_) => bail!(
                "another jailwarden answers on {}; not starting a second one",
                path.display()
            ),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                info!(path = %path.display(), "removing a stale control socket");
                std::fs::remove_file(path)
                    .with_context(|| format!("cannot remove {}", path.display()))?;
            }
            Err(e) => bail!("cannot check {}: {e}", path.display()),
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => bail!("cannot check {}: {e}", path.display()),
    }
    let tmp = dir.join(format!(
        ".{}.{}.tmp",
        file_name.to_string_lossy(),
        std::process::id()
    ));
    let _ = std::fs::remove_file(&tmp);
    let listener =
        StdListener::bind(&tmp).with_context(|| format!("cannot bind {}", tmp.display()))?;
    let placed = std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600))
        .and_then(|()| std::fs::rename(&tmp, path));
    if let Err(e) = placed {
        let _ = std::fs::remove_file(&tmp);
        return Err(e).with_context(|| format!("cannot create {}", path.display()));
    }
    let m = std::fs::symlink_metadata(path)?;
    Ok((
        listener,
        SocketFile {
            path: path.to_path_buf(),
            dev: m.dev(),
            ino: m.ino(),
        },
    ))
}

async fn accept_loop(listener: UnixListener, _file: Option<SocketFile>, ctx: Context, hub: Hub) {
    let slots = Arc::new(Semaphore::new(MAX_PEERS));
    loop {
        // Wait for a free slot first: excess peers wait in the backlog.
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        let stream = match listener.accept().await {
            Ok((s, _)) => s,
            Err(e) => {
                // EMFILE and friends: don't spin.
                warn!("control socket: accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        };
        let (ctx, hub) = (ctx.clone(), hub.clone());
        tokio::spawn(async move {
            if let Err(e) = peer(stream, &ctx, &hub).await {
                debug!("control socket: peer dropped: {e:#}");
            }
            drop(slot);
        });
    }
}

/// Serve one peer until it hangs up.
async fn peer(stream: tokio::net::UnixStream, ctx: &Context, hub: &Hub) -> Result<()> {
    let stream = stream.into_std()?;
    let cred = PeerCred::of(&stream).context("no peer credentials")?;
    let builder = zbus::connection::Builder::unix_stream(stream)
        .server(zbus::Guid::generate())
        .p2p();
    let conn = tokio::time::timeout(
        HANDSHAKE_TIMEOUT,
        hub.serve(ctx, builder, Transport::Peer(cred)),
    )
    .await
    .context("handshake timed out")??;
    debug!(
        pid = cred.pid,
        uid = cred.uid,
        "control socket: peer connected"
    );
    conn.closed().await;
    Ok(())
}
