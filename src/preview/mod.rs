//! `campaign preview`: rendered messages for people (`text`), with `--json` the exact request
//! bodies, or with `--html` a page of them (`html`); `variants` tells rows apart by the path they
//! take through the templates' `if`s. Both forms say what holds of the whole file
//! ([`FileFacts`]): its rows, where a `default` gives its fallback, and its duplicates.
mod html;
mod text;
mod variants;

use std::collections::{BTreeMap, HashMap};

use crate::check::{load, LoadError, Loaded, RowRenderer};
use crate::exit::{Ended, Failure};
use crate::input::config::Duplicates;
use crate::input::recipients::Recipients;

/// Which rows a preview shows: `--row N` that row alone, `--limit N` the first N; with neither,
/// the first few (text) or the rows that cover every variant and problem (page).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Selection {
    pub row: Option<u64>,
    pub limit: Option<usize>,
}

/// How the rows are shown.
pub(crate) enum Form {
    /// For people on stderr, or with `json` the exact request bodies on stdout.
    Text { json: bool },
    /// A page written to `file`, opened in a browser if asked.
    Page {
        file: std::path::PathBuf,
        open: bool,
    },
}

pub(crate) fn run(campaign: &std::path::Path, selection: Selection, form: Form) -> Ended {
    let loaded = match load(campaign) {
        Ok(l) => l,
        Err(LoadError::Invalid(report)) => {
            crate::say_part!("{}", report.render());
            return Err(Failure::Reported);
        }
        Err(LoadError::Campaign(e)) => return Err(e.into()),
    };
    match form {
        Form::Page { file, open } => html::run(&loaded, selection, &file, open),
        Form::Text { json } => text::run(&loaded, selection, json),
    }
}

/// Rows listed by name at most, of those where a `default` applies and of the duplicates' groups:
/// the counts cover the rest.
const LISTED: usize = 20;

/// What holds of the whole file, whichever rows a preview shows.
struct FileFacts {
    /// The file's records.
    rows: u64,
    /// The first [`LISTED`] rows where a `default` gave its fallback, each with the names of
    /// the values that were empty.
    defaults: Vec<(u64, Vec<String>)>,
    /// Rows where a `default` gave its fallback, in all.
    default_rows: u64,
    /// Rows whose recipient an earlier row has, by that first row, in record order.
    duplicates: BTreeMap<u64, Vec<u64>>,
    /// Each duplicate row's first row.
    first_of: HashMap<u64, u64>,
    /// The recipient of each first row of [`FileFacts::duplicates`] (`user id-1`).
    recipients: HashMap<u64, String>,
    /// What `send` does with the duplicates.
    mode: Duplicates,
}

impl FileFacts {
    /// Reads the whole file: `check`'s preflight for its rows and duplicates, and, when a
    /// template has a `default` or the file has duplicates, each row rendered once more here,
    /// on this thread, for the fallbacks given and the duplicates' recipients.
    fn of(loaded: &Loaded) -> anyhow::Result<FileFacts> {
        let pre = crate::check::preflight(loaded, Duplicates::Allow, &mut |_, _| None);
        let mut duplicates: BTreeMap<u64, Vec<u64>> = BTreeMap::new();
        for &(row, first) in &pre.duplicates {
            duplicates.entry(first).or_default().push(row);
        }
        let first_of = pre.duplicates.iter().copied().collect();
        let mut facts = FileFacts {
            rows: pre.rows,
            defaults: Vec::new(),
            default_rows: 0,
            duplicates,
            first_of,
            recipients: HashMap::new(),
            mode: loaded.campaign.send.duplicates,
        };
        let c = &loaded.campaign;
        let has_default = c
            .subject
            .iter()
            .chain([&c.body, &c.to_id])
            .any(|t| t.source.contains("default"));
        if !has_default && facts.duplicates.is_empty() {
            return Ok(facts);
        }
        let (mut recipients, _) =
            Recipients::open(&c.recipients, c.delimiter).map_err(|p| anyhow::anyhow!("{p}"))?;
        let renderer = RowRenderer::new(loaded, &recipients);
        while let Some(next) = recipients.next_row() {
            let Ok(row) = next else { continue };
            let wanted = has_default || facts.duplicates.contains_key(&row.number);
            if !wanted {
                continue;
            }
            let (rendered, names) = render_noting_defaults(&renderer, &row);
            if let (Some(to), true) = (rendered, facts.duplicates.contains_key(&row.number)) {
                facts.recipients.insert(row.number, to);
            }
            if !names.is_empty() {
                facts.default_rows += 1;
                if facts.defaults.len() < LISTED {
                    facts.defaults.push((row.number, names));
                }
            }
        }
        Ok(facts)
    }

