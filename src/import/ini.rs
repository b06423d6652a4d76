//! One INI file read the way Python's `configparser` reads it for
//! Fail2ban (`inline_comment_prefixes=";"`, `strict=True`, option names
//! lowercased), keeping `file:line` for every piece of every value.
//!
//! Python's rules, which Fail2ban inherits (configparser.RawConfigParser._read):
//! - `[name]` starts a section (the header runs to the last `]`); `[DEFAULT]`
//!   is the defaults every section falls back on.
//! - `name = value` or `name: value` (the first `=` or `:` splits); names are
//!   lowercased.
//! - A line indented deeper than its option's line continues the value
//!   (joined with `\n`); blank lines inside a value are kept, trailing ones
//!   dropped.
//! - Lines whose first non-blank character is `#` or `;` are comments, also
//!   inside a value; `;` after whitespace starts an inline comment.
//! - In one file, a section or an option given twice is an error.

use std::fmt;
use std::path::{Path, PathBuf};
use std::rc::Rc;

/// Where something was written: a file and a 1-based line.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Pos {
    pub file: Rc<PathBuf>,
    pub line: u32,
}

impl Pos {
    pub fn new(file: &Rc<PathBuf>, line: u32) -> Pos {
        Pos {
            file: file.clone(),
            line,
        }
    }

    /// A position for things the importer made up (no file).
    pub fn none() -> Pos {
        Pos {
            file: Rc::new(PathBuf::new()),
            line: 0,
        }
    }
}

impl fmt::Display for Pos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}", self.file.display())
        } else {
            write!(f, "{}:{}", self.file.display(), self.line)
        }
    }
}

/// Text that remembers, line by line, where it came from (through
/// interpolation and tag substitution, a value's lines may come from
/// several files).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Spanned {
    text: String,
    /// `(byte offset, origin)`, offsets ascending; the origin of a byte is
    /// the last mark at or before it.
    marks: Vec<(usize, Pos)>,
}

impl Spanned {
    /// Text from one place.
    pub fn new(text: impl Into<String>, pos: Pos) -> Spanned {
        Spanned {
            text: text.into(),
            marks: vec![(0, pos)],
        }
    }

    pub fn text(&self) -> &str {
        &self.text
    }

    pub fn is_empty(&self) -> bool {
        self.text.is_empty()
    }

    /// Where the byte at `offset` came from.
    pub fn pos_at(&self, offset: usize) -> Pos {
        let i = self.marks.partition_point(|(o, _)| *o <= offset);
        match i.checked_sub(1).and_then(|i| self.marks.get(i)) {
            Some((_, p)) => p.clone(),
            None => self
                .marks
                .first()
                .map_or_else(Pos::none, |(_, p)| p.clone()),
        }
    }

    /// Where the text starts.
    pub fn pos(&self) -> Pos {
        self.pos_at(0)
    }

    fn mark(&mut self, pos: Pos) {
        let at = self.text.len();
        if let Some(last) = self.marks.last_mut() {
            if last.0 == at {
                last.1 = pos;
                return;
            }
            if last.1 == pos {
                return;
            }
        }
        self.marks.push((at, pos));
    }

    /// Append plain text that came from `pos`.
    pub fn push_str(&mut self, text: &str, pos: Pos) {
        if text.is_empty() {
            return;
        }
        self.mark(pos);
        self.text.push_str(text);
    }

    /// Append `other[range]` with its origins.
    pub fn push_slice(&mut self, other: &Spanned, range: std::ops::Range<usize>) {
        if range.is_empty() {
            return;
        }
        self.mark(other.pos_at(range.start));
        let base = self.text.len();
        for (o, p) in &other.marks {
            if *o > range.start && *o < range.end {
                self.marks.push((base + o - range.start, p.clone()));
            }
        }
        self.text.push_str(&other.text[range]);
    }

    /// Append all of `other`.
    pub fn push_spanned(&mut self, other: &Spanned) {
        self.push_slice(other, 0..other.text.len());
    }

    /// Every occurrence of `from` replaced by `to`.
    pub fn replace_all(&self, from: &str, to: &Spanned) -> Spanned {
        let mut out = Spanned::default();
        let mut last = 0;
        for (at, _) in self.text.match_indices(from) {
            out.push_slice(self, last..at);
            out.push_spanned(to);
            last = at + from.len();
        }
        out.push_slice(self, last..self.text.len());
        if out.marks.is_empty() {
            out.marks = self.marks.iter().take(1).cloned().collect();
        }
        out
    }

