//! Rows that address the same recipient. The first pass keeps each valid row's recipient's
//! hash, sorted in bounded memory (`spill`): that says whether any recipient occurs twice,
//! which is normally not so. Only then is the file read a second time, for the numbers of the
//! rows behind the repeated hashes, and it must read as it did the first time.
use std::collections::hash_map::{Entry, HashMap};

use super::hash::{recipient_hash, Fingerprint};
use super::pass::each_rendered;
use super::row::RowRenderer;
use super::Loaded;
use crate::input::config::Duplicates;
use crate::input::problem::{Problem, ProblemKind};
use crate::input::recipients::Recipients;

/// What the first pass saw, for the second to compare with.
pub(super) struct Seen<'a> {
    pub(super) columns: &'a [String],
    pub(super) rows: u64,
    pub(super) duplicate_rows: u64,
    pub(super) content_hash: u64,
}

/// The second pass: reads the file again and hands `each`, in record order, each row whose
/// recipient an earlier row has (among the `repeated` hashes, sorted), with the number of the
/// first row that has it. False when the file does not read as it did in the first pass (it
/// changed, or cannot be opened again): then what `each` was given is not to be trusted.
pub(super) fn find(
    loaded: &Loaded,
    renderer: &RowRenderer<'_>,
    repeated: &[u64],
    seen: &Seen<'_>,
    each: &mut (dyn FnMut(u64, u64) + Send),
) -> bool {
    let Ok((mut recipients, _)) =
        Recipients::open(&loaded.campaign.recipients, loaded.campaign.delimiter)
    else {
        return false;
    };
    if recipients.columns() != seen.columns {
        return false;
    }
    let mut rows = 0u64;
    let mut content = Fingerprint::default();
    // The first row of each repeated recipient: as many entries as there are repeated hashes.
    let mut first: HashMap<u64, u64> = HashMap::with_capacity(repeated.len());
    let mut duplicates = 0u64;
    let campaign = &loaded.campaign;
    each_rendered(&mut recipients, Some(renderer), &mut |slot| {
        rows += 1;
        // As in the first pass, only the rows that render without errors have a recipient.
        if slot.bad.is_some() || !matches!(slot.checked, Some(Ok(_))) {
            return;
        }
        let (number, id) = (slot.number, &slot.rendered.to_id);
        content.add(number, campaign, &slot.rendered);
        let hash = key_hash(campaign, id);
        if repeated.binary_search(&hash).is_ok() {
            match first.entry(hash) {
                Entry::Occupied(e) => {
                    duplicates += 1;
                    each(number, *e.get());
                }
                Entry::Vacant(e) => {
                    e.insert(number);
                }
            }
        }
    });
    rows == seen.rows && content.digest() == seen.content_hash && duplicates == seen.duplicate_rows
}

/// The error when the second pass did not read what the first did. Not a row's own problem:
/// --skip-invalid cannot get past it, whether it is shown or not.
pub(super) fn changed(file: &str) -> Problem {
    Problem::error(
        ProblemKind::Changed,
        file,
        "the file changed during the check: it read differently the second time, when the rows that address the same recipient were looked for; check it again once nothing is writing to it",
    )
}

/// Row `number`'s problem: it addresses the recipient of row `first`. An error unless
/// duplicates are allowed or skipped.
pub(super) fn problem(file: &str, number: u64, first: u64, mode: Duplicates) -> Problem {
    let msg = format!("addresses the same recipient as record {first}");
    let p = match mode {
        Duplicates::Allow => Problem::warning(ProblemKind::Duplicate, file, msg),
        Duplicates::Skip => Problem::warning(
            ProblemKind::Duplicate,
            file,
            format!("{msg}; not sent, recorded `skipped` (duplicate)"),
        ),
        Duplicates::Refuse => Problem::error(
            ProblemKind::Duplicate,
            file,
            format!("{msg} (send refuses duplicates: --skip-duplicates sends the first row of each recipient and records the others `skipped`, --allow-duplicates sends them all)"),
        ),
    };
    Problem {
        record: Some(number),
        ..p
    }
}

/// The hash rows are compared by for duplicates: the recipient as `send`'s lookup compares it,
/// an e-mail in any case and with spaces around it the same (Intercom's e-mails are not
/// case-sensitive, and the lookup finds one contact for both), an external id trimmed. Hashed
/// as it is when it is already in that form, as nearly every key is: no copy per row.
pub(super) fn key_hash(campaign: &crate::input::config::Campaign, id: &str) -> u64 {
    use crate::input::config::Address;
    let plain = match campaign.address {
        Address::Email => {
            id.trim() == id && id.is_ascii() && !id.bytes().any(|b| b.is_ascii_uppercase())
        }
        Address::ExternalId => id.trim() == id,
        Address::Id => true,
    };
    if plain {
        recipient_hash(&campaign.to_type, id)
    } else {
        recipient_hash(
            &campaign.to_type,
            &crate::lookup::normalize(campaign.address, id),
        )
    }
}
