//! Filter files (`filters/<name>.toml`) as written, before compiling, and
//! the search path that finds them.
//!
//! ```toml
//! description = "OpenSSH server"
//! journal_match = ["_SYSTEMD_UNIT=ssh.service", "+", "_SYSTEMD_UNIT=sshd.service"]
//! prefregex = '^<SYSLOG_HEAD>sshd<SYSLOG_TAIL><F-CONTENT>.+</F-CONTENT>$'
//! attempt = ["pam", "result"]   # the lines of one attempt, in order
//! failregex = ['^Failed password for <F-USER>\S+</F-USER> from <HOST> port \d+ ssh2$',
//!              { regex = '^pam_unix\(sshd:auth\): .*', role = "pending", step = "pam" },
//!              { regex = '^Connection from <HOST> port \d+', role = "note" }]
//! ignoreregex = []
//! [snippets]          # local pieces, <NAME> in patterns
//! [modes.aggressive]  # extra patterns, tried before the base set
//! include = ["ddos"]
//! failregex = ['...']
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::Duration;

use crate::config::duration::parse_duration;
use crate::config::keys;
use crate::config::reader::{Diagnostics, Item, Located, SourceFile, Table};

/// What a failregex match means for the connection it belongs to (its
/// session, e.g. sshd's pid), so that multi-line stories are told right.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Role {
    /// A failure. Without a host on the line, the session's host is used;
    /// without one there either, it waits for a line that names the host.
    #[default]
    Fail,
    /// An attempt that counts only if confirmed: by a later failure, a
    /// second distinct user, the session closing without success, or a
    /// success for a user other than the failed ones. (A legitimate user
    /// offering several keys is not punished.)
    Pending,
    /// No failure; remembers the host (and user) of the session.
    Note,
    /// The session ends: anything waiting is reported, the session forgotten.
    Close,
    /// Authentication succeeded: waiting attempts for the same user are
    /// dropped; for a different user they count, plus one.
    Success,
    /// A failure that counts only as a repeat: for an address that already
    /// has a counted failure in the jail's window (findtime). It never bans
    /// alone. For lines every client gets when the service itself is
    /// broken (postfix: "Connection lost to authentication server"), which
    /// from a steady guesser are still guesses.
    Repeat,
}

impl Role {
    const NAMES: [(&'static str, Role); 6] = [
        ("fail", Role::Fail),
        ("pending", Role::Pending),
        ("note", Role::Note),
        ("close", Role::Close),
        ("success", Role::Success),
        ("repeat", Role::Repeat),
    ];

    /// Lines of this role tell (part of) a failed attempt.
    pub fn tells_failure(self) -> bool {
        matches!(self, Role::Fail | Role::Pending | Role::Repeat)
    }

    /// Parse a role name.
    pub fn parse(s: &str) -> Option<Role> {
        Self::NAMES.iter().find(|(n, _)| *n == s).map(|(_, r)| *r)
    }

    /// The name as written in filter files.
    pub fn name(self) -> &'static str {
        Self::NAMES
            .iter()
            .find(|(_, r)| *r == self)
            .map_or("fail", |(n, _)| n)
    }
}

/// One failregex entry as written.
#[derive(Debug, Clone)]
pub struct PatternDef {
    pub text: Located<String>,
    pub role: Role,
    /// The step of an attempt this line tells (a name from the filter's
    /// `attempt` list).
    pub step: Option<Located<String>>,
}

/// A mode: patterns added to the base set.
#[derive(Debug, Clone, Default)]
pub struct ModeDef {
    pub description: String,
    pub include: Vec<Located<String>>,
    pub failregex: Vec<PatternDef>,
    pub ignoreregex: Vec<Located<String>>,
}

