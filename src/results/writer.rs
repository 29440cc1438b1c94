//! Appends outcome lines to the results file as they arrive.
use std::fs::{File, OpenOptions};
use std::io::{BufRead as _, Write};
use std::path::Path;

use anyhow::Context as _;

use super::row::{ResultRow, COLUMNS};

/// Appends result lines. Each call hands its lines to the OS in one write, so that a process
/// killed between calls leaves whole lines; one killed inside a write leaves a torn last line,
/// which [`super::settle`] repairs.
pub struct ResultsWriter {
    file: File,
    path: std::path::PathBuf,
    /// The fields a line has: the header's.
    width: usize,
}

impl ResultsWriter {
    /// Opens the results file for appending, writing the header into a new or empty one.
    pub fn open(path: &Path) -> anyhow::Result<ResultsWriter> {
        Self::open_with(path, &[])
    }

    /// As [`ResultsWriter::open`]; a new file's header names `extra` columns after the fixed
    /// ones. An existing file keeps its header, and lines are padded to it.
    pub fn open_with(path: &Path, extra: &[String]) -> anyhow::Result<ResultsWriter> {
        let file = OpenOptions::new()
            .create(true)
            .read(true)
            .append(true)
            .open(path)
            .with_context(|| format!("cannot open the results file {}", path.display()))?;
        let mut w = ResultsWriter {
            file,
            path: path.to_path_buf(),
            width: COLUMNS.len() + extra.len(),
        };
        if w.file.metadata().map(|m| m.len() == 0).unwrap_or(true) {
            let header: Vec<&str> = COLUMNS
                .iter()
                .copied()
                .chain(extra.iter().map(String::as_str))
                .collect();
            let mut lines = csv::WriterBuilder::new().from_writer(Vec::new());
            lines.write_record(&header)?;
            w.append(lines)?;
        } else {
            w.width = header_of(path)?.len().max(COLUMNS.len());
        }
        Ok(w)
    }

    pub fn write(&mut self, row: &ResultRow) -> anyhow::Result<()> {
        self.write_all(std::iter::once(row))
    }

    /// Lines for outcomes that arrived together, in one write.
    pub fn write_all<'a>(
        &mut self,
        rows: impl IntoIterator<Item = &'a ResultRow>,
    ) -> anyhow::Result<()> {
        let mut lines = csv::WriterBuilder::new()
            .flexible(true)
            .has_headers(false)
            .from_writer(Vec::new());
        for row in rows {
            lines.write_record(fields(row, self.width))?;
        }
        self.append(lines)
    }

    /// Waits until what was written is on stable storage.
    pub fn sync(&self) -> anyhow::Result<()> {
        self.file
            .sync_data()
            .with_context(|| format!("cannot sync the results file {}", self.path.display()))
    }

    fn append(&mut self, lines: csv::Writer<Vec<u8>>) -> anyhow::Result<()> {
        let bytes = lines
            .into_inner()
            .map_err(|e| anyhow::anyhow!("cannot format a results line: {}", e.error()))?;
        self.file
            .write_all(&bytes)
            .with_context(|| format!("cannot write the results file {}", self.path.display()))
    }
}

/// A line's fields: the fixed columns, then the extra ones, padded to `width`. Text cells are
/// spreadsheet-safe (`crate::cells`), read back exactly by `cells::unescape`.
fn fields(row: &ResultRow, width: usize) -> Vec<String> {
    let text = |s: &str| crate::cells::escape(s).into_owned();
    let mut f = vec![
        row.row.to_string(),
        text(&row.recipient),
        row.status.as_str().to_string(),
        text(&row.message_id),
        row.http_status.map(|s| s.to_string()).unwrap_or_default(),
        text(&row.error_code),
        text(&row.error_message),
        text(&row.request_id),
        row.attempts.to_string(),
        row.finished_at.clone(),
    ];
    f.extend(row.extra.iter().map(|e| text(e)));
    f.resize(width.max(f.len()), String::new());
    f
}

/// The results file's header.
pub fn header_of(path: &Path) -> anyhow::Result<Vec<String>> {
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
