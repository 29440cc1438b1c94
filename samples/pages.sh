#!/bin/sh
# The two pages for the sample campaigns, sending only to the in-process sandbox: preview.html of
# samples/plans.toml (one message per path through its template's ifs, and the row with a
# warning), then a rehearsal of samples/welcome.toml with some faults, and report.html on it.
#   sh samples/pages.sh [OUT_DIR]      (default target/samples; CAMPAIGN=path/to/campaign to
#                                       use a built binary instead of `cargo run`)
set -eu
here=$(cd "$(dirname "$0")" && pwd)
out=${1:-$here/../target/samples}
mkdir -p "$out"
out=$(cd "$out" && pwd)
run() {
  if [ -n "${CAMPAIGN:-}" ]; then "$CAMPAIGN" "$@"; else cargo run --quiet --release -- "$@"; fi
}
cd "$here"
run preview plans.toml --html "$out/preview.html"
rm -f "$out"/welcome.sandbox.* "$out"/.campaign/welcome.sandbox.*
# Faults on purpose, so that the report has failed and unknown rows: the run exits 1.
run send welcome.toml --sandbox --results "$out/welcome.sandbox.results.csv" \
  --sandbox-log "$out/welcome.sandbox.jsonl" --rate 2/s --fail-rate 0.15 --drop-rate 0.1 \
  --seed 4 --max-attempts 1 || [ $? -eq 1 ]
run report "$out/welcome.sandbox.results.csv" --campaign welcome.toml --html "$out/report.html"