    /// `row 2 (first_name empty), row 9 (plan, first_name empty)` and how many more.
    fn defaults_said(&self) -> String {
        let listed: Vec<String> = self
            .defaults
            .iter()
            .map(|(row, names)| format!("row {row} ({} empty)", names.join(", ")))
            .collect();
        let more = self.default_rows.saturating_sub(self.defaults.len() as u64);
        match more {
            0 => listed.join(", "),
            n => format!("{} and {n} more", listed.join(", ")),
        }
    }

    /// Each group of rows with one recipient, and what `send` does with it:
    /// `rows 1, 3 (user id-1): row 1 is sent, row 3 recorded `skipped``.
    fn duplicate_groups(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .duplicates
            .iter()
            .take(LISTED)
            .map(|(first, later)| {
                let later_said = rows_said(later);
                let to = self
                    .recipients
                    .get(first)
                    .map(|t| format!(" ({t})"))
                    .unwrap_or_default();
                let fate = match self.mode {
                    Duplicates::Skip => format!(
                        "row {first} is sent, {later_said} recorded `skipped` (duplicate)"
                    ),
                    Duplicates::Allow => format!("row {first} and {later_said} are each sent"),
                    Duplicates::Refuse => format!(
                        "with --skip-duplicates row {first} is sent and {later_said} recorded `skipped` (duplicate)"
                    ),
                };
                let mut rows = vec![*first];
                rows.extend(later);
                format!("{}{to}: {fate}", rows_said(&rows))
            })
            .collect();
        if self.duplicates.len() > LISTED {
            out.push(format!(
                "and {} more groups",
                self.duplicates.len() - LISTED
            ));
        }
        out
    }

    /// What `send` does with the file's duplicates, in one sentence.
    fn duplicates_rule(&self) -> &'static str {
        match self.mode {
            Duplicates::Skip => {
                "send sends the first row of each recipient and records the later ones `skipped` ([send] duplicates = \"skip\")"
            }
            Duplicates::Allow => "send sends every row ([send] duplicates = \"allow\")",
            Duplicates::Refuse => {
                "send refuses the file unless --skip-duplicates (the first row of each recipient sent, the later ones recorded `skipped`) or --allow-duplicates (every row sent)"
            }
        }
    }

    fn duplicate_rows(&self) -> u64 {
        self.first_of.len() as u64
    }
}

/// A row rendered with the names of the values a `default` gave its fallback for; the
/// recipient (`user id-1`) when it renders.
fn render_noting_defaults(
    renderer: &RowRenderer<'_>,
    row: &crate::input::recipients::Row<'_>,
) -> (Option<String>, Vec<String>) {
    crate::template::filters::take_defaults_used();
    let rendered = renderer.render(row);
    let names = crate::template::filters::take_defaults_used();
    let to = rendered
        .ok()
        .map(|(request, _)| format!("{} {}", request.to.kind, request.to.id));
    (to, names)
}

/// `row 3`, `rows 3, 5` (up to [`LISTED`], then how many in all).
fn rows_said(rows: &[u64]) -> String {
    let listed: Vec<String> = rows.iter().take(LISTED).map(u64::to_string).collect();
    match rows.len() {
        1 => format!("row {}", listed[0]),
        n if n > LISTED => format!("rows {}, … ({n} in all)", listed.join(", ")),
        _ => format!("rows {}", listed.join(", ")),
    }
}
