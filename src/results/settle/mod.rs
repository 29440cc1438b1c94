//! Settling a ledger before a run and after it: a torn last line repaired, the rows an earlier
//! run left in flight recorded `unknown`, the journal retired, and the results file compacted to
//! one line per row. The order is what makes any stop safe: an `unknown` line is on disk before
//! the journal that justifies it is retired, and the journal is retired before compaction moves
//! the lines its offset points at.
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Read as _, Seek as _, SeekFrom};
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};

use anyhow::{bail, Context as _};

use super::journal::{self, JournalHeader};
use super::read::{Col, Reader};
use super::row::{ResultRow, RowStatus, MARKED_SKIPPED};
use super::table::Table;
use super::writer::ResultsWriter;
use super::{replace_file, Ledger, LineCap, RunLock, MAX_LINE};

/// The most rows a campaign can have and still be resumed: a corrupt row number must not size
/// the per-row table (at this bound, 130 MB of temporary file).
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

/// The bytes of a row's [`Rec`] in the table.
const REC: usize = 13;

/// What settling knows of a row: its last line's status, recipient hash and what else that line
/// says, whether the last run answered it, and the index of that line.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Rec {
    /// `RowStatus::code` of its last line, 0 for none.
    status: u8,
    /// [`Rec::MESSAGE_ID`], [`Rec::CLOSED`], [`Rec::FAILS_AGAIN`].
    flags: u8,
    /// It has a line written at or after the journal's offset (by the last run).
    answered: bool,
    recipient: u64,
    /// The index of its last line in the results file.
    last_line: Option<u32>,
}

impl Rec {
    /// The row's last line names a message id: Intercom made a message for it.
    const MESSAGE_ID: u8 = 1 << 3;
    /// The row's last line is an operator's `skipped` (`campaign mark --as skipped`).
    const CLOSED: u8 = 1 << 4;
    /// The row's last line is a `failed` that a resend repeats ([`super::row::fails_again`]).
    const FAILS_AGAIN: u8 = 1 << 5;
    const ANSWERED: u8 = 1 << 6;

    fn encode(self) -> [u8; REC] {
        let mut out = [0; REC];
        out[0] = (self.status & 7) | self.flags | if self.answered { Self::ANSWERED } else { 0 };
        out[1..9].copy_from_slice(&self.recipient.to_le_bytes());
        // 0 for none, so that a row never set reads as none.
        let line = self.last_line.map_or(0, |l| l + 1);
        out[9..].copy_from_slice(&line.to_le_bytes());
        out
    }

    fn decode(b: [u8; REC]) -> Rec {
        let mut recipient = [0; 8];
        recipient.copy_from_slice(&b[1..9]);
        let mut line = [0; 4];
        line.copy_from_slice(&b[9..]);
        Rec {
            status: b[0] & 7,
            flags: b[0] & (Self::MESSAGE_ID | Self::CLOSED | Self::FAILS_AGAIN),
            answered: b[0] & Self::ANSWERED != 0,
            recipient: u64::from_le_bytes(recipient),
            last_line: u32::from_le_bytes(line).checked_sub(1),
        }
    }

    fn has(&self, flag: u8) -> bool {
        self.flags & flag != 0
    }
}

/// What the runs so far left: each row's last status and recipient, and the campaign's
/// fingerprint from the journal.
///
/// The rows are kept in a temporary file ([`Table`]), not in memory; a file-system error reading
/// it later (which no caller could act on) ends the process as [`crate::exit::lost`] says.
#[derive(Debug, Default)]
pub(crate) struct Prior {
    /// By row: its [`Rec`]. Behind a lock, since reading moves pages in and out of the cache,
    /// and a `Prior` is read from the reader's thread as well as the run's tasks.
    table: Option<Mutex<Table<REC>>>,
    pub(crate) header: Option<JournalHeader>,
    pub(crate) tally: Tally,
    /// Rows found in flight when the last run stopped, recorded `unknown` now.
    pub(crate) recovered_unknown: u64,
    /// Those rows, in order: no one has looked them up yet, so nothing in this invocation may
    /// change what they mean.
    pub(crate) recovered: Vec<u64>,
}

impl Prior {
    fn rec(&self, row: u64) -> Rec {
        let Some(table) = &self.table else {
            return Rec::default();
        };
        let mut table = table.lock().unwrap_or_else(PoisonError::into_inner);
        match table.get(row) {
            Ok(b) => Rec::decode(b),
            Err(e) => crate::exit::lost(&e),
        }
    }

