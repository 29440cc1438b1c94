//! Templates: compiling the subject, body and recipient templates once per campaign (sealed and
//! bounded: see `seal`), finding variables that are not CSV columns, and rendering a row into the
//! exact request body.
pub mod filters;
pub mod html;
pub mod markdown;
pub mod seal;
pub mod tags;
pub mod vars;

use serde::Serialize;
use tera::{Context, Tera};

use crate::input::config::{BodyFormat, Campaign, MessageType, TemplateSource};

const SUBJECT: &str = "subject.txt";
const BODY_HTML: &str = "body.html";
const BODY_TEXT: &str = "body.txt";
const BODY_MD: &str = "body.md";
const TO_ID: &str = "to_id.txt";

/// A template problem found before any row is read: one of several that compiling reports at once.
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

impl std::error::Error for TemplateError {}

/// Why a row does not render: the template that failed and Tera's (or the seal's) reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{origin}: {message}")]
pub struct RenderError {
    /// The template's origin (a file, or the campaign file's key).
    pub origin: String,
    pub message: String,
}

/// A variable a template reads that is neither a CSV column nor one the templates always have.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownVariable {
    /// The template it is in.
    pub origin: String,
    /// Whether that template is a file of its own (see [`UnknownVariable::at`]).
    pub in_file: bool,
    /// Where the template first reads it: line and column, from 1, in the template's text.
    pub at: Option<(u64, u64)>,
    pub name: String,
    /// The closest name a template can use, if one is close enough to be a likely typo.
    pub suggestion: Option<String>,
}

/// The campaign's templates, compiled once.
pub struct Templates {
    tera: Tera,
    body_name: &'static str,
    has_subject: bool,
    sources: Vec<Source>,
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
fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        text.push('\n');
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// A campaign's template: its Tera name, where it came from, and whether it has hooks to budget
/// (`seal::render`).
struct Source {
    name: &'static str,
    origin: String,
    in_file: bool,
    /// The template's text, to say where a variable is read.
    text: String,
    hooks: bool,
}

impl Templates {
    /// Compiles every template of the campaign; returns every problem, not just the first.
    pub fn compile(campaign: &Campaign) -> Result<Templates, Vec<TemplateError>> {
        let mut tera = Tera::default();
        tera.autoescape_on(vec![".html", ".md"]);
        seal::register(&mut tera);
        let body_name = match campaign.body_format {
            BodyFormat::Html => BODY_HTML,
            BodyFormat::Text => BODY_TEXT,
            BodyFormat::Markdown => {
                // One body a campaign: the escape function is the Markdown body's.
                tera.set_escape_fn(crate::template::markdown::escape);
                BODY_MD
            }
        };
        let mut sources: Vec<(&'static str, &TemplateSource)> =
            vec![(body_name, &campaign.body), (TO_ID, &campaign.to_id)];
        if let Some(subject) = &campaign.subject {
            sources.insert(0, (SUBJECT, subject));
        }
        let mut errors = Vec::new();
        let mut compiled = Vec::new();
        for (name, src) in &sources {
            match compile_one(name, src) {
                Ok((template, hooks)) => {
                    tera.templates.insert(name.to_string(), template);
                    compiled.push(Source {
                        name,
                        origin: src.origin.clone(),
                        in_file: src.in_file,
                        text: src.source.clone(),
                        hooks,
                    });
                }
                Err(mut e) => errors.append(&mut e),
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(Templates {
            tera,
            body_name,
            has_subject: campaign.subject.is_some(),
            sources: compiled,
        })
    }

    /// Variables the templates read that are neither CSV columns nor `row` or `columns`, each
    /// with the template it is in and the closest name a template can use. Every branch counts,
    /// taken or not. `columns` are the CSV's headers.
    pub fn unknown_variables(&self, columns: &[String]) -> Vec<UnknownVariable> {
        let names = crate::template::vars::names_of(columns);
        let mut found = Vec::new();
        for source in &self.sources {
            let Some(template) = self.tera.templates.get(source.name) else {
                continue;
            };
            let writable: Vec<String> = names.iter().map(|n| n.0.clone()).collect();
            // Found only for a template that reads a name it cannot: one pass over its text.
            let mut places = None;
            for (var, path) in crate::template::vars::free_variable_paths(&template.ast) {
                if RESERVED.contains(&var.as_str()) || writable.contains(&var) {
                    continue;
                }
                // `user.name` for a header `user.name`: its name, `user_name`.
                let suggestion = crate::input::recipients::template_name(&path)
                    .filter(|name| path.contains('.') && writable.contains(name))
                    .or_else(|| closest(&var, &writable));
                found.push(UnknownVariable {
                    origin: source.origin.clone(),
                    in_file: source.in_file,
                    at: places
                        .get_or_insert_with(|| crate::template::tags::first_reads(&source.text))
                        .get(var.as_str())
                        .map(|&(line, column)| (line as u64, column as u64)),
                    name: var,
                    suggestion,
                });
            }
        }
        found
    }

    /// The templates ready to render rows of a CSV with these headers.
    pub fn plan(&self, columns: &[String]) -> BoundTemplates<'_> {
        let mut read = std::collections::BTreeSet::new();
        for source in &self.sources {
            if let Some(template) = self.tera.templates.get(source.name) {
                read.extend(crate::template::vars::names_read(&template.ast));
            }
        }
        let names = crate::template::vars::names_of(columns)
            .into_iter()
            .filter(|(name, _)| read.contains(name) && !RESERVED.contains(&name.as_str()))
            .collect();
        BoundTemplates {
            templates: self,
            headers: columns.to_vec(),
            names,
            by_header: read.contains(COLUMNS),
        }
    }

    fn source(&self, name: &str) -> &Source {
        self.sources
            .iter()
            .find(|s| s.name == name)
            .expect("a compiled template")
    }
}

/// Names the templates have besides the columns: the record number, and every cell by its header.
const ROW: &str = "row";
const COLUMNS: &str = "columns";
const RESERVED: [&str; 2] = [ROW, COLUMNS];

/// Parses one template and seals it (see `seal`).
fn compile_one(
    name: &str,
    src: &TemplateSource,
) -> Result<(tera::Template, bool), Vec<TemplateError>> {
    let tags = crate::template::tags::scan(&src.origin, &src.source).map_err(|e| vec![e])?;
    let mut template = tera::Template::new(name, None, &src.source).map_err(|e| {
        let e = tera::Error::chain(format!("Failed to parse '{name}'"), e);
        vec![parse_error(&src.origin, &e)]
    })?;
    let hooks = seal::seal(&src.origin, &tags, &mut template)?;
    Ok((template, hooks))
}

/// The campaign's templates bound to one CSV's columns.
pub struct BoundTemplates<'t> {
    templates: &'t Templates,
    headers: Vec<String>,
    /// The names the templates read, each with its column.
    names: Vec<(String, usize)>,
    /// Whether a template reads `columns` (each cell by its exact header).
    by_header: bool,
}

impl BoundTemplates<'_> {
    /// Renders one row. `fields` are the row's cells in header order, `row` its record number.
    pub fn render(&self, fields: &[&str], row: u64) -> Result<Rendered, RenderError> {
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
    ) -> Result<(), RenderError> {
        let ctx = self.context(fields, row);
        let one = |name: &str, buf: &mut String| -> Result<(), RenderError> {
            let source = self.templates.source(name);
            seal::render(&self.templates.tera, name, source.hooks, &ctx, buf).map_err(|message| {
                RenderError {
                    origin: source.origin.clone(),
                    message,
                }
            })
        };
        if self.templates.has_subject {
            one(SUBJECT, out.subject.get_or_insert_with(String::new))?;
        } else {
            out.subject = None;
        }
        if self.templates.body_name == BODY_MD {
            crate::template::markdown::begin();
            one(self.templates.body_name, &mut out.body)?;
            out.body = crate::template::markdown::to_html(&out.body);
        } else {
            one(self.templates.body_name, &mut out.body)?;
        }
        one(TO_ID, &mut out.to_id)?;
        trim_in_place(&mut out.to_id);
        Ok(())
    }

