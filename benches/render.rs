//! The per-row work of `check` and `send`, through the library API: reading a CSV record, rendering
//! it into a `MessageRequest` with Tera (`RowRenderer::render`, the value checks included) and
//! serializing the request body (`serde_json::to_vec`). Reported per row (Criterion's "thrpt" is
//! rows/s).
//!
//! `cargo bench --bench render` (about 20 s). The campaign is `samples/welcome.toml`'s email (its
//! subject and HTML template) over a generated CSV of the same columns, written to a temp dir.
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use campaign::check::{self, Loaded, RowRenderer};
use campaign::input::recipients::Recipients;
use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};

const ROWS: u64 = 10_000;

/// A campaign like `samples/welcome.toml` over `rows` generated customers, in `dir`.
fn write_campaign(dir: &Path, rows: u64) -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    std::fs::copy(
        root.join("templates/welcome.html"),
        dir.join("welcome.html"),
    )
    .expect("copy the template");
    let sample = std::fs::read_to_string(root.join("samples/welcome.toml")).expect("sample");
    let toml = sample.replace("\"../templates/welcome.html\"", "\"welcome.html\"");
    let path = dir.join("welcome.toml");
    std::fs::write(&path, toml).expect("write the campaign");
    let mut csv = std::io::BufWriter::new(
        std::fs::File::create(dir.join("customers.csv")).expect("create the csv"),
    );
    writeln!(csv, "intercom_id,first_name,last_name,email,company,plan").unwrap();
    let plans = ["pro", "enterprise", "starter", "team"];
    for i in 0..rows {
        writeln!(
            csv,
            "{:024x},First{i},Last{i},first{i}.last@example.com,\"Company {}, Ltd\",{}",
            0x5a00_0000_0000u64 + i,
            i % 997,
            plans[(i % 4) as usize]
        )
        .unwrap();
    }
    csv.flush().unwrap();
    path
}

fn load(path: &Path) -> Loaded {
    match check::load(path) {
        Ok(l) => l,
        Err(check::LoadError::Invalid(report)) => panic!("templates: {}", report.render()),
        Err(check::LoadError::Campaign(e)) => panic!("campaign file: {e:?}"),
    }
}

fn per_row(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = write_campaign(dir.path(), ROWS);
    let loaded = load(&path);
    let c_ = &loaded.campaign;

    let mut g = c.benchmark_group("row");
    g.measurement_time(Duration::from_secs(3));
    g.warm_up_time(Duration::from_secs(1));
    g.throughput(Throughput::Elements(1));
    {
        let (mut recipients, _) = Recipients::open(&c_.recipients, c_.delimiter).expect("csv");
        let renderer = RowRenderer::new(&loaded, &recipients);
        let row = recipients.next_row().expect("a row").expect("a valid row");
        g.bench_function("render", |b| {
            b.iter(|| black_box(renderer.render(black_box(&row)).expect("valid")))
        });
        let (request, _) = renderer.render(&row).expect("valid");
        g.bench_function("serialize (serde_json::to_vec)", |b| {
            b.iter(|| black_box(serde_json::to_vec(black_box(&request)).unwrap()))
        });
        g.bench_function("render + serialize", |b| {
            b.iter(|| {
                let (request, _) = renderer.render(black_box(&row)).expect("valid");
                black_box(serde_json::to_vec(&request).unwrap())
            })
        });
    }
    g.finish();

    // The whole per-row pipeline of send's reader thread over a file: CSV record, render, body.
    let mut g = c.benchmark_group("file");
    g.measurement_time(Duration::from_secs(3));
    g.warm_up_time(Duration::from_secs(1));
    g.sample_size(10);
    g.throughput(Throughput::Elements(ROWS));
    g.bench_function(format!("csv + render + serialize, {ROWS} rows"), |b| {
        b.iter(|| {
            let (mut recipients, _) = Recipients::open(&c_.recipients, c_.delimiter).expect("csv");
            let renderer = RowRenderer::new(&loaded, &recipients);
            let mut bytes = 0usize;
            while let Some(next) = recipients.next_row() {
                let row = next.expect("valid row");
                let (request, _) = renderer.render(&row).expect("valid");
                bytes += serde_json::to_vec(&request).unwrap().len();
            }
            black_box(bytes)
        })
    });
    g.bench_function(format!("check::preflight, {ROWS} rows"), |b| {
        b.iter(|| {
            black_box(
                check::preflight(
                    &loaded,
                    campaign::input::config::Duplicates::Refuse,
                    &mut |_, _| None,
                )
                .rows,
            )
        })
    });
    g.finish();
}

criterion_group!(benches, per_row);
criterion_main!(benches);
