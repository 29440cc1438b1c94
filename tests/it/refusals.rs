//! Settings that cannot be meant are refused before anything is sent (exit 2): a user name and
//! password in the API's URL, zero counts, flags that another flag would ignore, and a test send
//! whose contact type no message can take.
use crate::common;

use std::sync::Arc;

use common::*;
use predicates::prelude::*;

fn ok_server() -> TestServer {
    TestServer::start(Arc::new(|r, _| ok_reply(r)))
}

#[test]
fn a_password_in_the_base_url_is_refused_and_never_shown() {
    let server = ok_server();
    let f = Fixture::new(&people_csv(2), &inapp_campaign(""));
    let with_user = server.url().replace("http://", "http://ops:hunter2secret@");
    // Given by flag, and by the campaign file.
    let a = f.send_to(&with_user, &["--yes"]).code(2);
    let stderr = String::from_utf8_lossy(&a.get_output().stderr).to_string();
    assert!(
        stderr.contains("the API base URL carries a user name or password"),
        "{stderr}"
    );
    assert!(!stderr.contains("hunter2secret"), "{stderr}");
    let text = std::fs::read_to_string(f.campaign()).unwrap();
    f.write(
        "campaign.toml",
        format!("{text}\n[intercom]\nbase_url = \"{with_user}\"\n"),
    );
    let a = f
        .cmd()
        .args(["send", "campaign.toml", "--results", "results.csv", "--yes"])
        .assert()
        .code(2);
    let stderr = String::from_utf8_lossy(&a.get_output().stderr).to_string();
    assert!(
        stderr.contains("carries a user name or password"),
        "{stderr}"
    );
    assert!(!stderr.contains("hunter2secret"), "{stderr}");
    assert!(server.requests().is_empty());
    assert!(!f.results().exists() || f.result_rows().is_empty());
    for entry in std::fs::read_dir(f.dir.path()).unwrap() {
        let path = entry.unwrap().path();
        if let Ok(text) = std::fs::read_to_string(&path) {
            if path != f.campaign() {
                assert!(!text.contains("hunter2secret"), "{}", path.display());
            }
        }
    }
}

#[test]
fn zero_counts_and_flags_a_test_send_would_ignore_are_refused() {
    let server = ok_server();
    let f = Fixture::new(&people_csv(3), &inapp_campaign(""));
    for extra in [
        &["--canary", "0"][..],
        &["--limit", "0"],
        &["--test-to", "c9", "--rate", "5/s"],
        &["--test-to", "c9", "--allow-duplicates"],
        &["--test-to", "c9", "--retry-unknown"],
    ] {
        let a = f.send(&server, extra).code(2);
        let stderr = String::from_utf8_lossy(&a.get_output().stderr).to_string();
        assert!(
            stderr.contains("0 is not in 1..") || stderr.contains("cannot be used with"),
            "{extra:?}: no refusal said: {stderr}"
        );
    }
    assert!(server.requests().is_empty());
}

#[test]
fn a_test_send_of_a_contact_type_campaign_is_refused_before_sending() {
    let server = ok_server();
    let csv = "email,first_name,plan\na@x.test,A,p\n";
    let campaign = inapp_campaign("")
        .replace("type = \"user\"", "type = \"contact\"")
        .replace("id = \"{{ intercom_id }}\"", "email = \"{{ email }}\"");
    let f = Fixture::new(csv, &campaign);
    f.send(&server, &["--test-to", "c9"])
        .code(2)
        .stderr(predicate::str::contains(
            "--test-to: this campaign's `[to] type = \"contact\"` takes each contact's type",
        ));
    assert!(server.requests().is_empty());
}
