//! Sources: where log text comes from before a filter sees it.
//!
//! Each source runs on its own and hands entries to the async core over a
//! bounded channel. An entry names the jails it is for (by [`JailId`]) and
//! carries the source's own position (a journal cursor here), which the core
//! commits together with the jail state the entry produced, so a restart
//! replays at most the entries whose effect was not yet stored.
//!
//! - [`journal`]: one reader for every journal jail, on a thread of its own.

pub mod journal;

/// A jail as sources know it: an index the daemon hands out, cheaper to copy
/// and compare per entry than the jail's name.
pub type JailId = u32;

/// The longest message text a source passes on, in bytes; longer messages
/// are cut here (and counted), so a hostile or broken sender cannot make a
/// filter scan megabytes per entry. Fail2ban-style filters only look at the
/// start of a line anyway.
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024;
