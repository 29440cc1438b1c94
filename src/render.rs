//! Templates: compiling the subject, body and recipient templates once per campaign, finding
//! variables that are not CSV columns, and rendering a row into the exact request body.
use serde::Serialize;
use tera::{Context, Tera};

use crate::compiled::Compiled;
use crate::config::{BodyFormat, Campaign, MessageType, TemplateSource};

const SUBJECT: &str = "subject.txt";
const BODY_HTML: &str = "body.html";
const BODY_TEXT: &str = "body.txt";
const TO_ID: &str = "to_id.txt";

/// A template problem found before any row is read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateError {
    /// Where the template came from (a file, or the campaign file's key).
    pub origin: String,
    /// Line and column inside the template, where Tera says.
    pub position: Option<(usize, usize)>,
    pub message: String,
}

impl std::fmt::Display for TemplateError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.position {
            Some((line, col)) => write!(
                f,
                "{}: line {line}, column {col}: {}",
                self.origin, self.message
            ),
            None => write!(f, "{}: {}", self.origin, self.message),
        }
    }
}

/// The campaign's templates, compiled once.
pub struct Templates {
    tera: Tera,
    body_name: &'static str,
    has_subject: bool,
    origins: Vec<(&'static str, String)>,
}

/// The request body of `POST /messages`, exactly as Intercom's schema names its fields.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct MessageRequest {
    pub message_type: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    pub body: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub template: Option<String>,
    pub from: Admin,
    pub to: Recipient,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub create_conversation_without_contact_reply: Option<bool>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Admin {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub id: u64,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Recipient {
    #[serde(rename = "type")]
    pub kind: String,
    pub id: String,
}

/// Tera's `default` applies only to a variable that is missing, but a CSV column is always
/// there, empty or not. Users expect `default` to cover an empty cell, so the templates' `default`
/// filter is routed to `or_else`, which does both. Same length, so error positions hold.
fn route_default(source: &str) -> String {
    let mut out = String::with_capacity(source.len());
    let mut rest = source;
    while let Some(i) = rest.find('|') {
        out.push_str(&rest[..=i]);
        rest = &rest[i + 1..];
        let trimmed = rest.trim_start();
        let ws = rest.len() - trimmed.len();
        if trimmed.starts_with("default")
            && !trimmed["default".len()..].starts_with(|c: char| c.is_alphanumeric() || c == '_')
        {
            out.push_str(&rest[..ws]);
            out.push_str("or_else");
            rest = &trimmed["default".len()..];
        }
    }
    out.push_str(rest);
    out
}

fn or_else(
    value: &tera::Value,
    args: &std::collections::HashMap<String, tera::Value>,
) -> tera::Result<tera::Value> {
    let empty = match value {
        tera::Value::Null => true,
        tera::Value::String(s) => s.is_empty(),
        _ => false,
    };
    if empty {
        args.get("value")
            .cloned()
            .ok_or_else(|| tera::Error::msg("the `default` filter needs a `value` argument"))
    } else {
        Ok(value.clone())
    }
}

/// Tera's `range`, bounded: `range(end=10000000000)` would build the whole list before a loop
/// starts, and hang the check. No message needs more than this many iterations.
const MAX_RANGE: usize = 10_000;

fn bounded_range(
    args: &std::collections::HashMap<String, tera::Value>,
) -> tera::Result<tera::Value> {
    let arg = |name: &str, default: Option<u64>| -> tera::Result<u64> {
        match args.get(name) {
            Some(v) => v.as_u64().ok_or_else(|| {
                tera::Error::msg(format!("`range`: `{name}` must be a whole number from 0"))
            }),
            None => default.ok_or_else(|| tera::Error::msg(format!("`range` needs `{name}`"))),
        }
    };
    let start = arg("start", Some(0))?;
    let end = arg("end", None)?;
    let step = arg("step_by", Some(1))?;
    if step == 0 {
        return Err(tera::Error::msg("`range`: `step_by` must be above 0"));
    }
    let len = end.saturating_sub(start).div_ceil(step);
    if len > MAX_RANGE as u64 {
        return Err(tera::Error::msg(format!(
            "`range` would have {len} items, more than {MAX_RANGE}"
        )));
    }
    Ok((start..end)
        .step_by(step as usize)
        .collect::<Vec<_>>()
        .into())
}

/// A macro can call itself, and Tera does not bound the recursion: the process would overflow
/// its stack. Message templates have no need for macros, so they are refused.
fn macro_error(origin: &str, source: &str) -> Option<TemplateError> {
    for (line, text) in (1..).zip(source.lines()) {
        let mut rest = text;
        while let Some(at) = rest.find("{%") {
            let tag = rest[at + 2..].trim_start_matches(['-', ' ', '\t']);
            if tag.starts_with("macro") || tag.starts_with("import") {
                let column = text.len() - rest.len() + at + 1;
                return Some(TemplateError {
                    origin: origin.to_string(),
                    position: Some((line, column)),
                    message: "macros are not supported in message templates".into(),
                });
            }
            rest = &rest[at + 2..];
        }
    }
    None
}

/// Line and column from Tera's parse error (`--> 3:14`), and its explanation without the banner.
fn parse_error(origin: &str, err: &tera::Error) -> TemplateError {
    let text = error_chain(err);
    let position = text.lines().find_map(|l| {
        let rest = l.trim_start().strip_prefix("--> ")?;
        let (line, col) = rest.trim().split_once(':')?;
        Some((line.parse().ok()?, col.parse().ok()?))
    });
    let detail = text
        .lines()
        .filter_map(|l| l.trim_start().strip_prefix("= "))
        .collect::<Vec<_>>()
        .join("; ");
    let message = if detail.is_empty() {
        text.lines().next().unwrap_or("syntax error").to_string()
    } else {
        format!("syntax error: {detail}")
    };
    TemplateError {
        origin: origin.to_string(),
        position,
        message,
    }
}

/// Every message in an error's chain, one per line (Tera puts the useful part in the sources).
pub fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        text.push('\n');
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

impl Templates {
    /// Compiles every template of the campaign; returns every syntax error, not just the first.
    pub fn compile(campaign: &Campaign) -> Result<Templates, Vec<TemplateError>> {
        let mut tera = Tera::default();
        tera.autoescape_on(vec![".html"]);
        tera.register_filter("or_else", or_else);
        tera.register_function("range", bounded_range);
        let body_name = match campaign.body_format {
            BodyFormat::Html => BODY_HTML,
            BodyFormat::Text => BODY_TEXT,
        };
        let mut sources: Vec<(&'static str, &TemplateSource)> =
            vec![(body_name, &campaign.body), (TO_ID, &campaign.to_id)];
        if let Some(subject) = &campaign.subject {
            sources.insert(0, (SUBJECT, subject));
        }
        let mut errors = Vec::new();
        for (name, src) in &sources {
            if let Some(e) = macro_error(&src.origin, &src.source) {
                errors.push(e);
                continue;
            }
            if let Err(e) = tera.add_raw_template(name, &route_default(&src.source)) {
                errors.push(parse_error(&src.origin, &e));
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(Templates {
            tera,
            body_name,
            has_subject: campaign.subject.is_some(),
            origins: sources
                .iter()
                .map(|(n, s)| (*n, s.origin.clone()))
                .collect(),
        })
    }

    /// Variables the templates read that are neither CSV columns nor `row`, each with the
    /// template it is in and the closest column name. Every branch counts, taken or not.
    pub fn unknown_variables(&self, columns: &[String]) -> Vec<(String, String, Option<String>)> {
        let mut found = Vec::new();
        for (name, origin) in &self.origins {
            let Some(template) = self.tera.templates.get(*name) else {
                continue;
            };
            for var in crate::vars::free_variables(&template.ast) {
                if var != "row" && !columns.contains(&var) {
                    let suggestion = closest(&var, columns);
                    found.push((origin.clone(), var, suggestion));
                }
            }
        }
        found
    }

    /// The templates ready to render rows of a CSV with these columns: each one compiled where
    /// it can be (see `compiled`), rendered by Tera where not.
    pub fn plan(&self, columns: &[String]) -> Plan<'_> {
        let compile = |name: &str| Compiled::new(&self.tera, name, columns, name == BODY_HTML);
        Plan {
            templates: self,
            columns: columns.to_vec(),
            subject: self.has_subject.then(|| compile(SUBJECT)),
            body: compile(self.body_name),
            to_id: compile(TO_ID),
        }
    }

    /// A plan that renders every row with Tera: the reference the compiled form is tested and
    /// benchmarked against.
    pub fn plan_with_tera_only(&self, columns: &[String]) -> Plan<'_> {
        Plan {
            templates: self,
            columns: columns.to_vec(),
            subject: self.has_subject.then_some(None),
            body: None,
            to_id: None,
        }
    }

    /// Renders template `name` with Tera; on error, the template's origin and Tera's cause.
    fn render_with_tera(&self, name: &str, ctx: &Context) -> Result<String, (String, String)> {
        self.tera.render(name, ctx).map_err(|e| {
            let origin = self
                .origins
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, o)| o.clone())
                .unwrap_or_default();
            let chain = error_chain(&e);
            // The first line only repeats "Failed to render 'x'"; the cause follows.
            let cause = chain.lines().skip(1).collect::<Vec<_>>().join(": ");
            (origin, if cause.is_empty() { chain } else { cause })
        })
    }
}

/// The campaign's templates bound to one CSV's columns.
pub struct Plan<'t> {
    templates: &'t Templates,
    columns: Vec<String>,
    /// `None`: no subject; `Some(None)`: Tera renders it.
    subject: Option<Option<Compiled<'t>>>,
    body: Option<Compiled<'t>>,
    to_id: Option<Compiled<'t>>,
}

