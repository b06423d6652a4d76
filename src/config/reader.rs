//! Reading TOML with positions, so that every problem is reported as
//! `file:line:column: message` and all of them at once.
//!
//! Serde's derive stops at the first error and forgets where values came
//! from; a security daemon's admin wants the whole list. [`Table`] walks the
//! spanned tree of `toml::de::DeTable`, records each problem in a shared
//! [`Diagnostics`] and keeps going; [`Table::finish`] reports the keys that
//! nobody asked for (unknown keys, usually typos).

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use toml::Spanned;
use toml::de::{DeTable, DeValue};

/// A configuration or filter file's text, kept for line/column lookups.
#[derive(Debug)]
pub struct SourceFile {
    path: PathBuf,
    text: String,
    line_starts: Vec<usize>,
}

impl SourceFile {
    /// Wrap text read from `path`.
    pub fn new(path: impl Into<PathBuf>, text: String) -> Rc<Self> {
        let line_starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        Rc::new(SourceFile {
            path: path.into(),
            text,
            line_starts,
        })
    }

    /// Read a file; the error names the path.
    pub fn read(path: &Path) -> Result<Rc<Self>, Diagnostic> {
        match std::fs::read(path) {
            Ok(bytes) => match String::from_utf8(bytes) {
                Ok(text) => Ok(Self::new(path, text)),
                Err(e) => {
                    // Positioned where the valid text stops.
                    let at = e.utf8_error().valid_up_to();
                    let valid = String::from_utf8_lossy(&e.as_bytes()[..at]).into_owned();
                    let (line, column) = Self::new(path, valid).line_col(at);
                    Err(Diagnostic {
                        path: path.to_path_buf(),
                        line,
                        column,
                        message: format!("not valid UTF-8 (byte {at})"),
                    })
                }
            },
            Err(e) => Err(Diagnostic {
                path: path.to_path_buf(),
                line: 0,
                column: 0,
                message: format!("cannot read: {e}"),
            }),
        }
    }

    /// The path as given.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The text.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// 1-based line and column (in characters) of a byte offset.
    pub fn line_col(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.text.len());
        let line = match self.line_starts.binary_search(&offset) {
            Ok(i) => i,
            Err(i) => i - 1,
        };
        let start = self.line_starts[line];
        let col = self
            .text
            .get(start..offset)
            .map_or(offset - start, |s| s.chars().count());
        (line + 1, col + 1)
    }

    /// Parse as a TOML document; syntax errors go to `diags` (with
    /// recovery, so several are reported) and what could be read is kept.
    pub fn parse<'a>(self: &'a Rc<Self>, diags: &Diagnostics) -> Spanned<DeTable<'a>> {
        let (doc, errors) = DeTable::parse_recoverable(&self.text);
        for e in errors {
            let at = e.span().map_or(0, |s| s.start);
            diags.error(self, at, e.message().trim_end().to_string());
        }
        doc
    }
}

/// One problem, positioned.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Diagnostic {
    pub path: PathBuf,
    /// 1-based; 0 when the problem concerns the whole file.
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}: {}", self.path.display(), self.message)
        } else {
            write!(
                f,
                "{}:{}:{}: {}",
                self.path.display(),
                self.line,
                self.column,
                self.message
            )
        }
    }
}

/// Collected problems (shared by reference while walking several files).
#[derive(Debug, Default)]
pub struct Diagnostics {
    list: RefCell<Vec<Diagnostic>>,
}

impl Diagnostics {
    /// An empty collection.
    pub fn new() -> Self {
        Self::default()
    }

    /// Record a problem at byte `offset` of `file`.
    pub fn error(&self, file: &SourceFile, offset: usize, message: impl Into<String>) {
        let (line, column) = file.line_col(offset);
        self.push(Diagnostic {
            path: file.path.clone(),
            line,
            column,
            message: message.into(),
        });
    }

    /// Record a ready diagnostic.
    pub fn push(&self, d: Diagnostic) {
        let mut list = self.list.borrow_mut();
        if !list.contains(&d) {
            list.push(d);
        }
    }

    /// Nothing recorded?
    pub fn is_empty(&self) -> bool {
        self.list.borrow().is_empty()
    }

