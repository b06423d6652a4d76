//! A jail's Fail2ban filter becomes a jailwarden filter:
//!
//! - a filter Fail2ban ships, unchanged (every file it reads is the text of
//!   a Fail2ban release, see [`super::stock`]), and given only `mode`:
//!   jailwarden's filter of the same name, in the matching mode;
//! - a stock filter whose `.local` only adds patterns (`failregex =
//!   %(known/failregex)s` + lines): jailwarden's filter, plus the added
//!   patterns translated, as a mode `fail2ban` of a copy of it;
//! - anything else: translated pattern by pattern ([`super::pyre`]). A
//!   pattern with no exact linear-time equivalent makes the jail fall
//!   back to jailwarden's filter of the same name, or, where there is
//!   none, is left out.
//!
//! Every decision goes to the report with the file:line of the pattern.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use super::ini::{Pos, Spanned};
use super::pyre::{self, Context};
use super::reader::{FilterRef, JailDef};
use super::report::{Kind, Report, comment, toml_list, toml_str};
use super::stock;
use crate::config::reader::{Diagnostics, SourceFile};
use crate::filter::def::{FilterDef, FilterPath, Role};
use crate::filter::{Filter, FilterLoader};

/// The mode name of a shipped filter extended with a `.local`'s patterns.
pub const EXTRA_MODE: &str = "fail2ban";

/// One of jailwarden's filters, as the import needs to know it.
#[derive(Debug, Clone)]
pub struct OurFilter {
    pub path: PathBuf,
    pub text: String,
    pub modes: Vec<String>,
    pub has_prefregex: bool,
    pub journal_match: Vec<String>,
}

/// jailwarden's filters along a search path.
pub struct OurFilters {
    pub path: FilterPath,
    filters: BTreeMap<String, OurFilter>,
}

impl OurFilters {
    pub fn load(path: FilterPath) -> OurFilters {
        let mut filters = BTreeMap::new();
        for (name, file) in path.list() {
            let Ok(text) = std::fs::read_to_string(&file) else {
                continue;
            };
            let diags = Diagnostics::new();
            let def = FilterDef::read(&name, &SourceFile::new(&file, text.clone()), &diags);
            if !diags.is_empty() {
                continue;
            }
            filters.insert(
                name,
                OurFilter {
                    path: file,
                    text,
                    modes: def.mode_names(),
                    has_prefregex: def.prefregex.is_some(),
                    journal_match: def.journal_match.iter().map(|t| t.value.clone()).collect(),
                },
            );
        }
        OurFilters { path, filters }
    }

    pub fn get(&self, name: &str) -> Option<&OurFilter> {
        self.filters.get(name)
    }

    pub fn is_empty(&self) -> bool {
        self.filters.is_empty()
    }
}

/// A filter file the import writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilterFile {
    pub name: String,
    pub text: String,
}

/// What a jail uses.
#[derive(Debug, Clone)]
pub struct Plan {
    pub filter: String,
    pub mode: String,
    /// A file to write for it.
    pub file: Option<FilterFile>,
    /// The Fail2ban filter's journalmatch in jailwarden's syntax (terms,
    /// `+` between groups) and where it was written.
    pub journalmatch: Option<(Vec<String>, Pos)>,
    /// Whether the filter is jailwarden's own (its journal_match applies).
    pub ours: bool,
}

/// `journalmatch` lines → jailwarden's terms (each line an OR group).
pub fn journal_terms(v: &Spanned) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for line in v.text().split('\n') {
        let terms = shell_words(line);
        if terms.is_empty() {
            continue;
        }
        if !out.is_empty() {
            out.push("+".into());
        }
        out.extend(terms);
    }
    out
}

/// shlex.split for the simple quoting journal matches use.
pub fn shell_words(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quote: Option<char> = None;
    let mut any = false;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some('"'), '\\') => {
                if let Some(n) = chars.next() {
                    cur.push(n);
                }
            }
            (Some(_), c) => cur.push(c),
            (None, '\'' | '"') => {
                quote = Some(c);
                any = true;
            }
            (None, '\\') => {
                if let Some(n) = chars.next() {
                    cur.push(n);
                }
            }
            (None, c) if c.is_whitespace() => {
                if any || !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                    any = false;
                }
            }
            (None, c) => cur.push(c),
        }
    }
    if any || !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// Lines of a multi-line option, with where each was written.
