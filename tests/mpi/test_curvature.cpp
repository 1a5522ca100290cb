// Curvature operator, SLEPc spectrum and SLQ log-det against dense references, and the same
// numbers on 1 rank (MPI_COMM_SELF) and on every rank of the world (the _np_2 run).
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>

#include <unistd.h>

#include "../support/device.hpp"
#include "../support/real_data.hpp"
#include "taskreach/complexity.hpp"
#include "taskreach/curvature.hpp"
#include "taskreach/data.hpp"
#include "taskreach/train.hpp"

using namespace taskreach;

namespace {

int world_rank() { int r; MPI_Comm_rank(MPI_COMM_WORLD, &r); return r; }
int world_size() { int s; MPI_Comm_size(MPI_COMM_WORLD, &s); return s; }

// 150 real Fashion-MNIST images average-pooled to 4×4 (d stays small enough for a dense
// eigensolve); head of 12 rows of which 10 are the task's (rows 10, 11 masked).
Task small_fashion_task() {
  RawImages raw = read_idx_pair("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz",
                                "/usr/share/datasets/fashion-mnist/train-labels-idx1-ubyte.gz");
  Task t;
  t.name = "fashion4x4";
  t.dim = 16;
  const int64_t n = 150;
  for (int64_t i = 0; i < n; ++i) {
    for (int by = 0; by < 4; ++by)
      for (int bx = 0; bx < 4; ++bx) {
        double s = 0;
        for (int y = 0; y < 7; ++y)
          for (int x = 0; x < 7; ++x) s += raw.pixels[size_t(i * 784 + (by * 7 + y) * 28 + bx * 7 + x)];
        t.x.push_back(static_cast<float>(s / 49.0 / 255.0 * 3.0 - 1.0));
      }
    t.y.push_back(raw.labels[size_t(i)]);
    t.keys.push_back({0, i, 0, raw.labels[size_t(i)]});
  }
  for (int64_t r = 0; r < 10; ++r) t.active_rows.push_back(r);
  return t;
}

JobConfig small_job() {
  JobConfig job;
  job.train.epochs = 4;
  job.train.batch_size = 32;
  job.train.lr = 0.05;
  job.train.dtype = DType::float64;
  job.train.polish_iters = 50;
  job.complexity.beta = 1.0;
  job.complexity.lambda2 = 1.0;
  return job;
}

// The scikit-learn digits: softmax regression on 64 features and 10 classes has d = 650,
// small enough for a dense eigensolve.
Task sklearn_digits_task() {
  JobConfig job;
  job.path = "digits";
  return taskreach::testing::one_task_of(job, taskreach::testing::sklearn_digits_source()).tasks[0];
}

// A fixed float64 checkpoint: trained on MPI_COMM_SELF, hence identical on every rank.
struct Fixture {
  Task task;
  ModelShape shape;
  std::vector<double> w;
  Fixture(Arch arch, std::vector<int64_t> hidden, Task t = small_fashion_task(), int64_t side = 4,
          int64_t k_tot = 12)
      : task(std::move(t)) {
    shape.arch = arch;
    shape.channels = 1;
    shape.height = side;
    shape.width = side;
    shape.hidden = std::move(hidden);
    shape.k_tot = k_tot;
    w = train_map(MPI_COMM_SELF, shape, task, small_job(), 11).weights;
  }
  // Dense d×d matrix of the operator at w (or at `at`), column by column, on one rank.
  torch::Tensor dense(Curvature kind, const std::vector<double>* at = nullptr) const {
    TorchCurvature op(shape, at ? *at : w, task, 0, 1, kind, 64);
    const int64_t d = op.dim();
    auto G = torch::zeros({d, d}, torch::kDouble);
    std::vector<double> e(static_cast<size_t>(d), 0.0), col(static_cast<size_t>(d));
    for (int64_t k = 0; k < d; ++k) {
      e[size_t(k)] = 1.0;
      op.apply_shard(e.data(), col.data());
      e[size_t(k)] = 0.0;
      G.select(1, k).copy_(torch::from_blob(col.data(), {d}, torch::kDouble));
    }
    return G;
  }
};

double max_abs(const std::vector<double>& a) {
  double m = 0;
  for (double x : a) m = std::max(m, std::fabs(x));
  return m;
}

class DeviceEnvironment : public ::testing::Environment {
  void SetUp() override { taskreach::testing::use_test_device(); }
};
const auto* const kDevice = ::testing::AddGlobalTestEnvironment(new DeviceEnvironment);

}  // namespace

