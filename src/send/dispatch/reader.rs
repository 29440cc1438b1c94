//! The reader: the CSV read again and every row left to do rendered into a request body, handed to
//! the next stage [`BATCH`] at a time (one wake-up of the reader per batch, not per row). A row
//! that does not read as preflight read it stops the reading: the file changed since it was
//! checked, and nothing more is sent from it.
use std::cell::{Cell, RefCell};

use bytes::Bytes;
use tokio::sync::mpsc;

use super::{Item, Job, RowTest};
use crate::check::{self, Loaded, RowRenderer};
use crate::input::config::Campaign;
use crate::input::problem::Problem;
use crate::input::recipients::{Recipients, Row};
use crate::results::{self, ResultRow, RowStatus};
use crate::send::expected::{Cursor, Expected};
use crate::template::Rendered;

/// Rows handed from the reader to the next stage at once.
pub(super) const BATCH: usize = 64;

/// What the reader knows of the rows before the run starts.
pub(super) struct Reading {
    /// Whether a row is done already (an earlier run's results): it is passed over.
    pub done: RowTest,
    /// Whether an earlier run recorded a row `skipped`: still invalid, its line is left as it is
    /// (a resume with nothing to do changes nothing); valid now, it is sent.
    pub skipped_before: RowTest,
    /// The CSV columns (by index) copied into the results file after the fixed columns.
    pub copied_columns: Vec<usize>,
    /// Each row's `check::row_hash` as preflight rendered it, by record number (0: an invalid
    /// row).
    pub expected: Expected,
    /// `--limit` or `--canary`: rows handed over at most.
    pub limit: Option<u64>,
    /// `--skip-invalid`: an invalid row becomes an outcome (`skipped`) rather than an error.
    pub skip_invalid: bool,
    /// `[send] skip_replied_to`: the recipients who replied to the earlier campaign, asked just
    /// before the run: their rows are recorded `skipped` (`replied`), not sent.
    pub replied: Option<std::sync::Arc<std::collections::HashSet<String>>>,
    /// `--skip-duplicates`: each row whose recipient an earlier row has, with that row, in
    /// record order; recorded `skipped` (`duplicate`), not sent.
    pub duplicates: Vec<(u64, u64)>,
}

/// Reads the rows into items until the file ends, the limit is reached, or a row does not read
/// as it did (an error that says so, once the rows before it are handed over).
pub(super) fn read_rows(
    loaded: &Loaded,
    reading: &Reading,
    job_tx: &mpsc::Sender<Vec<Item>>,
) -> anyhow::Result<()> {
    let c = &loaded.campaign;
    let (mut recipients, _) =
        Recipients::open(&c.recipients, c.delimiter).map_err(|p| anyhow::anyhow!("{p}"))?;
    let items = Items {
        reading,
        campaign: c,
        renderer: RowRenderer::new(loaded, &recipients),
        body_size: Cell::new(256),
        expected: RefCell::new(reading.expected.cursor()?),
    };
    let mut queued = 0u64;
    let mut last = 0u64;
    let mut batch = Vec::with_capacity(BATCH);
    let result = loop {
        if reading.limit.is_some_and(|l| queued >= l) {
            break Ok(());
        }
        let Some(next) = recipients.next_row() else {
            break items.ended_at(last);
        };
        last = match &next {
            Ok(row) => row.number,
            Err(p) => p.record.unwrap_or(last),
        };
        match items.item(next) {
            Ok(Some(item)) => batch.push(item),
            Ok(None) => continue,
            Err(e) => break Err(e),
        }
        queued += 1;
        if batch.len() == BATCH {
            let full = std::mem::replace(&mut batch, Vec::with_capacity(BATCH));
            if job_tx.blocking_send(full).is_err() {
                return Ok(()); // the run stopped
            }
        }
    };
    if !batch.is_empty() {
        let _ = job_tx.blocking_send(batch);
    }
    result
}

/// Rows into items, compared with what preflight found.
struct Items<'a> {
    reading: &'a Reading,
    campaign: &'a Campaign,
    renderer: RowRenderer<'a>,
    /// The last body's size: the next is serialized into a buffer that likely holds it, instead
    /// of one grown (and copied) three or four times from serde_json's 128 bytes.
    body_size: Cell<usize>,
    /// Preflight's hashes, read in row order as the rows come.
    expected: RefCell<Cursor>,
}

