//! The results file (one CSV line per row outcome, flushed as it happens) and its in-flight
//! journal (`<results>.journal`: one line per request before it leaves). Together they make a run
//! resumable after any stop, `kill -9` included: a row journaled without an outcome is `unknown`.
//!
//! During a run the results file is only appended to, so a resumed row has two lines for a while;
//! [`compact`] keeps the last line of each row when a run starts and when it ends.
use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _};
use serde::{Deserialize, Serialize};

/// The results file's columns, in order: a contract with users' spreadsheets.
pub const COLUMNS: [&str; 10] = [
    "row",
    "recipient",
    "status",
    "message_id",
    "http_status",
    "error_code",
    "error_message",
    "request_id",
    "attempts",
    "finished_at",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RowStatus {
    Sent,
    Failed,
    Unknown,
    Skipped,
}

impl RowStatus {
    fn code(self) -> u8 {
        match self {
            RowStatus::Sent => 1,
            RowStatus::Failed => 2,
            RowStatus::Unknown => 3,
            RowStatus::Skipped => 4,
        }
    }

    /// The status a results line's `status` field names.
    fn from_field(field: &[u8]) -> Option<RowStatus> {
        match field {
            b"sent" => Some(RowStatus::Sent),
            b"failed" => Some(RowStatus::Failed),
            b"unknown" => Some(RowStatus::Unknown),
            b"skipped" => Some(RowStatus::Skipped),
            _ => None,
        }
    }

    fn from_code(c: u8) -> Option<RowStatus> {
        match c & STATUS_MASK {
            1 => Some(RowStatus::Sent),
            2 => Some(RowStatus::Failed),
            3 => Some(RowStatus::Unknown),
            4 => Some(RowStatus::Skipped),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResultRow {
    pub row: u64,
    pub recipient: String,
    pub status: RowStatus,
    pub message_id: String,
    pub http_status: Option<u16>,
    pub error_code: String,
    pub error_message: String,
    pub request_id: String,
    pub attempts: u32,
    pub finished_at: String,
}

/// RFC 3339 UTC to the millisecond.
pub fn now_rfc3339() -> String {
    rfc3339_at(std::time::SystemTime::now())
}

/// `at` as RFC 3339 UTC to the millisecond. Each results line has one: the date and time up to
/// the second are formatted once a second (per thread) and reused, since formatting them was
/// about 2,000 instructions a line, as much as the rest of the line.
fn rfc3339_at(at: std::time::SystemTime) -> String {
    use std::cell::RefCell;
    thread_local! {
        static SECOND: RefCell<(i64, String)> = const { RefCell::new((i64::MIN, String::new())) };
    }
    let since = match at.duration_since(std::time::UNIX_EPOCH) {
        Ok(d) => d,
        Err(_) => return String::new(),
    };
    let (secs, millis) = (since.as_secs() as i64, since.subsec_millis());
    SECOND.with_borrow_mut(|(second, prefix)| {
        if *second != secs {
            let fmt =
                time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]");
            *prefix = time::OffsetDateTime::from_unix_timestamp(secs)
                .ok()
                .and_then(|t| t.format(&fmt).ok())
                .unwrap_or_default();
            *second = secs;
        }
        let mut text = String::with_capacity(prefix.len() + 5);
        text.push_str(prefix);
        text.push('.');
        for digit in [millis / 100, millis / 10 % 10, millis % 10] {
            text.push(char::from(b'0' + digit as u8));
        }
        text.push('Z');
        text
    })
}

pub fn journal_path(results: &Path) -> PathBuf {
    let mut name = results.as_os_str().to_owned();
    name.push(".journal");
    PathBuf::from(name)
}

/// Appends result lines, each written to the OS before the next outcome is taken.
pub struct ResultsWriter {
    w: csv::Writer<File>,
}

impl ResultsWriter {
    pub fn open(path: &Path) -> anyhow::Result<ResultsWriter> {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .with_context(|| format!("cannot open the results file {}", path.display()))?;
        let empty = file.metadata().map(|m| m.len() == 0).unwrap_or(true);
        let mut w = csv::WriterBuilder::new()
            .has_headers(false)
            .from_writer(file);
        if empty {
            w.write_record(COLUMNS)?;
            w.flush()?;
        }
        Ok(ResultsWriter { w })
    }

    pub fn write(&mut self, row: &ResultRow) -> std::io::Result<()> {
        self.write_all(std::iter::once(row))
    }

    /// Lines for outcomes that arrived together, handed to the OS in one write.
    pub fn write_all<'a>(
        &mut self,
        rows: impl IntoIterator<Item = &'a ResultRow>,
    ) -> std::io::Result<()> {
        for row in rows {
            // Spreadsheet-safe cells (src/cells.rs); read back through `cells::unescape`.
            let row = crate::cells::escape_row(row);
            self.w.serialize(&*row).map_err(std::io::Error::other)?;
        }
        self.w.flush()
    }
}

/// The journal's first line: where this run's results start and what campaign they belong to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JournalHeader {
    pub results_offset: u64,
    pub settings: String,
    pub content: String,
}

const JOURNAL_MAGIC: &str = "campaign-journal v1";

impl JournalHeader {
    fn line(&self) -> String {
        format!(
            "{JOURNAL_MAGIC} results_offset={} settings={} content={}\n",
            self.results_offset, self.settings, self.content
        )
    }

    fn parse(line: &str) -> Option<JournalHeader> {
        let rest = line.trim().strip_prefix(JOURNAL_MAGIC)?;
        let mut h = JournalHeader {
            results_offset: 0,
            settings: String::new(),
            content: String::new(),
        };
        for kv in rest.split_whitespace() {
            match kv.split_once('=')? {
                ("results_offset", v) => h.results_offset = v.parse().ok()?,
                ("settings", v) => h.settings = v.to_string(),
                ("content", v) => h.content = v.to_string(),
                _ => {}
            }
        }
        Some(h)
    }
}

/// Records each request before it leaves: `row<TAB>recipient`, one write per line, unbuffered.
pub struct Journal {
    file: File,
}

impl Journal {
    /// Starts this run's journal, replacing the last run's (already reconciled).
    pub fn start(path: &Path, header: &JournalHeader) -> anyhow::Result<Journal> {
        let mut file = File::create(path)
            .with_context(|| format!("cannot create the journal {}", path.display()))?;
        file.write_all(header.line().as_bytes())?;
        Ok(Journal { file })
    }

    /// Records rows about to be sent, in one write.
    pub fn in_flight<'a>(
        &mut self,
        rows: impl IntoIterator<Item = (u64, &'a str)>,
    ) -> std::io::Result<()> {
        use std::fmt::Write as _;
        let mut text = String::new();
        for (row, recipient) in rows {
            let _ = writeln!(text, "{row}\t{recipient}");
        }
        self.file.write_all(text.as_bytes())
    }
}

const STATUS_MASK: u8 = 0x0f;
/// Journaled in the last run.
const JOURNALED: u8 = 0x10;
/// Has an outcome line written in the last run.
const ANSWERED: u8 = 0x20;

/// What an earlier run left: each row's last status and recipient, and the campaign fingerprint.
#[derive(Debug, Default)]
pub struct Prior {
    flags: Vec<u8>,
    recipients: Vec<u64>,
    pub header: Option<JournalHeader>,
    pub sent: u64,
    pub failed: u64,
    pub unknown: u64,
    pub skipped: u64,
    /// Rows found in flight when the last run stopped, now recorded `unknown`.
    pub recovered_unknown: u64,
}

impl Prior {
    pub fn status(&self, row: u64) -> Option<RowStatus> {
        self.flags
            .get(row as usize)
            .copied()
            .and_then(RowStatus::from_code)
    }

    pub fn recipient_hash(&self, row: u64) -> Option<u64> {
        self.status(row).map(|_| self.recipients[row as usize])
    }

    /// The rows whose last status is `status`, in order.
    pub fn rows_with(&self, status: RowStatus) -> impl Iterator<Item = u64> + '_ {
        self.flags
            .iter()
            .enumerate()
            .filter(move |(_, f)| RowStatus::from_code(**f) == Some(status))
            .map(|(i, _)| i as u64)
    }

    pub fn rows(&self) -> u64 {
        self.sent + self.failed + self.unknown + self.skipped
    }

    fn set(&mut self, row: u64, status: RowStatus, recipient: u64) {
        let i = row as usize;
        if self.flags.len() <= i {
            self.flags.resize(i + 1, 0);
            self.recipients.resize(i + 1, 0);
        }
        self.flags[i] = (self.flags[i] & !STATUS_MASK) | status.code();
        self.recipients[i] = recipient;
    }

    fn count(&mut self) {
        (self.sent, self.failed, self.unknown, self.skipped) = (0, 0, 0, 0);
        for f in &self.flags {
            match RowStatus::from_code(*f) {
                Some(RowStatus::Sent) => self.sent += 1,
                Some(RowStatus::Failed) => self.failed += 1,
                Some(RowStatus::Unknown) => self.unknown += 1,
                Some(RowStatus::Skipped) => self.skipped += 1,
                None => {}
            }
        }
    }
}