fn lines_of(v: Option<&Spanned>) -> Vec<(String, Pos)> {
    v.map(|v| {
        v.lines()
            .into_iter()
            .filter(|(l, _)| !l.trim().is_empty())
            .collect()
    })
    .unwrap_or_default()
}

/// Is every file the filter reads a Fail2ban release's text? The first
/// file that is not, when not.
fn first_changed_file(files: &[PathBuf]) -> Option<(PathBuf, String)> {
    for f in files {
        let name = f
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_string();
        let in_d_dir = f
            .parent()
            .and_then(|p| p.file_name())
            .and_then(|n| n.to_str())
            .is_some_and(|d| d.ends_with(".d") && d != "filter.d");
        if name.ends_with(".local") || in_d_dir {
            return Some((f.clone(), "a local override".into()));
        }
        let stem = name.trim_end_matches(".conf");
        let Ok(text) = std::fs::read_to_string(f) else {
            return Some((f.clone(), "unreadable".into()));
        };
        if stock::shipped_in(stem, &text).is_none() {
            return Some((
                f.clone(),
                if stock::is_stock_name(stem) {
                    "changed from every Fail2ban release".into()
                } else {
                    "not a file Fail2ban ships".into()
                },
            ));
        }
    }
    None
}

/// Does a template compile as a jailwarden pattern (with this
/// prefregex)? The compiler's message if not.
fn check_pattern(
    loader: &FilterLoader,
    prefregex: Option<&str>,
    pattern: &str,
    role: Role,
    ignore: bool,
) -> Result<(), String> {
    let mut text = String::new();
    if let Some(p) = prefregex {
        text.push_str(&format!("prefregex = {}\n", toml_str(p)));
    }
    let pattern = (pattern.to_string(), Pos::none());
    if ignore {
        text.push_str("failregex = ['^<HOST>$']\n");
        text.push_str(&render_ignoreregex(&[pattern]));
    } else {
        text.push_str(&render_failregex(&[(pattern.0, role, pattern.1)]));
    }
    compile_text(loader, "check", &text)
}

/// Compile a filter text along the loader's path (for its common.toml).
pub fn compile_text(loader: &FilterLoader, name: &str, text: &str) -> Result<(), String> {
    let diags = Diagnostics::new();
    let file = SourceFile::new(format!("{name}.toml"), text.to_string());
    let def = FilterDef::read(name, &file, &diags);
    let common = loader
        .read("sshd", &Diagnostics::new())
        .map(|(_, c)| c)
        .unwrap_or_default();
    let _ = Filter::compile(&def, "normal", &common, &diags);
    if diags.is_empty() {
        Ok(())
    } else {
        Err(diags
            .into_sorted()
            .iter()
            .map(|d| {
                let s = d.to_string();
                s.split_once(": ").map_or(s.clone(), |(_, m)| m.to_string())
            })
            .collect::<Vec<_>>()
            .join("; "))
    }
}

struct Translated {
    prefregex: Option<String>,
    failregex: Vec<(String, Role, Pos)>,
    ignoreregex: Vec<(String, Pos)>,
    /// Patterns that could not be translated: (Fail2ban text, where, why).
    refused: Vec<(String, Pos, String)>,
}

/// Translate a Fail2ban filter's patterns (those of `lines`).
fn translate_patterns(
    loader: &FilterLoader,
    prefregex: Option<&(String, Pos)>,
    failregex: &[(String, Pos)],
    ignoreregex: &[(String, Pos)],
    jail: &str,
    report: &mut Report,
) -> Result<Translated, (String, Pos, String)> {
    let mut out = Translated {
        prefregex: None,
        failregex: Vec::new(),
        ignoreregex: Vec::new(),
        refused: Vec::new(),
    };
    let mut end_is_line_end = true;
    if let Some((p, pos)) = prefregex {
        let t = pyre::translate(
            p,
            &Context {
                end_is_line_end: true,
            },
        )
        .map_err(|why| (p.clone(), pos.clone(), why))?;
        if !t.text.contains("<F-CONTENT>") {
            return Err((
                p.clone(),
                pos.clone(),
                "a prefregex without <F-CONTENT>".into(),
            ));
        }
        end_is_line_end =
            t.text.ends_with("</F-CONTENT>$") || t.text.ends_with("</F-CONTENT>\\s*$");
        note_rewrites(report, jail, pos, "prefregex", &t);
        out.prefregex = Some(t.text);
    }
    let ctx = Context { end_is_line_end };
    for (p, pos) in failregex {
        match pyre::translate(p, &ctx).and_then(|t| {
            check_pattern(loader, out.prefregex.as_deref(), &t.text, t.role, false).map(|()| t)
        }) {
            Ok(t) => {
                note_rewrites(report, jail, pos, "failregex", &t);
                out.failregex.push((t.text, t.role, pos.clone()));
            }
            Err(why) => out.refused.push((p.clone(), pos.clone(), why)),
        }
    }
    for (p, pos) in ignoreregex {
        match pyre::translate(
            p,
            &Context {
                end_is_line_end: true,
            },
        )
        .and_then(|t| check_pattern(loader, None, &t.text, Role::Fail, true).map(|()| t))
        {
            Ok(t) => {
                note_rewrites(report, jail, pos, "ignoreregex", &t);
                out.ignoreregex.push((t.text, pos.clone()));
            }
            Err(why) => out.refused.push((p.clone(), pos.clone(), why)),
        }
    }
    Ok(out)
}

