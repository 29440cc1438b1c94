//! `send --test-to CONTACT`: the chosen rows' messages, rendered exactly as the campaign would
//! send them, sent to one test contact instead (an Intercom id, or an e-mail looked up as
//! `[to] email` is), marked as a test. They are recorded in `.campaign/<results>.tests.csv`
//! beside the results file (the results file's columns), apart from the campaign's results file
//! and journal, so that a test never counts as a row sent and never stops a row from being sent.
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use anyhow::bail;
use bytes::Bytes;

use super::plan::{SandboxPlan, SendPlan, TestSend};
use crate::check::{self, RowRenderer};
use crate::exit::{Ended, Failure, Outcome};
use crate::input::config::{BodyFormat, Campaign};
use crate::input::recipients::Recipients;
use crate::intercom::client::{Attempt, Client};
use crate::results::{self, Ledger, ResultRow, ResultsWriter, RowStatus, RunLock};
use crate::sandbox::SandboxConfig;
use crate::target::{Access, Target};
use crate::template::MessageRequest;
use std::sync::Arc;

/// What marks a test: the start of an email's subject, and of an in-app message's body (an
/// in-app message has no subject, so its first line says it).
const TEST_MARK: &str = "[TEST] ";

pub(super) async fn run(plan: &SendPlan, test: &TestSend, loaded: check::Loaded) -> Ended {
    let given = test_contact(&test.contact)?;
    let c = &loaded.campaign;
    if c.to_type == "contact" {
        // Each contact's type comes from its lookup, and the test contact is not looked up:
        // `to.type = "contact"` is no type Intercom's messages take.
        return Err(anyhow::anyhow!("--test-to: this campaign's `[to] type = \"contact\"` takes each contact's type (user or lead) from its lookup, and a test contact is not looked up; test with a copy of the campaign file that says `type = \"user\"` or `type = \"lead\"`, as the test contact is").into());
    }
    let results_file = plan.results_path(c)?;
    let tests = tests_path(&results_file);
    let mut requests = render_chosen(test, &loaded, given.id())?;
    let rows: Vec<String> = requests.iter().map(|(row, _)| row.to_string()).collect();
    let Some(access) = plan.access() else {
        crate::out!(
            "dry run: {} test messages (rows {}) would be sent to {} {} from {}, marked `{}`; nothing was sent.",
            requests.len(),
            rows.join(", "),
            c.to_type,
            given.shown(),
            c.from_label(),
            TEST_MARK.trim_end()
        );
        return Ok(Outcome::Done);
    };
    // The campaign's lock: a test writes beside its ledger, and not while a run writes it.
    let mut ledger = Ledger::new(results_file.clone());
    let lock = ledger.lock()?;
    if std::fs::symlink_metadata(&tests).is_ok_and(|m| !m.is_file()) {
        return Err(anyhow::anyhow!(
            "{} is not a regular file: the test record is written there",
            tests.display()
        )
        .into());
    }
    let target = start(&access, plan.sandbox(), &results_file).await?;
    let s = &plan.settings;
    let base_url = target.base_url.clone();
    let client = target.client(s.send.request_timeout, 1)?;
    let contact = match given {
        TestContact::Id(id) => id,
        TestContact::Email(email) => {
            let lookups = target.client(s.send.request_timeout, 1)?;
            look_up(lookups, c, &s.send, &email).await?
        }
    };
    for (_, request) in &mut requests {
        request.to.id = contact.clone();
    }
    crate::say!(
        "test send: {} messages (rows {}) to {} {contact} at {base_url} from {}, marked `{}`; recorded in {} (not in the results file)",
        requests.len(),
        rows.join(", "),
        c.to_type,
        c.from_label(),
        TEST_MARK.trim_end(),
        tests.display()
    );
    let ended = send_all(&client, requests, &tests, lock).await?;
    target.close().await?;
    Ok(ended)
}

/// The test contact as given: an Intercom contact id, or an e-mail to look up.
enum TestContact {
    Id(String),
    Email(String),
}

impl TestContact {
    /// What the rendered requests are addressed to until the e-mail is looked up.
    fn id(&self) -> &str {
        match self {
            TestContact::Id(id) | TestContact::Email(id) => id,
        }
    }

    fn shown(&self) -> String {
        match self {
            TestContact::Id(id) => id.clone(),
            TestContact::Email(e) => format!("with e-mail {e} (looked up when sent)"),
        }
    }
}

