//! Persistent state in SQLite (`jailwarden.sqlite3` in the state
//! directory): active bans with their expiry, ban history (for escalation),
//! recent failures, source positions (journal cursor, file offsets) and
//! totals.
//!
//! A batch of log entries, the failures and bans it produced and the
//! source position after it are written in **one transaction**
//! ([`Changes`]), so after a crash or SIGKILL reading resumes exactly where
//! the committed state ends: nothing lost, nothing counted twice. The
//! schema is versioned (`PRAGMA user_version`) with forward migrations; a
//! database newer than this binary is refused rather than damaged.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use ipnet::IpNet;
use jiff::Timestamp;
use rusqlite::{Connection, OptionalExtension, params};

use crate::ban::{Ban, RemoteBan};

/// The database file name in the state directory.
pub const DB_FILE: &str = "jailwarden.sqlite3";

/// Schema migrations, in order; `user_version` counts those applied.
const MIGRATIONS: &[&str] = &[
    // 1: initial schema
    "CREATE TABLE bans (
        jail TEXT NOT NULL,
        net TEXT NOT NULL,
        banned_at INTEGER NOT NULL,
        expires_at INTEGER,
        failures INTEGER NOT NULL,
        PRIMARY KEY (jail, net)
    );
    CREATE TABLE history (
        jail TEXT NOT NULL,
        addr TEXT NOT NULL,
        banned_at INTEGER NOT NULL,
        bantime INTEGER
    );
    CREATE INDEX history_addr ON history (addr, jail);
    CREATE INDEX history_time ON history (banned_at);
    CREATE TABLE failures (
        jail TEXT NOT NULL,
        addr TEXT NOT NULL,
        time INTEGER NOT NULL,
        attempts INTEGER NOT NULL
    );
    CREATE INDEX failures_addr ON failures (jail, addr);
    CREATE INDEX failures_time ON failures (time);
    CREATE TABLE positions (
        source TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );
    CREATE TABLE totals (
        jail TEXT PRIMARY KEY,
        failed INTEGER NOT NULL DEFAULT 0,
        banned INTEGER NOT NULL DEFAULT 0
    );",
    // 2: the ban history says how each ban went: when it ended (NULL while
    // in force), the failures that led to it, why it ended, and the
    // prefix length of range bans (NULL: a single address). Rows from
    // before are closed unless they are the newest of a ban still in
    // force; when they ended is not known, so their expiry (or start) is
    // the estimate and the reason "unknown". The time index also holds the
    // jail, so counting bans per jail and time reads the index alone.
    "DROP INDEX history_time;
    CREATE INDEX history_time ON history (banned_at, jail);
    ALTER TABLE history ADD COLUMN ended_at INTEGER;
    ALTER TABLE history ADD COLUMN failures INTEGER;
    ALTER TABLE history ADD COLUMN reason TEXT;
    ALTER TABLE history ADD COLUMN prefix INTEGER;
    UPDATE history SET
        ended_at = min(banned_at + coalesce(bantime, 0),
                       CAST(strftime('%s', 'now') AS INTEGER) * 1000000),
        reason = 'unknown'
    WHERE NOT EXISTS (
            SELECT 1 FROM bans b WHERE b.jail = history.jail
              AND b.net >= history.addr || '/' AND b.net < history.addr || '0')
       OR banned_at < (
            SELECT max(h.banned_at) FROM history h
            WHERE h.addr = history.addr AND h.jail = history.jail);",
    // 3: bans received from other fleet hosts, per (origin, jail, net),
    // with the stream entry they came from. Where each origin's stream was
    // read to is a position (`fleet:<origin>`), committed with them.
    "CREATE TABLE remote_bans (
        origin TEXT NOT NULL,
        jail TEXT NOT NULL,
        net TEXT NOT NULL,
        banned_at INTEGER NOT NULL,
        expires_at INTEGER,
        failures INTEGER NOT NULL,
        reason TEXT NOT NULL,
        event_id TEXT NOT NULL,
        PRIMARY KEY (origin, jail, net)
    );",
    // 4: stories under way and names being resolved are saved with the
    // position after the lines that told them, so a restart neither loses
    // nor recounts them: a session per (jail, source, key), as JSON; a
    // host name waiting for usedns resolution. A ban is `announced` once
    // its journal event is logged (after its commit): a crash in between
    // leaves 0, and the next start logs the event unless the journal
    // has it.
    "CREATE TABLE sessions (
        jail TEXT NOT NULL,
        source TEXT NOT NULL,
        key INTEGER NOT NULL,
        state TEXT NOT NULL,
        PRIMARY KEY (jail, source, key)
    );
    CREATE TABLE names (
        id INTEGER PRIMARY KEY,
        jail TEXT NOT NULL,
        name TEXT NOT NULL,
        time INTEGER NOT NULL,
        attempts INTEGER NOT NULL,
        repeat INTEGER NOT NULL
    );
    ALTER TABLE bans ADD COLUMN announced INTEGER NOT NULL DEFAULT 1;",
];

/// Why the store failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open {path}: {source}")]
    Open {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    #[error(
        "{path} has schema version {found}, newer than this jailwarden ({known}); refusing to touch it"
    )]
    TooNew {
        path: PathBuf,
        found: i64,
        known: i64,
    },
    #[error("{path} is damaged: {problem}")]
    Corrupt { path: PathBuf, problem: String },
    #[error("{path} cannot be brought to schema version {to}: {source}")]
    Migration {
        path: PathBuf,
        to: i64,
        #[source]
        source: rusqlite::Error,
    },
    #[error("database error: {0}")]
    Sql(#[from] rusqlite::Error),
}

