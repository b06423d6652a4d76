//! Benchmark client for the control API (run by bench/dbus-control.sh).
//!
//! ```text
//! control_bench (--socket PATH | --bus ADDRESS) --pid DAEMON_PID [--bans N] [--jail NAME]
//! ```
//!
//! Populates N bans (many calls in flight), times ListBans over all of
//! them, times 1,000 Ban calls in a row (each awaited before the next),
//! and measures the daemon's CPU (utime+stime from /proc/PID/stat) while
//! it is idle and while a client polls status ten times a second the way
//! `jailwarden status` does (Manager GetAll + GetManagedObjects).

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use jailwarden::control::dbus::ManagerProxy;
use jailwarden::control::{BUS_NAME, MANAGER_INTERFACE, MANAGER_PATH};
use zbus::Connection;
use zbus::proxy::CacheProperties;

struct Args {
    socket: Option<String>,
    bus: Option<String>,
    pid: u32,
    bans: u32,
    jail: String,
}

fn args() -> Args {
    let mut a = Args {
        socket: None,
        bus: None,
        pid: 0,
        bans: 100_000,
        jail: "bench".into(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let v = it.next().unwrap_or_default();
        match k.as_str() {
            "--socket" => a.socket = Some(v),
            "--bus" => a.bus = Some(v),
            "--pid" => a.pid = v.parse().unwrap_or(0),
            "--bans" => a.bans = v.parse().unwrap_or(a.bans),
            "--jail" => a.jail = v,
            _ => {
                eprintln!(
                    "usage: control_bench (--socket PATH | --bus ADDRESS) --pid PID [--bans N] [--jail NAME]"
                );
                std::process::exit(2);
            }
        }
    }
    if a.pid == 0 || (a.socket.is_none() && a.bus.is_none()) {
        eprintln!("control_bench: --pid and --socket or --bus are required");
        std::process::exit(2);
    }
    a
}

async fn connect(a: &Args) -> zbus::Result<Connection> {
    if let Some(path) = &a.socket {
        let stream = std::os::unix::net::UnixStream::connect(path)
            .map_err(|e| zbus::Error::InputOutput(Arc::new(e)))?;
        zbus::connection::Builder::unix_stream(stream)
            .p2p()
            .build()
            .await
    } else {
        zbus::connection::Builder::address(a.bus.as_deref().unwrap_or_default())
            .build()
            .await
    }
}

/// The n-th address of 198.18.0.0/15 (RFC 2544 benchmarking range).
fn address(n: u32) -> String {
    Ipv4Addr::from(u32::from(Ipv4Addr::new(198, 18, 0, 0)) + n).to_string()
}

/// utime + stime of a process, in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    // After ")": index 0 is field 3; utime is field 14, stime 15.
    let get = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    get(14 - 3) + get(15 - 3)
}

fn clk_tck() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}

/// The daemon's CPU share over `secs` seconds while `work` runs.
async fn cpu_while<F: std::future::Future<Output = ()>>(pid: u32, secs: u64, work: F) -> f64 {
    let t0 = Instant::now();
    let c0 = cpu_ticks(pid);
    let _ = tokio::time::timeout(Duration::from_secs(secs), work).await;
    let ticks = cpu_ticks(pid) - c0;
    ticks as f64 / clk_tck() / t0.elapsed().as_secs_f64() * 100.0
}

async fn poll_status(conn: &Connection) -> zbus::Result<usize> {
    let props = zbus::fdo::PropertiesProxy::builder(conn)
        .destination(BUS_NAME)
        .path(MANAGER_PATH)
        .cache_properties(CacheProperties::No)
        .build()
        .await?;
    let m = props
        .get_all(zbus::names::InterfaceName::from_static_str_unchecked(
            MANAGER_INTERFACE,
        ))
        .await?;
    let om = zbus::fdo::ObjectManagerProxy::builder(conn)
        .destination(BUS_NAME)
        .path(MANAGER_PATH)
        .cache_properties(CacheProperties::No)
        .build()
        .await?;
    Ok(m.len() + om.get_managed_objects().await?.len())
}

