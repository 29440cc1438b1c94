//! The run log (`.campaign/<results>.runs.jsonl`): one JSON line per run, appended when it ends,
//! for the report's timeline (start, end, pauses), which the per-row lines cannot tell.
use std::fs::OpenOptions;
use std::io::Write as _;
use std::path::Path;

use anyhow::Context as _;
use serde::Serialize;

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
