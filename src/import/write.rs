//! The command itself: translate, then print (dry run) or write the
//! files (`--write`: never replacing a file that differs without
//! `--force`, checked with the same checks as `check-config` and rolled
//! back if they fail), the report and the next steps; `--bans` carries
//! Fail2ban's bans over.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::bans;
use super::filter::OurFilters;
use super::report::Kind;
use super::{Imported, JAIL_FILE, Options, import, render_jails};
use crate::config;
use crate::filter::def::FilterPath;

/// The main file written when the output directory has none.
const MINIMAL_MAIN: &str = "# jailwarden configuration (written by jailwarden import-fail2ban, which\n\
# found none here). Jails are in jail.d/; see `jailwarden check-config`.\n\n\
[daemon]\nbackend = \"nftables\"\n";

/// The filter search path a configuration in `output` will have: its
/// main file's `filter_dirs`, `output/filters`, the shipped filters.
pub fn filter_path_for(output: &Path) -> FilterPath {
    let main = output.join("jailwarden.toml");
    let mut dirs: Vec<PathBuf> = Vec::new();
    if let Ok(text) = std::fs::read_to_string(&main) {
        if let Ok(t) = text.parse::<toml::Table>() {
            if let Some(list) = t
                .get("daemon")
                .and_then(|d| d.get("filter_dirs"))
                .and_then(|f| f.as_array())
            {
                dirs.extend(
                    list.iter()
                        .filter_map(|v| v.as_str())
                        .map(|s| output.join(s)),
                );
            }
        }
    }
    dirs.push(output.join("filters"));
    dirs.push(PathBuf::from(config::SHARED_FILTERS));
    FilterPath::new(dirs)
}

/// The files of an import: `(path, text)`.
fn files(imp: &Imported, opts: &Options) -> Vec<(PathBuf, String)> {
    let mut out = Vec::new();
    let main = opts.output.join("jailwarden.toml");
    if !main.exists() {
        out.push((main, MINIMAL_MAIN.to_string()));
    }
    out.push((opts.output.join(JAIL_FILE), render_jails(imp, &opts.dir)));
    for f in &imp.filters {
        out.push((
            opts.output.join("filters").join(format!("{}.toml", f.name)),
            f.text.clone(),
        ));
    }
    out
}

/// Check the jails and filters as `check-config` would, in a scratch
/// directory whose filter path is the real one plus the new filters
/// (dry run: nothing is written where it counts).
fn check_scratch(imp: &Imported, opts: &Options, path: &FilterPath) -> Result<String, Vec<String>> {
    let tmp =
        tempfile::tempdir().map_err(|e| vec![format!("cannot make a scratch directory: {e}")])?;
    let mut dirs: Vec<String> = vec![tmp.path().join("filters").display().to_string()];
    dirs.extend(path.dirs().iter().map(|d| d.display().to_string()));
    let main = format!(
        "[daemon]\nfilter_dirs = {}\n",
        super::report::toml_list(&dirs)
    );
    let write = |p: PathBuf, t: &str| -> std::io::Result<()> {
        if let Some(d) = p.parent() {
            std::fs::create_dir_all(d)?;
        }
        std::fs::write(p, t)
    };
    let mut io = Ok(());
    io = io.and(write(tmp.path().join("jailwarden.toml"), &main));
    io = io.and(write(
        tmp.path().join(JAIL_FILE),
        &render_jails(imp, &opts.dir),
    ));
    for f in &imp.filters {
        io = io.and(write(
            tmp.path().join("filters").join(format!("{}.toml", f.name)),
            &f.text,
        ));
    }
    io.map_err(|e| vec![format!("scratch directory: {e}")])?;
    match config::load(&tmp.path().join("jailwarden.toml")) {
        Ok(cfg) => Ok(format!(
            "{} jail{} check out ({} enabled)",
            cfg.jails.len(),
            if cfg.jails.len() == 1 { "" } else { "s" },
            cfg.enabled().count()
        )),
        Err(d) => Err(d
            .iter()
            .map(|d| {
                d.to_string().replace(
                    &tmp.path().display().to_string(),
                    &opts.output.display().to_string(),
                )
            })
            .collect()),
    }
}

