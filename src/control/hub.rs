//! Fans the core's events out to every served connection: the Banned and
//! Unbanned signals at once, `PropertiesChanged` coalesced, and jail
//! objects added and removed when a reload changes the jails.
//!
//! The core publishes `JailChanged` once per batch, which under a flood of
//! log lines is still many per second; clients want a few. So changes only
//! mark jails dirty, and a flush [`DEBOUNCE`] after the first one reads
//! the status once and sends, per jail and per connection, one
//! `PropertiesChanged` with only the properties whose values differ from
//! what was last sent. The hub is one task that owns the list of
//! connections, so no locks are needed.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use tokio::sync::broadcast::error::RecvError;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tracing::{debug, warn};
use zbus::names::InterfaceName;
use zbus::object_server::SignalEmitter;
use zbus::{Connection, Variant, fdo};

use super::dbus::{Context, Jail, Manager, Transport, usec};
use super::{JAIL_INTERFACE, MANAGER_INTERFACE, MANAGER_PATH, jail_path};
use crate::daemon::control::{CoreEvent, CoreHandle, JailStatus, Status};

/// How long changes are gathered before `PropertiesChanged` goes out: at
/// most ~3 per second per jail, whatever the log rate.
pub const DEBOUNCE: Duration = Duration::from_millis(300);
/// A control-socket peer that does not read its signals for this long is
/// dropped, so one stuck client (a suspended `jailwarden status`, say)
/// cannot stall the others. The system bus is never dropped for it: it
/// is only busy (dbus-daemon reads everything, at its own pace), and
/// leaving it would lose the name and every client's calls in flight.
const EMIT_TIMEOUT: Duration = Duration::from_secs(2);
const STUCK: &str = "the peer does not read";

enum Msg {
    Attach {
        conn: Connection,
        transport: Transport,
        jails: BTreeSet<String>,
        done: oneshot::Sender<()>,
    },
    Detach(u64),
}

/// A handle on the hub task.
#[derive(Clone)]
pub struct Hub {
    tx: mpsc::Sender<Msg>,
}

impl Hub {
    /// Start the hub on the current runtime.
    pub fn spawn(core: CoreHandle, ctx: Context) -> Hub {
        let (tx, rx) = mpsc::channel(64);
        let events = core.subscribe();
        let task = Task {
            ctx,
            tx: tx.clone(),
            conns: HashMap::new(),
            next_id: 0,
            sent_jails: BTreeMap::new(),
            sent_manager: None,
            dirty: BTreeSet::new(),
            all_dirty: false,
            resync: false,
            deadline: None,
        };
        tokio::spawn(task.run(events, rx));
        Hub { tx }
    }

    /// Build a connection that serves the manager, the object manager and
    /// one object per jail, and attach it. Objects are in place before the
    /// first message is read, so nothing a client sends early is lost.
    pub async fn serve(
        &self,
        ctx: &Context,
        builder: zbus::connection::Builder<'_>,
        transport: Transport,
    ) -> zbus::Result<Connection> {
        let jails: BTreeSet<String> = match ctx.status().await {
            Ok(s) => s.jails.iter().map(|j| j.name.clone()).collect(),
            // The hub adds them once the core answers.
            Err(_) => BTreeSet::new(),
        };
        let mut builder = builder
            .serve_at(MANAGER_PATH, Manager::new(ctx.clone(), transport))
            .serve_at(MANAGER_PATH, fdo::ObjectManager);
        for name in &jails {
            builder = builder.serve_at(
                jail_path(name),
                Jail::new(ctx.clone(), transport, name.clone()),
            );
        }
        let conn = builder.build().await?;
        self.attach(conn.clone(), transport, jails).await;
        Ok(conn)
    }

    /// Hand over a connection whose objects are served (manager, object
    /// manager, and `jails`): from now on it gets signals, property
    /// changes and jail objects as jails come and go. Returns once the hub
    /// has brought its jail objects up to date.
    pub async fn attach(&self, conn: Connection, transport: Transport, jails: BTreeSet<String>) {
        let (done, wait) = oneshot::channel();
        let msg = Msg::Attach {
            conn,
            transport,
            jails,
            done,
        };
        if self.tx.send(msg).await.is_ok() {
            let _ = wait.await;
        }
    }
}

struct Served {
    conn: Connection,
    transport: Transport,
    /// Jail objects registered on this connection.
    jails: BTreeSet<String>,
}

