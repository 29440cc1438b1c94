//! The ledger of a campaign: the results file (one CSV line per row outcome), the journal of
//! requests about to leave, the lock that lets one run at a time use them, and the run log; all
//! but the results file in the hidden folder beside it ([`side`]).
//!
//! What they promise together, over any sequence of runs, kills and resumes by any number of
//! processes: a row is messaged at most once unless `--retry-unknown` names it, and every row
//! that was attempted keeps its last outcome. The rules that make it so:
//! - a row is journaled, and the journal synced, before its request leaves ([`Journal`]);
//! - a journaled row without an outcome line is recorded `unknown` before the journal is retired,
//!   and the journal is retired before the results file is compacted ([`settle()`]);
//! - files are replaced whole (written beside, synced, renamed, the folder synced);
//! - one process at a time holds the lock ([`RunLock`]), and every write goes through a locked
//!   [`Ledger`], which checks before each one that the lock file is still the one it locked: a
//!   run whose lock was removed or replaced writes none of the ledger's files again;
//! - the results file is read by one reader ([`read::Reader`]), a line at a time, with one rule
//!   for the spreadsheet-safe prefix;
//! - a fresh ledger is refused where another record of the campaign says messages went out
//!   ([`Ledger::other_ledger`]).
mod amend;
pub(crate) mod cells;
mod columns;
mod journal;
mod lock;
pub mod mark;
mod others;
pub(crate) mod read;
mod row;
pub(crate) mod runs;
mod settle;
pub(crate) mod side;
mod table;
mod writer;

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _};

pub(crate) use amend::Amendment;
pub(crate) use columns::copied_columns;
pub(crate) use journal::{header as journal_header, Journal, JournalHeader};
pub(crate) use lock::{LockLost, RunLock};
pub(crate) use others::Other;
pub(crate) use row::{
    now_rfc3339, row_number, ResultRow, RowStatus, COLUMNS, CONTACT_ID, INTERRUPTED, MARKED_SKIPPED,
};
pub(crate) use runs::RunRecord;
pub(crate) use settle::{settle, Prior, Tally, MAX_ROWS};
pub(crate) use writer::{header_of, ResultsWriter};

/// The files of one campaign's ledger, all named after the results file (the others in the hidden
/// folder beside it), and the lock this process holds on them. Every write to them goes through a
/// locked `Ledger`, which checks the lock before each one ([`RunLock::check`]): a run whose lock
/// was removed or replaced writes nothing more.
#[derive(Debug, Clone)]
pub(crate) struct Ledger {
    pub(crate) results: PathBuf,
    pub(crate) journal: PathBuf,
    pub(crate) lock: PathBuf,
    pub(crate) runs: PathBuf,
    held: Option<std::sync::Arc<RunLock>>,
}

impl Ledger {
    pub(crate) fn new(results: PathBuf) -> Ledger {
        Ledger {
            journal: side::path(&results, side::JOURNAL),
            lock: side::path(&results, side::LOCK),
            runs: side::path(&results, side::RUNS),
            results,
            held: None,
        }
    }

    /// Takes the lock (one run at a time), or fails with [`lock::Busy`] naming the holder; then
    /// moves in what an earlier version left beside the results file ([`Ledger::adopt`]).
    pub(crate) fn lock(&mut self) -> anyhow::Result<std::sync::Arc<RunLock>> {
        side::make_folder(&self.results)?;
        let held = std::sync::Arc::new(RunLock::acquire(&self.lock, &self.results)?);
        self.adopt()?;
        self.held = Some(std::sync::Arc::clone(&held));
        Ok(held)
    }

