//! The recipients CSV, read as a stream: header checks, one record at a time with its record
//! number and line, and every data error located (record, line, column).
// A problem is a large error value, but one per bad row at most: boxing buys nothing here.
#![allow(clippy::result_large_err)]
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use csv::{ByteRecord, ReaderBuilder};

use crate::problem::Problem;

pub struct Recipients {
    path: PathBuf,
    name: String,
    reader: csv::Reader<File>,
    columns: Vec<String>,
    record: ByteRecord,
    next: ByteRecord,
    has_next: bool,
    count: u64,
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
                "csv",
                &name,
                format!("cannot open the recipients file: {e}"),
            )
        })?;
        let mut reader = ReaderBuilder::new()
            .delimiter(delimiter)
            .flexible(true)
            .has_headers(true)
            .from_reader(file);
        let header = reader
            .byte_headers()
            .map_err(|e| Problem::error("csv", &name, csv_error_text(&e)).line(1))?
            .clone();
        let mut problems = Vec::new();
        if header.is_empty() {
            return Err(
                Problem::error("csv", &name, "the file is empty: a header row is needed").line(1),
            );
        }
        let mut columns: Vec<String> = Vec::with_capacity(header.len());
        for (i, raw) in header.iter().enumerate() {
            let col = i + 1;
            let Ok(text) = std::str::from_utf8(raw) else {
                problems.push(
                    Problem::error(
                        "csv",
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
                    Problem::error("csv", &name, "empty header name")
                        .line(1)
                        .column(format!("column {col}")),
                );
            } else if trimmed != text {
                problems.push(
                    Problem::warning(
                        "csv",
                        &name,
                        format!("header `{text}` has leading or trailing spaces; it is used as `{trimmed}`"),
                    )
                    .line(1)
                    .column(format!("column {col}")),
                );
            }
            if !trimmed.is_empty() && columns.iter().any(|c| c == trimmed) {
                problems.push(
                    Problem::error("csv", &name, format!("duplicate header name `{trimmed}`"))
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
                        "csv",
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
            columns,
            record: ByteRecord::new(),
            next: ByteRecord::new(),
            has_next: false,
            count: 0,
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
    /// quote swallows the rest of the file into it).
    fn read_ahead(&mut self) -> Result<bool, Box<Problem>> {
        let line = self.reader.position().line();
        match self.reader.read_byte_record(&mut self.next) {
            Ok(more) => Ok(more),
            Err(e) => Err(Box::new(
                Problem::error("csv", &self.name, csv_error_text(&e)).line(line),
            )),
        }
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
            return None;
        }
        std::mem::swap(&mut self.record, &mut self.next);
        self.count += 1;
        let number = self.count;
        let line = self.record.position().map(|p| p.line()).unwrap_or(0);
        match self.read_ahead() {
            Ok(more) => self.has_next = more,
            Err(p) => {
                self.has_next = false;
                return Some(Err(*p));
            }
        }
        // One scan of all the cells' bytes, which the record keeps end to end.
        let multiline = memchr::memchr(b'\n', self.record.as_slice()).is_some();
        if multiline && !self.has_next && !self.ends_with_quote() {
            return Some(Err(Problem::error(
                "csv",
                &self.name,
                format!("unterminated quote: a quoted field that starts on line {line} runs to the end of the file"),
            )
            .at(number, line)));
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
            return Some(Err(Problem::error("csv", &self.name, msg).at(number, line)));
        }
        Some(Ok((number, line, multiline)))
    }

    /// The problem of a cell (`field`, from 0) whose bytes are UTF-8 only up to `valid_up_to`.
    fn not_utf8(&self, field: usize, valid_up_to: usize, number: u64, line: u64) -> Problem {
        Problem::error(
            "csv",
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
            .find(|(_, f)| f.contains('\n'))
            .unwrap_or((0, &""));
        let end = line + cell.matches('\n').count() as u64;
        Problem::warning(
            "csv",
            &self.name,
            format!("the cell holds a line break: it runs from line {line} to line {end}; if that is not intended, a quote is unbalanced"),
        )
        .at(number, line)
        .column(format!("column `{}`", self.columns[col]))
    }

    /// Whether the file's last non-blank byte closes a quote.
    fn ends_with_quote(&self) -> bool {
        let Ok(mut f) = File::open(&self.path) else {
            return true;
        };
        let len = f.seek(SeekFrom::End(0)).unwrap_or(0);
        let start = len.saturating_sub(64);
        let mut tail = Vec::new();
        if f.seek(SeekFrom::Start(start)).is_err() || f.read_to_end(&mut tail).is_err() {
            return true;
        }
        tail.iter().rev().find(|b| !b.is_ascii_whitespace()) == Some(&b'"')
    }
}

/// Headers that templates would know by the same name (`vars::template_name`): `First name` and
/// `first_name` are both `first_name`, and a template could not tell which it reads. (Headers
/// that are the same text are reported as duplicates.)
fn name_collisions(file: &str, columns: &[String]) -> Vec<Problem> {
    let mut first: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    let mut problems = Vec::new();
    for (i, header) in columns.iter().enumerate() {
        let Some(name) = crate::vars::template_name(header) else {
            continue;
        };
        match first.get(&name) {
            Some(&j) if columns[j] != *header => problems.push(
                Problem::error(
                    "csv",
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
