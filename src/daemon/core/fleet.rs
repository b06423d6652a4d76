//! The core's side of the fleet: this host's decisions handed to the link
//! (never awaited), other hosts' bans taken through the policy of
//! [`crate::fleet::remote`] into the store and the fleet sets.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use ipnet::IpNet;
use jiff::Timestamp;
use tokio::sync::mpsc;
use tracing::{info, warn};

use super::{Core, CoreEvent, ignore_list};
use crate::addr::{AddrList, parse_addr};
use crate::ban::{Ban, FLEET_JAIL};
use crate::config::Config;
use crate::daemon::control::ControlError;
use crate::events;
use crate::fleet::POSITION_PREFIX;
use crate::fleet::link::{FromLink, LinkStatus};
use crate::fleet::remote::{OriginStats, Outcome, Policy, Remote, RemoteBan};
use crate::fleet::wire::{Event, Kind, StreamId};
use crate::store::Store;

/// The fleet state the core owns.
pub(super) struct FleetSide {
    pub(super) remote: Remote,
    /// Other members and their own addresses.
    members: BTreeMap<String, Vec<IpAddr>>,
    /// Never banned for a remote: ignore lists, own and members' addresses.
    never: AddrList,
    /// This host's decisions not yet handed to the link.
    out: Vec<Event>,
    tx: Option<mpsc::Sender<Vec<Event>>>,
    status: Option<Arc<Mutex<LinkStatus>>>,
    dropped: u64,
    refused: u64,
    /// Fleet set changes of this step: lifted first (an IPv6 prefix may
    /// replace the addresses it covers), then enforced.
    lift: Vec<Ban>,
    enforce: Vec<Ban>,
}

/// One peer, for `fleet status`.
#[derive(Debug, Clone, PartialEq)]
pub struct PeerStatus {
    pub name: String,
    pub stats: OriginStats,
    /// Remote bans held from it.
    pub bans: u32,
}

/// The fleet as `fleet status` shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct FleetStatus {
    pub host: String,
    pub url: String,
    pub link: LinkStatus,
    pub peers: Vec<PeerStatus>,
    /// Elements in the fleet sets.
    pub remote_bans: u32,
}

impl FleetSide {
    /// Restore the remote bans and stream positions from the store.
    pub(super) fn restore(
        store: &Store,
        positions: &HashMap<String, String>,
        quorum: u32,
        now: Timestamp,
    ) -> FleetSide {
        let bans = store.remote_bans().unwrap_or_else(|e| {
            warn!(error = %e, "fleet: cannot read the remote bans from the state database");
            Vec::new()
        });
        let positions = stored_positions(positions);
        let mut remote = Remote::default();
        remote.restore(bans, positions, quorum, now);
        FleetSide {
            remote,
            members: BTreeMap::new(),
            never: AddrList::new(),
            out: Vec::new(),
            tx: None,
            status: None,
            dropped: 0,
            refused: 0,
            lift: Vec::new(),
            enforce: Vec::new(),
        }
    }
}

/// `fleet:<origin>` positions as stream IDs.
pub fn stored_positions(positions: &HashMap<String, String>) -> Vec<(String, StreamId)> {
    positions
        .iter()
        .filter_map(|(k, v)| {
            let origin = k.strip_prefix(POSITION_PREFIX)?;
            Some((origin.to_string(), v.parse().ok()?))
        })
        .collect()
}

/// The fleet element of a remote ban as a firewall ban.
fn fleet_ban(net: IpNet, expires_at: Option<Timestamp>, now: Timestamp) -> Ban {
    Ban {
        jail: FLEET_JAIL.to_string(),
        net,
        banned_at: now,
        expires_at,
        failures: 0,
    }
}

impl Core {
    /// Attach the running link: decisions go to `tx`, its state is read
    /// from `status`.
    pub fn attach_fleet(&mut self, tx: mpsc::Sender<Vec<Event>>, status: Arc<Mutex<LinkStatus>>) {
        if let Some(f) = self.fleet.as_mut() {
            f.tx = Some(tx);
            f.status = Some(status);
        }
    }