    /// The lines (split at `\n`), each with where it starts.
    pub fn lines(&self) -> Vec<(String, Pos)> {
        let mut out = Vec::new();
        let mut start = 0;
        for (i, b) in self.text.bytes().enumerate() {
            if b == b'\n' {
                out.push((self.text[start..i].to_string(), self.pos_at(start)));
                start = i + 1;
            }
        }
        out.push((self.text[start..].to_string(), self.pos_at(start)));
        out
    }
}

/// An option as written in one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawOption {
    /// Lowercased, as configparser's `optionxform` does.
    pub name: String,
    pub value: Spanned,
}

/// Options in the order written (lookups are linear: sections are small).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Options(pub Vec<RawOption>);

impl Options {
    pub fn get(&self, name: &str) -> Option<&Spanned> {
        self.0.iter().find(|o| o.name == name).map(|o| &o.value)
    }

    pub fn contains(&self, name: &str) -> bool {
        self.0.iter().any(|o| o.name == name)
    }

    /// Set, keeping the first position in order (Python dict update).
    pub fn set(&mut self, name: &str, value: Spanned) {
        match self.0.iter_mut().find(|o| o.name == name) {
            Some(o) => o.value = value,
            None => self.0.push(RawOption {
                name: name.to_string(),
                value,
            }),
        }
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(|o| o.name.as_str())
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &Spanned)> {
        self.0.iter().map(|o| (o.name.as_str(), &o.value))
    }
}

/// A section of one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Section {
    pub name: String,
    /// The header's position.
    pub pos: Pos,
    pub options: Options,
}

/// One file, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IniFile {
    pub path: Rc<PathBuf>,
    pub defaults: Options,
    pub sections: Vec<Section>,
}

/// A problem reading configuration, with where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IniError {
    pub pos: Pos,
    pub message: String,
}

impl fmt::Display for IniError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.pos, self.message)
    }
}

impl IniError {
    pub fn new(pos: Pos, message: impl Into<String>) -> IniError {
        IniError {
            pos,
            message: message.into(),
        }
    }
}

/// The name of the defaults section.
pub const DEFAULT_SECTION: &str = "DEFAULT";

impl IniFile {
    /// Read and parse `path`. Unreadable files and text that is not UTF-8
    /// are errors (Fail2ban would skip such a file and lose its settings).
    pub fn read(path: &Path) -> Result<IniFile, IniError> {
        let file = Rc::new(path.to_path_buf());
        let bytes = std::fs::read(path).map_err(|e| {
            let why = match e.kind() {
                std::io::ErrorKind::PermissionDenied => {
                    "cannot read the file: permission denied".to_string()
                }
                std::io::ErrorKind::NotFound => "no such file".to_string(),
                _ => format!("cannot read the file: {e}"),
            };
            IniError::new(Pos::new(&file, 0), why)
        })?;
        let text = String::from_utf8(bytes).map_err(|e| {
            let line = 1 + e.as_bytes()[..e.utf8_error().valid_up_to()]
                .iter()
                .filter(|b| **b == b'\n')
                .count();
            IniError::new(
                Pos::new(&file, line as u32),
                "not UTF-8 text (Fail2ban reads its configuration as UTF-8)",
            )
        })?;
        IniFile::parse(file, &text)
    }

