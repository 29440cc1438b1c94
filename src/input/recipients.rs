//! The recipients CSV, read as a stream: header checks, one record at a time with its record
//! number and line, and every data error located (record, line, column).
// A problem is a large error value, but one per bad row at most: boxing buys nothing here.
#![allow(clippy::result_large_err)]
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use csv::{ByteRecord, ReaderBuilder};

use crate::input::problem::{Problem, ProblemKind};

/// The most bytes one record's cells may hold together. Legal CSV has no limit, and the csv
/// crate grows a record until it ends: without one, a file that never closes a quote (or a
/// hostile one) would be held in memory whole, and the check holds three chunks of 1024
/// records at once. 64 KiB is far beyond any recipient's row; bodies come from template files.
pub const MAX_RECORD_BYTES: usize = 64 * 1024;

/// The csv reader's buffer: how far it may read past the record it is in.
const READ_BUFFER: usize = 8 * 1024;

pub struct Recipients {
    path: PathBuf,
    name: String,
    reader: csv::Reader<Bounded>,
    delimiter: u8,
    columns: Vec<String>,
    record: ByteRecord,
    next: ByteRecord,
    has_next: bool,
    count: u64,
    /// Line numbers as an editor shows them; `None` when the file cannot be read twice.
    lines: Option<LineCounter>,
    /// The line the record read ahead starts on.
    next_line: u64,
    /// A record read ahead that is too long: reading stops, and it is the last one returned.
    pending: Option<Problem>,
}

/// One data record: its 1-based number (the `row` of the results file), the line it starts on,
/// and its cells as text in header order.
#[derive(Debug)]
pub struct Row<'a> {
    pub number: u64,
    pub line: u64,
    pub fields: Vec<&'a str>,
    /// Something worth a look that does not make the row invalid.
    pub warning: Option<Problem>,
}

/// Where `Recipients::next_record` found its record, and what it noticed.
#[derive(Debug)]
pub struct RecordAt {
    pub number: u64,
    pub line: u64,
    pub warning: Option<Problem>,
}

impl Recipients {
    /// Opens the file and reads the header. Header problems come back as problems: errors mean
    /// no row can be trusted, warnings don't stop anything.
    pub fn open(path: &Path, delimiter: u8) -> Result<(Recipients, Vec<Problem>), Problem> {
        let name = path.display().to_string();
        let file = File::open(path).map_err(|e| {
            Problem::error(
                ProblemKind::Csv,
                &name,
                format!("cannot open the recipients file: {e}"),
            )
        })?;
        let mut reader = ReaderBuilder::new()
            .delimiter(delimiter)
            .flexible(true)
            .has_headers(true)
            .buffer_capacity(READ_BUFFER)
            .from_reader(Bounded::new(file));
        let header = reader
            .byte_headers()
            .map_err(|e| Problem::error(ProblemKind::Csv, &name, csv_error_text(&e)).line(1))?
            .clone();
        let mut problems = Vec::new();
        if header.is_empty() {
            return Err(Problem::error(
                ProblemKind::Csv,
                &name,
                "the file is empty: a header row is needed",
            )
            .line(1));
        }
        let mut columns: Vec<String> = Vec::with_capacity(header.len());
        for (i, raw) in header.iter().enumerate() {
            let col = i + 1;
            let Ok(text) = std::str::from_utf8(raw) else {
                problems.push(
                    Problem::error(
                        ProblemKind::Csv,
                        &name,
                        "the header name has bytes that are not UTF-8; save the file as UTF-8",
                    )
                    .line(1)
                    .column(format!("column {col}")),
                );
                columns.push(String::new());
                continue;
            };
            let trimmed = text.trim();
            if trimmed.is_empty() {
                problems.push(
                    Problem::error(ProblemKind::Csv, &name, "empty header name")
                        .line(1)
                        .column(format!("column {col}")),
                );
            } else if trimmed != text {
                problems.push(
                    Problem::warning(
                        ProblemKind::Csv,
                        &name,
                        format!("header `{text}` has leading or trailing spaces; it is used as `{trimmed}`"),
                    )
                    .line(1)
                    .column(format!("column {col}")),
                );
            }
            if !trimmed.is_empty() && columns.iter().any(|c| c == trimmed) {
                problems.push(
                    Problem::error(
                        ProblemKind::Csv,
                        &name,
                        format!("duplicate header name `{trimmed}`"),
                    )
                    .line(1)
                    .column(format!("column {col}")),
                );
            }
            columns.push(trimmed.to_string());
        }
        problems.extend(name_collisions(&name, &columns));
        if columns.len() == 1 {
            if let Some(d) = [b';', b'\t', b',', b'|']
                .into_iter()
                .find(|d| *d != delimiter && columns[0].as_bytes().contains(d))
            {
                let shown = if d == b'\t' {
                    "\\t".to_string()
                } else {
                    (d as char).to_string()
                };
                problems.push(
                    Problem::warning(
                        ProblemKind::Csv,
                        &name,
                        format!("the header has one column but looks separated by `{shown}`; set delimiter = \"{shown}\" in the campaign file"),
                    )
                    .line(1),
                );
            }
        }
        let mut this = Recipients {
            path: path.to_path_buf(),
            name,
            reader,
            delimiter,
            columns,
            record: ByteRecord::new(),
            next: ByteRecord::new(),
            has_next: false,
            count: 0,
            lines: LineCounter::open(path),
            next_line: 0,
            pending: None,
        };
        this.has_next = this.read_ahead().map_err(|p| *p)?;
        Ok((this, problems))
    }

