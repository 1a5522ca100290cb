// A product that throws on one rank, inside the real SLEPc solve, the real Lanczos loop or a
// single distributed product: every rank must leave with the same error, and no rank may be
// left waiting in the reduce-scatter (STYLE convention 11). The fault comes from this test's
// own operator; production code has no switch for it. `options`: an error PETSc itself raises
// on the parallel EPS (an unknown -curv_eps_type) reaches every rank with PETSc's message.
// Run by expect_same_error.cmake, which checks the exit code, the one error line per rank and
// the time.
//
//   test_curvature_fault eps|slq|apply|options [failing rank]
//
// Prints "taskreach: error: <what>" on every rank that caught the error and exits 1; before
// that, a clean solve must find the known spectrum, and after it the same solve must still
// work on the same communicator (the ranks left the failed section in step).
#include <mpi.h>
#include <slepcsys.h>

#include <Kokkos_Core.hpp>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <string>

#include "taskreach/curvature.hpp"

using namespace taskreach;

namespace {

// A = diag(1, 2, …, d) as a sum over the ranks' shards (rank r holds the entries i ≡ r mod P);
// the `fail_at`-th product throws on rank `fail_rank`.
class ShardedDiagonal final : public CurvatureOperator {
 public:
  ShardedDiagonal(int64_t d, int rank, int size, int fail_rank = -1, int64_t fail_at = 0)
      : d_(d), rank_(rank), size_(size), fail_rank_(fail_rank), fail_at_(fail_at) {}
  int64_t dim() const override { return d_; }
  void apply_shard(const double* v, double* out) override {
    if (++calls_ == fail_at_ && rank_ == fail_rank_)
      throw std::runtime_error("injected fault in product " + std::to_string(calls_));
    for (int64_t i = 0; i < d_; ++i) out[i] = i % size_ == rank_ ? double(i + 1) * v[i] : 0.0;
  }

 private:
  int64_t d_;
  int rank_, size_, fail_rank_;
  int64_t fail_at_, calls_ = 0;
};

SpectrumOptions options() {
  SpectrumOptions so;
  so.top_k = 3;
  so.probes = 4;
  so.lanczos_steps = 10;
  so.seed = 7;
  return so;
}

// The clean solve: the top three of diag(1..d) are d, d−1, d−2.
bool spectrum_is_right(const SpectrumResult& s, int64_t d) {
  if (s.converged != 3) return false;
  for (int k = 0; k < 3; ++k)
    if (std::fabs(s.eigenvalues[size_t(k)] - double(d - k)) > 1e-8 * double(d)) return false;
  return true;
}

int run(const std::string& where, int fail_rank) {
  int rank = 0, size = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  const int64_t d = 60;
  ShardedDiagonal clean(d, rank, size);
  const SpectrumResult ref = estimate_spectrum(MPI_COMM_WORLD, clean, options());
  if (!spectrum_is_right(ref, d)) {
    std::printf("fault test: the clean solve is wrong\n");
    return 2;
  }
  // eps: inside EPSSolve; slq: the last probe's Lanczos run (the clean run's last products);
  // apply: the one product of apply_distributed.
  const int64_t fail_at = where == "eps" ? 3 : where == "slq" ? ref.products - 2 : where == "apply" ? 1 : 0;
  ShardedDiagonal faulty(d, rank, size, fail_rank, fail_at);
  if (where == "options") PetscOptionsSetValue(nullptr, "-curv_eps_type", "no_such_solver");
  const auto t0 = std::chrono::steady_clock::now();
  int rc = 0;
  try {
    if (where == "apply")
      apply_distributed(MPI_COMM_WORLD, faulty, std::vector<double>(size_t(d), 1.0));
    else
      estimate_spectrum(MPI_COMM_WORLD, faulty, options());
    std::printf("fault test: rank %d: the injected fault was not reported\n", rank);
    rc = 3;
  } catch (const std::exception& e) {
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::fprintf(stderr, "taskreach: error: %s\n", e.what());
    std::fflush(stderr);
    if (rank == 0) std::printf("fault test: every rank raised it within %.3f s\n", s);
    rc = 1;
  }
  if (where == "options") PetscOptionsClearValue(nullptr, "-curv_eps_type");
  // The ranks left the failed section together: the communicator still works.
  ShardedDiagonal again(d, rank, size);
  if (!spectrum_is_right(estimate_spectrum(MPI_COMM_WORLD, again, options()), d)) {
    std::printf("fault test: the solve after the error is wrong\n");
    return 4;
  }
  return rc;
}

}  // namespace

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  const std::string where = argc > 1 ? argv[1] : "eps";
  const int fail_rank = argc > 2 ? std::atoi(argv[2]) : 1;
  int rc = 0;
  if (SlepcInitialize(&argc, &argv, nullptr, nullptr)) {
    std::fprintf(stderr, "fault test: SLEPc initialisation failed\n");
    rc = 5;
  } else {
    {
      Kokkos::ScopeGuard kokkos(argc, argv);
      try {
        rc = run(where, fail_rank);
      } catch (const std::exception& e) {
        std::printf("fault test: unexpected error outside the faulty section: %s\n", e.what());
        rc = 6;
      }
    }
    SlepcFinalize();
  }
  MPI_Finalize();
  return rc;
}
