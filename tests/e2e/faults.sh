#!/usr/bin/env bash
# Fault injection against the real binary on 2 ranks:  faults.sh CASE EXE JOB DIR
#   kill      one rank SIGKILLed mid-run: the run fails with a message naming it, no output
#             file; --resume completes and reuses every result that was durable at the kill
#   corrupt   two result files of a finished run damaged (a flipped byte, a truncation):
#             --resume reports both, recomputes exactly those two and reuses the rest
#   edited    the job file edited between runs: --resume reuses none of the old results
#   full      output directory on a full tmpfs: a clear error, the earlier result intact,
#             nothing left behind (a fresh run and a resumed one)
#   readonly  output directory on a read-only mount: a clear one-line error, earlier result intact
# DIR holds tiny_np2.h5 (+ .work) of an uninterrupted 2-rank run of JOB (the tiny_results
# fixture); the outputs written here (tiny_killed.h5, tiny_corrupt.h5) are compared with it
# by test_e2e_tiny. full and readonly need root (mount); elsewhere they exit 77 (skipped).
set -euo pipefail
case_=$1 exe=$2 job=$3 dir=$4
mpiexec=${MPIEXEC:-mpiexec}
log=$dir/faults_$case_.log
reference=$dir/tiny_np2.h5

fail() { echo "FAIL ($case_): $*" >&2; [ -f "$log" ] && tail -n 30 "$log" >&2; exit 1; }
attr() { h5dump -a "/$2" "$1" | sed -n 's/^ *(0): *//p'; }          # a scalar attribute
results() { find "$1.work/jobs" -name '*.res' 2>/dev/null | wc -l; }
run2() { "$mpiexec" -n 2 "$exe" run "$@"; }
total=$(attr "$reference" jobs_computed)
[ -n "$total" ] && [ "$total" -gt 0 ] || fail "no reference run in $dir"

# A scratch tmpfs for the cases that need a file system to misbehave.
mount_tmpfs() {  # DIR SIZE
  [ "$(id -u)" = 0 ] || { echo "SKIP: mounting a tmpfs needs root"; exit 77; }
  mkdir -p "$1"
  mount -t tmpfs -o size="$2" tmpfs "$1" 2>/dev/null || { echo "SKIP: cannot mount a tmpfs here"; exit 77; }
  trap "umount -l '$1' 2>/dev/null || true" EXIT  # $1 expanded now: at exit it would be the script's
}
expect_intact() {  # FILE SUM: the earlier result is byte for byte what it was, and readable
  [ "$(md5sum < "$1")" = "$2" ] || fail "the earlier result $1 was changed"
  "$exe" info "$1" > /dev/null || fail "the earlier result $1 no longer reads"
}
expect_no_leftovers() {  # DIR: no temporary output nor partial result
  local left
  left=$(find "$1" -name '*.tmp*' 2>/dev/null)
  [ -z "$left" ] || fail "left behind: $left"
}

case $case_ in
kill)
  out=$dir/tiny_killed.h5
  rm -rf "$out" "$out.work"
  run2 "$job" --output "$out" > "$log" 2>&1 &
  launcher=$!
  for _ in $(seq 1200); do [ "$(results "$out")" -ge 2 ] && break; sleep 0.1; done
  victim=""  # the process of this run whose environment makes it rank 1 (the launcher has none)
  for p in $(pgrep -f "taskreach run .*$out"); do
    tr '\0' '\n' < "/proc/$p/environ" 2>/dev/null | grep -qx OMPI_COMM_WORLD_RANK=1 && victim=$p
  done
  [ -n "$victim" ] || fail "rank 1 of the run not found"
  kill -KILL "$victim"
  rc=0; wait "$launcher" || rc=$?
  kept=$(results "$out")
  [ "$rc" -ne 0 ] || fail "the run survived the loss of a rank (exit 0)"
  grep -Eq "rank 1 .*(signal 9|Killed)" "$log" || fail "no message naming the killed rank"
  grep -q "resume with: taskreach run .* --resume" "$log" || fail "no line saying how to resume"
  [ ! -e "$out" ] || fail "an output file after a failed run"
  run2 "$job" --output "$out" --resume >> "$log" 2>&1 || fail "--resume after the kill failed"
  reused=$(attr "$out" jobs_reused) computed=$(attr "$out" jobs_computed)
  [ "$reused" -ge "$kept" ] || fail "$kept results were durable at the kill, only $reused reused"
  [ $((reused + computed)) -eq "$total" ] || fail "reused $reused + computed $computed != $total jobs"
  echo "killed rank 1 (exit $rc) with $kept results durable; resumed: $reused reused, $computed computed"
  ;;
