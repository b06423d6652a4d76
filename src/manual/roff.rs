//! Writing roff by hand for the prose, with escaping for generated text.

use crate::config::keys::{Applies, Key, Section};

/// Escape text for a roff text line: backslashes, hyphens (so they are
/// not hyphenation points and copy as ASCII '-'), and a leading control
/// character.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\e"),
            '-' => out.push_str("\\-"),
            '\'' => out.push_str("\\(aq"),
            '"' => out.push_str("\\(dq"),
            '~' => out.push_str("\\(ti"),
            '^' => out.push_str("\\(ha"),
            '`' => out.push_str("\\(ga"),
            c => out.push(c),
        }
    }
    if out.starts_with('.') {
        out.insert_str(0, "\\&");
    }
    out
}

/// `.TH` and NAME.
pub fn header(title: &str, section: &str, name: &str, what: &str) -> String {
    format!(
        ".TH {title} {section} \"{}\" \"{}\" \"{}\"\n.SH NAME\n{} \\- {}\n",
        super::date(),
        super::source(),
        if section == "8" {
            "System Administration"
        } else {
            "File Formats"
        },
        esc(name),
        esc(what)
    )
}

/// A key table as `.TP` entries: name = example, default, meaning.
pub fn section(out: &mut String, s: &Section) {
    out.push_str(&format!(".SS {}\n", esc(s.title)));
    out.push_str(&format!("{}\n", esc(s.intro)));
    for k in s.keys {
        key(out, k, s.title == "[daemon]");
    }
}

fn key(out: &mut String, k: &Key, show_applies: bool) {
    out.push_str(".TP\n");
    out.push_str(&format!(
        "\\fB{}\\fR = \\fI{}\\fR\n",
        esc(k.name),
        esc(k.example)
    ));
    let applies = match (show_applies, k.applies) {
        (true, Applies::AtStart) => "; at start",
        _ => "",
    };
    out.push_str(&format!(
        "{}\n.br\nDefault: {}{applies}.\n",
        esc(k.meaning),
        esc(k.default)
    ));
}

/// Paragraphs of plain text (blank lines separate them), escaped.
pub fn paragraphs(out: &mut String, text: &str) {
    for (i, p) in text.trim().split("\n\n").enumerate() {
        if i > 0 {
            out.push_str(".PP\n");
        }
        for line in p.lines() {
            out.push_str(&esc(line.trim()));
            out.push('\n');
        }
    }
}

/// An indented, unfilled example.
pub fn example(out: &mut String, text: &str) {
    if !out
        .lines()
        .last()
        .is_some_and(|l| l.starts_with(".SH ") || l.starts_with(".SS "))
    {
        out.push_str(".PP\n");
    }
    out.push_str(".RS 4\n.EX\n");
    for line in text.trim_matches('\n').lines() {
        out.push_str(&esc(line));
        out.push('\n');
    }
    out.push_str(".EE\n.RE\n");
}
