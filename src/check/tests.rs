//! Preflight over small campaigns: duplicates across chunks, the content fingerprint's bytes,
//! the summary line, and a file that changes between the two passes.
use std::path::Path;

use super::pass::CHUNK;
use super::*;
use crate::input::config::Duplicates;
use crate::input::problem::Severity;

const CAMPAIGN: &str = r#"recipients = "people.csv"

[message]
message_type = "email"
template = "plain"
from = 394051
subject = "Hello {{ first_name }}"
body = "<p>Hi {{ first_name }}.</p>"

[to]
type = "user"
id = "{{ intercom_id }}"
"#;

/// A campaign over a CSV with one row per id.
fn campaign(ids: &[&str]) -> (tempfile::TempDir, Loaded) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("campaign.toml"), CAMPAIGN).unwrap();
    std::fs::write(dir.path().join("people.csv"), csv(ids)).unwrap();
    let loaded = load(&dir.path().join("campaign.toml")).unwrap();
    (dir, loaded)
}

fn csv(ids: &[&str]) -> String {
    let mut s = String::from("intercom_id,first_name\n");
    for (i, id) in ids.iter().enumerate() {
        s.push_str(&format!("{id},Person{}\n", i + 1));
    }
    s
}

/// Each duplicate problem as (record, message), in report order.
fn duplicates(pre: &Preflight) -> Vec<(Option<u64>, String)> {
    pre.report
        .kept
        .iter()
        .filter(|p| p.kind == ProblemKind::Duplicate)
        .map(|p| (p.record, p.message.clone()))
        .collect()
}

#[test]
fn duplicates_across_chunks_name_the_first_record_in_record_order() {
    // Three chunks and a bit, so that both passes read several, with duplicates in
    // different chunks.
    let rows = 3 * CHUNK as u64 + 5;
    let (a, b, c) = (7, CHUNK as u64 + 300, rows - 1);
    let (d, e) = (CHUNK as u64 - 1, 2 * CHUNK as u64 + 1);
    let ids: Vec<String> = (1..=rows)
        .map(|i| match i {
            _ if [a, b, c].contains(&i) => "same".to_string(),
            _ if [d, e].contains(&i) => "pair".to_string(),
            _ => format!("id-{i}"),
        })
        .collect();
    let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
    let (_dir, loaded) = campaign(&ids);
    let pre = preflight(
        &loaded,
        crate::input::config::Duplicates::Allow,
        &mut |_, _| None,
    );
    assert_eq!(pre.rows, rows);
    assert_eq!(pre.duplicate_rows, 3);
    assert_eq!(pre.report.errors, 0);
    assert_eq!(pre.report.warnings, 3);
    let same = |first: u64| format!("addresses the same recipient as record {first}");
    assert_eq!(
        duplicates(&pre),
        [(Some(b), same(a)), (Some(e), same(d)), (Some(c), same(a))]
    );
    assert!(pre
        .report
        .kept
        .iter()
        .all(|p| p.severity == Severity::Warning));
}

#[test]
fn duplicates_are_found_when_the_hashes_spill_to_temporary_files() {
    // A buffer of 100 hashes: the first pass writes a run per 100 valid rows, and the repeats
    // are far apart, in different runs.
    super::spill::TEST_BUFFER.with(|b| b.set(Some(100)));
    let rows = 3 * CHUNK as u64 + 5;
    let (a, b, c) = (7, CHUNK as u64 + 300, rows - 1);
    let ids: Vec<String> = (1..=rows)
        .map(|i| match i {
            _ if [a, b, c].contains(&i) => "same".to_string(),
            _ => format!("id-{i}"),
        })
        .collect();
    let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
    let (dir, loaded) = campaign(&ids);
    let same = |first: u64| format!("addresses the same recipient as record {first}");
    for mode in [Duplicates::Skip, Duplicates::Refuse] {
        let pre = preflight(&loaded, mode, &mut |_, _| None);
        assert_eq!(pre.rows, rows);
        assert_eq!(pre.duplicate_rows, 2);
        let said: Vec<_> = duplicates(&pre)
            .into_iter()
            .map(|(row, message)| (row, message[..same(a).len()].to_string()))
            .collect();
        assert_eq!(said, [(Some(b), same(a)), (Some(c), same(a))], "{mode:?}");
        // The list only when send goes on past the duplicates.
        let listed = if mode == Duplicates::Skip {
            vec![(b, a), (c, a)]
        } else {
            vec![]
        };
        assert_eq!(pre.duplicates, listed, "{mode:?}");
    }
    super::spill::TEST_BUFFER.with(|b| b.set(None));
    // The runs were unlinked as they were made: the folder has what the test put there.
    let mut names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["campaign.toml", "people.csv"]);
}

#[test]
fn the_content_fingerprint_is_what_earlier_versions_recorded() {
    // Journal headers hold this hash: a resume compares it with the file's, and refuses
    // a different one unless --allow-changed. Its bytes must not change between versions,
    // or every run started by an earlier one would look changed: the value below is one that
    // journals already hold.
    let (_dir, loaded) = campaign(&["a", "b", "c"]);
    let pre = preflight(
        &loaded,
        crate::input::config::Duplicates::Refuse,
        &mut |_, _| None,
    );
    assert_eq!(format!("{:016x}", pre.content_hash), "558fc61ad01e2e8a");
}