    /// Parse `text` as the contents of `path`. The first problem is
    /// returned (Python collects the bad lines of a file and gives up on
    /// the file; so do we, naming the first).
    pub fn parse(path: Rc<PathBuf>, text: &str) -> Result<IniFile, IniError> {
        let mut out = IniFile {
            path: path.clone(),
            defaults: Options::default(),
            sections: Vec::new(),
        };
        // Where the current option lives: None = before any section;
        // Some(None) = DEFAULT; Some(Some(i)) = sections[i].
        let mut current: Option<Option<usize>> = None;
        let mut current_name = String::new();
        // The option being continued and its pieces.
        let mut option: Option<String> = None;
        let mut pieces: Vec<(String, u32)> = Vec::new();
        let mut indent_level = usize::MAX;
        let mut seen_sections: Vec<String> = Vec::new();
        let mut seen_options: Vec<(String, String)> = Vec::new();

        let flush = |out: &mut IniFile,
                     current: Option<Option<usize>>,
                     option: &mut Option<String>,
                     pieces: &mut Vec<(String, u32)>| {
            let Some(name) = option.take() else {
                pieces.clear();
                return;
            };
            // Trailing blank lines are dropped (Python's rstrip of the joined value).
            while pieces.last().is_some_and(|(t, _)| t.is_empty()) && pieces.len() > 1 {
                pieces.pop();
            }
            let mut value = Spanned::default();
            for (i, (t, line)) in pieces.iter().enumerate() {
                let pos = Pos::new(&path, *line);
                if i > 0 {
                    value.push_str("\n", pos.clone());
                }
                value.push_str(t, pos.clone());
                if value.marks.is_empty() {
                    value.marks.push((0, pos));
                }
            }
            let value = Spanned {
                text: value.text.trim_end().to_string(),
                marks: value.marks,
            };
            pieces.clear();
            let target = match current {
                Some(None) => &mut out.defaults,
                Some(Some(i)) => &mut out.sections[i].options,
                None => return,
            };
            target.set(&name, value);
        };

        for (idx, raw_line) in text.lines().enumerate() {
            let lineno = (idx + 1) as u32;
            let line = raw_line.strip_suffix('\r').unwrap_or(raw_line);
            let comment_start = comment_start(line);
            let value = match comment_start {
                Some(c) => line[..c].trim(),
                None => line.trim(),
            };
            if value.is_empty() {
                // A blank line (not a comment) is part of a value being written.
                if comment_start.is_none() && option.is_some() {
                    pieces.push((String::new(), lineno));
                }
                continue;
            }
            let cur_indent = line.len() - line.trim_start().len();
            if option.is_some() && current.is_some() && cur_indent > indent_level {
                pieces.push((value.to_string(), lineno));
                continue;
            }
            flush(&mut out, current, &mut option, &mut pieces);
            indent_level = cur_indent;
            if let Some(header) = section_header(value) {
                let pos = Pos::new(&path, lineno);
                if header == DEFAULT_SECTION {
                    current = Some(None);
                } else if seen_sections.iter().any(|s| s == header) {
                    return Err(IniError::new(
                        pos,
                        format!("section [{header}] appears twice in this file"),
                    ));
                } else {
                    seen_sections.push(header.to_string());
                    out.sections.push(Section {
                        name: header.to_string(),
                        pos,
                        options: Options::default(),
                    });
                    current = Some(Some(out.sections.len() - 1));
                }
                current_name = header.to_string();
                continue;
            }
            if current.is_none() {
                return Err(IniError::new(
                    Pos::new(&path, lineno),
                    format!("{value:?} comes before any [section] header"),
                ));
            }
            let Some((name, val)) = split_option(value) else {
                return Err(IniError::new(
                    Pos::new(&path, lineno),
                    format!("not an option (name = value), a [section] or a comment: {value:?}"),
                ));
            };
            let name = name.to_lowercase();
            let key = (current_name.clone(), name.clone());
            if seen_options.contains(&key) {
                return Err(IniError::new(
                    Pos::new(&path, lineno),
                    format!("option {name:?} appears twice in section [{current_name}]"),
                ));
            }
            seen_options.push(key);
            option = Some(name);
            pieces.push((val.to_string(), lineno));
        }
        flush(&mut out, current, &mut option, &mut pieces);
        Ok(out)
    }

    /// A section by name.
    pub fn section(&self, name: &str) -> Option<&Section> {
        self.sections.iter().find(|s| s.name == name)
    }
}

/// Where a comment starts: a full-line `#`/`;` comment (0), or `;` at the
/// start or after whitespace.
fn comment_start(line: &str) -> Option<usize> {
    let trimmed = line.trim_start();
    if trimmed.starts_with('#') || trimmed.starts_with(';') {
        return Some(0);
    }
    let bytes = line.as_bytes();
    bytes
        .iter()
        .enumerate()
        .find(|(i, b)| {
            **b == b';'
                && (*i == 0
                    || line[..*i]
                        .chars()
                        .next_back()
                        .is_some_and(char::is_whitespace))
        })
        .map(|(i, _)| i)
}

