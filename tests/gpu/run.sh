#!/usr/bin/env bash
# GPU check: on a machine with a CUDA LibTorch, build and run the training and curvature tests
# and benchmarks on the GPU and print their figures.
#
#   tests/gpu/run.sh [BUILD_DIR]       (default build/gpu)
#
# Needs, besides a CUDA-capable LibTorch (found from a CUDA PyTorch's wheel when TORCH_DIR is
# not set: python3 -c 'import torch; print(torch.utils.cmake_prefix_path)'):
#   MPI (mpicxx, mpiexec), PETSc and SLEPc (pkg-config PETSc / SLEPc), parallel HDF5, Kokkos,
#   toml++, CLI11, zlib, GoogleTest, Google Benchmark — the libraries the rest of taskreach
#   links. On a cluster: `module load` them or `spack load` them; on Debian: ./taskreach.sh setup
#   (but Debian's libtorch is CPU-only: point TORCH_DIR at a CUDA LibTorch).
# The script checks each of these first and says exactly which are missing; it stops with
# exit code 3 when it cannot build, and never claims a GPU figure it did not measure.
set -uo pipefail
cd "$(dirname "$(readlink -f "$0")")/../.."
BUILD=${1:-build/gpu}
missing=()
have() { command -v "$1" >/dev/null 2>&1; }

PY=${PYTHON:-python3}
if [ -z "${TORCH_DIR:-}" ]; then
  TORCH_DIR=$("$PY" -c 'import torch; print(torch.utils.cmake_prefix_path)' 2>/dev/null || true)
fi
cuda_torch=$("$PY" -c 'import torch; print(int(torch.cuda.is_available()))' 2>/dev/null || echo "?")
echo "LibTorch CMake dir: ${TORCH_DIR:-not found}; torch.cuda.is_available(): $cuda_torch"
have nvidia-smi && nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
[ -n "${TORCH_DIR:-}" ] || missing+=("a CUDA LibTorch (set TORCH_DIR or install a CUDA PyTorch)")
have mpicxx || missing+=("MPI (mpicxx)")
have mpiexec || missing+=("MPI launcher (mpiexec)")
have pkg-config && pkg-config --exists PETSc || missing+=("PETSc (pkg-config PETSc)")
have pkg-config && pkg-config --exists SLEPc || missing+=("SLEPc (pkg-config SLEPc)")
have cmake || missing+=("cmake >= 3.25")

if [ ${#missing[@]} -gt 0 ]; then
  echo "GPU check NOT run. Missing on this machine:"
  for m in "${missing[@]}"; do echo "  - $m"; done
  echo "Parallel HDF5, Kokkos, toml++, CLI11, zlib, GoogleTest and Google Benchmark are needed too"
  echo "(configure reports the first one missing). Provide them as modules/Spack packages, then rerun."
  exit 3
fi

set -e
cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$TORCH_DIR" -DTASKREACH_BUILD_BENCH=ON
cmake --build "$BUILD" -j "$(nproc)" --target test_train test_curvature bench_curvature bench_train
export TASKREACH_TEST_DEVICE=cuda OMP_NUM_THREADS=1
echo "== training and curvature tests on the GPU (1 and 2 ranks) =="
mpiexec -n 1 "$BUILD/tests/mpi/test_train"
mpiexec -n 2 "$BUILD/tests/mpi/test_train"
mpiexec -n 1 "$BUILD/tests/mpi/test_curvature"
echo "== benchmarks on the GPU =="
"$BUILD/tests/bench/bench_curvature" --benchmark_counters_tabular=true
mpiexec -n 1 "$BUILD/tests/bench/bench_train" --benchmark_counters_tabular=true
