//! `--bans`: the bans Fail2ban holds now, from its SQLite database
//! (table `bips`, Fail2ban 0.11 and later), carried over with the time
//! they have left: through the running daemon (D-Bus `Ban`), or, with
//! the daemon stopped, straight into jailwarden's store, where the next
//! start puts them in the firewall.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use ipnet::IpNet;
use jiff::Timestamp;

use crate::ban::Ban;
use crate::control::dbus::{ManagerProxy, PERMANENT_USEC};
use crate::store::{Changes, Store};

/// One of Fail2ban's bans in force.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fail2banBan {
    pub jail: String,
    pub ip: String,
    /// Unix seconds.
    pub timeofban: i64,
    /// Seconds; negative: permanent.
    pub bantime: i64,
    pub bancount: i64,
}

impl Fail2banBan {
    /// Seconds left at `now` (`None`: permanent).
    pub fn left(&self, now: i64) -> Option<i64> {
        (self.bantime >= 0).then(|| self.timeofban + self.bantime - now)
    }
}

/// Fail2ban's bans in force at `now` (Unix seconds).
pub fn current(db: &Path, now: i64) -> Result<Vec<Fail2banBan>, String> {
    let conn = rusqlite::Connection::open_with_flags(
        db,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| format!("{}: cannot open Fail2ban's database: {e}", db.display()))?;
    let has_bips: bool = conn
        .query_row(
            "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'bips'",
            [],
            |r| r.get::<_, i64>(0),
        )
        .map(|n| n > 0)
        .map_err(|e| format!("{}: not a Fail2ban database: {e}", db.display()))?;
    if !has_bips {
        return Err(format!(
            "{}: no table bips (a Fail2ban database older than 0.11 keeps no ban times)",
            db.display()
        ));
    }
    let mut st = conn
        .prepare(
            "SELECT jail, ip, timeofban, bantime, bancount FROM bips
             WHERE bantime < 0 OR timeofban + bantime > ?1 ORDER BY jail, timeofban, ip",
        )
        .map_err(|e| format!("{}: {e}", db.display()))?;
    let rows = st
        .query_map([now], |r| {
            Ok(Fail2banBan {
                jail: r.get(0)?,
                ip: r.get(1)?,
                timeofban: r.get(2)?,
                bantime: r.get(3)?,
                bancount: r.get(4)?,
            })
        })
        .map_err(|e| format!("{}: {e}", db.display()))?;
    rows.collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{}: {e}", db.display()))
}

/// What happened to the bans.
#[derive(Debug, Default)]
pub struct Outcome {
    pub carried: usize,
    /// `(ban, why)` for each ban not carried over.
    pub skipped: Vec<(Fail2banBan, String)>,
    /// How: "through the running daemon" or "into STORE".
    pub how: String,
}

/// Carry `bans` over. `jails` maps Fail2ban's jail names to the imported
/// ones; the rest are skipped. With `try_daemon`, uses the daemon when
/// it answers at `socket` (or the default places); else writes
/// `state_dir`'s store.
pub fn carry(
    bans: &[Fail2banBan],
    jails: &HashMap<String, String>,
    try_daemon: bool,
    socket: Option<PathBuf>,
    state_dir: &Path,
    now: i64,
) -> Result<Outcome, String> {
    let mut out = Outcome::default();
    let mut todo: Vec<(Fail2banBan, String, IpAddr)> = Vec::new();
    for b in bans {
        let Some(ours) = jails.get(&b.jail) else {
            out.skipped
                .push((b.clone(), "its jail was not imported".into()));
            continue;
        };
        let Some(addr) = crate::addr::parse_addr(&b.ip) else {
            out.skipped.push((
                b.clone(),
                "not an IP address (jailwarden bans addresses)".into(),
            ));
            continue;
        };
        if b.left(now).is_some_and(|l| l < 1) {
            out.skipped.push((b.clone(), "expired meanwhile".into()));
            continue;
        }
        todo.push((b.clone(), ours.clone(), addr));
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))?;
    let daemon = if try_daemon {
        runtime.block_on(crate::control::cli::connect_daemon(socket.clone()))
    } else {
        Err("not asked".to_string())
    };
    match daemon {
        Ok(conn) => {
            out.how = "through the running daemon".into();
            runtime.block_on(async {
                let m = ManagerProxy::new(&conn)
                    .await
                    .map_err(|e| format!("the daemon: {e}"))?;
                for (b, jail, addr) in &todo {
                    let usec = match b.left(now) {
                        None => PERMANENT_USEC,
                        Some(s) => u64::try_from(s).unwrap_or(1).max(1) * 1_000_000,
                    };
                    match m.ban(jail, &addr.to_string(), usec).await {
                        Ok(()) => out.carried += 1,
                        Err(e) => out
                            .skipped
                            .push((b.clone(), format!("the daemon refused: {e}"))),
                    }
                }
                Ok::<(), String>(())
            })?;
        }
        Err(_) => {
            std::fs::create_dir_all(state_dir)
                .map_err(|e| format!("{}: {e}", state_dir.display()))?;
            let mut store = Store::open(state_dir).map_err(|e| e.to_string())?;
            out.how = format!("into {}", store.path().display());
            let mut changes = Changes::default();
            for (b, jail, addr) in &todo {
                let banned_at =
                    Timestamp::from_second(b.timeofban).unwrap_or(Timestamp::UNIX_EPOCH);
                let expires_at = b
                    .left(now)
                    .map(|_| Timestamp::from_second(b.timeofban + b.bantime).unwrap_or(banned_at));
                changes.bans.push(Ban {
                    jail: jail.clone(),
                    net: IpNet::from(*addr),
                    banned_at,
                    expires_at,
                    failures: 0,
                });
                out.carried += 1;
            }
            store.commit(&changes).map_err(|e| e.to_string())?;
            drop(store);
            match_owner(state_dir);
        }
    }
    Ok(out)
}

