//! The filter engine: a log line or journal entry in, zero or one failure
//! out.
//!
//! A filter ([`def::FilterDef`], from `filters/<name>.toml`) is compiled for
//! one mode into a [`Filter`]: every failregex, with the prefregex around it
//! (the failregex takes the place of `<F-CONTENT>`), becomes one pattern of a
//! single multi-pattern `regex-automata` meta regex. A line costs one DFA
//! scan, usually dead after a few bytes; captures run only on lines that
//! match. A [`Matcher`] holds the per-thread caches, the date finder and
//! the multi-line [`session::Sessions`].
//!
//! **The host is the one the line's structure puts there.** Patterns are
//! anchored so that text an attacker controls (a user name, a URL) can never
//! supply it: the host comes from the `<HOST>` capture of the pattern that
//! matched, never from "the first address after ` from `". Each filter file
//! documents how its patterns achieve this.

pub mod date;
pub mod def;
pub mod session;
pub mod template;

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::Arc;

use jiff::Timestamp;
use regex_automata::meta::{self, Regex};
use regex_automata::nfa::thompson::WhichCaptures;
use regex_automata::util::captures::Captures;
use regex_automata::util::syntax;
use regex_automata::{Anchored, Input, PatternID};

use crate::addr::{Host, parse_addr, parse_forwarded, parse_host};
use crate::config::journal_match::{JournalMatch, forgeable_message};
use crate::config::reader::{Diagnostics, Located, SourceFile, Table};
use date::DateFinder;
use def::{FilterDef, FilterPath, PatternDef, Role};
use session::{Event, Sessions};
use template::{Expanded, expand};

/// A failure found in one line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// The host, normalized.
    pub host: Host,
    /// The host exactly as captured (what `test-filter` prints).
    pub host_text: String,
    /// The line's own time; `None` when a file line has no date (the
    /// caller uses the time it read the line).
    pub time: Option<Timestamp>,
    /// Index of the failregex that matched, in [`Filter::patterns`].
    pub regex: usize,
    /// How many failures this line stands for (multi-line stories).
    pub attempts: u32,
    /// The user the line names, when the pattern captures one.
    pub user: Option<String>,
    /// Every user of the connection's story, when known.
    pub users: Vec<String>,
    /// Counts only for an address that already has a counted failure in
    /// the jail's window (role `repeat`); never bans alone.
    pub repeat: bool,
    /// The proxies' X-Forwarded-For elements the line carries before
    /// `host` (the hop the service saw), left (client-supplied) to right
    /// (nearest); `None` for an element that is no address. A jail with
    /// `trusted_proxies` takes the client from them (see
    /// [`crate::addr::client_behind`]); without, `host` is the client.
    pub forwarded: Vec<Option<IpAddr>>,
}

/// What became of one line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// No failregex matched.
    Missed,
    /// A failregex matched and an ignoreregex too.
    Ignored { regex: usize },
    /// A failregex matched; `failure` is `None` when the line only adds to
    /// a connection's story (roles note, pending, close, success) or waits
    /// for a host.
    Matched {
        regex: usize,
        failure: Option<Failure>,
    },
}

/// A compiled pattern's bookkeeping.
#[derive(Debug, Clone)]
pub struct PatternInfo {
    /// The pattern as written (for reports).
    pub text: String,
    /// Where it was written (`file:line:col`).
    pub position: String,
    pub role: Role,
    /// The step of an attempt this pattern's lines tell, by name.
    pub step: Option<String>,
    /// Its index in the filter's `attempt` list.
    step_index: Option<u8>,
    /// Captures `<ADDR>` (addresses only) rather than `<HOST>`.
    addr_only: bool,
    host: Option<usize>,
    user: Option<usize>,
    /// `<F-ATTEMPTS>`: how many attempts the line reports.
    attempts: Option<usize>,
    forwarded: Option<usize>,
    session: Option<usize>,
    content: Option<usize>,
}

/// A filter compiled for one mode. Immutable and shared (`Arc`) by every
/// jail and thread using it; per-use state lives in [`Matcher`].
#[derive(Debug)]
pub struct Filter {
    name: String,
    mode: String,
    description: String,
    journal_match: JournalMatch,
    journal_host_field: Option<String>,
    journal_own_events: bool,
    /// All failregexes in one automaton, without captures: finds which
    /// pattern matches (if any) in one DFA pass.
    fail: Regex,
    /// Each failregex alone, for its captures: small enough for the
    /// one-pass DFA or the bounded backtracker, where the combined
    /// automaton would need the (much slower) PikeVM.
    singles: Vec<Regex>,
    patterns: Vec<PatternInfo>,
    ignore: Option<Regex>,
    session_timeout: std::time::Duration,
    /// The service's own line limit (filter key `line_limit`).
    line_limit: Option<usize>,
    /// Where a file line's date is.
    date: DatePlace,
}

/// Where a file line's date is (filter key `date_after`). Never the
/// first date anywhere: in many formats text a client chose (an access
/// log's user, a JSON log's fields) comes before the real date, and a date
/// written there would date the line (to a time long gone, so the attack
/// is never counted).
#[derive(Debug)]
enum DatePlace {
    /// The date starts the line (after a syslog `<PRI>` or a `[`).
    Start,
    /// The date starts the line (a syslog head's, written before any
    /// message), or else begins right where this pattern, anchored at the
    /// line's start, ends its match.
    After(Regex),
}

/// Largest compiled regex we accept (keeps check-config and memory sane).
const NFA_SIZE_LIMIT: usize = 64 << 20;
/// Lazy DFA cache per matcher; big enough that sshd's automaton never thrashes.
const DFA_CACHE: usize = 2 << 20;
/// Sessions kept per matcher.
const SESSION_CAP: usize = 10_000;
/// Longest line a filter looks at; beyond it a line is cut (counted by the
/// caller), so a hostile 1 MiB line costs linear time and bounded memory.
/// A line this long is taken as cut (see [`Scanner::file_line_cut`]).
pub const MAX_LINE: usize = 64 * 1024;
/// Put after a cut line, outside the searched range: a word byte, so `$`
/// does not match at the cut and neither does `\b` after a word there.
const CUT_SENTINEL: u8 = b'_';

fn syntax_config() -> syntax::Config {
    // Bytes in, ASCII classes: log lines may be invalid UTF-8, and Unicode
    // classes would multiply DFA states for nothing.
    syntax::Config::new().unicode(false).utf8(false)
}

impl Filter {
    /// The filter's name.
    pub fn name(&self) -> &str {
        &self.name
    }
    /// The mode it was compiled for.
    pub fn mode(&self) -> &str {
        &self.mode
    }
    /// One-line description from the filter file.
    pub fn description(&self) -> &str {
        &self.description
    }
    /// The filter's default `journal_match`.
    pub fn journal_match(&self) -> &JournalMatch {
        &self.journal_match
    }
    /// Journal field that supplies the host for journal entries, if any.
    pub fn journal_host_field(&self) -> Option<&str> {
        self.journal_host_field.as_deref()
    }
    /// Whether the filter reads jailwarden's own events: a jail using it
    /// reads only journal entries the daemon wrote itself (the daemon adds
    /// its `_UID` to every group of the jail's journal_match).
    pub fn journal_own_events(&self) -> bool {
        self.journal_own_events
    }
    /// The failregexes in match-priority order.
    pub fn patterns(&self) -> &[PatternInfo] {
        &self.patterns
    }
    /// The longest line the service writes, when it cuts its own lines.
    pub fn line_limit(&self) -> Option<usize> {
        self.line_limit
    }

