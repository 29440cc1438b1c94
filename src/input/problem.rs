//! A problem found in a campaign's input, located well enough to fix it in one pass: the file, the
//! record and line, and the column or template involved.
use std::collections::BTreeMap;
use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    Error,
    Warning,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub severity: Severity,
    /// A short name for the kind of problem, used to count them: "template", "csv", "value", ...
    pub kind: &'static str,
    pub file: String,
    pub record: Option<u64>,
    pub line: Option<u64>,
    /// The CSV column, or the template, involved.
    pub column: Option<String>,
    pub message: String,
}

impl Problem {
    pub fn error(kind: &'static str, file: impl Into<String>, message: impl Into<String>) -> Self {
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

    pub fn warning(
        kind: &'static str,
        file: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
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
    pub counts: BTreeMap<(Severity, &'static str), u64>,
}

/// How many problems a report shows in full.
pub const SHOWN: usize = 50;

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
        let p = Problem::error("value", "a.csv", "empty")
            .at(3, 4)
            .column("column `email`");
        assert_eq!(
            p.to_string(),
            "error: a.csv: record 3, line 4, column `email`: empty"
        );
        let p = Problem::warning("csv", "a.csv", "spaces").line(1);
        assert_eq!(p.to_string(), "warning: a.csv: line 1: spaces");
    }

    #[test]
    fn keeps_fifty_and_counts_all() {
        let mut r = Report::default();
        for i in 0..60 {
            r.push(Problem::error("value", "a.csv", "x").at(i, i + 1));
        }
        assert_eq!(r.kept.len(), 50);
        assert!(r.render().contains("60 value errors"));
    }
}