TEST(Curvature, ProductsAgreeOnOneAndAllRanks) {
  Fixture f(Arch::mlp, {6});
  TorchCurvature self_op(f.shape, f.w, f.task, 0, 1, Curvature::ggn, 64);
  TorchCurvature world_op(f.shape, f.w, f.task, world_rank(), world_size(), Curvature::ggn, 64);
  std::vector<double> v(size_t(self_op.dim()));
  for (size_t i = 0; i < v.size(); ++i) v[i] = rademacher(5, 0, i) * (1.0 + 0.01 * double(i % 7));
  auto y1 = apply_distributed(MPI_COMM_SELF, self_op, v);
  auto y2 = apply_distributed(MPI_COMM_WORLD, world_op, v);
  const double scale = max_abs(y1);
  ASSERT_GT(scale, 0.0);
  for (size_t i = 0; i < v.size(); ++i) EXPECT_NEAR(y1[i], y2[i], 1e-10 * scale) << "entry " << i;
}

// Graphs held for part of the shard and rebuilt per product for the rest (bounded memory, by a
// sample count or by bytes) give the products of graphs held for all of it, for both
// curvatures, on this rank's shard.
TEST(Curvature, RebuiltGraphsGiveTheSameProducts) {
  Fixture f(Arch::mlp, {6});
  for (Curvature kind : {Curvature::ggn, Curvature::hessian}) {
    TorchCurvature held(f.shape, f.w, f.task, world_rank(), world_size(), kind, 64);
    TorchCurvature partly(f.shape, f.w, f.task, world_rank(), world_size(), kind, 64, {}, 0, 0, /*keep_graphs=*/64);
    TorchCurvature none(f.shape, f.w, f.task, world_rank(), world_size(), kind, 64, {}, 0, 0, /*keep_graphs=*/0);
    EXPECT_EQ(none.kept_samples(), 0);
    EXPECT_GT(partly.kept_samples(), 0);
    EXPECT_LE(partly.kept_samples(), 64);
    EXPECT_LT(partly.kept_samples(), held.kept_samples());
    // A byte budget below what every graph takes (measured as they were built) holds fewer.
#ifndef __SANITIZE_ADDRESS__
    ASSERT_GT(held.kept_bytes(), 0.0);
#endif  // under ASan the heap is its allocator's, not glibc's: unmeasured, and no budget binds
    TorchCurvature capped(f.shape, f.w, f.task, world_rank(), world_size(), kind, 64, {}, 0, 0, -1, false,
                          held.kept_bytes() / 2);
    if (held.kept_bytes() > 0.0) {
      EXPECT_LT(capped.kept_samples(), held.kept_samples());
      EXPECT_LE(capped.kept_bytes(), held.kept_bytes() / 2);
    }
    if (world_rank() == 0)
      std::printf("%s graphs: %d samples held in %.0f bytes; budget %.0f: %d held\n", to_string(kind),
                  int(held.kept_samples()), held.kept_bytes(), held.kept_bytes() / 2, int(capped.kept_samples()));
    std::vector<double> v(size_t(held.dim()));
    for (size_t i = 0; i < v.size(); ++i) v[i] = rademacher(6, 1, i);
    std::vector<double> a(v.size()), b(v.size()), c(v.size()), e(v.size());
    for (int rep = 0; rep < 2; ++rep) {  // a rebuilt graph is released and built again
      held.apply_shard(v.data(), a.data());
      partly.apply_shard(v.data(), b.data());
      none.apply_shard(v.data(), c.data());
      capped.apply_shard(v.data(), e.data());
      const double scale = max_abs(a);
      ASSERT_GT(scale, 0.0);
      for (size_t i = 0; i < v.size(); ++i) {
        EXPECT_NEAR(a[i], b[i], 1e-13 * scale) << "entry " << i;
        EXPECT_NEAR(a[i], c[i], 1e-13 * scale) << "entry " << i;
        EXPECT_NEAR(a[i], e[i], 1e-13 * scale) << "entry " << i;
      }
    }
  }
}

TEST(Curvature, SubsampleIsTheScaledSumOverItsSamples) {
  Fixture f(Arch::mlp, {6});
  const auto chosen = curvature_subsample(f.task.size(), 50, 9);
  ASSERT_EQ(chosen.size(), 50u);
  Task sub = f.task;
  sub.x.clear();
  sub.y.clear();
  for (int64_t i : chosen) {
    sub.x.insert(sub.x.end(), f.task.x.begin() + i * 16, f.task.x.begin() + (i + 1) * 16);
    sub.y.push_back(f.task.y[size_t(i)]);
  }
  TorchCurvature full_sub(f.shape, f.w, f.task, world_rank(), world_size(), Curvature::ggn, 64, {}, 50, 9);
  TorchCurvature explicit_sub(f.shape, f.w, sub, 0, 1, Curvature::ggn, 64);
  std::vector<double> v(size_t(explicit_sub.dim()));
  for (size_t i = 0; i < v.size(); ++i) v[i] = rademacher(2, 0, i);
  auto a = apply_distributed(MPI_COMM_WORLD, full_sub, v);
  auto b = apply_distributed(MPI_COMM_SELF, explicit_sub, v);
  const double scale = max_abs(b);
  for (size_t i = 0; i < v.size(); ++i) EXPECT_NEAR(a[i], 3.0 * b[i], 1e-10 * 3.0 * scale);  // n/n_sub = 150/50
}