    /// How many.
    pub fn len(&self) -> usize {
        self.list.borrow().len()
    }

    /// Everything recorded, in file and position order.
    pub fn into_sorted(self) -> Vec<Diagnostic> {
        let mut list = self.list.into_inner();
        list.sort();
        list
    }
}

/// A value with the file and byte range it came from.
#[derive(Debug, Clone)]
pub struct Located<T> {
    pub value: T,
    pub file: Rc<SourceFile>,
    pub span: Range<usize>,
}

impl AsRef<str> for Located<String> {
    fn as_ref(&self) -> &str {
        &self.value
    }
}

impl<T> Located<T> {
    /// Report a problem about this value.
    pub fn error(&self, diags: &Diagnostics, message: impl Into<String>) {
        diags.error(&self.file, self.span.start, message);
    }

    /// `file:line:column` of the value, for messages at run time.
    pub fn position(&self) -> String {
        let (l, c) = self.file.line_col(self.span.start);
        format!("{}:{l}:{c}", self.file.path.display())
    }

    /// Same place, another value.
    pub fn map<U>(&self, value: U) -> Located<U> {
        Located {
            value,
            file: self.file.clone(),
            span: self.span.clone(),
        }
    }
}

/// A table being read: typed getters record type errors, and
/// [`Table::finish`] reports keys never asked for.
pub struct Table<'a, 'd> {
    file: &'a Rc<SourceFile>,
    table: &'a DeTable<'d>,
    span: Range<usize>,
    diags: &'a Diagnostics,
    used: RefCell<BTreeSet<String>>,
    /// Where this table sits, for messages (`jails.sshd`).
    pub path: String,
}

impl<'a, 'd> Table<'a, 'd> {
    /// The document's top-level table.
    pub fn root(
        file: &'a Rc<SourceFile>,
        doc: &'a Spanned<DeTable<'d>>,
        diags: &'a Diagnostics,
    ) -> Self {
        Table {
            file,
            table: doc.get_ref(),
            span: doc.span(),
            diags,
            used: RefCell::default(),
            path: String::new(),
        }
    }

    /// The file this table is in.
    pub fn file(&self) -> &Rc<SourceFile> {
        self.file
    }

