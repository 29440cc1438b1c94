//! The plan: the command line and the campaign file resolved once, at the start of `send`, into
//! what the run does: where the messages go and with which token, the effective settings (the
//! campaign file's, each overridden by its flag), the results file, what a resume may do, which
//! rows go, and the flags a later `--resume` needs. Nothing after this reads the command line.
use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _};

use crate::check::{self, Loaded};
use crate::cli::rows::RowSet;
use crate::cli::SendArgs;
use crate::exit::Failure;
use crate::input::config::{self, Campaign, Concurrency, Duplicates, SendSettings};
use crate::input::rate::format_duration;
use crate::intercom::client::Token;
use crate::results::{side, Ledger, Prior, RowStatus};
use crate::sandbox::FaultSettings;

/// Where the messages go. Made once a run: the sandbox's settings are not worth a box.
#[allow(clippy::large_enum_variant)]
pub(super) enum Target {
    Intercom,
    /// The in-process sandbox of a rehearsal.
    Sandbox(Box<SandboxPlan>),
}

/// What a rehearsal's sandbox is started with.
pub(super) struct SandboxPlan {
    /// `--sandbox-log`, if given.
    pub log: Option<PathBuf>,
    /// `--results`, if given: where an earlier version kept the log (beside it).
    pub results: Option<PathBuf>,
    pub contacts: Option<PathBuf>,
    pub missing: Vec<String>,
    pub admins: Option<PathBuf>,
    pub faults: FaultSettings,
}

