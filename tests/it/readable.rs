//! Results a person can read: chosen CSV columns copied into each results line after the fixed
//! columns, so that a failed row names its customer.
use crate::common;

use std::sync::Arc;

use common::*;
use predicates::prelude::*;

fn server() -> TestServer {
    TestServer::start(Arc::new(|r, _| {
        if r.to_id() == "id-2" {
            error_reply(422, "parameter_invalid", "bad", "req-2")
        } else {
            ok_reply(r)
        }
    }))
}

#[test]
fn chosen_columns_follow_the_fixed_ones_in_every_line() {
    let server = server();
    let csv = people_csv(3) + ",=HYPERLINK(\"x\"),pro,Evil Inc\n";
    let f = Fixture::new(
        &csv,
        &format!(
            "{}\n[results]\ncolumns = [\"first_name\", \"company\"]\n",
            email_campaign("")
        ),
    );
    f.send(&server, &["--skip-invalid"]).code(1);
    let text = std::fs::read_to_string(f.results()).unwrap();
    assert!(text.starts_with(
        "row,recipient,status,message_id,http_status,error_code,error_message,request_id,attempts,finished_at,contact_id,first_name,company\n"
    ), "{text}");
    let rows = f.result_rows();
    let row = |n: &str| rows.iter().find(|r| r["row"] == n).unwrap().clone();
    assert_eq!(row("2")["status"], "failed");
    assert_eq!(
        (
            row("2")["first_name"].as_str(),
            row("2")["company"].as_str()
        ),
        ("Person2", "Company 2")
    );
    // A skipped row names its customer too, and a cell a spreadsheet would run is made text.
    assert_eq!(row("4")["status"], "skipped");
    assert_eq!(row("4")["first_name"], "'=HYPERLINK(\"x\")");
    // Resumed with the same columns: fine; with others: refused before anything is sent.
    f.send(
        &server,
        &["--resume", "--skip-invalid", "--results-columns", "plan"],
    )
    .code(2)
    .stderr(predicate::str::contains(
        "has the columns [first_name, company] after the fixed ones, and this run asks for [plan]",
    ));
    f.send(&server, &["--resume", "--skip-invalid"]).code(1);
    assert!(f.result_rows().iter().all(|r| r.len() == 13));
}

#[test]
fn a_column_that_is_not_in_the_csv_is_refused_with_a_suggestion() {
    let server = server();
    let f = Fixture::new(&people_csv(2), &email_campaign(""));
    // The error names where the names came from: the flag, or the campaign file's key.
    f.send(&server, &["--results-columns", "frist_name"])
        .code(2)
        .stderr(predicate::str::contains(
            "error: --results-columns: `frist_name` is not a column of people.csv; did you mean `first_name`?",
        ));
    let with_key =
        |columns: &str| format!("{}\n[results]\ncolumns = {columns}\n", email_campaign(""));
    f.write("campaign.toml", with_key("[\"frist_name\"]"));
    f.send(&server, &[]).code(2).stderr(predicate::str::contains(
        "error: campaign.toml: [results] columns: `frist_name` is not a column of people.csv; did you mean `first_name`?",
    ));
    assert!(server.requests().is_empty());
}

#[test]
fn a_column_named_twice_is_refused_before_anything_is_sent() {
    let server = server();
    let f = Fixture::new(&people_csv(2), &email_campaign(""));
    f.send(&server, &["--results-columns", "plan,first_name,plan"])
        .code(2)
        .stderr(predicate::str::contains(
            "error: --results-columns: `plan` is named twice; name each column once",
        ));
    f.write(
        "campaign.toml",
        format!(
            "{}\n[results]\ncolumns = [\"first_name\", \"first_name\"]\n",
            email_campaign("")
        ),
    );
    f.send(&server, &[]).code(2).stderr(predicate::str::contains(
        "error: campaign.toml: [results] columns: `first_name` is named twice; name each column once",
    ));
    assert!(server.requests().is_empty());
    assert!(!f.results().exists() || f.result_rows().is_empty());
}
