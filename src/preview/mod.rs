//! `campaign preview`: rendered messages for people (`text`), with `--json` the exact request
//! bodies, or with `--html` a page of them (`html`); `variants` tells rows apart by the path they
//! take through the templates' `if`s.
mod html;
mod text;
mod variants;

use crate::check::{load, LoadError};
use crate::cli::PreviewArgs;
use crate::exit::{Ended, Failure};

/// Which rows a preview shows: `--row N` that row alone, `--limit N` the first N; with neither,
/// the first few (text) or the rows that cover every variant and problem (page).
#[derive(Debug, Clone, Copy)]
struct Selection {
    row: Option<u64>,
    limit: Option<usize>,
}

pub fn run(args: &PreviewArgs) -> Ended {
    let loaded = match load(&args.campaign) {
        Ok(l) => l,
        Err(LoadError::Invalid(report)) => {
            crate::say_part!("{}", report.render());
            return Err(Failure::Reported);
        }
        Err(LoadError::Campaign(e)) => return Err(e.into()),
    };
    let selection = Selection {
        row: args.row,
        limit: args.limit,
    };
    match &args.html {
        Some(file) => html::run(&loaded, selection, file, args.open),
        None => text::run(&loaded, selection, args.json),
    }
}
