#!/usr/bin/env bash
# The content-addressed result store against the real binary on 2 ranks:
#   store.sh CASE EXE JOB DIR
#   grow        one task added to a finished run (--store of that run): exactly the jobs the
#               plan adds are computed; the old N×N block equal to 1e-12, the new row and
#               column present
#   rename      a comment edit, renamed and reordered tasks: 0 jobs computed; the output follows
#               the new order and names, the matrices equal the reference's permuted
#   setting     finetune.lr changed: exactly the scratch runs and fine-tunes recomputed
#   shards      --shard 1/3, 2/3, 3/3 one after another into a fresh store, then merge: equal
#               to the uninterrupted run to 1e-12, every job computed exactly once
#   missing     merge with shard 3 missing: one line naming the missing jobs, exit non-zero,
#               no output file, an earlier result at the output path untouched
#   concurrent  two runs computing the same jobs into one store at the same time: the store
#               stays valid and the merge equals the shards' merge
#   gc          the store of `grow` cleaned with --keep JOB: exactly JOB's jobs and checkpoints
#               stay, `store ls` lists them, and JOB then computes nothing
#   paired      JOB = tiny_paired.toml (paired reruns, no fine-tuning): 3 shards compute the
#               plan's trainings, the merge computes exactly the paired reruns and equals the
#               uninterrupted run to 1e-12; `store gc --keep JOB` keeps the reruns with their
#               measurements, and a second merge computes nothing
# DIR holds tiny_np2.h5 (+ .work) of an uninterrupted 2-rank run of JOB (fixture tiny_results;
# for `paired`, tiny_paired_np2.h5).
set -euo pipefail
case_=$1 exe=$2 job=$3 dir=$4
mpiexec=${MPIEXEC:-mpiexec}
here=$(cd "$(dirname "$0")" && pwd)
log=$dir/store_$case_.log
reference=$dir/tiny_np2.h5
: > "$log"

fail() { echo "FAIL ($case_): $*" >&2; tail -n 30 "$log" >&2; exit 1; }
attr() { h5dump -a "/$2" "$1" | sed -n 's/^ *(0): *//p'; }          # a scalar attribute
run2() { $mpiexec -n 2 "$exe" "$@"; }   # MPIEXEC may carry options
compare() { /usr/bin/python3 "$here/compare_h5.py" "$@" >> "$log" 2>&1 || fail "results differ: $*"; }
records() { find "$1/jobs" -name '*.res' 2>/dev/null | wc -l; }
# From the plan `validate` prints: tasks N and trainings T (distinct sample sets × seeds).
plan_tasks() { "$exe" validate "$1" | sed -n 's/^tasks (\([0-9]*\)):$/\1/p' | tail -1; }
plan_trainings() { "$exe" validate "$1" | sed -n 's/^jobs: .* = \([0-9]*\) trainings$/\1/p'; }
plan_jobs() {  # every stored job of the plan: trainings + N scratch runs + N(N-1) fine-tunes
  local n t
  n=$(plan_tasks "$1") t=$(plan_trainings "$1")
  echo $((t + n + n * (n - 1)))
}
# Shards 1/3, 2/3, 3/3 of JOB one after another into OUT's store, none writing OUT; `sum`: the
# jobs they computed.
run_shards() {
  local out=$1 i c
  sum=0
  for i in 1 2 3; do
    run2 run "$job" --output "$out" --shard "$i/3" --wait 0 >> "$log" 2>&1 || fail "shard $i/3 failed"
    [ ! -e "$out" ] || fail "shard $i/3 wrote a matrix"
    c=$(sed -n 's/^jobs: \([0-9]*\) computed.*/\1/p' "$log" | tail -1)
    sum=$((sum + c))
  done
}
if [ "$case_" = paired ]; then
  reference=$dir/tiny_paired_np2.h5
  reruns=$(attr "$reference" paired_reruns)
  [ -n "$reruns" ] && [ "$reruns" -gt 0 ] || fail "the reference run $reference computed no paired reruns"
  total=$(attr "$reference" jobs_computed)
  [ "$total" -eq $(( $(plan_trainings "$job") + reruns )) ] || fail "the reference computed $total jobs, not its trainings + $reruns reruns"
else
  total=$(attr "$reference" jobs_computed)
  [ -n "$total" ] && [ "$total" -eq "$(plan_jobs "$job")" ] || fail "no reference run in $dir, or it is not the plan's size"
fi

