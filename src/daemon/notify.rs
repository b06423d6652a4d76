//! The service manager's notifications (`Type=notify`): READY once the
//! sources, restored bans and control surfaces are up, STATUS kept current,
//! WATCHDOG from the main loop, RELOADING + MONOTONIC_USEC around reloads,
//! STOPPING. Without `NOTIFY_SOCKET` these do nothing.

use std::time::{Duration, Instant};

use sd_notify::NotifyState;

fn send(states: &[NotifyState]) {
    if let Err(e) = sd_notify::notify(states) {
        tracing::debug!("sd_notify failed: {e}");
    }
}

/// Startup (or a reload) is complete.
pub fn ready(status: &str) {
    send(&[NotifyState::Ready, NotifyState::Status(status)]);
}

/// A new one-line status.
pub fn status(status: &str) {
    send(&[NotifyState::Status(status)]);
}

/// A reload starts (systemd ≥ 253 needs the monotonic time with it).
pub fn reloading() {
    match NotifyState::monotonic_usec_now() {
        Ok(now) => send(&[NotifyState::Reloading, now]),
        Err(_) => send(&[NotifyState::Reloading]),
    }
}

/// Shutting down.
pub fn stopping() {
    send(&[NotifyState::Stopping]);
}

/// The main loop is alive.
pub fn watchdog() {
    send(&[NotifyState::Watchdog]);
}

/// How often to ping the watchdog: half of `WatchdogSec=`, if set for us.
pub fn watchdog_interval() -> Option<Duration> {
    sd_notify::watchdog_enabled().map(|d| d / 2)
}

/// The shortest time between two `STATUS=` updates: bans can come in
/// bursts of thousands, and the service manager need not see each one.
pub const STATUS_INTERVAL: Duration = Duration::from_secs(1);

/// Keeps `STATUS=` current without flooding the service manager: a changed
/// line goes out at once, unless one went out less than
/// [`STATUS_INTERVAL`] ago; then it waits until [`StatusLine::due`], which
/// the main loop sleeps towards. No change, no wake-up: an idle daemon
/// stays idle.
#[derive(Debug)]
pub struct StatusLine {
    sent: String,
    at: Instant,
    pending: bool,
}

impl StatusLine {
    /// `line` was just sent (with READY).
    pub fn new(line: String, now: Instant) -> Self {
        StatusLine {
            sent: line,
            at: now,
            pending: false,
        }
    }

    /// The line is now `line`: returns it if it should be sent now.
    pub fn update(&mut self, line: String, now: Instant) -> Option<String> {
        if line == self.sent {
            self.pending = false;
            return None;
        }
        if now.saturating_duration_since(self.at) < STATUS_INTERVAL {
            self.pending = true;
            return None;
        }
        self.sent.clone_from(&line);
        self.at = now;
        self.pending = false;
        Some(line)
    }

    /// When a held-back change is due, if one is.
    pub fn due(&self) -> Option<Instant> {
        self.pending.then(|| self.at + STATUS_INTERVAL)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_change_goes_out_at_once_then_at_most_once_per_interval() {
        let t0 = Instant::now();
        let mut s = StatusLine::new("1 jail, 0 banned, 0 lines/min".into(), t0);
        assert_eq!(s.due(), None);
        // Unchanged: nothing to send, nothing to wait for.
        assert_eq!(
            s.update("1 jail, 0 banned, 0 lines/min".into(), t0 + STATUS_INTERVAL),
            None
        );
        let t1 = t0 + STATUS_INTERVAL * 2;
        assert_eq!(
            s.update("1 jail, 1 banned, 0 lines/min".into(), t1)
                .as_deref(),
            Some("1 jail, 1 banned, 0 lines/min")
        );
        // A burst right after: held back until the interval is over.
        let soon = t1 + STATUS_INTERVAL / 10;
        assert_eq!(s.update("1 jail, 2 banned, 0 lines/min".into(), soon), None);
        assert_eq!(s.update("1 jail, 3 banned, 0 lines/min".into(), soon), None);
        assert_eq!(s.due(), Some(t1 + STATUS_INTERVAL));
        assert_eq!(
            s.update("1 jail, 3 banned, 0 lines/min".into(), t1 + STATUS_INTERVAL)
                .as_deref(),
            Some("1 jail, 3 banned, 0 lines/min")
        );
        assert_eq!(s.due(), None);
    }

    #[test]
    fn a_change_undone_before_it_was_due_is_not_sent() {
        let t0 = Instant::now();
        let mut s = StatusLine::new("a".into(), t0);
        assert_eq!(s.update("b".into(), t0), None);
        assert!(s.due().is_some());
        assert_eq!(s.update("a".into(), t0), None);
        assert_eq!(s.due(), None);
    }
}