    /// This host's bans in force that the fleet shares (the link's start).
    pub fn published_bans(&self) -> Vec<Event> {
        let Some(fc) = self.config.fleet.as_ref() else {
            return Vec::new();
        };
        self.bans
            .bans(None)
            .filter(|b| fc.publishes(&b.jail))
            .map(|b| ban_event(&b, "restart"))
            .collect()
    }

    /// The fleet sets' bans, for reconcile.
    pub(super) fn fleet_bans(&self, now: Timestamp) -> Vec<Ban> {
        match &self.fleet {
            Some(f) => f
                .remote
                .effective(now)
                .map(|(n, e)| fleet_ban(n, e, now))
                .collect(),
            None => Vec::new(),
        }
    }

    /// Whether the fleet sets exist (a fleet that accepts remote bans).
    pub(super) fn fleet_sets(&self) -> bool {
        self.config.fleet.as_ref().is_some_and(|f| f.accept)
    }

    /// A decision of this host: to the link if its jail is published.
    pub(super) fn fleet_publish(&mut self, ev: Event) {
        let Some(fc) = self.config.fleet.as_ref() else {
            return;
        };
        if !fc.publishes(&ev.jail) {
            return;
        }
        if let Some(f) = self.fleet.as_mut() {
            f.out.push(ev);
        }
    }

    /// Hand the decisions of this step to the link without waiting: a full
    /// channel drops them from the stream (the link's resync covers them).
    pub(super) fn fleet_flush(&mut self) {
        let Some(f) = self.fleet.as_mut() else {
            return;
        };
        if f.out.is_empty() {
            return;
        }
        let batch = std::mem::take(&mut f.out);
        let Some(tx) = f.tx.as_ref() else {
            return; // not attached yet: the link starts from published_bans()
        };
        if let Err(e) = tx.try_send(batch) {
            let n = match e {
                mpsc::error::TrySendError::Full(b) | mpsc::error::TrySendError::Closed(b) => {
                    b.len()
                }
            };
            f.dropped += n as u64;
            if let Some(s) = f.status.as_ref() {
                if let Ok(mut s) = s.lock() {
                    s.dropped += n as u64;
                }
            }
            if f.dropped.is_power_of_two() {
                warn!(
                    "fleet: the link is behind; {} decisions not streamed (peers catch up from the active set)",
                    f.dropped
                );
            }
        }
    }

    /// Rebuild the never-ban list: every jail's ignore list, this host's
    /// addresses, the fleet members' addresses.
    fn fleet_never(
        config: &Config,
        self_addrs: &AddrList,
        members: &BTreeMap<String, Vec<IpAddr>>,
    ) -> AddrList {
        let mut l = AddrList::new();
        for j in config.enabled() {
            for n in ignore_list(j, self_addrs).nets() {
                l.push(*n);
            }
        }
        for n in self_addrs.nets() {
            l.push(*n);
        }
        for a in members.values().flatten() {
            l.push(IpNet::from(*a));
        }
        l
    }

    /// Something from the link.
    pub fn fleet_message(&mut self, msg: FromLink, now: Timestamp) {
        let config = self.config.clone();
        let Some(fc) = config.fleet.as_ref() else {
            return;
        };
        let self_addrs = self.self_addrs.clone();
        let Some(f) = self.fleet.as_mut() else {
            return;
        };
        if f.never.is_empty() {
            f.never = Self::fleet_never(&config, &self_addrs, &f.members);
        }
        let mut out = Outcome::default();
        match msg {
            FromLink::Members(m) => {
                f.members = m.into_iter().collect();
                f.never = Self::fleet_never(&config, &self_addrs, &f.members);
                let p = Policy {
                    config: fc,
                    never: &f.never,
                };
                f.remote.reevaluate(&p, now, &mut out);
            }
            FromLink::Events { origin, events } => {
                let p = Policy {
                    config: fc,
                    never: &f.never,
                };
                for (id, ev) in &events {
                    f.remote.receive(&origin, *id, ev, &p, now, &mut out);
                }
            }
            FromLink::Resync { origin, set, last } => {
                let p = Policy {
                    config: fc,
                    never: &f.never,
                };
                f.remote.resync(&origin, &set, last, &p, now, &mut out);
            }
        }
        self.fleet_outcome(out, now);
        self.flush(now);
    }

