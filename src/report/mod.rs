//! `campaign report RESULTS`: what a run did, from its results file (and the run log beside it):
//! counts per status, each error code with Intercom's message and example rows, the `unknown`
//! rows and what to do about each, the run's timing and 429 pauses, and messages per minute.
//! Three forms of one [`ResultsReport`]: a table for the terminal, `--json` (stable, its shape
//! documented in the README) and `--html` (a self-contained page with the chart as inline SVG).
mod html;
pub(crate) mod read;
mod text;

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;

use jiff::Timestamp;
use serde::Serialize;

use crate::results::read::Col;
use crate::results::runs::Run;
use crate::results::{RowStatus, Tally, INTERRUPTED};
use read::RowOutcome;

/// The `--json` shape's version; raised only when a field changes meaning or goes away.
pub(crate) const JSON_VERSION: u32 = 1;
/// Example rows per error code.
const EXAMPLES: usize = 5;
/// Points on the messages-per-minute chart at most.
const MAX_POINTS: i64 = 120;
/// Characters of one value that the table and the page show: as many as `send` keeps of each
/// string Intercom sends, so that no value `send` wrote is cut. A longer one was written by hand
/// (or copied from a CSV cell) and would only make a table row or a page as long as itself; the
/// terminal table's wrapping also takes time in the square of a cell's length.
const SHOWN_CHARS: usize = crate::intercom::answer::FIELD_CHARS;

#[derive(Debug, Serialize)]
pub(crate) struct ResultsReport {
    pub(crate) report_version: u32,
    pub(crate) results: String,
    pub(crate) campaign: Option<String>,
    pub(crate) rows: u64,
    pub(crate) counts: Tally,
    pub(crate) errors: Vec<ErrorGroup>,
    pub(crate) unknown: Vec<UnknownRow>,
    pub(crate) run: Option<RunTimes>,
    pub(crate) per_minute: Option<PerMinute>,
    /// From the tracking file beside the results (`campaign track`), when there is one.
    pub(crate) replies: Option<crate::track::Replies>,
    /// Whether every run of the file went to the sandbox: a rehearsal, nothing reached Intercom.
    pub(crate) rehearsal: bool,
}

