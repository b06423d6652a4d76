//! The service manager's notifications (`Type=notify`): READY once the
//! sources, restored bans and control surfaces are up, STATUS kept current,
//! WATCHDOG from the main loop, RELOADING + MONOTONIC_USEC around reloads,
//! STOPPING. Without `NOTIFY_SOCKET` these do nothing.

use std::time::Duration;

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
