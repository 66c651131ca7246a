#!/usr/bin/env bash
# Where do the UDP fan-out's lost datagrams go? One run of load (e) (1,000
# UDP members, 10 senders, RATE msg/s) against this tree's release server,
# with the kernel's counters around it:
# - /proc/net/snmp `Udp:` deltas (InDatagrams, RcvbufErrors, SndbufErrors);
# - /proc/net/udp `drops` per socket, sampled every 0.5 s while the bots'
#   sockets exist: the server's socket apart from the bots' ones;
# - the server's own counters at exit ("udp stopped": datagrams handed to
#   the kernel, sendmmsg calls, kernel drops of its socket) and its
#   slow-consumer disconnects.
#
#   bench/udp_loss.sh                 # RATE=1000, GSO on
#   GSO=false RATE=500 bench/udp_loss.sh
#   PERF=1 bench/udp_loss.sh          # also `perf record -g` the server
#
# Loopback only; bounded by timeout and the bots' --duration.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
RATE=${RATE:-1000}
GSO=${GSO:-true}
DUR=${DUR:-5s}
OUT=$ROOT/target/bench/udp
mkdir -p "$OUT"
[ -n "${NOBUILD:-}" ] || cargo build --release -p sockchat -p sockchat-server 2>&1 | tail -1
printf '[limits]\nmax_rooms = 2000\nmax_connections = 20000\n[udp]\ngso = %s\n' "$GSO" > "$OUT/server.toml"
"$ROOT/target/release/sockchat-server" --listen 127.0.0.1:0 --config "$OUT/server.toml" --no-rate-limits \
    > "$OUT/server.out" 2> "$OUT/server.err" &
SRV=$!
trap 'kill $SRV 2>/dev/null' EXIT
ADDR=
for _ in $(seq 100); do
    ADDR=$(sed -n 's/^listening on \(127\.0\.0\.1:[0-9]*\) (tcp)$/\1/p' "$OUT/server.out" | head -1)
    [ -n "$ADDR" ] && break
    sleep 0.1
done
[ -n "$ADDR" ] || { cat "$OUT/server.err"; exit 1; }
PORT_HEX=$(printf '%04X' "${ADDR##*:}")
snmp() { awk '/^Udp: [0-9]/ {print "{\"in\":" $2 ",\"noport\":" $3 ",\"inerr\":" $4 ",\"out\":" $5 ",\"rcvbuf\":" $6 ",\"sndbuf\":" $7 "}"}' /proc/net/snmp; }
# Sum of drops: the server's socket (its port) and everything else bound
# to 127.0.4.0/22 (the bots' source addresses).
drops() {
    awk -v p=":$PORT_HEX" 'NR > 1 {
        split($2, a, ":"); ip = a[1];
        if ($2 ~ p"$" && ip == "0100007F") s += $NF;
        else if (substr(ip, 3, 2) >= "04" && substr(ip, 3, 2) <= "07" && substr(ip, 5, 4) == "007F") b += $NF;
    } END { printf "%d %d\n", s, b }' /proc/net/udp
}
S0=$(snmp)
LA=$(cut -d' ' -f1-3 /proc/loadavg)
( while kill -0 $SRV 2>/dev/null; do drops; sleep 0.5; done ) > "$OUT/drops.log" &
SAMPLER=$!
if [ "${PERF:-0}" = 1 ]; then
    ( sleep 4; perf record -g -o "$OUT/perf.data" -p $SRV -- sleep 4 > /dev/null 2>&1 ) &
fi
timeout 300 "$ROOT/target/release/sockchat" bots --json --no-progress --server "$ADDR" --wire udp \
    --count 1000 --senders 10 --rate "$RATE/s" --size 64 --duration "$DUR" --connect-rate 1000/s \
    --settle 1s --source-ips 127.0.4.1-127.0.7.250 > "$OUT/bots.json" 2> "$OUT/bots.err"
S1=$(snmp)
kill $SRV; wait $SRV 2>/dev/null
kill $SAMPLER 2>/dev/null
wait
echo "rate $RATE/s, gso $GSO, load average $LA"
jq -c '{connected, sent, expected, delivered, lost, dps: .deliveries_per_sec, p99_ms: (.latency_us.p99/1000), errors, bots_cpu_ns_per_delivery}' "$OUT/bots.json"
python3 - "$S0" "$S1" <<'PY'
import json, sys
a, b = json.loads(sys.argv[1]), json.loads(sys.argv[2])
print("snmp Udp deltas:", {k: b[k] - a[k] for k in a})
PY
echo "max drops seen (server socket, bots' sockets): $(sort -k2 -n "$OUT/drops.log" | tail -1)"
grep -o 'udp stopped.*' "$OUT/server.err" | tail -1
grep -o 'udp receive buffer.*\|udp send path.*' "$OUT/server.err" | head -2
echo "slow-consumer disconnects: $(grep -c 'slow consumer\|slow-consumer' "$OUT/server.err")"
