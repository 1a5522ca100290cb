#!/usr/bin/env bash
# GPU check: on a machine with a CUDA LibTorch, build and run the training and curvature code
# on the GPU and print its figures.
#
#   tests/gpu/run.sh [BUILD_DIR] [-- GPU_CHECK_OPTIONS]   (BUILD_DIR default build/gpu)
#
# With the full stack — besides a CUDA-capable LibTorch (found from a CUDA PyTorch's wheel when
# TORCH_DIR is not set: python3 -c 'import torch; print(torch.utils.cmake_prefix_path)'):
#   MPI (mpicxx, mpiexec), PETSc and SLEPc (pkg-config PETSc / SLEPc), parallel HDF5, Kokkos,
#   toml++, CLI11, zlib, GoogleTest, Google Benchmark — the libraries the rest of taskreach
#   links (on a cluster: `module load` or `spack load` them; on Debian: ./taskreach.sh setup, but
#   Debian's libtorch is CPU-only: point TORCH_DIR at a CUDA LibTorch) —
# it builds and runs the MPI training and curvature tests and benchmarks on the GPU.
#
# Without them (or when their configure fails, or with TASKREACH_GPU_CHECK=torch-only) it
# builds the torch-only check of tests/gpu/CMakeLists.txt in build/gpu-check (GPU_CHECK_BUILD
# overrides the folder, GPU_CHECK_JOBS the build jobs): the train module's own model, SGD step
# and G·v / H·v products, CPU against CUDA in float64 (agreement 1e-10), timed. That needs only
# the LibTorch, CMake and a C++ compiler (ninja if present), and builds and runs in a few
# minutes. Its exit code is the script's: 0 passed, 1 a disagreement, 2 an error, 3 CUDA not
# available (CPU checks only; no GPU figure). Options after -- go to gpu_check (--quick, ...).
#
# Exit code 3 also when nothing can be built (no LibTorch, no CMake). No GPU figure is printed
# that was not measured in this run.
set -uo pipefail
cd "$(dirname "$(readlink -f "$0")")/../.."
BUILD=build/gpu
if [ $# -gt 0 ] && [ "$1" != "--" ]; then BUILD=$1; shift; fi
[ "${1:-}" = "--" ] && shift
CHECK_ARGS=("$@")
have() { command -v "$1" >/dev/null 2>&1; }
jobs=${GPU_CHECK_JOBS:-$(nproc 2>/dev/null || echo 2)}  # build jobs

PY=${PYTHON:-python3}
if [ -z "${TORCH_DIR:-}" ]; then
  TORCH_DIR=$("$PY" -c 'import torch; print(torch.utils.cmake_prefix_path)' 2>/dev/null || true)
fi
cuda_torch=$("$PY" -c 'import torch; print(int(torch.cuda.is_available()))' 2>/dev/null || echo "?")
echo "LibTorch CMake dir: ${TORCH_DIR:-not found}; torch.cuda.is_available(): $cuda_torch"
have nvidia-smi && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader

if [ -z "${TORCH_DIR:-}" ]; then
  echo "GPU check NOT run: no LibTorch (set TORCH_DIR to a CUDA LibTorch's CMake dir, or install a CUDA PyTorch)."
  exit 3
fi
if ! have cmake; then
  echo "GPU check NOT run: cmake not found."
  exit 3
fi

# The torch-only check: LibTorch, CMake and a compiler, nothing else.
torch_only() {
  local B=${GPU_CHECK_BUILD:-build/gpu-check} gen=()
  # A fresh build dir gets ninja when there is one; an existing one keeps its generator.
  if [ ! -f "$B/CMakeCache.txt" ] && have ninja; then gen=(-G Ninja); fi
  echo "== torch-only GPU check: configure and build $B (LibTorch only) =="
  local t0=$SECONDS
  if ! cmake -S tests/gpu -B "$B" ${gen[@]+"${gen[@]}"} -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$TORCH_DIR"; then
    echo "GPU check NOT run: configuring tests/gpu against $TORCH_DIR failed (see above)."
    exit 3
  fi
  if ! cmake --build "$B" -j "$jobs"; then
    echo "GPU check NOT run: building tests/gpu failed (see above)."
    exit 2
  fi
  echo "built in $((SECONDS - t0)) s"
  echo "== torch-only GPU check: run =="
  local run=("$B/gpu_check" ${CHECK_ARGS[@]+"${CHECK_ARGS[@]}"}) rc
  have timeout && run=(timeout 480 "${run[@]}")
  "${run[@]}"
  rc=$?
  [ $rc -eq 124 ] && echo "gpu_check did not finish within 480 s (timed out)."
  if [ $rc -eq 3 ] && [ "$cuda_torch" = "1" ]; then
    echo "note: PyTorch sees a GPU but gpu_check does not: is $TORCH_DIR the CUDA LibTorch of that PyTorch?"
  fi
  exit $rc
}

if [ "${TASKREACH_GPU_CHECK:-}" = "torch-only" ]; then
  echo "TASKREACH_GPU_CHECK=torch-only: running the torch-only check."
  torch_only
fi

missing=()
have mpicxx || missing+=("MPI (mpicxx)")
have mpiexec || missing+=("MPI launcher (mpiexec)")
have pkg-config && pkg-config --exists PETSc || missing+=("PETSc (pkg-config PETSc)")
have pkg-config && pkg-config --exists SLEPc || missing+=("SLEPc (pkg-config SLEPc)")
if [ ${#missing[@]} -gt 0 ]; then
  echo "Full stack missing (${missing[*]}): running the torch-only check (tests/gpu/CMakeLists.txt) instead."
  torch_only
fi

# The full stack: the MPI tests and benchmarks of the train and curvature modules on the GPU.
if ! cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$TORCH_DIR" -DTASKREACH_BUILD_BENCH=ON; then
  echo "Configuring the full build failed (parallel HDF5, Kokkos, toml++, CLI11, zlib, GoogleTest or Google"
  echo "Benchmark missing?): running the torch-only check (tests/gpu/CMakeLists.txt) instead."
  torch_only
fi
set -e
cmake --build "$BUILD" -j "$jobs" --target test_train test_curvature bench_curvature bench_train
export TASKREACH_TEST_DEVICE=cuda OMP_NUM_THREADS=1
echo "== training and curvature tests on the GPU (1 and 2 ranks) =="
mpiexec -n 1 "$BUILD/tests/mpi/test_train"
mpiexec -n 2 "$BUILD/tests/mpi/test_train"
mpiexec -n 1 "$BUILD/tests/mpi/test_curvature"
echo "== benchmarks on the GPU =="
"$BUILD/tests/bench/bench_curvature" --benchmark_counters_tabular=true
mpiexec -n 1 "$BUILD/tests/bench/bench_train" --benchmark_counters_tabular=true
