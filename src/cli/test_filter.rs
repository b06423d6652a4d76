//! `jailwarden test-filter FILTER LOG`: what `fail2ban-regex` is to
//! Fail2ban. Streams the log through the filter (memory flat whatever its
//! size) and prints the failures and a summary.

use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use jiff::tz::TimeZone;

use crate::config::reader::Diagnostics;
use crate::filter::date::DateFinder;
use crate::filter::{Failure, Filter, FilterLoader, MAX_LINE, Outcome};
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
}

/// Counters for the summary.
#[derive(Debug, Default)]
struct Summary {
    lines: u64,
    failures: u64,
    attempts: u64,
    helpers: u64,
    ignored: u64,
    missed: u64,
    hits: Vec<u64>,
}

const TEXT_SHOWN: u64 = 20;

/// Run the command; returns the exit status.
pub fn run(opts: &Options) -> i32 {
    let loader = FilterLoader::new(super::filter_path(&opts.filter_dirs));
    let diags = Diagnostics::new();
    let Some(filter) = loader.compile(&opts.filter, &opts.mode, &diags) else {
        if diags.is_empty() {
            eprintln!(
                "jailwarden: no filter {:?} (searched {})",
                opts.filter,
                loader
                    .path()
                    .dirs()
                    .iter()
                    .map(|d| d.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        super::print_diagnostics(&diags.into_sorted());
        return 2;
    };
    let filter = Arc::new(filter);
    let input: Box<dyn Read> = if opts.log == Path::new("-") {
        Box::new(io::stdin().lock())
    } else {
        match std::fs::File::open(&opts.log) {
            Ok(f) => Box::new(f),
            Err(e) => {
                eprintln!("jailwarden: cannot open {}: {e}", opts.log.display());
                return 1;
            }
        }
    };
    let stdout = io::stdout().lock();
    let mut out = BufWriter::with_capacity(1 << 16, stdout);
    match scan(&filter, input, opts.format, &mut out) {
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

fn scan(
    filter: &Arc<Filter>,
    input: Box<dyn Read>,
    format: Format,
    out: &mut impl Write,
) -> io::Result<()> {
    let started = Instant::now();
    let tz = TimeZone::system();
    let mut matcher = filter.matcher(DateFinder::new(tz.clone(), jiff::Timestamp::now()));
    let mut reader = LineReader::new(input, MAX_LINE);
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
    while let Some(line) = reader.next_line()? {
        s.lines += 1;
        match matcher.file_line(line) {
            Outcome::Missed => s.missed += 1,
            Outcome::Ignored { .. } => s.ignored += 1,
            Outcome::Matched { regex, failure } => {
                s.hits[regex] += 1;
                match failure {
                    None => s.helpers += 1,
                    Some(f) => {
                        s.failures += 1;
                        s.attempts += u64::from(f.attempts);
                        emit(format, out, &tz, s.lines, &f, s.failures)?;
                    }
                }
            }
        }
    }
    let elapsed = started.elapsed();
    match format {
        Format::Tsv => Ok(()),
        Format::Json => {
            write!(
                out,
                "],\"lines\":{},\"matched\":{},\"attempts\":{},\"helper_lines\":{},\"ignored\":{},\"missed\":{},\"truncated\":{},\"elapsed_ms\":{:.3},\"regexes\":[",
                s.lines,
                s.failures,
                s.attempts,
                s.helpers,
                s.ignored,
                s.missed,
                reader.truncated,
                elapsed.as_secs_f64() * 1000.0
            )?;
            for (i, (p, hits)) in filter.patterns().iter().zip(&s.hits).enumerate() {
                if i > 0 {
                    out.write_all(b",")?;
                }
                write!(
                    out,
                    "{{\"regex\":{},\"role\":{},\"position\":{},\"hits\":{hits}}}",
                    json(&p.text),
                    json(p.role.name()),
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
            writeln!(out, "Filter:  {} (mode {})", filter.name(), filter.mode())?;
            writeln!(out, "Lines:   {} read", s.lines)?;
            writeln!(
                out,
                "         {} matched ({} failures counted), {} helper lines, {} ignored, {} missed",
                s.failures, s.attempts, s.helpers, s.ignored, s.missed
            )?;
            if reader.truncated > 0 {
                writeln!(
                    out,
                    "         {} lines cut at {MAX_LINE} bytes",
                    reader.truncated
                )?;
            }
            writeln!(out, "Regexes: hits  role     pattern")?;
            for (i, (p, hits)) in filter.patterns().iter().zip(&s.hits).enumerate() {
                if *hits > 0 {
                    writeln!(out, "  #{i:<3} {hits:>7}  {:<8} {}", p.role.name(), p.text)?;
                }
            }
            let secs = elapsed.as_secs_f64();
            writeln!(
                out,
                "Time:    {:.3} s ({:.0} lines/s)",
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
                "{{\"line\":{line},\"host\":{},\"address\":{},\"time\":{},\"regex\":{},\"attempts\":{},\"user\":{}}}",
                json(&f.host_text),
                json(&f.host.to_string()),
                time.as_deref().map_or("null".into(), json),
                f.regex,
                f.attempts,
                f.user.as_deref().map_or("null".into(), json),
            )
        }
        Format::Text if nth <= TEXT_SHOWN => {
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
            writeln!(
                out,
                "line {line}: {} at {}{user}{attempts} [regex #{}]",
                f.host_text,
                time.as_deref().unwrap_or("(no date)"),
                f.regex
            )
        }
        Format::Text => Ok(()),
    }
}

fn json(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into())
}
