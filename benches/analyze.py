#!/usr/bin/env python3
"""Helpers for benches/run.sh.

  analyze.py gen ROWS OUT.csv            write a recipients CSV (welcome.toml's columns)
  analyze.py log LOG.jsonl SHARE [SPAN]  achieved rate and the busiest windows of SPAN seconds
                                         (default 10) of a sandbox --log: prints
                                         `count rate max_sliding max_aligned`
  analyze.py first LOG.jsonl EPOCH       seconds from EPOCH (unix, float) to the first message
  analyze.py median V1 V2 ...            the median
"""
import datetime
import json
import statistics
import sys


def parse_ts(s):
    # RFC 3339 UTC with up to 9 fractional digits: keep microseconds.
    s = s.rstrip("Z")
    if "." in s:
        head, frac = s.split(".")
        s = head + "." + frac[:6].ljust(6, "0")
        fmt = "%Y-%m-%dT%H:%M:%S.%f"
    else:
        fmt = "%Y-%m-%dT%H:%M:%S"
    return datetime.datetime.strptime(s, fmt).replace(tzinfo=datetime.timezone.utc).timestamp()


def times(path):
    out = []
    with open(path) as f:
        for line in f:
            if line.strip():
                out.append(parse_ts(json.loads(line)["received_at"]))
    out.sort()
    return out


def main():
    cmd = sys.argv[1]
    if cmd == "gen":
        rows, path = int(sys.argv[2]), sys.argv[3]
        plans = ["pro", "enterprise", "starter", "team"]
        with open(path, "w") as f:
            f.write("intercom_id,first_name,last_name,email,company,plan\n")
            for i in range(rows):
                f.write(f'{0x5a0000000000 + i:024x},First{i},Last{i},first{i}.last@example.com,"Company {i % 997}, Ltd",{plans[i % 4]}\n')
    elif cmd == "log":
        t = times(sys.argv[2])
        span = float(sys.argv[4]) if len(sys.argv) > 4 else 10.0
        n = len(t)
        rate = (n - 1) / (t[-1] - t[0]) if n > 1 and t[-1] > t[0] else 0.0
        # Busiest span anywhere, and busiest wall-clock-aligned window (Intercom's, for 10 s).
        worst, j = 0, 0
        for i in range(n):
            while t[i] - t[j] >= span:
                j += 1
            worst = max(worst, i - j + 1)
        aligned = {}
        for x in t:
            k = int(x // span)
            aligned[k] = aligned.get(k, 0) + 1
        # Low rates need the digits: 12/min is 0.2/s.
        print(n, f"{rate:.2f}" if rate >= 10 else f"{rate:.6f}", worst, max(aligned.values()) if aligned else 0)
    elif cmd == "first":
        t = times(sys.argv[2])
        print(f"{t[0] - float(sys.argv[3]):.3f}" if t else "nan")
    elif cmd == "median":
        vals = [float(v) for v in sys.argv[2:] if v not in ("", "nan")]
        if not vals:
            print("nan")
        else:
            m = statistics.median(vals)
            print(f"{m:.1f}" if abs(m) >= 100 else f"{m:.3f}")
    else:
        sys.exit(f"unknown command {cmd}")


if __name__ == "__main__":
    main()
