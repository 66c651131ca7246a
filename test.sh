#!/usr/bin/env bash
# Every check, on a fresh machine: installs what the tests need (tmux for the
# terminal end-to-end tests, iproute2 for the lab's network namespaces, openssl
# and ncat for the TLS tests, nftables for the kernel-drop transfer tests,
# nats-server for the cluster tests), then
# formatting, lints and the whole test suite. This is the README's test command.
# With CI set (CI=true, as .ci/run and CI services do) a test whose host
# precondition is missing (root, tmux, ip, ::1) fails instead of skipping:
# run it as root on a machine with IPv6 loopback.
set -euo pipefail
cd "$(dirname "$0")"

need=()
command -v tmux >/dev/null 2>&1 || need+=(tmux)
command -v ip >/dev/null 2>&1 || need+=(iproute2)
command -v openssl >/dev/null 2>&1 || need+=(openssl)   # tls.rs: s_client chats over TLS
command -v ncat >/dev/null 2>&1 || need+=(ncat)         # tls.rs: ncat --ssl too
command -v nft >/dev/null 2>&1 || need+=(nftables)      # transfer_netns.rs: kernel-dropped datagrams; discovery.rs: 5353/udp dropped
command -v curl >/dev/null 2>&1 || need+=(curl)         # server_stats.rs: scrapes /metrics
# server_stats.rs: the Prometheus project's text parser checks /metrics
/usr/bin/python3 -c "import prometheus_client.parser" >/dev/null 2>&1 || need+=(python3-prometheus-client)
# cluster.rs: a real NATS server (Debian's package installs it in /usr/sbin)
command -v nats-server >/dev/null 2>&1 || [ -x /usr/sbin/nats-server ] || need+=(nats-server)
if ((${#need[@]})); then
  echo "test.sh: installing ${need[*]}"
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "test.sh: please install ${need[*]} (no apt-get here)" >&2
    exit 1
  fi
  if [ "$(id -u)" -eq 0 ]; then sudo=""; else sudo="sudo"; fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}" >/dev/null
fi

cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
# The end-to-end tests in tests/ run the real binaries: build them first.
cargo build --workspace --bins
# Bounded: every test bounds its own waits; should one still hang, CI fails
# here with the test's name on screen instead of running out of time.
timeout --kill-after=30s 40m cargo test --workspace
# Fuzzing (fuzz/ is its own workspace): each target for FUZZ_SECS seconds
# (50 by default) from the committed seeds; installs cargo-fuzz, uses stable
# with RUSTC_BOOTSTRAP=1 when there is no nightly. docs/RELIABILITY.md.
fuzz/run.sh
