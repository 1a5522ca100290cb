#!/usr/bin/env bash
# Cost of one single-task C against the task size, measured (not a test):
#   scripts/scale_n.sh OUTDIR ARCH:N:RANKS ...      e.g. scripts/scale_n.sh /tmp/s mlp:1000:1 mlp:4000:2 cnn:1000:1
# Each run is a job with one Fashion-MNIST task of N samples (the demo's settings but 20 epochs,
# one seed, no fine-tuning) on RANKS ranks in one group. Prints, per run: wall time, peak RSS
# of the largest rank, the time split, the data passes of the polish and of the curvature
# (block products count once), operator-vector products, m and k, status. POLISH (default
# spectral_lbfgs) sets train.polish, POLISH_ITERS (8000) its budget, GRAPH_SAMPLES (16384)
# complexity.graph_samples: how many samples' graphs the curvature operator holds per rank
# (0: every product rebuilds them, so its memory beyond the data stays one batch's),
# PROBE_BLOCK (0: all probes) complexity.probe_block: the Lanczos bases held at once.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
dir=${1:?usage: scripts/scale_n.sh OUTDIR ARCH:N:RANKS ...}
shift
exe=${TASKREACH_EXE:-$here/build/release/taskreach}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} TASKREACH_DATA=${TASKREACH_DATA:-$HOME/.cache/taskreach/data}
mkdir -p "$dir"
printf '%-5s %6s %5s %8s %9s %8s %8s %8s %8s %7s %7s %6s %4s %4s %s\n' arch n ranks wall_s rss_MiB sgd_s polish_s topk_s slq_s pol_pass cur_pass hvp m k status
for spec in "$@"; do
  IFS=: read -r arch n np <<<"$spec"
  name="$arch-$n-np$np"
  job="$dir/$name.toml"
  model='arch = "mlp"
hidden = [32]'
  [ "$arch" = cnn ] && model='arch = "cnn"'
  cat >"$job" <<TOML
name = "$name"
seed = 1
ranks_per_task = $np
n_per_task = $n

[model]
$model

[train]
epochs = 20
batch_size = 50
lr = 0.05
momentum = 0.9
grad_tol = 1e-5
polish_iters = ${POLISH_ITERS:-8000}
polish = "${POLISH:-spectral_lbfgs}"
seeds = 1

[finetune]
enabled = false

[complexity]
lambda2 = 0.25
probes = 16
lanczos_steps = 30
graph_samples = ${GRAPH_SAMPLES:-16384}
probe_block = ${PROBE_BLOCK:-0}

[[sources]]
name = "fashion"
format = "idx"
train_images = "/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz"
train_labels = "/usr/share/datasets/fashion-mnist/train-labels-idx1-ubyte.gz"

[[tasks]]
name = "fashion"
source = "fashion"
TOML
  rm -rf "$dir/$name.h5" "$dir/$name.h5.store"
  /usr/bin/time -f '%e %M' -o "$dir/$name.time" mpirun --oversubscribe -n "$np" "$exe" run "$job" \
    --output "$dir/$name.h5" --store "$dir/$name.store" >"$dir/$name.log" 2>&1
  read -r wall rss <"$dir/$name.time"
  /usr/bin/python3 - "$dir/$name.h5" "$arch" "$n" "$np" "$wall" "$rss" <<'PY'
import sys, h5py
path, arch, n, np_, wall, rss = sys.argv[1:]
with h5py.File(path, "r") as f:
    metrics = f["/jobs/metrics"]
    g = lambda k: float(metrics[k][0]) if k in metrics else float("nan")
    status = f["/jobs/status"][0]
    status = status.decode() if isinstance(status, bytes) else status
    print(f"{arch:<5} {int(n):6d} {int(np_):5d} {float(wall):8.1f} {int(rss)/1024:9.0f} {g('time_sgd'):8.1f} "
          f"{g('time_polish'):8.1f} {g('time_topk'):8.1f} {g('time_slq'):8.1f} {int(g('polish_passes')):7d} "
          f"{int(g('curvature_passes')):7d} {int(g('hvp')):6d} {int(g('lanczos_steps')):4d} "
          f"{int(g('eps_requested')):4d} {status}")
PY
done
