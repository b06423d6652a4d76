//! Fail2ban's patterns (Python `re` syntax with Fail2ban's `<HOST>`,
//! `<F-NAME>` tags) translated to jailwarden's templates (`regex`-crate
//! syntax, linear time).
//!
//! A pattern is parsed into a tree, a few idioms with an exact
//! linear-time equivalent are rewritten, and the tree is written out in
//! `regex` syntax. What has no exact equivalent is refused with the
//! reason, never run with a backtracker on attacker text:
//! backreferences, conditionals, atomic groups, possessive quantifiers,
//! and lookarounds other than the rewritten idioms.
//!
//! Exact rewrites (same lines match, same captures):
//! - a lookahead at the end of the pattern, `a(?=b)` → `a(?:b)`;
//! - a lookbehind at its start, `(?<=a)b` → `ab` (a search finds the same
//!   lines);
//! - a lookahead on one character before one character, `(?!")\S`,
//!   `(?:(?!,).)*` → the class difference `[\S&&[^"]]`, `(?:[^\n&&[^,]])*`;
//! - a negative lookahead on one character at the end, `a(?![\w.])` →
//!   `a(?:[^\w.]|\z)`, or on literal texts, `failed:(?! Connection lost| x)`
//!   → the rest of the line not starting with them (a trie; when the
//!   pattern's end is the line's end);
//! - a tempered token followed by its own text, `(?:(?! from ).)*? from ` →
//!   the text up to the first ` from ` (from the KMP automaton of the text,
//!   by state elimination: overlaps such as ` from from ` included).
//!
//! tests/import_reader.rs runs every rewrite against Python's `re` on
//! generated lines: the same lines match, with the same captures.
//!
//! Fail2ban's tags: `<HOST>`, `<ADDR>`, `<F-NAME>…</F-NAME>` are ours too;
//! `<IP4>`/`<IP6>` become `<ADDR>` (both families: noted), `<DNS>`
//! becomes `<HOST>`; `<F-ID/>`, `<F-PORT/>` named captures; `<F-MLFID>` the
//! session; `<F-NOFAIL>`, `<F-MLFFORGET>`, `<F-MLFGAINED>` the pattern's
//! role (noted: multi-line stories are told our way); `<SKIPLINES>`,
//! `<CIDR>`, `<SUBNET>` are refused. `(?P<host>...)` becomes `<HOST>`,
//! other `(?P<name>...)` the capture `<F-NAME>` (names starting with `_`
//! or `cond_` only serve backreferences: plain groups).

use crate::filter::def::Role;

/// Where a translated pattern will be used.
#[derive(Debug, Clone, Copy, Default)]
pub struct Context {
    /// The end of what the pattern sees is the end of the line (no
    /// prefregex, or one whose `</F-CONTENT>` ends the line): `\z` may
    /// stand for it.
    pub end_is_line_end: bool,
}

/// A translated pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern {
    /// jailwarden template syntax.
    pub text: String,
    pub role: Role,
    /// Every rewrite made, for the report.
    pub notes: Vec<String>,
    /// Whether every rewrite is exact (same lines, same captures).
    pub exact: bool,
}

#[derive(Debug, Clone, PartialEq)]
enum ClassItem {
    Char(char),
    Range(char, char),
    /// `\d \D \w \W \s \S`
    Perl(char),
}

#[derive(Debug, Clone, PartialEq)]
struct Class {
    negated: bool,
    items: Vec<ClassItem>,
}

#[derive(Debug, Clone, PartialEq)]
enum GroupKind {
    NonCapture,
    Capture(Option<String>),
    /// `(?i:...)`: flags to turn on and off.
    Flags(String),
}

#[derive(Debug, Clone, PartialEq)]
enum Node {
    Empty,
    Lit(char),
    Dot,
    Class(Class),
    /// `^ $ \A \Z \b \B` as regex-crate text.
    Assert(&'static str),
    Group(GroupKind, Box<Node>),
    Look {
        ahead: bool,
        neg: bool,
        body: Box<Node>,
    },
    Backref(String),
    Cond(String),
    Atomic(Box<Node>),
    Repeat {
        node: Box<Node>,
        min: u32,
        max: Option<u32>,
        greedy: bool,
        possessive: bool,
    },
    Seq(Vec<Node>),
    Alt(Vec<Node>),
    /// A Fail2ban tag as written inside `<...>`.
    Tag(String),
    /// Global flags at the start, e.g. `(?i)`.
    GlobalFlags(String),
    /// Finished regex text standing for one character (a class made by a
    /// rewrite).
    Raw(String),
}

struct Parser<'a> {
    s: &'a str,
    i: usize,
    verbose: bool,
}

/// Fail2ban's R_GLOB2LOCFLAGS: `((?i)...)` and `(?:(?i)...)` are the
/// scoped `(?i:...)` (Python 3.11 refuses global flags in the middle).
fn local_flags(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'(' && (i == 0 || b[i - 1] != b'\\') {
            let mut j = i + 1;
            if s[j..].starts_with("?:") {
                j += 2;
            }
            if s[j..].starts_with("(?") {
                let k = j + 2;
                let end = s[k..]
                    .find(|c: char| !c.is_ascii_lowercase())
                    .map_or(s.len(), |e| k + e);
                if end > k && s[end..].starts_with(')') {
                    out.push_str(&s[j..end]);
                    out.push(':');
                    i = end + 1;
                    continue;
                }
            }
        }
        let c = s[i..].chars().next().unwrap_or('\0');
        out.push(c);
        i += c.len_utf8();
    }
    out
}

/// Is `name` (inside `<...>`) a tag Fail2ban replaces?
fn is_fail2ban_tag(name: &str) -> bool {
    matches!(
        name,
        "HOST"
            | "ADDR"
            | "IP4"
            | "IP6"
            | "DNS"
            | "CIDR"
            | "SUBNET"
            | "SKIPLINES"
            | "F-IP4/"
            | "F-IP6/"
            | "F-ADDR/"
            | "F-DNS/"
            | "F-CIDR/"
            | "F-SUBNET/"
            | "F-ID/"
            | "F-PORT/"
    ) || {
        let n = name.strip_prefix('/').unwrap_or(name);
        n.strip_prefix("F-").is_some_and(|r| {
            !r.is_empty()
                && r.bytes()
                    .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
        })
    }
}

impl<'a> Parser<'a> {
    fn peek(&self) -> Option<char> {
        self.s[self.i..].chars().next()
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.i += c.len_utf8();
        Some(c)
    }

    fn eat(&mut self, t: &str) -> bool {
        if self.s[self.i..].starts_with(t) {
            self.i += t.len();
            true
        } else {
            false
        }
    }

