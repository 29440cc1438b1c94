#!/usr/bin/env bash
# Differential run: two builds of `campaign` through the same scenarios, compared.
#
#   OLD=/path/to/old/campaign NEW=/path/to/new/campaign benches/differential.sh [--out FILE] [--keep] [SCENARIO...]
#
# Each scenario runs once per binary, in a fresh temporary directory holding copies of samples/ and
# templates/, against that binary's own sandbox (`send --sandbox` or `campaign sandbox`), with fixed
# seeds. Compared, after normalization: every step's stdout, stderr and exit code, and every file
# the scenario leaves in its directory (the results files, and in .campaign/ the journal, lock,
# run log, sandbox logs and test sends), besides `facts` (each results file's statuses, each
# sandbox log's messages per recipient). Normalized, since they differ from run to run: timestamps,
# durations, achieved rates, temporary paths, ports, pids, message ids (time-based in the sandbox:
# each becomes its recipient and occurrence, so that the link between results and log stays
# compared), request ids, progress lines, and the order of lines that concurrent requests write.
# A scenario whose outcome depends on timing compares less, and says so. Both binaries run as
# `campaign` (a symlink), so the commands they print read the same.
#
# One line per scenario, `same` or `DIFFERENT` with a bounded unified diff; exit 1 if any differ.
# --out FILE writes the report to FILE too; --keep keeps the work directory; SCENARIO... runs only
# those (the names are the sc_ functions below). STEP_TIMEOUT (default 120 s) bounds each step.
set -uo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
out_file=
keep=
only=()
while (($#)); do
    case $1 in
        --out) out_file=$2; shift 2 ;;
        --keep) keep=1; shift ;;
        -h|--help) sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        -*) echo "differential.sh: unknown flag $1" >&2; exit 2 ;;
        *) only+=("$1"); shift ;;
    esac
done
: "${OLD:?set OLD to the old campaign binary}" "${NEW:?set NEW to the new campaign binary}"
for b in "$OLD" "$NEW"; do
    [[ -x $b ]] || { echo "differential.sh: $b is not an executable" >&2; exit 2; }
done

work=$(mktemp -d "${TMPDIR:-/tmp}/differential.XXXXXX")
cleanup() { [[ -n $keep ]] || rm -rf "$work"; }
trap cleanup EXIT
for side in old new; do
    mkdir -p "$work/$side/bin"
    bin=$OLD; [[ $side == new ]] && bin=$NEW
    ln -s "$(realpath "$bin")" "$work/$side/bin/campaign"
done

# ---- helpers a scenario uses (its working directory is its temp dir, $CAP its capture dir) ----

