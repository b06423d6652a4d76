//! The daemon's core: owns the jails, the active bans, the store and the
//! banner, and turns source entries and control requests into decisions.
//!
//! One task owns it (no locks). Work is done in batches: the failures and
//! bans a batch of entries produced, and the source position after it, are
//! committed in one store transaction; only then is the firewall changed and
//! the events emitted. A crash between the two is healed at start by
//! reconcile, which makes the firewall equal to the store.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use ipnet::IpNet;
use jiff::{SignedDuration, Timestamp};
use tracing::{debug, warn};

use super::bans::BanIndex;
use super::control::{
    Backlog, ControlError, CoreEvent, CoreHandle, FileBacklog, JailStatus, Reported, Request,
    Status,
};
use crate::addr::{AddrList, Host, ban_net, canonical, client_behind, net_text, parse_addr};
use crate::ban::actions::{ActionEvent, Actions, MatchBuffer};
use crate::ban::{Ban, Banner, JailFirewall};
use crate::config::duration::{BanTime, format_duration};
use crate::config::{Config, JailConfig, UseDns};
use crate::events;
use crate::filter::date::DateFinder;
use crate::filter::session::SavedSession;
use crate::filter::{Failure, Matcher, Outcome};
use crate::jail::escalation::escalate;
use crate::jail::{Decision, Jail, Limits};
use crate::source::file::{FileLine, FilePosition, SavedPosition};
use crate::source::journal::JournalEntry;
use crate::store::{Changes, Ended, Store, StoredFailure, StoredName, StoredSession};

/// Longest wait between attempts to write the state database.
const STORE_RETRY_MAX: Duration = Duration::from_secs(30);

/// Bans lifted by one [`Core::expire`] call at most (one commit, one
/// netlink transaction: ~20 ms for 1,000 on a loaded 2-core machine).
pub const EXPIRE_BATCH: usize = 1_000;

/// Sessions' source names in the store.
const SESSION_JOURNAL: &str = "journal";
const SESSION_FILE: &str = "file";

mod fleet;
pub use fleet::{FleetStatus, PeerStatus, stored_positions};

/// Store key of the journal reader's position.
pub const JOURNAL_POSITION: &str = "journal";
/// Store key prefix of file positions (`file:DEV:INO`).
pub const FILE_POSITION_PREFIX: &str = "file:";

/// How often old history and failure rows are deleted from the store.
const PURGE_EVERY: SignedDuration = SignedDuration::from_secs(600);

/// A jail at run time: its configuration, its windows, its matchers.
struct JailRuntime {
    config: JailConfig,
    jail: Jail,
    /// One matcher per source kind (sessions are per stream), made when
    /// the first entry of that kind arrives: each holds automaton caches.
    journal: Option<Matcher>,
    file: Option<Matcher>,
    total_failed: u64,
    total_banned: u64,
    /// Recent matched lines per tracked address, for actions (mail).
    matches: MatchBuffer,
}

impl JailRuntime {
    fn new(config: JailConfig, self_addrs: &AddrList) -> Self {
        let jail = Jail::new(limits(&config), ignore_list(&config, self_addrs));
        JailRuntime {
            matches: MatchBuffer::new(MatchBuffer::wanted(&config.actions, config.maxmatches)),
            config,
            jail,
            journal: None,
            file: None,
            total_failed: 0,
            total_banned: 0,
        }
    }

    fn firewall(&self) -> JailFirewall {
        JailFirewall {
            jail: self.config.name.clone(),
            ports: self.config.ports.clone(),
            protocols: self.config.protocols.clone(),
            verdict: self.config.blocktype,
            v6_prefix: self.config.ipv6_prefix,
            set_size: self.config.set_size,
        }
    }
}

fn limits(c: &JailConfig) -> Limits {
    Limits {
        findtime: c.findtime,
        maxretry: c.maxretry,
        maxtracked: c.maxtracked,
    }
}

/// A matcher for one of a jail's sources, with the jail's line limit.
fn jail_matcher(c: &JailConfig) -> Matcher {
    let mut m = c.filter.matcher(DateFinder::local());
    m.limit_lines(c.line_limit);
    m
}

/// Never banned: `ignoreip`, this host's addresses (`ignoreself`), and the
/// jail's trusted proxies (a proxy is never the client).
fn ignore_list(c: &JailConfig, self_addrs: &AddrList) -> AddrList {
    let mut l = c.ignoreip.clone();
    for n in c.trusted_proxies.nets() {
        l.push(*n);
    }
    if c.ignoreself {
        for n in self_addrs.nets() {
            l.push(*n);
        }
    }
    l
}

/// A host name to resolve (usedns) before it can count.
#[derive(Debug, Clone)]
pub struct PendingName {
    /// Its row in the store until resolved (saved with its line's position).
    pub id: i64,
    pub jail: String,
    pub name: String,
    pub time: Timestamp,
    pub attempts: u32,
    /// Counts only as a repeat (see [`crate::jail::Jail::record_repeat`]).
    pub repeat: bool,
}

/// What the core asks of its surroundings after a step.
#[derive(Debug, Default)]
pub struct Effects {
    /// Host names to resolve (usedns = yes/warn).
    pub resolve: Vec<PendingName>,
    /// The journal reader must be restarted (jails or matches changed).
    pub restart_journal: bool,
    /// The file source must be restarted (log paths changed).
    pub restart_files: bool,
}

/// Backoff for firewall retries.
struct Retry {
    due: Option<Timestamp>,
    delay: Duration,
}

/// The state database cannot be written (a full disk, an I/O error): the
/// batches wait in memory, in order, and are written together when it can
/// be again. Bans still reach the firewall meanwhile.
struct StoreTrouble {
    error: String,
    since: Timestamp,
    due: Timestamp,
    delay: Duration,
}

/// A journal event that waits for its batch to be committed, so that a
/// crash before the commit (which replays the batch) cannot log it twice.
enum Announce {
    Ban(Ban, String),
    Unban {
        jail: String,
        address: String,
        reason: String,
    },
}

