//! Date detection for log-file lines.
//!
//! Journal entries carry their own time; file lines carry a date in one of
//! many formats, usually at the start (syslog, ISO 8601, RFC 5424) and
//! sometimes inside the line (Apache's access log `[21/Feb/2005:09:21:54
//! +0100]`). [`DateFinder::find`] locates the first date, parses it without
//! allocating, and resolves it to a [`Timestamp`]: dates without a zone are
//! in the local zone (`TZ`), dates without a year are the latest such date
//! not more than a day in the future of "now" (so a clock a little ahead
//! does not throw a line into last year).
//!
//! Parsers are hand-written byte scanners: date detection runs on every
//! line, before any regex, and must cost tens of nanoseconds.

use std::ops::Range;

use jiff::civil::{Date, DateTime, Time};
use jiff::tz::{Offset, TimeZone};
use jiff::{SignedDuration, Timestamp};

/// A date found in a line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FoundDate {
    /// Bytes to remove from the line (the date, with its brackets or
    /// syslog priority when it has them).
    pub span: Range<usize>,
    /// The instant it denotes.
    pub time: Timestamp,
}

/// Broken-down date as parsed, before zone and year resolution.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Parts {
    year: Option<i16>,
    month: i8,
    day: i8,
    hour: i8,
    minute: i8,
    second: i8,
    nanos: i32,
    /// Explicit UTC offset in seconds, when the text has one.
    offset: Option<i32>,
    /// Already an absolute instant (epoch, TAI64N).
    epoch: Option<Timestamp>,
    /// A time of day without any date (`12:57:32.907` at a line's start).
    time_only: bool,
}

impl Parts {
    fn civil(year: Option<i16>, month: i8, day: i8, hms: (i8, i8, i8, i32)) -> Parts {
        Parts {
            year,
            month,
            day,
            hour: hms.0,
            minute: hms.1,
            second: hms.2,
            nanos: hms.3,
            offset: None,
            epoch: None,
            time_only: false,
        }
    }
}

/// `(year if written, month, day, hour)` of a parsed date.
type HourKey = (Option<i16>, i8, i8, i8);

/// Finds and resolves dates; keeps a small cache because consecutive lines
/// share their hour.
#[derive(Debug, Clone)]
pub struct DateFinder {
    tz: TimeZone,
    now: Timestamp,
    /// `(year or none, month, day, hour)` → the instant of that local
    /// hour's start (for year-less dates: with the year guessed from now).
    cache: Option<(HourKey, Timestamp)>,
    /// "now" when the cached year guess was made.
    cached_now: Timestamp,
}

impl DateFinder {
    /// A finder resolving in `tz`, with `now` for year-less dates.
    pub fn new(tz: TimeZone, now: Timestamp) -> Self {
        DateFinder {
            tz,
            now,
            cache: None,
            cached_now: now,
        }
    }

    /// Local zone from `TZ` (or the system's), resolving against the
    /// current time.
    pub fn local() -> Self {
        Self::new(TimeZone::system(), Timestamp::now())
    }

    /// Move "now" (a long-running follower advances it as time passes).
    pub fn set_now(&mut self, now: Timestamp) {
        self.now = now;
        // A year guess can only change when now moves; an hour of drift
        // cannot flip the one-day slack that decides it.
        if now.duration_since(self.cached_now).abs() > SignedDuration::from_hours(1) {
            self.cache = None;
            self.cached_now = now;
        }
    }

    /// The date that starts `line` (after a syslog `<PRI>` and an opening
    /// bracket), if any: where most formats put it, before any text a
    /// client could have chosen.
    pub fn find_start(&mut self, line: &[u8]) -> Option<FoundDate> {
        let (span, parts) = find_at_start(line)?;
        let time = self.resolve(parts)?;
        Some(FoundDate { span, time })
    }

    /// The date that begins exactly at byte `at` (a format's fixed place
    /// for it, e.g. after an access log's `[`), brackets around it
    /// included in the span.
    pub fn find_at(&mut self, line: &[u8], at: usize) -> Option<FoundDate> {
        if at == 0 {
            return self.find_start(line);
        }
        let prev = *line.get(at - 1)?;
        let (end, parts) = parse_any(line, at, prev)?;
        let time = self.resolve(parts)?;
        let mut span = at..end;
        if prev == b'[' && line.get(end) == Some(&b']') {
            span = at - 1..end + 1;
        }
        Some(FoundDate { span, time })
    }

