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
pub mod exit;
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
use exit::{Ended, Failure, Outcome};

/// Runs the command: how it ended is its [`Outcome`], or its [`Failure`]; `main.rs` maps either
/// to the exit code ([`exit::code`]). A command whose only end is done or an error of its input
/// returns `anyhow::Result<()>`.
pub fn run(cli: Cli) -> Ended {
    match cli.command {
        Command::Init(args) => done(init::run(&args)),
        Command::Check(args) => check::run(&args),
        Command::Preview(args) => preview::run(&args),
        Command::Report(args) => done(report::run(&args)),
        Command::Send(args) => on_one_thread(send::run(args)),
        Command::Mark(args) => done(results::mark::run(&args)),
        Command::Completions(args) => done(cli::manual::completions(&args)),
        Command::Man(args) => done(cli::manual::man(&args)),
        Command::Admins(args) => {
            on_one_thread(intercom::admins::run(&args)).map(|()| Outcome::Done)
        }
        Command::Resolve(args) => on_one_thread(resolve::command::run(args)),
        Command::Track(args) => on_one_thread(track::run(args)),
        Command::Sandbox(args) => {
            let (config, listen) = args.settings();
            done(
                tokio::runtime::Builder::new_multi_thread()
                    .enable_all()
                    .build()
                    .map_err(anyhow::Error::from)
                    .and_then(|rt| rt.block_on(sandbox::serve_forever(config, listen))),
            )
        }
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
