#!/usr/bin/env bash
# The overhead of sharding, measured (not a test):  scripts/bench_shards.sh [JOB.toml] [K] [OUTDIR]
# Runs JOB (default jobs/demo.toml) once into a fresh store, then as K shards (default 3) one
# after another into another fresh store, then the merge, all on 2 ranks; prints each wall
# time, the jobs each computed, the overhead of (shards + merge) against the one run, and
# checks that the merged result equals the one run to 1e-12 (tests/e2e/compare_h5.py).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
job=${1:-$here/jobs/demo.toml} k=${2:-3} dir=${3:-$(mktemp -d /tmp/taskreach-shards.XXXXXX)}
exe=${TASKREACH_EXE:-$here/build/release/taskreach}
mpirun=${MPIEXEC:-mpirun}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} TASKREACH_DATA=${TASKREACH_DATA:-$HOME/.cache/taskreach/data}
name=$(basename "${job%.toml}")
mkdir -p "$dir"
rm -rf "$dir/$name"_one.h5* "$dir/$name"_shards.h5*
now() { date +%s.%N; }
t0=$(now)
$mpirun -n 2 "$exe" run "$job" --output "$dir/${name}_one.h5" > "$dir/one.log" 2>&1
t1=$(now)
one=$(echo "$t1 - $t0" | bc)
echo "one run: $one s, $(grep '^jobs: .* computed' "$dir/one.log")"
total=0
for i in $(seq "$k"); do
  s0=$(now)
  $mpirun -n 2 "$exe" run "$job" --output "$dir/${name}_shards.h5" --shard "$i/$k" --wait 0 > "$dir/shard$i.log" 2>&1
  s1=$(now)
  t=$(echo "$s1 - $s0" | bc)
  total=$(echo "$total + $t" | bc)
  echo "shard $i/$k: $t s, $(grep '^jobs: .* computed' "$dir/shard$i.log")"
done
m0=$(now)
$mpirun -n 2 "$exe" merge "$job" --output "$dir/${name}_shards.h5" > "$dir/merge.log" 2>&1
m1=$(now)
merge=$(echo "$m1 - $m0" | bc)
echo "merge: $merge s"
all=$(echo "$total + $merge" | bc)
echo "shards + merge: $all s against $one s: overhead $(echo "scale=2; 100 * ($all - $one) / $one" | bc) %"
/usr/bin/python3 "$here/tests/e2e/compare_h5.py" "$dir/${name}_one.h5" "$dir/${name}_shards.h5" | tail -1
echo "logs and results in $dir"
