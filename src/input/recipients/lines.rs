//! Line numbers as an editor shows them. The csv crate counts LF bytes only, and gives a record
//! the position where its read began, before the line breaks it skips there: one line early
//! after every CR LF (the LF is skipped as a blank line), early after blank lines, and line 1
//! throughout a CR-only file. [`LineCounter`] reads the file a second time, in step with the
//! records.
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::Path;

pub(super) struct LineCounter {
    file: BufReader<File>,
    /// Bytes counted so far, and the line the next one is on.
    pub(super) offset: u64,
    line: u64,
    after_cr: bool,
}

impl LineCounter {
    /// `None` for what cannot be read twice (a pipe, say): csv's own count stands then.
    pub(super) fn open(path: &Path) -> Option<LineCounter> {
        let file = File::open(path).ok()?;
        if !file.metadata().ok()?.is_file() {
            return None;
        }
        Some(LineCounter {
            file: BufReader::with_capacity(64 * 1024, file),
            offset: 0,
            line: 1,
            after_cr: false,
        })
    }

    /// The line of the record whose read began at byte `at` (later than any asked before): the
    /// breaks before `at`, then those csv skips before the record's first byte.
    pub(super) fn record_line(&mut self, at: u64) -> Option<u64> {
        while self.offset < at {
            let want = usize::try_from(at - self.offset).unwrap_or(usize::MAX);
            if self.count(|buf| buf.len().min(want))?.0 == 0 {
                return None;
            }
        }
        loop {
            let not_break = |buf: &[u8]| buf.iter().position(|b| !matches!(b, b'\r' | b'\n'));
            let (n, len) = self.count(|buf| not_break(buf).unwrap_or(buf.len()))?;
            if n < len || len == 0 {
                return Some(self.line);
            }
        }
    }

    /// Counts the breaks in the first `take(buffer)` bytes of the buffer and moves past them:
    /// how many it took, of how many buffered (0 at the end of the file).
    fn count(&mut self, take: impl FnOnce(&[u8]) -> usize) -> Option<(usize, usize)> {
        let buf = self.file.fill_buf().ok()?;
        let (n, len) = (take(buf), buf.len());
        let (breaks, after_cr) = line_breaks(&buf[..n], self.after_cr);
        self.file.consume(n);
        self.offset += n as u64;
        self.line += breaks;
        self.after_cr = after_cr;
        Some((n, len))
    }
}

/// The line breaks in `bytes` (CR LF, a lone CR and a lone LF each count one, as csv reads them)
/// and whether `bytes` ends with a CR, whose LF may follow in the next piece. `after_cr`: the
/// piece before ended with a CR.
pub(super) fn line_breaks(bytes: &[u8], after_cr: bool) -> (u64, bool) {
    let mut breaks = 0;
    for i in memchr::memchr2_iter(b'\r', b'\n', bytes) {
        let second_of_crlf = bytes[i] == b'\n'
            && match i {
                0 => after_cr,
                _ => bytes[i - 1] == b'\r',
            };
        breaks += u64::from(!second_of_crlf);
    }
    (breaks, bytes.last().map_or(after_cr, |b| *b == b'\r'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_crlf_is_one_line_break_even_across_pieces() {
        assert_eq!(line_breaks(b"a\r\nb\rc\nd", false), (3, false));
        assert_eq!(line_breaks(b"\r\r\n\n", false), (3, false));
        // A CR ends one piece, its LF starts the next: one break between them.
        assert_eq!(line_breaks(b"a\r", false), (1, true));
        assert_eq!(line_breaks(b"\nb", true), (0, false));
        assert_eq!(line_breaks(b"", true), (0, true));
    }
}
