//! The file source: follows the log files of services that still write them
//! (Apache, lighttpd, vsftpd...) and hands their lines to the core.
//!
//! # What it guarantees
//!
//! - Driven by inotify only, no timed polling: a watch on every open file
//!   (growth, truncation, rename, deletion) and on every existing directory
//!   a `logpath` pattern passes through, from `/` down (files and
//!   directories appearing, being renamed or deleted). A pattern whose
//!   directory does not exist yet is picked up when it is created, since its
//!   nearest existing ancestor is watched.
//! - Files are identified by `(device, inode)`, not by path. A file renamed
//!   by rotation (`access.log` → `access.log.1`) stays open and is read on
//!   through its descriptor: lines written to it after the rename, before or
//!   after its successor is created, are not lost. It is closed, after
//!   reading what is left, when it is deleted or when its successor is
//!   rotated away in turn (one previous generation per path is followed,
//!   which is all a service ever writes to after logrotate's `postrotate`).
//! - A file shorter than the offset read (copytruncate), or whose first bytes
//!   changed, is read again from its beginning.
//! - Only complete lines are delivered, without their `\n`, as raw bytes. An
//!   incomplete last line is held until its newline arrives; at most
//!   `max_line` bytes of a line are kept, longer lines are delivered
//!   truncated (flagged, counted in [`FileStats`], logged) so memory stays
//!   bounded whatever is written (by `channel_capacity × max_line` for the
//!   lines in flight).
//! - Each line carries its [`FilePosition`]: the file's identity, a hash of
//!   its first bytes, and the offset just after the line. The caller commits
//!   it in the same transaction as what the line produced ("checkpoint
//!   follows processing") and passes the saved positions back on start.
//!
//! # Where a file starts
//!
//! - A saved position of the same file (identity and head hash match) →
//!   resume there, under whatever matching name the file now has. Saved
//!   files rotated away while the daemon was stopped are looked for by inode
//!   in the directory of their saved path, and read on from their position.
//! - A file that appears while running → from its beginning.
//! - At start, a file without a position of its own, matching a pattern some
//!   saved position matches → from its beginning: the pattern was followed
//!   before, so the file was created since (rotated while stopped). For this
//!   to hold, the caller stores [`FileHandle::start_positions`] at once, so
//!   that every file open at start has a position of its own.
//! - Otherwise this is the first start for that pattern → from the end of
//!   the file (the start of its last, incomplete line if any): history is
//!   not replayed.
//!
//! # Limitations
//!
//! - A line written to a rotated file after the file that replaced it was
//!   rotated away too is lost, and so is one written to a deleted file after
//!   the source saw the deletion. Lines written while the daemon was stopped
//!   are lost in a file moved to another directory (logrotate's `olddir`), or
//!   rotated away without the store having a position for it (it appeared
//!   and was rotated before its first line was delivered).
//! - A glob that also matches compressed rotations (`access.log*` and
//!   `access.log.2.gz`) reads them as new files: patterns should not.
//! - A truncation followed, before we look, by rewriting past our offset the
//!   very same first bytes, goes unnoticed (real logs start with a
//!   timestamp).
//! - The incomplete last line of a file that is closed is dropped.
//! - Globs (`*`, `?`, `[...]`) may appear in any component, match one
//!   component each (`**` is not recursive) and never match names that are
//!   not UTF-8 or start with a dot. Relative patterns are resolved against
//!   the working directory at [`FileSource::spawn`].
//! - An unreadable file (EACCES) is warned about and retried when its
//!   permissions change (the directory watch reports it); it is then new to
//!   the source and read from its saved position or its beginning.

mod pattern;
mod tailer;

#[cfg(test)]
mod model_tests;
#[cfg(test)]
mod tests;

use std::fs::Metadata;
use std::future::Future;
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll, Wake, Waker};

use rustix::event::{EventfdFlags, PollFd, PollFlags};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tracing::{debug, error};

use self::tailer::{PumpError, Sink, Startup, Stopped, Tailer};
use super::JailId;

/// Default cap on a delivered line, in bytes. Real log lines are far
/// shorter; the cap exists so a hostile or broken writer cannot make us
/// buffer without bound.
pub const DEFAULT_MAX_LINE: usize = 64 * 1024;

/// Default capacity of the line channel: enough to absorb a burst while the
/// core works, small enough that a stalled core stops the reading (and with
/// it the positions) instead of growing memory.
pub const DEFAULT_CHANNEL_CAPACITY: usize = 1024;

