//! A Fail2ban configuration unit (`jail`, `filter.d/sshd`, `action.d/x`)
//! read as Fail2ban reads it: its files, their includes, merged into one
//! set of sections, and values interpolated
//! (client/configreader.py, client/configparserinc.py).
//!
//! - Files for NAME: `NAME.conf`, `NAME.d/*.conf`, `NAME.local`,
//!   `NAME.d/*.local` (each sorted), each `x.conf` followed by `x.local`.
//! - `[INCLUDES] before = / after =` (one file per line, relative to the
//!   including file) are read before / after it, recursively; a loop is
//!   cut where it closes. A missing `.local` include is normal (they are
//!   hooks: `paths-overrides.local`, `common.local`); any other missing
//!   include is an error, where Fail2ban would silently lose it.
//! - Later files override earlier ones option by option; the value a
//!   later file replaced stays reachable as `%(known/name)s`.
//! - Interpolation: `%(name)s` (section, then `[DEFAULT]`), `%%`,
//!   `%(__name__)s` (the section's name), `%(section/name)s`,
//!   `%(default/name)s`, `%(known/name)s`; at most 10 levels deep
//!   (Python's limit), so a loop is an error naming its chain.

use std::path::{Path, PathBuf};
use std::rc::Rc;

use super::ini::{DEFAULT_SECTION, IniError, IniFile, Options, Pos, Spanned};

/// Python's `MAX_INTERPOLATION_DEPTH`.
const MAX_DEPTH: usize = 10;
/// The includes section.
const INCLUDES: &str = "INCLUDES";

/// A merged section.
#[derive(Debug, Clone)]
pub struct Section {
    pub name: String,
    /// Where it was first written.
    pub pos: Pos,
    pub options: Options,
}

/// Sections merged from several files.
#[derive(Debug, Clone, Default)]
pub struct Merged {
    pub defaults: Options,
    /// In the order first seen; `KNOWN/name` sections hold replaced values.
    pub sections: Vec<Section>,
    /// Files read, in order.
    pub files: Vec<PathBuf>,
}

/// Extra values for one lookup (Python's `vars`), taking precedence over
/// the section.
pub type Vars = Options;

impl Merged {
    /// Read configuration unit `name` under `basedir` (e.g. `jail`,
    /// `filter.d/sshd`). `Ok(None)` when none of its files exist.
    pub fn read_unit(basedir: &Path, name: &str) -> Result<Option<Merged>, IniError> {
        let base = basedir.join(name);
        let mut files = vec![with_suffix(&base, ".conf")];
        let dir = with_suffix(&base, ".d");
        files.extend(sorted_glob(&dir, ".conf")?);
        files.push(with_suffix(&base, ".local"));
        files.extend(sorted_glob(&dir, ".local")?);
        files.retain(|f| f.exists());
        if files.is_empty() {
            return Ok(None);
        }
        let mut m = Merged::default();
        m.read_files(&files)?;
        Ok(Some(m))
    }

    /// Read `files` (with their `.local`s and includes) and merge them in.
    pub fn read_files(&mut self, files: &[PathBuf]) -> Result<(), IniError> {
        self.read(files, true)
    }

    /// Read `files` and their includes, without any `.local` (what the
    /// configuration would be as shipped).
    pub fn read_files_without_locals(&mut self, files: &[PathBuf]) -> Result<(), IniError> {
        self.read(files, false)
    }

    fn read(&mut self, files: &[PathBuf], locals: bool) -> Result<(), IniError> {
        let mut order = Vec::new();
        let files = if locals {
            expand_with_local(files)
        } else {
            files.to_vec()
        };
        for f in files {
            includes(&f, &mut Vec::new(), &mut order, locals)?;
        }
        for (path, ini) in order {
            self.merge(&ini);
            self.files.push(path);
        }
        Ok(())
    }