    /// Moves the journal and run log an earlier version kept beside the results file into the
    /// folder, under its lock as well as this one's: an older binary still running on this ledger
    /// holds that lock and knows no other, so it is honoured as a lock ([`lock::Busy`]), and
    /// nothing is moved while that run writes. The old lock file goes last, once the files it
    /// guarded are in the folder (a move cut short is finished by the next run).
    fn adopt(&self) -> anyhow::Result<()> {
        let old_lock = side::legacy(&self.results, side::LOCK);
        let old_journal = side::legacy(&self.results, side::JOURNAL);
        let old_runs = side::legacy(&self.results, side::RUNS);
        if ![&old_lock, &old_journal, &old_runs]
            .iter()
            .any(|p| side::exists(p))
        {
            return Ok(());
        }
        let old = RunLock::acquire(&old_lock, &self.results)?;
        side::adopt(&old_journal, &self.journal, side::Both::Refuse, "journal")?;
        side::adopt(&old_runs, &self.runs, side::Both::Append, "run log")?;
        std::fs::remove_file(&old_lock)
            .with_context(|| format!("cannot remove {}", old_lock.display()))?;
        sync_dir(&old_lock)?;
        drop(old);
        Ok(())
    }

    /// The lock, still this process's: the check before every write.
    pub(crate) fn held(&self) -> anyhow::Result<&std::sync::Arc<RunLock>> {
        let held = self.held.as_ref().ok_or_else(|| {
            anyhow::anyhow!("the ledger {} is not locked", self.results.display())
        })?;
        held.check()?;
        Ok(held)
    }

    /// Whether the lock was found removed or replaced: nothing may be written any more.
    pub(crate) fn lost(&self) -> bool {
        self.held.as_ref().is_some_and(|h| h.is_lost())
    }

    /// Opens the results file for appending (see [`ResultsWriter::open_with`]); each write
    /// checks the lock first.
    pub(crate) fn writer(&self, extra: &[String]) -> anyhow::Result<ResultsWriter> {
        let held = std::sync::Arc::clone(self.held()?);
        ResultsWriter::open_with(&self.results, extra, Some(held))
    }

    /// Starts this run's journal (see [`Journal::start`]); each write checks the lock first.
    pub(crate) fn start_journal(&self, header: &JournalHeader) -> anyhow::Result<Journal> {
        let held = std::sync::Arc::clone(self.held()?);
        Journal::start(&self.journal, header, held)
    }

    /// Appends a run's line to the run log.
    pub(crate) fn append_run(&self, run: &RunRecord) -> anyhow::Result<()> {
        self.held()?;
        runs::append_run(&self.runs, run)
    }

    /// Rewrites the lines of the rows named (see [`amend()`]).
    pub(crate) fn amend(
        &self,
        changes: &std::collections::HashMap<u64, Amendment>,
    ) -> anyhow::Result<()> {
        self.held()?;
        amend::amend(self, changes)
    }

    /// Refuses a ledger path that exists and is not a regular file: a symlink would be replaced
    /// by a plain file at the first compaction, `/dev/null` would record nothing, `/dev/full` or
    /// a FIFO would never end a read.
    pub(crate) fn check_files(&self) -> anyhow::Result<()> {
        for path in [&self.results, &self.journal, &self.lock, &self.runs] {
            regular_or_absent(path)?;
        }
        for suffix in [side::JOURNAL, side::LOCK, side::RUNS] {
            regular_or_absent(&side::legacy(&self.results, suffix))?;
        }
        Ok(())
    }

    /// Whether an earlier run left anything: a row in the results file, or a row in its journal
    /// (a run killed before its first outcome was written has only the journal), wherever the
    /// version that wrote it kept it: this is asked before the lock is taken.
    pub(crate) fn has_history(&self) -> anyhow::Result<bool> {
        let journal = side::found(&self.results, side::JOURNAL);
        let recorded = journal::header(&journal)?.is_some_and(|h| h.rows > 0);
        Ok(recorded || settle::has_rows(&self.results)? || journal::has_rows(&journal)?)
    }
}

