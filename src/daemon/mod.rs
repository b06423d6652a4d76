//! `jailwarden daemon`: wires sources → filters → jails → banner, with the
//! store and the control surfaces on the side; startup, reload, shutdown
//! and the service manager's notifications.
//!
//! Runs on a single-threaded tokio runtime (the work is small and ordered;
//! one thread keeps the RSS low). Sources read on their own threads and
//! hand batches over bounded channels; the [`core::Core`] is owned by the
//! loop here, so it needs no locks.

mod announce;
pub mod bans;
pub mod control;
pub mod core;
mod dns;
mod logging;
mod notify;
mod selfaddr;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use jiff::Timestamp;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc;
use tracing::{error, info, warn};

use crate::ban::Banner;
use crate::ban::none::LogOnly;
use crate::config::{self, Backend, Config};
use crate::events;
use crate::memory::{self, FilePages};
use crate::source::JailId;
use crate::source::file::{FileHandle, FileLine, FileOptions, FileSource, SavedPosition};
use crate::source::journal::{JournalBatch, JournalHandle, JournalOptions, JournalSource, StartAt};
use crate::store::Store;
use control::{ControlError, CoreHandle, Request};
use core::{Core, FILE_POSITION_PREFIX, JOURNAL_POSITION};

/// Command-line options of `jailwarden daemon`.
#[derive(Debug, Clone)]
pub struct Options {
    pub config: PathBuf,
    pub state_dir: Option<PathBuf>,
    /// Also log readable text to stderr (besides the journal).
    pub foreground: bool,
    /// Remove our firewall table at exit (also `[daemon] flush_on_exit`).
    pub flush_on_exit: bool,
}

/// Something that plugs a control surface (D-Bus, control socket) onto
/// the core; see [`run_with`].
pub type Surface = Box<dyn FnOnce(CoreHandle, Arc<Config>) -> Result<()>>;

/// Run the daemon until SIGTERM/SIGINT. Exit status: 0 on a clean stop,
/// 2 for a configuration error at start, 1 for other failures.
pub fn run(opts: Options) -> i32 {
    run_with(opts, Vec::new())
}

/// [`run`], with control surfaces to start before READY.
pub fn run_with(opts: Options, surfaces: Vec<Surface>) -> i32 {
    logging::init(opts.foreground);
    let cfg = match config::load(&opts.config) {
        Ok(c) => c,
        Err(problems) => {
            for p in &problems {
                events::config_error(&p.to_string());
            }
            error!(
                "{}: {} configuration problems; not starting",
                opts.config.display(),
                problems.len()
            );
            return 2;
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            error!("cannot start the async runtime: {e}");
            return 1;
        }
    };
    match runtime.block_on(main_loop(opts, cfg, surfaces)) {
        Ok(()) => 0,
        Err(e) => {
            error!("{e:#}");
            notify::stopping();
            1
        }
    }
}

/// The state directory: `--state-dir`, then `$STATE_DIRECTORY` (systemd's
/// StateDirectory=), then `[daemon] state_dir`, then /var/lib/jailwarden.
/// A `[daemon] state_dir` that loses to either is named in a warning.
fn state_dir(opts: &Options, cfg: &Config) -> PathBuf {
    let env = std::env::var_os("STATE_DIRECTORY")
        .and_then(|v| std::env::split_paths(&v).next())
        .filter(|p| !p.as_os_str().is_empty());
    let (dir, by) = match (&opts.state_dir, env) {
        (Some(d), _) => (d.clone(), "--state-dir"),
        (None, Some(d)) => (d, "$STATE_DIRECTORY (the unit's StateDirectory=)"),
        (None, None) => {
            return cfg
                .daemon
                .state_dir
                .clone()
                .unwrap_or_else(|| PathBuf::from(config::DEFAULT_STATE_DIR));
        }
    };
    if let Some(configured) = cfg.daemon.state_dir.as_ref().filter(|c| **c != dir) {
        warn!(
            "[daemon] state_dir {} is overridden by {by}: the state is in {}; \
             under systemd, move it with StateDirectory= in a drop-in",
            configured.display(),
            dir.display()
        );
    }
    dir
}