    /// Find the first date in `line`: at the start (after a syslog
    /// `<PRI>` and an opening bracket), or else at the first word start
    /// where a date format parses. Only for formats where no text a
    /// client chose can come before the date.
    pub fn find(&mut self, line: &[u8]) -> Option<FoundDate> {
        if let Some((span, parts)) = find_at_start(line) {
            if let Some(time) = self.resolve(parts) {
                return Some(FoundDate { span, time });
            }
        }
        // Scan word starts; dates rarely sit deep into a line, and this
        // bound keeps hostile megabyte lines cheap.
        let limit = line.len().min(SCAN_LIMIT);
        let mut i = 1;
        while i < limit {
            let b = line[i];
            let prev = line[i - 1];
            if (b.is_ascii_alphanumeric() || b == b'@') && !prev.is_ascii_alphanumeric() {
                if let Some((end, parts)) = parse_any(line, i, prev) {
                    if let Some(time) = self.resolve(parts) {
                        let mut span = i..end;
                        if prev == b'[' && line.get(end) == Some(&b']') {
                            span = i - 1..end + 1;
                        }
                        return Some(FoundDate { span, time });
                    }
                }
            }
            i += 1;
        }
        None
    }

    fn resolve(&mut self, p: Parts) -> Option<Timestamp> {
        if let Some(t) = p.epoch {
            return Some(t);
        }
        let time = Time::new(p.hour, p.minute, p.second, p.nanos).ok()?;
        if p.time_only {
            return self.resolve_time_of_day(time);
        }
        if let Some(off) = p.offset {
            let year = match p.year {
                Some(y) => y,
                None => self.guess_year(p)?,
            };
            let dt = DateTime::from_parts(Date::new(year, p.month, p.day).ok()?, time);
            let offset = Offset::from_seconds(off).ok()?;
            return offset.to_timestamp(dt).ok();
        }
        let key = (p.year, p.month, p.day, p.hour);
        let within = SignedDuration::new(i64::from(p.minute) * 60 + i64::from(p.second), p.nanos);
        let hour_start = match self.cache {
            Some((k, t)) if k == key => t,
            _ => {
                let year = match p.year {
                    Some(y) => y,
                    None => self.guess_year(p)?,
                };
                let dt = DateTime::new(year, p.month, p.day, p.hour, 0, 0, 0).ok()?;
                let t = self.tz.to_timestamp(dt).ok()?;
                let end = t.checked_add(SignedDuration::from_secs(3599)).ok()?;
                if self.tz.to_datetime(t) != dt || self.tz.to_offset(t) != self.tz.to_offset(end) {
                    // The hour's start is skipped or the offset changes
                    // inside this local hour (a half-hour DST shift, as
                    // Lord Howe's): no single start serves the whole
                    // hour; resolve this date exactly, uncached.
                    let dt = DateTime::from_parts(Date::new(year, p.month, p.day).ok()?, time);
                    return self.tz.to_timestamp(dt).ok();
                }
                self.cache = Some((key, t));
                t
            }
        };
        hour_start.checked_add(within).ok()
    }

    /// A time of day alone: today's, or yesterday's if today's would be
    /// more than [`TIME_ONLY_SLACK`] after "now" (logs written just before
    /// midnight and read just after).
    fn resolve_time_of_day(&self, time: Time) -> Option<Timestamp> {
        let today = self.tz.to_datetime(self.now).date();
        let slack = self.now.checked_add(TIME_ONLY_SLACK).ok()?;
        let t = self.tz.to_timestamp(today.to_datetime(time)).ok()?;
        if t <= slack {
            return Some(t);
        }
        let yesterday = today.yesterday().ok()?;
        self.tz.to_timestamp(yesterday.to_datetime(time)).ok()
    }

    /// Syslog dates have no year: take the latest year that does not put
    /// the date more than a day after "now".
    fn guess_year(&self, p: Parts) -> Option<i16> {
        let now_local = self.tz.to_datetime(self.now);
        let this_year = now_local.year();
        let slack = self.now.checked_add(SignedDuration::from_hours(24)).ok()?;
        for year in [this_year, this_year - 1] {
            let Ok(dt) = DateTime::new(year, p.month, p.day, p.hour, p.minute, p.second, 0) else {
                continue; // Feb 29 in a non-leap year
            };
            let Ok(t) = self.tz.to_timestamp(dt) else {
                continue;
            };
            if t <= slack {
                return Some(year);
            }
        }
        // Feb 29 seen in a year after a leap year: look back further.
        (2..=4)
            .map(|back| this_year - back)
            .find(|y| Date::new(*y, p.month, p.day).is_ok())
    }
}

const SCAN_LIMIT: usize = 1024;

/// How far after "now" a time of day without a date may be and still be
/// today's (clocks of writer and reader differ a little).
const TIME_ONLY_SLACK: SignedDuration = SignedDuration::from_mins(5);

