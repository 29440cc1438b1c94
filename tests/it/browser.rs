//! Both pages in a real browser: headless Chromium driven over WebDriver (chromedriver and the
//! `fantoccini` crate). Each test checks that the page loads with no console error, and what a
//! person would check by looking; a screenshot of each page goes to `target/pages/`.
//!
//! The browser is found through `CHROMEDRIVER` and `CHROMIUM`, else `chromedriver` and `chromium`
//! on PATH (Debian's `chromium` and `chromium-driver`; `.ci/run` installs them). Without them the
//! tests say they were skipped, except under `CI=true`, where that is a failure.
use crate::pages_fixtures;

use std::io::Write as _;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::ensure;
use fantoccini::wd::WebDriverCompatibleCommand;
use fantoccini::{Client, ClientBuilder, Locator};
use pages_fixtures::*;
use serde_json::{json, Value};

/// `tool`'s path from `env`, else the first of `names` on PATH.
fn find(env: &str, names: &[&str]) -> Option<PathBuf> {
    if let Some(p) = std::env::var_os(env).filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(p)).filter(|p| p.is_file());
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .flat_map(|dir| names.iter().map(move |n| dir.join(n)))
        .find(|p| p.is_file())
}

/// chromedriver on a free loopback port, and a session in a fresh headless Chromium.
struct Browser {
    driver: Child,
    client: Option<Client>,
    _profile: tempfile::TempDir,
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// Where chromedriver and Chromium are.
struct Tools {
    driver: PathBuf,
    chromium: PathBuf,
}

/// The tools, or `None` after saying the test is skipped (a failure under `CI=true`).
fn tools(test: &str) -> Option<Tools> {
    let driver = find("CHROMEDRIVER", &["chromedriver"]);
    let chromium = find(
        "CHROMIUM",
        &["chromium", "chromium-browser", "google-chrome"],
    );
    let (Some(driver), Some(chromium)) = (driver, chromium) else {
        let why = "no chromium and chromedriver (apt-get install chromium chromium-driver, \
                   or set CHROMIUM and CHROMEDRIVER)";
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("{test}: {why}; under CI=true the browser tests must run");
        }
        // Straight to stderr, past the test harness's capture, so that a local run shows it.
        let _ = writeln!(std::io::stderr(), "skipped: {test}: {why}");
        return None;
    };
    Some(Tools { driver, chromium })
}

/// chromedriver started, and a session in a fresh headless Chromium.
async fn start(tools: Tools) -> Browser {
    let Tools { driver, chromium } = tools;
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let child = Command::new(&driver)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("{}: {e}", driver.display()));
    let profile = tempfile::tempdir().unwrap();
    let mut browser = Browser {
        driver: child,
        client: None,
        _profile: profile,
    };
    let url = format!("http://127.0.0.1:{port}");
    // chromedriver takes a moment to listen; generous for a loaded machine.
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "chromedriver did not start");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let caps = json!({
        "browserName": "chrome",
        "goog:loggingPrefs": {"browser": "ALL"},
        "goog:chromeOptions": {
            "binary": chromium,
            "args": [
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--hide-scrollbars", "--disable-breakpad", "--disable-crash-reporter",
                "--window-size=1280,1000",
                format!("--user-data-dir={}", browser._profile.path().display()),
            ],
        },
    });
    let Value::Object(caps) = caps else {
        unreachable!()
    };
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    let client = ClientBuilder::new(connector)
        .capabilities(caps)
        .connect(&url)
        .await
        .expect("a WebDriver session");
    browser.client = Some(client);
    browser
}

/// chromedriver's console log since the last call (`goog:loggingPrefs` above turns it on).
#[derive(Debug)]
struct BrowserLog;

impl WebDriverCompatibleCommand for BrowserLog {
    fn endpoint(
        &self,
        base: &url::Url,
        session: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base.join(&format!("session/{}/se/log", session.unwrap_or_default()))
    }

