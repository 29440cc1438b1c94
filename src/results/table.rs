//! A table of fixed-width records, one per row, kept in an unnamed temporary file with a small
//! cache of pages in memory: what a ledger's settling knows of each row (its status, recipient
//! hash, last line), so that the memory it takes does not grow with the number of rows.
//!
//! The file is made in a folder beside the results file, not in the system's temporary folder
//! (often held in memory), and is unlinked as it is made: a killed process leaves nothing. The
//! results file is read in nearly row order, so a few pages, the least recently used evicted
//! (and written back when changed), serve most reads and writes without a system call.
use std::fs::File;
use std::io::{Read as _, Seek as _, SeekFrom, Write as _};
use std::path::{Path, PathBuf};

use anyhow::Context as _;

/// Bytes per page: one read or write of the file.
const PAGE: usize = 64 * 1024;
/// Pages kept in memory (2 MiB in all).
const CACHED: usize = 32;

/// Records of `W` bytes by row, all zero until set.
pub(crate) struct Table<const W: usize> {
    file: File,
    folder: PathBuf,
    /// One past the highest row set.
    len: u64,
    /// Pages at or past this one were never written to the file: they are all zero.
    written: u64,
    pages: Vec<Page>,
    /// The page used last: the next access is most often to it.
    last: usize,
    clock: u64,
}

struct Page {
    index: u64,
    bytes: Box<[u8]>,
    dirty: bool,
    used: u64,
}

impl<const W: usize> std::fmt::Debug for Table<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Table")
            .field("folder", &self.folder)
            .field("len", &self.len)
            .finish_non_exhaustive()
    }
}

impl<const W: usize> Table<W> {
    const PER_PAGE: u64 = (PAGE / W) as u64;

    /// An empty table in a temporary file in `folder`.
    pub(crate) fn new(folder: &Path) -> anyhow::Result<Self> {
        let file = tempfile::tempfile_in(folder).with_context(|| {
            format!(
                "cannot make a temporary file in {} (for what is known of each row)",
                folder.display()
            )
        })?;
        Ok(Table {
            file,
            folder: folder.to_path_buf(),
            len: 0,
            written: 0,
            pages: Vec::with_capacity(CACHED),
            last: 0,
            clock: 0,
        })
    }

    /// One past the highest row set: rows below it may hold records.
    pub(crate) fn len(&self) -> u64 {
        self.len
    }

    pub(crate) fn get(&mut self, row: u64) -> anyhow::Result<[u8; W]> {
        let mut out = [0; W];
        if row < self.len {
            let (page, at) = self.page(row)?;
            out.copy_from_slice(&self.pages[page].bytes[at..at + W]);
        }
        Ok(out)
    }

    pub(crate) fn set(&mut self, row: u64, record: [u8; W]) -> anyhow::Result<()> {
        let (page, at) = self.page(row)?;
        let p = &mut self.pages[page];
        p.bytes[at..at + W].copy_from_slice(&record);
        p.dirty = true;
        self.len = self.len.max(row + 1);
        Ok(())
    }

    /// The cached page that holds `row` (read in, or another evicted, as needed), and the
    /// record's offset in it.
    fn page(&mut self, row: u64) -> anyhow::Result<(usize, usize)> {
        let index = row / Self::PER_PAGE;
        let at = (row % Self::PER_PAGE) as usize * W;
        self.clock += 1;
        let slot = match self.pages.get(self.last) {
            Some(p) if p.index == index => self.last,
            _ => match self.pages.iter().position(|p| p.index == index) {
                Some(slot) => slot,
                None => self.load(index).with_context(|| {
                    format!(
                        "cannot read or write the temporary file in {} (for what is known of each row)",
                        self.folder.display()
                    )
                })?,
            },
        };
        self.pages[slot].used = self.clock;
        self.last = slot;
        Ok((slot, at))
    }

