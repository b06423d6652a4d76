//! The fleet: bans shared with other hosts through Redis (or Valkey)
//! streams. For the core the link is one more source (other hosts' bans)
//! and one more sink (this host's own decisions); it runs as its own task
//! and talks to the core over bounded channels only, so a slow or absent
//! Redis never delays a local ban.
//!
//! - [`wire`]: key names, stream fields, set members (pure);
//! - [`remote`]: the remote bans held and the policy (trust, ignore
//!   lists, fleet members, max_bantime, rate, quorum) (pure);
//! - [`link`]: the Redis connection: publishes, follows the peers'
//!   streams, reconnects with backoff, catches up.

pub mod link;
pub mod remote;
pub mod wire;

/// Whether this build speaks TLS to Redis (`rediss://`).
pub const TLS: bool = true;

/// Store position key prefix: `fleet:<origin>` → last stream ID read.
pub const POSITION_PREFIX: &str = "fleet:";
