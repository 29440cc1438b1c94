//! Baseline for BENCHMARKS.md target 3: the fastest a plain reqwest loop posts the same body to
//! the same endpoint, with nothing else to do (no CSV, no rendering, no limiter, no results file).
//!
//! A `harness = false` bench target, so that `cargo bench --no-run` builds it; benches/run.sh runs
//! the built binary. Without `BENCH_URL` it prints a note and exits 0 (a plain `cargo bench`).
//!
//! Env: `BENCH_URL` (e.g. `http://127.0.0.1:4010/messages`), `BENCH_N` (posts, default 200000),
//! `BENCH_CONCURRENCY` (posts in flight, default 64), `BENCH_BODY` (a file holding the JSON body;
//! default a small message). Prints one line: `bare_reqwest N posts in S s: R msg/s (E errors)`.
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
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async move {
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(concurrency as usize)
            .build()
            .expect("client");
        let next = Arc::new(AtomicU64::new(0));
        let errors = Arc::new(AtomicU64::new(0));
        let start = Instant::now();
        let mut workers = Vec::new();
        for _ in 0..concurrency {
            let (client, url, body) = (client.clone(), url.clone(), body.clone());
            let (next, errors) = (Arc::clone(&next), Arc::clone(&errors));
            workers.push(tokio::spawn(async move {
                while next.fetch_add(1, Ordering::Relaxed) < n {
                    let sent = client
                        .post(&url)
                        .header("Authorization", "Bearer bench")
                        .header("Intercom-Version", "2.16")
                        .header("Accept", "application/json")
                        .header("Content-Type", "application/json")
                        .body(body.clone())
                        .send()
                        .await;
                    let ok = match sent {
                        Ok(resp) => resp.status().is_success() && resp.bytes().await.is_ok(),
                        Err(_) => false,
                    };
                    if !ok {
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }));
        }
        for w in workers {
            w.await.expect("worker");
        }
        let secs = start.elapsed().as_secs_f64();
        println!(
            "bare_reqwest {n} posts in {secs:.3} s: {:.1} msg/s ({} errors)",
            n as f64 / secs,
            errors.load(Ordering::Relaxed)
        );
    });
}