    /// A matcher for one stream of lines.
    pub fn matcher(self: &Arc<Self>, dates: DateFinder) -> Matcher {
        Matcher {
            scanner: self.scanner(dates),
            story: self.story(),
        }
    }

    /// The pure half of a matcher (one per thread).
    pub fn scanner(self: &Arc<Self>, dates: DateFinder) -> Scanner {
        Scanner {
            filter: self.clone(),
            fail_cache: self.fail.create_cache(),
            single_caches: self.singles.iter().map(Regex::create_cache).collect(),
            caps: self.singles.iter().map(Regex::create_captures).collect(),
            ignore_cache: self.ignore.as_ref().map(Regex::create_cache),
            dates,
            date_cache: None,
            scratch: Vec::new(),
            line_limit: self.line_limit,
        }
    }

    /// The stateful half of a matcher.
    pub fn story(self: &Arc<Self>) -> Story {
        Story {
            filter: self.clone(),
            sessions: Sessions::new(self.session_timeout, SESSION_CAP),
            prev_date: None,
        }
    }

    /// A [`Story`] whose session changes nobody will take (see
    /// [`Story::session_changes`]): `test-filter`'s.
    pub fn story_untracked(self: &Arc<Self>) -> Story {
        let story = self.story();
        Story {
            sessions: story.sessions.untracked(),
            ..story
        }
    }

    /// Compile `def` in `mode`, with `common` snippets. Problems (unknown
    /// mode, template and regex errors) go to `diags` with the position of
    /// the pattern; `None` if any.
    pub fn compile(
        def: &FilterDef,
        mode: &str,
        common: &BTreeMap<String, Located<String>>,
        diags: &Diagnostics,
    ) -> Option<Filter> {
        let before = diags.len();
        let Some(modes) = def.expand_mode(mode) else {
            diags.error(
                &def.file,
                0,
                format!(
                    "filter {} has no mode {mode:?} (modes: {})",
                    def.name,
                    def.mode_names().join(", ")
                ),
            );
            return None;
        };
        for m in &modes {
            for inc in &def.modes[*m].include {
                if !def.modes.contains_key(&inc.value) {
                    inc.error(
                        diags,
                        format!("included mode {:?} does not exist", inc.value),
                    );
                }
            }
        }
        let lookup = |name: &str| -> Option<&str> {
            def.snippets
                .get(name)
                .or_else(|| common.get(name))
                .map(|s| s.value.as_str())
        };
        let journal_match = match JournalMatch::parse(
            &def.journal_match
                .iter()
                .map(|t| t.value.as_str())
                .collect::<Vec<_>>(),
        ) {
            Ok(m) => {
                // Forged entries: the default match must name its writer.
                if !def.journal_own_events {
                    let starts = JournalMatch::group_starts(&def.journal_match);
                    for (i, g) in m.forgeable_groups() {
                        if let Some(term) = starts.get(i).and_then(|&t| def.journal_match.get(t)) {
                            term.error(diags, forgeable_message(g));
                        }
                    }
                }
                m
            }
            Err(e) => {
                if let Some(first) = def.journal_match.first() {
                    first.error(diags, e.to_string());
                }
                JournalMatch::default()
            }
        };
        // The prefregex with a hole where <F-CONTENT>...</F-CONTENT> was.
        let pref = def.prefregex.as_ref().and_then(|p| {
            let e = expand(&p.value, &lookup)
                .map_err(|e| p.error(diags, format!("prefregex: {e}")))
                .ok()?;
            match split_content(&e.regex) {
                Some((head, tail)) => Some((head, tail, e)),
                None => {
                    p.error(diags, "prefregex needs <F-CONTENT>...</F-CONTENT>");
                    None
                }
            }
        });
        // Mode patterns first: a mode may give a line a different role.
        let mut defs: Vec<&PatternDef> = Vec::new();
        for m in &modes {
            defs.extend(def.modes[*m].failregex.iter());
        }
        defs.extend(def.failregex.iter());
        let mut regexes = Vec::new();
        let mut infos = Vec::new();
        for p in &defs {
            let e = match expand(&p.text.value, &lookup) {
                Ok(e) => e,
                Err(e) => {
                    p.text.error(diags, format!("failregex: {e}"));
                    continue;
                }
            };
            if let Some((_, _, pe)) = &pref {
                if e.has_host && pe.has_host {
                    p.text
                        .error(diags, "failregex: <HOST> is already in the prefregex");
                    continue;
                }
            }
            let full = match &pref {
                Some((head, tail, _)) => match embed(&e.regex) {
                    Some(inner) => format!("{head}(?P<content>{inner}){tail}"),
                    None => {
                        p.text.error(
                            diags,
                            "failregex: with a prefregex, ^ and $ may only anchor the whole pattern",
                        );
                        continue;
                    }
                },
                None => e.regex.clone(),
            };
            if let Err(err) = check_regex(&full) {
                p.text.error(diags, format!("failregex: {err}"));
                continue;
            }
            let captures_host = e.has_host || pref.as_ref().is_some_and(|(_, _, pe)| pe.has_host);
            let session = has_session(&e, pref.as_ref().map(|x| &x.2));
            if !captures_host && matches!(p.role, Role::Fail | Role::Repeat) && !session {
                p.text.error(
                    diags,
                    "failregex: a failure needs <HOST> or <ADDR> (or a session to take it from)",
                );
                continue;
            }
            let step_index = match &p.step {
                None => None,
                Some(step) => {
                    let index = def.step_index(&step.value);
                    let problem = if index.is_none() {
                        Some(format!(
                            "step {:?} is not in the filter's attempt list ({})",
                            step.value,
                            def.attempt
                                .iter()
                                .map(|s| s.value.as_str())
                                .collect::<Vec<_>>()
                                .join(", ")
                        ))
                    } else if !matches!(p.role, Role::Fail | Role::Pending) {
                        Some(format!(
                            "a step is for lines that tell an attempt (role fail or pending), not {}",
                            p.role.name()
                        ))
                    } else if !session {
                        Some(
                            "a step needs a session (<F-SESSION>) to tell which attempt a line belongs to"
                                .to_string(),
                        )
                    } else {
                        None
                    };
                    if let Some(problem) = problem {
                        step.error(diags, problem);
                        continue;
                    }
                    index
                }
            };
            infos.push(PatternInfo {
                text: p.text.value.clone(),
                position: p.text.position(),
                role: p.role,
                step: p.step.as_ref().map(|s| s.value.clone()),
                step_index,
                addr_only: e.addr_only || pref.as_ref().is_some_and(|(_, _, pe)| pe.addr_only),
                host: None,
                user: None,
                attempts: None,
                forwarded: None,
                session: None,
                content: None,
            });
            regexes.push(full);
        }
        let mut ignores = Vec::new();
        let mut ignore_defs: Vec<&Located<String>> = Vec::new();
        for m in &modes {
            ignore_defs.extend(def.modes[*m].ignoreregex.iter());
        }
        ignore_defs.extend(def.ignoreregex.iter());
        for p in ignore_defs {
            match expand(&p.value, &lookup) {
                Ok(e) => match check_regex(&e.regex) {
                    Ok(()) => ignores.push(e.regex),
                    Err(err) => p.error(diags, format!("ignoreregex: {err}")),
                },
                Err(e) => p.error(diags, format!("ignoreregex: {e}")),
            }
        }
        let date_after = def.date_after.as_ref().and_then(|p| {
            let e = expand(&p.value, &lookup)
                .map_err(|e| p.error(diags, format!("date_after: {e}")))
                .ok()?;
            if e.has_host {
                p.error(diags, "date_after: no <HOST> or <ADDR> here");
                return None;
            }
            if let Err(err) = check_regex(&e.regex) {
                p.error(diags, format!("date_after: {err}"));
                return None;
            }
            Some(e.regex)
        });
        if diags.len() > before {
            return None;
        }
        let date = match date_after {
            None => DatePlace::Start,
            Some(re) => match build(&[re], Use::Find) {
                Ok(r) => DatePlace::After(r),
                Err(e) => {
                    diags.error(&def.file, 0, format!("cannot compile date_after: {e}"));
                    return None;
                }
            },
        };
        if regexes.is_empty() {
            diags.error(
                &def.file,
                0,
                format!("filter {} has no failregex in mode {mode}", def.name),
            );
            return None;
        }
        let fail = match build(&regexes, Use::Find) {
            Ok(r) => r,
            Err(e) => {
                diags.error(&def.file, 0, format!("cannot compile failregexes: {e}"));
                return None;
            }
        };
        let mut singles = Vec::with_capacity(regexes.len());
        for (re, info) in regexes.iter().zip(infos.iter_mut()) {
            let single = match build(std::slice::from_ref(re), Use::Captures) {
                Ok(r) => r,
                Err(e) => {
                    diags.error(
                        &def.file,
                        0,
                        format!("cannot compile {}: {e}", info.position),
                    );
                    return None;
                }
            };
            let gi = single.group_info();
            let pid = PatternID::ZERO;
            info.host = gi.to_index(pid, "host");
            info.user = gi.to_index(pid, "user");
            info.attempts = gi.to_index(pid, "attempts");
            info.forwarded = gi.to_index(pid, "forwarded");
            info.session = gi.to_index(pid, "session");
            info.content = gi.to_index(pid, "content");
            singles.push(single);
        }
        let ignore = if ignores.is_empty() {
            None
        } else {
            match build(&ignores, Use::Find) {
                Ok(r) => Some(r),
                Err(e) => {
                    diags.error(&def.file, 0, format!("cannot compile ignoreregexes: {e}"));
                    return None;
                }
            }
        };
        Some(Filter {
            name: def.name.clone(),
            mode: mode.to_string(),
            description: def.description.clone(),
            journal_match,
            journal_host_field: def.journal_host_field.clone(),
            journal_own_events: def.journal_own_events,
            fail,
            singles,
            patterns: infos,
            ignore,
            session_timeout: def.session_timeout,
            line_limit: def.line_limit,
            date,
        })
    }
}

