//! The journal source: one reader for every journal jail.
//!
//! # Why it looks like this
//!
//! - **One reader, filtered in the journal.** Every jail's `journal_match`
//!   is handed to sd-journal (`sd_journal_add_match` per term,
//!   `sd_journal_add_disjunction` between groups, across all jails), so
//!   entries no jail wants never leave the journal's indexes. Each entry
//!   read is then dispatched in-process to the jails whose own
//!   [`JournalMatch`] it satisfies.
//! - **A thread of its own.** An `sd_journal` handle must stay on the thread
//!   that opened it. The thread sleeps in `poll(2)` on the journal's inotify
//!   fd (`sd_journal_get_fd`) and an eventfd used to stop it: no timed
//!   polling, no latency, no idle wake-ups. After every wake-up it calls
//!   `sd_journal_process`, which is what lets sd-journal notice rotated,
//!   vacuumed, new and vanished files.
//! - **Batches, backpressure.** Entries go to the async core in batches
//!   over a bounded tokio channel. A batch is what one pass read (one entry
//!   when following live, so no added latency; up to [`MAX_BATCH_ENTRIES`]
//!   when catching up), so a backlog costs one cross-thread wake-up per
//!   batch, not per entry, and the core can commit one cursor per batch.
//!   When the core is slow the reader waits (the journal keeps the
//!   entries), so memory stays bounded whatever the log rate.
//! - **Never exits silently.** Errors are logged and the journal is reopened
//!   with exponential backoff, resuming after the last entry sent. That
//!   includes a journal directory removed or replaced under the reader,
//!   which sd-journal alone would not notice. The thread
//!   ends only when [`JournalHandle::stop`] is called (or the handle dropped)
//!   or when the receiver is dropped.
//! - **Resumable without loss or duplicates.** Every entry carries its cursor
//!   and realtime timestamp; the core commits them with the jail state they
//!   produced and passes them back in [`StartAt`] on the next start.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use foreign_types::ForeignTypeRef;
use jiff::Timestamp;
use rustix::event::{EventfdFlags, PollFd, PollFlags, Timespec};
use systemd::journal::{Journal, JournalRef, JournalWaitResult, OpenDirectoryOptions, OpenOptions};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};

use super::{JailId, MAX_MESSAGE_BYTES};
use crate::config::journal_match::{JournalMatch, MatchGroup, valid_field_name};
use crate::memory::{self, FilePages};

/// What to read and where to start; see [`JournalSource::spawn`].
#[derive(Debug, Clone)]
pub struct JournalOptions {
    /// Read the journal files in this directory (and its machine-id
    /// subdirectories), e.g. what `systemd-journal-remote` collects, instead
    /// of the local system journal. This is `[daemon] journal_directory`.
    pub directory: Option<PathBuf>,
    /// Every jail with its `journal_match`. Jails whose match is empty read
    /// no journal and are ignored here.
    pub jails: Vec<(JailId, JournalMatch)>,
    /// Fields besides the rendered line that the core wants from matching
    /// entries (e.g. `JAILWARDEN_ADDRESS`, `MESSAGE_ID` for a jail over our
    /// own ban events); see [`JournalEntry::extra`].
    pub extra_fields: Vec<String>,
    /// Where to start reading.
    pub start: StartAt,
    /// Batches buffered between the reader and the core before the reader
    /// waits; at least 1. Memory is bounded by about this many times
    /// [`MAX_BATCH_BYTES`]; a handful is plenty.
    pub channel_capacity: usize,
}

/// Where a fresh reader starts.
///
/// With a `cursor`, reading resumes right after that entry: nothing lost,
/// nothing read twice. If the entry is gone from the journal (vacuumed), the
/// reader seeks to `last_time` (or the time stored in the cursor itself),
/// skips every entry up to and including it, and logs a warning. Without a
/// cursor (first start), it reads from `now - since`: pass the longest
/// `findtime`, so failures that still count are seen again.
#[derive(Debug, Clone, Default)]
pub struct StartAt {
    /// The cursor of the last entry the core processed.
    pub cursor: Option<String>,
    /// That entry's realtime timestamp ([`JournalEntry::time`]).
    pub last_time: Option<Timestamp>,
    /// How far back to start without a cursor.
    pub since: Duration,
}

/// Entries in journal order, never empty; see [`MAX_BATCH_ENTRIES`].
pub type JournalBatch = Vec<JournalEntry>;

/// A batch is sent once it holds this many entries (or at the end of what
/// is available).
pub const MAX_BATCH_ENTRIES: usize = 256;

/// A batch is sent once its lines add up to this many bytes.
pub const MAX_BATCH_BYTES: usize = 1024 * 1024;

/// One journal entry, as the core receives it.
#[derive(Debug, Clone)]
pub struct JournalEntry {
    /// The text the filter sees: `HOSTNAME IDENTIFIER[PID]: MESSAGE`, like
    /// Fail2ban's journal backend (see [`render_line`]). Raw bytes: journal
    /// messages need not be UTF-8.
    pub line: Vec<u8>,
    /// `__REALTIME_TIMESTAMP`, when journald received the entry.
    pub time: Timestamp,
    /// The entry's cursor, to commit with the state this entry produced and
    /// to pass back as [`StartAt::cursor`].
    pub cursor: String,
    /// The jails whose `journal_match` this entry satisfies, in the order
    /// they were given; never empty. Shared between entries with the same
    /// set, so dispatch costs no allocation.
    pub jails: Arc<[JailId]>,
    /// The requested [`JournalOptions::extra_fields`] this entry has.
    pub extra: ExtraFields,
    /// MESSAGE is not whole: it was longer than [`MAX_MESSAGE_BYTES`] and
    /// was cut there, or journald cut it (a stdout line longer than its
    /// `LineMax=`, or one left unfinished: `_LINE_BREAK=line-max`, `eof`,
    /// `pid-change`). A filter then never takes its end for an end.
    pub truncated: bool,
}

/// Values of the extra fields asked for at spawn.
///
/// Values longer than [`MAX_MESSAGE_BYTES`] may come back cut at about that
/// length (sd-journal's data threshold). When a field occurs more than once
/// in an entry, the first value is kept.
#[derive(Debug, Clone, Default)]
pub struct ExtraFields {
    names: Arc<[String]>,
    values: Vec<Option<Box<[u8]>>>,
}

impl ExtraFields {
    /// The value of `name`, if it was asked for and the entry has it.
    pub fn get(&self, name: &str) -> Option<&[u8]> {
        let i = self.names.iter().position(|n| n == name)?;
        self.values.get(i)?.as_deref()
    }

    /// The fields present, in the order they were asked for.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &[u8])> {
        self.names
            .iter()
            .zip(&self.values)
            .filter_map(|(n, v)| Some((n.as_str(), v.as_deref()?)))
    }

    /// True when the entry has none of the requested fields.
    pub fn is_empty(&self) -> bool {
        self.values.iter().all(Option::is_none)
    }
}

/// Counters of a running reader, for `STATUS=`, logs and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct JournalStats {
    /// Entries the journal returned (after its own match filtering).
    pub read: u64,
    /// Entries sent to the core (in batches).
    pub delivered: u64,
    /// Messages cut at [`MAX_MESSAGE_BYTES`].
    pub truncated: u64,
    /// Entries skipped because their data could not be read (corruption).
    pub unreadable: u64,
    /// `SD_JOURNAL_INVALIDATE` wake-ups: files were added, rotated or removed.
    pub invalidations: u64,
    /// Times the journal was reopened after an error.
    pub reopened: u64,
    /// Times the reader had to wait for room in the channel for a batch.
    pub backpressure_waits: u64,
    /// Times the reader read everything available and went to sleep: a
    /// progress signal (e.g. it moves past 0 once the backlog at start-up
    /// is delivered).
    pub caught_up: u64,
}