fn print_report(imp: &Imported) {
    let items = imp.report.listed();
    let listed: Vec<_> = items
        .iter()
        .filter(|i| i.kind != Kind::Carried || !i.done.is_empty())
        .collect();
    let inexact = listed.iter().filter(|i| i.kind != Kind::Carried).count();
    println!(
        "Report: {inexact} item{} not carried over exactly, {} exact rewrite{} (file:line: what; what was done)",
        if inexact == 1 { "" } else { "s" },
        listed.len() - inexact,
        if listed.len() - inexact == 1 { "" } else { "s" }
    );
    for i in listed {
        println!("  {i}");
    }
    println!();
    print!("{}", imp.report.table(&imp.enabled));
}

/// Fail2ban's database path: --fail2ban-db, else its `dbfile`.
fn fail2ban_db(imp: &Imported, opts: &Options) -> Option<PathBuf> {
    opts.fail2ban_db
        .clone()
        .or_else(|| {
            imp.source
                .dbfile
                .as_ref()
                .map(|v| v.text().trim().to_string())
                .filter(|p| p.starts_with('/'))
                .map(PathBuf::from)
        })
        .or_else(|| Some(PathBuf::from("/var/lib/fail2ban/fail2ban.sqlite3")))
}

fn now() -> i64 {
    jiff::Timestamp::now().as_second()
}

/// Fail2ban's jail names → the imported ones.
fn jail_map(imp: &Imported) -> HashMap<String, String> {
    imp.jails
        .iter()
        .map(|j| (j.fail2ban_name.clone(), j.name.clone()))
        .collect()
}

