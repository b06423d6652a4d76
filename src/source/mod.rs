//! Sources: where log text comes from before a filter sees it.
//!
//! Each source runs on its own thread and hands entries to the async core
//! over a bounded channel. An entry names the jails it is for (by
//! [`JailId`]) and carries the source's own position (a journal cursor, a
//! file offset keyed by file identity), which the core commits together
//! with the jail state the entry produced, so a restart replays at most
//! the entries whose effect was not yet stored.
//!
//! - [`journal`]: one reader for every journal jail.
//! - [`file`]: inotify-driven tailing of log files, with rotation.
//! - `sigbus`: journal files cut short while mapped do not kill the daemon.

pub mod file;
pub mod journal;
mod sigbus;

/// A jail as the sources know it: its name, stable across reloads and cheap
/// to clone into every entry a source delivers.
pub type JailId = std::sync::Arc<str>;

/// The longest message text a source passes on, in bytes; longer messages
/// are cut here (and counted), so a hostile or broken sender cannot make a
/// filter scan megabytes per entry.
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024;
