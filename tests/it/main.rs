//! The integration tests: one binary, one module per area, so that the dependency tree is linked
//! once rather than once per file. Each module drives the real binary (or the library) against a
//! scripted server, the sandbox, Prism or headless Chromium on 127.0.0.1; `common` and
//! `pages_fixtures` are what several of them share. The tests of one module run alone with
//! `cargo test --test it MODULE::` (for example `cargo test --test it model::`).
//!
//! All of them share one process: a test must not change its environment, its current directory
//! or any other process-wide state (crypto providers are installed once, by `common::crypto`).

mod common;
mod pages_fixtures;

mod addressing;
mod admins;
mod bounds;
mod browser;
mod cli;
mod dependencies;
mod first_hour;
mod fuzz;
mod hostile;
mod inert;
mod input;
mod layout;
mod ledger;
mod lists;
mod markdown;
mod model;
mod operator;
mod pace;
mod pages;
mod preflight;
mod prism;
mod readable;
mod refusals;
mod rehearsal;
mod release;
mod report_memory;
mod resilience;
mod sandbox;
mod semantics;
mod send;
mod sender;
mod settings;
mod templates;
mod track;
