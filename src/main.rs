//! `campaign`: parse the command line, run the command, map the outcome to an exit code.
use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = campaign::cli::Cli::parse();
    match campaign::run(cli) {
        Ok(status) => ExitCode::from(status as u8),
        Err(err) => {
            campaign::say!("error: {err:#}");
            ExitCode::from(campaign::exit_code_for(&err) as u8)
        }
    }
}
