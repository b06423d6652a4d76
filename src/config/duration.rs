//! Durations as admins write them: `"30s"`, `"10m"`, `"1h 30m"`, `"1d"`,
//! `"1w"`, a bare integer of seconds (Fail2ban's habit), and for ban times
//! `"permanent"`.

use std::fmt;
use std::time::Duration;

/// A ban length: a finite duration or forever.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum BanTime {
    /// Expires after this long.
    For(Duration),
    /// Never expires (no kernel timeout).
    Permanent,
}

impl BanTime {
    /// The finite part, `None` for permanent.
    pub fn duration(self) -> Option<Duration> {
        match self {
            BanTime::For(d) => Some(d),
            BanTime::Permanent => None,
        }
    }

    /// Microseconds as the D-Bus API counts them (0 = permanent).
    pub fn as_usec(self) -> u64 {
        match self {
            BanTime::For(d) => u64::try_from(d.as_micros()).unwrap_or(u64::MAX),
            BanTime::Permanent => 0,
        }
    }
}

impl fmt::Display for BanTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BanTime::For(d) => f.write_str(&format_duration(*d)),
            BanTime::Permanent => f.write_str("permanent"),
        }
    }
}

/// Why a duration text was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    #[error("empty duration")]
    Empty,
    #[error(
        "duration {0:?}: expected a number followed by a unit (s, m, h, d, w), e.g. \"1h 30m\""
    )]
    Syntax(String),
    #[error("duration {text:?}: unknown unit {unit:?} (use s, m, h, d or w)")]
    Unit { text: String, unit: String },
    #[error("duration {0:?} is too large")]
    Overflow(String),
}

const UNITS: &[(&[&str], u64)] = &[
    (&["s", "sec", "secs", "second", "seconds"], 1),
    (&["m", "min", "mins", "minute", "minutes"], 60),
    (&["h", "hr", "hour", "hours"], 3600),
    (&["d", "day", "days"], 86_400),
    (&["w", "week", "weeks"], 7 * 86_400),
];

/// Parse `"1h 30m"` and friends. A bare number is seconds.
pub fn parse_duration(text: &str) -> Result<Duration, DurationError> {
    let s = text.trim();
    if s.is_empty() {
        return Err(DurationError::Empty);
    }
    let bytes = s.as_bytes();
    let mut i = 0;
    let mut total: u64 = 0;
    while i < bytes.len() {
        while i < bytes.len() && bytes[i].is_ascii_whitespace() {
            i += 1;
        }
        if i == bytes.len() {
            break;
        }
        let start = i;
        while i < bytes.len() && bytes[i].is_ascii_digit() {
            i += 1;
        }
        if start == i {
            return Err(DurationError::Syntax(text.to_string()));
        }
        let number: u64 = s[start..i]
            .parse()
            .map_err(|_| DurationError::Overflow(text.to_string()))?;
        while i < bytes.len() && bytes[i].is_ascii_whitespace() {
            i += 1;
        }
        let ustart = i;
        while i < bytes.len() && bytes[i].is_ascii_alphabetic() {
            i += 1;
        }
        let unit = &s[ustart..i];
        let factor = if unit.is_empty() {
            // A bare number is seconds, but only alone: "1h 30" is a typo.
            if start != 0 || i != bytes.len() {
                return Err(DurationError::Syntax(text.to_string()));
            }
            1
        } else {
            let lower = unit.to_ascii_lowercase();
            UNITS
                .iter()
                .find(|(names, _)| names.contains(&lower.as_str()))
                .map(|(_, f)| *f)
                .ok_or_else(|| DurationError::Unit {
                    text: text.to_string(),
                    unit: unit.to_string(),
                })?
        };
        total = number
            .checked_mul(factor)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(|| DurationError::Overflow(text.to_string()))?;
    }
    // Keep far below what timestamps and the kernel can represent.
    if total > 100 * 366 * 86_400 {
        return Err(DurationError::Overflow(text.to_string()));
    }
    Ok(Duration::from_secs(total))
}

/// Parse a ban time: a duration or `"permanent"` (also `"forever"`, `"-1"`
/// as Fail2ban writes it).
pub fn parse_bantime(text: &str) -> Result<BanTime, DurationError> {
    match text.trim().to_ascii_lowercase().as_str() {
        "permanent" | "forever" | "-1" => Ok(BanTime::Permanent),
        _ => parse_duration(text).map(BanTime::For),
    }
}

/// Compact human form: `1w 2d`, `1h 30m`, `45s`, `0s`.
pub fn format_duration(d: Duration) -> String {
    let mut secs = d.as_secs();
    if secs == 0 {
        return if d.is_zero() {
            "0s".into()
        } else {
            format!("{}ms", d.as_millis())
        };
    }
    let mut parts = Vec::new();
    for (unit, size) in [
        ("w", 604_800),
        ("d", 86_400),
        ("h", 3600),
        ("m", 60),
        ("s", 1),
    ] {
        if secs >= size {
            parts.push(format!("{}{unit}", secs / size));
            secs %= size;
        }
    }
    parts.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_documented_forms() {
        for (text, secs) in [
            ("30s", 30),
            ("10m", 600),
            ("1h 30m", 5400),
            ("1h30m", 5400),
            ("1d", 86_400),
            ("1w", 604_800),
            ("600", 600),
            ("2 hours", 7200),
            (" 5M ", 300),
        ] {
            assert_eq!(
                parse_duration(text),
                Ok(Duration::from_secs(secs)),
                "{text}"
            );
        }
    }

    #[test]
    fn refuses_what_it_cannot_read() {
        assert_eq!(parse_duration(""), Err(DurationError::Empty));
        assert!(matches!(
            parse_duration("10 parsecs"),
            Err(DurationError::Unit { .. })
        ));
        assert!(matches!(parse_duration("h"), Err(DurationError::Syntax(_))));
        assert!(matches!(
            parse_duration("1h 30"),
            Err(DurationError::Syntax(_))
        ));
        assert!(matches!(
            parse_duration("-5m"),
            Err(DurationError::Syntax(_))
        ));
        assert!(matches!(
            parse_duration("99999999999999999999s"),
            Err(DurationError::Overflow(_))
        ));
        assert!(matches!(
            parse_duration("1000000w"),
            Err(DurationError::Overflow(_))
        ));
    }

    #[test]
    fn bantime_knows_permanent() {
        assert_eq!(parse_bantime("permanent"), Ok(BanTime::Permanent));
        assert_eq!(parse_bantime("-1"), Ok(BanTime::Permanent));
        assert_eq!(
            parse_bantime("10m"),
            Ok(BanTime::For(Duration::from_secs(600)))
        );
        assert_eq!(BanTime::Permanent.as_usec(), 0);
    }

    #[test]
    fn formats_compactly() {
        assert_eq!(format_duration(Duration::from_secs(5400)), "1h 30m");
        assert_eq!(format_duration(Duration::from_secs(691_200)), "1w 1d");
        assert_eq!(format_duration(Duration::ZERO), "0s");
    }
}