/// What to follow and where to resume; see [`FileSource::spawn`].
#[derive(Debug, Clone)]
pub struct FileOptions {
    /// Per jail, its `logpath` patterns (paths, possibly with globs). A file
    /// several jails ask for is read once and its lines name all of them.
    pub jails: Vec<(JailId, Vec<String>)>,
    /// The positions saved from the previous run's lines (the latest per
    /// [`FileId`]); empty on first start.
    pub saved: Vec<SavedPosition>,
    /// Capacity of the line channel (at least 1).
    pub channel_capacity: usize,
    /// Longest line delivered whole, in bytes (at least 1).
    pub max_line: usize,
}

impl FileOptions {
    /// Options for `jails` with no saved positions and default limits.
    pub fn new(jails: Vec<(JailId, Vec<String>)>) -> Self {
        FileOptions {
            jails,
            saved: Vec::new(),
            channel_capacity: DEFAULT_CHANNEL_CAPACITY,
            max_line: DEFAULT_MAX_LINE,
        }
    }
}

/// A file's identity: stable across renames, unlike its path. The key to
/// store positions under.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct FileId {
    /// `st_dev`.
    pub dev: u64,
    /// `st_ino`.
    pub ino: u64,
}

impl FileId {
    fn of(meta: &Metadata) -> Self {
        FileId {
            dev: meta.dev(),
            ino: meta.ino(),
        }
    }
}

/// A point in a file, just after a delivered line. Plain integers so that a
/// store can keep it in SQLite columns (the `u64`s bit-cast to `i64`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct FilePosition {
    /// Device of the file.
    pub dev: u64,
    /// Inode of the file.
    pub ino: u64,
    /// How many leading bytes `head_hash` covers: `min(256, offset)`.
    pub head_len: u32,
    /// Hash of the file's first `head_len` bytes. Inode numbers are reused
    /// once a file is deleted; this tells the new file from the old one.
    pub head_hash: u64,
    /// Byte offset just after the line's `\n`: where to resume.
    pub offset: u64,
}

impl FilePosition {
    /// The file this position is in.
    pub fn id(&self) -> FileId {
        FileId {
            dev: self.dev,
            ino: self.ino,
        }
    }
}

/// A position as stored between runs: with the path of the line that
/// produced it, which tells which patterns were followed before and where to
/// look for the file if it was rotated while the daemon was stopped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavedPosition {
    /// [`FileLine::path`] of the line.
    pub path: PathBuf,
    /// [`FileLine::position`] of the line.
    pub position: FilePosition,
}

/// One complete line of a log file.
#[derive(Debug, Clone)]
pub struct FileLine {
    /// The line without its `\n`, as written (not necessarily UTF-8), cut to
    /// `max_line` bytes.
    pub bytes: Vec<u8>,
    /// The matching path the file was found at; for a file rotated away, the
    /// path it had before.
    pub path: Arc<Path>,
    /// The jails whose patterns match `path`.
    pub jails: Arc<[JailId]>,
    /// Where the line ends: commit it with what the line produced.
    pub position: FilePosition,
    /// The line was longer than `max_line` and cut.
    pub truncated: bool,
}

impl FileLine {
    /// What to store so that the next run resumes after this line.
    pub fn saved_position(&self) -> SavedPosition {
        SavedPosition {
            path: self.path.to_path_buf(),
            position: self.position,
        }
    }
}

/// Counters shared between the source's thread and its handle.
#[derive(Debug, Default)]
struct Stats {
    lines: AtomicU64,
    bytes: AtomicU64,
    truncated_lines: AtomicU64,
    files: AtomicU64,
    /// Bytes in the open files not read yet (as of each file's last read).
    left: AtomicU64,
}

/// A snapshot of the source's counters, for status output.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FileStats {
    /// Lines delivered.
    pub lines: u64,
    /// Bytes read.
    pub bytes: u64,
    /// Lines delivered truncated (longer than `max_line`).
    pub truncated_lines: u64,
    /// Files open now (rotated ones still being read included).
    pub open_files: u64,
    /// Bytes in the open files not read yet, as of each file's last read:
    /// a backlog's size while one is read, 0 once caught up.
    pub bytes_left: u64,
}

