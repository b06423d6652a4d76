//! Small pieces of Fail2ban's value syntax (fail2ban/helpers.py,
//! server/mytime.py): `name[opt=value, ...]`, splitting action lists,
//! booleans, word lists and time expressions (`10m`, `1h 30m`, `-1`).

/// `name[p1=v1, p2="v 2"][p3='v3']` → name and options, as Fail2ban's
/// `extractOptions` (values stripped; quotes allow `,` and `]` inside).
pub fn extract_options(text: &str) -> Result<(String, Vec<(String, String)>), String> {
    let (name, rest) = match text.find('[') {
        Some(i) => (&text[..i], Some(&text[i + 1..])),
        None => (text.trim_end(), None),
    };
    if name.is_empty() {
        return Err("expected a name before the options".into());
    }
    let mut opts: Vec<(String, String)> = Vec::new();
    let Some(rest) = rest else {
        return Ok((name.to_string(), opts));
    };
    let body = rest.trim_end();
    let Some(body) = body.strip_suffix(']') else {
        return Err(format!("{text:?}: the options are not closed with ']'"));
    };
    let b = body.as_bytes();
    let mut i = 0;
    loop {
        while i < b.len() && b[i].is_ascii_whitespace() {
            i += 1;
        }
        if i >= b.len() {
            break;
        }
        // `,?\s*$`: a trailing comma.
        if b[i] == b',' && body[i + 1..].trim().is_empty() {
            break;
        }
        let start = i;
        while i < b.len() && (b[i].is_ascii_alphanumeric() || matches!(b[i], b'_' | b'-' | b'.')) {
            i += 1;
        }
        if i == start || i >= b.len() || b[i] != b'=' {
            return Err(format!(
                "expected option=value at {:?}",
                body[start..].chars().take(25).collect::<String>()
            ));
        }
        let key = body[start..i].to_string();
        i += 1;
        let value;
        if i < b.len() && (b[i] == b'"' || b[i] == b'\'') {
            let q = b[i];
            let Some(end) = body[i + 1..].find(char::from(q)) else {
                return Err(format!("option {key}: the quote is not closed"));
            };
            value = body[i + 1..i + 1 + end].to_string();
            i += end + 2;
        } else {
            let end = body[i..].find([',', ']']).map_or(b.len(), |e| i + e);
            value = body[i..end].to_string();
            i = end;
        }
        // separator: `,` or `]\s*[` or the end
        if i < b.len() {
            if b[i] == b',' {
                i += 1;
            } else if b[i] == b']' {
                let after = body[i + 1..].trim_start();
                if let Some(next) = after.strip_prefix('[') {
                    i = b.len() - next.len();
                } else {
                    return Err(format!("unexpected text after option {key}"));
                }
            } else {
                return Err(format!("unexpected text after option {key}"));
            }
        }
        let key = key.trim().to_string();
        let value = value.trim().to_string();
        match opts.iter_mut().find(|(k, _)| *k == key) {
            Some(slot) => slot.1 = value,
            None => opts.push((key, value)),
        }
    }
    Ok((name.to_string(), opts))
}

/// Split an `action = ...` value into its actions (Fail2ban's
/// `splitWithOptions`): whitespace separates them, except inside an
/// option block `[...]`.
pub fn split_with_options(text: &str) -> Vec<(usize, String)> {
    let b = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i].is_ascii_whitespace() {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && !b[i].is_ascii_whitespace() && b[i] != b'[' {
            i += 1;
        }
        let mut end = i;
        if i < b.len() && i > start {
            // optional whitespace, then an option block
            let mut j = i;
            while j < b.len() && b[j].is_ascii_whitespace() && b[j] != b'\n' {
                j += 1;
            }
            if j < b.len() && b[j] == b'[' {
                if let Some(close) = option_block_end(text, j) {
                    end = close;
                }
            }
        }
        if end == start || (end < b.len() && !b[end].is_ascii_whitespace()) {
            // not a name[options]: a plain word
            end = start;
            while end < b.len() && !b[end].is_ascii_whitespace() {
                end += 1;
            }
        }
        out.push((start, text[start..end].trim().to_string()));
        i = end.max(start + 1);
    }
    out
}

