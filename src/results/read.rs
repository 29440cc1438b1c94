//! The one reader of a results file: every command that reads one (resume's settling and
//! compaction, `mark`, the lookup stage, `report`) reads it here, line by line, with one rule for
//! cells: a cell written spreadsheet-safe (a `'` before a formula's first character, or before a
//! `'`) gives back exactly the value written; any other cell is taken as it is. A file re-saved
//! by a spreadsheet (every cell quoted, CRLF line breaks, a byte-order mark) reads as the same
//! rows. A line that does not read is refused in words that say which row, which column, what
//! is wrong with it and what to do.
use std::borrow::Cow;
use std::fs::File;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _};

use super::row::{row_number, RowStatus, COLUMNS};
use super::LineCap;

/// The longest line read: `send` writes none near it (each text it keeps is at most 1,000
/// characters), but a hand-made file with a huge cell is still reported; past it the read stops,
/// so that a damaged file cannot make it take unbounded memory.
const MAX_LINE: usize = 16 << 20;

/// A column of the contract, by its place in [`COLUMNS`] (each is named, whether a reader
/// reads it yet or not).
#[allow(dead_code)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Col {
    Row = 0,
    Recipient = 1,
    Status = 2,
    MessageId = 3,
    HttpStatus = 4,
    ErrorCode = 5,
    ErrorMessage = 6,
    RequestId = 7,
    Attempts = 8,
    FinishedAt = 9,
}

/// A results file, open for reading.
pub(crate) struct Reader {
    rdr: csv::Reader<LineCap<File>>,
    path: PathBuf,
    header: csv::ByteRecord,
    rec: csv::ByteRecord,
}

/// Where a line is, and the two fields every reader needs.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Line {
    pub(crate) row: u64,
    pub(crate) status: RowStatus,
    /// The line number (1 is the header).
    pub(crate) line: u64,
    /// The byte the line starts at.
    pub(crate) start: u64,
}

impl Reader {
    /// Opens a results file and checks its header; `None` when there is no file.
    pub(crate) fn open(path: &Path) -> anyhow::Result<Option<Reader>> {
        let file = match File::open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
        };
        let mut rdr = csv::ReaderBuilder::new()
            .flexible(true)
            .from_reader(LineCap::new(file, MAX_LINE));
        let header = rdr
            .byte_headers()
            .with_context(|| format!("cannot read {}", path.display()))?
            .clone();
        let header = strip_bom(header);
        if header.len() < COLUMNS.len()
            || header
                .iter()
                .take(COLUMNS.len())
                .ne(COLUMNS.iter().map(|c| c.as_bytes()))
        {
            bail!(
                "{}: this is not a results file of `campaign send`: its first line should name the columns {} (it names {}). If it was saved from a spreadsheet, keep the first line as it was",
                path.display(),
                COLUMNS.join(","),
                shown(
                    &header
                        .iter()
                        .map(String::from_utf8_lossy)
                        .collect::<Vec<_>>()
                        .join(",")
                )
            );
        }
        Ok(Some(Reader {
            rdr,
            path: path.to_path_buf(),
            header,
            rec: csv::ByteRecord::new(),
        }))
    }

    /// The header's cells.
    pub(crate) fn header(&self) -> &csv::ByteRecord {
        &self.header
    }

    /// The index of the column named `name` (an added column: `contact_id`, copied ones).
    pub(crate) fn column(&self, name: &str) -> Option<usize> {
        self.header.iter().position(|h| h == name.as_bytes())
    }

    /// The next line, its row number and status checked; `None` at the end.
    pub(crate) fn next(&mut self) -> anyhow::Result<Option<Line>> {
        loop {
            if !self.rdr.read_byte_record(&mut self.rec).map_err(|e| {
                let line = match e.position() {
                    Some(p) => format!("line {}", p.line()),
                    None => "a line".to_string(),
                };
                anyhow::anyhow!(
                    "{}: {line} cannot be read ({}): restore the file from a copy, or fix that line in a spreadsheet and save it as CSV",
                    self.path.display(),
                    match e.kind() {
                        csv::ErrorKind::Utf8 { .. } => "it is not UTF-8 text".to_string(),
                        csv::ErrorKind::Io(e) => e.to_string(),
                        _ => "it is not CSV".to_string(),
                    }
                )
            })? {
                return Ok(None);
            }
            // A line a spreadsheet left with nothing in it.
            if self.rec.iter().all(<[u8]>::is_empty) {
                continue;
            }
            let (line, start) = self.rec.position().map_or((0, 0), |p| (p.line(), p.byte()));
            if self.rec.len() < COLUMNS.len() {
                bail!(
                    "{}: line {line} has {} cells, but a results line has at least {}: it was cut short or edited. Each row's status decides whether it is sent again: restore the file from a copy, or fix that line",
                    self.path.display(),
                    self.rec.len(),
                    COLUMNS.len()
                );
            }
            let cell = self.text(Col::Row);
            let row = row_number(cell.as_bytes()).map_err(|_| {
                let allowed = format!("a row number from 1 to {}", super::MAX_ROWS);
                self.bad(line, "row", &cell, &allowed)
            })?;
            let cell = self.text(Col::Status);
            let status = RowStatus::from_field(cell.as_bytes()).ok_or_else(|| {
                self.bad(
                    line,
                    "status",
                    &cell,
                    "one of sent, failed, unknown or skipped",
                )
            })?;
            return Ok(Some(Line {
                row,
                status,
                line,
                start,
            }));
        }
    }

    /// A cell of the current line: the value written.
    pub(crate) fn text(&self, col: Col) -> Cow<'_, str> {
        self.cell(col as usize)
    }

    /// The cell at `index` of the current line (empty when the line is shorter).
    pub(crate) fn cell(&self, index: usize) -> Cow<'_, str> {
        let raw = String::from_utf8_lossy(self.rec.get(index).unwrap_or_default());
        match raw {
            Cow::Borrowed(s) => Cow::Borrowed(super::cells::unescape(s)),
            Cow::Owned(s) => Cow::Owned(super::cells::unescape(&s).to_string()),
        }
    }

    /// The current line as read, to be written again unchanged.
    pub(crate) fn record(&self) -> &csv::ByteRecord {
        &self.rec
    }

    /// A cell that does not hold what its column must: said with the row, column and fix.
    pub(crate) fn bad(&self, line: u64, column: &str, value: &str, allowed: &str) -> anyhow::Error {
        let row = self.text(Col::Row);
        anyhow::anyhow!(
            "{}: line {line}{}, column `{column}`: `{}` is not {allowed}. Fix that cell (in a spreadsheet, then save as CSV), or restore the file from a copy: each row's status decides whether it is sent again",
            self.path.display(),
            if column == "row" { String::new() } else { format!(" (row {})", shown(&row)) },
            shown(value)
        )
    }
}

