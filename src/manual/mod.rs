//! The manual pages: jailwarden(8) from the command-line definitions,
//! jailwarden.toml(5) and jailwarden-filter(5) from the key tables the
//! configuration reader uses (`config::keys`), with the prose around them.
//! `jailwarden generate man DIR` writes them; `make install` and the .deb
//! install them.

mod commands;
mod config;
mod filter;
mod roff;

use std::path::{Path, PathBuf};

/// The pages' file names and their text, for the command line `cmd`
/// (the binary's clap definition, so new subcommands appear by themselves).
pub fn pages(cmd: clap::Command) -> Vec<(&'static str, String)> {
    vec![
        ("jailwarden.8", commands::page(cmd)),
        ("jailwarden.toml.5", config::page()),
        ("jailwarden-filter.5", filter::page()),
    ]
}

/// Write every page into `dir` (created if missing); returns the files.
pub fn write(cmd: clap::Command, dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)?;
    let mut out = Vec::new();
    for (name, text) in pages(cmd) {
        let path = dir.join(name);
        std::fs::write(&path, text)?;
        out.push(path);
    }
    Ok(out)
}

/// The date the pages carry: `$SOURCE_DATE_EPOCH` (reproducible builds),
/// else today.
fn date() -> String {
    std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|s| s.parse::<i64>().ok())
        .and_then(|s| jiff::Timestamp::from_second(s).ok())
        .unwrap_or_else(jiff::Timestamp::now)
        .strftime("%Y-%m-%d")
        .to_string()
}

fn source() -> String {
    format!("jailwarden {}", env!("CARGO_PKG_VERSION"))
}
