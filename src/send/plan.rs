//! The plan: what a run of `send` does, made once from the command line and the campaign file
//! (by `commands::send`): where the messages go and with which token, the effective settings
//! (the campaign file's, each overridden by its flag), the results file, what a resume may do,
//! which rows go, and the flags a later `--resume` needs. Nothing of `send` reads the command
//! line.
use std::path::{Path, PathBuf};

use anyhow::bail;

use crate::input::config::{Campaign, Duplicates, SendSettings};
use crate::input::rows::RowSet;
use crate::intercom::client::Token;
use crate::results::{side, Ledger, Prior, RowStatus};
use crate::target::{Access, SandboxOptions};

/// Where the messages go. Made once a run: the sandbox's settings are not worth a box.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Destination {
    Intercom,
    /// The in-process sandbox of a rehearsal.
    Sandbox(Box<SandboxPlan>),
}

/// What a rehearsal's sandbox is started with.
pub(crate) struct SandboxPlan {
    /// `--sandbox-log` (in `options.log`), `--sandbox-contacts` and the others, and its faults.
    pub options: SandboxOptions,
    /// `--results`, if given: where an earlier version kept the log (beside it).
    pub results: Option<PathBuf>,
}

/// What a resume of an earlier run may do.
pub(crate) struct Resume {
    /// `--resume`: a results file with history is continued, not refused.
    pub asked: bool,
    /// `--allow-changed`: other templates, settings or CSV content than the first run's.
    pub allow_changed: bool,
    /// `--new-ledger`: a fresh ledger starts although another one of the campaign sent rows.
    pub new_ledger: bool,
    /// The rows sent again on purpose.
    pub again: Again,
}

/// The rows a resume sends again on purpose, as the flags name them.
#[derive(Debug, Clone, Default)]
pub(crate) struct Again {
    /// `--retry-unknown`: the `unknown` rows sent again.
    pub retry_unknown: Option<RowSet>,
    /// `--allow-resend`: the `failed` rows that carry a message id sent again.
    pub allow_resend: Option<RowSet>,
}

impl Resume {
    /// Whether a row is passed over, as [`is_done`].
    pub fn is_done(&self, prior: &Prior, row: u64) -> bool {
        is_done(prior, row, &self.again)
    }
}

/// Whether a row the ledger holds is passed over by this run: `sent`; `unknown` unless
/// --retry-unknown names it and it was `unknown` before this run (a row found in flight as this
/// run settled the ledger was looked at by no one); `failed` with a message id (a hand edit: the
/// message may exist) unless --allow-resend names it; `skipped` by the operator (`mark --as
/// skipped`). Other `failed` and `skipped` rows go again; a row the ledger does not hold is not
/// done.
pub(crate) fn is_done(prior: &Prior, row: u64, again: &Again) -> bool {
    let named = |set: &Option<RowSet>| set.as_ref().is_some_and(|r| r.contains(row));
    match prior.status(row) {
        None => false,
        Some(RowStatus::Sent) => true,
        Some(RowStatus::Unknown) => prior.recovered_now(row) || !named(&again.retry_unknown),
        Some(RowStatus::Failed) => prior.has_message_id(row) && !named(&again.allow_resend),
        Some(RowStatus::Skipped) => prior.closed(row),
    }
}

/// Which rows go, and what happens to the ones that cannot.
pub(crate) struct Selection {
    /// `--limit` or `--canary`: rows sent at most in this run.
    pub limit: Option<u64>,
    /// `--canary`: a run that ends with rows left stops for a look in Intercom.
    pub canary: bool,
    /// `--skip-invalid`: invalid rows are recorded `skipped`, the others sent.
    pub skip_invalid: bool,
    /// The campaign file's `[send] duplicates`, or `--allow-duplicates` / `--skip-duplicates`.
    pub duplicates: Duplicates,
}

/// `--test-to`: the chosen rows to one test contact.
pub(crate) struct TestSend {
    /// As given; [`super::test_send`] says what is wrong with it.
    pub contact: String,
    /// `--row`: the rows to test; empty: the first `limit`.
    pub rows: Vec<u64>,
    pub limit: Option<u64>,
}

/// The effective settings: the campaign file's, each overridden by its flag.
pub(crate) struct Settings {
    pub send: SendSettings,
    pub base_url: String,
    pub version: String,
    pub results_columns: Vec<String>,
    /// Where `results_columns` were named, for the errors about them.
    pub results_columns_from: ColumnsFrom,
}

/// Where the results file's extra columns were named: an error about them names that place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ColumnsFrom {
    /// `[results] columns` in the campaign file (or nowhere: none are copied).
    File,
    /// `--results-columns`.
    Flag,
}

impl ColumnsFrom {
    /// `--results-columns`, or `<campaign file>: [results] columns`.
    pub fn label(self, campaign: &Path) -> String {
        match self {
            ColumnsFrom::Flag => "--results-columns".to_string(),
            ColumnsFrom::File => format!("{}: [results] columns", campaign.display()),
        }
    }
}

