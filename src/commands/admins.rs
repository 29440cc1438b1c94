//! `campaign admins`: the workspace's admins, as a table or JSON.
use std::time::Duration;

use comfy_table::{presets, ContentArrangement, Table};

use crate::cli::AdminsArgs;
use crate::exit::Failure;
use crate::input::config;
use crate::intercom::admins::{self, AdminInfo};
use crate::sandbox::{FaultSettings, SandboxConfig};
use crate::target::{Defaults, Options, SandboxOptions};

pub(super) async fn run(args: &AdminsArgs) -> Result<(), Failure> {
    if let Some(version) = &args.intercom_version {
        config::check_version(version).map_err(anyhow::Error::msg)?;
    }
    let options = Options {
        token: super::env_token(),
        token_file: args.token_file.clone(),
        base_url: args.api_base.clone(),
        version: args.intercom_version.clone(),
        // The same admins `send --sandbox` then sends against, from a sandbox that answers at
        // once and always: the list is not a rehearsal of faults.
        sandbox: args.sandbox.then(|| SandboxOptions {
            contacts: None,
            missing: Vec::new(),
            admins: args.sandbox_admins.clone(),
            log: None,
            faults: FaultSettings::quiet(),
        }),
        instead: "try --sandbox",
    };
    let token = options.token()?;
    let access = options.access(token, &Defaults::INTERCOM)?;
    let list = async {
        let target = access
            .start(|o| SandboxConfig {
                invent_contacts: false,
                ..o.config()
            })
            .await?;
        let list = admins::fetch(target.client(Duration::from_secs(30), 1)?).await;
        target.close().await?;
        list
    }
    .await
    .map_err(|e| Failure::api(anyhow::anyhow!("GET /admins: {e:#}")))?;
    if args.json {
        crate::out!(
            "{}",
            crate::results::cells::inert_json(
                serde_json::to_string_pretty(&list).map_err(anyhow::Error::from)?
            )
        );
    } else {
        crate::out!("{}", table(&list));
    }
    Ok(())
}

fn table(list: &[AdminInfo]) -> Table {
    let mut t = Table::new();
    t.load_preset(presets::UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Dynamic)
        .set_width(120)
        .set_header(["id", "name", "e-mail", "away"]);
    for a in list {
        let away = if a.away { "away" } else { "" };
        t.add_row([a.id.as_str(), &a.name, &a.email, away]);
    }
    t
}