impl Items<'_> {
    /// The row's hash as preflight rendered it; 0 for an invalid row.
    fn was(&self, row: u64) -> anyhow::Result<u32> {
        self.expected.borrow_mut().at(row)
    }

    fn copied(&self, fields: &[&str]) -> Vec<String> {
        self.reading
            .copied_columns
            .iter()
            .map(|&i| fields.get(i).copied().unwrap_or_default().to_string())
            .collect()
    }

    fn changed(&self, row: u64, line: u64) -> anyhow::Error {
        anyhow::anyhow!(
            "{} changed during the run: record {row} (line {line}) does not read as it did when it was checked, so nothing from it on was sent; check the file again",
            self.campaign.recipients.display()
        )
    }

    /// The end of the file after record `last`: an error if preflight saw more rows.
    fn ended_at(&self, last: u64) -> anyhow::Result<()> {
        let expected = self.reading.expected.rows();
        if last < expected {
            anyhow::bail!(
                "{} changed during the run: it ends at record {last}, and had {expected} rows when it was checked, so the rows after it were not sent; check the file again",
                self.campaign.recipients.display(),
            )
        }
        Ok(())
    }

    /// The item for a row; `None` for a row passed over.
    fn item(&self, next: Result<Row<'_>, Problem>) -> anyhow::Result<Option<Item>> {
        match next {
            Ok(row) if (self.reading.done)(row.number) => Ok(None),
            Ok(row) => {
                let was = self.was(row.number)?;
                self.row_item(&row, was)
            }
            Err(p) => self.unreadable(p),
        }
    }

    /// A row that reads (`was` its hash at preflight): its job, or for an invalid row what
    /// --skip-invalid records.
    fn row_item(&self, row: &Row<'_>, was: u32) -> anyhow::Result<Option<Item>> {
        let mut rendered = Rendered::default();
        // A row valid when checked is rendered again, not checked again: its request's hash
        // (`job`) says whether it is the request that passed the checks.
        let checked = match was {
            0 => self
                .renderer
                .check_into(row.number, row.line, &row.fields, &mut rendered)
                .map(drop),
            _ if self
                .renderer
                .render_into(row.number, &row.fields, &mut rendered) =>
            {
                Ok(())
            }
            _ => return Err(self.changed(row.number, row.line)),
        };
        match checked {
            Ok(()) => match self.first_of(row.number) {
                Some(first) => Ok(Some(Item::Skip(Box::new(ResultRow {
                    extra: self.copied(&row.fields),
                    ..duplicate(row.number, &rendered.to_id, first)
                })))),
                None => self.job(row, rendered, was).map(Some),
            },
            Err(_) if (self.reading.skipped_before)(row.number) => Ok(None),
            Err(problems) if self.reading.skip_invalid => {
                Ok(Some(Item::Skip(Box::new(ResultRow {
                    extra: self.copied(&row.fields),
                    ..skipped(row.number, &rendered.to_id, &problems)
                }))))
            }
            Err(problems) => anyhow::bail!("{}", problems[0]),
        }
    }

    /// The first row of this row's recipient, when `--skip-duplicates` skips it.
    fn first_of(&self, row: u64) -> Option<u64> {
        let d = &self.reading.duplicates;
        d.binary_search_by_key(&row, |&(r, _)| r)
            .ok()
            .map(|i| d[i].1)
    }

    /// A valid row's request, checked against preflight's hash.
    fn job(&self, row: &Row<'_>, rendered: Rendered, was: u32) -> anyhow::Result<Item> {
        let request = rendered.into_request(self.campaign);
        if check::request_hash(&request) != was {
            return Err(self.changed(row.number, row.line));
        }
        if let Some(replied) = self.reading.replied.as_deref() {
            if let Some(why) = crate::track::replied_to(replied, &request.to.id) {
                return Ok(Item::Skip(Box::new(ResultRow {
                    extra: self.copied(&row.fields),
                    ..crate::track::replied_row(row.number, &request.to.id, why)
                })));
            }
        }
        let mut body = Vec::with_capacity(self.body_size.get() + 64);
        serde_json::to_writer(&mut body, &request)?;
        self.body_size.set(body.len());
        Ok(Item::Job(Job {
            row: row.number,
            body: Bytes::from(body),
            recipient: request.to.id,
            contact_id: String::new(),
            looked_up: None,
            extra: self.copied(&row.fields),
        }))
    }

    /// A record that does not read as a row (a CSV problem).
    fn unreadable(&self, p: Problem) -> anyhow::Result<Option<Item>> {
        let r = &self.reading;
        let was = match p.record {
            Some(n) => self.was(n)?,
            None => 0,
        };
        match p.record {
            Some(n) if was != 0 => Err(self.changed(n, p.line.unwrap_or(0))),
            Some(n) if (r.done)(n) || (r.skipped_before)(n) => Ok(None),
            Some(n) if r.skip_invalid => Ok(Some(Item::Skip(Box::new(skipped(
                n,
                "",
                std::slice::from_ref(&p),
            ))))),
            _ => anyhow::bail!("{p}"),
        }
    }
}

/// The results line of a row `--skip-duplicates` passes over: its recipient has the message from
/// row `first`.
fn duplicate(row: u64, recipient: &str, first: u64) -> ResultRow {
    ResultRow {
        status: RowStatus::Skipped,
        error_code: "duplicate".into(),
        error_message: format!(
            "addresses the same recipient as record {first}, which is sent instead"
        ),
        ..skipped(row, recipient, &[])
    }
}

/// The results line of an invalid row under --skip-invalid, with its recipient when the
/// recipient template rendered (a row whose subject is empty still names whom it was for).
fn skipped(row: u64, recipient: &str, problems: &[Problem]) -> ResultRow {
    let message = problems
        .iter()
        .map(|p| {
            let mut m = p.message.clone();
            if let Some(c) = &p.column {
                m = format!("{c}: {m}");
            }
            m
        })
        .collect::<Vec<_>>()
        .join("; ");
    ResultRow {
        row,
        recipient: recipient.to_string(),
        status: RowStatus::Skipped,
        message_id: String::new(),
        http_status: None,
        error_code: format!(
            "invalid_{}",
            problems.first().map_or("row", |p| p.kind.as_str())
        ),
        error_message: message,
        request_id: String::new(),
        attempts: 0,
        finished_at: results::now_rfc3339(),
        contact_id: String::new(),
        extra: Vec::new(),
    }
}