TEST(Curvature, GGNIsSymmetricPSDAndZeroOnMaskedRows) {
  Fixture f(Arch::mlp, {6});
  auto G = f.dense(Curvature::ggn);
  const double scale = G.abs().max().item<double>();
  EXPECT_LE((G - G.t()).abs().max().item<double>(), 1e-12 * scale);
  auto ev = torch::linalg::eigvalsh(G, "L");
  EXPECT_GE(ev.min().item<double>(), -1e-10 * scale);
  // Head rows 10 and 11 are outside the task's label space: no curvature there.
  const int64_t d = G.size(0), hidden = 6;
  const int64_t head_w0 = d - (12 * hidden + 12);
  for (int64_t r : {10, 11}) {
    for (int64_t l = 0; l < hidden; ++l) EXPECT_EQ(G[head_w0 + r * hidden + l].abs().max().item<double>(), 0.0);
    EXPECT_EQ(G[d - 12 + r].abs().max().item<double>(), 0.0);
  }
}

TEST(Curvature, HessianAndGaussNewtonSpectraAtAPolishedOptimum) {
  // At a minimum the Hessian is G plus the residual term Σ (p − y)·∇²f. Both top-5 spectra,
  // distributed over the world, against dense eigensolves of the matrices formed column by
  // column at the same weights (d = 186); the Hessian's clipped log-det is finite.
  Fixture f(Arch::mlp, {6});
  JobConfig job = small_job();
  job.train.polish_iters = 3000;
  job.train.grad_tol = 1e-7;
  auto polished = train_map(MPI_COMM_SELF, f.shape, f.task, job, 11);
  SpectrumOptions so;
  so.top_k = 5;
  so.probes = 8;
  so.lanczos_steps = 30;
  TorchCurvature g(f.shape, polished.weights, f.task, world_rank(), world_size(), Curvature::ggn, 64);
  TorchCurvature h(f.shape, polished.weights, f.task, world_rank(), world_size(), Curvature::hessian, 64);
  auto sg = estimate_spectrum(MPI_COMM_WORLD, g, so);
  auto sh = estimate_spectrum(MPI_COMM_WORLD, h, so);
  ASSERT_EQ(sg.converged, 5);
  ASSERT_EQ(sh.converged, 5);
  if (world_rank() == 0) {
    std::printf("polish grad norm %.2e; top-5 eigenvalues  ggn:", polished.grad_norm);
    for (double l : sg.eigenvalues) std::printf(" %.4f", l);
    std::printf("  hessian:");
    for (double l : sh.eigenvalues) std::printf(" %.4f", l);
    std::printf("\n");
  }
  EXPECT_TRUE(std::isfinite(sh.logdet));
  const auto H = f.dense(Curvature::hessian, &polished.weights), G = f.dense(Curvature::ggn, &polished.weights);
  const double h_scale = H.abs().max().item<double>();
  EXPECT_LE((H - H.t()).abs().max().item<double>(), 1e-10 * h_scale);
  const auto h_dense = torch::linalg::eigvalsh(H, "L").flip(0), g_dense = torch::linalg::eigvalsh(G, "L").flip(0);
  const double h_max = h_dense[0].item<double>(), g_max = g_dense[0].item<double>();
  double h_err = 0, g_err = 0;
  for (int k = 0; k < 5; ++k) {
    const double h_ref = h_dense[k].item<double>(), g_ref = g_dense[k].item<double>();
    EXPECT_NEAR(sh.eigenvalues[size_t(k)], h_ref, 1e-8 * h_max) << "Hessian pair " << k;
    EXPECT_NEAR(sg.eigenvalues[size_t(k)], g_ref, 1e-8 * g_max) << "Gauss-Newton pair " << k;
    EXPECT_LE(sh.residuals[size_t(k)], 1e-8 * h_max);
    h_err = std::max(h_err, std::fabs(sh.eigenvalues[size_t(k)] - h_ref) / h_max);
    g_err = std::max(g_err, std::fabs(sg.eigenvalues[size_t(k)] - g_ref) / g_max);
  }
  // The residual term is there: the Hessian is not the Gauss–Newton matrix.
  EXPECT_GT((H - G).abs().max().item<double>(), 1e-6 * h_scale);
  if (world_rank() == 0)
    std::printf("top-5 against dense: max relative error hessian %.2e, ggn %.2e; min hessian eigenvalue %.4f\n", h_err,
                g_err, h_dense[-1].item<double>());
}