/// Why the reader could not be started.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    /// No jail has a `journal_match`: the daemon should not start a reader.
    #[error("no jail has a journal_match; there is nothing to read from the journal")]
    NoJournalJails,
    /// An extra field name journald could never have stored.
    #[error(
        "extra journal field {0:?} is not a valid field name (uppercase letters, digits and '_')"
    )]
    BadFieldName(String),
    /// The journal (or the directory) could not be opened.
    #[error("cannot open {}: {source}", describe(.directory.as_deref()))]
    Open {
        /// `None` for the local journal.
        directory: Option<PathBuf>,
        #[source]
        source: systemd::Error,
    },
    /// An sd-journal call failed.
    #[error("{op} failed: {source}")]
    Journal {
        /// The sd-journal function.
        op: &'static str,
        #[source]
        source: systemd::Error,
    },
    /// A journal file shrank while mapped (SIGBUS, absorbed): what was
    /// read since the last delivery is read again from a reopened journal.
    #[error("a journal file was cut short while being read (SIGBUS)")]
    FileCutShort,
    /// The journal directory was removed or replaced under the reader.
    #[error("journal directory {} was removed or replaced", .directory.display())]
    DirectoryReplaced {
        /// The configured directory.
        directory: PathBuf,
    },
    /// Waiting on the journal's file descriptor failed.
    #[error("poll on the journal fd failed: {0}")]
    Poll(#[source] io::Error),
    /// The eventfd used to stop the reader could not be made.
    #[error("cannot create the reader's stop eventfd: {0}")]
    Eventfd(#[source] io::Error),
    /// The thread or its channel runtime could not be started.
    #[error("cannot start the journal reader thread: {0}")]
    Thread(#[source] io::Error),
    /// The thread ended before reporting whether the journal opened.
    #[error("the journal reader thread ended during start-up")]
    ThreadDied,
}

fn describe(directory: Option<&Path>) -> String {
    match directory {
        Some(d) => format!("journal directory {}", d.display()),
        None => "the local system journal".to_string(),
    }
}

/// Starts the journal reader; see [`JournalSource::spawn`].
pub struct JournalSource;

impl JournalSource {
    /// Open the journal, position it per `opts.start`, and start following
    /// it on a new thread.
    ///
    /// Returns once the journal is open and positioned (it blocks for that
    /// moment), so entries written after this returns are always delivered.
    /// Fails if it cannot be opened now (e.g. the directory does not
    /// exist); once running, errors are logged and retried with backoff,
    /// never fatal. Needs no tokio runtime; may be called from one.
    pub fn spawn(
        opts: JournalOptions,
    ) -> Result<(JournalHandle, mpsc::Receiver<JournalBatch>), JournalError> {
        let plan = Plan::new(&opts)?;
        let stop_fd = rustix::event::eventfd(0, EventfdFlags::CLOEXEC | EventfdFlags::NONBLOCK)
            .map_err(|e| JournalError::Eventfd(e.into()))?;
        let shared = Arc::new(Shared {
            stop_requested: AtomicBool::new(false),
            stop_fd,
            cancel: CancellationToken::new(),
            counters: Counters::default(),
        });
        let (tx, rx) = mpsc::channel(opts.channel_capacity.max(1));
        let resume = Resume::from_start(&opts.start, plan.since_usec);
        let reader = Reader {
            table: FieldTable::new(&plan),
            jail_sets: JailSets::default(),
            plan,
            tx,
            shared: Arc::clone(&shared),
            resume,
            batch: Vec::new(),
            batch_bytes: 0,
            unsent_cursor: None,
            last_usec: 0,
        };
        let (ready_tx, ready_rx) = std::sync::mpsc::sync_channel(1);
        let thread = std::thread::Builder::new()
            .name("jw-journal".into())
            .spawn(move || reader.run(ready_tx))
            .map_err(JournalError::Thread)?;
        let handle = JournalHandle {
            shared,
            thread: Some(thread),
        };
        match ready_rx.recv() {
            Ok(Ok(())) => Ok((handle, rx)),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(JournalError::ThreadDied),
        }
    }
}

/// Owns the reader thread. Dropping it stops the thread too.
pub struct JournalHandle {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl JournalHandle {
    /// Stop the reader and wait for its thread to end.
    ///
    /// Prompt: it wakes the thread through its eventfd, or cancels a send
    /// waiting for room in the channel. Entries already in the channel stay
    /// there for the receiver. Blocks for that short while; from async code
    /// call it in `spawn_blocking` if that matters.
    pub fn stop(mut self) {
        self.shutdown();
    }

    /// A snapshot of the reader's counters.
    pub fn stats(&self) -> JournalStats {
        self.shared.counters.snapshot()
    }

    /// False once the thread has ended: stopped, or its receiver dropped
    /// (which an idle reader notices when the next entry arrives).
    pub fn is_running(&self) -> bool {
        self.thread.as_ref().is_some_and(|t| !t.is_finished())
    }

    fn shutdown(&mut self) {
        self.shared.request_stop();
        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
        {
            error!("the journal reader thread panicked");
        }
    }
}

impl Drop for JournalHandle {
    fn drop(&mut self) {
        self.shutdown();
    }
}

impl std::fmt::Debug for JournalHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JournalHandle")
            .field("running", &self.is_running())
            .field("stats", &self.stats())
            .finish()
    }
}

/// Render an entry the way Fail2ban's journal backend does, so its filters'
/// expectations hold: `HOSTNAME IDENTIFIER[PID]: MESSAGE`.
///
/// Missing (or empty) parts are left out with their separator: no PID gives
/// `host sshd: msg`, no identifier gives `host msg`, no host `sshd[7]: msg`.
/// The reader passes `SYSLOG_IDENTIFIER` (else `_COMM`) as `ident` and
/// `_PID` (else `SYSLOG_PID`) as `pid`.
pub fn render_line(
    host: Option<&[u8]>,
    ident: Option<&[u8]>,
    pid: Option<&[u8]>,
    message: &[u8],
) -> Vec<u8> {
    let host = host.filter(|v| !v.is_empty());
    let ident = ident.filter(|v| !v.is_empty());
    let pid = pid.filter(|v| !v.is_empty());
    let len = host.map_or(0, |h| h.len() + 1)
        + ident.map_or(0, |i| i.len() + 2 + pid.map_or(0, |p| p.len() + 2))
        + message.len();
    let mut line = Vec::with_capacity(len);
    if let Some(h) = host {
        line.extend_from_slice(h);
        line.push(b' ');
    }
    if let Some(i) = ident {
        line.extend_from_slice(i);
        if let Some(p) = pid {
            line.push(b'[');
            line.extend_from_slice(p);
            line.push(b']');
        }
        line.extend_from_slice(b": ");
    }
    line.extend_from_slice(message);
    line
}

/// The realtime timestamp (`t=`, hex microseconds) stored in a cursor, used
/// when the cursor's entry is gone and no `last_time` was saved.
fn cursor_realtime(cursor: &str) -> Option<u64> {
    cursor
        .split(';')
        .find_map(|part| part.strip_prefix("t="))
        .and_then(|hex| u64::from_str_radix(hex, 16).ok())
}

fn timestamp_from_usec(usec: u64) -> Timestamp {
    // Timestamps far beyond year 9999 can only come from a broken or hostile
    // sender (journal-remote accepts what it is given): clamp, don't fail.
    i64::try_from(usec)
        .ok()
        .and_then(|us| Timestamp::from_microsecond(us).ok())
        .unwrap_or(Timestamp::MAX)
}

fn usec_from_timestamp(t: Timestamp) -> u64 {
    u64::try_from(t.as_microsecond()).unwrap_or(0)
}

// ---------------------------------------------------------------------------
// Internals.

/// State shared between the handle and the thread.
struct Shared {
    stop_requested: AtomicBool,
    /// Readable once a stop is requested; polled with the journal's fd.
    stop_fd: OwnedFd,
    /// Cancels a send that waits for channel room.
    cancel: CancellationToken,
    counters: Counters,
}

impl Shared {
    fn request_stop(&self) {
        self.stop_requested.store(true, Ordering::SeqCst);
        self.cancel.cancel();
        // The eventfd counter cannot overflow from a handful of writes; an
        // error here would only mean it is already readable.
        let _ = rustix::io::write(&self.stop_fd, &1u64.to_ne_bytes());
    }

    fn stopping(&self) -> bool {
        self.stop_requested.load(Ordering::Relaxed)
    }
}

#[derive(Default)]
struct Counters {
    read: AtomicU64,
    delivered: AtomicU64,
    truncated: AtomicU64,
    unreadable: AtomicU64,
    invalidations: AtomicU64,
    reopened: AtomicU64,
    backpressure_waits: AtomicU64,
    caught_up: AtomicU64,
}

impl Counters {
    fn bump(counter: &AtomicU64) -> u64 {
        counter.fetch_add(1, Ordering::Relaxed) + 1
    }

    fn snapshot(&self) -> JournalStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        JournalStats {
            read: get(&self.read),
            delivered: get(&self.delivered),
            truncated: get(&self.truncated),
            unreadable: get(&self.unreadable),
            invalidations: get(&self.invalidations),
            reopened: get(&self.reopened),
            backpressure_waits: get(&self.backpressure_waits),
            caught_up: get(&self.caught_up),
        }
    }
}