    /// Brings page `index` into the cache, in place of the least recently used page when full.
    fn load(&mut self, index: u64) -> std::io::Result<usize> {
        let slot = if self.pages.len() < CACHED {
            self.pages.push(Page {
                index,
                bytes: vec![0; PAGE].into_boxed_slice(),
                dirty: false,
                used: 0,
            });
            self.pages.len() - 1
        } else {
            let slot = (0..self.pages.len())
                .min_by_key(|&i| self.pages[i].used)
                .unwrap_or(0);
            self.write_back(slot)?;
            slot
        };
        let page = &mut self.pages[slot];
        page.index = index;
        page.dirty = false;
        if index < self.written {
            self.file.seek(SeekFrom::Start(index * PAGE as u64))?;
            self.file.read_exact(&mut page.bytes)?;
        } else {
            page.bytes.fill(0);
        }
        Ok(slot)
    }

    fn write_back(&mut self, slot: usize) -> std::io::Result<()> {
        let page = &mut self.pages[slot];
        if !page.dirty {
            return Ok(());
        }
        // Pages between the file's end and this one read as zero (a hole in the file).
        self.file.seek(SeekFrom::Start(page.index * PAGE as u64))?;
        self.file.write_all(&page.bytes)?;
        page.dirty = false;
        self.written = self.written.max(page.index + 1);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// Records of 13 bytes: pages do not hold a whole number of them, as the ledger's do not.
    type T = Table<13>;

    fn record(seed: u64) -> [u8; 13] {
        let mut r = [0; 13];
        r[..8].copy_from_slice(&seed.to_le_bytes());
        r[8..].copy_from_slice(&seed.to_be_bytes()[..5]);
        r
    }

    #[test]
    fn rows_never_set_read_as_zero() {
        let dir = tempfile::tempdir().unwrap();
        let mut t = T::new(dir.path()).unwrap();
        assert_eq!(t.get(7).unwrap(), [0; 13]);
        t.set(10, record(1)).unwrap();
        assert_eq!(t.len(), 11);
        assert_eq!(t.get(9).unwrap(), [0; 13]);
        assert_eq!(t.get(10).unwrap(), record(1));
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            0,
            "no file left"
        );
    }

    #[test]
    fn a_missing_folder_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let gone = dir.path().join("gone");
        let e = T::new(&gone).unwrap_err();
        assert!(
            format!("{e:#}").contains(&gone.display().to_string()),
            "{e:#}"
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]
        /// Gets and sets anywhere in more pages than the cache holds read what a vector would.
        #[test]
        fn reads_what_a_vector_would(
            ops in prop::collection::vec(
                (any::<bool>(), 0..(T::PER_PAGE * (CACHED as u64 * 2)), any::<u64>()),
                1..3000,
            ),
            runs in prop::collection::vec(0..(T::PER_PAGE * (CACHED as u64 * 2)), 0..4),
        ) {
            let dir = tempfile::tempdir().unwrap();
            let mut t = T::new(dir.path()).unwrap();
            let mut model: Vec<[u8; 13]> = Vec::new();
            // Sequential runs over page boundaries, as a results file is read.
            for start in runs {
                for row in start..start + T::PER_PAGE + 5 {
                    if model.len() <= row as usize {
                        model.resize(row as usize + 1, [0; 13]);
                    }
                    model[row as usize] = record(row);
                    t.set(row, record(row)).unwrap();
                }
            }
            for (set, row, seed) in ops {
                if set {
                    if model.len() <= row as usize {
                        model.resize(row as usize + 1, [0; 13]);
                    }
                    model[row as usize] = record(seed);
                    t.set(row, record(seed)).unwrap();
                } else {
                    let want = model.get(row as usize).copied().unwrap_or([0; 13]);
                    prop_assert_eq!(t.get(row).unwrap(), want);
                }
            }
            prop_assert_eq!(t.len(), model.len() as u64);
            for (row, want) in model.iter().enumerate() {
                prop_assert_eq!(t.get(row as u64).unwrap(), *want);
            }
        }
    }
}