// Softmax regression: G = Σ_i (diag p_i − p_i p_iᵀ) ⊗ x̃_i x̃_iᵀ with x̃ = [x; 1], in the
// parameter layout [W row-major, b]; rows outside `active` are masked.
torch::Tensor explicit_linear_ggn(const Fixture& f, int64_t active) {
  const int64_t K = f.shape.k_tot, in = f.shape.in_dim();
  auto X = torch::from_blob(const_cast<float*>(f.task.x.data()), {f.task.size(), in}, torch::kFloat).to(torch::kDouble);
  auto W = torch::from_blob(const_cast<double*>(f.w.data()), {K, in}, torch::kDouble);
  auto b = torch::from_blob(const_cast<double*>(f.w.data()) + K * in, {K}, torch::kDouble);
  auto mask = torch::zeros({K}, torch::kBool);
  mask.slice(0, 0, active).fill_(true);
  auto P = torch::softmax((X.matmul(W.t()) + b).masked_fill(mask.logical_not(), -INFINITY), 1);
  auto Xa = torch::cat({X, torch::ones({X.size(0), 1}, torch::kDouble)}, 1);
  auto Gk = torch::zeros({K * (in + 1), K * (in + 1)}, torch::kDouble);
  for (int64_t i = 0; i < X.size(0); ++i) {
    auto p = P[i];
    Gk += torch::kron(torch::diag(p) - torch::outer(p, p), torch::outer(Xa[i], Xa[i]));
  }
  std::vector<int64_t> perm;
  for (int64_t k = 0; k < K; ++k)
    for (int64_t l = 0; l < in; ++l) perm.push_back(k * (in + 1) + l);
  for (int64_t k = 0; k < K; ++k) perm.push_back(k * (in + 1) + in);
  auto idx = torch::tensor(perm, torch::kLong);
  return Gk.index_select(0, idx).index_select(1, idx);
}

TEST(Curvature, LinearModelMatchesExplicitGaussNewtonAndHessian) {
  // The Gauss–Newton matrix and the Hessian of softmax regression are the same matrix.
  Fixture f(Arch::linear, {});
  auto G_ref = explicit_linear_ggn(f, 10);
  ASSERT_EQ(G_ref.size(0), 12 * 16 + 12);
  const double scale = G_ref.abs().max().item<double>();
  EXPECT_LE((f.dense(Curvature::ggn) - G_ref).abs().max().item<double>(), 1e-10 * scale);
  EXPECT_LE((f.dense(Curvature::hessian) - G_ref).abs().max().item<double>(), 1e-10 * scale);
}

TEST(Curvature, LinearOnSklearnDigitsAgainstDenseReference) {
  // d = 650: products against the analytic matrix, SLEPc's top 10 against a dense eigensolve,
  // and the deflated SLQ log-det against the exact one — on 1 rank and on the world.
  Fixture f(Arch::linear, {}, sklearn_digits_task(), 8, 10);
  auto G_ref = explicit_linear_ggn(f, 10);
  TorchCurvature world_op(f.shape, f.w, f.task, world_rank(), world_size(), Curvature::ggn, 256);
  std::vector<double> v(size_t(world_op.dim()));
  for (size_t i = 0; i < v.size(); ++i) v[i] = rademacher(4, 1, i);
  auto y = apply_distributed(MPI_COMM_WORLD, world_op, v);
  auto y_ref = G_ref.matmul(torch::from_blob(v.data(), {int64_t(v.size())}, torch::kDouble));
  const double y_scale = y_ref.abs().max().item<double>();
  for (size_t i = 0; i < v.size(); ++i) EXPECT_NEAR(y[i], y_ref[int64_t(i)].item<double>(), 1e-10 * y_scale);
  auto ev = std::get<0>(torch::linalg::eigh(G_ref, "L"));
  auto top = ev.flip(0);
  SpectrumOptions so;
  so.top_k = 200;
  so.probes = 32;
  so.lanczos_steps = 40;
  so.seed = 5;
  TorchCurvature self_op(f.shape, f.w, f.task, 0, 1, Curvature::ggn, 256);
  std::vector<CurvatureOperator*> ops{&self_op};
  if (world_size() > 1) ops.push_back(&world_op);  // a world of one rank is the same solve again
  for (auto* op : ops) {
    auto s = estimate_spectrum(op == &self_op ? MPI_COMM_SELF : MPI_COMM_WORLD, *op, so);
    ASSERT_EQ(s.converged, 200);
    for (int k = 0; k < 10; ++k) EXPECT_NEAR(s.eigenvalues[size_t(k)], top[k].item<double>(), 1e-8 * top[k].item<double>());
    const double exact = torch::log1p(ev.clamp_min(0.0)).sum().item<double>();
    EXPECT_NEAR(s.logdet, exact, 3.0 * s.logdet_stderr);
    EXPECT_NEAR(s.logdet, exact, 0.01 * exact);
    if (world_rank() == 0)
      std::printf("digits linear d = 650: log det exact %.4f, SLQ %.4f +- %.4f (%d products)\n", exact, s.logdet,
                  s.logdet_stderr, int(s.products));
  }
}

