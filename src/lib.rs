//! `campaign`: one Intercom message per CSV row, checked first, sent at the API's rate, resumable.
//!
//! The flow, one folder a stage: [`cli`] reads the command line; [`input`] reads the campaign
//! file and streams the recipients CSV; [`template`] turns a row into a request body; [`check`]
//! runs all of that over every row before anything is sent ([`preview`] shows it); [`send`]
//! posts through one limiter and a bounded pool, talking to Intercom through [`intercom`] (and
//! finding contacts by e-mail or external id through [`resolve`]); [`results`] records every
//! outcome so that a run can be resumed, and [`report`] reads it back. [`sandbox`] is a local
//! Intercom to rehearse against. Only what the binary, the integration tests and the benchmarks
//! use is public; the rest is `pub(crate)`, so that rustc names any item nothing uses.
// The crate is the binary's library: its documentation is for the people who work on it
// (`cargo doc --document-private-items`), and its module headers link the private stages.
#![allow(rustdoc::private_intra_doc_links)]

/// A line on stderr. A stderr that is gone (a closed pipe, a full disk) must not stop a run that
/// is sending: the results file, not the terminal, is the record.
#[macro_export]
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let text = format!($($arg)*);
        let _ = writeln!(std::io::stderr(), "{}", $crate::inert(&text));
    }};
}

/// Text on stderr without a line break, as [`say!`].
#[macro_export]
macro_rules! say_part {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let text = format!($($arg)*);
        let _ = write!(std::io::stderr(), "{}", $crate::inert(&text));
    }};
}

/// A line on stdout, as [`say!`]: a reader that went away (`| head`) is not an error of ours.
#[macro_export]
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let text = format!($($arg)*);
        let _ = writeln!(std::io::stdout(), "{}", $crate::inert(&text));
    }};
}

/// Text as the terminal may show it: every control character but tab and line feed written as
/// an escape (see `results::cells::inert`). [`say!`], [`say_part!`] and [`out!`] print through
/// it, so that nothing from outside (a server's answer, an admin's name, a cell, a file name)
/// can drive the terminal.
#[doc(hidden)]
pub fn inert(text: &str) -> std::borrow::Cow<'_, str> {
    results::cells::inert(text)
}

pub mod check;
pub mod cli;
pub(crate) mod init;
pub mod input;
pub(crate) mod intercom;
pub(crate) mod page;
pub(crate) mod preview;
pub(crate) mod report;
pub(crate) mod resolve;
pub(crate) mod results;
pub mod sandbox;
pub(crate) mod send;
pub(crate) mod template;
pub(crate) mod track;

use cli::{Cli, Command};

/// Exit codes, a contract with users' scripts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Status {
    /// Every row sent (or, for check/preview, nothing wrong).
    Ok = 0,
    /// The run finished with failed (or unknown) rows.
    Failed = 1,
    /// Invalid input or usage: nothing was sent.
    Invalid = 2,
    /// The run stopped early and can be resumed.
    Stopped = 3,
    /// Interrupted by Ctrl-C.
    Interrupted = 130,
}

/// Why a command ended in an error, by whether requests may have left: that decides its exit
/// code ([`exit_code_for`]).
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    /// Requests may have left: the run stopped early and can be resumed (exit 3).
    #[error("the run stopped; {} records what was sent, and --resume continues it", results.display())]
    Stopped {
        /// The results file that records what was sent.
        results: std::path::PathBuf,
        #[source]
        cause: Box<dyn std::error::Error + Send + Sync + 'static>,
    },
    /// Nothing left: invalid input or usage, or a problem found before the first request
    /// (exit 2).
    #[error(transparent)]
    Invalid(#[from] anyhow::Error),
}

/// The exit code of a command that ended in an error: the one place it is decided.
pub fn exit_code_for(err: &anyhow::Error) -> Status {
    match err.downcast_ref::<Failure>() {
        Some(Failure::Stopped { .. }) => Status::Stopped,
        Some(Failure::Invalid(_)) | None => Status::Invalid,
    }
}

pub fn run(cli: Cli) -> anyhow::Result<Status> {
    match cli.command {
        Command::Init(args) => init::run(&args),
        Command::Check(args) => check::run(&args),
        Command::Preview(args) => preview::run(&args),
        Command::Report(args) => report::run(&args),
        Command::Send(args) => {
            on_one_thread(async { send::run(args).await.map_err(Failure::into_anyhow) })
        }
        Command::Mark(args) => results::mark::run(&args),
        Command::Completions(args) => cli::manual::completions(&args),
        Command::Man(args) => cli::manual::man(&args),
        Command::Admins(args) => on_one_thread(intercom::admins::run(&args)),
        Command::Resolve(args) => on_one_thread(resolve::command::run(args)),
        Command::Track(args) => on_one_thread(track::run(args)),
        Command::Sandbox(args) => {
            let (config, listen) = args.settings();
            tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?
                .block_on(sandbox::serve_forever(config, listen))
                .map(|()| Status::Ok)
        }
    }
}

impl Failure {
    /// As an `anyhow::Error` that [`exit_code_for`] reads: an invalid input's own error as it
    /// is, so that its message and causes read the same as any other command's.
    fn into_anyhow(self) -> anyhow::Error {
        match self {
            Failure::Invalid(e) => e,
            stopped => anyhow::Error::new(stopped),
        }
    }
}

/// Runs a command's requests on one thread: the requests, the pacing and the results file. At a
/// campaign's rates a second worker costs more in wake-ups and hand-offs than it gives (see
/// BENCHMARKS.md); reading and rendering rows have a thread of their own.
fn on_one_thread<F: std::future::Future<Output = anyhow::Result<Status>>>(
    f: F,
) -> anyhow::Result<Status> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(f)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_says_its_causes_and_decides_the_exit_code() {
        let cause = anyhow::anyhow!("disk full").context("cannot write the journal");
        let stopped = Failure::Stopped {
            results: "c.results.csv".into(),
            cause: cause.into(),
        }
        .into_anyhow();
        assert_eq!(
            format!("{stopped:#}"),
            "the run stopped; c.results.csv records what was sent, and --resume continues it: cannot write the journal: disk full"
        );
        assert_eq!(exit_code_for(&stopped), Status::Stopped);
        let invalid =
            Failure::from(anyhow::anyhow!("no such file").context("c.toml")).into_anyhow();
        assert_eq!(format!("{invalid:#}"), "c.toml: no such file");
        assert_eq!(exit_code_for(&invalid), Status::Invalid);
    }
}