/// Everything fixed at spawn: which journal, which matches, which fields.
struct Plan {
    directory: Option<PathBuf>,
    jails: Vec<(JailId, JournalMatch)>,
    /// The union of every jail's groups, duplicates removed: what the
    /// journal itself filters on.
    groups: Vec<MatchGroup>,
    extra_names: Arc<[String]>,
    /// `now - since` at spawn, kept so a reopen before anything was read
    /// starts from the same point.
    since_usec: u64,
}

impl Plan {
    fn new(opts: &JournalOptions) -> Result<Self, JournalError> {
        let jails: Vec<_> = opts
            .jails
            .iter()
            .filter(|(_, m)| !m.is_empty())
            .cloned()
            .collect();
        if jails.is_empty() {
            return Err(JournalError::NoJournalJails);
        }
        let mut groups: Vec<MatchGroup> = Vec::new();
        for g in jails.iter().flat_map(|(_, m)| m.groups()) {
            if !groups.contains(g) {
                groups.push(g.clone());
            }
        }
        let mut extra_names: Vec<String> = Vec::new();
        for name in &opts.extra_fields {
            if !valid_field_name(name) {
                return Err(JournalError::BadFieldName(name.clone()));
            }
            if !extra_names.contains(name) {
                extra_names.push(name.clone());
            }
        }
        let since = u64::try_from(opts.start.since.as_micros()).unwrap_or(u64::MAX);
        Ok(Plan {
            directory: opts.directory.clone(),
            jails,
            groups,
            extra_names: extra_names.into(),
            since_usec: usec_from_timestamp(Timestamp::now()).saturating_sub(since),
        })
    }
}

/// The fields read from each entry, in reusable buffers.
///
/// Entries are read with one pass of `sd_journal_enumerate_data` rather than
/// one `sd_journal_get_data` per field: each `get_data` walks the entry's
/// items again, so a handful of them costs several times one enumeration.
struct FieldTable {
    names: Vec<Box<[u8]>>,
    values: Vec<Vec<u8>>,
    present: Vec<bool>,
    /// Index into `names` of each extra field, in [`Plan::extra_names`] order.
    extra_index: Vec<usize>,
    message_truncated: bool,
}

const F_HOSTNAME: usize = 0;
const F_IDENTIFIER: usize = 1;
const F_COMM: usize = 2;
const F_PID: usize = 3;
const F_SYSLOG_PID: usize = 4;
const F_MESSAGE: usize = 5;
const F_LINE_BREAK: usize = 6;
const RENDER_FIELDS: [&str; 7] = [
    "_HOSTNAME",
    "SYSLOG_IDENTIFIER",
    "_COMM",
    "_PID",
    "SYSLOG_PID",
    "MESSAGE",
    "_LINE_BREAK",
];

impl FieldTable {
    fn new(plan: &Plan) -> Self {
        let mut names: Vec<Box<[u8]>> = RENDER_FIELDS.iter().map(|f| f.as_bytes().into()).collect();
        let mut index_of = |name: &str| -> usize {
            if let Some(i) = names.iter().position(|n| **n == *name.as_bytes()) {
                return i;
            }
            names.push(name.as_bytes().into());
            names.len() - 1
        };
        for (_, m) in &plan.jails {
            for f in m.fields() {
                index_of(f);
            }
        }
        let extra_index = plan.extra_names.iter().map(|n| index_of(n)).collect();
        let n = names.len();
        FieldTable {
            names,
            values: vec![Vec::new(); n],
            present: vec![false; n],
            extra_index,
            message_truncated: false,
        }
    }

    fn clear(&mut self) {
        self.present.fill(false);
        self.message_truncated = false;
    }

    /// Keep `value` if `name` is wanted and not seen yet in this entry.
    fn offer(&mut self, name: &[u8], value: &[u8]) {
        let Some(i) = self.names.iter().position(|n| **n == *name) else {
            return;
        };
        if self.present[i] {
            return;
        }
        self.present[i] = true;
        let value = if i == F_MESSAGE && value.len() > MAX_MESSAGE_BYTES {
            self.message_truncated = true;
            &value[..MAX_MESSAGE_BYTES]
        } else {
            value
        };
        let slot = &mut self.values[i];
        slot.clear();
        slot.extend_from_slice(value);
    }

    fn get(&self, i: usize) -> Option<&[u8]> {
        if self.present[i] {
            Some(&self.values[i])
        } else {
            None
        }
    }

    fn get_by_name(&self, name: &str) -> Option<&[u8]> {
        let i = self.names.iter().position(|n| **n == *name.as_bytes())?;
        self.get(i)
    }

    /// journald ended this stdout line itself, before the writer did
    /// (`nul` is the writer's own terminator and leaves the line whole).
    fn cut_by_journald(&self) -> bool {
        matches!(
            self.get(F_LINE_BREAK),
            Some(b"line-max" | b"eof" | b"pid-change")
        )
    }

    fn render(&self) -> Vec<u8> {
        let ident = self.get(F_IDENTIFIER).filter(|v| !v.is_empty());
        let pid = self.get(F_PID).filter(|v| !v.is_empty());
        render_line(
            self.get(F_HOSTNAME),
            ident.or_else(|| self.get(F_COMM)),
            pid.or_else(|| self.get(F_SYSLOG_PID)),
            self.get(F_MESSAGE).unwrap_or_default(),
        )
    }

    fn extras(&self, names: &Arc<[String]>) -> ExtraFields {
        if self.extra_index.is_empty() {
            return ExtraFields::default();
        }
        ExtraFields {
            names: Arc::clone(names),
            values: self
                .extra_index
                .iter()
                .map(|&i| self.get(i).map(Box::from))
                .collect(),
        }
    }
}

/// Interns the jail-id sets entries are dispatched to: there are few
/// distinct ones, so entries share them instead of allocating each.
#[derive(Default)]
struct JailSets {
    scratch: Vec<JailId>,
    known: Vec<Arc<[JailId]>>,
}