    pub fn columns(&self) -> &[String] {
        &self.columns
    }

    pub fn file_name(&self) -> &str {
        &self.name
    }

    /// Reads one record ahead, so that the last record is known as the last one (an unterminated
    /// quote swallows the rest of the file into it). A record too long to read is kept as the
    /// `pending` problem, and reading ends after the record before it.
    fn read_ahead(&mut self) -> Result<bool, Box<Problem>> {
        let (line, first_byte) = self.locate(self.reader.position().clone());
        self.next_line = line;
        // Blank lines before the record do not count against its limit.
        self.reader.get_mut().allow_record_from(first_byte);
        match self.reader.read_byte_record(&mut self.next) {
            Ok(more) => Ok(more),
            Err(e) if Bounded::stopped(&e) => {
                let column = self.column_past_limit(first_byte);
                let p = self.too_long(None, column).at(self.count + 1, line);
                self.pending = Some(p);
                Ok(false)
            }
            Err(e) => Err(Box::new(
                Problem::error(ProblemKind::Csv, &self.name, csv_error_text(&e)).line(line),
            )),
        }
    }

    /// The line and byte a record starts on, given where its read began (as csv counts lines
    /// when the file cannot be read twice).
    fn locate(&mut self, at: csv::Position) -> (u64, u64) {
        let counted = self
            .lines
            .as_mut()
            .and_then(|l| Some((l.record_line(at.byte())?, l.offset)));
        if counted.is_none() {
            self.lines = None;
        }
        counted.unwrap_or((at.line(), at.byte()))
    }

    /// The problem of a record over `MAX_RECORD_BYTES`: `size` when it was read whole, `column`
    /// the cell that takes it past the limit.
    fn too_long(&self, size: Option<usize>, column: Option<usize>) -> Problem {
        let message = match size {
            Some(n) => format!("the record holds {n} bytes, more than the {MAX_RECORD_BYTES} (64 KiB) a record may hold; shorten this cell"),
            None => format!("the record goes on past the {MAX_RECORD_BYTES} bytes (64 KiB) a record may hold, and reading stops here; a quote that is never closed makes the rest of the file one cell: close it, or shorten this cell"),
        };
        let p = Problem::error(ProblemKind::Csv, &self.name, message);
        match column {
            Some(i) => p.column(self.column_name(i)),
            None => p,
        }
    }

    /// `column `name``, or its number past the header's columns.
    fn column_name(&self, i: usize) -> String {
        match self.columns.get(i) {
            Some(name) => format!("column `{name}`"),
            None => format!("column {}", i + 1),
        }
    }

    /// Which cell of the record whose read began at byte `start` takes it past the limit:
    /// read again from there, at most as far as the first read went.
    fn column_past_limit(&self, start: u64) -> Option<usize> {
        let mut file = File::open(&self.path).ok()?;
        file.seek(SeekFrom::Start(start)).ok()?;
        let window = (MAX_RECORD_BYTES + 2 * READ_BUFFER) as u64;
        let mut reader = ReaderBuilder::new()
            .delimiter(self.delimiter)
            .flexible(true)
            .has_headers(false)
            .from_reader(file.take(window));
        let mut record = ByteRecord::new();
        reader.read_byte_record(&mut record).ok()?;
        crossing(&record)
    }

