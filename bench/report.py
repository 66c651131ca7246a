#!/usr/bin/env python3
"""Turn bench/run.sh results (target/bench/*.json + *.meta) into the
Markdown section of docs/BENCHMARKS.md between the bench markers."""
import glob
import json
import os
import platform
import re
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from markers import write_section  # noqa: E402
import hostgap  # noqa: E402

out_dir, doc, dur, load0, load1 = sys.argv[1:6]
# bench/hostgap.py's report from before the loads (absent: older callers).
gap = hostgap.parse(sys.argv[6]) if len(sys.argv) > 6 else {}
BEGIN, END = "<!-- bench:begin -->", "<!-- bench:end -->"


def load(name):
    try:
        with open(os.path.join(out_dir, name + ".json")) as f:
            r = json.loads(f.read().strip().splitlines()[-1])
    except (OSError, ValueError, IndexError):
        r = None
    try:
        with open(os.path.join(out_dir, name + ".meta")) as f:
            m = json.load(f)
    except (OSError, ValueError):
        m = {}
    return r, m


def ms(us):
    return f"{us / 1000:.2f}"


def errs(r):
    e = r.get("errors") or {}
    return ", ".join(f"{k} {v}" for k, v in e.items()) or "none"


def cpu_model():
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def sh(cmd):
    try:
        return subprocess.check_output(cmd, shell=True, text=True).strip()
    except subprocess.CalledProcessError:
        return "?"


lines = []
w = lines.append
w(f"Run: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, commit `{sh('git rev-parse --short HEAD')}`, "
  f"send phase {dur} per run.")
w("")
w(f"Machine: {os.cpu_count()} vCPU ({cpu_model()}), Linux {platform.release()}, "
  f"{int(os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30)} GiB RAM, "
  f"hard RLIMIT_NOFILE {sh('ulimit -Hn')}. Load average before/after: {load0} / {load1}. "
  f"The machine's own stalls before the loads (`bench/hostgap.py`): {hostgap.describe(gap)}.")
w("")
groups = {}
for p in glob.glob(os.path.join(out_dir, "*.json")):
    key = os.path.basename(p).split("-")[0]
    t = os.path.getmtime(p)
    lo, hi = groups.get(key, (t, t))
    groups[key] = (min(lo, t), max(hi, t))
if groups:
    def commit_of(prefix):
        for mp in glob.glob(os.path.join(out_dir, prefix + "-*.meta")):
            try:
                return json.load(open(mp)).get("commit", "?")
            except (OSError, ValueError):
                pass
        return "?"
    when = ", ".join(f"{k} {time.strftime('%H:%M', time.gmtime(lo))}-{time.strftime('%H:%M', time.gmtime(hi))} (`{commit_of(k)}`)"
                     for k, (lo, hi) in sorted(groups.items(), key=lambda kv: kv[1][0]))
    w(f"When each load ran (UTC, end of each run) and on which commit: {when}.")
    w("")
w("**A shared 2-core VM**: the bots and the server share the two cores, and other "
  "engineers' builds were running at the same time, so absolute numbers are noisy "
  "and pessimistic; `server CPU` and `bots CPU` columns show who used what.")
w("")