step=0
# Every step is bounded, so that a binary that hangs shows as a difference (exit 124 or 137)
# rather than a run that never ends.
limit=${STEP_TIMEOUT:-120}
# run NAME ARGS...: `campaign ARGS...`, its stdout, stderr and exit code captured as NAME.
run() {
    local name=$1; shift
    step=$((step + 1))
    local p; p=$(printf '%s/%02d-%s' "$CAP" "$step" "$name")
    timeout -k 5 "$limit" campaign "$@" >"$p.out" 2>"$p.err" </dev/null
    echo $? >"$p.rc"
}
# start NAME ARGS...: the same in the background, in a process group of its own (as a terminal
# would run it, so that a signal reaches the whole of it: `signal INT`); `finish` waits for it.
start() {
    local name=$1; shift
    step=$((step + 1))
    bg_p=$(printf '%s/%02d-%s' "$CAP" "$step" "$name")
    setsid campaign "$@" >"$bg_p.out" 2>"$bg_p.err" </dev/null &
    bg=$!
}
signal() { kill -"$1" -- "-$bg" 2>/dev/null; }
# reap PID: wait for it, killing its group past the step's bound; its exit code on stdout.
reap() {
    local i
    for ((i = 0; i < limit * 10; i++)); do
        alive "$1" || break
        sleep 0.1
    done
    alive "$1" && kill -KILL -- "-$1" 2>/dev/null
    wait "$1" 2>/dev/null
    echo $?
}
# A process that ended but is not waited for yet is a zombie, which `kill -0` still finds.
alive() { [[ $(ps -o stat= -p "$1" 2>/dev/null) == [^Z]* ]]; }
finish() { reap "$bg" >"$bg_p.rc"; }
# wait_lines FILE N: until FILE has at least N lines (at most 60 s).
wait_lines() {
    local i
    for ((i = 0; i < 1200; i++)); do
        [[ -f $1 ]] && (($(wc -l <"$1") >= $2)) && return 0
        sleep 0.05
    done
    echo "wait_lines: $1 never reached $2 lines" >>"$CAP/harness.err"
    return 1
}
# sandbox_up [FLAGS...]: a standalone `campaign sandbox` on a free port, its URL in $url;
# sandbox_down stops it with Ctrl-C.
sandbox_up() {
    step=$((step + 1))
    sb_p=$(printf '%s/%02d-sandbox' "$CAP" "$step")
    setsid campaign sandbox --listen 127.0.0.1:0 "$@" >"$sb_p.out" 2>"$sb_p.err" </dev/null &
    sb=$!
    wait_lines "$sb_p.out" 1
    url=$(grep -o 'http://[0-9.:]*' "$sb_p.out" | head -1)
}
sandbox_down() { kill -INT -- "-$sb" 2>/dev/null; reap "$sb" >"$sb_p.rc"; }
# only GLOB...: compare just these captured files (a scenario whose output depends on timing).
only() { printf '%s\n' "$@" >"$CAP/ONLY"; }
# A contacts file for the sandbox from the sample's customers: all but the last, the 4th unsubscribed.
contacts() {
    python3 - "$@" <<'EOF'
import csv, sys
rows = list(csv.DictReader(open("samples/customers.csv")))
w = csv.writer(open("contacts.csv", "w", newline=""))
w.writerow(["id", "email", "unsubscribed_from_emails"])
for i, r in enumerate(rows[:-1]):
    w.writerow([r["intercom_id"], r["email"], "true" if i == 3 else ""])
EOF
}
W=samples/welcome.toml
R=samples/welcome.sandbox.results.csv

# ---- the scenarios: sc_NAME, each in its own fresh directory ----

