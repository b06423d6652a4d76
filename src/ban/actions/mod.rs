//! Actions: what a jail does with a ban besides the firewall backend —
//! run commands (`command`), write tcp_wrappers rules (`hosts-deny`), send a
//! mail (`mail`). A jail may combine several (`[[jails.NAME.action]]`).
//!
//! The core tells [`Actions`] about each ban and unban *after* committing
//! it to the store and handing it to the banner, in `Core::flush`. The calls
//! never block and never fail: each action runs in tasks of its own on the
//! daemon's runtime (processes through `tokio::process`, file edits on the
//! blocking pool), and its failures are journal events
//! ([`crate::events::MESSAGE_ID_ACTION_ERROR`]), never the core's problem.
//!
//! On a reload, a jail whose actions are unchanged keeps them running;
//! changed or removed ones are closed (drained, `stop` run, hosts.deny block
//! removed) and the new ones start only after that, so `stop` of the old
//! never races `start` of the new. When the daemon stops, queued commands
//! that have not started are skipped, `stop` commands run, and hosts.deny
//! keeps its rules (bans stay in force across restarts; the next start
//! syncs the file with the bans then in force).

pub mod command;
pub mod hosts_deny;
pub mod mail;
pub mod process;
pub mod template;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::future::Future;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::ban::Ban;
use template::Template;

/// Jobs (commands, mails) waiting per action, at most; see the modules.
pub const QUEUE_LIMIT: usize = 1024;

/// One configured action of a jail.
#[derive(Debug, Clone, PartialEq)]
pub struct ActionConfig {
    /// For logs: `name = "..."`, or the type and position (`command#1`).
    pub label: String,
    pub kind: ActionKind,
}

impl ActionConfig {
    /// Does it show the matched log lines (so the core must keep them)?
    pub fn wants_lines(&self) -> bool {
        matches!(self.kind, ActionKind::Mail(_))
    }
}

/// What an action does.
#[derive(Debug, Clone, PartialEq)]
pub enum ActionKind {
    Command(CommandConfig),
    HostsDeny(HostsDenyConfig),
    Mail(MailConfig),
}

/// `type = "command"`.
#[derive(Debug, Clone, PartialEq)]
pub struct CommandConfig {
    /// Run for each ban.
    pub ban: Template,
    /// Run when a ban ends (expiry, manual unban, jail removed).
    pub unban: Option<Template>,
    /// Run in order when the action starts (daemon start, reload).
    pub start: Vec<Template>,
    /// Run in order when it stops (daemon stop, reload).
    pub stop: Vec<Template>,
    /// Each program is killed (its process group) after this long.
    pub timeout: Duration,
    /// Only bans of this address family (iptables vs ip6tables).
    pub family: Option<Family>,
    /// Commands running at once (different addresses).
    pub concurrency: u32,
    /// Run `ban` at start for every ban in force (restored from the state
    /// database), for targets that do not survive a reboot or `stop`.
    pub restore: bool,
}

/// An address family filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    Inet,
    Inet6,
}

/// `type = "hosts-deny"`.
#[derive(Debug, Clone, PartialEq)]
pub struct HostsDenyConfig {
    pub path: PathBuf,
    /// The tcp_wrappers daemon list of each rule (`ALL`, `sshd`).
    pub daemon: String,
}

/// `type = "mail"`.
#[derive(Debug, Clone, PartialEq)]
pub struct MailConfig {
    pub dest: Vec<String>,
    /// `None`: `jailwarden@HOSTNAME`.
    pub sender: Option<String>,
    pub sendmail: PathBuf,
    pub max_per_hour: u32,
    pub timeout: Duration,
}

/// Who an action works for, and how it reports failures.
#[derive(Debug, Clone)]
pub struct Context {
    pub jail: Arc<str>,
    pub label: Arc<str>,
}

impl Context {
    /// Report a failure as a journal event (the daemon goes on).
    pub fn failed(&self, address: Option<&str>, problem: &str) {
        crate::events::action_error(&self.jail, &self.label, address, problem);
    }
}

enum Worker {
    Command(command::Worker),
    HostsDeny(hosts_deny::Worker),
    Mail(mail::Worker),
}

