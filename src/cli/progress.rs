//! A progress line for long offline runs (`test-filter` on a large log):
//! on stderr, only when stderr is a terminal and stdout is not a pipe (so
//! `| less`, `| head` and scripts see nothing), from half a second on,
//! redrawn at most five times a second, erased at the end.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

/// Nothing is shown for runs shorter than this.
const QUIET: Duration = Duration::from_millis(500);
/// Redraws at most this often.
const EVERY: Duration = Duration::from_millis(200);

pub struct Progress {
    enabled: bool,
    /// stdout is the same terminal: erase the line before output.
    shared: bool,
    /// Bytes in all (a regular file's size), for the percentage.
    total: Option<u64>,
    started: Instant,
    /// When the line was last drawn.
    drawn: Option<Instant>,
    /// It is on the screen now.
    visible: bool,
}

impl Progress {
    /// `total`: the input's size when known.
    pub fn new(total: Option<u64>) -> Progress {
        let enabled = std::io::stderr().is_terminal() && !stdout_is_pipe();
        Progress {
            enabled,
            shared: enabled && std::io::stdout().is_terminal(),
            total: total.filter(|t| *t > 0),
            started: Instant::now(),
            drawn: None,
            visible: false,
        }
    }

    /// `lines` read so far, `bytes` of the input consumed; `out` (the
    /// command's stdout) is flushed first, so its lines and the progress
    /// line do not mix on the terminal.
    pub fn update(&mut self, lines: u64, bytes: u64, out: &mut dyn Write) {
        if !self.enabled {
            return;
        }
        let now = Instant::now();
        let elapsed = now.duration_since(self.started);
        if elapsed < QUIET || self.drawn.is_some_and(|t| now.duration_since(t) < EVERY) {
            return;
        }
        let _ = out.flush();
        self.drawn = Some(now);
        self.visible = true;
        let text = line(lines, bytes, self.total, elapsed);
        let _ = write!(std::io::stderr(), "\r\x1b[K{text}");
    }

    /// Before writing to stdout: erase the line if both share a terminal.
    pub fn before_output(&mut self) {
        if self.shared {
            self.clear();
        }
    }

    /// Erase the line (at the end).
    pub fn clear(&mut self) {
        if self.visible {
            self.visible = false;
            let _ = write!(std::io::stderr(), "\r\x1b[K");
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.clear();
    }
}

fn stdout_is_pipe() -> bool {
    rustix::fs::fstat(std::io::stdout()).is_ok_and(|st| {
        let kind = rustix::fs::FileType::from_raw_mode(st.st_mode);
        matches!(
            kind,
            rustix::fs::FileType::Fifo | rustix::fs::FileType::Socket
        )
    })
}

/// `1.2M lines  45%  512k lines/s  3s left`.
fn line(lines: u64, bytes: u64, total: Option<u64>, elapsed: Duration) -> String {
    let secs = elapsed.as_secs_f64().max(1e-3);
    let rate = lines as f64 / secs;
    let mut out = format!("{} lines", count(lines as f64));
    if let Some(total) = total {
        let fraction = (bytes as f64 / total as f64).clamp(0.0, 1.0);
        out.push_str(&format!("  {:>3.0}%", fraction * 100.0));
        if fraction > 0.0 {
            let left = secs * (1.0 - fraction) / fraction;
            out.push_str(&format!("  {} lines/s  {:.0}s left", count(rate), left));
            return out;
        }
    }
    out.push_str(&format!("  {} lines/s", count(rate)));
    out
}

fn count(n: f64) -> String {
    if n >= 1e6 {
        format!("{:.1}M", n / 1e6)
    } else if n >= 1e4 {
        format!("{:.0}k", n / 1e3)
    } else {
        format!("{n:.0}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_line_shows_count_percentage_rate_and_time_left() {
        assert_eq!(
            line(1_200_000, 450, Some(1000), Duration::from_secs(2)),
            "1.2M lines   45%  600k lines/s  2s left"
        );
        assert_eq!(
            line(5000, 10, None, Duration::from_secs(1)),
            "5000 lines  5000 lines/s"
        );
        assert_eq!(
            line(0, 0, Some(1000), Duration::from_secs(1)),
            "0 lines    0%  0 lines/s"
        );
    }
}