impl JailSets {
    /// Upper bound on interned sets; past it (pathological configs) sets
    /// are simply allocated per entry.
    const MAX_KNOWN: usize = 64;

    fn intern(&mut self) -> Arc<[JailId]> {
        if let Some(set) = self.known.iter().find(|s| s[..] == self.scratch[..]) {
            return Arc::clone(set);
        }
        let set: Arc<[JailId]> = self.scratch.as_slice().into();
        if self.known.len() < Self::MAX_KNOWN {
            self.known.push(Arc::clone(&set));
        }
        set
    }
}

/// Evaluate each jail's match against the fields read; fills `sets.scratch`.
fn dispatch(jails: &[(JailId, JournalMatch)], table: &FieldTable, sets: &mut JailSets) {
    sets.scratch.clear();
    for (id, m) in jails {
        if m.matches(|name| table.get_by_name(name)) {
            sets.scratch.push(id.clone());
        }
    }
}

/// Where the next session positions the journal.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Resume {
    /// Right after the entry with this cursor; `usec` is its realtime, the
    /// fallback when the entry is gone.
    After { cursor: String, usec: Option<u64> },
    /// From this realtime on, skipping entries up to `skip_through`.
    Since {
        usec: u64,
        skip_through: Option<u64>,
    },
}

impl Resume {
    fn from_start(start: &StartAt, since_usec: u64) -> Self {
        let last = start.last_time.map(usec_from_timestamp);
        match &start.cursor {
            Some(cursor) => Resume::After {
                usec: last.or_else(|| cursor_realtime(cursor)),
                cursor: cursor.clone(),
            },
            None => Resume::Since {
                usec: since_usec,
                skip_through: last,
            },
        }
    }
}

/// What to skip right after positioning.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Skip {
    Nothing,
    /// The first entry, if it is this cursor's (it was processed already).
    Cursor(String),
    /// Entries up to and including this realtime: the cursor's entry is gone
    /// and its time is all we know of where we were.
    Through(u64),
}

/// Why the follow loop returned without an error.
enum Halt {
    Stop,
    ReceiverClosed,
}

/// An open, positioned journal. Lives and dies on the reader thread.
struct Session {
    journal: Journal,
    fd: RawFd,
    skip: Skip,
    /// (dev, inode) of the journal directory when it was opened.
    root: Option<(u64, u64)>,
    /// inotify on that directory itself (deleted or moved away), which
    /// sd-journal does not watch for.
    root_watch: Option<OwnedFd>,
    /// [`super::sigbus::faults`] when the session opened.
    faults: u64,
}

impl Session {
    /// Fail the session if a journal file was cut short under it since it
    /// opened: what was read may be zeros.
    fn check_faults(&self) -> Result<(), JournalError> {
        if super::sigbus::faults() == self.faults {
            Ok(())
        } else {
            Err(JournalError::FileCutShort)
        }
    }
}

fn sd(op: &'static str) -> impl FnOnce(systemd::Error) -> JournalError {
    move |source| JournalError::Journal { op, source }
}

/// Exponential backoff between reopen attempts, reset once a session works.
struct Backoff {
    next: Duration,
}

impl Backoff {
    const FIRST: Duration = Duration::from_millis(100);
    const MAX: Duration = Duration::from_secs(30);

    fn new() -> Self {
        Backoff { next: Self::FIRST }
    }

    fn next_delay(&mut self) -> Duration {
        let d = self.next;
        self.next = (self.next * 2).min(Self::MAX);
        d
    }

    fn reset(&mut self) {
        self.next = Self::FIRST;
    }
}

/// The reader thread's state; built on the caller's thread (no journal yet).
struct Reader {
    plan: Plan,
    table: FieldTable,
    jail_sets: JailSets,
    tx: mpsc::Sender<JournalBatch>,
    shared: Arc<Shared>,
    /// Where a (re)opened session starts: after the last entry read and
    /// flushed, else the start given at spawn.
    resume: Resume,
    /// Entries read and not sent yet.
    batch: Vec<JournalEntry>,
    batch_bytes: usize,
    /// The cursor of the last entry read, if no jail wanted it (so it is
    /// not the batch's last).
    unsent_cursor: Option<String>,
    /// The realtime of the last entry read.
    last_usec: u64,
}

/// sd-journal may cut data objects longer than this when reading them (it
/// then needs to decompress no more); one byte over the cap lets us tell
/// that MESSAGE was cut.
const DATA_THRESHOLD: usize = "MESSAGE=".len() + MAX_MESSAGE_BYTES + 1;

impl Reader {
    fn run(mut self, ready: std::sync::mpsc::SyncSender<Result<(), JournalError>>) {
        // A current-thread runtime only to wait for channel room *or* a stop
        // request (blocking_send could not be interrupted by stop()). Built
        // and dropped here: dropping a runtime inside the caller's async
        // context would panic.
        super::sigbus::guard_this_thread();
        let rt = match tokio::runtime::Builder::new_current_thread().build() {
            Ok(rt) => rt,
            Err(e) => {
                let _ = ready.send(Err(JournalError::Thread(e)));
                return;
            }
        };
        let mut session = match self.open_session() {
            Ok(s) => {
                let _ = ready.send(Ok(()));
                s
            }
            Err(e) => {
                let _ = ready.send(Err(e));
                return;
            }
        };
        drop(ready);
        info!(
            directory = ?self.plan.directory,
            jails = self.plan.jails.len(),
            "journal reader started"
        );
        let mut backoff = Backoff::new();
        loop {
            match self.follow(&rt, &mut session, &mut backoff) {
                Ok(Halt::Stop) => {
                    debug!("journal reader stopped");
                    return;
                }
                Ok(Halt::ReceiverClosed) => {
                    info!("journal entry receiver dropped; journal reader exits");
                    return;
                }
                Err(e) => {
                    Counters::bump(&self.shared.counters.reopened);
                    error!(error = %e, "journal reader failed; reopening the journal");
                }
            }
            drop(session);
            session = loop {
                let delay = backoff.next_delay();
                if self.sleep_unless_stopped(delay) {
                    return;
                }
                match self.open_session() {
                    Ok(s) => break s,
                    Err(e) => {
                        error!(error = %e, retry_in = ?backoff.next, "cannot reopen the journal")
                    }
                }
            };
            info!(resume = ?self.resume, "journal reopened");
        }
    }

    /// Sleep `delay`, returning early with `true` if a stop is requested.
    fn sleep_unless_stopped(&self, delay: Duration) -> bool {
        let timeout = Timespec::try_from(delay).ok();
        let mut fds = [PollFd::new(&self.shared.stop_fd, PollFlags::IN)];
        match rustix::event::poll(&mut fds, timeout.as_ref()) {
            Ok(_) => {}
            Err(e) => {
                // EINTR or worse: fall back to a plain sleep, still bounded.
                debug!(error = %e, "poll on the stop eventfd");
                std::thread::sleep(delay);
            }
        }
        self.shared.stopping()
    }

    /// (dev, inode) of the journal directory, `None` for the local journal.
    fn root_identity(&self) -> Result<Option<(u64, u64)>, JournalError> {
        use std::os::unix::fs::MetadataExt;
        let Some(dir) = &self.plan.directory else {
            return Ok(None);
        };
        match std::fs::metadata(dir) {
            Ok(m) => Ok(Some((m.dev(), m.ino()))),
            Err(e) => Err(JournalError::Open {
                directory: Some(dir.clone()),
                source: e.into(),
            }),
        }
    }