    /// The shared diagnostics.
    pub fn diags(&self) -> &'a Diagnostics {
        self.diags
    }

    /// Report a problem about the table itself.
    pub fn error(&self, message: impl Into<String>) {
        self.diags.error(self.file, self.span.start, message);
    }

    fn qualified(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_string()
        } else {
            format!("{}.{key}", self.path)
        }
    }

    /// Is the key present (and mark it known)?
    pub fn has(&self, key: &str) -> bool {
        self.used.borrow_mut().insert(key.to_string());
        self.table.get(key).is_some()
    }

    /// Keys in file order.
    pub fn keys(&self) -> Vec<Located<String>> {
        self.table
            .iter()
            .map(|(k, _)| Located {
                value: k.get_ref().to_string(),
                file: self.file.clone(),
                span: k.span(),
            })
            .collect()
    }

    fn raw(&self, key: &str) -> Option<&'a Spanned<DeValue<'d>>> {
        self.used.borrow_mut().insert(key.to_string());
        self.table.get(key)
    }

    fn located<T>(&self, v: &Spanned<DeValue<'d>>, value: T) -> Located<T> {
        Located {
            value,
            file: self.file.clone(),
            span: v.span(),
        }
    }

    fn type_error(&self, key: &str, v: &Spanned<DeValue<'d>>, want: &str) {
        self.diags.error(
            self.file,
            v.span().start,
            format!(
                "{} must be {want}, not {}",
                self.qualified(key),
                v.get_ref().type_str()
            ),
        );
    }

    /// A string value.
    pub fn string(&self, key: &str) -> Option<Located<String>> {
        let v = self.raw(key)?;
        match v.get_ref().as_str() {
            Some(s) => Some(self.located(v, s.to_string())),
            None => {
                self.type_error(key, v, "a string");
                None
            }
        }
    }

    /// A boolean value.
    pub fn bool(&self, key: &str) -> Option<Located<bool>> {
        let v = self.raw(key)?;
        match v.get_ref().as_bool() {
            Some(b) => Some(self.located(v, b)),
            None => {
                self.type_error(key, v, "true or false");
                None
            }
        }
    }

    /// An integer within `range`.
    pub fn integer(&self, key: &str, range: std::ops::RangeInclusive<i64>) -> Option<Located<i64>> {
        let v = self.raw(key)?;
        let Some(int) = v.get_ref().as_integer() else {
            self.type_error(key, v, "an integer");
            return None;
        };
        let parsed = i64::from_str_radix(&int.as_str().replace('_', ""), int.radix())
            .ok()
            .filter(|n| range.contains(n));
        match parsed {
            Some(n) => Some(self.located(v, n)),
            None => {
                self.diags.error(
                    self.file,
                    v.span().start,
                    format!(
                        "{} must be between {} and {}",
                        self.qualified(key),
                        range.start(),
                        range.end()
                    ),
                );
                None
            }
        }
    }

    /// A number (integer or float), e.g. a factor.
    pub fn number(&self, key: &str) -> Option<Located<f64>> {
        let v = self.raw(key)?;
        match de_number(v.get_ref()) {
            Some(n) => Some(self.located(v, n)),
            _ => {
                self.type_error(key, v, "a number");
                None
            }
        }
    }

    /// A string or an integer, as text (durations: `"10m"` or `600`).
    pub fn text_or_integer(&self, key: &str) -> Option<Located<String>> {
        let v = self.raw(key)?;
        match v.get_ref() {
            DeValue::String(s) => Some(self.located(v, s.to_string())),
            DeValue::Integer(i) => Some(self.located(v, i.as_str().replace('_', ""))),
            _ => {
                self.type_error(key, v, "a string such as \"10m\" or a number of seconds");
                None
            }
        }
    }

    /// A list of strings; a single string is accepted as a list of one.
    pub fn strings(&self, key: &str) -> Option<Vec<Located<String>>> {
        let v = self.raw(key)?;
        match v.get_ref() {
            DeValue::String(s) => Some(vec![self.located(v, s.to_string())]),
            DeValue::Array(items) => {
                let mut out = Vec::new();
                for item in items.iter() {
                    match item.get_ref().as_str() {
                        Some(s) => out.push(self.located(item, s.to_string())),
                        None => self.diags.error(
                            self.file,
                            item.span().start,
                            format!(
                                "{} must list strings, not {}",
                                self.qualified(key),
                                item.get_ref().type_str()
                            ),
                        ),
                    }
                }
                Some(out)
            }
            _ => {
                self.type_error(key, v, "a list of strings");
                None
            }
        }
    }

    /// An argv: a non-empty list of strings. A plain string is refused
    /// with a hint: it would be taken for one program name, and a command
    /// line is never split or handed to a shell.
    pub fn argv(&self, key: &str) -> Option<Vec<Located<String>>> {
        let v = self.raw(key)?;
        match v.get_ref() {
            DeValue::Array(items) => self.argv_of(key, v, items.iter()),
            DeValue::String(_) => {
                self.diags.error(
                    self.file,
                    v.span().start,
                    format!(
                        "{} must be a list of strings, the program and its arguments (run without a shell), e.g. [\"ipset\", \"add\", \"jw\", \"{{address}}\"]",
                        self.qualified(key)
                    ),
                );
                None
            }
            _ => {
                self.type_error(key, v, "a list of strings (the program and its arguments)");
                None
            }
        }
    }

    /// One argv or a list of them: `["a", "b"]` or `[["a"], ["b", "c"]]`
    /// (`[]`: none).
    pub fn argvs(&self, key: &str) -> Option<Vec<Vec<Located<String>>>> {
        let v = self.raw(key)?;
        let Some(items) = v.get_ref().as_array() else {
            self.type_error(key, v, "a list of strings or a list of such lists");
            return None;
        };
        if items.iter().all(|i| i.get_ref().as_array().is_some()) {
            let mut out = Vec::new();
            for item in items.iter() {
                let inner = item.get_ref().as_array()?;
                out.push(self.argv_of(key, item, inner.iter())?);
            }
            Some(out)
        } else {
            self.argv_of(key, v, items.iter()).map(|a| vec![a])
        }
    }

    fn argv_of<'i>(
        &self,
        key: &str,
        whole: &Spanned<DeValue<'d>>,
        items: impl Iterator<Item = &'i Spanned<DeValue<'d>>>,
    ) -> Option<Vec<Located<String>>>
    where
        'd: 'i,
    {
        let mut out = Vec::new();
        for item in items {
            match item.get_ref().as_str() {
                Some(s) => out.push(self.located(item, s.to_string())),
                None => {
                    self.diags.error(
                        self.file,
                        item.span().start,
                        format!(
                            "{} must list strings, not {}",
                            self.qualified(key),
                            item.get_ref().type_str()
                        ),
                    );
                    return None;
                }
            }
        }
        if out.is_empty() {
            self.diags.error(
                self.file,
                whole.span().start,
                format!(
                    "{} must not be empty: give the program and its arguments",
                    self.qualified(key)
                ),
            );
            return None;
        }
        Some(out)
    }

    /// Items of an array that may mix strings and inline tables (a
    /// failregex list: `'re'` or `{ regex = 're', role = 'note' }`).
    pub fn items(&self, key: &str) -> Option<Vec<Item<'a, 'd>>> {
        let v = self.raw(key)?;
        let one = |item: &'a Spanned<DeValue<'d>>| -> Option<Item<'a, 'd>> {
            match item.get_ref() {
                DeValue::String(s) => Some(Item::Str(self.located(item, s.to_string()))),
                DeValue::Table(t) => Some(Item::Table(self.sub(key, t, item.span()))),
                other => {
                    self.diags.error(
                        self.file,
                        item.span().start,
                        format!(
                            "{} must list strings or tables, not {}",
                            self.qualified(key),
                            other.type_str()
                        ),
                    );
                    None
                }
            }
        };
        match v.get_ref() {
            DeValue::Array(items) => Some(items.iter().filter_map(one).collect()),
            DeValue::String(_) => one(v).map(|i| vec![i]),
            _ => {
                self.type_error(key, v, "a list");
                None
            }
        }
    }

    fn sub(&self, key: &str, t: &'a DeTable<'d>, span: Range<usize>) -> Table<'a, 'd> {
        Table {
            file: self.file,
            table: t,
            span,
            diags: self.diags,
            used: RefCell::default(),
            path: self.qualified(key),
        }
    }

    /// A sub-table.
    pub fn table(&self, key: &str) -> Option<Table<'a, 'd>> {
        let v = self.raw(key)?;
        match v.get_ref() {
            DeValue::Table(t) => Some(self.sub(key, t, v.span())),
            _ => {
                self.type_error(key, v, "a table");
                None
            }
        }
    }

    /// Every entry of this table as a named sub-table (`[jails.NAME]`).
    pub fn tables(&self) -> Vec<(Located<String>, Table<'a, 'd>)> {
        let mut out = Vec::new();
        for (k, v) in self.table.iter() {
            let name = k.get_ref().to_string();
            self.used.borrow_mut().insert(name.clone());
            match v.get_ref() {
                DeValue::Table(t) => out.push((
                    Located {
                        value: name.clone(),
                        file: self.file.clone(),
                        span: k.span(),
                    },
                    self.sub(&name, t, v.span()),
                )),
                _ => self.type_error(&name, v, "a table"),
            }
        }
        out
    }

    /// A list of numbers, located at the list.
    pub fn numbers(&self, key: &str) -> Option<Located<Vec<f64>>> {
        let v = self.raw(key)?;
        let Some(items) = v.get_ref().as_array() else {
            self.type_error(key, v, "a list of numbers");
            return None;
        };
        let mut out = Vec::new();
        for item in items.iter() {
            match de_number(item.get_ref()) {
                Some(n) => out.push(n),
                _ => {
                    self.diags.error(
                        self.file,
                        item.span().start,
                        format!("{} must list numbers", self.qualified(key)),
                    );
                    return None;
                }
            }
        }
        Some(self.located(v, out))
    }

    /// Report every key that is not in `known` (for tables read in layers,
    /// where an overridden key is never asked for but still valid).
    pub fn check_keys(&self, known: &[&str]) {
        for (k, _) in self.table.iter() {
            let key = k.get_ref();
            if known.contains(&key.as_ref()) {
                continue;
            }
            let hint = suggestion(key, known)
                .map(|s| format!(" (did you mean {s:?}?)"))
                .unwrap_or_default();
            self.diags.error(
                self.file,
                k.span().start,
                format!("unknown key {:?}{hint}", self.qualified(key)),
            );
        }
    }

    /// Report every key nobody read as unknown; `known` lists the valid
    /// keys for a helpful message.
    pub fn finish(&self, known: &[&str]) {
        let used = self.used.borrow();
        for (k, _) in self.table.iter() {
            let key = k.get_ref();
            if used.contains(key.as_ref()) {
                continue;
            }
            let hint = suggestion(key, known)
                .map(|s| format!(" (did you mean {s:?}?)"))
                .unwrap_or_default();
            self.diags.error(
                self.file,
                k.span().start,
                format!("unknown key {:?}{hint}", self.qualified(key)),
            );
        }
    }
}