fn make_banner(cfg: &Config) -> Box<dyn Banner> {
    match cfg.daemon.backend {
        Backend::None => Box::new(LogOnly),
        Backend::Nftables => crate::ban::nftables_backend(),
    }
}

struct Sources {
    journal: Option<JournalHandle>,
    journal_rx: Option<mpsc::Receiver<JournalBatch>>,
    files: Option<FileHandle>,
    files_rx: Option<mpsc::Receiver<FileLine>>,
}

impl Sources {
    fn none() -> Self {
        Sources {
            journal: None,
            journal_rx: None,
            files: None,
            files_rx: None,
        }
    }
}

/// Start the journal reader for the enabled journal jails, resuming from
/// the stored position.
fn start_journal(core: &Core, s: &mut Sources) -> Result<()> {
    if let Some(h) = s.journal.take() {
        h.stop();
    }
    s.journal_rx = None;
    let cfg = core.config();
    let own_uid = rustix::process::getuid().as_raw();
    let jails: Vec<(JailId, _)> = cfg
        .enabled()
        .filter(|j| !j.journal_match.is_empty())
        .map(|j| (JailId::from(j.name.as_str()), j.journal_reads(own_uid)))
        .collect();
    if jails.is_empty() {
        return Ok(());
    }
    let mut extra: Vec<String> = cfg
        .enabled()
        .filter_map(|j| j.filter.journal_host_field().map(str::to_string))
        .collect();
    extra.sort();
    extra.dedup();
    let mut start = StartAt {
        cursor: None,
        last_time: None,
        since: cfg.longest_findtime(),
    };
    if let Some(v) = core.positions().get(JOURNAL_POSITION) {
        if let Ok(json) = serde_json::from_str::<serde_json::Value>(v) {
            start.cursor = json["cursor"].as_str().map(str::to_string);
            start.last_time = json["time_usec"]
                .as_i64()
                .and_then(|u| Timestamp::from_microsecond(u).ok());
        }
    }
    let (handle, rx) = JournalSource::spawn(JournalOptions {
        directory: cfg.daemon.journal_directory.clone(),
        jails,
        extra_fields: extra,
        start,
        channel_capacity: 8,
    })
    .context("cannot open the journal")?;
    s.journal = Some(handle);
    s.journal_rx = Some(rx);
    Ok(())
}

/// Start the file source for jails with `logpath`; returns the start
/// positions to store.
fn start_files(core: &Core, s: &mut Sources) -> Result<Vec<(String, String)>> {
    drop(s.files.take());
    s.files_rx = None;
    let jails: Vec<(JailId, Vec<String>)> = core
        .config()
        .enabled()
        .filter(|j| !j.logpath.is_empty())
        .map(|j| (JailId::from(j.name.as_str()), j.logpath.clone()))
        .collect();
    if jails.is_empty() {
        return Ok(Vec::new());
    }
    let saved: Vec<SavedPosition> = core
        .positions()
        .iter()
        .filter(|(k, _)| k.starts_with(FILE_POSITION_PREFIX))
        .filter_map(|(_, v)| serde_json::from_str(v).ok())
        .collect();
    let mut opts = FileOptions::new(jails);
    opts.saved = saved;
    let (handle, rx) = FileSource::spawn(opts).context("cannot start following log files")?;
    let start: Vec<(String, String)> = handle
        .start_positions()
        .iter()
        .filter_map(|p| {
            let key = format!(
                "{FILE_POSITION_PREFIX}{}:{}",
                p.position.dev, p.position.ino
            );
            serde_json::to_string(p).ok().map(|v| (key, v))
        })
        .collect();
    s.files = Some(handle);
    s.files_rx = Some(rx);
    Ok(start)
}

async fn recv_opt<T>(rx: &mut Option<mpsc::Receiver<T>>) -> Option<T> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

async fn sleep_until_opt(t: Option<Timestamp>) {
    match t {
        Some(t) => {
            let wait = t.duration_since(Timestamp::now());
            let wait = Duration::try_from(wait).unwrap_or_default();
            tokio::time::sleep(wait).await;
        }
        None => std::future::pending().await,
    }
}

async fn sleep_until_instant(t: Option<Instant>) {
    match t {
        Some(t) => tokio::time::sleep_until(t.into()).await,
        None => std::future::pending().await,
    }
}

