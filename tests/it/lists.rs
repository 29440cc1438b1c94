//! The do-not-contact list is applied in every kind of campaign, read as people keep one, and
//! checked by `check`: a list that is missing or matches nothing is refused, never ignored.
use crate::common;

use std::time::Duration;

use common::*;
use predicates::prelude::*;

const CONTACTS: &str = "id,email,external_id,role\nc1,a@x.test,u-1,user\nc2,b@x.test,u-2,user\nc3,c@x.test,u-3,user\nc4,d@x.test,u-4,user\n";

fn id_campaign(suppress: &str) -> Fixture {
    let campaign = inapp_campaign(&format!("suppress = \"{suppress}\""))
        .replace("id = \"{{ intercom_id }}\"", "id = \"{{ uid }}\"");
    let f = Fixture::new(
        "uid,first_name,plan\nc1,A,p\nc2,B,p\nc3,C,p\nc4,D,p\n",
        &campaign,
    );
    f.write("contacts.csv", CONTACTS);
    f
}

#[test]
fn an_id_campaign_without_verify_skips_the_listed_contacts_by_email_and_id() {
    let f = id_campaign("dnc.tsv");
    // A tab-separated export with a name column, one e-mail in `Name <address>` form, one by id.
    f.write(
        "dnc.tsv",
        "name\temail\tid\nBea\tBea <B@X.test>\t\nCy\t\tc3\n",
    );
    f.cmd().args(["check", "campaign.toml"]).assert().success();
    let out = f
        .cmd()
        .args([
            "send",
            "campaign.toml",
            "--sandbox",
            "--results",
            "results.csv",
        ])
        .args([
            "--sandbox-contacts",
            "contacts.csv",
            "--sandbox-log",
            "sandbox.jsonl",
        ])
        .timeout(Duration::from_secs(120))
        .assert()
        .success();
    let stderr = String::from_utf8_lossy(&out.get_output().stderr).to_string();
    let mut rows = f.result_rows();
    rows.sort_by_key(|r| r["row"].parse::<u64>().unwrap());
    let got: Vec<(&str, &str)> = rows
        .iter()
        .map(|r| (r["status"].as_str(), r["error_code"].as_str()))
        .collect();
    assert_eq!(
        got,
        [
            ("sent", ""),
            ("skipped", "suppressed"),
            ("skipped", "suppressed"),
            ("sent", "")
        ],
        "{stderr}"
    );
    // The sandbox's log: messages went to c1 and c4 only.
    let log = std::fs::read_to_string(f.path("sandbox.jsonl")).unwrap();
    for id in ["c2", "c3"] {
        assert!(
            !log.lines()
                .any(|l| l.contains("/messages") && l.contains(&format!("\"{id}\""))),
            "{id} was messaged: {log}"
        );
    }
    assert!(
        stderr.contains("suppressed: 2 rows on the [send] suppress list were not messaged"),
        "{stderr}"
    );
    f.cmd()
        .args(["report", "results.csv"])
        .assert()
        .success()
        .stdout(predicate::str::contains("suppressed"));
}

#[test]
fn check_refuses_a_missing_list_and_an_entry_of_no_form_naming_its_line() {
    let f = id_campaign("missing.csv");
    f.cmd()
        .args(["check", "campaign.toml"])
        .assert()
        .code(2)
        .stderr(
            predicate::str::contains("[send] suppress")
                .and(predicate::str::contains("missing.csv")),
        );
    let f = id_campaign("dnc.csv");
    f.write("dnc.csv", "a@x.test\nAnn Smith\n");
    f.cmd()
        .args(["check", "campaign.toml"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "dnc.csv line 2: \"Ann Smith\" is neither an e-mail address nor an id",
        ));
    f.write("dnc.csv", "x\n");
    std::fs::remove_file(f.path("dnc.csv")).unwrap();
    std::os::unix::fs::symlink("/dev/zero", f.path("dnc.csv")).unwrap();
    f.cmd()
        .args(["check", "campaign.toml"])
        .timeout(Duration::from_secs(20))
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "dnc.csv is a device, not a regular file",
        ));
}

