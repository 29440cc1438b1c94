//! The report as one self-contained page; the messages-per-minute chart is inline SVG drawn by
//! plotters (its SVG backend writes to a string; text is left to the browser's fonts).
use std::fmt::Write as _;

use plotters::prelude::*;

use super::{human_duration, shown, PerMinute, ResultsReport};
use crate::page::{escape, page};

pub(crate) fn render(r: &ResultsReport) -> String {
    let mut body = String::new();
    body.push_str(&counts(r));
    body.push_str(&run(r));
    if let Some(replies) = &r.replies {
        body.push_str(&crate::track::replies_html(replies));
    }
    body.push_str(&errors(r));
    body.push_str(&unknown(r));
    let mut subtitle = match &r.campaign {
        Some(c) => format!("{} rows · campaign {c}", r.rows),
        None => format!("{} rows", r.rows),
    };
    if r.rehearsal {
        subtitle.push_str(" · a rehearsal against the sandbox: nothing reached Intercom");
    }
    page(&format!("Report: {}", r.results), &subtitle, &body)
}

fn counts(r: &ResultsReport) -> String {
    let mut out = String::from(
        "<section id=\"counts\"><h2>Rows by status</h2><table><tr><th>status</th><th>rows</th><th>share</th></tr>",
    );
    for (name, n, share) in r.counts.shares(r.rows) {
        let _ = write!(
            out,
            "<tr><td><span class=\"badge {name}\">{name}</span></td><td class=\"n\" data-status=\"{name}\">{n}</td><td class=\"n\">{share:.1} %</td></tr>"
        );
    }
    let _ = writeln!(
        out,
        "<tr><th>total</th><td class=\"n\" data-status=\"total\">{}</td><td></td></tr></table></section>",
        r.rows
    );
    out
}

fn run(r: &ResultsReport) -> String {
    let Some(run) = &r.run else {
        return String::new();
    };
    let mut out = String::from("<section id=\"run\"><h2>The run</h2><table>");
    let mut duration = human_duration(run.duration_seconds);
    if let Some(n) = run.runs.filter(|n| *n > 1) {
        duration.push_str(&format!(" over {n} runs"));
    }
    let pauses = match (run.rate_limited, run.paused_seconds) {
        (Some(n), Some(p)) => format!("{n} answers were 429; senders paused {}", human_duration(p)),
        _ => "not recorded (no run log beside the results file)".to_string(),
    };
    for (k, v) in [
        ("started", run.started_at.clone()),
        ("ended", run.ended_at.clone()),
        ("duration", duration),
        ("achieved rate", format!("{:.2}/s", run.rate_per_second)),
        ("429 pauses", pauses),
    ] {
        let _ = write!(out, "<tr><th>{k}</th><td>{}</td></tr>", escape(&v));
    }
    let _ = write!(
        out,
        "</table><p class=\"note\">Times from the {}.</p>",
        run.source
    );
    if let Some(pm) = &r.per_minute {
        let _ = write!(
            out,
            "<h2>Messages per minute</h2><p class=\"note\">sent rows in {} s buckets, scaled to a minute</p><div id=\"chart\">{}</div>",
            pm.bucket_seconds,
            chart(pm)
        );
    }
    out.push_str("</section>\n");
    out
}

