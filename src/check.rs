//! Preflight: every row read and rendered, every problem located, before anything is sent. Also
//! the `check` command, which is that and nothing else.
use std::collections::hash_map::{Entry, HashMap};
use std::path::Path;

use rayon::prelude::*;
use xxhash_rust::xxh3::{xxh3_64, Xxh3};

use crate::cli::CheckArgs;
use crate::input::config::{Campaign, MessageType};
use crate::input::problem::{Problem, Report};
use crate::input::recipients::{Recipients, Row};
use crate::template::{MessageRequest, Plan, Rendered, Templates};
use crate::Status;

/// Intercom documents no bound on the subject; this is the tool's own, a safe one for email.
pub const MAX_SUBJECT_CHARS: usize = 255;

/// Nor on the body. This bound keeps a request well under a megabyte (JSON escaping included)
/// and a message within what mail clients show: Gmail clips an email past about 100 KB.
pub const MAX_BODY_BYTES: usize = 256 * 1024;

/// A campaign whose file and templates are valid: what every command starts from.
pub struct Loaded {
    pub campaign: Campaign,
    pub templates: Templates,
}

/// Reads the campaign file and compiles the templates. Template errors come back as a report.
pub fn load(path: &Path) -> anyhow::Result<Result<Loaded, Report>> {
    let campaign = Campaign::load(path)?;
    match Templates::compile(&campaign) {
        Ok(templates) => Ok(Ok(Loaded {
            campaign,
            templates,
        })),
        Err(errors) => {
            let mut report = Report::default();
            for e in errors {
                let mut p = Problem::error("template", &e.origin, e.message);
                if let Some((line, col)) = e.position {
                    p = p.line(line as u64).column(format!("column {col}"));
                }
                report.push(p);
            }
            Ok(Err(report))
        }
    }
}

/// A row's request with its warnings, or its errors.
pub type RowResult = Result<(MessageRequest, Vec<Problem>), Vec<Problem>>;

/// Turns rows into request bodies and says what is wrong with a row.
pub struct RowRenderer<'a> {
    pub campaign: &'a Campaign,
    pub templates: &'a Templates,
    file: String,
    plan: Plan<'a>,
}

impl<'a> RowRenderer<'a> {
    pub fn new(loaded: &'a Loaded, recipients: &Recipients) -> Self {
        RowRenderer {
            campaign: &loaded.campaign,
            templates: &loaded.templates,
            file: recipients.file_name().to_string(),
            plan: loaded.templates.plan(recipients.columns()),
        }
    }

    /// The row's request, with its warnings; or its errors.
    pub fn render(&self, row: &Row<'_>) -> RowResult {
        let mut rendered = Rendered::default();
        let warnings = self.check_into(row.number, row.line, &row.fields, &mut rendered)?;
        Ok((rendered.into_request(self.campaign), warnings))
    }

    /// Renders a row into `out`, reusing its buffers, and checks what it rendered: the row's
    /// warnings, or its errors. `fields` are the row's cells in header order.
    pub fn check_into(
        &self,
        number: u64,
        line: u64,
        fields: &[&str],
        out: &mut Rendered,
    ) -> Checked {
        let at = |p: Problem| p.at(number, line);
        self.plan
            .render_into(fields, number, out)
            .map_err(|(origin, msg)| {
                vec![at(Problem::error("template", &self.file, msg)
                    .column(format!("template {origin}")))]
            })?;
        let mut errors = Vec::new();
        let mut warnings = Vec::new();
        let value_error = |what: &str, msg: String| {
            at(Problem::error("value", &self.file, msg).column(what.to_string()))
        };
        let to_key = format!("[to] {}", self.campaign.address.key());
        let finding = match self.campaign.address {
            crate::input::config::Address::Id => id_finding(&out.to_id),
            looked_up => key_finding(looked_up, &out.to_id),
        };
        match finding {
            Some(Finding::Error(msg)) => errors.push(value_error(&to_key, msg)),
            Some(Finding::Warning(msg)) => {
                warnings.push(at(Problem::warning("value", &self.file, msg).column(to_key)))
            }
            None => {}
        }
        if self.campaign.message_type == MessageType::Email {
            if let Some(msg) = subject_error(out.subject.as_deref().unwrap_or("")) {
                errors.push(value_error("subject", msg));
            }
        }
        if out.body.trim().is_empty() {
            errors.push(value_error("body", "the body renders empty".into()));
        } else if out.body.len() > MAX_BODY_BYTES {
            errors.push(value_error(
                "body",
                format!(
                    "the body renders to {} bytes, more than the {MAX_BODY_BYTES} (256 KiB) a message may have",
                    out.body.len()
                ),
            ));
        } else if self.campaign.body_format.is_html() {
            if let Some(why) = crate::template::html::unbalanced(&out.body) {
                warnings.push(at(Problem::warning(
                    "html",
                    &self.file,
                    format!("the body's HTML does not balance: {why}"),
                )
                .column("body")));
            }
        }
        if errors.is_empty() {
            Ok(warnings)
        } else {
            Err(errors)
        }
    }
}

