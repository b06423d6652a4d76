//! Root-only tests as a non-root user: each says it is skipped, on the
//! terminal (not captured by the test harness), and the test binary ends
//! with the count, so `cargo test` as a user runs what it can and says
//! what it did not. Used by `support`, `bus_support` and `nspawn.rs`.

#![allow(dead_code)] // each test binary uses its own subset

use std::io::Write;
use std::sync::Once;
use std::sync::atomic::{AtomicUsize, Ordering};

static SKIPPED: AtomicUsize = AtomicUsize::new(0);
static SUMMARY: Once = Once::new();

/// Whether this process runs as root.
pub fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

extern "C" fn summary() {
    let n = SKIPPED.load(Ordering::Relaxed);
    if n > 0 {
        let suite = std::env::args()
            .next()
            .and_then(|a| {
                std::path::Path::new(&a)
                    .file_name()
                    .map(|f| f.to_string_lossy().into_owned())
            })
            .unwrap_or_default();
        let suite = suite
            .rsplit_once('-')
            .map_or(suite.as_str(), |(s, _)| s)
            .to_string();
        let _ = writeln!(
            std::io::stderr(),
            "jailwarden tests: {n} test{} of tests/{suite}.rs SKIPPED: they need root \
             (private journald, network namespaces, nftables, systemd-nspawn); run them as root: sudo -E env \"PATH=$PATH\" cargo test --test {suite}",
            if n == 1 { "" } else { "s" }
        );
    }
}

/// `true` (and a line on stderr) when not root: the caller returns. The
/// test's name is its thread's (the harness names each test's thread).
pub fn skip_unless_root() -> bool {
    let thread = std::thread::current();
    let test = thread.name().unwrap_or("a test");
    if is_root() {
        return false;
    }
    SKIPPED.fetch_add(1, Ordering::Relaxed);
    SUMMARY.call_once(|| {
        // SAFETY: registering a plain extern "C" function with atexit has
        // no preconditions; it runs once, at process exit.
        unsafe {
            libc::atexit(summary);
        }
    });
    // Straight to fd 2: the harness captures only print!/eprint!.
    let _ = writeln!(std::io::stderr(), "SKIPPED (needs root): {test}");
    true
}

/// For helpers that cannot make their caller return: a one-line failure
/// that says why, instead of a cascade of errors from tools run without
/// privileges.
pub fn require_root(what: &str) {
    if !is_root() {
        panic!(
            "{what} needs root: run the tests as root, as CI does: sudo -E env \"PATH=$PATH\" cargo test"
        );
    }
}
