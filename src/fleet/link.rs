//! The link to Redis: one task, two connections (one publishes, one
//! blocks in `XREAD`), reconnecting with backoff (200 ms doubling to 30 s).
//!
//! The core hands over this host's own decisions on a bounded channel
//! (`try_send`: a full channel costs the stream an event, never the core a
//! wait) and gets other hosts' events on another. The link keeps a mirror
//! of this host's bans in force; on every (re)connect it rewrites its
//! active set from the mirror and appends a `resync` entry, so peers that
//! missed events while Redis or this link was down read the set again:
//! whatever happened meanwhile, they end equal to it.
//!
//! Following a peer: from the last stream ID the core stored; a peer seen
//! for the first time, or whose stream was trimmed past that ID, is read
//! from its active set first (`resync`), its stream after the set's last
//! entry.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ipnet::IpNet;
use jiff::Timestamp;
use redis::aio::MultiplexedConnection;
use redis::streams::{StreamRangeReply, StreamReadReply};
use redis::{AsyncConnectionConfig, Client, IntoConnectionInfo, RedisError, Value};
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

use super::wire::{self, Event, Kind, StreamId};
use crate::config::fleet::FleetConfig;

/// Stream entries older than this are trimmed (`XADD ... MINID ~`); a
/// peer away longer reads the active set instead.
pub const STREAM_RETENTION: Duration = Duration::from_secs(86_400);
/// How long one `XREAD` blocks; peers are looked for again after it.
const BLOCK: Duration = Duration::from_secs(1);
/// Entries per read and events per transaction.
const CHUNK: usize = 1000;
/// Capacity of the channel from the core (events, batched).
pub const CHANNEL: usize = 4096;

/// What the link tells the core.
#[derive(Debug)]
pub enum FromLink {
    /// New entries of `origin`'s stream, in order.
    Events {
        origin: String,
        events: Vec<(StreamId, Event)>,
    },
    /// `origin`'s active set, read whole; its stream follows after `last`.
    Resync {
        origin: String,
        set: Vec<Event>,
        last: StreamId,
    },
    /// The fleet members (other than this host) and their own addresses.
    Members(Vec<(String, Vec<IpAddr>)>),
}

/// The link's state, for `fleet status`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LinkStatus {
    pub connected: bool,
    /// When the link last went up or down.
    pub since: Option<Timestamp>,
    pub last_error: Option<String>,
    /// Events written to this host's stream.
    pub published: u64,
    /// Own decisions the channel had no room for (peers catch up from
    /// the active set at the next reconnect).
    pub dropped: u64,
    pub reconnects: u64,
    /// Other fleet members seen.
    pub peers: Vec<String>,
}

/// What the link starts from.
pub struct LinkOptions {
    pub config: FleetConfig,
    /// This host's addresses (peers never ban them).
    pub own_addrs: Vec<IpAddr>,
    /// This host's published bans in force.
    pub own_bans: Vec<Event>,
    /// Last stream ID read per origin (from the store).
    pub positions: HashMap<String, StreamId>,
}

/// The running link: the core's ends.
pub struct Link {
    pub tx: mpsc::Sender<Vec<Event>>,
    pub status: Arc<Mutex<LinkStatus>>,
}

/// Start the link task (on the current tokio runtime).
pub fn spawn(opts: LinkOptions) -> (Link, mpsc::Receiver<FromLink>) {
    let (tx, rx) = mpsc::channel(CHANNEL);
    let (to_core, from_link) = mpsc::channel(64);
    let status = Arc::new(Mutex::new(LinkStatus::default()));
    let host = opts.config.host.clone();
    let mut mirror = BTreeMap::new();
    for e in opts.own_bans {
        mirror.insert((e.net, e.jail.clone()), e);
    }
    let state = State {
        config: opts.config,
        publisher: Publisher {
            rx,
            mirror,
            stream: wire::stream_key(&host),
            active: wire::active_key(&host),
            status: status.clone(),
        },
        reader: Reader {
            host,
            own_addrs: opts.own_addrs,
            cursors: opts.positions,
            following: Vec::new(),
            to_core,
            status: status.clone(),
        },
    };
    tokio::spawn(run(state));
    (Link { tx, status }, from_link)
}

struct State {
    config: FleetConfig,
    publisher: Publisher,
    reader: Reader,
}

struct Publisher {
    rx: mpsc::Receiver<Vec<Event>>,
    /// This host's bans in force, by (net, jail).
    mirror: BTreeMap<(IpNet, String), Event>,
    stream: String,
    active: String,
    status: Arc<Mutex<LinkStatus>>,
}