    fn err<T>(&self, what: impl Into<String>) -> Result<T, String> {
        Err(format!("{} (at offset {})", what.into(), self.i))
    }

    fn skip_verbose(&mut self) {
        if !self.verbose {
            return;
        }
        loop {
            match self.peek() {
                Some(c) if c.is_whitespace() => {
                    self.bump();
                }
                Some('#') => {
                    while let Some(c) = self.bump() {
                        if c == '\n' {
                            break;
                        }
                    }
                }
                _ => return,
            }
        }
    }

    fn alternation(&mut self, depth: usize) -> Result<Node, String> {
        if depth > 200 {
            return self.err("groups nested too deeply");
        }
        let mut alts = vec![self.sequence(depth)?];
        while self.eat("|") {
            alts.push(self.sequence(depth)?);
        }
        Ok(if alts.len() == 1 {
            alts.pop().unwrap_or(Node::Empty)
        } else {
            Node::Alt(alts)
        })
    }

    fn sequence(&mut self, depth: usize) -> Result<Node, String> {
        let mut items = Vec::new();
        loop {
            self.skip_verbose();
            match self.peek() {
                None | Some('|') | Some(')') => break,
                _ => {}
            }
            let atom = self.atom(depth)?;
            let atom = self.quantified(atom)?;
            items.push(atom);
        }
        Ok(match items.len() {
            0 => Node::Empty,
            1 => items.pop().unwrap_or(Node::Empty),
            _ => Node::Seq(items),
        })
    }

    fn quantified(&mut self, atom: Node) -> Result<Node, String> {
        self.skip_verbose();
        let (min, max) = match self.peek() {
            Some('*') => {
                self.bump();
                (0, None)
            }
            Some('+') => {
                self.bump();
                (1, None)
            }
            Some('?') => {
                self.bump();
                (0, Some(1))
            }
            Some('{') => match self.brace_quantifier() {
                Some(q) => q,
                None => return Ok(atom),
            },
            _ => return Ok(atom),
        };
        if matches!(
            atom,
            Node::Assert(_) | Node::Look { .. } | Node::Empty | Node::GlobalFlags(_)
        ) || matches!(atom, Node::Repeat { .. })
        {
            return self.err("nothing to repeat (or a repeated repeat)");
        }
        if let Some(m) = max {
            if m < min {
                return self.err("min repeat greater than max repeat");
            }
        }
        let greedy = !self.eat("?");
        let possessive = greedy && self.eat("+");
        Ok(Node::Repeat {
            node: Box::new(atom),
            min,
            max,
            greedy,
            possessive,
        })
    }

