//! Offline commands of the `jailwarden` binary (no daemon needed):
//! `test-filter` and `check-config`.

pub mod check_config;
pub mod filters;
pub mod test_filter;

use std::path::PathBuf;

use crate::config::reader::Diagnostic;
use crate::filter::def::FilterPath;

/// The filter search path for offline commands: `--filter-dir`s first,
/// then `JAILWARDEN_FILTER_PATH` (colon-separated), then the system
/// directories.
pub fn filter_path(extra: &[PathBuf]) -> FilterPath {
    let mut dirs: Vec<PathBuf> = extra.to_vec();
    if let Some(env) = std::env::var_os("JAILWARDEN_FILTER_PATH") {
        dirs.extend(std::env::split_paths(&env).filter(|p| !p.as_os_str().is_empty()));
    }
    dirs.extend(FilterPath::system().dirs().iter().cloned());
    FilterPath::new(dirs)
}

/// Print diagnostics to stderr, one per line.
pub fn print_diagnostics(diags: &[Diagnostic]) {
    for d in diags {
        eprintln!("{d}");
    }
}
