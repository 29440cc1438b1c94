//! Appends outcome lines to the results file as they arrive.
use std::borrow::Cow;
use std::fs::{File, OpenOptions};
use std::io::{BufRead as _, Write};
use std::path::Path;

use anyhow::Context as _;

use super::row::{ResultRow, COLUMNS, CONTACT_ID};

/// Appends result lines. Each call hands its lines to the OS in one write, so that a process
/// killed between calls leaves whole lines; one killed inside a write leaves a torn last line,
/// which [`super::settle()`] repairs.
pub(crate) struct ResultsWriter {
    file: File,
    path: std::path::PathBuf,
    /// The fields a line has: the header's.
    width: usize,
    /// Whether the header has `contact_id` after the fixed columns.
    contact_column: bool,
    /// Checked before each write: a ledger whose lock was lost is not written.
    lock: Option<std::sync::Arc<super::RunLock>>,
    /// The lines of the write being made, kept from one write to the next.
    buf: Vec<u8>,
}

/// The CSV writer a batch of lines is formatted with: a small buffer of its own (it hands its
/// bytes to [`ResultsWriter::buf`] as it fills), since one is made for each write.
const CSV_BUFFER: usize = 512;

impl ResultsWriter {
    /// Opens the results file for appending, writing the header into a new or empty one.
    #[cfg(test)]
    pub(crate) fn open(path: &Path) -> anyhow::Result<ResultsWriter> {
        Self::open_with(path, &[], None)
    }

    /// As [`ResultsWriter::open`]; a new file's header names `extra` columns after the fixed
    /// ones. An existing file keeps its header, and lines are padded to it.
    pub(crate) fn open_with(
        path: &Path,
        extra: &[String],
        lock: Option<std::sync::Arc<super::RunLock>>,
    ) -> anyhow::Result<ResultsWriter> {
        let file = OpenOptions::new()
            .create(true)
            .read(true)
            .append(true)
            .open(path)
            .with_context(|| format!("cannot open the results file {}", path.display()))?;
        let mut w = ResultsWriter {
            file,
            path: path.to_path_buf(),
            width: COLUMNS.len() + 1 + extra.len(),
            contact_column: true,
            lock,
            buf: Vec::new(),
        };
        if w.file.metadata().map(|m| m.len() == 0).unwrap_or(true) {
            let header: Vec<&str> = COLUMNS
                .iter()
                .copied()
                .chain([CONTACT_ID])
                .chain(extra.iter().map(String::as_str))
                .collect();
            let mut lines = csv::WriterBuilder::new().from_writer(Vec::new());
            lines.write_record(&header)?;
            w.append(lines)?;
        } else {
            let header = header_of(path)?;
            w.width = header.len().max(COLUMNS.len());
            w.contact_column = header.get(COLUMNS.len()).map(String::as_str) == Some(CONTACT_ID);
        }
        Ok(w)
    }

    pub(crate) fn write(&mut self, row: &ResultRow) -> anyhow::Result<()> {
        self.write_all(std::iter::once(row))
    }

    /// Lines for outcomes that arrived together, in one write.
    pub(crate) fn write_all<'a>(
        &mut self,
        rows: impl IntoIterator<Item = &'a ResultRow>,
    ) -> anyhow::Result<()> {
        let mut lines = csv::WriterBuilder::new()
            .flexible(true)
            .has_headers(false)
            .buffer_capacity(CSV_BUFFER)
            .from_writer(std::mem::take(&mut self.buf));
        for row in rows {
            lines.write_record(
                fields(row, self.width, self.contact_column)
                    .iter()
                    .map(|f| f.as_bytes()),
            )?;
        }
        self.append(lines)
    }

    /// Waits until what was written is on stable storage.
    pub(crate) fn sync(&self) -> anyhow::Result<()> {
        self.file
            .sync_data()
            .with_context(|| format!("cannot sync the results file {}", self.path.display()))
    }

    fn append(&mut self, lines: csv::Writer<Vec<u8>>) -> anyhow::Result<()> {
        self.buf = lines
            .into_inner()
            .map_err(|e| anyhow::anyhow!("cannot format a results line: {}", e.error()))?;
        let written = self.write_buf();
        self.buf.clear();
        written
    }

    fn write_buf(&self) -> anyhow::Result<()> {
        if let Some(lock) = &self.lock {
            lock.check()?;
        }
        (&self.file)
            .write_all(&self.buf)
            .with_context(|| format!("cannot write the results file {}", self.path.display()))
    }
}