    /// `{m}`, `{m,}`, `{,n}`, `{m,n}`; anything else leaves `{` a literal.
    fn brace_quantifier(&mut self) -> Option<(u32, Option<u32>)> {
        let rest = &self.s[self.i..];
        let close = rest.find('}')?;
        let inner = &rest[1..close];
        let num = |t: &str| -> Option<u32> {
            (!t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()))
                .then(|| t.parse().ok())
                .flatten()
        };
        let q = match inner.split_once(',') {
            None => {
                let n = num(inner)?;
                (n, Some(n))
            }
            Some((a, b)) => {
                let min = if a.is_empty() { Some(0) } else { num(a) }?;
                let max = if b.is_empty() { None } else { Some(num(b)?) };
                (min, max)
            }
        };
        self.i += close + 1;
        Some(q)
    }

    fn atom(&mut self, depth: usize) -> Result<Node, String> {
        let start = self.i;
        let Some(c) = self.bump() else {
            return self.err("unexpected end");
        };
        Ok(match c {
            '.' => Node::Dot,
            '^' => Node::Assert("^"),
            '$' => Node::Assert("$"),
            '[' => Node::Class(self.class()?),
            '(' => self.group(depth)?,
            '\\' => self.escape()?,
            '<' => {
                // A Fail2ban tag: </?[\w\-]+/?>
                let rest = &self.s[self.i..];
                if let Some(end) = rest.find('>') {
                    let name = &rest[..end];
                    if is_fail2ban_tag(name) {
                        self.i += end + 1;
                        return Ok(Node::Tag(name.to_string()));
                    }
                }
                Node::Lit('<')
            }
            '*' | '+' | '?' => {
                self.i = start;
                return self.err("nothing to repeat");
            }
            '{' => Node::Lit('{'),
            c => Node::Lit(c),
        })
    }

    fn group(&mut self, depth: usize) -> Result<Node, String> {
        if self.eat("?") {
            if self.eat(":") {
                return self.close(GroupKind::NonCapture, depth);
            }
            if self.eat("P<")
                || (self.s[self.i..].starts_with('<')
                    && !self.s[self.i..].starts_with("<=")
                    && !self.s[self.i..].starts_with("<!")
                    && self.eat("<"))
            {
                let end = self.s[self.i..]
                    .find('>')
                    .ok_or_else(|| "unterminated group name".to_string())?;
                let name = self.s[self.i..self.i + end].to_string();
                if name.is_empty() || !name.chars().all(|c| c.is_alphanumeric() || c == '_') {
                    return self.err(format!("bad group name {name:?}"));
                }
                self.i += end + 1;
                return self.close(GroupKind::Capture(Some(name)), depth);
            }
            if self.eat("P=") {
                let end = self.s[self.i..]
                    .find(')')
                    .ok_or_else(|| "unterminated backreference".to_string())?;
                let name = self.s[self.i..self.i + end].to_string();
                self.i += end + 1;
                return Ok(Node::Backref(name));
            }
            for (t, ahead, neg) in [
                ("=", true, false),
                ("!", true, true),
                ("<=", false, false),
                ("<!", false, true),
            ] {
                if self.eat(t) {
                    let body = self.alternation(depth + 1)?;
                    if !self.eat(")") {
                        return self.err("missing ), unterminated subpattern");
                    }
                    return Ok(Node::Look {
                        ahead,
                        neg,
                        body: Box::new(body),
                    });
                }
            }
            if self.eat("#") {
                let end = self.s[self.i..]
                    .find(')')
                    .ok_or_else(|| "unterminated comment".to_string())?;
                self.i += end + 1;
                return Ok(Node::Empty);
            }
            if self.eat("(") {
                let end = self.s[self.i..]
                    .find(')')
                    .ok_or_else(|| "unterminated condition".to_string())?;
                let id = self.s[self.i..self.i + end].to_string();
                self.i += end + 1;
                // Parse (and drop) the branches to find the group's end.
                let _ = self.alternation(depth + 1)?;
                if !self.eat(")") {
                    return self.err("missing ), unterminated conditional");
                }
                return Ok(Node::Cond(id));
            }
            if self.eat(">") {
                let body = self.alternation(depth + 1)?;
                if !self.eat(")") {
                    return self.err("missing ), unterminated atomic group");
                }
                return Ok(Node::Atomic(Box::new(body)));
            }
            // Flags: (?aiLmsux) or (?aiLmsux-imsx:...)
            let st = self.i;
            while self.peek().is_some_and(|c| "aiLmsux-".contains(c)) {
                self.bump();
            }
            let flags = self.s[st..self.i].to_string();
            if flags.is_empty() {
                return self.err("unknown extension (?");
            }
            if self.eat(")") {
                if st != 2 {
                    return self.err("global flags not at the start of the expression");
                }
                if flags.contains('x') {
                    self.verbose = true;
                }
                return Ok(Node::GlobalFlags(flags));
            }
            if self.eat(":") {
                return self.close(GroupKind::Flags(flags), depth);
            }
            return self.err("unknown flag");
        }
        self.close(GroupKind::Capture(None), depth)
    }

    fn close(&mut self, kind: GroupKind, depth: usize) -> Result<Node, String> {
        let body = self.alternation(depth + 1)?;
        if !self.eat(")") {
            return self.err("missing ), unterminated subpattern");
        }
        Ok(Node::Group(kind, Box::new(body)))
    }

    fn escape(&mut self) -> Result<Node, String> {
        let Some(c) = self.bump() else {
            return self.err("bad escape (end of pattern)");
        };
        Ok(match c {
            'd' | 'D' | 'w' | 'W' | 's' | 'S' => Node::Class(Class {
                negated: false,
                items: vec![ClassItem::Perl(c)],
            }),
            'A' => Node::Assert(r"\A"),
            'Z' => Node::Assert(r"\z"),
            'b' => Node::Assert(r"\b"),
            'B' => Node::Assert(r"\B"),
            '1'..='9' => {
                // octal if three octal digits, else a group reference
                let st = self.i - 1;
                while self.peek().is_some_and(|d| d.is_ascii_digit()) && self.i - st < 3 {
                    self.bump();
                }
                let digits = &self.s[st..self.i];
                if digits.len() == 3 && digits.bytes().all(|b| (b'0'..=b'7').contains(&b)) {
                    Node::Lit(
                        char::from_u32(u32::from_str_radix(digits, 8).unwrap_or(0)).unwrap_or('\0'),
                    )
                } else {
                    self.i = st + 1;
                    while self.peek().is_some_and(|d| d.is_ascii_digit()) && self.i - st < 2 {
                        self.bump();
                    }
                    Node::Backref(self.s[st..self.i].to_string())
                }
            }
            _ => Node::Lit(self.char_escape(c)?),
        })
    }

    /// An escape that stands for one character (outside and inside classes).
    fn char_escape(&mut self, c: char) -> Result<char, String> {
        Ok(match c {
            'n' => '\n',
            't' => '\t',
            'r' => '\r',
            'f' => '\x0c',
            'v' => '\x0b',
            'a' => '\x07',
            '0' => {
                let st = self.i;
                while self.peek().is_some_and(|d| ('0'..='7').contains(&d)) && self.i - st < 2 {
                    self.bump();
                }
                char::from_u32(u32::from_str_radix(&self.s[st..self.i], 8).unwrap_or(0))
                    .unwrap_or('\0')
            }
            'x' => self.hex(2)?,
            'u' => self.hex(4)?,
            'U' => self.hex(8)?,
            'N' => return self.err(r"\N{...} names are not supported"),
            c if c.is_ascii_alphanumeric() => return self.err(format!("bad escape \\{c}")),
            c => c,
        })
    }

    fn hex(&mut self, n: usize) -> Result<char, String> {
        let t = self.s.get(self.i..self.i + n).unwrap_or("");
        if t.len() != n || !t.bytes().all(|b| b.is_ascii_hexdigit()) {
            return self.err("incomplete hex escape");
        }
        self.i += n;
        char::from_u32(u32::from_str_radix(t, 16).unwrap_or(0))
            .ok_or_else(|| "bad character code".to_string())
    }

    fn class(&mut self) -> Result<Class, String> {
        let negated = self.eat("^");
        let mut items = Vec::new();
        let mut first = true;
        loop {
            let Some(c) = self.bump() else {
                return self.err("unterminated character set");
            };
            if c == ']' && !first {
                break;
            }
            first = false;
            let lo = if c == '\\' {
                let Some(e) = self.bump() else {
                    return self.err("bad escape in a set");
                };
                match e {
                    'd' | 'D' | 'w' | 'W' | 's' | 'S' => {
                        items.push(ClassItem::Perl(e));
                        continue;
                    }
                    'b' => '\x08',
                    _ => self.char_escape(e)?,
                }
            } else {
                c
            };
            // a range?
            if self.s[self.i..].starts_with('-') && !self.s[self.i + 1..].starts_with(']') {
                let save = self.i;
                self.bump();
                let Some(h) = self.bump() else {
                    return self.err("unterminated character set");
                };
                let hi = if h == '\\' {
                    let Some(e) = self.bump() else {
                        return self.err("bad escape in a set");
                    };
                    if "dDwWsS".contains(e) {
                        self.i = save;
                        items.push(ClassItem::Char(lo));
                        continue;
                    }
                    if e == 'b' {
                        '\x08'
                    } else {
                        self.char_escape(e)?
                    }
                } else {
                    h
                };
                if hi < lo {
                    return self.err("bad character range");
                }
                items.push(ClassItem::Range(lo, hi));
                continue;
            }
            items.push(ClassItem::Char(lo));
        }
        Ok(Class { negated, items })
    }
}

fn parse(py: &str) -> Result<Node, String> {
    let text = local_flags(py);
    let mut p = Parser {
        s: &text,
        i: 0,
        verbose: false,
    };
    let node = p.alternation(0)?;
    if p.i < text.len() {
        return p.err("unbalanced parenthesis");
    }
    Ok(node)
}

/// One character, or a set of them?
fn single_char(n: &Node) -> bool {
    matches!(n, Node::Lit(_) | Node::Dot | Node::Class(_) | Node::Raw(_))
        || matches!(n, Node::Group(GroupKind::NonCapture, b) if single_char(b))
}

/// A single-character node as class syntax (without brackets' negation
/// applied twice): returns the inside of a `[...]`.
fn class_body(n: &Node) -> Option<String> {
    match n {
        Node::Lit(c) => Some(class_char(*c)),
        Node::Dot => Some(r"^\n".to_string()),
        Node::Class(c) => {
            let inner: String = c.items.iter().map(item_text).collect();
            Some(if c.negated {
                format!("^{inner}")
            } else {
                inner
            })
        }
        Node::Group(GroupKind::NonCapture, b) => class_body(b),
        _ => None,
    }
}

