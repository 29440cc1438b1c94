//! Baseline for BENCHMARKS.md target 3: the fastest a plain reqwest loop posts the same body to
//! the same endpoint, with nothing else to do (no CSV, no rendering, no limiter, no results file).
//!
//! A `harness = false` bench target, so that `cargo bench --no-run` builds it; benches/run.sh runs
//! the built binary. Without `BENCH_URL` it prints a note and exits 0 (a plain `cargo bench`).
//!
//! Env: `BENCH_URL` (e.g. `http://127.0.0.1:4010/messages`), `BENCH_N` (posts, default 200000),
//! `BENCH_CONCURRENCY` (posts in flight, default 64), `BENCH_BODY` (a file holding the JSON body;
//! default a small message), `BENCH_RATE` (posts per second: paced by a tokio interval, each post
//! its own task, up to `BENCH_CONCURRENCY` in flight; target 6's floor: what reqwest alone costs
//! per message at that rate), `BENCH_RUNTIME` (`multi`, the default, or `current`: tokio's
//! current-thread runtime, as `campaign send` uses). Prints one line:
//! `bare_reqwest N posts in S s: R msg/s (E errors)`.
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let Ok(url) = std::env::var("BENCH_URL") else {
        println!("bare_reqwest: set BENCH_URL (see benches/run.sh); nothing to do");
        return;
    };
    let n = env_u64("BENCH_N", 200_000);
    let concurrency = env_u64("BENCH_CONCURRENCY", 64).max(1);
    let body = match std::env::var("BENCH_BODY") {
        Ok(path) => std::fs::read(&path).unwrap_or_else(|e| panic!("BENCH_BODY {path}: {e}")),
        Err(_) => br#"{"message_type":"in_app","body":"hi","from":{"type":"admin","id":394051},"to":{"type":"user","id":"abc"}}"#.to_vec(),
    };
    let body = bytes::Bytes::from(body);
    let rate = env_u64("BENCH_RATE", 0);
    let runtime = match std::env::var("BENCH_RUNTIME").as_deref() {
        Ok("current") => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build(),
        _ => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build(),
    }
    .expect("runtime");
    runtime.block_on(async move {
        // The crypto provider `campaign` installs (reqwest is built without one).
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(concurrency as usize)
            .build()
            .expect("client");
        let next = Arc::new(AtomicU64::new(0));
        let errors = Arc::new(AtomicU64::new(0));
        let start = Instant::now();
        if rate > 0 {
            paced(&client, &url, &body, n, rate, concurrency, &errors).await;
            report(n, start, &errors);
            return;
        }
        let mut workers = Vec::new();
        for _ in 0..concurrency {
            let (client, url, body) = (client.clone(), url.clone(), body.clone());
            let (next, errors) = (Arc::clone(&next), Arc::clone(&errors));
            workers.push(tokio::spawn(async move {
                while next.fetch_add(1, Ordering::Relaxed) < n {
                    if !post(&client, &url, body.clone()).await {
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }));
        }
        for w in workers {
            w.await.expect("worker");
        }
        report(n, start, &errors);
    });
}

/// One post, its response read: whether it succeeded.
async fn post(client: &reqwest::Client, url: &str, body: bytes::Bytes) -> bool {
    let sent = client
        .post(url)
        .header("Authorization", "Bearer bench")
        .header("Intercom-Version", "2.16")
        .header("Accept", "application/json")
        .header("Content-Type", "application/json")
        .body(body)
        .send()
        .await;
    match sent {
        Ok(resp) => resp.status().is_success() && resp.bytes().await.is_ok(),
        Err(_) => false,
    }
}

fn report(n: u64, start: Instant, errors: &AtomicU64) {
    let secs = start.elapsed().as_secs_f64();
    println!(
        "bare_reqwest {n} posts in {secs:.3} s: {:.1} msg/s ({} errors)",
        n as f64 / secs,
        errors.load(Ordering::Relaxed)
    );
}

/// `n` posts at `rate` a second, each in a task of its own, at most `concurrency` in flight.
async fn paced(
    client: &reqwest::Client,
    url: &str,
    body: &bytes::Bytes,
    n: u64,
    rate: u64,
    concurrency: u64,
    errors: &Arc<AtomicU64>,
) {
    let permits = Arc::new(tokio::sync::Semaphore::new(concurrency as usize));
    let mut tick = tokio::time::interval(std::time::Duration::from_secs_f64(1.0 / rate as f64));
    let mut tasks = Vec::with_capacity(n as usize);
    for _ in 0..n {
        tick.tick().await;
        let permit = Arc::clone(&permits).acquire_owned().await.expect("open");
        let (client, url, body) = (client.clone(), url.to_string(), body.clone());
        let errors = Arc::clone(errors);
        tasks.push(tokio::spawn(async move {
            if !post(&client, &url, body).await {
                errors.fetch_add(1, Ordering::Relaxed);
            }
            drop(permit);
        }));
    }
    for t in tasks {
        t.await.expect("post");
    }
}
