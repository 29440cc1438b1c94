//! `preview --html` and `report`, as files and terminal output (tests/it/browser.rs renders the same
//! pages in Chromium).
use crate::pages_fixtures;

use pages_fixtures::*;
use predicates::prelude::*;
use serde_json::{json, Value};

#[test]
fn preview_html_shows_one_row_per_path_and_every_row_with_a_warning() {
    let d = variants_campaign();
    d.cmd()
        .args(["preview", "campaign.toml", "--html", "preview.html"])
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "wrote preview.html: 4 of 6 rows (3 paths through the templates' ifs, 1 row with warnings or errors)",
        ))
        .stderr(predicate::str::contains("record 5, line 6, column `company`"));
    let html = d.read("preview.html");
    // Rows 1, 2 and 4 are the first on the pro, starter and enterprise paths; 5 has a warning.
    assert_eq!(rows_on_page(&html), ROWS_SHOWN_BY_DEFAULT);
    assert!(html.contains("the cell holds a line break"));
    assert!(html.contains("{% elif plan == &quot;enterprise&quot; %}"));
}

#[test]
fn preview_html_shows_where_a_default_applies_and_the_duplicates_with_the_files_true_row_count() {
    let d = variants_campaign();
    let campaign = d
        .read("campaign.toml")
        .replace(
            "Welcome, {{ first_name }}",
            "Welcome, {{ first_name | default(value='friend') }}",
        )
        .replace("[to]", "[send]\nduplicates = \"skip\"\n\n[to]");
    d.write("campaign.toml", campaign);
    let mut csv = String::from("id,first_name,email,company,plan,note\n");
    for i in 1..=30 {
        // Row 7 has no name; rows 12 and 20 have row 3's recipient.
        let id = match i {
            12 | 20 => 3,
            _ => i,
        };
        let name = if i == 7 {
            String::new()
        } else {
            format!("P{i}")
        };
        csv.push_str(&format!("u{id},{name},p{i}@example.com,Co,pro,\n"));
    }
    d.write("people.csv", csv);
    d.cmd()
        .args(["preview", "campaign.toml", "--html", "preview.html"])
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "wrote preview.html: 4 of 30 rows (1 path through the templates' ifs, 0 rows with warnings or errors); a `default` gives its fallback in 1 row; 2 rows with the recipient of an earlier row",
        ));
    let html = d.read("preview.html");
    // Row 1 is the path's first; 7 has the fallback, 12 and 20 are duplicates.
    assert_eq!(rows_on_page(&html), [1, 7, 12, 20]);
    assert!(html.contains("· 4 of 30 rows"), "{html}");
    assert!(
        html.contains(
            "A <code>default</code> gives its fallback in 1 row: row 7 (first_name empty)."
        ),
        "{html}"
    );
    assert!(html.contains("Welcome, friend"), "{html}");
    assert!(html.contains("A <code>default</code> gives its fallback: first_name is empty."));
    assert!(html.contains(
        "<li>rows 3, 12, 20 (user u3): row 3 is sent, rows 12, 20 recorded `skipped` (duplicate)</li>"
    ), "{html}");
    assert!(html.contains("Row 3 has this recipient."), "{html}");
    assert!(
        html.contains("<span class=\"badge unknown\">recipient of row 3</span>"),
        "{html}"
    );
    // --limit shows the first rows, and the whole file's facts all the same.
    d.cmd()
        .args([
            "preview",
            "campaign.toml",
            "--html",
            "one.html",
            "--limit",
            "1",
        ])
        .assert()
        .success()
        .stdout(predicate::str::contains("one.html: 1 of 30 rows"));
    let html = d.read("one.html");
    assert_eq!(rows_on_page(&html), [1]);
    assert!(html.contains("row 7 (first_name empty)"), "{html}");
    assert!(html.contains("rows 3, 12, 20 (user u3)"), "{html}");
}

