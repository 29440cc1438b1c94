//! `campaign resolve`: the lookups of a send, and nothing else. It writes the recipients CSV
//! with four columns added (`contact_id`, `contact_role`, `lookup_status`, `lookup_reason`), so
//! that a team can review who would get the message, or send from the file as an `id` campaign
//! (`[to] id = "{{ contact_id }}"`). The same rules, batching and pacing as `send`.
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::AtomicU64;

use anyhow::Context as _;
use tokio_util::sync::CancellationToken;

use crate::check::{self, RowRenderer};
use crate::cli::ResolveArgs;
use crate::exit::{Ended, Failure, Outcome};
use crate::input::config::Concurrency;
use crate::input::problem::Problem;
use crate::input::recipients::{Recipients, Row};
use crate::intercom::pace::Pace;
use crate::lookup::{
    find, normalize, not_found, Contact, Found, LookupFailure, Pacing, Rules, Verdict, PAGE,
};
use crate::target::{Defaults, Options, SandboxOptions};
use crate::template::Rendered;

pub(super) async fn run(args: ResolveArgs) -> Ended {
    let loaded = match check::load(&args.campaign) {
        Ok(l) => l,
        Err(check::LoadError::Invalid(report)) => {
            crate::say_part!("{}", report.render());
            return Err(Failure::Reported);
        }
        Err(check::LoadError::Campaign(e)) => return Err(e.into()),
    };
    let c = &loaded.campaign;
    if !c.address.looked_up() {
        crate::say!(
            "{}: [to] id already gives each contact's Intercom id: there is nothing to look up (resolve is for [to] email or external_id)",
            c.path.display()
        );
        return Err(Failure::Reported);
    }
    let rules = Rules::of(c)?;
    let options = Options {
        token: super::env_token(),
        token_file: args.token_file,
        base_url: args.api_base,
        version: None,
        sandbox: args.sandbox.then(|| SandboxOptions {
            contacts: args.sandbox_contacts,
            missing: args.sandbox_missing,
            admins: None,
            log: None,
            faults: args.faults.settings(),
        }),
        instead: "look up in the sandbox with --sandbox",
    };
    let token = options.token()?;
    let defaults = Defaults {
        base_url: &c.base_url,
        version: &c.version,
    };
    let target = options
        .access(token, &defaults)?
        .start(SandboxOptions::config)
        .await?;
    let out = args.out.unwrap_or_else(|| {
        let name = format!("{}.resolved.csv", c.stem());
        match c.path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir.join(name),
            _ => PathBuf::from(name),
        }
    });
    let pace = Pace::new(
        target.client(c.send.request_timeout, 4)?,
        c.send.rate,
        Concurrency::Fixed(1),
        CancellationToken::new(),
    );
    let searches = AtomicU64::new(0);
    let pacing = Pacing {
        pace: &pace,
        searches: &searches,
        placed: false,
    };
    let summary = write_resolved(&loaded, &rules, &pacing, &out).await?;
    target.close().await?;
    crate::say!("{}: {summary}; nothing was sent.", out.display());
    Ok(Outcome::Done)
}

/// The columns added to the recipients' own.
const ADDED: [&str; 4] = [
    "contact_id",
    "contact_role",
    "lookup_status",
    "lookup_reason",
];

/// A row read, waiting for its batch's lookup: its cells, and its key or why it has none.
struct Pending {
    row: u64,
    fields: Vec<String>,
    key: Result<String, String>,
}

/// Reads every row, looks them up [`PAGE`] keys at a time, writes `out`; returns the summary.
async fn write_resolved(
    loaded: &check::Loaded,
    rules: &Rules,
    pacing: &Pacing<'_>,
    out: &std::path::Path,
) -> anyhow::Result<String> {
    let c = &loaded.campaign;
    let (mut recipients, _) =
        Recipients::open(&c.recipients, c.delimiter).map_err(|p| anyhow::anyhow!("{p}"))?;
    let renderer = RowRenderer::new(loaded, &recipients);
    let mut w =
        csv::Writer::from_path(out).with_context(|| format!("cannot write {}", out.display()))?;
    // A spreadsheet opens this file: every cell as the results file writes its cells.
    let cell = crate::results::cells::escape;
    w.write_record(
        recipients
            .columns()
            .iter()
            .map(String::as_str)
            .chain(ADDED)
            .map(|c| cell(c).into_owned()),
    )?;
    let mut lookups = Lookups::default();
    let mut rendered = Rendered::default();
    loop {
        let next = recipients.next_row();
        let ended = next.is_none();
        if let Some(next) = next {
            lookups.add(pending(next, &renderer, rules, &mut rendered));
        }
        if lookups.keys.len() >= PAGE || (ended && !lookups.pending.is_empty()) {
            lookups.write_batch(pacing, rules, &mut w).await?;
        }
        if ended {
            break;
        }
    }
    w.flush()?;
    Ok(lookups.summary(pacing.searches.load(std::sync::atomic::Ordering::Relaxed)))
}

/// A row as read: its cells and its normalized key, or why it has none.
fn pending(
    next: Result<Row<'_>, Problem>,
    renderer: &RowRenderer<'_>,
    rules: &Rules,
    rendered: &mut Rendered,
) -> Pending {
    match next {
        Ok(row) => {
            let fields: Vec<String> = row.fields.iter().map(|f| f.to_string()).collect();
            let key = match renderer.check_into(row.number, row.line, &row.fields, rendered) {
                Ok(_) => Ok(normalize(rules.address, &rendered.to_id)),
                Err(problems) => Err(problems[0].to_string()),
            };
            Pending {
                row: row.number,
                fields,
                key,
            }
        }
        Err(p) => Pending {
            row: p.record.unwrap_or(0),
            fields: Vec::new(),
            key: Err(p.to_string()),
        },
    }
}

