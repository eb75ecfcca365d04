#!/usr/bin/env bash
# fjell-core on microcontrollers, run by .ci/run:
#   1. builds both firmwares for Cortex-M4F (thumbv7em-none-eabihf) and Cortex-M0+
#      (thumbv6m-none-eabi: no FPU, no atomic compare-and-swap);
#   2. reports the flash and RAM of each, and fails when the `node` firmware (a member that
#      never leads) exceeds the budget on either target at the release profile's opt-level
#      "z", or on thumbv7em at "s", or outgrows its ceiling at any of these;
#   3. runs, under QEMU on both, with a timeout, the rules of a member that never leads
#      (fjell-core without `lead`) and the cluster firmware (three nodes lose one; sixteen
#      split 9 | 7), and fails when either does.
# Installs the targets, llvm-size and QEMU if they are missing.
set -euo pipefail
cd "$(dirname "$0")"
export CARGO_TERM_COLOR=never
export CARGO_TARGET_DIR="${FIRMWARE_TARGET_DIR:-$PWD/../target/firmware}"

# The budget for a firmware that runs one DeviceNode (LTO), held on both targets at "z", the
# release profile's level, and on thumbv7em at "s" too, the level it was stated at.
FLASH_BUDGET=65536
# Ratchets under the budget: the sizes when they were last lowered, plus a little, so that
# the firmware can only shrink. Lower them whenever the firmware shrinks.
declare -A FLASH_CEILING=([thumbv7em-none-eabihf]=59650 [thumbv6m-none-eabi]=65250)
FLASH_CEILING_S=64200

TARGETS=(thumbv7em-none-eabihf thumbv6m-none-eabi)
declare -A BOARD=([thumbv7em-none-eabihf]="mps2-an386 (Cortex-M4)" [thumbv6m-none-eabi]="mps2-an385 (Cortex-M3 running ARMv6-M code)")

installed_targets=$(rustup target list --installed)
for t in "${TARGETS[@]}"; do
  grep -qx "$t" <<<"$installed_targets" || rustup target add "$t"
done
rustup component list --installed | grep -q '^llvm-tools' || rustup component add llvm-tools
if ! command -v qemu-system-arm >/dev/null 2>&1; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq qemu-system-arm
fi
llvm_size="$(rustc --print sysroot)/lib/rustlib/$(rustc -vV | sed -n 's/^host: //p')/bin/llvm-size"

cargo fmt -- --check
# The `node` firmware is a member that never leads (fjell-core without `lead`); the cluster
# firmware, and `node` built as a member that may lead for comparison, go to a target dir of
# their own: the two feature sets would otherwise overwrite each other's `node`.
LEAD_DIR="$CARGO_TARGET_DIR/lead"
for t in "${TARGETS[@]}"; do
  cargo clippy --quiet --release --target "$t" --bins -- -D warnings
  cargo clippy --quiet --release --target "$t" --bins --features lead --target-dir "$LEAD_DIR" \
    -- -D warnings
  cargo build --quiet --release --target "$t" --bins
  cargo build --quiet --release --target "$t" --bins --features lead --target-dir "$LEAD_DIR"
done

# The `node` firmware with fjell-core's phi detector, for comparison (not held to the budget).
cargo build --quiet --release --target thumbv7em-none-eabihf --bin node --features phi \
  --target-dir "$CARGO_TARGET_DIR/with-phi"
# The `node` firmware at opt-level "s", the condition the budget was first stated with.
CARGO_PROFILE_RELEASE_OPT_LEVEL=s cargo build --quiet --release --target thumbv7em-none-eabihf \
  --bin node --target-dir "$CARGO_TARGET_DIR/opt-s"

# Flash: what is programmed (vector table, code, constants, initial values of statics).
# RAM: statics (.data + .bss); the stack comes on top (the cluster run measures it).
sizes() {
  # Prints nothing when llvm-size reads no flash (a file missing or not an ELF), so the
  # caller's `read` fails and the run stops (set -e) rather than pass at 0 B.
  "$llvm_size" -A "$1" | awk '
    $1 == ".vector_table" || $1 == ".text" || $1 == ".rodata" { flash += $2 }
    $1 == ".data" { flash += $2; ram += $2 }
    $1 == ".bss" || $1 == ".uninit" { ram += $2 }
    $1 == ".text" { text = $2 }
    END { if (flash > 0) printf "%d %d %d\n", flash, text, ram }'
}

echo "firmware sizes (flash = vector table + .text + .rodata + .data; RAM = statics):"
status=0
for t in "${TARGETS[@]}"; do
  for bin in node lead/node lead/cluster; do
    dir=$CARGO_TARGET_DIR
    [[ $bin == lead/* ]] && dir=$LEAD_DIR
    read -r flash text ram < <(sizes "$dir/$t/release/${bin#lead/}")
    label=$bin
    [[ $bin == node ]] && label="node (never leads)"
    [[ $bin == lead/node ]] && label="node (may lead)"
    [[ $bin == lead/cluster ]] && label="cluster"
    printf '  %-22s %-19s flash %7d B (.text %7d B)  static RAM %6d B\n' "$t" "$label" "$flash" "$text" "$ram"
    if [[ $bin == node ]]; then
      if (( flash > FLASH_BUDGET )); then
        echo "  FAIL: budget missed, $flash B > $FLASH_BUDGET B (64 KiB); see BENCHMARKS.md 'fjell-core on microcontrollers'"
        status=1
      else
        echo "  budget: met, $flash B <= $FLASH_BUDGET B"
      fi
      if (( flash > FLASH_CEILING[$t] )); then
        echo "  FAIL: the node firmware grew past the ceiling of ${FLASH_CEILING[$t]} B"
        status=1
      fi
    fi
  done
done

read -r flash text ram < <(sizes "$CARGO_TARGET_DIR/with-phi/thumbv7em-none-eabihf/release/node")
printf '  %-22s %-8s flash %7d B (.text %7d B)  static RAM %6d B  (with phi)\n' \
  thumbv7em-none-eabihf node "$flash" "$text" "$ram"
read -r flash text ram < <(sizes "$CARGO_TARGET_DIR/opt-s/thumbv7em-none-eabihf/release/node")
printf '  %-22s %-8s flash %7d B (.text %7d B)  static RAM %6d B  (opt-level "s")\n' \
  thumbv7em-none-eabihf node "$flash" "$text" "$ram"
if (( flash > FLASH_BUDGET )); then
  echo "  FAIL: budget at opt-level \"s\" missed, $flash B > $FLASH_BUDGET B (64 KiB)"
  status=1
else
  echo "  budget at opt-level \"s\": met, $flash B <= $FLASH_BUDGET B"
fi
if (( flash > FLASH_CEILING_S )); then
  echo "  FAIL: the node firmware at opt-level \"s\" grew past the ceiling of $FLASH_CEILING_S B"
  status=1
fi

for t in "${TARGETS[@]}"; do
  echo "the rules of a member that never leads under QEMU (fjell-core without lead), ${BOARD[$t]}:"
  timeout 60 cargo run --quiet --release --target "$t" --bin follower
  echo "the cluster firmware under QEMU, ${BOARD[$t]}:"
  timeout 120 cargo run --quiet --release --target "$t" --bin cluster --features lead \
    --target-dir "$LEAD_DIR"
done
exit $status
