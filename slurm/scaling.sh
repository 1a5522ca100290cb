#!/bin/bash
# Scaling study on SLURM, from the login node: one run of slurm/reach.sbatch per rank count,
# then analysis/scaling.py over their results, chained with --dependency=afterok.
#
#   slurm/scaling.sh strong JOB.toml RANKS...   the same job on every rank count
#   slurm/scaling.sh weak   JOB.toml RANKS...   the work per rank kept about constant
#
# e.g.  slurm/scaling.sh strong jobs/demo.toml 1 2 4 8 16
#
# Weak scaling: a run of N tasks has about N² jobs (N trainings, N(N-1)/2 unions, N² fine-tunes),
# so rank count P gets N(P) = round(N_max · sqrt(P / P_max)) tasks (at least 2), N_max being the
# tasks of JOB.toml and P_max the largest rank count: jobs per rank stay about N_max²/P_max.
# The job file for P keeps the first N(P) [[tasks]] of JOB.toml (slurm/subset_tasks.py, named
# JOBNAME-nN).
#
# Everything goes to $TASKREACH_SCALING_DIR (default results/scaling/JOBNAME-MODE): the job
# files, the results JOBNAME-pP.h5, the logs, and the analysis (analysis/scaling.py --out DIR).
# More sbatch options for every run in TASKREACH_SBATCH_OPTS (e.g. "--partition=x --time=4:00:00";
# word-split), for the analysis job in TASKREACH_ANALYSIS_OPTS. Each run checkpoints and requeues
# itself near its time limit like any reach.sbatch job; afterok waits for the final completion.
# TASKREACH_DRY_RUN=1 prints the sbatch commands instead of submitting them.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
export TASKREACH_HOME=${TASKREACH_HOME:-$(dirname "$here")}

usage() { sed -n '2,8p' "$0" >&2; exit 2; }
[ $# -ge 3 ] || usage
mode=$1 job=$2
shift 2
case "$mode" in strong | weak) ;; *) usage ;; esac
[ -f "$job" ] || { echo "scaling.sh: $job: no such job file" >&2; exit 2; }
for p in "$@"; do
  [[ "$p" =~ ^[1-9][0-9]*$ ]] || { echo "scaling.sh: rank count '$p' is not a positive integer" >&2; exit 2; }
done

stem=$(basename "${job%.toml}")
dir=${TASKREACH_SCALING_DIR:-results/scaling/$stem-$mode}
mkdir -p "$dir"
# Absolute paths: the jobs may run elsewhere (sbatch --chdir in TASKREACH_SBATCH_OPTS).
job=$(realpath "$job")
dir=$(realpath "$dir")
read -r -a extra <<<"${TASKREACH_SBATCH_OPTS:-}"
read -r -a extra_analysis <<<"${TASKREACH_ANALYSIS_OPTS:-}"

submit() {  # sbatch ARGS... -> prints the job id
  if [ "${TASKREACH_DRY_RUN:-0}" = 1 ]; then
    printf 'sbatch' >&2; printf ' %q' "$@" >&2; printf '\n' >&2
    echo "DRY$RANDOM"
  else
    sbatch --parsable "$@" | cut -d';' -f1
  fi
}

pmax=0
for p in "$@"; do [ "$p" -gt "$pmax" ] && pmax=$p; done
if [ "$mode" = weak ]; then
  nmax=$(/usr/bin/python3 "$here/subset_tasks.py" "$job" --count)
fi

ids=() results=()
printf '%-8s %-8s %s\n' ranks tasks "job file" >&2  # weak: ~tasks²/ranks jobs per rank
for p in "$@"; do
  run_job=$job
  tasks=
  if [ "$mode" = weak ]; then
    tasks=$(/usr/bin/python3 -c "import math,sys; n,p,pm=map(int,sys.argv[1:]); print(min(n,max(2,round(n*math.sqrt(p/pm)))))" "$nmax" "$p" "$pmax")
    run_job=$dir/$stem-n$tasks.toml
    [ -f "$run_job" ] || /usr/bin/python3 "$here/subset_tasks.py" "$job" "$tasks" "$run_job"
  fi
  out=$dir/$stem-p$p.h5
  printf '%-8s %-8s %s\n' "$p" "${tasks:-all}" "$run_job" >&2
  id=$(submit --ntasks="$p" --job-name="scaling-$mode-p$p" --output="$dir/%x-%j.out" "${extra[@]}" \
    "$here/reach.sbatch" "$run_job" "$out")
  ids+=("$id")
  results+=("$out")
done

dep=$(IFS=:; echo "afterok:${ids[*]}")
aid=$(submit --dependency="$dep" --kill-on-invalid-dep=yes --ntasks=1 --time=00:30:00 \
  --job-name="scaling-$mode-analysis" --output="$dir/%x-%j.out" "${extra_analysis[@]}" \
  --wrap="$(printf '%q ' /usr/bin/python3 "$TASKREACH_HOME/analysis/scaling.py" "${results[@]}" --out "$dir")")
echo "runs: ${ids[*]}; analysis: $aid (after all runs succeed) -> $dir" >&2
printf '%s\n' "${ids[@]}" "$aid"