pub(crate) struct SendPlan {
    /// The campaign file, as given.
    pub campaign: PathBuf,
    pub destination: Destination,
    /// `None`: a dry run, which sends nothing.
    pub token: Option<Token>,
    pub settings: Settings,
    /// `--results`, if given.
    pub results: Option<PathBuf>,
    pub resume: Resume,
    pub selection: Selection,
    pub test: Option<TestSend>,
    /// `--yes`: no confirmation asked.
    pub yes: bool,
    /// The flags that bring a later `--resume` to the same place the same way, after `--resume`.
    pub resume_flags: Vec<String>,
    /// The flags that bring `campaign track` to the same API (`--api-base`, `--intercom-version`,
    /// `--token-file`); a rehearsal's are its log's, added where the command is made.
    pub track_flags: Vec<String>,
}

impl SendPlan {
    pub fn dry_run(&self) -> bool {
        self.token.is_none()
    }

    pub fn sandbox(&self) -> Option<&SandboxPlan> {
        match &self.destination {
            Destination::Sandbox(s) => Some(s),
            Destination::Intercom => None,
        }
    }

    /// Where the requests go, with the token: `None` for a dry run.
    pub fn access(&self) -> Option<Access> {
        Some(Access {
            token: self.token.clone()?,
            base_url: self.settings.base_url.clone(),
            version: self.settings.version.clone(),
            sandbox: self.sandbox().map(|s| s.options.clone()),
        })
    }

    /// Where the messages go, for the fingerprint and the run log: `sandbox`, or the API's URL.
    pub fn target_name(&self) -> String {
        match self.destination {
            Destination::Sandbox(_) => "sandbox".to_string(),
            Destination::Intercom => self.settings.base_url.clone(),
        }
    }

    /// The results file: `--results`, or `<stem>.results.csv` (`<stem>.sandbox.results.csv`)
    /// beside the campaign file, so that a run from any folder finds the runs before it.
    pub fn results_path(&self, c: &Campaign) -> anyhow::Result<PathBuf> {
        if let Some(p) = &self.results {
            return Ok(p.clone());
        }
        let stem = c.stem();
        let name = match self.destination {
            Destination::Sandbox(_) => format!("{stem}.sandbox.results.csv"),
            Destination::Intercom => format!("{stem}.results.csv"),
        };
        let beside = beside_campaign(&c.path, &name);
        // A results file of this campaign in the current folder may hold rows already sent:
        // starting afresh beside the campaign would send them again, so it is not passed over.
        let legacy = PathBuf::from(&name);
        if !same_file(&legacy, &beside) && Ledger::new(legacy.clone()).has_history()? {
            bail!(
                "{} holds an earlier run of this campaign (earlier versions wrote the results file in the current folder; it now goes beside the campaign file, {}): continue it with --results {} --resume, or move it beside the campaign file",
                legacy.display(),
                beside.display(),
                legacy.display()
            );
        }
        Ok(beside)
    }
}

impl SandboxPlan {
    /// The sandbox's log: `--sandbox-log`; else the results file's, in the hidden folder beside
    /// it (`.campaign/<results>.sandbox.jsonl`): two rehearsals into different results files
    /// never share a log, from which each settles its rows.
    pub fn log_path(&self, results: &Path) -> PathBuf {
        match &self.options.log {
            Some(log) => log.clone(),
            None => side::path(results, side::SANDBOX_LOG),
        }
    }

    /// Where an earlier version kept the log [`SandboxPlan::log_path`] names: with `--results
    /// FILE`, `FILE.sandbox.jsonl`; else `<stem>.sandbox.jsonl` beside the campaign file. `None`
    /// with `--sandbox-log`, which names the log wherever it is.
    pub fn legacy_log_path(&self, campaign: &Path) -> Option<PathBuf> {
        if self.options.log.is_some() {
            return None;
        }
        if let Some(results) = &self.results {
            return Some(side::legacy(results, side::SANDBOX_LOG));
        }
        let stem = campaign
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "campaign".into());
        Some(beside_campaign(campaign, &format!("{stem}.sandbox.jsonl")))
    }
}

fn beside_campaign(campaign: &Path, name: &str) -> PathBuf {
    match campaign.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.join(name),
        _ => PathBuf::from(name),
    }
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (
        std::fs::canonicalize(a),
        b.parent().map(std::fs::canonicalize),
    ) {
        (Ok(a), Some(Ok(dir))) => b.file_name().is_some_and(|n| a == dir.join(n)),
        (Ok(a), None) => std::fs::canonicalize(b).is_ok_and(|b| a == b),
        _ => a == b,
    }
}

/// The command that continues this run, for the user to copy: the plan's recorded flags after
/// the campaign file, the results file and `--resume`, each word quoted for a shell.
pub(super) fn resume_command(plan: &SendPlan, results: &Path) -> String {
    resume_command_with(plan, results, &[])
}

/// [`resume_command`] with more words at its end (`--retry-unknown 4,5`).
pub(super) fn resume_command_with(plan: &SendPlan, results: &Path, more: &[&str]) -> String {
    let path = |p: &Path| p.display().to_string();
    let mut words: Vec<String> = vec!["campaign".into(), "send".into()];
    words.push(path(&plan.campaign));
    words.extend(["--results".into(), path(results), "--resume".into()]);
    words.extend(plan.resume_flags.iter().cloned());
    words.extend(more.iter().map(|w| w.to_string()));
    words
        .iter()
        .map(|w| shlex::try_quote(w).map_or_else(|_| w.clone(), |q| q.into_owned()))
        .collect::<Vec<_>>()
        .join(" ")
}
