#!/bin/bash
# Stand-in for taskreach in the SLURM test: `fake_rank.sh run JOB --output OUT --resume` on
# every task of an srun step. First start: writes OUT.readyR, waits for USR1, records it in
# OUT.rankR and exits 4 like taskreach stopped at a job boundary. After a requeue
# (SLURM_RESTART_COUNT >= 1): exits 0 at once, like a resumed run with nothing left to do.
# With FAKE_RANK_EXIT=N: prints its arguments and exits N at once.
out=${4:?usage: fake_rank.sh run JOB --output OUT --resume}
r=${SLURM_PROCID:?not under srun}
if [ -n "${FAKE_RANK_EXIT:-}" ]; then  # just say what was asked
  echo "rank $r of $SLURM_NTASKS: $*"
  exit "$FAKE_RANK_EXIT"
fi
if [ "${SLURM_RESTART_COUNT:-0}" -ge 1 ]; then
  echo "rank $r: restart ${SLURM_RESTART_COUNT}: nothing left to do"
  exit 0
fi
trap 'echo "rank $r: USR1" >"$out.rank$r"; echo "rank $r: USR1, stopping" >&2
      echo "taskreach: interrupted; resume with: taskreach run $2 --output $out --resume" >&2; exit 4' USR1
touch "$out.ready$r"
for _ in $(seq 2000); do sleep 0.1; done  # the time limit's USR1 comes 60-90 s in
echo "rank $r: no USR1 within 200 s" >&2
exit 1
