// A throw on one rank inside training's collective sections: the local forward/backward of
// an SGD step, the evaluation of the whole task, and the evaluation hook of TrainHooks. Every
// rank must leave train_map with the same error, none left in an all-reduce (STYLE
// convention 11). The faults come from this test: a sample whose label is outside the head
// (LibTorch's cross-entropy throws on whichever rank holds it) and a hook that throws on
// rank 1. Run by expect_same_error.cmake.
//
//   test_train_fault sgd|eval|hook
//
// Prints "taskreach: error: <what>" on every rank that caught the error and exits 1; after
// it, the same group trains a clean task to a finite loss (the ranks left in step).
#include <mpi.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <stdexcept>
#include <string>

#include "taskreach/train.hpp"

using namespace taskreach;

namespace {

// 64 samples of 16 features in 4 classes (a fixed pseudo-random pattern, no data files).
Task synthetic_task() {
  Task t;
  t.name = "synthetic";
  t.dim = 16;
  for (int64_t i = 0; i < 64; ++i) {
    const int64_t label = i % 4;
    for (int64_t j = 0; j < 16; ++j)
      t.x.push_back(static_cast<float>(std::sin(0.7 * double(i * 16 + j)) + (j % 4 == label ? 1.0 : 0.0)));
    t.y.push_back(label);
    t.keys.push_back({0, i, 0, label});
  }
  t.active_rows = {0, 1, 2, 3};
  return t;
}

ModelShape linear_shape() {
  ModelShape s;
  s.arch = Arch::linear;
  s.height = 4;
  s.width = 4;
  s.k_tot = 4;
  return s;
}

JobConfig job(int64_t steps) {
  JobConfig j;
  j.model.arch = Arch::linear;
  j.train.batch_size = 16;
  j.train.steps = steps;
  j.train.epochs = 0;
  j.train.eval_every = 10;
  j.train.polish_iters = 0;
  j.complexity.beta = 1.0;
  j.complexity.lambda2 = 1.0;
  return j;
}

int run(const std::string& where) {
  int rank = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  Task task = synthetic_task();
  TrainHooks hooks;
  int64_t steps = 20;
  if (where == "sgd" || where == "eval") task.y[5] = 9;  // outside the 4-row head; held by rank 1 (5 mod 2)
  if (where == "eval") steps = 0;                         // no SGD: the final evaluation meets it first
  if (where == "hook")
    hooks.on_eval = [rank](const CurvePoint& c, const std::vector<double>&, const std::vector<double>&) {
      if (rank == 1) throw std::runtime_error("injected fault in the evaluation hook at step " + std::to_string(int(c[0])));
    };
  const auto t0 = std::chrono::steady_clock::now();
  int rc = 0;
  try {
    train_map(MPI_COMM_WORLD, linear_shape(), task, job(steps), 3, "", hooks);
    std::printf("fault test: rank %d: the injected fault was not reported\n", rank);
    rc = 3;
  } catch (const std::exception& e) {
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::fprintf(stderr, "taskreach: error: %s\n", e.what());
    std::fflush(stderr);
    if (rank == 0) std::printf("fault test: every rank raised it within %.3f s\n", s);
    rc = 1;
  }
  // The ranks left the failed section together: the group still trains.
  const TrainOutcome clean = train_map(MPI_COMM_WORLD, linear_shape(), synthetic_task(), job(20), 3);
  if (clean.status == "diverged" || !std::isfinite(clean.loss) || clean.sgd_steps != 20) {
    std::printf("fault test: the training after the error is wrong (%s)\n", clean.status.c_str());
    return 4;
  }
  return rc;
}

}  // namespace

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  int rc = 0;
  try {
    rc = run(argc > 1 ? argv[1] : "sgd");
  } catch (const std::exception& e) {
    std::printf("fault test: unexpected error outside the faulty section: %s\n", e.what());
    rc = 6;
  }
  MPI_Finalize();
  return rc;
}