/// The end (after `]`, and after further `[...]` groups) of the option
/// block starting at `open` (`[`), quotes respected.
fn option_block_end(text: &str, open: usize) -> Option<usize> {
    let b = text.as_bytes();
    let mut i = open + 1;
    let mut quote: Option<u8> = None;
    while i < b.len() {
        match (quote, b[i]) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, b'"') | (None, b'\'') => quote = Some(b[i]),
            (None, b']') => {
                // `][` continues with another group
                let mut j = i + 1;
                while j < b.len() && b[j].is_ascii_whitespace() && b[j] != b'\n' {
                    j += 1;
                }
                if j < b.len() && b[j] == b'[' {
                    i = j;
                } else {
                    return Some(i + 1);
                }
            }
            _ => {}
        }
        i += 1;
    }
    None
}

/// Python's `_as_bool` for strings.
pub fn as_bool(text: &str) -> bool {
    matches!(
        text.trim().to_lowercase().as_str(),
        "1" | "on" | "true" | "yes"
    )
}

/// Fail2ban's `splitwords`: split on spaces, commas and newlines.
pub fn split_words(text: &str) -> Vec<String> {
    text.split([' ', ',', '\n', '\t'])
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

/// Fail2ban's `MyTime.str2seconds`: `"10m"`, `"1h 30m"`, `"1d12h"`,
/// `"3600"`, `"-1"`, `"1year-6mo"`, `"2*60"`. Returns seconds (rounded).
pub fn str2seconds(text: &str) -> Result<i64, String> {
    let s = text.trim();
    if s.is_empty() {
        return Err("empty time".into());
    }
    // Tokenize: numbers with a unit become number * unit; spaces between
    // two operands are "+".
    #[derive(Debug, Clone, Copy, PartialEq)]
    enum Tok {
        Num(f64),
        Op(u8),
    }
    let b = s.as_bytes();
    let mut toks: Vec<Tok> = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c.is_ascii_whitespace() {
            i += 1;
            continue;
        }
        if c.is_ascii_digit() || c == b'.' {
            let st = i;
            while i < b.len() && (b[i].is_ascii_digit() || b[i] == b'.') {
                i += 1;
            }
            let n: f64 = s[st..i]
                .parse()
                .map_err(|_| format!("time {text:?}: bad number {:?}", &s[st..i]))?;
            // optional unit (after optional spaces)
            let mut j = i;
            while j < b.len() && b[j].is_ascii_whitespace() {
                j += 1;
            }
            let ust = j;
            while j < b.len() && b[j].is_ascii_alphabetic() {
                j += 1;
            }
            let mut value = n;
            if j > ust {
                let unit = s[ust..j].to_lowercase();
                value *= unit_seconds(&unit)
                    .ok_or_else(|| format!("time {text:?}: unknown unit {unit:?}"))?;
                i = j;
            }
            if matches!(toks.last(), Some(Tok::Num(_))) {
                toks.push(Tok::Op(b'+'));
            }
            toks.push(Tok::Num(value));
            continue;
        }
        if matches!(c, b'+' | b'-' | b'*' | b'/' | b'(' | b')') {
            if c == b'(' && matches!(toks.last(), Some(Tok::Num(_)) | Some(Tok::Op(b')'))) {
                toks.push(Tok::Op(b'+'));
            }
            toks.push(Tok::Op(c));
            i += 1;
            continue;
        }
        return Err(format!("time {text:?}: unexpected {:?}", char::from(c)));
    }
    // Recursive descent over the tokens.
    struct P<'t> {
        t: &'t [Tok],
        i: usize,
    }
    impl P<'_> {
        fn expr(&mut self) -> Option<f64> {
            let mut v = self.term()?;
            while let Some(Tok::Op(o @ (b'+' | b'-'))) = self.t.get(self.i).copied() {
                self.i += 1;
                let r = self.term()?;
                v = if o == b'+' { v + r } else { v - r };
            }
            Some(v)
        }
        fn term(&mut self) -> Option<f64> {
            let mut v = self.unary()?;
            while let Some(Tok::Op(o @ (b'*' | b'/'))) = self.t.get(self.i).copied() {
                self.i += 1;
                let r = self.unary()?;
                v = if o == b'*' { v * r } else { v / r };
            }
            Some(v)
        }
        fn unary(&mut self) -> Option<f64> {
            match self.t.get(self.i).copied()? {
                Tok::Op(b'-') => {
                    self.i += 1;
                    Some(-self.unary()?)
                }
                Tok::Op(b'+') => {
                    self.i += 1;
                    self.unary()
                }
                Tok::Op(b'(') => {
                    self.i += 1;
                    let v = self.expr()?;
                    (self.t.get(self.i) == Some(&Tok::Op(b')'))).then_some(())?;
                    self.i += 1;
                    Some(v)
                }
                Tok::Num(n) => {
                    self.i += 1;
                    Some(n)
                }
                Tok::Op(_) => None,
            }
        }
    }
    let mut p = P { t: &toks, i: 0 };
    let v = p
        .expr()
        .filter(|_| p.i == toks.len())
        .ok_or_else(|| format!("time {text:?} is not an expression Fail2ban understands"))?;
    if !v.is_finite() || v.abs() > 1e15 {
        return Err(format!("time {text:?} is out of range"));
    }
    Ok(v.round() as i64)
}