#[test]
fn check_finds_email_duplicates_that_differ_only_in_case_as_send_does() {
    let campaign = inapp_campaign("")
        .replace("type = \"user\"", "type = \"contact\"")
        .replace("id = \"{{ intercom_id }}\"", "email = \"{{ email }}\"");
    let f = Fixture::new(
        "email,first_name,plan\nAnn@X.test,A,p\nann@x.test,B,p\nbo@x.test,C,p\n",
        &campaign,
    );
    let says = "people.csv: record 2: addresses the same recipient as record 1";
    f.cmd()
        .args(["check", "campaign.toml"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(says));
    f.cmd()
        .args(["send", "campaign.toml", "--dry-run"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(says));
    // Skipped as any duplicate is: the contact gets one message.
    f.write(
        "contacts.csv",
        "id,email,role\nc1,ann@x.test,user\nc2,bo@x.test,user\n",
    );
    f.cmd()
        .args([
            "send",
            "campaign.toml",
            "--sandbox",
            "--results",
            "results.csv",
        ])
        .args([
            "--sandbox-contacts",
            "contacts.csv",
            "--sandbox-log",
            "log.jsonl",
        ])
        .arg("--skip-duplicates")
        .assert()
        .success();
    let mut rows = f.result_rows();
    rows.sort_by_key(|r| r["row"].parse::<u64>().unwrap());
    let got: Vec<(&str, &str)> = rows
        .iter()
        .map(|r| (r["status"].as_str(), r["error_code"].as_str()))
        .collect();
    assert_eq!(got, [("sent", ""), ("skipped", "duplicate"), ("sent", "")]);
    let log = std::fs::read_to_string(f.path("log.jsonl")).unwrap();
    assert_eq!(log.lines().count(), 2, "{log}");
}

#[test]
fn the_list_applies_in_every_campaign_kind_by_email_external_id_and_id() {
    let csv = "uid,email,ext,first_name,plan\nc1,a@x.test,u-1,A,p\nc2,b@x.test,u-2,B,p\nc3,c@x.test,u-3,C,p\nc4,d@x.test,u-4,D,p\n";
    for to in [
        "id = \"{{ uid }}\"",
        "id = \"{{ uid }}\"\nverify = true",
        "email = \"{{ email }}\"",
        "external_id = \"{{ ext }}\"",
    ] {
        let campaign =
            inapp_campaign("suppress = \"dnc.csv\"").replace("id = \"{{ intercom_id }}\"", to);
        let f = Fixture::new(csv, &campaign);
        f.write("contacts.csv", CONTACTS);
        // Row 2 by its contact's e-mail, row 3 by its contact's external id, whatever the rows
        // are addressed by.
        f.write("dnc.csv", "email;external_id\nB@x.test;\n;u-3\n");
        f.cmd().args(["check", "campaign.toml"]).assert().success();
        f.cmd()
            .args([
                "send",
                "campaign.toml",
                "--sandbox",
                "--results",
                "results.csv",
            ])
            .args([
                "--sandbox-contacts",
                "contacts.csv",
                "--sandbox-log",
                "sandbox.jsonl",
            ])
            .timeout(Duration::from_secs(120))
            .assert()
            .success();
        let mut rows = f.result_rows();
        rows.sort_by_key(|r| r["row"].parse::<u64>().unwrap());
        let got: Vec<(&str, &str)> = rows
            .iter()
            .map(|r| (r["status"].as_str(), r["error_code"].as_str()))
            .collect();
        assert_eq!(
            got,
            [
                ("sent", ""),
                ("skipped", "suppressed"),
                ("skipped", "suppressed"),
                ("sent", "")
            ],
            "{to}"
        );
        let log = std::fs::read_to_string(f.path("sandbox.jsonl")).unwrap();
        assert_eq!(log.lines().count(), 2, "{to}: {log}");
        for id in ["c2", "c3"] {
            assert!(
                !log.contains(&format!("\"{id}\"")),
                "{to}: {id} was messaged: {log}"
            );
        }
    }
}