TEST(Curvature, SpectrumMatchesDenseEigensolveAndRanks) {
  Fixture f(Arch::mlp, {6});
  auto ev = std::get<0>(torch::linalg::eigh(f.dense(Curvature::ggn), "L"));
  auto dense = ev.flip(0);  // descending
  SpectrumOptions so;
  // Deflating the top 100 of d = 186 leaves a flat remainder: 1% is then within reach of 32 probes.
  so.top_k = 100;
  so.probes = 32;
  so.lanczos_steps = 40;
  so.c = 1.0;
  so.c_alt = 2.0;
  so.seed = 3;
  TorchCurvature self_op(f.shape, f.w, f.task, 0, 1, Curvature::ggn, 64);
  TorchCurvature world_op(f.shape, f.w, f.task, world_rank(), world_size(), Curvature::ggn, 64);
  auto s1 = estimate_spectrum(MPI_COMM_SELF, self_op, so);
  auto s2 = estimate_spectrum(MPI_COMM_WORLD, world_op, so);
  ASSERT_EQ(s1.converged, 100);
  ASSERT_EQ(s2.converged, 100);
  const double lmax = dense[0].item<double>();
  for (int k = 0; k < 6; ++k) {
    const double ref = dense[k].item<double>();
    EXPECT_NEAR(s1.eigenvalues[size_t(k)], ref, 1e-8 * std::fabs(ref)) << "pair " << k;
    EXPECT_NEAR(s2.eigenvalues[size_t(k)], s1.eigenvalues[size_t(k)], 1e-8 * std::fabs(ref)) << "pair " << k;
    EXPECT_LE(s1.residuals[size_t(k)], 1e-8 * lmax);
    EXPECT_LE(s2.residuals[size_t(k)], 1e-8 * lmax);
  }
  // The same probes on any layout: the per-probe SLQ values agree too.
  ASSERT_EQ(s1.probe_values.size(), s2.probe_values.size());
  for (size_t p = 0; p < s1.probe_values.size(); ++p)
    EXPECT_NEAR(s1.probe_values[p], s2.probe_values[p], 1e-6 * (1.0 + std::fabs(s1.probe_values[p])));
  // Deflated SLQ against the exact log det(I + cG), at both c, and Hutchinson against tr G:
  // within 3 standard errors and within 1%.
  const double exact = torch::log1p(ev.clamp_min(0.0)).sum().item<double>();
  const double exact2 = torch::log1p(2.0 * ev.clamp_min(0.0)).sum().item<double>();
  const double trace = ev.sum().item<double>();
  for (const auto* s : {&s1, &s2}) {
    EXPECT_GT(s->logdet_stderr, 0.0);
    EXPECT_NEAR(s->logdet, exact, 3.0 * s->logdet_stderr);
    EXPECT_NEAR(s->logdet, exact, 0.01 * exact);
    EXPECT_NEAR(s->logdet_alt, exact2, 3.0 * s->logdet_alt_stderr);
    EXPECT_NEAR(s->logdet_alt, exact2, 0.01 * exact2);
    EXPECT_NEAR(s->trace, trace, 3.0 * s->trace_stderr);
    EXPECT_LT(s->quadrature_change, s->logdet_stderr / 3.0);
    // The spectral density is a probability measure on [0, λ_max].
    double total = 0;
    for (size_t k = 0; k < s->esd_weights.size(); ++k) {
      total += s->esd_weights[k];
      EXPECT_GE(s->esd_nodes[k], -1e-8 * lmax);
      EXPECT_LE(s->esd_nodes[k], lmax * (1 + 1e-8));
    }
    EXPECT_NEAR(total, 1.0, 1e-12);
  }
  std::printf("logdet: exact %.6f, SLQ %.6f +- %.6f (c = 1); exact %.6f, SLQ %.6f +- %.6f (c = 2); "
              "trace: exact %.4f, Hutchinson %.4f +- %.4f\n",
              exact, s1.logdet, s1.logdet_stderr, exact2, s1.logdet_alt, s1.logdet_alt_stderr, trace, s1.trace,
              s1.trace_stderr);
}

// A block product is the single products, bitwise, for both curvatures, with graphs held and
// rebuilt (where one pass serves every vector of the block).
TEST(Curvature, BlockProductsAreTheSingleProductsBitwise) {
  Fixture f(Arch::mlp, {6});
  for (Curvature kind : {Curvature::ggn, Curvature::hessian})
    for (int64_t keep : {int64_t(-1), int64_t(0)}) {
      TorchCurvature op(f.shape, f.w, f.task, world_rank(), world_size(), kind, 64, {}, 0, 0, keep);
      const size_t d = size_t(op.dim());
      constexpr int64_t kCount = 3;
      std::vector<double> v(kCount * d), block(kCount * d), one(d);
      for (size_t i = 0; i < v.size(); ++i) v[i] = rademacher(8, i / d, i % d) * (1.0 + 0.1 * double(i / d));
      op.apply_shard_block(v.data(), block.data(), kCount);
      for (int64_t j = 0; j < kCount; ++j) {
        op.apply_shard(v.data() + j * int64_t(d), one.data());
        for (size_t i = 0; i < d; ++i) ASSERT_EQ(block[size_t(j) * d + i], one[i]) << "vector " << j << " entry " << i;
      }
    }
}

