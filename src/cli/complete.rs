//! Shell completion: the scripts `generate completions SHELL` prints (and
//! packaging installs), and the candidates the binary computes when those
//! scripts ask (clap_complete's dynamic engine, so every subcommand and
//! option is completed as clap defines it): jail names from the running
//! daemon (else the configuration), filter names from the filter path.

use std::ffi::OsStr;
use std::path::Path;

use clap_complete::engine::{CompletionCandidate, PathCompleter, ValueCompleter};
use clap_complete::env::EnvCompleter;

/// Shells with a completion script.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Shell {
    Bash,
    Zsh,
    Fish,
}

/// The script for `shell`: it calls `jailwarden` (from `PATH`) with `var`
/// set to get candidates.
pub fn script(shell: Shell, var: &'static str) -> String {
    let completer: &dyn EnvCompleter = match shell {
        Shell::Bash => &clap_complete::env::Bash,
        Shell::Zsh => &clap_complete::env::Zsh,
        Shell::Fish => &clap_complete::env::Fish,
    };
    let mut buf = Vec::new();
    if completer
        .write_registration(var, "jailwarden", "jailwarden", "jailwarden", &mut buf)
        .is_err()
    {
        return String::new();
    }
    let mut text = String::from_utf8_lossy(&buf).into_owned();
    if shell == Shell::Zsh {
        // Installed as _jailwarden in $fpath, the file is the body of an
        // autoloaded function run on the first Tab: complete right away
        // then, instead of only registering for the next Tab.
        text.push_str(
            "if [[ ${funcstack[1]} == _jailwarden ]]; then\n    _clap_dynamic_completer_jailwarden \"$@\"\nfi\n",
        );
    }
    text
}

/// Candidates among `names` that start with `current`.
fn matching(names: impl IntoIterator<Item = String>, current: &OsStr) -> Vec<CompletionCandidate> {
    let current = current.to_string_lossy();
    names
        .into_iter()
        .filter(|n| n.starts_with(current.as_ref()))
        .map(CompletionCandidate::new)
        .collect()
}

/// Filter names along the offline commands' filter path; a value with a
/// `/` is completed as a file path.
pub fn filters(current: &OsStr) -> Vec<CompletionCandidate> {
    if current.to_string_lossy().contains('/') {
        return PathCompleter::file().complete(current);
    }
    let path = super::search_path(&[], Path::new(crate::config::DEFAULT_CONFIG), false);
    matching(path.list().into_iter().map(|(name, _)| name), current)
}

/// Jail names: the running daemon's, else those the configuration declares.
pub fn jails(current: &OsStr) -> Vec<CompletionCandidate> {
    let names = crate::control::cli::jail_names()
        .unwrap_or_else(|| configured_jails(Path::new(crate::config::DEFAULT_CONFIG)));
    matching(names, current)
}

/// `[jails.NAME]` tables in the configuration files, read without
/// validating anything (completion must be quick and never complain).
fn configured_jails(main: &Path) -> Vec<String> {
    let mut names = Vec::new();
    for file in crate::config::config_files(main) {
        let Ok(text) = std::fs::read_to_string(&file) else {
            continue;
        };
        let Ok(doc) = text.parse::<toml::Table>() else {
            continue;
        };
        if let Some(jails) = doc.get("jails").and_then(|j| j.as_table()) {
            names.extend(jails.keys().cloned());
        }
    }
    names.sort();
    names.dedup();
    names
}
