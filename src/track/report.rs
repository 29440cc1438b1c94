//! What `campaign report` shows of the tracking file beside the results: replies (count, share,
//! time to first reply: its median and a chart of how long replies took), drops by reason, and
//! when the tracking was made. Built here, shown by the report's three forms.
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write as _;
use std::path::Path;

use jiff::Timestamp;
use serde::Serialize;

use super::files;
use crate::page::escape;
use crate::results::read::{Col, Reader};

/// The chart's buckets of time to first reply: (label, up to seconds).
const BUCKETS: [(&str, i64); 6] = [
    ("< 1 h", 3_600),
    ("1-6 h", 6 * 3_600),
    ("6-24 h", 86_400),
    ("1-3 d", 3 * 86_400),
    ("3-7 d", 7 * 86_400),
    ("> 7 d", i64::MAX),
];

#[derive(Debug, Serialize)]
pub(crate) struct Replies {
    /// The tracking file read.
    pub(crate) tracking: String,
    /// When it was last checked (the latest `checked_at`).
    pub(crate) tracked_at: String,
    /// Sent rows it tracks.
    pub(crate) tracked: u64,
    pub(crate) replied: u64,
    /// `replied` in percent of `tracked`.
    pub(crate) replied_share: f64,
    /// From the message (its results line's `finished_at`) to the contact's first reply.
    pub(crate) median_seconds_to_first_reply: Option<f64>,
    /// Replies by how long they took.
    pub(crate) time_to_first_reply: Vec<Bucket>,
    pub(crate) dropped: u64,
    pub(crate) drops_by_reason: Vec<Reason>,
}

#[derive(Debug, Serialize)]
pub(crate) struct Bucket {
    pub(crate) within: &'static str,
    pub(crate) replies: u64,
}

#[derive(Debug, Serialize)]
pub(crate) struct Reason {
    pub(crate) reason: String,
    pub(crate) rows: u64,
}

/// When each of `rows` was sent, as its last line in the results file says: read line by line
/// through the ledger's reader, keeping only those rows' times.
fn sent_times(results: &Path, rows: &HashSet<u64>) -> anyhow::Result<HashMap<u64, Timestamp>> {
    let mut at = HashMap::new();
    let Some(mut rdr) = Reader::open(results)? else {
        return Ok(at);
    };
    while let Some(line) = rdr.next()? {
        if rows.contains(&line.row) {
            match rdr.text(Col::FinishedAt).parse::<Timestamp>() {
                Ok(t) => at.insert(line.row, t),
                Err(_) => at.remove(&line.row),
            };
        }
    }
    Ok(at)
}

/// The replies of the tracking file beside `results`, if there is one.
pub(crate) fn replies(results: &Path) -> anyhow::Result<Option<Replies>> {
    let path = files::tracking_path(results);
    if !path.is_file() {
        return Ok(None);
    }
    let rows = files::read_tracking(&path)?;
    let replied_rows: HashSet<u64> = rows
        .values()
        .filter(|t| t.state == "replied")
        .map(|t| t.row)
        .collect();
    let sent_at = sent_times(results, &replied_rows)?;
    let parse = |t: &str| t.parse::<Timestamp>().ok();
    let mut waits: Vec<i64> = Vec::new();
    let mut reasons: BTreeMap<String, u64> = BTreeMap::new();
    let (mut replied, mut dropped) = (0, 0);
    for t in rows.values() {
        match t.state.as_str() {
            "replied" => {
                replied += 1;
                let sent = sent_at.get(&t.row).copied();
                if let (Some(sent), Some(at)) = (sent, parse(&t.replied_at)) {
                    waits.push(at.duration_since(sent).as_secs().max(0));
                }
            }
            "dropped" => {
                dropped += 1;
                let reason: String = t.drop_reason.chars().take(100).collect();
                *reasons.entry(reason).or_default() += 1;
            }
            _ => {}
        }
    }
    waits.sort_unstable();
    let median = match waits.len() {
        0 => None,
        n if n % 2 == 1 => Some(waits[n / 2] as f64),
        n => Some((waits[n / 2 - 1] + waits[n / 2]) as f64 / 2.0),
    };
    let mut lower = 0;
    let time_to_first_reply = BUCKETS
        .iter()
        .map(|&(within, upper)| {
            let n = waits.iter().filter(|&&w| w >= lower && w < upper).count() as u64;
            lower = upper;
            Bucket { within, replies: n }
        })
        .collect();
    let mut drops_by_reason: Vec<Reason> = reasons
        .into_iter()
        .map(|(reason, rows)| Reason { reason, rows })
        .collect();
    drops_by_reason.sort_by_key(|d| std::cmp::Reverse(d.rows));
    let tracked = rows.len() as u64;
    Ok(Some(Replies {
        tracking: path.display().to_string(),
        tracked_at: rows
            .values()
            .filter_map(|t| parse(&t.checked_at).map(|p| (p, &t.checked_at)))
            .max_by_key(|(p, _)| *p)
            .map(|(_, t)| t.clone())
            .unwrap_or_default(),
        tracked,
        replied,
        replied_share: if tracked == 0 {
            0.0
        } else {
            replied as f64 * 100.0 / tracked as f64
        },
        median_seconds_to_first_reply: median,
        time_to_first_reply,
        dropped,
        drops_by_reason,
    }))
}