impl Worker {
    fn spawn(
        jail: &str,
        cfg: &ActionConfig,
        active: &[Ban],
        after: Vec<CancellationToken>,
    ) -> Self {
        let ctx = Context {
            jail: Arc::from(jail),
            label: Arc::from(cfg.label.as_str()),
        };
        match &cfg.kind {
            ActionKind::Command(c) => {
                Worker::Command(command::Worker::spawn(ctx, c.clone(), active, after))
            }
            ActionKind::HostsDeny(h) => Worker::HostsDeny(hosts_deny::Worker::spawn(
                ctx,
                h.clone(),
                active.iter().map(|b| b.net),
                after,
            )),
            ActionKind::Mail(m) => Worker::Mail(mail::Worker::spawn(ctx, m.clone(), after)),
        }
    }

    /// Close; `shutdown`: the daemon stops (else: the action was removed
    /// or changed by a reload).
    fn close(self, shutdown: bool) -> CancellationToken {
        match self {
            Worker::Command(w) => w.close(shutdown),
            Worker::HostsDeny(w) => w.close(!shutdown),
            Worker::Mail(w) => w.close(),
        }
    }
}

/// What the core tells the actions, queued until its flush.
#[derive(Debug, Clone)]
pub enum ActionEvent {
    /// A ban, with the log lines that led to it.
    Banned(Ban, Vec<String>),
    /// A ban ended.
    Unbanned(Ban),
}

struct JailActions {
    configs: Vec<ActionConfig>,
    workers: Vec<Worker>,
}

/// The running actions of every jail; owned by the core. Methods return at
/// once (they queue work); they must be called on the daemon's runtime.
#[derive(Default)]
pub struct Actions {
    jails: BTreeMap<String, JailActions>,
    /// Closed actions still finishing (drain, `stop`).
    closing: Vec<CancellationToken>,
}

impl Actions {
    /// No actions.
    pub fn new() -> Self {
        Self::default()
    }

    /// Make the running actions those of `jails` (name, actions): start new
    /// ones, close removed or changed ones, keep the rest. `bans` are the
    /// bans in force, which new actions start from.
    pub fn configure<'c>(
        &mut self,
        jails: impl IntoIterator<Item = (&'c str, &'c [ActionConfig])>,
        bans: &[Ban],
    ) {
        let mut wanted: BTreeMap<&str, &[ActionConfig]> =
            jails.into_iter().filter(|(_, a)| !a.is_empty()).collect();
        self.closing.retain(|t| !t.is_cancelled());
        let mut replaced: HashMap<String, Vec<CancellationToken>> = HashMap::new();
        let names: Vec<String> = self.jails.keys().cloned().collect();
        for name in names {
            if wanted
                .get(name.as_str())
                .is_some_and(|w| *w == self.jails[&name].configs.as_slice())
            {
                wanted.remove(name.as_str());
                continue;
            }
            if let Some(old) = self.jails.remove(&name) {
                let tokens: Vec<CancellationToken> =
                    old.workers.into_iter().map(|w| w.close(false)).collect();
                self.closing.extend(tokens.iter().cloned());
                replaced.insert(name, tokens);
            }
        }
        for (name, configs) in wanted {
            let active: Vec<Ban> = bans.iter().filter(|b| b.jail == name).cloned().collect();
            let after = replaced.remove(name).unwrap_or_default();
            let workers = configs
                .iter()
                .map(|c| Worker::spawn(name, c, &active, after.clone()))
                .collect();
            self.jails.insert(
                name.to_string(),
                JailActions {
                    configs: configs.to_vec(),
                    workers,
                },
            );
        }
    }

    /// Tell the actions of one ban or unban.
    pub fn deliver(&mut self, e: ActionEvent) {
        match e {
            ActionEvent::Banned(ban, lines) => self.banned(&ban, &lines),
            ActionEvent::Unbanned(ban) => self.unbanned(&ban),
        }
    }

    /// A ban was committed and enforced; `lines` are the log lines that led
    /// to it (empty for manual bans).
    pub fn banned(&mut self, ban: &Ban, lines: &[String]) {
        let Some(ja) = self.jails.get_mut(&ban.jail) else {
            return;
        };
        for w in &mut ja.workers {
            match w {
                Worker::Command(c) => c.ban(ban),
                Worker::HostsDeny(h) => h.ban(ban.net),
                Worker::Mail(m) => m.ban(ban, lines.to_vec()),
            }
        }
    }

    /// A ban ended and was lifted.
    pub fn unbanned(&mut self, ban: &Ban) {
        let Some(ja) = self.jails.get_mut(&ban.jail) else {
            return;
        };
        for w in &mut ja.workers {
            match w {
                Worker::Command(c) => c.unban(ban),
                Worker::HostsDeny(h) => h.unban(ban.net),
                Worker::Mail(_) => {}
            }
        }
    }

    /// The daemon stops: close every action; the future resolves when all
    /// have finished (running commands end or time out, `stop` commands run).
    pub fn shutdown(&mut self) -> impl Future<Output = ()> + 'static {
        let mut tokens = std::mem::take(&mut self.closing);
        for (_, ja) in std::mem::take(&mut self.jails) {
            tokens.extend(ja.workers.into_iter().map(|w| w.close(true)));
        }
        async move {
            for t in tokens {
                t.cancelled().await;
            }
        }
    }
}

