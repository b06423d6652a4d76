//! Pattern templates: `<HOST>`, `<ADDR>`, `<F-NAME>...</F-NAME>` and shared
//! snippets, expanded into `regex`-crate syntax.
//!
//! Tokens are `<` + an uppercase name + `>`. Built-ins:
//!
//! | token | meaning |
//! |---|---|
//! | `<HOST>` | an IPv4 or IPv6 address (optionally `[bracketed]`, `::ffff:` stripped) or a DNS name, captured as `host` |
//! | `<ADDR>` | the same without DNS names |
//! | `<F-NAME>`…`</F-NAME>` | a named capture `name` (lowercased): `F-USER` → `user`, `F-CONTENT` → `content`, `F-SESSION` → `session`, `F-ATTEMPTS` → `attempts` (digits: how many attempts the line reports) |
//!
//! Any other `<NAME>` is a snippet from the filter's `[snippets]` or from
//! `common.toml`, expanded recursively. `(?P<name>...)` and `(?<name>...)`
//! are the regex crate's own syntax and left alone.

use std::collections::HashSet;

/// IPv4 dotted quad (validated after matching).
pub const IPV4: &str = r"(?:\d{1,3}\.){3}\d{1,3}";
/// IPv6 in its textual forms, including `::` compression and an embedded
/// IPv4 tail (validated after matching).
pub const IPV6: &str = r"(?:[0-9A-Fa-f]{0,4}:){2,7}(?:[0-9A-Fa-f]{1,4}|(?:\d{1,3}\.){3}\d{1,3})?";
/// A DNS name: dot-separated labels, at least one letter (so a port
/// number or a stray digit group is never taken for a host).
pub const DNS: &str =
    r"(?:[A-Za-z0-9_-]+\.)*[A-Za-z0-9_-]*[A-Za-z][A-Za-z0-9_-]*(?:\.[A-Za-z0-9_-]+)*\.?";

/// The longest regex a pattern may expand to. The longest shipped pattern
/// expands to 1.2 KiB (apache-botsearch), and long hand-written
/// alternations fit with room to spare; but snippets that repeat other
/// snippets grow exponentially (`S1 = "<S2><S2>"` 20 levels deep is a
/// million copies), so expansion stops here with an error instead.
pub const MAX_EXPANDED: usize = 256 * 1024;
/// How deep snippets may include snippets.
pub const MAX_DEPTH: usize = 32;

/// Why a template could not be expanded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    #[error("unknown token <{0}> (not HOST, ADDR, F-NAME, nor a snippet)")]
    Unknown(String),
    #[error("snippet <{0}> includes itself")]
    Cycle(String),
    #[error("<{0}> appears twice; a pattern has one host")]
    DuplicateHost(String),
    #[error("</F-{0}> closes a capture that is not open")]
    Unbalanced(String),
    #[error("<F-{0}> is never closed")]
    Unclosed(String),
    #[error("capture F-{0} is used twice in one pattern")]
    DuplicateCapture(String),
    #[error(
        "expands to more than {} KiB (via {}): snippets that repeat other snippets grow exponentially",
        MAX_EXPANDED / 1024, chain(.0)
    )]
    TooLong(Vec<String>),
    #[error("snippets nest more than {MAX_DEPTH} deep (via {})", chain(.0))]
    TooDeep(Vec<String>),
}

/// `<A> → <B> → <C>`, at most a few steps (the chain may be 32 long).
fn chain(names: &[String]) -> String {
    let shown: Vec<String> = names.iter().take(4).map(|n| format!("<{n}>")).collect();
    let more = if names.len() > 4 { " → …" } else { "" };
    format!("{}{more}", shown.join(" → "))
}

/// An expanded pattern and what it captures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expanded {
    /// Regex text in the `regex` crate's syntax.
    pub regex: String,
    /// Captures the host (`<HOST>` or `<ADDR>`).
    pub has_host: bool,
    /// `<ADDR>` (addresses only) rather than `<HOST>`.
    pub addr_only: bool,
    /// Names of the `F-` captures, lowercased.
    pub captures: Vec<String>,
}

/// Expand `pattern`; `snippet` looks a snippet name up.
pub fn expand<'s>(
    pattern: &str,
    snippet: &dyn Fn(&str) -> Option<&'s str>,
) -> Result<Expanded, TemplateError> {
    let mut out = Expanded {
        regex: String::with_capacity(pattern.len() * 2),
        has_host: false,
        addr_only: false,
        captures: Vec::new(),
    };
    let mut open: Vec<String> = Vec::new();
    let mut stack = Vec::new();
    expand_into(pattern, snippet, &mut out, &mut open, &mut stack)?;
    if let Some(name) = open.pop() {
        return Err(TemplateError::Unclosed(name));
    }
    Ok(out)
}