    fn merge(&mut self, ini: &IniFile) {
        for (k, v) in ini.defaults.iter() {
            self.defaults.set(k, v.clone());
        }
        for s in &ini.sections {
            // Conditional sections `[name?cond]` give options `opt?cond`.
            let (name, cond) = match split_conditional(&s.name) {
                Some((n, c)) => (n.to_string(), c.to_string()),
                None => (s.name.clone(), String::new()),
            };
            let opts: Vec<(String, Spanned)> = s
                .options
                .iter()
                .map(|(k, v)| (format!("{k}{cond}"), v.clone()))
                .collect();
            if let Some(i) = self.sections.iter().position(|x| x.name == name) {
                // Keep the replaced values for %(known/...)s.
                let replaced: Vec<(String, Spanned)> = opts
                    .iter()
                    .filter_map(|(k, _)| {
                        self.sections[i]
                            .options
                            .get(k)
                            .map(|v| (k.clone(), v.clone()))
                    })
                    .collect();
                let known = self.section_mut_or_insert(&format!("KNOWN/{name}"), s.pos.clone());
                for (k, v) in replaced {
                    known.options.set(&k, v);
                }
                let i = self
                    .sections
                    .iter()
                    .position(|x| x.name == name)
                    .unwrap_or(i);
                for (k, v) in opts {
                    self.sections[i].options.set(&k, v);
                }
            } else {
                let mut options = Options::default();
                for (k, v) in opts {
                    options.set(&k, v);
                }
                self.sections.push(Section {
                    name,
                    pos: s.pos.clone(),
                    options,
                });
            }
        }
    }

    fn section_mut_or_insert(&mut self, name: &str, pos: Pos) -> &mut Section {
        let i = match self.sections.iter().position(|s| s.name == name) {
            Some(i) => i,
            None => {
                self.sections.push(Section {
                    name: name.to_string(),
                    pos,
                    options: Options::default(),
                });
                self.sections.len() - 1
            }
        };
        &mut self.sections[i]
    }

    pub fn section(&self, name: &str) -> Option<&Section> {
        self.sections.iter().find(|s| s.name == name)
    }

    pub fn has_section(&self, name: &str) -> bool {
        name == DEFAULT_SECTION || self.section(name).is_some()
    }

    /// Section names as Fail2ban lists them (no `KNOWN/`, no `INCLUDES`).
    pub fn section_names(&self) -> Vec<&str> {
        self.sections
            .iter()
            .map(|s| s.name.as_str())
            .filter(|n| !n.starts_with("KNOWN/") && *n != INCLUDES)
            .collect()
    }

    /// Add options to a section, each name prefixed (Fail2ban's
    /// `merge_section(section, options, 'known/')`).
    pub fn merge_prefixed(&mut self, section: &str, options: &Options, prefix: &str) {
        let pos = self
            .section(section)
            .map_or_else(Pos::none, |s| s.pos.clone());
        let s = self.section_mut_or_insert(section, pos);
        for (k, v) in options.iter() {
            if !k.starts_with(prefix) && k != "__name__" {
                s.options.set(&format!("{prefix}{k}"), v.clone());
            }
        }
    }

    /// Add to `[DEFAULT]`.
    pub fn set_default(&mut self, name: &str, value: Spanned) {
        self.defaults.set(name, value);
    }

    /// The raw value of `option` in `section`, falling back on `[DEFAULT]`.
    pub fn raw(&self, section: &str, option: &str) -> Option<&Spanned> {
        if section != DEFAULT_SECTION {
            if let Some(v) = self.section(section).and_then(|s| s.options.get(option)) {
                return Some(v);
            }
        }
        self.defaults.get(option)
    }

    /// The section's own option names (without `[DEFAULT]`'s).
    pub fn own_options(&self, section: &str) -> Vec<String> {
        self.section(section)
            .map(|s| s.options.names().map(str::to_string).collect())
            .unwrap_or_default()
    }