    fn watch_root(&self) -> Result<Option<OwnedFd>, JournalError> {
        use rustix::fs::inotify;
        let Some(dir) = &self.plan.directory else {
            return Ok(None);
        };
        let watch_err = |e: rustix::io::Errno| JournalError::Open {
            directory: Some(dir.clone()),
            source: io::Error::from(e).into(),
        };
        let fd = inotify::init(inotify::CreateFlags::CLOEXEC | inotify::CreateFlags::NONBLOCK)
            .map_err(watch_err)?;
        inotify::add_watch(
            &fd,
            dir.as_path(),
            inotify::WatchFlags::DELETE_SELF
                | inotify::WatchFlags::MOVE_SELF
                | inotify::WatchFlags::ONLYDIR,
        )
        .map_err(watch_err)?;
        Ok(Some(fd))
    }

    /// sd-journal watches the directory it opened, not its path: if the
    /// directory is removed or replaced (e.g. a collector recreates its
    /// output directory), it would never see the new one's files. Reopen.
    fn check_root(&self, session: &Session) -> Result<(), JournalError> {
        if session.root.is_some() && self.root_identity().ok().flatten() != session.root {
            return Err(JournalError::DirectoryReplaced {
                directory: self.plan.directory.clone().unwrap_or_default(),
            });
        }
        Ok(())
    }

    fn open_journal(&self) -> Result<Journal, JournalError> {
        let open_err = |source| JournalError::Open {
            directory: self.plan.directory.clone(),
            source,
        };
        match &self.plan.directory {
            Some(dir) => {
                use std::os::unix::ffi::OsStrExt;
                let c = CString::new(dir.as_os_str().as_bytes())
                    .map_err(|e| open_err(systemd::Error::new(io::ErrorKind::InvalidInput, e)))?;
                OpenDirectoryOptions::default()
                    .open_directory(c)
                    .map_err(open_err)
            }
            // Like journalctl: this machine's files, system services and
            // the kernel (sshd & co. log there); user journals excluded.
            None => OpenOptions::default()
                .system(true)
                .local_only(true)
                .open()
                .map_err(open_err),
        }
    }

    fn open_session(&mut self) -> Result<Session, JournalError> {
        // Whatever a failed session read but did not send is read again.
        self.batch.clear();
        self.batch_bytes = 0;
        self.unsent_cursor = None;
        let faults = super::sigbus::faults();
        // Before opening: a directory swapped in after this is noticed.
        let root = self.root_identity()?;
        let root_watch = self.watch_root()?;
        let mut journal = self.open_journal()?;
        journal
            .set_data_threshold(DATA_THRESHOLD)
            .map_err(sd("sd_journal_set_data_threshold"))?;
        // Set up the inotify watches before positioning, so nothing written
        // from now on can slip by before the first poll.
        let fd = journal.fd().map_err(sd("sd_journal_get_fd"))?;
        let skip = self.position(&mut journal)?;
        debug!(resume = ?self.resume, ?skip, "journal positioned");
        let session = Session {
            journal,
            fd,
            skip,
            root,
            root_watch,
            faults,
        };
        session.check_faults()?;
        Ok(session)
    }

    fn add_matches(&self, journal: &mut JournalRef) -> Result<(), JournalError> {
        for (n, group) in self.plan.groups.iter().enumerate() {
            if n > 0 {
                journal
                    .match_or()
                    .map_err(sd("sd_journal_add_disjunction"))?;
            }
            for (field, values) in group.terms() {
                for value in values {
                    journal
                        .match_add(field, value.as_slice())
                        .map_err(sd("sd_journal_add_match"))?;
                }
            }
        }
        Ok(())
    }

    /// Add the matches and seek to where reading resumes.
    fn position(&self, journal: &mut JournalRef) -> Result<Skip, JournalError> {
        match &self.resume {
            Resume::After { cursor, usec } => {
                // Checked before the matches go in: with them, an entry
                // that no jail matches any more would look vacuumed.
                let exists = cursor_exists(journal, cursor)?;
                let oldest = match exists {
                    Some(true) => None,
                    _ => oldest_entry(journal)?,
                };
                self.add_matches(journal)?;
                match (exists, usec) {
                    (Some(true), _) => {
                        journal
                            .seek_cursor(cursor.as_str())
                            .map_err(sd("sd_journal_seek_cursor"))?;
                        Ok(Skip::Cursor(cursor.clone()))
                    }
                    (_, Some(usec)) => {
                        match oldest.and_then(|o| Gap::between(cursor, *usec, &o)) {
                            Some(gap) => gap.report(),
                            None => warn!(
                                cursor = %cursor,
                                since = %timestamp_from_usec(*usec),
                                "the saved journal cursor is no longer in the journal (vacuumed?); \
                                 resuming after its timestamp, entries logged in that same \
                                 microsecond are skipped"
                            ),
                        }
                        journal
                            .seek_realtime_usec(*usec)
                            .map_err(sd("sd_journal_seek_realtime_usec"))?;
                        Ok(Skip::Through(*usec))
                    }
                    (_, None) => {
                        warn!(
                            cursor = %cursor,
                            since = %timestamp_from_usec(self.plan.since_usec),
                            "the saved journal cursor is unusable and no time was saved; \
                             reading from the start window instead"
                        );
                        journal
                            .seek_realtime_usec(self.plan.since_usec)
                            .map_err(sd("sd_journal_seek_realtime_usec"))?;
                        Ok(Skip::Nothing)
                    }
                }
            }
            Resume::Since { usec, skip_through } => {
                self.add_matches(journal)?;
                journal
                    .seek_realtime_usec(*usec)
                    .map_err(sd("sd_journal_seek_realtime_usec"))?;
                Ok(skip_through.map_or(Skip::Nothing, Skip::Through))
            }
        }
    }

    /// Read and deliver everything available, wait for more, and so on.
    fn follow(
        &mut self,
        rt: &tokio::runtime::Runtime,
        session: &mut Session,
        backoff: &mut Backoff,
    ) -> Result<Halt, JournalError> {
        loop {
            loop {
                if self.shared.stopping() {
                    return Ok(Halt::Stop);
                }
                let more = session.journal.next().map_err(sd("sd_journal_next"));
                session.check_faults()?;
                if more? == 0 {
                    break;
                }
                Counters::bump(&self.shared.counters.read);
                if self.skip(session)? {
                    continue;
                }
                let entry = self.collect(&mut session.journal);
                session.check_faults()?;
                if let Some(entry) = entry? {
                    self.batch_bytes += entry.line.len();
                    self.batch.push(entry);
                    if (self.batch.len() >= MAX_BATCH_ENTRIES
                        || self.batch_bytes >= MAX_BATCH_BYTES)
                        && let Some(halt) = self.flush(rt)
                    {
                        return Ok(halt);
                    }
                }
            }
            if let Some(halt) = self.flush(rt) {
                return Ok(halt);
            }
            // Caught up: this session works.
            backoff.reset();
            Counters::bump(&self.shared.counters.caught_up);
            let wake = self.wait(session);
            session.check_faults()?;
            let wake = wake?;
            if let Wake::Stop = wake {
                return Ok(Halt::Stop);
            }
            self.check_root(session)?;
            if let Wake::Invalidated = wake {
                Counters::bump(&self.shared.counters.invalidations);
                // Files were added, rotated or removed. sd-journal keeps its
                // place by itself, but re-seeking to the last cursor makes
                // the position explicit whatever the file set did. Not while
                // a skip is pending: then nothing was read since
                // positioning, and the seek still stands.
                if session.skip == Skip::Nothing
                    && let Resume::After { cursor, .. } = &self.resume
                {
                    session
                        .journal
                        .seek_cursor(cursor.as_str())
                        .map_err(sd("sd_journal_seek_cursor"))?;
                    session.skip = Skip::Cursor(cursor.clone());
                }
            }
        }
    }