struct Reader {
    host: String,
    own_addrs: Vec<IpAddr>,
    /// Last ID handed to the core, per origin.
    cursors: HashMap<String, StreamId>,
    /// Origins followed in this session.
    following: Vec<String>,
    to_core: mpsc::Sender<FromLink>,
    status: Arc<Mutex<LinkStatus>>,
}

/// Why a session ended.
enum End {
    /// The core is gone: the daemon stops.
    Shutdown,
    Failed(String),
}

impl From<RedisError> for End {
    fn from(e: RedisError) -> Self {
        End::Failed(e.to_string())
    }
}

fn set_status(status: &Mutex<LinkStatus>, f: impl FnOnce(&mut LinkStatus)) {
    if let Ok(mut s) = status.lock() {
        f(&mut s);
    }
}

async fn run(mut st: State) {
    let mut backoff = Duration::from_millis(200);
    let mut failures: u64 = 0;
    loop {
        let started = Instant::now();
        let end = session(&mut st).await;
        let msg = match end {
            End::Shutdown => return,
            End::Failed(m) => m,
        };
        if started.elapsed() > Duration::from_secs(30) {
            backoff = Duration::from_millis(200);
        }
        failures += 1;
        set_status(&st.publisher.status, |s| {
            if s.connected {
                s.since = Some(Timestamp::now());
            }
            s.connected = false;
            s.last_error = Some(msg.clone());
            s.reconnects += 1;
        });
        if failures.is_power_of_two() {
            warn!(
                url = st.config.url,
                "fleet: Redis unreachable ({msg}); local bans go on, retrying in {:?} ({failures} failures so far)",
                backoff
            );
        }
        // Wait, still taking the core's decisions into the mirror.
        let until = tokio::time::Instant::now() + backoff;
        loop {
            tokio::select! {
                _ = tokio::time::sleep_until(until) => break,
                batch = st.publisher.rx.recv() => match batch {
                    Some(b) => st.publisher.remember(&b),
                    None => return,
                },
            }
        }
        backoff = (backoff * 2).min(Duration::from_secs(30));
    }
}

/// The connection settings: the URL, and the password from its file.
fn connection_info(config: &FleetConfig) -> Result<redis::ConnectionInfo, String> {
    let info = config
        .url
        .as_str()
        .into_connection_info()
        .map_err(|e| format!("bad url: {e}"))?;
    let Some(path) = &config.password_file else {
        return Ok(info);
    };
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let password = text.lines().next().unwrap_or("").trim().to_string();
    let redis = info.redis_settings().clone().set_password(password);
    Ok(info.set_redis_settings(redis))
}

/// The CA file's certificates, for TLS.
fn ca_certificates(config: &FleetConfig) -> Result<Option<redis::TlsCertificates>, String> {
    let Some(ca) = config.ca_file.as_ref() else {
        return Ok(None);
    };
    let pem = std::fs::read(ca).map_err(|e| format!("cannot read {}: {e}", ca.display()))?;
    Ok(Some(redis::TlsCertificates {
        client_tls: None,
        root_cert: Some(pem),
    }))
}

/// The client: TLS (`rediss://`) against `ca_file` when it is set, else
/// the system's CAs (or no TLS); with `sentinels`, to the master they name.
async fn client(config: &FleetConfig, info: redis::ConnectionInfo) -> Result<Client, String> {
    if let Some(sentinels) = config.sentinels.as_ref() {
        return sentinel_master(config, sentinels, &info).await;
    }
    match ca_certificates(config)? {
        None => Client::open(info).map_err(|e| e.to_string()),
        Some(certs) => Client::build_with_tls(info, certs).map_err(|e| e.to_string()),
    }
}

