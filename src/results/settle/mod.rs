//! Settling a ledger before a run and after it: a torn last line repaired, the rows an earlier
//! run left in flight recorded `unknown`, the journal retired, and the results file compacted to
//! one line per row. The order is what makes any stop safe: an `unknown` line is on disk before
//! the journal that justifies it is retired, and the journal is retired before compaction moves
//! the lines its offset points at.
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Read as _, Seek as _, SeekFrom};
use std::path::Path;
use std::sync::Arc;

use anyhow::{bail, Context as _};

use super::journal::{self, JournalHeader};
use super::read::{Col, Reader};
use super::row::{ResultRow, RowStatus, MARKED_SKIPPED};
use super::writer::ResultsWriter;
use super::{replace_file, Ledger, LineCap, RunLock, MAX_LINE};

/// The most rows a campaign can have and still be resumed: per-row state is kept in arrays
/// indexed by row, so a corrupt row number must not size them (at this bound, 140 MB at most).
pub(crate) const MAX_ROWS: u64 = 10_000_000;

/// Rows per status: what a ledger holds, and what `report` counts.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub(crate) struct Tally {
    pub(crate) sent: u64,
    pub(crate) failed: u64,
    pub(crate) unknown: u64,
    pub(crate) skipped: u64,
}

impl Tally {
    pub(crate) fn add(&mut self, status: RowStatus) {
        match status {
            RowStatus::Sent => self.sent += 1,
            RowStatus::Failed => self.failed += 1,
            RowStatus::Unknown => self.unknown += 1,
            RowStatus::Skipped => self.skipped += 1,
        }
    }

    pub(crate) fn rows(&self) -> u64 {
        self.sent + self.failed + self.unknown + self.skipped
    }
}

/// What the runs so far left: each row's last status and recipient, and the campaign's
/// fingerprint from the journal.
#[derive(Debug, Default)]
pub(crate) struct Prior {
    /// By row: `RowStatus::code` of its last line, 0 for none.
    statuses: Vec<u8>,
    /// By row: its recipient's hash.
    recipients: Vec<u64>,
    pub(crate) header: Option<JournalHeader>,
    pub(crate) tally: Tally,
    /// Rows found in flight when the last run stopped, recorded `unknown` now.
    pub(crate) recovered_unknown: u64,
    /// Those rows, in order: no one has looked them up yet, so nothing in this invocation may
    /// change what they mean.
    pub(crate) recovered: Vec<u64>,
    /// By row: what its last line says besides its status ([`Prior::FLAG_MESSAGE_ID`], …).
    flags: Vec<u8>,
}

impl Prior {
    /// The row's last line names a message id: Intercom made a message for it.
    const FLAG_MESSAGE_ID: u8 = 1;
    /// The row's last line is an operator's `skipped` (`campaign mark --as skipped`).
    const FLAG_CLOSED: u8 = 2;
    /// The row's last line is a `failed` that a resend repeats ([`super::row::fails_again`]).
    const FLAG_FAILS_AGAIN: u8 = 4;

    pub(crate) fn status(&self, row: u64) -> Option<RowStatus> {
        self.statuses
            .get(row as usize)
            .copied()
            .and_then(RowStatus::from_code)
    }

    pub(crate) fn recipient_hash(&self, row: u64) -> Option<u64> {
        self.status(row).map(|_| self.recipients[row as usize])
    }