impl Tally {
    /// Each status with its rows and their share of `rows`, in percent.
    pub(crate) fn shares(&self, rows: u64) -> [(&'static str, u64, f64); 4] {
        let share = |n: u64| {
            if rows == 0 {
                0.0
            } else {
                n as f64 * 100.0 / rows as f64
            }
        };
        [
            ("sent", self.sent, share(self.sent)),
            ("failed", self.failed, share(self.failed)),
            ("unknown", self.unknown, share(self.unknown)),
            ("skipped", self.skipped, share(self.skipped)),
        ]
    }
}

/// Rows of one status that share an error code.
#[derive(Debug, Serialize)]
pub(crate) struct ErrorGroup {
    pub(crate) status: RowStatus,
    pub(crate) error_code: String,
    pub(crate) count: u64,
    /// The HTTP status most of them got, if any.
    pub(crate) http_status: Option<u16>,
    /// The message most of them got (Intercom's, or a transport error's description).
    pub(crate) message: String,
    pub(crate) examples: Vec<Example>,
}

#[derive(Debug, Serialize)]
pub(crate) struct Example {
    pub(crate) row: u64,
    pub(crate) recipient: String,
    /// The row's e-mail or name from the campaign's CSV (with `--campaign`).
    pub(crate) contact: Option<String>,
}

#[derive(Debug, Serialize)]
pub(crate) struct UnknownRow {
    pub(crate) row: u64,
    pub(crate) recipient: String,
    pub(crate) contact: Option<String>,
    pub(crate) http_status: Option<u16>,
    pub(crate) error_code: String,
    pub(crate) error_message: String,
    pub(crate) finished_at: Option<String>,
    /// What happened, in a sentence, and what to check.
    pub(crate) advice: String,
}

#[derive(Debug, Serialize)]
pub(crate) struct RunTimes {
    /// `run log` when the results file's run log was read; `results file` when the times come from
    /// the rows' `finished_at` (then the 429 fields are null).
    pub(crate) source: &'static str,
    pub(crate) runs: Option<u64>,
    pub(crate) started_at: String,
    pub(crate) ended_at: String,
    /// Time spent sending: the runs' durations added up (gaps between runs left out).
    pub(crate) duration_seconds: f64,
    /// Requests answered (or given up on) per second of that time.
    pub(crate) rate_per_second: f64,
    pub(crate) rate_limited: Option<u64>,
    pub(crate) paused_seconds: Option<f64>,
}

#[derive(Debug, Serialize)]
pub(crate) struct PerMinute {
    pub(crate) bucket_seconds: i64,
    pub(crate) points: Vec<Point>,
}

#[derive(Debug, Serialize)]
pub(crate) struct Point {
    /// The bucket's start.
    pub(crate) at: String,
    /// `sent` rows finished in the bucket, scaled to a minute.
    pub(crate) messages_per_minute: f64,
}

/// What `campaign report` is asked: the results file, the campaign file to name contacts by, and
/// the forms to write.
pub(crate) struct Asked {
    pub results: std::path::PathBuf,
    pub campaign: Option<std::path::PathBuf>,
    pub html: Option<std::path::PathBuf>,
    pub json: bool,
    /// One line per row instead of the summary.
    pub csv: bool,
}

pub(crate) fn run(args: &Asked) -> anyhow::Result<()> {
    if args.csv {
        return by_row(&args.results);
    }
    let summary = Summary::read(&args.results)?;
    let runs = crate::results::runs::runs(&args.results)?;
    let contacts = match &args.campaign {
        Some(campaign) => read::contacts(campaign, &summary.rows_to_name())?,
        None => BTreeMap::new(),
    };
    let mut report = build(
        &args.results,
        args.campaign.as_deref(),
        summary,
        &runs,
        &contacts,
    )?;
    report.replies = crate::track::replies(&args.results)?;
    let out = if args.json {
        crate::results::cells::inert_json(serde_json::to_string_pretty(&report)?) + "\n"
    } else {
        crate::inert(&text::render(&report)).into_owned()
    };
    // A reader that stops early (`| head`) is not an error.
    match std::io::Write::write_all(&mut std::io::stdout().lock(), out.as_bytes()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => return Err(e.into()),
        _ => {}
    }
    if let Some(file) = &args.html {
        crate::page::write_page(file, &html::render(&report))?;
        crate::say!("wrote {}", file.display());
    }
    Ok(())
}

/// `unknown` rows listed at most (those with the lowest row numbers); the counts cover the rest.
pub(crate) const UNKNOWN_LISTED: usize = 1000;
/// Different messages counted per error group at most: past it a message not yet seen is not
/// counted, so that a file whose every failure has its own message cannot fill memory.
const MESSAGES_COUNTED: usize = 1000;
/// Seconds with `sent` rows counted one by one at most; past it the chart's buckets are counted
/// in another read of the file, once its span is known.
const SECONDS_COUNTED: usize = 10_000;

/// What the report needs of the results file, gathered a row at a time: counts, each error
/// group's tallies and first rows, the first `unknown` rows, and the times.
#[derive(Default)]
struct Summary {
    rows: u64,
    counts: Tally,
    groups: BTreeMap<(u8, String), Group>,
    unknown: BTreeMap<u64, RowOutcome>,
    /// First and last finish time of the rows that were not skipped, and how many have one.
    times: Option<(Timestamp, Timestamp)>,
    timed: u64,
    /// First and last second a `sent` row finished, and `sent` rows per second while few.
    sent_span: Option<(i64, i64)>,
    per_second: Option<BTreeMap<i64, u64>>,
}

/// Non-`sent` rows of one status and error code.
struct Group {
    status: RowStatus,
    error_code: String,
    count: u64,
    /// Each value with how many rows have it and the first of them.
    http_status: HashMap<Option<u16>, (u64, u64)>,
    messages: HashMap<String, (u64, u64)>,
    examples: BTreeMap<u64, String>,
}

impl Summary {
    fn read(path: &Path) -> anyhow::Result<Summary> {
        let mut s = Summary {
            per_second: Some(BTreeMap::new()),
            ..Summary::default()
        };
        read::last_lines(path, |last| {
            s.add(&last);
            Ok(())
        })?;
        Ok(s)
    }