corrupt)
  out=$dir/tiny_corrupt.h5
  rm -rf "$out" "$out.work"
  cp -r "$reference.work" "$out.work"
  mapfile -t files < <(find "$out.work/jobs" -name '*.res' | sort)
  printf '\x5a' | dd of="${files[0]}" bs=1 seek=40 conv=notrunc status=none   # a flipped byte
  truncate -s -8 "${files[-1]}"                                               # a short write
  run2 "$job" --output "$out" --resume > "$log" 2>&1 || fail "--resume over damaged results failed"
  [ "$(grep -c 'damaged job result' "$log")" -eq 2 ] || fail "expected both damaged results reported"
  computed=$(attr "$out" jobs_computed) reused=$(attr "$out" jobs_reused)
  [ "$computed" -eq 2 ] && [ "$reused" -eq $((total - 2)) ] ||
    fail "expected 2 recomputed and $((total - 2)) reused, got $computed and $reused"
  echo "2 damaged results detected and recomputed; $reused reused"
  ;;
edited)
  out=$dir/tiny_edited.h5 edited=$dir/tiny_edited.toml
  rm -rf "$out" "$out.work"
  cp -r "$reference.work" "$out.work"
  sed 's/^seed = \([0-9]*\)$/seed = 1\1/' "$job" > "$edited"   # another base seed
  ! cmp -s "$job" "$edited" || fail "the edit did not change the job file"
  run2 "$edited" --output "$out" --resume > "$log" 2>&1 || fail "the run of the edited job failed"
  reused=$(attr "$out" jobs_reused) computed=$(attr "$out" jobs_computed)
  [ "$reused" -eq 0 ] && [ "$computed" -eq "$total" ] || fail "stale results reused: $reused reused, $computed computed"
  echo "edited job file: all $computed jobs recomputed, none reused"
  ;;
full)
  mnt=$dir/full_mnt
  mount_tmpfs "$mnt" 4m
  out=$mnt/tiny.h5
  cp -r "$reference" "$reference.work" "$mnt/" && mv "$mnt/tiny_np2.h5" "$out" && mv "$mnt/tiny_np2.h5.work" "$out.work"
  sum=$(md5sum < "$out")
  dd if=/dev/zero of="$mnt/filler" bs=64k status=none 2>/dev/null || true      # until ENOSPC
  # Every job reused, the final write fails.
  rc=0; run2 "$job" --output "$out" --resume > "$log" 2>&1 || rc=$?
  [ "$rc" -ne 0 ] || fail "a resumed run on a full disk exited 0"
  grep -Eq "taskreach: error: .*(No space left on device|not enough free space)" "$log" || fail "no error naming the full disk"
  expect_intact "$out" "$sum"
  expect_no_leftovers "$mnt"
  # A fresh run into the same directory fails at its first durable write.
  rc=0; run2 "$job" --output "$mnt/new.h5" >> "$log" 2>&1 || rc=$?
  [ "$rc" -ne 0 ] || fail "a fresh run on a full disk exited 0"
  [ "$(grep -Ec 'taskreach: error.*(No space left on device|not enough free space)' "$log")" -ge 2 ] ||
    fail "no error naming the full disk (fresh run)"
  [ ! -e "$mnt/new.h5" ] || fail "an output file from the failed run"
  expect_intact "$out" "$sum"
  expect_no_leftovers "$mnt"
  echo "full disk: both runs failed with a clear error; the earlier result is intact"
  ;;
readonly)
  mnt=$dir/ro_mnt
  mount_tmpfs "$mnt" 4m
  out=$mnt/tiny.h5
  cp "$reference" "$out"
  sum=$(md5sum < "$out")
  mount -o remount,ro "$mnt"
  for resume in "" --resume; do
    rc=0; run2 "$job" --output "$out" $resume > "$log" 2>&1 || rc=$?
    [ "$rc" -ne 0 ] || fail "a run into a read-only directory exited 0"
    [ "$(grep -c '^taskreach: error: --output .*not writable' "$log")" -eq 1 ] || fail "expected one line saying the directory is not writable"
    expect_intact "$out" "$sum"
  done
  echo "read-only output directory: rejected with one line; the earlier result is intact"
  ;;
*) fail "unknown case" ;;
esac