    /// Re-check remote bans after a reload (trust, quorum, ignore lists).
    pub(super) fn fleet_reconfigure(&mut self, now: Timestamp) {
        let config = self.config.clone();
        let self_addrs = self.self_addrs.clone();
        match (config.fleet.as_ref(), self.fleet.as_mut()) {
            (Some(fc), Some(f)) => {
                f.never = Self::fleet_never(&config, &self_addrs, &f.members);
                let mut out = Outcome::default();
                let p = Policy {
                    config: fc,
                    never: &f.never,
                };
                f.remote.reevaluate(&p, now, &mut out);
                self.fleet_outcome(out, now);
            }
            (None, Some(_)) => {
                warn!("fleet: [fleet] was removed; remote bans stay until a restart");
            }
            _ => {}
        }
    }

    /// Drop remote bans that ran out (their elements expired in the kernel).
    pub(super) fn fleet_expire(&mut self, now: Timestamp) {
        let quorum = self.config.fleet.as_ref().map_or(1, |f| f.quorum);
        let Some(f) = self.fleet.as_mut() else {
            return;
        };
        let mut out = Outcome::default();
        f.remote.expire(quorum, now, &mut out);
        self.fleet_outcome(out, now);
    }

    fn fleet_outcome(&mut self, out: Outcome, now: Timestamp) {
        for (origin, jail, net, why) in &out.ended {
            self.events.push(CoreEvent::RemoteUnbanned {
                origin: origin.clone(),
                jail: jail.clone(),
                address: crate::addr::net_text(*net),
                reason: why.as_str().to_string(),
            });
        }
        for b in &out.applied {
            events::remote_ban(b);
            self.events.push(CoreEvent::RemoteBanned {
                origin: b.origin.clone(),
                jail: b.jail.clone(),
                address: crate::addr::net_text(b.net),
                expires_at: b.expires_at,
            });
        }
        if let Some(f) = self.fleet.as_mut() {
            for (b, why) in &out.refused {
                f.refused += 1;
                if f.refused.is_power_of_two() || f.refused < 16 {
                    warn!(
                        origin = b.origin,
                        jail = b.jail,
                        address = %b.net,
                        "fleet: remote ban refused: {} ({} refused so far)",
                        why.as_str(),
                        f.refused
                    );
                }
            }
        }
        for (origin, id) in out.positions {
            self.pending
                .positions
                .push((format!("{POSITION_PREFIX}{origin}"), id.to_string()));
        }
        self.pending.remote_bans.extend(out.stored);
        self.pending.remote_removed.extend(out.removed);
        if self.fleet_sets() {
            let shadowed = |n: IpNet| self.fleet.as_ref().is_some_and(|f| f.remote.shadowed(n));
            let enforce: Vec<Ban> = out
                .enforce
                .into_iter()
                .filter(|(n, _)| !shadowed(*n))
                .map(|(n, e)| fleet_ban(n, e, now))
                .collect();
            if let Some(f) = self.fleet.as_mut() {
                f.enforce.extend(enforce);
                f.lift
                    .extend(out.lift.into_iter().map(|n| fleet_ban(n, None, now)));
            }
        }
    }