#[test]
fn preview_html_escapes_every_value_and_sandboxes_every_body() {
    let d = variants_campaign();
    d.cmd()
        .args(["preview", "campaign.toml", "--html", "preview.html"])
        .assert()
        .success();
    let html = d.read("preview.html");
    // No cell reaches the page as markup: not as a script, an image or an event handler.
    let lower = html.to_lowercase();
    assert!(!lower.contains("<script"), "{html}");
    assert!(!lower.contains("<img"), "{html}");
    assert!(!lower.contains(" onerror=\""), "{html}");
    // But each is there as text: the subject, the CSV values and the body's HTML source.
    assert!(html
        .contains("Welcome, &lt;img src=x onerror=&quot;document.title=&#39;pwned&#39;&quot;&gt;"));
    assert!(html.contains("&lt;script&gt;document.title=&#39;pwned&#39;&lt;/script&gt;"));
    assert!(html.contains("&amp;lt;") || html.contains("&lt;script&gt;document.body"));
    // Every body is a frame with no permissions, and the page has the policy.
    let frames = html.matches("<iframe").count();
    assert_eq!(frames, ROWS_SHOWN_BY_DEFAULT.len());
    assert_eq!(html.matches("<iframe sandbox=\"\" ").count(), frames);
    assert!(html.contains(
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src &#39;none&#39;;"
    ));
}

#[test]
fn preview_html_takes_row_and_limit_as_the_text_preview_does() {
    let d = variants_campaign();
    d.cmd()
        .args([
            "preview",
            "campaign.toml",
            "--html",
            "one.html",
            "--row",
            "3",
        ])
        .assert()
        .success();
    assert_eq!(rows_on_page(&d.read("one.html")), [3]);
    d.cmd()
        .args([
            "preview",
            "campaign.toml",
            "--html",
            "two.html",
            "--limit",
            "2",
        ])
        .assert()
        .success()
        .stdout(predicate::str::contains("two.html: 2 of 6 rows"));
    assert_eq!(rows_on_page(&d.read("two.html")), [1, 2]);
    d.cmd()
        .args([
            "preview",
            "campaign.toml",
            "--html",
            "none.html",
            "--row",
            "9",
        ])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("there is no record 9"));
    d.cmd()
        .args(["preview", "campaign.toml", "--html", "x.html", "--json"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("cannot be used with"));
}

#[test]
fn preview_html_of_a_text_body_shows_it_as_text() {
    let d = variants_campaign();
    d.write(
        "campaign.toml",
        r#"recipients = "people.csv"
[message]
message_type = "in_app"
from = 394051
body = "Hi {{ first_name }}: {{ note }}"
body_format = "text"
[to]
type = "user"
id = "{{ id }}"
"#,
    );
    d.cmd()
        .args(["preview", "campaign.toml", "--html", "p.html", "--row", "1"])
        .assert()
        .success();
    let html = d.read("p.html");
    assert!(!html.contains("<iframe"));
    assert!(html.contains("<pre class=\"text-body\">Hi &lt;img src=x"));
}

