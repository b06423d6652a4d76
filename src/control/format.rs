//! Readable CLI output: aligned tables, short durations (`4m12s left`),
//! and colour only on a terminal (never with `NO_COLOR` set).

use std::io::IsTerminal;
use std::time::Duration;

use jiff::Timestamp;
use jiff::tz::TimeZone;

/// ANSI colours used, sparingly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Colour {
    Bold,
    Dim,
    Red,
    Green,
    Yellow,
}

impl Colour {
    fn code(self) -> &'static str {
        match self {
            Colour::Bold => "1",
            Colour::Dim => "2",
            Colour::Red => "31",
            Colour::Green => "32",
            Colour::Yellow => "33",
        }
    }
}

/// Whether to colour: decided once per run.
#[derive(Debug, Clone, Copy)]
pub struct Style {
    colour: bool,
}

impl Style {
    /// Colour when stdout is a terminal and `NO_COLOR` is unset or empty
    /// (<https://no-color.org>).
    pub fn detect() -> Style {
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        Style {
            colour: !no_color && std::io::stdout().is_terminal(),
        }
    }

    /// Never colour.
    #[cfg(test)]
    pub fn plain() -> Style {
        Style { colour: false }
    }

    pub fn paint(&self, text: &str, c: Option<Colour>) -> String {
        match c {
            Some(c) if self.colour => format!("\x1b[{}m{text}\x1b[0m", c.code()),
            _ => text.to_string(),
        }
    }
}

/// One table cell.
#[derive(Debug, Clone)]
pub struct Cell {
    pub text: String,
    pub colour: Option<Colour>,
    /// Numbers align right.
    pub right: bool,
}

impl Cell {
    pub fn text(t: impl Into<String>) -> Cell {
        Cell {
            text: t.into(),
            colour: None,
            right: false,
        }
    }

    pub fn num(n: impl ToString) -> Cell {
        Cell {
            text: n.to_string(),
            colour: None,
            right: true,
        }
    }

    pub fn colour(mut self, c: Option<Colour>) -> Cell {
        self.colour = c;
        self
    }
}

/// Columns padded to their widest cell (measured without colour codes),
/// two spaces apart, header in bold; no trailing spaces.
pub fn table(style: &Style, header: &[&str], rows: &[Vec<Cell>]) -> String {
    let cols = header.len();
    let mut width: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, c) in row.iter().enumerate().take(cols) {
            width[i] = width[i].max(c.text.chars().count());
        }
    }
    let right: Vec<bool> = (0..cols)
        .map(|i| rows.first().and_then(|r| r.get(i)).is_some_and(|c| c.right))
        .collect();
    let mut out = String::new();
    let line = |cells: Vec<(String, Option<Colour>)>, out: &mut String| {
        let mut text = String::new();
        for (i, (t, c)) in cells.iter().enumerate() {
            let pad = width[i].saturating_sub(t.chars().count());
            let last = i + 1 == cells.len();
            if i > 0 {
                text.push_str("  ");
            }
            if right[i] {
                text.push_str(&" ".repeat(pad));
                text.push_str(&style.paint(t, *c));
            } else {
                text.push_str(&style.paint(t, *c));
                if !last {
                    text.push_str(&" ".repeat(pad));
                }
            }
        }
        out.push_str(text.trim_end());
        out.push('\n');
    };
    line(
        header
            .iter()
            .map(|h| (h.to_string(), Some(Colour::Bold)))
            .collect(),
        &mut out,
    );
    for row in rows {
        line(
            row.iter().map(|c| (c.text.clone(), c.colour)).collect(),
            &mut out,
        );
    }
    out
}

/// The two largest units, no spaces: `4m12s`, `1h5m`, `2d3h`, `45s`.
pub fn short_duration(d: Duration) -> String {
    let secs = d.as_secs();
    if secs == 0 {
        return "0s".into();
    }
    const UNITS: [(&str, u64); 5] = [
        ("w", 604_800),
        ("d", 86_400),
        ("h", 3600),
        ("m", 60),
        ("s", 1),
    ];
    let mut out = String::new();
    let mut rest = secs;
    let mut used = 0;
    for (i, (unit, size)) in UNITS.iter().enumerate() {
        if rest >= *size {
            out.push_str(&format!("{}{unit}", rest / size));
            rest %= size;
            used += 1;
            // Take the next unit only if it directly follows.
            if used == 2 {
                break;
            }
            if let Some((_, next)) = UNITS.get(i + 1) {
                if rest < *next {
                    break;
                }
            }
        } else if used > 0 {
            break;
        }
    }
    out
}

/// Remaining ban time: `4m12s left`, `permanent`, `expiring`.
pub fn time_left(expires_at_usec: u64, now: Timestamp) -> String {
    if expires_at_usec == 0 {
        return "permanent".into();
    }
    let left = i64::try_from(expires_at_usec)
        .unwrap_or(i64::MAX)
        .saturating_sub(now.as_microsecond());
    if left <= 0 {
        return "expiring".into();
    }
    let left = Duration::from_micros(left.unsigned_abs());
    format!("{} left", short_duration(left))
}

/// A realtime microsecond count as local time, `2024-05-01 12:00:03`.
pub fn local_time(usec: u64) -> String {
    let Some(t) = i64::try_from(usec)
        .ok()
        .and_then(|u| Timestamp::from_microsecond(u).ok())
    else {
        return "-".into();
    };
    t.to_zoned_datetime(TimeZone::system())
        .strftime("%Y-%m-%d %H:%M:%S")
        .to_string()
}

/// A realtime microsecond count as RFC 3339 UTC (for JSON), or `None`
/// for 0.
pub fn rfc3339(usec: u64) -> Option<String> {
    if usec == 0 {
        return None;
    }
    i64::try_from(usec)
        .ok()
        .and_then(|u| Timestamp::from_microsecond(u).ok())
        .map(|t| t.round(jiff::Unit::Second).unwrap_or(t).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_are_short() {
        for (secs, text) in [
            (0, "0s"),
            (45, "45s"),
            (252, "4m12s"),
            (3600, "1h"),
            (3900, "1h5m"),
            (3605, "1h"),
            (183_600, "2d3h"),
            (1_382_400, "2w2d"),
        ] {
            assert_eq!(short_duration(Duration::from_secs(secs)), text, "{secs}");
        }
    }

    #[test]
    fn time_left_reads_naturally() {
        let now = Timestamp::from_second(1_000_000).unwrap();
        assert_eq!(time_left(0, now), "permanent");
        assert_eq!(time_left(1_000_252_000_000, now), "4m12s left");
        assert_eq!(time_left(999_000_000_000, now), "expiring");
    }

    #[test]
    fn tables_align_and_never_trail() {
        let t = table(
            &Style::plain(),
            &["JAIL", "BANS"],
            &[
                vec![Cell::text("sshd"), Cell::num(12)],
                vec![Cell::text("nginx-http-auth"), Cell::num(3)],
            ],
        );
        assert_eq!(
            t,
            "JAIL             BANS\nsshd               12\nnginx-http-auth     3\n"
        );
        assert!(t.lines().all(|l| !l.ends_with(' ')));
    }

    #[test]
    fn json_times_are_utc() {
        assert_eq!(rfc3339(0), None);
        assert_eq!(
            rfc3339(1_700_000_000_000_000).as_deref(),
            Some("2023-11-14T22:13:20Z")
        );
    }
}