/// Whether a file has a line after its first (a row after the header).
fn has_second_line(path: &Path) -> bool {
    let Ok(f) = File::open(path) else {
        return false;
    };
    BufReader::new(f)
        .lines()
        .nth(1)
        .is_some_and(|l| l.is_ok_and(|l| !l.trim().is_empty()))
}

/// Whether an earlier run left anything: a row in the results file, or a row in its journal (a run
/// killed before its first outcome was written has only the journal, and its rows may have gone out).
pub fn has_history(results: &Path) -> bool {
    has_second_line(results) || has_second_line(&journal_path(results))
}

/// Cuts a line torn by a crash mid-write (the file does not end in a newline): that row's outcome
/// was not recorded, and its journal line makes it `unknown`.
fn cut_torn_line(path: &Path) -> anyhow::Result<()> {
    let mut f = OpenOptions::new().read(true).write(true).open(path)?;
    let len = f.seek(SeekFrom::End(0))?;
    if len == 0 {
        return Ok(());
    }
    let mut end = len;
    let mut buf = [0u8; 4096];
    loop {
        let start = end.saturating_sub(buf.len() as u64);
        let n = (end - start) as usize;
        f.seek(SeekFrom::Start(start))?;
        f.read_exact(&mut buf[..n])?;
        if end == len && buf[n - 1] == b'\n' {
            return Ok(());
        }
        if let Some(i) = buf[..n].iter().rposition(|b| *b == b'\n') {
            f.set_len(start + i as u64 + 1)?;
            return Ok(());
        }
        if start == 0 {
            f.set_len(0)?;
            return Ok(());
        }
        end = start;
    }
}

