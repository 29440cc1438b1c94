//! Builds for people without Rust: the release profile carries no debug info
//! (the benchmarks keep theirs in a profile of their own), `dist` is configured for Linux, macOS
//! and Windows with its installers, and `dist plan` succeeds (`DIST`, or `dist` on PATH; without it
//! that part says it was skipped locally, and fails under `CI=true`).
use crate::common;

use std::path::Path;
use std::process::Command;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn read(file: &str) -> String {
    std::fs::read_to_string(root().join(file)).unwrap_or_else(|e| panic!("{file}: {e}"))
}

fn toml(file: &str) -> toml::Table {
    read(file).parse().unwrap()
}

#[test]
fn the_release_profile_has_no_debug_info_and_the_benchmarks_keep_theirs() {
    let manifest = toml("Cargo.toml");
    let profiles = manifest["profile"].as_table().unwrap();
    let release = profiles["release"].as_table().unwrap();
    let debug = release.get("debug");
    assert!(
        matches!(debug, None | Some(toml::Value::Boolean(false)))
            || debug.and_then(|d| d.as_integer()) == Some(0)
            || debug.and_then(|d| d.as_str()) == Some("none"),
        "[profile.release] debug = {debug:?}"
    );
    let bench = profiles["bench-release"].as_table().unwrap();
    assert_eq!(bench["inherits"].as_str(), Some("release"));
    assert_eq!(bench["debug"].as_integer(), Some(1));
    // benches/run.sh builds and measures the profile it is given, bench-release unless told.
    let run = read("benches/run.sh");
    assert!(
        run.contains("PROFILE=${BENCH_PROFILE:-bench-release}"),
        "benches/run.sh"
    );
    assert!(
        run.contains(r#"cargo build --profile "$PROFILE""#),
        "benches/run.sh"
    );
    assert!(run.contains("/$PROFILE_DIR/campaign"), "benches/run.sh");
    assert!(!run.contains("target/release/campaign"), "benches/run.sh");
    assert!(read("README.md").contains("`cargo install --path .`"));
}

#[test]
fn dist_builds_for_linux_macos_and_windows_with_installers() {
    let manifest = toml("Cargo.toml");
    // `publish = false` keeps it off crates.io; dist would pass it over without this.
    assert_eq!(
        manifest["package"]["metadata"]["dist"]["dist"].as_bool(),
        Some(true)
    );
    let dist = toml("dist-workspace.toml");
    let config = dist["dist"].as_table().unwrap();
    let targets: Vec<&str> = config["targets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    for os in ["-unknown-linux-", "-apple-darwin", "-pc-windows-"] {
        assert!(targets.iter().any(|t| t.contains(os)), "{os}: {targets:?}");
    }
    let installers: Vec<&str> = config["installers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    assert!(installers.contains(&"shell") && installers.contains(&"powershell"));
    let workflow = read(".github/workflows/release.yml");
    assert!(workflow.contains("dist"), "release.yml runs dist");
}

#[test]
fn dist_plan_succeeds_and_plans_every_platform() {
    // .ci/run installs it (cargo install cargo-dist); under CI=true a missing one fails.
    let Some(dist) = common::require_tool("DIST", "dist") else {
        return;
    };
    let out = Command::new(dist)
        .args(["plan", "--output-format=json", "--no-local-paths"])
        .current_dir(root())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "dist plan failed: {stderr}");
    let plan = String::from_utf8_lossy(&out.stdout);
    for artifact in [
        "campaign-x86_64-unknown-linux-gnu.tar.xz",
        "campaign-aarch64-apple-darwin.tar.xz",
        "campaign-x86_64-pc-windows-msvc.zip",
        "campaign-installer.sh",
        "campaign-installer.ps1",
    ] {
        assert!(plan.contains(artifact), "{artifact} not planned: {plan}");
    }
}