/// Give the database files the state directory's owner (the daemon runs
/// as its own user and must be able to write what root created here).
fn match_owner(dir: &Path) {
    use std::os::unix::fs::MetadataExt;
    let Ok(meta) = std::fs::metadata(dir) else {
        return;
    };
    for f in [
        crate::store::DB_FILE,
        "jailwarden.sqlite3-wal",
        "jailwarden.sqlite3-shm",
    ] {
        let p = dir.join(f);
        if p.exists() {
            let _ = std::os::unix::fs::chown(&p, Some(meta.uid()), Some(meta.gid()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fail2ban_db(dir: &Path) -> PathBuf {
        let p = dir.join("fail2ban.sqlite3");
        let c = rusqlite::Connection::open(&p).unwrap();
        // Fail2ban 1.0's schema (server/database.py).
        c.execute_batch(
            "CREATE TABLE jails(name TEXT NOT NULL UNIQUE, enabled INTEGER NOT NULL DEFAULT 1);
             CREATE TABLE bips(ip TEXT NOT NULL, jail TEXT NOT NULL, timeofban INTEGER NOT NULL, bantime INTEGER NOT NULL, bancount INTEGER NOT NULL default 1, data JSON, PRIMARY KEY(ip, jail), FOREIGN KEY(jail) REFERENCES jails(name));
             INSERT INTO jails VALUES ('sshd', 1);
             INSERT INTO jails VALUES ('gone', 1);
             INSERT INTO bips VALUES ('192.0.2.1', 'sshd', 1000, 600, 1, '{}');
             INSERT INTO bips VALUES ('192.0.2.2', 'sshd', 1000, 100, 1, '{}');
             INSERT INTO bips VALUES ('2001:db8::1', 'sshd', 1000, -1, 3, '{}');
             INSERT INTO bips VALUES ('host.example', 'sshd', 1000, 600, 1, '{}');
             INSERT INTO bips VALUES ('192.0.2.3', 'gone', 1000, 600, 1, '{}');",
        )
        .unwrap();
        p
    }

    #[test]
    fn reads_the_bans_in_force() {
        let tmp = tempfile::tempdir().unwrap();
        let db = fail2ban_db(tmp.path());
        let bans = current(&db, 1200).unwrap();
        let ips: Vec<&str> = bans.iter().map(|b| b.ip.as_str()).collect();
        assert_eq!(
            ips,
            ["192.0.2.3", "192.0.2.1", "2001:db8::1", "host.example"]
        );
        assert_eq!(bans[1].left(1200), Some(400));
        assert_eq!(bans[2].left(1200), None);
    }

    #[test]
    fn carries_into_the_store_with_the_time_left() {
        let tmp = tempfile::tempdir().unwrap();
        let db = fail2ban_db(tmp.path());
        let now = 1200;
        let bans = current(&db, now).unwrap();
        let jails: HashMap<String, String> = [("sshd".to_string(), "sshd".to_string())].into();
        let state = tmp.path().join("state");
        let out = carry(&bans, &jails, false, None, &state, now).unwrap();
        assert_eq!(out.carried, 2);
        assert!(out.how.starts_with("into "), "{}", out.how);
        let why: Vec<&str> = out.skipped.iter().map(|(_, w)| w.as_str()).collect();
        assert!(
            why.contains(&"its jail was not imported")
                && why.iter().any(|w| w.starts_with("not an IP"))
        );
        let store = Store::open(&state).unwrap();
        let mut got = Vec::new();
        store.for_each_ban(|b| got.push(b)).unwrap();
        got.sort_by_key(|b| b.net.to_string());
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].net.to_string(), "192.0.2.1/32");
        assert_eq!(
            got[0].expires_at,
            Some(Timestamp::from_second(1600).unwrap())
        );
        assert_eq!(got[1].expires_at, None, "permanent stays permanent");
    }
}
