// Training throughput: samples per second of SGD steps for each model at two batch sizes,
// on however many ranks it is started with (mpirun -np 1 / -np 2 bench_train): the group is
// MPI_COMM_WORLD, so each step does one gradient all-reduce. Each iteration runs 20 steps on
// 512 real Fashion-MNIST images (28×28) plus one evaluation of the task; iterations are fixed so
// that every rank takes part in the same collectives. Only rank 0 reports. BM_Polish: each
// polish to grad_tol from the same SGD end point.
#include <benchmark/benchmark.h>
#include <mpi.h>
#include <slepcsys.h>

#include <Kokkos_Core.hpp>

#include "../support/mpi_bench.hpp"
#include "taskreach/data.hpp"
#include "taskreach/train.hpp"

using namespace taskreach;

namespace {

const TaskSet& tasks() {
  static TaskSet t = [] {
    JobConfig job;
    job.path = "bench_train";
    job.n_per_task = 512;
    SourceConfig s;
    s.name = "fashion";
    s.format = SourceFormat::idx;
    s.train_images = "/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz";
    s.train_labels = "/usr/share/datasets/fashion-mnist/train-labels-idx1-ubyte.gz";
    job.sources = {s};
    TaskConfig tc;
    tc.name = "fashion";
    tc.source = "fashion";
    job.tasks = {tc};
    return build_tasks(job);
  }();
  return t;
}

void BM_TrainSteps(benchmark::State& state, const std::string& arch) {
  JobConfig job;
  job.model.arch = from_string<Arch>(arch);
  job.model.hidden = arch == "linear" || arch == "resnet18" ? std::vector<int64_t>{} : std::vector<int64_t>{32};
  job.model.width = 16;
  job.model.activation = arch == "resnet18" ? Activation::relu : Activation::tanh;
  job.train.batch_size = state.range(0);
  job.train.steps = 20;
  job.train.eval_every = 20;
  job.train.polish_iters = 0;
  ModelShape shape = model_shape(job, tasks());
  for (auto _ : state) {
    auto out = train_map(MPI_COMM_WORLD, shape, tasks().tasks[0], job, 1);
    benchmark::DoNotOptimize(out.weights.data());
  }
  int size = 1;
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  state.counters["samples_per_s"] =
      benchmark::Counter(double(state.iterations() * 20 * state.range(0)), benchmark::Counter::kIsRate);
  state.counters["ranks"] = size;
  state.counters["d"] = double(num_parameters(shape));
}

// The float64 polish from the same SGD end point (the demo's settings: MLP 784-32, 30 epochs
// of batch 50, λ² = 0.25, grad_tol 1e-5) for each polish: its data passes and seconds, and
// the SGD seconds beside them (the share the polish takes of training).
void BM_Polish(benchmark::State& state, const std::string& polish) {
  JobConfig job;
  job.model.arch = Arch::mlp;
  job.model.hidden = {32};
  job.complexity.lambda2 = 0.25;
  job.train.epochs = 30;
  job.train.batch_size = 50;
  job.train.polish_iters = 8000;
  job.train.polish = from_string<Polish>(polish);
  ModelShape shape = model_shape(job, tasks());
  TrainOutcome out;
  for (auto _ : state) {
    out = train_map(MPI_COMM_WORLD, shape, tasks().tasks[0], job, 1);
    benchmark::DoNotOptimize(out.weights.data());
  }
  state.counters["polish_passes"] = double(out.polish_passes);
  state.counters["polish_s"] = out.polish_seconds;
  state.counters["sgd_s"] = out.sgd_seconds;
  state.counters["grad_norm"] = out.grad_norm;
  state.counters["converged"] = out.status == "ok";
}

}  // namespace

int main(int argc, char** argv) {
  return taskreach::testing::run_mpi_benchmarks(argc, argv, [] {
    for (const char* arch : {"linear", "mlp", "cnn", "resnet18"})
      benchmark::RegisterBenchmark((std::string("BM_TrainSteps/") + arch).c_str(), BM_TrainSteps, std::string(arch))
          ->Arg(32)
          ->Arg(128)
          ->Iterations(arch == std::string("resnet18") ? 1 : 3)
          ->Unit(benchmark::kMillisecond)
          ->UseRealTime();
    for (const char* polish : {"lbfgs", "spectral_lbfgs", "newton_cg"})
      benchmark::RegisterBenchmark((std::string("BM_Polish/") + polish).c_str(), BM_Polish, std::string(polish))
          ->Iterations(1)
          ->Unit(benchmark::kSecond)
          ->UseRealTime();
  });
}
