// Training throughput: samples per second of SGD steps for each model at two batch sizes,
// on however many ranks it is started with (mpirun -np 1 / -np 2 bench_train): the group is
// MPI_COMM_WORLD, so each step does one gradient all-reduce. Each iteration runs 20 steps on
// 512 real Fashion-MNIST images (28×28) plus one evaluation of the task; iterations are fixed so
// that every rank takes part in the same collectives. Only rank 0 reports. BM_Polish: each
// polish to grad_tol from the same SGD end point; BM_PolishLandscape (one rank): the exact
// Hessian's least eigenvalues at w* and the distance SGD leaves; BM_SgdEndgame: a longer or
// annealed SGD phase against the polish it leaves.
#include <benchmark/benchmark.h>
#include <mpi.h>
#include <slepcsys.h>

#include <Kokkos_Core.hpp>
#include <algorithm>
#include <cmath>

#include "../support/mpi_bench.hpp"
#include "taskreach/data.hpp"
#include "taskreach/curvature.hpp"
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

// The demo's training settings (MLP 784-32, 30 epochs of batch 50, λ² = 0.25, grad_tol 1e-5)
// with an 8,000-iteration polish budget: what the polish benchmarks start from.
JobConfig demo_polish_job() {
  JobConfig job;
  job.model.arch = Arch::mlp;
  job.model.hidden = {32};
  job.complexity.lambda2 = 0.25;
  job.train.epochs = 30;
  job.train.batch_size = 50;
  job.train.polish_iters = 8000;
  return job;
}

