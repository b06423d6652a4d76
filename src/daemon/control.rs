//! The daemon core's API for control surfaces (D-Bus, the control socket,
//! and through them the CLI): requests answered by the core task, and a
//! broadcast of what happens (bans, unbans, counters).
//!
//! Surfaces authenticate and authorize callers; the core only validates
//! arguments. Requests travel over a bounded channel, so a flood of callers
//! slows down rather than grows memory.

use std::time::Duration;

use jiff::Timestamp;
use tokio::sync::{broadcast, mpsc, oneshot};

use crate::ban::Ban;
use crate::config::duration::BanTime;

/// Why a request was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ControlError {
    #[error("no jail named {0:?}")]
    NoSuchJail(String),
    #[error("{0:?} is not an IP address")]
    InvalidAddress(String),
    #[error("{0} is in the jail's ignoreip list (or is this host's own address)")]
    IgnoredAddress(String),
    #[error("the configuration has problems:\n{0}")]
    Config(String),
    #[error("the daemon is shutting down")]
    ShuttingDown,
    #[error("{0}")]
    Failed(String),
}

/// One jail's settings and counters.
#[derive(Debug, Clone, PartialEq)]
pub struct JailStatus {
    pub name: String,
    pub filter: String,
    pub mode: String,
    pub enabled: bool,
    pub maxretry: u32,
    pub findtime: Duration,
    pub bantime: BanTime,
    /// Addresses with failures in their window now.
    pub currently_failed: u32,
    /// Failures counted since the state was created.
    pub total_failed: u64,
    pub currently_banned: u32,
    pub total_banned: u64,
    /// journalctl syntax; empty when the jail reads no journal.
    pub journal_match: String,
    pub logpath: Vec<String>,
}

/// The daemon as a whole.
#[derive(Debug, Clone, PartialEq)]
pub struct Status {
    pub version: String,
    pub backend: String,
    pub jails: Vec<JailStatus>,
    pub active_bans: u32,
    pub total_bans: u64,
    /// Lines (entries) read in the last minute, all sources.
    pub lines_per_minute: u64,
    pub started_at: Timestamp,
}

/// What `Report` did with the reported failure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reported {
    /// Counted; the address now has this many failures in the window.
    Counted { failures: u32 },
    /// It reached maxretry and was banned.
    Banned(Ban),
    /// Already banned in that jail.
    AlreadyBanned,
}

/// Requests to the core; each carries where to send the answer.
#[derive(Debug)]
pub enum Request {
    Status(oneshot::Sender<Status>),
    /// Active bans, of one jail or all (`None`).
    ListBans {
        jail: Option<String>,
        reply: oneshot::Sender<Result<Vec<Ban>, ControlError>>,
    },
    /// Ban by hand; `duration` `None` is the jail's bantime (escalated).
    Ban {
        jail: String,
        address: String,
        duration: Option<BanTime>,
        reply: oneshot::Sender<Result<Ban, ControlError>>,
    },
    /// Unban in one jail or every jail (`None`); answers how many bans ended.
    Unban {
        jail: Option<String>,
        address: String,
        reply: oneshot::Sender<Result<u32, ControlError>>,
    },
    /// Lift every ban of every jail.
    UnbanAll(oneshot::Sender<Result<u32, ControlError>>),
    /// An application reports a failure without a log line.
    Report {
        jail: String,
        address: String,
        reply: oneshot::Sender<Result<Reported, ControlError>>,
    },
    Reload(oneshot::Sender<Result<(), ControlError>>),
}

/// Something that happened, for signals and property changes.
#[derive(Debug, Clone, PartialEq)]
pub enum CoreEvent {
    Banned {
        jail: String,
        address: String,
        expires_at: Option<Timestamp>,
        failures: u32,
    },
    Unbanned {
        jail: String,
        address: String,
        reason: String,
    },
    /// A jail's counters or settings changed (coalesced by surfaces).
    JailChanged { jail: String },
    /// Jails were added or removed (after a reload).
    JailsChanged,
}

/// A cheap, cloneable handle on the core.
#[derive(Clone)]
pub struct CoreHandle {
    tx: mpsc::Sender<Request>,
    events: broadcast::Sender<CoreEvent>,
}

impl CoreHandle {
    /// A handle and the receiving end the core serves.
    pub fn new(capacity: usize) -> (CoreHandle, mpsc::Receiver<Request>) {
        let (tx, rx) = mpsc::channel(capacity);
        let (events, _) = broadcast::channel(1024);
        (CoreHandle { tx, events }, rx)
    }

    /// Publish an event (the core does this).
    pub fn publish(&self, e: CoreEvent) {
        // No subscriber is fine.
        let _ = self.events.send(e);
    }

    /// Receive events from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<CoreEvent> {
        self.events.subscribe()
    }

    async fn ask<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<T>) -> Request,
    ) -> Result<T, ControlError> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(make(tx))
            .await
            .map_err(|_| ControlError::ShuttingDown)?;
        rx.await.map_err(|_| ControlError::ShuttingDown)
    }

    pub async fn status(&self) -> Result<Status, ControlError> {
        self.ask(Request::Status).await
    }

    pub async fn list_bans(&self, jail: Option<String>) -> Result<Vec<Ban>, ControlError> {
        self.ask(|reply| Request::ListBans { jail, reply }).await?
    }

    pub async fn ban(
        &self,
        jail: String,
        address: String,
        duration: Option<BanTime>,
    ) -> Result<Ban, ControlError> {
        self.ask(|reply| Request::Ban {
            jail,
            address,
            duration,
            reply,
        })
        .await?
    }

    pub async fn unban(&self, jail: Option<String>, address: String) -> Result<u32, ControlError> {
        self.ask(|reply| Request::Unban {
            jail,
            address,
            reply,
        })
        .await?
    }

    pub async fn unban_all(&self) -> Result<u32, ControlError> {
        self.ask(Request::UnbanAll).await?
    }

    pub async fn report(&self, jail: String, address: String) -> Result<Reported, ControlError> {
        self.ask(|reply| Request::Report {
            jail,
            address,
            reply,
        })
        .await?
    }

    pub async fn reload(&self) -> Result<(), ControlError> {
        self.ask(Request::Reload).await?
    }
}