fn note_rewrites(report: &mut Report, jail: &str, pos: &Pos, key: &str, t: &pyre::Pattern) {
    if t.notes.is_empty() {
        report.carried(Some(jail));
        return;
    }
    let kind = if t.exact {
        Kind::Carried
    } else {
        Kind::Translated
    };
    report.add(
        pos,
        Some(jail),
        kind,
        format!("{key} {}", short(&t.text)),
        t.notes.join("; "),
    );
}

/// A pattern shortened for a report line: its end, where patterns
/// differ (their start is usually the syslog prefix).
pub fn short(p: &str) -> String {
    let n = p.chars().count();
    if n > 70 {
        format!("...{}", p.chars().skip(n - 67).collect::<String>())
    } else {
        p.to_string()
    }
}

/// Decide and build the filter for one jail.
pub fn plan(
    jail: &JailDef,
    f: &FilterRef,
    ours: &OurFilters,
    fail2ban_dir: &Path,
    report: &mut Report,
) -> Option<Plan> {
    let name = &jail.name;
    let loader = FilterLoader::new(ours.path.clone());
    let journalmatch = f
        .opts
        .get("journalmatch")
        .filter(|v| !v.text().trim().is_empty())
        .map(|v| (journal_terms(v), v.pos()));
    let mode_param = f
        .params
        .iter()
        .find(|(k, _)| k == "mode")
        .map(|(_, v)| v.clone())
        .or_else(|| f.opts.get("mode").map(|v| v.text().to_string()))
        .unwrap_or_else(|| "normal".into());
    let other_params: Vec<&(String, String)> = f
        .params
        .iter()
        .filter(|(k, _)| k != "mode" && k != "logtype")
        .collect();
    let our = ours.get(&f.name);
    let changed = first_changed_file(&f.files);
    let failregex = lines_of(jail.opt("failregex").or(f.opts.get("failregex")));
    let ignoreregex = lines_of(jail.opt("ignoreregex").or(f.opts.get("ignoreregex")));
    let prefregex = jail
        .opt("prefregex")
        .or(f.opts.get("prefregex"))
        .filter(|v| !v.text().trim().is_empty())
        .map(|v| (v.text().to_string(), v.pos()));
    // A stock filter, used as shipped.
    if let (Some(our), None, true, true) = (
        our,
        &changed,
        other_params.is_empty(),
        f.overridden
            .iter()
            .all(|o| o == "journalmatch" || o == "usedns" || o == "maxlines" || o == "datepattern"),
    ) {
        let (mode, note) = stock::map_mode(&f.name, &mode_param, &our.modes);
        let what = format!("filter = {}[mode={mode_param}]", f.name);
        match note {
            None => report.carried(Some(name)),
            Some(n) => report.add(&f.pos, Some(name), Kind::Translated, what, n),
        }
        return Some(Plan {
            filter: f.name.clone(),
            mode,
            file: None,
            journalmatch,
            ours: true,
        });
    }

    // A stock .conf whose .local only adds patterns: ours + the additions.
    if let (Some(our), Some((local, _))) = (our, &changed) {
        if other_params.is_empty()
            && f.overridden
                .iter()
                .all(|o| o != "failregex" && o != "prefregex")
        {
            if let Some(plan) = extend_ours(
                jail,
                f,
                our,
                local,
                &mode_param,
                &failregex,
                &ignoreregex,
                prefregex.as_ref(),
                &loader,
                fail2ban_dir,
                journalmatch.clone(),
                report,
            ) {
                return Some(plan);
            }
        }
    }

    // Translate it whole.
    other_filter_options(jail, f, report);
    let why_not_stock = match (&changed, other_params.is_empty()) {
        (Some((file, why)), _) => format!("{} is {why}", file.display()),
        (None, false) => format!(
            "it is given parameters ({})",
            other_params
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        (None, true) if our.is_none() => format!("jailwarden has no {} filter", f.name),
        (None, true) => "the jail sets its own patterns".into(),
    };
    let t = match translate_patterns(
        &loader,
        prefregex.as_ref(),
        &failregex,
        &ignoreregex,
        name,
        report,
    ) {
        Ok(t) => t,
        Err((p, pos, why)) => {
            return fall_back_or_leave(
                jail,
                f,
                our,
                &mode_param,
                &pos,
                &format!("prefregex {}", short(&p)),
                &why,
                journalmatch,
                report,
            );
        }
    };
    if !t.refused.is_empty() {
        if let Some(_our) = our {
            let list: Vec<String> = t
                .refused
                .iter()
                .map(|(p, pos, why)| format!("{pos}: {} ({why})", short(p)))
                .collect();
            let (first_pattern, first_pos, _) = &t.refused[0];
            report.add(
                first_pos,
                Some(name),
                Kind::FellBack,
                format!("filter {} ({why_not_stock}): {} pattern(s) without an exact linear-time equivalent, first {}", f.name, t.refused.len(), short(first_pattern)),
                format!("jailwarden's own {} filter is used instead; the patterns: {}", f.name, list.join(" | ")),
            );
            let (mode, _) = stock::map_mode(
                &f.name,
                &mode_param,
                &ours
                    .get(&f.name)
                    .map(|o| o.modes.clone())
                    .unwrap_or_default(),
            );
            return Some(Plan {
                filter: f.name.clone(),
                mode,
                file: None,
                journalmatch,
                ours: true,
            });
        }
        for (p, pos, why) in &t.refused {
            report.add(
                pos,
                Some(name),
                Kind::LeftOut,
                format!("pattern {}", short(p)),
                format!("{why}; jailwarden has no {} filter to fall back on", f.name),
            );
        }
    }
    if t.failregex.is_empty() {
        report.add(
            &f.pos,
            Some(name),
            Kind::LeftOut,
            format!("filter {}", f.name),
            "no pattern could be translated: the jail is left out",
        );
        return None;
    }
    let out_name = if our.is_some() || ours.get(&f.name).is_some() {
        format!("{}-fail2ban", f.name)
    } else {
        f.name.clone()
    };
    let text = render_translated(f, &t, journalmatch.as_ref(), fail2ban_dir);
    if let Err(e) = compile_text(&loader, &out_name, &text) {
        report.add(
            &f.pos,
            Some(name),
            Kind::LeftOut,
            format!("filter {}", f.name),
            format!("the translation does not compile ({e}): the jail is left out"),
        );
        return None;
    }
    report.add(
        &f.pos,
        Some(name),
        Kind::Translated,
        format!("filter {} ({why_not_stock})", f.name),
        format!(
            "translated to filters/{out_name}.toml: {} failregex, {} ignoreregex",
            t.failregex.len(),
            t.ignoreregex.len()
        ),
    );
    Some(Plan {
        filter: out_name.clone(),
        mode: "normal".into(),
        file: Some(FilterFile {
            name: out_name,
            text,
        }),
        journalmatch,
        ours: false,
    })
}

#[allow(clippy::too_many_arguments)]
fn fall_back_or_leave(
    jail: &JailDef,
    f: &FilterRef,
    our: Option<&OurFilter>,
    mode_param: &str,
    pos: &Pos,
    what: &str,
    why: &str,
    journalmatch: Option<(Vec<String>, Pos)>,
    report: &mut Report,
) -> Option<Plan> {
    match our {
        Some(our) => {
            let (mode, _) = stock::map_mode(&f.name, mode_param, &our.modes);
            report.add(
                pos,
                Some(&jail.name),
                Kind::FellBack,
                what,
                format!("{why}; jailwarden's own {} filter is used instead", f.name),
            );
            Some(Plan {
                filter: f.name.clone(),
                mode,
                file: None,
                journalmatch,
                ours: true,
            })
        }
        None => {
            report.add(
                pos,
                Some(&jail.name),
                Kind::LeftOut,
                what,
                format!(
                    "{why}; jailwarden has no {} filter: the jail is left out",
                    f.name
                ),
            );
            None
        }
    }
}

/// The lines of `all` that are not in `base` (in order), and whether
/// every line of `base` is in `all`.
fn added_lines(all: &[(String, Pos)], base: &[(String, Pos)]) -> (Vec<(String, Pos)>, bool) {
    let added = all
        .iter()
        .filter(|(l, _)| !base.iter().any(|(b, _)| b == l))
        .cloned()
        .collect();
    let kept = base.iter().all(|(b, _)| all.iter().any(|(l, _)| l == b));
    (added, kept)
}

#[allow(clippy::too_many_arguments)]
fn extend_ours(
    jail: &JailDef,
    f: &FilterRef,
    our: &OurFilter,
    local: &Path,
    mode_param: &str,
    failregex: &[(String, Pos)],
    ignoreregex: &[(String, Pos)],
    prefregex: Option<&(String, Pos)>,
    loader: &FilterLoader,
    fail2ban_dir: &Path,
    journalmatch: Option<(Vec<String>, Pos)>,
    report: &mut Report,
) -> Option<Plan> {
    // The same filter resolved from its stock files alone.
    let base = super::reader::resolve_filter_without_locals(fail2ban_dir, jail, f).ok()??;
    if first_changed_file(&base.files).is_some() {
        return None;
    }
    let (add_fail, kept_fail) = added_lines(failregex, &lines_of(base.opts.get("failregex")));
    let (add_ignore, kept_ignore) =
        added_lines(ignoreregex, &lines_of(base.opts.get("ignoreregex")));
    let base_pref = base.opts.get("prefregex").map(|v| v.text().to_string());
    if !kept_fail || !kept_ignore || base_pref.as_deref() != prefregex.map(|p| p.0.as_str()) {
        return None;
    }
    if add_fail.is_empty() && add_ignore.is_empty() {
        return None;
    }
    // Patterns written for Fail2ban's content (after its prefregex) are
    // matched against ours (after our prefregex): only when both filters
    // have one, or neither.
    if our.has_prefregex != prefregex.is_some() {
        return None;
    }
    let (mode, note) = stock::map_mode(&f.name, mode_param, &our.modes);
    let name = &jail.name;
    let t = match translate_patterns(loader, prefregex, &add_fail, &add_ignore, name, report) {
        Ok(t) => t,
        Err(_) => return None,
    };
    for (p, pos, why) in &t.refused {
        report.add(
            pos,
            Some(name),
            Kind::LeftOut,
            format!("added pattern {}", short(p)),
            why.clone(),
        );
    }
    if t.failregex.is_empty() && t.ignoreregex.is_empty() {
        report.add(
            &f.pos,
            Some(name),
            Kind::FellBack,
            format!("filter {} with {}", f.name, local.display()),
            format!(
                "no added pattern could be translated: jailwarden's {} filter is used as shipped",
                f.name
            ),
        );
        return Some(Plan {
            filter: f.name.clone(),
            mode,
            file: None,
            journalmatch,
            ours: true,
        });
    }
    let out_name = format!("{}-fail2ban", f.name);
    let mut text = format!(
        "# jailwarden's {name} filter ({}) with the patterns {} adds,\n# in mode \"{EXTRA_MODE}\". Written by jailwarden import-fail2ban: this copy\n# is not updated with jailwarden; compare with the shipped file after upgrades.\n\n",
        our.path.display(),
        local.display(),
        name = f.name
    );
    text.push_str(&our.text);
    if !text.ends_with('\n') {
        text.push('\n');
    }
    let include: Vec<String> = if mode != "normal" || our.text.contains("[modes.normal]") {
        vec![mode.clone()]
    } else {
        Vec::new()
    };
    text.push_str(&format!(
        "\n[modes.{EXTRA_MODE}]\ndescription = {}\n",
        toml_str(&format!(
            "mode {mode} plus the patterns of {}",
            local.display()
        ))
    ));
    text.push_str(&format!("include = {}\n", toml_list(&include)));
    text.push_str(&render_failregex(&t.failregex));
    if !t.ignoreregex.is_empty() {
        text.push_str(&render_ignoreregex(&t.ignoreregex));
    }
    if let Err(e) = compile_text(loader, &out_name, &text) {
        report.add(&f.pos, Some(name), Kind::FellBack, format!("patterns added by {}", local.display()), format!("they do not compile together with jailwarden's {} filter ({e}): it is used as shipped", f.name));
        return Some(Plan {
            filter: f.name.clone(),
            mode,
            file: None,
            journalmatch,
            ours: true,
        });
    }
    report.add(
        &f.pos,
        Some(name),
        Kind::Translated,
        format!("filter {} with {} pattern(s) added by {}", f.name, add_fail.len() + add_ignore.len(), local.display()),
        format!(
            "jailwarden's {} filter{} plus the added patterns, as filters/{out_name}.toml mode \"{EXTRA_MODE}\" (they are matched against jailwarden's prefix of the line)",
            f.name,
            note.map(|n| format!(" ({n})")).unwrap_or_default()
        ),
    );
    Some(Plan {
        filter: out_name.clone(),
        mode: EXTRA_MODE.into(),
        file: Some(FilterFile {
            name: out_name,
            text,
        }),
        journalmatch,
        ours: true,
    })
}

fn render_failregex(list: &[(String, Role, Pos)]) -> String {
    let mut s = String::from("failregex = [\n");
    for (p, role, pos) in list {
        s.push_str(&format!("  # {pos}\n"));
        if *role == Role::Fail {
            s.push_str(&format!("  {},\n", toml_str(p)));
        } else {
            s.push_str(&format!(
                "  {{ regex = {}, role = \"{}\" }},\n",
                toml_str(p),
                role.name()
            ));
        }
    }
    s.push_str("]\n");
    s
}

fn render_ignoreregex(list: &[(String, Pos)]) -> String {
    let mut s = String::from("ignoreregex = [\n");
    for (p, pos) in list {
        s.push_str(&format!("  # {pos}\n  {},\n", toml_str(p)));
    }
    s.push_str("]\n");
    s
}

fn render_translated(
    f: &FilterRef,
    t: &Translated,
    journalmatch: Option<&(Vec<String>, Pos)>,
    _dir: &Path,
) -> String {
    let mut s = comment(&format!(
        "Translated from Fail2ban's filter {} by jailwarden import-fail2ban.\nRead from: {}",
        f.name,
        f.files
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    ));
    s.push('\n');
    s.push_str(&format!(
        "description = {}\n",
        toml_str(&format!("{} (translated from Fail2ban)", f.name))
    ));
    if let Some((terms, _)) = journalmatch {
        s.push_str(&format!("journal_match = {}\n", toml_list(terms)));
    }
    if let Some(p) = &t.prefregex {
        s.push_str(&format!("prefregex = {}\n", toml_str(p)));
    }
    s.push_str(&render_failregex(&t.failregex));
    if !t.ignoreregex.is_empty() {
        s.push_str(&render_ignoreregex(&t.ignoreregex));
    }
    s
}

/// Filter options with no jailwarden counterpart: datepattern, maxlines.
fn other_filter_options(jail: &JailDef, f: &FilterRef, report: &mut Report) {
    let name = &jail.name;
    if let Some(dp) = jail.opt("datepattern").or(f.opts.get("datepattern")) {
        let v = dp.text().trim();
        let standard =
            v.is_empty() || v == "{^LN-BEG}" || v == "{DEFAULT}" || v == "{^LN-BEG}{DEFAULT}";
        if standard {
            report.carried(Some(name));
        } else {
            report.add(&dp.pos(), Some(name), Kind::LeftOut, format!("datepattern = {v}"), "jailwarden finds the date itself (syslog, ISO 8601, RFC 5424, Apache, epoch, TAI64N, ...): check the log with jailwarden test-filter");
        }
    }
    if let Some(ml) = jail.opt("maxlines").or(f.opts.get("maxlines")) {
        if ml.text().trim().parse::<u32>().is_ok_and(|n| n > 1) {
            report.add(&ml.pos(), Some(name), Kind::Translated, format!("maxlines = {}", ml.text().trim()), "jailwarden follows a connection over several lines by its session (pid), not a window of lines");
        }
    }
}

/// For reports: `Rc<PathBuf>` positions of a path.
pub fn file_pos(p: &Path) -> Pos {
    Pos::new(&Rc::new(p.to_path_buf()), 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn journal_matches_become_terms() {
        let v = Spanned::new(
            "_SYSTEMD_UNIT=sshd.service + _COMM=sshd\n_SYSTEMD_UNIT='a b.service'",
            Pos::none(),
        );
        assert_eq!(
            journal_terms(&v),
            [
                "_SYSTEMD_UNIT=sshd.service",
                "+",
                "_COMM=sshd",
                "+",
                "_SYSTEMD_UNIT=a b.service"
            ]
        );
    }
}
