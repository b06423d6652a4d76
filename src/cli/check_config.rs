//! `jailwarden check-config [--config PATH]`: validate everything, print
//! every problem as `file:line:column: message` (exit 2) or a one-line
//! summary (exit 0).

use std::path::Path;
use std::sync::Arc;

use crate::config;

/// Run the command; returns the exit status.
pub fn run(path: &Path) -> i32 {
    match config::load(path) {
        Ok(cfg) => {
            let enabled: Vec<&str> = cfg.enabled().map(|j| j.name.as_str()).collect();
            // Jails on the same filter and mode share one compiled copy.
            let mut compiled: Vec<*const crate::filter::Filter> =
                cfg.jails.values().map(|j| Arc::as_ptr(&j.filter)).collect();
            compiled.sort_unstable();
            compiled.dedup();
            println!(
                "{}: OK: {} jail{} ({} enabled: {}), {} filter{} compiled, {} file{} read",
                path.display(),
                cfg.jails.len(),
                plural(cfg.jails.len()),
                enabled.len(),
                names(&enabled),
                compiled.len(),
                plural(compiled.len()),
                cfg.files.len(),
                plural(cfg.files.len()),
            );
            0
        }
        Err(problems) => {
            super::print_diagnostics(&problems);
            eprintln!(
                "{}: {} problem{}",
                path.display(),
                problems.len(),
                plural(problems.len())
            );
            2
        }
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

/// Names for the summary line: all of a few, the first of many.
fn names(list: &[&str]) -> String {
    const SHOWN: usize = 12;
    match list.len() {
        0 => "none".to_string(),
        n if n <= SHOWN => list.join(", "),
        n => format!("{}, … and {} more", list[..SHOWN].join(", "), n - SHOWN),
    }
}