    fn add(&mut self, last: &read::Last<'_>) {
        self.rows += 1;
        self.counts.add(last.status);
        if let (Some(t), true) = (last.finished_at, last.status != RowStatus::Skipped) {
            self.timed += 1;
            self.times = Some(match self.times {
                None => (t, t),
                Some((a, b)) => (a.min(t), b.max(t)),
            });
        }
        if last.status == RowStatus::Sent {
            if let Some(t) = last.finished_at.map(|t| t.as_second()) {
                self.sent_span = Some(match self.sent_span {
                    None => (t, t),
                    Some((a, b)) => (a.min(t), b.max(t)),
                });
                if let Some(map) = &mut self.per_second {
                    *map.entry(t).or_default() += 1;
                    if map.len() > SECONDS_COUNTED {
                        self.per_second = None;
                    }
                }
            }
            return;
        }
        let row = last.row;
        let key = (last.status as u8, last.text(Col::ErrorCode).into_owned());
        let group = self.groups.entry(key).or_insert_with_key(|k| Group {
            status: last.status,
            error_code: k.1.clone(),
            count: 0,
            http_status: HashMap::new(),
            messages: HashMap::new(),
            examples: BTreeMap::new(),
        });
        group.count += 1;
        tally(&mut group.http_status, last.http_status, row);
        let message = last.text(Col::ErrorMessage);
        let counted = group.messages.len();
        match group.messages.get_mut(&*message) {
            Some((n, first)) => {
                *n += 1;
                *first = (*first).min(row);
            }
            None if counted < MESSAGES_COUNTED => {
                group.messages.insert(message.into_owned(), (1, row));
            }
            None => {}
        }
        keep_first(
            &mut group.examples,
            row,
            || last.text(Col::Recipient).into_owned(),
            EXAMPLES,
        );
        if last.status == RowStatus::Unknown {
            keep_first(&mut self.unknown, row, || last.outcome(), UNKNOWN_LISTED);
        }
    }

