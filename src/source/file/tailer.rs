//! The synchronous core of the file source: one inotify instance, the
//! directory watches the patterns need, and the open files.
//!
//! [`Tailer::pump`] drains the pending inotify events, rescans the patterns
//! when a directory event may have changed what they match, and reads every
//! file that may have grown, handing complete lines to a [`Sink`]. It never
//! blocks on inotify, so the thread in `file.rs` decides when to wait and the
//! property tests can interleave file-system actions and pumps exactly as
//! they like.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fs::{File, Metadata};
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use inotify::{EventMask, Inotify, WatchDescriptor, WatchMask};
use tracing::{debug, info, warn};

use super::pattern::{LogPattern, is_absent};
use super::{FileId, FileLine, FilePosition, FileSourceError, SavedPosition, Stats};
use crate::source::JailId;

/// How many leading bytes of a file its fingerprint covers. Enough to hold
/// the timestamp and start of a first log line, which is what tells two
/// files apart when the kernel hands out the same inode number again.
pub(super) const HEAD_LEN: usize = 256;

/// Size of the read buffer, shared by all files: reads are batched, lines
/// are split with `memchr`, there is no syscall per line.
const READ_BUF: usize = 128 * 1024;

/// Bytes read from one file per pump before giving the others a turn; the
/// file stays marked as dirty and is read on in the next pump.
const READ_BUDGET: usize = 16 * READ_BUF;

/// inotify event reads per pump before handling what was read, so that a
/// storm of events cannot keep the tailer from reading files.
const EVENT_READS: usize = 64;

/// What a directory on a pattern's way is watched for: its children coming
/// and going (and their permissions changing, to retry an unreadable file),
/// and the directory itself moving or going away.
fn dir_mask() -> WatchMask {
    WatchMask::CREATE
        | WatchMask::DELETE
        | WatchMask::MOVED_FROM
        | WatchMask::MOVED_TO
        | WatchMask::ATTRIB
        | WatchMask::DELETE_SELF
        | WatchMask::MOVE_SELF
        | WatchMask::ONLYDIR
}

/// What an open file is watched for: growth (and truncation), its link count
/// changing (deletion), and being renamed.
fn file_mask() -> WatchMask {
    WatchMask::MODIFY | WatchMask::ATTRIB | WatchMask::MOVE_SELF | WatchMask::DELETE_SELF
}

