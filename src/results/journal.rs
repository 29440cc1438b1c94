//! The journal (`.campaign/<results>.journal`): a header naming the campaign, then one line per
//! request about to leave, synced before it leaves. A row journaled without an outcome line was in
//! flight when its run stopped: it may have been delivered.
use std::fs::{File, OpenOptions};
use std::io::{BufRead as _, BufReader, Write as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context as _};

use super::{replace_file, LineCap, RunLock, MAX_LINE};
use crate::results::row_number;

/// The journal's first line: where the run's results start, and what campaign they belong to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct JournalHeader {
    /// The results file's length when the run started: outcome lines from there on are the run's.
    pub(crate) results_offset: u64,
    /// `settings_fingerprint@target`: the templates, the message settings and where they went.
    pub(crate) settings: String,
    /// The recipients CSV's content hash.
    pub(crate) content: String,
    /// Rows the results file held, synced, when the header was written: fewer later means the
    /// file was cut or replaced behind the ledger's back.
    pub(crate) rows: u64,
}

/// The journal's first word: recipients are escaped (a rendered template may hold a tab or a
/// line break).
const MAGIC: &str = "campaign-journal v2";

impl JournalHeader {
    fn line(&self) -> String {
        format!(
            "{MAGIC} results_offset={} settings={} content={} rows={}\n",
            self.results_offset, self.settings, self.content, self.rows
        )
    }

    fn parse(line: &str) -> Option<JournalHeader> {
        let rest = line.trim().strip_prefix(MAGIC)?;
        let mut h = JournalHeader {
            results_offset: 0,
            settings: String::new(),
            content: String::new(),
            rows: 0,
        };
        for kv in rest.split_whitespace() {
            match kv.split_once('=')? {
                ("results_offset", v) => h.results_offset = v.parse().ok()?,
                ("settings", v) => h.settings = v.to_string(),
                ("content", v) => h.content = v.to_string(),
                ("rows", v) => h.rows = v.parse().ok()?,
                _ => {}
            }
        }
        Some(h)
    }
}

/// This run's journal, open for appending.
pub(crate) struct Journal {
    file: File,
    path: PathBuf,
    /// Checked before each write: a journal whose lock was lost may be another run's by now.
    lock: Arc<RunLock>,
}

impl Journal {
    /// Starts this run's journal with its header, replacing the last run's, which
    /// [`super::settle()`] has retired (it holds no row any more).
    pub(crate) fn start(
        path: &Path,
        header: &JournalHeader,
        lock: Arc<RunLock>,
    ) -> anyhow::Result<Journal> {
        replace_file(path, |f| Ok(f.write_all(header.line().as_bytes())?))?;
        let file = OpenOptions::new()
            .append(true)
            .open(path)
            .with_context(|| format!("cannot open the journal {}", path.display()))?;
        Ok(Journal {
            file,
            path: path.to_path_buf(),
            lock,
        })
    }

    /// Records rows about to be sent, in one write, and waits until it is on stable storage:
    /// only then may their requests leave.
    pub(crate) fn in_flight(&mut self, rows: &[(u64, String)]) -> anyhow::Result<()> {
        let mut text = String::new();
        for (row, recipient) in rows {
            text.push_str(&row.to_string());
            text.push('\t');
            escape_into(recipient, &mut text);
            text.push('\n');
        }
        self.lock.check()?;
        self.file
            .write_all(text.as_bytes())
            .and_then(|()| self.file.sync_data())
            .with_context(|| format!("cannot write the journal {}", self.path.display()))
    }
}

/// Reads a journal: its header, then each journaled row to `each`, in order, one line at a time
/// (a run of a million rows journals a million lines). Only whole lines count: a last line
/// without its line break was being written when the process died, before its requests could
/// leave, so it is passed over. A whole line that does not read is refused with what to do,
/// since a row behind it may have been sent.
pub(super) fn read(
    path: &Path,
    each: &mut dyn FnMut(u64, String),
) -> anyhow::Result<Option<JournalHeader>> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(e).with_context(|| format!("cannot read the journal {}", path.display()))
        }
    };
    let mut lines = BufReader::new(LineCap::new(file, MAX_LINE));
    let mut line = Vec::new();
    let mut next = |line: &mut Vec<u8>| -> anyhow::Result<bool> {
        line.clear();
        lines
            .read_until(b'\n', line)
            .with_context(|| format!("cannot read the journal {}", path.display()))?;
        Ok(line.pop() == Some(b'\n'))
    };
    if !next(&mut line)? {
        return Ok(None);
    }
    let first = String::from_utf8_lossy(&line);
    let Some(header) = JournalHeader::parse(&first) else {
        bail!(
            "{}: not a campaign journal (its first line is `{}`); if it is not this tool's, move it away, or pass another --results file",
            path.display(),
            first.chars().take(80).collect::<String>().escape_debug()
        );
    };
    let mut number = 1;
    while next(&mut line)? {
        number += 1;
        if line.is_empty() {
            continue;
        }
        match parse_row(&line) {
            Some((row, recipient)) => each(row, recipient),
            None => bail!(
                "{}: line {number} is damaged (`{}`): a request recorded there may have left. Check the rows around it in Intercom (the results file has the others), then delete that line and resume",
                path.display(),
                String::from_utf8_lossy(&line).chars().take(80).collect::<String>().escape_debug()
            ),
        }
    }
    Ok(Some(header))
}

