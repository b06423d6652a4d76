//! What the import did with everything that was not carried over
//! exactly: one item per thing, `file:line: what; what was done`, and a
//! per-jail summary (carried over | translated | fell back | left out).

use std::fmt;

use super::ini::Pos;

/// What happened to one setting, pattern or action.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    /// The same meaning in jailwarden's terms (a different spelling, a
    /// rewrite with the same matches): counted, and listed only when the
    /// translation is worth knowing about.
    Carried,
    /// Carried over with a difference worth knowing (listed).
    Translated,
    /// jailwarden's own equivalent used instead (listed).
    FellBack,
    /// Not carried over (listed).
    LeftOut,
}

impl Kind {
    pub fn label(self) -> &'static str {
        match self {
            Kind::Carried => "carried over",
            Kind::Translated => "translated",
            Kind::FellBack => "fell back",
            Kind::LeftOut => "left out",
        }
    }
}

/// One item of the report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    pub pos: Pos,
    /// The jail it concerns (None: the whole configuration).
    pub jail: Option<String>,
    pub kind: Kind,
    /// What it was, as the admin wrote it.
    pub what: String,
    /// What was done with it, and why.
    pub done: String,
}

impl fmt::Display for Item {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: ", self.pos)?;
        if let Some(j) = &self.jail {
            write!(f, "[{j}] ")?;
        }
        write!(f, "{}; {}: {}", self.what, self.kind.label(), self.done)
    }
}

/// Counts per jail.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub carried: usize,
    pub translated: usize,
    pub fell_back: usize,
    pub left_out: usize,
}

/// The report of one import.
#[derive(Debug, Clone, Default)]
pub struct Report {
    pub items: Vec<Item>,
    /// Things carried over exactly, per jail (not listed one by one).
    carried: Vec<(Option<String>, usize)>,
}

impl Report {
    /// Something carried over exactly.
    pub fn carried(&mut self, jail: Option<&str>) {
        let j = jail.map(str::to_string);
        match self.carried.iter_mut().find(|(k, _)| *k == j) {
            Some((_, n)) => *n += 1,
            None => self.carried.push((j, 1)),
        }
    }

    pub fn add(
        &mut self,
        pos: &Pos,
        jail: Option<&str>,
        kind: Kind,
        what: impl Into<String>,
        done: impl Into<String>,
    ) {
        if kind == Kind::Carried {
            self.carried(jail);
        }
        // One line per item: a multi-line value shows its lines joined.
        let one_line = |s: String| s.replace('\n', " | ");
        self.items.push(Item {
            pos: pos.clone(),
            jail: jail.map(str::to_string),
            kind,
            what: one_line(what.into()),
            done: one_line(done.into()),
        });
    }

    /// Items to list (everything not carried over exactly, plus notable
    /// translations), in file order.
    pub fn listed(&self) -> Vec<&Item> {
        let mut v: Vec<&Item> = self.items.iter().collect();
        v.sort_by(|a, b| (&a.pos, &a.jail).cmp(&(&b.pos, &b.jail)));
        v
    }

    pub fn counts(&self, jail: Option<&str>) -> Counts {
        let mut c = Counts {
            carried: self
                .carried
                .iter()
                .filter(|(j, _)| j.as_deref() == jail)
                .map(|(_, n)| *n)
                .sum(),
            ..Counts::default()
        };
        for i in self.items.iter().filter(|i| i.jail.as_deref() == jail) {
            match i.kind {
                Kind::Carried => {}
                Kind::Translated => c.translated += 1,
                Kind::FellBack => c.fell_back += 1,
                Kind::LeftOut => c.left_out += 1,
            }
        }
        c
    }

    /// Items of one jail (for the comments in the written file).
    pub fn for_jail(&self, jail: &str) -> Vec<&Item> {
        self.listed()
            .into_iter()
            .filter(|i| i.jail.as_deref() == Some(jail))
            .collect()
    }

    /// The summary table: `jail | carried over | translated | fell back | left out`.
    pub fn table(&self, jails: &[String]) -> String {
        let mut rows: Vec<[String; 5]> = vec![[
            "JAIL".into(),
            "CARRIED OVER".into(),
            "TRANSLATED".into(),
            "FELL BACK".into(),
            "LEFT OUT".into(),
        ]];
        for j in jails {
            let c = self.counts(Some(j));
            rows.push([
                j.clone(),
                c.carried.to_string(),
                c.translated.to_string(),
                c.fell_back.to_string(),
                c.left_out.to_string(),
            ]);
        }
        let mut width = [0usize; 5];
        for r in &rows {
            for (i, c) in r.iter().enumerate() {
                width[i] = width[i].max(c.chars().count());
            }
        }
        let mut out = String::new();
        for r in &rows {
            let mut line = String::new();
            for (i, c) in r.iter().enumerate() {
                if i == 0 {
                    line.push_str(&format!("{c:<w$}", w = width[0]));
                } else {
                    line.push_str(&format!("  {c:>w$}", w = width[i]));
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }
}

/// A TOML string: plain `"..."` when nothing needs escaping, a literal
/// string when that avoids escapes (regexes read best without them),
/// else a basic string with escapes.
pub fn toml_str(s: &str) -> String {
    if !s.contains(['"', '\\']) && !s.chars().any(|c| c.is_control()) {
        return format!("\"{s}\"");
    }
    if !s.contains('\'') && !s.chars().any(|c| c.is_control()) {
        return format!("'{s}'");
    }
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A TOML array of strings on one line.
pub fn toml_list(items: &[String]) -> String {
    let parts: Vec<String> = items.iter().map(|s| toml_str(s)).collect();
    format!("[{}]", parts.join(", "))
}

/// A `# ` comment block (each line prefixed).
pub fn comment(text: &str) -> String {
    text.lines()
        .map(|l| format!("# {l}\n").replace("# \n", "#\n"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_survive_toml() {
        for s in [
            "^a \\S+ <HOST>$",
            "it's",
            "tab\there",
            "quote\"and'apostrophe",
            "",
        ] {
            let doc = format!("x = {}\n", toml_str(s));
            let v: toml::Table = toml::from_str(&doc).unwrap();
            assert_eq!(v["x"].as_str().unwrap(), s, "{doc}");
        }
        let doc = format!("x = {}\n", toml_list(&["a'b".into(), "c".into()]));
        let v: toml::Table = toml::from_str(&doc).unwrap();
        assert_eq!(v["x"].as_array().unwrap().len(), 2);
    }

    #[test]
    fn items_read_as_file_line_what_done() {
        let mut r = Report::default();
        let f = std::rc::Rc::new(std::path::PathBuf::from("/etc/fail2ban/jail.local"));
        r.add(
            &Pos::new(&f, 12),
            Some("sshd"),
            Kind::LeftOut,
            "ignorecommand = /bin/check <ip>",
            "jailwarden has no ignorecommand",
        );
        r.carried(Some("sshd"));
        assert_eq!(
            r.listed()[0].to_string(),
            "/etc/fail2ban/jail.local:12: [sshd] ignorecommand = /bin/check <ip>; left out: jailwarden has no ignorecommand"
        );
        assert_eq!(
            r.counts(Some("sshd")),
            Counts {
                carried: 1,
                translated: 0,
                fell_back: 0,
                left_out: 1
            }
        );
        assert!(
            r.table(&["sshd".into()])
                .contains("sshd             1           0          0         1")
        );
    }
}