/// Dates that start the line, after an optional `<PRI>` (BSD syslog with
/// priority) or `<PRI>1 ` (RFC 5424) and an optional `[`.
fn find_at_start(line: &[u8]) -> Option<(Range<usize>, Parts)> {
    let mut i = 0;
    if line.first() == Some(&b'<') {
        let mut j = 1;
        while j < line.len().min(5) && line[j].is_ascii_digit() {
            j += 1;
        }
        if j > 1 && line.get(j) == Some(&b'>') {
            i = j + 1;
            // RFC 5424: version "1" and a space before the timestamp.
            if line.get(i) == Some(&b'1') && line.get(i + 1) == Some(&b' ') {
                i += 2;
            }
        }
    }
    let bracket = line.get(i) == Some(&b'[');
    let start = if bracket { i + 1 } else { i };
    let prev = if bracket { b'[' } else { b' ' };
    let (end, parts) = match parse_any(line, start, prev) {
        Some(found) => found,
        // A time of day alone, only where a date would start the line:
        // inside a line, "12:57:32" is as likely part of the message.
        None => parse_time_of_day(line, start)?,
    };
    let mut end = end;
    if bracket {
        if line.get(end) != Some(&b']') {
            return None;
        }
        end += 1;
        // `[date]:` as roundcube writes it
        if line.get(end) == Some(&b':') {
            end += 1;
        }
    } else if line.get(end) == Some(&b':') && line.get(end + 1) == Some(&b' ') {
        // lighttpd: `2011-12-25 17:09:20: (mod_auth.c...)`
        end += 1;
    }
    Some((0..end, parts))
}

/// `HH:MM:SS[.fff]` followed by a space (logback's default pattern).
fn parse_time_of_day(b: &[u8], i: usize) -> Option<(usize, Parts)> {
    let mut c = Cur { b, i };
    if c.num(2, 2).is_none() || c.peek() != Some(b':') {
        return None;
    }
    c.i = i;
    let hms = c.hms()?;
    if c.peek() != Some(b' ') {
        return None;
    }
    let mut p = Parts::civil(None, 1, 1, hms);
    p.time_only = true;
    Some((c.i, p))
}

/// Try every format at `i`; `prev` is the byte before (epoch numbers are
/// only taken where a timestamp plausibly sits, not from any number).
fn parse_any(b: &[u8], i: usize, prev: u8) -> Option<(usize, Parts)> {
    let c = *b.get(i)?;
    if c.is_ascii_digit() {
        parse_numeric(b, i, prev)
    } else if c == b'@' {
        parse_tai64n(b, i)
    } else if c.is_ascii_alphabetic() {
        parse_named(b, i)
    } else {
        None
    }
}

/// A byte cursor with the few primitives every format needs.
struct Cur<'a> {
    b: &'a [u8],
    i: usize,
}

impl Cur<'_> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    fn eat(&mut self, c: u8) -> bool {
        if self.peek() == Some(c) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    fn eat_any(&mut self, set: &[u8]) -> Option<u8> {
        let c = self.peek()?;
        if set.contains(&c) {
            self.i += 1;
            Some(c)
        } else {
            None
        }
    }

    /// Between `min` and `max` ASCII digits as a number.
    fn num(&mut self, min: usize, max: usize) -> Option<u32> {
        let start = self.i;
        let mut v: u32 = 0;
        while self.i - start < max {
            match self.peek() {
                Some(d @ b'0'..=b'9') => {
                    // Saturating: a run of digits in a hostile line must
                    // not overflow (it is then no valid date anyway).
                    v = v.saturating_mul(10).saturating_add(u32::from(d - b'0'));
                    self.i += 1;
                }
                _ => break,
            }
        }
        (self.i - start >= min).then_some(v)
    }

    fn spaces(&mut self) -> usize {
        let start = self.i;
        while self.peek() == Some(b' ') {
            self.i += 1;
        }
        self.i - start
    }

    /// Three-letter (or full) English month name, any case.
    fn month(&mut self) -> Option<i8> {
        let w = self.b.get(self.i..self.i + 3)?;
        let m = MONTHS
            .iter()
            .position(|name| name.eq_ignore_ascii_case(w))?;
        self.i += 3;
        // Accept full names ("January") by skipping the rest of the word.
        let full = FULL_MONTHS[m];
        if let Some(rest) = self.b.get(self.i..self.i + full.len() - 3) {
            if rest.eq_ignore_ascii_case(&full.as_bytes()[3..]) {
                self.i += full.len() - 3;
            }
        }
        i8::try_from(m + 1).ok()
    }

    fn weekday(&mut self) -> bool {
        let Some(w) = self.b.get(self.i..self.i + 3) else {
            return false;
        };
        if WEEKDAYS.iter().any(|d| d.eq_ignore_ascii_case(w)) {
            self.i += 3;
            true
        } else {
            false
        }
    }

    /// `HH:MM:SS` (hour may be one digit) with an optional `.fff` or
    /// `,fff` fraction.
    fn hms(&mut self) -> Option<(i8, i8, i8, i32)> {
        let h = self.num(1, 2)?;
        if !self.eat(b':') {
            return None;
        }
        let m = self.num(2, 2)?;
        if !self.eat(b':') {
            return None;
        }
        let s = self.num(2, 2)?;
        let mut nanos = 0i32;
        let save = self.i;
        if self.eat_any(b".,").is_some() {
            let start = self.i;
            let mut scale = 100_000_000i32;
            while let Some(d @ b'0'..=b'9') = self.peek() {
                if scale > 0 {
                    nanos += i32::from(d - b'0') * scale;
                    scale /= 10;
                }
                self.i += 1;
            }
            if self.i == start {
                self.i = save;
            }
        }
        // 60 allowed for leap seconds, clamped below.
        if h > 23 || m > 59 || s > 60 {
            return None;
        }
        Some((h as i8, m as i8, s.min(59) as i8, nanos))
    }

    /// Optional zone: `Z`, `±HH:MM`, `±HHMM`, `±HH`, `UTC`/`GMT`, with an
    /// optional single space before a signed offset.
    fn zone(&mut self) -> Option<i32> {
        let save = self.i;
        if self.eat(b'Z') {
            return Some(0);
        }
        let spaced = self.eat(b' ');
        if let Some(w) = self.b.get(self.i..self.i + 3) {
            if spaced && (w == b"UTC" || w == b"GMT") && !self.word_continues(self.i + 3) {
                self.i += 3;
                return Some(0);
            }
        }
        if let Some(sign) = self.eat_any(b"+-") {
            if let Some(h) = self.num(2, 2) {
                let colon = self.eat(b':');
                let m = match self.num(2, 2) {
                    Some(m) => m,
                    None if !colon => 0,
                    None => {
                        self.i = save;
                        return None;
                    }
                };
                if h <= 14 && m < 60 && !self.word_continues(self.i) {
                    let secs = (h * 3600 + m * 60) as i32;
                    return Some(if sign == b'-' { -secs } else { secs });
                }
            }
        }
        self.i = save;
        None
    }

    fn word_continues(&self, at: usize) -> bool {
        self.b.get(at).is_some_and(|c| c.is_ascii_alphanumeric())
    }
}

