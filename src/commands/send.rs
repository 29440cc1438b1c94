//! `campaign send`: the flags and the campaign file resolved once into the run's plan (what
//! `send` does, and where), then the run.
use std::path::Path;

use anyhow::Context as _;

use crate::check::{self, Loaded};
use crate::cli::SendArgs;
use crate::exit::{Ended, Failure};
use crate::input::config::{self, Campaign, Concurrency, Duplicates};
use crate::input::rate::format_duration;
use crate::send::plan::{
    Again, ColumnsFrom, Destination, Resume, SandboxPlan, Selection, SendPlan, Settings, TestSend,
};
use crate::target::{Options, SandboxOptions};

pub(super) async fn run(args: SendArgs) -> Ended {
    let (plan, loaded) = plan(args)?;
    crate::send::run(plan, loaded).await
}

/// The plan and the loaded campaign; [`Failure::Reported`] (the problems said) when the
/// templates are invalid.
pub(super) fn plan(args: SendArgs) -> Result<(SendPlan, Loaded), Failure> {
    let options = target_options(&args);
    // The token first: a missing one is said before anything else happens.
    let token = match args.dry_run {
        true => None,
        false => Some(options.token()?),
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
    // A dry run checks the URL too: it says what a send would do.
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
        destination: destination(&args),
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

/// The options `send` shares with the other commands that talk to Intercom.
fn target_options(args: &SendArgs) -> Options {
    Options {
        token: args.token.clone().map(|t| t.into_inner()),
        token_file: args.token_file.clone(),
        base_url: args.api_base.clone(),
        version: args.intercom_version.clone(),
        sandbox: args.sandbox.then(|| sandbox_options(args)),
        instead: "rehearse with --sandbox or --dry-run",
    }
}

fn sandbox_options(args: &SendArgs) -> SandboxOptions {
    SandboxOptions {
        contacts: args.sandbox_contacts.clone(),
        missing: args.sandbox_missing.clone(),
        admins: args.sandbox_admins.clone(),
        log: args.sandbox_log.clone(),
        faults: args.faults.settings(),
    }
}

fn destination(args: &SendArgs) -> Destination {
    if !args.sandbox {
        return Destination::Intercom;
    }
    Destination::Sandbox(Box::new(SandboxPlan {
        options: sandbox_options(args),
        results: args.results.clone(),
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
