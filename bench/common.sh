# The set-up the benchmark scripts share (sourced, from the repository's
# root, after `ROOT=$PWD`): the release build, the server's load-test
# config, ports, a started server's address, a NATS server, and the
# /proc readings. Loopback only; every wait is bounded.

# Build the release binaries; sets BOTS, SRV, HZ, COMMIT.
bench_build() {
    cargo build --release -p sockchat -p sockchat-server 2>&1 | tail -1
    BOTS=$ROOT/target/release/sockchat
    SRV=$ROOT/target/release/sockchat-server
    HZ=$(getconf CLK_TCK)
    COMMIT=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
}

# bench_config FILE: the server's limits for load tests (rooms for 1,000
# rooms of 10 plus the lobby; the global cap at the fd limit).
bench_config() {
    printf '[limits]\nmax_rooms = 2000\nmax_connections = 20000\n' > "$1"
}

# hostgap: bench/hostgap.py's JSON (2 s on every CPU), `{}` if it failed.
hostgap() { python3 "$ROOT/bench/hostgap.py" 2 2>/dev/null || echo '{}'; }

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0; }
rss_kb() { awk '/^VmRSS/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }
nfds() { ls "/proc/$1/fd" 2>/dev/null | wc -l; }
# Nanoseconds the process's threads have spent runnable but waiting for a
# CPU (the second field of /proc/PID/task/TID/schedstat, summed): on a
# machine the bots share, what a second worker thread costs.
rq_wait_ns() { cat /proc/"$1"/task/*/schedstat 2>/dev/null | awk '{w += $2} END {printf "%.0f\n", w}'; }

# listening_addr FILE...: the TCP address a server printed in one of the
# files (sockchat's `listening on ADDR (tcp)`, idealchat's `idealchat
# listening on ADDR ...`) within 10 s; empty if it did not.
listening_addr() {
    local a=
    for _ in $(seq 100); do
        a=$(sed -n -e 's/^listening on \(127\.0\.0\.1:[0-9]*\) (tcp)$/\1/p' \
            -e 's/^idealchat listening on \(127\.0\.0\.1:[0-9]*\) .*/\1/p' "$@" | head -1)
        [ -n "$a" ] && break
        sleep 0.1
    done
    echo "$a"
}

# The nats-server binary, or a message and failure (call it before a long
# build, so a missing one is told at once).
nats_bin() {
    local nats
    nats=$(command -v nats-server || echo /usr/sbin/nats-server)
    [ -x "$nats" ] || { echo "nats-server is not installed (apt-get install nats-server)" >&2; return 1; }
    echo "$nats"
}

# start_nats LOG: a fresh nats-server with JetStream (its store in a
# temporary directory) on a free loopback port, accepting within 10 s;
# sets NATS_PORT, NATS_DIR, NATS_PID (the caller's cleanup stops it).
start_nats() {
    local nats
    nats=$(nats_bin) || exit 1
    NATS_PORT=$(free_port)
    NATS_DIR=$(mktemp -d /tmp/sockchat-bench-nats.XXXXXX)
    "$nats" -js -a 127.0.0.1 -p "$NATS_PORT" -sd "$NATS_DIR" > "$1" 2>&1 &
    NATS_PID=$!
    for _ in $(seq 100); do
        (exec 3<>"/dev/tcp/127.0.0.1/$NATS_PORT") 2>/dev/null && return 0
        sleep 0.1
    done
    echo "nats-server did not start"; cat "$1"; exit 1
}
