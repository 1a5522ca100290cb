#pragma once
// Tests and benchmarks of the train module run on the GPU when TASKREACH_TEST_DEVICE=cuda
// (tests/gpu/run.sh sets it); otherwise on the CPU, like the rest of the suite.
#include <mpi.h>

#include <cstdlib>
#include <string>

#include "taskreach/train.hpp"

namespace taskreach::testing {

inline std::string use_test_device() {
  const char* d = std::getenv("TASKREACH_TEST_DEVICE");
  if (!d || std::string(d) != "cuda") return "cpu";
  MPI_Comm node;
  MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &node);
  int r = 0;
  MPI_Comm_rank(node, &r);
  MPI_Comm_free(&node);
  return select_device(r);
}

}  // namespace taskreach::testing
