#!/usr/bin/env python3
"""bench/duet.sh's numbers: with a round number, that round's line; without,
the summary of every round in the directory.

Per round, both builds ran at the same time, each under half of load (b).
The summary is the geometric mean of the per-round ratios this/base (p99,
p50, mean latency, the server's CPU per delivery) with a 95 % bootstrap
interval (rounds resampled, fixed seed) and the one-sided 95 % upper
bound, which is what "not slower by more than 5 %" needs to be <= 1.05.

    bench/duet.py DIR [ROUND]
"""

import glob
import json
import math
import os
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pairstats import ratio_interval  # noqa: E402


def load(path):
    with open(path) as f:
        r = json.load(f)
    meta = path[:-5] + ".meta"
    m = {}
    if os.path.exists(meta):
        with open(meta) as f:
            m = json.load(f)
    return r, m


def figures(r, m):
    d = r.get("delivered") or 0
    return {
        "p50_ms": r["latency_us"]["p50"] / 1000,
        "p99_ms": r["latency_us"]["p99"] / 1000,
        "mean_ms": r["latency_us"]["mean"] / 1000,
        "lost": r.get("lost", 0),
        "delivered": d,
        "cpu_ns": (m.get("server_cpu_s", 0) * 1e9 / d) if d else float("nan"),
    }


def rounds(out):
    got = {}
    for p in glob.glob(os.path.join(out, "*.*.json")):
        build, rnd = os.path.basename(p)[:-5].split(".")
        try:
            got.setdefault(int(rnd), {})[build] = figures(*load(p))
        except (KeyError, TypeError, ValueError, json.JSONDecodeError):
            continue
    return {k: v for k, v in got.items() if "base" in v and "new" in v}


def main():
    out = sys.argv[1]
    rs = rounds(out)
    if len(sys.argv) > 2:
        k = int(sys.argv[2])
        if k in rs:
            b, n = rs[k]["base"], rs[k]["new"]
            print(f"   round {k}: p99 base {b['p99_ms']:.2f} this {n['p99_ms']:.2f} ms "
                  f"(x{n['p99_ms'] / b['p99_ms']:.2f}); lost {b['lost']} / {n['lost']}; "
                  f"server ns/delivery {b['cpu_ns']:.0f} / {n['cpu_ns']:.0f}")
        else:
            print(f"   round {k}: no report from one of the builds")
        return
    if len(rs) < 3:
        print(f"duet: {len(rs)} complete round(s); need 3 for an interval")
        return
    print(f"{len(rs)} rounds; lost: base {sum(v['base']['lost'] for v in rs.values())}, "
          f"this {sum(v['new']['lost'] for v in rs.values())}")
    for key, name in (("p99_ms", "p99"), ("p50_ms", "p50"), ("mean_ms", "mean latency"), ("cpu_ns", "server CPU per delivery")):
        pairs = [(v["base"][key], v["new"][key]) for v in rs.values()]
        pairs = [(b, n) for b, n in pairs if b > 0 and n > 0 and b == b and n == n]
        if len(pairs) < 3:
            continue
        logs = [math.log(n / b) for b, n in pairs]
        g, lo, hi, up = ratio_interval(logs, 20000)
        mb = statistics.median(b for b, _ in pairs)
        mn = statistics.median(n for _, n in pairs)
        lower = sum(1 for b, n in pairs if n < b)
        print(f"{name}: medians base {mb:.2f}, this {mn:.2f}; per-round ratio this/base geometric mean "
              f"{g:.3f} (95 % {lo:.3f}-{hi:.3f}; one-sided upper bound {up:.3f}); this lower in "
              f"{lower} of {len(pairs)}; SD of the log ratio {statistics.stdev(logs):.3f}")


if __name__ == "__main__":
    main()