sc_fresh_send() {
    run send send $W --sandbox --seed 1
    run report report $R
    run report_json report $R --json
    run report_csv report $R --csv
}
sc_check() {
    run check check $W
    run check_columns check $W --columns
    run check_email check samples/email-addressed.toml
    run check_inapp check samples/feature-inapp.toml
}
sc_preview_text() { run preview preview $W --limit 3; }
sc_preview_json() {
    run preview_json preview $W --json --row 7
    run preview_json_all preview samples/feature-inapp.toml --json --limit 2
}
sc_dry_run() {
    run dry_run send $W --dry-run
    run dry_run_limit send $W --dry-run --limit 4
}
sc_resume_nothing_left() {
    run send send $W --sandbox --seed 1
    run again send $W --sandbox --seed 1
    run resume send $W --sandbox --seed 1 --resume
    run report report $R --json
}
sc_limit_then_resume() {
    run limit send $W --sandbox --seed 1 --limit 5
    run report_part report $R
    run resume send $W --sandbox --seed 1 --resume
    run report report $R
}
sc_canary() {
    run canary send $W --sandbox --seed 1 --canary 3
    run resume send $W --sandbox --seed 1 --resume
    run report report $R --json
}
# One request in flight: the faults are drawn in the order requests arrive, kept by --concurrency 1.
sc_fail_rate() {
    run send send $W --sandbox --seed 7 --fail-rate 0.3 --concurrency 1 --rate 20/s
    run report report $R
    run resume send $W --sandbox --seed 7 --resume --concurrency 1 --rate 20/s
}
sc_fail_after_rate() {
    run send send $W --sandbox --seed 5 --fail-after-rate 0.25 --concurrency 1
    run report report $R
    run resume send $W --sandbox --seed 5 --resume --concurrency 1
    run report_after report $R --json
}
sc_drops() {
    run send send $W --sandbox --seed 3 --drop-rate 0.2 --concurrency 1
    run report report $R --json
    run resume send $W --sandbox --seed 3 --resume --concurrency 1
}
# The sandbox allows one message a 10-second window: the second waits past the 1 s stall timeout. Windows are aligned to the wall clock's multiples of 10 s, so the run
# starts just after one begins, lest the window turn over mid-run and let one more through.
sc_stall() {
    python3 -c 'import time; time.sleep((10.2 - time.time() % 10) % 10)'
    run stall send $W --sandbox --rate-limit 6/min --stall-timeout 1s --concurrency 1
    run report report $R
}
sc_unauthorized() {
    sandbox_up --token right --log sandbox.jsonl
    run send send $W --api-base "$url" --token wrong --concurrency 1
    INTERCOM_TOKEN=wrong run admins admins --api-base "$url"
    run admins_device admins --api-base "$url" --token-file /dev/null
    sandbox_down
}
# 120 rows, the sandbox knowing every third (the rest 404 at once, --retry-not-found-for 0s): the
# share of failures among the last 100 rows passes 0.5 at row 100. Then --max-failures 3 on the
# sample, whose rows past the 5th are unknown to the sandbox. At 10/s the stop is decided long
# before the next request would leave, so the rows sent do not depend on timing.
sc_failure_share_stop() {
    python3 - <<'PY'
import csv
rows = list(csv.DictReader(open("samples/customers.csv")))
with open("samples/many.csv", "w", newline="") as f, open("known.csv", "w") as k:
    w = csv.writer(f)
    w.writerow(rows[0].keys())
    k.write("id\n")
    for i in range(120):
        r = dict(rows[i % len(rows)], intercom_id=f"{i:024x}")
        w.writerow(r.values())
        if i % 3 == 0:
            k.write(r["intercom_id"] + "\n")
    k.writelines(r["intercom_id"] + "\n" for r in rows[:5])
PY
    sed 's/customers.csv/many.csv/' $W >samples/many.toml
    run share send samples/many.toml --sandbox --sandbox-contacts known.csv --retry-not-found-for 0s \
        --max-failures 1000 --concurrency 1 --rate 10/s
    run report report samples/many.sandbox.results.csv --json
    run max_failures send $W --sandbox --sandbox-contacts known.csv --retry-not-found-for 0s \
        --max-failures 3 --concurrency 1 --rate 10/s
}
# Ctrl-C once, when the first row is recorded: at 30/min the second request leaves 2 s after the
# first, so at that point row 1 is done and nothing is in flight, in either binary.
sc_ctrl_c() {
    start send send $W --sandbox --seed 1 --rate 30/min --concurrency 1
    wait_lines $R 2
    sleep 0.2
    signal INT
    finish
    run report report $R --json
    run resume send $W --sandbox --seed 1 --resume
}
# kill -9 at a moment that depends on timing: compared are only the exit codes and the facts
# (the final statuses, and that the sandbox log holds each recipient once).
sc_kill9_resume() {
    start send send $W --sandbox --seed 1 --rate 10/s --latency 100ms --concurrency 4
    wait_lines $R 4
    signal KILL
    finish
    run resume send $W --sandbox --seed 1 --resume
    run report report $R --json
    only '*.rc' facts
}
# A second send while the first holds the lock; the first ends on its own (--limit 2 at 30/min).
sc_busy_lock() {
    start first send $W --sandbox --seed 1 --rate 30/min --limit 2 --concurrency 1
    wait_lines $R 2
    run second send $W --sandbox --seed 1
    run second_resume send $W --sandbox --seed 1 --resume
    finish
}
sc_test_to() {
    run test_to send $W --sandbox --test-to 269e0d37f2a74de452e6b438 --row 3 --row 7
    run test_to_email send samples/email-addressed.toml --sandbox --test-to ada.lovelace@example.com
    run test_to_inapp send samples/feature-inapp.toml --sandbox --test-to 269e0d37f2a74de452e6b438 --limit 2
    run test_to_dry send $W --dry-run --test-to 269e0d37f2a74de452e6b438
}
sc_email_lookup() {
    contacts
    run send send samples/email-addressed.toml --sandbox --sandbox-contacts contacts.csv --concurrency 1
    run report report samples/email-addressed.sandbox.results.csv --json
    run missing send samples/email-addressed.toml --sandbox --results missing.csv \
        --sandbox-missing grace.hopper@example.com --concurrency 1
}
sc_mark() {
    run send send $W --sandbox --seed 5 --fail-after-rate 0.25 --concurrency 1
    run mark_bad mark $R --rows 1 --as sent --note x
    run mark_sent mark $R --rows all --as sent --note 'found in Intercom'
    run report report $R
    run resume send $W --sandbox --seed 5 --resume
}
sc_report() {
    run send send $W --sandbox --seed 7 --fail-rate 0.3 --concurrency 1 --rate 20/s --max-attempts 1
    run report report $R
    run report_json report $R --json
    run report_campaign report $R --campaign $W --json
    run report_missing report nothing.csv
}
sc_admins_sandbox() {
    printf 'id,name,email,away\n7,Ann Example,ann@example.com,true\n8,Bob Example,bob@example.com,\n' >admins.csv
    run admins admins --sandbox
    run admins_json admins --sandbox --json
    run admins_file admins --sandbox --sandbox-admins admins.csv --json
    run admins_bad admins --sandbox --sandbox-admins samples/customers.csv
}
sc_resolve() {
    contacts
    run resolve resolve samples/email-addressed.toml --sandbox --sandbox-contacts contacts.csv
    run resolve_missing resolve samples/email-addressed.toml --sandbox --sandbox-missing ada.lovelace@example.com --out r2.csv
    run resolve_id resolve $W --sandbox
}
# Every contact replies (--reply-share 1): a share below 1 is drawn from time-based message ids.
sc_track_sandbox() {
    run send send $W --sandbox --seed 1 --reply-share 1
    run track track $R --campaign $W --sandbox --reply-share 1
    run track_json track $R --campaign $W --sandbox --reply-share 1 --json
    run track_no_campaign track $R --sandbox --reply-share 1
    run export track $R --campaign $W --sandbox --reply-share 1 --export replied --to replied.csv
}
sc_invalid_csv() {
    python3 - <<'EOF'
lines = open("samples/customers.csv").read().splitlines()
lines[5] = "," + lines[5].split(",", 1)[1]  # row 5: no intercom_id
lines[8] = ",".join(lines[8].split(",")[:3])  # row 8: 3 fields of 6
open("samples/customers.csv", "w").write("\n".join(lines) + "\n")
EOF
    run check check $W
    run send send $W --sandbox
    run skip_invalid send $W --sandbox --skip-invalid
}
sc_bad_flags() {
    run no_args send
    run unknown_flag send $W --bogus
    run canary_zero send $W --sandbox --canary 0
    run limit_zero send $W --sandbox --limit 0
    run bad_rate send $W --sandbox --rate fast
    run fault_no_sandbox send $W --fail-rate 0.1 --dry-run
    run retry_unknown_no_resume send $W --sandbox --retry-unknown
    run no_campaign send nothing.toml --sandbox
    run no_token send $W
    run bad_share send $W --sandbox --max-failure-share 0
    run test_to_resume send $W --sandbox --test-to x@example.com --resume
    run unknown_command frobnicate
    run mark_bad_status mark x.csv --rows 1 --as maybe --note x
}