const MONTHS: [&[u8]; 12] = [
    b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov", b"Dec",
];
const FULL_MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const WEEKDAYS: [&[u8]; 7] = [b"Mon", b"Tue", b"Wed", b"Thu", b"Fri", b"Sat", b"Sun"];

fn year_i16(y: u32) -> Option<i16> {
    i16::try_from(y).ok().filter(|y| (1970..=9999).contains(y))
}

fn day_ok(d: u32) -> Option<i8> {
    (1..=31).contains(&d).then_some(d as i8)
}

fn month_ok(m: u32) -> Option<i8> {
    (1..=12).contains(&m).then_some(m as i8)
}

/// Formats that start with a month or weekday name.
fn parse_named(b: &[u8], i: usize) -> Option<(usize, Parts)> {
    if let Some((len, offset)) = zone_abbreviation(b, i) {
        // Monit: `[PDT Apr 16 21:05:29]`, `[CEST Aug  6 10:14:52]`
        let (end, mut p) = parse_named_plain(b, i + len + 1)?;
        if p.offset.is_none() {
            p.offset = offset;
        }
        return Some((end, p));
    }
    parse_named_plain(b, i)
}

/// [`parse_named`] without a zone abbreviation before.
fn parse_named_plain(b: &[u8], i: usize) -> Option<(usize, Parts)> {
    let mut c = Cur { b, i };
    if c.weekday() {
        // ctime: `Sun Jun 09 07:57:47 2013`, `Thu Sep  8 00:39:49.123 2016`
        if c.spaces() == 0 {
            return None;
        }
        let month = c.month()?;
        c.spaces();
        let day = day_ok(c.num(1, 2)?)?;
        if c.spaces() == 0 {
            return None;
        }
        let hms = c.hms()?;
        let save = c.i;
        if c.spaces() == 1 {
            if let Some(year) = c.num(4, 4).and_then(year_i16) {
                return Some((c.i, Parts::civil(Some(year), month, day, hms)));
            }
        }
        c.i = save;
        return Some((c.i, Parts::civil(None, month, day, hms)));
    }
    let month = c.month()?;
    if c.eat(b'-') {
        // assp: `Apr-07-13 07:08:36`
        let day = day_ok(c.num(2, 2)?)?;
        if !c.eat(b'-') {
            return None;
        }
        let yy = c.num(2, 2)?;
        if !c.eat(b' ') {
            return None;
        }
        let hms = c.hms()?;
        let year = year_i16(2000 + yy)?;
        return Some((c.i, Parts::civil(Some(year), month, day, hms)));
    }
    if c.spaces() == 0 {
        return None;
    }
    let day = day_ok(c.num(1, 2)?)?;
    if c.eat(b',') {
        // Java: `apr 15, 2013 8:34:08 PM`
        c.spaces();
        let year = year_i16(c.num(4, 4)?)?;
        c.spaces();
        let (h, m, s, n) = c.hms()?;
        c.spaces();
        let pm = match c.b.get(c.i..c.i + 2) {
            Some(w) if w.eq_ignore_ascii_case(b"AM") => false,
            Some(w) if w.eq_ignore_ascii_case(b"PM") => true,
            _ => return None,
        };
        c.i += 2;
        if !(1..=12).contains(&h) {
            return None;
        }
        let h = (h % 12) + if pm { 12 } else { 0 };
        return Some((c.i, Parts::civil(Some(year), month, day, (h, m, s, n))));
    }
    if c.spaces() == 0 {
        return None;
    }
    // `Oct 27 2015 09:24:46` (year before time)
    let save = c.i;
    if let Some(year) = c.num(4, 4).and_then(year_i16) {
        if c.eat(b' ') {
            if let Some(hms) = c.hms() {
                return Some((c.i, Parts::civil(Some(year), month, day, hms)));
            }
        }
    }
    c.i = save;
    // BSD syslog: `Feb 25 14:34:10`, optionally followed by ` 2005`.
    let hms = c.hms()?;
    let save = c.i;
    if c.eat(b' ') {
        if let Some(year) = c.num(4, 4).and_then(year_i16) {
            if !c.word_continues(c.i) && c.peek() != Some(b':') {
                return Some((c.i, Parts::civil(Some(year), month, day, hms)));
            }
        }
    }
    c.i = save;
    Some((c.i, Parts::civil(None, month, day, hms)))
}