/// A value from the file as it may be shown: at most 80 characters, control characters escaped.
fn shown(value: &str) -> String {
    value
        .chars()
        .take(80)
        .collect::<String>()
        .escape_debug()
        .to_string()
}

/// The header without the byte-order mark Excel puts before a CSV saved as UTF-8.
fn strip_bom(header: csv::ByteRecord) -> csv::ByteRecord {
    match header.get(0) {
        Some(first) if first.starts_with(b"\xEF\xBB\xBF") => {
            let mut out = csv::ByteRecord::new();
            out.push_field(&first[3..]);
            for f in header.iter().skip(1) {
                out.push_field(f);
            }
            out
        }
        _ => header,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(text: &[u8]) -> anyhow::Result<Vec<(u64, RowStatus, String, String)>> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.csv");
        std::fs::write(&path, text).unwrap();
        let mut r = Reader::open(&path)?.unwrap();
        let mut out = Vec::new();
        while let Some(l) = r.next()? {
            out.push((
                l.row,
                l.status,
                r.text(Col::Recipient).into_owned(),
                r.text(Col::ErrorMessage).into_owned(),
            ));
        }
        Ok(out)
    }

    const HEADER: &str = "row,recipient,status,message_id,http_status,error_code,error_message,request_id,attempts,finished_at,contact_id\n";

    #[test]
    fn a_spreadsheet_save_reads_as_the_same_rows() {
        let ours = format!(
            "{HEADER}1,'=id-1,sent,m1,200,,,r1,1,2026-01-01T00:00:00.000Z,\n2,''q,failed,,422,'-x,\"a, b\",r2,1,2026-01-01T00:00:00.000Z,\n"
        );
        let saved = ours
            .lines()
            .map(|l| {
                let mut r = csv::ReaderBuilder::new()
                    .has_headers(false)
                    .from_reader(l.as_bytes());
                let rec = r.records().next().unwrap().unwrap();
                rec.iter()
                    .map(|c| format!("\"{}\"", c.replace('"', "\"\"")))
                    .collect::<Vec<_>>()
                    .join(",")
                    + "\r\n"
            })
            .collect::<String>();
        let with_bom = [&b"\xEF\xBB\xBF"[..], saved.as_bytes()].concat();
        let expected = vec![
            (1, RowStatus::Sent, "=id-1".to_string(), String::new()),
            (2, RowStatus::Failed, "'q".to_string(), "a, b".to_string()),
        ];
        assert_eq!(read_all(ours.as_bytes()).unwrap(), expected);
        assert_eq!(read_all(saved.as_bytes()).unwrap(), expected);
        assert_eq!(read_all(&with_bom).unwrap(), expected);
    }

    #[test]
    fn a_bad_cell_is_named_by_row_column_and_fix() {
        let text = format!("{HEADER}1,id-1,sent,m1,200,,,r1,1,,\n7,id-7,snet,,,,,,1,,\n");
        let err = format!("{:#}", read_all(text.as_bytes()).unwrap_err());
        assert!(
            err.contains("line 3 (row 7), column `status`: `snet` is not one of sent, failed, unknown or skipped")
                && err.contains("Fix that cell"),
            "{err}"
        );
        let err = format!("{:#}", read_all(b"name,email\nann,a@x\n").unwrap_err());
        assert!(
            err.contains("not a results file of `campaign send`"),
            "{err}"
        );
    }
}