/// A row's `lookup_status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum LookupStatus {
    Found,
    NotFound,
    Ambiguous,
    Unsubscribed,
    Suppressed,
    Duplicate,
    Invalid,
    LookupFailed,
}

impl LookupStatus {
    /// In the order the summary names them.
    const ALL: [LookupStatus; 8] = [
        LookupStatus::Found,
        LookupStatus::NotFound,
        LookupStatus::Ambiguous,
        LookupStatus::Unsubscribed,
        LookupStatus::Suppressed,
        LookupStatus::Duplicate,
        LookupStatus::Invalid,
        LookupStatus::LookupFailed,
    ];

    /// As the `lookup_status` column and the summary write it.
    fn as_str(self) -> &'static str {
        match self {
            LookupStatus::Found => "found",
            LookupStatus::NotFound => "not_found",
            LookupStatus::Ambiguous => "ambiguous",
            LookupStatus::Unsubscribed => "unsubscribed",
            LookupStatus::Suppressed => "suppressed",
            LookupStatus::Duplicate => "duplicate",
            LookupStatus::Invalid => "invalid",
            LookupStatus::LookupFailed => "lookup_failed",
        }
    }
}

/// The rows read and not yet written (with their distinct keys), and what the written ones came
/// to.
#[derive(Default)]
struct Lookups {
    pending: Vec<Pending>,
    keys: Vec<String>,
    /// Each contact found, with the first row that has it.
    taken: HashMap<String, u64>,
    tally: HashMap<LookupStatus, u64>,
}

impl Lookups {
    fn add(&mut self, p: Pending) {
        if let Ok(k) = &p.key {
            if !self.keys.contains(k) {
                self.keys.push(k.clone());
            }
        }
        self.pending.push(p);
    }

    /// Looks the pending rows' keys up and writes each row with its added cells.
    async fn write_batch<W: std::io::Write>(
        &mut self,
        pacing: &Pacing<'_>,
        rules: &Rules,
        w: &mut csv::Writer<W>,
    ) -> anyhow::Result<()> {
        let found = if self.keys.is_empty() {
            Ok(Found::default())
        } else {
            find(pacing, rules, &self.keys).await
        };
        for p in self.pending.drain(..) {
            let (id, role, status, reason) = verdict(rules, &found, &p, &mut self.taken);
            *self.tally.entry(status).or_default() += 1;
            let added = [id.as_str(), role.as_str(), status.as_str(), reason.as_str()];
            w.write_record(
                p.fields
                    .iter()
                    .map(String::as_str)
                    .chain(added)
                    .map(|c| crate::results::cells::escape(c).into_owned()),
            )?;
        }
        self.keys.clear();
        Ok(())
    }

    /// `3 found, 1 not_found, 2 search requests`: the statuses that occurred, in order.
    fn summary(&self, searches: u64) -> String {
        let mut parts: Vec<String> = LookupStatus::ALL
            .iter()
            .filter_map(|s| self.tally.get(s).map(|n| format!("{n} {}", s.as_str())))
            .collect();
        parts.push(format!("{searches} search requests"));
        parts.join(", ")
    }
}

/// One row's added cells: contact id, role, status, reason.
fn verdict(
    rules: &Rules,
    found: &Result<Found, LookupFailure>,
    p: &Pending,
    taken: &mut HashMap<String, u64>,
) -> (String, String, LookupStatus, String) {
    let none = |status, reason: String| (String::new(), String::new(), status, reason);
    let key = match &p.key {
        Ok(k) => k,
        Err(why) => return none(LookupStatus::Invalid, why.clone()),
    };
    let found = match found {
        Ok(f) => f,
        Err(LookupFailure::Fatal { status, error })
        | Err(LookupFailure::Failed {
            status: Some(status),
            error,
        }) => {
            return none(
                LookupStatus::LookupFailed,
                format!("HTTP {status}: {} {}", error.code, error.message),
            )
        }
        Err(LookupFailure::Failed { error, .. }) => {
            return none(
                LookupStatus::LookupFailed,
                format!("{} {}", error.code, error.message),
            )
        }
        Err(LookupFailure::Stopped) => return none(LookupStatus::LookupFailed, "stopped".into()),
    };
    if let Some((status, error)) = found.refused.get(key) {
        return none(
            LookupStatus::LookupFailed,
            format!("HTTP {status}: {} {}", error.code, error.message),
        );
    }
    let matches: Vec<&Contact> = found
        .contacts
        .get(key)
        .map(|v| v.iter().collect())
        .unwrap_or_default();
    match rules.judge(key, &matches) {
        Verdict::Found(c) => {
            if let Some(first) = taken.get(&c.id) {
                // No id in its cells: sent from as an `id` campaign, the contact gets one message.
                let why = format!("row {first} has this contact ({})", c.id);
                return none(LookupStatus::Duplicate, why);
            }
            taken.insert(c.id.clone(), p.row);
            (c.id, c.role, LookupStatus::Found, String::new())
        }
        Verdict::NotFound => none(LookupStatus::NotFound, not_found(rules)),
        Verdict::Ambiguous(many) => none(LookupStatus::Ambiguous, many),
        Verdict::Unsubscribed(reason) => none(LookupStatus::Unsubscribed, reason.to_string()),
        Verdict::Suppressed => none(
            LookupStatus::Suppressed,
            "on the [send] suppress list".into(),
        ),
    }
}
