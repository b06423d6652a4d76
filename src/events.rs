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

/// The MESSAGE of a ban event.
pub fn ban_message(jail: &str, address: &str, bantime: &str, failures: u32) -> String {
    format!("[{jail}] Ban {address} for {bantime} after {failures} failures")
}

/// The MESSAGE of an unban event.
pub fn unban_message(jail: &str, address: &str, reason: &str) -> String {
    format!("[{jail}] Unban {address} ({reason})")
}
