//! After a crash: which bans committed just before it already have their
//! journal event. A ban's event is logged after its batch is committed,
//! and that it was logged is committed after that; a crash in between
//! leaves the ban "unannounced", and the next start looks for its event in
//! the journal (this machine's, where the daemon logs) rather than log it
//! twice or not at all.

use crate::addr::net_text;
use crate::ban::Ban;
use crate::events::MESSAGE_ID_BAN;

/// The bans of `bans` whose ban event the journal does not hold (logged
/// at or after the ban's start). If the journal cannot be read, all of
/// them: an event logged twice is better than none.
pub fn not_logged(bans: &[Ban]) -> Vec<Ban> {
    let mut journal = match systemd::journal::OpenOptions::default()
        .system(true)
        .local_only(true)
        .open()
    {
        Ok(j) => j,
        Err(e) => {
            tracing::debug!(error = %e, "cannot open the journal to look for ban events");
            return bans.to_vec();
        }
    };
    bans.iter()
        .filter(|b| {
            let found = (|| -> Result<bool, systemd::Error> {
                journal.match_flush()?;
                journal.match_add("MESSAGE_ID", MESSAGE_ID_BAN)?;
                journal.match_add("JAILWARDEN_JAIL", b.jail.as_str())?;
                journal.match_add("JAILWARDEN_ADDRESS", net_text(b.net))?;
                let since = u64::try_from(b.banned_at.as_microsecond()).unwrap_or(0);
                journal.seek_realtime_usec(since)?;
                Ok(journal.next()? > 0)
            })();
            !found.unwrap_or(false)
        })
        .cloned()
        .collect()
}