/// A time-zone abbreviation followed by a space and a month or weekday
/// name: its length and, when it is unambiguous, its offset (an unknown
/// or ambiguous one, like CST or IST, leaves the date in local time).
fn zone_abbreviation(b: &[u8], i: usize) -> Option<(usize, Option<i32>)> {
    let len = b[i..]
        .iter()
        .take(6)
        .take_while(|c| c.is_ascii_uppercase())
        .count();
    if !(3..=5).contains(&len) || b.get(i + len) != Some(&b' ') {
        return None;
    }
    let next = b.get(i + len + 1..i + len + 4)?;
    let named = |names: &[&[u8]]| names.iter().any(|n| n.eq_ignore_ascii_case(next));
    if !named(&MONTHS) && !named(&WEEKDAYS) {
        return None;
    }
    let hours: f32 = match &b[i..i + len] {
        b"UTC" | b"GMT" | b"WET" => 0.0,
        b"CET" | b"WEST" | b"BST" => 1.0,
        b"CEST" | b"EET" | b"SAST" => 2.0,
        b"EEST" | b"MSK" => 3.0,
        b"AWST" => 8.0,
        b"JST" | b"KST" => 9.0,
        b"ACST" => 9.5,
        b"AEST" => 10.0,
        b"AEDT" => 11.0,
        b"NZST" => 12.0,
        b"NZDT" => 13.0,
        b"HST" => -10.0,
        b"AKST" => -9.0,
        b"AKDT" | b"PST" => -8.0,
        b"PDT" | b"MST" => -7.0,
        b"MDT" => -6.0,
        b"EST" => -5.0,
        b"EDT" => -4.0,
        _ => return Some((len, None)),
    };
    Some((len, Some((hours * 3600.0) as i32)))
}

