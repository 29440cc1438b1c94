#!/usr/bin/env bash
# benches/ab.sh BIN [LATENCY] [RATE] [SECONDS]: one `send` of BIN at RATE (default 166/s) for
# SECONDS (default 20) against a sandbox answering after LATENCY (default 100ms), then bare
# reqwest posting the same body at the same rate: the achieved rate, the busiest sliding 10 s,
# each one's CPU (user+sys / wall) and the journal's fdatasync calls (strace --seccomp-bpf, which
# stops the process only at those calls). Run two builds one after the other, alternately, to
# compare them in the same minutes (BENCHMARKS.md, "This round"). Needs strace and /usr/bin/time;
# builds the bare reqwest baseline (bench-release) if it is not built.
set -euo pipefail
BIN=$(realpath "$1") LAT=${2:-100ms} RATE=${3:-166/s} SECS=${4:-20}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
AN="python3 $ROOT/benches/analyze.py"
TMP=$(mktemp -d /tmp/campaign-ab.XXXXXX)
SB=""
trap '[ -n "$SB" ] && kill "$SB" 2>/dev/null; rm -rf "$TMP"' EXIT
BARE=$(cd "$ROOT" && cargo build --profile bench-release --bench bare_reqwest --message-format=json 2>/dev/null |
    python3 -c 'import json,sys
for l in sys.stdin:
    m = json.loads(l)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "bare_reqwest" and m.get("executable"):
        print(m["executable"])' | tail -1)
per=$(awk -v r="$RATE" 'BEGIN{split(r,a,"/"); if (a[2]=="s") print a[1]; else print a[1]/60}')
rows=$(awk -v r="$per" -v s="$SECS" 'BEGIN{print int(r*s)}')
$AN gen "$rows" "$TMP/c.csv"
cp "$ROOT/templates/welcome.html" "$TMP/"
sed -e 's|^recipients = .*|recipients = "c.csv"|' -e 's|^body_file = .*|body_file = "welcome.html"|' \
    "$ROOT/samples/welcome.toml" >"$TMP/c.toml"
sandbox() {
    "$BIN" sandbox --listen 127.0.0.1:0 --no-validate --rate-limit 1000000/s --latency "$LAT" "$@" \
        >"$TMP/sb.out" 2>"$TMP/sb.err" &
    SB=$!
    for _ in $(seq 100); do grep -q "listening on" "$TMP/sb.out" && break; sleep 0.05; done
    API=http://127.0.0.1:$(sed -n 's/.*listening on http:\/\/127.0.0.1:\([0-9]*\).*/\1/p' "$TMP/sb.out")
}
cpu() {
    local f=$1 u s w
    u=$(sed -n 's/^[[:space:]]*User time (seconds): //p' "$f")
    s=$(sed -n 's/^[[:space:]]*System time (seconds): //p' "$f")
    w=$(sed -n 's/^[[:space:]]*Elapsed (wall clock) time (h:mm:ss or m:ss): //p' "$f" |
        awk -F: '{s=0; for(i=1;i<=NF;i++) s=s*60+$i; print s}')
    awk -v u="$u" -v s="$s" -v w="$w" 'BEGIN{printf "%.2f", 100*(u+s)/w}'
}
sandbox --log "$TMP/log.jsonl"
INTERCOM_TOKEN=bench strace --seccomp-bpf -f -c -e trace=fdatasync,fsync -o "$TMP/strace.txt" \
    /usr/bin/time -v -o "$TMP/time" "$BIN" send "$TMP/c.toml" --api-base "$API" \
    --results "$TMP/r.csv" --new-ledger --rate "$RATE" --concurrency auto >/dev/null 2>"$TMP/err"
read -r n achieved worst _ <<<"$($AN log "$TMP/log.jsonl" "$(awk -v r="$per" 'BEGIN{print int(r*10)}')")"
syncs=$(awk '$NF ~ /^f(data)?sync$/ {n += $4} END {print n+0}' "$TMP/strace.txt")
kill "$SB"; wait "$SB" 2>/dev/null || true
"$BIN" preview "$TMP/c.toml" --row 1 --json >"$TMP/body.json" 2>/dev/null
sandbox
BENCH_URL="$API/messages" BENCH_N="$rows" BENCH_RATE="${per%.*}" BENCH_CONCURRENCY=1024 \
    BENCH_RUNTIME=current BENCH_BODY="$TMP/body.json" /usr/bin/time -v -o "$TMP/btime" "$BARE" >/dev/null
c=$(cpu "$TMP/time") b=$(cpu "$TMP/btime")
echo "$(basename "$BIN") latency $LAT rate $RATE: $n requests, $achieved/s, busiest sliding 10 s $worst; CPU $c % of a core, bare reqwest $b % ($(awk -v c="$c" -v b="$b" 'BEGIN{printf "%.2f", c/b}') x); $syncs syncs"