/// The core state; see the module docs.
pub struct Core {
    /// The journal backlog being read (set by the daemon loop).
    backlog: Option<Backlog>,
    /// The log files' backlog being read (set by the daemon loop).
    file_backlog: Option<FileBacklog>,
    config: Arc<Config>,
    jails: BTreeMap<String, JailRuntime>,
    bans: BanIndex,
    store: Store,
    banner: Box<dyn Banner>,
    handle: CoreHandle,
    self_addrs: AddrList,
    pending: Changes,
    /// The last line's position per file (dev, ino) since the last flush:
    /// made into store values once per batch, not once per line.
    line_positions: Vec<(Arc<std::path::Path>, FilePosition)>,
    /// Batches committed but not written (see [`StoreTrouble`]).
    unsaved: Vec<Changes>,
    store_trouble: Option<StoreTrouble>,
    announce: Vec<Announce>,
    to_enforce: Vec<Ban>,
    to_lift: Vec<Ban>,
    events: Vec<CoreEvent>,
    effects: Effects,
    retry: Retry,
    started_at: Timestamp,
    lines: u64,
    lines_at_minute: (Timestamp, u64, u64),
    /// When the store was last purged of old history and failures.
    last_purge: Option<Timestamp>,
    total_bans: u64,
    warned_names: u64,
    /// The id of the next name to resolve.
    next_name_id: i64,
    /// Last positions handed to the store (to restart sources from).
    positions: HashMap<String, String>,
    /// The jails' actions (commands, hosts.deny, mail), and what to tell
    /// them at the next flush.
    actions: Actions,
    action_events: Vec<ActionEvent>,
    /// Remote bans and this host's decisions for the fleet (`[fleet]`).
    fleet: Option<fleet::FleetSide>,
}

impl Core {
    /// Build the core from a loaded configuration and store: restore
    /// windows and bans (recording those that ran out while down), set up
    /// the firewall and reconcile it with the store. A store that knows
    /// nothing (new, emptied, or started after the old one was set aside)
    /// first takes the bans in force from the firewall, so that reconcile
    /// does not lift them.
    pub fn start(
        config: Arc<Config>,
        store: Store,
        banner: Box<dyn Banner>,
        handle: CoreHandle,
        self_addrs: AddrList,
        now: Timestamp,
    ) -> Result<(Core, Loaded), crate::store::StoreError> {
        let horizon = now
            .checked_sub(SignedDuration::try_from(config.longest_findtime()).unwrap_or_default())
            .unwrap_or(now);
        let loaded = store.load_rest(horizon, crate::store::Loaded::default())?;
        let mut core = Core {
            config: config.clone(),
            jails: BTreeMap::new(),
            bans: BanIndex::new(),
            store,
            banner,
            handle,
            self_addrs,
            pending: Changes::default(),
            line_positions: Vec::new(),
            unsaved: Vec::new(),
            store_trouble: None,
            announce: Vec::new(),
            to_enforce: Vec::new(),
            to_lift: Vec::new(),
            events: Vec::new(),
            effects: Effects::default(),
            retry: Retry {
                due: None,
                delay: Duration::from_secs(1),
            },
            started_at: now,
            backlog: None,
            file_backlog: None,
            lines: 0,
            lines_at_minute: (now, 0, 0),
            last_purge: None,
            total_bans: 0,
            warned_names: 0,
            next_name_id: loaded.names.iter().map(|n| n.id).max().unwrap_or(0) + 1,
            positions: loaded.positions.clone(),
            actions: Actions::new(),
            action_events: Vec::new(),
            fleet: None,
        };
        if let Some(fc) = &config.fleet {
            core.fleet = Some(fleet::FleetSide::restore(
                &core.store,
                &loaded.positions,
                fc.quorum,
                now,
            ));
        }
        for jc in config.enabled() {
            let mut rt = JailRuntime::new(jc.clone(), &core.self_addrs);
            if let Some((f, b)) = loaded.totals.get(&jc.name) {
                rt.total_failed = *f;
                rt.total_banned = *b;
            }
            core.jails.insert(jc.name.clone(), rt);
        }
        core.total_bans = loaded.totals.values().map(|(_, b)| b).sum();
        // Streamed from the store into the index: no vector of a million bans.
        let mut gone = Vec::new();
        let (jails, bans) = (&core.jails, &mut core.bans);
        core.store.for_each_ban(|b| {
            if !jails.contains_key(&b.jail) {
                // Its jail is gone: lift it (reconcile removes the element).
                gone.push((b, "jail removed"));
            } else if b.expires_at.is_some_and(|e| e <= now) {
                gone.push((b, "expired"));
            } else {
                bans.insert(&b);
            }
        })?;
        for (b, reason) in gone {
            core.announce.push(Announce::Unban {
                jail: b.jail.clone(),
                address: net_text(b.net),
                reason: reason.to_string(),
            });
            core.pending.ended.push(Ended {
                jail: b.jail.clone(),
                net: b.net,
                at: ended_at(&b, reason, now),
                reason: reason.to_string(),
            });
            core.pending.unbans.push((b.jail, b.net));
        }
        core.configure_actions();
        // Stories under way and names being resolved when it stopped.
        for ss in &loaded.sessions {
            let Some(rt) = core.jails.get_mut(&ss.jail) else {
                continue;
            };
            let Some(saved) = ss
                .state
                .as_deref()
                .and_then(|s| serde_json::from_str::<SavedSession>(s).ok())
            else {
                continue;
            };
            let slot = match ss.source.as_str() {
                SESSION_JOURNAL => &mut rt.journal,
                SESSION_FILE => &mut rt.file,
                _ => continue,
            };
            slot.get_or_insert_with(|| jail_matcher(&rt.config))
                .restore_session(ss.key, saved);
        }
        for n in &loaded.names {
            core.effects.resolve.push(PendingName {
                id: n.id,
                jail: n.jail.clone(),
                name: n.name.clone(),
                time: n.time,
                attempts: n.attempts,
                repeat: n.repeat,
            });
        }
        // Replay recent failures into the windows (they were committed with
        // the position after them, so nothing is counted twice).
        for f in &loaded.failures {
            let Some(rt) = core.jails.get_mut(&f.jail) else {
                continue;
            };
            if let Decision::Ban { failures } = rt.jail.record(f.addr, f.time, f.attempts, now) {
                // The limits were lowered by a new configuration.
                let jail = f.jail.clone();
                core.ban_now(&jail, f.addr, failures, None, now);
            }
        }
        let firewalls = core.firewalls();
        if let Err(e) = core.banner.configure(&firewalls) {
            core.backend_failed(&e, now);
        } else {
            if core.store.is_fresh() {
                core.recover_from_firewall(now);
            }
            core.reconcile(now);
        }
        core.flush(now);
        Ok((
            core,
            Loaded {
                positions: loaded.positions,
            },
        ))
    }