// Probes advanced in blocks give the probes advanced one by one, bitwise, in one block product
// per Lanczos step instead of one product per probe and step.
TEST(Curvature, ProbeBlocksChangePassesNotValues) {
  Fixture f(Arch::mlp, {6});
  TorchCurvature op(f.shape, f.w, f.task, world_rank(), world_size(), Curvature::ggn, 64);
  SpectrumOptions so;
  so.top_k = 10;
  so.probes = 8;
  so.lanczos_steps = 20;
  so.seed = 4;
  so.probe_block = 1;
  const auto one = estimate_spectrum(MPI_COMM_WORLD, op, so);
  so.probe_block = 3;
  const auto three = estimate_spectrum(MPI_COMM_WORLD, op, so);
  so.probe_block = 0;
  const auto all = estimate_spectrum(MPI_COMM_WORLD, op, so);
  EXPECT_EQ(one.probe_block, 1);
  EXPECT_EQ(three.probe_block, 3);
  EXPECT_EQ(all.probe_block, 8);
  for (const auto* s : {&three, &all}) {
    ASSERT_EQ(s->probe_values.size(), one.probe_values.size());
    for (size_t p = 0; p < one.probe_values.size(); ++p) {
      EXPECT_EQ(s->probe_values[p], one.probe_values[p]) << "probe " << p;
      EXPECT_EQ(s->probe_values_half[p], one.probe_values_half[p]) << "probe " << p;
      EXPECT_EQ(s->trace_probes[p], one.trace_probes[p]) << "probe " << p;
    }
    EXPECT_EQ(s->logdet, one.logdet);
    EXPECT_EQ(s->products, one.products);
  }
  // The SLQ part: 8 probes × 20 steps = 160 single products, or 20 block products (7 blocks of
  // 3 probes, the last of 2 → 3 × 20 passes); the top-k solve is the same in all three.
  const int64_t topk_passes = one.passes - 8 * 20;
  EXPECT_GT(topk_passes, 0);
  EXPECT_EQ(three.passes, topk_passes + 3 * 20);
  EXPECT_EQ(all.passes, topk_passes + 20);
  if (world_rank() == 0)
    std::printf("passes: %d one by one, %d in blocks of 3, %d in one block (%d products)\n", int(one.passes),
                int(three.passes), int(all.passes), int(one.products));
}

// The float32 operator (model and graphs in float32, float64 Krylov vectors) against float64 on
// the dense-reference models: log det within 0.1%, same probes.
TEST(Curvature, Float32OperatorAgreesWithFloat64InLogDet) {
  Fixture mlp(Arch::mlp, {6});
  Fixture linear(Arch::linear, {}, sklearn_digits_task(), 8, 10);
  for (const Fixture* f : {&mlp, &linear}) {
    TorchCurvature f64(f->shape, f->w, f->task, world_rank(), world_size(), Curvature::ggn, 64);
    TorchCurvature f32(f->shape, f->w, f->task, world_rank(), world_size(), Curvature::ggn, 64, {}, 0, 0, -1, true);
    SpectrumOptions so;
    so.top_k = 20;
    so.probes = 16;
    so.lanczos_steps = 30;
    so.seed = 6;
    const auto a = estimate_spectrum(MPI_COMM_WORLD, f64, so);
    const auto b = estimate_spectrum(MPI_COMM_WORLD, f32, so);
    EXPECT_NEAR(b.logdet, a.logdet, 1e-3 * std::fabs(a.logdet));
    EXPECT_NEAR(b.eigenvalues[0], a.eigenvalues[0], 1e-4 * a.eigenvalues[0]);
    if (world_rank() == 0)
      std::printf("float32 operator (d = %d): log det %.6f against %.6f in float64 (relative %.2e)\n",
                  int(f64.dim()), b.logdet, a.logdet, std::fabs(b.logdet - a.logdet) / std::fabs(a.logdet));
  }
}

namespace {
// diag(λ) as a sum over the ranks' shares (each rank λ/size), no torch.
class DiagonalOperator final : public CurvatureOperator {
 public:
  explicit DiagonalOperator(std::vector<double> lambda) : l_(std::move(lambda)) {}
  int64_t dim() const override { return int64_t(l_.size()); }
  void apply_shard(const double* v, double* out) override {
    const double share = 1.0 / double(world_size());
    for (size_t i = 0; i < l_.size(); ++i) out[i] = share * l_[i] * v[i];
  }

