//! Appends outcome lines to the results file as they arrive.
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;

use anyhow::Context as _;

use super::row::{ResultRow, COLUMNS, CONTACT_ID};

/// Appends result lines. Each call hands its lines to the OS in one write, so that a process
/// killed between calls leaves whole lines; one killed inside a write leaves a torn last line,
/// which [`super::settle`] repairs.
pub struct ResultsWriter {
    file: File,
    path: std::path::PathBuf,
}

impl ResultsWriter {
    /// Opens the results file for appending, writing the header into a new or empty one.
    pub fn open(path: &Path) -> anyhow::Result<ResultsWriter> {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .with_context(|| format!("cannot open the results file {}", path.display()))?;
        let mut w = ResultsWriter {
            file,
            path: path.to_path_buf(),
        };
        if w.file.metadata().map(|m| m.len() == 0).unwrap_or(true) {
            let mut header = csv::WriterBuilder::new().from_writer(Vec::new());
            header.write_record(COLUMNS.iter().chain([&CONTACT_ID]))?;
            w.append(header)?;
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
            .has_headers(false)
            .from_writer(Vec::new());
        for row in rows {
            // Spreadsheet-safe cells (`crate::cells`), read back exactly by `cells::unescape`.
            lines.serialize(&*crate::cells::escape_row(row))?;
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
