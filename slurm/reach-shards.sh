#!/bin/bash
# A big N×N run as K shards (an array job) and a dependent merge; run on the login node:
#   slurm/reach-shards.sh JOB.toml K [OUTPUT.h5]
# submits `sbatch --array=1-K slurm/reach-shard.sbatch JOB OUTPUT K` (each shard computes its
# share of the jobs into the store OUTPUT.work/, requeueing itself at the time limit) and
# `sbatch --dependency=afterok:ARRAY --kill-on-invalid-dep=yes slurm/reach-merge.sbatch JOB
# OUTPUT`, which assembles OUTPUT once every shard has completed. OUTPUT defaults to
# results/JOBNAME.h5. Environment: TASKREACH_SBATCH_OPTS (added to the shards' sbatch, e.g.
# "--ntasks=8 --time=2:00:00"), TASKREACH_MERGE_OPTS (added to the merge's), TASKREACH_STORE
# (another store, shared with other job files), TASKREACH_DRY_RUN=1 (print the sbatch lines).
# Prints the two job IDs (array, merge).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
job=${1:?usage: slurm/reach-shards.sh JOB.toml K [OUTPUT.h5]}
k=${2:?usage: slurm/reach-shards.sh JOB.toml K [OUTPUT.h5]}
out=${3:-results/$(basename "${job%.toml}").h5}
[[ "$k" =~ ^[1-9][0-9]*$ ]] || { echo "reach-shards.sh: K = '$k': expected a positive number of shards" >&2; exit 2; }
[ -f "$job" ] || { echo "reach-shards.sh: $job: no such job file" >&2; exit 2; }
mkdir -p "$(dirname "$out")"
# shellcheck disable=SC2086 # the options are lists of words
if [ "${TASKREACH_DRY_RUN:-0}" = 1 ]; then
  echo sbatch --parsable ${TASKREACH_SBATCH_OPTS:-} --array=1-"$k" "$here/reach-shard.sbatch" "$job" "$out" "$k"
  echo sbatch --parsable ${TASKREACH_MERGE_OPTS:-} --dependency=afterok:ARRAY --kill-on-invalid-dep=yes \
    "$here/reach-merge.sbatch" "$job" "$out"
  exit 0
fi
# shellcheck disable=SC2086
array=$(sbatch --parsable ${TASKREACH_SBATCH_OPTS:-} --array=1-"$k" "$here/reach-shard.sbatch" "$job" "$out" "$k")
array=${array%%;*}
# shellcheck disable=SC2086
merge=$(sbatch --parsable ${TASKREACH_MERGE_OPTS:-} --dependency=afterok:"$array" --kill-on-invalid-dep=yes \
  "$here/reach-merge.sbatch" "$job" "$out")
echo "shards: array job $array (1-$k); merge: job ${merge%%;*} after all of them -> $out"
echo "$array ${merge%%;*}"