scenarios=(fresh_send check preview_text preview_json dry_run resume_nothing_left
    limit_then_resume canary fail_rate fail_after_rate drops stall unauthorized
    failure_share_stop ctrl_c kill9_resume busy_lock test_to email_lookup mark report
    admins_sandbox resolve track_sandbox invalid_csv bad_flags)
((${#only[@]})) && scenarios=("${only[@]}")

# ---- normalization and comparison ----

cat >"$work/compare.py" <<'EOF'
import csv, difflib, fnmatch, io, json, os, re, sys
from collections import Counter

def load(root, tmp):
    """Every captured file of one side's scenario, by relative path, normalized."""
    files = {}
    for d, _, names in os.walk(root):
        for n in names:
            p = os.path.join(d, n)
            files[os.path.relpath(p, root)] = open(p, "rb").read().decode("utf-8", "replace")
    ids = id_map(files)
    out = {k: normalize(unorder(k, v), tmp, ids) for k, v in files.items() if k != "ONLY"}
    out["facts"] = facts(files, ids)
    only = files.get("ONLY")
    if only:
        pats = only.split()
        out = {k: v for k, v in out.items() if any(fnmatch.fnmatch(k, p) for p in pats)}
    return out

# A sandbox's log of the messages it accepted (not the run log, whose name may say "sandbox").
SANDBOX_LOG = re.compile(r"sandbox(\.tests)?\.jsonl$")

def requests(text):
    """The messages of a sandbox log, as (id, to)."""
    for line in text.splitlines():
        try:
            m = json.loads(line)
            yield m["id"], m["request"]["to"]
        except (ValueError, KeyError, TypeError):
            continue

def recipient(to):
    return to.get("id") or to.get("email") or to.get("external_id") or "?"

def id_map(files):
    """The sandbox's message ids (time-based) as recipient#occurrence, read from its logs."""
    ids, seen = {}, Counter()
    for k in sorted(files):
        if SANDBOX_LOG.search(k):
            for id, to in requests(files[k]):
                if id not in ids:
                    seen[recipient(to)] += 1
                    ids[id] = f"<MSG {recipient(to)}#{seen[recipient(to)]}>"
    return ids

def unorder(name, text):
    """Lines in the order outcomes arrived, which with several requests in flight follows the
    timing: a results file's lines by row (a row's own lines keep their order), a sandbox log's
    by recipient."""
    lines = text.splitlines()
    if text.startswith("row,recipient,status"):
        row = lambda l: int(l.split(",", 1)[0]) if l.split(",", 1)[0].isdigit() else 0
        return "\n".join(lines[:1] + sorted(lines[1:], key=row))
    if SANDBOX_LOG.search(name):
        return "\n".join(sorted(lines, key=lambda l: [recipient(to) for _, to in requests(l)]))
    return text

PROGRESS = re.compile(r"(ETA|next in |rows done|\d+/\d+ rows)")
SUBS = [
    (re.compile(r"\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:?\d\d)?"), "<TS>"),
    (re.compile(r"\b(127\.0\.0\.1|localhost):\d+"), r"\1:<PORT>"),
    (re.compile(r"\bpid \d+"), "pid <PID>"),
    (re.compile(r'"pid":\s*\d+'), '"pid":<PID>'),
    (re.compile(r"\b\d+m \d+s\b"), "<DUR>"),
    (re.compile(r"(--[\w-]+ )?\b\d+(\.\d+)? ?(ms|µs|s)\b(?!/)"), lambda m: m.group(0) if m.group(1) else "<DUR>"),
    (re.compile(r"\b\d+\.\d+/(s|min|h)\b"), "<RATE>"),
    (re.compile(r"\(\d+/(s|min|h)\)"), "(<RATE>)"),
    (re.compile(r"peak \d+/min"), "peak <RATE>"),
    (re.compile(r'"(\w*(_ms|_secs|seconds|duration|elapsed|achieved|rate_per|per_minute)\w*)":\s*-?[\d.e+]+'), r'"\1":<N>'),
    (re.compile(r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b"), "<REQID>"),
]
# The report's sparkline of messages per minute: its bars and length follow the timing.
SPARK = re.compile(r"^[ ▁▂▃▄▅▆▇█]+$")
# Table cells are padded to the widest value, which a normalized duration may have been.
BOX = re.compile(r"[│┆┌┐└┘├┤┬┴┼╞╡╪═─]")
ID19 = re.compile(r"\b\d{19}\b")
# A sandbox conversation's id is its message's id behind a 9.
CONV = re.compile(r"\b9(\d{19})\b")

def normalize(text, tmp, ids):
    text = text.replace(tmp, "<TMP>")
    text = CONV.sub(lambda m: "<CONV " + ids.get(m.group(1), "<MSGID>") + ">", text)
    text = ID19.sub(lambda m: ids.get(m.group(0), "<MSGID>"), text)
    try:
        text = json.dumps(untime(json.loads(text)), indent=2, ensure_ascii=False)
    except ValueError:
        pass
    lines = []
    for line in text.replace("\r", "\n").split("\n"):
        if PROGRESS.search(line) or SPARK.match(line) and line.strip():
            continue
        for pat, rep in SUBS:
            line = pat.sub(rep, line)
        if BOX.search(line):
            line = re.sub(r"([─═])+", r"\1", re.sub(r" +", " ", line))
        lines.append(line)
    return "\n".join(lines)

def untime(v):
    """A JSON document's per-minute points: how many, and their counts, follow the timing."""
    if isinstance(v, dict):
        return {k: "<POINTS>" if k == "points" else untime(x) for k, x in v.items()}
    if isinstance(v, list):
        return [untime(x) for x in v]
    return v

def facts(files, ids):
    """What stays the same however a run was timed: statuses of each results file (each row's
    last line), and how many messages each recipient got in each sandbox log."""
    out = []
    for k in sorted(files):
        v = files[k]
        if k.endswith(".csv") and v.startswith("row,recipient,status"):
            last = {r["row"]: r["status"] for r in csv.DictReader(io.StringIO(v))}
            out.append(f"{k}: {dict(sorted(Counter(last.values()).items()))}")
        if SANDBOX_LOG.search(k):
            per = Counter(recipient(to) for _, to in requests(v))
            twice = sorted(r for r, n in per.items() if n > 1)
            out.append(f"{k}: {sum(per.values())} messages, {len(per)} recipients, twice: {twice}")
    return "\n".join(out) + "\n"

def main():
    old_root, new_root, old_tmp, new_tmp, limit = sys.argv[1:6]
    old, new = load(old_root, old_tmp), load(new_root, new_tmp)
    diff = []
    for k in sorted(set(old) | set(new)):
        a, b = old.get(k), new.get(k)
        if a == b:
            continue
        if a is None or b is None:
            diff.append(f"--- only in {'new' if a is None else 'old'}: {k}")
            continue
        diff.extend(difflib.unified_diff(a.splitlines(), b.splitlines(), f"old/{k}", f"new/{k}", n=1, lineterm=""))
    if diff:
        n = int(limit)
        print("\n".join("    " + l for l in diff[:n]))
        if len(diff) > n:
            print(f"    ... {len(diff) - n} more diff lines")
        sys.exit(1)

main()
EOF

run_scenario() { # SIDE NAME
    local side=$1 name=$2
    local dir=$work/$side/$name
    CAP=$dir/capture
    mkdir -p "$CAP" "$dir/run"
    cp -r "$here/samples" "$here/templates" "$dir/run/"
    rm -rf "$dir/run/samples/.campaign" "$dir/run/samples/"*.results.csv
    (
        cd "$dir/run" || exit
        export PATH=$work/$side/bin:$PATH
        unset INTERCOM_TOKEN SANDBOX_TOKEN
        step=0
        "sc_$name"
    ) 2>>"$dir/harness.log"  # the shell's own notes, such as a killed job's
    # The files the scenario left, captured beside its steps' output.
    mkdir -p "$CAP/files"
    cp -r "$dir/run/." "$CAP/files/"
}

status=0
t0=$SECONDS
report() { echo "$*"; [[ -n $out_file ]] && echo "$*" >>"$out_file"; }
[[ -n $out_file ]] && : >"$out_file"
for name in "${scenarios[@]}"; do
    if ! declare -F "sc_$name" >/dev/null; then
        report "$name: no such scenario"; status=2; continue
    fi
    s0=$SECONDS
    run_scenario old "$name"
    run_scenario new "$name"
    if d=$(python3 "$work/compare.py" "$work/old/$name/capture" "$work/new/$name/capture" \
        "$work/old/$name/run" "$work/new/$name/run" 40); then
        report "$(printf '%-22s same (%ds)' "$name" $((SECONDS - s0)))"
    else
        report "$(printf '%-22s DIFFERENT (%ds)' "$name" $((SECONDS - s0)))"
        report "$d"
        ((status == 0)) && status=1
    fi
done
report "${#scenarios[@]} scenarios in $((SECONDS - t0))s${keep:+; kept in $work}"
exit $status
