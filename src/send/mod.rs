//! `campaign send`, as stages with typed hand-offs. Nothing is sent unless every stage before the
//! dispatch passed:
//! 1. [`plan`]: the command line and the campaign file resolved once (token, destination,
//!    effective settings, resume options, selection); the sending admin looked up ([`sender`]);
//! 2. [`manifest::open`]: the ledger opened (lock, journal fingerprint, earlier runs settled,
//!    a rehearsal's from its sandbox's log: [`rehearsal`]);
//! 3. [`preflight`]: every row rendered, recipients compared with the earlier runs';
//! 4. [`manifest::Manifest`]: the same content, what is left to send, the `--retry-unknown`
//!    rows that are not `unknown` named ([`retry_unknown`]); then a dry run ends, a terminal
//!    confirms ([`confirm`]), and a rehearsal's sandbox starts;
//! 5. [`dispatch`]: reader, lookup, dispatcher and writer joined by channels, one row's
//!    attempts (paced by [`crate::intercom::pace`], judged by [`policy`] and
//!    [`health`], shown by [`progress`]); the first request may leave here;
//! 6. [`outcome`]: the summary, the resume command, the run's [`Outcome`].
//!
//! [`test_send`] (`--test-to`) branches off after the plan.
mod confirm;
mod dispatch;
mod expected;
mod health;
mod manifest;
mod outcome;
pub(crate) mod plan;
mod policy;
mod preflight;
mod progress;
mod rehearsal;
mod retry_unknown;
mod sender;
mod test_send;

use crate::check::Loaded;
use crate::exit::{Ended, Failure, Outcome};
use manifest::{Facts, Manifest};
use plan::SendPlan;

/// Runs `campaign send`. An error before the dispatch means nothing was sent (the input's:
/// [`Failure::Invalid`], [`Failure::Reported`]; Intercom's: [`Failure::Api`]); one from
/// the dispatch on may follow requests that left ([`Failure::Stopped`]).
pub(crate) async fn run(plan: SendPlan, mut loaded: Loaded) -> Ended {
    let timeout = plan.settings.send.request_timeout;
    sender::look_up(&mut loaded.campaign, plan.access().as_ref(), timeout).await?;
    if let Some(test) = &plan.test {
        return test_send::run(&plan, test, loaded).await;
    }
    // A dry run that finds no lock file (or no hidden folder) leaves none: it writes nothing of
    // the ledger.
    let fresh_lock = match plan.dry_run() {
        true => {
            let results = plan.results_path(&loaded.campaign)?;
            let folder = crate::results::side::folder(&results);
            Some(crate::results::Ledger::new(results).lock)
                .filter(|lock| std::fs::symlink_metadata(lock).is_err())
                .map(|lock| (lock, (!folder.exists()).then_some(folder)))
        }
        false => None,
    };
    let opened = manifest::open(&plan, &loaded.campaign)?;
    let _fresh_lock = fresh_lock.map(|(path, folder)| DryRunLock {
        path,
        folder,
        _held: std::sync::Arc::clone(&opened.lock),
    });
    let checked = preflight::run(
        &plan,
        &loaded,
        &opened.results,
        opened.prior.as_ref(),
        opened.rules.as_deref(),
    )?;
    let manifest = Manifest::new(&plan, &loaded.campaign, opened, checked)?;
    if plan.dry_run() {
        outcome::say_dry_run(&plan, &loaded.campaign, &manifest);
        return Ok(Outcome::Done);
    }
    if !confirmed(&plan, &loaded, &manifest)? {
        crate::say!("not confirmed: nothing was sent.");
        return Ok(Outcome::Declined);
    }
    send(plan, loaded, manifest).await
}

/// The lock file a dry run created, removed while the lock is still held (this holds it too), so
/// that no other run can have taken it meanwhile; and the hidden folder it made for it, if that
/// holds nothing else.
struct DryRunLock {
    path: std::path::PathBuf,
    folder: Option<std::path::PathBuf>,
    _held: std::sync::Arc<crate::results::RunLock>,
}

impl Drop for DryRunLock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
        if let Some(folder) = &self.folder {
            // Fails, as it should, when the folder holds anything.
            let _ = std::fs::remove_dir(folder);
        }
    }
}

/// Whether the send goes on: always with --yes, a rehearsal or nothing to send; otherwise a
/// terminal asks.
fn confirmed(plan: &SendPlan, loaded: &Loaded, m: &Manifest) -> anyhow::Result<bool> {
    if plan.sandbox().is_some() || plan.yes || m.to_send == 0 {
        return Ok(true);
    }
    confirm::confirmed(&plan.settings, loaded, m.going, &m.results)
}

/// The sandbox of a rehearsal started, the dispatch, and the outcome.
async fn send(plan: SendPlan, loaded: Loaded, manifest: Manifest) -> Ended {
    let access = plan.access().expect("a token unless --dry-run");
    let started_at = crate::results::now_rfc3339();
    // A rehearsal's sandbox starts here, so that a bad contacts or admins file is an input error.
    let (target, log) = match plan.sandbox() {
        Some(s) => {
            let (target, log) =
                rehearsal::start(&access, s, &loaded.campaign, &manifest.results).await?;
            (target, Some(log))
        }
        None => (access.start(|o| o.config()).await?, None),
    };
    // Held until the run log has this run's line: the ledger is settled after the dispatch, and
    // no other run may start meanwhile.
    let _lock = std::sync::Arc::clone(&manifest.lock);
    // From here on requests may leave: an error is a stop that can be resumed, never "nothing
    // was sent". The outcome needs the manifest's facts the dispatch consumes.
    let facts = Facts {
        settle: outcome::settle_command(&plan, &loaded.campaign, &manifest.results),
        ..manifest.facts()
    };
    let ran = dispatch::run(&plan, manifest, loaded, target, log)
        .await
        .map_err(|e| Failure::Stopped {
            results: facts.results.clone(),
            cause: e.into(),
        })?;
    Ok(outcome::finish(&plan, &facts, started_at, ran))
}