fn class_char(c: char) -> String {
    match c {
        '[' | ']' | '\\' | '^' | '-' | '&' | '~' => format!("\\{c}"),
        c if (c as u32) < 0x20 || c as u32 == 0x7f => format!("\\x{{{:x}}}", c as u32),
        c => c.to_string(),
    }
}

fn item_text(i: &ClassItem) -> String {
    match i {
        ClassItem::Char(c) => class_char(*c),
        ClassItem::Range(a, b) => format!("{}-{}", class_char(*a), class_char(*b)),
        ClassItem::Perl(p) => format!("\\{p}"),
    }
}

/// `[A&&[^B]]` etc. as a node standing for one character.
fn class_op(a: &Node, b: &Node, keep: bool) -> Option<Node> {
    let a = class_body(a)?;
    let b = class_body(b)?;
    let b = if keep { b } else { negate_body(&b) };
    Some(Node::Raw(format!("[[{a}]&&[{b}]]")))
}

fn negate_body(b: &str) -> String {
    match b.strip_prefix('^') {
        Some(rest) => rest.to_string(),
        None => format!("^{b}"),
    }
}

struct Rewriter<'c> {
    ctx: &'c Context,
    notes: Vec<String>,
    exact: bool,
}

impl Rewriter<'_> {
    /// Rewrite lookarounds; `tail`: the node is at the end of the pattern.
    fn node(&mut self, n: Node, tail: bool, head: bool) -> Result<Node, String> {
        Ok(match n {
            Node::Seq(items) => Node::Seq(self.seq(items, tail, head)?),
            Node::Alt(alts) => {
                let alts: Vec<Node> = alts
                    .into_iter()
                    .map(|a| self.node(a, tail, head))
                    .collect::<Result<_, _>>()?;
                factor_hosts(alts)
            }
            Node::Group(k, b) => {
                let inner_tail = tail;
                Node::Group(k, Box::new(self.node(*b, inner_tail, head)?))
            }
            Node::Repeat {
                node,
                min,
                max,
                greedy,
                possessive,
            } => {
                if possessive {
                    return Err("a possessive quantifier (no linear-time equivalent)".into());
                }
                Node::Repeat {
                    node: Box::new(self.node(*node, false, false)?),
                    min,
                    max,
                    greedy,
                    possessive,
                }
            }
            Node::Look { ahead, neg, body } => {
                let mut items = vec![Node::Look { ahead, neg, body }];
                let out = self.seq(std::mem::take(&mut items), tail, head)?;
                match out.len() {
                    0 => Node::Empty,
                    1 => out.into_iter().next().unwrap_or(Node::Empty),
                    _ => Node::Seq(out),
                }
            }
            Node::Backref(name) => {
                return Err(format!(
                    "a backreference to group {name:?} (no linear-time equivalent)"
                ));
            }
            Node::Cond(id) => {
                return Err(format!(
                    "a conditional (?({id})...) (no linear-time equivalent)"
                ));
            }
            Node::Atomic(_) => {
                return Err("an atomic group (?>...) (no linear-time equivalent)".into());
            }
            other => other,
        })
    }

    fn seq(&mut self, items: Vec<Node>, tail: bool, head: bool) -> Result<Vec<Node>, String> {
        let n = items.len();
        let mut items = items;
        // Tempered tokens followed by their literal: (?:(?!L).)*L
        for i in 0..items.len() {
            let follow = following_literal(&items[i + 1..]);
            if follow.is_empty() {
                continue;
            }
            if rewrite_tempered(&mut items[i], &follow) {
                self.notes.push(
                    "the tempered token (?:(?!...).)* before the same text became a pattern of the text up to its first occurrence"
                        .into(),
                );
            }
        }
        let mut out: Vec<Node> = Vec::with_capacity(n);
        let mut it = items.into_iter().enumerate().peekable();
        while let Some((i, item)) = it.next() {
            let is_last = i + 1 == n;
            let is_first = i == 0 && head;
            match item {
                Node::Look { ahead, neg, body } => {
                    let body = *body;
                    // One character checked before one character consumed.
                    if ahead && single_char(&body) {
                        if let Some((_, next)) = it.peek() {
                            if single_char(next) {
                                if let Some(c) = class_op(next, &body, !neg) {
                                    it.next();
                                    self.notes.push(format!(
                                        "the {} before one character became a class difference",
                                        describe_look(true, neg)
                                    ));
                                    out.push(c);
                                    continue;
                                }
                            }
                        }
                    }
                    if ahead && !neg && is_last && tail {
                        self.notes
                            .push("the lookahead (?=...) at the end became a plain group".into());
                        out.push(Node::Group(
                            GroupKind::NonCapture,
                            Box::new(self.node(body, true, false)?),
                        ));
                        continue;
                    }
                    if ahead && neg && is_last && tail && self.ctx.end_is_line_end {
                        if let Some(alts) =
                            literal_alternatives(&body).filter(|a| a.iter().all(|x| x.len() > 1))
                        {
                            self.notes.push(
                                "the negative lookahead (?!text|...) at the end became a pattern of the rest of the line not starting with that text"
                                    .into(),
                            );
                            out.push(Node::Raw(not_prefix(&alts)));
                            continue;
                        }
                        if let Some(b) = class_body(&body) {
                            self.notes.push(
                                "the negative lookahead (?!...) on one character at the end became (?:[^...]|\\z)"
                                    .into(),
                            );
                            out.push(Node::Group(
                                GroupKind::NonCapture,
                                Box::new(Node::Alt(vec![
                                    Node::Raw(format!("[{}]", negate_body(&b))),
                                    Node::Assert(r"\z"),
                                ])),
                            ));
                            continue;
                        }
                    }
                    if !ahead && !neg && is_first && fixed_width(&body) {
                        self.notes.push(
                            "the lookbehind (?<=...) at the start became part of the match".into(),
                        );
                        out.push(Node::Group(
                            GroupKind::NonCapture,
                            Box::new(self.node(body, false, false)?),
                        ));
                        continue;
                    }
                    return Err(format!(
                        "a {} here (no linear-time equivalent)",
                        describe_look(ahead, neg)
                    ));
                }
                other => {
                    out.push(self.node(other, tail && is_last, is_first)?);
                }
            }
        }
        Ok(out)
    }
}

fn is_host_tag(n: &Node) -> bool {
    matches!(n, Node::Tag(t) if matches!(t.as_str(), "HOST" | "ADDR" | "IP4" | "IP6" | "DNS" | "F-IP4/" | "F-IP6/" | "F-ADDR/" | "F-DNS/"))
}