#[cfg(unix)]
#[test]
fn preview_open_hands_the_page_to_the_desktop_opener() {
    use std::os::unix::fs::PermissionsExt;
    let d = variants_campaign();
    let bin = d.path("bin");
    std::fs::create_dir(&bin).unwrap();
    let opened = d.path("opened.txt");
    let script = bin.join("xdg-open");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\n[ -n \"$1\" ] && echo \"$1\" >> '{}'\nexit 0\n",
            opened.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    d.cmd()
        .env("PATH", path)
        .args(["preview", "campaign.toml", "--html", "p.html", "--open"])
        .assert()
        .success();
    // The opener runs detached: give it time (generously) to write what it was given.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !opened.exists() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let got = std::fs::read_to_string(&opened).expect("xdg-open was not run");
    assert!(got.trim_end().ends_with("p.html"), "{got}");
    assert!(std::path::Path::new(got.trim_end()).is_absolute(), "{got}");
}

/// A results file as a resumed run leaves it before compaction (row 2 twice, the last line
/// holds), with a column added after the contract's ten, and a cell quoted for spreadsheets.
fn report_fixture() -> Dir {
    let d = variants_campaign();
    d.write(
        "results.csv",
        [
            format!("{RESULTS_HEADER},contact_id"),
            "1,u1,sent,m1,200,,,,1,2026-01-31T09:00:00.100Z,c1".into(),
            "2,u2,failed,,404,not_found,User Not Found,r2,1,2026-01-31T09:00:00.600Z,c2".into(),
            "3,u3,sent,m3,200,,,,1,2026-01-31T09:00:01.100Z,".into(),
            "4,u4,unknown,,500,server_error,'=HYPERLINK(\"x\"),r4,1,2026-01-31T09:00:01.600Z,".into(),
            "5,u5,failed,,404,not_found,User Not Found,r5,1,2026-01-31T09:01:05.000Z,".into(),
            "6,u6,unknown,,,interrupted,the run stopped while this request was in flight,,1,2026-01-31T09:01:10.000Z,".into(),
            "2,u2,sent,m2b,200,,,,1,2026-01-31T09:02:00.000Z,c2".into(),
        ]
        .join("\n")
            + "\n",
    );
    d
}

fn write_run_log(d: &Dir) {
    d.write(
        ".campaign/results.csv.runs.jsonl",
        concat!(
            r#"{"started_at":"2026-01-31T09:00:00.000Z","ended_at":"2026-01-31T09:01:10.000Z","target":"sandbox","rate":"50/s","sent":2,"failed":2,"unknown":2,"skipped":0,"rate_limited":3,"paused_ms":1500,"exit":1}"#,
            "\n",
            r#"{"started_at":"2026-01-31T09:02:00.000Z","ended_at":"2026-01-31T09:02:05.000Z","target":"sandbox","rate":"50/s","sent":1,"failed":0,"unknown":0,"skipped":0,"rate_limited":1,"paused_ms":500,"exit":1}"#,
            "\n"
        ),
    );
}

fn report_json(d: &Dir, extra: &[&str]) -> Value {
    let out = d
        .cmd()
        .args(["report", "results.csv", "--json"])
        .args(extra)
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    serde_json::from_slice(&out).unwrap()
}

#[test]
fn report_json_is_the_documented_shape() {
    let d = report_fixture();
    write_run_log(&d);
    let r = report_json(&d, &["--campaign", "campaign.toml"]);
    assert_eq!(r["report_version"], 1);
    assert_eq!(r["results"], "results.csv");
    assert_eq!(r["campaign"], "campaign.toml");
    assert_eq!(r["rows"], 6);
    assert_eq!(
        r["counts"],
        json!({"sent": 3, "failed": 1, "unknown": 2, "skipped": 0})
    );
    assert_eq!(
        r["errors"],
        json!([
            {"status": "unknown", "error_code": "interrupted", "count": 1, "http_status": null,
             "message": "the run stopped while this request was in flight",
             "examples": [{"row": 6, "recipient": "u6", "contact": "ken@example.com"}]},
            {"status": "failed", "error_code": "not_found", "count": 1, "http_status": 404,
             "message": "User Not Found",
             "examples": [{"row": 5, "recipient": "u5", "contact": "linus@example.com"}]},
            {"status": "unknown", "error_code": "server_error", "count": 1, "http_status": 500,
             "message": "=HYPERLINK(\"x\")",
             "examples": [{"row": 4, "recipient": "u4", "contact": "hedy@example.com"}]},
        ])
    );
    let unknown = r["unknown"].as_array().unwrap();
    assert_eq!(unknown.len(), 2);
    assert_eq!(unknown[0]["row"], 4);
    assert_eq!(unknown[0]["contact"], "hedy@example.com");
    assert_eq!(unknown[0]["http_status"], 500);
    assert_eq!(unknown[0]["finished_at"], "2026-01-31T09:00:01.600Z");
    let advice = unknown[0]["advice"].as_str().unwrap();
    assert!(advice.starts_with("Intercom answered 500"), "{advice}");
    assert!(
        advice.contains("u4 (hedy@example.com) around 2026-01-31T09:00:01.600Z"),
        "{advice}"
    );
    let row = unknown[0]["row"].as_u64().unwrap();
    assert!(advice.contains(&format!(
        "`campaign send campaign.toml --results results.csv --resume --retry-unknown {row}`"
    )));
    assert!(advice.contains(&format!(
        "`campaign mark results.csv --rows {row} --as sent --note \"found in Intercom\"`"
    )));
    assert!(unknown[1]["advice"]
        .as_str()
        .unwrap()
        .starts_with("the run stopped with this request in flight"));
    assert_eq!(
        r["run"],
        json!({"source": "run log", "runs": 2,
               "started_at": "2026-01-31T09:00:00.000Z", "ended_at": "2026-01-31T09:02:05.000Z",
               "duration_seconds": 75.0, "rate_per_second": 0.093,
               "rate_limited": 4, "paused_seconds": 2.0})
    );
    // Sent rows at 09:00:00.1, 09:00:01.1 and 09:02:00: two minutes in 2 s buckets.
    let pm = &r["per_minute"];
    assert_eq!(pm["bucket_seconds"], 2);
    let points = pm["points"].as_array().unwrap();
    assert_eq!(points.len(), 61);
    assert_eq!(
        points[0],
        json!({"at": "2026-01-31T09:00:00.000Z", "messages_per_minute": 60.0})
    );
    assert_eq!(points[1]["messages_per_minute"], 0.0);
    assert_eq!(
        points[60],
        json!({"at": "2026-01-31T09:02:00.000Z", "messages_per_minute": 30.0})
    );
}

#[test]
fn report_without_a_run_log_takes_times_from_the_results_file() {
    let d = report_fixture();
    let r = report_json(&d, &[]);
    assert_eq!(r["campaign"], Value::Null);
    assert_eq!(r["errors"][0]["examples"][0]["contact"], Value::Null);
    assert_eq!(
        r["run"],
        json!({"source": "results file", "runs": null,
               "started_at": "2026-01-31T09:00:00.100Z", "ended_at": "2026-01-31T09:02:00.000Z",
               "duration_seconds": 119.9, "rate_per_second": 0.05,
               "rate_limited": null, "paused_seconds": null})
    );
    d.cmd()
        .args(["report", "results.csv"])
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "not recorded (no run log beside the results file)",
        ));
}

