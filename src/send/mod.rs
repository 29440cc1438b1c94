//! `campaign send`: everything before the first request (token, preflight, the earlier run's
//! results, the campaign's fingerprint), then the run ([`pipeline`]), then the summary
//! ([`report`]). Nothing is sent unless every check before it passed.
mod attempt;
mod health;
mod pipeline;
mod report;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use anyhow::{bail, Context as _};
use tokio_util::sync::CancellationToken;
use xxhash_rust::xxh3::Xxh3;

use crate::check::{self, recipient_hash};
use crate::cli::SendArgs;
use crate::client::{Client, Token};
use crate::config::{self, Campaign};
use crate::pace::{self, Gate, InFlight};
use crate::problem::{Problem, Severity};
use crate::results::{self, Journal, JournalHeader, ResultsWriter, RowStatus};
use crate::sandbox;
use crate::Status;

use pipeline::{pipeline, Known, Shared};
use report::report_end;

/// The fingerprint of what the messages are made of, less the rows: templates and settings, and
/// where they go (a sandbox run must never count as sent to customers).
fn settings_fingerprint(c: &Campaign, target: &str) -> String {
    let mut h = Xxh3::new();
    for part in [
        c.message_type.as_api(),
        c.template.as_deref().unwrap_or(""),
        &c.from.to_string(),
        &c.to_type,
        &format!("{:?}", c.create_conversation_without_contact_reply),
        c.subject.as_ref().map(|s| s.source.as_str()).unwrap_or(""),
        &c.body.source,
        &format!("{:?}", c.body_format),
        &c.to_id.source,
    ] {
        h.update(part.as_bytes());
        h.update(&[0]);
    }
    format!(
        "{:016x}@{}",
        h.digest(),
        target.replace(char::is_whitespace, "")
    )
}

fn read_token(args: &SendArgs) -> anyhow::Result<Token> {
    if let Some(path) = &args.token_file {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the token file {}", path.display()))?;
        return Token::new(text).with_context(|| format!("{}", path.display()));
    }
    match std::env::var("INTERCOM_TOKEN") {
        Ok(t) if !t.trim().is_empty() => Token::new(t),
        _ => bail!(
            "no access token: set INTERCOM_TOKEN (or pass --token-file FILE), or rehearse with --sandbox or --dry-run"
        ),
    }
}

fn random_token() -> String {
    use rand::Rng;
    let mut rng = rand::rng();
    (0..32)
        .map(|_| format!("{:x}", rng.random_range(0..16u8)))
        .collect()
}

fn apply_overrides(c: &mut Campaign, args: &SendArgs) -> anyhow::Result<()> {
    if let Some(r) = args.rate {
        c.send.rate = r;
    }
    if let Some(n) = args.concurrency {
        c.send.concurrency = n;
    }
    if let Some(n) = args.max_attempts {
        c.send.max_attempts = n.max(1);
    }
    if let Some(n) = args.max_failures {
        c.send.max_failures = n.max(1);
    }
    if let Some(u) = &args.api_base {
        c.base_url = u.clone();
    }
    if let Some(v) = &args.intercom_version {
        config::check_version(v).map_err(anyhow::Error::msg)?;
        c.version = v.clone();
    }
    Ok(())
}

