//! Where a ledger's side files live: one hidden folder, `.campaign/`, beside the results file,
//! each file named after the results file (`.campaign/welcome.results.csv.journal`), so that two
//! results files in one folder never share one, and the folder a user works in holds what they
//! open: the campaign, its templates and CSV, the results.
//!
//! Earlier versions kept the side files beside the results file itself
//! (`welcome.results.csv.journal`). Such a ledger may be mid-campaign, and an older binary may be
//! running on it: [`super::Ledger::lock`] takes the old lock too, and moves the old files in
//! while it holds both ([`adopt`]); readers that take no lock look in both places ([`found`]).
use std::fs::{File, OpenOptions};
use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _};

/// The hidden folder's name.
pub(crate) const FOLDER: &str = ".campaign";

/// The journal's suffix.
pub(crate) const JOURNAL: &str = ".journal";
/// The lock file's suffix.
pub(crate) const LOCK: &str = ".lock";
/// The run log's suffix.
pub(crate) const RUNS: &str = ".runs.jsonl";
/// A rehearsal's sandbox log's suffix.
pub(crate) const SANDBOX_LOG: &str = ".sandbox.jsonl";
/// The test sends' record's suffix.
pub(crate) const TESTS: &str = ".tests.csv";
/// The test sends' sandbox log's suffix.
pub(crate) const TESTS_LOG: &str = ".sandbox.tests.jsonl";
/// The ledgers' register's suffix (after the recipients CSV's name).
pub(crate) const REGISTER: &str = ".ledgers.jsonl";

/// The side file of `of` with this suffix: `<of's folder>/.campaign/<of's name><suffix>`.
pub(crate) fn path(of: &Path, suffix: &str) -> PathBuf {
    folder(of).join(name(of, suffix))
}

/// Where an earlier version kept it: `<of><suffix>`, beside `of`.
pub(crate) fn legacy(of: &Path, suffix: &str) -> PathBuf {
    let mut name = of.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// The side file to read without the lock: in the folder, or where an earlier version left it
/// when only that one exists.
pub(crate) fn found(of: &Path, suffix: &str) -> PathBuf {
    let new = path(of, suffix);
    let old = legacy(of, suffix);
    if !exists(&new) && exists(&old) {
        old
    } else {
        new
    }
}

/// The hidden folder beside `of`.
pub(crate) fn folder(of: &Path) -> PathBuf {
    match of.parent() {
        Some(dir) => dir.join(FOLDER),
        None => PathBuf::from(FOLDER),
    }
}

fn name(of: &Path, suffix: &str) -> std::ffi::OsString {
    let mut name = of
        .file_name()
        .map(ToOwned::to_owned)
        .unwrap_or_else(|| "results".into());
    name.push(suffix);
    name
}

pub(crate) fn exists(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok()
}

/// Makes the hidden folder beside `of` (its creation synced into the parent folder); returns
/// whether it was made now. Anything else at that name (a file, a link) is refused: the ledger's
/// files are renamed within it, and must stay where the next run looks.
pub(crate) fn make_folder(of: &Path) -> anyhow::Result<bool> {
    let dir = folder(of);
    match std::fs::symlink_metadata(&dir) {
        Ok(m) if m.is_dir() => return Ok(false),
        Ok(_) => bail!(
            "{} is not a folder: campaign keeps the journal, lock and logs of the results files beside it in that folder; move that file away",
            dir.display()
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("cannot inspect {}", dir.display())),
    }
    match std::fs::create_dir(&dir) {
        Ok(()) => {}
        // Another run made it meanwhile.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && dir.is_dir() => {
            return Ok(false)
        }
        Err(e) => {
            return Err(e).with_context(|| format!("cannot create the folder {}", dir.display()))
        }
    }
    super::sync_dir(&dir)?;
    Ok(true)
}

/// How [`adopt`] treats an old file when the folder already holds one of that name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Both {
    /// Append the old one's lines to the new one (a log whose lines add up).
    Append,
    /// Refuse: neither may be chosen over the other (a journal).
    Refuse,
}

