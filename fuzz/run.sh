#!/usr/bin/env bash
# Runs fjell's fuzz targets. Usage: fuzz/run.sh SECONDS [TARGET...]
#   fuzz/run.sh 30            # every target for 30 s (what CI does)
#   fuzz/run.sh 600 node_ops  # a long campaign on one target
# Prints libFuzzer's final stats line per target; exits non-zero on the first crash, leaving
# the input under fuzz/artifacts/<target>/ (add it to fuzz/corpus/<target>/ as seed-<name>
# once fixed, so it stays a regression test).
set -euo pipefail
cd "$(dirname "$0")"
secs=${1:?usage: fuzz/run.sh SECONDS [TARGET...]}
shift
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  targets=(wire_decode node_ops gossip_merge phi quic_frame ddata_message)
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
  cargo install cargo-fuzz --locked
fi
cargo +nightly fuzz build -O
for t in "${targets[@]}"; do
  mkdir -p "corpus/$t"
  log=$(mktemp)
  if ! cargo +nightly fuzz run -O "$t" "corpus/$t" -- -max_total_time="$secs" -print_final_stats=1 >"$log" 2>&1; then
    tail -40 "$log"
    echo "fuzz target $t FAILED"
    exit 1
  fi
  execs=$(grep -a 'stat::number_of_executed_units' "$log" | awk '{print $2}')
  rate=$(grep -a 'stat::average_exec_per_sec' "$log" | awk '{print $2}')
  echo "fuzz target $t: ${secs} s, ${execs:-?} executions, ${rate:-?} exec/s, no crash"
  rm -f "$log"
done