    /// Whether the current entry was processed before (see [`Skip`]).
    fn skip(&self, session: &mut Session) -> Result<bool, JournalError> {
        match &session.skip {
            Skip::Nothing => Ok(false),
            Skip::Cursor(c) => {
                let same = session
                    .journal
                    .test_cursor(c.as_str())
                    .map_err(sd("sd_journal_test_cursor"))?;
                session.skip = Skip::Nothing;
                Ok(same)
            }
            Skip::Through(t) => {
                let usec = session
                    .journal
                    .timestamp_usec()
                    .map_err(sd("sd_journal_get_realtime_usec"))?;
                if usec <= *t {
                    Ok(true)
                } else {
                    session.skip = Skip::Nothing;
                    Ok(false)
                }
            }
        }
    }

    /// Read the current entry. `Ok(None)` for an entry no jail wants (the
    /// journal's filter should have kept it out) or one that is unreadable.
    fn collect(&mut self, journal: &mut JournalRef) -> Result<Option<JournalEntry>, JournalError> {
        let (usec, cursor) = match self.read_fields(journal) {
            Ok(v) => v,
            Err(e) => {
                let n = Counters::bump(&self.shared.counters.unreadable);
                // A corrupt file can hold many bad entries: don't flood.
                if n <= 10 || n.is_power_of_two() {
                    warn!(error = %e, unreadable = n, "skipping an unreadable journal entry");
                }
                return Ok(None);
            }
        };
        dispatch(&self.plan.jails, &self.table, &mut self.jail_sets);
        self.last_usec = usec;
        if self.jail_sets.scratch.is_empty() {
            // Read but not delivered: still where the next flush resumes.
            self.unsent_cursor = Some(cursor);
            return Ok(None);
        }
        self.unsent_cursor = None;
        {
            if self.table.message_truncated {
                Counters::bump(&self.shared.counters.truncated);
            }
            Ok(Some(JournalEntry {
                line: self.table.render(),
                time: timestamp_from_usec(usec),
                cursor,
                jails: self.jail_sets.intern(),
                extra: self.table.extras(&self.plan.extra_names),
                truncated: self.table.message_truncated || self.table.cut_by_journald(),
            }))
        }
    }

    fn read_fields(&mut self, journal: &mut JournalRef) -> Result<(u64, String), JournalError> {
        self.table.clear();
        journal.restart_data();
        while let Some(field) = journal
            .enumerate_data()
            .map_err(sd("sd_journal_enumerate_data"))?
        {
            if let Some(value) = field.value() {
                self.table.offer(field.name(), value);
            }
        }
        let usec = journal
            .timestamp_usec()
            .map_err(sd("sd_journal_get_realtime_usec"))?;
        let cursor = journal.cursor().map_err(sd("sd_journal_get_cursor"))?;
        Ok((usec, cursor))
    }

    /// Send the batch to the core, waiting for room if needed, and move
    /// the resume point past what was read. `Some` means stop.
    ///
    /// The resume point only moves here: if the session fails before a
    /// batch is sent, the reopened session reads its entries again.
    fn flush(&mut self, rt: &tokio::runtime::Runtime) -> Option<Halt> {
        use mpsc::error::TrySendError;
        let cursor = match (self.unsent_cursor.take(), self.batch.last()) {
            (Some(c), _) => c,
            (None, Some(last)) => last.cursor.clone(),
            (None, None) => return None,
        };
        let n = self.batch.len() as u64;
        self.batch_bytes = 0;
        let batch = std::mem::take(&mut self.batch);
        if n > 0 {
            match self.tx.try_send(batch) {
                Ok(()) => {}
                Err(TrySendError::Closed(_)) => return Some(Halt::ReceiverClosed),
                Err(TrySendError::Full(batch)) => {
                    Counters::bump(&self.shared.counters.backpressure_waits);
                    let (tx, cancel) = (&self.tx, &self.shared.cancel);
                    let outcome = rt.block_on(async {
                        tokio::select! {
                            biased;
                            () = cancel.cancelled() => Err(Halt::Stop),
                            sent = tx.send(batch) => sent.map_err(|_| Halt::ReceiverClosed),
                        }
                    });
                    if let Err(halt) = outcome {
                        return Some(halt);
                    }
                }
            }
            self.shared
                .counters
                .delivered
                .fetch_add(n, Ordering::Relaxed);
        }
        self.resume = Resume::After {
            cursor,
            usec: Some(self.last_usec),
        };
        None
    }

    /// Sleep until the journal changes or a stop is requested, then let
    /// sd-journal process what happened.
    fn wait(&mut self, session: &mut Session) -> Result<Wake, JournalError> {
        let mut timeout = journal_timeout(&session.journal)?;
        let mut released = false;
        // SAFETY: `session.fd` is the inotify fd owned by `session.journal`
        // (sd_journal_get_fd), which outlives this borrow: it is only closed
        // by sd_journal_close when the session is dropped.
        let journal_fd = unsafe { BorrowedFd::borrow_raw(session.fd) };
        let stop_fd = self.shared.stop_fd.as_fd();
        let root_fd = session.root_watch.as_ref().map(|w| w.as_fd());
        loop {
            let mut fds = [
                PollFd::from_borrowed_fd(journal_fd, PollFlags::IN),
                PollFd::from_borrowed_fd(stop_fd, PollFlags::IN),
                PollFd::from_borrowed_fd(root_fd.unwrap_or(stop_fd), PollFlags::IN),
            ];
            let n = if root_fd.is_some() { 3 } else { 2 };
            // Nothing to read for a while: give back the pages of the
            // journal files read so far (this thread maps them), once.
            let idle = Timespec::try_from(RELEASE_PAGES_AFTER)
                .ok()
                .filter(|idle| !released && timeout.is_none_or(|t| earlier(idle, &t)));
            match rustix::event::poll(&mut fds[..n], idle.as_ref().or(timeout.as_ref())) {
                Ok(0) if idle.is_some() => {
                    memory::release_file_pages(FilePages::Journal);
                    released = true;
                    timeout = journal_timeout(&session.journal)?;
                }
                Ok(_) => break,
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => return Err(JournalError::Poll(e.into())),
            }
        }
        if self.shared.stopping() {
            return Ok(Wake::Stop);
        }
        if let Some(watch) = root_fd {
            // Drain; the caller compares the directory's identity.
            let mut buf = [0u8; 4096];
            while matches!(rustix::io::read(watch, &mut buf), Ok(n) if n > 0) {}
        }
        match session
            .journal
            .process()
            .map_err(sd("sd_journal_process"))?
        {
            JournalWaitResult::Nop | JournalWaitResult::Append => Ok(Wake::Changed),
            JournalWaitResult::Invalidate => Ok(Wake::Invalidated),
        }
    }
}

enum Wake {
    Stop,
    Changed,
    Invalidated,
}

/// How long the reader waits with nothing to read before it gives back the
/// journal pages it mapped (the daemon's idle release, in this thread).
const RELEASE_PAGES_AFTER: Duration = Duration::from_secs(20);

/// Whether `a` is shorter than `b`.
fn earlier(a: &Timespec, b: &Timespec) -> bool {
    (a.tv_sec, a.tv_nsec) < (b.tv_sec, b.tv_nsec)
}

/// `Some(true)` if the entry `cursor` names is in the journal, `Some(false)`
/// if not, `None` if the cursor cannot be parsed. Leaves the journal at some
/// position; the caller re-seeks.
fn cursor_exists(journal: &mut JournalRef, cursor: &str) -> Result<Option<bool>, JournalError> {
    match journal.seek_cursor(cursor) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::InvalidInput => return Ok(None),
        Err(e) => return Err(sd("sd_journal_seek_cursor")(e)),
    }
    if journal.next().map_err(sd("sd_journal_next"))? == 0 {
        return Ok(Some(false));
    }
    match journal.test_cursor(cursor) {
        Ok(same) => Ok(Some(same)),
        Err(e) if e.kind() == io::ErrorKind::InvalidInput => Ok(None),
        Err(e) => Err(sd("sd_journal_test_cursor")(e)),
    }
}