/// Fail2ban's unit abbreviations (case-insensitive; "m" is minutes,
/// months are "mo"/"mon").
fn unit_seconds(unit: &str) -> Option<f64> {
    const YEAR: f64 = (365.0 * 3.0 + 366.0) * 86_400.0 / 4.0;
    Some(match unit {
        "days" | "day" | "da" | "dd" | "d" => 86_400.0,
        "weeks" | "week" | "wee" | "we" | "ww" | "w" => 7.0 * 86_400.0,
        "months" | "month" | "mon" | "mo" => YEAR / 12.0,
        "years" | "year" | "yea" | "ye" | "yy" | "y" => YEAR,
        "seconds" | "second" | "sec" | "se" | "ss" | "s" => 1.0,
        "minutes" | "minute" | "min" | "mi" | "mm" | "m" => 60.0,
        "hours" | "hour" | "hou" | "ho" | "hh" | "h" => 3600.0,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_like_fail2ban() {
        assert_eq!(
            extract_options(
                r#"iptables-multiport[port="ssh,2222", protocol=tcp, chain="<known/chain>"]"#
            )
            .unwrap(),
            (
                "iptables-multiport".to_string(),
                vec![
                    ("port".into(), "ssh,2222".into()),
                    ("protocol".into(), "tcp".into()),
                    ("chain".into(), "<known/chain>".into())
                ]
            )
        );
        assert_eq!(
            extract_options("sshd[mode=aggressive][x='a]b',]")
                .unwrap()
                .1,
            vec![
                ("mode".into(), "aggressive".into()),
                ("x".into(), "a]b".into())
            ]
        );
        assert_eq!(extract_options("sshd").unwrap(), ("sshd".into(), vec![]));
        assert!(extract_options("sshd[mode]").is_err());
        assert!(extract_options("sshd[mode=a").is_err());
    }

    #[test]
    fn action_lists_split_outside_options() {
        let v: Vec<String> = split_with_options(
            "iptables[port=\"a, b\", x=y]\n  sendmail-whois[dest=\"root@x\", sender=\"f b\"]  dummy",
        )
        .into_iter()
        .map(|(_, s)| s)
        .collect();
        assert_eq!(
            v,
            [
                "iptables[port=\"a, b\", x=y]",
                "sendmail-whois[dest=\"root@x\", sender=\"f b\"]",
                "dummy"
            ]
        );
    }

    #[test]
    fn times_like_mytime() {
        for (t, s) in [
            ("600", 600),
            ("10m", 600),
            ("1h 30m", 5400),
            ("1hour+30min", 5400),
            ("0d 1h 30m", 5400),
            ("1d12h", 129_600),
            ("-1", -1),
            ("48h", 172_800),
            ("1w", 604_800),
            ("1mo", 2_629_800),
            ("1year-6mo", 15_778_800),
            ("6 months", 15_778_800),
            ("2*60", 120),
            ("1.5h", 5400),
        ] {
            assert_eq!(str2seconds(t), Ok(s), "{t}");
        }
        assert!(str2seconds("soon").is_err());
        assert!(str2seconds("10 parsecs").is_err());
    }
}
