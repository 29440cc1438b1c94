//! Each row's request hash as preflight rendered it, by record number (0: not a valid row), for
//! the dispatch to compare with what it is about to send. Written once in row order to a
//! temporary file beside the results file, and read back in row order (the manifest's count of
//! what is left, then the reader's comparison): memory holds a buffer, whatever the rows. The
//! file is unlinked as it is made, so a run that is killed leaves nothing behind.
use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use anyhow::Context;

/// Bytes a row takes in the file.
const WIDTH: u64 = 4;
const IO_BUFFER: usize = 64 << 10;

/// The hashes being written, row by row.
pub(super) struct Writing {
    out: BufWriter<File>,
    /// Rows written so far.
    rows: u64,
    folder: PathBuf,
    /// The first write that failed: the rest are not tried, and `finish` says it.
    failed: Option<io::Error>,
}

/// The hashes of every row, written.
pub(super) struct Expected {
    file: File,
    rows: u64,
    folder: PathBuf,
}

/// A reader of the hashes, in row order (or any order, at the cost of a seek).
pub(super) struct Cursor {
    input: BufReader<File>,
    folder: PathBuf,
    rows: u64,
    /// The row whose hash the file gives next.
    next: u64,
    /// The hash of row `next - 1`.
    last: u32,
}

/// The folder of the results file, where the hashes go: the run writes there anyway.
fn folder_of(results: &Path) -> PathBuf {
    match results.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

fn failed(folder: &Path) -> String {
    format!(
        "{}: a temporary file of the rows' hashes (what the send compares each row with) could not be written or read back there; free some space in that folder",
        folder.display()
    )
}

impl Writing {
    /// A temporary file beside `results`.
    pub(super) fn beside(results: &Path) -> anyhow::Result<Writing> {
        let folder = folder_of(results);
        let file = tempfile::tempfile_in(&folder).with_context(|| failed(&folder))?;
        Ok(Writing {
            out: BufWriter::with_capacity(IO_BUFFER, file),
            rows: 0,
            folder,
            failed: None,
        })
    }

    /// Row `row`'s hash; the rows before it that were not set are 0 (not valid). Rows come in
    /// increasing order.
    pub(super) fn set(&mut self, row: u64, hash: u32) {
        debug_assert!(row > self.rows, "rows in order");
        self.fill(row.saturating_sub(1));
        self.write(hash);
    }

    fn fill(&mut self, rows: u64) {
        while self.rows < rows {
            self.write(0);
        }
    }

    fn write(&mut self, hash: u32) {
        if self.failed.is_none() {
            if let Err(e) = self.out.write_all(&hash.to_le_bytes()) {
                self.failed = Some(e);
            }
        }
        self.rows += 1;
    }

    /// The file, `rows` long (the last rows 0 when not set).
    pub(super) fn finish(mut self, rows: u64) -> anyhow::Result<Expected> {
        self.fill(rows);
        let folder = self.folder;
        if let Some(e) = self.failed {
            return Err(anyhow::Error::new(e).context(failed(&folder)));
        }
        let file = self
            .out
            .into_inner()
            .map_err(|e| e.into_error())
            .with_context(|| failed(&folder))?;
        Ok(Expected {
            file,
            rows: self.rows,
            folder,
        })
    }
}

impl Expected {
    /// How many rows preflight read.
    pub(super) fn rows(&self) -> u64 {
        self.rows
    }

    /// A reader from the first row.
    pub(super) fn cursor(&self) -> anyhow::Result<Cursor> {
        let mut file = self
            .file
            .try_clone()
            .with_context(|| failed(&self.folder))?;
        file.seek(SeekFrom::Start(0))
            .with_context(|| failed(&self.folder))?;
        Ok(Cursor {
            input: BufReader::with_capacity(IO_BUFFER, file),
            folder: self.folder.clone(),
            rows: self.rows,
            next: 1,
            last: 0,
        })
    }

    /// Every row's hash, in order, into `each`.
    pub(super) fn each(&self, each: &mut dyn FnMut(u64, u32)) -> anyhow::Result<()> {
        let mut cursor = self.cursor()?;
        for row in 1..=self.rows {
            each(row, cursor.at(row)?);
        }
        Ok(())
    }
}

impl Cursor {
    /// Row `row`'s hash; 0 for a row beyond the file's (or row 0).
    pub(super) fn at(&mut self, row: u64) -> anyhow::Result<u32> {
        self.read(row).with_context(|| failed(&self.folder))
    }

    fn read(&mut self, row: u64) -> io::Result<u32> {
        if row == 0 || row > self.rows {
            return Ok(0);
        }
        if row + 1 == self.next {
            return Ok(self.last);
        }
        if row != self.next {
            let by = (row as i64 - self.next as i64) * WIDTH as i64;
            self.input.seek_relative(by)?;
        }
        let mut bytes = [0u8; 4];
        self.input.read_exact(&mut bytes)?;
        self.last = u32::from_le_bytes(bytes);
        self.next = row + 1;
        Ok(self.last)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn reads_back_what_was_set(
            set in prop::collection::btree_map(1u64..200, 1u32.., 0..50),
            extra in 0u64..5,
            asked in prop::collection::vec(0u64..220, 0..80),
        ) {
            let dir = tempfile::tempdir().unwrap();
            let mut w = Writing::beside(&dir.path().join("results.csv")).unwrap();
            for (&row, &hash) in &set {
                w.set(row, hash);
            }
            let rows = set.keys().last().copied().unwrap_or(0) + extra;
            let e = w.finish(rows).unwrap();
            prop_assert_eq!(e.rows(), rows);
            let model = |row: u64| set.get(&row).copied().unwrap_or(0);
            let mut seen = Vec::new();
            e.each(&mut |row, hash| seen.push((row, hash))).unwrap();
            prop_assert_eq!(seen, (1..=rows).map(|r| (r, model(r))).collect::<Vec<_>>());
            // Rows asked in any order, as the reader asks them (in order, with repeats).
            let mut cursor = e.cursor().unwrap();
            for row in asked {
                prop_assert_eq!(cursor.at(row).unwrap(), if row <= rows { model(row) } else { 0 });
            }
        }
    }

    #[test]
    fn a_folder_that_takes_no_file_is_named() {
        let e = Writing::beside(Path::new("/nonexistent-folder/results.csv"))
            .err()
            .unwrap();
        assert!(
            format!("{e:#}").starts_with("/nonexistent-folder: a temporary file"),
            "{e:#}"
        );
    }
}
