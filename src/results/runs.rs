//! The run log (`.campaign/<results>.runs.jsonl`): one JSON line per run, appended when it ends,
//! for the report's timeline (start, end, pauses), which the per-row lines cannot tell, and read
//! back by `report` and `track`.
use std::fs::OpenOptions;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize)]
pub(crate) struct RunRecord {
    pub(crate) started_at: String,
    pub(crate) ended_at: String,
    /// `sandbox`, or the API base URL.
    pub(crate) target: String,
    pub(crate) rate: String,
    pub(crate) sent: u64,
    pub(crate) failed: u64,
    pub(crate) unknown: u64,
    pub(crate) skipped: u64,
    /// 429 answers.
    pub(crate) rate_limited: u64,
    /// How long every sender was paused by 429s and the server's rate headers, in total.
    pub(crate) paused_ms: u64,
    /// The longest a journal write and its sync took, in milliseconds (to the microsecond): no
    /// request leaves before its line is on disk, so a run slower than its rate with this near
    /// or above a second was held back by the disk, not by the server.
    pub(crate) slowest_journal_sync_ms: f64,
    pub(crate) exit: u8,
    /// The command that continues the campaign as this run was started (`campaign send … --resume`
    /// with the flags that shaped it): what `report` prints for a row to send again.
    pub(crate) resume: String,
}

pub(crate) fn append_run(path: &Path, run: &RunRecord) -> anyhow::Result<()> {
    let mut line = serde_json::to_vec(run)?;
    line.push(b'\n');
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .and_then(|mut f| f.write_all(&line))
        .with_context(|| format!("cannot write the run log {}", path.display()))
}

/// One run from the run log `.campaign/<results>.runs.jsonl` (appended when a run ends).
#[derive(Debug, Clone)]
pub(crate) struct Run {
    pub(crate) started_at: Timestamp,
    pub(crate) ended_at: Timestamp,
    pub(crate) sent: u64,
    pub(crate) failed: u64,
    pub(crate) unknown: u64,
    pub(crate) rate_limited: u64,
    pub(crate) paused_ms: u64,
    /// Where the messages went: `sandbox` for a rehearsal, else the API's URL.
    pub(crate) target: String,
    /// The command that continues the campaign as the run was started, when the line has one
    /// that is a `campaign send … --resume` (see [`resume_of`]).
    pub(crate) resume: Option<String>,
}

/// A run log line as written; the fields a report does not use (`rate`, `skipped`, `exit`) are
/// not read, so that a log with more of them still reads.
#[derive(Debug, Deserialize)]
struct RunLine {
    started_at: String,
    ended_at: String,
    #[serde(default)]
    pub(crate) sent: u64,
    #[serde(default)]
    pub(crate) failed: u64,
    #[serde(default)]
    pub(crate) unknown: u64,
    #[serde(default)]
    pub(crate) rate_limited: u64,
    #[serde(default)]
    pub(crate) paused_ms: u64,
    #[serde(default)]
    target: String,
    #[serde(default)]
    resume: String,
}

/// The longest resume command a report repeats from a run log.
const MAX_RESUME: usize = 4096;

/// A run log's resume command, if it is one `send` writes: a `campaign send` with `--resume`.
/// The log is a file anyone can edit, and the report tells people to run what it prints: the
/// words are quoted again, so that what a shell runs is that command and nothing else.
fn resume_of(line: &str) -> Option<String> {
    if line.len() > MAX_RESUME {
        return None;
    }
    let words = shlex::split(line)?;
    let ok = words.len() >= 5
        && words[0] == "campaign"
        && words[1] == "send"
        && words.iter().any(|w| w == "--resume");
    ok.then(|| shlex::try_join(words.iter().map(String::as_str)).ok())
        .flatten()
}

/// The run log's path: in the hidden folder beside the results file, or beside it where an
/// earlier version kept it (a report takes no lock, so it reads an old log where it is).
pub(crate) fn runs_path(results: &Path) -> PathBuf {
    crate::results::side::found(results, crate::results::side::RUNS)
}

/// The run log's runs in order, or none when there is no log (an older `send` wrote none).
pub(crate) fn runs(results: &Path) -> anyhow::Result<Vec<Run>> {
    let path = runs_path(results);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => anyhow::bail!("{}: cannot read the run log: {e}", path.display()),
    };
    let mut runs = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let at = |what: String| {
            anyhow::anyhow!(
                "{}: line {}: {what}; each line is one run's JSON object (see the README): \
                 fix or delete the line",
                path.display(),
                i + 1
            )
        };
        let run: RunLine =
            serde_json::from_str(line).map_err(|e| at(format!("column {}: {e}", e.column())))?;
        let time = |key: &str, value: &str| {
            value.parse::<Timestamp>().map_err(|_| {
                at(format!(
                    "key `{key}`: `{value}` is not an RFC 3339 time (2026-01-31T09:00:00.000Z)"
                ))
            })
        };
        runs.push(Run {
            started_at: time("started_at", &run.started_at)?,
            ended_at: time("ended_at", &run.ended_at)?,
            sent: run.sent,
            failed: run.failed,
            unknown: run.unknown,
            rate_limited: run.rate_limited,
            paused_ms: run.paused_ms,
            target: run.target,
            resume: resume_of(&run.resume),
        });
    }
    runs.sort_by_key(|r| r.started_at);
    Ok(runs)
}