fn has_session(e: &Expanded, pref: Option<&Expanded>) -> bool {
    e.captures.iter().any(|c| c == "session")
        || pref.is_some_and(|p| p.captures.iter().any(|c| c == "session"))
}

/// How a regex is used, which decides the engines it needs.
#[derive(Clone, Copy)]
enum Use {
    /// Find which pattern matches, fast: lazy DFA, no captures.
    Find,
    /// Captures of one pattern on a span already known to match: the
    /// one-pass DFA or the backtracker; a lazy DFA would only cost memory.
    Captures,
}

fn build(patterns: &[String], usage: Use) -> Result<Regex, Box<meta::BuildError>> {
    let config = Regex::config()
        .utf8_empty(false)
        .nfa_size_limit(Some(NFA_SIZE_LIMIT));
    let config = match usage {
        Use::Find => config
            .which_captures(WhichCaptures::Implicit)
            .hybrid_cache_capacity(DFA_CACHE),
        Use::Captures => config
            .which_captures(WhichCaptures::All)
            .hybrid(false)
            .dfa(false),
    };
    Regex::builder()
        .syntax(syntax_config())
        .configure(config)
        .build_many(patterns)
        .map_err(Box::new)
}

/// Parse a regex alone, for a positioned error message.
fn check_regex(re: &str) -> Result<(), String> {
    regex_syntax::ParserBuilder::new()
        .unicode(false)
        .utf8(false)
        .build()
        .parse(re)
        .map(|_| ())
        .map_err(|e| match e {
            // The kind alone: the expanded pattern (with <HOST> spelled
            // out) would bury the message; the position names the pattern.
            regex_syntax::Error::Parse(p) => p.kind().to_string(),
            regex_syntax::Error::Translate(t) => t.kind().to_string(),
            other => other.to_string(),
        })
}

/// Split an expanded prefregex around its `(?P<content>...)` group.
fn split_content(re: &str) -> Option<(String, String)> {
    let start = re.find("(?P<content>")?;
    let inner = start + "(?P<content>".len();
    let bytes = re.as_bytes();
    let mut depth = 1;
    let mut i = inner;
    let mut in_class = false;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 1,
            b'[' if !in_class => in_class = true,
            b']' if in_class => in_class = false,
            b'(' if !in_class => depth += 1,
            b')' if !in_class => {
                depth -= 1;
                if depth == 0 {
                    return Some((re[..start].to_string(), re[i + 1..].to_string()));
                }
            }
            _ => {}
        }
        i += 1;
    }
    None
}

/// Turn a failregex written against the content into the content group's
/// body: a leading `^` anchors at the content's start (else `.*?` lets it
/// start anywhere, leftmost), a trailing `$` at its end (else `.*`).
fn embed(re: &str) -> Option<String> {
    let (body, start_anchor) = match re.strip_prefix('^') {
        Some(b) => (b, true),
        None => (re, false),
    };
    let end_anchor = body.ends_with('$') && !body.ends_with("\\$");
    let body = if end_anchor {
        &body[..body.len() - 1]
    } else {
        body
    };
    if has_bare_anchor(body) {
        return None;
    }
    Some(format!(
        "{}(?:{body}){}",
        if start_anchor { "" } else { ".*?" },
        if end_anchor { "" } else { ".*" }
    ))
}

/// An unescaped `^` or `$` outside a character class.
fn has_bare_anchor(re: &str) -> bool {
    let bytes = re.as_bytes();
    let mut i = 0;
    let mut in_class = false;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 1,
            b'[' if !in_class => {
                in_class = true;
                // `[^` and `[]` open the class without ending it
                if bytes.get(i + 1) == Some(&b'^') {
                    i += 1;
                }
                if bytes.get(i + 1) == Some(&b']') {
                    i += 1;
                }
            }
            b']' if in_class => in_class = false,
            b'^' | b'$' if !in_class => return true,
            _ => {}
        }
        i += 1;
    }
    false
}

/// The pure half of matching: finds the date, the pattern that matches and
/// its captures. Holds only caches, so several can run in parallel on
/// different lines of one stream; the multi-line story is then told in
/// order by [`Matcher`] (or [`Story`]).
pub struct Scanner {
    filter: Arc<Filter>,
    fail_cache: meta::Cache,
    single_caches: Vec<meta::Cache>,
    caps: Vec<Captures>,
    ignore_cache: Option<meta::Cache>,
    dates: DateFinder,
    /// For the filter's `date_after` pattern, made on first use.
    date_cache: Option<meta::Cache>,
    scratch: Vec<u8>,
    /// Lines this long or longer may have been cut (the filter's
    /// `line_limit`, lowered by [`limit_lines`](Self::limit_lines)).
    line_limit: Option<usize>,
}

