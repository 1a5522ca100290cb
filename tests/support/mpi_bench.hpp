#pragma once
// main() for the collective benchmarks: MPI, SLEPc, Kokkos and one thread per rank set up,
// `register_benchmarks` called, every rank runs every benchmark (so collectives match) and
// only rank 0 reports.
#include <benchmark/benchmark.h>
#include <mpi.h>
#include <slepcsys.h>

#include <Kokkos_Core.hpp>

#include "device.hpp"

namespace taskreach::testing {

class QuietReporter : public benchmark::BenchmarkReporter {
 public:
  bool ReportContext(const Context&) override { return true; }
  void ReportRuns(const std::vector<Run>&) override {}
};

template <typename Register>
int run_mpi_benchmarks(int argc, char** argv, Register register_benchmarks) {
  MPI_Init(&argc, &argv);
  SlepcInitialize(&argc, &argv, nullptr, nullptr);
  {
    Kokkos::ScopeGuard kokkos;
    set_threads(1);
    use_test_device();
    register_benchmarks();
    benchmark::Initialize(&argc, argv);
    int rank = 0;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    QuietReporter quiet;
    if (rank == 0)
      benchmark::RunSpecifiedBenchmarks();
    else
      benchmark::RunSpecifiedBenchmarks(&quiet);
    benchmark::Shutdown();
  }
  SlepcFinalize();
  MPI_Finalize();
  return 0;
}

}  // namespace taskreach::testing