case $case_ in
grow)
  grown=$dir/tiny_grown.toml store=$dir/store_grow out=$dir/tiny_grown.h5
  rm -rf "$store" "$out"
  cp -r "$reference.work" "$store"
  # One more task of an existing source (the head stays the same): half of Fashion-MNIST, a
  # subset of the fashion task, so fashion ∪ it is a job the store already holds.
  { cat "$job"; printf '\n[[tasks]]\nname = "fashion-half"\nsource = "fashion"\ntransforms = [ { type = "subsample", n = 100 } ]\n'; } > "$grown"
  n0=$(plan_tasks "$job") t0=$(plan_trainings "$job") n1=$(plan_tasks "$grown") t1=$(plan_trainings "$grown")
  expected=$(( (t1 - t0) + (n1 - n0) + n1 * (n1 - 1) - n0 * (n0 - 1) ))
  before=$(records "$store")
  run2 run "$grown" --output "$out" --store "$store" >> "$log" 2>&1 || fail "the grown run failed"
  computed=$(attr "$out" jobs_computed) reused=$(attr "$out" jobs_reused)
  [ "$computed" -eq "$expected" ] || fail "expected $expected jobs computed (from the plans), got $computed"
  [ $((computed + reused)) -eq "$(plan_jobs "$grown")" ] || fail "computed $computed + reused $reused != the plan's jobs"
  [ $(( $(records "$store") - before )) -eq "$expected" ] || fail "the store grew by $(( $(records "$store") - before )), expected $expected"
  grep -q "^jobs: $computed computed, $reused reused" "$log" || fail "no line with the counts"
  compare "$reference" "$out" --new 1
  echo "one task added: $computed computed (plan: $expected), $reused reused"
  ;;
rename)
  renamed=$dir/tiny_renamed.toml store=$dir/store_rename out=$dir/tiny_renamed.h5
  rm -rf "$store" "$out"
  cp -r "$reference.work" "$store"
  # A comment, the task names changed, the task order reversed (fashion, mnist-half, mnist).
  /usr/bin/python3 - "$job" "$renamed" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
head, *tasks = re.split(r"(?m)^\[\[tasks\]\]\n", text)
tasks = [t.rstrip() + "\n" for t in tasks]
names = {"mnist": "digits", "mnist-half": "digits-half", "fashion": "clothes"}
tasks = [re.sub(r'(?m)^name = "([^"]*)"', lambda m: 'name = "%s"' % names[m.group(1)], t) for t in tasks]
out = "# an edited comment: nothing a job depends on\n" + head
out += "".join("[[tasks]]\n" + t + "\n" for t in reversed(tasks))
open(sys.argv[2], "w").write(out)
PY
  run2 run "$renamed" --output "$out" --store "$store" >> "$log" 2>&1 || fail "the renamed run failed"
  computed=$(attr "$out" jobs_computed) reused=$(attr "$out" jobs_reused)
  [ "$computed" -eq 0 ] && [ "$reused" -eq "$total" ] || fail "expected 0 computed, $total reused; got $computed, $reused"
  names=$(/usr/bin/python3 -c 'import h5py, sys; print(" ".join(n.decode() for n in h5py.File(sys.argv[1])["tasks/name"][:]))' "$out")
  [ "$names" = "clothes digits-half digits" ] || fail "output task names/order: $names"
  compare "$reference" "$out" --order 2,1,0
  echo "comment, names and order edited: 0 computed, $reused reused; output in the new order"
  ;;
setting)
  edited=$dir/tiny_ftlr.toml store=$dir/store_setting out=$dir/tiny_ftlr.h5
  rm -rf "$store" "$out"
  cp -r "$reference.work" "$store"
  awk '/^\[/{s=$0} s=="[finetune]" && /^lr = /{$0="lr = 0.04"} {print}' "$job" > "$edited"
  ! cmp -s "$job" "$edited" || fail "the edit did not change the job file"
  n=$(plan_tasks "$job") t=$(plan_trainings "$job")
  run2 run "$edited" --output "$out" --store "$store" >> "$log" 2>&1 || fail "the run with finetune.lr changed failed"
  computed=$(attr "$out" jobs_computed) reused=$(attr "$out" jobs_reused)
  [ "$computed" -eq $((n + n * (n - 1))) ] && [ "$reused" -eq "$t" ] ||
    fail "expected $((n + n * (n - 1))) computed (scratch runs and fine-tunes) and $t reused (trainings); got $computed, $reused"
  grep -q "complexity (train, polish, curvature): $t jobs, $t reused" "$log" || fail "a training was recomputed"
  echo "finetune.lr changed: $computed computed (scratch runs + fine-tunes), $reused reused (every training)"
  ;;
