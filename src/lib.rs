//! jailwarden: intrusion prevention for modern Linux.
//!
//! # Layout
//!
//! Data flows `source → filter → jail → ban`, with `store` and `control` on
//! the side (see ARCHITECTURE.md):
//!
//! - [`config`]: the TOML configuration, validated with file:line:column.
//! - [`filter`]: turns a log line or journal entry into zero or one failure.
//! - [`addr`]: host normalization and address lists.
//! - [`ban`]: the [`ban::Banner`] interface and its backends.
//! - [`source`]: where log entries come from (the journal reader).
//! - [`fleet`]: bans shared with other hosts through Redis: a source of
//!   remote bans and a sink of this host's own.
//! - [`memory`]: giving back the file pages an idle daemon touched.
//! - [`control`]: the `org.jailwarden1` D-Bus API (system bus and control
//!   socket) and the CLI client commands built on it.

pub mod addr;
pub mod ban;
pub mod cli;
pub mod compat;
pub mod config;
pub mod control;
pub mod daemon;
pub mod events;
pub mod filter;
pub mod fleet;
pub mod r#import;
pub mod jail;
pub mod lines;
pub mod manual;
pub mod memory;
pub mod source;
pub mod store;
