//! `campaign`: parse the command line, run the command, say its error, exit with the code its
//! end maps to (`campaign::exit::code`, the README's "Exit codes" table).
use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = campaign::cli::Cli::parse();
    let ended = campaign::run(cli);
    let code = campaign::exit::code(&ended);
    if let Err(failure) = ended {
        failure.say();
    }
    ExitCode::from(code)
}
