#!/usr/bin/env bash
# make fuzz: builds the libFuzzer targets (preset `fuzz`: clang-14, ASan + UBSan) and runs
# each for FUZZ_SECONDS (default 60), two at a time, from the committed seed corpus
# (tests/fuzz/corpus/<target>/) plus the inputs that once crashed (regressions/<target>/).
# New inputs the fuzzer finds go to a scratch directory, not into the repo.
# Fails when a target crashes, leaks, times out (10 s an input) or runs out of memory; the
# input is kept in build/fuzz/crashes/<target>/ with the fuzzer's report beside it: fix the
# cause, then copy the input to regressions/<target>/ so that the normal suite replays it.
# Then checks coverage with libFuzzer's -print_coverage: each target must reach the
# functions named in `reach` below (what the fuzzing is for: strip decoding, device
# validation, command dispatch).
#   FUZZ_SECONDS=N   seconds per target        FUZZ_TARGETS="tiff config"   a subset
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
seconds=${FUZZ_SECONDS:-60}
build="$root/build/fuzz"

echo "fuzz: building (preset fuzz)"
cmake --preset fuzz >/dev/null
cmake --build --preset fuzz

# What each target must reach (a function name as -print_coverage prints it, grep -E).
declare -A reach=(
  [tiff]='copyPage'
  [meta]='parseMeta'
  [spectrum]='analyze'
  [config]='validateImsDriver'
  [profile]='parseXrayProfile'
  [modbus]='ModbusLink::read'
  [ack]='Outbox::applyAck'
  [control]='Daemon::onControl'
  [outbox]='salvage'
)

if [ -n "${FUZZ_TARGETS:-}" ]; then
  read -r -a targets <<< "$FUZZ_TARGETS"
else
  targets=()
  for f in "$build"/tests/fuzz/fuzz_*; do targets+=("${f##*/fuzz_}"); done
fi
[ ${#targets[@]} -gt 0 ] || { echo "fuzz: no targets built under $build/tests/fuzz" >&2; exit 1; }

work=$(mktemp -d "${TMPDIR:-/tmp}/lanegate-fuzz.XXXXXX")
trap 'rm -rf "$work"' EXIT
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1

run_one() {  # target
  local t=$1 dir="$work/$1"
  mkdir -p "$dir/new" "$dir/artifacts"
  local seeds=("tests/fuzz/corpus/$t")
  [ -d "tests/fuzz/regressions/$t" ] && seeds+=("tests/fuzz/regressions/$t")
  if "$build/tests/fuzz/fuzz_$t" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
      -print_final_stats=1 -artifact_prefix="$dir/artifacts/" "$dir/new" "${seeds[@]}" \
      > "$dir/log" 2>&1; then
    echo ok > "$dir/result"
  else
    echo failed > "$dir/result"
  fi
}

echo "fuzz: ${targets[*]}, ${seconds} s each, two at a time"
running=0
for t in "${targets[@]}"; do
  [ -x "$build/tests/fuzz/fuzz_$t" ] || { echo "fuzz: no target fuzz_$t" >&2; exit 1; }
  run_one "$t" &
  running=$((running + 1))
  if [ $running -ge 2 ]; then wait -n; running=$((running - 1)); fi
done
wait

failed=0
printf '%-10s %-8s %12s %8s %8s %s\n' target result runs cov corpus reached
for t in "${targets[@]}"; do
  dir="$work/$t"
  result=$(cat "$dir/result")
  # (A target that failed at once has no "cov:" line: the table must still say so.)
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$dir/log" | tail -1 || true)
  cov=$(grep -o 'cov: [0-9]*' "$dir/log" | tail -1 | cut -d' ' -f2 || true)
  corpus=$(find "$dir/new" -type f | wc -l)
  # Coverage: replay everything the run kept and list the functions it reached.
  reached=no
  if "$build/tests/fuzz/fuzz_$t" -runs=0 -print_coverage=1 "$dir/new" "tests/fuzz/corpus/$t" \
      > "$dir/coverage" 2>&1 && grep -Eq "^COVERED_FUNC: .*(${reach[$t]:-.})" "$dir/coverage"; then
    reached=yes
  fi
  printf '%-10s %-8s %12s %8s %8s %s\n' "$t" "$result" "${runs:-?}" "${cov:-?}" "$corpus" \
    "$reached (${reach[$t]:-any})"
  if [ "$result" != ok ]; then
    failed=1
    mkdir -p "$build/crashes/$t"
    cp "$dir"/artifacts/* "$build/crashes/$t/" 2>/dev/null || true
    cp "$dir/log" "$build/crashes/$t/report.txt"
    echo "---- fuzz_$t failed; report and input in $build/crashes/$t/:"
    grep -E 'ERROR|SUMMARY|==[0-9]+==|#[0-9]+ 0x' "$dir/log" | head -40
  fi
  [ "$reached" = yes ] || { failed=1; echo "---- fuzz_$t did not reach ${reach[$t]}"; }
done
[ $failed -eq 0 ] && echo "fuzz: passed" || { echo "fuzz: FAILED" >&2; exit 1; }
