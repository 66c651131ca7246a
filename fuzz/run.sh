#!/usr/bin/env bash
# The bounded fuzz run CI makes (test.sh calls it): every target in
# fuzz/Cargo.toml for FUZZ_SECS seconds (default 50) from the committed
# seeds (fuzz/seeds/TARGET) plus whatever corpus earlier runs left in
# fuzz/corpus/TARGET (not committed). Prints one line per target with its
# executions; exits non-zero on the first crash, leak or timeout, leaving
# the input in fuzz/artifacts/TARGET and printing it in base64 (add it to
# the seeds and a regression test next to the fixed code).
#
# Toolchain: nightly when rustup has one; otherwise stable with
# RUSTC_BOOTSTRAP=1 (cargo-fuzz needs -Z flags). Always --sanitizer none:
# the fuzzed code is safe Rust, so AddressSanitizer would find nothing the
# panics and the targets' own checks do not, at half the speed, and the two
# toolchains then build the same thing.
#
# Usage: fuzz/run.sh [TARGET...]      FUZZ_SECS=600 fuzz/run.sh rudp
set -euo pipefail
cd "$(dirname "$0")/.."

secs="${FUZZ_SECS:-50}"
targets=("$@")
if ((${#targets[@]} == 0)); then
  mapfile -t targets < <(sed -n 's/^name = "\(.*\)"$/\1/p' fuzz/Cargo.toml | grep -v '^sockchat-fuzz$')
fi

# libFuzzer itself is C++ (built by libfuzzer-sys).
if ! command -v c++ >/dev/null 2>&1; then
  echo "fuzz/run.sh: installing g++ (libFuzzer is C++)"
  if [ "$(id -u)" -eq 0 ]; then sudo=""; else sudo="sudo"; fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq g++ >/dev/null
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "fuzz/run.sh: installing cargo-fuzz"
  cargo install cargo-fuzz --locked
fi

toolchain=()
# FUZZ_TOOLCHAIN=stable tries the fallback on a machine that has nightly.
if [ "${FUZZ_TOOLCHAIN:-}" != stable ] && rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
  toolchain=(+nightly)
  echo "fuzz/run.sh: nightly toolchain"
else
  export RUSTC_BOOTSTRAP=1
  echo "fuzz/run.sh: no nightly toolchain; stable with RUSTC_BOOTSTRAP=1"
fi
fuzz=(cargo "${toolchain[@]}" fuzz)
opts=(--sanitizer none --debug-assertions --release)

start=$(date +%s)
"${fuzz[@]}" build "${opts[@]}"
echo "fuzz/run.sh: built in $(($(date +%s) - start)) s"

total=0
for t in "${targets[@]}"; do
  mkdir -p "fuzz/corpus/$t"
  log="fuzz/artifacts/$t.log"
  mkdir -p fuzz/artifacts
  t0=$(date +%s)
  # -rss_limit_mb: a target that needs more than this is a finding (no
  # input should make the protocol code hold that much).
  if ! "${fuzz[@]}" run "${opts[@]}" "$t" "fuzz/corpus/$t" "fuzz/seeds/$t" -- \
    -max_total_time="$secs" -rss_limit_mb=1024 -timeout=10 -print_final_stats=1 >"$log" 2>&1; then
    tail -n 60 "$log"
    echo "fuzz/run.sh: $t FAILED (full log: $log)" >&2
    exit 1
  fi
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
  rss=$(sed -n 's/^stat::peak_rss_mb: *//p' "$log" | tail -n 1)
  units=$(find "fuzz/corpus/$t" -type f | wc -l)
  echo "fuzz $t: ${execs:-?} executions in $(($(date +%s) - t0)) s, corpus $units inputs, peak RSS ${rss:-?} MB, no crash"
  total=$((total + ${execs:-0}))
done
echo "fuzz/run.sh: ${#targets[@]} targets, $total executions, $(($(date +%s) - start)) s in all"