    /// Rows whose contact the report shows: the error examples and the listed `unknown` rows.
    fn rows_to_name(&self) -> HashSet<u64> {
        let mut rows: HashSet<u64> = self.unknown.keys().copied().collect();
        for g in self.groups.values() {
            rows.extend(g.examples.keys().copied());
        }
        rows
    }
}

/// Counts `value` for `row`, keeping the first row that had it.
fn tally<T: Eq + std::hash::Hash>(seen: &mut HashMap<T, (u64, u64)>, value: T, row: u64) {
    let (n, first) = seen.entry(value).or_insert((0, row));
    *n += 1;
    *first = (*first).min(row);
}

/// Keeps the `max` lowest rows in `kept` (a file is written in the order rows finish, not in
/// row order).
fn keep_first<T>(kept: &mut BTreeMap<u64, T>, row: u64, value: impl FnOnce() -> T, max: usize) {
    if kept.len() >= max && kept.last_key_value().is_some_and(|(last, _)| *last < row) {
        return;
    }
    kept.insert(row, value());
    if kept.len() > max {
        kept.pop_last();
    }
}

/// The value most rows have; among equals, the one the lowest row has.
fn most_common<T: Clone>(seen: &HashMap<T, (u64, u64)>) -> Option<T> {
    seen.iter()
        .max_by(|a, b| (a.1 .0).cmp(&b.1 .0).then((b.1 .1).cmp(&a.1 .1)))
        .map(|(v, _)| v.clone())
}

/// `report --csv`: the results file's lines in row order, each row's last, the header first.
/// The cells are the file's own, written as the results writer wrote them (a control character
/// shown escaped: [`inert_record`]). Rows are taken a block
/// at a time: a read of the file finds where each of the block's rows has its last line (8 bytes
/// a row), then those lines are read again where they are, so memory stays flat at any size.
fn by_row(results: &Path) -> anyhow::Result<()> {
    use std::io::{Seek as _, SeekFrom};
    const BLOCK: u64 = 1 << 20;
    let open = || {
        crate::results::read::Reader::open(results)?
            .ok_or_else(|| anyhow::anyhow!("{}: no such results file", results.display()))
    };
    let mut rdr = open()?;
    let mut last_row = 0;
    while let Some(line) = rdr.next()? {
        last_row = last_row.max(line.row);
    }
    let mut out = csv::Writer::from_writer(std::io::stdout().lock());
    out.write_byte_record(rdr.header())?;
    let mut file = std::fs::File::open(results)?;
    let mut record = csv::ByteRecord::new();
    let mut first = 1;
    while first <= last_row {
        let end = (first + BLOCK).min(last_row + 1);
        let mut starts = vec![u64::MAX; (end - first) as usize];
        let mut rdr = open()?;
        while let Some(line) = rdr.next()? {
            if (first..end).contains(&line.row) {
                starts[(line.row - first) as usize] = line.start;
            }
        }
        for &start in starts.iter().filter(|&&s| s != u64::MAX) {
            file.seek(SeekFrom::Start(start))?;
            let mut one = csv::ReaderBuilder::new()
                .has_headers(false)
                .flexible(true)
                .from_reader(&mut file);
            if one.read_byte_record(&mut record)? {
                match out.write_byte_record(&inert_record(&record)) {
                    Err(e) if matches!(e.kind(), csv::ErrorKind::Io(io) if io.kind() == std::io::ErrorKind::BrokenPipe) => {
                        return Ok(())
                    }
                    other => other?,
                }
            }
        }
        first = end;
    }
    match out.flush() {
        Err(e) => broken_pipe_is_ok(e),
        Ok(()) => Ok(()),
    }
}

/// A results line as `report --csv` prints it: a cell holding a control character (an escape
/// sequence a server put in its error message) gets it written as `\u{..}`, so that the export
/// shown on a terminal drives nothing; every other cell is the file's own, byte for byte.
fn inert_record(record: &csv::ByteRecord) -> std::borrow::Cow<'_, csv::ByteRecord> {
    let controls = |cell: &[u8]| {
        String::from_utf8_lossy(cell)
            .chars()
            .any(|c| c.is_control() && c != '\t' && c != '\n')
    };
    if !record.iter().any(controls) {
        return std::borrow::Cow::Borrowed(record);
    }
    let cells = record.iter().map(|cell| match controls(cell) {
        true => crate::results::cells::inert(&String::from_utf8_lossy(cell))
            .into_owned()
            .into_bytes(),
        false => cell.to_vec(),
    });
    std::borrow::Cow::Owned(cells.collect())
}

/// A reader that went away (`| head`) is not an error of ours.
fn broken_pipe_is_ok(e: std::io::Error) -> anyhow::Result<()> {
    match e.kind() {
        std::io::ErrorKind::BrokenPipe => Ok(()),
        _ => Err(e.into()),
    }
}

/// The report of the results file `results` (and, if given, its `campaign` file).
fn build(
    results_path: &Path,
    campaign_path: Option<&Path>,
    summary: Summary,
    runs: &[Run],
    contacts: &BTreeMap<u64, String>,
) -> anyhow::Result<ResultsReport> {
    let campaign = campaign_path.map_or("CAMPAIGN".to_string(), |c| c.display().to_string());
    let results = results_path.display().to_string();
    // The last run's own resume command keeps the flags that shaped it (a rehearsal's sandbox
    // files, --results, --api-base); a run log without one (an older send) leaves the plain one.
    let resume = runs
        .iter()
        .rev()
        .find_map(|r| r.resume.clone())
        .unwrap_or_else(|| {
            shlex::try_join([
                "campaign",
                "send",
                &campaign,
                "--results",
                &results,
                "--resume",
            ])
            .unwrap_or_else(|_| format!("campaign send {campaign} --results {results} --resume"))
        });
    let unknown = summary
        .unknown
        .values()
        .map(|o| UnknownRow {
            row: o.row,
            recipient: o.recipient.clone(),
            contact: contacts.get(&o.row).cloned(),
            http_status: o.http_status,
            error_code: o.error_code.clone(),
            error_message: o.error_message.clone(),
            finished_at: o.finished_at.map(rfc3339_ms),
            advice: advice(o, contacts.get(&o.row), &resume, &results),
        })
        .collect();
    Ok(ResultsReport {
        report_version: JSON_VERSION,
        results: results.clone(),
        campaign: campaign_path.map(|c| c.display().to_string()),
        rows: summary.rows,
        counts: summary.counts,
        errors: error_groups(&summary, contacts),
        unknown,
        run: run_times(&summary, runs),
        per_minute: per_minute(&summary, results_path)?,
        replies: None,
        rehearsal: !runs.is_empty() && runs.iter().all(|r| r.target == "sandbox"),
    })
}

