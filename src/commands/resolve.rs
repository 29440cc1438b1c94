//! `campaign resolve`: the contacts of a campaign addressed by e-mail or external id looked up,
//! and written beside it as a CSV; nothing sent.
use std::path::PathBuf;
use std::sync::atomic::AtomicU64;

use tokio_util::sync::CancellationToken;

use crate::check;
use crate::cli::ResolveArgs;
use crate::exit::{Ended, Failure, Outcome};
use crate::input::config::Concurrency;
use crate::intercom::pace::Pace;
use crate::resolve::resolved::write_resolved;
use crate::resolve::{Pacing, Rules};
use crate::target::{Defaults, Options, SandboxOptions};

pub(super) async fn run(args: ResolveArgs) -> Ended {
    let loaded = match check::load(&args.campaign) {
        Ok(l) => l,
        Err(check::LoadError::Invalid(report)) => {
            crate::say_part!("{}", report.render());
            return Err(Failure::Reported);
        }
        Err(check::LoadError::Campaign(e)) => return Err(e.into()),
    };
    let c = &loaded.campaign;
    if !c.address.looked_up() {
        crate::say!(
            "{}: [to] id already gives each contact's Intercom id: there is nothing to look up (resolve is for [to] email or external_id)",
            c.path.display()
        );
        return Err(Failure::Reported);
    }
    let rules = Rules::of(c)?;
    let options = Options {
        token: super::env_token(),
        token_file: args.token_file,
        base_url: args.api_base,
        version: None,
        sandbox: args.sandbox.then(|| SandboxOptions {
            contacts: args.sandbox_contacts,
            missing: args.sandbox_missing,
            admins: None,
            log: None,
            faults: args.faults.settings(),
        }),
        instead: "look up in the sandbox with --sandbox",
    };
    let token = options.token()?;
    let defaults = Defaults {
        base_url: &c.base_url,
        version: &c.version,
    };
    let target = options
        .access(token, &defaults)?
        .start(SandboxOptions::config)
        .await?;
    let out = args.out.unwrap_or_else(|| {
        let name = format!("{}.resolved.csv", c.stem());
        match c.path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir.join(name),
            _ => PathBuf::from(name),
        }
    });
    let pace = Pace::new(
        target.client(c.send.request_timeout, 4)?,
        c.send.rate,
        Concurrency::Fixed(1),
        CancellationToken::new(),
    );
    let searches = AtomicU64::new(0);
    let pacing = Pacing {
        pace: &pace,
        searches: &searches,
        placed: false,
    };
    let summary = write_resolved(&loaded, &rules, &pacing, &out).await?;
    target.close().await?;
    crate::say!("{}: {summary}; nothing was sent.", out.display());
    Ok(Outcome::Done)
}