    /// Take the bans the firewall holds into a store that knows none
    /// (see [`start`](Self::start)): they stay in force until they end.
    fn recover_from_firewall(&mut self, now: Timestamp) {
        let found = match self.banner.recover(now) {
            Ok(b) => b,
            Err(e) => {
                warn!(error = %e, "cannot read the bans in force from the firewall");
                return;
            }
        };
        let mut n = 0;
        for b in found {
            if !self.jails.contains_key(&b.jail)
                || self.bans.contains(&b.jail, b.net)
                || b.expires_at.is_some_and(|e| e <= now)
            {
                continue;
            }
            self.index(&b);
            // In force already, announced when it was made: no new event.
            self.pending.announced.push((b.jail.clone(), b.net));
            self.pending.bans.push(b);
            n += 1;
        }
        if n > 0 {
            tracing::warn!(
                "the state database {} had no bans: {n} bans in force were taken from the firewall (their failures are not known)",
                self.store.path().display()
            );
        }
    }

    /// Bans in force whose journal event may be missing (a crash between
    /// their commit and the event): the caller looks for each in the
    /// journal and hands them to [`settle_announcements`](Self::settle_announcements).
    pub fn unannounced(&self) -> Vec<Ban> {
        match self.store.unannounced() {
            Ok(v) => v
                .into_iter()
                .filter(|b| self.bans.contains(&b.jail, b.net))
                .collect(),
            Err(e) => {
                warn!(error = %e, "cannot read which bans were announced");
                Vec::new()
            }
        }
    }

    /// Log the events of `missing` bans (their journal event was not found),
    /// and note every one of `checked` as announced.
    pub fn settle_announcements(&mut self, missing: Vec<Ban>, checked: Vec<Ban>, now: Timestamp) {
        for b in missing {
            let bantime = Self::describe(&b);
            self.announce.push(Announce::Ban(b, bantime));
        }
        for b in checked {
            self.pending.announced.push((b.jail, b.net));
        }
        self.flush(now);
    }

    /// The active configuration.
    pub fn config(&self) -> &Arc<Config> {
        &self.config
    }

    /// Start, keep or close the jails' actions to fit the configuration;
    /// new ones start from the bans in force.
    fn configure_actions(&mut self) {
        let bans: Vec<Ban> = self.bans.bans(None).collect();
        self.actions.configure(
            self.jails
                .iter()
                .map(|(name, rt)| (name.as_str(), rt.config.actions.as_slice())),
            &bans,
        );
    }