fn expand_into<'s>(
    pattern: &str,
    snippet: &dyn Fn(&str) -> Option<&'s str>,
    out: &mut Expanded,
    open: &mut Vec<String>,
    stack: &mut Vec<String>,
) -> Result<(), TemplateError> {
    let bytes = pattern.as_bytes();
    let mut i = 0;
    let mut copied = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' {
            i += 2; // an escaped character is never a token
            continue;
        }
        if bytes[i] != b'<' {
            i += 1;
            continue;
        }
        let Some((token, end)) = token_at(pattern, i) else {
            i += 1;
            continue;
        };
        out.regex.push_str(&pattern[copied..i]);
        if out.regex.len() > MAX_EXPANDED {
            return Err(TemplateError::TooLong(stack.clone()));
        }
        i = end;
        copied = end;
        match token {
            "HOST" | "ADDR" => {
                if out.has_host {
                    return Err(TemplateError::DuplicateHost(token.to_string()));
                }
                out.has_host = true;
                out.addr_only = token == "ADDR";
                out.regex.push_str(&host_regex(token == "ADDR"));
            }
            t if t.starts_with("F-") => {
                let name = t[2..].to_ascii_lowercase();
                if out.captures.contains(&name) {
                    return Err(TemplateError::DuplicateCapture(t[2..].to_string()));
                }
                out.captures.push(name.clone());
                open.push(name.clone());
                out.regex.push_str("(?P<");
                out.regex.push_str(&name);
                out.regex.push('>');
            }
            t if t.starts_with("/F-") => {
                let name = t[3..].to_ascii_lowercase();
                if open.last() != Some(&name) {
                    return Err(TemplateError::Unbalanced(t[3..].to_string()));
                }
                open.pop();
                out.regex.push(')');
            }
            name => {
                let body = snippet(name).ok_or_else(|| TemplateError::Unknown(name.to_string()))?;
                if stack.iter().any(|s| s == name) {
                    return Err(TemplateError::Cycle(name.to_string()));
                }
                stack.push(name.to_string());
                if stack.len() > MAX_DEPTH {
                    return Err(TemplateError::TooDeep(stack.clone()));
                }
                out.regex.push_str("(?:");
                expand_into(body, snippet, out, open, stack)?;
                out.regex.push(')');
                stack.pop();
            }
        }
    }
    out.regex.push_str(&pattern[copied..]);
    if out.regex.len() > MAX_EXPANDED {
        return Err(TemplateError::TooLong(stack.clone()));
    }
    Ok(())
}

/// `<NAME>` at `i`, unless it is the regex crate's `(?P<name>` / `(?<name>`.
fn token_at(pattern: &str, i: usize) -> Option<(&str, usize)> {
    let before = &pattern[..i];
    if before.ends_with("(?P") || before.ends_with("(?") {
        return None;
    }
    let rest = &pattern[i + 1..];
    let close = rest.find('>')?;
    let name = &rest[..close];
    let body = name.strip_prefix('/').unwrap_or(name);
    let valid = body.bytes().next().is_some_and(|b| b.is_ascii_uppercase())
        && body
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
    if !valid || (name.starts_with('/') && !body.starts_with("F-")) {
        return None;
    }
    Some((name, i + 1 + close + 1))
}

/// The regex behind `<HOST>` / `<ADDR>`: an address in brackets, or an
/// address or name after an optional `::ffff:` (an IPv4-mapped address
/// counts as the IPv4 one). Only addresses may be bracketed, so
/// `[preauth]` is never a host.
fn host_regex(addr_only: bool) -> String {
    let names = if addr_only {
        String::new()
    } else {
        format!("|{DNS}")
    };
    format!(
        r"(?:::[fF]{{4}}:)?(?P<host>\[(?:::[fF]{{4}}:)?(?:{IPV6}|{IPV4})\]|{IPV6}|{IPV4}{names})"
    )
}

/// Captured host text as shown to people: brackets and an IPv4-mapped
/// prefix removed.
pub fn clean_host_text(text: &str) -> &str {
    let t = text
        .strip_prefix('[')
        .and_then(|t| t.strip_suffix(']'))
        .unwrap_or(text);
    match t.get(..7) {
        Some(p) if p.eq_ignore_ascii_case("::ffff:") && t[7..].contains('.') => &t[7..],
        _ => t,
    }
}

