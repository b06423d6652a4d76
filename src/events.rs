//! The daemon's own journal events: fixed MESSAGE_IDs (explained by the
//! catalog in `units/jailwarden.catalog`) and the text of ban messages.
//!
//! Ban and unban entries carry `JAILWARDEN_JAIL`, `JAILWARDEN_ADDRESS` and
//! `JAILWARDEN_BANTIME_USEC` + `JAILWARDEN_FAILURES` (ban) or
//! `JAILWARDEN_REASON` (unban), so `journalctl JAILWARDEN_ADDRESS=...` is
//! the history of one address. The MESSAGE text is stable too: the
//! `recidive` filter reads it when jailwarden logs to a file.

/// A ban: `[JAIL] Ban ADDRESS for DURATION after N failures`.
pub const MESSAGE_ID_BAN: &str = "20f4993d915743ba897492a7b5b7ca50";
/// An unban: `[JAIL] Unban ADDRESS (REASON)`.
pub const MESSAGE_ID_UNBAN: &str = "50b57ea4be684049a56d67a997969cff";
/// The daemon started and is ready (sources, bans, control surfaces up).
pub const MESSAGE_ID_READY: &str = "81fd7018acd5491989e86f286c9ac619";
/// The configuration was reloaded.
pub const MESSAGE_ID_RELOAD: &str = "8e3598b6af4a4d1d9d9e3544677111c2";
/// A configuration problem (file:line:column); the running one is kept.
pub const MESSAGE_ID_CONFIG_ERROR: &str = "b79d11c760994931a134e52bed1c70ff";
/// The firewall backend failed; the daemon keeps running and retries.
pub const MESSAGE_ID_BACKEND_ERROR: &str = "b721d26f485e4e22ae23670b8082e497";
/// An action (command, hosts-deny, mail) failed: `[JAIL] action LABEL
/// failed: PROBLEM`, with `JAILWARDEN_ACTION` (and `JAILWARDEN_ADDRESS` when
/// it concerned one ban). The ban itself stands; the daemon keeps running.
pub const MESSAGE_ID_ACTION_ERROR: &str = "8cc0cf9c1332425cb093fdd88231951f";
/// Journal entries were vacuumed away before the daemon read them (the
/// saved cursor's entry and what followed it are gone): how many (of every
/// unit) and over how long, with `JAILWARDEN_SKIPPED_ENTRIES` (-1:
/// unknown) and `JAILWARDEN_SKIPPED_USEC`. Reading resumes from the oldest
/// entry left.
pub const MESSAGE_ID_JOURNAL_GAP: &str = "244654ca2a354b4faf826173ff1cd880";
/// A ban received from another fleet host and applied here:
/// `[fleet:ORIGIN] Ban ADDRESS for DURATION (jail JAIL, N failures)`, with
/// `JAILWARDEN_ORIGIN`, `JAILWARDEN_JAIL`, `JAILWARDEN_ADDRESS`,
/// `JAILWARDEN_BANTIME_USEC`, `JAILWARDEN_FAILURES`. Its own ID, so
/// recidive (which reads MESSAGE_ID_BAN) never counts another host's bans.
pub const MESSAGE_ID_REMOTE_BAN: &str = "5d0c3e1f8a2b4c6d9e7f1a3b5c7d9e0f";

/// The MESSAGE of a ban event.
pub fn ban_message(jail: &str, address: &str, bantime: &str, failures: u32) -> String {
    format!("[{jail}] Ban {address} for {bantime} after {failures} failures")
}

/// The MESSAGE of an unban event.
pub fn unban_message(jail: &str, address: &str, reason: &str) -> String {
    format!("[{jail}] Unban {address} ({reason})")
}

/// Log a ban as one structured entry.
pub fn ban(ban: &crate::ban::Ban, bantime: &str) {
    let address = crate::addr::net_text(ban.net);
    let usec = ban
        .expires_at
        .map(|e| e.as_microsecond() - ban.banned_at.as_microsecond())
        .unwrap_or(0);
    tracing::warn!(
        message_id = MESSAGE_ID_BAN,
        jailwarden_jail = ban.jail.as_str(),
        jailwarden_address = address.as_str(),
        jailwarden_bantime_usec = usec,
        jailwarden_failures = ban.failures,
        "{}",
        ban_message(&ban.jail, &address, bantime, ban.failures)
    );
}

