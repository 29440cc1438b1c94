//! Settling rows after the fact: an operator's finding in Intercom (`campaign mark`), or, for a
//! rehearsal, the sandbox's log. The row's line is changed in place and the file replaced whole.
use std::collections::HashMap;
use std::path::Path;

use super::read::Reader;
use super::row::{now_rfc3339, RowStatus, COLUMNS};
use super::{replace_file, Ledger};

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

/// Rewrites the lines of the rows named. The file must be settled (one line per row) and locked
/// (through [`Ledger::amend`]).
pub(super) fn amend(ledger: &Ledger, changes: &HashMap<u64, Amendment>) -> anyhow::Result<()> {
    if changes.is_empty() {
        return Ok(());
    }
    let results: &Path = &ledger.results;
    let Some(mut rdr) = Reader::open(results)? else {
        anyhow::bail!("{}: no such results file", results.display());
    };
    let header = rdr.header().clone();
    let col = |name: &str| COLUMNS.iter().position(|c| *c == name).unwrap_or(0);
    replace_file(results, |out| {
        let mut w = csv::WriterBuilder::new()
            .flexible(true)
            .from_writer(std::io::BufWriter::new(out));
        w.write_byte_record(&header)?;
        while let Some(line) = rdr.next()? {
            let row = line.row;
            let rec = rdr.record();
            let Some(a) = changes.get(&row) else {
                w.write_byte_record(rec)?;
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
