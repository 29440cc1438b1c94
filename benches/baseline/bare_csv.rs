//! Baseline for BENCHMARKS.md target 5: one pass of the csv crate over a file, nothing else
//! (`ByteRecord`s, flexible, with a header row), to compare `campaign check` with.
//!
//! A `harness = false` bench target, so that `cargo bench --no-run` builds it; benches/run.sh runs
//! the built binary. Env: `BENCH_CSV` (the file). Without it, prints a note and exits 0.
//! Prints one line: `bare_csv R rows in S s: X rows/s`.
use std::time::Instant;

fn main() {
    let Ok(path) = std::env::var("BENCH_CSV") else {
        println!("bare_csv: set BENCH_CSV (see benches/run.sh); nothing to do");
        return;
    };
    let start = Instant::now();
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .has_headers(true)
        .from_path(&path)
        .unwrap_or_else(|e| panic!("{path}: {e}"));
    let mut record = csv::ByteRecord::new();
    let mut rows = 0u64;
    let mut bytes = 0usize;
    while reader.read_byte_record(&mut record).expect("a record") {
        rows += 1;
        bytes += record.as_slice().len();
    }
    let secs = start.elapsed().as_secs_f64();
    std::hint::black_box(bytes);
    println!(
        "bare_csv {rows} rows in {secs:.3} s: {:.1} rows/s",
        rows as f64 / secs
    );
}