    /// Option names of the section together with `[DEFAULT]`'s.
    pub fn options_with_defaults(&self, section: &str) -> Vec<String> {
        let mut out = self.own_options(section);
        for n in self.defaults.names() {
            if !out.iter().any(|o| o == n) {
                out.push(n.to_string());
            }
        }
        out
    }

    /// `get(section, option, vars)`: the interpolated value, `Ok(None)` if
    /// the option is not set there (nor in `vars` or `[DEFAULT]`).
    pub fn get(
        &self,
        section: &str,
        option: &str,
        vars: &Vars,
    ) -> Result<Option<Spanned>, IniError> {
        let option = option.to_lowercase();
        let raw = match vars.get(&option) {
            Some(v) => v,
            None => match self.raw(section, &option) {
                Some(v) => v,
                None => return Ok(None),
            },
        };
        let mut out = Spanned::default();
        let mut chain = vec![option.clone()];
        self.interpolate(section, vars, raw, &mut out, 1, &mut chain)?;
        if out.is_empty() {
            out = Spanned::new("", raw.pos());
        }
        Ok(Some(out))
    }

    /// Fail2ban's `get_ex`: `section/option` names another section
    /// (`known/` looks in `KNOWN/<section>` first, then the section;
    /// `default/` in `[DEFAULT]`), else `get`.
    pub fn get_ex(
        &self,
        section: &str,
        option: &str,
        vars: &Vars,
    ) -> Result<Option<Spanned>, IniError> {
        if let Some((sec, opt)) = split_section_option(option) {
            let lower = sec.to_lowercase();
            let candidates: Vec<String> = if lower == "known" {
                vec![format!("KNOWN/{section}"), section.to_string()]
            } else if lower == "default" {
                vec![DEFAULT_SECTION.to_string()]
            } else {
                vec![sec.to_string()]
            };
            for c in candidates {
                if self.has_section(&c) {
                    let found = if c == DEFAULT_SECTION {
                        self.defaults.get(&opt.to_lowercase()).is_some()
                    } else {
                        self.raw(&c, &opt.to_lowercase()).is_some()
                    };
                    if found {
                        return self.get(&c, opt, &Vars::default());
                    }
                }
            }
        }
        self.get(section, option, vars)
    }

    /// Python's BasicInterpolation._interpolate_some, with Fail2ban's
    /// `__name__` and `section/option` additions.
    fn interpolate(
        &self,
        section: &str,
        vars: &Vars,
        raw: &Spanned,
        out: &mut Spanned,
        depth: usize,
        chain: &mut Vec<String>,
    ) -> Result<(), IniError> {
        let text = raw.text();
        let mut i = 0;
        while i < text.len() {
            let Some(p) = text[i..].find('%').map(|p| p + i) else {
                out.push_slice(raw, i..text.len());
                return Ok(());
            };
            out.push_slice(raw, i..p);
            let rest = &text[p..];
            if rest[1..].starts_with('%') {
                out.push_str("%", raw.pos_at(p));
                i = p + 2;
                continue;
            }
            if !rest[1..].starts_with('(') {
                return Err(IniError::new(
                    raw.pos_at(p),
                    format!(
                        "'%' must be followed by '%' or '(' (write %% for a literal %), found {:?}",
                        excerpt(rest)
                    ),
                ));
            }
            // %(name)s
            let Some(close) = rest.find(')') else {
                return Err(IniError::new(
                    raw.pos_at(p),
                    format!("bad interpolation reference {:?}", excerpt(rest)),
                ));
            };
            let name = &rest[2..close];
            if name.is_empty() || !rest[close + 1..].starts_with('s') {
                return Err(IniError::new(
                    raw.pos_at(p),
                    format!(
                        "bad interpolation reference {:?} (expected %(name)s)",
                        excerpt(rest)
                    ),
                ));
            }
            i = p + close + 2;
            let var = name.to_lowercase();
            let value = self
                .lookup(section, vars, &var, raw.pos_at(p))
                .ok_or_else(|| {
                    IniError::new(
                        raw.pos_at(p),
                        format!(
                            "%({name})s: no option {var:?} in [{section}] or [DEFAULT]{}",
                            if chain.len() > 1 {
                                format!(" (while interpolating {})", chain.join(" -> "))
                            } else {
                                String::new()
                            }
                        ),
                    )
                })?;
            // Values the importer made up (fail2ban_confpath) take the
            // position of the reference.
            let value = if value.pos().line == 0 && value.pos().file.as_os_str().is_empty() {
                Spanned::new(value.text(), raw.pos_at(p))
            } else {
                value
            };
            if value.text().contains('%') {
                if depth >= MAX_DEPTH || chain.contains(&var) {
                    chain.push(var);
                    return Err(IniError::new(
                        raw.pos_at(p),
                        format!(
                            "interpolation loop (or more than {MAX_DEPTH} levels): {}",
                            chain.join(" -> ")
                        ),
                    ));
                }
                chain.push(var);
                self.interpolate(section, vars, &value, out, depth + 1, chain)?;
                chain.pop();
            } else {
                out.push_spanned(&value);
            }
        }
        Ok(())
    }

