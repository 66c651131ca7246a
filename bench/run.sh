#!/usr/bin/env bash
# Benchmarks: build release binaries, start the real server, run the
# standard loads with `sockchat bots`, and write the results table into
# docs/BENCHMARKS.md (between the bench:begin/bench:end markers; the
# hand-written analysis around them is kept).
#
#   bench/run.sh                 # everything (~6-8 minutes)
#   DUR=5s bench/run.sh          # shorter send phases
#   ONLY="a c" bench/run.sh      # some loads only: a act a100 b c d e ncat
#   bench/run.sh --baseline REV [--quick] [--pairs N]
#                                # A/B: this tree against REV, interleaved,
#                                # idealchat as the ceiling (bench/compare.sh)
#
# Loads (see docs/BENCHMARKS.md): (a) fan-out 1,000 members / 1 room / 10
# senders at rising rates; (b) 10,000 clients in 1,000 rooms of 10; (c) idle
# capacity up to the fd limit, server RSS per connection, then past the limit
# (EMFILE must be survived); (d) churn with abrupt disconnects; (e) UDP
# fan-out; and the same fan-out against `ncat --broker --chat` if installed.
# Traffic is loopback only. Every run is bounded (timeout).
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

if [ $# -gt 0 ]; then
    BASELINE= MODE=full PAIRS=
    while [ $# -gt 0 ]; do
        case $1 in
            --baseline) BASELINE=${2:?--baseline needs a revision}; shift 2 ;;
            --quick) MODE=quick; shift ;;
            --pairs) PAIRS=${2:?--pairs needs a number}; shift 2 ;;
            *) echo "usage: bench/run.sh [--baseline REV [--quick] [--pairs N]]" >&2; exit 2 ;;
        esac
    done
    [ -n "$BASELINE" ] || { echo "bench/run.sh: --quick/--pairs need --baseline REV" >&2; exit 2; }
    exec "$ROOT/bench/compare.sh" "$BASELINE" "$MODE" "$PAIRS"