/// What is wrong with a rendered value.
enum Finding {
    /// The row cannot be sent.
    Error(String),
    /// Worth a look; the row is sent.
    Warning(String),
}

/// A looked-up key's problem, if any: an empty one finds nobody; an e-mail without `@` is
/// surely another column.
fn key_finding(address: crate::input::config::Address, key: &str) -> Option<Finding> {
    let what = address.key();
    if key.is_empty() {
        return Some(Finding::Error(format!(
            "the recipient's {what} renders empty"
        )));
    }
    if key.chars().any(char::is_control) {
        return Some(Finding::Error(format!(
            "the recipient's {what} `{}` contains control characters",
            key.escape_debug()
        )));
    }
    if address == crate::input::config::Address::Email && !key.contains('@') {
        return Some(Finding::Error(format!(
            "`{key}` is not an e-mail address: [to] email must render the contact's e-mail (or use [to] id / external_id)"
        )));
    }
    None
}

/// The recipient id's problem, if any.
fn id_finding(id: &str) -> Option<Finding> {
    if id.is_empty() {
        return Some(Finding::Error("the recipient id renders empty".into()));
    }
    let mistaken = mistaken_id(id)
        .map(|what| format!("looks like {what}, not an Intercom contact id (such as 536e564f316c83104c000020), and Intercom answers 404 for it; [to] id must render the contact's id (POST /contacts/search finds it from an e-mail address)"));
    if !id.bytes().all(|b| b.is_ascii_graphic())
        && id.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        let also = mistaken.map(|m| format!("; it {m}")).unwrap_or_default();
        return Some(Finding::Error(format!(
            "the recipient id `{}` contains spaces or control characters{also}",
            id.escape_debug()
        )));
    }
    Some(Finding::Warning(format!(
        "the recipient id `{id}` {}",
        mistaken?
    )))
}

/// Why an email's rendered subject cannot be sent, if it cannot.
fn subject_error(subject: &str) -> Option<String> {
    // Printable ASCII (the usual subject) has no line breaks or control characters, and as many
    // characters as bytes.
    let ascii = printable_ascii(subject);
    if subject.trim().is_empty() {
        Some("the subject renders empty".into())
    } else if !ascii && subject.contains(['\n', '\r']) {
        Some("the subject must be one line".into())
    } else if !ascii && subject.chars().any(|c| c.is_control()) {
        Some("the subject contains control characters".into())
    } else if subject.len() > MAX_SUBJECT_CHARS && subject.chars().count() > MAX_SUBJECT_CHARS {
        Some(format!(
            "the subject has {} characters, more than {MAX_SUBJECT_CHARS}",
            subject.chars().count()
        ))
    } else {
        None
    }
}

/// What a recipient id looks like when it is something people put in `[to] id` by mistake: an
/// e-mail address, or a phone number (7 to 15 digits, written with `+` or separators; bare digits
/// may be an id of some system, and are left alone).
fn mistaken_id(id: &str) -> Option<&'static str> {
    if let Some((local, domain)) = id.split_once('@') {
        let dot = domain
            .find('.')
            .is_some_and(|i| i > 0 && i + 1 < domain.len());
        if !local.is_empty() && dot {
            return Some("an e-mail address");
        }
    }
    let digits = id.bytes().filter(u8::is_ascii_digit).count();
    let written = id.starts_with('+') || digits < id.len();
    let phone_bytes = id
        .bytes()
        .all(|b| b.is_ascii_digit() || b" +-().".contains(&b));
    (phone_bytes && written && (7..=15).contains(&digits)).then_some("a phone number")
}

/// Whether `text` is all printable ASCII (space to `~`).
fn printable_ascii(text: &str) -> bool {
    text.bytes().all(|b| (b' '..=b'~').contains(&b))
}

/// What a row's check found: its warnings, or its errors.
pub type Checked = Result<Vec<Problem>, Vec<Problem>>;

