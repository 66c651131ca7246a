#!/usr/bin/env bash
# Cluster benchmarks (issue 14 item 6), all in one run so the figures sit
# side by side: the same fan-out against
#   single  one server, cluster off (the reference)
#   local   node a of a 2-node cluster, every bot on it (what the cluster
#           costs a node when nothing crosses)
#   spread  bots spread over nodes a and b (bot N on node N mod 2: half of
#           the deliveries cross NATS)
#   cross   senders on node a, receivers on node b (every delivery crosses)
#   reuse   NODES processes with --reuse-port on one port, each a node (the
#           kernel spreads the connections)
# Release builds, loopback only, a fresh nats-server (JetStream on, its
# store in a temporary directory) and fresh servers per case; every run is
# bounded (timeout, bots --duration).
#
#   bench/cluster.sh                        # ~4 minutes
#   DUR=5s RATES="2000 10000" NODES=3 bench/cluster.sh
#   CASES="single cross" bench/cluster.sh
#
# Writes target/bench/cluster/<case>-<load>.json (the bots' report) and
# .meta (servers' and NATS's CPU seconds), then bench/cluster.py prints a
# markdown table (also in target/bench/cluster/table.md) for
# docs/BENCHMARKS.md.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
DUR=${DUR:-5s}
RATES=${RATES:-"2000 10000"}
NODES=${NODES:-2}
CASES=${CASES:-"single local spread cross reuse"}
OUT=$ROOT/target/bench/cluster
mkdir -p "$OUT"
rm -f "$OUT"/*.json "$OUT"/*.meta "$OUT"/*.err

source "$ROOT/bench/common.sh"
nats_bin > /dev/null || exit 1
echo "== building release binaries"
bench_build
CONF=$OUT/server.toml
bench_config "$CONF"

PIDS=()
NATS_PID=
NATS_DIR=
cleanup() {
    for p in "${PIDS[@]}" $NATS_PID; do kill "$p" 2>/dev/null; done
    wait 2>/dev/null
    [ -n "$NATS_DIR" ] && rm -rf "$NATS_DIR"
    true
}
trap cleanup EXIT

stop_all() {
    for p in "${PIDS[@]}" $NATS_PID; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
    PIDS=() NATS_PID=
    [ -n "$NATS_DIR" ] && rm -rf "$NATS_DIR"
    NATS_DIR=
}

# node NAME LISTEN [extra flags]: start one server, wait for its address
# (and, in a cluster, for its link); sets ADDR.
node() {
    local name=$1 listen=$2; shift 2
    "$SRV" --listen "$listen" --config "$CONF" --no-rate-limits "$@" \
        > "$OUT/$name.out" 2> "$OUT/$name.err" &
    PIDS+=($!)
    ADDR=$(listening_addr "$OUT/$name.out")
    [ -n "$ADDR" ] || { echo "server $name did not start"; cat "$OUT/$name.err"; exit 1; }
    if [ $# -gt 0 ]; then
        for _ in $(seq 150); do
            grep -q "cluster link up" "$OUT/$name.err" && return 0
            sleep 0.1
        done
        echo "server $name never reached NATS"; cat "$OUT/$name.err"; exit 1
    fi
}

# run NAME -- bots args...: one bounded bots run; records the servers' and
# NATS's CPU seconds.
run() {
    local name=$1; shift 2
    local p c0=0 n0=0 c1=0 n1=0
    for p in "${PIDS[@]}"; do c0=$((c0 + $(cpu_ticks "$p"))); done
    [ -n "$NATS_PID" ] && n0=$(cpu_ticks "$NATS_PID")
    echo "== $name: sockchat bots $*"
    timeout 120 "$BOTS" bots --json --no-progress "$@" > "$OUT/$name.json" 2> "$OUT/$name.err"
    local rc=$?
    for p in "${PIDS[@]}"; do c1=$((c1 + $(cpu_ticks "$p"))); done
    [ -n "$NATS_PID" ] && n1=$(cpu_ticks "$NATS_PID")
    printf '{"rc":%d,"servers":%d,"servers_cpu_s":%s,"nats_cpu_s":%s,"load1":%s,"commit":"%s","args":"%s"}\n' \
        "$rc" "${#PIDS[@]}" "$(awk "BEGIN {printf \"%.2f\", ($c1 - $c0) / $HZ}")" \
        "$(awk "BEGIN {printf \"%.2f\", ($n1 - $n0) / $HZ}")" "$(cut -d' ' -f1 /proc/loadavg)" "$COMMIT" "$*" \
        > "$OUT/$name.meta"
    jq -c '{connected, delivered, lost, deliveries_per_sec, p50: .latency_us.p50, p99: .latency_us.p99}' \
        "$OUT/$name.json" 2>/dev/null || { echo "   (no report)"; tail -3 "$OUT/$name.err"; }
}

# loads SERVERS [bots flags]: the standard shapes against SERVERS.
loads() {
    local case=$1 servers=$2; shift 2
    for rate in $RATES; do
        run "$case-r100-$rate" -- --server "$servers" "$@" --wire framed --count 100 --senders 10 \
            --rooms 1 --rate "$rate/s" --size 64 --duration "$DUR" --settle 1s
    done
    run "$case-r1000-1000" -- --server "$servers" "$@" --wire framed --count 1000 --senders 10 \
        --rooms 1 --rate 1000/s --size 64 --duration "$DUR" --connect-rate 5000/s --settle 1s
}

LOAD0=$(cut -d' ' -f1-3 /proc/loadavg)
for c in $CASES; do
    case $c in
        single)
            node single 127.0.0.1:0
            loads single "$ADDR"
            ;;
        local | spread | cross)
            start_nats "$OUT/nats.log"
            node "$c-a" 127.0.0.1:0 --cluster "nats://127.0.0.1:$NATS_PORT" --node a
            A=$ADDR
            node "$c-b" 127.0.0.1:0 --cluster "nats://127.0.0.1:$NATS_PORT" --node b
            B=$ADDR
            case $c in
                local) loads local "$A" ;;
                spread) loads spread "$A,$B" --spread bots ;;
                cross) loads cross "$A,$B" --spread roles ;;
            esac
            ;;
        reuse)
            start_nats "$OUT/nats.log"
            port=$(free_port)
            for k in $(seq "$NODES"); do
                node "reuse-$k" "127.0.0.1:$port" --reuse-port --cluster "nats://127.0.0.1:$NATS_PORT" --node "r$k"
            done
            loads "reuse$NODES" "127.0.0.1:$port"
            ;;
        *) echo "unknown case $c"; exit 2 ;;
    esac
    stop_all
done
LOAD1=$(cut -d' ' -f1-3 /proc/loadavg)

python3 "$ROOT/bench/cluster.py" "$OUT" "$LOAD0" "$LOAD1" "$DUR" "$COMMIT" | tee "$OUT/table.md"
