//! `campaign`: one Intercom message per CSV row, checked first, sent at the API's rate, resumable.
//!
//! The pipeline: [`config`] reads the campaign file, [`recipients`] streams the CSV, [`render`]
//! turns a row into a request body, [`check`] runs all of that over every row before anything is
//! sent, [`send`] posts through one limiter and a bounded pool, and [`results`] records every
//! outcome so that a run can be resumed. [`sandbox`] is a local Intercom to rehearse against.
/// A line on stderr. A stderr that is gone (a closed pipe, a full disk) must not stop a run that
/// is sending: the results file, not the terminal, is the record.
#[macro_export]
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}

/// Text on stderr without a line break, as [`say!`].
#[macro_export]
macro_rules! say_part {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = write!(std::io::stderr(), $($arg)*);
    }};
}

/// A line on stdout, as [`say!`]: a reader that went away (`| head`) is not an error of ours.
#[macro_export]
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

pub mod check;
pub mod cli;
pub mod input;
pub mod intercom;
pub mod page;
pub mod preview;
pub mod report;
pub mod resolve;
pub mod results;
pub mod sandbox;
pub mod send;
pub mod template;

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

/// An error after which the run stopped early but can be resumed (exit 3). Every other error is
/// invalid input or usage (exit 2): those are all raised before the first request.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Stopped(pub String);

pub fn exit_code_for(err: &anyhow::Error) -> Status {
    // A `Stopped` given as context is found by downcasting, one raised as the error by the chain.
    if err.downcast_ref::<Stopped>().is_some() || err.chain().any(|e| e.is::<Stopped>()) {
        Status::Stopped
    } else {
        Status::Invalid
    }
}

pub fn run(cli: Cli) -> anyhow::Result<Status> {
    match cli.command {
        Command::Check(args) => check::run(&args),
        Command::Preview(args) => preview::run(&args),
        Command::Report(args) => report::run(&args),
        Command::Send(args) => on_one_thread(send::run(args)),
        Command::Mark(args) => results::mark::run(&args),
        Command::Completions(args) => cli::manual::completions(&args),
        Command::Man(args) => cli::manual::man(&args),
        Command::Admins(args) => on_one_thread(intercom::admins::run(&args)),
        Command::Resolve(args) => on_one_thread(resolve::command::run(args)),
        Command::Sandbox(args) => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?
            .block_on(sandbox::serve_forever(args))
            .map(|()| Status::Ok),
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