/// Reads what earlier runs left, records rows that were in flight when the last run stopped as
/// `unknown`, and compacts the file to one line per row. `hash` maps a recipient to its 8 bytes.
pub fn reconcile(results: &Path, hash: &dyn Fn(&str) -> u64) -> anyhow::Result<Prior> {
    if results.exists() {
        cut_torn_line(results)?;
    }
    // Creates the file, or restores a header a crash cut, so that it can be read.
    drop(ResultsWriter::open(results)?);
    let journal = journal_path(results);
    let mut prior = Prior::default();
    let journal_text = match File::open(&journal) {
        Ok(f) => Some(BufReader::new(f)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => {
            return Err(e).with_context(|| format!("cannot read the journal {}", journal.display()))
        }
    };
    let mut journaled: Vec<u64> = Vec::new();
    if let Some(reader) = journal_text {
        for (i, line) in reader.lines().enumerate() {
            let line = line?;
            if i == 0 {
                prior.header = JournalHeader::parse(&line);
                if prior.header.is_none() {
                    bail!(
                        "{}: not a campaign journal (first line: `{line}`)",
                        journal.display()
                    );
                }
                continue;
            }
            // A torn last journal line has no recipient yet; the row was not sent (the journal is
            // written before the request), so it is rightly ignored.
            if let Some((row, _)) = line.split_once('\t') {
                match row.parse::<u64>() {
                    Ok(row) if (1..=MAX_ROWS).contains(&row) => journaled.push(row),
                    // A row that may have been sent cannot be passed over.
                    _ => bail!(
                        "{}: line {}: not a journal line: `{line}`",
                        journal.display(),
                        i + 1
                    ),
                }
            }
        }
    }
    let offset = prior
        .header
        .as_ref()
        .map(|h| h.results_offset)
        .unwrap_or(u64::MAX);

    // First pass: each row's last line, and which rows have an outcome from the last run.
    let mut last_line: Vec<u32> = Vec::new();
    let mut lines: u32 = 0;
    {
        let mut rdr = csv::ReaderBuilder::new().from_path(results)?;
        check_header(results, rdr.headers()?)?;
        // Only `row`, `recipient` and `status` matter here; reading just those keeps a resume of a
        // million rows from spending its first second deserializing the other seven.
        let mut rec = csv::ByteRecord::new();
        while rdr
            .read_byte_record(&mut rec)
            .with_context(|| format!("cannot read {}", results.display()))?
        {
            let pos = rec
                .position()
                .map(|p| (p.byte(), p.line()))
                .unwrap_or((0, 0));
            let (row, recipient, status) = row_recipient_status(&rec).with_context(|| {
                format!("{}: line {}: not a results row", results.display(), pos.1)
            })?;
            prior.set(row, status, hash(recipient));
            if pos.0 >= offset {
                prior.flags[row as usize] |= ANSWERED;
            }
            if last_line.len() <= row as usize {
                last_line.resize(row as usize + 1, u32::MAX);
            }
            last_line[row as usize] = lines;
            lines += 1;
        }
    }
    for &row in &journaled {
        let i = row as usize;
        if prior.flags.len() <= i {
            prior.flags.resize(i + 1, 0);
            prior.recipients.resize(i + 1, 0);
        }
        prior.flags[i] |= JOURNALED;
    }

    // Rows journaled but never answered were in flight when the last run stopped.
    let mut orphans: HashMap<u64, String> = HashMap::new();
    if journaled
        .iter()
        .any(|&r| prior.flags[r as usize] & ANSWERED == 0)
    {
        for line in BufReader::new(File::open(&journal)?).lines().skip(1) {
            let line = line?;
            if let Some((row, recipient)) = line.split_once('\t') {
                if let Ok(row) = row.parse::<u64>() {
                    // Every row here was checked in range by the first read of the journal.
                    if prior.flags[row as usize] & ANSWERED == 0 {
                        orphans.insert(row, recipient.to_string());
                    }
                }
            }
        }
    }
    if !orphans.is_empty() {
        let mut w = ResultsWriter::open(results)?;
        let mut rows: Vec<_> = orphans.into_iter().collect();
        rows.sort();
        for (row, recipient) in rows {
            let line = ResultRow {
                row,
                status: RowStatus::Unknown,
                message_id: String::new(),
                http_status: None,
                error_code: "interrupted".into(),
                error_message:
                    "the run stopped while this request was in flight: it may have been delivered"
                        .into(),
                request_id: String::new(),
                attempts: 1,
                finished_at: now_rfc3339(),
                recipient,
            };
            prior.set(row, RowStatus::Unknown, hash(&line.recipient));
            w.write(&line)?;
            prior.recovered_unknown += 1;
            if last_line.len() <= row as usize {
                last_line.resize(row as usize + 1, u32::MAX);
            }
            last_line[row as usize] = lines;
            lines += 1;
        }
    }
    let distinct = last_line.iter().filter(|&&l| l != u32::MAX).count() as u32;
    if distinct < lines {
        compact_with(results, &last_line)?;
    }
    for f in prior.flags.iter_mut() {
        *f &= STATUS_MASK;
    }
    prior.count();
    Ok(prior)
}

/// The most rows a campaign can have and still be resumed.
pub const MAX_ROWS: u64 = 50_000_000;

/// The three fields resume needs from a results line.
fn row_recipient_status(rec: &csv::ByteRecord) -> anyhow::Result<(u64, &str, RowStatus)> {
    let field = |i: usize, name: &str| {
        rec.get(i)
            .and_then(|f| std::str::from_utf8(f).ok())
            .ok_or_else(|| anyhow::anyhow!("no `{name}`"))
    };
    let row: u64 = field(0, "row")?
        .parse()
        .map_err(|_| anyhow::anyhow!("`row` is not a number"))?;
    let status = field(2, "status")?;
    let Some(status) = RowStatus::from_field(status.as_bytes()) else {
        anyhow::bail!("unknown status `{status}`");
    };
    // Per-row state is kept in arrays indexed by row: a corrupt number must not size them.
    if row == 0 || row > MAX_ROWS {
        anyhow::bail!("`row` {row} is out of range (1 to {MAX_ROWS})");
    }
    // Written spreadsheet-safe (src/cells.rs): the value, exactly as it was rendered.
    let recipient = crate::cells::unescape(field(1, "recipient")?);
    Ok((row, recipient, status))
}

fn check_header(path: &Path, header: &csv::StringRecord) -> anyhow::Result<()> {
    if header
        .iter()
        .take(COLUMNS.len())
        .ne(COLUMNS.iter().copied())
    {
        bail!(
            "{}: not a results file of this tool (its header should start with {})",
            path.display(),
            COLUMNS.join(",")
        );
    }
    Ok(())
}

/// Rows per status in a compacted results file: the campaign's state across all its runs.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Tally {
    pub sent: u64,
    pub failed: u64,
    pub unknown: u64,
    pub skipped: u64,
}

