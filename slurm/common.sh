# shellcheck shell=bash
# Sourced by the sbatch scripts of slurm/ (not run on its own): one taskreach run under srun
# that checkpoints and requeues itself before the time limit.
#
# How it works. The sbatch scripts ask for
#   --signal=B:USR1@90   SLURM sends USR1 to the batch shell (only the shell: "B:") about 90 s
#                        before the time limit; the limit is checked on a 30 s tick, so it can
#                        come up to a minute earlier than that
#   --requeue            the job may be put back in the queue (needed by scontrol requeue)
#   --open-mode=append   a restarted job appends to its log instead of overwriting it
# The run is started as `srun ... &` and the shell `wait`s for it, because bash runs a trap only
# between commands: with srun in the foreground, USR1 would wait for srun to end. On USR1 the
# trap forwards the signal to srun, which forwards it to every task (every rank); taskreach
# stops at the next job boundary, keeps every finished job in OUTPUT.work/jobs/ and exits 4.
# The trap waits for that, then calls `scontrol requeue $SLURM_JOB_ID` (--requeue alone never
# requeues a job that reached its time limit). The restarted job runs this script again from
# the top, and since the run always passes --resume, it reuses what was finished.
#   exit 0 after USR1 (the run finished its last jobs anyway) -> the job simply completes
#   any other exit code -> no requeue, the job fails with it
#   scancel (SIGTERM to every process of the job) -> the ranks stop at a job boundary, exit 4,
#   and the job ends without a requeue: resubmit the same command to carry on.
#
# Environment: TASKREACH_EXE (default: build/release/taskreach of this checkout),
# TASKREACH_SRUN_MPI (srun --mpi=, default pmix), TASKREACH_DATA (default
# ~/.cache/taskreach/data), TASKREACH_NO_REQUEUE=1 (checkpoint at the signal but do not requeue),
# TASKREACH_RUN_ARGS (more arguments of `taskreach run`, e.g. "--shard 2/3 --store DIR").

TASKREACH_HOME=${TASKREACH_HOME:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}

taskreach_log() { printf '[taskreach-slurm %s] %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$*"; }

_taskreach_pid=""
_taskreach_signalled=0

# Waits for the run started in the background; a wait cut short by a trapped signal (status
# > 128 while the run is still alive) is resumed. Sets _taskreach_rc.
_taskreach_wait() {
  _taskreach_rc=0
  wait "$_taskreach_pid" || _taskreach_rc=$?
  while [ "$_taskreach_rc" -gt 128 ] && kill -0 "$_taskreach_pid" 2>/dev/null; do
    _taskreach_rc=0
    wait "$_taskreach_pid" || _taskreach_rc=$?
  done
}

_taskreach_on_usr1() {
  [ "$_taskreach_signalled" = 0 ] || return 0
  _taskreach_signalled=1
  taskreach_log "USR1: the time limit is near; forwarding USR1 to the run (srun pid ${_taskreach_pid:-none})"
  # At the limit itself SLURM sends TERM to every process of the job (the ranks stop at their
  # job boundary on it too): the shell must outlive it to requeue, until KillWait's SIGKILL.
  trap 'taskreach_log "TERM: the time limit is reached; still waiting for the run to stop"' TERM
  if [ -n "$_taskreach_pid" ]; then
    kill -USR1 "$_taskreach_pid" 2>/dev/null || true
    _taskreach_wait
  else
    _taskreach_rc=4  # the run has not started: nothing to stop, just come back later
  fi
  taskreach_log "the run exited with code $_taskreach_rc after USR1"
  if [ "$_taskreach_rc" = 4 ] && [ "${TASKREACH_NO_REQUEUE:-0}" != 1 ]; then
    taskreach_log "checkpointed; requeueing job $SLURM_JOB_ID (restart $((${SLURM_RESTART_COUNT:-0} + 1)))"
    scontrol requeue "$SLURM_JOB_ID" || taskreach_log "scontrol requeue $SLURM_JOB_ID failed: resubmit the same command to resume"
  fi
  exit "$_taskreach_rc"
}

# taskreach_run JOB.toml OUTPUT.h5 [more srun options ...]
# Runs `taskreach run JOB.toml --output OUTPUT.h5 --resume` on all tasks of the allocation.
taskreach_run() {
  local job=$1 out=$2
  shift 2
  mkdir -p "$(dirname "$out")"
  # srun does not take --cpus-per-task over from the allocation (Slurm >= 22.05): restate it.
  local cpt=${SLURM_CPUS_PER_TASK:-1}
  export OMP_NUM_THREADS=$cpt
  export TASKREACH_DATA=${TASKREACH_DATA:-$HOME/.cache/taskreach/data}
  local exe=${TASKREACH_EXE:-$TASKREACH_HOME/build/release/taskreach}
  taskreach_log "job ${SLURM_JOB_ID:-?} (restart ${SLURM_RESTART_COUNT:-0}) on ${SLURM_JOB_NODELIST:-?}:" \
    "${SLURM_NTASKS:-?} tasks x $cpt cpus: $exe run $job --output $out --resume ${TASKREACH_RUN_ARGS:-}"
  trap _taskreach_on_usr1 USR1
  # shellcheck disable=SC2086 # TASKREACH_RUN_ARGS is a list of words
  srun --ntasks="${SLURM_NTASKS:-1}" --cpus-per-task="$cpt" --mpi="${TASKREACH_SRUN_MPI:-pmix}" "$@" \
    "$exe" run "$job" --output "$out" --resume ${TASKREACH_RUN_ARGS:-} &
  _taskreach_pid=$!
  _taskreach_wait
  trap - USR1
  taskreach_log "the run exited with code $_taskreach_rc"
  return "$_taskreach_rc"
}

# taskreach_merge JOB.toml OUTPUT.h5 [more taskreach merge arguments ...]: assembles the result
# from the store (after the shards) on all tasks of the allocation.
taskreach_merge() {
  local job=$1 out=$2
  shift 2
  local exe=${TASKREACH_EXE:-$TASKREACH_HOME/build/release/taskreach}
  export OMP_NUM_THREADS=${SLURM_CPUS_PER_TASK:-1}
  export TASKREACH_DATA=${TASKREACH_DATA:-$HOME/.cache/taskreach/data}
  taskreach_log "job ${SLURM_JOB_ID:-?}: $exe merge $job --output $out $*"
  local rc=0
  srun --ntasks="${SLURM_NTASKS:-1}" --cpus-per-task="${SLURM_CPUS_PER_TASK:-1}" --mpi="${TASKREACH_SRUN_MPI:-pmix}" \
    "$exe" merge "$job" --output "$out" "$@" || rc=$?
  taskreach_log "the merge exited with code $rc"
  return "$rc"
}

# taskreach_main JOB.toml [OUTPUT.h5] [more srun options ...]: the usage of the sbatch scripts;
# the output defaults to results/JOBNAME.h5.
taskreach_main() {
  local job=${1:?usage: sbatch slurm/reach.sbatch JOB.toml [OUTPUT.h5]}
  local out=${2:-results/$(basename "${job%.toml}").h5}
  shift $(($# < 2 ? $# : 2))
  taskreach_run "$job" "$out" "$@"
}
