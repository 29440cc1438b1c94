//! The data errors of a record, each located (record, line, column) and worded so that it can be
//! fixed in one pass: too long, not UTF-8, a cell that spans lines, a quote never closed.
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};

use csv::{ByteRecord, ReaderBuilder};

use super::lines::line_breaks;
use super::{Recipients, MAX_RECORD_BYTES, READ_BUFFER};
use crate::input::problem::{Problem, ProblemKind};

impl Recipients {
    /// The problem of a record over `MAX_RECORD_BYTES`: `size` when it was read whole, `column`
    /// the cell that takes it past the limit.
    pub(super) fn too_long(&self, size: Option<usize>, column: Option<usize>) -> Problem {
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
    pub(super) fn column_past_limit(&self, start: u64) -> Option<usize> {
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

    /// The problem of a cell (`field`, from 0) whose bytes are UTF-8 only up to `valid_up_to`.
    pub(super) fn not_utf8(
        &self,
        field: usize,
        valid_up_to: usize,
        number: u64,
        line: u64,
    ) -> Problem {
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
    pub(super) fn multiline_warning(&self, fields: &[&str], number: u64, line: u64) -> Problem {
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
    pub(super) fn quote_left_open(&self) -> bool {
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

    /// The problem of the record just read, if it cannot be used: a quote open to the end of the
    /// file, more than `MAX_RECORD_BYTES`, or not as many fields as the header.
    pub(super) fn record_problem(
        &self,
        number: u64,
        line: u64,
        multiline: bool,
    ) -> Option<Problem> {
        let last = !self.has_next && self.pending.is_none();
        if multiline && last && self.quote_left_open() {
            return Some(Problem::error(
                ProblemKind::Csv,
                &self.name,
                format!("unterminated quote: a quoted field that starts on line {line} runs to the end of the file"),
            )
            .at(number, line));
        }
        let size = self.record.as_slice().len();
        if size > MAX_RECORD_BYTES {
            let p = self.too_long(Some(size), crossing(&self.record));
            return Some(p.at(number, line));
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
            return Some(Problem::error(ProblemKind::Csv, &self.name, msg).at(number, line));
        }
        if multiline {
            return self.swallowed_row(number, line);
        }
        None
    }

    /// A record with one cell that spans lines, each of whose lines holds a whole row's fields
    /// (the cells before it and the cell's first line; each line between; the cell's last line
    /// and the cells after it): a quote left open merged the next rows into that cell, and the
    /// record still has the header's count of fields when a later quote closes it. Sent as it
    /// reads, one customer's message would carry another's row, and that row would never be sent.
    /// A cell meant to span lines (an address, a note) leaves some line short of a row.
    fn swallowed_row(&self, number: u64, line: u64) -> Option<Problem> {
        let breaks = |cell: &[u8]| cell.iter().any(|&b| b == b'\n' || b == b'\r');
        let mut multiline = self.record.iter().enumerate().filter(|(_, c)| breaks(c));
        let (col, cell) = multiline.next()?;
        if multiline.next().is_some() {
            return None;
        }
        let segments: Vec<&[u8]> = cell
            .split(|&b| b == b'\n')
            .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
            .flat_map(|l| l.split(|&b| b == b'\r'))
            .collect();
        let fields = |l: &[u8]| l.iter().filter(|&&b| b == self.delimiter).count() + 1;
        let last = segments.len() - 1;
        let whole = segments.iter().enumerate().all(|(i, l)| {
            let before = if i == 0 { col } else { 0 };
            let after = if i == last {
                self.record.len() - col - 1
            } else {
                0
            };
            before + fields(l) + after == self.columns.len()
        });
        if !whole {
            return None;
        }
        let end = line + line_breaks(cell, false).0;
        Some(
            Problem::error(
                ProblemKind::Csv,
                &self.name,
                format!(
                    "the cell runs from line {line} to line {end}, and each of those lines reads as a whole row: a quote that opens on line {line} is likely unterminated, and the rows after it were merged into this cell; close that quote"
                ),
            )
            .at(number, line)
            .column(format!("column `{}`", self.columns[col])),
        )
    }
}

pub(super) fn csv_error_text(e: &csv::Error) -> String {
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