/// Formats that start with a digit.
fn parse_numeric(b: &[u8], i: usize, prev: u8) -> Option<(usize, Parts)> {
    let mut c = Cur { b, i };
    let first = c.num(1, 10)?;
    let width = c.i - i;
    match (width, c.peek()) {
        // ISO 8601 and kin: 2005-02-25T14:34:10.123+01:00, 2015/01/21 10:56:10,
        // 2011.11.21 14:29:16, 2014:07:02-13:07:40
        (4, Some(sep @ (b'-' | b'/' | b'.' | b':'))) => {
            let year = year_i16(first)?;
            c.i += 1;
            let month = month_ok(c.num(2, 2)?)?;
            if !c.eat(sep) {
                return None;
            }
            let day = day_ok(c.num(2, 2)?)?;
            if c.eat_any(b"T-").is_none() && c.spaces() == 0 {
                return None;
            }
            let hms = c.hms()?;
            let mut p = Parts::civil(Some(year), month, day, hms);
            p.offset = c.zone();
            Some((c.i, p))
        }
        // 21/Feb/2005:09:21:54 +0100, 09-Jan-2014 12:34:56.789,
        // 17/Jun/2011 17:00:45, 10/06/2013 15:50:41 (month first), 11-06-2013 02:09:40 +0300
        (1 | 2, Some(sep @ (b'/' | b'-'))) => {
            c.i += 1;
            let (day, month) = if let Some(m) = c.month() {
                // Abbreviations longer than three letters, with a dot
                // (Jetty in French: `02/sept./2015`).
                while c.peek().is_some_and(|b| b.is_ascii_alphabetic()) {
                    c.i += 1;
                }
                c.eat(b'.');
                (day_ok(first)?, m)
            } else {
                let second = c.num(2, 2)?;
                if sep == b'-' && c.peek() == Some(b' ') && matches!(prev, b' ' | b'[') {
                    // FreeSWITCH: `08-03 07:56:53.026292` (month first, no
                    // year; not the tail of another date like `0000-12-30`)
                    c.spaces();
                    let hms = c.hms()?;
                    return Some((
                        c.i,
                        Parts::civil(None, month_ok(first)?, day_ok(second)?, hms),
                    ));
                }
                if sep == b'/' {
                    (day_ok(second)?, month_ok(first)?) // US order
                } else {
                    (day_ok(first)?, month_ok(second)?)
                }
            };
            if !c.eat(sep) {
                return None;
            }
            let year = year_i16(c.num(4, 4)?)?;
            // HLDS: `01/01/2014 - 01:25:17`
            if c.b.get(c.i..c.i + 3) == Some(b" - ") {
                c.i += 3;
            } else {
                c.eat_any(b": ")?;
            }
            let hms = c.hms()?;
            let mut p = Parts::civil(Some(year), month, day, hms);
            p.offset = c.zone();
            Some((c.i, p))
        }
        // xrdp: `20220407-12:11:06`
        (8, Some(b'-')) => {
            let year = year_i16(first / 10_000)?;
            let month = month_ok(first / 100 % 100)?;
            let day = day_ok(first % 100)?;
            c.i += 1;
            let hms = c.hms()?;
            Some((c.i, Parts::civil(Some(year), month, day, hms)))
        }
        // MySQL 5: `130324 17:56:13`, `130324  7:56:13`
        (6, Some(b' ')) => {
            let yy = first / 10_000;
            let month = month_ok(first / 100 % 100)?;
            let day = day_ok(first % 100)?;
            c.spaces();
            let hms = c.hms()?;
            Some((
                c.i,
                Parts::civil(Some(year_i16(2000 + yy)?), month, day, hms),
            ))
        }
        // Unix epoch seconds (squid, nsd, audit): only where a timestamp sits.
        (10, next) if matches!(prev, b' ' | b'[' | b'(' | b'"' | b'=') => {
            let mut nanos = 0i64;
            if next == Some(b'.') {
                c.i += 1;
                let start = c.i;
                let frac = c.num(1, 9)?;
                let digits = c.i - start;
                nanos = i64::from(frac) * 10i64.pow(9 - digits as u32);
                while c.peek().is_some_and(|d| d.is_ascii_digit()) {
                    c.i += 1;
                }
            }
            if c.word_continues(c.i) {
                return None;
            }
            let t = Timestamp::new(i64::from(first), nanos as i32).ok()?;
            // Plausibility: 2001..2100, so port numbers and ids are not dates.
            if !(1_000_000_000..4_102_444_800).contains(&first) {
                return None;
            }
            let mut p = Parts::civil(None, 1, 1, (0, 0, 0, 0));
            p.epoch = Some(t);
            Some((c.i, p))
        }
        _ => None,
    }
}

/// TAI64N label as multilog writes it: `@4000000037c219bf2ef02e94`.
fn parse_tai64n(b: &[u8], i: usize) -> Option<(usize, Parts)> {
    let hex = b.get(i + 1..i + 25)?;
    if !hex.iter().all(u8::is_ascii_hexdigit) {
        return None;
    }
    let text = std::str::from_utf8(hex).ok()?;
    let secs = u64::from_str_radix(&text[..16], 16).ok()?;
    let nanos = u32::from_str_radix(&text[16..], 16).ok()?;
    // TAI64 labels are 2^62 + TAI seconds; TAI is ahead of UTC by 10 s at
    // the 1970 epoch (plus leap seconds since, ignored like multilog's tai64nlocal).
    let unix = i64::try_from(secs.checked_sub(1u64 << 62)?).ok()? - 10;
    let t = Timestamp::new(unix, i32::try_from(nanos).ok()?).ok()?;
    let mut p = Parts::civil(None, 1, 1, (0, 0, 0, 0));
    p.epoch = Some(t);
    Some((i + 25, p))
}

#[cfg(test)]
mod tests {
    use super::*;

    const CET: &str = "CET-01CEST-02,M3.5.0,M10.5.0";

    fn finder() -> DateFinder {
        // 2005-08-14 12:00 CEST, the corpus's "now"
        DateFinder::new(
            TimeZone::posix(CET).unwrap(),
            Timestamp::from_second(1_124_013_600).unwrap(),
        )
    }

    /// Local CET/CEST wall time of the date found, and the rest of the line.
    fn check(line: &str) -> Option<(String, String)> {
        let mut f = finder();
        let found = f.find(line.as_bytes())?;
        let tz = TimeZone::posix(CET).unwrap();
        let local = tz.to_datetime(found.time);
        let mut rest = String::new();
        rest.push_str(&line[..found.span.start]);
        rest.push('|');
        rest.push_str(&line[found.span.end..]);
        Some((local.strftime("%Y-%m-%dT%H:%M:%S%.f").to_string(), rest))
    }