#[test]
fn report_table_shows_counts_errors_with_contacts_and_what_to_do_about_unknown_rows() {
    let d = report_fixture();
    write_run_log(&d);
    let out = d
        .cmd()
        .args(["report", "results.csv", "--campaign", "campaign.toml"])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let text = String::from_utf8(out).unwrap();
    let line = |start: &str| {
        text.lines()
            .find(|l| l.trim_start_matches(['│', ' ']).starts_with(start))
            .unwrap_or_else(|| panic!("no line starting {start:?} in\n{text}"))
            .to_string()
    };
    assert!(line("sent").contains("┆    3 ┆ 50.0 %"), "{text}");
    assert!(line("unknown").contains("┆    2 ┆ 33.3 %"), "{text}");
    assert!(
        line("failed  ┆ not_found").contains("User Not Found"),
        "{text}"
    );
    assert!(
        line("failed  ┆ not_found").contains("5 (linus@example.com)"),
        "{text}"
    );
    assert!(
        line("429 pauses").contains("4 answers were 429; senders paused 2.0 s"),
        "{text}"
    );
    assert!(
        line("duration").contains("1 min 15 s over 2 runs"),
        "{text}"
    );
    assert!(text.contains("2 unknown rows: the request may have reached Intercom."));
    assert!(text.contains("hedy@example.com"));
    assert!(text.contains("messages per minute (2 s buckets, peak 60/min):\n█▁"));
}

#[test]
fn report_html_is_one_page_with_an_svg_chart_and_escaped_messages() {
    let d = report_fixture();
    write_run_log(&d);
    let hostile = "<img src=x onerror=\"document.title='pwned'\">";
    let results = d.read("results.csv").replace(
        "User Not Found,r5",
        &format!("\"{}\",r5", hostile.replace('"', "\"\"")),
    );
    d.write("results.csv", results);
    d.cmd()
        .args(["report", "results.csv", "--html", "report.html"])
        .assert()
        .success()
        .stderr(predicate::str::contains("wrote report.html"));
    let html = d.read("report.html");
    assert!(html.contains("Content-Security-Policy"));
    assert!(!html.to_lowercase().contains("<img"), "{html}");
    assert!(!html.to_lowercase().contains("<script"), "{html}");
    assert!(html.contains("&lt;img src=x onerror=&quot;document.title=&#39;pwned&#39;&quot;&gt;"));
    assert!(html.contains("<td class=\"n\" data-status=\"sent\">3</td>"));
    assert!(html.contains("<td class=\"n\" data-status=\"total\">6</td>"));
    let chart = &html[html.find("<div id=\"chart\">").expect("a chart")..];
    assert!(chart.starts_with("<div id=\"chart\"><svg"), "{chart}");
    assert!(chart.contains("messages / min"));
    assert!(chart.contains("09:00:00"));
}