/// A recipient's 8-byte hash: what duplicate detection keeps of each valid row, and all it keeps.
pub fn recipient_hash(kind: &str, id: &str) -> u64 {
    // The key is `kind NUL id`, hashed in one call; on the stack when it fits, as ids do.
    let len = kind.len() + id.len() + 1;
    let mut stack = [0u8; 128];
    let mut heap = Vec::new();
    let key = if len <= stack.len() {
        &mut stack[..len]
    } else {
        heap.resize(len, 0);
        &mut heap[..]
    };
    key[..kind.len()].copy_from_slice(kind.as_bytes());
    key[kind.len()] = 0;
    key[kind.len() + 1..].copy_from_slice(id.as_bytes());
    xxh3_64(key)
}

/// Rows per chunk: read, rendered and passed on at once. Each chunk boundary makes the threads
/// wait for each other, and rayon's waiting threads spin, so small chunks cost CPU; large ones
/// cost memory (three chunks are held). BENCHMARKS.md has the sizes tried.
const CHUNK: usize = 1024;

/// A row's place in a chunk. The reader fills it, a worker renders into it, the pass reads it;
/// then it takes a later row, keeping its buffers, so that a pass allocates (and frees on
/// another thread, which glibc makes costly) next to nothing per row.
#[derive(Default)]
struct Slot {
    number: u64,
    line: u64,
    /// `None` only before the slot first holds a row, or after a row that could not be read.
    record: Option<csv::StringRecord>,
    /// The reader's warning about the row.
    warning: Option<Problem>,
    /// Why the row could not be read; then nothing else in the slot is the row's.
    bad: Option<Problem>,
    rendered: Rendered,
    /// `None` when templates cannot render.
    checked: Option<Checked>,
}

/// Slots and how many of them hold rows of this chunk.
#[derive(Default)]
struct Chunk {
    slots: Vec<Slot>,
    filled: usize,
}

impl Chunk {
    fn rows(&mut self) -> &mut [Slot] {
        &mut self.slots[..self.filled]
    }
}

/// Reads up to a chunk of rows; says whether more may follow.
fn read_chunk(recipients: &mut Recipients, chunk: &mut Chunk) -> bool {
    chunk.filled = 0;
    if chunk.slots.len() < CHUNK {
        chunk.slots.resize_with(CHUNK, Slot::default);
    }
    while chunk.filled < CHUNK {
        let slot = &mut chunk.slots[chunk.filled];
        slot.bad = None;
        slot.warning = None;
        slot.checked = None;
        match recipients.next_record(&mut slot.record) {
            None => return false,
            Some(Ok(at)) => {
                slot.number = at.number;
                slot.line = at.line;
                slot.warning = at.warning;
            }
            Some(Err(p)) => {
                // A problem with no record number means reading cannot go on.
                let more = p.record.is_some();
                slot.bad = Some(p);
                chunk.filled += 1;
                if !more {
                    return false;
                }
                continue;
            }
        }
        chunk.filled += 1;
    }
    true
}

/// Renders and checks each row of the chunk, on every core.
fn render_chunk(renderer: &RowRenderer<'_>, chunk: &mut Chunk) {
    chunk.rows().par_iter_mut().for_each(|slot| {
        let (Some(record), None) = (&slot.record, &slot.bad) else {
            return;
        };
        // The fields as `&str`s, on the stack for any usual number of columns.
        let mut stack = [""; 32];
        let heap: Vec<&str>;
        let fields: &[&str] = if record.len() <= stack.len() {
            for (to, from) in stack.iter_mut().zip(record.iter()) {
                *to = from;
            }
            &stack[..record.len()]
        } else {
            heap = record.iter().collect();
            &heap
        };
        slot.checked =
            Some(renderer.check_into(slot.number, slot.line, fields, &mut slot.rendered));
    });
}

/// What a full pass over the rows found.
#[derive(Debug, Default)]
pub struct Preflight {
    pub report: Report,
    pub rows: u64,
    pub invalid_rows: u64,
    pub duplicate_rows: u64,
    /// A hash of every row's rendered request, in order: the campaign's content fingerprint.
    pub content_hash: u64,
    /// Whether rows were rendered (not when a template cannot be).
    pub rendered: bool,
}

/// What `preflight` calls with each valid row's number and rendering (send keeps each row's
/// `row_hash`; resume compares recipients with an earlier run); a problem it returns goes into
/// the report.
pub type OnRow<'a> = dyn FnMut(u64, &Rendered) -> Option<Problem> + Send + 'a;