/// Ask the Sentinels where the master named by the url's host is.
async fn sentinel_master(
    config: &FleetConfig,
    sentinels: &[String],
    info: &redis::ConnectionInfo,
) -> Result<Client, String> {
    use redis::sentinel::{SentinelClientBuilder, SentinelServerType};
    let (name, tls) = match info.addr() {
        redis::ConnectionAddr::Tcp(host, _) => (host.clone(), false),
        redis::ConnectionAddr::TcpTls { host, .. } => (host.clone(), true),
        _ => return Err("with sentinels, url must be redis://[USER@]MASTER-NAME".into()),
    };
    let mut addrs = Vec::new();
    for s in sentinels {
        let i = s
            .as_str()
            .into_connection_info()
            .map_err(|e| format!("bad sentinel {s}: {e}"))?;
        addrs.push(i.addr().clone());
    }
    let settings = info.redis_settings();
    let mut b = SentinelClientBuilder::new(addrs, name.clone(), SentinelServerType::Master)
        .map_err(|e| e.to_string())?
        .set_client_to_redis_db(settings.db());
    if let Some(u) = settings.username() {
        b = b.set_client_to_redis_username(u);
    }
    if let Some(p) = settings.password() {
        b = b.set_client_to_redis_password(p);
    }
    if tls {
        b = b.set_client_to_redis_tls_mode(redis::TlsMode::Secure);
        if let Some(certs) = ca_certificates(config)? {
            b = b.set_client_to_redis_certificates(certs);
        }
    }
    let mut sc = b.build().map_err(|e| e.to_string())?;
    let asked = tokio::time::timeout(Duration::from_secs(10), sc.async_get_client());
    match asked.await {
        Ok(Ok(c)) => Ok(c),
        Ok(Err(e)) => Err(format!("sentinels: master {name}: {e}")),
        Err(_) => Err(format!("sentinels: master {name}: no answer within 10s")),
    }
}

async fn session(st: &mut State) -> End {
    let info = match connection_info(&st.config) {
        Ok(i) => i,
        Err(e) => return End::Failed(e),
    };
    let client = match client(&st.config, info).await {
        Ok(c) => c,
        Err(e) => return End::Failed(e.to_string()),
    };
    let timeouts = |response: Duration| {
        AsyncConnectionConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(3)))
            .set_response_timeout(Some(response))
    };
    let mut w = match client
        .get_multiplexed_async_connection_with_config(&timeouts(Duration::from_secs(10)))
        .await
    {
        Ok(c) => c,
        Err(e) => return End::Failed(e.to_string()),
    };
    let mut r = match client
        .get_multiplexed_async_connection_with_config(&timeouts(BLOCK + Duration::from_secs(10)))
        .await
    {
        Ok(c) => c,
        Err(e) => return End::Failed(e.to_string()),
    };
    if let Err(e) = st.publisher.announce(&mut w, &st.reader).await {
        return e;
    }
    info!(
        url = st.config.url,
        host = st.reader.host,
        "fleet: connected to Redis"
    );
    set_status(&st.publisher.status, |s| {
        s.connected = true;
        s.since = Some(Timestamp::now());
        s.last_error = None;
    });
    st.reader.following.clear();
    let publishing = st.publisher.run(&mut w);
    let reading = st.reader.run(&mut r);
    tokio::select! {
        e = publishing => e,
        e = reading => e,
    }
}

impl Publisher {
    /// Take decisions into the mirror.
    fn remember(&mut self, batch: &[Event]) {
        for e in batch {
            let key = (e.net, e.jail.clone());
            match e.kind {
                Kind::Ban => {
                    self.mirror.insert(key, e.clone());
                }
                Kind::Unban => {
                    self.mirror.remove(&key);
                }
                Kind::Resync => {}
            }
        }
    }

    /// On connect: this host's member hash, its active set rewritten from
    /// the mirror, and a `resync` entry telling peers to read it.
    async fn announce(
        &mut self,
        w: &mut MultiplexedConnection,
        reader: &Reader,
    ) -> Result<(), End> {
        let now = Timestamp::now();
        let addrs: Vec<String> = reader.own_addrs.iter().map(IpAddr::to_string).collect();
        redis::cmd("HSET")
            .arg(wire::member_key(&reader.host))
            .arg("addrs")
            .arg(addrs.join(","))
            .arg("since")
            .arg(now.as_second())
            .query_async::<()>(w)
            .await?;
        self.mirror
            .retain(|_, e| e.expires_at.is_none_or(|x| x > now));
        let mut p = redis::pipe();
        p.atomic();
        p.cmd("DEL").arg(&self.active).ignore();
        let bans: Vec<&Event> = self.mirror.values().collect();
        for chunk in bans.chunks(CHUNK) {
            let mut zadd = redis::cmd("ZADD");
            zadd.arg(&self.active);
            for e in chunk {
                zadd.arg(e.score()).arg(e.member());
            }
            p.add_command(zadd).ignore();
        }
        let marker = Event {
            kind: Kind::Resync,
            jail: String::new(),
            net: IpNet::from(IpAddr::from([0, 0, 0, 0])),
            banned_at: now,
            expires_at: None,
            failures: 0,
            reason: String::new(),
        };
        p.add_command(self.xadd(&marker, now)).ignore();
        p.query_async::<()>(w).await?;
        Ok(())
    }

