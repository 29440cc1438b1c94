//! `campaign completions SHELL` and `campaign man [COMMAND]`: generated from the same clap
//! definition as `--help` (clap_complete, clap_mangen), so they cannot drift from the flags.
use std::io::Write as _;

use anyhow::{bail, Context as _};
use clap::{Args, CommandFactory as _};

use crate::cli::Cli;

/// What `completions --help` ends with: examples, exit codes. The snapshots
/// in tests/snapshots/ hold it, so that a change here is a change someone saw.
pub(super) const COMPLETIONS_HELP: &str = "\
Examples:
  campaign completions bash > ~/.local/share/bash-completion/completions/campaign
  campaign completions zsh > \"${fpath[1]}/_campaign\"
  campaign completions fish > ~/.config/fish/completions/campaign.fish

Exit codes:
  0  the script was printed
  2  an unknown shell";

/// What `man --help` ends with: examples, exit codes. The snapshots
/// in tests/snapshots/ hold it, so that a change here is a change someone saw.
pub(super) const MAN_HELP: &str = "\
Examples:
  campaign man | man -l -
  campaign man send > campaign-send.1

Exit codes:
  0  the page was printed
  2  no such command";

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to complete for.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

#[derive(Debug, Args)]
pub struct ManArgs {
    /// The command whose page to print (`send`, `check`, ...); without it, campaign's own page.
    pub command: Option<String>,
}

pub fn completions(args: &CompletionsArgs) -> anyhow::Result<()> {
    let mut cmd = Cli::command();
    let mut out = Vec::new();
    clap_complete::generate(args.shell, &mut cmd, "campaign", &mut out);
    print(&out)
}

pub fn man(args: &ManArgs) -> anyhow::Result<()> {
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
    if args.command.is_none() {
        out.extend_from_slice(campaign_file_section().as_bytes());
    }
    print(&out)
}

/// The campaign file reference, as a section of campaign's own page: the file `campaign init`
/// writes, every key commented, as preformatted text.
fn campaign_file_section() -> String {
    let mut roff = String::from(
        ".SH \"CAMPAIGN FILE\"\nA campaign file is TOML. \\fBcampaign init\\fR writes this one (with the columns of \\fB--from-csv\\fR\'s export); every key is explained beside it.\n.PP\n.nf\n",
    );
    for line in crate::init::reference().lines() {
        let line = line.replace('\\', "\\e");
        if line.starts_with(['.', '\'']) {
            roff.push_str("\\&");
        }
        roff.push_str(&line);
        roff.push('\n');
    }
    roff.push_str(".fi\n");
    roff
}

/// Writes to stdout; a reader that stopped reading (`| head`) is not an error.
fn print(bytes: &[u8]) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    match out.write_all(bytes).and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(()),
    }
}
