//! The daemon core's API for control surfaces (D-Bus, the control socket,
//! and through them the CLI): requests answered by the core task, and a
//! broadcast of what happens (bans, unbans, counters).
//!
//! Surfaces authenticate and authorize callers; the core only validates
//! arguments. Requests travel over a bounded channel, so a flood of callers
//! slows down rather than grows memory.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use ipnet::IpNet;
use jiff::Timestamp;
use tokio::sync::{Semaphore, broadcast, mpsc, oneshot};

use crate::ban::Ban;
use crate::config::duration::BanTime;
use crate::daemon::core::FleetStatus;
use crate::fleet::remote::RemoteBan;
use crate::store::{Bucket, HistogramQuery, HistoryEntry, HistoryQuery, Reader, StoreError};

/// Why a request was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ControlError {
    #[error("no jail named {0:?}")]
    NoSuchJail(String),
    #[error("{0:?} is not an IP address")]
    InvalidAddress(String),
    /// A range that cannot be banned (the message says why).
    #[error("{0}")]
    InvalidRange(String),
    #[error(
        "{0} is never banned in this jail (its ignoreip or trusted_proxies, or this host's own address)"
    )]
    IgnoredAddress(String),
    #[error("the configuration has problems:\n{0}")]
    Config(String),
    #[error("the daemon is shutting down")]
    ShuttingDown,
    /// An answer would be too large, or the caller asks too much at once.
    #[error("{0}")]
    LimitsExceeded(String),
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

/// Reading what was logged before the daemon started: on a first start
/// the journal since the longest findtime, after a restart since the saved
/// cursor. Reported until the reader first catches up.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backlog {
    /// Entries of the backlog read so far.
    pub entries: u64,
    /// Share of the backlog's time span read (0 to 1).
    pub fraction: f64,
    /// The time of the last entry read.
    pub position: Timestamp,
}

/// Reading log files that grew while the daemon was not reading them (a
/// first start on a large file, a restart after a long stop). Reported
/// while at least [`FileBacklog::SHOWN_FROM`] bytes were left when it began,
/// until the files are read to their end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileBacklog {
    /// Bytes of the backlog read so far.
    pub bytes_read: u64,
    /// Bytes left to read in the open files.
    pub bytes_left: u64,
}

impl FileBacklog {
    /// Smaller backlogs are read in well under a second: not reported.
    pub const SHOWN_FROM: u64 = 64 << 20;

    /// Share read, 0 to 1.
    pub fn fraction(&self) -> f64 {
        let total = self.bytes_read.saturating_add(self.bytes_left);
        if total == 0 {
            1.0
        } else {
            self.bytes_read as f64 / total as f64
        }
    }

    /// "37%, 6.3 GB left", for `STATUS=` and `status`.
    pub fn describe(&self) -> String {
        let left = self.bytes_left as f64;
        let size = if left >= 1e9 {
            format!("{:.1} GB", left / 1e9)
        } else {
            format!("{:.0} MB", left / 1e6)
        };
        format!("{:.0}%, {size} left", self.fraction() * 100.0)
    }
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
    /// How long the ban history is kept (`dbpurgeage`).
    pub dbpurgeage: Duration,
    /// The journal backlog being read, if it is.
    pub backlog: Option<Backlog>,
    /// The log files' backlog being read, if one is.
    pub file_backlog: Option<FileBacklog>,
    /// Why the state database cannot be written, while it cannot (a full
    /// disk): bans still reach the firewall, batches wait in memory.
    pub store_problem: Option<String>,
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
    /// Active bans, of one jail or all (`None`), by jail then ban time;
    /// refused (LimitsExceeded) when there are more than `max`.
    ListBans {
        jail: Option<String>,
        max: usize,
        reply: oneshot::Sender<Result<Vec<Ban>, ControlError>>,
    },
    /// At most `limit` active bans in the order of ListBans, after the
    /// ban `after` (jail, banned_at µs, net); and whether more follow.
    ListBansPage {
        jail: Option<String>,
        after: Option<(String, i64, IpNet)>,
        limit: usize,
        reply: oneshot::Sender<Result<(Vec<Ban>, bool), ControlError>>,
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
    /// The fleet link, its peers, and the remote bans held (`None`: no
    /// `[fleet]`).
    Fleet(oneshot::Sender<(Option<FleetStatus>, Vec<RemoteBan>)>),
    /// The fleet link and its peers only (no remote bans: properties).
    FleetStatus(oneshot::Sender<Option<FleetStatus>>),
    /// Lift remote bans of one origin (`None`: every origin) of an
    /// address or range (`None`: every address); how many ended.
    UnbanRemote {
        origin: Option<String>,
        address: Option<String>,
        reply: oneshot::Sender<Result<u32, ControlError>>,
    },
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
    /// A ban of another fleet host was applied here.
    RemoteBanned {
        origin: String,
        jail: String,
        address: String,
        expires_at: Option<Timestamp>,
    },
    /// A remote ban held here ended; reason: "unban" (its origin lifted
    /// it), "expired", "manual", "resync", "policy".
    RemoteUnbanned {
        origin: String,
        jail: String,
        address: String,
        reason: String,
    },
    /// A jail's counters or settings changed (coalesced by surfaces).
    JailChanged { jail: String },
    /// The configuration was reloaded (jails may have been added or
    /// removed).
    JailsChanged,
}

/// Read-only queries of the state database (ban history), answered on a
/// connection of their own in a blocking thread, one at a time: they
/// never wait for the core, nor hold it up.
#[derive(Clone)]
struct HistoryReader {
    /// `None` once the daemon stops (see [`CoreHandle::close_history`]).
    reader: Arc<Mutex<Option<Reader>>>,
    one_at_a_time: Arc<Semaphore>,
}

/// A cheap, cloneable handle on the core.
#[derive(Clone)]
pub struct CoreHandle {
    tx: mpsc::Sender<Request>,
    events: broadcast::Sender<CoreEvent>,
    history: Option<HistoryReader>,
}

impl CoreHandle {
    /// A handle and the receiving end the core serves.
    pub fn new(capacity: usize) -> (CoreHandle, mpsc::Receiver<Request>) {
        let (tx, rx) = mpsc::channel(capacity);
        let (events, _) = broadcast::channel(1024);
        (
            CoreHandle {
                tx,
                events,
                history: None,
            },
            rx,
        )
    }

