//! The files tracking reads and writes: the results file (through the ledger's one reader,
//! [`crate::results::read::Reader`]) and the tracking file beside it, `<results minus .csv>.tracking.csv`, replaced whole on every run.
use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use serde::Serialize;

use crate::results::read::{Col, Reader};
use crate::results::{cells, row_number, RowStatus, CONTACT_ID};

/// The tracking file's columns, in order: a contract with users' spreadsheets.
pub(crate) const COLUMNS: [&str; 7] = [
    "row",
    "message_id",
    "conversation_id",
    "state",
    "replied_at",
    "drop_reason",
    "checked_at",
];

/// The longest line read from a results or tracking file; longer ones are refused.
const MAX_LINE: usize = 1 << 20;

/// One row of the results file, as tracking needs it.
#[derive(Debug, Clone)]
pub(crate) struct Recorded {
    pub(crate) row: u64,
    pub(crate) recipient: String,
    pub(crate) status: RowStatus,
    pub(crate) message_id: String,
    /// The contact id a looked-up row's message went to (empty for `[to] id` campaigns).
    pub(crate) contact_id: String,
    /// RFC 3339, as written.
    pub(crate) finished_at: String,
}

/// Every row's last line in the results file, by row number, read by the ledger's one reader.
/// The caller holds the ledger's lock.
pub(crate) fn read_results(path: &Path) -> anyhow::Result<BTreeMap<u64, Recorded>> {
    let Some(mut rdr) = Reader::open(path)? else {
        anyhow::bail!("cannot read {}: no such file", path.display());
    };
    let contact_c = rdr.column(CONTACT_ID);
    let mut rows = BTreeMap::new();
    while let Some(line) = rdr.next()? {
        rows.insert(
            line.row,
            Recorded {
                row: line.row,
                recipient: rdr.text(Col::Recipient).into_owned(),
                status: line.status,
                message_id: rdr.text(Col::MessageId).into_owned(),
                contact_id: contact_c
                    .map(|c| rdr.cell(c).into_owned())
                    .unwrap_or_default(),
                finished_at: rdr.text(Col::FinishedAt).into_owned(),
            },
        );
    }
    Ok(rows)
}

/// What tracking found of one sent row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct Tracked {
    pub(crate) row: u64,
    pub(crate) message_id: String,
    pub(crate) conversation_id: String,
    /// `replied`, `not_replied` or `dropped`.
    pub(crate) state: String,
    /// RFC 3339, empty when none.
    pub(crate) replied_at: String,
    pub(crate) drop_reason: String,
    pub(crate) checked_at: String,
}

/// `<results minus .csv>.tracking.csv`, beside the results.
pub(crate) fn tracking_path(results: &Path) -> PathBuf {
    let name = results
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let stem = name.strip_suffix(".csv").unwrap_or(&name);
    results.with_file_name(format!("{stem}.tracking.csv"))
}

/// The tracking file's rows by row number; none when there is no file yet.
pub(crate) fn read_tracking(path: &Path) -> anyhow::Result<BTreeMap<u64, Tracked>> {
    let name = path.display();
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(BTreeMap::new()),
        Err(e) => return Err(e).with_context(|| format!("cannot read {name}")),
    };
    let mut rdr = csv::Reader::from_reader(file);
    let header: Vec<String> = rdr.headers()?.iter().map(str::to_string).collect();
    if header != COLUMNS {
        anyhow::bail!(
            "{name}: not a tracking file (its header is not `{}`): move it away, `campaign track` writes it again",
            COLUMNS.join(",")
        );
    }
    let mut rows = BTreeMap::new();
    for rec in rdr.records() {
        let rec = rec.with_context(|| format!("cannot read {name}"))?;
        if rec.as_slice().len() > MAX_LINE {
            anyhow::bail!("{name}: a line longer than {MAX_LINE} bytes");
        }
        let f = |i: usize| cells::unescape(rec.get(i).unwrap_or("")).to_string();
        let Ok(row) = row_number(f(0).as_bytes()) else {
            continue;
        };
        rows.insert(
            row,
            Tracked {
                row,
                message_id: f(1),
                conversation_id: f(2),
                state: f(3),
                replied_at: f(4),
                drop_reason: f(5),
                checked_at: f(6),
            },
        );
    }
    Ok(rows)
}

/// Replaces the tracking file whole (see [`replace`]).
pub(crate) fn write_tracking(path: &Path, rows: &BTreeMap<u64, Tracked>) -> anyhow::Result<()> {
    replace(path, |out| {
        let mut w = csv::Writer::from_writer(out);
        w.write_record(COLUMNS)?;
        for t in rows.values() {
            w.write_record([
                t.row.to_string().as_str(),
                &cells::escape(&t.message_id),
                &cells::escape(&t.conversation_id),
                &t.state,
                &t.replied_at,
                &cells::escape(&t.drop_reason),
                &t.checked_at,
            ])?;
        }
        w.flush()?;
        Ok(())
    })
}

/// Replaces `path` with what `write` puts in a new file: written beside it, synced, renamed over
/// it, the folder synced; a kill leaves the old file or the new one, never a part.
pub(crate) fn replace(
    path: &Path,
    write: impl FnOnce(&mut std::io::BufWriter<File>) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    // A leftover (or a link planted there) is removed, not followed.
    match std::fs::remove_file(&tmp) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("cannot remove {}", tmp.display())),
    }
    let file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&tmp)
        .with_context(|| format!("cannot create {}", tmp.display()))?;
    let mut out = std::io::BufWriter::new(file);
    write(&mut out).with_context(|| format!("cannot write {}", tmp.display()))?;
    out.flush()?;
    let file = out
        .into_inner()
        .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", tmp.display()))?;
    file.sync_all()
        .with_context(|| format!("cannot sync {}", tmp.display()))?;
    drop(file);
    std::fs::rename(&tmp, path).with_context(|| format!("cannot replace {}", path.display()))?;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    File::open(dir)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("cannot sync the folder {}", dir.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tracking_file_is_named_after_the_results() {
        assert_eq!(
            tracking_path(Path::new("out/welcome.results.csv")),
            Path::new("out/welcome.results.tracking.csv")
        );
        assert_eq!(tracking_path(Path::new("r")), Path::new("r.tracking.csv"));
    }

    #[test]
    fn a_tracking_file_reads_back_as_written() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.csv");
        let mut rows = BTreeMap::new();
        rows.insert(
            3,
            Tracked {
                row: 3,
                message_id: "=1+2".into(),
                conversation_id: "9".into(),
                state: "replied".into(),
                replied_at: "2026-01-01T00:00:00Z".into(),
                drop_reason: String::new(),
                checked_at: "2026-01-02T00:00:00Z".into(),
            },
        );
        write_tracking(&path, &rows).unwrap();
        assert_eq!(read_tracking(&path).unwrap(), rows);
        assert!(std::fs::read_to_string(&path).unwrap().contains("'=1+2"));
    }
}