    fn xadd(&self, e: &Event, now: Timestamp) -> redis::Cmd {
        let keep_from = now.as_millisecond() - STREAM_RETENTION.as_millis() as i64;
        let mut c = redis::cmd("XADD");
        c.arg(&self.stream)
            .arg("MINID")
            .arg("~")
            .arg(keep_from.max(0))
            .arg("*");
        if e.kind == Kind::Resync {
            c.arg("type").arg("resync");
        } else {
            for (k, v) in e.fields() {
                c.arg(k).arg(v);
            }
        }
        c
    }

    async fn run(&mut self, w: &mut MultiplexedConnection) -> End {
        loop {
            let Some(mut batch) = self.rx.recv().await else {
                return End::Shutdown;
            };
            while batch.len() < CHUNK {
                match self.rx.try_recv() {
                    Ok(more) => batch.extend(more),
                    Err(_) => break,
                }
            }
            self.remember(&batch);
            if let Err(e) = self.publish(w, &batch).await {
                return e;
            }
        }
    }

    /// One transaction: the stream entries and the active set's changes.
    async fn publish(&mut self, w: &mut MultiplexedConnection, batch: &[Event]) -> Result<(), End> {
        let now = Timestamp::now();
        for chunk in batch.chunks(CHUNK) {
            let mut p = redis::pipe();
            p.atomic();
            for e in chunk {
                p.add_command(self.xadd(e, now)).ignore();
                match e.kind {
                    Kind::Ban => {
                        p.cmd("ZADD")
                            .arg(&self.active)
                            .arg(e.score())
                            .arg(e.member())
                            .ignore();
                    }
                    Kind::Unban => {
                        p.cmd("ZREM").arg(&self.active).arg(e.member()).ignore();
                    }
                    Kind::Resync => {}
                }
            }
            p.cmd("ZREMRANGEBYSCORE")
                .arg(&self.active)
                .arg("-inf")
                .arg(now.as_second())
                .ignore();
            p.query_async::<()>(w).await?;
            set_status(&self.status, |s| s.published += chunk.len() as u64);
        }
        Ok(())
    }
}

/// A value as text (stream fields are bulk strings).
fn text(v: &Value) -> Option<String> {
    redis::from_redis_value_ref::<String>(v).ok()
}

impl Reader {
    async fn run(&mut self, r: &mut MultiplexedConnection) -> End {
        loop {
            if let Err(e) = self.scan(r).await {
                return e;
            }
            if self.following.is_empty() {
                tokio::time::sleep(BLOCK).await;
                continue;
            }
            let mut cmd = redis::cmd("XREAD");
            cmd.arg("COUNT")
                .arg(CHUNK)
                .arg("BLOCK")
                .arg(BLOCK.as_millis() as u64)
                .arg("STREAMS");
            for o in &self.following {
                cmd.arg(wire::stream_key(o));
            }
            for o in &self.following {
                let id = self.cursors.get(o).copied().unwrap_or(StreamId::ZERO);
                cmd.arg(id.to_string());
            }
            let reply: Option<StreamReadReply> = match cmd.query_async(r).await {
                Ok(v) => v,
                Err(e) => return e.into(),
            };
            let Some(reply) = reply else { continue };
            for key in reply.keys {
                let Some(origin) = key
                    .key
                    .strip_prefix(wire::PREFIX)
                    .and_then(|k| k.strip_prefix(":bans:"))
                    .map(str::to_string)
                else {
                    continue;
                };
                let mut events = Vec::new();
                for entry in key.ids {
                    let Ok(id) = entry.id.parse::<StreamId>() else {
                        continue;
                    };
                    let field = |k: &str| entry.map.get(k).and_then(text);
                    match Event::parse(field) {
                        Some(e) if e.kind == Kind::Resync => {
                            if !events.is_empty() {
                                let batch = std::mem::take(&mut events);
                                if let Err(e) = self.deliver(&origin, batch).await {
                                    return e;
                                }
                            }
                            if let Err(e) = self.resync(r, &origin, Some(id)).await {
                                return e;
                            }
                        }
                        Some(e) => events.push((id, e)),
                        None => {
                            debug!(origin, id = entry.id, "fleet: malformed entry skipped");
                            self.cursors.insert(origin.clone(), id);
                        }
                    }
                }
                if !events.is_empty() {
                    if let Err(e) = self.deliver(&origin, events).await {
                        return e;
                    }
                }
            }
        }
    }

