//! `campaign report` over a big results file: what it says of each row's last line, and the
//! memory it takes (streamed: it does not grow with the rows).
use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;

use assert_cmd::cargo::CommandCargoExt as _;
use serde_json::Value;

const ROWS: u64 = 200_000;

/// A results file of `ROWS` rows written out of row order, as a send with many in flight writes
/// it: every 1,000th row `failed` (not_found), every 50,000th `unknown`, and rows 10 to 14 sent
/// first, then given a later `failed` (rate_limited) line that holds.
fn write_results(path: &Path) {
    let mut out = String::from(
        "row,recipient,status,message_id,http_status,error_code,error_message,request_id,attempts,finished_at,contact_id\n",
    );
    let mut order: Vec<u64> = (1..=ROWS).collect();
    for pair in order.chunks_mut(2) {
        pair.reverse();
    }
    for i in order {
        let t = format!(
            "2026-01-01T00:{:02}:{:02}.000Z",
            (i / 10_000) % 60,
            (i / 200) % 60
        );
        if i % 50_000 == 7 {
            let _ = writeln!(
                out,
                "{i},user-{i},unknown,,502,bad_gateway,Bad Gateway,q{i},1,{t},"
            );
        } else if i % 1000 == 3 {
            let _ = writeln!(
                out,
                "{i},user-{i},failed,,404,not_found,User Not Found,q{i},1,{t},"
            );
        } else {
            let _ = writeln!(out, "{i},user-{i},sent,m{i},200,,,q{i},1,{t},");
        }
    }
    for i in 10..15 {
        let _ = writeln!(
            out,
            "{i},user-{i},failed,,429,rate_limited,Too Many,r{i},2,2026-01-01T00:30:00.000Z,"
        );
    }
    std::fs::write(path, out).unwrap();
}

#[test]
fn report_of_a_big_file_counts_each_rows_last_line() {
    let dir = tempfile::tempdir().unwrap();
    let results = dir.path().join("big.results.csv");
    write_results(&results);
    let out = Command::cargo_bin("campaign")
        .unwrap()
        .args(["report", "--json"])
        .arg(&results)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["rows"], ROWS);
    let (unknown, failed) = (4, 200);
    assert_eq!(r["counts"]["unknown"], unknown);
    assert_eq!(r["counts"]["failed"], failed + 5);
    assert_eq!(r["counts"]["sent"], ROWS - unknown - failed - 5);
    let errors = r["errors"].as_array().unwrap();
    let codes: Vec<(&str, u64)> = errors
        .iter()
        .map(|g| {
            (
                g["error_code"].as_str().unwrap(),
                g["count"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        codes,
        [("not_found", 200), ("rate_limited", 5), ("bad_gateway", 4)]
    );
    // The examples are the lowest rows of each group, although the file is out of row order.
    let rows = |g: &Value| -> Vec<u64> {
        g["examples"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["row"].as_u64().unwrap())
            .collect()
    };
    assert_eq!(rows(&errors[0]), [3, 1003, 2003, 3003, 4003]);
    assert_eq!(errors[0]["http_status"], 404);
    assert_eq!(errors[0]["message"], "User Not Found");
    assert_eq!(rows(&errors[1]), [10, 11, 12, 13, 14]);
    let listed: Vec<u64> = r["unknown"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["row"].as_u64().unwrap())
        .collect();
    assert_eq!(listed, [7, 50_007, 100_007, 150_007]);
    assert_eq!(r["run"]["source"], "results file");
    assert_eq!(r["run"]["started_at"], "2026-01-01T00:00:00.000Z");
    assert_eq!(r["run"]["ended_at"], "2026-01-01T00:30:00.000Z");
}

/// Peak memory of `report` over the file, from `/usr/bin/time -v`: the rows' outcomes kept whole
/// took about 50 MB over 200,000 rows; streamed, the report keeps two bits a row.
#[test]
fn report_of_a_big_file_keeps_memory_flat() {
    let time = Path::new("/usr/bin/time");
    if !time.exists() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "/usr/bin/time is needed to measure peak memory in CI"
        );
        eprintln!("skipped: no /usr/bin/time to measure peak memory");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let results = dir.path().join("big.results.csv");
    write_results(&results);
    let bin = assert_cmd::cargo::cargo_bin("campaign");
    let out = Command::new(time)
        .arg("-v")
        .arg(bin)
        .args(["report", "--json"])
        .arg(&results)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    let kb: u64 = stderr
        .lines()
        .find_map(|l| {
            l.trim()
                .strip_prefix("Maximum resident set size (kbytes): ")
        })
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no peak RSS in {stderr}"));
    assert!(kb < 25_000, "report took {kb} kB at its peak");
}