    /// What `%(var)s` refers to, raw.
    fn lookup(&self, section: &str, vars: &Vars, var: &str, at: Pos) -> Option<Spanned> {
        if var == "__name__" {
            return Some(Spanned::new(section, at));
        }
        if let Some(v) = vars.get(var) {
            return Some(v.clone());
        }
        if let Some(v) = self.raw(section, var) {
            return Some(v.clone());
        }
        // %(section/option)s, %(known/option)s, %(default/option)s
        let (sec, opt) = split_section_option(var)?;
        match sec {
            "default" => self.defaults.get(opt).cloned(),
            "known" => self
                .section(&format!("KNOWN/{section}"))
                .and_then(|s| s.options.get(opt))
                .or_else(|| self.defaults.get(opt))
                .cloned(),
            _ => {
                // Section names keep their case; the reference was lowercased.
                let s = self
                    .sections
                    .iter()
                    .find(|s| s.name == sec)
                    .or_else(|| self.sections.iter().find(|s| s.name.to_lowercase() == sec))?;
                s.options
                    .get(opt)
                    .or_else(|| self.defaults.get(opt))
                    .cloned()
            }
        }
    }
}

fn excerpt(s: &str) -> String {
    s.chars().take(30).collect()
}

/// `sec/opt` as Fail2ban's `SECTION_OPTNAME_CRE` (`^([\w\-]+)/([^\s>]+)$`).
fn split_section_option(name: &str) -> Option<(&str, &str)> {
    let (sec, opt) = name.split_once('/')?;
    let word = |c: char| c.is_alphanumeric() || c == '_' || c == '-';
    (!sec.is_empty()
        && sec.chars().all(word)
        && !opt.is_empty()
        && !opt.contains(|c: char| c.is_whitespace() || c == '>'))
    .then_some((sec, opt))
}

/// `name?cond` (Fail2ban's `CONDITIONAL_RE`, `^(\w+)(\?.+)$`).
fn split_conditional(name: &str) -> Option<(&str, &str)> {
    let q = name.find('?')?;
    let (n, c) = name.split_at(q);
    (!n.is_empty() && n.chars().all(|c| c.is_alphanumeric() || c == '_') && c.len() > 1)
        .then_some((n, c))
}

fn with_suffix(base: &Path, suffix: &str) -> PathBuf {
    let mut s = base.as_os_str().to_os_string();
    s.push(suffix);
    PathBuf::from(s)
}

fn sorted_glob(dir: &Path, suffix: &str) -> Result<Vec<PathBuf>, IniError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) if e.kind() == std::io::ErrorKind::NotADirectory => return Ok(Vec::new()),
        Err(e) => {
            return Err(IniError::new(
                Pos::new(&Rc::new(dir.to_path_buf()), 0),
                format!("cannot list the directory: {e}"),
            ));
        }
    };
    let mut out: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.ends_with(suffix) && !n.starts_with('.'))
        })
        .collect();
    out.sort();
    Ok(out)
}