fn count_hosts(n: &Node) -> usize {
    match n {
        n if is_host_tag(n) => 1,
        Node::Seq(v) | Node::Alt(v) => v.iter().map(count_hosts).sum(),
        Node::Group(_, b) | Node::Atomic(b) => count_hosts(b),
        Node::Repeat { node, .. } => count_hosts(node),
        _ => 0,
    }
}

/// `IPv6:<IP6>|<IP4>`: alternatives that each end with the host become
/// one host after the alternatives, `(?:IPv6:|)<ADDR>` (jailwarden's
/// patterns have one host; `<ADDR>` takes both families anyway).
fn factor_hosts(alts: Vec<Node>) -> Node {
    let ends_with_host = |a: &Node| match a {
        n if is_host_tag(n) => true,
        Node::Seq(v) => {
            v.last().is_some_and(is_host_tag)
                && v.iter().filter(|x| count_hosts(x) > 0).count() == 1
        }
        _ => false,
    };
    if alts.len() < 2 || !alts.iter().all(ends_with_host) {
        return Node::Alt(alts);
    }
    let mut host = "ADDR";
    let mut prefixes = Vec::new();
    for a in alts {
        let (prefix, tag) = match a {
            Node::Seq(mut v) => {
                let tag = v.pop();
                (Node::Seq(v), tag)
            }
            t => (Node::Empty, Some(t)),
        };
        if let Some(Node::Tag(t)) = tag {
            if matches!(t.as_str(), "HOST" | "DNS" | "F-DNS/") {
                host = "HOST";
            }
        }
        prefixes.push(prefix);
    }
    Node::Seq(vec![
        Node::Group(GroupKind::NonCapture, Box::new(Node::Alt(prefixes))),
        Node::Tag(host.to_string()),
    ])
}

/// `abc`, `abc|de`, `(?:abc|de)`: the literal alternatives.
fn literal_alternatives(n: &Node) -> Option<Vec<Vec<char>>> {
    let one = |n: &Node| -> Option<Vec<char>> {
        match n {
            Node::Lit(c) => Some(vec![*c]),
            Node::Seq(v) => v
                .iter()
                .map(|x| match x {
                    Node::Lit(c) => Some(*c),
                    _ => None,
                })
                .collect(),
            _ => None,
        }
    };
    match n {
        Node::Alt(v) => v.iter().map(one).collect(),
        Node::Group(GroupKind::NonCapture | GroupKind::Capture(None), b) => literal_alternatives(b),
        other => one(other).map(|x| vec![x]),
    }
}

/// The rest of the line, not starting with any of `alts`: a trie of them,
/// `(?:\z|[^ab].*|a(?:...)|b(?:...))`.
fn not_prefix(alts: &[Vec<char>]) -> String {
    if alts.iter().any(|a| a.is_empty()) {
        return r"[^\s\S]".to_string(); // everything starts with the empty text
    }
    let mut firsts: Vec<char> = alts.iter().map(|a| a[0]).collect();
    firsts.sort_unstable();
    firsts.dedup();
    let mut parts = vec![r"\z".to_string()];
    let set: String = firsts.iter().map(|c| class_char(*c)).collect();
    parts.push(format!("[^{set}].*"));
    for c in firsts {
        let tails: Vec<Vec<char>> = alts
            .iter()
            .filter(|a| a[0] == c)
            .map(|a| a[1..].to_vec())
            .collect();
        parts.push(format!("{}{}", lit(c), not_prefix(&tails)));
    }
    format!("(?:{})", parts.join("|"))
}

/// The literal text the items start with, through zero-width capture
/// tags (`</F-USER> from ` gives " from ").
fn following_literal(items: &[Node]) -> Vec<char> {
    let mut out = Vec::new();
    for it in items {
        match it {
            Node::Tag(t)
                if (t.starts_with("F-") || t.starts_with("/F-"))
                    && !t.ends_with('/')
                    && out.is_empty() => {}
            Node::Lit(c) => out.push(*c),
            _ => break,
        }
    }
    out
}

/// `(?:(?!L)D)*` (D one character): `Some((L, D, at_least_one))`.
fn tempered_parts(n: &Node) -> Option<(Vec<char>, &Node, bool)> {
    let Node::Repeat {
        node,
        min,
        max: None,
        possessive: false,
        ..
    } = n
    else {
        return None;
    };
    if *min > 1 {
        return None;
    }
    let Node::Group(GroupKind::NonCapture | GroupKind::Capture(None), body) = &**node else {
        return None;
    };
    let Node::Seq(v) = &**body else {
        return None;
    };
    let [
        Node::Look {
            ahead: true,
            neg: true,
            body: look,
        },
        d,
    ] = v.as_slice()
    else {
        return None;
    };
    if !single_char(d) {
        return None;
    }
    let lit: Vec<char> = match &**look {
        Node::Lit(c) => vec![*c],
        Node::Seq(items) => items
            .iter()
            .map(|x| match x {
                Node::Lit(c) => Some(*c),
                _ => None,
            })
            .collect::<Option<Vec<char>>>()?,
        _ => return None,
    };
    (lit.len() >= 2).then_some((lit, d, *min == 1))
}

/// Rewrite a tempered token (or a group ending with one) followed by
/// text starting with its own lookahead's literal.
fn rewrite_tempered(n: &mut Node, follow: &[char]) -> bool {
    if let Some((lit, d, plus)) = tempered_parts(n) {
        if follow.len() >= lit.len() && follow[..lit.len()] == lit[..] {
            if let Some(re) = first_occurrence_regex(&lit, d, plus) {
                *n = Node::Raw(re);
                return true;
            }
        }
        return false;
    }
    match n {
        Node::Group(GroupKind::NonCapture | GroupKind::Capture(_), body) => match &mut **body {
            Node::Seq(v) => v
                .last_mut()
                .is_some_and(|last| rewrite_tempered(last, follow)),
            other => rewrite_tempered(other, follow),
        },
        _ => false,
    }
}