 private:
  std::vector<double> l_;
};

// d eigenvalues: k outliers of 1e6·(k + 1 − i), then 1e5 falling geometrically to 1e-4: after
// deflating the k outliers, c·λ_{k+1} = 1e5 at c = 1.
std::vector<double> sharp_spectrum(int64_t d, int64_t k) {
  std::vector<double> lambda(static_cast<size_t>(d));
  for (int64_t i = 0; i < d; ++i)
    lambda[size_t(i)] = i < k ? 1e6 * double(k - i + 1) : 1e5 * std::pow(1e-9, double(i - k) / double(d - k - 1));
  return lambda;
}
}  // namespace

// A sharp spectrum: c·λ_{k+1} = 10⁵ after deflation. For a diagonal operator Rademacher probes
// are exact (zᵀf(A)z = Σ f(λ_i)), so the only error is the Gauss rule's. With m = 30 it
// overestimates the log det by several per cent; m chosen from λ_k (⌈√(1 + cλ_k)⌉) brings it
// within 0.1%, and the m/2 check flags the fixed m.
TEST(Curvature, LanczosStepsFollowTheDeflatedSpectrum) {
  const int64_t d = 600, k = 10;
  const std::vector<double> lambda = sharp_spectrum(d, k);
  DiagonalOperator op(lambda);
  double exact = 0;
  for (double l : lambda) exact += std::log1p(l);
  SpectrumOptions so;
  so.top_k = k;
  so.probes = 4;
  so.lanczos_steps = 30;
  so.seed = 2;
  const auto fixed = estimate_spectrum(MPI_COMM_WORLD, op, so);
  so.lanczos_max = 400;
  const auto chosen = estimate_spectrum(MPI_COMM_WORLD, op, so);
  ASSERT_EQ(chosen.converged, k);
  EXPECT_EQ(fixed.lanczos_steps, 30);
  EXPECT_NEAR(chosen.lambda_next, 1e5, 1e-6 * 1e5);  // the extra pair: λ_{k+1}, not the bound λ_k
  EXPECT_EQ(chosen.lanczos_steps, int64_t(std::ceil(std::sqrt(1.0 + chosen.lambda_next))));
  EXPECT_GT(fixed.logdet - exact, 0.02 * exact);          // the fixed rule's bias, upwards
  EXPECT_LT(std::fabs(chosen.logdet - exact), 1e-3 * exact);
  EXPECT_GT(fixed.quadrature_change, 10 * chosen.quadrature_change);
  if (world_rank() == 0)
    std::printf("c·λ_{k+1} = 1e5: log det exact %.2f; m = 30: %+.2f%%; m = %d: %+.3f%%\n", exact,
                100 * (fixed.logdet - exact) / exact, int(chosen.lanczos_steps), 100 * (chosen.logdet - exact) / exact);
}

// The m/2 check acted on: where it fails, the Lanczos runs go on from m to 2m. The values are
// those of a run that took 2m steps from the start (bitwise: the same probes, the same
// deflation, the same arithmetic per probe), in m more block passes instead of a second top-k
// solve and 2m; with several probe blocks each block runs again from its start (the bases of
// the others were released), still without the second top-k solve.
TEST(Curvature, FailedQuadratureCheckContinuesTheSameRuns) {
  const int64_t d = 600, k = 10;
  const std::vector<double> lambda = sharp_spectrum(d, k);
  DiagonalOperator op(lambda);
  for (int64_t block : {0, 3}) {
    SpectrumOptions so;
    so.top_k = k;
    so.probes = 8;
    so.lanczos_steps = 30;
    so.seed = 3;
    so.probe_block = block;
    const auto plain = estimate_spectrum(MPI_COMM_WORLD, op, so);
    ASSERT_GT(plain.quadrature_change, plain.logdet_stderr / 3.0) << "the fixed m = 30 must fail the check here";
    EXPECT_FALSE(plain.lanczos_extended);
    so.quadrature_check = true;
    const auto extended = estimate_spectrum(MPI_COMM_WORLD, op, so);
    so.quadrature_check = false;
    so.lanczos_steps = 60;
    const auto fresh = estimate_spectrum(MPI_COMM_WORLD, op, so);
    EXPECT_TRUE(extended.lanczos_extended);
    EXPECT_EQ(extended.lanczos_steps, 60);
    ASSERT_EQ(extended.probe_values.size(), fresh.probe_values.size());
    for (size_t p = 0; p < fresh.probe_values.size(); ++p) {
      EXPECT_EQ(extended.probe_values[p], fresh.probe_values[p]) << "probe " << p;
      EXPECT_EQ(extended.probe_values_half[p], fresh.probe_values_half[p]) << "probe " << p;  // at m = 30
      EXPECT_EQ(extended.probe_values_half[p], plain.probe_values[p]) << "probe " << p;
    }
    EXPECT_EQ(extended.logdet, fresh.logdet);
    EXPECT_EQ(extended.quadrature_change, fresh.quadrature_change);
    EXPECT_EQ(extended.esd_nodes, fresh.esd_nodes);
    // Passes: one top-k solve, then 30 + 30 block passes per block (one block), or 30 and then
    // 60 (three blocks of at most 3 probes each, run again from the start).
    const int64_t topk = plain.passes - (block == 0 ? 30 : 3 * 30);
    EXPECT_EQ(fresh.passes, topk + (block == 0 ? 60 : 3 * 60));
    EXPECT_EQ(extended.passes, topk + (block == 0 ? 60 : 3 * 30 + 3 * 60));
    if (world_rank() == 0)
      std::printf("probe block %d: m 30 → 60 in %d passes (a fresh 60-step run: %d; a rerun with its top-k: %d)\n",
                  int(block), int(extended.passes), int(fresh.passes), int(plain.passes + fresh.passes));
  }
}

