//! Splitting a byte stream into lines with bounded memory.
//!
//! Reads in large chunks and finds newlines with `memchr`, handing out
//! slices of its buffer: no allocation per line, memory flat whatever the
//! input size. A line longer than the limit is delivered cut at the limit
//! (and counted), the rest of it skipped, so a hostile 1 MiB line costs
//! linear time and never grows the buffer.

use std::io::{self, Read};

/// Reader of bounded lines.
pub struct LineReader<R> {
    inner: R,
    buf: Vec<u8>,
    /// Start and end of unread data in `buf`.
    start: usize,
    end: usize,
    max_line: usize,
    /// Skipping the rest of an over-long line.
    skipping: bool,
    eof: bool,
    /// Lines cut at the limit so far.
    pub truncated: u64,
}

const CHUNK: usize = 1 << 20;

impl<R: Read> LineReader<R> {
    /// Lines of at most `max_line` bytes (without the newline).
    pub fn new(inner: R, max_line: usize) -> Self {
        let max_line = max_line.max(1);
        LineReader {
            inner,
            buf: vec![0; CHUNK.max(max_line * 2)],
            start: 0,
            end: 0,
            max_line,
            skipping: false,
            eof: false,
            truncated: 0,
        }
    }

    /// The next line without its `\n`; a last line without one is returned
    /// too. `Ok(None)` at the end.
    pub fn next_line(&mut self) -> io::Result<Option<&[u8]>> {
        loop {
            let avail = &self.buf[self.start..self.end];
            if let Some(nl) = memchr::memchr(b'\n', avail) {
                let line_start = self.start;
                self.start += nl + 1;
                if self.skipping {
                    self.skipping = false;
                    continue;
                }
                let len = nl.min(self.max_line);
                if nl > self.max_line {
                    self.truncated += 1;
                }
                return Ok(Some(&self.buf[line_start..line_start + len]));
            }
            if self.skipping {
                self.start = self.end;
            } else if avail.len() >= self.max_line {
                // No newline within the limit: deliver the cut line, skip the rest.
                let line_start = self.start;
                self.start = self.end;
                self.skipping = true;
                self.truncated += 1;
                return Ok(Some(&self.buf[line_start..line_start + self.max_line]));
            }
            if self.eof {
                if self.start < self.end && !self.skipping {
                    let line_start = self.start;
                    self.start = self.end;
                    return Ok(Some(&self.buf[line_start..self.end]));
                }
                return Ok(None);
            }
            // Move the partial line to the front and read more.
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
            let n = loop {
                match self.inner.read(&mut self.buf[self.end..]) {
                    Ok(n) => break n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(e),
                }
            };
            if n == 0 {
                self.eof = true;
            }
            self.end += n;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(input: &[u8], max: usize) -> (Vec<Vec<u8>>, u64) {
        let mut r = LineReader::new(input, max);
        let mut out = Vec::new();
        while let Some(l) = r.next_line().unwrap() {
            out.push(l.to_vec());
        }
        (out, r.truncated)
    }

    #[test]
    fn splits_and_keeps_a_last_partial_line() {
        let (l, t) = lines(b"a\nbb\n\nccc", 10);
        assert_eq!(
            l,
            [b"a".to_vec(), b"bb".to_vec(), b"".to_vec(), b"ccc".to_vec()]
        );
        assert_eq!(t, 0);
    }

    #[test]
    fn cuts_long_lines_and_resyncs_after_them() {
        let mut input = vec![b'x'; 3 * CHUNK + 17];
        input.extend_from_slice(b"\nnext\n");
        let (l, t) = lines(&input, 100);
        assert_eq!(l.len(), 2);
        assert_eq!(l[0].len(), 100);
        assert_eq!(l[1], b"next");
        assert_eq!(t, 1);
    }

    #[test]
    fn long_line_exactly_in_a_chunk() {
        let (l, t) = lines(b"0123456789\nab\n", 4);
        assert_eq!(l, [b"0123".to_vec(), b"ab".to_vec()]);
        assert_eq!(t, 1);
    }
}