/// FNV-1a, 64 bits: tiny and stable across Rust versions and platforms,
/// which matters because the value is stored and compared after restarts
/// (std's `DefaultHasher` promises neither). Not collision-resistant; it only
/// has to tell one file's head from another's.
pub(super) fn head_hash(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// Where lines go. The thread's implementation blocks while the channel is
/// full (backpressure); tests collect into a `Vec`.
pub(super) trait Sink {
    /// Takes one line; `Err(Stopped)` when the consumer is gone or the
    /// source is being stopped, which ends the pump at once.
    fn deliver(&mut self, line: FileLine) -> Result<(), Stopped>;
}

/// The consumer is gone or a stop was requested.
#[derive(Debug)]
pub(super) struct Stopped;

/// Why a pump ended early.
#[derive(Debug)]
pub(super) enum PumpError {
    /// See [`Stopped`].
    Stopped,
    /// Reading the inotify queue failed: the source cannot go on.
    Events(io::Error),
}

impl From<Stopped> for PumpError {
    fn from(_: Stopped) -> Self {
        PumpError::Stopped
    }
}

/// A pattern and the jails that asked for it (several jails may name the
/// same path; the file is read once for all of them).
struct PatternEntry {
    pattern: LogPattern,
    jails: Vec<JailId>,
}

/// One open file.
struct Tailed {
    id: FileId,
    file: File,
    /// Its inotify watch; `None` when adding it failed (then the file is only
    /// read on directory events and overflows, and a warning said so).
    wd: Option<WatchDescriptor>,
    /// The matching path it was last seen at; kept once it is rotated away,
    /// so its lines still say which `logpath` they belong to.
    path: Arc<Path>,
    jails: Arc<[JailId]>,
    /// False once the file is no longer found at any matching path (renamed
    /// away by rotation, or deleted): it is still read through its fd.
    attached: bool,
    /// Offset of the next byte to read.
    read_pos: u64,
    /// The first `min(HEAD_LEN, read_pos)` bytes of the file.
    head: Vec<u8>,
    /// `(len, hash)` of the head prefix last hashed, so that lines past the
    /// head do not rehash it.
    head_cache: (usize, u64),
    /// The incomplete last line read so far, at most `max_line` bytes of it.
    partial: Vec<u8>,
    /// Its real length (more than `partial.len()` once over the cap).
    partial_len: u64,
    /// Discarding bytes up to the next newline: started in the middle of a
    /// line too long to find its beginning.
    skipping: bool,
    /// Whether a truncated line was already warned about (then only debug).
    warned_long: bool,
    /// Bytes between `read_pos` and the size last seen (its share of
    /// `Stats::left`).
    left: u64,
}

impl Tailed {
    fn position(&mut self, offset: u64) -> FilePosition {
        let len = usize::try_from(offset).map_or(HEAD_LEN, |o| o.min(HEAD_LEN));
        let len = len.min(self.head.len());
        if self.head_cache.0 != len {
            self.head_cache = (len, head_hash(&self.head[..len]));
        }
        FilePosition {
            dev: self.id.dev,
            ino: self.id.ino,
            head_len: len as u32,
            head_hash: self.head_cache.1,
            offset,
        }
    }

    /// Records how much of the file (of `size` bytes) is left to read.
    fn set_left(&mut self, size: u64, stats: &Stats) {
        let left = size.saturating_sub(self.read_pos);
        if left >= self.left {
            stats.left.fetch_add(left - self.left, Ordering::Relaxed);
        } else {
            stats.left.fetch_sub(self.left - left, Ordering::Relaxed);
        }
        self.left = left;
    }

    /// Forgets everything read: the file was truncated (copytruncate) or
    /// rewritten in place, so its content starts anew at 0.
    fn restart(&mut self) {
        self.read_pos = 0;
        self.head.clear();
        self.head_cache = (0, head_hash(&[]));
        self.partial.clear();
        self.partial_len = 0;
        self.skipping = false;
    }

    /// Whether the file's first bytes are no longer those read from it: it
    /// was truncated and rewritten past our offset before we looked.
    fn head_changed(&self) -> bool {
        if self.head.is_empty() {
            return false;
        }
        let mut now = vec![0; self.head.len()];
        match self.file.read_exact_at(&mut now, 0) {
            Ok(()) => now != self.head,
            Err(_) => true,
        }
    }

    /// Splits `chunk` (read at `read_pos`) into lines and delivers the
    /// complete ones.
    fn consume(
        &mut self,
        chunk: &[u8],
        max_line: usize,
        sink: &mut dyn Sink,
        stats: &Stats,
    ) -> Result<(), Stopped> {
        // Counted first, so a consumer that saw a line sees its bytes counted.
        stats.bytes.fetch_add(chunk.len() as u64, Ordering::Relaxed);
        let base = self.read_pos;
        if base < HEAD_LEN as u64 {
            let take = (HEAD_LEN - base as usize).min(chunk.len());
            self.head.extend_from_slice(&chunk[..take]);
        }
        let mut start = 0;
        for nl in memchr::memchr_iter(b'\n', chunk) {
            let end = base + nl as u64 + 1;
            let seg = &chunk[start..nl];
            start = nl + 1;
            if self.skipping {
                self.skipping = false;
                self.read_pos = end;
                continue;
            }
            let total = self.partial_len + seg.len() as u64;
            let mut bytes = if self.partial.is_empty() {
                Vec::with_capacity(seg.len().min(max_line))
            } else {
                std::mem::take(&mut self.partial)
            };
            let room = max_line.saturating_sub(bytes.len());
            bytes.extend_from_slice(&seg[..room.min(seg.len())]);
            self.partial_len = 0;
            let truncated = total > max_line as u64;
            if truncated {
                stats.truncated_lines.fetch_add(1, Ordering::Relaxed);
                if self.warned_long {
                    debug!(path = %self.path.display(), len = total, "line truncated");
                } else {
                    self.warned_long = true;
                    warn!(
                        path = %self.path.display(), len = total, max_line,
                        "line longer than the limit, delivered truncated (further ones logged at debug level)"
                    );
                }
            }
            self.read_pos = end;
            stats.lines.fetch_add(1, Ordering::Relaxed);
            let position = self.position(end);
            sink.deliver(FileLine {
                bytes,
                path: self.path.clone(),
                jails: self.jails.clone(),
                position,
                truncated,
            })?;
        }
        let rest = &chunk[start..];
        if !self.skipping {
            let room = max_line.saturating_sub(self.partial.len());
            self.partial
                .extend_from_slice(&rest[..room.min(rest.len())]);
            self.partial_len += rest.len() as u64;
        }
        self.read_pos = base + chunk.len() as u64;
        Ok(())
    }
}

/// What the first scan found, for the caller's store.
#[derive(Debug, Default)]
pub(super) struct Startup {
    /// Where each file opened at start will be read from.
    pub(super) starts: Vec<SavedPosition>,
    /// Saved positions that matched no file.
    pub(super) unmatched: Vec<SavedPosition>,
}

/// Where a newly opened file is read from, and why (for the log).
struct Start {
    offset: u64,
    skipping: bool,
    why: &'static str,
}

/// The core: see the module documentation.
pub(super) struct Tailer {
    inotify: Inotify,
    patterns: Vec<PatternEntry>,
    max_line: usize,
    /// Directory watches and the `(pattern, level)` pairs each serves.
    dirs: HashMap<WatchDescriptor, Vec<(usize, usize)>>,
    /// Open files by discovery sequence: older files are read first, so a
    /// rotated file's last lines come before its successor's first ones.
    files: BTreeMap<u64, Tailed>,
    by_id: HashMap<FileId, u64>,
    by_wd: HashMap<WatchDescriptor, u64>,
    next_seq: u64,
    /// Files that may have grown.
    dirty: BTreeSet<u64>,
    rescan_pending: bool,
    /// Positions from the previous run not used yet.
    saved: HashMap<FileId, SavedPosition>,
    /// Per pattern: whether a saved position's path matches it, i.e. it was
    /// followed in a previous run, so a file found there at start without a
    /// position of its own is new since then and read from its beginning.
    known: Vec<bool>,
    /// Paths already warned about, so a persistent problem is logged once
    /// (until it goes away).
    warned: HashSet<PathBuf>,
    event_buf: Vec<u8>,
    read_buf: Vec<u8>,
    stats: Arc<Stats>,
}

impl Tailer {
    /// Parses the patterns, sets up the watches, opens the files they match
    /// (choosing where each starts from `saved`) and looks for rotated files
    /// among the saved positions. Reads nothing yet: the opened files are
    /// marked dirty for the first [`Tailer::pump`].
    ///
    /// Also returns where each file opened starts and which saved positions
    /// matched no file; see [`Startup`].
    pub(super) fn new(
        jails: Vec<(JailId, Vec<String>)>,
        saved: Vec<SavedPosition>,
        max_line: usize,
        stats: Arc<Stats>,
    ) -> Result<(Self, Startup), FileSourceError> {
        let mut patterns: Vec<PatternEntry> = Vec::new();
        let mut by_text: HashMap<String, usize> = HashMap::new();
        for (jail, texts) in jails {
            for text in texts {
                let idx = match by_text.get(&text) {
                    Some(&i) => i,
                    None => {
                        let pattern = LogPattern::parse(&text)?;
                        patterns.push(PatternEntry {
                            pattern,
                            jails: Vec::new(),
                        });
                        by_text.insert(text, patterns.len() - 1);
                        patterns.len() - 1
                    }
                };
                if !patterns[idx].jails.contains(&jail) {
                    patterns[idx].jails.push(jail.clone());
                }
            }
        }
        let inotify = Inotify::init().map_err(FileSourceError::Inotify)?;
        let known = patterns
            .iter()
            .map(|p| saved.iter().any(|s| p.pattern.matches(&s.path)))
            .collect();
        let saved = saved.into_iter().map(|s| (s.position.id(), s)).collect();
        let mut tailer = Tailer {
            inotify,
            patterns,
            max_line: max_line.max(1),
            dirs: HashMap::new(),
            files: BTreeMap::new(),
            by_id: HashMap::new(),
            by_wd: HashMap::new(),
            next_seq: 0,
            dirty: BTreeSet::new(),
            rescan_pending: false,
            saved,
            known,
            warned: HashSet::new(),
            event_buf: vec![0; 64 * 1024],
            read_buf: vec![0; READ_BUF],
            stats,
        };
        // Rotated files first, so that they are read before their
        // successors.
        tailer.find_rotated();
        if !tailer.rescan(true).is_empty() {
            // A rotated file just found was deleted meanwhile: the first
            // pump's rescan closes it (there is no sink to drain it into yet).
            tailer.rescan_pending = true;
        }
        for entry in &tailer.patterns {
            if !tailer
                .files
                .values()
                .any(|t| entry.pattern.matches(&t.path))
            {
                info!(logpath = %entry.pattern.text, "no file open for it yet; watching for one");
            }
        }
        let starts = tailer
            .files
            .values_mut()
            .map(|t| {
                let offset = t.read_pos;
                SavedPosition {
                    path: t.path.to_path_buf(),
                    position: t.position(offset),
                }
            })
            .collect();
        let unmatched = tailer.saved.values().cloned().collect();
        Ok((tailer, Startup { starts, unmatched }))
    }

    /// The inotify descriptor, to wait on.
    pub(super) fn fd(&self) -> BorrowedFd<'_> {
        self.inotify.as_fd()
    }

    /// Handles what happened since the last call; see the module docs.
    /// Returns whether there may be more to do right away (events were
    /// handled, or a file has more to read than one pump's budget); when it
    /// returns false, the next thing to do is wait for the inotify fd.
    pub(super) fn pump(&mut self, sink: &mut dyn Sink) -> Result<bool, PumpError> {
        let mut handled = false;
        for _ in 0..EVENT_READS {
            if !self.read_events()? {
                break;
            }
            handled = true;
        }
        if self.rescan_pending {
            for seq in self.rescan(false) {
                self.close(seq, sink)?;
            }
        }
        let dirty: Vec<u64> = self.dirty.iter().copied().collect();
        for seq in dirty {
            if !self.read(seq, sink, Some(READ_BUDGET))? {
                self.dirty.remove(&seq);
            }
        }
        Ok(handled || !self.dirty.is_empty())
    }

    /// Reads one buffer of events and notes what they call for. Returns false
    /// when there were none.
    fn read_events(&mut self) -> Result<bool, PumpError> {
        let events = match self.inotify.read_events(&mut self.event_buf) {
            Ok(events) => events,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => return Ok(true),
            Err(e) => return Err(PumpError::Events(e)),
        };
        for ev in events {
            if ev.mask.contains(EventMask::Q_OVERFLOW) {
                warn!(
                    "inotify queue overflowed; rescanning every logpath and re-reading every file"
                );
                self.rescan_pending = true;
                self.dirty.extend(self.files.keys().copied());
                continue;
            }
            if let Some(&seq) = self.by_wd.get(&ev.wd) {
                self.dirty.insert(seq);
                if ev
                    .mask
                    .intersects(EventMask::ATTRIB | EventMask::MOVE_SELF | EventMask::DELETE_SELF)
                {
                    // Renamed, unlinked or chmod'ed: whether it is still at
                    // a matching path is for the rescan to tell.
                    self.rescan_pending = true;
                }
                if ev.mask.contains(EventMask::IGNORED) {
                    self.by_wd.remove(&ev.wd);
                    if let Some(t) = self.files.get_mut(&seq) {
                        t.wd = None;
                    }
                    self.rescan_pending = true;
                }
            } else if let Some(uses) = self.dirs.get(&ev.wd) {
                // The directory itself moved or went away, or a child whose
                // name the pattern's next component matches came, went or
                // changed permissions.
                let gone = ev
                    .mask
                    .intersects(EventMask::DELETE_SELF | EventMask::MOVE_SELF | EventMask::IGNORED);
                let relevant = || {
                    ev.name.is_some_and(|name| {
                        uses.iter()
                            .any(|&(p, level)| self.patterns[p].pattern.relevant(level, name))
                    })
                };
                if gone || relevant() {
                    self.rescan_pending = true;
                }
            }
            // Anything else is about a watch already removed.
        }
        Ok(true)
    }

    /// Walks every pattern: renews the directory watches, updates the paths
    /// of the open files, marks those no longer found as detached, and opens
    /// the new ones. Returns the files to drain and close: unlinked ones, and
    /// detached ones a newer file rotated away from the same path replaces.
    fn rescan(&mut self, startup: bool) -> Vec<u64> {
        self.rescan_pending = false;
        let mut dirs: HashMap<WatchDescriptor, Vec<(usize, usize)>> = HashMap::new();
        let mut found: Vec<(PathBuf, Metadata, usize)> = Vec::new();
        let mut troubles: Vec<(PathBuf, io::Error)> = Vec::new();
        let mut watch_troubles: Vec<(PathBuf, io::Error)> = Vec::new();
        let mut watches = self.inotify.watches();
        for (pi, entry) in self.patterns.iter().enumerate() {
            entry.pattern.walk(
                &mut |dir, level| match watches.add(dir, dir_mask()) {
                    Ok(wd) => {
                        dirs.entry(wd).or_default().push((pi, level));
                        true
                    }
                    Err(e) if is_absent(&e) => false,
                    Err(e) => {
                        watch_troubles.push((dir.to_owned(), e));
                        false
                    }
                },
                &mut |path, meta| found.push((path, meta, pi)),
                &mut |path, e| troubles.push((path.to_owned(), e)),
            );
        }
        troubles.append(&mut watch_troubles);
        for (path, e) in troubles {
            let hint = if e.raw_os_error() == Some(libc::ENOSPC) {
                " (inotify watch limit reached: raise fs.inotify.max_user_watches)"
            } else {
                ""
            };
            self.warn_once(&path, format_args!("cannot watch or list it{hint}: {e}"));
        }
        for wd in self.dirs.keys() {
            if !dirs.contains_key(wd) {
                // Fails when the directory is gone, which removed it already.
                let _ = watches.remove(wd.clone());
            }
        }
        self.dirs = dirs;

        // One entry per file identity, in walk order; a file matched by
        // several patterns (or hard-linked at several matching paths) is read
        // once, for the union of their jails, under its first path.
        let mut order: Vec<FileId> = Vec::new();
        let mut matched: HashMap<FileId, (PathBuf, Vec<usize>)> = HashMap::new();
        for (path, meta, pi) in found {
            let id = FileId::of(&meta);
            let slot = matched.entry(id).or_insert_with(|| {
                order.push(id);
                (path, Vec::new())
            });
            if !slot.1.contains(&pi) {
                slot.1.push(pi);
            }
        }

        let mut to_close = Vec::new();
        let mut newly_detached = Vec::new();
        for (&seq, t) in &mut self.files {
            if t.wd.is_none() {
                // Unwatched: directory events are all it is read on.
                self.dirty.insert(seq);
            }
            if let Some((path, pis)) = matched.get(&t.id) {
                if !t.attached || *t.path != **path {
                    debug!(from = %t.path.display(), to = %path.display(), "file now at");
                    t.path = Arc::from(path.as_path());
                }
                t.attached = true;
                let jails = jails_of(&self.patterns, pis);
                if *t.jails != *jails {
                    t.jails = jails;
                }
                continue;
            }
            let was_attached = std::mem::replace(&mut t.attached, false);
            match t.file.metadata() {
                Ok(m) if m.nlink() > 0 => {
                    if was_attached {
                        info!(
                            path = %t.path.display(),
                            "rotated away: reading it on until its successor is rotated too or it is deleted"
                        );
                        newly_detached.push(seq);
                    }
                }
                _ => {
                    info!(path = %t.path.display(), "deleted: reading what is left, then closing it");
                    to_close.push(seq);
                }
            }
        }
        for seq in newly_detached {
            let Some(path) = self.files.get(&seq).map(|t| t.path.clone()) else {
                continue;
            };
            for (&other, t) in &self.files {
                if other != seq && !t.attached && t.path == path && !to_close.contains(&other) {
                    debug!(path = %path.display(), "closing the generation before the last rotated one");
                    to_close.push(other);
                }
            }
        }
        for id in order {
            if self.by_id.contains_key(&id) {
                continue;
            }
            if let Some((path, pis)) = matched.remove(&id) {
                self.open(path, &pis, startup);
            }
        }
        to_close
    }

    /// Opens a file found at a matching path and decides where to start.
    fn open(&mut self, path: PathBuf, pis: &[usize], startup: bool) {
        let file = match File::open(&path) {
            Ok(f) => f,
            Err(e) if is_absent(&e) => return,
            Err(e) => {
                let retry = if e.kind() == io::ErrorKind::PermissionDenied {
                    "; retried when its permissions change"
                } else {
                    "; retried on its directory's next event"
                };
                self.warn_once(&path, format_args!("cannot open it{retry}: {e}"));
                return;
            }
        };
        let meta = match file.metadata() {
            Ok(m) if m.is_file() => m,
            Ok(_) => return,
            Err(e) => {
                self.warn_once(&path, format_args!("cannot stat it: {e}"));
                return;
            }
        };
        // The path may have been replaced between the walk's stat and the
        // open: trust the descriptor, and let the rescan the replacement
        // caused sort out the rest.
        let id = FileId::of(&meta);
        if self.by_id.contains_key(&id) {
            return;
        }
        self.warned.remove(&path);
        let start = self.choose_start(&file, id, meta.len(), pis, startup);
        let jails = jails_of(&self.patterns, pis);
        self.track(file, path, id, jails, start, true);
    }

    /// Registers an open file at `start`, watched, marked dirty.
    fn track(
        &mut self,
        file: File,
        path: PathBuf,
        id: FileId,
        jails: Arc<[JailId]>,
        start: Start,
        attached: bool,
    ) {
        // Watching through the descriptor rather than the path cannot watch
        // another file that has just taken the path; fall back on the path
        // where /proc is not mounted.
        let proc_path = format!("/proc/self/fd/{}", file.as_raw_fd());
        let mut watches = self.inotify.watches();
        let wd = match watches
            .add(&proc_path, file_mask())
            .or_else(|_| watches.add(&path, file_mask()))
        {
            Ok(wd) => Some(wd),
            Err(e) => {
                warn!(
                    path = %path.display(),
                    "cannot watch the file, it will be read only when its directory changes: {e}"
                );
                None
            }
        };
        let head_len = usize::try_from(start.offset).map_or(HEAD_LEN, |o| o.min(HEAD_LEN));
        let mut head = vec![0; head_len];
        if file.read_exact_at(&mut head, 0).is_err() {
            // Shrunk since the stat: the truncation check will restart it.
            head.clear();
        }
        info!(path = %path.display(), offset = start.offset, "following ({})", start.why);
        let seq = self.next_seq;
        self.next_seq += 1;
        if let Some(wd) = &wd {
            self.by_wd.insert(wd.clone(), seq);
        }
        self.by_id.insert(id, seq);
        self.dirty.insert(seq);
        self.files.insert(
            seq,
            Tailed {
                id,
                file,
                wd,
                path: Arc::from(path.as_path()),
                jails,
                attached,
                read_pos: start.offset,
                head,
                head_cache: (usize::MAX, 0),
                partial: Vec::new(),
                partial_len: 0,
                skipping: start.skipping,
                warned_long: false,
                left: 0,
            },
        );
        self.stats
            .files
            .store(self.files.len() as u64, Ordering::Relaxed);
    }

    /// Saved position of the same file → resume there. Otherwise a file that
    /// appears while running, or at start under a pattern followed before
    /// (so it was created since), is new: from its beginning. Otherwise this
    /// is the first start for the pattern: from the end, i.e. the start of
    /// the last (possibly incomplete) line, so the history is not replayed.
    fn choose_start(
        &mut self,
        file: &File,
        id: FileId,
        size: u64,
        pis: &[usize],
        startup: bool,
    ) -> Start {
        if let Some(saved) = self.saved.remove(&id) {
            if verify(file, &saved.position, size) {
                return Start {
                    offset: saved.position.offset,
                    skipping: false,
                    why: "resuming at the saved position",
                };
            }
            debug!(
                path = %saved.path.display(),
                "saved position is for another file that had the same inode (or the file was rewritten)"
            );
        }
        if !startup {
            return Start {
                offset: 0,
                skipping: false,
                why: "new file, from its beginning",
            };
        }
        if pis.iter().any(|&p| self.known[p]) {
            return Start {
                offset: 0,
                skipping: false,
                why: "created since the last run, from its beginning",
            };
        }
        let (offset, skipping) = start_of_last_line(file, size, &mut self.read_buf);
        Start {
            offset,
            skipping,
            why: "first start, from its end",
        }
    }

    /// Looks for saved files that no pattern matches any more because they
    /// were rotated away while we were not running: logrotate renames in
    /// place, so they are in the directory of their saved path, under the
    /// same inode. The ones found are followed as rotated files.
    fn find_rotated(&mut self) {
        let mut by_dir: BTreeMap<PathBuf, Vec<FileId>> = BTreeMap::new();
        for (id, s) in &self.saved {
            if let Some(dir) = s.path.parent() {
                by_dir.entry(dir.to_owned()).or_default().push(*id);
            }
        }
        for (dir, ids) in by_dir {
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for entry in entries.filter_map(Result::ok) {
                use std::os::unix::fs::DirEntryExt;
                let ino = entry.ino();
                let Some(&id) = ids.iter().find(|id| id.ino == ino) else {
                    continue;
                };
                if self
                    .patterns
                    .iter()
                    .any(|p| p.pattern.matches(&entry.path()))
                {
                    // Still at a matching path: the scan resumes it.
                    continue;
                }
                let Some(saved) = self.saved.get(&id) else {
                    continue;
                };
                let pis: Vec<usize> = (0..self.patterns.len())
                    .filter(|&p| self.patterns[p].pattern.matches(&saved.path))
                    .collect();
                if pis.is_empty() || self.by_id.contains_key(&id) {
                    continue;
                }
                let Ok(file) = File::open(entry.path()) else {
                    continue;
                };
                let Ok(meta) = file.metadata() else {
                    continue;
                };
                if FileId::of(&meta) != id || !meta.is_file() {
                    continue;
                }
                if !verify(&file, &saved.position, meta.len()) {
                    continue;
                }
                let Some(saved) = self.saved.remove(&id) else {
                    continue;
                };
                let start = Start {
                    offset: saved.position.offset,
                    skipping: false,
                    why: "rotated while stopped, resuming at the saved position",
                };
                debug!(now = %entry.path().display(), "found a rotated file");
                let jails = jails_of(&self.patterns, &pis);
                self.track(file, saved.path, id, jails, start, false);
            }
        }
    }

    /// Reads file `seq` from its offset, at most `budget` bytes (all there is
    /// when `None`). Returns whether it stopped before the end of the file.
    fn read(
        &mut self,
        seq: u64,
        sink: &mut dyn Sink,
        budget: Option<usize>,
    ) -> Result<bool, Stopped> {
        let Some(t) = self.files.get_mut(&seq) else {
            return Ok(false);
        };
        let mut left = budget.unwrap_or(usize::MAX);
        let mut first = true;
        loop {
            if left == 0 {
                return Ok(true);
            }
            let want = self.read_buf.len().min(left);
            let n = match t.file.read_at(&mut self.read_buf[..want], t.read_pos) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    warn!(path = %t.path.display(), offset = t.read_pos, "read failed, retried on its next event: {e}");
                    return Ok(false);
                }
            };
            // Checked after the read, not before: a truncation (and regrowth
            // past our offset) can happen at any time, in particular while a
            // send waits on a full channel. If the file still holds what we
            // read before, what was just read was read before any truncation.
            // The head is compared when data came, and when an event brought
            // none (regrown to exactly our offset); not at the end of every
            // read, where the next event will tell.
            let size = match t.file.metadata() {
                Ok(m) => m.len(),
                Err(e) => {
                    warn!(path = %t.path.display(), "cannot stat it: {e}");
                    return Ok(false);
                }
            };
            let check_head = n > 0 || first;
            first = false;
            if size < t.read_pos || (check_head && t.head_changed()) {
                if t.partial_len > 0 {
                    debug!(path = %t.path.display(), "dropping an incomplete line lost to the truncation");
                }
                info!(path = %t.path.display(), "truncated (copytruncate?): reading it from its beginning");
                t.restart();
                continue;
            }
            if n == 0 {
                t.set_left(size, &self.stats);
                return Ok(false);
            }
            left -= n;
            t.consume(&self.read_buf[..n], self.max_line, sink, &self.stats)?;
            t.set_left(size, &self.stats);
        }
    }

    /// Reads what is left of file `seq` and closes it.
    fn close(&mut self, seq: u64, sink: &mut dyn Sink) -> Result<(), Stopped> {
        self.read(seq, sink, None)?;
        let Some(t) = self.files.remove(&seq) else {
            return Ok(());
        };
        if t.partial_len > 0 {
            debug!(path = %t.path.display(), "closing with an incomplete last line, dropped");
        }
        if let Some(wd) = t.wd {
            self.by_wd.remove(&wd);
            let _ = self.inotify.watches().remove(wd);
        }
        self.stats.left.fetch_sub(t.left, Ordering::Relaxed);
        self.by_id.remove(&t.id);
        self.dirty.remove(&seq);
        self.stats
            .files
            .store(self.files.len() as u64, Ordering::Relaxed);
        Ok(())
    }

    fn warn_once(&mut self, path: &Path, what: std::fmt::Arguments<'_>) {
        if self.warned.insert(path.to_owned()) {
            warn!(path = %path.display(), "{what}");
        } else {
            debug!(path = %path.display(), "{what}");
        }
    }
}