/// `--test-to`: an e-mail (it has an `@`) or an Intercom contact id.
fn test_contact(given: &str) -> anyhow::Result<TestContact> {
    let contact = given.trim().to_string();
    if contact.is_empty() {
        bail!("--test-to: empty: give the test contact's e-mail or Intercom id");
    }
    Ok(match contact.contains('@') {
        true => TestContact::Email(contact),
        false => TestContact::Id(contact),
    })
}

/// The id of the one contact with this e-mail, searched as `[to] email` searches (of the
/// campaign's `[to] type`); anything but one contact is an error, and nothing is sent: a search
/// that failed is [`Failure::Api`].
async fn look_up(
    client: Client,
    c: &Campaign,
    send: &crate::input::config::SendSettings,
    email: &str,
) -> Result<String, Failure> {
    use crate::input::config::{Address, Concurrency};
    use crate::intercom::pace::Pace;
    use crate::lookup::{find, normalize, Rules, Verdict};
    let mut rules = Rules::of(c)?;
    rules.address = Address::Email;
    // A test contact is chosen by the operator: no list of the campaign's applies to it.
    rules.respect_unsubscribed = false;
    rules.suppress.clear();
    let pace = Pace::new(
        client,
        send.rate,
        Concurrency::Fixed(1),
        tokio_util::sync::CancellationToken::new(),
    );
    let searches = std::sync::atomic::AtomicU64::new(0);
    let pacing = crate::lookup::Pacing {
        pace: &pace,
        searches: &searches,
        placed: false,
    };
    let key = normalize(Address::Email, email);
    let found = find(&pacing, &rules, std::slice::from_ref(&key))
        .await
        .map_err(|f| {
            use crate::lookup::LookupFailure as Search;
            let why = match f {
                Search::Fatal { status, error } => format!("HTTP {status} {}", error.code),
                Search::Failed { status, error } => match status {
                    Some(status) => format!("HTTP {status} {}", error.code),
                    None => error.code,
                },
                Search::Stopped => "interrupted".into(),
            };
            Failure::api(anyhow::anyhow!(
                "--test-to {email}: the contact could not be looked up ({why}); nothing was sent"
            ))
        })?;
    let matches: Vec<&crate::lookup::Contact> = found
        .contacts
        .get(&key)
        .map(|v| v.iter().collect())
        .unwrap_or_default();
    let refused = match rules.judge(&key, &matches) {
        Verdict::Found(contact) => return Ok(contact.id),
        Verdict::NotFound => anyhow::anyhow!(
            "--test-to {email}: no {} has this e-mail; give another, or the contact's Intercom id; nothing was sent",
            c.to_type
        ),
        Verdict::Ambiguous(many) => anyhow::anyhow!(
            "--test-to {email}: {many} have this e-mail; give the test contact's Intercom id instead; nothing was sent"
        ),
        // Unsubscribed and suppressed contacts are not set aside for a test (the rules above).
        Verdict::Unsubscribed(_) | Verdict::Suppressed => {
            anyhow::anyhow!("--test-to {email}: the contact cannot be messaged; nothing was sent")
        }
    };
    Err(refused.into())
}

/// `.campaign/<results>.tests.csv`, in the hidden folder beside the campaign's results file.
fn tests_path(results: &Path) -> PathBuf {
    results::side::path(results, results::side::TESTS)
}

/// The chosen rows (`--row`, or the first `--limit`, default 1), rendered and marked, addressed
/// to the test contact. [`Failure::Reported`] (the problems said) when a chosen row does not
/// render or is not in the file: nothing is sent then.
fn render_chosen(
    test: &TestSend,
    loaded: &check::Loaded,
    contact: &str,
) -> Result<Vec<(u64, MessageRequest)>, Failure> {
    let c = &loaded.campaign;
    let (mut recipients, header) =
        Recipients::open(&c.recipients, c.delimiter).map_err(|p| anyhow::anyhow!("{p}"))?;
    for p in &header {
        crate::say!("{p}");
    }
    let mut wanted: BTreeSet<u64> = test.rows.iter().copied().collect();
    let first_n = if wanted.is_empty() {
        test.limit.unwrap_or(1).max(1)
    } else {
        0
    };
    let renderer = RowRenderer::new(loaded, &recipients);
    let (mut out, mut ok) = (Vec::new(), true);
    while let Some(next) = recipients.next_row() {
        if wanted.is_empty() && out.len() as u64 >= first_n {
            break;
        }
        let row = match next {
            Ok(row) => row,
            Err(p) => {
                let chosen = p.record.is_some_and(|r| wanted.remove(&r));
                if chosen || p.record.is_none() {
                    crate::say!("{p}");
                    ok = false;
                }
                if p.record.is_none() {
                    break;
                }
                continue;
            }
        };
        if first_n == 0 && !wanted.remove(&row.number) {
            continue;
        }
        match renderer.render(&row) {
            Ok((request, _warnings)) => out.push((row.number, mark(c, request, contact))),
            Err(problems) => {
                problems.iter().for_each(|p| crate::say!("{p}"));
                ok = false;
            }
        }
    }
    for missing in wanted {
        crate::say!(
            "error: {}: --row {missing}: there is no record {missing}",
            c.recipients.display()
        );
        ok = false;
    }
    if !ok || out.is_empty() {
        crate::say!("nothing was sent.");
        return Err(Failure::Reported);
    }
    Ok(out)
}