/// Why the file source could not start or had to stop.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FileSourceError {
    /// A `logpath` entry is not a usable pattern.
    #[error("logpath {pattern:?}: {reason}")]
    Pattern {
        /// The entry as configured.
        pattern: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The inotify instance could not be created (`fs.inotify.max_user_instances`?).
    #[error("cannot create an inotify instance")]
    Inotify(#[source] io::Error),
    /// The eventfd that wakes the thread to stop could not be created.
    #[error("cannot create the file source's wake-up eventfd")]
    Wake(#[source] io::Error),
    /// The thread could not be started.
    #[error("cannot start the file source thread")]
    Thread(#[source] io::Error),
    /// Reading the inotify queue failed.
    #[error("reading inotify events failed")]
    Events(#[source] io::Error),
    /// Waiting for inotify events failed.
    #[error("waiting for inotify events failed")]
    Wait(#[source] io::Error),
    /// The thread panicked (a bug); the panic was printed.
    #[error("the file source thread panicked")]
    Panicked,
}

/// The file source; see the module documentation.
#[derive(Debug)]
pub struct FileSource;

impl FileSource {
    /// Starts following the files `opts.jails` name.
    ///
    /// The patterns are parsed, the watches set and the files matched now
    /// opened (and their starting points chosen) before this returns, so
    /// configuration errors come back here and nothing written from now on
    /// is missed; these are blocking file-system calls, a handful per
    /// pattern. Reading happens on a dedicated thread: file reads block, and
    /// a thread makes the bounded channel's backpressure simple (it waits
    /// while the channel is full, and so do the positions).
    ///
    /// The receiver yields lines until [`FileHandle::stop`] or a fatal error
    /// (logged, and returned by `stop`); it ending means the source stopped.
    pub fn spawn(
        opts: FileOptions,
    ) -> Result<(FileHandle, mpsc::Receiver<FileLine>), FileSourceError> {
        let stats = Arc::new(Stats::default());
        let (tailer, startup) =
            Tailer::new(opts.jails, opts.saved, opts.max_line.max(1), stats.clone())?;
        let wake = rustix::event::eventfd(0, EventfdFlags::CLOEXEC | EventfdFlags::NONBLOCK)
            .map_err(|e| FileSourceError::Wake(e.into()))?;
        let wake = Arc::new(wake);
        let cancel = CancellationToken::new();
        let (tx, rx) = mpsc::channel(opts.channel_capacity.max(1));
        let (done_tx, done_rx) = oneshot::channel();
        let sink = ChannelSink {
            tx,
            cancel: cancel.clone(),
        };
        let (thread_cancel, thread_wake) = (cancel.clone(), wake.clone());
        std::thread::Builder::new()
            .name("jw-file-source".into())
            .spawn(move || {
                let result = run(tailer, sink, &thread_cancel, &thread_wake);
                if let Err(e) = &result {
                    error!("file source stopped: {e}");
                }
                // The tailer (files, watches) is dropped by now: `stop`
                // returning means everything is closed.
                let _ = done_tx.send(result);
            })
            .map_err(FileSourceError::Thread)?;
        Ok((
            FileHandle {
                stopper: Stopper { cancel, wake },
                done: Some(done_rx),
                stats,
                startup,
            },
            rx,
        ))
    }
}

/// Controls a running file source. Dropping it stops the source too, without
/// waiting.
#[derive(Debug)]
pub struct FileHandle {
    stopper: Stopper,
    done: Option<oneshot::Receiver<Result<(), FileSourceError>>>,
    stats: Arc<Stats>,
    startup: Startup,
}

impl FileHandle {
    /// The saved positions that matched no file at start: the files are
    /// gone (or replaced), so the store may forget them.
    pub fn unmatched_saved(&self) -> &[SavedPosition] {
        &self.startup.unmatched
    }

    /// Where each file open at start is read from. Store these right after
    /// [`FileSource::spawn`], before the first line: no line before them will
    /// be delivered, so committing them loses nothing, and it gives every
    /// file a position of its own. Otherwise a file started at its end that
    /// stays quiet until the next restart would look new then (a file under
    /// a followed pattern without a position) and be read from its
    /// beginning, replaying old history.
    pub fn start_positions(&self) -> &[SavedPosition] {
        &self.startup.starts
    }

    /// The counters now.
    pub fn stats(&self) -> FileStats {
        FileStats {
            lines: self.stats.lines.load(Ordering::Relaxed),
            bytes: self.stats.bytes.load(Ordering::Relaxed),
            truncated_lines: self.stats.truncated_lines.load(Ordering::Relaxed),
            open_files: self.stats.files.load(Ordering::Relaxed),
            bytes_left: self.stats.left.load(Ordering::Relaxed),
        }
    }

    /// Stops the source and waits until its thread has closed every file.
    /// Works even while the channel is full and nobody receives. Returns the
    /// error that stopped it earlier, if one did.
    pub async fn stop(mut self) -> Result<(), FileSourceError> {
        self.stopper.stop();
        match self.done.take() {
            Some(done) => done.await.unwrap_or(Err(FileSourceError::Panicked)),
            None => Ok(()),
        }
    }
}

/// Asks the thread to stop: the token interrupts a blocked send, the eventfd
/// a blocked `poll`.
#[derive(Debug)]
struct Stopper {
    cancel: CancellationToken,
    wake: Arc<OwnedFd>,
}

impl Stopper {
    fn stop(&self) {
        self.cancel.cancel();
        // Fails only if the counter would overflow, i.e. it is already set.
        let _ = rustix::io::write(&*self.wake, &1u64.to_ne_bytes());
    }
}

impl Drop for Stopper {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The thread's loop: pump while there is work, otherwise wait for inotify
/// or a stop.
fn run(
    mut tailer: Tailer,
    mut sink: ChannelSink,
    cancel: &CancellationToken,
    wake: &OwnedFd,
) -> Result<(), FileSourceError> {
    let mut more = true;
    loop {
        if cancel.is_cancelled() {
            return Ok(());
        }
        if !more {
            let inotify = tailer.fd();
            let mut fds = [
                PollFd::new(&inotify, PollFlags::IN),
                PollFd::new(wake, PollFlags::IN),
            ];
            match rustix::event::poll(&mut fds, None) {
                Ok(_) | Err(rustix::io::Errno::INTR) => {}
                Err(e) => return Err(FileSourceError::Wait(e.into())),
            }
            if cancel.is_cancelled() {
                return Ok(());
            }
        }
        more = match tailer.pump(&mut sink) {
            Ok(more) => more,
            Err(PumpError::Stopped) => {
                debug!("file source stopping: stop requested or receiver dropped");
                return Ok(());
            }
            Err(PumpError::Events(e)) => return Err(FileSourceError::Events(e)),
        };
    }
}

/// Sends lines on the bounded channel, waiting while it is full unless a stop
/// is requested.
struct ChannelSink {
    tx: mpsc::Sender<FileLine>,
    cancel: CancellationToken,
}

impl Sink for ChannelSink {
    fn deliver(&mut self, line: FileLine) -> Result<(), Stopped> {
        // Checked per line so that a stop does not wait for a long backlog.
        if self.cancel.is_cancelled() {
            return Err(Stopped);
        }
        match self.tx.try_send(line) {
            Ok(()) => Ok(()),
            Err(mpsc::error::TrySendError::Closed(_)) => Err(Stopped),
            Err(mpsc::error::TrySendError::Full(line)) => {
                // Wait for half the channel to be free, not for one slot:
                // a backlog would otherwise wake this thread (and the core
                // this thread) once per line. The permits go back at once;
                // the lines after this one take them with `try_send`.
                let (tx, cancel) = (&self.tx, &self.cancel);
                let room = (tx.max_capacity() / 2).max(1);
                block_on(async move {
                    tokio::select! {
                        biased;
                        () = cancel.cancelled() => Err(Stopped),
                        permits = tx.reserve_many(room) => permits.map(drop).map_err(|_| Stopped),
                    }
                })?;
                match self.tx.try_send(line) {
                    Ok(()) => Ok(()),
                    Err(mpsc::error::TrySendError::Closed(_)) => Err(Stopped),
                    Err(mpsc::error::TrySendError::Full(line)) => {
                        let (tx, cancel) = (&self.tx, &self.cancel);
                        block_on(async move {
                            tokio::select! {
                                biased;
                                () = cancel.cancelled() => Err(Stopped),
                                sent = tx.send(line) => sent.map_err(|_| Stopped),
                            }
                        })
                    }
                }
            }
        }
    }
}

/// Runs a future on this (non-runtime) thread, parking between polls. The
/// futures it runs (a channel send, a cancellation) need no reactor, so
/// this spares the source a runtime of its own or a handle to the daemon's.
fn block_on<F: Future>(fut: F) -> F::Output {
    struct Unpark(std::thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
        fn wake_by_ref(self: &Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut fut = pin!(fut);
    loop {
        if let Poll::Ready(out) = fut.as_mut().poll(&mut cx) {
            return out;
        }
        std::thread::park();
    }
}