async fn main_loop(opts: Options, cfg: Config, surfaces: Vec<Surface>) -> Result<()> {
    let dir = state_dir(&opts, &cfg);
    std::fs::create_dir_all(&dir)
        .with_context(|| format!("cannot create the state directory {}", dir.display()))?;
    let store = open_store(&dir)?;
    let flush_on_exit = opts.flush_on_exit || cfg.daemon.flush_on_exit;
    // What the [daemon] keys read only at start were: a reload that changes
    // them says they wait for a restart.
    let started_daemon = cfg.daemon.clone();
    let cfg = Arc::new(cfg);
    let (handle, mut requests) = CoreHandle::new(256);
    let handle = match store.reader() {
        Ok(reader) => handle.with_history(reader),
        Err(e) => {
            warn!("the ban history cannot be read over D-Bus: {e}");
            handle
        }
    };
    let self_addrs = selfaddr::addresses();
    let own_addrs: Vec<std::net::IpAddr> = self_addrs
        .nets()
        .iter()
        .map(|n| n.addr())
        .filter(|a| !a.is_loopback() && !a.is_unspecified())
        .collect();
    let banner = make_banner(&cfg);
    let now = Timestamp::now();
    let (mut core, _) = Core::start(cfg.clone(), store, banner, handle.clone(), self_addrs, now)
        .context("cannot read the state database")?;
    // Bans committed just before a crash may lack their journal event.
    let unannounced = core.unannounced();
    if !unannounced.is_empty() {
        let missing = announce::not_logged(&unannounced);
        if !missing.is_empty() {
            info!(
                "{} bans made just before the daemon last stopped had no journal event: logged now",
                missing.len()
            );
        }
        core.settle_announcements(missing, unannounced, Timestamp::now());
    }

    // The fleet link: its own task; the core never waits for it.
    let mut fleet_rx = None;
    if let Some(fc) = cfg.fleet.clone() {
        let positions = core::stored_positions(core.positions())
            .into_iter()
            .collect();
        let (link, rx) = crate::fleet::link::spawn(crate::fleet::link::LinkOptions {
            config: fc,
            own_addrs,
            own_bans: core.published_bans(),
            positions,
        });
        core.attach_fleet(link.tx, link.status);
        fleet_rx = Some(rx);
    }

    let mut sources = Sources::none();
    // The backlog's span: from where the reader starts (the saved
    // position, else the longest findtime back) to now.
    let backlog_span = (backlog_from(&core, now), now);
    start_journal(&core, &mut sources)?;
    let start = start_files(&core, &mut sources)?;
    core.record_positions(start, Timestamp::now());

    let (dns_tx, mut dns_rx) = mpsc::channel(256);
    let resolver = dns::Resolver::new(dns_tx);
    // Names still waiting for resolution when the daemon last stopped.
    for p in core.take_effects().resolve {
        resolver.resolve(p);
    }

    for surface in surfaces {
        surface(handle.clone(), cfg.clone())?;
    }

    let mut sigterm = signal(SignalKind::terminate())?;
    let mut sigint = signal(SignalKind::interrupt())?;
    let mut sighup = signal(SignalKind::hangup())?;
    let mut housekeeping = tokio::time::interval(Duration::from_secs(30));
    housekeeping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut recheck = tokio::time::interval(cfg.daemon.recheck);
    recheck.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    recheck.tick().await; // the first tick is immediate; start just reconciled
    let watchdog = notify::watchdog_interval();
    let mut watchdog_tick = tokio::time::interval(watchdog.unwrap_or(Duration::from_secs(3600)));

    // Startup (config parsing, regex compilation) freed a lot of heap and
    // touched code it will not run again: give both back.
    trim_heap();
    release_code_pages();
    let summary = core.status_line();
    notify::ready(&summary);
    events::ready(&summary);
    let mut status = notify::StatusLine::new(summary, Instant::now());
    info!(config = %opts.config.display(), state = %dir.display(), "started");

    let started = Instant::now();
    let mut journal_read: u64 = 0;
    let mut backlog_done = false;
    let mut file_progress = FileProgress::default();
    // When the daemon last did something other than housekeeping, and
    // whether it gave back that work's memory since.
    let mut last_work = Instant::now();
    let mut released = true;
    loop {
        let mut housekeeping_only = false;
        let next_expiry = core.next_expiry();
        let retry = core.retry_due();
        tokio::select! {
            batch = recv_opt(&mut sources.journal_rx) => match batch {
                Some(batch) => {
                    journal_read += batch.len() as u64;
                    let batch_end = batch.last().map(|e| e.time);
                    core.journal_batch(batch, Timestamp::now());
                    // Batches may arrive back to back for minutes (a
                    // backlog, a flood): let the control surfaces' tasks
                    // (connections, D-Bus handshakes) run between them, so
                    // `status` answers meanwhile.
                    tokio::task::yield_now().await;
                    if !backlog_done {
                        let position = batch_end.unwrap_or(backlog_span.0);
                        core.set_backlog(Some(control::Backlog {
                            entries: journal_read,
                            fraction: backlog_fraction(backlog_span, position),
                            position,
                        }));
                        if let Some(stats) = sources.journal.as_ref().map(JournalHandle::stats) {
                            if stats.caught_up > 0 && stats.delivered == journal_read {
                                core.set_backlog(None);
                                backlog_done = true;
                                let secs = started.elapsed().as_secs_f64();
                                info!(
                                    "journal backlog read: {journal_read} entries in {secs:.3} s ({:.0} entries/s)",
                                    journal_read as f64 / secs.max(1e-6)
                                );
                                trim_heap();
                            }
                        }
                    }
                }
                None => {
                    warn!("the journal reader stopped; restarting it");
                    sources.journal_rx = None;
                    if let Err(e) = start_journal(&core, &mut sources) {
                        error!("{e:#}");
                    }
                }
            },
            line = recv_opt(&mut sources.files_rx) => match line {
                Some(line) => {
                    let now = Timestamp::now();
                    core.file_line(line, now);
                    // Take what else is ready, then commit once. Every 128
                    // lines the control surfaces' tasks run: a D-Bus call
                    // takes several round trips before it reaches the core,
                    // and these need not wait for whole batches.
                    for i in 1..=1024 {
                        if i % 128 == 0 {
                            tokio::task::yield_now().await;
                        }
                        match sources.files_rx.as_mut().map(|rx| rx.try_recv()) {
                            Some(Ok(line)) => core.file_line(line, now),
                            _ => break,
                        }
                    }
                    core.flush(now);
                    if let Some(stats) = sources.files.as_ref().map(FileHandle::stats) {
                        file_progress.update(stats, &mut core);
                    }
                    // A file backlog keeps this branch ready for minutes:
                    // let the control surfaces' tasks run between batches
                    // (the channel's coop budget alone lets ~128 batches,
                    // over a second, go by first).
                    tokio::task::yield_now().await;
                }
                None => {
                    warn!("the file source stopped; restarting it");
                    sources.files_rx = None;
                    match start_files(&core, &mut sources) {
                        Ok(p) => core.record_positions(p, Timestamp::now()),
                        Err(e) => error!("{e:#}"),
                    }
                }
            },
            Some(req) = requests.recv() => match req {
                Request::Reload(reply) => {
                    let r = reload(&opts.config, &started_daemon, &mut core, &mut sources).await;
                    let _ = reply.send(r);
                }
                req => core.request(req, Timestamp::now()),
            },
            Some((pending, addrs)) = dns_rx.recv() => core.resolved(pending, addrs, Timestamp::now()),
            msg = recv_opt(&mut fleet_rx) => match msg {
                Some(m) => core.fleet_message(m, Timestamp::now()),
                None => fleet_rx = None,
            },
            _ = sleep_until_opt(next_expiry) => {
                // Bounded batches; serve the control surfaces between them.
                core.expire(Timestamp::now());
                tokio::task::yield_now().await;
            }
            _ = sleep_until_opt(retry) => core.reconcile(Timestamp::now()),
            _ = sleep_until_opt(core.store_retry_due()) => core.flush(Timestamp::now()),
            _ = recheck.tick(), if retry.is_none() => core.reconcile(Timestamp::now()),
            _ = housekeeping.tick() => {
                core.tick(Timestamp::now());
                if let Some(stats) = sources.files.as_ref().map(FileHandle::stats) {
                    file_progress.update(stats, &mut core);
                }
                housekeeping_only = true;
                // Idle since the last release: the tick alone faulted code
                // back in, 64 KiB at a time (the kernel's fault-around).
                if released {
                    trim_heap();
                    release_code_pages();
                }
            }
            _ = tokio::time::sleep_until((last_work + IDLE_RELEASE_AFTER).into()), if !released => {
                release_idle_memory(&mut core);
                released = true;
                housekeeping_only = true;
            }
            // A STATUS= change held back by the rate limit is due.
            _ = sleep_until_instant(status.due()) => housekeeping_only = true,
            _ = watchdog_tick.tick(), if watchdog.is_some() => {
                notify::watchdog();
                housekeeping_only = true;
            }
            _ = sighup.recv() => {
                if let Err(e) = reload(&opts.config, &started_daemon, &mut core, &mut sources).await {
                    warn!("reload refused: {e}");
                }
            },
            _ = sigterm.recv() => break,
            _ = sigint.recv() => break,
        }
        if !housekeeping_only {
            last_work = Instant::now();
            released = false;
        }
        for p in core.take_effects().resolve {
            resolver.resolve(p);
        }
        if let Some(line) = status.update(core.status_line(), Instant::now()) {
            notify::status(&line);
        }
    }
    notify::stopping();
    info!(
        "stopping; bans stay in force{}",
        if flush_on_exit {
            " (except: flush on exit)"
        } else {
            ""
        }
    );
    if let Some(h) = sources.journal.take() {
        h.stop();
    }
    if let Some(h) = sources.files.take() {
        let _ = h.stop().await;
    }
    core.shutdown(flush_on_exit, Timestamp::now());
    handle.close_history();
    // Actions finish: running commands end or time out, `stop` commands
    // run. Bounded, so a stuck action cannot outlast systemd's stop timeout.
    let actions = core.stop_actions();
    if tokio::time::timeout(Duration::from_secs(60), actions)
        .await
        .is_err()
    {
        warn!("actions did not finish within 60 s of stopping; left behind");
    }
    Ok(())
}