/// An imbalance in the HTML body template's own text: every row that renders it has the same
/// warning, which belongs to the template, so it is said once, at the template's line, with the
/// number of rows, instead of once per row.
struct TemplateHtml {
    origin: String,
    line: u64,
    message: String,
}

impl TemplateHtml {
    fn of(c: &Campaign) -> Option<TemplateHtml> {
        if c.body_format != crate::input::config::BodyFormat::Html {
            return None;
        }
        let (at, why) = crate::template::html::unbalanced_at(&c.body.source)?;
        Some(TemplateHtml {
            origin: c.body.origin.clone(),
            line: line_of(&c.body.source, at),
            message: format!("the body's HTML does not balance: {why}"),
        })
    }

    /// Whether a row's warning is this one.
    fn is(&self, w: &Problem) -> bool {
        w.kind == "html" && w.message == self.message
    }

    fn once(self, rows: u64) -> Problem {
        Problem::warning(
            "html",
            self.origin,
            format!("{} (in {})", self.message, counted(rows, "row")),
        )
        .line(self.line)
    }
}

/// The 1-based line of byte `at`, as an editor counts lines (LF, CR LF or CR alone).
fn line_of(text: &str, at: usize) -> u64 {
    let before = &text.as_bytes()[..at.min(text.len())];
    let breaks = before
        .iter()
        .enumerate()
        .filter(|&(i, &b)| b == b'\n' || (b == b'\r' && before.get(i + 1) != Some(&b'\n')))
        .count();
    breaks as u64 + 1
}

/// Reads and renders every row.
pub fn preflight(loaded: &Loaded, allow_duplicates: bool, on_row: &mut OnRow<'_>) -> Preflight {
    let mut out = Preflight::default();
    for w in &loaded.campaign.warnings {
        out.report.push(Problem::warning(
            "campaign",
            loaded.campaign.path.display().to_string(),
            w.clone(),
        ));
    }
    let (mut recipients, header_problems) =
        match Recipients::open(&loaded.campaign.recipients, loaded.campaign.delimiter) {
            Ok(r) => r,
            Err(p) => {
                out.report.push(p);
                return out;
            }
        };
    for p in header_problems {
        out.report.push(p);
    }
    if out.report.has_errors() {
        return out;
    }
    let file = recipients.file_name().to_string();
    let columns = recipients.columns().to_vec();
    for (origin, var, suggestion) in loaded.templates.unknown_variables(&columns) {
        let hint = match suggestion {
            Some(s) => format!("; did you mean `{s}`?"),
            None => format!(
                "; the columns are: {}",
                crate::template::vars::names_of(&columns)
                    .into_iter()
                    .map(|(name, _)| name)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        };
        out.report.push(
            Problem::error(
                "template",
                &origin,
                format!("`{var}` is not a column of {file}{hint}"),
            )
            .column(format!("variable `{var}`")),
        );
    }
    // With a template that cannot render, rows are still read: their CSV problems are reported
    // in the same pass, so the file can be fixed at once.
    let render = !out.report.has_errors();
    out.rendered = render;
    let renderer = RowRenderer::new(loaded, &recipients);
    let campaign = &loaded.campaign;
    // 8 bytes per valid row: the recipient hashes, and nothing else that grows with the rows.
    let mut hashes: Vec<u64> = Vec::new();
    let mut content = Fingerprint::default();
    let template_html = TemplateHtml::of(campaign);
    let mut template_html_rows = 0u64;
    each_rendered(&mut recipients, render.then_some(&renderer), &mut |slot| {
        out.rows += 1;
        if let Some(p) = slot.bad.take() {
            out.invalid_rows += 1;
            out.report.push(p);
            return;
        }
        if let Some(w) = slot.warning.take() {
            out.report.push(w);
        }
        match slot.checked.take() {
            None => {}
            Some(Ok(warnings)) => {
                for w in warnings {
                    if template_html.as_ref().is_some_and(|t| t.is(&w)) {
                        template_html_rows += 1;
                    } else {
                        out.report.push(w);
                    }
                }
                let id = &slot.rendered.to_id;
                hashes.push(recipient_hash(&campaign.to_type, id));
                content.add(slot.number, campaign, &slot.rendered);
                if let Some(p) = on_row(slot.number, &slot.rendered) {
                    out.report.push(p);
                }
            }
            Some(Err(problems)) => {
                out.invalid_rows += 1;
                for p in problems {
                    out.report.push(p);
                }
            }
        }
    });
    drop(recipients);
    if let (Some(t), 1..) = (template_html, template_html_rows) {
        out.report.push(t.once(template_html_rows));
    }
    if out.rows == 0 {
        // A header and nothing else is a CSV cut short or the wrong file, not a campaign done.
        out.report.push(
            Problem::error(
                "csv",
                &file,
                "the file has a header row but no records: add one row per recipient below it",
            )
            .line(1),
        );
    }
    out.content_hash = content.digest();
    // Sorting 8 bytes per valid row is what finding duplicates costs; the rows themselves are gone,
    // and so are their numbers. The hashes that occur more than once are few (normally none).
    // On every core: nothing else is left to do.
    hashes.par_sort_unstable();
    let mut repeated: Vec<u64> = Vec::new();
    for pair in hashes.windows(2) {
        if pair[0] == pair[1] {
            out.duplicate_rows += 1;
            if repeated.last() != Some(&pair[0]) {
                repeated.push(pair[0]);
            }
        }
    }
    drop(hashes);
    if repeated.is_empty() {
        return out;
    }
    // Only then is the file read a second time, for the numbers of the rows behind those hashes.
    let seen = Seen {
        columns: &columns,
        rows: out.rows,
        duplicate_rows: out.duplicate_rows,
        content_hash: out.content_hash,
    };
    let Some(duplicates) = find_duplicates(loaded, &renderer, &repeated, &seen) else {
        // Not a row's own problem: --skip-invalid cannot get past it, whether it is shown or not.
        out.report.push(Problem::error(
            "changed",
            &file,
            "the file changed during the check: it read differently the second time, when the rows that address the same recipient were looked for; check it again once nothing is writing to it",
        ));
        return out;
    };
    // In record order, after the problems of the pass; each names the first row of its recipient.
    for (number, first) in duplicates {
        let msg = format!("addresses the same recipient as record {first}");
        let p = if allow_duplicates {
            Problem::warning("duplicate", &file, msg)
        } else {
            Problem::error(
                "duplicate",
                &file,
                format!("{msg} (send refuses duplicates unless --allow-duplicates)"),
            )
        };
        out.report.push(Problem {
            record: Some(number),
            ..p
        });
    }
    out
}

/// What a valid row's request holds that varies by row (the rest is in the settings
/// fingerprint), as `Rendered::into_request` sets it: subject (empty for in-app), body, recipient.
fn row_parts<'r>(campaign: &Campaign, rendered: &'r Rendered) -> [&'r str; 3] {
    let subject = match campaign.message_type {
        MessageType::Email => rendered.subject.as_deref().unwrap_or(""),
        MessageType::InApp => "",
    };
    [subject, rendered.body.trim_end(), &rendered.to_id]
}

