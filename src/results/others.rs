//! Other ledgers of the same campaign. A fresh ledger (no rows, no journal) is where a copied
//! campaign file, `--results` pointing elsewhere, or a results file deleted by hand would start
//! again from row 1 and message everyone a second time. Two records find them:
//! - the results file's run log, which outlives a deleted results file and journal;
//! - the ledgers' register in the hidden folder beside the recipients CSV
//!   (`.campaign/<recipients>.ledgers.jsonl`): one JSON line per ledger a run started from that
//!   CSV, with the campaign's fingerprint (templates, message settings and target) and the results
//!   file's absolute path. Every campaign file that sends to that CSV, copied or not, wherever its
//!   results go, reads and writes the same register. An earlier version kept it beside the CSV
//!   (`<recipients>.ledgers.jsonl`): that one is read too, and moved into the folder when the
//!   folder has none yet.
use std::fs::{File, OpenOptions};
use std::io::{BufRead as _, BufReader, Write as _};
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use serde::{Deserialize, Serialize};

use super::read::Reader;
use super::{side, Ledger, LineCap, RowStatus};

/// The most register lines read: a register is one line per ledger, a few at most.
const MAX_ENTRIES: usize = 10_000;

/// A line of the register.
#[derive(Debug, Serialize, Deserialize)]
struct Entry {
    /// `fingerprint@target`, as the journal's header has it.
    settings: String,
    /// The results file, absolute.
    results: PathBuf,
}

/// Another record of messages sent for this campaign, found where a fresh ledger starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Other {
    /// The run log beside this very results file records messages sent (or perhaps sent:
    /// `unknown`): the results file and journal were deleted or moved.
    RunLog { runs: PathBuf, sent: u64 },
    /// Another results file of the same campaign and target has rows `sent` or `unknown`.
    Ledger { results: PathBuf, sent: u64 },
}

/// The register in the hidden folder beside the recipients CSV.
pub(crate) fn register_path(recipients: &Path) -> PathBuf {
    side::path(recipients, side::REGISTER)
}

/// The register's entries, in the folder and where an earlier version kept it: its lines are
/// not under one ledger's lock (every ledger of the CSV appends to it), so an older binary may
/// still be appending there.
fn all_entries(recipients: &Path) -> anyhow::Result<Vec<Entry>> {
    let mut all = entries(&register_path(recipients))?;
    all.extend(entries(&side::legacy(recipients, side::REGISTER))?);
    Ok(all)
}

impl Ledger {
    /// The first other record of sent messages for a campaign whose fingerprint is `settings`,
    /// sent from `recipients`: this ledger's own run log, then the register's other ledgers.
    pub(crate) fn other_ledger(
        &self,
        recipients: &Path,
        settings: &str,
    ) -> anyhow::Result<Option<Other>> {
        let sent = sent_in_run_log(&side::found(&self.results, side::RUNS))?;
        if sent > 0 {
            return Ok(Some(Other::RunLog {
                runs: side::found(&self.results, side::RUNS),
                sent,
            }));
        }
        let me = absolute(&self.results);
        for entry in all_entries(recipients)? {
            if entry.settings != settings || same_file(&entry.results, &me) {
                continue;
            }
            let runs = side::found(&entry.results, side::RUNS);
            let sent = sent_rows(&entry.results)?.max(sent_in_run_log(&runs)?);
            if sent > 0 {
                return Ok(Some(Other::Ledger {
                    results: entry.results,
                    sent,
                }));
            }
        }
        Ok(None)
    }

    /// Adds this ledger to the register beside `recipients`, once. The lock is checked first.
    pub(crate) fn register(&self, recipients: &Path, settings: &str) -> anyhow::Result<()> {
        self.held()?;
        let path = register_path(recipients);
        super::regular_or_absent(&path)?;
        side::make_folder(recipients)?;
        // An earlier version's register moves in by a link, which never replaces a register
        // another run made meanwhile; a line an older binary appends meanwhile goes with the
        // file, or into a new one at the old place, which is read too. One that cannot be
        // linked stays where it is, read all the same.
        let old = side::legacy(recipients, side::REGISTER);
        if std::fs::symlink_metadata(&old).is_ok_and(|m| m.is_file())
            && std::fs::hard_link(&old, &path).is_ok()
        {
            let _ = std::fs::remove_file(&old);
        }
        let me = absolute(&self.results);
        if all_entries(recipients)?
            .iter()
            .any(|e| e.settings == settings && same_file(&e.results, &me))
        {
            return Ok(());
        }
        let mut line = serde_json::to_vec(&Entry {
            settings: settings.to_string(),
            results: me,
        })?;
        line.push(b'\n');
        OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .and_then(|mut f| f.write_all(&line))
            .with_context(|| format!("cannot write the ledgers' register {}", path.display()))
    }
}

/// The register's entries; lines that do not read (a hand edit) are passed over.
fn entries(path: &Path) -> anyhow::Result<Vec<Entry>> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    let mut out = Vec::new();
    for line in BufReader::new(LineCap::new(file, 64 * 1024))
        .lines()
        .take(MAX_ENTRIES)
    {
        let line = line.with_context(|| format!("cannot read {}", path.display()))?;
        if let Ok(entry) = serde_json::from_str::<Entry>(&line) {
            out.push(entry);
        }
    }
    Ok(out)
}

/// Messages the run log's runs say they sent, or may have sent (`unknown`).
fn sent_in_run_log(runs: &Path) -> anyhow::Result<u64> {
    #[derive(Deserialize)]
    struct Run {
        #[serde(default)]
        sent: u64,
        #[serde(default)]
        unknown: u64,
    }
    let file = match File::open(runs) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", runs.display())),
    };
    let mut sent = 0u64;
    for line in BufReader::new(LineCap::new(file, 64 * 1024)).lines() {
        let line = line.with_context(|| format!("cannot read {}", runs.display()))?;
        if let Ok(run) = serde_json::from_str::<Run>(&line) {
            sent = sent.saturating_add(run.sent).saturating_add(run.unknown);
        }
    }
    Ok(sent)
}

/// Rows `sent` or `unknown` (perhaps sent) in a results file (0 when there is none).
fn sent_rows(results: &Path) -> anyhow::Result<u64> {
    let Some(mut rdr) = Reader::open(results)? else {
        return Ok(0);
    };
    let mut sent = 0;
    while let Some(line) = rdr.next()? {
        sent += u64::from(matches!(line.status, RowStatus::Sent | RowStatus::Unknown));
    }
    Ok(sent)
}

/// The path made absolute (its folder resolved, when it exists), so that two spellings of one
/// file compare equal.
fn absolute(path: &Path) -> PathBuf {
    let abs = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    match (abs.parent(), abs.file_name()) {
        (Some(dir), Some(name)) => std::fs::canonicalize(dir)
            .map(|d| d.join(name))
            .unwrap_or(abs),
        _ => abs,
    }
}

fn same_file(a: &Path, b: &Path) -> bool {
    absolute(a) == absolute(b)
}