/// Follows the file source's bytes left to read: a backlog is reported
/// (`status`, `STATUS=`) from when at least [`control::FileBacklog::SHOWN_FROM`]
/// bytes are left until the files are read up to their last megabyte.
#[derive(Default)]
struct FileProgress {
    /// The source's bytes read when the backlog began, and when.
    began: Option<(u64, Instant)>,
}

impl FileProgress {
    const CAUGHT_UP: u64 = 1 << 20;

    fn update(&mut self, stats: crate::source::file::FileStats, core: &mut Core) {
        match self.began {
            // A restarted source (reload) counts from 0 again: start over.
            Some((from, _)) if stats.bytes < from => {
                self.began = None;
                core.set_file_backlog(None);
                return;
            }
            Some((from, at)) if stats.bytes_left < Self::CAUGHT_UP => {
                let read = stats.bytes - from;
                let secs = at.elapsed().as_secs_f64().max(1e-3);
                info!(
                    "log file backlog read: {:.0} MB in {secs:.1} s ({:.0} MB/s)",
                    read as f64 / 1e6,
                    read as f64 / 1e6 / secs
                );
                core.set_file_backlog(None);
                self.began = None;
                trim_heap();
                return;
            }
            Some(_) => {}
            None if stats.bytes_left >= control::FileBacklog::SHOWN_FROM => {
                info!(
                    "reading a log file backlog of {:.0} MB",
                    stats.bytes_left as f64 / 1e6
                );
                self.began = Some((stats.bytes, Instant::now()));
            }
            None => return,
        }
        if let Some((from, _)) = self.began {
            core.set_file_backlog(Some(control::FileBacklog {
                bytes_read: stats.bytes - from,
                bytes_left: stats.bytes_left,
            }));
        }
    }
}