/// The content fingerprint: every valid row's number and `row_parts`, each part after its
/// length, hashed as one stream.
#[derive(Default)]
struct Fingerprint {
    hasher: Xxh3,
    /// A row's bytes, gathered so that the hasher takes each row in one call: it costs per call
    /// about what it costs to hash a few hundred bytes. The stream, and so the digest, is the
    /// same as with a call per piece.
    row: Vec<u8>,
}

impl Fingerprint {
    fn add(&mut self, number: u64, campaign: &Campaign, rendered: &Rendered) {
        self.row.clear();
        self.row.extend_from_slice(&number.to_le_bytes());
        put_parts(&mut self.row, row_parts(campaign, rendered));
        self.hasher.update(&self.row);
    }

    fn digest(&self) -> u64 {
        self.hasher.digest()
    }
}

/// Appends each part after its length: what the fingerprint and the row hashes hash.
fn put_parts(out: &mut Vec<u8>, parts: [&str; 3]) {
    for part in parts {
        out.extend_from_slice(&(part.len() as u64).to_le_bytes());
        out.extend_from_slice(part.as_bytes());
    }
}

fn hash_of_parts(parts: [&str; 3]) -> u32 {
    let mut bytes = Vec::with_capacity(24 + parts.iter().map(|p| p.len()).sum::<usize>());
    put_parts(&mut bytes, parts);
    xxh3_64(&bytes) as u32
}

/// A hash of a valid row's request, as preflight rendered it: the send pass compares it with
/// `request_hash` of what it is about to send, and so notices a file that changed in between.
/// 32 bits, since send keeps one per row: a changed row goes unnoticed once in 4 billion.
pub fn row_hash(campaign: &Campaign, rendered: &Rendered) -> u32 {
    hash_of_parts(row_parts(campaign, rendered))
}