/// Bytes of one matched line kept (the rest is cut).
const MATCH_LINE_BYTES: usize = 1000;

/// Recent matched log lines per tracked address, for actions that show
/// them (mail). Bounded: at most `max` lines per address (`maxmatches`),
/// and only addresses the jail still tracks (the caller prunes with
/// [`retain`](Self::retain)); `max = 0` keeps nothing, which is the case
/// for jails without such an action.
#[derive(Debug, Default)]
pub struct MatchBuffer {
    max: usize,
    lines: HashMap<IpAddr, VecDeque<Box<str>>>,
}

impl MatchBuffer {
    /// Keep up to `max` lines per address.
    pub fn new(max: u32) -> Self {
        MatchBuffer {
            max: max as usize,
            lines: HashMap::new(),
        }
    }

    /// How many lines a jail with these actions keeps per address.
    pub fn wanted(actions: &[ActionConfig], maxmatches: u32) -> u32 {
        if actions.iter().any(ActionConfig::wants_lines) {
            maxmatches
        } else {
            0
        }
    }

    /// Change the bound (a reload).
    pub fn set_max(&mut self, max: u32) {
        self.max = max as usize;
        if self.max == 0 {
            self.lines = HashMap::new();
        }
        for l in self.lines.values_mut() {
            while l.len() > self.max {
                l.pop_front();
            }
        }
    }

    /// Addresses with lines kept.
    pub fn len(&self) -> usize {
        self.lines.len()
    }

    /// Nothing kept?
    pub fn is_empty(&self) -> bool {
        self.lines.is_empty()
    }

    /// Remember a matched line of `addr`.
    pub fn push(&mut self, addr: IpAddr, line: &[u8]) {
        if self.max == 0 {
            return;
        }
        let cut = &line[..line.len().min(MATCH_LINE_BYTES)];
        let text: Box<str> = String::from_utf8_lossy(cut).trim_end().into();
        let l = self.lines.entry(addr).or_default();
        if l.len() >= self.max {
            l.pop_front();
        }
        l.push_back(text);
    }

    /// The lines of `addr`, oldest first; forgets them.
    pub fn take(&mut self, addr: IpAddr) -> Vec<String> {
        self.lines
            .remove(&addr)
            .map(|l| l.into_iter().map(String::from).collect())
            .unwrap_or_default()
    }

    /// Keep only the addresses for which `keep` holds.
    pub fn retain(&mut self, keep: impl Fn(IpAddr) -> bool) {
        self.lines.retain(|a, _| keep(*a));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn match_buffer_keeps_the_last_lines_per_address_and_nothing_when_unwanted() {
        let a: IpAddr = "192.0.2.7".parse().unwrap();
        let b: IpAddr = "192.0.2.8".parse().unwrap();
        let mut m = MatchBuffer::new(2);
        m.push(a, b"one\n");
        m.push(a, b"two");
        m.push(b, b"other");
        m.push(a, b"three \xff");
        assert_eq!(m.take(a), ["two", "three \u{fffd}"]);
        assert!(m.take(a).is_empty());
        m.push(a, &[b'x'; 5000]);
        assert_eq!(m.take(a)[0].len(), MATCH_LINE_BYTES);
        m.retain(|x| x != b);
        assert!(m.is_empty());
        let mut none = MatchBuffer::new(0);
        none.push(a, b"x");
        assert!(none.is_empty());
        m.push(a, b"1");
        m.push(a, b"2");
        m.set_max(1);
        assert_eq!(m.take(a), ["2"]);
    }
}
