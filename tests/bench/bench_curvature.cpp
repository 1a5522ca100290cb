// Cost of a curvature product relative to a gradient on the demo's model (MLP 784-32-20 on
// 500 real Fashion-MNIST images, float64, one thread), and of the batched quadrature kernel.
// Ratios are what matter: run them in one process on one machine.
#include <benchmark/benchmark.h>
#include <mpi.h>
#include <slepcsys.h>
#include <torch/torch.h>

#include <Kokkos_Core.hpp>

#include "taskreach/curvature.hpp"
#include "taskreach/data.hpp"
#include "taskreach/train.hpp"

using namespace taskreach;

namespace {

struct Setup {
  Task task;
  ModelShape shape{"mlp", 784, {32}, 20};
  std::vector<double> w;
  Setup() {
    RawImages raw = read_idx_pair("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz",
                                  "/usr/share/datasets/fashion-mnist/train-labels-idx1-ubyte.gz");
    const int64_t n = 500;
    task.dim = 784;
    for (int64_t i = 0; i < n * 784; ++i) task.x.push_back(float(raw.pixels[size_t(i)]) / 255.0f);
    task.y.assign(raw.labels.begin(), raw.labels.begin() + n);
    for (int64_t i = 0; i < n; ++i) task.keys.push_back({0, i, 0, task.y[size_t(i)]});
    for (int64_t r = 0; r < 10; ++r) task.active_rows.push_back(r);
    torch::manual_seed(3);
    auto wt = torch::randn({num_parameters(shape)}, torch::kDouble) * 0.05;
    w.assign(wt.data_ptr<double>(), wt.data_ptr<double>() + wt.numel());
  }
};

Setup& setup() {
  static Setup s;
  return s;
}

// Reference cost: one gradient of the summed loss over the same samples (forward + backward).
void BM_Gradient(benchmark::State& state) {
  auto& s = setup();
  torch::manual_seed(0);
  auto W1 = torch::randn({32, 784}, torch::kDouble).requires_grad_(true);
  auto b1 = torch::zeros({32}, torch::kDouble).requires_grad_(true);
  auto W2 = torch::randn({20, 32}, torch::kDouble).requires_grad_(true);
  auto b2 = torch::zeros({20}, torch::kDouble).requires_grad_(true);
  auto x = torch::from_blob(s.task.x.data(), {500, 784}, torch::kFloat).to(torch::kDouble);
  auto y = torch::from_blob(s.task.y.data(), {500}, torch::kLong).clone();
  for (auto _ : state) {
    auto logits = torch::tanh(x.matmul(W1.t()) + b1).matmul(W2.t()) + b2;
    auto loss = torch::nn::functional::cross_entropy(
        logits, y, torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kSum));
    auto g = torch::autograd::grad({loss}, {W1, b1, W2, b2});
    benchmark::DoNotOptimize(g[0].data_ptr());
  }
}
BENCHMARK(BM_Gradient)->Unit(benchmark::kMillisecond);

void BM_Product(benchmark::State& state, const std::string& kind) {
  auto& s = setup();
  TorchCurvature op(s.shape, s.w, s.task, 0, 1, kind, 500);
  std::vector<double> v(size_t(op.dim())), out(v.size());
  for (size_t i = 0; i < v.size(); ++i) v[i] = rademacher(1, 0, i);
  for (auto _ : state) {
    op.apply_shard(v.data(), out.data());
    benchmark::DoNotOptimize(out.data());
  }
  state.counters["d"] = double(op.dim());
}
BENCHMARK_CAPTURE(BM_Product, ggn, std::string("ggn"))->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_Product, hessian, std::string("hessian"))->Unit(benchmark::kMillisecond);

void BM_Quadrature(benchmark::State& state) {
  const int P = int(state.range(0)), m = 30;
  const auto np = static_cast<size_t>(P);
  std::vector<std::vector<double>> a(np, std::vector<double>(m)), b(np, std::vector<double>(m - 1));
  for (int p = 0; p < P; ++p)
    for (int i = 0; i < m; ++i) {
      a[size_t(p)][size_t(i)] = 2.0 + std::sin(p + i);
      if (i + 1 < m) b[size_t(p)][size_t(i)] = 0.5 + 0.1 * std::cos(p * i);
    }
  for (auto _ : state) benchmark::DoNotOptimize(lanczos_quadrature(a, b, 1.0).data());
  state.SetItemsProcessed(state.iterations() * P);
}
BENCHMARK(BM_Quadrature)->Arg(16)->Arg(256);

}  // namespace

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  SlepcInitialize(&argc, &argv, nullptr, nullptr);
  {
    Kokkos::ScopeGuard kokkos;
    set_threads(1);
    benchmark::Initialize(&argc, argv);
    benchmark::RunSpecifiedBenchmarks();
    benchmark::Shutdown();
  }
  SlepcFinalize();
  MPI_Finalize();
  return 0;
}