/// A TOML integer or float as a finite number.
fn de_number(v: &DeValue) -> Option<f64> {
    let n = match v {
        DeValue::Integer(i) => i64::from_str_radix(&i.as_str().replace('_', ""), i.radix())
            .ok()
            .map(|n| n as f64),
        DeValue::Float(f) => f.as_str().replace('_', "").parse::<f64>().ok(),
        _ => None,
    };
    n.filter(|n| n.is_finite())
}

/// An element of a mixed list.
pub enum Item<'a, 'd> {
    Str(Located<String>),
    Table(Table<'a, 'd>),
}

/// The closest known key, for typos (edit distance ≤ 2).
fn suggestion<'k>(key: &str, known: &[&'k str]) -> Option<&'k str> {
    known
        .iter()
        .map(|k| (edit_distance(key, k), *k))
        .filter(|(d, _)| *d <= 2)
        .min()
        .map(|(_, k)| k)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            cur[j + 1] = (prev[j] + usize::from(ca != *cb))
                .min(prev[j + 1] + 1)
                .min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(text: &str, f: impl FnOnce(&Table)) -> Vec<String> {
        let file = SourceFile::new("t.toml", text.to_string());
        let diags = Diagnostics::new();
        let doc = file.parse(&diags);
        let root = Table::root(&file, &doc, &diags);
        f(&root);
        diags.into_sorted().iter().map(|d| d.to_string()).collect()
    }

    #[test]
    fn reports_type_errors_and_unknown_keys_with_positions() {
        let errs = read("a = 1\nb = \"x\"\nmaxretyr = 3\n", |t| {
            assert!(t.string("a").is_none());
            assert_eq!(t.string("b").unwrap().value, "x");
            t.finish(&["a", "b", "maxretry"]);
        });
        assert_eq!(
            errs,
            [
                "t.toml:1:5: a must be a string, not integer",
                "t.toml:3:1: unknown key \"maxretyr\" (did you mean \"maxretry\"?)"
            ]
        );
    }

    #[test]
    fn syntax_errors_are_positioned() {
        let errs = read("a = \nb = 2\n", |_| {});
        assert_eq!(errs.len(), 1);
        assert!(errs[0].starts_with("t.toml:1:"), "{errs:?}");
    }

    #[test]
    fn integers_are_range_checked() {
        let errs = read("n = 0\nm = 7", |t| {
            assert!(t.integer("n", 1..=10).is_none());
            assert_eq!(t.integer("m", 1..=10).unwrap().value, 7);
        });
        assert_eq!(errs, ["t.toml:1:5: n must be between 1 and 10"]);
    }

    #[test]
    fn line_col_counts_characters() {
        let f = SourceFile::new("x", "é = 1\nab".to_string());
        assert_eq!(f.line_col(0), (1, 1));
        assert_eq!(f.line_col(3), (1, 3));
        assert_eq!(f.line_col(8), (2, 2));
    }
}
