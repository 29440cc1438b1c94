//! The lines that sum a check up, for `check` and `send` alike: rows, recipients, the message's
//! kind, sender and addressees, and counts worded for people.
use super::Preflight;
use crate::counted;
use crate::input::config::{Campaign, MessageType};
use crate::input::problem::Report;

/// `, 2 warnings` after an `ok`, or nothing when there are none.
pub(super) fn warnings_suffix(report: &Report) -> String {
    match report.warnings {
        0 => String::new(),
        n => format!(", {}", counted(n, "warning")),
    }
}

/// `campaign.toml: 3 rows, 2 recipients, email from Ann to users`: what the check covered.
pub fn summary_line(c: &Campaign, pre: &Preflight) -> String {
    let kind = match c.message_type {
        MessageType::Email => "email",
        MessageType::InApp => "in-app",
    };
    let recipients = if pre.rendered {
        counted(
            pre.rows - pre.invalid_rows - pre.duplicate_rows,
            "recipient",
        )
    } else {
        "not rendered".to_string()
    };
    format!(
        "{}: {}, {recipients}, {kind} from {} to {}s",
        c.path.display(),
        counted(pre.rows, "row"),
        c.from_label(),
        c.to_type
    )
}
