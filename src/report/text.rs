//! The report for a terminal: a few small tables, and messages per minute as a one-line chart.
use std::fmt::Write as _;

use comfy_table::{presets, CellAlignment, ContentArrangement, Table};

use super::{human_duration, shown, ResultsReport};

pub(crate) fn render(r: &ResultsReport) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "Results: {} ({} rows)", r.results, r.rows);
    if r.rehearsal {
        let _ = writeln!(
            out,
            "a rehearsal: every run went to the sandbox, and no message reached Intercom"
        );
    }
    let _ = writeln!(out);
    out.push_str(&counts(r));
    if let Some(run) = &r.run {
        let mut t = table(&[]);
        let mut rows = vec![
            ("started", run.started_at.clone()),
            ("ended", run.ended_at.clone()),
            ("duration", human_duration(run.duration_seconds)),
            ("achieved rate", format!("{:.2}/s", run.rate_per_second)),
        ];
        if let Some(n) = run.runs.filter(|n| *n > 1) {
            rows[2].1.push_str(&format!(" over {n} runs"));
        }
        match (run.rate_limited, run.paused_seconds) {
            (Some(n), Some(p)) => rows.push((
                "429 pauses",
                format!("{n} answers were 429; senders paused {}", human_duration(p)),
            )),
            _ => rows.push((
                "429 pauses",
                "not recorded (no run log beside the results file)".into(),
            )),
        }
        for (k, v) in rows {
            t.add_row(vec![k.to_string(), v]);
        }
        let _ = writeln!(out, "\n{t}");
        let _ = writeln!(out, "(times from the {})", run.source);
    }
    if let Some(pm) = &r.per_minute {
        let values: Vec<f64> = pm.points.iter().map(|p| p.messages_per_minute).collect();
        let peak = values.iter().copied().fold(0.0, f64::max);
        let _ = writeln!(
            out,
            "\nmessages per minute ({} s buckets, peak {peak:.0}/min):\n{}",
            pm.bucket_seconds,
            sparkline(&values)
        );
    }
    if let Some(replies) = &r.replies {
        out.push_str(&crate::track::replies_text(replies));
    }
    out.push_str(&errors(r));
    out.push_str(&unknown(r));
    out
}

fn table(header: &[&str]) -> Table {
    let mut t = Table::new();
    t.load_preset(presets::UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Dynamic)
        .set_width(120);
    if !header.is_empty() {
        t.set_header(header.iter().copied());
    }
    t
}

fn counts(r: &ResultsReport) -> String {
    let mut t = table(&["status", "rows", "share"]);
    for (name, n, share) in r.counts.shares(r.rows) {
        t.add_row(vec![
            name.to_string(),
            n.to_string(),
            format!("{share:.1} %"),
        ]);
    }
    for col in 1..3 {
        if let Some(c) = t.column_mut(col) {
            c.set_cell_alignment(CellAlignment::Right);
        }
    }
    format!("{t}\n")
}

fn errors(r: &ResultsReport) -> String {
    if r.errors.is_empty() {
        return String::new();
    }
    let mut t = table(&[
        "status",
        "error code",
        "rows",
        "HTTP",
        "message",
        "example rows",
    ]);
    for g in &r.errors {
        let examples = g
            .examples
            .iter()
            .map(|e| match &e.contact {
                Some(c) => format!("{} ({})", e.row, shown(c)),
                None => format!("{} ({})", e.row, shown(&e.recipient)),
            })
            .collect::<Vec<_>>()
            .join("\n");
        t.add_row(vec![
            format!("{:?}", g.status).to_lowercase(),
            shown(&g.error_code).into_owned(),
            g.count.to_string(),
            g.http_status.map(|s| s.to_string()).unwrap_or_default(),
            shown(&g.message).into_owned(),
            examples,
        ]);
    }
    format!("\nerrors by code:\n{t}\n")
}

fn unknown(r: &ResultsReport) -> String {
    if r.unknown.is_empty() {
        return String::new();
    }
    let mut t = table(&["row", "recipient", "what to do"]);
    for u in &r.unknown {
        let who = match &u.contact {
            Some(c) => format!("{}\n{}", shown(&u.recipient), shown(c)),
            None => shown(&u.recipient).into_owned(),
        };
        t.add_row(vec![u.row.to_string(), who, u.advice.clone()]);
    }
    format!(
        "\n{}: the request may have reached Intercom.{}\n{t}\n",
        crate::counted(r.counts.unknown, "unknown row"),
        super::listed_note(r)
    )
}

/// Values as block characters, one per value, scaled to the largest.
fn sparkline(values: &[f64]) -> String {
    const BARS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
    let peak = values.iter().copied().fold(0.0, f64::max);
    values
        .iter()
        .map(|v| {
            if peak <= 0.0 {
                BARS[0]
            } else {
                BARS[((v / peak) * 7.0).round() as usize]
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sparkline_scales_to_the_peak() {
        assert_eq!(sparkline(&[0.0, 50.0, 100.0]), "▁▅█");
        assert_eq!(sparkline(&[0.0, 0.0]), "▁▁");
    }
}