/// `row_hash` of a request.
pub fn request_hash(request: &MessageRequest) -> u32 {
    let subject = request.subject.as_deref().unwrap_or("");
    hash_of_parts([subject, &request.body, &request.to.id])
}

/// What the first pass saw, for the second to compare with.
struct Seen<'a> {
    columns: &'a [String],
    rows: u64,
    duplicate_rows: u64,
    content_hash: u64,
}

/// The second pass, made only when some recipient hashes (`repeated`, sorted) occur more than
/// once: reads the file again and returns, in record order, each row whose recipient an earlier
/// row has, with the number of the first row that has it. `None` when the file does not read as
/// it did in the first pass (it changed, or cannot be opened again).
fn find_duplicates(
    loaded: &Loaded,
    renderer: &RowRenderer<'_>,
    repeated: &[u64],
    seen: &Seen<'_>,
) -> Option<Vec<(u64, u64)>> {
    let (mut recipients, _) =
        Recipients::open(&loaded.campaign.recipients, loaded.campaign.delimiter).ok()?;
    if recipients.columns() != seen.columns {
        return None;
    }
    let mut rows = 0u64;
    let mut content = Fingerprint::default();
    // The first row of each repeated recipient: as many entries as there are repeated hashes.
    let mut first: HashMap<u64, u64> = HashMap::with_capacity(repeated.len());
    let mut duplicates = Vec::new();
    let campaign = &loaded.campaign;
    each_rendered(&mut recipients, Some(renderer), &mut |slot| {
        rows += 1;
        // As in the first pass, only the rows that render without errors have a recipient.
        if slot.bad.is_some() || !matches!(slot.checked, Some(Ok(_))) {
            return;
        }
        let (number, id) = (slot.number, &slot.rendered.to_id);
        content.add(number, campaign, &slot.rendered);
        let hash = recipient_hash(&campaign.to_type, id);
        if repeated.binary_search(&hash).is_ok() {
            match first.entry(hash) {
                Entry::Occupied(e) => duplicates.push((number, *e.get())),
                Entry::Vacant(e) => {
                    e.insert(number);
                }
            }
        }
    });
    let same = rows == seen.rows
        && content.digest() == seen.content_hash
        && duplicates.len() as u64 == seen.duplicate_rows;
    same.then_some(duplicates)
}

/// Reads every row and renders it on every core (when there is a `renderer`), then hands the
/// rows to `each` in order: the report, the fingerprint and `on_row` see them exactly as a single
/// pass would. Three chunks turn: while one is rendered, the next is read and the previous one
/// goes through `each`.
fn each_rendered(
    recipients: &mut Recipients,
    renderer: Option<&RowRenderer<'_>>,
    each: &mut (dyn FnMut(&mut Slot) + Send),
) {
    // The loop runs on one of rayon's threads: a `join` called from outside the pool parks the
    // caller until the pool is done, a sleep and a wake-up per chunk.
    rayon::scope(|_| turn_chunks(recipients, renderer, each));
}

fn turn_chunks(
    recipients: &mut Recipients,
    renderer: Option<&RowRenderer<'_>>,
    each: &mut (dyn FnMut(&mut Slot) + Send),
) {
    let mut reading = Chunk::default();
    let mut rendering = Chunk::default();
    let mut passing = Chunk::default();
    let mut more = read_chunk(recipients, &mut rendering);
    while rendering.filled > 0 || passing.filled > 0 {
        rayon::join(
            || {
                if let Some(renderer) = renderer {
                    render_chunk(renderer, &mut rendering);
                }
            },
            || {
                rayon::join(
                    || {
                        if more {
                            more = read_chunk(recipients, &mut reading);
                        } else {
                            reading.filled = 0;
                        }
                    },
                    || passing.rows().iter_mut().for_each(&mut *each),
                )
            },
        );
        // The rendered chunk goes through `each` next, the one just read is rendered.
        std::mem::swap(&mut passing, &mut rendering);
        std::mem::swap(&mut rendering, &mut reading);
    }
}