    /// Answer history queries from `reader` (a connection to the core's
    /// database); without one they fail.
    pub fn with_history(mut self, reader: Reader) -> Self {
        self.history = Some(HistoryReader {
            reader: Arc::new(Mutex::new(Some(reader))),
            one_at_a_time: Arc::new(Semaphore::new(1)),
        });
        self
    }

    async fn read<T: Send + 'static>(
        &self,
        query: impl FnOnce(&Reader) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, ControlError> {
        let h = self
            .history
            .as_ref()
            .ok_or_else(|| ControlError::Failed("the ban history is not available".into()))?;
        let _turn = h
            .one_at_a_time
            .acquire()
            .await
            .map_err(|_| ControlError::ShuttingDown)?;
        let reader = h.reader.clone();
        tokio::task::spawn_blocking(move || {
            // A poisoned lock only means an earlier query panicked.
            let r = reader.lock().unwrap_or_else(|p| p.into_inner());
            r.as_ref().map(query)
        })
        .await
        .map_err(|e| ControlError::Failed(format!("history query failed: {e}")))?
        .ok_or(ControlError::ShuttingDown)?
        .map_err(|e| ControlError::Failed(format!("cannot read the ban history: {e}")))
    }

    /// Close the history's connection (for every clone of this handle):
    /// the store's own connection is then the last one, and closing it
    /// checkpoints the WAL into the database and removes the WAL file.
    /// A stopped daemon leaves one file, not three.
    pub fn close_history(&self) {
        if let Some(h) = &self.history {
            h.reader.lock().unwrap_or_else(|p| p.into_inner()).take();
        }
    }

    /// Bans from the history, newest first.
    pub async fn history(&self, q: HistoryQuery) -> Result<Vec<HistoryEntry>, ControlError> {
        self.read(move |r| r.history(&q)).await
    }

    /// Bans started per time bucket, per jail.
    pub async fn histogram(&self, q: HistogramQuery) -> Result<Vec<Bucket>, ControlError> {
        self.read(move |r| r.histogram(&q)).await
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

    /// Active bans, of one jail or all; more than `max` is refused.
    pub async fn list_bans(
        &self,
        jail: Option<String>,
        max: usize,
    ) -> Result<Vec<Ban>, ControlError> {
        self.ask(|reply| Request::ListBans { jail, max, reply })
            .await?
    }

    /// A page of active bans after `after`; and whether more follow.
    pub async fn list_bans_page(
        &self,
        jail: Option<String>,
        after: Option<(String, i64, IpNet)>,
        limit: usize,
    ) -> Result<(Vec<Ban>, bool), ControlError> {
        self.ask(|reply| Request::ListBansPage {
            jail,
            after,
            limit,
            reply,
        })
        .await?
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

    /// The fleet's state and the remote bans held.
    pub async fn fleet(&self) -> Result<(Option<FleetStatus>, Vec<RemoteBan>), ControlError> {
        self.ask(Request::Fleet).await
    }

    /// The fleet's state alone: what properties read, without copying
    /// every remote ban.
    pub async fn fleet_status(&self) -> Result<Option<FleetStatus>, ControlError> {
        self.ask(Request::FleetStatus).await
    }

    /// Lift remote bans (fleet sets only; local bans stay).
    pub async fn unban_remote(
        &self,
        origin: Option<String>,
        address: Option<String>,
    ) -> Result<u32, ControlError> {
        self.ask(|reply| Request::UnbanRemote {
            origin,
            address,
            reply,
        })
        .await?
    }
}