/// A filter file, read and checked for shape (not yet compiled).
#[derive(Debug, Clone)]
pub struct FilterDef {
    pub name: String,
    pub file: Rc<SourceFile>,
    pub description: String,
    pub journal_match: Vec<Located<String>>,
    pub prefregex: Option<Located<String>>,
    pub failregex: Vec<PatternDef>,
    pub ignoreregex: Vec<Located<String>>,
    pub snippets: BTreeMap<String, Located<String>>,
    pub modes: BTreeMap<String, ModeDef>,
    /// How long a session's state is kept without news.
    pub session_timeout: Duration,
    /// For journal entries: take the host from this field instead of the
    /// message (e.g. `JAILWARDEN_ADDRESS` for recidive).
    pub journal_host_field: Option<String>,
    /// The longest line the service writes (it cuts longer ones itself,
    /// e.g. nginx's error log at 2047 bytes): a line this long or longer
    /// may have been cut, so its end is not taken for an end.
    pub line_limit: Option<usize>,
    /// Where a file line's date is: right after what this pattern matches
    /// from the line's start. `None`: the date starts the line.
    pub date_after: Option<Located<String>>,
    /// The steps of one authentication attempt, in the order the service
    /// logs them for one connection (see [`FilterDef::attempt`]).
    pub attempt: Vec<Located<String>>,
}

/// Most steps an attempt may have.
pub const MAX_STEPS: usize = 16;

/// Default for [`FilterDef::session_timeout`].
pub const DEFAULT_SESSION_TIMEOUT: Duration = Duration::from_secs(600);

impl FilterDef {
    /// Read a filter file; problems go to `diags`. Returns what could be
    /// read (callers check `diags` before trusting it).
    pub fn read(name: &str, file: &Rc<SourceFile>, diags: &Diagnostics) -> FilterDef {
        let doc = file.parse(diags);
        let t = Table::root(file, &doc, diags);
        let mut def = FilterDef {
            name: name.to_string(),
            file: file.clone(),
            description: t.string("description").map(|s| s.value).unwrap_or_default(),
            journal_match: t.strings("journal_match").unwrap_or_default(),
            prefregex: t.string("prefregex"),
            failregex: patterns(&t, "failregex"),
            ignoreregex: t.strings("ignoreregex").unwrap_or_default(),
            snippets: BTreeMap::new(),
            modes: BTreeMap::new(),
            session_timeout: DEFAULT_SESSION_TIMEOUT,
            journal_host_field: t.string("journal_host_field").map(|s| s.value),
            date_after: t.string("date_after"),
            line_limit: t
                .integer("line_limit", 64..=(crate::filter::MAX_LINE as i64))
                .map(|v| v.value as usize),
            attempt: t.strings("attempt").unwrap_or_default(),
        };
        def.check_attempt(diags);
        if let Some(v) = t.text_or_integer("session_timeout") {
            match parse_duration(&v.value) {
                Ok(d) => def.session_timeout = d,
                Err(e) => v.error(diags, e.to_string()),
            }
        }
        if let Some(s) = t.table("snippets") {
            def.snippets = read_snippets(&s);
        }
        if let Some(modes) = t.table("modes") {
            for (name, m) in modes.tables() {
                let mode = ModeDef {
                    description: m.string("description").map(|s| s.value).unwrap_or_default(),
                    include: m.strings("include").unwrap_or_default(),
                    failregex: patterns(&m, "failregex"),
                    ignoreregex: m.strings("ignoreregex").unwrap_or_default(),
                };
                m.finish(&keys::names(keys::MODE));
                def.modes.insert(name.value, mode);
            }
        }
        t.finish(&keys::names(keys::FILTER));
        if def.failregex.is_empty() && def.modes.values().all(|m| m.failregex.is_empty()) {
            diags.error(file, 0, "filter has no failregex");
        }
        def
    }

    fn check_attempt(&self, diags: &Diagnostics) {
        if self.attempt.len() > MAX_STEPS {
            self.attempt[MAX_STEPS]
                .error(diags, format!("an attempt has at most {MAX_STEPS} steps"));
        }
        for (i, step) in self.attempt.iter().enumerate() {
            if self.attempt[..i].iter().any(|s| s.value == step.value) {
                step.error(diags, format!("step {:?} is listed twice", step.value));
            }
        }
    }

