//! A server that misbehaves on purpose: it writes formulas into the cells a spreadsheet opens.
//! The binary is driven against it and judged by its results file.
mod common;

use std::sync::Arc;

use common::*;
use serde_json::json;

/// A campaign that goes on however many rows fail, one request at a time.
fn patient_campaign(extra: &str) -> String {
    email_campaign(&format!(
        "max_failures = 1000\nmax_failure_share = 1.0\n{extra}"
    ))
    .replace("concurrency = 4", "concurrency = 1")
}

// ---- 11: cells a spreadsheet opens as text ---------------------------------------------------

/// The characters that make a spreadsheet run a cell.
const FORMULA_FIRST: [char; 6] = ['=', '+', '-', '@', '\t', '\r'];

/// Every cell of the results file as written (header included), and the value it holds.
fn cells(path: &std::path::Path) -> Vec<Vec<String>> {
    let mut rdr = csv::ReaderBuilder::new()
        .has_headers(false)
        .from_path(path)
        .unwrap();
    rdr.records()
        .map(|r| r.unwrap().iter().map(str::to_string).collect())
        .collect()
}

fn value(cell: &str) -> &str {
    cell.strip_prefix('\'').unwrap_or(cell)
}

#[test]
fn results_open_safely_in_a_spreadsheet_and_resume_reads_them_back_exactly() {
    let recipients = ["=1+1", "+15550100", "-5", "@admin", "'quoted", "plain"];
    let mut csv = String::from("intercom_id,first_name,plan,company\n");
    for r in recipients {
        csv.push_str(&format!("\"{}\",Ann,pro,Acme\n", r.replace('"', "\"\"")));
    }
    let f = Fixture::new(&csv, &patient_campaign(""));
    let first_run = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let first = Arc::clone(&first_run);
    let server = TestServer::start(Arc::new(move |r, _| {
        let to = r.to_id();
        if !first.load(std::sync::atomic::Ordering::SeqCst) {
            return Reply::Json(
                200,
                json!({"type": "admin_message", "id": format!("m{to}")}),
            );
        }
        match to.as_str() {
            "=1+1" => Reply::Json(200, json!({"type": "admin_message", "id": "-1001"})),
            "+15550100" => error_reply(422, "+bad", "=cmd|' /C calc'!A0", "@req-1"),
            "-5" => error_reply(422, "parameter_invalid", "\t=1+1", "-req-2"),
            "@admin" => error_reply(400, "parameter_invalid", "\r=HYPERLINK(\"http://x\")", "r3"),
            "'quoted" => Reply::Json(200, json!({"type": "admin_message", "id": "'m"})),
            _ => ok_reply(r),
        }
    }));
    f.send(&server, &[]).code(1);

    let mut written = cells(&f.results());
    written[1..].sort_by_key(|l| l[0].parse::<u32>().unwrap());
    for line in &written {
        for cell in line {
            assert!(
                !cell.starts_with(FORMULA_FIRST),
                "a spreadsheet would run {cell:?} in {line:?}"
            );
        }
    }
    // Each value reads back as it was: the recipient as rendered, the server's text as sent.
    let rows = &written[1..];
    let got: Vec<[&str; 5]> = rows
        .iter()
        .map(|l| [1, 3, 5, 6, 7].map(|i| value(&l[i])))
        .collect();
    assert_eq!(
        got,
        [
            ["=1+1", "-1001", "", "", ""],
            ["+15550100", "", "+bad", "=cmd|' /C calc'!A0", "@req-1"],
            ["-5", "", "parameter_invalid", "\t=1+1", "-req-2"],
            [
                "@admin",
                "",
                "parameter_invalid",
                "\r=HYPERLINK(\"http://x\")",
                "r3"
            ],
            ["'quoted", "'m", "", "", ""],
            ["plain", "msg-plain", "", "", ""],
        ]
    );

    // Resume compares the recipients it reads back with freshly rendered ones: any difference
    // would refuse the resume. It sends the three failed rows again, and only those.
    first_run.store(false, std::sync::atomic::Ordering::SeqCst);
    let before = server.requests().len();
    f.send(&server, &["--resume"]).success();
    let again: Vec<String> = server.requests()[before..]
        .iter()
        .map(|r| r.to_id())
        .collect();
    assert_eq!(again, ["+15550100", "-5", "@admin"]);
    let mut after = cells(&f.results());
    // Compacting keeps each row's last line where it was written: the resumed rows come last.
    after[1..].sort_by_key(|l| l[0].parse::<u32>().unwrap());
    let statuses: Vec<(&str, &str)> = after[1..]
        .iter()
        .map(|l| (value(&l[1]), l[2].as_str()))
        .collect();
    assert_eq!(
        statuses,
        recipients.iter().map(|r| (*r, "sent")).collect::<Vec<_>>()
    );
}
