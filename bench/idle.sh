#!/usr/bin/env bash
# Idle connections against memory (issue 10 item 5): for each count, a fresh
# release server holds that many idle framed connections from the bots
# (loopback, 2 worker processes, 16 source addresses), and we record the
# server's VmRSS, the bots' VmRSS, /proc/net/sockstat and the growth of
# every slab cache in /proc/slabinfo (in pages actually held by each cache).
# With SERVERS=K, K servers on K ports are filled at once (K bots runs in
# parallel) to go past one process's RLIMIT_NOFILE. REUSE=1: the K servers
# share one port (--reuse-port; the kernel spreads the connections, so
# leave each some headroom below its fd limit). CLUSTER=1: the K servers
# are nodes of one cluster on a fresh nats-server (JetStream on; each
# connection is a nick claim in the presence bucket).
#
#   bench/idle.sh                        # 1000 5000 10000 19900, one server
#   SERVERS=3 bench/idle.sh 19900        # 3 x 19,900 connections
#   SERVERS=3 REUSE=1 CLUSTER=1 bench/idle.sh 15000   # one port, 3 nodes
#
# Writes target/bench/idle/<N>x<K>.json (one object per step) for
# bench/idle.py, which prints the table and the projection. Loopback only;
# every run is bounded (timeout, bots --duration).
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
COUNTS=${*:-"1000 5000 10000 19900"}
SERVERS=${SERVERS:-1}
REUSE=${REUSE:-0}
CLUSTER=${CLUSTER:-0}
HOLD=${HOLD:-15}
OUT=$ROOT/target/bench/idle
mkdir -p "$OUT"

source "$ROOT/bench/common.sh"
[ "$CLUSTER" = 1 ] && { nats_bin > /dev/null || exit 1; }
bench_build
CONF=$OUT/server.toml
bench_config "$CONF"
# A connect storm of 15,000/s nick claims on a 2-core machine shared with
# the bots makes NATS answer heartbeats late: a 5 s node timeout then
# declares live nodes lost (measured: load 18, every node lost every other
# 7 s and 36 s in). The benchmark measures memory, so the timeout is long.
[ "$CLUSTER" = 1 ] && printf '[cluster]\nnode_timeout_secs = 60\n' >> "$CONF"

PIDS=()
BOT_PIDS=()
NATS_PID=
NATS_DIR=
cleanup() {
    for p in "${BOT_PIDS[@]}" "${PIDS[@]}" $NATS_PID; do kill "$p" 2>/dev/null; done
    wait 2>/dev/null
    [ -n "$NATS_DIR" ] && rm -rf "$NATS_DIR"
    true
}
trap cleanup EXIT
# Each server's listen address and cluster flags (REUSE, CLUSTER).
LISTEN=127.0.0.1:0
[ "$REUSE" = 1 ] && LISTEN=127.0.0.1:$(free_port)
MODE=
[ "$REUSE" = 1 ] && MODE=${MODE}r
[ "$CLUSTER" = 1 ] && MODE=${MODE}c
if [ "$CLUSTER" = 1 ]; then
    start_nats "$OUT/nats.log"
fi

# The RSS of processes and all their descendants (timeout -> bots ->
# worker processes).
tree_rss() {
    local t=0 p
    for p in "$@"; do
        t=$((t + $(rss_kb "$p") + $(tree_rss $(pgrep -P "$p"))))
    done
    echo "$t"
}
# One snapshot of the kernel's side: sockstat, slabinfo, meminfo Slab.
kernel_snap() {
    python3 - "$1" <<'PY'
import json, sys
snap = {"sockstat": {}, "slab_pages": {}, "slab_active_bytes": {}}
for line in open("/proc/net/sockstat"):
    k, _, rest = line.partition(":")
    f = rest.split()
    snap["sockstat"][k] = {f[i]: int(f[i + 1]) for i in range(0, len(f) - 1, 2)}
for line in open("/proc/slabinfo").read().splitlines()[2:]:
    f = line.split()
    name, active, size, pps = f[0], int(f[1]), int(f[3]), int(f[5])
    slabs = int(f[-2])
    snap["slab_pages"][name] = slabs * pps
    snap["slab_active_bytes"][name] = active * size
for line in open("/proc/meminfo"):
    k, v = line.split(":")
    if k in ("Slab", "SUnreclaim", "MemAvailable"):
        snap[k + "_kb"] = int(v.split()[0])
json.dump(snap, open(sys.argv[1], "w"))
PY
}