/// A line's fields: the fixed columns, then the extra ones, padded to `width`. Text cells are
/// spreadsheet-safe (`crate::results::cells`), read back exactly by `cells::unescape`; borrowed
/// from the row where they need no escaping, as most do.
fn fields(row: &ResultRow, width: usize, contact_column: bool) -> Vec<Cow<'_, str>> {
    let text = |s| crate::results::cells::escape(s);
    let mut f = Vec::with_capacity(width);
    f.extend([
        Cow::Owned(row.row.to_string()),
        text(&row.recipient),
        Cow::Borrowed(row.status.as_str()),
        text(&row.message_id),
        row.http_status
            .map_or(Cow::Borrowed(""), |s| Cow::Owned(s.to_string())),
        text(&row.error_code),
        text(&row.error_message),
        text(&row.request_id),
        Cow::Owned(row.attempts.to_string()),
        Cow::Borrowed(row.finished_at.as_str()),
    ]);
    if contact_column {
        f.push(text(&row.contact_id));
    }
    f.extend(row.extra.iter().map(|e| text(e)));
    f.resize(width.max(f.len()), Cow::Borrowed(""));
    f
}

/// The results file's header.
pub(crate) fn header_of(path: &Path) -> anyhow::Result<Vec<String>> {
    let file = File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut first = String::new();
    std::io::BufReader::new(super::LineCap::new(file, super::MAX_LINE))
        .read_line(&mut first)
        .with_context(|| format!("cannot read {}", path.display()))?;
    let mut rdr = csv::ReaderBuilder::new()
        .has_headers(false)
        .from_reader(first.as_bytes());
    Ok(rdr
        .records()
        .next()
        .transpose()?
        .map(|r| r.iter().map(str::to_string).collect())
        .unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::RowStatus;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]
        /// Through the csv writer and reader, as the results file is: no cell a spreadsheet
        /// would run, and every value read back as it was.
        #[test]
        fn any_value_round_trips_and_no_cell_is_a_formula(
            recipient in "(['=+@\\t\\r-]{0,3})(\\PC|[\\t\\r\\n,\"'])*",
            message in any::<String>(),
            name in "(['=+@-]{0,2})\\PC{0,8}",
        ) {
            let row = ResultRow {
                row: 1,
                recipient,
                status: RowStatus::Failed,
                message_id: String::new(),
                http_status: Some(400),
                error_code: "-code".into(),
                error_message: message,
                request_id: "@req".into(),
                attempts: 1,
                finished_at: "2026-01-01T00:00:00.000Z".into(),
                contact_id: "=c".into(),
                extra: vec![name],
            };
            let mut w = csv::WriterBuilder::new().has_headers(false).from_writer(Vec::new());
            w.write_record(fields(&row, COLUMNS.len() + 2, true).iter().map(|f| f.as_bytes())).unwrap();
            let bytes = w.into_inner().unwrap();
            let mut rdr = csv::ReaderBuilder::new().has_headers(false).from_reader(&bytes[..]);
            let rec = rdr.records().next().unwrap().unwrap();
            for cell in rec.iter() {
                prop_assert!(!cell.starts_with(['=', '+', '-', '@', '\t', '\r']), "{cell:?}");
            }
            let back = |i: usize| crate::results::cells::unescape(&rec[i]).to_string();
            prop_assert_eq!(back(1), row.recipient);
            prop_assert_eq!(back(5), row.error_code);
            prop_assert_eq!(back(6), row.error_message);
            prop_assert_eq!(back(7), row.request_id);
            prop_assert_eq!(back(10), row.contact_id.clone());
            prop_assert_eq!(back(11), row.extra[0].clone());
        }
    }
}