    fn method_and_body(&self, _: &url::Url) -> (http::Method, Option<String>) {
        (
            http::Method::POST,
            Some(r#"{"type":"browser"}"#.to_string()),
        )
    }
}

/// The console's errors since the last call.
async fn console_errors(c: &Client) -> anyhow::Result<Vec<String>> {
    let log = c.issue_cmd(BrowserLog).await?;
    Ok(log
        .as_array()
        .map(|entries| {
            entries
                .iter()
                .filter(|e| e["level"] == "SEVERE")
                .map(|e| e["message"].as_str().unwrap_or_default().to_string())
                .collect()
        })
        .unwrap_or_default())
}

/// Opens `page`, and checks that it loaded with no console error.
async fn open(c: &Client, page: &Path) -> anyhow::Result<()> {
    c.goto(&format!("file://{}", page.display())).await?;
    let errors = console_errors(c).await?;
    ensure!(
        errors.is_empty(),
        "console errors on {}: {errors:#?}",
        page.display()
    );
    Ok(())
}

/// A screenshot of the whole page, for a person: `target/pages/NAME.png`.
async fn screenshot(c: &Client, name: &str) -> anyhow::Result<PathBuf> {
    let height = c
        .execute("return document.documentElement.scrollHeight", vec![])
        .await?
        .as_u64()
        .unwrap_or(1000)
        .clamp(400, 8000);
    c.set_window_size(1280, height as u32).await?;
    let png = c.screenshot().await?;
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("target/")
        .join("pages");
    std::fs::create_dir_all(&dir)?;
    let file = dir.join(format!("{name}.png"));
    std::fs::write(&file, png)?;
    let _ = writeln!(std::io::stderr(), "screenshot: {}", file.display());
    Ok(file)
}

/// Runs `check` with the browser's client, then ends the session whatever happened (so that no
/// Chromium outlives the test), then fails if the check did.
async fn with_browser<F, Fut>(tools: Tools, check: F)
where
    F: FnOnce(Client) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    let mut browser = start(tools).await;
    let client = browser.client.take().unwrap();
    let outcome = check(client.clone()).await;
    let _ = client.close().await;
    drop(browser);
    outcome.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preview_page_in_chromium() {
    let Some(tools) = tools("preview_page_in_chromium") else {
        return;
    };
    let d = variants_campaign();
    d.cmd()
        .args(["preview", "campaign.toml", "--html", "preview.html"])
        .assert()
        .success();
    let page = d.path("preview.html");
    with_browser(tools, |c| async move {
        open(&c, &page).await?;
        let title = c.title().await?;
        ensure!(title == "Preview: campaign.toml", "title: {title}");
        // Every chosen row is there.
        let mut rows = Vec::new();
        for s in c.find_all(Locator::Css("section.row")).await? {
            rows.push(
                s.attr("data-row")
                    .await?
                    .unwrap_or_default()
                    .parse::<u64>()?,
            );
        }
        ensure!(rows == ROWS_SHOWN_BY_DEFAULT, "rows on the page: {rows:?}");
        // Hostile cells are shown as text, and ran nothing on the page.
        let values = c
            .find(Locator::Css("#row-1 table.fields"))
            .await?
            .text()
            .await?;
        ensure!(values.contains(PAGE_SCRIPT), "CSV values: {values}");
        let subject = c
            .find(Locator::Css("#row-1 td.subject"))
            .await?
            .text()
            .await?;
        ensure!(
            subject == format!("Welcome, {PAGE_IMG}"),
            "subject: {subject}"
        );
        ensure!(c.find_all(Locator::Css("[data-pwned]")).await?.is_empty());
        ensure!(c
            .find_all(Locator::Css("main script, main img"))
            .await?
            .is_empty());
        // Every body is in a frame with no permissions, rendered, and nothing in it ran.
        let frames = c.find_all(Locator::Css("iframe")).await?;
        ensure!(frames.len() == rows.len(), "{} frames", frames.len());
        for frame in frames {
            ensure!(
                frame.attr("sandbox").await?.as_deref() == Some(""),
                "a frame without sandbox=\"\""
            );
            frame.clone().enter_frame().await?;
            let text = c.find(Locator::Css("body")).await?.text().await?;
            ensure!(text.starts_with("Hi "), "frame body: {text}");
            let pwned = c.find_all(Locator::Css("[data-pwned]")).await?;
            ensure!(pwned.is_empty(), "a script ran in a body frame");
            c.enter_parent_frame().await?;
        }
        // Row 1's frame holds the hostile elements themselves, inert.
        c.find(Locator::Css("#row-1 iframe"))
            .await?
            .enter_frame()
            .await?;
        ensure!(c.find_all(Locator::Css(".note script")).await?.len() == 1);
        ensure!(c.find_all(Locator::Css(".note img")).await?.len() == 1);
        c.enter_parent_frame().await?;
        ensure!(c.title().await? == title, "the title changed");
        let errors = console_errors(&c).await?;
        ensure!(errors.is_empty(), "console errors: {errors:#?}");
        screenshot(&c, "preview").await?;
        Ok(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn report_page_in_chromium() {
    let Some(tools) = tools("report_page_in_chromium") else {
        return;
    };
    // A real rehearsal with faults, so that the page has failures and a chart to draw.
    let d = variants_campaign();
    let rows: Vec<String> = (1..=60)
        .map(|i| format!("u{i},Name{i},n{i}@example.com,Co {i},starter,"))
        .collect();
    d.write(
        "people.csv",
        format!(
            "id,first_name,email,company,plan,note\n{}\n",
            rows.join("\n")
        ),
    );
    d.cmd()
        .args([
            "send",
            "campaign.toml",
            "--sandbox",
            "--results",
            "results.csv",
        ])
        .args(["--fail-rate", "0.3", "--seed", "7"])
        .args(["--max-attempts", "1", "--max-failures", "1000"])
        .assert()
        .code(1);
    let results = std::fs::read_to_string(d.path("results.csv")).unwrap();
    let mut expected = std::collections::BTreeMap::<String, u64>::new();
    let mut reader = csv::Reader::from_reader(results.as_bytes());
    for record in reader.records() {
        *expected.entry(record.unwrap()[2].to_string()).or_default() += 1;
    }
    d.cmd()
        .args([
            "report",
            "results.csv",
            "--campaign",
            "campaign.toml",
            "--html",
            "report.html",
        ])
        .assert()
        .success();
    let page = d.path("report.html");
    with_browser(tools, |c| async move {
        open(&c, &page).await?;
        // The counts on the page are the results file's.
        let mut total = 0;
        for status in ["sent", "failed", "unknown", "skipped"] {
            let cell = format!("#counts td[data-status={status}]");
            let shown: u64 = c.find(Locator::Css(&cell)).await?.text().await?.parse()?;
            let want = expected.get(status).copied().unwrap_or(0);
            ensure!(
                shown == want,
                "{status}: page says {shown}, results file {want}"
            );
            total += want;
        }
        let shown: u64 = c
            .find(Locator::Css("#counts td[data-status=total]"))
            .await?
            .text()
            .await?
            .parse()?;
        ensure!(shown == total, "total: {shown} vs {total}");
        ensure!(
            expected.get("failed").copied().unwrap_or(0) > 0,
            "the rehearsal had no failures: {expected:?}"
        );
        // Each failure's code is listed, and the chart is drawn.
        ensure!(!c
            .find_all(Locator::Css("#errors tr[data-code=server_error]"))
            .await?
            .is_empty());
        let chart = c.find(Locator::Css("#chart svg")).await?;
        let size = chart.rectangle().await?;
        ensure!(size.2 > 300.0 && size.3 > 100.0, "chart size {size:?}");
        ensure!(!c
            .find_all(Locator::Css(
                "#chart svg polygon, #chart svg path, #chart svg polyline"
            ))
            .await?
            .is_empty());
        let errors = console_errors(&c).await?;
        ensure!(errors.is_empty(), "console errors: {errors:#?}");
        screenshot(&c, "report").await?;
        Ok(())
    })
    .await;
}
