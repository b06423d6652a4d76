//! `type = "command"`: programs run for each ban and unban (and at the
//! action's start and stop), from argv templates, never through a shell.
//!
//! # Order and concurrency
//!
//! Jobs go to `concurrency` lanes, each running one job at a time in
//! arrival order; an address always goes to the same lane (by hash of its
//! network), so a ban's unban never starts before its ban command finished,
//! while other addresses proceed in the other lanes. A hanging command
//! holds up its lane until its timeout, no longer.
//!
//! # Bounds
//!
//! At most [`QUEUE_LIMIT`] jobs wait per action; beyond that new jobs are
//! dropped and reported (a dropped ban's unban is dropped too, so nothing is
//! undone that was never done). Bans restored at start are never dropped.
//!
//! # Life cycle
//!
//! `start` commands run first (once the action this one replaces on a
//! reload has finished its `stop`), then, when `restore` is on, `ban` for
//! every ban in force, then the jobs as they come. Closing the action lets
//! the queue drain (or, when the daemon stops, skips what has not started)
//! and runs the `stop` commands.

use std::collections::HashSet;
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use ipnet::IpNet;
use jiff::Timestamp;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::template::{Template, Vars};
use super::{CommandConfig, Context, Family, QUEUE_LIMIT, process};
use crate::ban::Ban;

/// Dropped bans remembered (to skip their unbans), at most.
const DROPPED_LIMIT: usize = 65_536;

#[derive(Debug)]
struct Job {
    unban: bool,
    ban: Ban,
}

/// One jail's command action at run time.
pub struct Worker {
    ctx: Context,
    cfg: Arc<CommandConfig>,
    lanes: Vec<mpsc::UnboundedSender<Job>>,
    queued: Arc<AtomicUsize>,
    dropped: HashSet<IpNet>,
    overflow: u64,
    cancel: CancellationToken,
    finished: CancellationToken,
}

impl Worker {
    /// Start the action: after `after` finished, run `start`, then `ban`
    /// for each of `active` (if `restore`), then follow the jobs.
    pub fn spawn(
        ctx: Context,
        cfg: CommandConfig,
        active: &[Ban],
        after: Vec<CancellationToken>,
    ) -> Worker {
        let cfg = Arc::new(cfg);
        let n = cfg.concurrency.max(1) as usize;
        let (senders, receivers): (Vec<_>, Vec<_>) =
            (0..n).map(|_| mpsc::unbounded_channel::<Job>()).unzip();
        let queued = Arc::new(AtomicUsize::new(0));
        let cancel = CancellationToken::new();
        let finished = CancellationToken::new();
        let mut w = Worker {
            ctx: ctx.clone(),
            cfg: cfg.clone(),
            lanes: senders,
            queued: queued.clone(),
            dropped: HashSet::new(),
            overflow: 0,
            cancel: cancel.clone(),
            finished: finished.clone(),
        };
        if cfg.restore {
            for b in active.iter().filter(|b| applies(&cfg, b)) {
                // Restored bans are never dropped, whatever the queue.
                w.enqueue(false, b.clone());
            }
        }
        let guard = finished.drop_guard();
        tokio::spawn(async move {
            let _guard = guard;
            for t in after {
                t.cancelled().await;
            }
            for t in &cfg.start {
                run_one(&ctx, &cfg, t, &Vars::for_jail(&ctx.jail), "start", None).await;
            }
            let mut lanes = tokio::task::JoinSet::new();
            for rx in receivers {
                lanes.spawn(lane(
                    ctx.clone(),
                    cfg.clone(),
                    rx,
                    queued.clone(),
                    cancel.clone(),
                ));
            }
            while lanes.join_next().await.is_some() {}
            for t in &cfg.stop {
                run_one(&ctx, &cfg, t, &Vars::for_jail(&ctx.jail), "stop", None).await;
            }
        });
        w
    }

    fn enqueue(&mut self, unban: bool, ban: Ban) {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        ban.net.trunc().hash(&mut h);
        let lane = (h.finish() % self.lanes.len() as u64) as usize;
        self.queued.fetch_add(1, Ordering::Relaxed);
        if self.lanes[lane].send(Job { unban, ban }).is_err() {
            self.queued.fetch_sub(1, Ordering::Relaxed);
        }
    }

    fn submit(&mut self, unban: bool, ban: &Ban) {
        if !applies(&self.cfg, ban) || (unban && self.cfg.unban.is_none()) {
            return;
        }
        let net = ban.net.trunc();
        if unban && self.dropped.remove(&net) {
            return;
        }
        if self.queued.load(Ordering::Relaxed) >= QUEUE_LIMIT {
            if !unban && self.dropped.len() < DROPPED_LIMIT {
                self.dropped.insert(net);
            }
            self.overflow += 1;
            if self.overflow.is_power_of_two() {
                self.ctx.failed(
                    Some(&crate::addr::net_text(net)),
                    &format!(
                        "{QUEUE_LIMIT} commands are waiting (are they hanging?): {} not run ({} dropped so far)",
                        if unban { "unban" } else { "ban" },
                        self.overflow
                    ),
                );
            }
            return;
        }
        self.enqueue(unban, ban.clone());
    }

    /// A ban took effect.
    pub fn ban(&mut self, ban: &Ban) {
        self.submit(false, ban);
    }

    /// A ban ended.
    pub fn unban(&mut self, ban: &Ban) {
        self.submit(true, ban);
    }

    /// No more jobs: drain (or, when `skip_queued`, drop what has not
    /// started), run `stop`, then the returned token is cancelled.
    pub fn close(self, skip_queued: bool) -> CancellationToken {
        if skip_queued {
            self.cancel.cancel();
        }
        self.finished
    }
}

fn applies(cfg: &CommandConfig, ban: &Ban) -> bool {
    match cfg.family {
        None => true,
        Some(Family::Inet) => !ban.is_ipv6(),
        Some(Family::Inet6) => ban.is_ipv6(),
    }
}

async fn lane(
    ctx: Context,
    cfg: Arc<CommandConfig>,
    mut rx: mpsc::UnboundedReceiver<Job>,
    queued: Arc<AtomicUsize>,
    cancel: CancellationToken,
) {
    let mut skipped = 0u64;
    while let Some(job) = rx.recv().await {
        queued.fetch_sub(1, Ordering::Relaxed);
        if cancel.is_cancelled() {
            skipped += 1;
            continue;
        }
        let (template, what) = match (job.unban, &cfg.unban) {
            (false, _) => (&cfg.ban, "ban"),
            (true, Some(t)) => (t, "unban"),
            (true, None) => continue,
        };
        let vars = Vars::for_ban(&job.ban, Timestamp::now());
        let address = vars.address.clone();
        run_one(&ctx, &cfg, template, &vars, what, Some(&address)).await;
    }
    if skipped > 0 {
        tracing::info!(jail = %ctx.jail, action = %ctx.label, "{skipped} queued commands not run: the daemon stops");
    }
}

async fn run_one(
    ctx: &Context,
    cfg: &CommandConfig,
    template: &Template,
    vars: &Vars,
    what: &str,
    address: Option<&str>,
) {
    let argv = template.render(vars);
    let out = process::run(&argv, &vars.env(), None, cfg.timeout).await;
    match out.problem(cfg.timeout) {
        None => tracing::debug!(
            jail = %ctx.jail, action = %ctx.label, "{what} command {} succeeded", template.program()
        ),
        Some(p) => ctx.failed(address, &format!("{what} command `{}` {p}", argv.join(" "))),
    }
}