/// Log an unban as one structured entry.
pub fn unban(jail: &str, address: &str, reason: &str) {
    tracing::info!(
        message_id = MESSAGE_ID_UNBAN,
        jailwarden_jail = jail,
        jailwarden_address = address,
        jailwarden_reason = reason,
        "{}",
        unban_message(jail, address, reason)
    );
}

/// The daemon is ready.
pub fn ready(summary: &str) {
    tracing::info!(
        message_id = MESSAGE_ID_READY,
        "jailwarden {} ready: {summary}",
        env!("CARGO_PKG_VERSION")
    );
}

/// The configuration was reloaded; `kept` are `[daemon]` keys that
/// changed but apply only at the next start (also in the field
/// `JAILWARDEN_RESTART_NEEDED`, space-separated).
pub fn reloaded(summary: &str, kept: &[&str]) {
    if kept.is_empty() {
        tracing::info!(
            message_id = MESSAGE_ID_RELOAD,
            "configuration reloaded: {summary}"
        );
    } else {
        tracing::warn!(
            message_id = MESSAGE_ID_RELOAD,
            jailwarden_restart_needed = kept.join(" "),
            "configuration reloaded: {summary}; changed [daemon] {} take effect at the next start (systemctl restart jailwarden)",
            kept.join(", ")
        );
    }
}

/// A configuration problem; the running configuration is kept.
pub fn config_error(problem: &str) {
    tracing::error!(message_id = MESSAGE_ID_CONFIG_ERROR, "{problem}");
}

/// The firewall backend failed; retried after `retry`.
pub fn backend_error(backend: &str, error: &str, retry: std::time::Duration) {
    tracing::error!(
        message_id = MESSAGE_ID_BACKEND_ERROR,
        jailwarden_backend = backend,
        "firewall ({backend}) failed: {error}; retrying in {}",
        crate::config::duration::format_duration(retry)
    );
}

/// The MESSAGE of an action failure.
pub fn action_error_message(jail: &str, action: &str, problem: &str) -> String {
    format!("[{jail}] action {action} failed: {problem}")
}

/// An action failed (see [`MESSAGE_ID_ACTION_ERROR`]).
pub fn action_error(jail: &str, action: &str, address: Option<&str>, problem: &str) {
    let message = action_error_message(jail, action, problem);
    match address {
        Some(address) => tracing::error!(
            message_id = MESSAGE_ID_ACTION_ERROR,
            jailwarden_jail = jail,
            jailwarden_action = action,
            jailwarden_address = address,
            "{message}"
        ),
        None => tracing::error!(
            message_id = MESSAGE_ID_ACTION_ERROR,
            jailwarden_jail = jail,
            jailwarden_action = action,
            "{message}"
        ),
    }
}

/// The MESSAGE of a remote ban event.
pub fn remote_ban_message(
    origin: &str,
    jail: &str,
    address: &str,
    bantime: &str,
    failures: u32,
) -> String {
    format!("[fleet:{origin}] Ban {address} for {bantime} (jail {jail}, {failures} failures)")
}

/// Log a remote ban applied here, with its origin.
pub fn remote_ban(b: &crate::ban::RemoteBan) {
    let address = crate::addr::net_text(b.net);
    let left = b
        .expires_at
        .map(|e| e.as_microsecond() - b.banned_at.as_microsecond())
        .unwrap_or(0)
        .max(0);
    let bantime = if left == 0 {
        "permanent".to_string()
    } else {
        crate::config::duration::format_duration(std::time::Duration::from_micros(left as u64))
    };
    tracing::warn!(
        message_id = MESSAGE_ID_REMOTE_BAN,
        jailwarden_origin = b.origin.as_str(),
        jailwarden_jail = b.jail.as_str(),
        jailwarden_address = address.as_str(),
        jailwarden_bantime_usec = left,
        jailwarden_failures = b.failures,
        "{}",
        remote_ban_message(&b.origin, &b.jail, &address, &bantime, b.failures)
    );
}
