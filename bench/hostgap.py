#!/usr/bin/env python3
"""How much CPU time the machine itself loses, per CPU, in stalls no
process in it caused: on a virtual machine, the host running something
else on our virtual CPU. CPU steal (in /proc/stat) tells how much time was
lost in all, if the hypervisor reports it at all; a latency tail depends on
how long each stall was, which steal does not say. (Seen here: 0.1-0.3 %
steal, and stalls of 4-8 ms on an otherwise idle virtual machine: each one
holds up every delivery in flight for that long.)

One busy process per CPU, pinned, reads the monotonic clock in a loop for
SECONDS; a gap between two reads longer than 1 ms is a stall. Run it when
nothing else runs (the benchmark runs it before and after its loads): on a
busy machine it also counts the machine's own processes preempting it.

    bench/hostgap.py [SECONDS]   # prints one line of JSON
"""

import json
import os
import sys
import time
from multiprocessing import Pool

GAP_NS = 1_000_000


def probe(args):
    cpu, seconds = args
    try:
        os.sched_setaffinity(0, {cpu})
    except OSError:
        pass
    clock = time.perf_counter_ns
    start = prev = clock()
    end = start + int(seconds * 1e9)
    gaps = lost = longest = 0
    while prev < end:
        now = clock()
        d = now - prev
        if d > GAP_NS:
            gaps += 1
            lost += d
            if d > longest:
                longest = d
        prev = now
    return gaps, lost, longest


def describe(report):
    """A probe's JSON report (a dict) in words for the benchmark tables."""
    if "gaps_per_cpu_s" not in report:
        return "not measured"
    return (f"{report['gaps_per_cpu_s']} stalls over 1 ms per CPU-second, "
            f"{report['lost_ms_per_cpu_s']} ms lost per CPU-second, longest {report['longest_ms']} ms")


def parse(arg):
    """The JSON a shell captured (`{}` or nothing when the probe failed)."""
    return json.loads(arg) if arg.strip().startswith("{") else {}


def main():
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 2.0
    if not 0 < seconds <= 60:
        sys.exit("hostgap.py: SECONDS must be in (0, 60]")
    cpus = sorted(os.sched_getaffinity(0))
    with Pool(len(cpus)) as pool:
        res = pool.map(probe, [(c, seconds) for c in cpus])
    cpu_s = seconds * len(cpus)
    print(json.dumps({
        "cpus": len(cpus),
        "seconds": seconds,
        "gaps_over_1ms": sum(r[0] for r in res),
        # Per CPU-second, so probes of any length compare.
        "gaps_per_cpu_s": round(sum(r[0] for r in res) / cpu_s, 2),
        "lost_ms_per_cpu_s": round(sum(r[1] for r in res) / 1e6 / cpu_s, 2),
        "longest_ms": round(max(r[2] for r in res) / 1e6, 2),
    }))


if __name__ == "__main__":
    main()
