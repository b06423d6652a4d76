//! `jailwarden import-fail2ban`: read a Fail2ban configuration the way
//! Fail2ban does and write the jailwarden configuration that does the
//! same, listing everything that could not be carried over exactly.
//!
//! ```text
//!  ini.rs        one INI file as Python's configparser reads it, file:line kept
//!  confreader.rs a unit's files (.conf, .d/, .local), includes, interpolation
//!  syntax.rs     name[opt=...], action lists, booleans, times (10m, -1)
//!  reader.rs     jails, filters ([Init], modes, <tags>), actions, as Fail2ban resolves them
//!  stock.rs      which filter texts Fail2ban shipped (stock/filters.txt), mode names
//!  pyre.rs       Python re patterns → regex-crate templates (exact rewrites or refusal)
//!  filter.rs     a jail's filter: ours, ours + a .local's patterns, or translated
//!  action.rs     firewall → nftables settings, mail, hosts-deny, command (for review)
//!  jail.rs       a jail's [jails.NAME] table
//!  report.rs     file:line: what; what was done, and the per-jail table
//!  write.rs      the files, --write (never overwriting without --force), check-config
//!  bans.rs       --bans: Fail2ban's current bans (its SQLite database) carried over
//! ```

pub mod action;
pub mod bans;
pub mod confreader;
pub mod filter;
pub mod ini;
pub mod jail;
pub mod pyre;
pub mod reader;
pub mod report;
pub mod stock;
pub mod syntax;
pub mod write;

use std::path::{Path, PathBuf};

use filter::{FilterFile, OurFilters};
use jail::JailOut;
use report::{Kind, Report, comment};

/// The jail.d file the import writes.
pub const JAIL_FILE: &str = "jail.d/50-fail2ban.toml";

/// What the command was asked.
#[derive(Debug, Clone)]
pub struct Options {
    /// Fail2ban's configuration directory.
    pub dir: PathBuf,
    /// Where jailwarden's configuration lives (jailwarden.toml, jail.d/, filters/).
    pub output: PathBuf,
    pub write: bool,
    pub force: bool,
    pub bans: bool,
    /// Fail2ban's database (default: its dbfile setting).
    pub fail2ban_db: Option<PathBuf>,
    /// jailwarden's state directory (for --bans with the daemon stopped).
    pub state_dir: Option<PathBuf>,
    /// jailwarden's control socket (for --bans with the daemon running).
    pub socket: Option<PathBuf>,
}

/// The result of translating a configuration.
pub struct Imported {
    pub jails: Vec<JailOut>,
    pub filters: Vec<FilterFile>,
    pub report: Report,
    /// Fail2ban's enabled jails, in its order (for the table).
    pub enabled: Vec<String>,
    pub source: reader::Fail2ban,
}

/// Read Fail2ban's configuration in `dir` and translate it, with
/// jailwarden's filters from `filter_path`.
pub fn import(dir: &Path, ours: &OurFilters) -> Result<Imported, ini::IniError> {
    let cfg = reader::read(dir)?;
    let mut report = Report::default();
    let mut jails: Vec<JailOut> = Vec::new();
    let mut filters: Vec<FilterFile> = Vec::new();
    let mut enabled = Vec::new();
    for j in cfg.jails.iter().filter(|j| j.enabled) {
        enabled.push(j.name.clone());
        let Some(mut out) = jail::translate(j, ours, dir, &mut report) else {
            continue;
        };
        if jails.iter().any(|o| o.name == out.name) {
            report.add(
                &j.pos,
                Some(&j.name),
                Kind::LeftOut,
                format!("jail [{}]", j.name),
                format!("another jail became {} already", out.name),
            );
            continue;
        }
        if let Some(file) = out.plan.file.take() {
            // Two jails may translate one filter differently (journal or file prefix).
            let mut name = file.name.clone();
            let mut n = 2;
            while let Some(existing) = filters.iter().find(|f| f.name == name) {
                if existing.text == file.text {
                    break;
                }
                name = format!("{}-{n}", file.name);
                n += 1;
            }
            if name != file.name {
                out.plan.filter = name.clone();
                for k in out.keys.iter_mut() {
                    if k.starts_with("filter = ") {
                        *k = format!("filter = {}", report::toml_str(&name));
                    }
                }
            }
            if !filters.iter().any(|f| f.name == name) {
                filters.push(FilterFile {
                    name,
                    text: file.text,
                });
            }
        }
        jails.push(out);
    }
    if enabled.is_empty() {
        report.add(
            &filter::file_pos(&dir.join("jail.conf")),
            None,
            Kind::LeftOut,
            "no enabled jail",
            "nothing to import (enable jails in jail.local, as Fail2ban needs)",
        );
    }
    Ok(Imported {
        jails,
        filters,
        report,
        enabled,
        source: cfg,
    })
}

/// The jail.d file's text.
pub fn render_jails(imp: &Imported, dir: &Path) -> String {
    let mut s = comment(&format!(
        "Imported from Fail2ban's configuration in {} by jailwarden import-fail2ban {}.\n\
         Every key is written out, so jailwarden's [defaults] do not change these jails.\n\
         Comments above each jail list what was not carried over exactly (the report).",
        dir.display(),
        env!("CARGO_PKG_VERSION")
    ));
    for j in &imp.jails {
        s.push('\n');
        let mut head = format!("[{}] from {}", j.fail2ban_name, j.pos);
        if j.name != j.fail2ban_name {
            head.push_str(&format!(", renamed {}", j.name));
        }
        s.push_str(&comment(&head));
        for item in imp.report.for_jail(&j.fail2ban_name) {
            s.push_str(&comment(&format!(
                "{}: {}; {}: {}",
                item.pos,
                item.what,
                item.kind.label(),
                item.done
            )));
        }
        s.push_str(&format!("[jails.{}]\n", j.name));
        for k in &j.keys {
            s.push_str(k);
            s.push('\n');
        }
        s.push_str(&format!("\n[jails.{}.increment]\n", j.name));
        for k in &j.increment {
            s.push_str(k);
            s.push('\n');
        }
        for a in &j.actions {
            s.push('\n');
            s.push_str(&comment(&a.comment));
            let mut block = format!("[[jails.{}.action]]\n", j.name);
            for k in &a.keys {
                block.push_str(k);
                block.push('\n');
            }
            if a.active {
                s.push_str(&block);
            } else {
                s.push_str(&comment(&block));
            }
        }
    }
    s
}

/// Run the command; returns the exit status.
pub fn run(opts: &Options) -> i32 {
    match write::run(opts) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("jailwarden: {e}");
            2
        }
    }
}
