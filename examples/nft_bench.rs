//! Benchmark helper for `bench/nft-bans.sh`: drives the nftables backend
//! in the network namespace it is started in (the script starts it under
//! `unshare -n`; run it anywhere else and it changes that namespace's
//! ruleset). Prints `key value` lines for the script.
//!
//! ```text
//! nft_bench script N     nft -f input adding the same N elements (stdout)
//! nft_bench install N    configure jail "bench", then ban N addresses
//!                        (10.0.0.0/8, 1 h) in one ban() call
//! nft_bench probe N SECS JAIL   look 1,000 of the N addresses 10.0.0.0 + i
//!                        up in JAIL's set, again and again for SECS seconds
//!                        (a daemon restart under way must never lose one)
//! nft_bench readback N   install N, then read them back: a new backend
//!                        instance reconciling the same bans (a restart),
//!                        and a full listing by dump
//! ```

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use ipnet::IpNet;
use jailwarden::ban::nftables::Nftables;
use jailwarden::ban::{Ban, Banner, JailFirewall, Verdict};
use jiff::{SignedDuration, Timestamp};

fn main() {
    // RUST_LOG=jailwarden=debug shows the backend's own timings.
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let args: Vec<String> = std::env::args().collect();
    let (Some(mode), Some(n)) = (args.get(1), args.get(2).and_then(|n| n.parse::<u32>().ok()))
    else {
        eprintln!("usage: nft_bench script|install|readback N");
        std::process::exit(2);
    };
    let result = match mode.as_str() {
        "script" => {
            script(n);
            Ok(())
        }
        "install" => install(n).map(|_| ()),
        "readback" => readback(n),
        "probe" => probe(
            n,
            args.get(3).and_then(|s| s.parse().ok()).unwrap_or(5.0),
            args.get(4).map_or("sshd", |s| s.as_str()),
        )
        .map_err(Into::into),
        _ => {
            eprintln!("unknown mode {mode}");
            std::process::exit(2);
        }
    };
    if let Err(e) = result {
        eprintln!("nft_bench: {e}");
        std::process::exit(1);
    }
}

fn addr(i: u32) -> Ipv4Addr {
    Ipv4Addr::from(0x0a00_0000 + i)
}

fn jail() -> JailFirewall {
    JailFirewall {
        jail: "bench".into(),
        ports: vec![],
        protocols: vec![],
        verdict: Verdict::Drop,
        v6_prefix: 128,
        set_size: 0,
    }
}

fn bans(n: u32, now: Timestamp) -> Vec<Ban> {
    (0..n)
        .map(|i| Ban {
            jail: "bench".into(),
            net: IpNet::from(IpAddr::V4(addr(i))),
            banned_at: now,
            expires_at: Some(now + SignedDuration::from_secs(3600)),
            failures: 5,
        })
        .collect()
}

/// The same elements for `nft -f`, in nft's usual chunks.
fn script(n: u32) {
    use std::io::Write;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let mut i = 0;
    while i < n {
        let end = (i + 10_000).min(n);
        let elems: Vec<String> = (i..end)
            .map(|k| format!("{} timeout 3600s", addr(k)))
            .collect();
        let _ = writeln!(
            out,
            "add element inet jailwarden bench-v4 {{ {} }}",
            elems.join(", ")
        );
        i = end;
    }
}

fn rss_kib() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// Reset the peak RSS (VmHWM) so the next phase's peak is its own.
fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// CPU time (user + system) of this process so far: unlike wall time, not
/// inflated by other load on the machine.
fn cpu_time() -> Duration {
    let mut ru = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage fills the rusage we point it at; zeroed is a valid
    // rusage to start from, and RUSAGE_SELF takes no other input.
    let ru = unsafe {
        libc::getrusage(libc::RUSAGE_SELF, ru.as_mut_ptr());
        ru.assume_init()
    };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

fn secs(d: Duration) -> String {
    format!("{:.3}", d.as_secs_f64())
}

fn install(n: u32) -> Result<Vec<Ban>, Box<dyn std::error::Error>> {
    let mut nft = Nftables::new()?;
    nft.configure(&[jail()])?;
    let now = Timestamp::now();
    let bans = bans(n, now);
    let (t, cpu) = (Instant::now(), cpu_time());
    nft.ban(&bans, now)?;
    println!("install_secs {}", secs(t.elapsed()));
    println!("install_cpu_secs {}", secs(cpu_time() - cpu));
    if let Some(l) = nft.kernel_limits() {
        println!("max_timeout_ms {}", l.max_timeout.as_millis());
    }
    Ok(bans)
}

fn readback(n: u32) -> Result<(), Box<dyn std::error::Error>> {
    let bans = install(n)?;
    let (rss0, _) = rss_kib();
    println!("rss_bans_kib {rss0}");

    // A restarted daemon: a new instance reconciles the store's bans.
    let mut nft = Nftables::new()?;
    nft.configure(&[jail()])?;
    reset_peak_rss();
    let (t, cpu) = (Instant::now(), cpu_time());
    let report = nft.reconcile(&bans, Timestamp::now())?;
    println!("reconcile_secs {}", secs(t.elapsed()));
    println!("reconcile_cpu_secs {}", secs(cpu_time() - cpu));
    println!("reconcile_kept {}", report.kept);
    println!(
        "reconcile_changed {}",
        report.added + report.removed + report.renewed
    );
    let (_, hwm) = rss_kib();
    println!("rss_reconcile_peak_kib {hwm}");

    if std::env::var_os("SKIP_DUMP").is_none() {
        reset_peak_rss();
        let (t, cpu) = (Instant::now(), cpu_time());
        let elems = nft.elements("bench")?;
        println!("dump_secs {}", secs(t.elapsed()));
        println!("dump_cpu_secs {}", secs(cpu_time() - cpu));
        println!("dump_elements {}", elems.len());
        let (rss, hwm) = rss_kib();
        println!("rss_holding_dump_kib {rss}");
        println!("rss_dump_peak_kib {hwm}");
        drop(elems);
    }
    Ok(())
}

/// Look a sample of the N bans up by key, repeatedly, counting probes that
/// found fewer than all of them.
fn probe(n: u32, secs: f64, jail: &str) -> Result<(), jailwarden::ban::BanError> {
    let mut nft = Nftables::new()?;
    let step = (n / 1000).max(1);
    let sample: Vec<Ipv4Addr> = (0..n).step_by(step as usize).map(addr).collect();
    let deadline = Instant::now() + Duration::from_secs_f64(secs);
    let (mut probes, mut short, mut fewest) = (0u64, 0u64, usize::MAX);
    while Instant::now() < deadline {
        let found = nft.count_present(jail, &sample).unwrap_or(0);
        probes += 1;
        fewest = fewest.min(found);
        if found < sample.len() {
            short += 1;
        }
    }
    println!("probes {probes}");
    println!("sampled {}", sample.len());
    println!("short {short}");
    println!("fewest {fewest}");
    Ok(())
}