pub async fn run(args: SendArgs) -> anyhow::Result<Status> {
    // The token first: a missing one is said before anything else happens.
    let token = match (args.dry_run, args.sandbox) {
        (true, _) => None,
        (false, true) => Some(Token::new(random_token())?),
        (false, false) => Some(read_token(&args)?),
    };
    let mut loaded = match check::load(&args.campaign)? {
        Ok(l) => l,
        Err(report) => {
            eprint!("{}", report.render());
            eprintln!(
                "{}: invalid templates; nothing was sent.",
                args.campaign.display()
            );
            return Ok(Status::Invalid);
        }
    };
    apply_overrides(&mut loaded.campaign, &args)?;
    if !args.sandbox {
        config::check_base_url(&loaded.campaign.base_url)?;
    }
    let target = if args.sandbox {
        "sandbox".to_string()
    } else {
        loaded.campaign.base_url.clone()
    };
    let results_path = args.results.clone().unwrap_or_else(|| {
        let stem = loaded.campaign.stem();
        PathBuf::from(if args.sandbox {
            format!("{stem}.sandbox.results.csv")
        } else {
            format!("{stem}.results.csv")
        })
    });

    // What an earlier run left.
    let prior = if results::has_history(&results_path) {
        if !args.resume {
            bail!(
                "{} already holds results: add --resume to continue that run (rows recorded `sent` are not sent again), or choose another --results file",
                results_path.display()
            );
        }
        let to_type = loaded.campaign.to_type.clone();
        Some(results::reconcile(&results_path, &|r| {
            recipient_hash(&to_type, r)
        })?)
    } else {
        None
    };

    // Preflight: every row rendered; on resume, every recorded row's recipient compared.
    let mut changed_reported = false;
    let recipients_file = loaded.campaign.recipients.display().to_string();
    let to_type = &loaded.campaign.to_type;
    // Each row's request hash, by record number (0: not a valid row), for the send pass to
    // compare with: 4 bytes a row, sized up front on resume (growing it would hold the old
    // and the new buffer at once, beside the earlier run's rows).
    let mut expected: Vec<u32> =
        Vec::with_capacity(prior.as_ref().map_or(0, |p| p.rows() as usize));
    let campaign = &loaded.campaign;
    let pre = check::preflight(&loaded, args.allow_duplicates, &mut |row, rendered| {
        expected.resize(row as usize - 1, 0);
        expected.push(check::row_hash(campaign, rendered));
        let id = rendered.to_id.as_str();
        let prior = prior.as_ref()?;
        let recorded = prior.recipient_hash(row)?;
        if changed_reported || recorded == recipient_hash(to_type, id) {
            return None;
        }
        // A row skipped without a recipient (its id did not render, or an earlier version left
        // it out) has nothing to compare: it was never sent, and fixing it is why one resumes.
        if prior.status(row) == Some(RowStatus::Skipped) && recorded == recipient_hash(to_type, "")
        {
            return None;
        }
        changed_reported = true;
        Some(Problem {
            record: Some(row),
            ..Problem::error(
                "changed",
                &recipients_file,
                format!(
                    "the recipient is now `{}`, but the results file {} recorded another one for this row: the CSV changed since the first run, so resuming it could skip or double customers",
                    id,
                    results_path.display()
                ),
            )
        })
    });
    expected.resize(pre.rows as usize, 0);
    if let Some(p) = &prior {
        if p.rows() > pre.rows {
            eprintln!(
                "error: {}: the results file has rows beyond the CSV's {} rows: the CSV changed since the first run",
                results_path.display(),
                pre.rows
            );
            return Ok(Status::Invalid);
        }
    }
    eprint!("{}", pre.report.render());
    if refuses(&pre, &args) {
        eprintln!(
            "{}: {}, {}; nothing was sent{}.",
            check::summary_line(&loaded.campaign, &pre),
            check::counted(pre.report.errors, "error"),
            check::counted(pre.report.warnings, "warning"),
            // Not when no row is valid: there would be nothing to send.
            if !args.skip_invalid && only_row_errors(&pre) && pre.rows > pre.invalid_rows {
                " (--skip-invalid sends the valid rows and records the others as skipped)"
            } else {
                ""
            }
        );
        return Ok(Status::Invalid);
    }

    // The same campaign, not a changed one.
    let settings = settings_fingerprint(&loaded.campaign, &target);
    let content = format!("{:016x}", pre.content_hash);
    if let Some(header) = prior.as_ref().and_then(|p| p.header.as_ref()) {
        same_campaign(header, &settings, &content, &args, &results_path)?;
    }
    if let Some(p) = &prior {
        announce_resume(p, &args, &results_path);
    }
    let already = prior
        .as_ref()
        .map(|p| p.sent + if args.retry_unknown { 0 } else { p.unknown })
        .unwrap_or(0);
    let mut to_send = pre.rows.saturating_sub(already);
    if let Some(limit) = args.limit {
        to_send = to_send.min(limit);
    }
    let c = &loaded.campaign;
    if args.dry_run {
        println!(
            "dry run: {to_send} messages would be sent to {} (rate {}, concurrency {:?}); nothing was sent.",
            if args.sandbox { "the sandbox".to_string() } else { c.base_url.clone() },
            c.send.rate,
            c.send.concurrency
        );
        return Ok(Status::Ok);
    }
    let token = token.expect("a token unless --dry-run");

    let sandbox = if args.sandbox {
        Some(start_sandbox(&args, &token, &c.stem()).await?)
    } else {
        None
    };
    let base_url = sandbox
        .as_ref()
        .map(|(s, _)| s.base_url())
        .unwrap_or_else(|| c.base_url.clone());
    let in_flight = InFlight::new(c.send.concurrency, c.send.rate);
    let client = Client::new(
        &base_url,
        &token,
        &c.version,
        c.send.request_timeout,
        pace::AUTO_MAX,
    )?;
    let shared = Arc::new(Shared {
        client,
        gate: Gate::default(),
        limiter: pace::Limiter::new(c.send.rate),
        in_flight,
        stop: CancellationToken::new(),
        rows_in_flight: Mutex::new(HashMap::new()),
        max_attempts: c.send.max_attempts,
        max_failures: c.send.max_failures,
        max_failure_share: c.send.max_failure_share,
        retry_not_found_for: c.send.retry_not_found_for,
        request_timeout: c.send.request_timeout,
        rate_limited: Default::default(),
    });
    let mut writer = ResultsWriter::open(&results_path)?;
    let offset = std::fs::metadata(&results_path)
        .map(|m| m.len())
        .unwrap_or(0);
    let journal = Journal::start(
        &results::journal_path(&results_path),
        &JournalHeader {
            results_offset: offset,
            settings,
            content,
        },
    )?;
    eprintln!(
        "sending {to_send} messages to {base_url} at {} (in flight: {}); results: {}",
        c.send.rate,
        match c.send.concurrency {
            config::Concurrency::Auto => "auto".to_string(),
            config::Concurrency::Fixed(n) => n.to_string(),
        },
        results_path.display()
    );

    let retry_unknown = args.retry_unknown;
    let prior = Arc::new(prior.unwrap_or_default());
    let done: Arc<dyn Fn(u64) -> bool + Send + Sync> =
        Arc::new(move |row| match prior.status(row) {
            Some(RowStatus::Sent) => true,
            Some(RowStatus::Unknown) => !retry_unknown,
            _ => false,
        });
    let end = pipeline(
        loaded,
        Arc::clone(&shared),
        journal,
        &mut writer,
        to_send,
        &args,
        Known { done, expected },
    )
    .await;
    drop(writer);
    let tally = results::compact(&results_path)?;
    if let Some((running, log)) = sandbox {
        running.shutdown().await?;
        eprintln!("sandbox log: {}", log.display());
    }
    report_end(&args, &results_path, end, tally)
}

