//! `backend = "none"`: decide and log bans, enforce nothing.

use jiff::Timestamp;

use super::{Ban, BanError, Banner, JailFirewall, ReconcileReport};

/// Detect-only backend: every call succeeds and changes nothing, so a new
/// jail can be watched in production before it is trusted to ban.
#[derive(Debug, Default)]
pub struct LogOnly;

impl Banner for LogOnly {
    fn name(&self) -> &'static str {
        "none"
    }

    fn configure(&mut self, _jails: &[JailFirewall]) -> Result<(), BanError> {
        Ok(())
    }

    fn reconcile(&mut self, bans: &[Ban], _now: Timestamp) -> Result<ReconcileReport, BanError> {
        Ok(ReconcileReport {
            kept: bans.len(),
            ..ReconcileReport::default()
        })
    }

    fn ban(&mut self, _bans: &[Ban], _now: Timestamp) -> Result<(), BanError> {
        Ok(())
    }

    fn unban(&mut self, _bans: &[Ban]) -> Result<(), BanError> {
        Ok(())
    }

    fn shutdown(&mut self, _flush: bool) -> Result<(), BanError> {
        Ok(())
    }
}