// A paired rerun (a paired R difference failed its m/2 check) measures the job's curvature
// again at the saved w* with at least m' Lanczos steps: its values are those of the same job
// measured with m' steps from the start, the training part is the base measurement's, and
// without the checkpoint the job is trained again to the same w* (bitwise).
TEST(Curvature, PairedRerunIsTheJobMeasuredAtItsSteps) {
  JobConfig job = small_job();
  job.seed = 9;
  job.complexity.top_k = 3;
  job.complexity.top_k_auto = false;
  job.complexity.probes = 8;
  job.complexity.lanczos_steps = 6;
  job.complexity.lanczos_max = 0;
  job.complexity.quadrature_check = true;
  ModelShape shape;
  shape.arch = Arch::mlp;
  shape.channels = 1;
  shape.height = shape.width = 4;
  shape.hidden = {8};
  shape.k_tot = 12;
  const PlannedJob pj{"single:fashion4x4", small_fashion_task()};
  // One path for every rank of the world (the checkpoint's writer is the group's first rank).
  long long id = getpid();
  MPI_Bcast(&id, 1, MPI_LONG_LONG, 0, MPI_COMM_WORLD);
  const std::string ckpt = "/tmp/taskreach_test_rerun_" + std::to_string(id) + ".pt";
  const Measurement base = measure(MPI_COMM_WORLD, job, shape, pj, 0, ckpt);
  ASSERT_FALSE(base.flags & job_flag::diverged);
  const int64_t steps = 2 * base.lanczos_steps + 4;
  const Measurement rerun = remeasure_curvature(MPI_COMM_WORLD, job, shape, pj, 0, base, ckpt, steps);
  const Measurement retrained = remeasure_curvature(MPI_COMM_WORLD, job, shape, pj, 0, base, "", steps);
  JobConfig fixed = job;
  fixed.complexity.lanczos_steps = steps;
  fixed.complexity.quadrature_check = false;  // no extension: m' steps and nothing more
  const Measurement fresh = measure(MPI_COMM_WORLD, fixed, shape, pj, 0, "");
  MPI_Barrier(MPI_COMM_WORLD);
  if (world_rank() == 0) {
    std::filesystem::remove(ckpt);
    std::filesystem::remove(ckpt + ".sgd");
  }
  EXPECT_EQ(rerun.lanczos_steps, steps);
  EXPECT_EQ(rerun.lanczos_extended, 0);
  for (const Measurement* m : {&rerun, &retrained}) {
    EXPECT_EQ(m->probes, fresh.probes);
    EXPECT_EQ(m->probes_half, fresh.probes_half);  // at m'/2
    EXPECT_EQ(m->logdet, fresh.logdet);
    EXPECT_EQ(m->C, fresh.C);
    EXPECT_EQ(m->eigenvalues, fresh.eigenvalues);
    EXPECT_EQ(m->loss, base.loss);
    EXPECT_EQ(m->weight_norm2, base.weight_norm2);
    EXPECT_EQ(m->polish_iters, base.polish_iters);
  }
  // Its own check, at m'/2 → m', decides its flag (the job's setting), not an extension.
  EXPECT_EQ(bool(rerun.flags & job_flag::quadrature_unconverged),
            formulas::quadrature_unconverged(rerun.quadrature_change, rerun.logdet_stderr));
  // From the checkpoint the rerun costs curvature only: the training's record is the base's.
  EXPECT_EQ(rerun.sgd_seconds, base.sgd_seconds);
  EXPECT_EQ(rerun.polish_seconds, base.polish_seconds);
  if (world_rank() == 0)
    std::printf("paired rerun: m %d -> %d, log det %.4f -> %.4f (change at m/2 %.3g, then %.3g); "
                "%.2f s from the checkpoint, %.2f s trained again\n",
                int(base.lanczos_steps), int(steps), base.logdet, rerun.logdet, base.quadrature_change,
                rerun.quadrature_change, rerun.curvature_seconds, retrained.seconds);
}
