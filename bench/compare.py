#!/usr/bin/env python3
"""Turn bench/compare.sh results (target/bench/cmp/LOAD.BUILD.PAIR.{json,meta})
into the A/B table of docs/BENCHMARKS.md: medians per load and build, the
ratios this/baseline and this/idealchat, and how busy the machine was."""
import glob
import json
import math
import os
import re
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from markers import write_section  # noqa: E402
import hostgap  # noqa: E402
from pairstats import ratio_interval  # noqa: E402

(out_dir, doc, base, new, mode, dur, pairs, a100_rate, e_rate, load0, load1, nice) = sys.argv[1:13]
# bench/hostgap.py's reports before and after the loads (absent: older callers).
gaps = [hostgap.parse(g) for g in sys.argv[13:15]] + [{}, {}]
BEGIN, END = "<!-- compare:begin -->", "<!-- compare:end -->"

LOADS = {
    "a100": f"(a100) 100 members, 1 room, 10 senders, {int(a100_rate):,} msg/s (lines)",
    "a1k": "(a1k) 1,000 members, 1 room, 10 senders, 1,000 msg/s (lines)",
    "a2k": "(a2k) 1,000 members, 1 room, 10 senders, 2,000 msg/s (lines)",
    "b": "(b) 10,000 clients, 1,000 rooms of 10, 10 msg/s per room (framed)",
    "c": "(c) 19,900 idle connections (framed)",
    "d": "(d) churn: 300 churners + 200 chatters (examples/bots/churn.toml)",
    "d20": "(d20) the same churn held at 20,000 sessions/s (`churn_rate`): the chatters' latency at equal churn",
    "e": f"(e) UDP: 1,000 members, 1 room, 10 senders, {int(e_rate):,} msg/s",
}


def load_run(p):
    """The bots' report and the run's meta of one LOAD.BUILD.PAIR.json
    (report None if unreadable, meta {} if missing)."""
    try:
        r = json.loads(open(p).read().strip().splitlines()[-1])
    except (OSError, ValueError, IndexError):
        r = None
    try:
        # (bc printed "0.95" as ".95" before this was fixed: tolerate it.)
        m = json.loads(re.sub(r'":\.', '":0.', open(p[:-5] + ".meta").read()))
    except (OSError, ValueError):
        m = {}
    return r, m


def runs(load, build):
    out = []
    for p in sorted(glob.glob(os.path.join(out_dir, f"{load}.{build}.*.json"))):
        r, m = load_run(p)
        if r:
            out.append((r, m))
    return out


def per_delivery_ns(cpu_s, delivered):
    return cpu_s * 1e9 / delivered if delivered else float("nan")


# metric name -> (function of (report, meta), format, higher is better)
FANOUT = [
    ("deliveries/s", lambda r, m: r["deliveries_per_sec"], "{:,.0f}", True),
    ("p50 ms", lambda r, m: r["latency_us"]["p50"] / 1000, "{:.2f}", False),
    ("p99 ms", lambda r, m: r["latency_us"]["p99"] / 1000, "{:.2f}", False),
    ("mean ms", lambda r, m: r["latency_us"]["mean"] / 1000, "{:.3f}", False),
    # From `--timeline` (bots since stop 25): how many deliveries took over
    # 10 ms — steadier than a p99 that one stall decides — and the latest
    # the bots themselves wrote a message (their own delay, counted in
    # the latency).
    ("deliveries over 10 ms", lambda r, m: sum(x["over_10ms"] for x in r["timeline"]["rows"]), "{:,.0f}", False),
    ("bots' latest write ms", lambda r, m: max(x["send_late_max_us"] for x in r["timeline"]["rows"]) / 1000, "{:.2f}", False),
    ("lost", lambda r, m: r["lost"], "{:,.0f}", False),
    ("unsent", lambda r, m: r["unsent"], "{:,.0f}", False),
    ("server CPU ns/delivery", lambda r, m: per_delivery_ns(m.get("server_cpu_s", 0), r["delivered"]), "{:,.0f}", False),
    # Time the server's threads were runnable but waited for a CPU, the
    # whole run (absent from runs before stop 24).
    ("server run-queue wait ms", lambda r, m: m["rq_wait_ms"], "{:,.0f}", False),
    ("bots CPU ns/delivery", lambda r, m: per_delivery_ns(r.get("bots_cpu_s", 0), r["delivered"]), "{:,.0f}", False),
    # The send phase alone (no ramp); absent from bots older than stop 23.
    ("bots CPU ns/delivery, send phase", lambda r, m: r["bots_cpu_ns_per_delivery_send"], "{:,.0f}", False),
]
METRICS = {
    "a100": FANOUT, "a1k": FANOUT, "a2k": FANOUT, "b": FANOUT,
    "c": [
        ("connected", lambda r, m: r["connected"], "{:,.0f}", True),
        ("RSS KiB/connection", lambda r, m: (m.get("rss_peak_kb", 0) - m.get("rss0_kb", 0)) / max(r["connected"], 1), "{:.2f}", False),
    ],
    "d": [
        ("connects/s", lambda r, m: r["connects_per_sec"], "{:,.0f}", True),
        ("fds leaked", lambda r, m: m.get("fds1", 0) - m.get("fds0", 0), "{:,.0f}", False),
        ("chatters lost", lambda r, m: r["lost"], "{:,.0f}", False),
        ("chatters p99 ms", lambda r, m: r["latency_us"]["p99"] / 1000, "{:.2f}", False),
        ("server CPU µs/connect", lambda r, m: m.get("server_cpu_s", 0) * 1e6 / max(r["connects"], 1), "{:.1f}", False),
    ],
    "e": FANOUT,
}
METRICS["d20"] = METRICS["d"] + [
    ("chatters mean ms", lambda r, m: r["latency_us"]["mean"] / 1000, "{:.3f}", False),
    ("chatters' deliveries over 10 ms", lambda r, m: sum(x["over_10ms"] for x in r["timeline"]["rows"]), "{:,.0f}", False),
]