    /// The next record, or a problem that locates what is wrong with it. A problem with no record
    /// number means reading cannot go on.
    pub fn next_row(&mut self) -> Option<Result<Row<'_>, Problem>> {
        let (number, line, multiline) = match self.advance()? {
            Ok(at) => at,
            Err(p) => return Some(Err(p)),
        };
        let mut fields = Vec::with_capacity(self.record.len());
        for (i, raw) in self.record.iter().enumerate() {
            match std::str::from_utf8(raw) {
                Ok(text) => fields.push(text),
                Err(e) => return Some(Err(self.not_utf8(i, e.valid_up_to(), number, line))),
            }
        }
        let warning = multiline.then(|| self.multiline_warning(&fields, number, line));
        Some(Ok(Row {
            number,
            line,
            fields,
            warning,
        }))
    }

    /// `next_row` into `out`, without copying or allocating: the record read moves into `out`, and
    /// the record `out` held (if any) becomes the reader's buffer. On a problem, `out` is left
    /// empty.
    pub fn next_record(
        &mut self,
        out: &mut Option<csv::StringRecord>,
    ) -> Option<Result<RecordAt, Problem>> {
        let (number, line, multiline) = match self.advance()? {
            Ok(at) => at,
            Err(p) => return Some(Err(p)),
        };
        let mut read = out
            .take()
            .map(csv::StringRecord::into_byte_record)
            .unwrap_or_default();
        std::mem::swap(&mut read, &mut self.record);
        // Checks the whole record at once when it is ASCII, field by field when not.
        match csv::StringRecord::from_byte_record(read) {
            Ok(record) => {
                let warning = multiline.then(|| {
                    let fields: Vec<&str> = record.iter().collect();
                    self.multiline_warning(&fields, number, line)
                });
                *out = Some(record);
                Some(Ok(RecordAt {
                    number,
                    line,
                    warning,
                }))
            }
            Err(e) => {
                let (field, valid) = (e.utf8_error().field(), e.utf8_error().valid_up_to());
                Some(Err(self.not_utf8(field, valid, number, line)))
            }
        }
    }

    /// Moves to the next record, reading one more ahead: its number, line and whether a cell holds
    /// a line break; or the problem that makes it unusable (with a record number) or ends the file
    /// (without).
    fn advance(&mut self) -> Option<Result<(u64, u64, bool), Problem>> {
        if !self.has_next {
            let too_long = self.pending.take()?;
            self.count += 1;
            return Some(Err(too_long));
        }
        std::mem::swap(&mut self.record, &mut self.next);
        self.count += 1;
        let number = self.count;
        let line = self.next_line;
        match self.read_ahead() {
            Ok(more) => self.has_next = more,
            Err(p) => {
                self.has_next = false;
                return Some(Err(*p));
            }
        }
        // One scan of all the cells' bytes, which the record keeps end to end. A lone CR is a
        // line break too (csv reads CR-only files).
        let multiline = memchr::memchr2(b'\n', b'\r', self.record.as_slice()).is_some();
        let last = !self.has_next && self.pending.is_none();
        if multiline && last && self.quote_left_open() {
            return Some(Err(Problem::error(
                ProblemKind::Csv,
                &self.name,
                format!("unterminated quote: a quoted field that starts on line {line} runs to the end of the file"),
            )
            .at(number, line)));
        }
        let size = self.record.as_slice().len();
        if size > MAX_RECORD_BYTES {
            let p = self.too_long(Some(size), crossing(&self.record));
            return Some(Err(p.at(number, line)));
        }
        if self.record.len() != self.columns.len() {
            let mut msg = format!(
                "has {} fields, the header has {}",
                self.record.len(),
                self.columns.len()
            );
            if multiline {
                msg.push_str(&format!(
                    "; a quote that opens on line {line} may be unterminated"
                ));
            }
            return Some(Err(
                Problem::error(ProblemKind::Csv, &self.name, msg).at(number, line)
            ));
        }
        Some(Ok((number, line, multiline)))
    }

    /// The problem of a cell (`field`, from 0) whose bytes are UTF-8 only up to `valid_up_to`.
    fn not_utf8(&self, field: usize, valid_up_to: usize, number: u64, line: u64) -> Problem {
        Problem::error(
            ProblemKind::Csv,
            &self.name,
            format!(
                "bytes that are not UTF-8 (at byte {} of the cell; is the file Windows-1252? save it as UTF-8)",
                valid_up_to + 1
            ),
        )
        .at(number, line)
        .column(format!("column `{}`", self.columns[field]))
    }

    /// A cell that spans lines is legal CSV, but in a recipients file it is more often a quote
    /// closed in the wrong place, which merges rows into one cell.
    fn multiline_warning(&self, fields: &[&str], number: u64, line: u64) -> Problem {
        let (col, cell) = fields
            .iter()
            .enumerate()
            .find(|(_, f)| f.contains(['\n', '\r']))
            .unwrap_or((0, &""));
        let end = line + line_breaks(cell.as_bytes(), false).0;
        Problem::warning(
            ProblemKind::Csv,
            &self.name,
            format!("the cell holds a line break: it runs from line {line} to line {end}; if that is not intended, a quote is unbalanced"),
        )
        .at(number, line)
        .column(format!("column `{}`", self.columns[col]))
    }

    /// Whether the last record ends inside a quoted field: from its start to the end of the file
    /// it holds an odd number of quotes (an escaped quote is two, a quoted field's own two more).
    /// The record is already bounded in size, and so is this read.
    fn quote_left_open(&self) -> bool {
        let Some(start) = self.record.position().map(|p| p.byte()) else {
            return false;
        };
        let Ok(mut f) = File::open(&self.path) else {
            return false;
        };
        let mut tail = Vec::new();
        let read = f.seek(SeekFrom::Start(start)).and_then(|_| {
            (&mut f)
                .take(2 * MAX_RECORD_BYTES as u64)
                .read_to_end(&mut tail)
        });
        read.is_ok() && tail.iter().filter(|&&b| b == b'"').count() % 2 == 1
    }
}