struct Task {
    ctx: Context,
    tx: mpsc::Sender<Msg>,
    conns: HashMap<u64, Served>,
    next_id: u64,
    /// Property values last sent, per jail.
    sent_jails: BTreeMap<String, JailStatus>,
    /// (ActiveBans, TotalBans, DbPurgeAgeUSec) last sent.
    sent_manager: Option<(u32, u64, u64)>,
    dirty: BTreeSet<String>,
    all_dirty: bool,
    /// Jails may have been added or removed.
    resync: bool,
    deadline: Option<Instant>,
}

async fn sleep_until(t: Option<Instant>) {
    match t {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}

impl Task {
    async fn run(
        mut self,
        mut events: tokio::sync::broadcast::Receiver<CoreEvent>,
        mut rx: mpsc::Receiver<Msg>,
    ) {
        // What clients first see is the baseline for later differences.
        if let Ok(status) = self.ctx.status().await {
            self.remember(&status);
        }
        loop {
            tokio::select! {
                ev = events.recv() => match ev {
                    Ok(ev) => self.event(ev).await,
                    Err(RecvError::Lagged(n)) => {
                        warn!("control: {n} core events missed (too many at once); resending all properties");
                        self.ctx.invalidate();
                        self.all_dirty = true;
                        self.resync = true;
                        self.arm();
                    }
                    Err(RecvError::Closed) => break,
                },
                Some(msg) = rx.recv() => match msg {
                    Msg::Attach { conn, transport, jails, done } => {
                        self.attach(conn, transport, jails).await;
                        let _ = done.send(());
                    }
                    Msg::Detach(id) => {
                        self.conns.remove(&id);
                    }
                },
                _ = sleep_until(self.deadline) => {
                    self.deadline = None;
                    self.flush().await;
                }
            }
        }
    }

    fn arm(&mut self) {
        if self.deadline.is_none() {
            self.deadline = Some(Instant::now() + DEBOUNCE);
        }
    }

    async fn event(&mut self, ev: CoreEvent) {
        self.ctx.invalidate();
        match ev {
            CoreEvent::Banned {
                jail,
                address,
                expires_at,
                failures,
            } => {
                let expires = usec(expires_at);
                self.each_manager(|e| {
                    let (jail, address) = (jail.clone(), address.clone());
                    async move { Manager::banned(&e, &jail, &address, expires, failures).await }
                })
                .await;
                self.dirty.insert(jail);
                self.arm();
            }
            CoreEvent::Unbanned {
                jail,
                address,
                reason,
            } => {
                self.each_manager(|e| {
                    let (jail, address, reason) = (jail.clone(), address.clone(), reason.clone());
                    async move { Manager::unbanned(&e, &jail, &address, &reason).await }
                })
                .await;
                self.dirty.insert(jail);
                self.arm();
            }
            CoreEvent::RemoteBanned {
                origin,
                jail,
                address,
                expires_at,
            } => {
                let expires = usec(expires_at);
                self.each_manager(|e| {
                    let (origin, jail, address) = (origin.clone(), jail.clone(), address.clone());
                    async move { Manager::remote_banned(&e, &origin, &jail, &address, expires).await }
                })
                .await;
            }
            CoreEvent::RemoteUnbanned {
                origin,
                jail,
                address,
                reason,
            } => {
                self.each_manager(|e| {
                    let (origin, jail, address, reason) =
                        (origin.clone(), jail.clone(), address.clone(), reason.clone());
                    async move {
                        Manager::remote_unbanned(&e, &origin, &jail, &address, &reason).await
                    }
                })
                .await;
            }
            CoreEvent::JailChanged { jail } => {
                self.dirty.insert(jail);
                self.arm();
            }
            CoreEvent::JailsChanged => {
                // Settings may have changed everywhere; objects come and go
                // now, not after the debounce: clients rescan after reload.
                self.resync = true;
                self.all_dirty = true;
                self.flush().await;
                let jails: Vec<String> = match self.ctx.status().await {
                    Ok(s) => s.jails.iter().map(|j| j.name.clone()).collect(),
                    Err(_) => Vec::new(),
                };
                self.each_manager(|e| {
                    let jails = jails.clone();
                    async move { Manager::reloaded(&e, jails).await }
                })
                .await;
            }
        }
    }

    /// Run `emit` with a manager emitter for each connection; forget the
    /// connections that are gone.
    async fn each_manager<F, Fut>(&mut self, emit: F)
    where
        F: Fn(SignalEmitter<'static>) -> Fut,
        Fut: std::future::Future<Output = zbus::Result<()>>,
    {
        let mut gone = Vec::new();
        for (id, s) in &self.conns {
            let Ok(e) = SignalEmitter::new(&s.conn, MANAGER_PATH) else {
                continue;
            };
            match tokio::time::timeout(EMIT_TIMEOUT, emit(e.into_owned())).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) if s.conn.is_closed() => gone.push(*id),
                Ok(Err(err)) => debug!("control: cannot emit a signal: {err}"),
                // The bus is busy (carrying large replies): not a stuck peer.
                Err(_) if s.transport == Transport::Bus => {
                    debug!("control: a signal waited over {EMIT_TIMEOUT:?} for the bus")
                }
                Err(_) => gone.push(*id),
            }
        }
        self.drop_conns(gone).await;
    }

    async fn attach(&mut self, conn: Connection, transport: Transport, jails: BTreeSet<String>) {
        let id = self.next_id;
        self.next_id += 1;
        let mut served = Served {
            conn: conn.clone(),
            transport,
            jails,
        };
        if let Ok(status) = self.ctx.status().await {
            let want: BTreeSet<String> = status.jails.iter().map(|j| j.name.clone()).collect();
            sync_objects(&self.ctx, &mut served, &want).await;
        }
        self.conns.insert(id, served);
        // Forget it when the peer goes away (each CLI run is one
        // connection; none may linger).
        let tx = self.tx.clone();
        tokio::spawn(async move {
            conn.closed().await;
            let _ = tx.send(Msg::Detach(id)).await;
        });
    }

    fn remember(&mut self, status: &Status) {
        self.sent_jails = status
            .jails
            .iter()
            .map(|j| (j.name.clone(), j.clone()))
            .collect();
        self.sent_manager = Some(manager_values(status));
    }

    async fn flush(&mut self) {
        self.ctx.invalidate();
        let status = match self.ctx.status().await {
            Ok(s) => s,
            Err(e) => {
                debug!("control: no status to publish: {e}");
                return;
            }
        };
        let resync = std::mem::take(&mut self.resync);
        let all = std::mem::take(&mut self.all_dirty);
        let dirty = std::mem::take(&mut self.dirty);
        if resync {
            let want: BTreeSet<String> = status.jails.iter().map(|j| j.name.clone()).collect();
            for s in self.conns.values_mut() {
                sync_objects(&self.ctx, s, &want).await;
            }
            self.sent_jails.retain(|name, _| want.contains(name));
        }
        let mut changes: Vec<(String, HashMap<&'static str, Variant<'static>>)> = Vec::new();
        for j in &status.jails {
            if !(all || dirty.contains(&j.name)) {
                continue;
            }
            let diff = jail_diff(self.sent_jails.get(&j.name), j);
            if !diff.is_empty() {
                changes.push((j.name.clone(), diff));
            }
            self.sent_jails.insert(j.name.clone(), j.clone());
        }
        let now = manager_values(&status);
        let mut manager: HashMap<&'static str, Variant<'static>> = HashMap::new();
        let before = self.sent_manager.replace(now);
        if before.is_none_or(|b| b.0 != now.0) {
            manager.insert("ActiveBans", Variant::from(now.0));
        }
        if before.is_none_or(|b| b.1 != now.1) {
            manager.insert("TotalBans", Variant::from(now.1));
        }
        if before.is_none_or(|b| b.2 != now.2) {
            manager.insert("DbPurgeAgeUSec", Variant::from(now.2));
        }
        let mut gone = Vec::new();
        for (id, s) in &self.conns {
            let mut result = Ok(());
            if !manager.is_empty() {
                result =
                    properties_changed(&s.conn, MANAGER_PATH, MANAGER_INTERFACE, &manager).await;
            }
            for (name, diff) in &changes {
                if result.is_err() {
                    break;
                }
                if s.jails.contains(name) {
                    result =
                        properties_changed(&s.conn, jail_path(name).as_str(), JAIL_INTERFACE, diff)
                            .await;
                }
            }
            match result {
                Ok(()) => {}
                Err(_) if s.conn.is_closed() => gone.push(*id),
                // The bus is only busy; a socket peer that reads nothing is stuck.
                Err(zbus::Error::Failure(m)) if m == STUCK && s.transport != Transport::Bus => {
                    gone.push(*id)
                }
                Err(e) => debug!("control: cannot emit PropertiesChanged: {e}"),
            }
        }
        self.drop_conns(gone).await;
    }

    /// Forget connections that are gone or stuck; close the stuck ones so
    /// their peers notice.
    async fn drop_conns(&mut self, ids: Vec<u64>) {
        for id in ids {
            if let Some(s) = self.conns.remove(&id) {
                if !s.conn.is_closed() {
                    debug!("control: dropping a peer that does not read its messages");
                    let _ = s.conn.close().await;
                }
            }
        }
    }
}

