//! `campaign preview`: rendered messages, as text, request bodies or a page.
use crate::cli::PreviewArgs;
use crate::exit::Ended;
use crate::preview::{Form, Selection};

pub(super) fn run(args: &PreviewArgs) -> Ended {
    let selection = Selection {
        row: args.row,
        limit: args.limit,
    };
    let form = match &args.html {
        Some(file) => Form::Page {
            file: file.clone(),
            open: args.open,
        },
        None => Form::Text { json: args.json },
    };
    crate::preview::run(&args.campaign, selection, form)
}