/// A row's request, to the test contact and marked as a test: an email's subject starts with
/// the mark; an in-app message, which has no subject, starts its body with it.
fn mark(c: &Campaign, mut request: MessageRequest, contact: &str) -> MessageRequest {
    request.to.id = contact.to_string();
    match &mut request.subject {
        Some(subject) => subject.insert_str(0, TEST_MARK),
        None => match c.body_format {
            BodyFormat::Html | BodyFormat::Markdown => request.body.insert_str(
                0,
                &format!("<p><strong>{}</strong></p>", TEST_MARK.trim_end()),
            ),
            BodyFormat::Text => request.body.insert_str(0, &format!("{TEST_MARK}\n\n")),
        },
    }
    request
}

/// One request per row, in order, each outcome appended to the tests file as it comes. No
/// retries: a test that did not go is sent again by running the test again. Done when every
/// test was sent.
async fn send_all(
    client: &Client,
    requests: Vec<(u64, MessageRequest)>,
    tests: &Path,
    lock: Arc<RunLock>,
) -> anyhow::Result<Outcome> {
    let mut writer = ResultsWriter::open_with(tests, &[], Some(lock))?;
    let mut all_sent = true;
    for (row, request) in requests {
        let body = Bytes::from(serde_json::to_vec(&request)?);
        let outcome = outcome(row, request.to.id, client.send(body).await);
        all_sent &= outcome.status == RowStatus::Sent;
        crate::say!(
            "row {row}: {}",
            match outcome.status {
                RowStatus::Sent => format!("sent (message {})", outcome.message_id),
                RowStatus::Unknown => format!("unknown: {}", outcome.error_message),
                _ => format!("failed: {} {}", outcome.error_code, outcome.error_message),
            }
        );
        writer.write(&outcome)?;
    }
    writer.sync()?;
    Ok(match all_sent {
        true => Outcome::Done,
        false => Outcome::RowsLeft,
    })
}

fn outcome(row: u64, recipient: String, attempt: Attempt) -> ResultRow {
    let mut out = ResultRow {
        row,
        recipient,
        status: RowStatus::Failed,
        message_id: String::new(),
        http_status: None,
        error_code: String::new(),
        error_message: String::new(),
        request_id: String::new(),
        attempts: 1,
        finished_at: results::now_rfc3339(),
        contact_id: String::new(),
        extra: Vec::new(),
    };
    match attempt {
        Attempt::Sent {
            message_id, status, ..
        } => {
            (out.status, out.message_id, out.http_status) =
                (RowStatus::Sent, message_id, Some(status));
        }
        Attempt::Rejected { status, error, .. } => {
            out.http_status = Some(status);
            (out.error_code, out.error_message, out.request_id) =
                (error.code, error.message, error.request_id);
        }
        Attempt::NotReached(why) => {
            (out.error_code, out.error_message) = ("connection_failed".into(), why);
        }
        Attempt::Unknown(why) => {
            (out.status, out.error_code, out.error_message) =
                (RowStatus::Unknown, "outcome_unknown".into(), why);
        }
    }
    out
}

/// The test's target: Intercom, or a sandbox logging to `.campaign/<results>.sandbox.tests.jsonl`
/// (or `--sandbox-log`): never the rehearsal's own log, from which a resumed rehearsal settles
/// its rows.
async fn start(
    access: &Access,
    plan: Option<&SandboxPlan>,
    results_file: &Path,
) -> anyhow::Result<Target> {
    let Some(plan) = plan else {
        return access.start(|o| o.config()).await;
    };
    let log = plan
        .options
        .log
        .clone()
        .unwrap_or_else(|| results::side::path(results_file, results::side::TESTS_LOG));
    let target = access
        .start(|o| SandboxConfig {
            log: Some(log.clone()),
            missing: Vec::new(),
            ..o.config()
        })
        .await?;
    crate::say!(
        "sandbox: {} (test messages logged to {})",
        target.base_url,
        log.display()
    );
    Ok(target)
}