/// Non-`sent` rows grouped by status and error code, the largest group first.
fn error_groups(summary: &Summary, contacts: &BTreeMap<u64, String>) -> Vec<ErrorGroup> {
    let mut out: Vec<ErrorGroup> = summary
        .groups
        .values()
        .map(|g| ErrorGroup {
            status: g.status,
            error_code: g.error_code.clone(),
            count: g.count,
            http_status: most_common(&g.http_status).flatten(),
            message: most_common(&g.messages).unwrap_or_default(),
            examples: g
                .examples
                .iter()
                .map(|(row, recipient)| Example {
                    row: *row,
                    recipient: recipient.clone(),
                    contact: contacts.get(row).cloned(),
                })
                .collect(),
        })
        .collect();
    out.sort_by(|a, b| b.count.cmp(&a.count).then(a.error_code.cmp(&b.error_code)));
    out
}

/// What an `unknown` row's outcome means and what to check before sending it again.
fn advice(o: &RowOutcome, contact: Option<&String>, resume: &str, results: &str) -> String {
    let row = o.row;
    let what = match (o.error_code.as_str(), o.http_status) {
        (INTERRUPTED, _) => "the run stopped with this request in flight".to_string(),
        (_, Some(code)) => {
            format!("Intercom answered {code}, which can come after the message was created")
        }
        _ => "the request was sent but no answer came".to_string(),
    };
    // The advice is a sentence for people, in `--json` too: a recipient or contact is cut there
    // as on the page (the row's `recipient` and `contact` keep them whole).
    let who = match contact {
        Some(c) => format!("{} ({})", shown(&o.recipient), shown(c)),
        None => shown(&o.recipient).into_owned(),
    };
    let when = o
        .finished_at
        .map(|t| format!(" around {}", rfc3339_ms(t)))
        .unwrap_or_default();
    let results = shlex::try_quote(results).map_or_else(|_| results.into(), |q| q.into_owned());
    format!(
        "{what}: look in Intercom for a message to {who}{when}. If it is there, record it with \
         `campaign mark {results} --rows {row} --as sent --note \"found in Intercom\"`; if there \
         is none, send it again with `{resume} --retry-unknown {row}`"
    )
}

fn run_times(summary: &Summary, runs: &[Run]) -> Option<RunTimes> {
    if let (Some(first), Some(last)) = (runs.first(), runs.last()) {
        let seconds: f64 = runs
            .iter()
            .map(|r| {
                r.ended_at
                    .duration_since(r.started_at)
                    .as_secs_f64()
                    .max(0.0)
            })
            .sum();
        let requests: u64 = runs.iter().map(|r| r.sent + r.failed + r.unknown).sum();
        return Some(RunTimes {
            source: "run log",
            runs: Some(runs.len() as u64),
            started_at: rfc3339_ms(first.started_at),
            ended_at: rfc3339_ms(last.ended_at),
            duration_seconds: round3(seconds),
            rate_per_second: round3(requests as f64 / seconds.max(0.001)),
            rate_limited: Some(runs.iter().map(|r| r.rate_limited).sum()),
            paused_seconds: Some(round3(
                runs.iter().map(|r| r.paused_ms).sum::<u64>() as f64 / 1000.0,
            )),
        });
    }
    let (start, end) = summary.times?;
    let seconds = end.duration_since(start).as_secs_f64();
    Some(RunTimes {
        source: "results file",
        runs: None,
        started_at: rfc3339_ms(start),
        ended_at: rfc3339_ms(end),
        duration_seconds: round3(seconds),
        rate_per_second: round3(summary.timed as f64 / seconds.max(0.001)),
        rate_limited: None,
        paused_seconds: None,
    })
}