/// Moves `from` (an earlier version's side file) to `to` in the folder, if it exists. The caller
/// holds the locks of every run that could write either. `what` names the file in an error.
pub(crate) fn adopt(from: &Path, to: &Path, both: Both, what: &str) -> anyhow::Result<()> {
    if !exists(from) {
        return Ok(());
    }
    super::regular_or_absent(from)?;
    super::regular_or_absent(to)?;
    if !exists(to) {
        std::fs::rename(from, to)
            .with_context(|| format!("cannot move {} to {}", from.display(), to.display()))?;
        super::sync_dir(to)?;
        return super::sync_dir(from);
    }
    if both == Both::Refuse {
        bail!(
            "{} and {} are both there: the first is where an earlier version of campaign kept the {what}, the second where this one keeps it, and neither may be passed over (a row recorded in either may have been sent). Compare them, keep the one of the latest run at {}, move the other away, and run again",
            from.display(),
            to.display(),
            to.display()
        );
    }
    let mut old = Vec::new();
    File::open(from)
        .and_then(|f| f.take(MAX_ADOPTED).read_to_end(&mut old))
        .with_context(|| format!("cannot read {}", from.display()))?;
    if old.len() as u64 >= MAX_ADOPTED {
        bail!(
            "{} is larger than {} MiB: it is not the {what} this tool writes; move it away and run again",
            from.display(),
            MAX_ADOPTED >> 20
        );
    }
    let ends_whole = std::fs::read(to)
        .map(|t| t.is_empty() || t.ends_with(b"\n"))
        .with_context(|| format!("cannot read {}", to.display()))?;
    let mut file = OpenOptions::new()
        .append(true)
        .open(to)
        .with_context(|| format!("cannot open {}", to.display()))?;
    if !ends_whole {
        file.write_all(b"\n")?;
    }
    file.write_all(&old)
        .and_then(|()| file.sync_all())
        .with_context(|| format!("cannot write {}", to.display()))?;
    std::fs::remove_file(from).with_context(|| format!("cannot remove {}", from.display()))?;
    super::sync_dir(from)
}

/// The largest old log [`adopt`] appends to a new one.
const MAX_ADOPTED: u64 = 256 << 20;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn side_files_are_named_after_the_results_file_in_the_hidden_folder() {
        assert_eq!(
            path(Path::new("out/welcome.results.csv"), JOURNAL),
            Path::new("out/.campaign/welcome.results.csv.journal")
        );
        assert_eq!(
            path(Path::new("r.csv"), LOCK),
            Path::new(".campaign/r.csv.lock")
        );
        assert_eq!(
            legacy(Path::new("out/r.csv"), RUNS),
            Path::new("out/r.csv.runs.jsonl")
        );
    }

    #[test]
    fn an_old_file_is_moved_in_appended_or_refused_never_lost() {
        let dir = tempfile::tempdir().unwrap();
        let results = dir.path().join("r.csv");
        make_folder(&results).unwrap();
        let (old, new) = (legacy(&results, RUNS), path(&results, RUNS));
        std::fs::write(&old, "{\"sent\":1}\n").unwrap();
        assert_eq!(found(&results, RUNS), old);
        adopt(&old, &new, Both::Append, "run log").unwrap();
        assert!(!old.exists());
        assert_eq!(found(&results, RUNS), new);
        // A newer line without its line break, then an old log: both kept, line by line.
        std::fs::write(&new, "{\"sent\":1}").unwrap();
        std::fs::write(&old, "{\"sent\":2}\n").unwrap();
        adopt(&old, &new, Both::Append, "run log").unwrap();
        assert_eq!(
            std::fs::read_to_string(&new).unwrap(),
            "{\"sent\":1}\n{\"sent\":2}\n"
        );
        std::fs::write(&old, "x").unwrap();
        let err = adopt(&old, &new, Both::Refuse, "journal").unwrap_err();
        assert!(format!("{err:#}").contains("are both there"), "{err:#}");
        assert!(old.exists() && new.exists());
    }

    #[test]
    fn a_file_where_the_folder_goes_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let results = dir.path().join("r.csv");
        std::fs::write(folder(&results), "").unwrap();
        let err = make_folder(&results).unwrap_err();
        assert!(format!("{err:#}").contains("is not a folder"), "{err:#}");
    }
}