/// What a line yielded before the story is applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scan {
    /// No failregex matched.
    Missed,
    /// No failregex matched a file line that had a date: the story lends
    /// it to the next line if that one has none (a record written as a
    /// date line and a message line, like java.util.logging's).
    Dated(Timestamp),
    /// A failregex and an ignoreregex matched.
    Ignored { regex: usize },
    /// A failregex matched.
    Hit(Hit),
}

/// The captures of a matching line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hit {
    pub regex: usize,
    pub time: Option<Timestamp>,
    pub host: Option<(Host, String)>,
    pub user: Option<String>,
    /// Attempts the line reports itself (`<F-ATTEMPTS>`), if it does.
    pub attempts: Option<u32>,
    /// The connection the line belongs to (hash of the `session` capture).
    pub session: Option<u64>,
    /// The `forwarded` capture's elements (see [`Failure::forwarded`]).
    pub forwarded: Vec<Option<IpAddr>>,
}

impl Scanner {
    /// The filter applied.
    pub fn filter(&self) -> &Arc<Filter> {
        &self.filter
    }

    /// Advance "now" for year-less dates.
    pub fn set_now(&mut self, now: Timestamp) {
        self.dates.set_now(now);
    }

    /// Also take lines of `limit` bytes or more as cut: a jail's
    /// `line_limit`, for a relay (a syslog daemon) that cuts lines shorter
    /// than the service does. The lower of it and the filter's wins.
    pub fn limit_lines(&mut self, limit: Option<usize>) {
        self.line_limit = match (self.line_limit, limit) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
    }

    /// Give back what the matching caches grew to (the lazy DFA's states,
    /// the backtracker's tables): they are rebuilt as the next lines need.
    /// For an idle daemon, whose caches would otherwise keep the peak of
    /// the last burst.
    pub fn shrink(&mut self) {
        let filter = &*self.filter;
        self.fail_cache = filter.fail.create_cache();
        self.single_caches = filter.singles.iter().map(Regex::create_cache).collect();
        self.ignore_cache = filter.ignore.as_ref().map(Regex::create_cache);
        self.date_cache = None;
        self.scratch = Vec::new();
    }

    /// Whether a line of `len` bytes may have been cut: by the service or a
    /// relay (`line_limit`), or by our [`MAX_LINE`].
    fn may_be_cut(&self, len: usize) -> bool {
        len >= MAX_LINE || self.line_limit.is_some_and(|limit| len >= limit)
    }

    /// A line from a log file: the date is found and removed, the rest
    /// matched. A trailing `\r` is ignored; lines are cut at [`MAX_LINE`].
    pub fn file_line(&mut self, line: &[u8]) -> Scan {
        self.file_line_cut(line, false)
    }

    /// [`file_line`](Self::file_line) for a line a source may have cut:
    /// `cut` says it did (the line was longer than what was delivered).
    ///
    /// A cut line, like one as long as the filter's service ever writes
    /// (`line_limit`: it may have cut it itself) or one longer than
    /// [`MAX_LINE`], is matched as what it is, the head of a longer line:
    /// its end is not an end. `$` does not match there and a host cannot
    /// end there, so text an attacker pushed up to the cut can never pass
    /// for the end of the line's structure.
    pub fn file_line_cut(&mut self, line: &[u8], cut: bool) -> Scan {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let cut = cut || self.may_be_cut(line.len());
        let line = &line[..line.len().min(MAX_LINE)];
        let found = match &self.filter.date {
            DatePlace::Start => self.dates.find_start(line),
            DatePlace::After(re) => match self.dates.find_start(line) {
                Some(found) => Some(found),
                None => re
                    .search_with(
                        self.date_cache.get_or_insert_with(|| re.create_cache()),
                        &Input::new(line).anchored(Anchored::Yes),
                    )
                    .and_then(|m| self.dates.find_at(line, m.end())),
            },
        };
        let time = found.as_ref().map(|f| f.time);
        let out = match found {
            Some(found) if found.span.start == 0 => {
                let rest = &line[found.span.end..];
                let rest = &rest[rest.iter().position(|b| *b != b' ').unwrap_or(rest.len())..];
                self.scan_parts(rest, &[], Some(found.time), cut)
            }
            Some(found) => {
                let head = &line[..found.span.start];
                let head_end = head.iter().rposition(|b| *b != b' ').map_or(0, |p| p + 1);
                self.scan_parts(
                    &head[..head_end],
                    &line[found.span.end..],
                    Some(found.time),
                    cut,
                )
            }
            None => self.scan_parts(line, &[], None, cut),
        };
        match (out, time) {
            (Scan::Missed, Some(t)) => Scan::Dated(t),
            (out, _) => out,
        }
    }

    /// A journal entry rendered as `HOSTNAME IDENTIFIER[PID]: MESSAGE`,
    /// with the entry's time (never a date in its text). `host_field` is
    /// the value of the filter's `journal_host_field`, which is then
    /// authoritative for the host. `cut`: the source cut MESSAGE (our
    /// 64 KiB, journald's `LineMax`); like a rendered line as long as the
    /// service's `line_limit`, it is matched as a cut line (see
    /// [`file_line_cut`](Self::file_line_cut)).
    pub fn journal_line(
        &mut self,
        text: &[u8],
        time: Timestamp,
        host_field: Option<&[u8]>,
        cut: bool,
    ) -> Scan {
        let cut = cut || self.may_be_cut(text.len());
        let text = &text[..text.len().min(MAX_LINE)];
        match (self.scan_parts(text, &[], Some(time), cut), host_field) {
            (Scan::Hit(mut hit), Some(field)) => {
                let text = String::from_utf8_lossy(field).into_owned();
                match parse_host(&text) {
                    Some(h) => {
                        hit.host = Some((h, text));
                        Scan::Hit(hit)
                    }
                    None => Scan::Missed,
                }
            }
            (out, _) => out,
        }
    }

    /// Match `head` followed by `tail`. A cut text gets [`CUT_SENTINEL`]
    /// after its end and is searched up to that end only: look-around
    /// (`$`, `\b`) then sees that the line goes on.
    fn scan_parts(&mut self, head: &[u8], tail: &[u8], time: Option<Timestamp>, cut: bool) -> Scan {
        if tail.is_empty() && !cut {
            return self.scan(head, head.len(), time);
        }
        // Take the scratch buffer out so the text can borrow it while
        // matching borrows self.
        let mut text = std::mem::take(&mut self.scratch);
        text.clear();
        text.extend_from_slice(head);
        text.extend_from_slice(tail);
        let end = text.len();
        if cut {
            text.push(CUT_SENTINEL);
        }
        let out = self.scan(&text, end, time);
        self.scratch = text;
        out
    }