    /// The index of a step in `attempt`, if it is one.
    pub fn step_index(&self, name: &str) -> Option<u8> {
        self.attempt
            .iter()
            .take(MAX_STEPS)
            .position(|s| s.value == name)
            .and_then(|i| u8::try_from(i).ok())
    }

    /// Mode names this filter accepts: `normal` always, plus its own.
    pub fn mode_names(&self) -> Vec<String> {
        let mut names = vec!["normal".to_string()];
        names.extend(self.modes.keys().filter(|m| *m != "normal").cloned());
        names
    }

    /// The modes a mode stands for, itself first, then its includes
    /// (depth first, each once); `None` if the mode does not exist.
    pub fn expand_mode(&self, mode: &str) -> Option<Vec<&str>> {
        if mode != "normal" && !self.modes.contains_key(mode) {
            return None;
        }
        let mut out: Vec<&str> = Vec::new();
        let mut todo = vec![mode];
        while let Some(m) = todo.pop() {
            let Some((name, def)) = self.modes.get_key_value(m) else {
                continue;
            };
            if out.contains(&name.as_str()) {
                continue;
            }
            out.push(name.as_str());
            for inc in def.include.iter().rev() {
                todo.push(inc.value.as_str());
            }
        }
        Some(out)
    }
}

/// Read a `[snippets]` table.
pub fn read_snippets(t: &Table) -> BTreeMap<String, Located<String>> {
    let mut out = BTreeMap::new();
    for key in t.keys() {
        let name = &key.value;
        let valid = name.bytes().next().is_some_and(|b| b.is_ascii_uppercase())
            && name
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_');
        if !valid || name == "HOST" || name == "ADDR" {
            key.error(
                t.diags(),
                format!("snippet name {name:?} must be UPPER_CASE and not HOST or ADDR"),
            );
            t.has(name);
            continue;
        }
        if let Some(v) = t.string(name) {
            out.insert(name.clone(), v);
        }
    }
    out
}

fn patterns(t: &Table, key: &str) -> Vec<PatternDef> {
    let mut out = Vec::new();
    for item in t.items(key).unwrap_or_default() {
        match item {
            Item::Str(text) => out.push(PatternDef {
                text,
                role: Role::Fail,
                step: None,
            }),
            Item::Table(p) => {
                let text = p.string("regex");
                let role = match p.string("role") {
                    None => Some(Role::Fail),
                    Some(r) => {
                        let role = Role::parse(&r.value);
                        if role.is_none() {
                            r.error(
                                t.diags(),
                                format!(
                                    "unknown role {:?} (fail, pending, note, close, success, repeat)",
                                    r.value
                                ),
                            );
                        }
                        role
                    }
                };
                let step = p.string("step");
                p.finish(&keys::names(keys::PATTERN));
                match (text, role) {
                    (Some(text), Some(role)) => out.push(PatternDef { text, role, step }),
                    (None, _) => p.error(format!("{key} entry needs a regex")),
                    _ => {}
                }
            }
        }
    }
    out
}

/// Where filter files are looked for, in order (first found wins).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilterPath {
    dirs: Vec<PathBuf>,
}

/// The file of shared snippets in a filter directory.
pub const COMMON_FILE: &str = "common.toml";

impl FilterPath {
    /// Search these directories in order.
    pub fn new(dirs: Vec<PathBuf>) -> Self {
        FilterPath { dirs }
    }

    /// `/etc/jailwarden/filters` then `/usr/share/jailwarden/filters`.
    pub fn system() -> Self {
        FilterPath::new(vec![
            PathBuf::from("/etc/jailwarden/filters"),
            PathBuf::from("/usr/share/jailwarden/filters"),
        ])
    }

    /// The directories.
    pub fn dirs(&self) -> &[PathBuf] {
        &self.dirs
    }