/// Headers that templates would know by the same name (`vars::template_name`): `First name` and
/// `first_name` are both `first_name`, and a template could not tell which it reads. (Headers
/// that are the same text are reported as duplicates.)
fn name_collisions(file: &str, columns: &[String]) -> Vec<Problem> {
    let mut first: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    let mut problems = Vec::new();
    for (i, header) in columns.iter().enumerate() {
        let Some(name) = crate::template::vars::template_name(header) else {
            continue;
        };
        match first.get(&name) {
            Some(&j) if columns[j] != *header => problems.push(
                Problem::error(
                    ProblemKind::Csv,
                    file,
                    format!(
                        "headers `{}` (column {}) and `{header}` are both `{name}` in templates; rename one of them",
                        columns[j],
                        j + 1
                    ),
                )
                .line(1)
                .column(format!("column {}", i + 1)),
            ),
            Some(_) => {}
            None => {
                first.insert(name, i);
            }
        }
    }
    problems
}

fn csv_error_text(e: &csv::Error) -> String {
    match e.kind() {
        csv::ErrorKind::Io(io) => format!("cannot read: {io}"),
        _ => e.to_string(),
    }
}

/// The cell (from 0) in which a record's cells, end to end, pass `MAX_RECORD_BYTES`.
fn crossing(record: &ByteRecord) -> Option<usize> {
    let mut total = 0;
    record.iter().position(|cell| {
        total += cell.len();
        total > MAX_RECORD_BYTES
    })
}

/// The line breaks in `bytes` (CR LF, a lone CR and a lone LF each count one, as csv reads them)
/// and whether `bytes` ends with a CR, whose LF may follow in the next piece. `after_cr`: the
/// piece before ended with a CR.
fn line_breaks(bytes: &[u8], after_cr: bool) -> (u64, bool) {
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

/// Line numbers as an editor shows them. The csv crate counts LF bytes only, and gives a record
/// the position where its read began, before the line breaks it skips there: one line early
/// after every CR LF (the LF is skipped as a blank line), early after blank lines, and line 1
/// throughout a CR-only file. This reads the file a second time, in step with the records.
struct LineCounter {
    file: BufReader<File>,
    /// Bytes counted so far, and the line the next one is on.
    offset: u64,
    line: u64,
    after_cr: bool,
}

impl LineCounter {
    /// `None` for what cannot be read twice (a pipe, say): csv's own count stands then.
    fn open(path: &Path) -> Option<LineCounter> {
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
    fn record_line(&mut self, at: u64) -> Option<u64> {
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

/// The recipients file as the csv reader reads it, never more than about `MAX_RECORD_BYTES`
/// past the start of the record being read: the csv crate has no limit of its own.
pub struct Bounded {
    file: File,
    delivered: u64,
    stop_at: u64,
}

/// The error `Bounded` stops a read with.
#[derive(Debug, thiserror::Error)]
#[error("a record longer than {MAX_RECORD_BYTES} bytes")]
struct TooLong;

impl Bounded {
    fn new(file: File) -> Bounded {
        let mut this = Bounded {
            file,
            delivered: 0,
            stop_at: 0,
        };
        this.allow_record_from(0);
        this
    }

    /// A record is read from byte `start`. Past its limit the reader has consumed more than
    /// `MAX_RECORD_BYTES` since `start`: it consumes its buffer whole before asking for more.
    fn allow_record_from(&mut self, start: u64) {
        self.stop_at = start + (MAX_RECORD_BYTES + READ_BUFFER) as u64;
    }

    /// Whether a read failed because a record went past the limit.
    fn stopped(e: &csv::Error) -> bool {
        match e.kind() {
            csv::ErrorKind::Io(io) => io.get_ref().is_some_and(|e| e.is::<TooLong>()),
            _ => false,
        }
    }
}

impl Read for Bounded {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let room = self.stop_at.saturating_sub(self.delivered);
        if room == 0 {
            return Err(std::io::Error::other(TooLong));
        }
        let n = usize::try_from(room).unwrap_or(usize::MAX).min(buf.len());
        let read = self.file.read(&mut buf[..n])?;
        self.delivered += read as u64;
        Ok(read)
    }
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