    /// One past the highest row with a record.
    fn len(&self) -> u64 {
        self.table.as_ref().map_or(0, |t| {
            t.lock().unwrap_or_else(PoisonError::into_inner).len()
        })
    }

    pub(crate) fn status(&self, row: u64) -> Option<RowStatus> {
        RowStatus::from_code(self.rec(row).status)
    }

    pub(crate) fn recipient_hash(&self, row: u64) -> Option<u64> {
        let rec = self.rec(row);
        RowStatus::from_code(rec.status).map(|_| rec.recipient)
    }

    /// The rows whose last status is `status`, in order.
    pub(crate) fn rows_with(&self, status: RowStatus) -> impl Iterator<Item = u64> + '_ {
        let code = status.code();
        (0..self.len()).filter(move |&row| self.rec(row).status == code)
    }

    /// Each row with a status, in order.
    pub(crate) fn recorded(&self) -> impl Iterator<Item = (u64, RowStatus)> + '_ {
        (0..self.len()).filter_map(|row| self.status(row).map(|s| (row, s)))
    }

    /// The number of rows with a status.
    pub(crate) fn rows(&self) -> u64 {
        self.tally.rows()
    }

    /// Whether the row's last line names a message id (a `failed` one so is a hand edit: the
    /// message may exist).
    pub(crate) fn has_message_id(&self, row: u64) -> bool {
        self.rec(row).has(Rec::MESSAGE_ID)
    }

    /// Whether the row is `skipped` by the operator's decision (`mark --as skipped`): it is
    /// never sent, nor checked again.
    pub(crate) fn closed(&self, row: u64) -> bool {
        self.rec(row).has(Rec::CLOSED)
    }

    /// Whether the row is `failed` in a way that sending it again as it is repeats.
    pub(crate) fn fails_again(&self, row: u64) -> bool {
        self.rec(row).has(Rec::FAILS_AGAIN)
    }

    /// Whether the row was recorded `unknown` by this settling (in flight when the last run
    /// stopped).
    pub(crate) fn recovered_now(&self, row: u64) -> bool {
        self.recovered.binary_search(&row).is_ok()
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
/// before each write. The journal and the results file are read a line at a time, and what is
/// kept of each row (a status, a recipient hash, a line index) goes to a temporary file in the
/// ledger's side folder: the memory settling takes does not grow with the rows.
pub(crate) fn settle(ledger: &Ledger, hash: &dyn Fn(&str) -> u64) -> anyhow::Result<Prior> {
    let lock = ledger.held()?;
    let header = journal::header(&ledger.journal)?;
    let offset = header.as_ref().map(|h| h.results_offset);
    if !ledger.results.exists() {
        lock.check()?;
    }
    let mut writer = ResultsWriter::open_with(&ledger.results, &[], Some(Arc::clone(lock)))?;
    let mut scan = scan(&ledger.results, lock, offset, hash)?;
    check_complete(ledger, header.as_ref(), scan.rows())?;

    // Rows journaled by the last run without an outcome line from it: in flight when it stopped.
    let mut orphans: Vec<ResultRow> = Vec::new();
    let mut journaled = false;
    let mut failed = None;
    journal::read(&ledger.journal, &mut |row, recipient| {
        journaled = true;
        let answered = scan.get(row).and_then(|old| {
            let new = Rec {
                answered: true,
                ..old
            };
            scan.put(row, old, new).map(|()| old.answered)
        });
        match answered {
            Ok(false) => orphans.push(ResultRow::interrupted(
                row,
                recipient,
                "the run stopped while this request was in flight: it may have been delivered",
            )),
            Ok(true) => {}
            Err(e) => {
                failed.get_or_insert(e);
            }
        }
    })?;
    if let Some(e) = failed {
        return Err(e);
    }
    let mut recovered = Vec::new();
    if !orphans.is_empty() {
        writer.write_all(&orphans)?;
        writer.sync()?;
        for o in &orphans {
            let old = scan.get(o.row)?;
            let line = scan.lines;
            scan.lines += 1;
            let new = Rec {
                status: RowStatus::Unknown.code(),
                flags: 0,
                recipient: hash(&o.recipient),
                last_line: Some(line),
                ..old
            };
            scan.put(o.row, old, new)?;
        }
        recovered = orphans.iter().map(|o| o.row).collect();
        recovered.sort_unstable();
    }
    // Every outcome on stable storage before the journal that would otherwise vouch for it goes.
    writer.sync()?;
    drop(writer);

    let rows = scan.rows();
    if let Some(header) = &header {
        if journaled || header.results_offset != journal::RETIRED || header.rows != rows {
            journal::retire(&ledger.journal, lock, header, rows)?;
        }
    }
    if scan.distinct < scan.lines {
        compact(&ledger.results, lock, &mut scan.table)?;
    }
    let count = |s: RowStatus| scan.counts[usize::from(s.code())];
    let tally = Tally {
        sent: count(RowStatus::Sent),
        failed: count(RowStatus::Failed),
        unknown: count(RowStatus::Unknown),
        skipped: count(RowStatus::Skipped),
    };
    Ok(Prior {
        table: Some(Mutex::new(scan.table)),
        header,
        tally,
        recovered_unknown: recovered.len() as u64,
        recovered,
    })
}

/// Refuses a results file that lost rows the journal says it had, or that has rows but no journal
/// (which says what campaign and target they belong to: a rehearsal's rows must never count as
/// sent to customers).
fn check_complete(
    ledger: &Ledger,
    header: Option<&JournalHeader>,
    rows: u64,
) -> anyhow::Result<()> {
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

/// What a read of the results file found: each row's [`Rec`], and counts kept as they change.
struct Scan {
    table: Table<REC>,
    /// Rows by the status code of their last line (at 0, none: rows without one are not counted).
    counts: [u64; 5],
    /// Lines in the results file, and rows with one.
    lines: u32,
    distinct: u32,
}

impl Scan {
    fn get(&mut self, row: u64) -> anyhow::Result<Rec> {
        Ok(Rec::decode(self.table.get(row)?))
    }

    /// Replaces the row's record `old` (as [`Scan::get`] read it) with `new`.
    fn put(&mut self, row: u64, old: Rec, new: Rec) -> anyhow::Result<()> {
        if old.status != 0 {
            self.counts[usize::from(old.status)] -= 1;
        }
        if new.status != 0 {
            self.counts[usize::from(new.status)] += 1;
        }
        if old.last_line.is_none() && new.last_line.is_some() {
            self.distinct += 1;
        }
        self.table.set(row, new.encode())
    }

    /// The number of rows with a status.
    fn rows(&self) -> u64 {
        self.counts[1..].iter().sum()
    }
}

/// Reads every line of the results file into a [`Scan`], repairing a torn last line first.
fn scan(
    results: &Path,
    lock: &RunLock,
    offset: Option<u64>,
    hash: &dyn Fn(&str) -> u64,
) -> anyhow::Result<Scan> {
    repair_tail(results, lock, offset)?;
    let mut scan = Scan {
        table: Table::new(&table_folder(results))?,
        counts: [0; 5],
        lines: 0,
        distinct: 0,
    };
    let Some(mut rdr) = Reader::open(results)? else {
        return Ok(scan);
    };
    while let Some(line) = rdr.next()? {
        let row = line.row;
        let old = scan.get(row)?;
        let mut flags = 0;
        if !rdr.text(Col::MessageId).is_empty() {
            flags |= Rec::MESSAGE_ID;
        }
        if line.status == RowStatus::Skipped && rdr.text(Col::ErrorCode) == MARKED_SKIPPED {
            flags |= Rec::CLOSED;
        }
        if line.status == RowStatus::Failed
            && super::row::fails_again(
                rdr.text(Col::HttpStatus).trim().parse().ok(),
                &rdr.text(Col::ErrorCode),
            )
        {
            flags |= Rec::FAILS_AGAIN;
        }
        let new = Rec {
            status: line.status.code(),
            flags,
            answered: old.answered || offset.is_some_and(|o| after(line.start, o)),
            recipient: hash(&rdr.text(Col::Recipient)),
            last_line: Some(scan.lines),
        };
        scan.put(row, old, new)?;
        scan.lines += 1;
    }
    Ok(scan)
}

/// Where the per-row table's temporary file goes: the ledger's side folder (made when the ledger
/// was locked), else the results file's own; never the system's temporary folder, which may be
/// held in memory.
fn table_folder(results: &Path) -> std::path::PathBuf {
    let side = super::side::folder(results);
    if side.is_dir() {
        return side;
    }
    match results.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
        _ => ".".into(),
    }
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
fn compact(results: &Path, lock: &RunLock, table: &mut Table<REC>) -> anyhow::Result<()> {
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
            if Rec::decode(table.get(line.row)?).last_line == Some(i) {
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