/// The whole command; `Err` for problems reading Fail2ban's files.
pub fn run(opts: &Options) -> Result<i32, String> {
    let path = filter_path_for(&opts.output);
    let ours = OurFilters::load(path.clone());
    if ours.is_empty() {
        eprintln!(
            "jailwarden: warning: no jailwarden filters found (searched {}): every filter is translated",
            path.describe()
        );
    }
    let imp = import(&opts.dir, &ours).map_err(|e| e.to_string())?;
    let files = files(&imp, opts);
    let db = fail2ban_db(&imp, opts);
    let f2b_bans = match (&db, opts.bans) {
        (Some(db), true) => Some(bans::current(db, now())?),
        _ => None,
    };

    if !opts.write {
        for (p, text) in &files {
            println!("==> {} <==", p.display());
            print!("{text}");
            println!();
        }
        print_report(&imp);
        match check_scratch(&imp, opts, &path) {
            Ok(summary) => println!("\ncheck-config on the result: OK: {summary}"),
            Err(problems) => {
                println!(
                    "\ncheck-config on the result: {} problem(s):",
                    problems.len()
                );
                for p in &problems {
                    println!("  {p}");
                }
            }
        }
        if let Some(b) = &f2b_bans {
            let map = jail_map(&imp);
            let n = b.iter().filter(|x| map.contains_key(&x.jail)).count();
            println!(
                "\n{n} of Fail2ban's {} bans in force would be carried over with --write --bans:",
                b.len()
            );
            for x in b {
                let left = x
                    .left(now())
                    .map_or("permanent".to_string(), |s| format!("{s}s left"));
                let to = map
                    .get(&x.jail)
                    .map_or("not imported".to_string(), |j| format!("into {j}"));
                println!("  {} {} ({left}), {to}", x.jail, x.ip);
            }
        }
        println!(
            "\nDry run: nothing written. Write it with: jailwarden import-fail2ban {} --output {} --write",
            opts.dir.display(),
            opts.output.display()
        );
        return Ok(0);
    }

    // --write: refuse to replace files that differ, unless --force.
    let clashes: Vec<&PathBuf> = files
        .iter()
        .filter(|(p, text)| {
            std::fs::read_to_string(p).is_ok_and(|old| old != *text)
                || (p.exists() && std::fs::read_to_string(p).is_err())
        })
        .map(|(p, _)| p)
        .collect();
    if !clashes.is_empty() && !opts.force {
        for p in &clashes {
            eprintln!(
                "jailwarden: {} exists and differs (--force replaces it)",
                p.display()
            );
        }
        eprintln!("jailwarden: nothing written");
        return Ok(1);
    }
    let mut undo: Vec<(PathBuf, Option<Vec<u8>>)> = Vec::new();
    let rollback = |undo: &[(PathBuf, Option<Vec<u8>>)]| {
        for (p, old) in undo.iter().rev() {
            match old {
                Some(bytes) => {
                    let _ = std::fs::write(p, bytes);
                }
                None => {
                    let _ = std::fs::remove_file(p);
                }
            }
        }
    };
    for (p, text) in &files {
        let old = std::fs::read(p).ok();
        if old.as_deref() == Some(text.as_bytes()) {
            continue;
        }
        let result = (|| -> std::io::Result<()> {
            if let Some(d) = p.parent() {
                std::fs::create_dir_all(d)?;
            }
            let tmp = p.with_extension("toml.import-tmp");
            std::fs::write(&tmp, text)?;
            std::fs::rename(&tmp, p)
        })();
        undo.push((p.clone(), old));
        if let Err(e) = result {
            rollback(&undo);
            return Err(format!("{}: {e}; nothing written", p.display()));
        }
    }
    let main = opts.output.join("jailwarden.toml");
    let summary = match config::load(&main) {
        Ok(cfg) => format!(
            "{}: OK: {} jails ({} enabled), {} files read",
            main.display(),
            cfg.jails.len(),
            cfg.enabled().count(),
            cfg.files.len()
        ),
        Err(problems) => {
            rollback(&undo);
            for p in &problems {
                eprintln!("{p}");
            }
            eprintln!(
                "jailwarden: the result does not pass check-config ({} problems): nothing written",
                problems.len()
            );
            return Ok(2);
        }
    };
    for (p, _) in &files {
        println!("wrote {}", p.display());
    }
    println!();
    print_report(&imp);
    println!("\ncheck-config: {summary}");
    let mut bans_line = String::new();
    if let Some(b) = &f2b_bans {
        let state_dir = opts.state_dir.clone().unwrap_or_else(|| {
            config::load(&main)
                .ok()
                .and_then(|c| c.daemon.state_dir.clone())
                .unwrap_or_else(|| PathBuf::from(config::DEFAULT_STATE_DIR))
        });
        let out = bans::carry(
            b,
            &jail_map(&imp),
            true,
            opts.socket.clone(),
            &state_dir,
            now(),
        )?;
        println!(
            "\nCarried over {} of Fail2ban's {} bans in force {}.",
            out.carried,
            b.len(),
            out.how
        );
        for (x, why) in &out.skipped {
            println!("  not carried over: [{}] {}: {why}", x.jail, x.ip);
        }
    } else if let Some(db) = db.filter(|d| d.exists()) {
        let n = bans::current(&db, now()).map(|b| b.len()).unwrap_or(0);
        bans_line = format!(
            "\n  Fail2ban holds {n} ban{} now ({}): carry them over with\n     jailwarden import-fail2ban {} --output {} --write --force --bans",
            if n == 1 { "" } else { "s" },
            db.display(),
            opts.dir.display(),
            opts.output.display()
        );
    }
    println!(
        "\nNext steps:\n  1. Read the report above (also in the comments of {jail}); REVIEW any command actions.\n  2. Stop Fail2ban (both ban in the kernel, and would fight over the same logs):\n     systemctl disable --now fail2ban\n  3. Start jailwarden: systemctl enable --now jailwarden (or systemctl reload jailwarden if it runs)\n  4. Watch it: jailwarden status; journalctl -u jailwarden{bans_line}",
        jail = opts.output.join(JAIL_FILE).display()
    );
    Ok(0)
}