impl StoreError {
    /// The file itself is unusable (damaged, not a database, of another
    /// schema, from a newer jailwarden), as opposed to the place it is in
    /// (permissions, a read-only or full filesystem, another process
    /// holding it): set aside, a new one can be started.
    pub fn is_broken(&self) -> bool {
        use rusqlite::ErrorCode::{DatabaseCorrupt, NotADatabase};
        let code = |e: &rusqlite::Error| e.sqlite_error_code();
        match self {
            StoreError::TooNew { .. } | StoreError::Corrupt { .. } => true,
            StoreError::Migration { source, .. } => !matches!(
                code(source),
                Some(
                    rusqlite::ErrorCode::DiskFull
                        | rusqlite::ErrorCode::ReadOnly
                        | rusqlite::ErrorCode::CannotOpen
                        | rusqlite::ErrorCode::DatabaseBusy
                        | rusqlite::ErrorCode::DatabaseLocked
                        | rusqlite::ErrorCode::SystemIoFailure
                        | rusqlite::ErrorCode::PermissionDenied
                )
            ),
            StoreError::Open { source, .. } | StoreError::Sql(source) => {
                matches!(code(source), Some(DatabaseCorrupt | NotADatabase))
            }
        }
    }
}

/// Move a broken database (and its `-wal`, `-shm` files) aside in the
/// same directory, as `jailwarden.sqlite3.broken-YYYYmmddTHHMMSSZ`; never
/// deletes anything. Returns the new path of the database file.
pub fn set_aside(dir: &Path, now: Timestamp) -> std::io::Result<PathBuf> {
    let stamp = now.strftime("%Y%m%dT%H%M%SZ").to_string();
    let mut target = dir.join(format!("{DB_FILE}.broken-{stamp}"));
    let mut n = 1;
    while target.exists() {
        target = dir.join(format!("{DB_FILE}.broken-{stamp}.{n}"));
        n += 1;
    }
    let db = dir.join(DB_FILE);
    for suffix in ["-wal", "-shm"] {
        let side = dir.join(format!("{DB_FILE}{suffix}"));
        if side.exists() {
            let mut to = target.clone().into_os_string();
            to.push(suffix);
            std::fs::rename(&side, to)?;
        }
    }
    std::fs::rename(&db, &target)?;
    Ok(target)
}

/// A failure remembered across restarts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredFailure {
    pub jail: String,
    pub addr: IpAddr,
    pub time: Timestamp,
    pub attempts: u32,
}

/// A session of a jail's matcher for one source, saved (see
/// [`crate::filter::session::SavedSession`]); `state` `None` deletes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredSession {
    pub jail: String,
    /// "journal" or "file".
    pub source: String,
    pub key: u64,
    pub state: Option<String>,
}

/// A host name waiting for resolution (usedns), saved with the position
/// after its line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredName {
    pub id: i64,
    pub jail: String,
    pub name: String,
    pub time: Timestamp,
    pub attempts: u32,
    pub repeat: bool,
}

/// Everything the daemon needs at start.
#[derive(Debug, Default)]
pub struct Loaded {
    /// Active bans (including those whose time ran out while we were down:
    /// the caller records them as expired).
    pub bans: Vec<Ban>,
    /// Failures newer than the horizon asked for.
    pub failures: Vec<StoredFailure>,
    /// Source positions by source key.
    pub positions: HashMap<String, String>,
    /// `(failed, banned)` totals by jail.
    pub totals: HashMap<String, (u64, u64)>,
    /// Sessions under way (state always `Some`).
    pub sessions: Vec<StoredSession>,
    /// Names waiting for resolution.
    pub names: Vec<StoredName>,
}

/// Changes committed together in one transaction.
#[derive(Debug, Default)]
pub struct Changes {
    pub failures: Vec<StoredFailure>,
    /// `(jail, addr)` whose failures are forgotten (banned, unbanned).
    pub forget: Vec<(String, IpAddr)>,
    /// New bans; each also goes to the history.
    pub bans: Vec<Ban>,
    /// Bans that ended: `(jail, net)`.
    pub unbans: Vec<(String, IpNet)>,
    /// Bans whose expiry changed (re-ban with a longer time).
    pub updates: Vec<Ban>,
    /// How bans ended, for their history rows.
    pub ended: Vec<Ended>,
    pub positions: Vec<(String, String)>,
    /// `(failed, banned)` increments by jail.
    pub totals: HashMap<String, (u64, u64)>,
    /// Sessions changed (saved or, with no state, gone).
    pub sessions: Vec<StoredSession>,
    /// Jails whose sessions are all forgotten (filter changed).
    pub sessions_cleared: Vec<String>,
    /// Names to resolve, and ids of those resolved (or given up).
    pub names: Vec<StoredName>,
    pub names_done: Vec<i64>,
    /// Bans whose journal event is logged (or that need none).
    pub announced: Vec<(String, IpNet)>,
    /// Remote bans received or changed.
    pub remote_bans: Vec<RemoteBan>,
    /// Remote bans gone: `(origin, jail, net)`.
    pub remote_removed: Vec<(String, String, IpNet)>,
}

impl Changes {
    /// Nothing to write?
    pub fn is_empty(&self) -> bool {
        self.failures.is_empty()
            && self.forget.is_empty()
            && self.bans.is_empty()
            && self.unbans.is_empty()
            && self.updates.is_empty()
            && self.ended.is_empty()
            && self.positions.is_empty()
            && self.totals.is_empty()
            && self.sessions.is_empty()
            && self.sessions_cleared.is_empty()
            && self.names.is_empty()
            && self.names_done.is_empty()
            && self.announced.is_empty()
            && self.remote_bans.is_empty()
            && self.remote_removed.is_empty()
    }
}

/// A ban that ended, as its history row records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ended {
    pub jail: String,
    pub net: IpNet,
    pub at: Timestamp,
    /// An `Unbanned` reason: "expired", "manual", "jail removed".
    pub reason: String,
}

/// Which history rows to read, newest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryQuery {
    /// Only this jail's.
    pub jail: Option<String>,
    /// Only this address or range (as banned: a range ban is its prefix).
    pub net: Option<IpNet>,
    /// Bans that started at or after this.
    pub since: Timestamp,
    pub limit: u32,
}

/// One ban, from start to end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryEntry {
    pub jail: String,
    pub net: IpNet,
    pub banned_at: Timestamp,
    /// `None` while in force.
    pub ended_at: Option<Timestamp>,
    /// Failures that led to it (0 for bans by hand, and for rows from
    /// before the history kept them).
    pub failures: u32,
    /// How it ended; `None` while in force; "unknown" for rows from before
    /// the history kept it.
    pub reason: Option<String>,
}