    async fn deliver(&mut self, origin: &str, events: Vec<(StreamId, Event)>) -> Result<(), End> {
        if let Some((last, _)) = events.last() {
            self.cursors.insert(origin.to_string(), *last);
        }
        self.to_core
            .send(FromLink::Events {
                origin: origin.to_string(),
                events,
            })
            .await
            .map_err(|_| End::Shutdown)
    }

    /// Look for fleet members; follow new ones.
    async fn scan(&mut self, r: &mut MultiplexedConnection) -> Result<(), End> {
        let mut cursor: u64 = 0;
        let mut hosts = Vec::new();
        for _ in 0..10_000 {
            let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(format!("{}:member:*", wire::PREFIX))
                .arg("COUNT")
                .arg(1000)
                .query_async(r)
                .await?;
            hosts.extend(
                keys.iter()
                    .filter_map(|k| wire::host_of_member_key(k))
                    .filter(|h| crate::config::fleet::valid_host(h) && *h != self.host)
                    .map(str::to_string),
            );
            cursor = next;
            if cursor == 0 {
                break;
            }
        }
        hosts.sort();
        hosts.dedup();
        let known: HashSet<&String> = self.following.iter().collect();
        let new: Vec<String> = hosts
            .iter()
            .filter(|h| !known.contains(h))
            .cloned()
            .collect();
        if new.is_empty() {
            return Ok(());
        }
        let mut members = Vec::new();
        for h in &hosts {
            let addrs: Option<String> = redis::cmd("HGET")
                .arg(wire::member_key(h))
                .arg("addrs")
                .query_async(r)
                .await?;
            let addrs: Vec<IpAddr> = addrs
                .unwrap_or_default()
                .split(',')
                .filter_map(|a| a.trim().parse().ok())
                .take(4096)
                .collect();
            members.push((h.clone(), addrs));
        }
        self.to_core
            .send(FromLink::Members(members))
            .await
            .map_err(|_| End::Shutdown)?;
        for h in new {
            self.join(r, &h).await?;
            self.following.push(h);
        }
        set_status(&self.status, |s| s.peers = self.following.clone());
        Ok(())
    }

    /// Start following `origin`: from the cursor if its stream still holds
    /// it, else from its active set.
    async fn join(&mut self, r: &mut MultiplexedConnection, origin: &str) -> Result<(), End> {
        let Some(cursor) = self.cursors.get(origin).copied() else {
            return self.resync(r, origin, None).await;
        };
        let first: StreamRangeReply = redis::cmd("XRANGE")
            .arg(wire::stream_key(origin))
            .arg("-")
            .arg("+")
            .arg("COUNT")
            .arg(1)
            .query_async(r)
            .await?;
        let first = first
            .ids
            .first()
            .and_then(|e| e.id.parse::<StreamId>().ok());
        if first.is_some_and(|f| f > cursor) {
            info!(
                origin,
                "fleet: the stream no longer holds the last entry read (trimmed, or Redis lost its data); reading its active set"
            );
            return self.resync(r, origin, None).await;
        }
        Ok(())
    }

    /// Read `origin`'s active set whole; the stream is followed after
    /// `at` (a resync entry) or after its last entry now.
    async fn resync(
        &mut self,
        r: &mut MultiplexedConnection,
        origin: &str,
        at: Option<StreamId>,
    ) -> Result<(), End> {
        let last = match at {
            Some(id) => id,
            None => {
                let last: StreamRangeReply = redis::cmd("XREVRANGE")
                    .arg(wire::stream_key(origin))
                    .arg("+")
                    .arg("-")
                    .arg("COUNT")
                    .arg(1)
                    .query_async(r)
                    .await?;
                last.ids
                    .first()
                    .and_then(|e| e.id.parse::<StreamId>().ok())
                    .unwrap_or(StreamId::ZERO)
            }
        };
        let now = Timestamp::now().as_second();
        let members: Vec<(String, f64)> = redis::cmd("ZRANGE")
            .arg(wire::active_key(origin))
            .arg(format!("({now}"))
            .arg("+inf")
            .arg("BYSCORE")
            .arg("WITHSCORES")
            .query_async(r)
            .await?;
        let set: Vec<Event> = members
            .iter()
            .filter_map(|(m, s)| wire::parse_member(m, *s))
            .collect();
        debug!(origin, bans = set.len(), %last, "fleet: active set read");
        let cursor = self.cursors.entry(origin.to_string()).or_default();
        if last > *cursor {
            *cursor = last;
        }
        self.to_core
            .send(FromLink::Resync {
                origin: origin.to_string(),
                set,
                last,
            })
            .await
            .map_err(|_| End::Shutdown)
    }
}