/// Open the state database in `dir`. The directory must be writable (the
/// database, its WAL and lock files live there): a clear error naming it
/// otherwise. A database that is itself unusable (damaged, truncated, not
/// a database, of an unknown schema or from a newer jailwarden) is set
/// aside under a new name, never deleted, and a new one is started: the
/// core then takes the bans in force from the firewall.
fn open_store(dir: &Path) -> Result<Store> {
    if let Err(e) = rustix::fs::access(dir, rustix::fs::Access::WRITE_OK) {
        let why = if e == rustix::io::Errno::ROFS {
            "it is on a read-only filesystem".to_string()
        } else {
            format!("it is not writable ({e})")
        };
        anyhow::bail!(
            "the state directory {} cannot be used: {why}; jailwarden keeps its database there \
             (--state-dir, $STATE_DIRECTORY, [daemon] state_dir choose another)",
            dir.display()
        );
    }
    match Store::open(dir) {
        Ok(store) => Ok(store),
        Err(e) if e.is_broken() => {
            let aside = crate::store::set_aside(dir, Timestamp::now()).with_context(|| {
                format!(
                    "the state database in {} is unusable ({e}) and cannot be moved aside",
                    dir.display()
                )
            })?;
            error!(
                "the state database is unusable: {e}; it was moved to {} (kept for inspection) \
                 and a new one started: the bans in force are taken from the firewall, \
                 failures counted so far and the ban history are not",
                aside.display()
            );
            Store::open(dir).context("cannot open a new state database")
        }
        Err(e) => Err(e).context("cannot open the state database"),
    }
}