for n in $COUNTS; do
    name=${n}x$SERVERS$MODE
    echo "== $(date -u +%H:%M:%S) $SERVERS server(s) x $n idle connections ${MODE:+($MODE) }; load $(cut -d' ' -f1-3 /proc/loadavg)"
    PIDS=() BOT_PIDS=() ADDRS=()
    for k in $(seq "$SERVERS"); do
        extra=()
        [ "$REUSE" = 1 ] && extra+=(--reuse-port)
        [ "$CLUSTER" = 1 ] && extra+=(--cluster "nats://127.0.0.1:$NATS_PORT" --node "idle$k")
        "$SRV" --listen "$LISTEN" --config "$CONF" --no-rate-limits "${extra[@]}" > "$OUT/srv$k.out" 2> "$OUT/srv$k.err" &
        PIDS+=($!)
    done
    for k in $(seq "$SERVERS"); do
        a=$(listening_addr "$OUT/srv$k.out")
        [ -n "$a" ] || { echo "server $k did not start"; cat "$OUT/srv$k.err"; exit 1; }
        ADDRS+=("$a")
    done
    sleep 1
    r0=0 f0=0
    for p in "${PIDS[@]}"; do r0=$((r0 + $(rss_kb "$p"))); f0=$((f0 + $(nfds "$p"))); done
    kernel_snap "$OUT/$name.k0.json"
    ramp=$(( (n + 4999) / 5000 ))
    for k in $(seq "$SERVERS"); do
        # Each run's bots get their own 16 source addresses.
        base=$(( (k - 1) * 16 ))
        timeout 300 "$BOTS" bots --json --no-progress --server "${ADDRS[$((k - 1))]}" --wire framed \
            --count "$n" --senders 0 --connect-rate 5000/s --connect-timeout 10s --settle 1s --duration "$((HOLD + ramp))s" \
            --workers 2 --source-ips "127.0.$((1 + base / 250)).$((1 + base % 250))-127.0.$((1 + base / 250)).$((16 + base % 250))" \
            > "$OUT/$name.bots$k.json" 2> "$OUT/$name.bots$k.err" &
        BOT_PIDS+=($!)
    done
    # Wait until every server holds its connections (fds), or their number
    # stopped growing for 2 s after the ramp (a connect that timed out on
    # the loaded machine is not coming), then 1 s more.
    want=$((f0 + n * SERVERS))
    last=-1 still=0
    for i in $(seq 600); do
        f=0
        for p in "${PIDS[@]}"; do f=$((f + $(nfds "$p"))); done
        [ "$f" -ge "$want" ] && break
        if [ "$f" = "$last" ]; then still=$((still + 1)); else still=0; fi
        last=$f
        [ $((i * 2)) -gt $(( (ramp + 1) * 10 )) ] && [ "$still" -ge 10 ] && [ $((2 * (f - f0))) -ge $((want - f0)) ] && break
        sleep 0.2
    done
    sleep 1
    r1=0 f1=0
    for p in "${PIDS[@]}"; do r1=$((r1 + $(rss_kb "$p"))); f1=$((f1 + $(nfds "$p"))); done
    brss=$(tree_rss "${BOT_PIDS[@]}")
    nrss=0
    [ -n "$NATS_PID" ] && nrss=$(rss_kb "$NATS_PID")
    kernel_snap "$OUT/$name.k1.json"
    la=$(cut -d' ' -f1 /proc/loadavg)
    for p in "${BOT_PIDS[@]}"; do wait "$p"; done
    sleep 0.5
    kernel_snap "$OUT/$name.k2.json"
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
    connected=0
    for k in $(seq "$SERVERS"); do
        c=$(jq -r '.connected // 0' "$OUT/$name.bots$k.json" 2>/dev/null | tail -1)
        connected=$((connected + ${c:-0}))
    done
    printf '{"count":%s,"servers":%s,"mode":"%s","nats_rss_kb":%s,"connected":%s,"server_rss0_kb":%s,"server_rss_kb":%s,"server_fds0":%s,"server_fds":%s,"bots_rss_kb":%s,"load1":%s}\n' \
        "$n" "$SERVERS" "$MODE" "$nrss" "$connected" "$r0" "$r1" "$f0" "$f1" "$brss" "$la" > "$OUT/$name.json"
    cat "$OUT/$name.json"
done
