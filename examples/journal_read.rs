//! Read every entry of a journal directory matching a `journal_match` with
//! jailwarden's journal source, count them, and print the rate: the raw
//! reader's side of `bench/journal-read.sh`.
//!
//! ```text
//! cargo run --release --example journal_read -- DIR _SYSTEMD_UNIT=ssh.service
//! ```
//!
//! Reads from the head (`since` of a century), then stops once the reader
//! has caught up. Prints `ENTRIES BYTES SECONDS` on stdout.

use std::time::{Duration, Instant};

use jailwarden::config::journal_match::JournalMatch;
use jailwarden::source::journal::{JournalOptions, JournalSource, StartAt};

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let dir = args
        .next()
        .ok_or_else(|| anyhow::anyhow!("usage: journal_read DIR MATCH..."))?;
    let terms: Vec<String> = args.collect();
    let jail = JournalMatch::parse(&terms)?;

    let started = Instant::now();
    let (handle, mut rx) = JournalSource::spawn(JournalOptions {
        directory: Some(dir.into()),
        jails: vec![("sshd".into(), jail)],
        extra_fields: Vec::new(),
        start: StartAt {
            since: Duration::from_secs(100 * 365 * 24 * 3600),
            ..StartAt::default()
        },
        channel_capacity: 8,
    })?;
    // Once the reader has caught up, everything is in the channel: stop it,
    // which drops the sender, so the loop below ends after the last entry.
    let watcher = std::thread::spawn(move || {
        while handle.stats().caught_up == 0 {
            std::thread::sleep(Duration::from_millis(5));
        }
        let stats = handle.stats();
        handle.stop();
        stats
    });
    let (mut entries, mut bytes) = (0u64, 0u64);
    while let Some(batch) = rx.blocking_recv() {
        for entry in batch {
            entries += 1;
            bytes += entry.line.len() as u64;
        }
    }
    let secs = started.elapsed().as_secs_f64();
    let stats = watcher
        .join()
        .map_err(|_| anyhow::anyhow!("watcher panicked"))?;
    eprintln!("{stats:?}");
    println!("{entries} {bytes} {secs:.3}");
    Ok(())
}