    /// The rows whose last status is `status`, in order.
    pub(crate) fn rows_with(&self, status: RowStatus) -> impl Iterator<Item = u64> + '_ {
        let code = status.code();
        self.statuses
            .iter()
            .enumerate()
            .filter(move |(_, s)| **s == code)
            .map(|(i, _)| i as u64)
    }

    /// Each row with a status, in order.
    pub(crate) fn recorded(&self) -> impl Iterator<Item = (u64, RowStatus)> + '_ {
        self.statuses
            .iter()
            .enumerate()
            .filter_map(|(i, s)| RowStatus::from_code(*s).map(|s| (i as u64, s)))
    }

    /// The number of rows with a status.
    pub(crate) fn rows(&self) -> u64 {
        self.tally.rows()
    }

    /// Whether the row's last line names a message id (a `failed` one so is a hand edit: the
    /// message may exist).
    pub(crate) fn has_message_id(&self, row: u64) -> bool {
        self.flags
            .get(row as usize)
            .is_some_and(|f| f & Self::FLAG_MESSAGE_ID != 0)
    }

    /// Whether the row is `skipped` by the operator's decision (`mark --as skipped`): it is
    /// never sent, nor checked again.
    pub(crate) fn closed(&self, row: u64) -> bool {
        self.flags
            .get(row as usize)
            .is_some_and(|f| f & Self::FLAG_CLOSED != 0)
    }

    /// Whether the row is `failed` in a way that sending it again as it is repeats.
    pub(crate) fn fails_again(&self, row: u64) -> bool {
        self.flags
            .get(row as usize)
            .is_some_and(|f| f & Self::FLAG_FAILS_AGAIN != 0)
    }

    /// Whether the row was recorded `unknown` by this settling (in flight when the last run
    /// stopped).
    pub(crate) fn recovered_now(&self, row: u64) -> bool {
        self.recovered.binary_search(&row).is_ok()
    }

    fn set(&mut self, row: u64, status: RowStatus, recipient: u64) {
        let i = row as usize;
        if self.statuses.len() <= i {
            self.statuses.resize(i + 1, 0);
            self.recipients.resize(i + 1, 0);
            self.flags.resize(i + 1, 0);
        }
        self.statuses[i] = status.code();
        self.recipients[i] = recipient;
        self.flags[i] = 0;
    }

    fn set_flags(&mut self, row: u64, message_id: bool, closed: bool, fails_again: bool) {
        if let Some(f) = self.flags.get_mut(row as usize) {
            *f = u8::from(message_id) * Self::FLAG_MESSAGE_ID
                + u8::from(closed) * Self::FLAG_CLOSED
                + u8::from(fails_again) * Self::FLAG_FAILS_AGAIN;
        }
    }
}