impl Plan<'_> {
    /// Renders one row. `fields` are the row's cells in header order, `row` its record number.
    pub fn render(&self, fields: &[&str], row: u64) -> Result<Rendered, (String, String)> {
        let mut out = Rendered::default();
        self.render_into(fields, row, &mut out)?;
        Ok(out)
    }

    /// `render` into `out`, reusing its buffers: what a pass over many rows does.
    pub fn render_into(
        &self,
        fields: &[&str],
        row: u64,
        out: &mut Rendered,
    ) -> Result<(), (String, String)> {
        // Built only if a template needs Tera: it is most of Tera's cost per row.
        let mut ctx: Option<Context> = None;
        let mut one = |name: &str,
                       compiled: &Option<Compiled<'_>>,
                       buf: &mut String|
         -> Result<Option<crate::compiled::Path>, (String, String)> {
            buf.clear();
            if let Some(compiled) = compiled {
                buf.reserve(compiled.size_hint());
                if let Ok(path) = compiled.render(fields, row, buf) {
                    return Ok(Some(path));
                }
                buf.clear();
            }
            let ctx = ctx.get_or_insert_with(|| {
                let mut ctx = Context::new();
                for (name, value) in self.columns.iter().zip(fields) {
                    ctx.insert(name.as_str(), value);
                }
                ctx.insert("row", &row);
                ctx
            });
            buf.push_str(&self.templates.render_with_tera(name, ctx)?);
            Ok(None)
        };
        match &self.subject {
            Some(compiled) => {
                one(
                    SUBJECT,
                    compiled,
                    out.subject.get_or_insert_with(String::new),
                )?;
            }
            None => out.subject = None,
        }
        let path = one(self.templates.body_name, &self.body, &mut out.body)?;
        out.html = match (&self.body, path) {
            (Some(compiled), Some(path)) => compiled.html_verdict(&path),
            _ => None,
        };
        one(TO_ID, &self.to_id, &mut out.to_id)?;
        trim_in_place(&mut out.to_id);
        Ok(())
    }

    /// Which of the templates render without Tera (by origin), for tests and benchmarks.
    pub fn compiled(&self) -> Vec<&str> {
        let names = [
            (SUBJECT, self.subject.as_ref().is_some_and(Option::is_some)),
            (self.templates.body_name, self.body.is_some()),
            (TO_ID, self.to_id.is_some()),
        ];
        names
            .iter()
            .filter(|(_, compiled)| *compiled)
            .filter_map(|(name, _)| {
                self.templates
                    .origins
                    .iter()
                    .find(|(n, _)| n == name)
                    .map(|(_, o)| o.as_str())
            })
            .collect()
    }
}