/// What a resume of an earlier run may do.
pub(super) struct Resume {
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
pub(super) struct Again {
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
pub(super) fn is_done(prior: &Prior, row: u64, again: &Again) -> bool {
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
pub(super) struct Selection {
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
pub(super) struct TestSend {
    /// As given; [`super::test_send`] says what is wrong with it.
    pub contact: String,
    /// `--row`: the rows to test; empty: the first `limit`.
    pub rows: Vec<u64>,
    pub limit: Option<u64>,
}

/// The effective settings: the campaign file's, each overridden by its flag.
pub(super) struct Settings {
    pub send: SendSettings,
    pub base_url: String,
    pub version: String,
    pub results_columns: Vec<String>,
    /// Where `results_columns` were named, for the errors about them.
    pub results_columns_from: ColumnsFrom,
}

/// Where the results file's extra columns were named: an error about them names that place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ColumnsFrom {
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

pub(super) struct SendPlan {
    /// The campaign file, as given.
    pub campaign: PathBuf,
    pub target: Target,
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

/// The plan and the loaded campaign; [`Failure::Reported`] (the problems said) when the
/// templates are invalid.
pub(super) fn resolve(args: SendArgs) -> Result<(SendPlan, Loaded), Failure> {
    // The token first: a missing one is said before anything else happens.
    let token = match (args.dry_run, args.sandbox) {
        (true, _) => None,
        (false, true) => Some(Token::new(random_token())?),
        (false, false) => Some(read_token(&args)?),
    };
    let loaded = match check::load(&args.campaign) {
        Ok(l) => l,
        Err(check::LoadError::Campaign(e)) => return Err(e.into()),
        Err(check::LoadError::Invalid(report)) => {
            crate::say_part!("{}", report.render());
            crate::say!(
                "{}: invalid templates; nothing was sent.",
                args.campaign.display()
            );
            return Err(Failure::Reported);
        }
    };
    let settings = effective(&loaded.campaign, &args)?;
    if !args.sandbox {
        config::check_base_url(&settings.base_url).with_context(|| match args.api_base {
            Some(_) => "--api-base".to_string(),
            None => format!("{} [intercom] base_url", args.campaign.display()),
        })?;
    }
    let plan = SendPlan {
        resume_flags: resume_flags(&args),
        track_flags: track_flags(&args),
        token,
        settings,
        target: target(&args),
        results: args.results,
        resume: Resume {
            asked: args.resume,
            allow_changed: args.allow_changed,
            new_ledger: args.new_ledger,
            again: Again {
                retry_unknown: args.retry_unknown,
                allow_resend: args.allow_resend,
            },
        },
        selection: Selection {
            limit: args.limit.or(args.canary),
            canary: args.canary.is_some(),
            skip_invalid: args.skip_invalid,
            duplicates: Duplicates::chosen(
                loaded.campaign.send.duplicates,
                args.allow_duplicates,
                args.skip_duplicates,
            ),
        },
        test: args.test_to.map(|contact| TestSend {
            contact,
            rows: args.row,
            limit: args.limit,
        }),
        yes: args.yes,
        campaign: args.campaign,
    };
    Ok((plan, loaded))
}

fn target(args: &SendArgs) -> Target {
    if !args.sandbox {
        return Target::Intercom;
    }
    Target::Sandbox(Box::new(SandboxPlan {
        log: args.sandbox_log.clone(),
        results: args.results.clone(),
        contacts: args.sandbox_contacts.clone(),
        missing: args.sandbox_missing.clone(),
        admins: args.sandbox_admins.clone(),
        faults: args.faults.settings(),
    }))
}

/// The campaign file's settings, each overridden by its flag.
fn effective(c: &Campaign, args: &SendArgs) -> anyhow::Result<Settings> {
    let mut send = c.send.clone();
    if let Some(r) = args.rate {
        send.rate = r;
    }
    if let Some(n) = args.concurrency {
        send.concurrency = n;
    }
    if let Some(n) = args.max_attempts {
        send.max_attempts = n.max(1);
    }
    if let Some(n) = args.max_failures {
        send.max_failures = n.max(1);
    }
    if let Some(d) = args.stall_timeout {
        send.stall_timeout = d;
    }
    if let Some(s) = args.max_failure_share {
        send.max_failure_share = s;
    }
    if let Some(d) = args.retry_not_found_for {
        send.retry_not_found_for = d;
    }
    if let Some(d) = args.request_timeout {
        send.request_timeout = d;
    }
    // A rehearsal's choice (clap refuses it without --sandbox): the dispatcher then has no hours
    // to wait for.
    if args.ignore_hours {
        send.hours = None;
    }
    if let Some(v) = &args.intercom_version {
        config::check_version(v).map_err(anyhow::Error::msg)?;
    }
    Ok(Settings {
        send,
        base_url: args.api_base.clone().unwrap_or_else(|| c.base_url.clone()),
        version: args
            .intercom_version
            .clone()
            .unwrap_or_else(|| c.version.clone()),
        results_columns: args
            .results_columns
            .clone()
            .unwrap_or_else(|| c.results_columns.clone()),
        results_columns_from: match args.results_columns {
            Some(_) => ColumnsFrom::Flag,
            None => ColumnsFrom::File,
        },
    })
}

fn read_token(args: &SendArgs) -> anyhow::Result<Token> {
    if let Some(path) = &args.token_file {
        let text = crate::input::files::read_text(path, crate::input::files::MAX_TOKEN_BYTES)
            .context("cannot read the token file")?;
        return Token::new(text).with_context(|| format!("{}", path.display()));
    }
    // `--token`, or INTERCOM_TOKEN, which clap reads into it.
    match args.token.clone().map(|t| t.into_inner()) {
        Some(t) if !t.trim().is_empty() => Token::new(t),
        _ => bail!(
            "no access token: set INTERCOM_TOKEN (or pass --token-file FILE), or rehearse with --sandbox or --dry-run"
        ),
    }
}

/// A rehearsal's token: the sandbox accepts only this run's.
fn random_token() -> String {
    use rand::RngExt;
    let mut rng = rand::rng();
    (0..32)
        .map(|_| format!("{:x}", rng.random_range(0..16u8)))
        .collect()
}

/// The flags of `send` that `campaign track` takes too, to ask the same API with the same token.
fn track_flags(args: &SendArgs) -> Vec<String> {
    let mut words = Vec::new();
    for (name, value) in [
        ("--api-base", args.api_base.clone()),
        ("--intercom-version", args.intercom_version.clone()),
        (
            "--token-file",
            args.token_file.as_deref().map(|p| p.display().to_string()),
        ),
    ] {
        if let Some(v) = value {
            words.extend([name.to_string(), v]);
        }
    }
    words
}

/// Every flag the next run needs to reach the same place in the same way, none that would change
/// what it does on purpose (`--retry-unknown`, `--allow-changed`, `--limit`, `--dry-run`).
fn resume_flags(args: &SendArgs) -> Vec<String> {
    let mut words: Vec<String> = Vec::new();
    let path = |p: &Path| p.display().to_string();
    let mut flag = |name: &str, value: Option<String>| {
        if let Some(v) = value {
            words.push(format!("--{name}"));
            words.push(v);
        }
    };
    flag("api-base", args.api_base.clone());
    flag(
        "results-columns",
        args.results_columns.as_ref().map(|c| c.join(",")),
    );
    flag("intercom-version", args.intercom_version.clone());
    flag("token-file", args.token_file.as_deref().map(path));
    flag("rate", args.rate.map(|r| r.to_string()));
    flag(
        "concurrency",
        args.concurrency.map(|c| match c {
            Concurrency::Auto => "auto".to_string(),
            Concurrency::Fixed(n) => n.to_string(),
        }),
    );
    flag("max-attempts", args.max_attempts.map(|n| n.to_string()));
    flag("max-failures", args.max_failures.map(|n| n.to_string()));
    flag("stall-timeout", args.stall_timeout.map(format_duration));
    flag(
        "max-failure-share",
        args.max_failure_share.map(|s| s.to_string()),
    );
    flag(
        "retry-not-found-for",
        args.retry_not_found_for.map(format_duration),
    );
    flag("request-timeout", args.request_timeout.map(format_duration));
    if args.sandbox {
        sandbox_flags(args, &mut flag);
    }
    for (given, name) in [
        (args.sandbox, "--sandbox"),
        (args.sandbox && args.faults.no_validate, "--no-validate"),
        (args.ignore_hours, "--ignore-hours"),
        (args.skip_invalid, "--skip-invalid"),
        (args.allow_duplicates, "--allow-duplicates"),
        (args.skip_duplicates, "--skip-duplicates"),
    ] {
        if given {
            words.push(name.into());
        }
    }
    words
}

/// The sandbox's flags that shape a rehearsal's outcomes, for [`resume_flags`].
fn sandbox_flags(args: &SendArgs, flag: &mut impl FnMut(&str, Option<String>)) {
    let path = |p: &Path| p.display().to_string();
    flag("sandbox-log", args.sandbox_log.as_deref().map(path));
    flag(
        "sandbox-contacts",
        args.sandbox_contacts.as_deref().map(path),
    );
    flag("sandbox-admins", args.sandbox_admins.as_deref().map(path));
    flag(
        "sandbox-missing",
        (!args.sandbox_missing.is_empty()).then(|| args.sandbox_missing.join(",")),
    );
    let f = &args.faults;
    let rate_limit = f.rate_limit.to_string();
    flag(
        "rate-limit",
        (rate_limit != "10000/min").then_some(rate_limit),
    );
    flag(
        "latency",
        f.latency.map(|l| {
            if l.min == l.max {
                format_duration(l.min)
            } else {
                format!("{}..{}", format_duration(l.min), format_duration(l.max))
            }
        }),
    );
    flag(
        "fail-rate",
        (f.fail_rate > 0.0).then(|| f.fail_rate.to_string()),
    );
    flag(
        "fail-after-rate",
        (f.fail_after_rate > 0.0).then(|| f.fail_after_rate.to_string()),
    );
    flag(
        "drop-rate",
        (f.drop_rate > 0.0).then(|| f.drop_rate.to_string()),
    );
    flag("seed", f.seed.map(|n| n.to_string()));
}

impl SendPlan {
    pub fn dry_run(&self) -> bool {
        self.token.is_none()
    }

    pub fn sandbox(&self) -> Option<&SandboxPlan> {
        match &self.target {
            Target::Sandbox(s) => Some(s),
            Target::Intercom => None,
        }
    }

    /// Where the messages go, for the fingerprint and the run log: `sandbox`, or the API's URL.
    pub fn target_name(&self) -> String {
        match self.target {
            Target::Sandbox(_) => "sandbox".to_string(),
            Target::Intercom => self.settings.base_url.clone(),
        }
    }

    /// The results file: `--results`, or `<stem>.results.csv` (`<stem>.sandbox.results.csv`)
    /// beside the campaign file, so that a run from any folder finds the runs before it.
    pub fn results_path(&self, c: &Campaign) -> anyhow::Result<PathBuf> {
        if let Some(p) = &self.results {
            return Ok(p.clone());
        }
        let stem = c.stem();
        let name = match self.target {
            Target::Sandbox(_) => format!("{stem}.sandbox.results.csv"),
            Target::Intercom => format!("{stem}.results.csv"),
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
        match &self.log {
            Some(log) => log.clone(),
            None => side::path(results, side::SANDBOX_LOG),
        }
    }

    /// Where an earlier version kept the log [`SandboxPlan::log_path`] names: with `--results
    /// FILE`, `FILE.sandbox.jsonl`; else `<stem>.sandbox.jsonl` beside the campaign file. `None`
    /// with `--sandbox-log`, which names the log wherever it is.
    pub fn legacy_log_path(&self, campaign: &Path) -> Option<PathBuf> {
        if self.log.is_some() {
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
