//! `jailwarden filters`: the filters available along the search path, with
//! their modes and description (what `ls filter.d` was to Fail2ban users).

use std::path::{Path, PathBuf};

use crate::config::reader::{Diagnostics, SourceFile};
use crate::filter::def::{FilterDef, name_of};

/// Run the command; returns the exit status.
pub fn run(filter_dirs: &[PathBuf], config: &Path, json: bool) -> i32 {
    let path = super::filter_path(filter_dirs, config);
    let mut rows = Vec::new();
    for (name, file) in path.list() {
        let diags = Diagnostics::new();
        let (description, modes) = match SourceFile::read(&file) {
            Ok(src) => {
                let def = FilterDef::read(&name_of(&file), &src, &diags);
                (def.description.clone(), def.mode_names())
            }
            Err(e) => (format!("(unreadable: {})", e.message), Vec::new()),
        };
        rows.push((name, modes, description, file, diags.len()));
    }
    if json {
        let list: Vec<serde_json::Value> = rows
            .iter()
            .map(|(name, modes, description, file, problems)| {
                serde_json::json!({
                    "name": name,
                    "modes": modes,
                    "description": description,
                    "path": file.display().to_string(),
                    "problems": problems,
                })
            })
            .collect();
        println!("{}", serde_json::Value::Array(list));
        return 0;
    }
    let width = rows.iter().map(|r| r.0.len()).max().unwrap_or(6).max(6);
    let mwidth = rows
        .iter()
        .map(|r| r.1.join(",").len())
        .max()
        .unwrap_or(5)
        .clamp(5, 40);
    println!("{:<width$}  {:<mwidth$}  DESCRIPTION", "FILTER", "MODES");
    for (name, modes, description, _, problems) in &rows {
        let note = if *problems > 0 {
            format!(" ({problems} problems: run check-config)")
        } else {
            String::new()
        };
        println!(
            "{name:<width$}  {:<mwidth$}  {description}{note}",
            modes.join(",")
        );
    }
    println!("{} filters in {}", rows.len(), path.describe());
    0
}
