//! `jailwarden test-filter FILTER LOG`: what `fail2ban-regex` is to
//! Fail2ban. Streams the log through the filter (memory flat whatever its
//! size) and prints the failures and a summary.

use std::collections::BTreeMap;
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::{Mutex, mpsc};
use std::time::Instant;

use jiff::tz::TimeZone;

use super::progress::Progress;
use crate::config::reader::Diagnostics;
use crate::filter::date::DateFinder;
use crate::filter::def::Role;
use crate::filter::{Failure, Filter, FilterLoader, MAX_LINE, Outcome, Scan};
use crate::lines::LineReader;

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Failures (the first few) and a summary, for people.
    Text,
    /// `LINE<TAB>HOST<TAB>TIME`, one line per failure, for scripts.
    Tsv,
    /// One JSON document with every failure and the summary.
    Json,
}

/// Options of the command.
pub struct Options {
    pub filter: String,
    pub log: PathBuf,
    pub mode: String,
    pub format: Format,
    pub filter_dirs: Vec<PathBuf>,
    /// Its `[daemon] filter_dirs` are searched too.
    pub config: PathBuf,
}

/// Counters for the summary.
#[derive(Debug, Default)]
struct Summary {
    lines: u64,
    failures: u64,
    attempts: u64,
    /// Lines whose pattern tells (part of) a failed attempt.
    failure_lines: u64,
    helpers: u64,
    ignored: u64,
    missed: u64,
    hits: Vec<u64>,
}

const TEXT_SHOWN: u64 = 20;

/// Run the command; returns the exit status.
pub fn run(opts: &Options) -> i32 {
    let loader = FilterLoader::new(super::filter_path(&opts.filter_dirs, &opts.config));
    let diags = Diagnostics::new();
    let Some(filter) = loader.compile(&opts.filter, &opts.mode, &diags) else {
        if diags.is_empty() {
            eprintln!(
                "jailwarden: no filter {:?} (searched {})",
                opts.filter,
                loader.path().describe()
            );
        }
        super::print_diagnostics(&diags.into_sorted());
        return 2;
    };
    let filter = Arc::new(filter);
    let mut size = None;
    let input: Box<dyn Read + Send> = if opts.log == Path::new("-") {
        Box::new(io::stdin())
    } else {
        match std::fs::File::open(&opts.log) {
            Ok(f) => {
                size = f.metadata().ok().filter(|m| m.is_file()).map(|m| m.len());
                Box::new(f)
            }
            Err(e) => {
                eprintln!("jailwarden: cannot open {}: {e}", opts.log.display());
                return 1;
            }
        }
    };
    let stdout = io::stdout().lock();
    let mut out = BufWriter::with_capacity(1 << 16, stdout);
    let progress = Progress::new(size);
    match scan(&filter, input, opts.format, &mut out, progress) {
        Ok(()) => match out.flush() {
            Ok(()) => 0,
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => 0,
            Err(e) => {
                eprintln!("jailwarden: {e}");
                1
            }
        },
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => 0,
        Err(e) => {
            eprintln!("jailwarden: reading {}: {e}", opts.log.display());
            1
        }
    }
}

/// Lines per batch handed to a worker.
const BATCH_LINES: usize = 4096;

/// A batch scanned: what each of its lines yielded, in order.
struct Scanned {
    seq: u64,
    first_line: u64,
    /// Input bytes the batch stood for.
    bytes: u64,
    scans: Vec<Scan>,
}

/// A batch of lines: their bytes back to back, and where each ends.
struct Batch {
    seq: u64,
    first_line: u64,
    bytes: Vec<u8>,
    ends: Vec<usize>,
}