/// Bans started per fixed-width time bucket, per jail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistogramQuery {
    pub jail: Option<String>,
    /// The start of bucket 0.
    pub since: Timestamp,
    /// Bucket width, microseconds (> 0).
    pub bucket_usec: i64,
    pub buckets: u32,
}

/// One non-empty bucket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bucket {
    pub jail: String,
    pub index: u32,
    pub count: u32,
}

/// A read-only connection to the state database, for queries that must
/// not wait for (or hold up) the daemon's core: ban history and counts.
pub struct Reader {
    conn: Connection,
}

impl Reader {
    /// Bans from the history, newest first (see [`HistoryQuery`]).
    pub fn history(&self, q: &HistoryQuery) -> Result<Vec<HistoryEntry>, StoreError> {
        history(&self.conn, q)
    }

    /// Bans started per bucket (see [`HistogramQuery`]).
    pub fn histogram(&self, q: &HistogramQuery) -> Result<Vec<Bucket>, StoreError> {
        histogram(&self.conn, q)
    }
}

fn history(conn: &Connection, q: &HistoryQuery) -> Result<Vec<HistoryEntry>, StoreError> {
    let mut sql = String::from(
        "SELECT jail, addr, prefix, banned_at, ended_at, failures, reason FROM history
         WHERE banned_at >= ?1",
    );
    let mut args: Vec<rusqlite::types::Value> = vec![usec(q.since).into()];
    if let Some(j) = &q.jail {
        args.push(j.clone().into());
        sql.push_str(&format!(" AND jail = ?{}", args.len()));
    }
    if let Some(net) = q.net {
        args.push(net.addr().to_string().into());
        sql.push_str(&format!(" AND addr = ?{}", args.len()));
        if net.prefix_len() == net.max_prefix_len() {
            sql.push_str(" AND prefix IS NULL");
        } else {
            args.push(i64::from(net.prefix_len()).into());
            sql.push_str(&format!(" AND prefix = ?{}", args.len()));
        }
    }
    args.push(i64::from(q.limit).into());
    sql.push_str(&format!(
        " ORDER BY banned_at DESC, rowid DESC LIMIT ?{}",
        args.len()
    ));
    let mut st = conn.prepare(&sql)?;
    let rows = st.query_map(rusqlite::params_from_iter(args), |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, Option<i64>>(2)?,
            r.get::<_, i64>(3)?,
            r.get::<_, Option<i64>>(4)?,
            r.get::<_, Option<i64>>(5)?,
            r.get::<_, Option<String>>(6)?,
        ))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (jail, addr, prefix, banned_at, ended_at, failures, reason) = row?;
        let Ok(addr) = addr.parse::<IpAddr>() else {
            continue;
        };
        let full = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = prefix
            .and_then(|p| u8::try_from(p).ok())
            .filter(|p| *p <= full)
            .unwrap_or(full);
        let Ok(net) = IpNet::new(addr, prefix) else {
            continue;
        };
        out.push(HistoryEntry {
            jail,
            net,
            banned_at: from_usec(banned_at),
            ended_at: ended_at.map(from_usec),
            failures: failures.and_then(|f| u32::try_from(f).ok()).unwrap_or(0),
            reason: ended_at.map(|_| reason.unwrap_or_else(|| "unknown".into())),
        });
    }
    Ok(out)
}

fn histogram(conn: &Connection, q: &HistogramQuery) -> Result<Vec<Bucket>, StoreError> {
    let since = usec(q.since);
    let width = q.bucket_usec.max(1);
    let until = since.saturating_add(width.saturating_mul(i64::from(q.buckets)));
    let mut sql = String::from(
        "SELECT jail, (banned_at - ?1) / ?2 AS bucket, count(*) FROM history
         WHERE banned_at >= ?1 AND banned_at < ?3",
    );
    let mut args: Vec<rusqlite::types::Value> = vec![since.into(), width.into(), until.into()];
    if let Some(j) = &q.jail {
        args.push(j.clone().into());
        sql.push_str(" AND jail = ?4");
    }
    sql.push_str(" GROUP BY jail, bucket ORDER BY jail, bucket");
    let mut st = conn.prepare(&sql)?;
    let rows = st.query_map(rusqlite::params_from_iter(args), |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, i64>(1)?,
            r.get::<_, i64>(2)?,
        ))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (jail, index, count) = row?;
        out.push(Bucket {
            jail,
            index: u32::try_from(index).unwrap_or(u32::MAX),
            count: u32::try_from(count).unwrap_or(u32::MAX),
        });
    }
    Ok(out)
}

/// The state database. One writer: the daemon's core.
pub struct Store {
    conn: Connection,
    path: PathBuf,
    /// The schema was created by this open (no database, or an empty one).
    fresh: bool,
}

