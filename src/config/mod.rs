//! Configuration.

pub mod duration;
pub mod journal_match;
pub mod reader;