def med(vals):
    vals = [v for v in vals if v == v]  # drop NaN
    return statistics.median(vals) if vals else None


def fmt(f, v):
    return "—" if v is None else f.format(v)


def ratio(a, b):
    if a is None or b is None or b == 0:
        return "—"
    return f"{a / b:.2f}"


def medians(load, build, fn):
    vs = []
    for r, m in runs(load, build):
        try:
            vs.append(float(fn(r, m)))
        except (KeyError, TypeError, ZeroDivisionError):
            pass
    return med(vs), vs


# The metrics whose per-pair ratio gets a bootstrap interval (paired_line).
PAIRED = ["deliveries/s", "p99 ms", "mean ms", "server CPU ns/delivery", "RSS KiB/connection",
          "connects/s", "server CPU µs/connect", "chatters p99 ms"]


def by_pair(load, build, fn):
    """{pair number: value} for one build's runs of a load."""
    out = {}
    for p in glob.glob(os.path.join(out_dir, f"{load}.{build}.*.json")):
        pair = p[:-5].rsplit(".", 1)[-1]
        r, m = load_run(p)
        try:
            v = float(fn(r, m))
        except (KeyError, TypeError, ValueError, ZeroDivisionError):
            continue
        if v == v and v > 0:
            out[pair] = v
    return out


def paired(load, fn, num="new", den="base", resamples=10000):
    """The geometric mean of the per-pair ratios num/den (this/base by
    default) and its 95 % bootstrap interval (pairs resampled, fixed seed:
    the same data give the same interval). Run-to-run noise that a median
    of 3 hides shows here as a wide interval; None with fewer than 3
    pairs."""
    b, n = by_pair(load, den, fn), by_pair(load, num, fn)
    logs = [math.log(n[k] / b[k]) for k in sorted(set(b) & set(n))]
    if len(logs) < 3:
        return None
    g, lo, hi, _ = ratio_interval(logs, resamples)
    return g, lo, hi, len(logs)


def paired_line(load):
    parts, npairs = [], 0
    for name, fn, _, _ in METRICS[load]:
        if name not in PAIRED:
            continue
        g = paired(load, fn)
        if g:
            parts.append(f"{name} {g[0]:.2f} ({g[1]:.2f}-{g[2]:.2f})")
            npairs = max(npairs, g[3])
    if parts:
        w("")
        w(f"Per pair, this/base ({npairs} pairs; geometric mean of the ratios, 95 % bootstrap interval): "
          + "; ".join(parts) + ". An interval that holds both 0.95 and 1.05 has not resolved a 5 % change.")


