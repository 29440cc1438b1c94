//! The ledger of a campaign: the results file (one CSV line per row outcome), the journal of
//! requests about to leave, the lock that lets one run at a time use them, and the run log.
//!
//! What they promise together, over any sequence of runs, kills and resumes by any number of
//! processes: a row is messaged at most once unless `--retry-unknown` names it, and every row
//! that was attempted keeps its last outcome. The rules that make it so:
//! - a row is journaled, and the journal synced, before its request leaves ([`Journal`]);
//! - a journaled row without an outcome line is recorded `unknown` before the journal is retired,
//!   and the journal is retired before the results file is compacted ([`settle()`]);
//! - files are replaced whole (written beside, synced, renamed, the folder synced);
//! - one process at a time holds the lock ([`RunLock`]).
mod amend;
pub(crate) mod cells;
mod journal;
mod lock;
pub mod mark;
mod row;
mod runs;
mod settle;
mod writer;

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _};

pub(crate) use amend::{amend, Amendment};
pub(crate) use journal::{header as journal_header, Journal, JournalHeader};
pub(crate) use lock::RunLock;
pub(crate) use row::{
    now_rfc3339, row_number, ResultRow, RowStatus, COLUMNS, CONTACT_ID, INTERRUPTED, MARKED_SKIPPED,
};
pub(crate) use runs::{append_run, RunRecord};
pub(crate) use settle::{settle, Prior, Tally, MAX_ROWS};
pub(crate) use writer::{header_of, ResultsWriter};

/// The files of one campaign's ledger, all named after the results file.
#[derive(Debug, Clone)]
pub(crate) struct Ledger {
    pub(crate) results: PathBuf,
    pub(crate) journal: PathBuf,
    pub(crate) lock: PathBuf,
    pub(crate) runs: PathBuf,
}

impl Ledger {
    pub(crate) fn new(results: PathBuf) -> Ledger {
        let beside = |suffix: &str| {
            let mut name = results.as_os_str().to_owned();
            name.push(suffix);
            PathBuf::from(name)
        };
        Ledger {
            journal: beside(".journal"),
            lock: beside(".lock"),
            runs: beside(".runs.jsonl"),
            results,
        }
    }

    /// Refuses a ledger path that exists and is not a regular file: a symlink would be replaced
    /// by a plain file at the first compaction, `/dev/null` would record nothing, `/dev/full` or
    /// a FIFO would never end a read.
    pub(crate) fn check_files(&self) -> anyhow::Result<()> {
        for path in [&self.results, &self.journal, &self.lock, &self.runs] {
            regular_or_absent(path)?;
        }
        Ok(())
    }

    /// Whether an earlier run left anything: a row in the results file, or a row in its journal
    /// (a run killed before its first outcome was written has only the journal).
    pub(crate) fn has_history(&self) -> anyhow::Result<bool> {
        let recorded = journal::header(&self.journal)?.is_some_and(|h| h.rows > 0);
        Ok(recorded || settle::has_rows(&self.results)? || journal::has_rows(&self.journal)?)
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

impl<R: std::io::Read> std::io::Read for LineCap<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        for &b in &buf[..n] {
            if b == b'\n' {
                self.run = 0;
            } else {
                self.run += 1;
                if self.run > self.max {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        format!("a line longer than {} bytes", self.max),
                    ));
                }
            }
        }
        Ok(n)
    }
}

/// The longest line a results file or journal may hold.
const MAX_LINE: usize = 1 << 20;
