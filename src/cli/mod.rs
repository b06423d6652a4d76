//! Offline commands of the `jailwarden` binary (no daemon needed):
//! `test-filter` and `check-config`.

pub mod check_config;
pub mod complete;
pub mod filters;
mod progress;
pub mod test_filter;

use std::path::{Path, PathBuf};

use crate::config::reader::Diagnostic;
use crate::filter::def::FilterPath;

/// The filter search path for offline commands: `--filter-dir`s, then
/// `JAILWARDEN_FILTER_PATH` (colon-separated), then the path of the
/// configuration at `config` (its `[daemon] filter_dirs`, the filters
/// beside it; skipped with a warning if broken, silently if it is the
/// default and absent), then a source checkout's `config/filters` when this
/// binary was built in one, then the system directories. jailwarden(8)
/// documents this order (FILTER SEARCH PATH).
pub fn filter_path(extra: &[PathBuf], config: &Path) -> FilterPath {
    search_path(extra, config, true)
}

/// [`filter_path`]; `warn`: say on stderr why the configuration's part is
/// skipped (not while completing a command line).
pub(crate) fn search_path(extra: &[PathBuf], config: &Path, warn: bool) -> FilterPath {
    let mut dirs: Vec<PathBuf> = extra.to_vec();
    if let Some(env) = std::env::var_os("JAILWARDEN_FILTER_PATH") {
        dirs.extend(std::env::split_paths(&env).filter(|p| !p.as_os_str().is_empty()));
    }
    let default = config == Path::new(crate::config::DEFAULT_CONFIG);
    if config.exists() || !default {
        match crate::config::filter_path_of(config) {
            Ok(p) => dirs.extend(p.dirs().iter().cloned()),
            Err(problems) if warn => {
                eprintln!(
                    "jailwarden: {}: its filter_dirs are not searched, because:",
                    config.display()
                );
                print_diagnostics(&problems);
            }
            Err(_) => {}
        }
    }
    dirs.extend(checkout_filters());
    dirs.extend(FilterPath::system().dirs().iter().cloned());
    let mut seen = std::collections::HashSet::new();
    dirs.retain(|d| seen.insert(d.clone()));
    FilterPath::new(dirs)
}

/// `config/filters` of the source checkout this binary was built in:
/// the executable is `<checkout>/target/<profile>/jailwarden` (or in
/// `deps/` below it, for tests) next to the checkout's `Cargo.toml`.
fn checkout_filters() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    exe.ancestors()
        .skip(1)
        .take(4)
        .find(|d| d.file_name().is_some_and(|n| n == "target"))
        .and_then(Path::parent)
        .filter(|root| {
            std::fs::read_to_string(root.join("Cargo.toml"))
                .is_ok_and(|t| t.contains("name = \"jailwarden\""))
        })
        .map(|root| root.join("config/filters"))
        .filter(|d| d.is_dir())
}

/// Print diagnostics to stderr, one per line.
pub fn print_diagnostics(diags: &[Diagnostic]) {
    for d in diags {
        eprintln!("{d}");
    }
}