/// The oldest entry of the journal (no matches applied): its realtime
/// and cursor.
fn oldest_entry(journal: &mut JournalRef) -> Result<Option<(u64, String)>, JournalError> {
    journal.seek_head().map_err(sd("sd_journal_seek_head"))?;
    if journal.next().map_err(sd("sd_journal_next"))? == 0 {
        return Ok(None);
    }
    let usec = journal
        .timestamp_usec()
        .map_err(sd("sd_journal_get_realtime_usec"))?;
    let cursor = journal.cursor().map_err(sd("sd_journal_get_cursor"))?;
    Ok(Some((usec, cursor)))
}

/// Entries vacuumed away before they were read: between the saved
/// cursor's entry and the oldest entry left in the journal.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Gap {
    /// The saved cursor's realtime, and the oldest entry's.
    from_usec: u64,
    until_usec: u64,
    /// Entries of every unit in between, when both cursors carry sequence
    /// numbers of the same journal (they do unless journald lost its
    /// state, e.g. a new machine ID).
    entries: Option<u64>,
}

impl Gap {
    /// The gap left when the entry of `cursor` (at `usec`) is gone and
    /// `oldest` is the journal's oldest entry; `None` when nothing after
    /// the cursor is known to be missing.
    fn between(cursor: &str, usec: u64, oldest: &(u64, String)) -> Option<Gap> {
        let (until_usec, head) = oldest;
        if *until_usec <= usec {
            // Entries around the cursor's time are still there: only the
            // cursor's own entry went (or it came from another journal).
            return None;
        }
        let entries = match (cursor_seqnum(cursor), cursor_seqnum(head)) {
            (Some((id, saved)), Some((head_id, first))) if id == head_id => {
                Some(first.saturating_sub(saved).saturating_sub(1))
            }
            _ => None,
        };
        if entries == Some(0) {
            // The very next entry is still there: nothing lost.
            return None;
        }
        Some(Gap {
            from_usec: usec,
            until_usec: *until_usec,
            entries,
        })
    }

    /// Say so in the journal (see [`crate::events::MESSAGE_ID_JOURNAL_GAP`]).
    fn report(&self) {
        let from = timestamp_from_usec(self.from_usec);
        let until = timestamp_from_usec(self.until_usec);
        let span = Duration::from_micros(self.until_usec - self.from_usec);
        let span = crate::config::duration::format_duration(span);
        let how_many = match self.entries {
            Some(n) => format!("{n} entries (of every unit)"),
            None => "an unknown number of entries".to_string(),
        };
        warn!(
            message_id = crate::events::MESSAGE_ID_JOURNAL_GAP,
            jailwarden_skipped_entries = self
                .entries
                .map_or(-1, |n| i64::try_from(n).unwrap_or(i64::MAX)),
            jailwarden_skipped_usec = self.until_usec - self.from_usec,
            "the saved journal cursor was vacuumed away: {how_many} logged over {span} \
             (from {from} until {until}) were never read; resuming from the oldest entry left"
        );
    }
}

/// The sequence number ID and number (`s=`, `i=`) of a cursor.
fn cursor_seqnum(cursor: &str) -> Option<(&str, u64)> {
    let mut id = None;
    let mut num = None;
    for part in cursor.split(';') {
        if let Some(v) = part.strip_prefix("s=") {
            id = Some(v);
        } else if let Some(v) = part.strip_prefix("i=") {
            num = u64::from_str_radix(v, 16).ok();
        }
    }
    Some((id?, num?))
}