/// The strings s (of characters in D) such that in s·L the first
/// occurrence of L starts at |s|, as a regex: what `(?:(?!L)D)*` matches
/// when L follows. Built from the KMP automaton of L by state elimination.
fn first_occurrence_regex(lit: &[char], d: &Node, plus: bool) -> Option<String> {
    let body = class_body(d)?;
    let member = regex::Regex::new(&format!("^[{body}]$")).ok()?;
    let m = lit.len();
    if m > 16 {
        return None;
    }
    let in_d = |c: char| member.is_match(c.encode_utf8(&mut [0u8; 4]));
    // Symbols: L's distinct characters that D allows, and "any other of D".
    let mut symbols: Vec<(Option<char>, String)> = Vec::new();
    for &c in lit {
        if in_d(c) && !symbols.iter().any(|(s, _)| *s == Some(c)) {
            symbols.push((Some(c), lit_text(c)));
        }
    }
    let chars: String = lit.iter().map(|c| class_char(*c)).collect();
    symbols.push((None, format!("[[{body}]&&[^{chars}]]")));
    // KMP: the longest prefix of L that is a suffix of L[..q] + c.
    let delta = |q: usize, c: Option<char>| -> usize {
        let Some(c) = c else { return 0 };
        let mut w: Vec<char> = lit[..q].to_vec();
        w.push(c);
        (0..=w.len().min(m))
            .rev()
            .find(|&k| w[w.len() - k..] == lit[..k])
            .unwrap_or(0)
    };
    let accepting = |q: usize| -> bool {
        let mut s = q;
        for (k, &c) in lit.iter().enumerate() {
            s = delta(s, Some(c));
            if s == m {
                return k + 1 == m;
            }
        }
        false
    };
    // States 0..m (KMP, m itself excluded: s may not contain L), with a
    // copy of the start for "at least one character" (+).
    let states = if plus { m + 1 } else { m };
    let start_state = if plus { m } else { 0 };
    let (s_idx, f_idx) = (states, states + 1);
    let size = states + 2;
    let mut r: Vec<Vec<Option<String>>> = vec![vec![None; size]; size];
    let union = |a: &Option<String>, b: &str| -> Option<String> {
        Some(match a {
            None => b.to_string(),
            Some(x) if x == b => x.clone(),
            Some(x) => format!("{x}|{b}"),
        })
    };
    for (q, row) in r.iter_mut().enumerate().take(states) {
        let kmp = if plus && q == m { 0 } else { q };
        for (sym, text) in &symbols {
            let t = delta(kmp, *sym);
            if t < m {
                row[t] = union(&row[t], text);
            }
        }
        if !(plus && q == m) && accepting(q) {
            row[f_idx] = Some(String::new());
        }
    }
    r[s_idx][start_state] = Some(String::new());
    let group = |x: &str| -> String {
        if x.is_empty() {
            String::new()
        } else {
            format!("(?:{x})")
        }
    };
    let mut alive: Vec<usize> = (0..size).collect();
    for k in 0..states {
        alive.retain(|&x| x != k);
        let lp = r[k][k]
            .clone()
            .map(|l| format!("(?:{l})*"))
            .unwrap_or_default();
        for &i in &alive {
            let Some(ik) = r[i][k].clone() else { continue };
            for &j in &alive {
                let Some(kj) = r[k][j].clone() else { continue };
                let path = format!("{}{lp}{}", group(&ik), group(&kj));
                r[i][j] = union(&r[i][j], &path);
            }
        }
        for row in r.iter_mut() {
            row[k] = None;
        }
        r[k] = vec![None; size];
    }
    let out = r[s_idx][f_idx].clone()?;
    (out.len() < 20_000).then(|| format!("(?:{out})"))
}

fn lit_text(c: char) -> String {
    lit(c)
}

fn describe_look(ahead: bool, neg: bool) -> &'static str {
    match (ahead, neg) {
        (true, false) => "lookahead (?=...)",
        (true, true) => "negative lookahead (?!...)",
        (false, false) => "lookbehind (?<=...)",
        (false, true) => "negative lookbehind (?<!...)",
    }
}

fn fixed_width(n: &Node) -> bool {
    match n {
        Node::Lit(_) | Node::Dot | Node::Class(_) | Node::Empty | Node::Assert(_) => true,
        Node::Seq(v) => v.iter().all(fixed_width),
        Node::Alt(v) => {
            let w: Vec<Option<usize>> = v.iter().map(width).collect();
            w.iter().all(|x| x.is_some() && *x == w[0])
        }
        Node::Group(_, b) => fixed_width(b),
        Node::Repeat { node, min, max, .. } => Some(*min) == *max && fixed_width(node),
        _ => false,
    }
}

fn width(n: &Node) -> Option<usize> {
    match n {
        Node::Lit(_) | Node::Dot | Node::Class(_) => Some(1),
        Node::Empty | Node::Assert(_) => Some(0),
        Node::Seq(v) => v.iter().map(width).sum(),
        Node::Alt(v) => {
            let w: Vec<Option<usize>> = v.iter().map(width).collect();
            if w.iter().all(|x| *x == w[0]) {
                w[0]
            } else {
                None
            }
        }
        Node::Group(_, b) => width(b),
        Node::Repeat { node, min, max, .. } if Some(*min) == *max => {
            width(node).map(|w| w * *min as usize)
        }
        _ => None,
    }
}

struct Emitter {
    out: String,
    role: Option<Role>,
    notes: Vec<String>,
    exact: bool,
    /// Inside an alternative, a repeat or an optional part: a role tag
    /// there does not apply to every match.
    conditional_depth: usize,
    /// Host tags written.
    hosts: usize,
}

impl Emitter {
    fn note(&mut self, s: impl Into<String>, exact: bool) {
        let s = s.into();
        if !self.notes.contains(&s) {
            self.notes.push(s);
        }
        if !exact {
            self.exact = false;
        }
    }