/// The union of the jails of patterns `pis`, in order, without repeats.
fn jails_of(patterns: &[PatternEntry], pis: &[usize]) -> Arc<[JailId]> {
    let mut out: Vec<JailId> = Vec::new();
    for &p in pis {
        for j in &patterns[p].jails {
            if !out.contains(j) {
                out.push(j.clone());
            }
        }
    }
    out.into()
}

/// Whether `pos` is a position in this very file: within its size, and the
/// bytes its head hash covers hash the same now.
fn verify(file: &File, pos: &FilePosition, size: u64) -> bool {
    // The bound keeps a corrupt store from making us allocate gigabytes,
    // with room for a future, longer head.
    if pos.offset > size || u64::from(pos.head_len) > pos.offset || pos.head_len > 1 << 16 {
        return false;
    }
    let mut head = vec![0; pos.head_len as usize];
    file.read_exact_at(&mut head, 0).is_ok() && head_hash(&head) == pos.head_hash
}

/// Where the last line of a file starts: just after the last newline found
/// in its last `buf.len()` bytes. With no newline there, a short file is one
/// incomplete line (start at 0) and a long one ends inside a line too long
/// to deliver whole (start at the end, skipping to the next newline).
fn start_of_last_line(file: &File, size: u64, buf: &mut [u8]) -> (u64, bool) {
    let len = usize::try_from(size).map_or(buf.len(), |s| s.min(buf.len()));
    let from = size - len as u64;
    let tail = &mut buf[..len];
    if file.read_exact_at(tail, from).is_err() {
        return (size, false);
    }
    match memchr::memrchr(b'\n', tail) {
        Some(i) => (from + i as u64 + 1, false),
        None if from == 0 => (0, false),
        None => (size, true),
    }
}
