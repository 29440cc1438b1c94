//! The recipients' hashes, sorted in bounded memory, to find the ones that occur more than once.
//! Up to `BUFFER` hashes are held at once; a file with more valid rows has each full buffer
//! sorted and written to a temporary file (a run), and the runs are merged, smallest hash first,
//! so that equal hashes meet wherever they were in the file. A repeated hash is never missed:
//! the merge sees every hash in order, as a sort of them all would.
//!
//! The runs go beside the recipients file: its disk holds the file already, while the system's
//! temporary folder may be memory (tmpfs), where a run would cost what it saves. Where that
//! folder takes no file (a read-only share), the system's temporary folder does. The files are
//! unlinked as they are made, so nothing is left behind, even by a run that is killed.
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use rayon::prelude::*;

use crate::input::problem::{Problem, ProblemKind};

/// Hashes held in memory at most: 8 MiB. A million-row file is sorted in memory as it always
/// was; ten million make ten runs.
const BUFFER: usize = 1 << 20;
#[cfg(test)]
thread_local! {
    /// A smaller buffer for `Hashes::new` on this thread: preflight's tests spill small files.
    pub(super) static TEST_BUFFER: std::cell::Cell<Option<usize>> = const { std::cell::Cell::new(None) };
}
/// The buffer of each run's reader and of the writer.
const IO_BUFFER: usize = 64 << 10;

/// Hashes pushed one by one, then `repeated`.
pub(super) struct Hashes {
    buffer: Vec<u64>,
    most: usize,
    runs: Vec<File>,
    /// Where the recipients file is, next to which runs are written.
    near: PathBuf,
    /// Where the runs went, once one was written.
    folder: Option<PathBuf>,
}

/// A temporary file that could not be written or read back: says the folder, and what to do.
#[derive(Debug)]
pub(super) struct SpillError {
    folder: PathBuf,
    error: io::Error,
}

impl SpillError {
    /// The error as preflight reports it: not a row's, so --skip-invalid cannot get past it.
    pub(super) fn problem(&self) -> Problem {
        Problem::error(
            ProblemKind::Csv,
            self.folder.display().to_string(),
            format!(
                "a temporary file to sort the rows' recipients in (to find rows that address the same recipient) could not be written or read back here: {}; free some space in this folder, or make it writable",
                self.error
            ),
        )
    }
}

impl Hashes {
    /// Hashes whose runs, if any, go beside `near` (the recipients file).
    pub(super) fn new(near: &Path) -> Hashes {
        #[cfg(test)]
        let most = TEST_BUFFER.with(|b| b.get()).unwrap_or(BUFFER);
        #[cfg(not(test))]
        let most = BUFFER;
        Hashes::with_buffer(near, most)
    }

    /// As `new`, with at most `most` hashes in memory (tests make it small, for several runs).
    pub(super) fn with_buffer(near: &Path, most: usize) -> Hashes {
        Hashes {
            buffer: Vec::new(),
            most: most.max(1),
            runs: Vec::new(),
            near: near.to_path_buf(),
            folder: None,
        }
    }

    pub(super) fn push(&mut self, hash: u64) -> Result<(), SpillError> {
        if self.buffer.len() == self.most {
            self.spill()?;
        }
        self.buffer.push(hash);
        Ok(())
    }

    /// The hashes that occur more than once (sorted), and how many hashes repeat an earlier one.
    pub(super) fn repeated(mut self) -> Result<(Vec<u64>, u64), SpillError> {
        let mut repeats = Repeats::default();
        if self.runs.is_empty() {
            // All in memory: nothing else is left to do when this runs, so every core sorts.
            self.buffer.par_sort_unstable();
            for &h in &self.buffer {
                repeats.see(h);
            }
            return Ok(repeats.done());
        }
        if !self.buffer.is_empty() {
            self.spill()?;
        }
        self.buffer = Vec::new();
        let runs = std::mem::take(&mut self.runs);
        let folder = self.folder.clone().unwrap_or_default();
        merge(runs, &mut |h| repeats.see(h)).map_err(|error| SpillError { folder, error })?;
        Ok(repeats.done())
    }

    /// The buffer sorted into a run of its own.
    fn spill(&mut self) -> Result<(), SpillError> {
        self.buffer.par_sort_unstable();
        let (mut file, folder) = temporary(&self.near, self.folder.as_deref())?;
        let written = write_run(&mut file, &self.buffer);
        self.folder = Some(folder.clone());
        written.map_err(|error| SpillError { folder, error })?;
        self.runs.push(file);
        self.buffer.clear();
        Ok(())
    }
}