/// Fail2ban's `_expandConfFilesWithLocal`: each `x.conf` followed by an
/// existing `x.local` not listed anyway.
fn expand_with_local(files: &[PathBuf]) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for f in files {
        out.push(f.clone());
        let local = f.with_extension("local");
        if !files.contains(&local) && local != *f && local.is_file() {
            out.push(local);
        }
    }
    out
}

/// `resource` with its includes, in reading order (before, itself,
/// after). `seen` is the chain of including files (a loop is cut).
fn includes(
    resource: &Path,
    seen: &mut Vec<PathBuf>,
    order: &mut Vec<(PathBuf, IniFile)>,
    locals: bool,
) -> Result<(), IniError> {
    let ini = IniFile::read(resource)?;
    let dir = resource.parent().unwrap_or(Path::new(".")).to_path_buf();
    let mut lists: [Vec<(PathBuf, Pos)>; 2] = [Vec::new(), Vec::new()];
    if let Some(inc) = ini.section(INCLUDES) {
        for (slot, key) in ["before", "after"].iter().enumerate() {
            let Some(v) = inc.options.get(key) else {
                continue;
            };
            for (line, pos) in v.lines() {
                let line = line.trim();
                if line.is_empty() {
                    continue;
                }
                let p = Path::new(line);
                let path = if p.is_absolute() {
                    p.to_path_buf()
                } else {
                    dir.join(p)
                };
                lists[slot].push((path, pos));
            }
        }
    }
    let [before, after] = lists;
    let visit = |list: Vec<(PathBuf, Pos)>,
                 seen: &mut Vec<PathBuf>,
                 order: &mut Vec<(PathBuf, IniFile)>|
     -> Result<(), IniError> {
        for (path, pos) in list {
            if seen.contains(&path) || path == resource {
                continue;
            }
            let files = if locals {
                expand_with_local(std::slice::from_ref(&path))
            } else if path.extension().is_some_and(|x| x == "local") {
                Vec::new()
            } else {
                vec![path.clone()]
            };
            for f in files {
                if !f.exists() {
                    if f.extension().is_some_and(|x| x == "local") {
                        continue; // an override hook nobody filled
                    }
                    return Err(IniError::new(
                        pos.clone(),
                        format!("included file {} does not exist", f.display()),
                    ));
                }
                seen.push(resource.to_path_buf());
                let r = includes(&f, seen, order, locals);
                seen.pop();
                r.map_err(|e| {
                    if e.pos.line == 0 && e.pos.file.as_path() == f {
                        IniError::new(
                            pos.clone(),
                            format!("included {}: {}", f.display(), e.message),
                        )
                    } else {
                        e
                    }
                })?;
            }
        }
        Ok(())
    };
    visit(before, seen, order)?;
    order.push((resource.to_path_buf(), ini));
    visit(after, seen, order)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit(files: &[(&str, &str)], name: &str) -> Result<Option<Merged>, IniError> {
        let dir = tempfile::tempdir().unwrap();
        for (p, t) in files {
            let path = dir.path().join(p);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, t).unwrap();
        }
        let r = Merged::read_unit(dir.path(), name);
        // keep the files until read: read_unit reads eagerly
        drop(dir);
        r
    }

    fn get(m: &Merged, s: &str, o: &str) -> String {
        m.get(s, o, &Vars::default())
            .unwrap()
            .map(|v| v.text().to_string())
            .unwrap_or_else(|| "<none>".into())
    }

    #[test]
    fn files_merge_in_fail2ban_order_with_known_values() {
        let m = unit(
            &[
                ("jail.conf", "[INCLUDES]\nbefore = paths.conf\n[DEFAULT]\nbantime = 10m\n[sshd]\nport = ssh\nlogpath = %(sshd_log)s\n"),
                ("paths.conf", "[DEFAULT]\nsshd_log = /var/log/auth.log\n"),
                ("jail.d/a.conf", "[sshd]\nport = 2222\n"),
                ("jail.local", "[sshd]\nport = %(known/port)s,2200\nfilter = %(__name__)s[mode=x]\n"),
                ("jail.d/b.local", "[DEFAULT]\nbantime = 1h\n"),
            ],
            "jail",
        )
        .unwrap()
        .unwrap();
        let names: Vec<String> = m
            .files
            .iter()
            .map(|f| f.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            names,
            ["paths.conf", "jail.conf", "a.conf", "jail.local", "b.local"]
        );
        assert_eq!(get(&m, "sshd", "port"), "2222,2200");
        assert_eq!(get(&m, "sshd", "logpath"), "/var/log/auth.log");
        assert_eq!(get(&m, "sshd", "filter"), "sshd[mode=x]");
        assert_eq!(get(&m, "sshd", "bantime"), "1h");
        assert_eq!(m.section_names(), ["sshd"]);
    }

    #[test]
    fn interpolation_rules() {
        let m = unit(
            &[(
                "f.conf",
                "[DEFAULT]\nx = 1\n[s]\npct = 100%%\nsec = %(t/v)s-%(default/x)s\nbad = 5%\n[t]\nv = tv\n",
            )],
            "f",
        )
        .unwrap()
        .unwrap();
        assert_eq!(get(&m, "s", "pct"), "100%");
        assert_eq!(get(&m, "s", "sec"), "tv-1");
        let e = m.get("s", "bad", &Vars::default()).unwrap_err().to_string();
        assert!(
            e.contains("f.conf:6: '%' must be followed by '%' or '('"),
            "{e}"
        );
        let mut vars = Vars::default();
        vars.set("x", Spanned::new("from-vars", Pos::none()));
        assert_eq!(
            m.get("s", "sec", &vars).unwrap().unwrap().text(),
            "tv-1",
            "default/ ignores vars"
        );
    }

    #[test]
    fn loops_and_missing_references_are_errors_with_lines() {
        let m = unit(
            &[("f.conf", "[s]\na = %(b)s\nb = x%(a)s\nc = %(nope)s\n")],
            "f",
        )
        .unwrap()
        .unwrap();
        let e = m.get("s", "a", &Vars::default()).unwrap_err().to_string();
        assert_eq!(
            e,
            format!(
                "{}:3: interpolation loop (or more than 10 levels): a -> b -> a",
                m.files[0].display()
            )
        );
        let e = m.get("s", "c", &Vars::default()).unwrap_err().to_string();
        assert!(
            e.ends_with("f.conf:4: %(nope)s: no option \"nope\" in [s] or [DEFAULT]"),
            "{e}"
        );
    }

    #[test]
    fn missing_includes() {
        let e = unit(
            &[(
                "f.conf",
                "[INCLUDES]\nbefore = gone.conf\nafter = hook.local\n[s]\na = 1\n",
            )],
            "f",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("f.conf:2: included file"), "{e}");
        assert!(e.ends_with("gone.conf does not exist"), "{e}");
        assert!(
            unit(
                &[("f.conf", "[INCLUDES]\nafter = hook.local\n[s]\na = 1\n")],
                "f"
            )
            .unwrap()
            .is_some()
        );
        assert!(unit(&[("x.conf", "[s]\n")], "f").unwrap().is_none());
    }

    #[test]
    fn include_loops_are_cut() {
        let m = unit(
            &[
                ("f.conf", "[INCLUDES]\nbefore = g.conf\n[s]\na = f\n"),
                ("g.conf", "[INCLUDES]\nbefore = f.conf\n[s]\na = g\nb = g\n"),
            ],
            "f",
        )
        .unwrap()
        .unwrap();
        assert_eq!(get(&m, "s", "a"), "f");
        assert_eq!(get(&m, "s", "b"), "g");
    }
}