async fn run(a: Args) -> Result<(), Box<dyn std::error::Error>> {
    let conn = connect(&a).await?;
    let mgr = ManagerProxy::builder(&conn)
        .cache_properties(CacheProperties::No)
        .build()
        .await?;
    let transport = if a.socket.is_some() {
        "control socket"
    } else {
        "system bus"
    };
    println!("transport: {transport}");

    let have = mgr.list_bans(&a.jail).await.map(|v| v.len()).unwrap_or(0) as u32;
    if have < a.bans {
        let t = Instant::now();
        let workers = 32u32;
        let mut tasks = Vec::new();
        for w in 0..workers {
            let mgr = mgr.clone();
            let jail = a.jail.clone();
            let (from, to) = (have, a.bans);
            tasks.push(tokio::spawn(async move {
                let mut n = from + w;
                while n < to {
                    if let Err(e) = mgr.ban(&jail, &address(n), 3_600_000_000).await {
                        eprintln!("ban {}: {e}", address(n));
                    }
                    n += workers;
                }
            }));
        }
        for t in tasks {
            let _ = t.await;
        }
        let secs = t.elapsed().as_secs_f64();
        println!(
            "populate: {} bans in {secs:.1} s ({:.0} bans/s, {workers} calls in flight)",
            a.bans - have,
            f64::from(a.bans - have) / secs
        );
    }

    // Let the daemon finish announcing the bans (a Banned signal each),
    // and ask on a fresh connection that has no signals queued: a client
    // that just connected, as `jailwarden bans` is.
    tokio::time::sleep(Duration::from_secs(3)).await;
    drop(mgr);
    drop(conn);
    let conn = connect(&a).await?;
    let mgr = ManagerProxy::builder(&conn)
        .cache_properties(CacheProperties::No)
        .build()
        .await?;
    let mut times = Vec::new();
    let mut count = 0;
    for _ in 0..9 {
        let t = Instant::now();
        count = mgr.list_bans("").await?.len();
        times.push(t.elapsed());
    }
    times.sort();
    println!(
        "ListBans(\"\") with {count} bans: median {:.1} ms, best {:.1} ms, worst {:.1} ms of 9 (limit 200 ms)",
        times[4].as_secs_f64() * 1e3,
        times[0].as_secs_f64() * 1e3,
        times[8].as_secs_f64() * 1e3
    );

    let base = a.bans + 1000;
    let t = Instant::now();
    for i in 0..1000 {
        mgr.ban(&a.jail, &address(base + i), 3_600_000_000).await?;
    }
    let secs = t.elapsed().as_secs_f64();
    println!(
        "1000 Ban calls in a row: {:.0} ms ({:.2} ms per call; limit 1 s)",
        secs * 1e3,
        secs
    );

    tokio::time::sleep(Duration::from_secs(1)).await;
    let idle = cpu_while(a.pid, 10, std::future::pending::<()>()).await;
    println!("daemon CPU idle: {idle:.2} % over 10 s");
    let polls = std::cell::Cell::new(0u32);
    let busy = cpu_while(a.pid, 10, async {
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        loop {
            tick.tick().await;
            if poll_status(&conn).await.is_ok() {
                polls.set(polls.get() + 1);
            }
        }
    })
    .await;
    println!(
        "daemon CPU while status is polled 10/s: {busy:.2} % over 10 s ({} polls; limit 1 %)",
        polls.get()
    );
    Ok(())
}

fn main() {
    let a = args();
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("control_bench: {e}");
            std::process::exit(1);
        }
    };
    if let Err(e) = rt.block_on(run(a)) {
        eprintln!("control_bench: {e}");
        std::process::exit(1);
    }
}
