//! The commands, one file each: the only code besides [`crate::cli`] that sees the command
//! line's types. Each resolves its flags into the values the domain modules take (the options
//! shared by every command that talks to Intercom into a [`crate::target::Options`]), runs, and
//! returns how it ended; `main.rs` maps that to the exit code.
mod admins;
mod check;
mod completions;
mod init;
mod man;
mod mark;
mod preview;
mod report;
mod resolve;
mod sandbox;
mod send;
mod track;

use crate::cli::{Cli, Command};
use crate::exit::{Ended, Failure, Outcome};

/// Runs the command: how it ended is its [`Outcome`], or its [`Failure`]; `main.rs` maps either
/// to the exit code ([`crate::exit::code`]). A command whose only end is done or an error of its
/// input returns `anyhow::Result<()>`.
pub fn run(cli: Cli) -> Ended {
    match cli.command {
        Command::Init(args) => done(init::run(&args)),
        Command::Check(args) => check::run(&args),
        Command::Preview(args) => preview::run(&args),
        Command::Report(args) => done(report::run(&args)),
        Command::Send(args) => on_one_thread(send::run(args)),
        Command::Mark(args) => done(mark::run(&args)),
        Command::Completions(args) => done(completions::run(&args)),
        Command::Man(args) => done(man::run(&args)),
        Command::Admins(args) => on_one_thread(admins::run(&args)).map(|()| Outcome::Done),
        Command::Resolve(args) => on_one_thread(resolve::run(args)),
        Command::Track(args) => on_one_thread(track::run(args)),
        Command::Sandbox(args) => done(sandbox::run(args)),
    }
}

/// A command that did what was asked, or failed on its input.
fn done(result: anyhow::Result<()>) -> Ended {
    result.map(|()| Outcome::Done).map_err(Failure::Invalid)
}

/// Runs a command's requests on one thread: the requests, the pacing and the results file. At a
/// campaign's rates a second worker costs more in wake-ups and hand-offs than it gives (see
/// BENCHMARKS.md); reading and rendering rows have a thread of their own.
fn on_one_thread<T>(
    f: impl std::future::Future<Output = Result<T, Failure>>,
) -> Result<T, Failure> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::Invalid(e.into()))?
        .block_on(f)
}

/// `INTERCOM_TOKEN`, for the commands without a `--token` flag (clap reads it into `send`'s).
fn env_token() -> Option<String> {
    std::env::var("INTERCOM_TOKEN").ok()
}
