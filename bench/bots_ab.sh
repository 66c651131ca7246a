#!/usr/bin/env bash
# A/B of the load generator itself: two `sockchat` binaries (the bots) run
# the same load against the same server build, interleaved (A B, B A, ...),
# each on a fresh server; prints each run's bots CPU per delivery (the
# bots' own `bots_cpu_ns_per_delivery`: user + system time of the bots
# process, ramp and drain included; and `bots_cpu_ns_per_delivery_send`,
# the send phase and drain alone, "-" from bots that lack it),
# deliveries/s, p99, and the machine's load average, then the medians.
#
#   bench/bots_ab.sh BOTS_A BOTS_B [PAIRS] [LOAD]
#       BOTS_A/BOTS_B: sockchat binaries (e.g. a copy of main's release
#       build and this tree's); PAIRS (3); LOAD: b (10,000 clients in 1,000
#       rooms, the default), e (UDP fan-out) or a (1,000 members in one
#       room, 1,000 msg/s, lines wire).
#   SRV=path/to/sockchat-server (default: this tree's release build)
#   DUR=5s (send phase)
#
# Loopback only; every run is bounded by `timeout`.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
A=${1:?usage: bench/bots_ab.sh BOTS_A BOTS_B [PAIRS] [LOAD]}
B=${2:?usage: bench/bots_ab.sh BOTS_A BOTS_B [PAIRS] [LOAD]}
PAIRS=${3:-3}
LOAD=${4:-b}
DUR=${DUR:-5s}
SRV=${SRV:-$ROOT/target/release/sockchat-server}
OUT=$ROOT/target/bench/bots_ab
mkdir -p "$OUT"
for f in "$A" "$B" "$SRV"; do [ -x "$f" ] || { echo "bots_ab: $f is not executable" >&2; exit 1; }; done
CONF=$OUT/server.toml
source "$ROOT/bench/common.sh"
bench_config "$CONF"
case $LOAD in
    b) ARGS="--wire framed --count 10000 --senders 1000 --rooms 1000 --rate 10000/s --size 64 --duration $DUR --connect-rate 5000/s --settle 2s --source-ips 127.0.0.1-127.0.0.8" ;;
    a) ARGS="--wire lines --count 1000 --senders 10 --rate 1000/s --size 64 --duration $DUR --connect-rate 2000/s --settle 1s" ;;
    e) ARGS="--wire udp --count 1000 --senders 10 --rate 1000/s --size 64 --duration $DUR --connect-rate 1000/s --settle 1s --source-ips 127.0.4.1-127.0.7.250" ;;
    *) echo "bots_ab: unknown load $LOAD (a, b or e)" >&2; exit 2 ;;
esac

SRV_PID=
stop_server() { [ -n "$SRV_PID" ] && kill "$SRV_PID" 2>/dev/null && wait "$SRV_PID" 2>/dev/null; SRV_PID=; }
trap stop_server EXIT

one() {
    local tag=$1 bots=$2 pair=$3 addr= la
    "$SRV" --listen 127.0.0.1:0 --config "$CONF" --no-rate-limits > "$OUT/server.out" 2> "$OUT/server.err" &
    SRV_PID=$!
    addr=$(listening_addr "$OUT/server.out")
    [ -n "$addr" ] || { echo "bots_ab: server did not start" >&2; exit 1; }
    la=$(cut -d' ' -f1 /proc/loadavg)
    # shellcheck disable=SC2086 # the flags are words
    timeout 300 "$bots" bots --json --no-progress --server "$addr" $ARGS > "$OUT/$tag.$pair.json" 2> "$OUT/$tag.$pair.err"
    stop_server
    printf '%s %s %s ' "$tag" "$pair" "$la"
    jq -r '[.bots_cpu_ns_per_delivery, (.bots_cpu_ns_per_delivery_send // "-"), .deliveries_per_sec, .lost, (.latency_us.p99/1000)] | @tsv' \
        "$OUT/$tag.$pair.json" 2>/dev/null || echo "(no report)"
}

echo "== $(date -u +%H:%M:%S) load $LOAD, $PAIRS pair(s), send phase $DUR; $(uptime)"
echo "build pair load1 bots_ns_per_delivery send_phase_ns deliveries/s lost p99_ms"
for pair in $(seq "$PAIRS"); do
    if [ $((pair % 2)) = 1 ]; then one A "$A" "$pair"; one B "$B" "$pair"; else one B "$B" "$pair"; one A "$A" "$pair"; fi
done | tee "$OUT/runs.txt"
echo "== medians (A = $A, B = $B); $(uptime)"
for tag in A B; do
    for col in 4 5; do
        awk -v t="$tag" -v c="$col" '$1 == t && NF >= 8 {print $c}' "$OUT/runs.txt" | sort -n | awk -v t="$tag" -v c="$col" '
            {ns[NR] = $1}
            END { if (NR) printf "%s: median bots ns/delivery%s %s (of %d runs)\n", t, (c == 5 ? ", send phase" : ""), ns[int((NR + 1) / 2)], NR }'
    done
done
