// One main for every test executable: MPI, then SLEPc (PETSc), then Kokkos, torn down in
// reverse. Only rank 0 prints gtest results, so mpiexec output stays readable.
#include <gtest/gtest.h>
#include <mpi.h>
#include <slepcsys.h>

#include <Kokkos_Core.hpp>

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/lsan_interface.h>
#define TASKREACH_LSAN 1
#endif

namespace {
// Sanitizer builds (the asan preset): what Open MPI allocates for itself on this thread
// inside MPI_Init and MPI_Finalize (component state, the PMIx client, hwloc binding strings)
// lives until exit and is never freed; LeakSanitizer ignores allocations made in this
// scope. None of our code runs in it. Open MPI's own threads: tests/sanitizers/lsan.supp.
struct MpiOwnAllocations {
#ifdef TASKREACH_LSAN
  MpiOwnAllocations() { __lsan_disable(); }
  ~MpiOwnAllocations() { __lsan_enable(); }
#else
  MpiOwnAllocations() {}
#endif
};
}  // namespace

int main(int argc, char** argv) {
  {
    MpiOwnAllocations mpi_own;
    MPI_Init(&argc, &argv);
  }
  ::testing::InitGoogleTest(&argc, argv);
  int rc = 0;
  {
    PetscErrorCode ierr = SlepcInitialize(&argc, &argv, nullptr, nullptr);
    if (ierr) return 1;
    {
      Kokkos::ScopeGuard kokkos(argc, argv);
      int rank = 0;
      MPI_Comm_rank(MPI_COMM_WORLD, &rank);
      if (rank != 0) {
        auto& listeners = ::testing::UnitTest::GetInstance()->listeners();
        delete listeners.Release(listeners.default_result_printer());
      }
      rc = RUN_ALL_TESTS();
      // A test that fails on any rank fails the run.
      MPI_Allreduce(MPI_IN_PLACE, &rc, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
    }
    SlepcFinalize();
  }
  {
    MpiOwnAllocations mpi_own;
    MPI_Finalize();
  }
  return rc;
}
