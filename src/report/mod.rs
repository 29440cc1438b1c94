//! `campaign report RESULTS`: what a run did, from its results file (and the run log beside it):
//! counts per status, each error code with Intercom's message and example rows, the `unknown`
//! rows and what to do about each, the run's timing and 429 pauses, and messages per minute.
//! Three forms of one [`Report`]: a table for the terminal, `--json` (stable, its shape
//! documented in the README) and `--html` (a self-contained page with the chart as inline SVG).
mod html;
pub(crate) mod read;
mod text;

use std::borrow::Cow;
use std::collections::{BTreeMap, HashSet};
use std::path::Path;

use jiff::Timestamp;
use serde::Serialize;

use crate::cli::ReportArgs;
use crate::results::{RowStatus, Tally, INTERRUPTED};
use crate::Status;
use read::{Outcome, Run};

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
pub(crate) struct Report {
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
    /// `run log` when `<results>.runs.jsonl` was read; `results file` when the times come from
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

pub fn run(args: &ReportArgs) -> anyhow::Result<Status> {
    if args.csv {
        return by_row(&args.results);
    }
    let outcomes = read::outcomes(&args.results)?;
    let runs = read::runs(&args.results)?;
    let contacts = match &args.campaign {
        Some(campaign) => read::contacts(campaign, &rows_to_name(&outcomes))?,
        None => BTreeMap::new(),
    };
    let mut report = build(
        &args.results,
        args.campaign.as_deref(),
        &outcomes,
        &runs,
        &contacts,
    );
    report.replies = crate::track::replies(&args.results, &outcomes)?;
    let out = if args.json {
        serde_json::to_string_pretty(&report)? + "\n"
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
    Ok(Status::Ok)
}

/// Rows whose contact the report shows: the error examples and every `unknown` row.
fn rows_to_name(outcomes: &BTreeMap<u64, Outcome>) -> HashSet<u64> {
    let mut per_code: BTreeMap<(u8, &str), usize> = BTreeMap::new();
    let mut rows = HashSet::new();
    for o in outcomes.values() {
        if o.status == RowStatus::Unknown {
            rows.insert(o.row);
        }
        if o.status != RowStatus::Sent {
            let n = per_code.entry((o.status as u8, &o.error_code)).or_default();
            if *n < EXAMPLES {
                rows.insert(o.row);
            }
            *n += 1;
        }
    }
    rows
}

/// `report --csv`: the results file's lines in row order, each row's last, the header first.
/// The cells are the file's own, written as the results writer wrote them.
fn by_row(results: &Path) -> anyhow::Result<Status> {
    use anyhow::Context as _;
    let name = results.display();
    let mut rdr = csv::ReaderBuilder::new()
        .flexible(true)
        .from_path(results)
        .with_context(|| format!("cannot read {name}"))?;
    let header = rdr.byte_headers()?.clone();
    let Some(at) = header.iter().position(|h| h == b"row") else {
        anyhow::bail!("{name}: no `row` column: not a results file");
    };
    let mut rows: BTreeMap<u64, csv::ByteRecord> = BTreeMap::new();
    for (i, record) in rdr.byte_records().enumerate() {
        let record = record.with_context(|| format!("{name}: line {}", i + 2))?;
        let row = crate::results::row_number(record.get(at).unwrap_or_default())
            .map_err(|e| anyhow::anyhow!("{name}: line {}: {e}", i + 2))?;
        rows.insert(row, record);
    }
    let mut out = csv::Writer::from_writer(std::io::stdout().lock());
    out.write_byte_record(&header)?;
    for record in rows.values() {
        out.write_byte_record(record)?;
    }
    match out.flush() {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(Status::Ok),
    }
}

/// The report of the results file `results` (and, if given, its `campaign` file).
fn build(
    results_path: &Path,
    campaign_path: Option<&Path>,
    outcomes: &BTreeMap<u64, Outcome>,
    runs: &[Run],
    contacts: &BTreeMap<u64, String>,
) -> Report {
    let mut counts = Tally::default();
    for o in outcomes.values() {
        counts.add(o.status);
    }
    let campaign = campaign_path.map_or("CAMPAIGN".to_string(), |c| c.display().to_string());
    let results = results_path.display().to_string();
    let unknown = outcomes
        .values()
        .filter(|o| o.status == RowStatus::Unknown)
        .map(|o| UnknownRow {
            row: o.row,
            recipient: o.recipient.clone(),
            contact: contacts.get(&o.row).cloned(),
            http_status: o.http_status,
            error_code: o.error_code.clone(),
            error_message: o.error_message.clone(),
            finished_at: o.finished_at.map(rfc3339_ms),
            advice: advice(o, contacts.get(&o.row), &campaign, &results),
        })
        .collect();
    Report {
        report_version: JSON_VERSION,
        results: results.clone(),
        campaign: campaign_path.map(|c| c.display().to_string()),
        rows: outcomes.len() as u64,
        counts,
        errors: error_groups(outcomes, contacts),
        unknown,
        run: run_times(outcomes, runs),
        per_minute: per_minute(outcomes),
        replies: None,
        rehearsal: !runs.is_empty() && runs.iter().all(|r| r.target == "sandbox"),
    }
}

/// Non-`sent` rows grouped by status and error code, the largest group first.
fn error_groups(
    outcomes: &BTreeMap<u64, Outcome>,
    contacts: &BTreeMap<u64, String>,
) -> Vec<ErrorGroup> {
    let mut groups: BTreeMap<(u8, String), Vec<&Outcome>> = BTreeMap::new();
    for o in outcomes.values().filter(|o| o.status != RowStatus::Sent) {
        groups
            .entry((o.status as u8, o.error_code.clone()))
            .or_default()
            .push(o);
    }
    let mut out: Vec<ErrorGroup> = groups
        .into_values()
        .map(|rows| ErrorGroup {
            status: rows[0].status,
            error_code: rows[0].error_code.clone(),
            count: rows.len() as u64,
            http_status: most_common(rows.iter().map(|o| o.http_status)).flatten(),
            message: most_common(rows.iter().map(|o| o.error_message.as_str()))
                .unwrap_or_default()
                .to_string(),
            examples: rows
                .iter()
                .take(EXAMPLES)
                .map(|o| Example {
                    row: o.row,
                    recipient: o.recipient.clone(),
                    contact: contacts.get(&o.row).cloned(),
                })
                .collect(),
        })
        .collect();
    out.sort_by(|a, b| b.count.cmp(&a.count).then(a.error_code.cmp(&b.error_code)));
    out
}

/// The value seen most often; the first seen among equals.
fn most_common<T: Eq + std::hash::Hash + Clone>(values: impl Iterator<Item = T>) -> Option<T> {
    let mut seen: Vec<(T, usize)> = Vec::new();
    let mut index: std::collections::HashMap<T, usize> = std::collections::HashMap::new();
    for v in values {
        match index.get(&v) {
            Some(&i) => seen[i].1 += 1,
            None => {
                index.insert(v.clone(), seen.len());
                seen.push((v, 1));
            }
        }
    }
    let best = seen.iter().map(|(_, n)| *n).max()?;
    seen.into_iter().find(|(_, n)| *n == best).map(|(v, _)| v)
}

/// What an `unknown` row's outcome means and what to check before sending it again.
fn advice(o: &Outcome, contact: Option<&String>, campaign: &str, results: &str) -> String {
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
    format!(
        "{what}: look in Intercom for a message to {who}{when}. If it is there, record it with \
         `campaign mark {results} --rows {row} --as sent --note \"found in Intercom\"`; if there \
         is none, send it again with `campaign send {campaign} --results {results} --resume \
         --retry-unknown {row}`"
    )
}

fn run_times(outcomes: &BTreeMap<u64, Outcome>, runs: &[Run]) -> Option<RunTimes> {
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
    let times: Vec<Timestamp> = outcomes
        .values()
        .filter(|o| o.status != RowStatus::Skipped)
        .filter_map(|o| o.finished_at)
        .collect();
    let (start, end) = (*times.iter().min()?, *times.iter().max()?);
    let seconds = end.duration_since(start).as_secs_f64();
    Some(RunTimes {
        source: "results file",
        runs: None,
        started_at: rfc3339_ms(start),
        ended_at: rfc3339_ms(end),
        duration_seconds: round3(seconds),
        rate_per_second: round3(times.len() as f64 / seconds.max(0.001)),
        rate_limited: None,
        paused_seconds: None,
    })
}

/// `sent` rows per bucket, scaled to a minute; the bucket is the shortest of a few round widths
/// that keeps the chart under [`MAX_POINTS`] points.
fn per_minute(outcomes: &BTreeMap<u64, Outcome>) -> Option<PerMinute> {
    let times: Vec<i64> = outcomes
        .values()
        .filter(|o| o.status == RowStatus::Sent)
        .filter_map(|o| o.finished_at)
        .map(|t| t.as_second())
        .collect();
    let (start, end) = (*times.iter().min()?, *times.iter().max()?);
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
    for t in times {
        counts[((t - first) / width) as usize] += 1;
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
    Some(PerMinute {
        bucket_seconds: width,
        points,
    })
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