/// `[header]` (Python: `\[(?P<header>.+)\]`, matched at the start: the
/// header runs to the last `]`).
fn section_header(value: &str) -> Option<&str> {
    let rest = value.strip_prefix('[')?;
    let end = rest.rfind(']')?;
    (end > 0).then(|| &rest[..end])
}

/// `name = value` / `name : value`: the first `=` or `:` splits (Python's
/// `(?P<option>.*?)\s*(?P<vi>=|:)\s*(?P<value>.*)$`); the name must not be
/// empty.
fn split_option(value: &str) -> Option<(&str, &str)> {
    let at = value.find(['=', ':'])?;
    let name = value[..at].trim_end();
    if name.is_empty() {
        return None;
    }
    Some((name, value[at + 1..].trim()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<IniFile, String> {
        IniFile::parse(Rc::new(PathBuf::from("t.conf")), text).map_err(|e| e.to_string())
    }

    #[test]
    fn reads_sections_options_and_continuations() {
        let f = parse(
            "# comment\n[DEFAULT]\nBanTime = 10m ; inline\n\n[sshd]\nenabled: true\nfailregex = ^a <HOST>$\n  ; comment in a value\n            ^b <HOST>$\n\n\nport=ssh;not a comment\n",
        )
        .unwrap();
        assert_eq!(f.defaults.get("bantime").unwrap().text(), "10m");
        let s = f.section("sshd").unwrap();
        assert_eq!(s.pos.line, 5);
        assert_eq!(s.options.get("enabled").unwrap().text(), "true");
        let fr = s.options.get("failregex").unwrap();
        assert_eq!(fr.text(), "^a <HOST>$\n^b <HOST>$");
        let lines = fr.lines();
        assert_eq!(lines[0].1.line, 7);
        assert_eq!(lines[1].1.line, 9);
        assert_eq!(
            s.options.get("port").unwrap().text(),
            "ssh;not a comment",
            "';' needs whitespace before it"
        );
    }

    #[test]
    fn blank_lines_inside_values_are_kept() {
        let f = parse("[a]\nx = 1\n\n  2\ny = 3\n").unwrap();
        let s = f.section("a").unwrap();
        assert_eq!(s.options.get("x").unwrap().text(), "1\n\n2");
        assert_eq!(s.options.get("y").unwrap().text(), "3");
    }

    #[test]
    fn header_runs_to_the_last_bracket_and_first_delimiter_splits() {
        let f = parse("[a]b]\nurl = http://x:80\nk: v = w\n").unwrap();
        let s = f.section("a]b").unwrap();
        assert_eq!(s.options.get("url").unwrap().text(), "http://x:80");
        assert_eq!(s.options.get("k").unwrap().text(), "v = w");
    }

    #[test]
    fn errors_name_the_line() {
        assert_eq!(
            parse("x = 1\n").unwrap_err(),
            "t.conf:1: \"x = 1\" comes before any [section] header"
        );
        assert_eq!(
            parse("[a]\nx = 1\n[b]\n[a]\n").unwrap_err(),
            "t.conf:4: section [a] appears twice in this file"
        );
        assert_eq!(
            parse("[a]\nx = 1\nX = 2\n").unwrap_err(),
            "t.conf:3: option \"x\" appears twice in section [a]"
        );
        assert_eq!(
            parse("[a]\njust words\n").unwrap_err(),
            "t.conf:2: not an option (name = value), a [section] or a comment: \"just words\""
        );
        // DEFAULT may come twice (configparser does not count it).
        assert!(parse("[DEFAULT]\na = 1\n[DEFAULT]\nb = 2\n").is_ok());
    }

    #[test]
    fn spans_survive_replacement() {
        let a = Spanned::new("x <T> y", Pos::new(&Rc::new(PathBuf::from("a")), 1));
        let mut t = Spanned::new("1\n", Pos::new(&Rc::new(PathBuf::from("b")), 7));
        t.push_str("2", Pos::new(&Rc::new(PathBuf::from("b")), 8));
        let r = a.replace_all("<T>", &t);
        assert_eq!(r.text(), "x 1\n2 y");
        let lines = r.lines();
        assert_eq!(lines[0].1.to_string(), "a:1");
        assert_eq!(lines[1].1.to_string(), "b:8");
    }
}