    #[test]
    fn syslog_dates_get_their_year_from_now() {
        let (t, rest) = check("Feb 25 14:34:10 belka sshd[31602]: x").unwrap();
        assert_eq!(t, "2005-02-25T14:34:10");
        assert_eq!(rest, "| belka sshd[31602]: x");
        assert_eq!(
            check("Jan  5 01:31:41 www sshd").unwrap().0,
            "2005-01-05T01:31:41"
        );
        assert_eq!(
            check("Jun 7 01:10:56 host").unwrap().0,
            "2005-06-07T01:10:56"
        );
        // 51 minutes after "now": still this year; two weeks after: last year.
        assert_eq!(
            check("Aug 14 12:51:04 h x").unwrap().0,
            "2005-08-14T12:51:04"
        );
        assert_eq!(
            check("Aug 28 06:38:51 h x").unwrap().0,
            "2004-08-28T06:38:51"
        );
        assert_eq!(check("<30>Aug 14 11:00:00 h x").unwrap().1, "| h x");
        assert_eq!(
            check("Oct 27 2015 09:24:46 h").unwrap().0,
            "2015-10-27T09:24:46"
        );
    }

    #[test]
    fn iso_and_rfc5424() {
        let (t, _) = check("2015-04-16T18:02:50.321974+00:00 host sshd[2716]: x").unwrap();
        assert_eq!(t, "2015-04-16T20:02:50.321974");
        let (t, rest) =
            check("<38>1 2019-07-08T17:40:16.954167-04:00 hostname sshd 57915 - - Failed").unwrap();
        assert_eq!(t, "2019-07-08T23:40:16.954167");
        assert_eq!(rest, "| hostname sshd 57915 - - Failed");
        assert_eq!(
            check("2013-01-04 17:03:46 login").unwrap().0,
            "2013-01-04T17:03:46"
        );
        assert_eq!(
            check("2015/01/21 10:56:10 [error]").unwrap().0,
            "2015-01-21T10:56:10"
        );
        assert_eq!(
            check("2011.11.21 14:29:16 LOG3").unwrap().0,
            "2011-11-21T14:29:16"
        );
        assert_eq!(
            check("2014:07:02-13:07:40: 'x'").unwrap().0,
            "2014-07-02T13:07:40"
        );
        assert_eq!(
            check("2019-11-26 01:04:49.008 +08:00 [WRN]").unwrap().0,
            "2019-11-25T18:04:49.008"
        );
        assert_eq!(
            check("2015-10-07  8:25:38 1398").unwrap().0,
            "2015-10-07T08:25:38"
        );
        let (_, rest) = check("2011-12-25 17:09:20: (http_auth.c.875) x").unwrap();
        assert_eq!(rest, "| (http_auth.c.875) x");
    }

    #[test]
    fn bracketed_and_inner_dates() {
        let (t, rest) =
            check("192.0.2.1 - - [21/Feb/2005:09:21:54 +0100] \"GET / HTTP/1.1\"").unwrap();
        assert_eq!(t, "2005-02-21T09:21:54");
        assert_eq!(rest, "192.0.2.1 - - | \"GET / HTTP/1.1\"");
        let (t, rest) = check("[Sun Jun 09 07:57:47 2013] [error] [client 1.2.3.4]").unwrap();
        assert_eq!(t, "2013-06-09T07:57:47");
        assert_eq!(rest, "| [error] [client 1.2.3.4]");
        assert_eq!(
            check("[Sat Jul 20 21:34:49.453232 2013] [x]").unwrap().0,
            "2013-07-20T21:34:49.453232"
        );
        assert_eq!(
            check("Fri Jan 19 12:20:33 2007 [pid 1]").unwrap().0,
            "2007-01-19T12:20:33"
        );
        assert_eq!(
            check("Thu Sep  8 00:39:49 2016 [pid 1]").unwrap().0,
            "2016-09-08T00:39:49"
        );
        assert_eq!(
            check("[30-Dec-2014 13:02:34 -0500]: IMAP").unwrap(),
            ("2014-12-30T19:02:34".into(), "| IMAP".into())
        );
        assert_eq!(
            check("23-Aug-2013 10:32:56.621 client").unwrap().0,
            "2013-08-23T10:32:56.621"
        );
        assert_eq!(
            check("[17/Jun/2011 17:00:45] Attempt").unwrap().0,
            "2011-06-17T17:00:45"
        );
        assert_eq!(
            check("10/06/2013 15:50:41 [LOGIN_ERROR]").unwrap().0,
            "2013-10-06T15:50:41"
        );
        assert_eq!(
            check("11-06-2013 02:09:40 +0300 PROXY").unwrap().0,
            "2013-06-11T01:09:40"
        );
        assert_eq!(
            check("Apr-07-13 07:08:36 [SSL-out]").unwrap().0,
            "2013-04-07T07:08:36"
        );
        assert_eq!(
            check("130324 17:56:13 [Warning]").unwrap().0,
            "2013-03-24T17:56:13"
        );
        assert_eq!(
            check("apr 15, 2013 8:34:08 PM org.x").unwrap().0,
            "2013-04-15T20:34:08"
        );
    }

