#!/bin/bash
# The SLURM scripts against a real SLURM: a single-node cluster on loopback (slurmctld, slurmd
# and, if none is running, munged), started from a generated slurm.conf in a temporary folder
# and stopped again, by PID, on exit.
#
#   tests/slurm/slurm_single_node.sh SOURCE_DIR TASKREACH_EXE
#
# 1. The time limit, forwarding and requeue: slurm/reach.sbatch with a stand-in for the binary
#    (tests/slurm/fake_rank.sh) on 2 tasks with --time=3, so that SLURM itself sends the
#    script's --signal=B:USR1@90 to the batch shell (60-90 s into the job). Every rank must
#    receive USR1 (each writes a file), the job must requeue itself once, restart and
#    complete; a job submitted with --dependency=afterok on it must start only after that
#    final completion.
#    1b. slurm/reach-array.sbatch (each array task its own job file) and slurm/scaling.sh weak
#    (derived job files, one run per rank count, the analysis only after both runs), with the
#    stand-in.
#    1c. jobs/tiny.toml through slurm/reach-shards.sh: 3 shards as an array (1 task each) and
#    the merge (--dependency=afterok): every shard completes its share, the merge starts after
#    all of them, the shards computed every job once, and the merged result equals a 1-rank run
#    to 1e-12.
# 2. jobs/demo.toml cut to its first 3 tasks (slurm/subset_tasks.py) and one seed: real data,
#    real trainings and solves, through slurm/reach.sbatch on 2 tasks: a result, `taskreach
#    info` reads it, jobs_reused = 0.
# 3. The same job again to a new output; once its first job is in the store, the batch shell
#    gets USR1 as in step 1 (`scancel --batch --signal=USR1`: what SLURM sent there at the time
#    limit, now at a moment that does not depend on the machine's speed). The run checkpoints
#    (exit 4, "resume with"), the job requeues itself, resumes and finishes with jobs_reused > 0
#    and the same R, unions C and fine-tune steps as step 2 (relative 1e-12).
# Needs root and the Debian packages slurmctld slurmd slurm-client munge; without them it
# exits 77 (skipped). Takes 5-7 minutes on 2 cores (the 3-task demo twice, 90 s of waiting for
# the time limit). Environment: TASKREACH_SLURM_TEST_KEEP=1 keeps the temporary folder (it is
# kept anyway on failure), TASKREACH_SLURM_TEST_ONLY_FORWARDING=1 stops after step 1b,
# TASKREACH_SLURM_TEST_SKIP_DEMO=1 after step 1c.
# The whole script is one { ... } block: bash reads it completely before running it, so an edit
# of this file during the ~10 minutes of a run cannot change what the run does.
{
set -uo pipefail
SKIP=77
SRC=${1:?usage: slurm_single_node.sh SOURCE_DIR TASKREACH_EXE}
EXE=${2:?usage: slurm_single_node.sh SOURCE_DIR TASKREACH_EXE}
SRC=$(cd "$SRC" && pwd)
DEADLINE=$((SECONDS + ${TASKREACH_SLURM_TEST_BUDGET:-2280}))  # 2 min below ctest's TIMEOUT (2400 s): time to clean up

say() { printf '[slurm-test %s] %s\n' "$(date -u +%H:%M:%S)" "$*"; }
if [ "$(id -u)" != 0 ]; then say "SKIP: needs root (daemons, munge key, SlurmUser=root)"; exit $SKIP; fi
missing=()
for p in slurmctld slurmd slurm-client munge; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then say "SKIP: missing Debian packages: ${missing[*]} (./taskreach.sh setup installs them)"; exit $SKIP; fi
[ -x "$EXE" ] || { say "FAIL: $EXE is not an executable"; exit 1; }
for v in OMPI_ALLOW_RUN_AS_ROOT OMPI_ALLOW_RUN_AS_ROOT_CONFIRM; do export "$v=1"; done
export OMP_NUM_THREADS=1 TASKREACH_DATA=${TASKREACH_DATA:-$HOME/.cache/taskreach/data}

T=$(mktemp -d /tmp/taskreach-slurm.XXXXXX)
chmod 755 "$T"
export SLURM_CONF=$T/slurm.conf
PIDS=()  # daemons we started, stopped in reverse order
FAILED=1

stop_cluster() {
  local rc=$?
  trap - EXIT INT TERM
  [ -n "${REF_PID:-}" ] && kill "$REF_PID" 2>/dev/null
  if [ -n "${CTLD_PID:-}" ] && kill -0 "$CTLD_PID" 2>/dev/null; then
    # Our jobs first, so that no job step outlives slurmd.
    scancel --partition=test 2>/dev/null
    for _ in $(seq 30); do [ -z "$(squeue -h -p test 2>/dev/null)" ] && break; sleep 1; done
  fi
  local i
  for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do kill "${PIDS[i]}" 2>/dev/null; done
  for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
    for _ in $(seq 50); do kill -0 "${PIDS[i]}" 2>/dev/null || break; sleep 0.2; done
    kill -0 "${PIDS[i]}" 2>/dev/null && { say "daemon ${PIDS[i]} ignored SIGTERM: SIGKILL"; kill -KILL "${PIDS[i]}"; }
    wait "${PIDS[i]}" 2>/dev/null
  done
  # Job steps of this cluster that outlived it (slurmstepd carries our SLURM_CONF): by PID.
  local p
  for p in $(ps -e -o pid=,comm= | awk '$2 == "slurmstepd" {print $1}'); do
    if tr '\0' '\n' </proc/"$p"/environ 2>/dev/null | grep -qx "SLURM_CONF=$SLURM_CONF"; then
      say "leftover slurmstepd $p: killing it"; kill -KILL "$p" 2>/dev/null
    fi
  done
  if [ "$FAILED" = 0 ] && [ "${TASKREACH_SLURM_TEST_KEEP:-0}" != 1 ]; then
    rm -rf "$T"
  else
    say "kept $T (logs: $T/*.log, job logs: $T/jobs/)"
  fi
  exit "$rc"
}
trap stop_cluster EXIT
trap 'say "interrupted"; exit 130' INT TERM

fail() {
  say "FAIL: $*"
  for f in "$T"/jobs/*.out; do [ -f "$f" ] && { echo "---- $f (last 40 lines)"; tail -n 40 "$f"; }; done
  for f in "$T"/slurmctld.log "$T"/slurmd.log; do [ -f "$f" ] && { echo "---- $f (last 20 lines)"; tail -n 20 "$f"; }; done
  exit 1
}

# ---------------------------------------------------------------------------- the cluster
t_setup=$SECONDS
if munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
  say "using the munged that is already running"
else
  [ -s /etc/munge/munge.key ] || {
    mungekey --create --keyfile=/etc/munge/munge.key 2>/dev/null ||
      dd if=/dev/urandom of=/etc/munge/munge.key bs=1 count=1024 status=none
  }
  chown munge:munge /etc/munge/munge.key && chmod 0400 /etc/munge/munge.key
  mkdir -p /run/munge && chown munge:munge /run/munge && chmod 0755 /run/munge
  setpriv --reuid=munge --regid=munge --clear-groups /usr/sbin/munged --foreground >"$T/munged.log" 2>&1 &
  PIDS+=($!)
  for _ in $(seq 50); do munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && break; sleep 0.1; done
  munge -n | unmunge >/dev/null || fail "munged did not come up ($T/munged.log)"
fi

free_port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
host=$(hostname -s)
node=$(slurmd -C | head -n 1)  # NodeName=HOST CPUs=... RealMemory=...
[[ "$node" == NodeName=* ]] || fail "slurmd -C said: $node"
ncpu=$(sed -n 's/.*CPUs=\([0-9]*\).*/\1/p' <<<"$node")
[ "$ncpu" -ge 2 ] || { say "SKIP: the demo needs 2 CPUs, slurmd -C finds $ncpu"; FAILED=0; exit $SKIP; }
mkdir -p "$T/state" "$T/spool" "$T/jobs" "$T/out"
# A snapshot of the binary (it links only system libraries): a rebuild of the tree during the
# ~10 minutes of the test must not give the resumed run a different program version.
cp "$EXE" "$T/taskreach" || fail "cannot copy $EXE"
EXE=$T/taskreach
cat >"$SLURM_CONF" <<EOF
# Generated by tests/slurm/slurm_single_node.sh: one node on loopback, no systemd, no cgroups.
ClusterName=taskreachtest
SlurmctldHost=$host(127.0.0.1)
SlurmUser=root
SlurmctldPort=$(free_port)
SlurmdPort=$(free_port)
AuthType=auth/munge
# A requeued job may start again only after cred_expire seconds (default 120): 10 here.
AuthInfo=cred_expire=10
CredType=cred/munge
StateSaveLocation=$T/state
SlurmdSpoolDir=$T/spool
SlurmctldPidFile=$T/slurmctld.pid
SlurmdPidFile=$T/slurmd.pid
SlurmctldLogFile=$T/slurmctld.log
SlurmdLogFile=$T/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
ProctrackType=proctrack/pgid
TaskPlugin=task/none
MpiDefault=pmix
SchedulerType=sched/backfill
SchedulerParameters=batch_sched_delay=0,sched_interval=5,bf_interval=5
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
JobRequeue=1
MinJobAge=3600
KillWait=30
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
$node NodeAddr=127.0.0.1 State=UNKNOWN
PartitionName=test Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF
sed -i 's/ UpTime=[^ ]*//' "$SLURM_CONF"
slurmctld -D -i -f "$SLURM_CONF" >"$T/slurmctld.stdout" 2>&1 &
CTLD_PID=$!
PIDS+=("$CTLD_PID")
slurmd -D -f "$SLURM_CONF" >"$T/slurmd.stdout" 2>&1 &
PIDS+=($!)
for _ in $(seq 100); do [ "$(sinfo -h -o %T 2>/dev/null)" = idle ] && break; sleep 0.2; done
[ "$(sinfo -h -o %T 2>/dev/null)" = idle ] || fail "the node did not come up idle: $(sinfo 2>&1)"
say "cluster up in $((SECONDS - t_setup)) s: $(sinfo -h -o '%P %D %c %T')"

# ---------------------------------------------------------------------------- helpers
field() { sed -n "s/.*\\b$2=\\([^ ]*\\).*/\\1/p" <<<"$1"; }   # field "scontrol -o line" Key
jobinfo() { scontrol -o show job "$1" 2>/dev/null; }
# wait_job ID SECONDS: until a final state; prints it.
wait_job() {
  local id=$1 limit=$((SECONDS + $2)) line state
  while :; do
    line=$(jobinfo "$id")
    state=$(field "$line" JobState)
    case "$state" in
      COMPLETED | FAILED | CANCELLED | TIMEOUT | NODE_FAIL | OUT_OF_MEMORY | BOOT_FAIL | DEADLINE | PREEMPTED)
        echo "$state"; return 0 ;;
    esac
    if [ $SECONDS -ge $limit ] || [ $SECONDS -ge $DEADLINE ]; then echo "TIMEOUT_WAITING($state)"; return 1; fi
    sleep 2
  done
}
epoch() { date -u -d "$1" +%s; }
# The timestamp of the first line of the log matching a pattern (common.sh's taskreach_log).
logtime() { local l; l=$(grep -m1 -E "$2" "$1" | sed -n 's/^\[taskreach-slurm \([^]]*\)\].*/\1/p'); [ -n "$l" ] && epoch "$l"; }
h5attr() { /usr/bin/python3 -c 'import h5py,sys; print(int(h5py.File(sys.argv[1], "r").attrs[sys.argv[2]]))' "$1" "$2"; }

cd "$SRC" || fail "cannot cd to $SRC"
SB=(sbatch --parsable --chdir="$T/jobs")

# ---------------------------------------------------------------------------- 1. forwarding
# Step 1c's 1-rank reference run of jobs/tiny.toml, outside SLURM, on the core that step 1's
# stand-in leaves idle while it waits for the time limit.
"$EXE" run "$SRC/jobs/tiny.toml" --output "$T/out/tiny_ref.h5" >"$T/tiny_ref.log" 2>&1 &
REF_PID=$!

say "1. the time limit: SLURM's USR1 to the batch shell, forwarded to every rank; requeue, restart (stand-in binary)"
mkdir -p "$T/fake"
t_submit=$(date +%s)
fake=$(TASKREACH_EXE="$SRC/tests/slurm/fake_rank.sh" TASKREACH_SRUN_MPI=none \
  "${SB[@]}" --ntasks=2 --time=3 --job-name=fake slurm/reach.sbatch fake.toml "$T/fake/out.h5") || fail "sbatch"
dep=$("${SB[@]}" --ntasks=1 --time=1 --job-name=after-fake --dependency="afterok:$fake" \
  --wrap='date -u +%s >'"$T/fake/after_started") || fail "sbatch (dependent)"
for _ in $(seq 150); do [ -e "$T/fake/out.h5.ready0" ] && [ -e "$T/fake/out.h5.ready1" ] && break; sleep 0.2; done
[ -e "$T/fake/out.h5.ready1" ] || fail "the stand-in ranks did not start"
# Nothing sends the signal but SLURM: the script's --signal=B:USR1@90 under a 3-minute limit.
state=$(wait_job "$fake" 240)
flog=$T/jobs/fake-$fake.out
[ "$state" = COMPLETED ] || fail "stand-in job: $state"
for r in 0 1; do
  grep -q "rank $r: USR1" "$T/fake/out.h5.rank$r" 2>/dev/null || fail "rank $r did not receive USR1"
done
grep -q "USR1: the time limit is near" "$flog" || fail "the batch shell got no USR1 from SLURM"
grep -q "the run exited with code 4 after USR1" "$flog" || fail "the trap did not see exit 4"
grep -q "requeueing job $fake" "$flog" || fail "no requeue in the log"
grep -q "job $fake (restart 1) on" "$flog" || fail "no restart in the log"
restarts=$(field "$(jobinfo "$fake")" Restarts)
[ "$restarts" = 1 ] || fail "Restarts=$restarts, expected 1"
state=$(wait_job "$dep" 60)
[ "$state" = COMPLETED ] || fail "the afterok job: $state"
fake_end=$(epoch "$(field "$(jobinfo "$fake")" EndTime)")
after=$(cat "$T/fake/after_started")
[ "$after" -ge "$fake_end" ] || fail "the afterok job started ($after) before the requeued job ended ($fake_end)"
f_start=$(logtime "$flog" "restart 0\\) on")
f_usr1=$(logtime "$flog" "USR1: the time limit")
f_req=$(logtime "$flog" "requeueing")
f_restart=$(logtime "$flog" "restart 1\\) on")
say "   ok: both ranks got USR1; submit->start $((f_start - t_submit)) s, start->USR1 $((f_usr1 - f_start)) s" \
  "(limit 180 s, --signal @90), requeue->restart $((f_restart - f_req)) s;" \
  "the afterok job ran after the final completion"

# ---------------------------------------------------------------------------- 1b. array, scaling
say "1b. reach-array.sbatch and scaling.sh against sbatch (stand-in binary)"
export TASKREACH_EXE="$SRC/tests/slurm/fake_rank.sh" FAKE_RANK_EXIT=0
arr=$(TASKREACH_OUTDIR="$T/arr" "${SB[@]}" --array=0-1 --ntasks=1 --time=1 slurm/reach-array.sbatch \
  jobs/demo.toml jobs/tiny.toml) || fail "sbatch --array"
state=$(wait_job "${arr}_1" 60)
[ "$state" = COMPLETED ] || fail "array task 1: $state"
state=$(wait_job "${arr}_0" 60)
[ "$state" = COMPLETED ] || fail "array task 0: $state"
grep -q "run jobs/demo.toml --output $T/arr/demo.h5 --resume" "$T/jobs/taskreach-array-${arr}_0.out" || fail "array task 0 ran the wrong job"
grep -q "run jobs/tiny.toml --output $T/arr/tiny.h5 --resume" "$T/jobs/taskreach-array-${arr}_1.out" || fail "array task 1 ran the wrong job"
ids=$(TASKREACH_SCALING_DIR="$T/scaling" TASKREACH_SBATCH_OPTS="--time=1 --chdir=$T/jobs" \
  TASKREACH_ANALYSIS_OPTS="--chdir=$T/jobs" slurm/scaling.sh weak jobs/demo.toml 1 2 2>"$T/scaling.err") ||
  fail "scaling.sh: $(cat "$T/scaling.err")"
mapfile -t sids <<<"$ids"
[ ${#sids[@]} = 3 ] || fail "scaling.sh printed ${#sids[@]} job ids: ${sids[*]}"
for id in "${sids[@]}"; do wait_job "$id" 60 >/dev/null; done
for id in "${sids[@]:0:2}"; do [ "$(field "$(jobinfo "$id")" JobState)" = COMPLETED ] || fail "scaling run $id did not complete"; done
# 5 tasks on 2 ranks, so round(5 * sqrt(1/2)) = 4 tasks on 1 rank
[ "$(grep -c '^\[\[tasks\]\]' "$T/scaling/demo-n4.toml")" = 4 ] || fail "weak scaling: no 4-task job file for 1 rank"
grep -q "^rank 0 of 1: run $T/scaling/demo-n4.toml --output $T/scaling/demo-p1.h5" "$T"/scaling/scaling-weak-p1-*.out ||
  fail "weak scaling: the 1-rank run ran the wrong job"
grep -q "^rank 1 of 2: run $T/scaling/demo-n5.toml --output $T/scaling/demo-p2.h5" "$T"/scaling/scaling-weak-p2-*.out ||
  fail "weak scaling: the 2-rank run ran the wrong job"
a_line=$(jobinfo "${sids[2]}")
[ "$(field "$a_line" Dependency)" = "(null)" ] || fail "the analysis job still waits: $a_line"
a_start=$(epoch "$(field "$a_line" StartTime)")
for id in "${sids[@]:0:2}"; do
  [ "$a_start" -ge "$(epoch "$(field "$(jobinfo "$id")" EndTime)")" ] || fail "the analysis started before run $id ended"
done
unset TASKREACH_EXE FAKE_RANK_EXIT
say "   ok: array tasks ran their files; scaling.sh weak: 4 then 5 tasks, the analysis after both runs"

if [ "${TASKREACH_SLURM_TEST_ONLY_FORWARDING:-0}" = 1 ]; then FAILED=0; say "PASS (step 1 only) in $SECONDS s"; exit 0; fi

# ---------------------------------------------------------------------------- 1c. shards
say "1c. jobs/tiny.toml as 3 shards (slurm/reach-shards.sh: an array, then the merge afterok)"
export TASKREACH_EXE=$EXE
wait "$REF_PID" || fail "the 1-rank tiny run failed: $(tail -5 "$T/tiny_ref.log")"
REF_PID=
ids=$(TASKREACH_SBATCH_OPTS="--ntasks=1 --time=5 --chdir=$T/jobs" TASKREACH_MERGE_OPTS="--ntasks=2 --chdir=$T/jobs" \
  slurm/reach-shards.sh "$SRC/jobs/tiny.toml" 3 "$T/out/tiny_sharded.h5" 2>"$T/shards.err" | tail -1) ||
  fail "reach-shards.sh: $(cat "$T/shards.err")"
read -r sarr smerge <<<"$ids"
[ -n "$sarr" ] && [ -n "$smerge" ] || fail "reach-shards.sh printed no job ids: $ids"
for i in 1 2 3; do
  state=$(wait_job "${sarr}_$i" 600)
  [ "$state" = COMPLETED ] || fail "shard $i/3: $state"
done
state=$(wait_job "$smerge" 300)
[ "$state" = COMPLETED ] || fail "the merge job: $state ($(cat "$T"/jobs/taskreach-merge-"$smerge".out 2>/dev/null | tail -5))"
m_start=$(epoch "$(field "$(jobinfo "$smerge")" StartTime)")
computed=0
for i in 1 2 3; do
  slog=$T/jobs/taskreach-shard-${sarr}_$i.out
  grep -q "run $SRC/jobs/tiny.toml --output $T/out/tiny_sharded.h5 --resume --shard $i/3" "$slog" || fail "shard $i ran the wrong command"
  grep -q "^shard $i/3: .* all in the store; no matrix written" "$slog" || fail "shard $i/3 did not finish its share"
  c=$(sed -n 's/^jobs: \([0-9]*\) computed.*/\1/p' "$slog" | tail -1)
  computed=$((computed + c))
  [ "$m_start" -ge "$(epoch "$(field "$(jobinfo "${sarr}_$i")" EndTime)")" ] || fail "the merge started before shard $i ended"
done
total=$(h5attr "$T/out/tiny_ref.h5" jobs_computed)
[ "$computed" -eq "$total" ] || fail "the shards computed $computed jobs, the uninterrupted run $total"
/usr/bin/python3 "$SRC/tests/e2e/compare_h5.py" "$T/out/tiny_ref.h5" "$T/out/tiny_sharded.h5" >"$T/shards.cmp" 2>&1 ||
  fail "the merged result differs from the uninterrupted run: $(cat "$T/shards.cmp")"
waited=$(grep -h "waiting up to" "$T"/jobs/taskreach-shard-"${sarr}"_*.out | wc -l)
unset TASKREACH_EXE
say "   ok: 3 shards ($computed jobs, $waited waited for another shard), the merge after all of them, equal to the 1-rank run"
if [ "${TASKREACH_SLURM_TEST_SKIP_DEMO:-0}" = 1 ]; then FAILED=0; say "PASS (steps 1, 1b, 1c) in $SECONDS s"; exit 0; fi

# ---------------------------------------------------------------------------- 2. demo
say "2. jobs/demo.toml, its first 3 tasks at one seed, through slurm/reach.sbatch on 2 tasks"
export TASKREACH_EXE=$EXE
DEMO=$T/demo-3tasks.toml
/usr/bin/python3 slurm/subset_tasks.py "$SRC/jobs/demo.toml" 3 "$DEMO.tmp" >"$T/subset.log" 2>&1 ||
  fail "subset_tasks.py: $(cat "$T/subset.log")"
sed 's/^seeds = 2$/seeds = 1/' "$DEMO.tmp" >"$DEMO"
grep -q '^seeds = 1$' "$DEMO" || fail "jobs/demo.toml has no 'seeds = 2' line to make a one-seed copy of"
t_submit=$(date +%s)
full=$("${SB[@]}" --ntasks=2 --time=20 --job-name=demo slurm/reach.sbatch "$DEMO" "$T/out/demo.h5") || fail "sbatch"
state=$(wait_job "$full" 900)
dlog=$T/jobs/demo-$full.out
[ "$state" = COMPLETED ] || fail "demo job: $state"
[ -s "$T/out/demo.h5" ] || fail "no result file"
"$EXE" info "$T/out/demo.h5" >"$T/demo.info" 2>&1 || fail "taskreach info failed: $(cat "$T/demo.info")"
grep -q "R(i|j)" "$T/demo.info" || fail "taskreach info printed no R matrix"
[ "$(h5attr "$T/out/demo.h5" jobs_reused)" = 0 ] || fail "jobs_reused != 0 in a fresh run"
d_start=$(logtime "$dlog" "restart 0\\) on")
d_end=$(logtime "$dlog" "the run exited with code 0")
DEMO_S=$((d_end - d_start))
say "   ok: submit->start $((d_start - t_submit)) s, run $DEMO_S s, $(h5attr "$T/out/demo.h5" jobs_computed) jobs computed"

# ---------------------------------------------------------------------------- 3. checkpoint
say "3. the same job, USR1 once its first job is stored: checkpoint, requeue, resume"
t_submit=$(date +%s)
tl=$("${SB[@]}" --ntasks=2 --time=20 --job-name=demo-limit slurm/reach.sbatch "$DEMO" "$T/out/demo_limit.h5") || fail "sbatch"
store=$T/out/demo_limit.h5.work/jobs
while ! compgen -G "$store/*.res" >/dev/null; do
  state=$(field "$(jobinfo "$tl")" JobState)
  case "$state" in PENDING | CONFIGURING | RUNNING) ;; *) fail "the job ended ($state) before it stored a job" ;; esac
  [ $SECONDS -lt $DEADLINE ] || fail "no job stored in $store by the test's deadline"
  sleep 1
done
scancel --batch --signal=USR1 "$tl" || fail "scancel --batch --signal=USR1"
state=$(wait_job "$tl" 900)
tlog=$T/jobs/demo-limit-$tl.out
[ "$state" = COMPLETED ] || fail "interrupted demo job: $state"
restarts=$(field "$(jobinfo "$tl")" Restarts)
[ "${restarts:-0}" -ge 1 ] || fail "the job was never requeued (Restarts=$restarts)"
grep -q "USR1: the time limit is near" "$tlog" || fail "no USR1 in the log"
grep -q "resume with: taskreach run .* --resume" "$tlog" || fail "the run did not checkpoint (no 'resume with' line)"
grep -q "the run exited with code 4 after USR1" "$tlog" || fail "the run did not exit 4 after USR1"
grep -q "requeueing job $tl" "$tlog" || fail "no requeue in the log"
grep -qE "[0-9]+ reused" "$tlog" || fail "the restart reused nothing"
[ -s "$T/out/demo_limit.h5" ] || fail "no result file after the requeues"
reused=$(h5attr "$T/out/demo_limit.h5" jobs_reused)
[ "$reused" -gt 0 ] || fail "jobs_reused = $reused in the resumed result"
/usr/bin/python3 - "$T/out/demo.h5" "$T/out/demo_limit.h5" <<'EOF' || fail "the resumed result differs from the uninterrupted one"
import sys
import h5py
import numpy as np
a, b = (h5py.File(p, "r") for p in sys.argv[1:3])
bad = 0
for name in ("reachability/R", "unions/C", "finetune/steps"):
    x, y = a[name][()], b[name][()]
    if x.shape != y.shape:
        print(f"{name}: shapes {x.shape} and {y.shape}"); bad += 1; continue
    if x.dtype.kind in "iu":
        same = x == y
    else:
        same = (np.abs(x - y) <= 1e-12 * np.maximum(np.abs(x), np.abs(y))) | (np.isnan(x) & np.isnan(y))
    if not same.all():
        print(f"{name}: {int((~same).sum())} entries differ, e.g. {x[~same][:3]} vs {y[~same][:3]}"); bad += 1
    else:
        print(f"   {name}: {x.shape} equal")
sys.exit(1 if bad else 0)
EOF
t0=$(logtime "$tlog" "restart 0\\) on")
tu=$(logtime "$tlog" "USR1: the time limit")
te=$(logtime "$tlog" "exited with code 4 after USR1")
trq=$(logtime "$tlog" "restart 1\\) on")
tq=$(logtime "$tlog" "requeueing")
tend=$(logtime "$tlog" "the run exited with code 0")
say "   ok: $restarts requeue(s), jobs_reused=$reused; submit->start $((t0 - t_submit)) s, start->USR1 $((tu - t0)) s" \
  "USR1->exit 4 $((te - tu)) s, requeue->restart $((trq - tq)) s," \
  "first start->done $((tend - t0)) s (uninterrupted: $DEMO_S s)"
grep -E "USR1: the time limit|exited with code|requeueing|\\(restart [0-9]+\\)" "$tlog" | sed 's/^/   /'
FAILED=0
say "PASS in $SECONDS s"
exit 0
}
