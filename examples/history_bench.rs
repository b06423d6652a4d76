//! Ban history speed (run by bench/history.sh): a state database with N
//! bans over 30 days, all ended, written through the store as the daemon
//! writes them; then the queries the Cockpit page makes (History, newest
//! first, of all and of one address; BanHistogram per hour over a day and
//! per day over 30 days) on the read-only connection, and the upgrade from
//! schema 1 (a database of the same size written before the history kept
//! end times) to the current one.
//!
//! ```text
//! history_bench [N]      (default 1000000)
//! ```

use std::time::Instant;

use ipnet::IpNet;
use jailwarden::ban::Ban;
use jailwarden::store::{Changes, Ended, HistogramQuery, HistoryQuery, Store};
use jiff::{SignedDuration, Timestamp};
use rusqlite::Connection;

fn net(i: u32) -> IpNet {
    IpNet::from(std::net::IpAddr::from(std::net::Ipv4Addr::from(
        0xc633_6400u32.wrapping_add(i % 65_536),
    )))
}

fn main() {
    let n: u32 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let dir = tempfile::tempdir().expect("tempdir");
    let now = Timestamp::now();
    let span = 30 * 86_400 * 1_000_000i64;
    let at = |i: u32| now - SignedDuration::from_micros(span * i64::from(i) / i64::from(n.max(1)));
    let jail = |i: u32| ["sshd", "nginx-http-auth", "postfix", "dovecot"][(i % 4) as usize];

    let t = Instant::now();
    {
        let mut s = Store::open(dir.path()).expect("open");
        let mut i = 0;
        while i < n {
            let mut c = Changes::default();
            for _ in 0..10_000.min(n - i) {
                let b = Ban {
                    jail: jail(i).into(),
                    net: net(i),
                    banned_at: at(i),
                    expires_at: Some(at(i) + SignedDuration::from_mins(10)),
                    failures: 5,
                };
                c.ended.push(Ended {
                    jail: b.jail.clone(),
                    net: b.net,
                    at: at(i) + SignedDuration::from_mins(10),
                    reason: "expired".into(),
                });
                c.unbans.push((b.jail.clone(), b.net));
                c.bans.push(b);
                i += 1;
            }
            s.commit(&c).expect("commit");
        }
    }
    println!(
        "write {n} bans (ban + end, 10k per transaction): {:.2} s",
        t.elapsed().as_secs_f64()
    );

    let s = Store::open(dir.path()).expect("open");
    let r = s.reader().expect("reader");
    let time = |what: &str, f: &dyn Fn() -> usize| {
        let t = Instant::now();
        let rows = f();
        println!(
            "{what}: {rows} rows in {:.1} ms",
            t.elapsed().as_secs_f64() * 1000.0
        );
    };
    let q = |net: Option<IpNet>, limit| HistoryQuery {
        jail: None,
        net,
        since: Timestamp::UNIX_EPOCH,
        limit,
    };
    time("History(\"\", \"\", 0, 1000)", &|| {
        r.history(&q(None, 1000)).expect("q").len()
    });
    time("History(\"\", \"\", 0, 10000)", &|| {
        r.history(&q(None, 10_000)).expect("q").len()
    });
    time("History(\"\", ADDRESS, 0, 1000)", &|| {
        r.history(&q(Some(net(7)), 1000)).expect("q").len()
    });
    let h = |bucket_usec, buckets| HistogramQuery {
        jail: None,
        since: now - SignedDuration::from_micros(bucket_usec * i64::from(buckets)),
        bucket_usec,
        buckets,
    };
    time("BanHistogram per hour, 24 h", &|| {
        r.histogram(&h(3_600_000_000, 24)).expect("q").len()
    });
    time("BanHistogram per day, 30 d", &|| {
        r.histogram(&h(86_400_000_000, 30)).expect("q").len()
    });
    drop(r);
    drop(s);

    // The upgrade: the same rows in schema 1, a few hundred bans in force.
    let old = tempfile::tempdir().expect("tempdir");
    {
        let conn = Connection::open(old.path().join(jailwarden::store::DB_FILE)).expect("open");
        let src = dir.path().join(jailwarden::store::DB_FILE);
        conn.execute_batch(&format!(
            "ATTACH '{}' AS cur;
             CREATE TABLE bans (jail TEXT NOT NULL, net TEXT NOT NULL, banned_at INTEGER NOT NULL,
                 expires_at INTEGER, failures INTEGER NOT NULL, PRIMARY KEY (jail, net));
             CREATE TABLE history (jail TEXT NOT NULL, addr TEXT NOT NULL, banned_at INTEGER NOT NULL, bantime INTEGER);
             CREATE INDEX history_addr ON history (addr, jail);
             CREATE INDEX history_time ON history (banned_at);
             CREATE TABLE failures (jail TEXT NOT NULL, addr TEXT NOT NULL, time INTEGER NOT NULL, attempts INTEGER NOT NULL);
             CREATE INDEX failures_addr ON failures (jail, addr);
             CREATE INDEX failures_time ON failures (time);
             CREATE TABLE positions (source TEXT PRIMARY KEY, value TEXT NOT NULL);
             CREATE TABLE totals (jail TEXT PRIMARY KEY, failed INTEGER NOT NULL DEFAULT 0, banned INTEGER NOT NULL DEFAULT 0);
             INSERT INTO history SELECT jail, addr, banned_at, bantime FROM cur.history;
             INSERT OR IGNORE INTO bans SELECT jail, addr || '/32', banned_at, NULL, 5 FROM cur.history WHERE rowid % 2000 = 0;
             PRAGMA user_version = 1;",
            src.display()
        ))
        .expect("schema 1 copy");
    }
    let t = Instant::now();
    let s = Store::open(old.path()).expect("migrate");
    println!(
        "upgrade schema 1 -> {} with {n} history rows: {:.2} s",
        s.schema_version().expect("version"),
        t.elapsed().as_secs_f64()
    );
}