/// Where the journal reader starts: the time of the saved position, else
/// the longest findtime before `now` (what `start_journal` asks for).
fn backlog_from(core: &Core, now: Timestamp) -> Timestamp {
    core.positions()
        .get(JOURNAL_POSITION)
        .and_then(|v| serde_json::from_str::<serde_json::Value>(v).ok())
        .and_then(|json| json["time_usec"].as_i64())
        .and_then(|u| Timestamp::from_microsecond(u).ok())
        .unwrap_or_else(|| {
            let back = jiff::SignedDuration::try_from(core.config().longest_findtime())
                .unwrap_or_default();
            now.checked_sub(back).unwrap_or(now)
        })
}

/// How much of the backlog span `(from, until)` the reader has passed at
/// `position`, 0 to 1.
fn backlog_fraction((from, until): (Timestamp, Timestamp), position: Timestamp) -> f64 {
    let span = until.duration_since(from).as_secs_f64();
    if span <= 0.0 {
        return 1.0;
    }
    (position.duration_since(from).as_secs_f64() / span).clamp(0.0, 1.0)
}

/// Return freed heap memory to the system (glibc keeps it otherwise).
fn trim_heap() {
    // SAFETY: malloc_trim only releases free memory of the allocator's
    // arenas; it is safe to call at any time from any thread.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// How long the daemon must have had nothing to do before it gives back
/// the memory its last burst of work used ([`release_idle_memory`]).
const IDLE_RELEASE_AFTER: Duration = Duration::from_secs(20);

/// Give back what an idle daemon holds only because of work it did last:
/// the matchers' and the store's caches, free heap, and the pages of code it ran
/// ([`release_code_pages`]).
fn release_idle_memory(core: &mut Core) {
    core.shrink_caches();
    trim_heap();
    release_code_pages();
}

/// Drop the code pages past work touched ([`memory::release_file_pages`]).
fn release_code_pages() {
    memory::release_file_pages(FilePages::Code);
}

/// Reload the configuration: on any problem, report every one and keep
/// the running configuration.
async fn reload(
    path: &Path,
    started: &config::DaemonConfig,
    core: &mut Core,
    sources: &mut Sources,
) -> Result<(), ControlError> {
    notify::reloading();
    let result = match config::load(path) {
        Err(problems) => {
            for p in &problems {
                events::config_error(&p.to_string());
            }
            let text: Vec<String> = problems.iter().map(|p| p.to_string()).collect();
            Err(ControlError::Config(text.join("\n")))
        }
        Ok(cfg) => {
            let kept = started.changed_at_start(&cfg.daemon);
            core.reconfigure(Arc::new(cfg), Timestamp::now());
            let effects = core.take_effects();
            if effects.restart_journal {
                if let Err(e) = start_journal(core, sources) {
                    error!("{e:#}");
                }
            }
            if effects.restart_files {
                if let Some(h) = sources.files.take() {
                    let _ = h.stop().await;
                }
                match start_files(core, sources) {
                    Ok(p) => core.record_positions(p, Timestamp::now()),
                    Err(e) => error!("{e:#}"),
                }
            }
            events::reloaded(&core.status_line(), &kept);
            Ok(())
        }
    };
    notify::ready(&core.status_line());
    result
}
