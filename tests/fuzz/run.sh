#!/usr/bin/env bash
# Builds the libFuzzer targets (clang, ASan + UBSan) into build/fuzz and runs each for SECONDS.
#   tests/fuzz/run.sh SECONDS [TARGET ...]     targets: idx cifar csv job (default: all)
# Seeds: build/fuzz/seeds/TARGET (made by make_seeds.py from the packaged data) and the saved
# findings tests/fuzz/regressions/TARGET-*, with tests/fuzz/TARGET.dict where there is one;
# new inputs go to build/fuzz/corpus/TARGET, kept between runs. JOBS (default nproc) targets
# run at once. A finding (crash, sanitizer report, an exception other than InputError, a
# broken contract, a hang over 10 s, over 2 GiB) stops the run: the input is written to
# build/fuzz/artifacts/ and the script exits 1. Needs Debian's clang and libclang-rt-14-dev.
set -euo pipefail
cd "$(dirname "$(readlink -f "$0")")/../.."
secs="${1:?usage: tests/fuzz/run.sh SECONDS [TARGET ...]}"
shift
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(idx cifar csv job)
B=build/fuzz

log() { printf '[fuzz] %s\n' "$*"; }

cmake -S tests/fuzz -B "$B" -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_BUILD_TYPE=None >/dev/null
cmake --build "$B" -j "${JOBS:-2}" >/dev/null
rm -rf "$B/seeds"
log "seeds: $(/usr/bin/python3 tests/fuzz/make_seeds.py "$B/seeds")"

export ASAN_OPTIONS="detect_leaks=1:allocator_may_return_null=0:strict_string_checks=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
mkdir -p "$B/artifacts" "$B/logs"
# One target for SECONDS; its log in $B/logs, its exit status in $B/logs/TARGET.rc.
fuzz_one() {
  local t=$1 corpus="$B/corpus/$1" logf="$B/logs/$1.log" rc=0 pid r
  mkdir -p "$corpus"
  for r in tests/fuzz/regressions/"$t"-*; do [ -e "$r" ] && cp "$r" "$B/seeds/$t/"; done
  local dict=()
  [ -f "tests/fuzz/$t.dict" ] && dict=(-dict="tests/fuzz/$t.dict")
  "$B/fuzz_$t" -max_total_time="$secs" -max_len=8192 -timeout=10 -rss_limit_mb=2048 "${dict[@]}" \
    -print_final_stats=1 -artifact_prefix="$B/artifacts/$t-" "$corpus" "$B/seeds/$t" >"$logf" 2>&1 &
  pid=$!
  wait $pid || rc=$?
  rm -rf "/dev/shm/taskreach-fuzz-$pid" "${TMPDIR:-/tmp}/taskreach-fuzz-$pid"  # left behind by a crash
  echo "$rc" >"$B/logs/$t.rc"
}

# JOBS targets at a time (each libFuzzer process uses one core), then each one's verdict.
par="${JOBS:-$(nproc)}"
running=0
for t in "${targets[@]}"; do
  log "fuzz_$t for ${secs}s"
  rm -f "$B/logs/$t.rc"
  fuzz_one "$t" &
  running=$((running + 1))
  if [ "$running" -ge "$par" ]; then wait -n || true; running=$((running - 1)); fi
done
wait
for t in "${targets[@]}"; do
  logf="$B/logs/$t.log"
  rc=$(cat "$B/logs/$t.rc" 2>/dev/null || echo 1)
  if [ "$rc" -ne 0 ]; then
    tail -n 60 "$logf"
    log "FINDING in fuzz_$t: $(grep -o "Test unit written to .*" "$logf" | tail -1) (log: $logf)"
    exit 1
  fi
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$logf")
  log "fuzz_$t: ${runs:-?} executions, no finding; corpus $(ls "$B/corpus/$t" | wc -l) inputs"
done
echo "fuzz: ${#targets[@]} passed, 0 failed"