/// The replies for a terminal.
pub(crate) fn text(r: &Replies) -> String {
    let mut out = format!(
        "\nReplies (tracked {}, {}):\n  {} of {} sent replied ({:.1} %)",
        r.tracked_at, r.tracking, r.replied, r.tracked, r.replied_share
    );
    if let Some(m) = r.median_seconds_to_first_reply {
        let _ = write!(out, "; median time to first reply {}", human(m));
    }
    out.push('\n');
    let peak = r
        .time_to_first_reply
        .iter()
        .map(|b| b.replies)
        .max()
        .unwrap_or(0);
    if peak > 0 {
        for b in &r.time_to_first_reply {
            let bar = "#".repeat((b.replies * 40).div_ceil(peak) as usize);
            let _ = writeln!(out, "  {:>7}  {bar} {}", b.within, b.replies);
        }
    }
    let _ = writeln!(out, "  dropped: {}", r.dropped);
    for d in &r.drops_by_reason {
        let _ = writeln!(out, "    {}: {}", d.reason.escape_debug(), d.rows);
    }
    out
}

/// The replies as a section of the report's page; the chart as bars of a table.
pub(crate) fn html(r: &Replies) -> String {
    let mut out = format!(
        "<section id=\"replies\"><h2>Replies</h2><p>{} of {} sent replied ({:.1} %){}; tracked {} ({})</p>",
        r.replied,
        r.tracked,
        r.replied_share,
        r.median_seconds_to_first_reply
            .map(|m| format!("; median time to first reply {}", human(m)))
            .unwrap_or_default(),
        escape(&r.tracked_at),
        escape(&r.tracking)
    );
    let peak = r
        .time_to_first_reply
        .iter()
        .map(|b| b.replies)
        .max()
        .unwrap_or(0)
        .max(1);
    out.push_str("<table><tr><th>first reply within</th><th>replies</th><th></th></tr>");
    for b in &r.time_to_first_reply {
        let width = b.replies * 300 / peak;
        let _ = write!(
            out,
            "<tr><td>{}</td><td class=\"n\" data-within=\"{}\">{}</td><td><svg width=\"300\" height=\"12\" role=\"img\"><rect width=\"{width}\" height=\"12\" fill=\"#3b82f6\"/></svg></td></tr>",
            escape(b.within),
            escape(b.within),
            b.replies
        );
    }
    out.push_str("</table>");
    let _ = write!(
        out,
        "<h3>Dropped: {}</h3><table><tr><th>reason</th><th>rows</th></tr>",
        r.dropped
    );
    for d in &r.drops_by_reason {
        let _ = write!(
            out,
            "<tr><td>{}</td><td class=\"n\">{}</td></tr>",
            escape(&d.reason),
            d.rows
        );
    }
    out.push_str("</table></section>\n");
    out
}

/// `42 s`, `7 min`, `3.5 h`, `2.1 d`.
fn human(seconds: f64) -> String {
    match seconds {
        s if s < 120.0 => format!("{s:.0} s"),
        s if s < 7_200.0 => format!("{:.0} min", s / 60.0),
        s if s < 172_800.0 => format!("{:.1} h", s / 3_600.0),
        s => format!("{:.1} d", s / 86_400.0),
    }
}
