#!/usr/bin/env python3
"""Print the cluster benchmark table from bench/cluster.sh's results
(target/bench/cluster/<case>-<shape>-<rate>.json and .meta).

    python3 bench/cluster.py target/bench/cluster LOAD0 LOAD1 DUR COMMIT
"""
import glob, json, os, sys
out, load0, load1, dur, commit = sys.argv[1:6]
print(f"Commit {commit}, {dur} send phases, 2 cores shared, load average {load0} before and {load1} after.\n")
print("| case | load | bots connected | deliveries/s | lost | p50 | p99 | p99.9 | servers' CPU s (n) | NATS CPU s |")
print("|---|---|---|---|---|---|---|---|---|---|")
order = ["single", "local", "spread", "cross", "reuse"]
def key(p):
    n = os.path.basename(p)[:-5]
    case, shape, rate = n.split("-")
    return (next((i for i, o in enumerate(order) if case.startswith(o)), 9), shape, int(rate))
for p in sorted(glob.glob(os.path.join(out, "*-r*.json")), key=key):
    n = os.path.basename(p)[:-5]
    case, shape, rate = n.split("-")
    try:
        r = json.load(open(p))
        m = json.load(open(p[:-5] + ".meta"))
    except Exception as e:
        print(f"| {case} | {shape} {rate}/s | (no report: {e}) |||||||||")
        continue
    lat = r["latency_us"]
    ms = lambda us: f"{us / 1000:.2f} ms"
    print(f"| {case} | {shape[1:]} bots, {rate} msg/s | {r['connected']} | {r['deliveries_per_sec']:,.0f} | {r['lost']} "
          f"| {ms(lat['p50'])} | {ms(lat['p99'])} | {ms(lat['p999'])} | {m['servers_cpu_s']} ({m['servers']}) | {m['nats_cpu_s']} |")