/// One batch of [`Changes`] inside a transaction.
fn apply(tx: &rusqlite::Transaction<'_>, changes: &Changes) -> Result<(), StoreError> {
    let mut forget = tx.prepare_cached("DELETE FROM failures WHERE jail = ?1 AND addr = ?2")?;
    for (jail, addr) in &changes.forget {
        forget.execute(params![jail, addr.to_string()])?;
    }
    let mut add = tx.prepare_cached(
        "INSERT INTO failures (jail, addr, time, attempts) VALUES (?1, ?2, ?3, ?4)",
    )?;
    for f in &changes.failures {
        add.execute(params![
            f.jail,
            f.addr.to_string(),
            usec(f.time),
            f.attempts
        ])?;
    }
    let mut ban = tx.prepare_cached(
            "INSERT OR REPLACE INTO bans (jail, net, banned_at, expires_at, failures, announced) VALUES (?1, ?2, ?3, ?4, ?5, 0)",
        )?;
    let mut hist = tx.prepare_cached(
        "INSERT INTO history (jail, addr, banned_at, bantime, failures, prefix)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?;
    for b in &changes.bans {
        let expires = b.expires_at.map(usec);
        ban.execute(params![
            b.jail,
            b.net.to_string(),
            usec(b.banned_at),
            expires,
            b.failures
        ])?;
        let bantime = expires.map(|e| e - usec(b.banned_at));
        let prefix = (b.net.prefix_len() != b.net.max_prefix_len()).then_some(b.net.prefix_len());
        hist.execute(params![
            b.jail,
            b.net.addr().to_string(),
            usec(b.banned_at),
            bantime,
            b.failures,
            prefix
        ])?;
    }
    for b in &changes.updates {
        ban.execute(params![
            b.jail,
            b.net.to_string(),
            usec(b.banned_at),
            b.expires_at.map(usec),
            b.failures
        ])?;
    }
    let mut unban = tx.prepare_cached("DELETE FROM bans WHERE jail = ?1 AND net = ?2")?;
    for (jail, net) in &changes.unbans {
        unban.execute(params![jail, net.to_string()])?;
    }
    let mut end = tx.prepare_cached(
        // A ban made later in the same batch stays open.
        "UPDATE history SET ended_at = ?3, reason = ?4
             WHERE addr = ?1 AND jail = ?2 AND ended_at IS NULL AND banned_at <= ?3",
    )?;
    for e in &changes.ended {
        end.execute(params![
            e.net.addr().to_string(),
            e.jail,
            usec(e.at),
            e.reason
        ])?;
    }
    let mut pos = tx.prepare_cached(
        "INSERT INTO positions (source, value) VALUES (?1, ?2)
             ON CONFLICT (source) DO UPDATE SET value = excluded.value",
    )?;
    for (k, v) in &changes.positions {
        pos.execute(params![k, v])?;
    }
    let mut tot = tx.prepare_cached(
            "INSERT INTO totals (jail, failed, banned) VALUES (?1, ?2, ?3)
             ON CONFLICT (jail) DO UPDATE SET failed = failed + excluded.failed, banned = banned + excluded.banned",
        )?;
    for (jail, (f, b)) in &changes.totals {
        tot.execute(params![jail, *f as i64, *b as i64])?;
    }
    let mut clear = tx.prepare_cached("DELETE FROM sessions WHERE jail = ?1")?;
    for jail in &changes.sessions_cleared {
        clear.execute([jail])?;
    }
    let mut save = tx.prepare_cached(
        "INSERT INTO sessions (jail, source, key, state) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (jail, source, key) DO UPDATE SET state = excluded.state",
    )?;
    let mut gone =
        tx.prepare_cached("DELETE FROM sessions WHERE jail = ?1 AND source = ?2 AND key = ?3")?;
    for ss in &changes.sessions {
        // SQLite integers are signed: the key's bits as they are.
        let key = ss.key as i64;
        match &ss.state {
            Some(state) => save.execute(params![ss.jail, ss.source, key, state])?,
            None => gone.execute(params![ss.jail, ss.source, key])?,
        };
    }
    let mut name = tx.prepare_cached(
        "INSERT OR REPLACE INTO names (id, jail, name, time, attempts, repeat) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?;
    for n in &changes.names {
        name.execute(params![
            n.id,
            n.jail,
            n.name,
            usec(n.time),
            n.attempts,
            n.repeat
        ])?;
    }
    let mut done = tx.prepare_cached("DELETE FROM names WHERE id = ?1")?;
    for id in &changes.names_done {
        done.execute([id])?;
    }
    let mut told =
        tx.prepare_cached("UPDATE bans SET announced = 1 WHERE jail = ?1 AND net = ?2")?;
    for (jail, net) in &changes.announced {
        told.execute(params![jail, net.to_string()])?;
    }
    let mut rdel =
        tx.prepare_cached("DELETE FROM remote_bans WHERE origin = ?1 AND jail = ?2 AND net = ?3")?;
    for (origin, jail, net) in &changes.remote_removed {
        rdel.execute(params![origin, jail, net.to_string()])?;
    }
    let mut radd = tx.prepare_cached(
        "INSERT OR REPLACE INTO remote_bans
             (origin, jail, net, banned_at, expires_at, failures, reason, event_id)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?;
    for b in &changes.remote_bans {
        radd.execute(params![
            b.origin,
            b.jail,
            b.net.to_string(),
            usec(b.banned_at),
            b.expires_at.map(usec),
            b.failures,
            b.reason,
            b.event_id
        ])?;
    }
    Ok(())
}

fn usec(t: Timestamp) -> i64 {
    t.as_microsecond()
}

fn from_usec(u: i64) -> Timestamp {
    Timestamp::from_microsecond(u).unwrap_or(Timestamp::UNIX_EPOCH)
}

impl Store {
    /// Open (creating and migrating as needed) the database in `dir`.
    pub fn open(dir: &Path) -> Result<Store, StoreError> {
        let path = dir.join(DB_FILE);
        let conn = Connection::open(&path).map_err(|source| StoreError::Open {
            path: path.clone(),
            source,
        })?;
        Self::setup(conn, path)
    }

    /// An in-memory store (tests, `backend = none` dry runs).
    pub fn in_memory() -> Result<Store, StoreError> {
        let conn = Connection::open_in_memory()?;
        Self::setup(conn, PathBuf::from(":memory:"))
    }

    fn setup(conn: Connection, path: PathBuf) -> Result<Store, StoreError> {
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        // Small page cache: the daemon's RSS matters more than query speed.
        conn.pragma_update(None, "cache_size", -512)?;
        let mut store = Store {
            conn,
            path,
            fresh: false,
        };
        // First whether the file is ours to use (sound, of a schema we
        // know): one that is not is left byte for byte as it was, so it
        // can be set aside unchanged.
        store.check()?;
        store.migrate()?;
        // WAL: readers never block the writer, and a committed transaction
        // survives a process crash (SIGKILL). NORMAL sync is crash-safe for
        // the process; a power loss may lose the last commits, never corrupt.
        store.conn.pragma_update(None, "journal_mode", "WAL")?;
        store.conn.pragma_update(None, "synchronous", "NORMAL")?;
        store.conn.pragma_update(None, "foreign_keys", "ON")?;
        Ok(store)
    }

    /// Whether this open created the schema: a new (or emptied) database,
    /// which knows nothing of the bans in force.
    pub fn is_fresh(&self) -> bool {
        self.fresh
    }

    /// Is the file a sound database? (`PRAGMA quick_check`: every page
    /// and index readable; linear in the file's size.)
    fn check(&self) -> Result<(), StoreError> {
        let corrupt = |problem: String| StoreError::Corrupt {
            path: self.path.clone(),
            problem,
        };
        let mut st = self
            .conn
            .prepare("PRAGMA quick_check(5)")
            .map_err(|e| corrupt(e.to_string()))?;
        let rows: Vec<String> = st
            .query_map([], |r| r.get::<_, String>(0))
            .and_then(|rows| rows.collect())
            .map_err(|e| corrupt(e.to_string()))?;
        if rows.len() == 1 && rows[0] == "ok" {
            Ok(())
        } else {
            Err(corrupt(rows.join("; ")))
        }
    }

    /// The database path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A second, read-only connection to the same database (not for
    /// in-memory stores).
    pub fn reader(&self) -> Result<Reader, StoreError> {
        use rusqlite::OpenFlags;
        let open = |path: &Path| {
            let conn = Connection::open_with_flags(
                path,
                OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )?;
            conn.pragma_update(None, "cache_size", -512)?;
            conn.busy_timeout(std::time::Duration::from_secs(5))?;
            Ok::<_, rusqlite::Error>(conn)
        };
        if self.path == Path::new(":memory:") {
            return Err(StoreError::Open {
                path: self.path.clone(),
                source: rusqlite::Error::InvalidPath(self.path.clone()),
            });
        }
        let conn = open(&self.path).map_err(|source| StoreError::Open {
            path: self.path.clone(),
            source,
        })?;
        Ok(Reader { conn })
    }

    #[cfg(test)]
    fn reader_for_tests(&self) -> &Connection {
        &self.conn
    }

    /// [`Reader::history`] on this connection.
    pub fn history(&self, q: &HistoryQuery) -> Result<Vec<HistoryEntry>, StoreError> {
        history(&self.conn, q)
    }

    fn migrate(&mut self) -> Result<(), StoreError> {
        let version: i64 = self
            .conn
            .pragma_query_value(None, "user_version", |r| r.get(0))?;
        let known = MIGRATIONS.len() as i64;
        if version > known {
            return Err(StoreError::TooNew {
                path: self.path.clone(),
                found: version,
                known,
            });
        }
        self.fresh = version == 0;
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
            let to = i as i64 + 1;
            let path = self.path.clone();
            let failed = |source| StoreError::Migration {
                path: path.clone(),
                to,
                source,
            };
            let tx = self.conn.transaction().map_err(failed)?;
            tx.execute_batch(sql).map_err(failed)?;
            tx.pragma_update(None, "user_version", to).map_err(failed)?;
            tx.commit().map_err(failed)?;
        }
        Ok(())
    }

    /// The schema version in use.
    pub fn schema_version(&self) -> Result<i64, StoreError> {
        Ok(self
            .conn
            .pragma_query_value(None, "user_version", |r| r.get(0))?)
    }

    /// Read what the daemon resumes from; failures older than
    /// `failures_since` are left out.
    pub fn load(&self, failures_since: Timestamp) -> Result<Loaded, StoreError> {
        let mut out = Loaded::default();
        self.for_each_ban(|b| out.bans.push(b))?;
        self.load_rest(failures_since, out)
    }

    /// Every active ban, one at a time (a million bans need not sit in a
    /// vector on their way into the daemon's index).
    pub fn for_each_ban(&self, f: impl FnMut(Ban)) -> Result<(), StoreError> {
        self.each_ban_where("1", f)
    }

    /// The bans matching `condition` (SQL over the bans table), one at a
    /// time. A row that does not parse is skipped, not fatal: the rest of
    /// the bans must still be enforced.
    fn each_ban_where(
        &self,
        condition: &'static str,
        mut f: impl FnMut(Ban),
    ) -> Result<(), StoreError> {
        let mut st = self.conn.prepare(&format!(
            "SELECT jail, net, banned_at, expires_at, failures FROM bans WHERE {condition}"
        ))?;
        let rows = st.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, i64>(2)?,
                r.get::<_, Option<i64>>(3)?,
                r.get::<_, i64>(4)?,
            ))
        })?;
        for row in rows {
            let (jail, net, banned_at, expires_at, failures) = row?;
            let Ok(net) = net.parse::<IpNet>() else {
                continue;
            };
            f(Ban {
                jail,
                net,
                banned_at: from_usec(banned_at),
                expires_at: expires_at.map(from_usec),
                failures: u32::try_from(failures).unwrap_or(0),
            });
        }
        Ok(())
    }

    /// [`load`](Self::load) without the bans.
    pub fn load_rest(
        &self,
        failures_since: Timestamp,
        mut out: Loaded,
    ) -> Result<Loaded, StoreError> {
        let mut st = self.conn.prepare(
            "SELECT jail, addr, time, attempts FROM failures WHERE time >= ?1 ORDER BY time",
        )?;
        let rows = st.query_map([usec(failures_since)], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, i64>(2)?,
                r.get::<_, i64>(3)?,
            ))
        })?;
        for row in rows {
            let (jail, addr, time, attempts) = row?;
            let Ok(addr) = addr.parse() else { continue };
            out.failures.push(StoredFailure {
                jail,
                addr,
                time: from_usec(time),
                attempts: u32::try_from(attempts).unwrap_or(1),
            });
        }
        let mut st = self.conn.prepare("SELECT source, value FROM positions")?;
        for row in st.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))? {
            let (k, v) = row?;
            out.positions.insert(k, v);
        }
        let mut st = self
            .conn
            .prepare("SELECT jail, failed, banned FROM totals")?;
        for row in st.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, i64>(2)?,
            ))
        })? {
            let (j, f, b) = row?;
            out.totals.insert(j, (f.max(0) as u64, b.max(0) as u64));
        }
        let mut st = self
            .conn
            .prepare("SELECT jail, source, key, state FROM sessions")?;
        for row in st.query_map([], |r| {
            Ok(StoredSession {
                jail: r.get(0)?,
                source: r.get(1)?,
                key: r.get::<_, i64>(2)? as u64,
                state: Some(r.get(3)?),
            })
        })? {
            out.sessions.push(row?);
        }
        let mut st = self
            .conn
            .prepare("SELECT id, jail, name, time, attempts, repeat FROM names ORDER BY id")?;
        for row in st.query_map([], |r| {
            Ok(StoredName {
                id: r.get(0)?,
                jail: r.get(1)?,
                name: r.get(2)?,
                time: from_usec(r.get(3)?),
                attempts: u32::try_from(r.get::<_, i64>(4)?).unwrap_or(1),
                repeat: r.get(5)?,
            })
        })? {
            out.names.push(row?);
        }
        Ok(out)
    }

    /// Write `changes` in one transaction.
    pub fn commit(&mut self, changes: &Changes) -> Result<(), StoreError> {
        self.commit_all(std::slice::from_ref(changes))
    }

    /// Write several batches, in order, in one transaction (batches that
    /// could not be written before, then the new one): all or nothing.
    pub fn commit_all(&mut self, batches: &[Changes]) -> Result<(), StoreError> {
        if batches.iter().all(Changes::is_empty) {
            return Ok(());
        }
        let tx = self.conn.transaction()?;
        for changes in batches {
            apply(&tx, changes)?;
        }
        tx.commit()?;
        Ok(())
    }

    /// How many times `addr` was banned before (in `jail`, or in any jail
    /// when `jail` is `None`), within the history kept.
    pub fn previous_bans(&self, jail: Option<&str>, addr: IpAddr) -> Result<u32, StoreError> {
        let n: i64 = match jail {
            Some(j) => self.conn.query_row(
                "SELECT count(*) FROM history WHERE addr = ?1 AND jail = ?2",
                params![addr.to_string(), j],
                |r| r.get(0),
            )?,
            None => self.conn.query_row(
                "SELECT count(*) FROM history WHERE addr = ?1",
                params![addr.to_string()],
                |r| r.get(0),
            )?,
        };
        Ok(u32::try_from(n).unwrap_or(u32::MAX))
    }

    /// Bans in force whose journal event may not have been logged (a crash
    /// between their commit and the event).
    pub fn unannounced(&self) -> Result<Vec<Ban>, StoreError> {
        let mut out = Vec::new();
        self.each_ban_where("announced = 0", |b| out.push(b))?;
        Ok(out)
    }

    /// The active ban of `net` in `jail`, if any.
    pub fn active_ban(&self, jail: &str, net: IpNet) -> Result<Option<Ban>, StoreError> {
        Ok(self
            .conn
            .query_row(
                "SELECT banned_at, expires_at, failures FROM bans WHERE jail = ?1 AND net = ?2",
                params![jail, net.to_string()],
                |r| {
                    Ok(Ban {
                        jail: jail.to_string(),
                        net,
                        banned_at: from_usec(r.get(0)?),
                        expires_at: r.get::<_, Option<i64>>(1)?.map(from_usec),
                        failures: u32::try_from(r.get::<_, i64>(2)?).unwrap_or(0),
                    })
                },
            )
            .optional()?)
    }

    /// Forget history older than `history_before` and failures older than
    /// `failures_before`, so the file stays small. Returns rows removed.
    pub fn purge(
        &mut self,
        history_before: Timestamp,
        failures_before: Timestamp,
    ) -> Result<usize, StoreError> {
        let tx = self.conn.transaction()?;
        let mut n = tx.execute(
            "DELETE FROM history WHERE banned_at < ?1",
            [usec(history_before)],
        )?;
        n += tx.execute(
            "DELETE FROM failures WHERE time < ?1",
            [usec(failures_before)],
        )?;
        tx.commit()?;
        Ok(n)
    }

    /// Give back SQLite's page cache and other memory it can free (it
    /// keeps up to its cache size of pages from the last writes and
    /// queries): for an idle daemon.
    pub fn shrink_memory(&self) {
        // Only an optimisation: a failure leaves the memory where it was.
        let _ = self.conn.execute_batch("PRAGMA shrink_memory");
    }

    /// Every remote ban held (fleet), skipping rows that do not parse.
    pub fn remote_bans(&self) -> Result<Vec<RemoteBan>, StoreError> {
        let mut st = self.conn.prepare(
            "SELECT origin, jail, net, banned_at, expires_at, failures, reason, event_id
             FROM remote_bans",
        )?;
        let rows = st.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, i64>(3)?,
                r.get::<_, Option<i64>>(4)?,
                r.get::<_, i64>(5)?,
                r.get::<_, String>(6)?,
                r.get::<_, String>(7)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (origin, jail, net, banned_at, expires_at, failures, reason, event_id) = row?;
            let Ok(net) = net.parse::<IpNet>() else {
                continue;
            };
            out.push(RemoteBan {
                origin,
                jail,
                net,
                banned_at: from_usec(banned_at),
                expires_at: expires_at.map(from_usec),
                failures: u32::try_from(failures).unwrap_or(0),
                reason,
                event_id,
            });
        }
        Ok(out)
    }

    /// Drop everything of a jail that no longer exists (its bans are
    /// lifted by the caller); history stays for escalation.
    pub fn drop_jail(&mut self, jail: &str) -> Result<(), StoreError> {
        let tx = self.conn.transaction()?;
        tx.execute("DELETE FROM bans WHERE jail = ?1", [jail])?;
        tx.execute("DELETE FROM failures WHERE jail = ?1", [jail])?;
        tx.execute("DELETE FROM sessions WHERE jail = ?1", [jail])?;
        tx.execute("DELETE FROM names WHERE jail = ?1", [jail])?;
        tx.commit()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + s).unwrap()
    }

    fn ban(jail: &str, net: &str, at: i64, until: Option<i64>) -> Ban {
        Ban {
            jail: jail.into(),
            net: net.parse().unwrap(),
            banned_at: t(at),
            expires_at: until.map(t),
            failures: 3,
        }
    }

    #[test]
    fn a_batch_commits_atomically_and_reloads() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut s = Store::open(dir.path()).unwrap();
            let mut c = Changes::default();
            c.failures.push(StoredFailure {
                jail: "sshd".into(),
                addr: "192.0.2.1".parse().unwrap(),
                time: t(5),
                attempts: 1,
            });
            c.bans.push(ban("sshd", "192.0.2.9/32", 10, Some(610)));
            c.bans.push(ban("sshd", "2001:db8::/64", 10, None));
            c.positions.push(("journal".into(), "s=abc;i=1".into()));
            c.totals.insert("sshd".into(), (4, 2));
            s.commit(&c).unwrap();
        }
        let s = Store::open(dir.path()).unwrap();
        assert_eq!(s.schema_version().unwrap(), MIGRATIONS.len() as i64);
        let l = s.load(t(0)).unwrap();
        assert_eq!(l.bans.len(), 2);
        assert!(l.bans.contains(&ban("sshd", "2001:db8::/64", 10, None)));
        assert_eq!(l.failures.len(), 1);
        assert_eq!(l.positions["journal"], "s=abc;i=1");
        assert_eq!(l.totals["sshd"], (4, 2));
        assert_eq!(
            s.previous_bans(Some("sshd"), "192.0.2.9".parse().unwrap())
                .unwrap(),
            1
        );
        assert_eq!(
            s.previous_bans(Some("other"), "192.0.2.9".parse().unwrap())
                .unwrap(),
            0
        );
        assert_eq!(
            s.previous_bans(None, "192.0.2.9".parse().unwrap()).unwrap(),
            1
        );
        // Failures before the horizon are not loaded.
        assert!(s.load(t(6)).unwrap().failures.is_empty());
    }

    #[test]
    fn unbans_forget_and_purge() {
        let mut s = Store::in_memory().unwrap();
        let mut c = Changes::default();
        c.bans.push(ban("sshd", "192.0.2.9/32", 10, Some(20)));
        c.failures.push(StoredFailure {
            jail: "sshd".into(),
            addr: "192.0.2.1".parse().unwrap(),
            time: t(5),
            attempts: 2,
        });
        s.commit(&c).unwrap();
        let mut c = Changes::default();
        c.unbans
            .push(("sshd".into(), "192.0.2.9/32".parse().unwrap()));
        c.forget.push(("sshd".into(), "192.0.2.1".parse().unwrap()));
        c.totals.insert("sshd".into(), (1, 0));
        s.commit(&c).unwrap();
        let l = s.load(t(0)).unwrap();
        assert!(l.bans.is_empty() && l.failures.is_empty());
        assert_eq!(
            s.previous_bans(Some("sshd"), "192.0.2.9".parse().unwrap())
                .unwrap(),
            1
        );
        assert_eq!(s.purge(t(11), t(0)).unwrap(), 1);
        assert_eq!(
            s.previous_bans(Some("sshd"), "192.0.2.9".parse().unwrap())
                .unwrap(),
            0
        );
    }

    fn ended(jail: &str, net: &str, at: i64, reason: &str) -> Ended {
        Ended {
            jail: jail.into(),
            net: net.parse().unwrap(),
            at: t(at),
            reason: reason.into(),
        }
    }

    fn all_history(s: &Store) -> Vec<HistoryEntry> {
        s.history(&HistoryQuery {
            jail: None,
            net: None,
            since: t(-1_000_000),
            limit: 100,
        })
        .unwrap()
    }

    #[test]
    fn history_keeps_end_failures_and_reason() {
        let mut s = Store::in_memory().unwrap();
        let mut c = Changes::default();
        c.bans.push(ban("sshd", "192.0.2.9/32", 10, Some(610)));
        c.bans.push(ban("web", "2001:db8::/64", 20, None));
        s.commit(&c).unwrap();
        let h = all_history(&s);
        assert_eq!(h.len(), 2);
        assert_eq!(h[0].net, "2001:db8::/64".parse::<IpNet>().unwrap());
        assert_eq!((h[0].ended_at, h[0].reason.as_deref()), (None, None));
        assert_eq!(h[1].failures, 3);

        // It ends; the same address is banned again in the same batch.
        let mut c = Changes::default();
        c.unbans
            .push(("sshd".into(), "192.0.2.9/32".parse().unwrap()));
        c.ended.push(ended("sshd", "192.0.2.9/32", 30, "manual"));
        c.bans.push(ban("sshd", "192.0.2.9/32", 40, Some(100)));
        s.commit(&c).unwrap();
        let h = all_history(&s);
        assert_eq!(h.len(), 3);
        assert_eq!(h[0].banned_at, t(40));
        assert_eq!(h[0].ended_at, None, "the new ban is in force");
        let old = h.iter().find(|e| e.banned_at == t(10)).unwrap();
        assert_eq!(old.ended_at, Some(t(30)));
        assert_eq!(old.reason.as_deref(), Some("manual"));

        // Filters: jail, address (a range as banned), since, limit.
        let q = |jail: Option<&str>, net: Option<&str>, since: i64, limit: u32| HistoryQuery {
            jail: jail.map(Into::into),
            net: net.map(|n| n.parse().unwrap()),
            since: t(since),
            limit,
        };
        assert_eq!(s.history(&q(Some("web"), None, 0, 10)).unwrap().len(), 1);
        assert_eq!(
            s.history(&q(None, Some("192.0.2.9/32"), 0, 10))
                .unwrap()
                .len(),
            2
        );
        assert_eq!(
            s.history(&q(None, Some("2001:db8::/64"), 0, 10))
                .unwrap()
                .len(),
            1
        );
        assert!(
            s.history(&q(None, Some("2001:db8::/128"), 0, 10))
                .unwrap()
                .is_empty()
        );
        assert_eq!(s.history(&q(None, None, 15, 10)).unwrap().len(), 2);
        assert_eq!(s.history(&q(None, None, 0, 1)).unwrap().len(), 1);
    }

    #[test]
    fn histogram_counts_bans_per_bucket_and_jail() {
        let mut s = Store::in_memory().unwrap();
        let mut c = Changes::default();
        for (jail, at) in [("a", 0), ("a", 59), ("a", 60), ("b", 61), ("a", 3600)] {
            c.bans
                .push(ban(jail, &format!("192.0.2.{}/32", at % 250), at, None));
        }
        s.commit(&c).unwrap();
        let r = s.reader_for_tests();
        let q = |jail: Option<&str>| HistogramQuery {
            jail: jail.map(Into::into),
            since: t(0),
            bucket_usec: 60_000_000,
            buckets: 60,
        };
        let b = |jail: &str, index, count| Bucket {
            jail: jail.into(),
            index,
            count,
        };
        // The ban at 3600 s is in bucket 60: outside.
        assert_eq!(
            histogram(r, &q(None)).unwrap(),
            vec![b("a", 0, 2), b("a", 1, 1), b("b", 1, 1)]
        );
        assert_eq!(histogram(r, &q(Some("b"))).unwrap(), vec![b("b", 1, 1)]);
    }

    #[test]
    fn a_reader_sees_commits_and_cannot_write() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(dir.path()).unwrap();
        let r = s.reader().unwrap();
        let q = HistoryQuery {
            jail: None,
            net: None,
            since: t(0),
            limit: 10,
        };
        assert!(r.history(&q).unwrap().is_empty());
        let mut c = Changes::default();
        c.bans.push(ban("sshd", "192.0.2.9/32", 10, Some(20)));
        s.commit(&c).unwrap();
        assert_eq!(r.history(&q).unwrap().len(), 1);
        assert!(r.conn.execute("DELETE FROM history", []).is_err());
        assert!(Store::in_memory().unwrap().reader().is_err());
    }

    #[test]
    fn version_1_history_is_migrated() {
        let dir = tempfile::tempdir().unwrap();
        let conn = Connection::open(dir.path().join(DB_FILE)).unwrap();
        conn.execute_batch(MIGRATIONS[0]).unwrap();
        conn.pragma_update(None, "user_version", 1).unwrap();
        let at = |s: i64| t(s).as_microsecond();
        conn.execute_batch(&format!(
            "INSERT INTO bans VALUES ('sshd', '192.0.2.9/32', {b}, NULL, 4);
             INSERT INTO history VALUES ('sshd', '192.0.2.9', {a}, 600000000);
             INSERT INTO history VALUES ('sshd', '192.0.2.9', {b}, NULL);
             INSERT INTO history VALUES ('sshd', '192.0.2.90', {a}, 600000000);
             INSERT INTO history VALUES ('web', '192.0.2.9', {a}, NULL);",
            a = at(0),
            b = at(1000),
        ))
        .unwrap();
        drop(conn);
        let s = Store::open(dir.path()).unwrap();
        assert_eq!(s.schema_version().unwrap(), MIGRATIONS.len() as i64);
        let h = all_history(&s);
        let row = |jail: &str, addr: &str, at: i64| {
            h.iter()
                .find(|e| {
                    e.jail == jail && e.net.addr().to_string() == addr && e.banned_at == t(at)
                })
                .unwrap()
                .clone()
        };
        // The ban in force stays open; the earlier one of that address,
        // and the others, end (when is not known: expiry, or start).
        assert_eq!(row("sshd", "192.0.2.9", 1000).ended_at, None);
        let old = row("sshd", "192.0.2.9", 0);
        assert_eq!(old.ended_at, Some(t(600)));
        assert_eq!(old.reason.as_deref(), Some("unknown"));
        assert_eq!(row("sshd", "192.0.2.90", 0).ended_at, Some(t(600)));
        assert_eq!(row("web", "192.0.2.9", 0).ended_at, Some(t(0)));
        assert_eq!(old.failures, 0);
    }

    #[test]
    fn a_newer_schema_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        drop(Store::open(dir.path()).unwrap());
        let conn = Connection::open(dir.path().join(DB_FILE)).unwrap();
        conn.pragma_update(None, "user_version", 99).unwrap();
        drop(conn);
        assert!(matches!(
            Store::open(dir.path()),
            Err(StoreError::TooNew { found: 99, .. })
        ));
    }

    #[test]
    fn many_failures_commit_quickly() {
        let mut s = Store::in_memory().unwrap();
        let mut c = Changes::default();
        for i in 0..20_000u32 {
            c.failures.push(StoredFailure {
                jail: "sshd".into(),
                addr: IpAddr::from(std::net::Ipv4Addr::from(i)),
                time: t(1),
                attempts: 1,
            });
        }
        s.commit(&c).unwrap();
        assert_eq!(s.load(t(0)).unwrap().failures.len(), 20_000);
    }

    #[test]
    fn remote_bans_and_fleet_positions_commit_together() {
        let mut s = Store::in_memory().unwrap();
        let rb = |origin: &str, net: &str| RemoteBan {
            origin: origin.into(),
            jail: "sshd".into(),
            net: net.parse().unwrap(),
            banned_at: t(0),
            expires_at: Some(t(600)),
            failures: 5,
            reason: "failures".into(),
            event_id: "1700000000000-0".into(),
        };
        let c = Changes {
            remote_bans: vec![rb("a", "192.0.2.1/32"), rb("b", "2001:db8::/64")],
            positions: vec![("fleet:a".into(), "1700000000000-0".into())],
            ..Changes::default()
        };
        s.commit(&c).unwrap();
        let mut got = s.remote_bans().unwrap();
        got.sort_by(|x, y| x.origin.cmp(&y.origin));
        assert_eq!(got, [rb("a", "192.0.2.1/32"), rb("b", "2001:db8::/64")]);
        let c = Changes {
            remote_removed: vec![("a".into(), "sshd".into(), "192.0.2.1/32".parse().unwrap())],
            ..Changes::default()
        };
        s.commit(&c).unwrap();
        assert_eq!(s.remote_bans().unwrap(), [rb("b", "2001:db8::/64")]);
        assert_eq!(
            s.load(t(0))
                .unwrap()
                .positions
                .get("fleet:a")
                .map(String::as_str),
            Some("1700000000000-0")
        );
    }
}