shards)
  out=$dir/tiny_sharded.h5 store=$dir/tiny_sharded.h5.work
  rm -rf "$out" "$store"
  run_shards "$out"
  [ "$sum" -eq "$total" ] || fail "the shards computed $sum jobs, the plan has $total"
  run2 merge "$job" --output "$out" >> "$log" 2>&1 || fail "the merge failed"
  compare "$reference" "$out"
  echo "3 shards one after another ($sum jobs, each once), merged: equal to the uninterrupted run"
  ;;
missing)
  out=$dir/tiny_missing.h5 store=$dir/store_missing earlier=$dir/tiny_missing_earlier.h5
  rm -rf "$out" "$store" "$earlier"
  for i in 1 2; do
    run2 run "$job" --output "$out" --store "$store" --shard "$i/3" --wait 0 >> "$log" 2>&1 || fail "shard $i/3 failed"
  done
  held=$(records "$store")
  [ "$held" -lt "$total" ] || fail "shards 1 and 2 hold every job"
  rc=0; run2 merge "$job" --output "$out" --store "$store" > "$log.out" 2> "$log.err" || rc=$?
  cat "$log.out" "$log.err" >> "$log"
  [ "$rc" -ne 0 ] || fail "a merge with a shard missing exited 0"
  # (the launcher adds its own lines about the exit code; taskreach says one)
  [ "$(grep -c '^taskreach' "$log.err")" -eq 1 ] || fail "expected exactly one error line, got: $(cat "$log.err")"
  grep -q "^taskreach: error: merge .*: $((total - held)) of $total jobs are not in .*: " "$log.err" ||
    fail "the line does not count the missing jobs: $(cat "$log.err")"
  names=$(grep '^taskreach' "$log.err" | sed 's/.* jobs are not in [^ ]*: //; s/; nothing written$//' | tr ',' '\n' |
          grep -Ec '^ ?(single|union|scratch|finetune):') || true
  [ "$names" -eq $((total - held)) ] || fail "expected $((total - held)) jobs named, found $names"
  [ ! -e "$out" ] || fail "an output file after a failed merge"
  # The same merge onto an earlier result: it stays byte for byte.
  cp "$reference" "$earlier"
  sum=$(md5sum < "$earlier")
  rc=0; run2 merge "$job" --output "$earlier" --store "$store" >> "$log" 2>&1 || rc=$?
  [ "$rc" -ne 0 ] || fail "the second merge exited 0"
  [ "$(md5sum < "$earlier")" = "$sum" ] || fail "the earlier result was changed"
  [ -z "$(find "$dir" -maxdepth 1 -name 'tiny_missing*.tmp*')" ] || fail "a temporary left behind"
  records_after=$(records "$store")
  [ "$records_after" -eq "$held" ] || fail "the merge changed the store"
  echo "merge with shard 3 missing: exit $rc, one line naming the $((total - held)) missing jobs, nothing written"
  ;;
concurrent)
  store=$dir/store_concurrent out=$dir/tiny_concurrent.h5
  rm -rf "$store" "$out" "$dir"/tiny_concurrent_[12].h5
  # Each launcher its own session directory: two Open MPI launchers starting in the same
  # instant can race for one ("orte_session_dir failed: File exists").
  mkdir -p "$dir/concurrent_tmp1" "$dir/concurrent_tmp2"
  TMPDIR=$dir/concurrent_tmp1 run2 run "$job" --output "$dir/tiny_concurrent_1.h5" --store "$store" > "$log.1" 2>&1 &
  first=$!
  TMPDIR=$dir/concurrent_tmp2 run2 run "$job" --output "$dir/tiny_concurrent_2.h5" --store "$store" > "$log.2" 2>&1 &
  second=$!
  rc1=0 rc2=0
  wait "$first" || rc1=$?
  wait "$second" || rc2=$?
  cat "$log.1" "$log.2" >> "$log"
  [ "$rc1" -eq 0 ] && [ "$rc2" -eq 0 ] || fail "the concurrent runs exited $rc1 and $rc2"
  [ "$(records "$store")" -eq "$total" ] || fail "the store holds $(records "$store") results, expected $total"
  "$exe" store ls "$store" >> "$log" || fail "store ls failed"
  grep -q "^$total jobs (0 damaged)" "$log" || fail "store ls does not report $total whole jobs"
  [ -z "$(find "$store" -name '*.tmp*')" ] || fail "a temporary left in the store"
  [ "$(find "$store/ckpt" -name '*.pt' | wc -l)" -eq "$(plan_trainings "$job")" ] ||
    fail "expected one checkpoint per stored training, found $(find "$store/ckpt" -name '*.pt' | wc -l)"
  run2 merge "$job" --output "$out" --store "$store" >> "$log" 2>&1 || fail "the merge failed"
  compare "$dir/tiny_sharded.h5" "$out"
  compare "$reference" "$dir/tiny_concurrent_1.h5"
  compare "$reference" "$dir/tiny_concurrent_2.h5"
  dropped=$(grep -c "another run stored this job first" "$log" || true)
  echo "two concurrent runs into one store: $total whole results ($dropped duplicates dropped), merge unchanged"
  ;;