    /// Lift by hand the remote bans of `origin` (`None`: every origin) of
    /// `address` (an address or CIDR range; `None`: every address), in the
    /// fleet sets and the store; local bans stay. How many ended.
    pub(super) fn fleet_unban(
        &mut self,
        origin: Option<&str>,
        address: Option<&str>,
        now: Timestamp,
    ) -> Result<u32, ControlError> {
        let range = match address {
            None => None,
            Some(text) => {
                let text = text.trim();
                Some(match text.parse::<IpNet>() {
                    Ok(n) => n.trunc(),
                    Err(_) => parse_addr(text)
                        .map(IpNet::from)
                        .ok_or_else(|| ControlError::InvalidAddress(text.to_string()))?,
                })
            }
        };
        let quorum = self.config.fleet.as_ref().map_or(1, |f| f.quorum);
        let Some(f) = self.fleet.as_mut() else {
            return Err(ControlError::Failed(
                "no [fleet] in the configuration: there are no remote bans".into(),
            ));
        };
        let mut out = Outcome::default();
        let n = f.remote.lift(origin, range, quorum, now, &mut out);
        if n > 0 {
            info!(
                origin = origin.unwrap_or("*"),
                address = address.unwrap_or("*"),
                "fleet: {n} remote bans lifted by hand (local bans stay)"
            );
        }
        self.fleet_outcome(out, now);
        Ok(n)
    }

    /// Apply this step's fleet set changes (after the jails' own).
    pub(super) fn fleet_firewall(&mut self, now: Timestamp) {
        let Some(f) = self.fleet.as_mut() else {
            return;
        };
        let (lift, enforce) = (std::mem::take(&mut f.lift), std::mem::take(&mut f.enforce));
        if !lift.is_empty() {
            if let Err(e) = self.banner.unban(&lift) {
                self.backend_failed(&e, now);
                return;
            }
        }
        if !enforce.is_empty() {
            if let Err(e) = self.banner.ban(&enforce, now) {
                self.backend_failed(&e, now);
            }
        }
    }

    /// A reconcile is scheduled: it will make the fleet sets right.
    pub(super) fn fleet_firewall_clear(&mut self) {
        if let Some(f) = self.fleet.as_mut() {
            f.lift.clear();
            f.enforce.clear();
        }
    }

    /// Remote bans held (for `bans`).
    pub fn remote_bans(&self) -> Vec<RemoteBan> {
        self.fleet
            .as_ref()
            .map(|f| f.remote.bans().cloned().collect())
            .unwrap_or_default()
    }

    /// `fleet status`.
    pub fn fleet_status(&self) -> Option<FleetStatus> {
        let fc = self.config.fleet.as_ref()?;
        let f = self.fleet.as_ref()?;
        let link = f
            .status
            .as_ref()
            .and_then(|s| s.lock().ok().map(|s| s.clone()))
            .unwrap_or_default();
        let mut held: HashMap<&str, u32> = HashMap::new();
        for b in f.remote.bans() {
            *held.entry(b.origin.as_str()).or_default() += 1;
        }
        let mut names: Vec<String> = f.remote.stats().map(|(k, _)| k.clone()).collect();
        names.extend(link.peers.iter().cloned());
        names.sort();
        names.dedup();
        let stats: HashMap<&String, &OriginStats> = f.remote.stats().collect();
        let peers = names
            .iter()
            .map(|n| PeerStatus {
                name: n.clone(),
                stats: stats.get(n).map(|s| (*s).clone()).unwrap_or_default(),
                bans: held.get(n.as_str()).copied().unwrap_or(0),
            })
            .collect();
        Some(FleetStatus {
            host: fc.host.clone(),
            url: fc.url.clone(),
            link,
            peers,
            remote_bans: f.remote.len() as u32,
        })
    }
}

/// A local ban as a fleet event.
pub(super) fn ban_event(b: &Ban, reason: &str) -> Event {
    Event {
        kind: Kind::Ban,
        jail: b.jail.clone(),
        net: b.net,
        banned_at: b.banned_at,
        expires_at: b.expires_at,
        failures: b.failures,
        reason: reason.to_string(),
    }
}

/// A local unban as a fleet event.
pub(super) fn unban_event(jail: &str, net: IpNet, reason: &str, now: Timestamp) -> Event {
    Event {
        kind: Kind::Unban,
        jail: jail.to_string(),
        net,
        banned_at: now,
        expires_at: None,
        failures: 0,
        reason: reason.to_string(),
    }
}