/// The chart as an `<svg>` element. Times on the x axis are seconds from the first bucket,
/// labelled as UTC clock times.
fn chart(pm: &PerMinute) -> String {
    let mut svg = String::new();
    let points: Vec<(f64, f64)> = pm
        .points
        .iter()
        .enumerate()
        .map(|(i, p)| ((i as i64 * pm.bucket_seconds) as f64, p.messages_per_minute))
        .collect();
    let start = pm.points.first().map(|p| p.at.clone()).unwrap_or_default();
    let x_end = (points.len() as i64 * pm.bucket_seconds) as f64;
    let y_end = points.iter().map(|p| p.1).fold(1.0, f64::max) * 1.15;
    let drawn = (|| -> Result<(), Box<dyn std::error::Error>> {
        let root = SVGBackend::with_string(&mut svg, (960, 300)).into_drawing_area();
        root.fill(&WHITE)?;
        let mut c = ChartBuilder::on(&root)
            .margin(12)
            .margin_right(36)
            .x_label_area_size(34)
            .y_label_area_size(56)
            .build_cartesian_2d(0f64..x_end, 0f64..y_end)?;
        c.configure_mesh()
            .x_labels((points.len() + 1).min(10))
            .light_line_style(RGBColor(238, 240, 243))
            .x_desc("time (UTC)")
            .y_desc("messages / min")
            .x_label_formatter(&|x| clock(&start, *x))
            .y_label_formatter(&|y| format!("{y:.0}"))
            .draw()?;
        // Each bucket drawn as a step: its rate holds from its start to the next one's.
        let steps = points.iter().enumerate().flat_map(|(i, (x, y))| {
            let next = points
                .get(i + 1)
                .map_or(x + pm.bucket_seconds as f64, |p| p.0);
            [(*x, *y), (next, *y)]
        });
        c.draw_series(
            AreaSeries::new(steps, 0.0, RGBColor(37, 99, 235).mix(0.25))
                .border_style(RGBColor(37, 99, 235).stroke_width(2)),
        )?;
        root.present()?;
        Ok(())
    })();
    match drawn {
        Ok(()) => svg,
        Err(e) => format!(
            "<p class=\"err\">the chart could not be drawn: {}</p>",
            escape(&e.to_string())
        ),
    }
}

/// `start` (RFC 3339) plus `offset` seconds, as `HH:MM:SS`.
fn clock(start: &str, offset: f64) -> String {
    start
        .parse::<jiff::Timestamp>()
        .ok()
        .and_then(|t| {
            let offset = jiff::SignedDuration::try_from_secs_f64(offset).ok()?;
            t.checked_add(offset).ok()
        })
        .map(|t| t.strftime("%H:%M:%S").to_string())
        .unwrap_or_else(|| format!("+{offset:.0}s"))
}

fn errors(r: &ResultsReport) -> String {
    if r.errors.is_empty() {
        return String::new();
    }
    let mut out = String::from(
        "<section id=\"errors\"><h2>Errors by code</h2><table><tr><th>status</th><th>error code</th>\
         <th>rows</th><th>HTTP</th><th>message</th><th>example rows</th></tr>",
    );
    for g in &r.errors {
        let status = format!("{:?}", g.status).to_lowercase();
        let examples = g
            .examples
            .iter()
            .map(|e| {
                let who = e.contact.as_deref().unwrap_or(&e.recipient);
                format!(
                    "row {} <span class=\"mono\">{}</span>",
                    e.row,
                    escape(&shown(who))
                )
            })
            .collect::<Vec<_>>()
            .join("<br>");
        let examples = format!("<span class=\"examples\">{examples}</span>");
        let _ = write!(
            out,
            "<tr data-code=\"{}\"><td><span class=\"badge {status}\">{status}</span></td><td><code>{}</code></td>\
             <td class=\"n\">{}</td><td>{}</td><td>{}</td><td>{examples}</td></tr>",
            escape(&shown(&g.error_code)),
            escape(&shown(&g.error_code)),
            g.count,
            g.http_status.map(|s| s.to_string()).unwrap_or_default(),
            escape(&shown(&g.message)),
        );
    }
    out.push_str("</table></section>\n");
    out
}

fn unknown(r: &ResultsReport) -> String {
    if r.unknown.is_empty() {
        return String::new();
    }
    let mut out = format!(
        "<section id=\"unknown\"><h2>{}</h2><p>The request may have reached Intercom: \
         check each before sending it again.{}</p><table><tr><th>row</th><th>recipient</th><th>what happened, what to do</th></tr>",
        crate::counted(r.counts.unknown, "unknown row"),
        super::listed_note(r)
    );
    for u in &r.unknown {
        let who = match &u.contact {
            Some(c) => format!("{}<br>{}", escape(&shown(&u.recipient)), escape(&shown(c))),
            None => escape(&shown(&u.recipient)),
        };
        let _ = write!(
            out,
            "<tr><td class=\"n\">{}</td><td class=\"mono\">{who}</td><td>{}</td></tr>",
            u.row,
            escape(&u.advice)
        );
    }
    out.push_str("</table></section>\n");
    out
}