/// Scan the input on every core: workers do the pure part (dates,
/// automaton, captures) on batches of lines, this thread tells the
/// multi-line story in line order and writes the output. Channels are
/// bounded, so memory stays flat whatever the input size.
fn scan(
    filter: &Arc<Filter>,
    input: Box<dyn Read + Send>,
    format: Format,
    out: &mut impl Write,
    mut progress: Progress,
) -> io::Result<()> {
    let started = Instant::now();
    let tz = TimeZone::system();
    let now = jiff::Timestamp::now();
    let workers = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .clamp(1, 8);
    let mut story = filter.story_untracked();
    let mut repeats = Repeats::default();
    let mut s = Summary {
        hits: vec![0; filter.patterns().len()],
        ..Summary::default()
    };
    if format == Format::Json {
        write!(
            out,
            "{{\"filter\":{},\"mode\":{},\"failures\":[",
            json(filter.name()),
            json(filter.mode())
        )?;
    }
    // Without a pattern of role `repeat`, every failure counts: no table.
    let has_repeats = filter.patterns().iter().any(|p| p.role == Role::Repeat);
    let truncated = std::thread::scope(|scope| -> io::Result<u64> {
        let (batch_tx, batch_rx) = mpsc::sync_channel::<Batch>(workers * 2);
        let batch_rx = Arc::new(Mutex::new(batch_rx));
        let (result_tx, result_rx) = mpsc::sync_channel::<Scanned>(workers * 2);
        // Buffers go back to where they are filled: batches of lines to the
        // reader, result vectors to the workers. A fresh half-megabyte
        // buffer per batch would be a fresh mapping, zeroed by the kernel.
        let (spare_batch_tx, spare_batch_rx) = mpsc::sync_channel::<Batch>(workers * 4 + 2);
        let (spare_scans_tx, spare_scans_rx) = mpsc::sync_channel::<Vec<Scan>>(workers * 4 + 2);
        let spare_scans_rx = Arc::new(Mutex::new(spare_scans_rx));
        for _ in 0..workers {
            let batch_rx = batch_rx.clone();
            let result_tx = result_tx.clone();
            let spare_batch_tx = spare_batch_tx.clone();
            let spare_scans_rx = spare_scans_rx.clone();
            let mut scanner = filter.scanner(DateFinder::new(tz.clone(), now));
            scope.spawn(move || {
                loop {
                    let batch = match batch_rx.lock() {
                        Ok(rx) => rx.recv(),
                        Err(_) => return,
                    };
                    let Ok(batch) = batch else { return };
                    let mut scans = spare_scans_rx
                        .lock()
                        .ok()
                        .and_then(|rx| rx.try_recv().ok())
                        .unwrap_or_else(|| Vec::with_capacity(BATCH_LINES));
                    scans.clear();
                    let mut start = 0;
                    for &end in &batch.ends {
                        scans.push(scanner.file_line(&batch.bytes[start..end]));
                        start = end;
                    }
                    // Bytes the batch stood for in the input (its lines and
                    // their newlines), for the progress percentage.
                    let bytes = (batch.bytes.len() + batch.ends.len()) as u64;
                    let scanned = Scanned {
                        seq: batch.seq,
                        first_line: batch.first_line,
                        bytes,
                        scans,
                    };
                    // The reader may be done: a buffer it will not take is dropped.
                    let _ = spare_batch_tx.try_send(batch);
                    if result_tx.send(scanned).is_err() {
                        return;
                    }
                }
            });
        }
        drop(result_tx);
        drop(spare_batch_tx);
        let reader = scope.spawn(move || -> io::Result<u64> {
            let mut reader = LineReader::new(input, MAX_LINE);
            let mut seq = 0;
            let mut line_no = 1;
            loop {
                let mut batch = spare_batch_rx.try_recv().unwrap_or_else(|_| Batch {
                    seq: 0,
                    first_line: 0,
                    bytes: Vec::with_capacity(BATCH_LINES * 128),
                    ends: Vec::with_capacity(BATCH_LINES),
                });
                batch.seq = seq;
                batch.first_line = line_no;
                batch.bytes.clear();
                batch.ends.clear();
                while batch.ends.len() < BATCH_LINES {
                    match reader.next_line()? {
                        Some(line) => {
                            batch.bytes.extend_from_slice(line);
                            batch.ends.push(batch.bytes.len());
                        }
                        None => break,
                    }
                }
                let done = batch.ends.len() < BATCH_LINES;
                line_no += batch.ends.len() as u64;
                seq += 1;
                if !batch.ends.is_empty() && batch_tx.send(batch).is_err() {
                    break;
                }
                if done {
                    break;
                }
            }
            Ok(reader.truncated)
        });
        // Results arrive out of order; the story is told in order.
        let mut waiting = BTreeMap::new();
        let mut next = 0u64;
        let mut done_bytes = 0u64;
        for scanned in result_rx {
            waiting.insert(scanned.seq, scanned);
            while let Some(mut batch) = waiting.remove(&next) {
                next += 1;
                let first_line = batch.first_line;
                for (i, scan) in batch.scans.drain(..).enumerate() {
                    s.lines += 1;
                    match story.apply(scan) {
                        Outcome::Missed => s.missed += 1,
                        Outcome::Ignored { .. } => s.ignored += 1,
                        Outcome::Matched { regex, failure } => {
                            s.hits[regex] += 1;
                            if filter
                                .patterns()
                                .get(regex)
                                .is_some_and(|p| p.role.tells_failure())
                            {
                                s.failure_lines += 1;
                            }
                            match failure {
                                None => s.helpers += 1,
                                Some(f) if has_repeats && !repeats.counts(&f, now) => {
                                    s.helpers += 1
                                }
                                Some(f) => {
                                    s.failures += 1;
                                    s.attempts += u64::from(f.attempts);
                                    if format != Format::Text || s.failures <= TEXT_SHOWN {
                                        progress.before_output();
                                        emit(
                                            format,
                                            out,
                                            &tz,
                                            first_line + i as u64,
                                            &f,
                                            s.failures,
                                        )?;
                                    }
                                }
                            }
                        }
                    }
                }
                done_bytes += batch.bytes;
                let _ = spare_scans_tx.try_send(batch.scans);
                progress.update(s.lines, done_bytes, out);
            }
        }
        drop(spare_scans_tx);
        progress.clear();
        reader
            .join()
            .map_err(|_| io::Error::other("reader thread panicked"))?
    })?;
    let elapsed = started.elapsed();
    match format {
        Format::Tsv => Ok(()),
        Format::Json => {
            write!(
                out,
                "],\"lines\":{},\"matched\":{},\"attempts\":{},\"failure_lines\":{},\"helper_lines\":{},\"ignored\":{},\"missed\":{},\"truncated\":{},\"elapsed_ms\":{:.3},\"regexes\":[",
                s.lines,
                s.failures,
                s.attempts,
                s.failure_lines,
                s.helpers,
                s.ignored,
                s.missed,
                truncated,
                elapsed.as_secs_f64() * 1000.0
            )?;
            for (i, (p, hits)) in filter.patterns().iter().zip(&s.hits).enumerate() {
                if i > 0 {
                    out.write_all(b",")?;
                }
                write!(
                    out,
                    "{{\"regex\":{},\"role\":{},\"step\":{},\"position\":{},\"hits\":{hits}}}",
                    json(&p.text),
                    json(p.role.name()),
                    p.step.as_deref().map_or("null".into(), json),
                    json(&p.position)
                )?;
            }
            out.write_all(b"]}\n")
        }
        Format::Text => {
            if s.failures > TEXT_SHOWN {
                writeln!(
                    out,
                    "... and {} more failures (--format tsv lists them all)",
                    s.failures - TEXT_SHOWN
                )?;
            }
            writeln!(out)?;
            writeln!(out, "Filter:   {} (mode {})", filter.name(), filter.mode())?;
            writeln!(
                out,
                "Lines:    {} read: {} tell failed attempts, {} other matches (helper lines), {} ignored, {} missed",
                s.lines,
                s.failure_lines,
                (s.failures + s.helpers).saturating_sub(s.failure_lines),
                s.ignored,
                s.missed
            )?;
            writeln!(
                out,
                "Attempts: {} counted, on {} lines (one attempt is one failure, however many lines tell it)",
                s.attempts, s.failures
            )?;
            if truncated > 0 {
                writeln!(out, "          {} lines cut at {MAX_LINE} bytes", truncated)?;
            }
            writeln!(out, "Regexes:  hits  role     step     pattern")?;
            for (i, (p, hits)) in filter.patterns().iter().zip(&s.hits).enumerate() {
                if *hits > 0 {
                    writeln!(
                        out,
                        "  #{i:<3} {hits:>7}  {:<8} {:<8} {}",
                        p.role.name(),
                        p.step.as_deref().unwrap_or("-"),
                        p.text
                    )?;
                }
            }
            let secs = elapsed.as_secs_f64();
            writeln!(
                out,
                "Time:     {:.3} s ({:.0} lines/s)",
                secs,
                if secs > 0.0 {
                    s.lines as f64 / secs
                } else {
                    0.0
                }
            )
        }
    }
}