    /// Match `haystack[..end]`; `end < haystack.len()` marks a cut line.
    fn scan(&mut self, haystack: &[u8], end: usize, time: Option<Timestamp>) -> Scan {
        let filter = &*self.filter;
        let cut = end < haystack.len();
        let text = &haystack[..end];
        // One DFA pass over all patterns; nothing else on the (usual) miss.
        let Some(m) = filter
            .fail
            .search_with(&mut self.fail_cache, &Input::new(haystack).range(..end))
        else {
            return Scan::Missed;
        };
        let regex = m.pattern().as_usize();
        let info = &filter.patterns[regex];
        // Captures from that pattern alone, anchored at the match.
        let caps = &mut self.caps[regex];
        filter.singles[regex].search_captures_with(
            &mut self.single_caches[regex],
            &Input::new(haystack)
                .range(m.start()..m.end())
                .anchored(Anchored::Yes),
            caps,
        );
        if !caps.is_match() {
            // Cannot happen (same pattern, same span); never trust it blindly.
            return Scan::Missed;
        }
        let caps = &self.caps[regex];
        let group = |idx: Option<usize>| {
            idx.and_then(|i| caps.get_group(i))
                .map(|s| &text[s.range()])
        };
        // A host that ends where the line was cut may be cut itself
        // ("198.51.100.6" of "198.51.100.62").
        if cut
            && info
                .host
                .and_then(|i| caps.get_group(i))
                .is_some_and(|s| s.end == end)
        {
            return Scan::Missed;
        }
        if let (Some(ignore), Some(cache)) = (&filter.ignore, self.ignore_cache.as_mut()) {
            let content = group(info.content).unwrap_or(text);
            if ignore.is_match_with(cache, &Input::new(content)) {
                return Scan::Ignored { regex };
            }
        }
        let host = match group(info.host) {
            Some(raw) => {
                let t = template::clean_host_text(&String::from_utf8_lossy(raw)).to_string();
                let parsed = if info.addr_only {
                    parse_addr(&t).map(Host::Addr)
                } else {
                    parse_host(&t)
                };
                match parsed {
                    Some(h) => Some((h, t)),
                    // Captured text that is no address nor name: not ours.
                    None => return Scan::Missed,
                }
            }
            None => None,
        };
        Scan::Hit(Hit {
            regex,
            time,
            host,
            user: group(info.user).map(|u| String::from_utf8_lossy(u).into_owned()),
            attempts: group(info.attempts).map(reported_attempts),
            session: group(info.session).map(session_key),
            forwarded: group(info.forwarded)
                .map(parse_forwarded)
                .unwrap_or_default(),
        })
    }
}

/// The count in an `<F-ATTEMPTS>` capture: at least 1, at most
/// [`MAX_REPORTED_ATTEMPTS`] (a jail needs no more than maxretry).
fn reported_attempts(digits: &[u8]) -> u32 {
    let mut n: u32 = 0;
    for d in digits.iter().filter(|d| d.is_ascii_digit()) {
        n = n.saturating_mul(10).saturating_add(u32::from(d - b'0'));
    }
    n.clamp(1, MAX_REPORTED_ATTEMPTS)
}

/// Most attempts one line may stand for.
pub const MAX_REPORTED_ATTEMPTS: u32 = 1000;