gc)
  grown_store=$dir/store_grow store=$dir/store_gc
  [ -d "$grown_store" ] || fail "no store of e2e_store_grow in $dir"
  rm -rf "$store"
  cp -r "$grown_store" "$store"
  before=$(records "$store")
  [ "$before" -gt "$total" ] || fail "the grown store holds only $before jobs"
  "$exe" store gc "$store" --keep "$job" >> "$log" 2>&1 || fail "store gc failed"
  [ "$(records "$store")" -eq "$total" ] || fail "after gc the store holds $(records "$store") jobs, JOB uses $total"
  [ "$(find "$store/ckpt" -type f -name '*.pt' | wc -l)" -eq "$(plan_trainings "$job")" ] ||
    fail "after gc $(find "$store/ckpt" -type f -name '*.pt' | wc -l) checkpoints, JOB has $(plan_trainings "$job") trainings"
  grep -q "removed $((before - total)) jobs" "$log" || fail "gc does not say it removed $((before - total)) jobs"
  "$exe" store ls "$store" > "$log.ls" 2>&1 || fail "store ls failed"
  cat "$log.ls" >> "$log"
  grep -q "^$total jobs (0 damaged)" "$log.ls" || fail "store ls does not count $total whole jobs"
  [ "$(grep -Ec '^(single|union):.* ok ' "$log.ls")" -eq "$(plan_trainings "$job")" ] || fail "store ls does not list every training"
  run2 run "$job" --output "$dir/tiny_gc.h5" --store "$store" >> "$log" 2>&1 || fail "the run after gc failed"
  [ "$(attr "$dir/tiny_gc.h5" jobs_computed)" -eq 0 ] || fail "gc removed something the job uses"
  compare "$reference" "$dir/tiny_gc.h5"
  echo "store gc: removed $((before - total)) jobs no kept job file uses; the job then computes 0"
  ;;
paired)
  out=$dir/tiny_paired_sharded.h5 store=$dir/tiny_paired_sharded.h5.work
  rm -rf "$out" "$store"
  run_shards "$out"
  [ "$sum" -eq "$(plan_trainings "$job")" ] || fail "the shards computed $sum jobs, the plan has $(plan_trainings "$job") trainings"
  run2 merge "$job" --output "$out" >> "$log" 2>&1 || fail "the merge failed"
  [ "$(attr "$out" jobs_computed)" -eq "$reruns" ] || fail "the merge computed $(attr "$out" jobs_computed) jobs, expected the $reruns paired reruns"
  [ "$(attr "$out" paired_reruns)" -eq "$reruns" ] || fail "the merge used $(attr "$out" paired_reruns) paired reruns, the run $reruns"
  compare "$reference" "$out"
  "$exe" store gc "$store" --keep "$job" >> "$log" 2>&1 || fail "store gc failed"
  grep -q "removed 0 jobs" "$log" || fail "gc removed jobs the job uses (its paired reruns?)"
  [ "$(records "$store")" -eq "$total" ] || fail "after gc the store holds $(records "$store") results, expected $total"
  "$exe" store ls "$store" > "$log.ls" 2>&1 || fail "store ls failed"
  [ "$(grep -c '(paired rerun, m >= ' "$log.ls")" -eq "$reruns" ] || fail "store ls does not list the $reruns paired reruns"
  rm -f "$out"
  run2 merge "$job" --output "$out" >> "$log" 2>&1 || fail "the second merge failed"
  [ "$(attr "$out" jobs_computed)" -eq 0 ] || fail "the second merge computed $(attr "$out" jobs_computed) jobs"
  compare "$reference" "$out"
  echo "paired reruns: 3 shards computed $sum trainings, the merge the $reruns reruns (equal to the run); gc kept them, a second merge computed 0"
  ;;
*) fail "unknown case" ;;
esac