def fanout(title, prefix, ncat_prefix, members, extra=()):
    w(title)
    w("")
    w("| server | wire | rate (msg/s) | deliveries/s | p50 ms | p99 ms | p99.9 ms | max ms | lost | unsent | server CPU s | bots CPU s |")
    w("|---|---|---|---|---|---|---|---|---|---|---|---|")
    names = []
    for p in glob.glob(os.path.join(out_dir, prefix + "-*.json")):
        n = os.path.basename(p)[:-5]
        names.append(("sockchat", n.split("-")[1], int(n.rsplit("-", 1)[1]), n))
    for xprefix, label in extra:
        for p in glob.glob(os.path.join(out_dir, xprefix + "-*.json")):
            n = os.path.basename(p)[:-5]
            names.append((label, n.split("-")[1], int(n.rsplit("-", 1)[1]), n))
    for p in glob.glob(os.path.join(out_dir, ncat_prefix + "-*.json")):
        n = os.path.basename(p)[:-5]
        names.append(("ncat --broker --chat", "lines", int(n.rsplit("-", 1)[1]), n))
    best = {}
    for server, wire, rate, name in sorted(names):
        r, m = load(name)
        if not r:
            continue
        l = r["latency_us"]
        w(f"| {server} | {r['wire']} | {rate} | {r['deliveries_per_sec']:,.0f} | {ms(l['p50'])} | {ms(l['p99'])} | "
          f"{ms(l['p999'])} | {ms(l['max'])} | {r['lost']} | {r['unsent']} | {m.get('server_cpu_s', '?')} | {r.get('bots_cpu_s', '?')} |")
        ok = r["lost"] == 0 and r["unsent"] == 0 and r["connected"] == members
        key = (server, wire)
        if ok and l["p99"] <= 100_000 and r["deliveries_per_sec"] > best.get(key, (0, None, None))[0]:
            best[key] = (r["deliveries_per_sec"], l["p99"], rate)
    w("")
    for (server, wire), (dps, p99, rate) in sorted(best.items()):
        w(f"- best sustained ({server}, {wire}): **{dps:,.0f} deliveries/s** at {rate} msg/s, p99 {ms(p99)} ms "
          f"(sustained = nothing lost, every scheduled message sent, p99 <= 100 ms)")
    if not best:
        w("- no run met \"sustained\" (nothing lost, every scheduled message sent, p99 <= 100 ms)")
    for server, wire, rate, name in sorted(names):
        if not name.startswith(ncat_prefix):
            continue
        r, _ = load(name)
        s_, _ = load(f"{prefix}-lines-{rate}")
        if not r or not s_ or r["deliveries_per_sec"] <= 0:
            continue
        w(f"- at {rate} msg/s, lines: sockchat/ncat deliveries ratio **{s_['deliveries_per_sec'] / r['deliveries_per_sec']:.2f}**, "
          f"p99 {ms(s_['latency_us']['p99'])} ms vs {ms(r['latency_us']['p99'])} ms; ncat lost {r['lost']:,} "
          f"({r['loss_pct']}%: deliveries that never arrived intact, without any disconnect), errors: {errs(r)}")
        try:
            quit_line = [x for x in open(os.path.join(out_dir, f"{name}.log")) if "QUITTING" in x]
        except OSError:
            quit_line = []
        if quit_line:
            w(f"  - ncat's log (it exits when a client resets, here when the bots closed): `{quit_line[0].strip()[:160]}`")
    w("")


fanout("### (a) Fan-out: 1,000 members in one room, 10 senders, 64-byte messages", "a", "ncat", 1000,
       extra=[("act", "sockchat current-thread")])
fanout("### (a, 100 clients) The reference shape: 100 members, 10 senders, 64-byte messages", "a100", "ncat100", 100)

# (b) rooms
w("### (b) Many rooms: 10,000 clients in 1,000 rooms of 10, one sender per room, 10 msg/s each")
w("")
w("| wire | connected | deliveries/s | p50 ms | p99 ms | p99.9 ms | max ms | lost | connect p99 ms | errors | server CPU s | bots CPU s |")
w("|---|---|---|---|---|---|---|---|---|---|---|---|")
for wire in ("lines", "framed"):
    r, m = load(f"b-{wire}")
    if not r:
        continue
    l = r["latency_us"]
    w(f"| {wire} | {r['connected']} | {r['deliveries_per_sec']:,.0f} | {ms(l['p50'])} | {ms(l['p99'])} | {ms(l['p999'])} | "
      f"{ms(l['max'])} | {r['lost']} | {ms(r['connect_us']['p99'])} | {errs(r)} | {m.get('server_cpu_s', '?')} | {r.get('bots_cpu_s', '?')} |")
w("")