    /// The directories as a message shows them: `a, b, c`.
    pub fn describe(&self) -> String {
        self.dirs
            .iter()
            .map(|d| d.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The file for a filter name; a name with a `/` or ending in `.toml`
    /// is taken as a path.
    pub fn find(&self, name: &str) -> Option<PathBuf> {
        if name.contains('/') || name.ends_with(".toml") {
            let p = PathBuf::from(name);
            return p.is_file().then_some(p);
        }
        if !valid_filter_name(name) {
            return None;
        }
        self.dirs
            .iter()
            .map(|d| d.join(format!("{name}.toml")))
            .find(|p| p.is_file())
    }

    /// The shared snippets file: the first `common.toml` along the path,
    /// or next to `filter_file` when that is not on the path.
    pub fn common_for(&self, filter_file: &Path) -> Option<PathBuf> {
        let beside = filter_file.parent().map(|d| d.join(COMMON_FILE));
        beside
            .into_iter()
            .chain(self.dirs.iter().map(|d| d.join(COMMON_FILE)))
            .find(|p| p.is_file())
    }

    /// Every filter name available, with the file that provides it.
    pub fn list(&self) -> Vec<(String, PathBuf)> {
        let mut found: BTreeMap<String, PathBuf> = BTreeMap::new();
        for dir in self.dirs.iter().rev() {
            let Ok(entries) = std::fs::read_dir(dir) else {
                continue;
            };
            for e in entries.flatten() {
                let path = e.path();
                let Some(stem) = path.file_stem().and_then(|s| s.to_str()) else {
                    continue;
                };
                if path.extension().is_some_and(|x| x == "toml")
                    && path.file_name().is_some_and(|n| n != COMMON_FILE)
                    && valid_filter_name(stem)
                {
                    found.insert(stem.to_string(), path);
                }
            }
        }
        found.into_iter().collect()
    }
}

/// Filter names: letters, digits, `-`, `_`, `.` (no path tricks).
pub fn valid_filter_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// Name of the filter a file provides (its stem).
pub fn name_of(path: &Path) -> String {
    path.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn def(text: &str) -> (FilterDef, Vec<String>) {
        let file = SourceFile::new("f.toml", text.to_string());
        let diags = Diagnostics::new();
        let d = FilterDef::read("f", &file, &diags);
        (
            d,
            diags.into_sorted().iter().map(|d| d.to_string()).collect(),
        )
    }

    #[test]
    fn reads_patterns_roles_and_modes() {
        let (d, errs) = def(r#"
description = "x"
failregex = ['^a <HOST>$', { regex = '^b <HOST>$', role = "note" }]
[modes.ddos]
failregex = ['^c <HOST>$']
[modes.aggressive]
include = ["ddos", "extra"]
[modes.extra]
failregex = ['^d <HOST>$']
"#);
        assert!(errs.is_empty(), "{errs:?}");
        assert_eq!(d.failregex.len(), 2);
        assert_eq!(d.failregex[1].role, Role::Note);
        assert_eq!(
            d.expand_mode("aggressive").unwrap(),
            ["aggressive", "ddos", "extra"]
        );
        assert_eq!(d.expand_mode("normal").unwrap(), Vec::<&str>::new());
        assert!(d.expand_mode("nope").is_none());
        assert_eq!(d.mode_names(), ["normal", "aggressive", "ddos", "extra"]);
    }

    #[test]
    fn reports_bad_shapes_with_positions() {
        let (_, errs) = def("failregex = [1, { regex = 'x', role = 'maybe' }]\nfailregx = 2\n");
        assert_eq!(
            errs,
            [
                "f.toml:1:1: filter has no failregex",
                "f.toml:1:14: failregex must list strings or tables, not integer",
                "f.toml:1:39: unknown role \"maybe\" (fail, pending, note, close, success, repeat)",
                "f.toml:2:1: unknown key \"failregx\" (did you mean \"failregex\"?)",
            ]
        );
    }

    #[test]
    fn filter_names_cannot_escape() {
        assert!(valid_filter_name("apache-auth"));
        assert!(!valid_filter_name("../etc/passwd"));
        assert!(!valid_filter_name(".hidden"));
    }
}
