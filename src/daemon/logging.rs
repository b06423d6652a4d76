//! Where the daemon's messages go: the journal, natively, with structured
//! fields (the ban events' `JAILWARDEN_*` and `MESSAGE_ID`), and readable
//! text on stderr when asked (`--foreground`) or when no journal is there.
//!
//! `JAILWARDEN_LOG` sets the level filter (tracing's `EnvFilter` syntax,
//! default `info`).

use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// Install the subscriber; safe to call once per process.
pub fn init(foreground: bool) {
    let filter =
        EnvFilter::try_from_env("JAILWARDEN_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let journald = tracing_journald::layer().ok().map(|l| {
        l.with_field_prefix(None)
            .with_syslog_identifier("jailwarden".to_string())
    });
    let stderr = (foreground || journald.is_none()).then(|| {
        tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .with_target(false)
    });
    let _ = tracing_subscriber::registry()
        .with(filter)
        .with(journald)
        .with(stderr)
        .try_init();
}
