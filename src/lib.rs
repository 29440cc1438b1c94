//! `campaign`: one Intercom message per CSV row, checked first, sent at the API's rate, resumable.
//!
//! The flow, one folder a stage: [`cli`] defines the command line, and [`commands`] runs each
//! command, its flags resolved into the values the rest takes (where requests go: [`target`]);
//! [`input`] reads the campaign file and streams the recipients CSV; [`template`] turns a row
//! into a request body; [`check`] runs all of that over every row before anything is sent ([`preview`] shows it); [`send`]
//! posts through one limiter and a bounded pool, talking to Intercom through [`intercom`] (and
//! finding contacts by e-mail or external id through [`lookup`]); [`results`] records every
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

/// `1 error`, `2 errors`, `0 errors`: how every message counts things.
pub fn counted(n: u64, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
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
mod commands;
pub mod exit;
pub(crate) mod init;
pub mod input;
pub(crate) mod intercom;
pub(crate) mod lookup;
pub(crate) mod page;
pub(crate) mod preview;
pub(crate) mod report;
pub(crate) mod results;
pub mod sandbox;
pub(crate) mod send;
pub(crate) mod target;
pub(crate) mod template;
pub(crate) mod track;

pub use commands::run;
