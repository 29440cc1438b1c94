//! Settling rows after the fact: an operator's finding in Intercom (`campaign mark`), or, for a
//! rehearsal, the sandbox's log. The row's line is changed in place and the file replaced whole.
use std::collections::HashMap;
use std::fs::File;
use std::path::Path;

use anyhow::Context as _;

use super::row::{now_rfc3339, row_number, RowStatus, COLUMNS};
use super::{replace_file, Ledger, LineCap, MAX_LINE};

/// What a row becomes.
#[derive(Debug, Clone)]
pub(crate) struct Amendment {
    pub(crate) status: RowStatus,
    /// The message id, when one is known (a sandbox log names it; an operator may not).
    pub(crate) message_id: Option<String>,
    /// The `error_code` that says how it was settled: `marked_sent`, `settled_from_sandbox_log`, …
    pub(crate) code: String,
    /// The `error_message`: the operator's note, or what was found.
    pub(crate) note: String,
}

/// Rewrites the lines of the rows named. The file must be settled (one line per row) and locked.
pub(crate) fn amend(ledger: &Ledger, changes: &HashMap<u64, Amendment>) -> anyhow::Result<()> {
    if changes.is_empty() {
        return Ok(());
    }
    let results: &Path = &ledger.results;
    let file = File::open(results).with_context(|| format!("cannot read {}", results.display()))?;
    let mut rdr = csv::ReaderBuilder::new()
        .flexible(true)
        .from_reader(LineCap::new(file, MAX_LINE));
    let header = rdr.byte_headers()?.clone();
    let col = |name: &str| COLUMNS.iter().position(|c| *c == name).unwrap_or(0);
    replace_file(results, |out| {
        let mut w = csv::WriterBuilder::new().flexible(true).from_writer(out);
        w.write_byte_record(&header)?;
        let mut rec = csv::ByteRecord::new();
        while rdr.read_byte_record(&mut rec)? {
            let row = row_number(&rec[0]).unwrap_or(0);
            let Some(a) = changes.get(&row) else {
                w.write_byte_record(&rec)?;
                continue;
            };
            let mut fields: Vec<Vec<u8>> = rec.iter().map(<[u8]>::to_vec).collect();
            let status = serde_json::to_value(a.status)?;
            fields[col("status")] = status.as_str().unwrap_or_default().as_bytes().to_vec();
            if let Some(id) = &a.message_id {
                fields[col("message_id")] = crate::results::cells::escape(id).as_bytes().to_vec();
            }
            fields[col("error_code")] = a.code.as_bytes().to_vec();
            fields[col("error_message")] =
                crate::results::cells::escape(&a.note).as_bytes().to_vec();
            fields[col("finished_at")] = now_rfc3339().into_bytes();
            w.write_record(&fields)?;
        }
        w.flush()?;
        Ok(())
    })
}