#[test]
fn the_summary_counts_one_row_as_one() {
    let (_dir, loaded) = campaign(&["a"]);
    let pre = preflight(
        &loaded,
        crate::input::config::Duplicates::Refuse,
        &mut |_, _| None,
    );
    let line = summary_line(&loaded.campaign, &pre);
    assert!(line.contains(": 1 row, 1 recipient, "), "{line}");
    let (_dir, loaded) = campaign(&["a", "b"]);
    let pre = preflight(
        &loaded,
        crate::input::config::Duplicates::Refuse,
        &mut |_, _| None,
    );
    let line = summary_line(&loaded.campaign, &pre);
    assert!(line.contains(": 2 rows, 2 recipients, "), "{line}");
}

#[test]
fn without_duplicates_the_file_is_read_once() {
    let (dir, loaded) = campaign(&["a", "b", "c"]);
    let csv_path = dir.path().join("people.csv");
    // Gone once the first pass has read it: a second pass would fail to open it.
    let pre = preflight(
        &loaded,
        crate::input::config::Duplicates::Refuse,
        &mut |row, _| {
            if row == 1 {
                std::fs::remove_file(&csv_path).unwrap();
            }
            None
        },
    );
    assert_eq!((pre.rows, pre.duplicate_rows), (3, 0));
    assert!(pre.report.kept.is_empty(), "{:?}", pre.report.kept);
}

/// Preflight of a CSV with duplicates, with `change` applied to the file after its first pass
/// has read it.
fn changed_between_passes(change: &(dyn Fn(&Path) + Sync)) -> Preflight {
    let (dir, loaded) = campaign(&["a", "b", "a", "c", "b"]);
    let csv_path = dir.path().join("people.csv");
    let pre = preflight(
        &loaded,
        crate::input::config::Duplicates::Refuse,
        &mut |row, _| {
            if row == 1 {
                change(&csv_path);
            }
            None
        },
    );
    assert_eq!((pre.rows, pre.duplicate_rows), (5, 2));
    pre
}

fn assert_reports_the_change(pre: &Preflight) {
    assert!(duplicates(pre).is_empty(), "{:?}", pre.report.kept);
    assert_eq!(pre.report.errors, 1, "{:?}", pre.report.kept);
    let p = &pre.report.kept[0];
    assert_eq!(
        (p.severity, p.kind),
        (Severity::Error, ProblemKind::Changed)
    );
    assert_eq!(p.record, None);
    assert!(
        p.message.starts_with("the file changed during the check"),
        "{p}"
    );
}

#[test]
fn a_file_changed_between_the_passes_is_an_error() {
    // Other recipients, same rows.
    assert_reports_the_change(&changed_between_passes(&|p| {
        std::fs::write(p, csv(&["a", "b", "c", "a", "b"])).unwrap()
    }));
    // Same recipients, another value.
    assert_reports_the_change(&changed_between_passes(&|p| {
        std::fs::write(p, csv(&["a", "b", "a", "c", "b"]).replace("Person2", "Ada")).unwrap()
    }));
    // A row more.
    assert_reports_the_change(&changed_between_passes(&|p| {
        std::fs::write(p, csv(&["a", "b", "a", "c", "b", "d"])).unwrap()
    }));
    // Another header.
    assert_reports_the_change(&changed_between_passes(&|p| {
        std::fs::write(
            p,
            csv(&["a", "b", "a", "c", "b"]).replace("first_name", "first_name,x"),
        )
        .unwrap()
    }));
    // Gone.
    assert_reports_the_change(&changed_between_passes(&|p| {
        std::fs::remove_file(p).unwrap()
    }));
}

#[test]
fn an_unchanged_file_reports_its_duplicates() {
    let pre = changed_between_passes(&|_| {});
    assert_eq!(
        duplicates(&pre),
        [
            (
                Some(3),
                "addresses the same recipient as record 1 (send refuses duplicates: --skip-duplicates sends the first row of each recipient and records the others `skipped`, --allow-duplicates sends them all)".to_string()
            ),
            (
                Some(5),
                "addresses the same recipient as record 2 (send refuses duplicates: --skip-duplicates sends the first row of each recipient and records the others `skipped`, --allow-duplicates sends them all)".to_string()
            ),
        ]
    );
}

#[test]
fn a_file_of_more_rows_than_a_results_file_holds_is_refused_naming_the_bound() {
    assert!(preflight::too_many_records("people.csv", 10, 10).is_none());
    let p = preflight::too_many_records("people.csv", 11, 10).expect("refused");
    assert_eq!(p.severity, Severity::Error);
    assert_eq!(p.file, "people.csv");
    assert!(
        p.message.contains("11 records") && p.message.contains("at most 10"),
        "{}",
        p.message
    );
}
