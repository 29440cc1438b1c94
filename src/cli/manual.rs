//! `campaign completions SHELL` and `campaign man [COMMAND]`: generated from the same clap
//! definition as `--help` (clap_complete, clap_mangen), so they cannot drift from the flags.
use std::io::Write as _;

use anyhow::{bail, Context as _};
use clap::CommandFactory as _;

use crate::cli::{Cli, CompletionsArgs, ManArgs};
use crate::Status;

pub fn completions(args: &CompletionsArgs) -> anyhow::Result<Status> {
    let mut cmd = Cli::command();
    let mut out = Vec::new();
    clap_complete::generate(args.shell, &mut cmd, "campaign", &mut out);
    print(&out)
}

pub fn man(args: &ManArgs) -> anyhow::Result<Status> {
    let mut cmd = Cli::command();
    // Subcommands are built (their bin names set) before one is taken out on its own.
    cmd.build();
    let page = match &args.command {
        None => cmd,
        Some(name) => {
            let names: Vec<String> = cmd
                .get_subcommands()
                .filter(|c| !c.is_hide_set() && c.get_name() != "help")
                .map(|c| c.get_name().to_string())
                .collect();
            match cmd.find_subcommand(name) {
                // Built, it is titled `campaign-send`, as man pages of subcommands are named.
                Some(sub) if names.contains(name) => sub.clone(),
                _ => bail!(
                    "campaign has no command `{name}`: use one of {}",
                    names.join(", ")
                ),
            }
        }
    };
    let mut out = Vec::new();
    clap_mangen::Man::new(page)
        .render(&mut out)
        .context("cannot render the man page")?;
    print(&out)
}

/// Writes to stdout; a reader that stopped reading (`| head`) is not an error.
fn print(bytes: &[u8]) -> anyhow::Result<Status> {
    let mut out = std::io::stdout().lock();
    match out.write_all(bytes).and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(Status::Ok),
    }
}