    /// The daemon stops: close the actions (`stop` commands run); resolves
    /// when they are done.
    pub fn stop_actions(&mut self) -> impl std::future::Future<Output = ()> + 'static {
        self.actions.shutdown()
    }

    /// The control handle (events are published through it).
    pub fn handle(&self) -> &CoreHandle {
        &self.handle
    }

    /// Take what the surroundings must do.
    pub fn take_effects(&mut self) -> Effects {
        std::mem::take(&mut self.effects)
    }

    fn index(&mut self, b: &Ban) {
        self.bans.insert(b);
    }

    fn unindex(&mut self, jail: &str, net: IpNet) -> Option<Ban> {
        self.bans.remove(jail, net)
    }

    /// A batch of journal entries.
    pub fn journal_batch(&mut self, batch: Vec<JournalEntry>, now: Timestamp) {
        let mut last = None;
        for entry in batch {
            self.lines += 1;
            for jail in entry.jails.iter() {
                let Some(rt) = self.jails.get_mut(&**jail) else {
                    continue;
                };
                let host_field = rt
                    .config
                    .filter
                    .journal_host_field()
                    .and_then(|f| entry.extra.get(f));
                let matcher = rt.journal.get_or_insert_with(|| jail_matcher(&rt.config));
                if let Outcome::Matched {
                    failure: Some(f), ..
                } = matcher.journal_line(&entry.line, entry.time, host_field, entry.truncated)
                {
                    let jail = jail.to_string();
                    self.failure(&jail, f, &entry.line, now);
                }
            }
            last = Some((entry.cursor, entry.time));
        }
        if let Some((cursor, time)) = last {
            let value = serde_json::json!({ "cursor": cursor, "time_usec": time.as_microsecond() });
            self.pending
                .positions
                .push((JOURNAL_POSITION.to_string(), value.to_string()));
        }
        self.flush(now);
    }

    /// Lines from log files (the caller drains what is ready, then flushes).
    pub fn file_line(&mut self, line: FileLine, now: Timestamp) {
        self.lines += 1;
        for jail in line.jails.iter() {
            let Some(rt) = self.jails.get_mut(&**jail) else {
                continue;
            };
            let matcher = rt.file.get_or_insert_with(|| jail_matcher(&rt.config));
            matcher.set_now(now);
            if let Outcome::Matched {
                failure: Some(f), ..
            } = matcher.file_line_cut(&line.bytes, line.truncated)
            {
                let jail = jail.to_string();
                self.failure(&jail, f, &line.bytes, now);
            }
        }
        // Only the last position per file in a batch matters.
        let p = line.position;
        match self
            .line_positions
            .iter_mut()
            .find(|(_, q)| q.dev == p.dev && q.ino == p.ino)
        {
            Some(e) => *e = (line.path, p),
            None => self.line_positions.push((line.path, p)),
        }
    }

    /// The files' positions after the lines since the last flush, into
    /// the pending changes.
    fn collect_line_positions(&mut self) {
        for (path, position) in std::mem::take(&mut self.line_positions) {
            let saved = SavedPosition {
                path: path.to_path_buf(),
                position,
            };
            let Ok(value) = serde_json::to_string(&saved) else {
                continue;
            };
            let key = format!("{FILE_POSITION_PREFIX}{}:{}", position.dev, position.ino);
            if let Some(p) = self.pending.positions.iter_mut().find(|(k, _)| *k == key) {
                p.1 = value;
            } else {
                self.pending.positions.push((key, value));
            }
        }
    }

    /// Positions to store as they are (file source start positions).
    pub fn record_positions(&mut self, positions: Vec<(String, String)>, now: Timestamp) {
        self.collect_line_positions();
        self.pending.positions.extend(positions);
        self.flush(now);
    }

    fn failure(&mut self, jail: &str, f: Failure, line: &[u8], now: Timestamp) {
        let time = f.time.unwrap_or(now);
        // Behind reverse proxies the client is the rightmost forwarded-for
        // address that is not a trusted proxy; a request whose every hop
        // is trusted counts for no one.
        let Some(trusted) = self.jails.get(jail).map(|rt| &rt.config.trusted_proxies) else {
            return;
        };
        let Some(host) = client_behind(&f.host, &f.forwarded, trusted) else {
            debug!(jail, host = %f.host, forwarded = ?f.forwarded, "failure through trusted proxies only: no client to blame");
            return;
        };
        match host {
            Host::Addr(a) => {
                self.count(jail, a, time, f.attempts, f.repeat, Some(line), now);
            }
            Host::Name(name) => {
                let usedns = self.jails.get(jail).map(|rt| rt.config.usedns);
                match usedns {
                    Some(UseDns::Yes | UseDns::Warn) => {
                        let id = self.next_name_id;
                        self.next_name_id += 1;
                        // Saved with the position after its line: a
                        // restart before it is resolved resolves it then.
                        self.pending.names.push(StoredName {
                            id,
                            jail: jail.to_string(),
                            name: name.clone(),
                            time,
                            attempts: f.attempts,
                            repeat: f.repeat,
                        });
                        self.effects.resolve.push(PendingName {
                            id,
                            jail: jail.to_string(),
                            name,
                            time,
                            attempts: f.attempts,
                            repeat: f.repeat,
                        });
                    }
                    _ => {
                        // usedns = no: a name alone never bans (the attacker
                        // controls its DNS); say so now and then.
                        self.warned_names += 1;
                        if self.warned_names.is_power_of_two() {
                            warn!(jail, host = %name, "failure from a host name ignored (usedns = \"no\"); {} so far", self.warned_names);
                        }
                    }
                }
            }
        }
    }

    /// A resolved host name's addresses (usedns).
    pub fn resolved(&mut self, p: PendingName, addrs: Vec<IpAddr>, now: Timestamp) {
        if !addrs.is_empty()
            && self
                .jails
                .get(&p.jail)
                .is_some_and(|rt| rt.config.usedns == UseDns::Warn)
        {
            warn!(
                jail = p.jail,
                host = p.name,
                ?addrs,
                "banning addresses of a host name an attacker may control (usedns = \"warn\")"
            );
        }
        for a in addrs {
            self.count(&p.jail, a, p.time, p.attempts, p.repeat, None, now);
        }
        self.pending.names_done.push(p.id);
        self.flush(now);
    }

    /// Count a failure of `addr` in `jail`; ban when the jail says so.
    /// A `repeat` counts only after a counted failure of the address.
    /// `line` is the log line, kept for actions that show it.
    #[allow(clippy::too_many_arguments)]
    fn count(
        &mut self,
        jail: &str,
        addr: IpAddr,
        time: Timestamp,
        attempts: u32,
        repeat: bool,
        line: Option<&[u8]>,
        now: Timestamp,
    ) -> Option<Reported> {
        let addr = canonical(addr);
        let rt = self.jails.get_mut(jail)?;
        let net = ban_net(addr, rt.config.ipv6_prefix);
        if self.bans.contains(jail, net) {
            return Some(Reported::AlreadyBanned);
        }
        let evicted = rt.jail.evicted;
        let decision = if repeat {
            rt.jail.record_repeat(addr, time, now)
        } else {
            rt.jail.record(addr, time, attempts, now)
        };
        if let (Some(line), Decision::Counted { .. } | Decision::Ban { .. }) = (line, &decision) {
            rt.matches.push(addr, line);
            if rt.matches.len() > rt.config.maxtracked as usize + 1024 {
                let tracked = &rt.jail;
                rt.matches
                    .retain(|a| a == addr || tracked.failures_of(a) > 0);
            }
        }
        if rt.jail.evicted > evicted && rt.jail.evicted.is_power_of_two() {
            warn!(
                jail,
                "tracking capped at maxtracked = {} addresses: the oldest are forgotten ({} so far)",
                rt.config.maxtracked,
                rt.jail.evicted
            );
        }
        match decision {
            Decision::Counted { failures } => {
                rt.total_failed += u64::from(attempts);
                add_failed(&mut self.pending, jail, attempts);
                let time = time.min(now);
                // A burst (the same address, jail and time, line after
                // line) is one row: the same window when read back.
                match self.pending.failures.last_mut() {
                    Some(f) if f.addr == addr && f.time == time && f.jail == jail => {
                        f.attempts = f.attempts.saturating_add(attempts);
                    }
                    _ => self.pending.failures.push(StoredFailure {
                        jail: jail.to_string(),
                        addr,
                        time,
                        attempts,
                    }),
                }
                if !matches!(self.events.last(), Some(CoreEvent::JailChanged { jail: j }) if j == jail)
                {
                    self.events.push(CoreEvent::JailChanged {
                        jail: jail.to_string(),
                    });
                }
                Some(Reported::Counted { failures })
            }
            Decision::Ban { failures } => {
                rt.total_failed += u64::from(attempts);
                add_failed(&mut self.pending, jail, attempts);
                let jail = jail.to_string();
                Some(Reported::Banned(
                    self.ban_now(&jail, addr, failures, None, now),
                ))
            }
            Decision::Ignored | Decision::Stale | Decision::Alone => None,
        }
    }

    /// Ban `addr` in `jail` now: for the jail's (escalated) bantime, or
    /// `duration` when given by hand.
    fn ban_now(
        &mut self,
        jail: &str,
        addr: IpAddr,
        failures: u32,
        duration: Option<BanTime>,
        now: Timestamp,
    ) -> Ban {
        let (bantime, prefix) = match self.jails.get(jail) {
            Some(rt) => {
                let bantime = duration.unwrap_or_else(|| {
                    let inc = rt.config.increment.as_ref();
                    let previous = match inc {
                        Some(i) => {
                            let scope = (!i.overalljails).then_some(jail);
                            self.store.previous_bans(scope, addr).unwrap_or(0)
                        }
                        None => 0,
                    };
                    escalate(rt.config.bantime, inc, previous, random_unit())
                });
                (bantime, rt.config.ipv6_prefix)
            }
            None => (
                duration.unwrap_or(BanTime::For(Duration::from_secs(600))),
                128,
            ),
        };
        let net = ban_net(addr, prefix);
        let expires_at = bantime
            .duration()
            .and_then(|d| SignedDuration::try_from(d).ok())
            .and_then(|d| now.checked_add(d).ok());
        let ban = Ban {
            jail: jail.to_string(),
            net,
            banned_at: now,
            expires_at,
            failures,
        };
        let replaced = self.unindex(jail, net);
        let lines = self
            .jails
            .get_mut(jail)
            .map(|rt| rt.matches.take(addr))
            .unwrap_or_default();
        if let Some(old) = &replaced {
            // Actions undo the old ban before the new one (its expiry changed).
            self.action_events.push(ActionEvent::Unbanned(old.clone()));
        }
        self.action_events
            .push(ActionEvent::Banned(ban.clone(), lines));
        if replaced.is_some() {
            self.pending.updates.push(ban.clone());
        } else {
            self.pending.bans.push(ban.clone());
            self.pending.totals.entry(jail.to_string()).or_default().1 += 1;
            self.total_bans += 1;
            if let Some(rt) = self.jails.get_mut(jail) {
                rt.total_banned += 1;
            }
        }
        // Its failures are forgotten, also those of this very batch: the
        // store deletes before it inserts, so they must not be written.
        self.pending
            .failures
            .retain(|f| !(f.addr == addr && f.jail == jail));
        self.pending.forget.push((jail.to_string(), addr));
        if let Some(rt) = self.jails.get_mut(jail) {
            rt.jail.forget(addr);
        }
        self.index(&ban);
        self.to_enforce.push(ban.clone());
        self.announce
            .push(Announce::Ban(ban.clone(), bantime.to_string()));
        let why = if failures > 0 { "failures" } else { "manual" };
        self.fleet_publish(fleet::ban_event(&ban, why));
        self.events.push(CoreEvent::Banned {
            jail: jail.to_string(),
            address: net_text(net),
            expires_at,
            failures,
        });
        self.events.push(CoreEvent::JailChanged {
            jail: jail.to_string(),
        });
        ban
    }

    fn lift(&mut self, jail: &str, net: IpNet, reason: &str, now: Timestamp) -> bool {
        let Some(b) = self.unindex(jail, net) else {
            return false;
        };
        self.pending.unbans.push((jail.to_string(), net));
        self.pending.ended.push(Ended {
            jail: jail.to_string(),
            net,
            at: ended_at(&b, reason, now),
            reason: reason.to_string(),
        });
        if let Some(rt) = self.jails.get_mut(jail) {
            rt.jail.forget(net.addr());
        }
        self.announce.push(Announce::Unban {
            jail: jail.to_string(),
            address: net_text(net),
            reason: reason.to_string(),
        });
        if reason != "expired" {
            // Expiry needs no event: peers' elements carry the same end.
            self.fleet_publish(fleet::unban_event(jail, net, reason, now));
        }
        self.events.push(CoreEvent::Unbanned {
            jail: jail.to_string(),
            address: net_text(net),
            reason: reason.to_string(),
        });
        self.events.push(CoreEvent::JailChanged {
            jail: jail.to_string(),
        });
        self.action_events.push(ActionEvent::Unbanned(b.clone()));
        self.to_lift.push(b);
        true
    }

    /// When the next ban expires.
    pub fn next_expiry(&self) -> Option<Timestamp> {
        let remote = self.fleet.as_ref().and_then(|f| f.remote.next_end());
        match (self.bans.next_expiry(), remote) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Lift the bans whose time has come (remote bans too), at most
    /// [`EXPIRE_BATCH`] of this host's in one batch (one commit, one
    /// firewall transaction): when more are due,
    /// [`next_expiry`](Self::next_expiry) is still in the past and the main
    /// loop calls again after serving what else is ready (control
    /// requests, new failures), so 100,000 bans expiring in the same second
    /// never hold the core for seconds.
    pub fn expire(&mut self, now: Timestamp) {
        for _ in 0..EXPIRE_BATCH {
            let Some((jail, net)) = self.bans.first_expired(now) else {
                break;
            };
            self.lift(&jail, net, "expired", now);
        }
        self.fleet_expire(now);
        self.flush(now);
    }

    /// When the firewall should be retried, if it failed.
    pub fn retry_due(&self) -> Option<Timestamp> {
        self.retry.due
    }

    /// The sessions the lines since the last flush changed, to commit with
    /// the positions after those lines.
    fn collect_sessions(&mut self) {
        for (name, rt) in self.jails.iter_mut() {
            for (source, m) in [
                (SESSION_JOURNAL, &mut rt.journal),
                (SESSION_FILE, &mut rt.file),
            ] {
                let Some(m) = m.as_mut() else { continue };
                for (key, state) in m.session_changes() {
                    self.pending.sessions.push(StoredSession {
                        jail: name.clone(),
                        source: source.to_string(),
                        key,
                        state: state.and_then(|s| serde_json::to_string(&s).ok()),
                    });
                }
            }
        }
    }

    /// Commit what is pending, then enforce and announce it.
    pub fn flush(&mut self, now: Timestamp) {
        self.collect_line_positions();
        self.collect_sessions();
        if !self.pending.is_empty() {
            let changes = std::mem::take(&mut self.pending);
            for (k, v) in &changes.positions {
                self.positions.insert(k.clone(), v.clone());
            }
            self.unsaved.push(changes);
        }
        self.save(now);
        // Only now: what a crash before the commit would replay is
        // announced once, by the run that commits it. That a ban's event
        // is logged is committed next: a crash in between leaves it for
        // the next start to check (see `Store::unannounced`).
        let mut told = Vec::new();
        for a in std::mem::take(&mut self.announce) {
            match a {
                Announce::Ban(ban, bantime) => {
                    events::ban(&ban, &bantime);
                    told.push((ban.jail, ban.net));
                }
                Announce::Unban {
                    jail,
                    address,
                    reason,
                } => events::unban(&jail, &address, &reason),
            }
        }
        if !told.is_empty() {
            self.unsaved.push(Changes {
                announced: told,
                ..Changes::default()
            });
            self.save(now);
        }
        if self.retry.due.is_none() {
            if !self.to_enforce.is_empty() {
                let bans = std::mem::take(&mut self.to_enforce);
                if let Err(e) = self.banner.ban(&bans, now) {
                    self.backend_failed(&e, now);
                }
            }
            if !self.to_lift.is_empty() {
                let bans = std::mem::take(&mut self.to_lift);
                if let Err(e) = self.banner.unban(&bans) {
                    self.backend_failed(&e, now);
                }
            }
            self.fleet_firewall(now);
        } else {
            // A reconcile is scheduled; it will make the firewall right.
            self.to_enforce.clear();
            self.to_lift.clear();
            self.fleet_firewall_clear();
        }
        self.fleet_flush();
        // Actions follow the store, whatever the firewall did.
        for e in std::mem::take(&mut self.action_events) {
            self.actions.deliver(e);
        }
        let mut changed: BTreeSet<String> = BTreeSet::new();
        for e in std::mem::take(&mut self.events) {
            match e {
                CoreEvent::JailChanged { jail } => {
                    changed.insert(jail);
                }
                other => self.handle.publish(other),
            }
        }
        for jail in changed {
            self.handle.publish(CoreEvent::JailChanged { jail });
        }
    }

    /// Write the batches waiting, all in one transaction; on failure keep
    /// them (in order) and retry with backoff. Protection first: bans go
    /// to the firewall whether or not they could be written.
    fn save(&mut self, now: Timestamp) {
        if self.unsaved.is_empty() {
            return;
        }
        if self.store_trouble.as_ref().is_some_and(|t| now < t.due) {
            return;
        }
        match self.store.commit_all(&self.unsaved) {
            Ok(()) => {
                if let Some(t) = self.store_trouble.take() {
                    tracing::info!(
                        "the state database {} is written again: {} batches kept in memory since {} are saved",
                        self.store.path().display(),
                        self.unsaved.len(),
                        t.since.strftime("%Y-%m-%d %H:%M:%S UTC")
                    );
                }
                self.unsaved.clear();
            }
            Err(e) => {
                let error = e.to_string();
                let delay = match &self.store_trouble {
                    Some(t) => (t.delay * 2).min(STORE_RETRY_MAX),
                    None => Duration::from_secs(1),
                };
                let since = self.store_trouble.as_ref().map_or(now, |t| t.since);
                let first = self.store_trouble.is_none();
                if first
                    || self
                        .store_trouble
                        .as_ref()
                        .is_some_and(|t| t.error != error)
                {
                    tracing::error!(
                        "cannot write the state database {}: {error}; bans still go to the firewall, \
                         and {} batches wait in memory; retrying (every {} at most)",
                        self.store.path().display(),
                        self.unsaved.len(),
                        format_duration(STORE_RETRY_MAX)
                    );
                }
                self.store_trouble = Some(StoreTrouble {
                    error,
                    since,
                    due: now
                        .checked_add(SignedDuration::try_from(delay).unwrap_or_default())
                        .unwrap_or(now),
                    delay,
                });
            }
        }
    }

    /// When writing the state database is retried, if it failed.
    pub fn store_retry_due(&self) -> Option<Timestamp> {
        self.store_trouble.as_ref().map(|t| t.due)
    }

    /// Why the state database cannot be written, while it cannot.
    pub fn store_problem(&self) -> Option<String> {
        self.store_trouble.as_ref().map(|t| {
            format!(
                "cannot write the state database since {}: {} ({} batches wait in memory)",
                t.since.strftime("%H:%M:%S UTC"),
                t.error,
                self.unsaved.len()
            )
        })
    }

    fn backend_failed(&mut self, e: &crate::ban::BanError, now: Timestamp) {
        let delay = self.retry.delay;
        events::backend_error(self.banner.name(), &e.to_string(), delay);
        self.retry.due = now
            .checked_add(SignedDuration::try_from(delay).unwrap_or_default())
            .ok();
        self.retry.delay = (delay * 2).min(Duration::from_secs(300));
    }

    /// The jails' firewalls, and the fleet's sets when it accepts remote bans.
    fn firewalls(&self) -> Vec<JailFirewall> {
        let mut v: Vec<JailFirewall> = self.jails.values().map(JailRuntime::firewall).collect();
        if self.fleet_sets() {
            v.push(crate::ban::fleet_firewall());
        }
        v
    }

    /// Make the firewall equal to the store (start, retries, periodic check).
    pub fn reconcile(&mut self, now: Timestamp) {
        let firewalls = self.firewalls();
        let mut bans: Vec<Ban> = self
            .bans
            .bans(None)
            .filter(|b| b.expires_at.is_none_or(|e| e > now))
            .collect();
        if self.fleet_sets() {
            bans.extend(self.fleet_bans(now));
        }
        let result = self
            .banner
            .configure(&firewalls)
            .and_then(|()| self.banner.reconcile(&bans, now));
        match result {
            Ok(report) => {
                if report.added + report.removed + report.renewed > 0 {
                    debug!(?report, "firewall reconciled");
                }
                if self.retry.due.is_some() {
                    tracing::info!(
                        backend = self.banner.name(),
                        "firewall works again; {} bans in force",
                        bans.len()
                    );
                }
                self.retry = Retry {
                    due: None,
                    delay: Duration::from_secs(1),
                };
                self.to_enforce.clear();
                self.to_lift.clear();
            }
            Err(e) => self.backend_failed(&e, now),
        }
    }

    /// Give back the memory the last burst of work grew caches to (the
    /// jails' matchers, the store's page cache, the firewall's receive
    /// buffer; rebuilt as needed): for an idle daemon.
    pub fn shrink_caches(&mut self) {
        for rt in self.jails.values_mut() {
            for m in [rt.journal.as_mut(), rt.file.as_mut()]
                .into_iter()
                .flatten()
            {
                m.shrink();
            }
        }
        self.store.shrink_memory();
        self.banner.shrink();
    }

    /// Periodic housekeeping: windows, history purge, minute counters.
    pub fn tick(&mut self, now: Timestamp) {
        for rt in self.jails.values_mut() {
            rt.jail.prune(now);
            let tracked = &rt.jail;
            rt.matches.retain(|a| tracked.failures_of(a) > 0);
        }
        let purge_before = now
            .checked_sub(
                SignedDuration::try_from(self.config.daemon.dbpurgeage).unwrap_or_default(),
            )
            .unwrap_or(now);
        let failures_before = now
            .checked_sub(
                SignedDuration::try_from(self.config.longest_findtime()).unwrap_or_default(),
            )
            .unwrap_or(now);
        // Rows past their age are never read (reads select by time), so
        // purging is tidying: every few minutes, not on every tick (an idle
        // daemon then runs no SQLite at all between purges).
        let purge_due = self
            .last_purge
            .is_none_or(|last| now.duration_since(last) >= PURGE_EVERY);
        if self.store_trouble.is_some() || !purge_due {
            // Nothing more to write while it cannot be written.
        } else {
            self.last_purge = Some(now);
            if let Err(e) = self.store.purge(purge_before, failures_before) {
                warn!(error = %e, "cannot purge the state database");
            }
        }
        let (at, _, lines_then) = self.lines_at_minute;
        if now.duration_since(at) >= SignedDuration::from_secs(60) {
            self.lines_at_minute = (now, self.lines - lines_then, self.lines);
        }
        self.fleet_expire(now);
        self.flush(now);
    }

    /// One line for `STATUS=`: "3 jails, 12 banned, 40k lines/min".
    pub fn status_line(&self) -> String {
        let per_min = self.lines_at_minute.1;
        let rate = if per_min >= 10_000 {
            format!("{}k", per_min / 1000)
        } else {
            per_min.to_string()
        };
        let backlog = match &self.backlog {
            Some(b) => format!(
                "; reading the journal backlog: {:.0}%, {} entries",
                b.fraction * 100.0,
                b.entries
            ),
            None => String::new(),
        };
        let file_backlog = match &self.file_backlog {
            Some(b) => format!("; reading log files: {}", b.describe()),
            None => String::new(),
        };
        let store = match self.store_problem() {
            Some(p) => format!("; {p}"),
            None => String::new(),
        };
        format!(
            "{} jail{}, {} banned, {rate} lines/min{backlog}{file_backlog}{store}",
            self.jails.len(),
            if self.jails.len() == 1 { "" } else { "s" },
            self.bans.len()
        )
    }

    /// The journal backlog's progress, `None` once it is read.
    pub fn set_backlog(&mut self, backlog: Option<Backlog>) {
        self.backlog = backlog;
    }

    /// The log files' backlog progress, `None` once they are read.
    pub fn set_file_backlog(&mut self, backlog: Option<FileBacklog>) {
        self.file_backlog = backlog;
    }

    /// Serve one control request.
    pub fn request(&mut self, req: Request, now: Timestamp) {
        match req {
            Request::Status(reply) => {
                let _ = reply.send(self.status());
            }
            Request::ListBans { jail, max, reply } => {
                let r = self.known_jail(jail.as_deref()).and_then(|want| {
                    let count = match want {
                        Some(j) => self.bans.count(j) as usize,
                        None => self.bans.len(),
                    };
                    if count > max {
                        return Err(ControlError::LimitsExceeded(format!(
                            "{count} bans in force: more than {max} are listed a page at a time (ListBansPaged)"
                        )));
                    }
                    Ok(self.bans.listed(want, None).collect())
                });
                let _ = reply.send(r);
            }
            Request::ListBansPage {
                jail,
                after,
                limit,
                reply,
            } => {
                let r = self.known_jail(jail.as_deref()).map(|want| {
                    let after = after.as_ref().map(|(j, at, net)| (j.as_str(), *at, *net));
                    let mut page: Vec<Ban> = self
                        .bans
                        .listed(want, after)
                        .take(limit.saturating_add(1))
                        .collect();
                    let more = page.len() > limit;
                    page.truncate(limit);
                    (page, more)
                });
                let _ = reply.send(r);
            }
            Request::Ban {
                jail,
                address,
                duration,
                reply,
            } => {
                let r = self.manual_ban(&jail, &address, duration, now);
                self.flush(now);
                let _ = reply.send(r);
            }
            Request::Unban {
                jail,
                address,
                reply,
            } => {
                let r = self.manual_unban(jail.as_deref(), &address, now);
                self.flush(now);
                let _ = reply.send(r);
            }
            Request::UnbanAll(reply) => {
                let all = self.bans.keys(|_, _| true);
                let n = all.len() as u32;
                for (j, net) in all {
                    self.lift(&j, net, "manual", now);
                }
                self.flush(now);
                let _ = reply.send(Ok(n));
            }
            Request::Report {
                jail,
                address,
                reply,
            } => {
                let r = self.report(&jail, &address, now);
                self.flush(now);
                let _ = reply.send(r);
            }
            Request::Fleet(reply) => {
                let _ = reply.send((self.fleet_status(), self.remote_bans()));
            }
            Request::FleetStatus(reply) => {
                let _ = reply.send(self.fleet_status());
            }
            Request::UnbanRemote {
                origin,
                address,
                reply,
            } => {
                let r = self.fleet_unban(origin.as_deref(), address.as_deref(), now);
                self.flush(now);
                let _ = reply.send(r);
            }
            Request::Reload(reply) => {
                // Handled by the daemon loop, which owns the config path.
                let _ = reply.send(Err(ControlError::Failed(
                    "reload is handled by the daemon loop".into(),
                )));
            }
        }
    }

    fn check(&self, jail: &str, address: &str) -> Result<IpAddr, ControlError> {
        let rt = self
            .jails
            .get(jail)
            .ok_or_else(|| ControlError::NoSuchJail(jail.to_string()))?;
        let addr = parse_addr(address.trim())
            .ok_or_else(|| ControlError::InvalidAddress(address.to_string()))?;
        if rt.jail.is_ignored(addr) {
            return Err(ControlError::IgnoredAddress(addr.to_string()));
        }
        Ok(addr)
    }

    /// A jail argument of a listing: `None` or "" = all jails; else it
    /// must be configured.
    fn known_jail<'a>(&self, jail: Option<&'a str>) -> Result<Option<&'a str>, ControlError> {
        match jail.filter(|j| !j.is_empty()) {
            Some(j) if !self.jails.contains_key(j) => Err(ControlError::NoSuchJail(j.to_string())),
            j => Ok(j),
        }
    }

    fn manual_ban(
        &mut self,
        jail: &str,
        address: &str,
        duration: Option<BanTime>,
        now: Timestamp,
    ) -> Result<Ban, ControlError> {
        let addr = match address.trim().split_once('/') {
            // A range: only as the jail bans (IPv6 by its prefix).
            Some(_) => self.check_range(jail, address)?,
            None => self.check(jail, address)?,
        };
        Ok(self.ban_now(jail, addr, 0, duration, now))
    }

    /// A range to ban by hand: only one the jail bans anyway (an IPv6
    /// prefix of its `ipv6_prefix`, or a single address as /32, /128);
    /// the firewall's sets hold nothing else. Returns its first address.
    fn check_range(&self, jail: &str, address: &str) -> Result<IpAddr, ControlError> {
        let rt = self
            .jails
            .get(jail)
            .ok_or_else(|| ControlError::NoSuchJail(jail.to_string()))?;
        let net: IpNet = address
            .trim()
            .parse()
            .map_err(|_| ControlError::InvalidAddress(address.to_string()))?;
        let v6_prefix = rt.config.ipv6_prefix;
        let fits = match net {
            IpNet::V4(n) => n.prefix_len() == 32,
            IpNet::V6(n) => n.prefix_len() == 128 || n.prefix_len() == v6_prefix,
        };
        if !fits {
            let v6 = if v6_prefix < 128 {
                format!("IPv6 prefixes of /{v6_prefix}")
            } else {
                "single IPv6 addresses".to_string()
            };
            return Err(ControlError::InvalidRange(format!(
                "{net}: jail {jail} bans single IPv4 addresses and {v6}, so only such a range can be banned (unban takes any range)"
            )));
        }
        self.check(jail, &net.trunc().addr().to_string())
    }

    fn manual_unban(
        &mut self,
        jail: Option<&str>,
        address: &str,
        now: Timestamp,
    ) -> Result<u32, ControlError> {
        let jail = jail.filter(|j| !j.is_empty());
        if let Some(j) = jail {
            if !self.jails.contains_key(j) {
                return Err(ControlError::NoSuchJail(j.to_string()));
            }
        }
        let text = address.trim();
        let target: IpNet = match text.parse::<IpNet>() {
            Ok(n) => n.trunc(),
            Err(_) => parse_addr(text)
                .map(IpNet::from)
                .ok_or_else(|| ControlError::InvalidAddress(address.to_string()))?,
        };
        let hits = self.bans.keys(|j, net| {
            jail.is_none_or(|w| j == w) && (net.contains(&target.addr()) || target.contains(&net))
        });
        let n = hits.len() as u32;
        for (j, net) in hits {
            self.lift(&j, net, "manual", now);
        }
        Ok(n)
    }

    fn report(
        &mut self,
        jail: &str,
        address: &str,
        now: Timestamp,
    ) -> Result<Reported, ControlError> {
        let addr = self.check(jail, address)?;
        self.lines += 1;
        self.count(jail, addr, now, 1, false, None, now)
            .ok_or_else(|| ControlError::IgnoredAddress(addr.to_string()))
    }

    fn status(&self) -> Status {
        let mut jails: Vec<JailStatus> = self
            .config
            .jails
            .values()
            .map(|c| {
                let rt = self.jails.get(&c.name);
                JailStatus {
                    name: c.name.clone(),
                    filter: c.filter_name.clone(),
                    mode: c.mode.clone(),
                    enabled: c.enabled,
                    maxretry: c.maxretry,
                    findtime: c.findtime,
                    bantime: c.bantime,
                    currently_failed: rt.map_or(0, |r| r.jail.currently_failed() as u32),
                    total_failed: rt.map_or(0, |r| r.total_failed),
                    currently_banned: self.bans.count(&c.name),
                    total_banned: rt.map_or(0, |r| r.total_banned),
                    journal_match: c.journal_match.to_string(),
                    logpath: c.logpath.clone(),
                }
            })
            .collect();
        jails.sort_by(|a, b| a.name.cmp(&b.name));
        Status {
            version: env!("CARGO_PKG_VERSION").to_string(),
            backend: self.banner.name().to_string(),
            jails,
            active_bans: self.bans.len() as u32,
            total_bans: self.total_bans,
            lines_per_minute: self.lines_at_minute.1,
            started_at: self.started_at,
            dbpurgeage: self.config.daemon.dbpurgeage,
            backlog: self.backlog,
            file_backlog: self.file_backlog,
            store_problem: self.store_problem(),
        }
    }

    /// Apply a new configuration (already validated): jails added, removed
    /// or changed; windows, counters and bans of kept jails survive.
    pub fn reconfigure(&mut self, config: Arc<Config>, now: Timestamp) {
        let old = std::mem::replace(&mut self.config, config.clone());
        let enabled: BTreeMap<String, JailConfig> = config
            .enabled()
            .map(|j| (j.name.clone(), j.clone()))
            .collect();
        let removed: Vec<String> = self
            .jails
            .keys()
            .filter(|n| !enabled.contains_key(*n))
            .cloned()
            .collect();
        for name in &removed {
            let nets: Vec<IpNet> = self
                .bans
                .keys(|j, _| j == name)
                .into_iter()
                .map(|(_, n)| n)
                .collect();
            for net in nets {
                self.lift(name, net, "jail removed", now);
            }
            self.jails.remove(name);
            if let Err(e) = self.store.drop_jail(name) {
                warn!(jail = name, error = %e, "cannot drop the jail's state");
            }
        }
        for (name, jc) in enabled {
            match self.jails.get_mut(&name) {
                Some(rt) => {
                    if !Arc::ptr_eq(&rt.config.filter, &jc.filter) {
                        rt.journal = None;
                        rt.file = None;
                        self.pending.sessions_cleared.push(name.clone());
                    }
                    rt.jail
                        .reconfigure(limits(&jc), ignore_list(&jc, &self.self_addrs));
                    rt.matches
                        .set_max(MatchBuffer::wanted(&jc.actions, jc.maxmatches));
                    rt.config = jc;
                }
                None => {
                    let rt = JailRuntime::new(jc, &self.self_addrs);
                    self.jails.insert(name, rt);
                }
            }
        }
        // Bans of jails whose prefix changed keep their element until they
        // expire; new bans use the new prefix.
        let journal_of = |c: &Config| -> Vec<(String, String)> {
            c.enabled()
                .map(|j| (j.name.clone(), j.journal_reads(0).to_string()))
                .collect()
        };
        let files_of = |c: &Config| -> Vec<(String, Vec<String>)> {
            c.enabled()
                .map(|j| (j.name.clone(), j.logpath.clone()))
                .collect()
        };
        self.effects.restart_journal |= journal_of(&old) != journal_of(&config)
            || old.daemon.journal_directory != config.daemon.journal_directory;
        self.effects.restart_files |= files_of(&old) != files_of(&config);
        self.fleet_reconfigure(now);
        self.reconcile(now);
        self.flush(now);
        // After the flush: removed jails' actions heard of their unbans.
        self.configure_actions();
        self.handle.publish(CoreEvent::JailsChanged);
    }

    /// Stop: write what is pending; bans stay in force unless `flush`.
    pub fn shutdown(&mut self, flush_firewall: bool, now: Timestamp) {
        // A last try, whatever the backoff says.
        if let Some(t) = self.store_trouble.as_mut() {
            t.due = now;
        }
        self.flush(now);
        if !self.unsaved.is_empty() {
            tracing::error!(
                "stopping with {} batches not written to the state database: the entries they read are read again at the next start",
                self.unsaved.len()
            );
        }
        if let Err(e) = self.banner.shutdown(flush_firewall) {
            warn!(error = %e, "firewall cleanup at exit failed");
        }
    }

    /// The positions last committed (journal cursor, file offsets).
    pub fn positions(&self) -> &HashMap<String, String> {
        &self.positions
    }

    /// Human summary of a ban's length, for logs.
    pub fn describe(ban: &Ban) -> String {
        match ban.expires_at {
            Some(e) => format_duration(
                Duration::try_from(e.duration_since(ban.banned_at)).unwrap_or_default(),
            ),
            None => "permanent".into(),
        }
    }
}

/// What `start` hands back besides the core.
pub struct Loaded {
    pub positions: HashMap<String, String>,
}

/// Count `attempts` failures of `jail` in the totals of `pending` (no
/// allocation once the jail has an entry).
fn add_failed(pending: &mut Changes, jail: &str, attempts: u32) {
    match pending.totals.get_mut(jail) {
        Some(t) => t.0 += u64::from(attempts),
        None => {
            pending
                .totals
                .insert(jail.to_string(), (u64::from(attempts), 0));
        }
    }
}

/// When a ban ended, for its history: an expired ban at its expiry (the
/// kernel lifted it then, even while the daemon was down), any other at
/// `now`.
fn ended_at(b: &Ban, reason: &str, now: Timestamp) -> Timestamp {
    match b.expires_at {
        Some(e) if reason == "expired" => e.min(now),
        _ => now,
    }
}

/// A random number in [0, 1) for `rndtime`, from the std hasher's random keys.
fn random_unit() -> f64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(0x6a09_e667_f3bc_c908);
    (h.finish() >> 11) as f64 / (1u64 << 53) as f64
}