/// `campaign check`.
pub fn run(args: &CheckArgs) -> anyhow::Result<Status> {
    let loaded = match load(&args.campaign)? {
        Ok(l) => l,
        Err(report) => {
            crate::say_part!("{}", report.render());
            crate::say!(
                "{}: {}; nothing was sent.",
                args.campaign.display(),
                counted(report.errors, "template error")
            );
            return Ok(Status::Invalid);
        }
    };
    let pre = preflight(&loaded, args.allow_duplicates, &mut |_, _| None);
    crate::say_part!("{}", pre.report.render());
    let summary = summary_line(&loaded.campaign, &pre);
    if pre.report.has_errors() {
        crate::say!(
            "{summary}: {}, {}.",
            counted(pre.report.errors, "error"),
            counted(pre.report.warnings, "warning")
        );
        Ok(Status::Invalid)
    } else {
        crate::out!("{summary}: ok{}.", warnings_suffix(&pre.report));
        Ok(Status::Ok)
    }
}

pub fn warnings_suffix(report: &Report) -> String {
    match report.warnings {
        0 => String::new(),
        n => format!(", {}", counted(n, "warning")),
    }
}

/// `1 error`, `2 errors`, `0 errors`.
pub fn counted(n: u64, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::input::problem::Severity;

    const CAMPAIGN: &str = r#"recipients = "people.csv"

[message]
message_type = "email"
template = "plain"
from = 394051
subject = "Hello {{ first_name }}"
body = "<p>Hi {{ first_name }}.</p>"

[to]
type = "user"
id = "{{ intercom_id }}"
"#;

    /// A campaign over a CSV with one row per id.
    fn campaign(ids: &[&str]) -> (tempfile::TempDir, Loaded) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("campaign.toml"), CAMPAIGN).unwrap();
        std::fs::write(dir.path().join("people.csv"), csv(ids)).unwrap();
        let loaded = load(&dir.path().join("campaign.toml"))
            .unwrap()
            .ok()
            .unwrap();
        (dir, loaded)
    }

    fn csv(ids: &[&str]) -> String {
        let mut s = String::from("intercom_id,first_name\n");
        for (i, id) in ids.iter().enumerate() {
            s.push_str(&format!("{id},Person{}\n", i + 1));
        }
        s
    }

    /// Each duplicate problem as (record, message), in report order.
    fn duplicates(pre: &Preflight) -> Vec<(Option<u64>, String)> {
        pre.report
            .kept
            .iter()
            .filter(|p| p.kind == "duplicate")
            .map(|p| (p.record, p.message.clone()))
            .collect()
    }

    #[test]
    fn duplicates_across_chunks_name_the_first_record_in_record_order() {
        // Three chunks and a bit, so that both passes read several, with duplicates in
        // different chunks.
        let rows = 3 * CHUNK as u64 + 5;
        let (a, b, c) = (7, CHUNK as u64 + 300, rows - 1);
        let (d, e) = (CHUNK as u64 - 1, 2 * CHUNK as u64 + 1);
        let ids: Vec<String> = (1..=rows)
            .map(|i| match i {
                _ if [a, b, c].contains(&i) => "same".to_string(),
                _ if [d, e].contains(&i) => "pair".to_string(),
                _ => format!("id-{i}"),
            })
            .collect();
        let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
        let (_dir, loaded) = campaign(&ids);
        let pre = preflight(&loaded, true, &mut |_, _| None);
        assert_eq!(pre.rows, rows);
        assert_eq!(pre.duplicate_rows, 3);
        assert_eq!(pre.report.errors, 0);
        assert_eq!(pre.report.warnings, 3);
        let same = |first: u64| format!("addresses the same recipient as record {first}");
        assert_eq!(
            duplicates(&pre),
            [(Some(b), same(a)), (Some(e), same(d)), (Some(c), same(a))]
        );
        assert!(pre
            .report
            .kept
            .iter()
            .all(|p| p.severity == Severity::Warning));
    }

    #[test]
    fn the_content_fingerprint_is_what_earlier_versions_recorded() {
        // Journal headers hold this hash: a resume compares it with the file's, and refuses
        // a different one unless --allow-changed. Its bytes must not change between versions,
        // or every run started by an earlier one would look changed. (Recorded by a4f5c60.)
        let (_dir, loaded) = campaign(&["a", "b", "c"]);
        let pre = preflight(&loaded, false, &mut |_, _| None);
        assert_eq!(format!("{:016x}", pre.content_hash), "558fc61ad01e2e8a");
    }

    #[test]
    fn ids_that_look_like_addresses_or_phone_numbers() {
        for id in ["ann@example.com", "a.b+c@mail.example.co.uk"] {
            assert_eq!(mistaken_id(id), Some("an e-mail address"), "{id}");
        }
        for id in [
            "+4420794609",
            "+1-555-123-4567",
            "(555)123-4567",
            "555.123.4567",
        ] {
            assert_eq!(mistaken_id(id), Some("a phone number"), "{id}");
        }
        // Intercom ids, other systems' ids, and what only resembles the two.
        for id in [
            "536e564f316c83104c000020",
            "5551234567",
            "id-1",
            "user@localhost",
            "@example.com",
            "a@.com",
            "a@example.",
            "+12345",
            "1-2",
            "+1234567890123456",
        ] {
            assert_eq!(mistaken_id(id), None, "{id}");
        }
    }

    #[test]
    fn the_summary_counts_one_row_as_one() {
        let (_dir, loaded) = campaign(&["a"]);
        let pre = preflight(&loaded, false, &mut |_, _| None);
        let line = summary_line(&loaded.campaign, &pre);
        assert!(line.contains(": 1 row, 1 recipient, "), "{line}");
        let (_dir, loaded) = campaign(&["a", "b"]);
        let pre = preflight(&loaded, false, &mut |_, _| None);
        let line = summary_line(&loaded.campaign, &pre);
        assert!(line.contains(": 2 rows, 2 recipients, "), "{line}");
    }

    #[test]
    fn without_duplicates_the_file_is_read_once() {
        let (dir, loaded) = campaign(&["a", "b", "c"]);
        let csv_path = dir.path().join("people.csv");
        // Gone once the first pass has read it: a second pass would fail to open it.
        let pre = preflight(&loaded, false, &mut |row, _| {
            if row == 1 {
                std::fs::remove_file(&csv_path).unwrap();
            }
            None
        });
        assert_eq!((pre.rows, pre.duplicate_rows), (3, 0));
        assert!(pre.report.kept.is_empty(), "{:?}", pre.report.kept);
    }

    /// Preflight of a CSV with duplicates, with `change` applied to the file after its first pass
    /// has read it.
    fn changed_between_passes(change: &(dyn Fn(&Path) + Sync)) -> Preflight {
        let (dir, loaded) = campaign(&["a", "b", "a", "c", "b"]);
        let csv_path = dir.path().join("people.csv");
        let pre = preflight(&loaded, false, &mut |row, _| {
            if row == 1 {
                change(&csv_path);
            }
            None
        });
        assert_eq!((pre.rows, pre.duplicate_rows), (5, 2));
        pre
    }

    fn assert_reports_the_change(pre: &Preflight) {
        assert!(duplicates(pre).is_empty(), "{:?}", pre.report.kept);
        assert_eq!(pre.report.errors, 1, "{:?}", pre.report.kept);
        let p = &pre.report.kept[0];
        assert_eq!((p.severity, p.kind), (Severity::Error, "changed"));
        assert_eq!(p.record, None);
        assert!(
            p.message.starts_with("the file changed during the check"),
            "{p}"
        );
    }

    #[test]
    fn a_file_changed_between_the_passes_is_an_error() {
        // Other recipients, same rows.
        assert_reports_the_change(&changed_between_passes(&|p| {
            std::fs::write(p, csv(&["a", "b", "c", "a", "b"])).unwrap()
        }));
        // Same recipients, another value.
        assert_reports_the_change(&changed_between_passes(&|p| {
            std::fs::write(p, csv(&["a", "b", "a", "c", "b"]).replace("Person2", "Ada")).unwrap()
        }));
        // A row more.
        assert_reports_the_change(&changed_between_passes(&|p| {
            std::fs::write(p, csv(&["a", "b", "a", "c", "b", "d"])).unwrap()
        }));
        // Another header.
        assert_reports_the_change(&changed_between_passes(&|p| {
            std::fs::write(
                p,
                csv(&["a", "b", "a", "c", "b"]).replace("first_name", "first_name,x"),
            )
            .unwrap()
        }));
        // Gone.
        assert_reports_the_change(&changed_between_passes(&|p| {
            std::fs::remove_file(p).unwrap()
        }));
    }

    #[test]
    fn an_unchanged_file_reports_its_duplicates() {
        let pre = changed_between_passes(&|_| {});
        assert_eq!(
            duplicates(&pre),
            [
                (
                    Some(3),
                    "addresses the same recipient as record 1 (send refuses duplicates unless --allow-duplicates)".to_string()
                ),
                (
                    Some(5),
                    "addresses the same recipient as record 2 (send refuses duplicates unless --allow-duplicates)".to_string()
                ),
            ]
        );
    }
}