/// How long poll may sleep: forever, unless sd-journal says its files are
/// on a network file system, where inotify sees no remote changes and it
/// needs to look at the files itself (`sd_journal_get_timeout`).
fn journal_timeout(journal: &JournalRef) -> Result<Option<Timespec>, JournalError> {
    let mut deadline_usec: u64 = 0;
    // SAFETY: `as_ptr` is the live sd_journal of `journal`, used on its own
    // thread; `deadline_usec` is a valid out pointer for the call.
    let r = unsafe {
        libsystemd_sys::journal::sd_journal_get_timeout(journal.as_ptr(), &mut deadline_usec)
    };
    if r < 0 {
        return Err(JournalError::Journal {
            op: "sd_journal_get_timeout",
            source: systemd::Error::from_raw_os_error(-r),
        });
    }
    if r == 0 || deadline_usec == u64::MAX {
        return Ok(None);
    }
    // The deadline is absolute CLOCK_MONOTONIC.
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `now` is a valid, writable timespec; CLOCK_MONOTONIC always exists.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut now) };
    let now_usec = u64::try_from(now.tv_sec).unwrap_or(0) * 1_000_000
        + u64::try_from(now.tv_nsec).unwrap_or(0) / 1_000;
    let rel = Duration::from_micros(deadline_usec.saturating_sub(now_usec));
    Ok(Timespec::try_from(rel).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_has_fail2ban_layout() {
        let l = |h: Option<&str>, i: Option<&str>, p: Option<&str>, m: &str| {
            String::from_utf8(render_line(
                h.map(str::as_bytes),
                i.map(str::as_bytes),
                p.map(str::as_bytes),
                m.as_bytes(),
            ))
            .unwrap()
        };
        let cases = [
            (
                (Some("vm"), Some("sshd"), Some("42"), "Failed"),
                "vm sshd[42]: Failed",
            ),
            (
                (Some("vm"), Some("sshd"), None, "Failed"),
                "vm sshd: Failed",
            ),
            (
                (Some("vm"), Some("sshd"), Some(""), "Failed"),
                "vm sshd: Failed",
            ),
            ((Some("vm"), None, Some("42"), "Failed"), "vm Failed"),
            (
                (None, Some("sshd"), Some("42"), "Failed"),
                "sshd[42]: Failed",
            ),
            ((Some(""), Some(""), None, "Failed"), "Failed"),
            ((Some("vm"), Some("sshd"), Some("42"), ""), "vm sshd[42]: "),
        ];
        for ((h, i, p, m), want) in cases {
            assert_eq!(l(h, i, p, m), want, "{h:?} {i:?} {p:?} {m:?}");
        }
    }

    #[test]
    fn line_keeps_raw_bytes() {
        let line = render_line(Some(b"h"), Some(b"x"), None, b"\xff\x00bad\xfe");
        assert_eq!(line, b"h x: \xff\x00bad\xfe");
    }

    #[test]
    fn cursor_realtime_is_parsed() {
        let c = "s=f69e6baec81944548063cc2506199dc3;i=3;b=83a24da394374c72b8123341752b1ba4;\
                 m=300749da;t=661164d6077ba;x=55b3ef168b5b5ca0";
        assert_eq!(cursor_realtime(c), Some(0x661164d6077ba));
        assert_eq!(cursor_realtime("garbage"), None);
        assert_eq!(cursor_realtime("t=zz"), None);
    }

    #[test]
    fn gaps_are_measured_by_sequence_numbers() {
        let c = |i: u64, t: u64| format!("s=aa;i={i:x};b=bb;m=1;t={t:x};x=1");
        assert_eq!(cursor_seqnum(&c(0x2a, 5)), Some(("aa", 0x2a)));
        assert_eq!(cursor_seqnum("t=5"), None);
        // Entries 11..=19 went.
        assert_eq!(
            Gap::between(&c(10, 100), 100, &(200, c(20, 200))),
            Some(Gap {
                from_usec: 100,
                until_usec: 200,
                entries: Some(9)
            })
        );
        // The very next entry is there: nothing lost.
        assert_eq!(Gap::between(&c(10, 100), 100, &(200, c(11, 200))), None);
        // The journal still reaches back past the cursor's time.
        assert_eq!(Gap::between(&c(10, 100), 100, &(50, c(3, 50))), None);
        // Another journal's numbers: a gap of unknown size.
        let other = "s=cc;i=1;b=bb;m=1;t=c8;x=1".to_string();
        assert_eq!(
            Gap::between(&c(10, 100), 100, &(200, other)).map(|g| g.entries),
            Some(None)
        );
    }

    #[test]
    fn timestamps_clamp_instead_of_failing() {
        assert_eq!(timestamp_from_usec(0), Timestamp::UNIX_EPOCH);
        assert_eq!(timestamp_from_usec(u64::MAX), Timestamp::MAX);
        let t = timestamp_from_usec(1_700_000_000_123_456);
        assert_eq!(usec_from_timestamp(t), 1_700_000_000_123_456);
    }

    fn id(name: &str) -> JailId {
        JailId::from(name)
    }

    fn plan(jails: &[(&str, &[&str])], extra: &[&str]) -> Plan {
        Plan::new(&JournalOptions {
            directory: None,
            jails: jails
                .iter()
                .map(|(id, terms)| (JailId::from(*id), JournalMatch::parse(terms).unwrap()))
                .collect(),
            extra_fields: extra.iter().map(|s| s.to_string()).collect(),
            start: StartAt::default(),
            channel_capacity: 1,
        })
        .unwrap()
    }

    fn table(plan: &Plan, fields: &[(&str, &[u8])]) -> FieldTable {
        let mut t = FieldTable::new(plan);
        t.clear();
        for (n, v) in fields {
            t.offer(n.as_bytes(), v);
        }
        t
    }

    #[test]
    fn dispatch_goes_to_every_matching_jail() {
        let p = plan(
            &[
                (
                    "j1",
                    &["_SYSTEMD_UNIT=ssh.service", "+", "SYSLOG_IDENTIFIER=sshd"],
                ),
                ("j2", &["SYSLOG_IDENTIFIER=sshd", "PRIORITY=5"]),
                ("j3", &[]),
                ("j4", &["_SYSTEMD_UNIT=nginx.service"]),
            ],
            &[],
        );
        // The empty jail is not a journal jail; duplicate groups are merged.
        assert_eq!(p.jails.len(), 3);
        assert_eq!(p.groups.len(), 4);
        let mut sets = JailSets::default();
        type Fields<'a> = &'a [(&'a str, &'a [u8])];
        let cases: &[(Fields, &[JailId])] = &[
            (
                &[("SYSLOG_IDENTIFIER", b"sshd"), ("PRIORITY", b"5")],
                &[id("j1"), id("j2")],
            ),
            (
                &[("SYSLOG_IDENTIFIER", b"sshd"), ("PRIORITY", b"6")],
                &[id("j1")],
            ),
            (&[("_SYSTEMD_UNIT", b"ssh.service")], &[id("j1")]),
            (&[("_SYSTEMD_UNIT", b"nginx.service")], &[id("j4")]),
            (&[("_SYSTEMD_UNIT", b"cron.service")], &[]),
        ];
        for (fields, want) in cases {
            dispatch(&p.jails, &table(&p, fields), &mut sets);
            assert_eq!(sets.scratch, *want, "{fields:?}");
        }
    }

    #[test]
    fn jail_sets_are_shared() {
        let mut sets = JailSets {
            scratch: vec![id("j1"), id("j2")],
            ..JailSets::default()
        };
        let a = sets.intern();
        let b = sets.intern();
        assert!(Arc::ptr_eq(&a, &b));
        sets.scratch = vec![id("j2")];
        assert_eq!(*sets.intern(), [id("j2")]);
    }

    #[test]
    fn table_renders_with_fallbacks_and_caps_message() {
        let p = plan(
            &[("j1", &["SYSLOG_IDENTIFIER=sshd"])],
            &["MESSAGE_ID", "JAILWARDEN_ADDRESS"],
        );
        let t = table(
            &p,
            &[
                ("MESSAGE", b"hello"),
                ("_HOSTNAME", b"vm"),
                ("_COMM", b"sshd-session"),
                ("SYSLOG_PID", b"7"),
                ("MESSAGE", b"second value ignored"),
                ("JAILWARDEN_ADDRESS", b"192.0.2.1"),
            ],
        );
        assert_eq!(t.render(), b"vm sshd-session[7]: hello");
        let extra = t.extras(&p.extra_names);
        assert_eq!(extra.get("JAILWARDEN_ADDRESS"), Some(&b"192.0.2.1"[..]));
        assert_eq!(extra.get("MESSAGE_ID"), None);
        assert_eq!(extra.get("OTHER"), None);
        assert_eq!(extra.iter().count(), 1);

        let big = vec![b'x'; MAX_MESSAGE_BYTES + 10];
        let t = table(
            &p,
            &[
                ("SYSLOG_IDENTIFIER", b"sshd"),
                ("_PID", b"9"),
                ("MESSAGE", &big),
            ],
        );
        assert!(t.message_truncated);
        assert_eq!(t.render().len(), "sshd[9]: ".len() + MAX_MESSAGE_BYTES);
        // No MESSAGE at all still renders.
        assert_eq!(table(&p, &[("SYSLOG_IDENTIFIER", b"x")]).render(), b"x: ");
    }

    #[test]
    fn bad_options_are_refused() {
        let opts = |jails: Vec<(JailId, JournalMatch)>, extra: &[&str]| JournalOptions {
            directory: None,
            jails,
            extra_fields: extra.iter().map(|s| s.to_string()).collect(),
            start: StartAt::default(),
            channel_capacity: 4,
        };
        assert!(matches!(
            Plan::new(&opts(vec![(id("j1"), JournalMatch::default())], &[])),
            Err(JournalError::NoJournalJails)
        ));
        let m = JournalMatch::parse(&["A=b"]).unwrap();
        assert!(matches!(
            Plan::new(&opts(vec![(id("j1"), m)], &["lower"])),
            Err(JournalError::BadFieldName(_))
        ));
    }

    #[test]
    fn start_positions() {
        let cursor = "s=1;i=2;b=3;m=4;t=10;x=5".to_string();
        let t = Timestamp::from_microsecond(99).unwrap();
        let start = |cursor: Option<&String>, last_time| StartAt {
            cursor: cursor.cloned(),
            last_time,
            since: Duration::from_secs(60),
        };
        assert_eq!(
            Resume::from_start(&start(Some(&cursor), Some(t)), 5),
            Resume::After {
                cursor: cursor.clone(),
                usec: Some(99)
            }
        );
        assert_eq!(
            Resume::from_start(&start(Some(&cursor), None), 5),
            Resume::After {
                cursor: cursor.clone(),
                usec: Some(16)
            }
        );
        assert_eq!(
            Resume::from_start(&start(None, None), 5),
            Resume::Since {
                usec: 5,
                skip_through: None
            }
        );
        assert_eq!(
            Resume::from_start(&start(None, Some(t)), 5),
            Resume::Since {
                usec: 5,
                skip_through: Some(99)
            }
        );
    }

    #[test]
    fn backoff_doubles_up_to_a_cap() {
        let mut b = Backoff::new();
        assert_eq!(b.next_delay(), Duration::from_millis(100));
        assert_eq!(b.next_delay(), Duration::from_millis(200));
        for _ in 0..20 {
            b.next_delay();
        }
        assert_eq!(b.next_delay(), Backoff::MAX);
        b.reset();
        assert_eq!(b.next_delay(), Backoff::FIRST);
    }
}