fn parse_row(line: &[u8]) -> Option<(u64, String)> {
    let line = std::str::from_utf8(line).ok()?;
    let (row, recipient) = line.split_once('\t')?;
    let row = row_number(row.as_bytes()).ok()?;
    Some((row, unescape(recipient)?))
}

/// The offset of a retired journal: no run is writing the results file.
pub(super) const RETIRED: u64 = u64::MAX;

/// Retires a journal whose rows all have an outcome line now: it keeps its header's campaign
/// fingerprint, for the next resume to compare with, and no row; its offset says that no run is
/// writing (offsets do not survive compaction, so none may be trusted after it).
pub(super) fn retire(
    path: &Path,
    lock: &RunLock,
    header: &JournalHeader,
    rows: u64,
) -> anyhow::Result<()> {
    lock.check()?;
    let retired = JournalHeader {
        results_offset: RETIRED,
        rows,
        ..header.clone()
    };
    replace_file(path, |f| Ok(f.write_all(retired.line().as_bytes())?))
}

/// The journal's header, if it has one: the campaign and target its results belong to.
pub(crate) fn header(path: &Path) -> anyhow::Result<Option<JournalHeader>> {
    read(path, &mut |_, _| {})
}

/// Whether the journal lists a row.
pub(super) fn has_rows(path: &Path) -> anyhow::Result<bool> {
    let mut any = false;
    read(path, &mut |_, _| any = true)?;
    Ok(any)
}

fn escape_into(s: &str, out: &mut String) {
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c => out.push(c),
        }
    }
}

fn unescape(s: &str) -> Option<String> {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        out.push(match chars.next()? {
            '\\' => '\\',
            't' => '\t',
            'n' => '\n',
            'r' => '\r',
            _ => return None,
        });
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn lock(dir: &Path) -> Arc<RunLock> {
        Arc::new(RunLock::acquire(&dir.join("j.lock"), &dir.join("r")).unwrap())
    }

    #[derive(Debug)]
    struct Entries {
        header: Option<JournalHeader>,
        rows: Vec<(u64, String)>,
    }

    fn read(path: &Path) -> anyhow::Result<Entries> {
        let mut rows = Vec::new();
        let header = super::read(path, &mut |row, r| rows.push((row, r)))?;
        Ok(Entries { header, rows })
    }

    fn header() -> JournalHeader {
        JournalHeader {
            results_offset: 42,
            settings: "abc@sandbox".into(),
            content: "0123".into(),
            rows: 7,
        }
    }

    proptest! {
        #[test]
        fn any_recipient_reads_back_as_written(recipient in "\\PC*|[\\t\\n\\r\\\\a]*") {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("j");
            let mut j = Journal::start(&path, &header(), lock(dir.path())).unwrap();
            j.in_flight(&[(7, recipient.clone()), (8, "x".into())]).unwrap();
            let e = read(&path).unwrap();
            prop_assert_eq!(e.header, Some(header()));
            prop_assert_eq!(e.rows, vec![(7, recipient), (8, "x".to_string())]);
        }
    }

    #[test]
    fn a_line_torn_anywhere_is_passed_over_and_whole_lines_are_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j");
        let mut j = Journal::start(&path, &header(), lock(dir.path())).unwrap();
        j.in_flight(&[(1, "ann@example.com".into())]).unwrap();
        j.in_flight(&[(2, "bob@example.com".into())]).unwrap();
        let full = std::fs::read(&path).unwrap();
        let second = full.len() - "2\tbob@example.com\n".len();
        for cut in second..full.len() {
            std::fs::write(&path, &full[..cut]).unwrap();
            let e = read(&path).unwrap();
            // Never a row with a cut recipient: that would claim the CSV changed.
            assert_eq!(
                e.rows,
                vec![(1, "ann@example.com".to_string())],
                "cut at {cut}"
            );
        }
        // A header torn before its line break: nothing was journaled yet.
        std::fs::write(&path, &full[..10]).unwrap();
        assert!(read(&path).unwrap().header.is_none());
    }

    #[test]
    fn a_damaged_whole_line_is_refused_with_what_to_do() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j");
        let mut text = header().line();
        text.push_str("1\tann\nnot a line\n");
        std::fs::write(&path, text).unwrap();
        let err = format!("{:#}", read(&path).unwrap_err());
        assert!(
            err.contains("line 3 is damaged (`not a line`)")
                && err.contains("delete that line and resume"),
            "{err}"
        );
    }
}