/// Whether the results file has a row (a line after its header).
pub(super) fn has_rows(results: &Path) -> anyhow::Result<bool> {
    let f = match File::open(results) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", results.display())),
    };
    for line in BufReader::new(LineCap::new(f, MAX_LINE)).lines().skip(1) {
        let line = line.with_context(|| format!("cannot read {}", results.display()))?;
        if !line
            .trim()
            .trim_matches(|c| c == '"' || c == ',')
            .is_empty()
        {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Settles the ledger (see the module's header) and says what it holds. `hash` maps a
/// recipient to the 8 bytes resume compares. The ledger must be locked; the lock is checked
/// before each write. The journal and the results file are read a line at a time: what is kept
/// is a status byte, a recipient hash and a line index per row.
pub(crate) fn settle(ledger: &Ledger, hash: &dyn Fn(&str) -> u64) -> anyhow::Result<Prior> {
    let lock = ledger.held()?;
    let header = journal::header(&ledger.journal)?;
    let offset = header.as_ref().map(|h| h.results_offset);
    let mut prior = Prior {
        header: header.clone(),
        ..Prior::default()
    };
    if !ledger.results.exists() {
        lock.check()?;
    }
    let mut writer = ResultsWriter::open_with(&ledger.results, &[], Some(Arc::clone(lock)))?;
    let mut scan = scan(&ledger.results, lock, offset, &mut prior, hash)?;
    check_complete(ledger, header.as_ref(), &prior)?;

    // Rows journaled by the last run without an outcome line from it: in flight when it stopped.
    let mut orphans: Vec<ResultRow> = Vec::new();
    let mut journaled = false;
    journal::read(&ledger.journal, &mut |row, recipient| {
        journaled = true;
        let i = row as usize;
        if scan.answered.len() <= i {
            scan.answered.resize(i + 1, false);
        }
        if !std::mem::replace(&mut scan.answered[i], true) {
            orphans.push(ResultRow::interrupted(
                row,
                recipient,
                "the run stopped while this request was in flight: it may have been delivered",
            ));
        }
    })?;
    if !orphans.is_empty() {
        writer.write_all(&orphans)?;
        writer.sync()?;
        for o in &orphans {
            prior.set(o.row, RowStatus::Unknown, hash(&o.recipient));
            scan.last_line_is(o.row, scan.lines);
            scan.lines += 1;
        }
        prior.recovered_unknown = orphans.len() as u64;
        prior.recovered = orphans.iter().map(|o| o.row).collect();
        prior.recovered.sort_unstable();
    }
    // Every outcome on stable storage before the journal that would otherwise vouch for it goes.
    writer.sync()?;
    drop(writer);

    let rows = prior.statuses.iter().filter(|s| **s != 0).count() as u64;
    if let Some(header) = &header {
        if journaled || header.results_offset != journal::RETIRED || header.rows != rows {
            journal::retire(&ledger.journal, lock, header, rows)?;
        }
    }
    if scan.superseded(scan.lines) {
        compact(&ledger.results, lock, &scan.last_line)?;
    }
    for code in &prior.statuses {
        if let Some(status) = RowStatus::from_code(*code) {
            prior.tally.add(status);
        }
    }
    Ok(prior)
}

/// Refuses a results file that lost rows the journal says it had, or that has rows but no journal
/// (which says what campaign and target they belong to: a rehearsal's rows must never count as
/// sent to customers).
fn check_complete(
    ledger: &Ledger,
    header: Option<&JournalHeader>,
    prior: &Prior,
) -> anyhow::Result<()> {
    let rows = prior.statuses.iter().filter(|s| **s != 0).count() as u64;
    match header {
        None if rows > 0 => bail!(
            "{} holds {rows} rows, but its journal {} is missing: the journal records which campaign and which API those rows were sent to. If the results file was moved or copied, bring its journal along (into the .campaign folder beside it); otherwise choose another --results file",
            ledger.results.display(),
            ledger.journal.display()
        ),
        Some(h) if rows < h.rows => bail!(
            "{} holds {rows} rows, but {} rows were recorded in it after the last run: it was cut or replaced (a copy, an edit, a disk that lost writes). Restore it from a copy; resuming now could message those rows again",
            ledger.results.display(),
            h.rows
        ),
        _ => Ok(()),
    }
}

/// What a read of the results file found besides each row's status.
struct Scan {
    /// By row: the index of its last line (`u32::MAX`: none).
    last_line: Vec<u32>,
    lines: u32,
    /// By row: whether it has a line written at or after the journal's offset (by the last run).
    answered: Vec<bool>,
}

impl Scan {
    fn last_line_is(&mut self, row: u64, line: u32) {
        let i = row as usize;
        if self.last_line.len() <= i {
            self.last_line.resize(i + 1, u32::MAX);
        }
        self.last_line[i] = line;
    }

    /// Whether some row has more than one line.
    fn superseded(&self, lines: u32) -> bool {
        let distinct = self.last_line.iter().filter(|&&l| l != u32::MAX).count();
        (distinct as u32) < lines
    }
}

/// Reads every line of the results file into `prior`, repairing a torn last line first.
fn scan(
    results: &Path,
    lock: &RunLock,
    offset: Option<u64>,
    prior: &mut Prior,
    hash: &dyn Fn(&str) -> u64,
) -> anyhow::Result<Scan> {
    repair_tail(results, lock, offset)?;
    let mut scan = Scan {
        last_line: Vec::new(),
        lines: 0,
        answered: Vec::new(),
    };
    let Some(mut rdr) = Reader::open(results)? else {
        return Ok(scan);
    };
    while let Some(line) = rdr.next()? {
        let row = line.row;
        prior.set(row, line.status, hash(&rdr.text(Col::Recipient)));
        prior.set_flags(
            row,
            !rdr.text(Col::MessageId).is_empty(),
            line.status == RowStatus::Skipped && rdr.text(Col::ErrorCode) == MARKED_SKIPPED,
            line.status == RowStatus::Failed
                && super::row::fails_again(
                    rdr.text(Col::HttpStatus).trim().parse().ok(),
                    &rdr.text(Col::ErrorCode),
                ),
        );
        if offset.is_some_and(|o| after(line.start, o)) {
            if scan.answered.len() <= row as usize {
                scan.answered.resize(row as usize + 1, false);
            }
            scan.answered[row as usize] = true;
        }
        scan.last_line_is(row, scan.lines);
        scan.lines += 1;
    }
    Ok(scan)
}

/// Repairs a last line torn by a process killed while writing it. A line missing fields lost
/// part of its outcome: it is cut, and its row is settled from the journal (`unknown`) or, if it
/// was a skipped row, looked at again. A line with every field whose last one was cut (or that
/// lost its line break) keeps its outcome and is written whole again. Either is done only to a
/// line the last run wrote (at or after the journal's offset); anything else is refused. A whole
/// line, however it is quoted and whatever its line break (a spreadsheet's save), is left as is.
fn repair_tail(results: &Path, lock: &RunLock, offset: Option<u64>) -> anyhow::Result<()> {
    let Some((start, line, record, width)) = last_record(results)? else {
        return Ok(());
    };
    let mut file = OpenOptions::new().read(true).open(results)?;
    let len = file.seek(SeekFrom::End(0))?;
    file.seek(SeekFrom::Start(start))?;
    let mut tail = Vec::new();
    (&mut file).take(len - start).read_to_end(&mut tail)?;
    drop(file);
    // After a CRLF line break the reader puts the next line's start on the break's `\n`.
    let start = match tail.first() {
        Some(b'\n') => {
            tail.remove(0);
            start + 1
        }
        _ => start,
    };
    let whole = {
        let mut w = csv::WriterBuilder::new().from_writer(Vec::new());
        w.write_byte_record(&record)?;
        w.into_inner()
            .map_err(|e| anyhow::anyhow!("{}", e.error()))?
    };
    // Ended by a line break outside any quotes, with as many cells as the header: whole.
    let ended = tail.ends_with(b"\n") && tail.iter().filter(|&&b| b == b'"').count() % 2 == 0;
    if tail == whole || (ended && record.len() == width) {
        return Ok(());
    }
    if record.len() > width || offset.is_none_or(|o| !after(start, o)) {
        bail!(
            "{}: line {line}, the last one, is incomplete ({} of {width} cells{}), and no run was writing it: restore the file from a copy, or fix that line by hand (each row's status decides whether it is sent again)",
            results.display(),
            record.len(),
            if ended { "" } else { ", no line break at its end" }
        );
    }
    lock.check()?;
    let mut file = OpenOptions::new().write(true).open(results)?;
    file.set_len(start)?;
    if record.len() == width {
        file.seek(SeekFrom::Start(start))?;
        std::io::Write::write_all(&mut file, &whole)?;
    }
    file.sync_all()?;
    crate::say!(
        "{}: line {line} was cut short by a run that stopped while writing it: {}",
        results.display(),
        if record.len() == width {
            "its outcome was whole, and it is written whole again"
        } else {
            "removed; its row is settled from the journal"
        }
    );
    Ok(())
}
/// Whether a record starting at `start` was written at or after `offset`. After a CRLF line break
/// (a file saved by a spreadsheet) the csv reader places the next record's start on the break's
/// `\n`, one byte early; no record truly starts there, since `offset` is always at a line's start.
fn after(start: u64, offset: u64) -> bool {
    start + 1 >= offset
}

/// The last record of the results file: its start, line, fields, and the header's width.
fn last_record(results: &Path) -> anyhow::Result<Option<(u64, u64, csv::ByteRecord, usize)>> {
    let file = File::open(results).with_context(|| format!("cannot read {}", results.display()))?;
    let mut rdr = csv::ReaderBuilder::new()
        .flexible(true)
        .from_reader(LineCap::new(file, MAX_LINE));
    let width = rdr.byte_headers()?.len();
    let (mut last, mut rec) = (csv::ByteRecord::new(), csv::ByteRecord::new());
    let mut any = false;
    while rdr
        .read_byte_record(&mut rec)
        .with_context(|| format!("cannot read {}", results.display()))?
    {
        std::mem::swap(&mut last, &mut rec);
        any = true;
    }
    let (start, line) = last.position().map_or((0, 0), |p| (p.byte(), p.line()));
    Ok(any.then_some((start, line, last, width)))
}

/// Rewrites the results file with each row's last line, in the order they were written, a line
/// at a time.
fn compact(results: &Path, lock: &RunLock, last_line: &[u32]) -> anyhow::Result<()> {
    let Some(mut rdr) = Reader::open(results)? else {
        return Ok(());
    };
    let header = rdr.header().clone();
    lock.check()?;
    replace_file(results, |out| {
        let mut w = csv::WriterBuilder::new()
            .flexible(true)
            .from_writer(std::io::BufWriter::new(out));
        w.write_byte_record(&header)?;
        let mut i = 0u32;
        while let Some(line) = rdr.next()? {
            if last_line.get(line.row as usize) == Some(&i) {
                w.write_byte_record(rdr.record())?;
            }
            i += 1;
        }
        w.flush()?;
        Ok(())
    })
}

#[cfg(test)]
mod tests;