    /// The row as the templates see it: the columns they read, by name; `row`; and, if a template
    /// reads it, `columns`, every cell by its exact header.
    fn context(&self, fields: &[&str], row: u64) -> Context {
        let mut ctx = Context::new();
        for (name, i) in &self.names {
            ctx.insert(name.as_str(), fields.get(*i).copied().unwrap_or(""));
        }
        if self.by_header {
            let cells: serde_json::Map<String, serde_json::Value> = self
                .headers
                .iter()
                .zip(fields)
                .map(|(h, f)| (h.clone(), serde_json::Value::from(*f)))
                .collect();
            ctx.insert(COLUMNS, &cells);
        }
        ctx.insert(ROW, &row);
        ctx
    }
}

/// A row's rendered texts, before validation.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Rendered {
    pub subject: Option<String>,
    pub body: String,
    pub to_id: String,
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

/// The name closest to a misspelt one (a variable, a column, a filter), if any is close enough
/// to be a likely typo.
pub fn closest<S: AsRef<str>>(name: &str, names: impl IntoIterator<Item = S>) -> Option<String> {
    names
        .into_iter()
        .map(|c| (strsim::damerau_levenshtein(name, c.as_ref()), c))
        .filter(|(d, c)| *d <= 2.max(c.as_ref().len() / 3))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c.as_ref().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_close_columns() {
        let cols = vec!["first_name".to_string(), "plan".to_string()];
        assert_eq!(closest("frist_name", &cols), Some("first_name".into()));
        assert_eq!(closest("zzzzzz", &cols), None);
    }
}
