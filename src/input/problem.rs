//! A problem found in a campaign's input, located well enough to fix it in one pass: the file, the
//! record and line, and the column or template involved.
use std::collections::BTreeMap;
use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    Error,
    Warning,
}

/// What a problem is about. Callers branch on it (duplicates, a changed file, which errors a row
/// owns) and reports count by it; [`ProblemKind::as_str`] is how users see it: in the counts on
/// stderr and in a skipped row's status `invalid_<kind>` in the results file, so those names are
/// a contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProblemKind {
    /// The sandbox's admins file.
    Admins,
    /// The campaign file.
    Campaign,
    /// The CSV or the results file changed under the run.
    Changed,
    /// The CSV as a file: its header, a record that does not read.
    Csv,
    /// Rows that address the same recipient.
    Duplicate,
    /// An HTML body that does not balance.
    Html,
    /// A template that does not compile, or does not render for a row.
    Template,
    /// A rendered value that cannot be sent (recipient, subject, body).
    Value,
}

impl ProblemKind {
    /// The kind's name, as users read it.
    pub fn as_str(self) -> &'static str {
        match self {
            ProblemKind::Admins => "admins",
            ProblemKind::Campaign => "campaign",
            ProblemKind::Changed => "changed",
            ProblemKind::Csv => "csv",
            ProblemKind::Duplicate => "duplicate",
            ProblemKind::Html => "html",
            ProblemKind::Template => "template",
            ProblemKind::Value => "value",
        }
    }
}

impl fmt::Display for ProblemKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// By name: the report lists its counts in this order.
impl Ord for ProblemKind {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.as_str().cmp(other.as_str())
    }
}

impl PartialOrd for ProblemKind {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub severity: Severity,
    pub kind: ProblemKind,
    pub file: String,
    pub record: Option<u64>,
    pub line: Option<u64>,
    /// The CSV column, or the template, involved.
    pub column: Option<String>,
    pub message: String,
}

impl Problem {
    pub fn error(kind: ProblemKind, file: impl Into<String>, message: impl Into<String>) -> Self {
        Problem {
            severity: Severity::Error,
            kind,
            file: file.into(),
            record: None,
            line: None,
            column: None,
            message: message.into(),
        }
    }

    pub fn warning(kind: ProblemKind, file: impl Into<String>, message: impl Into<String>) -> Self {
        Problem {
            severity: Severity::Warning,
            ..Problem::error(kind, file, message)
        }
    }

    pub fn at(mut self, record: u64, line: u64) -> Self {
        self.record = Some(record);
        self.line = Some(line);
        self
    }

    pub fn line(mut self, line: u64) -> Self {
        self.line = Some(line);
        self
    }

    pub fn column(mut self, column: impl Into<String>) -> Self {
        self.column = Some(column.into());
        self
    }

    /// The problem without its `error:` or `warning:` label: for a message that has its own.
    pub fn located(&self) -> Located<'_> {
        Located(self)
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let label = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        write!(f, "{label}: {}", self.located())
    }
}

/// File, record, line, column and message: a problem as [`Problem::located`] shows it.
pub struct Located<'a>(&'a Problem);

impl fmt::Display for Located<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let p = self.0;
        write!(f, "{}", p.file)?;
        if let Some(r) = p.record {
            write!(f, ": record {r}")?;
        }
        if let Some(l) = p.line {
            write!(
                f,
                "{}line {l}",
                if p.record.is_some() { ", " } else { ": " }
            )?;
        }
        if let Some(c) = &p.column {
            write!(f, ", {c}")?;
        }
        write!(f, ": {}", p.message)
    }
}

/// Collects problems: the first `keep` in full, and a count of every kind.
#[derive(Debug, Default)]
pub struct Report {
    pub kept: Vec<Problem>,
    pub errors: u64,
    pub warnings: u64,
    pub counts: BTreeMap<(Severity, ProblemKind), u64>,
}

/// How many problems a report shows in full.
const SHOWN: usize = 50;

impl Report {
    pub fn push(&mut self, p: Problem) {
        match p.severity {
            Severity::Error => self.errors += 1,
            Severity::Warning => self.warnings += 1,
        }
        *self.counts.entry((p.severity, p.kind)).or_default() += 1;
        if self.kept.len() < SHOWN {
            self.kept.push(p);
        }
    }

    /// `other`'s problems after this report's, as if each had been pushed here: its kept ones
    /// while there is room (the first it was given), every one counted.
    pub fn append(&mut self, other: Report) {
        let room = SHOWN.saturating_sub(self.kept.len());
        self.kept.extend(other.kept.into_iter().take(room));
        self.errors += other.errors;
        self.warnings += other.warnings;
        for (key, n) in other.counts {
            *self.counts.entry(key).or_default() += n;
        }
    }

    pub fn has_errors(&self) -> bool {
        self.errors > 0
    }

    /// Every kept problem, one per line, then the counts when some were not shown.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for p in &self.kept {
            out.push_str(&p.to_string());
            out.push('\n');
        }
        let total = self.errors + self.warnings;
        if total > self.kept.len() as u64 {
            out.push_str(&format!(
                "... and {} more; all problems by kind:\n",
                total - self.kept.len() as u64
            ));
            for ((sev, kind), n) in &self.counts {
                let label = if *sev == Severity::Error {
                    "errors"
                } else {
                    "warnings"
                };
                out.push_str(&format!("  {n:>8} {kind} {label}\n"));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn displays_location() {
        let p = Problem::error(ProblemKind::Value, "a.csv", "empty")
            .at(3, 4)
            .column("column `email`");
        assert_eq!(
            p.to_string(),
            "error: a.csv: record 3, line 4, column `email`: empty"
        );
        let p = Problem::warning(ProblemKind::Csv, "a.csv", "spaces").line(1);
        assert_eq!(p.to_string(), "warning: a.csv: line 1: spaces");
    }

    #[test]
    fn keeps_fifty_and_counts_all() {
        let mut r = Report::default();
        for i in 0..60 {
            r.push(Problem::error(ProblemKind::Value, "a.csv", "x").at(i, i + 1));
        }
        assert_eq!(r.kept.len(), 50);
        assert!(r.render().contains("60 value errors"));
    }

    #[test]
    fn appending_a_report_is_pushing_its_problems() {
        let problem = |i: u64| match i % 3 {
            0 => Problem::warning(ProblemKind::Duplicate, "a.csv", format!("w{i}")),
            _ => Problem::error(ProblemKind::Value, "a.csv", format!("e{i}")),
        };
        for (before, after) in [(0, 0), (10, 30), (10, 70), (45, 20), (60, 5)] {
            let (mut pushed, mut appended, mut other) =
                (Report::default(), Report::default(), Report::default());
            for i in 0..before {
                pushed.push(problem(i));
                appended.push(problem(i));
            }
            for i in before..before + after {
                pushed.push(problem(i));
                other.push(problem(i));
            }
            appended.append(other);
            assert_eq!(appended.kept, pushed.kept, "{before} + {after}");
            assert_eq!(appended.render(), pushed.render(), "{before} + {after}");
        }
    }

    #[test]
    fn counts_are_listed_by_kind_name() {
        let mut r = Report::default();
        for kind in [ProblemKind::Value, ProblemKind::Csv, ProblemKind::Admins] {
            for i in 0..20 {
                r.push(Problem::error(kind, "a.csv", "x").at(i, i + 1));
            }
        }
        let text = r.render();
        let at = |name: &str| text.find(&format!(" {name} errors")).unwrap();
        assert!(
            at("admins") < at("csv") && at("csv") < at("value"),
            "{text}"
        );
    }
}