    fn emit(&mut self, n: &Node) -> Result<(), String> {
        match n {
            Node::Empty => {}
            Node::GlobalFlags(f) => {
                let f: String = f
                    .chars()
                    .filter(|c| "imsx".contains(*c))
                    .filter(|c| *c != 'x')
                    .collect();
                if !f.is_empty() {
                    self.out.push_str(&format!("(?{f})"));
                }
            }
            Node::Lit(c) => self.out.push_str(&lit(*c)),
            Node::Dot => self.out.push('.'),
            Node::Class(c) => {
                if c.items.len() == 1 && !c.negated {
                    if let ClassItem::Perl(p) = c.items[0] {
                        self.out.push('\\');
                        self.out.push(p);
                        return Ok(());
                    }
                }
                self.out.push('[');
                if c.negated {
                    self.out.push('^');
                }
                for i in &c.items {
                    self.out.push_str(&item_text(i));
                }
                self.out.push(']');
            }
            Node::Assert(a) => self.out.push_str(a),
            Node::Raw(t) => self.out.push_str(t),
            Node::Group(kind, body) => match kind {
                GroupKind::NonCapture | GroupKind::Capture(None) => {
                    self.out.push_str("(?:");
                    self.emit(body)?;
                    self.out.push(')');
                }
                GroupKind::Flags(f) => {
                    let f: String = f.chars().filter(|c| "imsx-".contains(*c)).collect();
                    let f = f.trim_end_matches('-');
                    if f.is_empty() {
                        self.out.push_str("(?:");
                    } else {
                        self.out.push_str(&format!("(?{f}:"));
                    }
                    self.emit(body)?;
                    self.out.push(')');
                }
                GroupKind::Capture(Some(name)) => self.named(name, body)?,
            },
            Node::Repeat {
                node,
                min,
                max,
                greedy,
                ..
            } => {
                self.conditional_depth += usize::from(*min == 0 || *max != Some(*min));
                let atomic = matches!(
                    **node,
                    Node::Lit(_) | Node::Dot | Node::Class(_) | Node::Group(..) | Node::Raw(_)
                ) && !matches!(&**node, Node::Lit('<'));
                if !atomic {
                    self.out.push_str("(?:");
                }
                self.emit(node)?;
                if !atomic {
                    self.out.push(')');
                }
                self.conditional_depth -= usize::from(*min == 0 || *max != Some(*min));
                let q = match (min, max) {
                    (0, None) => "*".to_string(),
                    (1, None) => "+".to_string(),
                    (0, Some(1)) => "?".to_string(),
                    (m, None) => format!("{{{m},}}"),
                    (m, Some(x)) if m == x => format!("{{{m}}}"),
                    (m, Some(x)) => format!("{{{m},{x}}}"),
                };
                self.out.push_str(&q);
                if !greedy {
                    self.out.push('?');
                }
            }
            Node::Seq(items) => {
                for i in items {
                    self.emit(i)?;
                }
            }
            Node::Alt(alts) => {
                self.conditional_depth += 1;
                for (i, a) in alts.iter().enumerate() {
                    if i > 0 {
                        self.out.push('|');
                    }
                    self.emit(a)?;
                }
                self.conditional_depth -= 1;
            }
            Node::Tag(t) => self.tag(t)?,
            Node::Look { ahead, neg, .. } => {
                return Err(format!(
                    "a {} (no linear-time equivalent)",
                    describe_look(*ahead, *neg)
                ));
            }
            Node::Backref(n) => return Err(format!("a backreference to group {n:?}")),
            Node::Cond(id) => return Err(format!("a conditional (?({id})...)")),
            Node::Atomic(_) => return Err("an atomic group (?>...)".into()),
        }
        Ok(())
    }

    fn named(&mut self, name: &str, body: &Node) -> Result<(), String> {
        match name {
            "host" | "dns" => {
                self.out.push_str("<HOST>");
                self.note(
                    format!("(?P<{name}>...) became <HOST> (an address or host name, as jailwarden recognises them)"),
                    false,
                );
            }
            "ip4" | "ip6" => {
                self.out.push_str("<ADDR>");
                self.note(
                    format!("(?P<{name}>...) became <ADDR> (IPv4 or IPv6)"),
                    false,
                );
            }
            n if n.starts_with('_') || n.starts_with("cond_") => {
                self.out.push_str("(?:");
                self.emit(body)?;
                self.out.push(')');
            }
            n => {
                let upper = match n {
                    "fid" => "ID".to_string(),
                    "fport" => "PORT".to_string(),
                    other => other.to_uppercase(),
                };
                self.out.push_str(&format!("<F-{upper}>"));
                self.emit(body)?;
                self.out.push_str(&format!("</F-{upper}>"));
            }
        }
        Ok(())
    }

    fn set_role(&mut self, role: Role, tag: &str) -> Result<(), String> {
        if self.conditional_depth > 0 {
            return Err(format!(
                "<{tag}> inside an alternative or optional part (it marks only some matches: jailwarden gives a pattern one role)"
            ));
        }
        // close + note stays close; note + success: the later wins.
        self.role = Some(match (self.role, role) {
            (Some(Role::Close), _) | (_, Role::Close) => Role::Close,
            (_, r) => r,
        });
        self.note(
            format!(
                "<{tag}> became role \"{}\" (multi-line stories are told jailwarden's way: check with test-filter)",
                self.role.map_or("fail", |r| r.name())
            ),
            false,
        );
        Ok(())
    }

    fn tag(&mut self, t: &str) -> Result<(), String> {
        if is_host_tag(&Node::Tag(t.to_string())) {
            self.hosts += 1;
            if self.hosts > 1 {
                return Err(format!(
                    "a second host tag <{t}> (a jailwarden pattern names one host)"
                ));
            }
        }
        match t {
            "HOST" => self.out.push_str("<HOST>"),
            "ADDR" | "F-ADDR/" => self.out.push_str("<ADDR>"),
            "IP4" | "IP6" | "F-IP4/" | "F-IP6/" => {
                self.out.push_str("<ADDR>");
                self.note(
                    format!("<{t}> became <ADDR> (either address family)"),
                    false,
                );
            }
            "DNS" | "F-DNS/" => {
                self.out.push_str("<HOST>");
                self.note(format!("<{t}> became <HOST> (addresses too)"), false);
            }
            "F-ID/" => self.out.push_str(r"<F-ID>\S+</F-ID>"),
            "F-PORT/" => self.out.push_str(r"<F-PORT>\w+</F-PORT>"),
            "SKIPLINES" => {
                return Err(
                    "<SKIPLINES> (a multi-line buffer: jailwarden matches one line at a time)"
                        .into(),
                );
            }
            "CIDR" | "SUBNET" | "F-CIDR/" | "F-SUBNET/" => {
                return Err(format!("<{t}> (bans of whole subnets named in a log line)"));
            }
            "F-NOFAIL" => {
                self.set_role(Role::Note, t)?;
                self.out.push_str("(?:");
            }
            "F-MLFFORGET" => {
                self.set_role(Role::Close, t)?;
                self.out.push_str("(?:");
            }
            "F-MLFGAINED" => {
                self.set_role(Role::Success, t)?;
                self.out.push_str("(?:");
            }
            "/F-NOFAIL" | "/F-MLFFORGET" | "/F-MLFGAINED" => self.out.push(')'),
            "F-MLFID" => {
                self.out.push_str("<F-SESSION>");
                self.note("<F-MLFID> became the session <F-SESSION>", false);
            }
            "/F-MLFID" => self.out.push_str("</F-SESSION>"),
            t if t.starts_with("F-") || t.starts_with("/F-") => {
                self.out.push('<');
                self.out.push_str(t);
                self.out.push('>');
            }
            t => return Err(format!("<{t}>")),
        }
        Ok(())
    }
}