/// A temporary file in `folder` if an earlier run went there; else beside `near`, or failing
/// that in the system's temporary folder.
fn temporary(near: &Path, folder: Option<&Path>) -> Result<(File, PathBuf), SpillError> {
    if let Some(folder) = folder {
        return tempfile::tempfile_in(folder)
            .map(|f| (f, folder.to_path_buf()))
            .map_err(|error| SpillError {
                folder: folder.to_path_buf(),
                error,
            });
    }
    let beside = match near.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    match tempfile::tempfile_in(&beside) {
        Ok(f) => Ok((f, beside)),
        Err(_) => {
            let system = std::env::temp_dir();
            tempfile::tempfile_in(&system)
                .map(|f| (f, system.clone()))
                .map_err(|error| SpillError {
                    folder: system,
                    error,
                })
        }
    }
}

fn write_run(file: &mut File, sorted: &[u64]) -> io::Result<()> {
    let mut w = BufWriter::with_capacity(IO_BUFFER, &mut *file);
    for h in sorted {
        w.write_all(&h.to_le_bytes())?;
    }
    w.flush()?;
    drop(w);
    file.seek(SeekFrom::Start(0))?;
    Ok(())
}

/// Every hash of the sorted `runs`, smallest first, into `each`.
fn merge(runs: Vec<File>, each: &mut dyn FnMut(u64)) -> io::Result<()> {
    let mut readers: Vec<BufReader<File>> = runs
        .into_iter()
        .map(|f| BufReader::with_capacity(IO_BUFFER, f))
        .collect();
    let mut heads = BinaryHeap::with_capacity(readers.len());
    for (i, r) in readers.iter_mut().enumerate() {
        if let Some(h) = next_hash(r)? {
            heads.push(Reverse((h, i)));
        }
    }
    while let Some(Reverse((h, i))) = heads.pop() {
        each(h);
        if let Some(next) = next_hash(&mut readers[i])? {
            heads.push(Reverse((next, i)));
        }
    }
    Ok(())
}

/// The run's next hash; `None` at its end.
fn next_hash(r: &mut BufReader<File>) -> io::Result<Option<u64>> {
    let mut bytes = [0u8; 8];
    match r.read_exact(&mut bytes) {
        Ok(()) => Ok(Some(u64::from_le_bytes(bytes))),
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(None),
        Err(e) => Err(e),
    }
}

/// The repeated hashes of a sorted sequence, as it goes by.
#[derive(Default)]
struct Repeats {
    last: Option<u64>,
    repeated: Vec<u64>,
    rows: u64,
}

impl Repeats {
    fn see(&mut self, h: u64) {
        if self.last == Some(h) {
            self.rows += 1;
            if self.repeated.last() != Some(&h) {
                self.repeated.push(h);
            }
        }
        self.last = Some(h);
    }

    fn done(self) -> (Vec<u64>, u64) {
        (self.repeated, self.rows)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// What sorting them all in memory says.
    fn model(mut hashes: Vec<u64>) -> (Vec<u64>, u64) {
        hashes.sort_unstable();
        let mut repeated: Vec<u64> = Vec::new();
        let mut rows = 0;
        for pair in hashes.windows(2) {
            if pair[0] == pair[1] {
                rows += 1;
                if repeated.last() != Some(&pair[0]) {
                    repeated.push(pair[0]);
                }
            }
        }
        (repeated, rows)
    }

    fn sorted(hashes: &[u64], most: usize) -> (Vec<u64>, u64, usize) {
        let dir = tempfile::tempdir().unwrap();
        let mut h = Hashes::with_buffer(&dir.path().join("recipients.csv"), most);
        for &x in hashes {
            h.push(x).unwrap();
        }
        let runs = h.runs.len();
        let (repeated, rows) = h.repeated().unwrap();
        (repeated, rows, runs)
    }

    proptest! {
        #[test]
        fn runs_merged_find_what_one_sort_finds(
            // A small range, so that hashes repeat, within a run and across runs.
            hashes in prop::collection::vec(prop_oneof![0u64..40, any::<u64>()], 0..300),
            most in 1usize..16,
        ) {
            let (repeated, rows, _) = sorted(&hashes, most);
            prop_assert_eq!((repeated, rows), model(hashes));
        }
    }

    #[test]
    fn a_repeat_split_across_runs_is_found() {
        // 7 at the start and at the end, in the first and the last of four runs.
        let hashes = [7, 1, 2, 3, 4, 5, 6, 8, 9, 7];
        let (repeated, rows, runs) = sorted(&hashes, 3);
        assert!(runs >= 3, "{runs} runs");
        assert_eq!((repeated, rows), (vec![7], 1));
    }

    #[test]
    fn a_folder_that_takes_no_file_is_named() {
        let e = temporary(Path::new("/x"), Some(Path::new("/nonexistent-folder/sub"))).unwrap_err();
        let p = e.problem();
        assert!(p.to_string().contains("/nonexistent-folder/sub"), "{p}");
    }
}