// The float64 polish from the same SGD end point (the demo's settings: MLP 784-32, 30 epochs
// of batch 50, λ² = 0.25, grad_tol 1e-5) for each polish: its data passes and seconds, and
// the SGD seconds beside them (the share the polish takes of training).
void BM_Polish(benchmark::State& state, const std::string& polish) {
  JobConfig job = demo_polish_job();
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

// Why the polish takes the passes it takes: the landscape between the SGD end point and w*
// (demo settings, 512 Fashion images). At w* the exact Hessian of the mean MAP objective,
// H_L/n + μI, from 150 fully reorthogonalised Lanczos steps: its least Ritz values against the
// prior's μ (the residual term of the cross-entropy Hessian can take curvature below μ, which
// neither the Gauss–Newton model nor a preconditioner built from G sees), and how far SGD left
// the weights from w* (‖w_sgd − w*‖/‖w*‖, and n·(f(w_sgd) − f(w*)) in nats).
void BM_PolishLandscape(benchmark::State& state) {
  const JobConfig job = demo_polish_job();
  ModelShape shape = model_shape(job, tasks());
  const Task& task = tasks().tasks[0];
  const double n = double(task.size()), mu = job.complexity.beta / (job.complexity.lambda2 * n);
  double lo = 0, hi = 0, below = 0, dist = 0, gap = 0;
  for (auto _ : state) {
    const TrainOutcome star = train_map(MPI_COMM_WORLD, shape, task, job, 1);
    JobConfig sgd_only = job;
    sgd_only.train.polish_iters = 0;
    const TrainOutcome sgd = train_map(MPI_COMM_WORLD, shape, task, sgd_only, 1);
    const auto nf = [&](const TrainOutcome& o) { return o.loss + 0.5 * o.weight_norm2 / job.complexity.lambda2; };
    gap = nf(sgd) - nf(star);
    double d2 = 0, w2 = 0;
    for (size_t i = 0; i < star.weights.size(); ++i) {
      d2 += (sgd.weights[i] - star.weights[i]) * (sgd.weights[i] - star.weights[i]);
      w2 += star.weights[i] * star.weights[i];
    }
    dist = std::sqrt(d2 / w2);
    TorchCurvature h(shape, star.weights, task, 0, 1, Curvature::hessian, 512);
    const size_t d = size_t(h.dim());
    constexpr int kSteps = 150;
    std::vector<std::vector<double>> q(1, std::vector<double>(d));
    for (size_t i = 0; i < d; ++i) q[0][i] = rademacher(9, 0, i) / std::sqrt(double(d));
    std::vector<double> alpha, beta, w(d);
    for (int j = 0; j < kSteps; ++j) {
      h.apply_shard(q.back().data(), w.data());
      for (size_t i = 0; i < d; ++i) w[i] = w[i] / n + mu * q.back()[i];
      for (int pass = 0; pass < 2; ++pass)
        for (const auto& b : q) {
          double c = 0;
          for (size_t i = 0; i < d; ++i) c += b[i] * w[i];
          if (pass == 0 && &b == &q.back()) alpha.push_back(c);
          for (size_t i = 0; i < d; ++i) w[i] -= c * b[i];
        }
      double nb = 0;
      for (double x : w) nb += x * x;
      beta.push_back(std::sqrt(nb));
      for (double& x : w) x /= beta.back();
      q.push_back(w);
    }
    beta.pop_back();
    std::vector<double> first;
    tridiagonal_eigen(alpha, beta, first);  // alpha: the Ritz values
    std::sort(alpha.begin(), alpha.end());
    lo = alpha.front();
    hi = alpha.back();
    below = double(std::count_if(alpha.begin(), alpha.end(), [&](double t) { return t < mu; }));
  }
  state.counters["mu"] = mu;
  state.counters["hessian_min"] = lo;
  state.counters["hessian_max"] = hi;
  state.counters["ritz_below_mu"] = below;
  state.counters["sgd_distance_rel"] = dist;
  state.counters["sgd_gap_nats"] = gap;
}

// A longer SGD phase against the polish it leaves (the demo's settings otherwise): `epochs` of
// SGD at constant lr (schedule 0) or cosine-annealed to zero (1), then the default polish to
// grad_tol, for three initialisations; their sums of SGD and polish seconds and of polish passes,
// and the mean gap n·(f(w_sgd) − f(w*)) in nats at hand-over (from a second, SGD-only run).
void BM_SgdEndgame(benchmark::State& state) {
  JobConfig job = demo_polish_job();
  job.train.epochs = state.range(0);
  job.train.schedule = state.range(1) ? Schedule::cosine : Schedule::constant;
  ModelShape shape = model_shape(job, tasks());
  const Task& task = tasks().tasks[0];
  double sgd_s = 0, polish_s = 0, passes = 0, gap = 0, ok = 0;
  constexpr int kSeeds = 3;
  for (auto _ : state)
    for (uint64_t seed = 1; seed <= kSeeds; ++seed) {
      const TrainOutcome star = train_map(MPI_COMM_WORLD, shape, task, job, seed);
      JobConfig sgd_only = job;
      sgd_only.train.polish_iters = 0;
      const TrainOutcome sgd = train_map(MPI_COMM_WORLD, shape, task, sgd_only, seed);
      const auto nf = [&](const TrainOutcome& o) { return o.loss + 0.5 * o.weight_norm2 / job.complexity.lambda2; };
      sgd_s += star.sgd_seconds;
      polish_s += star.polish_seconds;
      passes += double(star.polish_passes);
      gap += (nf(sgd) - nf(star)) / kSeeds;
      ok += star.status == "ok";
    }
  state.counters["sgd_s"] = sgd_s;
  state.counters["polish_s"] = polish_s;
  state.counters["polish_passes"] = passes;
  state.counters["gap_nats"] = gap;
  state.counters["converged"] = ok;
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
    benchmark::RegisterBenchmark("BM_SgdEndgame", BM_SgdEndgame)
        ->ArgNames({"epochs", "cosine"})
        ->Args({30, 0})
        ->Args({100, 1})
        ->Args({300, 1})
        ->Args({1000, 1})
        ->Iterations(1)
        ->Unit(benchmark::kSecond)
        ->UseRealTime();
    benchmark::RegisterBenchmark("BM_PolishLandscape", BM_PolishLandscape)->Iterations(1)->Unit(benchmark::kSecond)->UseRealTime();
  });
}