/// Snippet names used by a pattern (for `duplicates`-style checks and
/// listing); unknown names are included.
pub fn snippet_names(pattern: &str) -> HashSet<String> {
    let mut names = HashSet::new();
    let mut i = 0;
    while let Some(off) = pattern[i..].find('<') {
        let at = i + off;
        if let Some((name, end)) = token_at(pattern, at) {
            if !matches!(name, "HOST" | "ADDR")
                && !name.starts_with("F-")
                && !name.starts_with("/F-")
            {
                names.insert(name.to_string());
            }
            i = end;
        } else {
            i = at + 1;
        }
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_snippets(_: &str) -> Option<&'static str> {
        None
    }

    #[test]
    fn expands_host_and_captures() {
        let e = expand(
            r"^Failed for <F-USER>.*</F-USER> from <HOST>$",
            &no_snippets,
        )
        .unwrap();
        assert!(e.has_host && !e.addr_only);
        assert_eq!(e.captures, ["user"]);
        assert!(e.regex.starts_with("^Failed for (?P<user>.*) from "));
        regex::Regex::new(&e.regex).unwrap();
    }

    #[test]
    fn leaves_regex_named_groups_and_escapes_alone() {
        let e = expand(r"(?P<pid>\d+) (?<x>a) \<HOST>", &no_snippets).unwrap();
        assert_eq!(e.regex, r"(?P<pid>\d+) (?<x>a) \<HOST>");
        assert!(!e.has_host);
    }

    #[test]
    fn snippets_expand_recursively_and_cycles_are_caught() {
        let lookup = |n: &str| match n {
            "A" => Some("a<B>"),
            "B" => Some("b"),
            "C" => Some("<D>"),
            "D" => Some("<C>"),
            _ => None,
        };
        assert_eq!(expand("<A>!", &lookup).unwrap().regex, "(?:a(?:b))!");
        assert_eq!(
            expand("<C>", &lookup),
            Err(TemplateError::Cycle("C".into()))
        );
        assert_eq!(
            expand("<NOPE>", &lookup),
            Err(TemplateError::Unknown("NOPE".into()))
        );
    }

    #[test]
    fn doubling_snippets_stop_at_the_limit() {
        // S1 = "<S2><S2>", ..., S19 = "<S20><S20>", S20 = "ab": 2^19 copies.
        let bodies: Vec<String> = (1..=20)
            .map(|i| {
                if i == 20 {
                    "ab".to_string()
                } else {
                    format!("<S{}><S{}>", i + 1, i + 1)
                }
            })
            .collect();
        let lookup = |n: &str| -> Option<&str> {
            let i: usize = n.strip_prefix('S')?.parse().ok()?;
            bodies.get(i.checked_sub(1)?).map(String::as_str)
        };
        let err = expand("^<S1> from <HOST>$", &lookup).unwrap_err();
        assert!(
            matches!(&err, TemplateError::TooLong(via) if via[0] == "S1"),
            "{err:?}"
        );
        assert!(
            err.to_string()
                .starts_with("expands to more than 256 KiB (via <S1> → <S2> → <S3> → <S4> → …)"),
            "{err}"
        );
        // Ten levels (1024 copies) is fine.
        assert!(expand("^<S11> from <HOST>$", &lookup).is_ok());
        // A chain deeper than MAX_DEPTH, each level small.
        let deep: Vec<String> = (0..40).map(|i| format!("x<D{}>", i + 1)).collect();
        let lookup = |n: &str| -> Option<&str> {
            let i: usize = n.strip_prefix('D')?.parse().ok()?;
            Some(deep.get(i).map_or("end", String::as_str))
        };
        assert!(matches!(
            expand("<D0>", &lookup),
            Err(TemplateError::TooDeep(v)) if v.len() == MAX_DEPTH + 1
        ));
    }

    #[test]
    fn structural_errors() {
        assert_eq!(
            expand("<HOST> <ADDR>", &no_snippets),
            Err(TemplateError::DuplicateHost("ADDR".into()))
        );
        assert_eq!(
            expand("<F-USER>x", &no_snippets),
            Err(TemplateError::Unclosed("user".into()))
        );
        assert_eq!(
            expand("x</F-USER>", &no_snippets),
            Err(TemplateError::Unbalanced("USER".into()))
        );
    }

    #[test]
    fn host_regex_takes_the_forms_admins_see() {
        let e = expand("^from <HOST>$", &no_snippets).unwrap();
        let re = regex::Regex::new(&e.regex).unwrap();
        for (line, host) in [
            ("from 192.0.2.7", "192.0.2.7"),
            ("from ::ffff:192.0.2.7", "192.0.2.7"),
            ("from [2001:db8::1]", "[2001:db8::1]"),
            ("from aaaa:bbbb:cccc:1234::1:1", "aaaa:bbbb:cccc:1234::1:1"),
            ("from example.com", "example.com"),
            ("from ::1", "::1"),
            ("from [::ffff:192.0.2.8]", "[::ffff:192.0.2.8]"),
        ] {
            let caps = re.captures(line).unwrap_or_else(|| panic!("{line}"));
            assert_eq!(&caps["host"], host, "{line}");
        }
        assert!(!re.is_match("from [preauth]"));
        assert!(!re.is_match("from 46038"));
        assert_eq!(clean_host_text("[::ffff:192.0.2.8]"), "192.0.2.8");
        assert_eq!(clean_host_text("[2001:db8::1]"), "2001:db8::1");
    }
}