async fn properties_changed(
    conn: &Connection,
    path: &str,
    interface: &'static str,
    changed: &HashMap<&'static str, Variant<'static>>,
) -> zbus::Result<()> {
    tokio::time::timeout(
        EMIT_TIMEOUT,
        emit_properties_changed(conn, path, interface, changed),
    )
    .await
    .map_err(|_| zbus::Error::Failure(STUCK.into()))?
}

async fn emit_properties_changed(
    conn: &Connection,
    path: &str,
    interface: &'static str,
    changed: &HashMap<&'static str, Variant<'static>>,
) -> zbus::Result<()> {
    let emitter = SignalEmitter::new(conn, path)?;
    let changed: HashMap<&str, Variant<'_>> =
        changed.iter().map(|(k, v)| (*k, v.clone())).collect();
    fdo::Properties::properties_changed(
        &emitter,
        InterfaceName::from_static_str_unchecked(interface),
        changed,
        (&[] as &[&str]).into(),
    )
    .await
}

/// Make the jail objects on one connection match `want`.
async fn sync_objects(ctx: &Context, s: &mut Served, want: &BTreeSet<String>) {
    let server = s.conn.object_server();
    for name in s.jails.difference(want) {
        if let Err(e) = server.remove::<Jail, _>(jail_path(name)).await {
            debug!(jail = name, "control: cannot remove a jail object: {e}");
        }
    }
    for name in want.difference(&s.jails) {
        let jail = Jail::new(ctx.clone(), s.transport, name.clone());
        if let Err(e) = server.at(jail_path(name), jail).await {
            debug!(jail = name, "control: cannot add a jail object: {e}");
        }
    }
    s.jails = want.clone();
}