/// A row's rendered texts, before validation.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Rendered {
    pub subject: Option<String>,
    pub body: String,
    pub to_id: String,
    /// What the HTML check finds in `body`, when the compiled template knows it without looking
    /// (`Compiled::html_verdict`); `None` when the body must be checked.
    pub html: Option<Option<String>>,
}

impl Rendered {
    pub fn into_request(self, campaign: &Campaign) -> MessageRequest {
        MessageRequest {
            message_type: campaign.message_type.as_api(),
            subject: match campaign.message_type {
                MessageType::Email => self.subject,
                MessageType::InApp => None,
            },
            body: {
                let mut body = self.body;
                body.truncate(body.trim_end().len());
                body
            },
            template: campaign.template.clone(),
            from: Admin {
                kind: "admin",
                id: campaign.from,
            },
            to: Recipient {
                kind: campaign.to_type.clone(),
                id: self.to_id,
            },
            create_conversation_without_contact_reply: campaign
                .create_conversation_without_contact_reply,
        }
    }
}

/// Removes `text`'s surrounding whitespace, in place.
fn trim_in_place(text: &mut String) {
    text.truncate(text.trim_end().len());
    let start = text.len() - text.trim_start().len();
    if start > 0 {
        text.drain(..start);
    }
}

/// The column closest to a misspelt variable, if any is close enough to be a likely typo.
pub fn closest(name: &str, columns: &[String]) -> Option<String> {
    columns
        .iter()
        .map(|c| (strsim::damerau_levenshtein(name, c), c))
        .filter(|(d, c)| *d <= 2.max(c.len() / 3))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_default_keeping_positions() {
        let src = "{{ a | default(value='x') }} {{b|default (value=1)}} {{ c | defaults }}";
        let out = route_default(src);
        assert_eq!(out.len(), src.len());
        assert_eq!(
            out,
            "{{ a | or_else(value='x') }} {{b|or_else (value=1)}} {{ c | defaults }}"
        );
    }

    #[test]
    fn suggests_close_columns() {
        let cols = vec!["first_name".to_string(), "plan".to_string()];
        assert_eq!(closest("frist_name", &cols), Some("first_name".into()));
        assert_eq!(closest("zzzzzz", &cols), None);
    }
}