/// Sessions are keyed by a 64-bit hash of the captured key (a pid, from
/// the part of the line its service writes, not attacker text): no
/// allocation per line, and collisions among the few thousand live
/// sessions are out of reach. FNV-1a: the same in every run and version,
/// so sessions saved before a restart are found again after it.
fn session_key(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// The stateful half: tells each connection's story, in line order.
pub struct Story {
    filter: Arc<Filter>,
    sessions: Sessions,
    /// The previous line's date, for a next line without one.
    prev_date: Option<Timestamp>,
}

impl Story {
    /// Sessions dropped because too many were open at once.
    pub fn sessions_evicted(&self) -> u64 {
        self.sessions.evicted
    }

    /// See [`Sessions::take_changes`].
    pub fn session_changes(&mut self) -> Vec<(u64, Option<session::SavedSession>)> {
        self.sessions.take_changes()
    }

    /// See [`Sessions::restore`].
    pub fn restore_session(&mut self, key: u64, saved: session::SavedSession) {
        self.sessions.restore(key, saved);
    }

    /// Apply a scanned line.
    pub fn apply(&mut self, scan: Scan) -> Outcome {
        // A line without a date takes the previous line's, and only that
        // line's: a date is never carried further, so a log of dateless
        // lines after one dated line is not pinned to that old date.
        let prev_date = self.prev_date.take();
        let hit = match scan {
            Scan::Missed => return Outcome::Missed,
            Scan::Dated(t) => {
                self.prev_date = Some(t);
                return Outcome::Missed;
            }
            Scan::Ignored { regex } => return Outcome::Ignored { regex },
            Scan::Hit(mut hit) => {
                match hit.time {
                    Some(t) => self.prev_date = Some(t),
                    None => hit.time = prev_date,
                }
                hit
            }
        };
        let info = &self.filter.patterns[hit.regex];
        // A forwarded-for list belongs to the host of its own line.
        let forwarded = if hit.host.is_some() {
            hit.forwarded
        } else {
            Vec::new()
        };
        let event = Event {
            role: info.role,
            host: hit.host,
            user: hit.user.clone(),
            step: info.step_index,
            attempts: hit.attempts.unwrap_or(1),
        };

        let verdict = match hit.session {
            Some(key) => self.sessions.apply(key, event, hit.time),
            None => Sessions::stateless(event),
        };
        Outcome::Matched {
            regex: hit.regex,
            failure: verdict.map(|v| Failure {
                host: v.host,
                host_text: v.host_text,
                time: hit.time,
                regex: hit.regex,
                attempts: v.attempts,
                user: hit.user,
                users: v.users,
                repeat: v.repeat,
                forwarded,
            }),
        }
    }
}

/// Applies one filter to one stream of lines: a [`Scanner`] and a
/// [`Story`] together. Create one per jail and source.
pub struct Matcher {
    scanner: Scanner,
    story: Story,
}

impl Matcher {
    /// The filter applied.
    pub fn filter(&self) -> &Arc<Filter> {
        &self.scanner.filter
    }

    /// Advance "now" for year-less dates.
    pub fn set_now(&mut self, now: Timestamp) {
        self.scanner.set_now(now);
    }

    /// See [`Scanner::limit_lines`].
    pub fn limit_lines(&mut self, limit: Option<usize>) {
        self.scanner.limit_lines(limit);
    }

    /// See [`Scanner::shrink`].
    pub fn shrink(&mut self) {
        self.scanner.shrink();
    }

    /// Sessions dropped because too many were open at once.
    pub fn sessions_evicted(&self) -> u64 {
        self.story.sessions_evicted()
    }

    /// Sessions changed since the last call (to save with the position
    /// after the lines that changed them).
    pub fn session_changes(&mut self) -> Vec<(u64, Option<session::SavedSession>)> {
        self.story.session_changes()
    }

    /// Put back a session saved before a restart.
    pub fn restore_session(&mut self, key: u64, saved: session::SavedSession) {
        self.story.restore_session(key, saved);
    }

    /// See [`Scanner::file_line`].
    pub fn file_line(&mut self, line: &[u8]) -> Outcome {
        let scan = self.scanner.file_line(line);
        self.story.apply(scan)
    }

    /// See [`Scanner::file_line_cut`].
    pub fn file_line_cut(&mut self, line: &[u8], cut: bool) -> Outcome {
        let scan = self.scanner.file_line_cut(line, cut);
        self.story.apply(scan)
    }

    /// See [`Scanner::journal_line`].
    pub fn journal_line(
        &mut self,
        text: &[u8],
        time: Timestamp,
        host_field: Option<&[u8]>,
        cut: bool,
    ) -> Outcome {
        let scan = self.scanner.journal_line(text, time, host_field, cut);
        self.story.apply(scan)
    }
}

/// Filters loaded from a search path, with the shared snippets.
///
/// [`shared`](Self::shared) reads each filter file once and compiles it
/// once per mode: a thousand jails on one filter hold one compiled copy
/// (a compiled filter is about a megabyte and takes ~20 ms to build).
pub struct FilterLoader {
    path: FilterPath,
    /// Filter files read, by path.
    read: RefCell<HashMap<PathBuf, Rc<Parsed>>>,
    /// Compiled by (file, mode); `None` when it has problems.
    compiled: RefCell<HashMap<FileMode, Option<Arc<Filter>>>>,
}

/// A filter file and a mode: what a compiled filter depends on (the
/// common snippets come with the file).
type FileMode = (PathBuf, String);

/// A filter file as read, and the common snippets next to it.
type Parsed = (FilterDef, BTreeMap<String, Located<String>>);

/// What [`FilterLoader::shared`] found.
#[derive(Clone)]
pub enum Shared {
    /// No such filter on the search path.
    Missing,
    /// The filter has no such mode; its modes are listed.
    NoMode(Vec<String>),
    /// It has problems (reported once, when first compiled).
    Broken,
    /// Compiled, shared by every jail with the same file and mode.
    Ready(Arc<Filter>),
}

impl FilterLoader {
    /// Load from `path`.
    pub fn new(path: FilterPath) -> Self {
        FilterLoader {
            path,
            read: RefCell::new(HashMap::new()),
            compiled: RefCell::new(HashMap::new()),
        }
    }

    /// The search path.
    pub fn path(&self) -> &FilterPath {
        &self.path
    }

    /// Read a filter by name or path, with its common snippets. Problems
    /// go to `diags`; `None` if the file is missing or unreadable.
    pub fn read(
        &self,
        name: &str,
        diags: &Diagnostics,
    ) -> Option<(FilterDef, BTreeMap<String, Located<String>>)> {
        let file_path = self.path.find(name)?;
        self.read_file(&file_path, diags)
    }

    fn read_file(
        &self,
        file_path: &Path,
        diags: &Diagnostics,
    ) -> Option<(FilterDef, BTreeMap<String, Located<String>>)> {
        let file = match SourceFile::read(file_path) {
            Ok(f) => f,
            Err(d) => {
                diags.push(d);
                return None;
            }
        };
        let def = FilterDef::read(&def::name_of(file_path), &file, diags);
        let common = self.common(file_path, diags);
        Some((def, common))
    }

    /// Read and compile in one go.
    pub fn compile(&self, name: &str, mode: &str, diags: &Diagnostics) -> Option<Filter> {
        let (def, common) = self.read(name, diags)?;
        Filter::compile(&def, mode, &common, diags)
    }

    /// The filter `name` compiled for `mode`, shared: the file (and its
    /// common snippets) is read once, and compiled once per mode; problems
    /// in it go to `diags` once.
    pub fn shared(&self, name: &str, mode: &str, diags: &Diagnostics) -> Shared {
        let Some(file_path) = self.path.find(name) else {
            return Shared::Missing;
        };
        let key = (file_path, mode.to_string());
        if let Some(done) = self.compiled.borrow().get(&key) {
            return done.clone().map_or(Shared::Broken, Shared::Ready);
        }
        let cached = self.read.borrow().get(&key.0).cloned();
        let parsed = match cached {
            Some(p) => p,
            None => match self.read_file(&key.0, diags) {
                Some(p) => {
                    let p = Rc::new(p);
                    self.read.borrow_mut().insert(key.0.clone(), p.clone());
                    p
                }
                // Unreadable: reported now, and only now.
                None => {
                    self.compiled.borrow_mut().insert(key, None);
                    return Shared::Broken;
                }
            },
        };
        let (def, common) = &*parsed;
        if def.expand_mode(mode).is_none() {
            return Shared::NoMode(def.mode_names());
        }
        let filter = Filter::compile(def, mode, common, diags).map(Arc::new);
        self.compiled.borrow_mut().insert(key, filter.clone());
        filter.map_or(Shared::Broken, Shared::Ready)
    }

    fn common(&self, filter_file: &Path, diags: &Diagnostics) -> BTreeMap<String, Located<String>> {
        let Some(path) = self.path.common_for(filter_file) else {
            return BTreeMap::new();
        };
        let file = match SourceFile::read(&path) {
            Ok(f) => f,
            Err(d) => {
                diags.push(d);
                return BTreeMap::new();
            }
        };
        let doc = file.parse(diags);
        let t = Table::root(&file, &doc, diags);
        let snippets = t
            .table("snippets")
            .map(|s| def::read_snippets(&s))
            .unwrap_or_default();
        t.finish(&["snippets"]);
        snippets
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn compile(text: &str, mode: &str) -> Result<Arc<Filter>, Vec<String>> {
        let file = SourceFile::new("t.toml", text.to_string());
        let diags = Diagnostics::new();
        let def = FilterDef::read("t", &file, &diags);
        let f = Filter::compile(&def, mode, &BTreeMap::new(), &diags);
        let errs: Vec<String> = diags.into_sorted().iter().map(|d| d.to_string()).collect();
        match f {
            Some(f) if errs.is_empty() => Ok(Arc::new(f)),
            _ => Err(errs),
        }
    }

    fn matcher(f: &Arc<Filter>) -> Matcher {
        f.matcher(DateFinder::new(
            jiff::tz::TimeZone::UTC,
            Timestamp::from_second(1_124_013_600).unwrap(),
        ))
    }

    fn host_of(m: &mut Matcher, line: &str) -> Option<String> {
        match m.file_line(line.as_bytes()) {
            Outcome::Matched {
                failure: Some(f), ..
            } => Some(f.host_text),
            _ => None,
        }
    }

    const SSHD_LIKE: &str = r#"
prefregex = '^(?:\S+ )?sshd\[<F-SESSION>\d+</F-SESSION>\]: <F-CONTENT>.+</F-CONTENT>$'
failregex = [
  '^Failed password for (?:invalid user )?<F-USER>.*</F-USER> from <HOST> port \d+ ssh2$',
  { regex = '^Connection from <HOST> port \d+$', role = "note" },
  '^Disconnecting: Too many authentication failures$',
]
ignoreregex = ['for ignoreme ']
"#;

    #[test]
    fn the_host_is_the_anchored_one_not_the_injected_one() {
        let f = compile(SSHD_LIKE, "normal").unwrap();
        let mut m = matcher(&f);
        assert_eq!(
            host_of(
                &mut m,
                "Feb 25 14:34:10 h sshd[1]: Failed password for invalid user x from 10.0.0.1 port 22 ssh2 from 192.0.2.9 port 5555 ssh2"
            )
            .as_deref(),
            Some("192.0.2.9")
        );
        assert_eq!(
            m.file_line(b"Feb 25 14:34:10 h sshd[1]: Failed password for ignoreme from 192.0.2.9 port 1 ssh2"),
            Outcome::Ignored { regex: 0 }
        );
        assert_eq!(
            m.file_line(
                b"Feb 25 14:34:10 h cron[1]: Failed password for x from 192.0.2.9 port 1 ssh2"
            ),
            Outcome::Missed
        );
    }

    #[test]
    fn sessions_supply_hosts_to_later_lines() {
        let f = compile(SSHD_LIKE, "normal").unwrap();
        let mut m = matcher(&f);
        assert_eq!(
            m.file_line(b"Feb 25 14:34:10 h sshd[7]: Connection from 192.0.2.5 port 4000"),
            Outcome::Matched {
                regex: 1,
                failure: None
            }
        );
        assert_eq!(
            host_of(
                &mut m,
                "Feb 25 14:34:11 h sshd[7]: Disconnecting: Too many authentication failures"
            )
            .as_deref(),
            Some("192.0.2.5")
        );
        // another pid knows nothing
        assert_eq!(
            host_of(
                &mut m,
                "Feb 25 14:34:11 h sshd[8]: Disconnecting: Too many authentication failures"
            ),
            None
        );
    }

    #[test]
    fn compile_errors_are_positioned() {
        let errs = compile(
            "failregex = ['^a <HOST> (', '^b <NOSUCH>', '^c$']\n[modes.x]\ninclude = ['y']\n",
            "x",
        )
        .unwrap_err();
        assert_eq!(errs.len(), 4, "{errs:?}");
        assert_eq!(errs[0], "t.toml:1:14: failregex: unclosed group");
        assert!(
            errs[1].contains("t.toml:1:29: failregex: unknown token <NOSUCH>"),
            "{errs:?}"
        );
        assert!(
            errs[2].contains("t.toml:1:44: failregex: a failure needs <HOST>"),
            "{errs:?}"
        );
        assert!(
            errs[3].contains("t.toml:3:12: included mode \"y\" does not exist"),
            "{errs:?}"
        );
        let errs = compile("failregex = ['^a <HOST>']", "nope").unwrap_err();
        assert!(
            errs[0].contains("has no mode \"nope\" (modes: normal)"),
            "{errs:?}"
        );
    }

    #[test]
    fn doubling_snippets_are_a_positioned_error_not_a_gigabyte() {
        let mut text = String::from("failregex = ['^<S1> from <HOST>$']\n[snippets]\n");
        for i in 1..20 {
            text.push_str(&format!("S{i} = '<S{n}><S{n}>'\n", n = i + 1));
        }
        text.push_str("S20 = 'ab'\n");
        let errs = compile(&text, "normal").unwrap_err();
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert!(
            errs[0].starts_with("t.toml:1:14: failregex: expands to more than 256 KiB (via <S1>"),
            "{errs:?}"
        );
    }

    #[test]
    fn shipped_filters_expand_well_below_the_limit() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/filters");
        let loader = FilterLoader::new(FilterPath::new(vec![dir]));
        let mut longest = (0, String::new());
        for (name, _) in loader.path().list() {
            let diags = Diagnostics::new();
            let (def, common) = loader.read(&name, &diags).expect(&name);
            let lookup = |n: &str| -> Option<&str> {
                def.snippets
                    .get(n)
                    .or_else(|| common.get(n))
                    .map(|s| s.value.as_str())
            };
            let patterns = def
                .failregex
                .iter()
                .chain(def.modes.values().flat_map(|m| m.failregex.iter()))
                .map(|p| &p.text)
                .chain(def.prefregex.iter());
            for p in patterns {
                let e = expand(&p.value, &lookup).unwrap_or_else(|e| panic!("{name}: {e}"));
                if e.regex.len() > longest.0 {
                    longest = (e.regex.len(), format!("{name} {}", p.position()));
                }
            }
        }
        assert!(
            longest.0 < template::MAX_EXPANDED / 8,
            "the longest shipped pattern ({}) expands to {} bytes",
            longest.1,
            longest.0
        );
    }

    #[test]
    fn steps_are_checked_and_tell_one_attempt() {
        let errs = compile(
            r#"attempt = ["pam", "result", "pam"]
failregex = [
  { regex = '^a <HOST>$', step = "nope" },
  { regex = '^b <HOST>$', step = "pam", role = "note" },
  { regex = '^c <HOST>$', step = "result" },
]"#,
            "normal",
        )
        .unwrap_err();
        assert_eq!(errs.len(), 4, "{errs:?}");
        assert!(errs[0].contains("step \"pam\" is listed twice"), "{errs:?}");
        assert!(
            errs[1]
                .contains("step \"nope\" is not in the filter's attempt list (pam, result, pam)"),
            "{errs:?}"
        );
        assert!(
            errs[2].contains("(role fail or pending), not note"),
            "{errs:?}"
        );
        assert!(errs[3].contains("a step needs a session"), "{errs:?}");
        let f = compile(
            r#"attempt = ["pam", "result"]
prefregex = '^(?:\S+ )?d\[<F-SESSION>\d+</F-SESSION>\]: <F-CONTENT>.+</F-CONTENT>$'
failregex = [
  { regex = '^pam: failure rhost=<HOST>$', step = "pam", role = "pending" },
  { regex = '^Failed for <F-USER>\S+</F-USER> from <HOST>$', step = "result" },
]"#,
            "normal",
        )
        .unwrap();
        let mut m = matcher(&f);
        let mut counted = 0;
        for _ in 0..3 {
            for line in [
                "Feb 25 14:34:10 h d[7]: pam: failure rhost=192.0.2.5",
                "Feb 25 14:34:11 h d[7]: Failed for root from 192.0.2.5",
            ] {
                if let Outcome::Matched {
                    failure: Some(f), ..
                } = m.file_line(line.as_bytes())
                {
                    counted += f.attempts;
                }
            }
        }
        assert_eq!(counted, 3, "three attempts of two lines each");
    }

    #[test]
    fn a_line_that_reports_several_attempts_counts_them() {
        let f = compile(
            r#"failregex = ['^Disconnected \(auth failed, <F-ATTEMPTS>\d+</F-ATTEMPTS> attempts\): rip=<ADDR>$']"#,
            "normal",
        )
        .unwrap();
        let mut m = matcher(&f);
        let attempts = |m: &mut Matcher, line: &str| match m.file_line(line.as_bytes()) {
            Outcome::Matched {
                failure: Some(f), ..
            } => f.attempts,
            o => panic!("{o:?}"),
        };
        assert_eq!(
            attempts(
                &mut m,
                "Disconnected (auth failed, 3 attempts): rip=192.0.2.1"
            ),
            3
        );
        assert_eq!(
            attempts(
                &mut m,
                "Disconnected (auth failed, 0 attempts): rip=192.0.2.1"
            ),
            1
        );
        assert_eq!(
            attempts(
                &mut m,
                "Disconnected (auth failed, 99999999999999 attempts): rip=192.0.2.1"
            ),
            MAX_REPORTED_ATTEMPTS
        );
    }

    #[test]
    fn anchors_inside_failregex_with_prefregex_are_refused() {
        let errs = compile(
            "prefregex = '^x <F-CONTENT>.+</F-CONTENT>$'\nfailregex = ['^a|^b <HOST>']",
            "normal",
        )
        .unwrap_err();
        assert!(
            errs[0].contains("^ and $ may only anchor the whole pattern"),
            "{errs:?}"
        );
        assert_eq!(embed("^a [^x]$").as_deref(), Some("(?:a [^x])"));
        assert_eq!(embed("a\\$").as_deref(), Some(".*?(?:a\\$).*"));
    }

    #[test]
    fn hostile_lines_never_crash_nor_mismatch() {
        let f = compile(SSHD_LIKE, "normal").unwrap();
        let mut m = matcher(&f);
        let mut big = b"Feb 25 14:34:10 h sshd[1]: Failed password for ".to_vec();
        big.extend(std::iter::repeat_n(b'x', 1 << 20));
        big.extend_from_slice(b" from 192.0.2.1 port 1 ssh2");
        // Cut at MAX_LINE: the tail with the host is gone, so no failure.
        assert_eq!(m.file_line(&big), Outcome::Missed);
        let bad =
            b"Feb 25 14:34:10 h sshd[1]: Failed password for \xff\xfe from 192.0.2.1 port 1 ssh2";
        match m.file_line(bad) {
            Outcome::Matched {
                failure: Some(f), ..
            } => {
                assert_eq!(f.host_text, "192.0.2.1");
                assert_eq!(f.user.as_deref(), Some("\u{fffd}\u{fffd}"));
            }
            o => panic!("{o:?}"),
        }
        assert_eq!(
            m.file_line(
                b"Feb 25 14:34:10 h sshd[1]: Failed password for x from 999.1.1.1 port 1 ssh2"
            ),
            Outcome::Missed
        );
    }

    #[test]
    fn a_cut_line_has_no_end() {
        // A tail anchored at the end, attacker text (the user) before it.
        let f = compile(
            "line_limit = 100\nfailregex = ['^fail user <F-USER>.*</F-USER> from <HOST> port \\d+$', '^seen <HOST>']",
            "normal",
        )
        .unwrap();
        let mut m = matcher(&f);
        let line = "fail user x from 192.0.2.9 port 1";
        assert_eq!(host_of(&mut m, line).as_deref(), Some("192.0.2.9"));
        // The same text, but the source says it cut the line: the real
        // " from REAL port N" may have followed.
        assert_eq!(m.file_line_cut(line.as_bytes(), true), Outcome::Missed);
        // As long as the service's own limit: it may have cut it.
        let pad = |len: usize| format!("fail user {} from 192.0.2.9 port 1", "x".repeat(len - 32));
        let long = pad(100);
        assert_eq!(long.len(), 100);
        assert_eq!(host_of(&mut m, &long), None);
        assert_eq!(host_of(&mut m, &pad(99)).as_deref(), Some("192.0.2.9"));
        // As long as MAX_LINE: cut by the reader (or here), known to be cut.
        let mut m2 = matcher(
            &compile(
                "failregex = ['^fail user <F-USER>.*</F-USER> from <HOST> port \\d+$']",
                "normal",
            )
            .unwrap(),
        );
        assert_eq!(host_of(&mut m2, &pad(MAX_LINE)), None);
        let mut beyond = pad(MAX_LINE).into_bytes();
        beyond.extend_from_slice(b" from 203.0.113.5 port 2");
        assert_eq!(m2.file_line(&beyond), Outcome::Missed);
        assert_eq!(
            host_of(&mut m2, &pad(MAX_LINE - 1)).as_deref(),
            Some("192.0.2.9")
        );
        // A pattern that needs no end still matches a cut line, but not
        // with a host the cut may have shortened.
        match m.file_line_cut(b"seen 192.0.2.9 and more", true) {
            Outcome::Matched {
                regex: 1,
                failure: Some(f),
            } => assert_eq!(f.host_text, "192.0.2.9"),
            o => panic!("{o:?}"),
        }
        assert_eq!(m.file_line_cut(b"seen 192.0.2.9", true), Outcome::Missed);
        assert_eq!(
            host_of(&mut m, "seen 192.0.2.9").as_deref(),
            Some("192.0.2.9")
        );
        // Journal entries: cut by the source (LineMax), or at the limit.
        let t = Timestamp::from_second(1_124_013_600).unwrap();
        assert!(matches!(
            m.journal_line(line.as_bytes(), t, None, false),
            Outcome::Matched {
                failure: Some(_),
                ..
            }
        ));
        assert_eq!(
            m.journal_line(line.as_bytes(), t, None, true),
            Outcome::Missed
        );
        assert_eq!(
            m.journal_line(long.as_bytes(), t, None, false),
            Outcome::Missed
        );
        // A jail's relay cutting shorter lowers the limit; a higher one
        // does not raise the service's.
        let short = pad(80);
        assert!(host_of(&mut m, &short).is_some());
        m.limit_lines(Some(80));
        assert_eq!(host_of(&mut m, &short), None);
        m.limit_lines(Some(1000));
        assert_eq!(host_of(&mut m, &short), None);
    }

    #[test]
    fn a_dateless_line_takes_the_previous_lines_date_only() {
        let f = compile(r#"failregex = ['^WARNING: fail from <HOST>$']"#, "normal").unwrap();
        let mut m = matcher(&f);
        let time = |m: &mut Matcher, line: &str| match m.file_line(line.as_bytes()) {
            Outcome::Matched {
                failure: Some(f), ..
            } => f.time.map(|t| t.to_string()),
            o => panic!("{o:?}"),
        };
        assert_eq!(
            m.file_line(b"2013-04-15 20:34:08 org.example.Auth warn"),
            Outcome::Missed
        );
        assert_eq!(
            time(&mut m, "WARNING: fail from 192.0.2.1").as_deref(),
            Some("2013-04-15T20:34:08Z")
        );
        // not carried past the next line
        assert_eq!(time(&mut m, "WARNING: fail from 192.0.2.1"), None);
        // a line of its own with a date passes it on too
        assert!(time(&mut m, "2013-04-15 20:35:00 WARNING: fail from 192.0.2.1").is_some());
        assert_eq!(
            time(&mut m, "WARNING: fail from 192.0.2.1").as_deref(),
            Some("2013-04-15T20:35:00Z")
        );
    }

    #[test]
    fn the_date_is_where_the_format_puts_it() {
        let f = compile(
            "date_after = '^\\S+ '\nfailregex = ['^<HOST> fail$']",
            "normal",
        )
        .unwrap();
        let mut m = matcher(&f);
        let time = |m: &mut Matcher, line: &str| match m.file_line(line.as_bytes()) {
            Outcome::Matched {
                failure: Some(f), ..
            } => f.time.map(|t| t.to_string()),
            o => panic!("{line}: {o:?}"),
        };
        // At the start, or where date_after ends.
        assert_eq!(
            time(&mut m, "2005-02-21 09:21:54 192.0.2.3 fail").as_deref(),
            Some("2005-02-21T09:21:54Z")
        );
        assert_eq!(
            time(&mut m, "192.0.2.3 2005-02-21T09:21:54Z fail").as_deref(),
            Some("2005-02-21T09:21:54Z")
        );
        // Nowhere else.
        let f = compile("failregex = ['^<HOST> fail']", "normal").unwrap();
        let mut m = matcher(&f);
        assert_eq!(time(&mut m, "192.0.2.3 fail 2005-02-21T09:21:54Z"), None);
        let errs = compile(
            "date_after = '^<HOST> '\nfailregex = ['^<HOST> fail$']",
            "normal",
        )
        .unwrap_err();
        assert_eq!(errs, ["t.toml:1:14: date_after: no <HOST> or <ADDR> here"]);
    }

    #[test]
    fn dates_inside_lines_are_removed_before_matching() {
        let f = compile(
            r#"date_after = '^[^"]*\['
failregex = ['^<HOST> -\S* \S+ "GET /admin']"#,
            "normal",
        )
        .unwrap();
        let mut m = matcher(&f);
        match m
            .file_line(b"192.0.2.3 - bob [21/Feb/2005:09:21:54 +0100] \"GET /admin HTTP/1.1\" 401")
        {
            Outcome::Matched {
                failure: Some(f), ..
            } => {
                assert_eq!(f.host_text, "192.0.2.3");
                assert_eq!(f.time.unwrap().to_string(), "2005-02-21T08:21:54Z");
            }
            o => panic!("{o:?}"),
        }
    }
}