    #[test]
    fn formats_of_web_apps_voip_and_misc() {
        // HLDS: " - " between date and time
        let (t, rest) = check("L 01/01/2014 - 01:25:17: Bad Rcon").unwrap();
        assert_eq!(t, "2014-01-01T01:25:17");
        assert_eq!(rest, "L |: Bad Rcon");
        // Jetty, French month abbreviations with a dot
        assert_eq!(
            check("1.2.3.4 -  -  [02/sept./2015:00:11:31 +0200] \"GET")
                .unwrap()
                .0,
            "2015-09-02T00:11:31"
        );
        // FreeSWITCH: month-day without a year
        assert_eq!(
            check("08-03 07:56:53.026292 [WARN]").unwrap().0,
            "2005-08-03T07:56:53.026292"
        );
        // xrdp: YYYYMMDD-HH:MM:SS
        let (t, rest) = check("[20220407-12:11:06] [INFO ] AUTHFAIL").unwrap();
        assert_eq!(t, "2022-04-07T12:11:06");
        assert_eq!(rest, "| [INFO ] AUTHFAIL");
        // Monit: a zone abbreviation before a syslog date
        let (t, rest) = check("[PDT Apr 16 21:05:29] error : x").unwrap();
        assert_eq!(t, "2005-04-17T06:05:29");
        assert_eq!(rest, "| error : x");
        assert_eq!(
            check("[CEST Aug  6 10:14:52] error").unwrap().0,
            "2005-08-06T10:14:52"
        );
        // an ambiguous abbreviation leaves the date in local time
        assert_eq!(
            check("[CST Aug  6 10:14:52] error").unwrap().0,
            "2005-08-06T10:14:52"
        );
        // the tail of an unparsable date is not a month-day date
        assert_eq!(check("0000-12-30 00:00:00 server x"), None);
        // many abbreviation-like words cost no recursion
        let hostile = "MAR ".repeat(20_000);
        assert_eq!(finder().find(hostile.as_bytes()), None);
    }

    #[test]
    fn time_of_day_alone_only_at_the_start() {
        // now is 2005-08-14 12:00 CEST: 11:57 is today, 12:57 yesterday's
        assert_eq!(
            check("11:57:32.907 [main] WARN x").unwrap().0,
            "2005-08-14T11:57:32.907"
        );
        assert_eq!(
            check("12:57:32.907 [main] WARN x").unwrap().0,
            "2005-08-13T12:57:32.907"
        );
        // inside a line a bare time is not a date
        assert_eq!(check("scan from 192.0.2.1 @20:44:43"), None);
    }

    #[test]
    fn epochs() {
        assert_eq!(
            check("1386543323.000      4 91.188.124.227").unwrap().0,
            "2013-12-08T23:55:23"
        );
        assert_eq!(
            check("[1387288694] nsd[7745]: info").unwrap().0,
            "2013-12-17T14:58:14"
        );
        assert_eq!(
            check("type=USER_LOGIN msg=audit(1373330716.415:4063): user")
                .unwrap()
                .0,
            "2013-07-09T02:45:16.415"
        );
        // TAI64N
        assert!(check("@400000004c91b044077a9e94 dovecot-auth: x").is_some());
        // A port number is not a date.
        assert_eq!(check("Connection from 192.0.2.1 port 12345"), None);
        assert_eq!(check("id 4294967295 x"), None);
    }

    /// Found by tests/properties.rs: Lord Howe moves its clocks by 30
    /// minutes (02:00 → 02:30 on 2017-10-01); the hour's cached start
    /// (02:00, which does not exist, resolved as 02:30) put 02:59:59 half
    /// an hour late.
    #[test]
    fn half_hour_dst_shifts_resolve_every_minute_of_the_hour() {
        let tz = TimeZone::get("Australia/Lord_Howe").unwrap();
        let mut f = DateFinder::new(tz.clone(), Timestamp::from_second(1_520_496_038).unwrap());
        for (line, want) in [
            ("2017-10-01 02:59:59 sshd", "2017-09-30T15:59:59Z"),
            ("2017-10-01 02:30:00 sshd", "2017-09-30T15:30:00Z"),
            ("2017-10-01 01:59:59 sshd", "2017-09-30T15:29:59Z"),
            // And back (02:00 → 01:30 on 2018-04-01): the first 01:45.
            ("2018-04-01 01:45:00 sshd", "2018-03-31T14:45:00Z"),
        ] {
            let got = f.find(line.as_bytes()).unwrap().time;
            assert_eq!(got.to_string(), want, "{line}");
        }
    }

    #[test]
    fn no_date_and_hostile_input() {
        assert_eq!(check("srv sshd[123]: Failed password"), None);
        assert_eq!(check(""), None);
        assert_eq!(check("Feb 30 10:00:00 x"), None);
        assert_eq!(check("2005-13-01 10:00:00 x"), None);
        assert_eq!(check("Feb 25 25:00:00 x"), None);
        let long = "x ".repeat(500_000);
        assert_eq!(finder().find(long.as_bytes()), None);
        let bytes = [0xffu8, 0xfe, b' ', b'2', b'0'];
        assert_eq!(finder().find(&bytes), None);
    }
}
