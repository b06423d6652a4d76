//! Sources: where log lines come from (the journal, plain log files).

pub mod file;

/// A jail as the sources know it: its name, stable across reloads and cheap
/// to clone into every line a source delivers.
pub type JailId = std::sync::Arc<str>;