/// Rewrites the results file with one line per row (its last), in the order they were written,
/// and counts the rows per status. One read of the file (there were two, the second after the
/// last request: about 1,500 instructions a row); the rewrite only when some row has more than
/// one line, which at the end of a first run none has.
pub fn compact(results: &Path) -> anyhow::Result<Tally> {
    let mut last_line: Vec<u32> = Vec::new();
    // Each row's status as its last line says (`RowStatus::code`, 0 for none): what is counted.
    let mut last_status: Vec<u8> = Vec::new();
    let mut lines = 0u32;
    let mut rdr = csv::ReaderBuilder::new().from_path(results)?;
    let mut rec = csv::ByteRecord::new();
    let mut superseded = false;
    while rdr.read_byte_record(&mut rec)? {
        let row: usize = std::str::from_utf8(&rec[0])
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        if last_line.len() <= row {
            last_line.resize(row + 1, u32::MAX);
            last_status.resize(row + 1, 0);
        }
        superseded |= last_line[row] != u32::MAX;
        last_line[row] = lines;
        last_status[row] = rec
            .get(2)
            .and_then(RowStatus::from_field)
            .map_or(0, RowStatus::code);
        lines += 1;
    }
    if superseded {
        compact_with(results, &last_line)?;
    }
    let mut t = Tally::default();
    for status in last_status.into_iter().filter_map(RowStatus::from_code) {
        match status {
            RowStatus::Sent => t.sent += 1,
            RowStatus::Failed => t.failed += 1,
            RowStatus::Unknown => t.unknown += 1,
            RowStatus::Skipped => t.skipped += 1,
        }
    }
    Ok(t)
}

