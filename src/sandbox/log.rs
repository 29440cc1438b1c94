//! The `--log` file: one JSON line per created message, written by a single writer thread so that
//! lines never interleave and request handlers never wait on the disk.
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::sync::mpsc;
use std::thread::JoinHandle;

use anyhow::Context;
use jiff::Timestamp;
use serde_json::{json, Value};

enum Entry {
    Line(String),
    Close,
}

/// The sending side, shared by every connection.
#[derive(Debug, Clone)]
pub(super) struct MessageLog {
    tx: mpsc::Sender<Entry>,
}

/// The writer thread; [`LogWriter::finish`] flushes and stops it.
#[derive(Debug)]
pub(super) struct LogWriter {
    tx: mpsc::Sender<Entry>,
    thread: JoinHandle<()>,
}

impl std::fmt::Debug for Entry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Entry")
    }
}

/// Appends to `path` (created if missing) and starts its writer. The log is the record of what
/// would have reached customers: a resumed rehearsal adds to it, never replaces it.
pub(super) fn open(path: &Path) -> anyhow::Result<(MessageLog, LogWriter)> {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("cannot open the sandbox log {}", path.display()))?;
    let (tx, rx) = mpsc::channel();
    let shown = path.display().to_string();
    let thread = std::thread::Builder::new()
        .name("sandbox-log".into())
        .spawn(move || write_lines(BufWriter::new(file), rx, &shown))?;
    Ok((MessageLog { tx: tx.clone() }, LogWriter { tx, thread }))
}

/// Writes each line as it arrives. Lines that queued up meanwhile are written together and then
/// flushed once: every line is on disk as soon as the writer has caught up, at one write call per
/// batch instead of one per message under load.
fn write_lines(mut out: BufWriter<File>, rx: mpsc::Receiver<Entry>, path: &str) {
    let mut failed = false;
    let mut write = |out: &mut BufWriter<File>, line: &str| {
        if let Err(e) = out
            .write_all(line.as_bytes())
            .and_then(|()| out.write_all(b"\n"))
        {
            if !failed {
                crate::say!("sandbox: cannot write the log {path}: {e}");
                failed = true;
            }
        }
    };
    'outer: while let Ok(entry) = rx.recv() {
        match entry {
            Entry::Line(line) => write(&mut out, &line),
            Entry::Close => break,
        }
        loop {
            match rx.try_recv() {
                Ok(Entry::Line(line)) => write(&mut out, &line),
                Ok(Entry::Close) => break 'outer,
                Err(mpsc::TryRecvError::Empty) => break,
                Err(mpsc::TryRecvError::Disconnected) => break 'outer,
            }
        }
        let _ = out.flush();
    }
    let _ = out.flush();
}

/// Hands every message a log holds to `each` (its id, request and creation time in Unix seconds),
/// so that a sandbox started again over its log knows the messages it created before. A missing
/// log holds none; a line cut short by a kill is passed over.
pub(super) fn replay(path: &Path, mut each: impl FnMut(&str, &Value, u64)) -> anyhow::Result<()> {
    use std::io::BufRead;
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => {
            return Err(e)
                .with_context(|| format!("cannot read the sandbox log {}", path.display()))
        }
    };
    for line in std::io::BufReader::new(file).lines() {
        let line =
            line.with_context(|| format!("cannot read the sandbox log {}", path.display()))?;
        let Ok(entry) = serde_json::from_str::<Value>(&line) else {
            continue;
        };
        let at = entry["received_at"]
            .as_str()
            .and_then(|t| t.parse::<jiff::Timestamp>().ok())
            .map_or(0, |t| t.as_second().max(0) as u64);
        if let Some(id) = entry["id"].as_str() {
            each(id, &entry["request"], at);
        }
    }
    Ok(())
}

/// `{"id": "...", "received_at": "<RFC 3339 UTC>", "request": <body>}`.
pub(super) fn line(id: &str, received_at: Timestamp, request: &Value) -> String {
    let at = received_at.to_string();
    json!({"id": id, "received_at": at, "request": request}).to_string()
}

impl MessageLog {
    pub(super) fn record(&self, id: &str, request: &Value) {
        // The writer only goes away at shutdown; a line sent after that is lost on purpose.
        let _ = self
            .tx
            .send(Entry::Line(line(id, Timestamp::now(), request)));
    }
}

impl LogWriter {
    /// Writes everything recorded before this call, flushes, and stops the thread.
    pub(super) async fn finish(self) {
        let _ = self.tx.send(Entry::Close);
        let thread = self.thread;
        let _ = tokio::task::spawn_blocking(move || thread.join()).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_format() {
        let at = Timestamp::from_second(1_700_000_000).unwrap();
        let l = line("7", at, &json!({"body": "hi"}));
        assert_eq!(
            l,
            r#"{"id":"7","received_at":"2023-11-14T22:13:20Z","request":{"body":"hi"}}"#
        );
        // Fractions as long as they need to be, up to nanoseconds (benches/analyze.py reads 9).
        let at = Timestamp::new(1_700_000_000, 123_450_000).unwrap();
        assert!(
            line("7", at, &json!(null)).contains(r#""received_at":"2023-11-14T22:13:20.12345Z""#)
        );
    }

    #[tokio::test]
    async fn finish_flushes_every_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log.jsonl");
        let (log, writer) = open(&path).unwrap();
        for i in 0..1000 {
            log.record(&i.to_string(), &json!({"n": i}));
        }
        writer.finish().await;
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 1000);
        let last: Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
        assert_eq!(last["request"]["n"], 999);
    }
}
