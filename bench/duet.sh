#!/usr/bin/env bash
# Duet benchmark of load (b): the baseline's server and this tree's server
# run AT THE SAME TIME, each under half of load (b) (5,000 clients in 500
# rooms of 10, 5,000 msg/s; together the machine carries one whole (b)),
# so that both see the same moments of the machine and two measurements
# take the time of one. (The method: Bulej et al., "Duet Benchmarking:
# Improving Measurement Accuracy in the Cloud", 2020.)
#
# Why: on a shared 2-vCPU virtual machine the p99 of one (b) run is set by
# the one to three hiccups (host stalls, the scheduler at ~1.8 of 2 CPUs)
# that fall into its send phase; two copies of the SAME server run side by
# side differ by a log-ratio standard deviation of 0.59 over 5 s send
# phases and 0.23 over 30 s (docs/BENCHMARKS.md, stop 29). The mean
# latency and the CPU per delivery resolve 1-3 % in a few rounds; a p99
# within 5 % needs long send phases and ~100 rounds.
#
#   bench/duet.sh [ROUNDS]        # default 20 rounds, DUR=30s send phases
#   A_A=1 bench/duet.sh 10        # this tree against itself: the method's
#                                 # own bias and spread (both ~1.00)
#
# Uses the binaries the last `bench/run.sh --baseline REV` built
# (target/bench/cmp/bin-base, bin-new; this tree's bots measure both).
# Odd rounds start the baseline's server and bots first and give it the
# first half of the source addresses, even rounds the other way round.
# Prints a line per round and a summary (bench/duet.py): the geometric mean
# of the per-round ratios this/base (p99, mean latency, server CPU per
# delivery) with a 95 % bootstrap interval and the one-sided upper bound.
# Loopback only; every run is bounded by `timeout` and the bots' --duration.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
ROUNDS=${1:-20}
DUR=${DUR:-30s}
NICE=${NICE:--5}
RUN=(nice -n "$NICE")
[ "$NICE" = 0 ] && RUN=()
CMP=$ROOT/target/bench/cmp
OUT=$ROOT/target/bench/duet
for b in base new; do
    [ -x "$CMP/bin-$b/sockchat-server" ] || {
        echo "duet: no $CMP/bin-$b/sockchat-server: run bench/run.sh --baseline REV first" >&2; exit 1; }
done
[ -x "$CMP/bin-new/sockchat" ] || { echo "duet: no bots binary in $CMP/bin-new" >&2; exit 1; }
mkdir -p "$OUT"
rm -f "$OUT"/*.json "$OUT"/*.err "$OUT"/*.meta
source "$ROOT/bench/common.sh"
CONF=$OUT/server.toml
bench_config "$CONF"
HZ=$(getconf CLK_TCK)

PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done; wait 2>/dev/null; true; }
trap cleanup EXIT

# half ADDR IPS: the bots' flags for half of load (b).
half() {
    echo "--server $1 --wire framed --count 5000 --senders 500 --rooms 500 --rate 5000/s --size 64 \
--duration $DUR --connect-rate 5000/s --settle 2s --source-ips $2 --timeline 100ms"
}

echo "== host stalls before: $(hostgap)"
declare -A bin=([base]=$CMP/bin-base/sockchat-server [new]=$CMP/bin-new/sockchat-server)
[ "${A_A:-0}" = 1 ] && bin[base]=$CMP/bin-new/sockchat-server
echo "== base: ${bin[base]}; this: ${bin[new]}"
echo "== $(date -u +%H:%M:%S) $ROUNDS duet round(s) of half (b) each, send phase $DUR, nice $NICE; $(uptime)"
for round in $(seq "$ROUNDS"); do
    declare -A addr=() pid=() c0=()
    if [ $((round % 2)) = 1 ]; then order=(base new); else order=(new base); fi
    for b in "${order[@]}"; do
        "${RUN[@]}" "${bin[$b]}" --listen 127.0.0.1:0 --config "$CONF" --no-rate-limits \
            > "$OUT/server-$b.out" 2> "$OUT/server-$b.err" &
        pid[$b]=$!
        PIDS+=("${pid[$b]}")
        addr[$b]=$(listening_addr "$OUT/server-$b.out" "$OUT/server-$b.err")
        [ -n "${addr[$b]}" ] || { cat "$OUT/server-$b.err"; echo "duet: $b server did not start" >&2; exit 1; }
        c0[$b]=$(cpu_ticks "${pid[$b]}")
    done
    # The first started gets the first half of the source addresses.
    ips=(127.0.0.1-127.0.0.4 127.0.0.5-127.0.0.8)
    bots=()
    for i in 0 1; do
        b=${order[$i]}
        # shellcheck disable=SC2046 # the flags are words
        timeout 300 "${RUN[@]}" "$CMP/bin-new/sockchat" bots --json --no-progress \
            $(half "${addr[$b]}" "${ips[$i]}") > "$OUT/$b.$round.json" 2> "$OUT/$b.$round.err" &
        bots+=($!)
    done
    PIDS+=("${bots[@]}")
    wait "${bots[@]}"
    for b in base new; do
        printf '{"server_cpu_s":%s}\n' \
            "$(awk -v a="${c0[$b]}" -v c="$(cpu_ticks "${pid[$b]}")" -v hz="$HZ" 'BEGIN {printf "%.2f", (c - a) / hz}')" \
            > "$OUT/$b.$round.meta"
        kill "${pid[$b]}" 2>/dev/null; wait "${pid[$b]}" 2>/dev/null
    done
    PIDS=()
    python3 "$ROOT/bench/duet.py" "$OUT" "$round"
done
echo "== $(date -u +%H:%M:%S) done; $(uptime); host stalls after: $(hostgap)"
python3 "$ROOT/bench/duet.py" "$OUT"
