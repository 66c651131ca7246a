#!/usr/bin/env python3
"""Print the idle-connection memory table from bench/idle.sh's results
(target/bench/idle/*.json) and the projection to --target connections.

Kernel memory is the growth of slab caches (pages actually held, from
/proc/slabinfo) between the empty server and the held connections. On
loopback both ends of every connection are on this machine: the TCP slab
grows by two sockets per connection, so per-socket figures are the growth
divided by 2N, and a server whose clients are elsewhere holds one of them.
"""
import glob
import json
import math
import os
import sys

OUT = sys.argv[1] if len(sys.argv) > 1 else "target/bench/idle"
TARGET = int(sys.argv[2]) if len(sys.argv) > 2 else 400_000
PAGE = os.sysconf("SC_PAGE_SIZE")
# The caches one TCP socket with an fd in an epoll set allocates from.
SOCKET_CACHES = ["TCP", "sock_inode_cache", "dentry", "filp", "eventpoll_epi", "eventpoll_pwq",
                 "tcp_bind_bucket", "tcp_bind2_bucket", "skbuff_head_cache"]


def load(path):
    with open(path) as f:
        return json.load(f)


def slab_growth(k0, k1):
    return {name: (k1["slab_pages"].get(name, 0) - k0["slab_pages"].get(name, 0)) * PAGE
            for name in k1["slab_pages"]}


rows = []
for path in glob.glob(os.path.join(OUT, "*x*.json")):
    base = os.path.basename(path)[:-5]
    if "." in base:
        continue
    m = load(path)
    try:
        k0, k1, k2 = (load(os.path.join(OUT, f"{base}.k{i}.json")) for i in range(3))
    except OSError:
        continue
    rows.append((m, k0, k1, k2))
rows.sort(key=lambda r: (r[0]["servers"], r[0]["count"]))

print("| connections (servers x each) | held | load avg | server VmRSS | user KiB/conn (server) | "
      "user KiB/conn (bots) | TCP sockets | sockstat TCP mem pages | TCP slab B/socket | "
      "socket slabs B/conn (both ends) | all slab B/conn (both ends, noisy) | TIME_WAIT after |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|")
per_conn = []
for m, k0, k1, k2 in rows:
    n = m["count"] * m["servers"]
    # Connections the servers held at the snapshot (their fds).
    held = m["server_fds"] - m["server_fds0"]
    g = slab_growth(k0, k1)
    tcp0, tcp1 = k0["sockstat"]["TCP"], k1["sockstat"]["TCP"]
    sockets = tcp1["inuse"] - tcp0["inuse"]
    sock_slab = sum(g.get(c, 0) for c in SOCKET_CACHES)
    all_slab = (k1["Slab_kb"] - k0["Slab_kb"]) * 1024
    user_srv = (m["server_rss_kb"] - m["server_rss0_kb"]) / max(held, 1)
    user_bots = m["bots_rss_kb"] / max(held, 1)
    tcp_per_sock = g.get("TCP", 0) / max(sockets, 1)
    per_conn.append((held, user_srv, user_bots, sock_slab / max(held, 1), tcp_per_sock, m))
    # REUSE=1: one port (r); CLUSTER=1: nodes of a cluster, NATS's RSS (c).
    mode = {"": "", "r": ", one port", "c": ", cluster", "rc": ", one port, cluster"}.get(m.get("mode", ""), "")
    nats = f" + NATS {m['nats_rss_kb'] / 1024:.1f} MiB" if m.get("nats_rss_kb") else ""
    print(f"| {n:,} ({m['servers']} x {m['count']:,}{mode}) | {held:,} | {m['load1']} | "
          f"{m['server_rss0_kb'] / 1024:.1f} -> {m['server_rss_kb'] / 1024:.1f} MiB{nats} | {user_srv:.2f} | "
          f"{user_bots:.2f} | +{sockets:,} | {tcp0['mem']} -> {tcp1['mem']} | {tcp_per_sock:,.0f} | "
          f"{sock_slab / max(held, 1):,.0f} | {all_slab / max(held, 1):,.0f} | "
          f"{k2['sockstat']['TCP']['tw']:,} |")

if not per_conn:
    sys.exit(0)
print()
print("Growth of the socket caches at the largest count (bytes per connection, both ends):")
m, k0, k1, _ = max(rows, key=lambda r: r[0]["count"] * r[0]["servers"])
held = max(m["server_fds"] - m["server_fds0"], 1)
g = slab_growth(k0, k1)
print(", ".join(f"{c} {g.get(c, 0) / held:,.0f}" for c in SOCKET_CACHES if g.get(c, 0) > 0))

# Projection: the marginal cost per connection between the two largest
# single-server counts (fixed costs, such as allocator arenas and the
# runtime, dominate small counts), kernel memory from /proc/meminfo's Slab
# (all caches: the named ones miss kmalloc'ed parts), half per end.
single = sorted((r for r in per_conn if r[5]["servers"] == 1 and not r[5].get("mode")),
                key=lambda r: r[0])
if len(single) < 2:
    sys.exit(0)
(h0, _, _, _, _, m0), (h1, _, _, _, _, m1) = single[-2], single[-1]
user_srv = (m1["server_rss_kb"] - m0["server_rss_kb"]) / (h1 - h0)
user_bots = (m1["bots_rss_kb"] - m0["bots_rss_kb"]) / (h1 - h0)
kern_end = next(r for r in rows if r[0] is m1)
k0, k1 = kern_end[1], kern_end[2]
kern_srv = (k1["Slab_kb"] - k0["Slab_kb"]) / h1 / 2
N = TARGET
ports = 60999 - 32768 + 1
try:
    lo, hi = (int(x) for x in open("/proc/sys/net/ipv4/ip_local_port_range").read().split())
    ports = hi - lo + 1
except OSError:
    pass
print()
print(f"Projection to {N:,} connections. Marginal cost per connection between {h0:,} and {h1:,}: "
      f"server user {user_srv:.2f} KiB, bots user {user_bots:.2f} KiB; kernel slab {kern_srv:.2f} KiB "
      f"per end (meminfo Slab growth / 2N at {h1:,}).")
print(f"- server RAM = RSS0 + N x ({user_srv:.2f} + {kern_srv:.2f}) KiB = "
      f"{(m1['server_rss0_kb'] + N * (user_srv + kern_srv)) / 1024 / 1024:.2f} GiB")
print(f"- clients on the same machine add N x ({user_bots:.2f} + {kern_srv:.2f}) KiB = "
      f"{N * (user_bots + kern_srv) / 1024 / 1024:.2f} GiB")
print(f"- source addresses per server port = ceil(N / {ports:,} ports) = {math.ceil(N / ports)}")