def shape_table(load):
    """The same load on each runtime shape: idealchat and this tree on one
    thread, and both on two worker threads (sockchat's default), so that
    what the fan-out costs is told apart from what two workers cost."""
    w("")
    w("Runtime shape (the same pairs): **one thread** = idealchat's default and this tree with "
      "`runtime = \"current-thread\"`; **two workers** = `idealchat --threads 2` and this tree's default.")
    w("")
    head = ("| metric | ideal, one thread | this, one thread | ratio | ideal, two workers | "
            "this, two workers | ratio |")
    w(head)
    w("|" + "---|" * (head.count("|") - 1))
    for name, fn, f, _ in METRICS[load]:
        if name.startswith("bots"):
            continue
        i1, _ = medians(load, "ideal", fn)
        c1, _ = medians(load, "cur", fn)
        i2, _ = medians(load, "ideal2", fn)
        n2, _ = medians(load, "new", fn)
        w(f"| {name} | {fmt(f, i1)} | {fmt(f, c1)} | {ratio(c1, i1)} | {fmt(f, i2)} | {fmt(f, n2)} | {ratio(n2, i2)} |")
    # Like for like per pair: each pair's this-tree run against the
    # idealchat run of the same pair and shape, so that a median of 3 at a
    # target's line (p99 <= 1.25x) says whether the run resolved it.
    parts = []
    for name, fn, _, _ in METRICS[load]:
        if name not in ("deliveries/s", "p99 ms"):
            continue
        for shape, num, den in (("one thread", "cur", "ideal"), ("two workers", "new", "ideal2")):
            g = paired(load, fn, num, den)
            if g:
                parts.append(f"{name}, {shape} {g[0]:.2f} ({g[1]:.2f}-{g[2]:.2f}; {g[3]} pairs)")
    if parts:
        w("")
        w("Per pair, this/ideal like for like (geometric mean of the ratios, 95 % bootstrap interval): "
          + "; ".join(parts) + ".")


lines = []
w = lines.append
w(f"Run: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, `bench/run.sh --baseline {base}` "
  f"({mode} mode): **this** = `{new}`, **base** = `{base}`, **ideal** = idealchat "
  f"(`../shared/reference/idealchat`, current-thread runtime). {pairs} interleaved pair(s) "
  f"(odd pairs base first, even pairs this first; ideal, then idealchat on two workers and this tree on "
  f"one thread, after them on the one-room loads), "
  f"send phase {dur}, a fresh server per run, every run measured by this tree's bots. Values are medians "
  f"of the runs; ratios are of the medians.")
w("")
w(f"Machine: {os.cpu_count()} vCPU, shared with other engineers' builds. `uptime` before: `{load0.strip()}`; "
  f"after: `{load1.strip()}`. Servers and bots ran at nice {nice} (other processes at 0). "
  f"The machine's own stalls (`bench/hostgap.py`, 2 s on every CPU with nothing else of the benchmark "
  f"running): before, {hostgap.describe(gaps[0])}; after, {hostgap.describe(gaps[1])}.")
w("")
loads_seen = [l for l in LOADS if runs(l, "new") or runs(l, "base")]
for load in loads_seen:
    w(f"**{LOADS[load]}**")
    w("")
    has_ideal = bool(runs(load, "ideal"))
    head = "| metric | base | this | this/base |" + (" ideal | this/ideal |" if has_ideal else "") + " this, each run |"
    w(head)
    w("|" + "---|" * (head.count("|") - 1))
    for name, fn, f, _ in METRICS[load]:
        (mb, _), (mn, each), (mi, _) = (medians(load, b, fn) for b in ("base", "new", "ideal"))
        row = f"| {name} | {fmt(f, mb)} | {fmt(f, mn)} | {ratio(mn, mb)} |"
        if has_ideal:
            row += f" {fmt(f, mi)} | {ratio(mn, mi)} |"
        row += " " + ", ".join(fmt(f, v) for v in each) + " |"
        w(row)
    paired_line(load)
    if runs(load, "ideal2") or runs(load, "cur"):
        shape_table(load)
    builds = ("base", "new", "ideal", "ideal2", "cur")
    busy = [(m.get("load1"), m.get("steal_pct")) for b in builds for _, m in runs(load, b)]
    errs = {}
    for b in builds:
        for r, _ in runs(load, b):
            for k, v in (r.get("errors") or {}).items():
                errs[f"{b}: {k}"] = errs.get(f"{b}: {k}", 0) + v
    w("")
    w(f"Load average (1 min) at the start of each run: {', '.join(str(l) for l, _ in busy)}; "
      f"CPU steal during each run %: {', '.join(str(s) for _, s in busy)}. "
      f"Errors: {', '.join(f'{k} {v}' for k, v in errs.items()) or 'none'}.")
    w("")

write_section(doc, BEGIN, END, "\n".join(lines), "## A/B against a baseline\n\n")
