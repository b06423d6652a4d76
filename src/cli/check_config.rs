//! `jailwarden check-config [--config PATH]`: validate everything, print
//! every problem as `file:line:column: message` (exit 2) or a one-line
//! summary (exit 0).

use std::path::Path;

use crate::config;

/// Run the command; returns the exit status.
pub fn run(path: &Path) -> i32 {
    match config::load(path) {
        Ok(cfg) => {
            let enabled: Vec<&str> = cfg.enabled().map(|j| j.name.as_str()).collect();
            let mut filters: Vec<&str> =
                cfg.jails.values().map(|j| j.filter_name.as_str()).collect();
            filters.sort_unstable();
            filters.dedup();
            println!(
                "{}: OK: {} jail{} ({} enabled: {}), {} filter{} compiled, {} file{} read",
                path.display(),
                cfg.jails.len(),
                plural(cfg.jails.len()),
                enabled.len(),
                if enabled.is_empty() {
                    "none".to_string()
                } else {
                    enabled.join(", ")
                },
                filters.len(),
                plural(filters.len()),
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