fn compact_with(results: &Path, last_line: &[u32]) -> anyhow::Result<()> {
    let mut tmp_name = results.as_os_str().to_owned();
    tmp_name.push(".tmp");
    let tmp = PathBuf::from(tmp_name);
    {
        let mut rdr = csv::ReaderBuilder::new().from_path(results)?;
        let mut w = csv::WriterBuilder::new().from_path(&tmp)?;
        w.write_byte_record(rdr.byte_headers()?)?;
        let mut rec = csv::ByteRecord::new();
        let mut i = 0u32;
        while rdr.read_byte_record(&mut rec)? {
            let row: usize = std::str::from_utf8(&rec[0])
                .ok()
                .and_then(|s| s.parse().ok())
                .unwrap_or(0);
            if last_line.get(row) == Some(&i) {
                w.write_byte_record(&rec)?;
            }
            i += 1;
        }
        let file = w
            .into_inner()
            .map_err(|e| anyhow::anyhow!("cannot write {}: {}", tmp.display(), e.error()))?;
        // The old file is replaced only by a complete new one.
        file.sync_all()?;
    }
    std::fs::rename(&tmp, results)
        .with_context(|| format!("cannot replace {}", results.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(n: u64, status: RowStatus) -> ResultRow {
        ResultRow {
            row: n,
            recipient: format!("r{n}"),
            status,
            message_id: String::new(),
            http_status: None,
            error_code: String::new(),
            error_message: String::new(),
            request_id: String::new(),
            attempts: 1,
            finished_at: now_rfc3339(),
        }
    }

    #[test]
    fn timestamps_match_a_full_formatting_across_seconds_and_days() {
        use std::time::{Duration, UNIX_EPOCH};
        let fmt = time::macros::format_description!(
            "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
        );
        // Around a day's end: the cached second must be replaced, not reused with new millis.
        let start = UNIX_EPOCH + Duration::from_millis(1_767_225_599_000 - 3);
        for step in [0u64, 1, 2, 3, 4, 999, 1_000, 1_001, 1_998, 86_400_007] {
            let at = start + Duration::from_millis(step);
            let want = time::OffsetDateTime::from(at).format(&fmt).unwrap();
            assert_eq!(rfc3339_at(at), want, "{step} ms after the start");
        }
        assert_eq!(
            rfc3339_at(UNIX_EPOCH + Duration::from_millis(1_767_225_600_042)),
            "2026-01-01T00:00:00.042Z"
        );
    }

    fn h(s: &str) -> u64 {
        crate::check::recipient_hash("user", s)
    }

    #[test]
    fn compact_keeps_each_rows_last_line_and_counts_those() {
        let dir = tempfile::tempdir().unwrap();
        let results = dir.path().join("r.csv");
        let mut w = ResultsWriter::open(&results).unwrap();
        for (n, status) in [
            (1, RowStatus::Sent),
            (3, RowStatus::Failed),
            (2, RowStatus::Skipped),
            (4, RowStatus::Unknown),
        ] {
            w.write(&row(n, status)).unwrap();
        }
        drop(w);
        let once = std::fs::read_to_string(&results).unwrap();
        // One line per row: counted, and the file is left as it was.
        let t = compact(&results).unwrap();
        let counts = (t.sent, t.failed, t.unknown, t.skipped);
        assert_eq!(counts, (1, 1, 1, 1));
        assert_eq!(std::fs::read_to_string(&results).unwrap(), once);

        // A resumed run: row 3 sent this time, row 4 failed.
        let mut w = ResultsWriter::open(&results).unwrap();
        w.write(&row(3, RowStatus::Sent)).unwrap();
        w.write(&row(4, RowStatus::Failed)).unwrap();
        drop(w);
        let t = compact(&results).unwrap();
        let counts = (t.sent, t.failed, t.unknown, t.skipped);
        assert_eq!(counts, (2, 1, 0, 1));
        let text = std::fs::read_to_string(&results).unwrap();
        let rows: Vec<(&str, &str)> = text
            .lines()
            .skip(1)
            .map(|l| {
                let f: Vec<&str> = l.split(',').collect();
                (f[0], f[2])
            })
            .collect();
        assert_eq!(
            rows,
            [
                ("1", "sent"),
                ("2", "skipped"),
                ("3", "sent"),
                ("4", "failed")
            ]
        );
    }

    #[test]
    fn a_corrupt_results_line_is_named_not_trusted() {
        let dir = tempfile::tempdir().unwrap();
        let results = dir.path().join("r.csv");
        let mut w = ResultsWriter::open(&results).unwrap();
        w.write(&row(1, RowStatus::Sent)).unwrap();
        drop(w);
        let mut f = OpenOptions::new().append(true).open(&results).unwrap();
        f.write_all(b"99999999999,x,sent,,,,,,1,\n").unwrap();
        let err = format!("{:#}", reconcile(&results, &|s| h(s)).unwrap_err());
        assert!(
            err.contains("r.csv: line 3: not a results row: `row` 99999999999 is out of range"),
            "{err}"
        );
        let mut f = OpenOptions::new()
            .write(true)
            .truncate(true)
            .open(&results)
            .unwrap();
        f.write_all(b"row,recipient,status,message_id,http_status,error_code,error_message,request_id,attempts,finished_at\n2,x,maybe,,,,,,1,\n").unwrap();
        let err = format!("{:#}", reconcile(&results, &|s| h(s)).unwrap_err());
        assert!(
            err.contains("line 2: not a results row: unknown status `maybe`"),
            "{err}"
        );
    }

    #[test]
    fn journaled_rows_without_outcome_become_unknown() {
        let dir = tempfile::tempdir().unwrap();
        let results = dir.path().join("r.csv");
        let mut w = ResultsWriter::open(&results).unwrap();
        w.write(&row(1, RowStatus::Failed)).unwrap();
        let offset = std::fs::metadata(&results).unwrap().len();
        let header = JournalHeader {
            results_offset: offset,
            settings: "a".into(),
            content: "b".into(),
        };
        let mut j = Journal::start(&journal_path(&results), &header).unwrap();
        for n in 1..=3 {
            j.in_flight([(n, format!("r{n}").as_str())]).unwrap();
        }
        w.write(&row(2, RowStatus::Sent)).unwrap();
        drop((w, j));
        // A torn line, as a kill -9 mid-write leaves.
        let mut f = OpenOptions::new().append(true).open(&results).unwrap();
        f.write_all(b"3,r3,se").unwrap();

        let prior = reconcile(&results, &|s| h(s)).unwrap();
        assert_eq!(prior.header, Some(header));
        // Row 1 failed in an earlier run, was re-sent in the last one, and never answered.
        assert_eq!(prior.status(1), Some(RowStatus::Unknown));
        assert_eq!(prior.status(2), Some(RowStatus::Sent));
        assert_eq!(prior.status(3), Some(RowStatus::Unknown));
        assert_eq!(prior.recovered_unknown, 2);
        assert_eq!(prior.recipient_hash(3), Some(h("r3")));
        let text = std::fs::read_to_string(&results).unwrap();
        assert_eq!(text.lines().count(), 4, "{text}");
        assert_eq!(
            text.lines().filter(|l| l.starts_with("1,")).count(),
            1,
            "{text}"
        );
    }
}