/// What a jail does with role `repeat`: such a failure counts only for an
/// address with a counted failure in the window before it (test-filter
/// knows no jail: the default findtime, 10 minutes).
#[derive(Default)]
struct Repeats {
    last: std::collections::HashMap<crate::addr::Host, jiff::Timestamp>,
}

/// Addresses remembered before the oldest are dropped (memory stays flat
/// on a log of millions of addresses).
const REPEATS_REMEMBERED: usize = 1 << 20;

impl Repeats {
    fn counts(&mut self, f: &Failure, now: jiff::Timestamp) -> bool {
        let time = f.time.unwrap_or(now);
        let window = jiff::SignedDuration::from_secs(600);
        if f.repeat {
            return self
                .last
                .get(&f.host)
                .is_some_and(|last| time.duration_since(*last) <= window);
        }
        if self.last.len() >= REPEATS_REMEMBERED {
            self.last.retain(|_, t| time.duration_since(*t) <= window);
            if self.last.len() >= REPEATS_REMEMBERED {
                self.last.clear();
            }
        }
        self.last.insert(f.host.clone(), time);
        true
    }
}

fn emit(
    format: Format,
    out: &mut impl Write,
    tz: &TimeZone,
    line: u64,
    f: &Failure,
    nth: u64,
) -> io::Result<()> {
    let time = f.time.map(|t| {
        t.to_zoned_datetime(tz.clone())
            .strftime("%Y-%m-%dT%H:%M:%S%:z")
            .to_string()
    });
    match format {
        Format::Tsv => writeln!(
            out,
            "{line}\t{}\t{}",
            f.host_text,
            time.as_deref().unwrap_or("-")
        ),
        Format::Json => {
            if nth > 1 {
                out.write_all(b",")?;
            }
            write!(
                out,
                "{{\"line\":{line},\"host\":{},\"address\":{},\"time\":{},\"regex\":{},\"attempts\":{},\"user\":{},\"repeat\":{}}}",
                json(&f.host_text),
                json(&f.host.to_string()),
                time.as_deref().map_or("null".into(), json),
                f.regex,
                f.attempts,
                f.user.as_deref().map_or("null".into(), json),
                f.repeat,
            )
        }
        Format::Text => {
            let user = f
                .user
                .as_deref()
                .map(|u| format!(" user {u:?}"))
                .unwrap_or_default();
            let attempts = if f.attempts > 1 {
                format!(" ({} attempts)", f.attempts)
            } else {
                String::new()
            };
            let attempts = if f.repeat {
                format!("{attempts} (repeat: counts only after a counted failure)")
            } else {
                attempts
            };
            writeln!(
                out,
                "line {line}: {} at {}{user}{attempts} [regex #{}]",
                f.host_text,
                time.as_deref().unwrap_or("(no date)"),
                f.regex
            )
        }
    }
}

fn json(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into())
}