/// `sent` rows per bucket, scaled to a minute; the bucket is the shortest of a few round widths
/// that keeps the chart under [`MAX_POINTS`] points.
fn per_minute(summary: &Summary, results: &Path) -> anyhow::Result<Option<PerMinute>> {
    let Some((start, end)) = summary.sent_span else {
        return Ok(None);
    };
    const WIDTHS: [i64; 12] = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 1800, 3600];
    let span = end - start + 1;
    let width = WIDTHS
        .iter()
        .copied()
        .find(|w| (span + w - 1) / w <= MAX_POINTS)
        .unwrap_or_else(|| ((span + MAX_POINTS - 1) / MAX_POINTS).max(3600));
    let first = start - start.rem_euclid(width);
    let buckets = ((end - first) / width + 1) as usize;
    let mut counts = vec![0u64; buckets];
    match &summary.per_second {
        Some(seconds) => {
            for (t, n) in seconds {
                counts[((t - first) / width) as usize] += n;
            }
        }
        None => read::last_lines(results, |last| {
            if let (RowStatus::Sent, Some(t)) = (last.status, last.finished_at) {
                if let Some(c) = counts.get_mut(((t.as_second() - first) / width) as usize) {
                    *c += 1;
                }
            }
            Ok(())
        })?,
    }
    let points = counts
        .iter()
        .enumerate()
        .map(|(i, n)| Point {
            at: Timestamp::from_second(first + i as i64 * width)
                .map(rfc3339_ms)
                .unwrap_or_default(),
            messages_per_minute: round3(*n as f64 * 60.0 / width as f64),
        })
        .collect();
    Ok(Some(PerMinute {
        bucket_seconds: width,
        points,
    }))
}

/// When there are more `unknown` rows than are listed, a sentence that says which are.
fn listed_note(r: &ResultsReport) -> String {
    if r.counts.unknown > r.unknown.len() as u64 {
        format!(" The first {} by row number are listed.", r.unknown.len())
    } else {
        String::new()
    }
}

/// `text` as the table and the page show it: at most [`SHOWN_CHARS`] characters, then `…` when
/// there were more. `--json` keeps values whole.
fn shown(text: &str) -> Cow<'_, str> {
    match text.char_indices().nth(SHOWN_CHARS) {
        None => Cow::Borrowed(text),
        Some((end, _)) => Cow::Owned(format!("{}…", &text[..end])),
    }
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// RFC 3339 UTC to the millisecond, as the results file writes times.
pub(crate) fn rfc3339_ms(t: Timestamp) -> String {
    format!("{t:.3}")
}

/// A duration for people: `850 ms`, `12.3 s`, `4 min 05 s`, `2 h 03 min`.
pub(crate) fn human_duration(seconds: f64) -> String {
    if seconds < 1.0 {
        format!("{:.0} ms", seconds * 1000.0)
    } else if seconds < 60.0 {
        format!("{seconds:.1} s")
    } else if seconds < 3600.0 {
        let s = seconds.round() as u64;
        format!("{} min {:02} s", s / 60, s % 60)
    } else {
        let m = (seconds / 60.0).round() as u64;
        format!("{} h {:02} min", m / 60, m % 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shown_cuts_a_long_value_on_a_character_boundary() {
        let short = "é".repeat(SHOWN_CHARS);
        assert!(matches!(shown(&short), Cow::Borrowed(s) if s == short));
        let long = "é".repeat(SHOWN_CHARS + 1);
        assert_eq!(shown(&long), format!("{short}…"));
    }
}