fi
DUR=${DUR:-10s}
ONLY_SET=${ONLY:-}
ONLY=${ONLY:-"a act a100 b c d e ncat"}
RATES_A=${RATES_A:-"1000 2000 3000 4500"}
RATES_A100=${RATES_A100:-"10000 25000 45000"}
OUT=${OUT:-$ROOT/target/bench}
mkdir -p "$OUT"
# A full run starts clean; a partial run (ONLY=...) keeps the other loads'
# results so the table stays complete.
[ -z "${ONLY_SET:-}" ] && rm -f "$OUT"/*.json "$OUT"/*.meta "$OUT"/*.err "$OUT"/*.log

source "$ROOT/bench/common.sh"
echo "== building release binaries"
bench_build

# The server's limits for load tests: enough rooms for (b) (1,000 + lobby)
# and the global cap at the fd limit. --no-rate-limits turns off the
# per-connection message limits and per-address caps.
CONF=$OUT/bench-server.toml
bench_config "$CONF"

SRV_PID=
ADDR=
start_server() {
    : > "$OUT/server.out"
    "$SRV" --listen 127.0.0.1:0 --config "$CONF" --no-rate-limits "$@" \
        > "$OUT/server.out" 2> "$OUT/server.err" &
    SRV_PID=$!
    ADDR=$(listening_addr "$OUT/server.out")
    [ -n "$ADDR" ] && return 0
    echo "server did not start"; cat "$OUT/server.err"; exit 1
}
stop_server() {
    [ -n "$SRV_PID" ] && kill "$SRV_PID" 2>/dev/null && wait "$SRV_PID" 2>/dev/null
    SRV_PID=
}
NCAT_PID=
cleanup() { stop_server; [ -n "$NCAT_PID" ] && kill "$NCAT_PID" 2>/dev/null; true; }
trap cleanup EXIT


# run NAME PID -- bots args...: one bounded bots run; records the server's
# CPU seconds, RSS (baseline and peak, sampled every 100 ms) and fds.
run() {
    local name=$1 pid=$2; shift 3
    local c0 r0 f0 peak=0 sampler
    c0=$(cpu_ticks "$pid"); r0=$(rss_kb "$pid"); f0=$(nfds "$pid")
    ( while kill -0 "$pid" 2>/dev/null; do rss_kb "$pid"; sleep 0.1; done ) > "$OUT/$name.rss" &
    sampler=$!
    echo "== $name: sockchat bots $*"
    timeout 300 "$BOTS" bots --json --no-progress "$@" > "$OUT/$name.json" 2> "$OUT/$name.err"
    local rc=$?
    kill "$sampler" 2>/dev/null; wait "$sampler" 2>/dev/null
    peak=$(sort -n "$OUT/$name.rss" | tail -1)
    sleep 0.5
    local c1 f1 alive=1
    c1=$(cpu_ticks "$pid"); f1=$(nfds "$pid")
    kill -0 "$pid" 2>/dev/null || alive=0
    printf '{"rc":%d,"server_cpu_s":%s,"rss0_kb":%s,"rss_peak_kb":%s,"fds0":%s,"fds1":%s,"alive":%d,"commit":"%s","args":"%s"}\n' \
        "$rc" "$(echo "scale=2; ($c1 - $c0) / $HZ" | bc)" "${r0:-0}" "${peak:-0}" "$f0" "$f1" "$alive" "$COMMIT" "$*" \
        > "$OUT/$name.meta"
    jq -c '{connected, delivered, expected, lost, deliveries_per_sec, p99: .latency_us.p99, errors}' \
        "$OUT/$name.json" 2>/dev/null || { echo "   (no report)"; tail -3 "$OUT/$name.err"; }
}

want() { case " $ONLY " in *" $1 "*) return 0;; *) return 1;; esac; }

LOAD0=$(cut -d' ' -f1-3 /proc/loadavg)
# The machine's own stalls before the loads (see bench/hostgap.py).
GAP0=$(hostgap)
echo "== host stalls: $GAP0"

if want a; then
    for wire in lines framed; do
        start_server
        for rate in $RATES_A; do
            run "a-$wire-$rate" "$SRV_PID" -- --server "$ADDR" --wire "$wire" --count 1000 \
                --senders 10 --rooms 1 --rate "$rate/s" --size 64 --duration "$DUR" \
                --connect-rate 5000/s --settle 1s
        done
        stop_server
    done
fi

if want act; then
    # The same fan-out with the server's current-thread runtime.
    printf '[server]\nruntime = "current-thread"\n' > "$OUT/bench-ct.toml"
    cat "$CONF" >> "$OUT/bench-ct.toml"
    CONF_SAVED=$CONF; CONF=$OUT/bench-ct.toml
    for wire in framed; do
        start_server
        for rate in ${RATES_ACT:-2000 4500}; do
            run "act-$wire-$rate" "$SRV_PID" -- --server "$ADDR" --wire "$wire" --count 1000 \
                --senders 10 --rooms 1 --rate "$rate/s" --size 64 --duration "$DUR" \
                --connect-rate 5000/s --settle 1s
        done
        stop_server
    done
    CONF=$CONF_SAVED
fi

if want a100; then
    # The issue's reference figures for (a) were taken with 100 clients /
    # 10 senders; the same shape here, for a like-for-like comparison.
    for wire in lines framed; do
        start_server
        for rate in $RATES_A100; do
            run "a100-$wire-$rate" "$SRV_PID" -- --server "$ADDR" --wire "$wire" --count 100 \
                --senders 10 --rooms 1 --rate "$rate/s" --size 64 --duration "$DUR" --settle 1s
        done
        stop_server
    done
fi

if want b; then
    for wire in lines framed; do
        start_server
        run "b-$wire" "$SRV_PID" -- --server "$ADDR" --wire "$wire" --count 10000 --senders 1000 \
            --rooms 1000 --rate 10000/s --size 64 --duration "$DUR" --connect-rate 5000/s \
            --settle 2s --source-ips 127.0.0.1-127.0.0.8
        stop_server
    done
fi

if want c; then
    # Idle capacity: the server's hard RLIMIT_NOFILE is 20,000, so ~19,900
    # connections; the bots need 2 worker processes for as many fds.
    for wire in lines framed; do
        start_server
        run "c-$wire" "$SRV_PID" -- --server "$ADDR" --wire "$wire" --count 19900 --senders 0 \
            --duration 3s --connect-rate 5000/s --settle 1s --workers 2 \
            --source-ips 127.0.0.1-127.0.0.16
        stop_server
    done
    # Past the limit: the server must log EMFILE and keep serving.
    start_server
    run "c-emfile" "$SRV_PID" -- --server "$ADDR" --wire lines --count 20400 --senders 0 \
        --duration 2s --connect-rate 5000/s --connect-timeout 2s --workers 3 \
        --source-ips 127.0.0.1-127.0.0.16
    run "c-after" "$SRV_PID" -- --server "$ADDR" --wire lines --count 20 --senders 2 \
        --rate 100/s --duration 1s
    grep -m3 -i -E "emfile|too many open files" "$OUT/server.err" > "$OUT/c-emfile.log" || true
    stop_server
fi

if want d; then
    start_server
    run "d-churn" "$SRV_PID" -- --server "$ADDR" --scenario "$ROOT/examples/bots/churn.toml" \
        --duration "$DUR" --source-ips 127.0.0.1-127.0.0.16
    stop_server
fi

if want e; then
    # One source address per bot: the server rate-limits its cookie
    # retries per address (anti-reflection) and 2,000/s in total. A fresh
    # server per rate: UDP sessions of an overloaded run linger until their
    # timeout (UDP has no FIN; a lost Quit is never seen).
    for rate in ${RATES_E:-100 250 500}; do
        start_server
        if ! grep -q "(udp)" "$OUT/server.out"; then
            echo "== e: the server has no UDP listener; skipped"
            stop_server
            break
        fi
        run "e-udp-$rate" "$SRV_PID" -- --server "$ADDR" --wire udp --count 1000 \
            --senders 10 --rate "$rate/s" --size 64 --duration "$DUR" --connect-rate 1000/s \
            --settle 1s --source-ips 127.0.4.1-127.0.7.250
        stop_server
    done
fi

if want ncat; then
    if command -v ncat > /dev/null; then
        port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
        for rate in $RATES_A; do
            # -m: ncat accepts only 100 clients by default (--max-conns).
            # It uses select(2), so FD_SETSIZE 1024 caps it near 1,020.
            ncat --broker --chat -m 2000 -l 127.0.0.1 "$port" > /dev/null 2> "$OUT/ncat-$rate.log" &
            NCAT_PID=$!
            sleep 0.3
            run "ncat-$rate" "$NCAT_PID" -- --server "127.0.0.1:$port" --wire lines \
                --join-line none --count 1000 --senders 10 --rate "$rate/s" --size 64 \
                --duration "$DUR" --connect-rate 1000/s --settle 1s
            kill "$NCAT_PID" 2>/dev/null; wait "$NCAT_PID" 2>/dev/null; NCAT_PID=
        done
        for rate in $RATES_A100; do
            ncat --broker --chat -m 2000 -l 127.0.0.1 "$port" > /dev/null 2> "$OUT/ncat100-$rate.log" &
            NCAT_PID=$!
            sleep 0.3
            run "ncat100-$rate" "$NCAT_PID" -- --server "127.0.0.1:$port" --wire lines \
                --join-line none --count 100 --senders 10 --rate "$rate/s" --size 64 \
                --duration "$DUR" --settle 1s
            kill "$NCAT_PID" 2>/dev/null; wait "$NCAT_PID" 2>/dev/null; NCAT_PID=
        done
    else
        echo "== ncat not installed (apt-get install ncat): comparison skipped"
    fi
fi

LOAD1=$(cut -d' ' -f1-3 /proc/loadavg)
python3 "$ROOT/bench/report.py" "$OUT" "$ROOT/docs/BENCHMARKS.md" "$DUR" "$LOAD0" "$LOAD1" "$GAP0"
echo "== wrote docs/BENCHMARKS.md"