/// The Manager properties that change: ActiveBans, TotalBans, DbPurgeAgeUSec.
fn manager_values(status: &Status) -> (u32, u64, u64) {
    (
        status.active_bans,
        status.total_bans,
        u64::try_from(status.dbpurgeage.as_micros()).unwrap_or(u64::MAX),
    )
}

/// The Jail properties whose values differ from what was last sent.
fn jail_diff(
    before: Option<&JailStatus>,
    now: &JailStatus,
) -> HashMap<&'static str, Variant<'static>> {
    let mut d: HashMap<&'static str, Variant<'static>> = HashMap::new();
    let b = before;
    if b.is_none_or(|b| b.filter != now.filter) {
        d.insert("Filter", Variant::from(now.filter.clone()));
    }
    if b.is_none_or(|b| b.enabled != now.enabled) {
        d.insert("Enabled", Variant::from(now.enabled));
    }
    if b.is_none_or(|b| b.maxretry != now.maxretry) {
        d.insert("MaxRetry", Variant::from(now.maxretry));
    }
    if b.is_none_or(|b| b.findtime != now.findtime) {
        let v = u64::try_from(now.findtime.as_micros()).unwrap_or(u64::MAX);
        d.insert("FindTimeUSec", Variant::from(v));
    }
    if b.is_none_or(|b| b.bantime != now.bantime) {
        d.insert("BanTimeUSec", Variant::from(now.bantime.as_usec()));
    }
    if b.is_none_or(|b| b.currently_failed != now.currently_failed) {
        d.insert("CurrentlyFailed", Variant::from(now.currently_failed));
    }
    if b.is_none_or(|b| b.total_failed != now.total_failed) {
        d.insert("TotalFailed", Variant::from(now.total_failed));
    }
    if b.is_none_or(|b| b.currently_banned != now.currently_banned) {
        d.insert("CurrentlyBanned", Variant::from(now.currently_banned));
    }
    if b.is_none_or(|b| b.total_banned != now.total_banned) {
        d.insert("TotalBanned", Variant::from(now.total_banned));
    }
    d
}