# (c) idle
w("### (c) Idle capacity (bots: 2 worker processes, 16 source addresses)")
w("")
w("| wire | connected | connect errors | server RSS before | server RSS peak | RSS per connection |")
w("|---|---|---|---|---|---|")
for wire in ("lines", "framed"):
    r, m = load(f"c-{wire}")
    if not r:
        continue
    per = (m.get("rss_peak_kb", 0) - m.get("rss0_kb", 0)) * 1024 / max(r["connected"], 1)
    w(f"| {wire} | {r['connected']} | {r['connect_errors']} ({errs(r)}) | {m.get('rss0_kb', 0) / 1024:.1f} MiB | "
      f"{m.get('rss_peak_kb', 0) / 1024:.1f} MiB | **{per / 1024:.2f} KiB** |")
r, m = load("c-emfile")
if r:
    log = ""
    try:
        log = open(os.path.join(out_dir, "c-emfile.log")).read().strip().splitlines()
        log = log[0] if log else "(no EMFILE line in the server log)"
    except OSError:
        log = "(no log)"
    after, _ = load("c-after")
    w("")
    w(f"Past the limit: {r['bots']} connections tried, {r['connected']} held, errors: {errs(r)}. "
      f"Server still running afterwards: **{'yes' if m.get('alive') else 'NO'}**; "
      f"a fresh run after it: " + (f"{after['delivered']}/{after['expected']} delivered" if after else "not run") + ".")
    log = re.sub(r"\x1b\[[0-9;]*m", "", log)
    w(f"Server log: `{log[:220]}`")
w("")

# (d) churn
w("### (d) Churn: 300 churners (connect, hello, hang up: mostly FIN and RST, some quit, half-close, close-unread; no room but the default one), 200 measured bots chatting in 10 rooms")
w("")
r, m = load("d-churn")
if r:
    w(f"- connects per second (churn): **{r['connects_per_sec']:,.0f}**; planned disconnects: "
      + ", ".join(f"{k} {v}" for k, v in r["disconnects"].items()))
    w(f"- errors: {errs(r)}; connect latency (from the scheduled reconnect) p50 {ms(r['connect_us']['p50'])} ms, "
      f"p99 {ms(r['connect_us']['p99'])} ms, max {ms(r['connect_us']['max'])} ms")
    l = r["latency_us"]
    w(f"- chatters meanwhile: {r['delivered']}/{r['expected']} delivered, lost {r['lost']}, p99 {ms(l['p99'])} ms")
    w(f"- server fds before/after: {m.get('fds0')} / {m.get('fds1')} (leak check); server CPU {m.get('server_cpu_s')} s, bots CPU {r.get('bots_cpu_s')} s")
w("")

# (e) UDP
w("### (e) UDP fan-out")
w("")
e_names = sorted((os.path.basename(p)[:-5] for p in glob.glob(os.path.join(out_dir, "e-udp-*.json"))),
                 key=lambda n: int(n.rsplit("-", 1)[1]))
if e_names:
    w("1,000 UDP members in one room, 10 senders, 64-byte messages, one source address per bot.")
    w("")
    w("| rate (msg/s) | connected | datagram deliveries/s | p50 ms | p99 ms | p99.9 ms | lost | errors | server CPU s | bots CPU s |")
    w("|---|---|---|---|---|---|---|---|---|---|")
    for name in e_names:
        r, m = load(name)
        if not r:
            continue
        l = r["latency_us"]
        w(f"| {name.rsplit('-', 1)[1]} | {r['connected']} | {r['deliveries_per_sec']:,.0f} | {ms(l['p50'])} | {ms(l['p99'])} | "
          f"{ms(l['p999'])} | {r['lost']} ({r['loss_pct']}%) | {errs(r)} | {m.get('server_cpu_s', '?')} | {r.get('bots_cpu_s', '?')} |")
else:
    w("- not measured in this run (the server printed no UDP listener, or load e was not selected).")
w("")

write_section(doc, BEGIN, END, "\n".join(lines), "")
