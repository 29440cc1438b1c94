//! The recipients CSV, read as a stream: one record at a time with its record number and line.
//!
//! This file owns the reader: opening, reading one record ahead (so that the last one is known
//! as the last), and handing records out. Beside it: [`header`] (the header row's checks),
//! [`located`] (each data error, located by record, line and column), [`lines`] (line numbers
//! as an editor shows them) and [`bounded`] (the limit on one record's size).
// A problem is a large error value, but one per bad row at most: boxing buys nothing here.
#![allow(clippy::result_large_err)]
mod bounded;
mod header;
mod lines;
mod located;
mod names;

use std::fs::File;
use std::path::{Path, PathBuf};

use csv::{ByteRecord, ReaderBuilder};

use crate::input::problem::{Problem, ProblemKind};
use bounded::Bounded;
use lines::LineCounter;
use located::csv_error_text;
pub(crate) use names::{template_name, template_names};

/// The most bytes one record's cells may hold together. Legal CSV has no limit, and the csv
/// crate grows a record until it ends: without one, a file that never closes a quote (or a
/// hostile one) would be held in memory whole, and the check holds three chunks of 1024
/// records at once. 64 KiB is far beyond any recipient's row; bodies come from template files.
const MAX_RECORD_BYTES: usize = 64 * 1024;

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
        crate::input::files::regular(path).map_err(|e| {
            Problem::error(
                ProblemKind::Csv,
                &name,
                format!("cannot read the recipients file: {e}"),
            )
        })?;
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
        if header.is_empty() {
            return Err(Problem::error(
                ProblemKind::Csv,
                &name,
                "the file is empty: a header row is needed",
            )
            .line(1));
        }
        let (columns, problems) = header::columns(&name, &header, delimiter);
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
        if let Some(p) = self.record_problem(number, line, multiline) {
            return Some(Err(p));
        }
        Some(Ok((number, line, multiline)))
    }
}
