//! One row: rendered into its request body, and its values checked, each problem located at the
//! row's record and line. Preflight, preview, resolve and send all render rows through this.
use super::values::{recipient_finding, subject_error, Finding, MAX_BODY_BYTES};
use super::Loaded;
use crate::input::config::{Campaign, MessageType};
use crate::input::problem::{Problem, ProblemKind, Severity};
use crate::input::recipients::{Recipients, Row};
use crate::template::{BoundTemplates, MessageRequest, RenderError, Rendered};

/// A row's request with its warnings, or its errors.
pub type RowResult = Result<(MessageRequest, Vec<Problem>), Vec<Problem>>;

/// What a row's check found: its warnings, or its errors.
pub type Checked = Result<Vec<Problem>, Vec<Problem>>;

/// Turns rows into request bodies and says what is wrong with a row.
pub struct RowRenderer<'a> {
    campaign: &'a Campaign,
    file: String,
    plan: BoundTemplates<'a>,
}

impl<'a> RowRenderer<'a> {
    pub fn new(loaded: &'a Loaded, recipients: &Recipients) -> Self {
        RowRenderer {
            campaign: &loaded.campaign,
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

    /// Renders a row into `out` without checking what it rendered: for a row already checked,
    /// whose request's hash says whether it still renders the same. `false`: it does not render.
    pub fn render_into(&self, number: u64, fields: &[&str], out: &mut Rendered) -> bool {
        self.plan.render_into(fields, number, out).is_ok()
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
        if let Err(e) = self.plan.render_into(fields, number, out) {
            return Err(vec![self.render_failed(e).at(number, line)]);
        }
        // Each list keeps the order of the checks: recipient, subject, body.
        let (errors, warnings): (Vec<Problem>, Vec<Problem>) = [
            self.recipient_problem(&out.to_id),
            self.subject_problem(out.subject.as_deref()),
            self.body_problem(&out.body),
        ]
        .into_iter()
        .flatten()
        .map(|p| p.at(number, line))
        .partition(|p| p.severity == Severity::Error);
        if errors.is_empty() {
            Ok(warnings)
        } else {
            Err(errors)
        }
    }

    /// A row the templates do not render for: the template, and why.
    fn render_failed(&self, e: RenderError) -> Problem {
        Problem::error(ProblemKind::Template, &self.file, e.message)
            .column(format!("template {}", e.origin))
    }

    /// What is wrong with the rendered recipient, if anything.
    fn recipient_problem(&self, to: &str) -> Option<Problem> {
        let p = match recipient_finding(self.campaign.address, to)? {
            Finding::Error(msg) => Problem::error(ProblemKind::Value, &self.file, msg),
            Finding::Warning(msg) => Problem::warning(ProblemKind::Value, &self.file, msg),
        };
        Some(p.column(format!("[to] {}", self.campaign.address.key())))
    }

    /// What is wrong with an email's rendered subject, if anything (an in-app message has none).
    fn subject_problem(&self, subject: Option<&str>) -> Option<Problem> {
        if self.campaign.message_type != MessageType::Email {
            return None;
        }
        let msg = subject_error(subject.unwrap_or(""))?;
        Some(Problem::error(ProblemKind::Value, &self.file, msg).column("subject"))
    }

    /// An empty or oversized body (errors), or an HTML body that does not balance (a warning).
    fn body_problem(&self, body: &str) -> Option<Problem> {
        let error = |msg: String| Problem::error(ProblemKind::Value, &self.file, msg);
        let p = if body.trim().is_empty() {
            error("the body renders empty".into())
        } else if body.len() > MAX_BODY_BYTES {
            error(format!(
                "the body renders to {} bytes, more than the {MAX_BODY_BYTES} (256 KiB) a message may have",
                body.len()
            ))
        } else if self.campaign.body_format.is_html() {
            let why = crate::template::html::unbalanced(body)?;
            Problem::warning(
                ProblemKind::Html,
                &self.file,
                format!("the body's HTML does not balance: {why}"),
            )
        } else {
            return None;
        };
        Some(p.column("body"))
    }
}