/// A hand-edited results file: one cell of a million characters (each needing escaping on the
/// page, half of them two bytes long) as a failed row's message and as an unknown row's recipient,
/// among thousands of rows. The table and the page show a cut of it; `--json` keeps it whole.
#[test]
fn report_cuts_a_huge_cell_and_stays_proportional_to_the_rows() {
    const ROWS: u64 = 5_000;
    /// Characters of a value that the table and the page show (`send` keeps as many of each
    /// string Intercom sends).
    const SHOWN: usize = 1_000;
    let huge = "é<".repeat(500_000);
    let d = Dir::new();
    let mut csv = String::from(RESULTS_HEADER) + "\n";
    for row in 1..=ROWS {
        let at = format!("2026-01-31T09:{:02}:{:02}.000Z", row / 60 % 60, row % 60);
        let line = match row {
            7 => format!("7,u7,failed,,400,bad_request,\"{huge}\",r7,1,{at}"),
            8 => format!("8,\"{huge}\",unknown,,500,server_error,boom,r8,1,{at}"),
            _ if row % 100 == 0 => {
                format!("{row},u{row},failed,,404,not_found,User Not Found,r,1,{at}")
            }
            _ => format!("{row},u{row},sent,m{row},200,,,,1,{at}"),
        };
        csv.push_str(&line);
        csv.push('\n');
    }
    d.write("results.csv", csv);
    let table = d
        .cmd()
        .args(["report", "results.csv", "--html", "report.html"])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let html = d.read("report.html");
    // Bounded by the rows (most of them sent, which the page only counts), not by the cell.
    let limit = 100 * ROWS as usize + 64 * 1024;
    assert!(html.len() < limit, "{} bytes", html.len());
    assert!(table.len() < limit, "{} bytes", table.len());
    assert!(html.contains(&format!(
        "<td class=\"n\" data-status=\"total\">{ROWS}</td>"
    )));
    let cut = format!("{}…", "é&lt;".repeat(SHOWN / 2));
    let message = html
        .find("<tr data-code=\"bad_request\">")
        .expect("the row's error");
    assert!(html[message..].contains(&cut), "no cut message");
    let unknown = html
        .find("<section id=\"unknown\">")
        .expect("the unknown rows");
    assert!(html[unknown..].contains(&format!("<td class=\"mono\">{cut}</td>")));
    assert!(!html.contains(&"é&lt;".repeat(SHOWN / 2 + 1)));
    assert!(html.matches('é').count() <= 4 * SHOWN / 2);
    let table = String::from_utf8(table).unwrap();
    assert!(table.contains('…'), "no cut in the table");
    // The cell is in four places (message, example, recipient, advice), each cut.
    assert!(table.matches('é').count() <= 4 * SHOWN / 2);
    let r = report_json(&d, &[]);
    let bad_request = r["errors"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["error_code"] == "bad_request")
        .unwrap();
    assert_eq!(bad_request["message"].as_str(), Some(huge.as_str()));
    assert_eq!(r["unknown"][0]["recipient"].as_str(), Some(huge.as_str()));
}

#[test]
fn report_names_the_line_and_column_of_a_bad_results_file() {
    let d = report_fixture();
    let bad = d.read("results.csv").replace("5,u5,failed", "5,u5,maybe");
    d.write("results.csv", bad);
    d.cmd()
        .args(["report", "results.csv"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "results.csv: line 6 (row 5), column `status`: `maybe` is not one of sent, failed, unknown or skipped. Fix that cell",
        ));
    d.write("other.csv", "row,recipient\n1,u1\n");
    d.cmd()
        .args(["report", "other.csv"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "other.csv: this is not a results file of `campaign send`: its first line should name the columns row,recipient,status,",
        ));
    // A run log where an earlier version kept it (beside the results file) is read there.
    let d = report_fixture();
    d.write(
        "results.csv.runs.jsonl",
        "{\"started_at\":\"yesterday\",\"ended_at\":\"2026-01-31T09:01:10.000Z\"}\n",
    );
    d.cmd()
        .args(["report", "results.csv"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "results.csv.runs.jsonl: line 1: key `started_at`: `yesterday` is not an RFC 3339 time",
        ));
}

#[cfg(unix)]
#[test]
fn the_samples_script_writes_both_pages_from_a_sandbox_rehearsal() {
    let out = tempfile::tempdir().unwrap();
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("samples/pages.sh");
    assert_cmd::Command::new("sh")
        .arg(&script)
        .arg(out.path())
        .env("CAMPAIGN", assert_cmd::cargo::cargo_bin("campaign"))
        .env_remove("INTERCOM_TOKEN")
        .timeout(std::time::Duration::from_secs(180))
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "preview.html: 5 of 8 rows (4 paths",
        ))
        .stderr(predicate::str::contains(
            "sending 20 messages to http://127.0.0.1:",
        ));
    let preview = std::fs::read_to_string(out.path().join("preview.html")).unwrap();
    assert_eq!(rows_on_page(&preview), [1, 2, 3, 5, 6]);
    let report = std::fs::read_to_string(out.path().join("report.html")).unwrap();
    assert!(report.contains("<td class=\"n\" data-status=\"total\">20</td>"));
    assert!(report.contains("<div id=\"chart\"><svg"));
}