/// A literal character in regex syntax; `<` is written `\x3c` so that it
/// can never be read as a template token.
fn lit(c: char) -> String {
    match c {
        '<' => r"\x3c".to_string(),
        '\\' | '.' | '+' | '*' | '?' | '(' | ')' | '|' | '[' | ']' | '{' | '}' | '^' | '$'
        | '#' | '&' | '-' | '~' => format!("\\{c}"),
        ' ' => " ".to_string(),
        c if (c as u32) < 0x20 || c as u32 == 0x7f => format!("\\x{{{:x}}}", c as u32),
        c => c.to_string(),
    }
}

/// Translate one Fail2ban pattern.
pub fn translate(py: &str, ctx: &Context) -> Result<Pattern, String> {
    let tree = parse(py)?;
    let mut rw = Rewriter {
        ctx,
        notes: Vec::new(),
        exact: true,
    };
    let tree = rw.node(tree, true, true)?;
    let mut em = Emitter {
        out: String::with_capacity(py.len() + 16),
        role: None,
        notes: rw.notes,
        exact: rw.exact,
        conditional_depth: 0,
        hosts: 0,
    };
    em.emit(&tree)?;
    Ok(Pattern {
        text: em.out,
        role: em.role.unwrap_or(Role::Fail),
        notes: em.notes,
        exact: em.exact,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tr(p: &str) -> Result<String, String> {
        translate(
            p,
            &Context {
                end_is_line_end: true,
            },
        )
        .map(|p| p.text)
    }

    fn expands(template: &str) -> String {
        let e = crate::filter::template::expand(template, &|_| None).expect("expands");
        regex_syntax::ParserBuilder::new()
            .unicode(false)
            .utf8(false)
            .build()
            .parse(&e.regex)
            .unwrap_or_else(|err| panic!("{template}: {err}"));
        e.regex
    }

    #[test]
    fn plain_patterns_keep_their_meaning() {
        for (py, ours) in [
            (
                r"^Failed \S+ for <F-USER>.*</F-USER> from <HOST>( port \d+)?$",
                r"^Failed \S+ for <F-USER>.*</F-USER> from <HOST>(?: port \d+)?$",
            ),
            (
                r"^a{,3}b{2}c{1,}d{2,}[]x-][^]] <ADDR>$",
                r"^a{0,3}b{2}c+d{2,}[\]x\-][^\]] <ADDR>$",
            ),
            (
                r"\<x\> <HOST> {literal} a{b",
                r"\x3cx> <HOST> \{literal\} a\{b",
            ),
            (
                r"SASL ((?i)LOGIN|PLAIN) failed from <HOST>\Z",
                r"SASL (?i:LOGIN|PLAIN) failed from <HOST>\z",
            ),
            (
                r"(?i)^user (?P<user>\w+) from (?P<host>\S+)",
                r"(?i)^user <F-USER>\w+</F-USER> from <HOST>",
            ),
            (
                r"^(\S+ )?\[(?:IPv6:<IP6>|<IP4>)\]: x$",
                r"^(?:\S+ )?\[(?:(?:IPv6:|)<ADDR>)\]: x$",
            ),
            (r"[&&~~-] \x41\u00e9\101 <HOST>", r"[\&\&\~\~\-] AéA <HOST>"),
        ] {
            let got = tr(py).unwrap();
            assert_eq!(got, ours, "{py}");
            expands(&got);
        }
    }

    #[test]
    fn exact_rewrites_of_lookarounds() {
        let p = translate(
            r"^auth failure for \S+ from <HOST>(?= port \d+)",
            &Context {
                end_is_line_end: true,
            },
        )
        .unwrap();
        assert_eq!(p.text, r"^auth failure for \S+ from <HOST>(?: port \d+)");
        assert!(p.exact && p.notes.len() == 1);
        assert_eq!(
            tr(r"(?<=user=)\S+ rhost=<HOST>").unwrap(),
            r"(?:user=)\S+ rhost=<HOST>"
        );
        assert_eq!(
            tr(r#"^"(?:(?!").)*" from <HOST>$"#).unwrap(),
            r#"^"(?:[[^\n]&&[^"]])*" from <HOST>$"#
        );
        assert_eq!(
            tr(r"from <HOST>(?![\w.])").unwrap(),
            r"from <HOST>(?:[^\w.]|\z)"
        );
        assert_eq!(tr(r"^x(?:a|b(?=c))").unwrap(), r"^x(?:a|b(?:c))");
        for t in [
            tr(r#"^"(?:(?!").)*" from <HOST>$"#).unwrap(),
            tr(r"from <HOST>(?![\w.])").unwrap(),
        ] {
            expands(&t);
        }
    }

    #[test]
    fn what_has_no_linear_equivalent_is_refused() {
        for (py, why) in [
            (r"^a (?!bc)d <HOST>", "negative lookahead"),
            (r"^(?P<q>['\x22])x(?P=q) <HOST>", "backreference"),
            (r"^(?P<c>a)?(?(c)b|d) <HOST>", "conditional"),
            (r"^(?>a+) <HOST>", "atomic"),
            (r"^a++ <HOST>", "possessive"),
            (r"^<HOST><SKIPLINES>x", "SKIPLINES"),
            (r"^x (?<=a)b <HOST>", "lookbehind"),
            (r"^x <HOST>(?=yy) z", "lookahead"),
            (r"^(?:<F-NOFAIL>a</F-NOFAIL>|b) <HOST>", "alternative"),
            (r"^(a <HOST>", "missing )"),
            (r"^\q <HOST>", "bad escape"),
        ] {
            let e = tr(py).unwrap_err();
            assert!(e.contains(why), "{py}: {e}");
        }
        // Without knowing that the end is the line's end, (?!x) at the end stays refused.
        assert!(translate(r"a <HOST>(?!\d)", &Context::default()).is_err());
    }

    #[test]
    fn roles_and_sessions_from_fail2ban_tags() {
        let p = translate(
            r"^<F-NOFAIL><F-MLFFORGET>Connection closed</F-MLFFORGET></F-NOFAIL> by <HOST>$",
            &Context::default(),
        )
        .unwrap();
        assert_eq!(p.role, Role::Close);
        assert_eq!(p.text, r"^(?:(?:Connection closed)) by <HOST>$");
        assert!(!p.exact);
        let p = translate(
            r"^<F-MLFID>\S+ sshd\[\d+\]:</F-MLFID> <F-CONTENT>.+</F-CONTENT>$",
            &Context::default(),
        )
        .unwrap();
        assert_eq!(
            p.text,
            r"^<F-SESSION>\S+ sshd\[\d+\]:</F-SESSION> <F-CONTENT>.+</F-CONTENT>$"
        );
        assert_eq!(
            tr("<F-ID/> <F-PORT/> <IP4>").unwrap(),
            r"<F-ID>\S+</F-ID> <F-PORT>\w+</F-PORT> <ADDR>"
        );
    }
}