/// Whether preflight's problems stop the run: any error, unless --skip-invalid and every error is
/// a row's own, so that skipping the row is enough.
fn refuses(pre: &check::Preflight, args: &SendArgs) -> bool {
    pre.report.has_errors() && !(args.skip_invalid && only_row_errors(pre))
}

/// Whether every error belongs to one row (its CSV record, its rendering, its values), none to the
/// file, the templates as a whole, duplicates or a changed campaign.
fn only_row_errors(pre: &check::Preflight) -> bool {
    let beyond_rows = pre.report.counts.iter().any(|((sev, kind), _)| {
        *sev == Severity::Error && !matches!(*kind, "value" | "csv" | "template")
    });
    let file_level = pre
        .report
        .kept
        .iter()
        .any(|p| p.severity == Severity::Error && p.record.is_none());
    pre.invalid_rows > 0 && !beyond_rows && !file_level
}

/// On resume: the same target, and unless --allow-changed, the same templates, settings and rows.
fn same_campaign(
    header: &JournalHeader,
    settings: &str,
    content: &str,
    args: &SendArgs,
    results_path: &std::path::Path,
) -> anyhow::Result<()> {
    let target = |fp: &str| {
        fp.split_once('@')
            .map(|(_, t)| t.to_string())
            .unwrap_or_default()
    };
    let (old_target, new_target) = (target(&header.settings), target(settings));
    if old_target != new_target {
        bail!(
            "{} records a run against {old_target}, and this run would go to {new_target}: rows it records as sent did not reach these customers. Use another --results file",
            results_path.display()
        );
    }
    if header.settings != settings && !args.allow_changed {
        bail!("the templates or message settings changed since the first run of {}; resuming would send a different message to the remaining rows. Add --allow-changed if that is intended", results_path.display());
    }
    if header.content != content && !args.allow_changed {
        bail!("the recipients CSV's content changed since the first run of {} (the recipients are the same); add --allow-changed if that is intended", results_path.display());
    }
    Ok(())
}

/// What an earlier run left, and the `unknown` rows that will not be sent again.
fn announce_resume(p: &results::Prior, args: &SendArgs, results_path: &std::path::Path) {
    let recovered = if p.recovered_unknown > 0 {
        format!(
            " ({} were in flight when the last run stopped)",
            p.recovered_unknown
        )
    } else {
        String::new()
    };
    eprintln!(
        "resuming {}: {} sent, {} failed, {} unknown, {} skipped{recovered}",
        results_path.display(),
        p.sent,
        p.failed,
        p.unknown,
        p.skipped,
    );
    if p.unknown > 0 && !args.retry_unknown {
        let rows: Vec<String> = p
            .rows_with(RowStatus::Unknown)
            .take(20)
            .map(|r| r.to_string())
            .collect();
        eprintln!(
            "{} rows are `unknown` (rows {}{}): they may have reached their recipients and are not sent again. Check them in Intercom (the contact's conversations; the results file has each row's recipient), then send them on purpose with --resume --retry-unknown.",
            p.unknown,
            rows.join(", "),
            if p.unknown > 20 { ", …" } else { "" }
        );
    }
}

/// `send --sandbox`: a sandbox in this process on a free loopback port, accepting only this run's
/// token, logging every message it accepts.
async fn start_sandbox(
    args: &SendArgs,
    token: &Token,
    stem: &str,
) -> anyhow::Result<(sandbox::RunningSandbox, PathBuf)> {
    let log = args
        .sandbox_log
        .clone()
        .unwrap_or_else(|| PathBuf::from(format!("{stem}.sandbox.jsonl")));
    let config = sandbox::SandboxConfig {
        token: Some(token.expose().to_string()),
        faults: args.faults.clone(),
        contacts: args.sandbox_contacts.clone(),
        admins: args.sandbox_admins.clone(),
        log: Some(log.clone()),
    };
    let running = sandbox::start(config, "127.0.0.1:0".parse()?).await?;
    eprintln!(
        "sandbox: {} (every accepted message is logged to {})",
        running.base_url(),
        log.display()
    );
    Ok((running, log))
}