fn regular_or_absent(path: &Path) -> anyhow::Result<()> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_file() => Ok(()),
        Ok(m) => {
            let what = if m.file_type().is_symlink() {
                "a symbolic link"
            } else if m.file_type().is_dir() {
                "a folder"
            } else {
                "not a regular file (a device, pipe or socket)"
            };
            bail!(
                "{} is {what}: results, journal and lock files must be regular files, since they are replaced whole and read back on resume; pass --results with the path of a plain file",
                path.display()
            )
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).with_context(|| format!("cannot inspect {}", path.display())),
    }
}

/// Replaces `path` with what `write` puts in a new file: written beside it, synced, renamed over
/// it, and the folder synced, so that a crash leaves the old file or the new one, never a part.
fn replace_file(
    path: &Path,
    write: impl FnOnce(&mut File) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let mut tmp_name = path.as_os_str().to_owned();
    tmp_name.push(".tmp");
    let tmp = PathBuf::from(tmp_name);
    // A leftover (or a link planted there) is removed, not followed.
    match std::fs::remove_file(&tmp) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("cannot remove {}", tmp.display())),
    }
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&tmp)
        .with_context(|| format!("cannot create {}", tmp.display()))?;
    write(&mut file).with_context(|| format!("cannot write {}", tmp.display()))?;
    file.flush()?;
    file.sync_all()
        .with_context(|| format!("cannot sync {}", tmp.display()))?;
    drop(file);
    std::fs::rename(&tmp, path).with_context(|| format!("cannot replace {}", path.display()))?;
    sync_dir(path)
}

/// Syncs the folder that holds `path`, so that a rename or a new file in it survives a power cut.
fn sync_dir(path: &Path) -> anyhow::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    #[cfg(unix)]
    File::open(dir)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("cannot sync the folder {}", dir.display()))?;
    Ok(())
}

/// A reader that refuses a line longer than `max` bytes: a results file or journal is read back
/// on resume, and a damaged or hostile one must not make that read take unbounded memory.
struct LineCap<R> {
    inner: R,
    max: usize,
    run: usize,
}

impl<R> LineCap<R> {
    fn new(inner: R, max: usize) -> LineCap<R> {
        LineCap { inner, max, run: 0 }
    }
}

impl<R> LineCap<R> {
    /// `Err` once the line being read has grown past the bound.
    fn within(&self, run: usize) -> std::io::Result<()> {
        if run > self.max {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("a line longer than {} bytes", self.max),
            ));
        }
        Ok(())
    }
}

impl<R: std::io::Read> std::io::Read for LineCap<R> {
    /// Measures lines between line breaks (found with `memchr`, not byte by byte: settling reads
    /// a whole results file and journal after every run).
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        let mut start = 0;
        for nl in memchr::memchr_iter(b'\n', &buf[..n]) {
            self.within(self.run + (nl - start))?;
            self.run = 0;
            start = nl + 1;
        }
        self.run += n - start;
        self.within(self.run)?;
        Ok(n)
    }
}

/// The longest line a results file or journal may hold.
const MAX_LINE: usize = 1 << 20;

#[cfg(test)]
mod tests {
    use std::io::Read as _;

    use super::LineCap;

    /// Hands its bytes out `1` at a time, as a file read in small pieces does.
    struct Trickle<'a>(&'a [u8], usize);

    impl std::io::Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let n = self.1.min(buf.len()).min(self.0.len());
            buf[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    #[test]
    fn a_line_as_long_as_the_bound_reads_and_a_byte_more_is_refused_however_the_reads_cut_it() {
        for piece in [1, 3, 4, 5, 64] {
            let ok = b"abcd\nefgh\n\nijkl";
            let mut out = Vec::new();
            LineCap::new(Trickle(ok, piece), 4)
                .read_to_end(&mut out)
                .unwrap();
            assert_eq!(out, ok);
            for bad in [&b"abcde\n"[..], b"ab\nabcde", b"abcd\n\nabcdefgh\nab"] {
                let err = LineCap::new(Trickle(bad, piece), 4)
                    .read_to_end(&mut Vec::new())
                    .unwrap_err();
                assert_eq!(err.to_string(), "a line longer than 4 bytes", "{piece}");
            }
        }
    }
}
