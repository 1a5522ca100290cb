// Training on real data: the same optimum / trajectory on 1 rank (MPI_COMM_SELF) and on every
// rank of the world (the _np_2 run), every model reaching a loss threshold, divergence
// reported, convergence time, fine-tuning, checkpoints.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>

#include "../support/device.hpp"
#include "../support/real_data.hpp"
#include "taskreach/data.hpp"
#include "taskreach/train.hpp"

using namespace taskreach;

namespace {

std::string data_dir() {
  const char* d = std::getenv("TASKREACH_DATA");
  return d ? d : std::string(std::getenv("HOME")) + "/.cache/taskreach/data";
}

// Fashion-MNIST and MNIST digits, n samples per task (stratified), 28×28.
TaskSet real_tasks(int64_t n) {
  JobConfig job;
  job.path = "test_train";
  job.seed = 5;
  job.n_per_task = n;
  SourceConfig fashion;
  fashion.name = "fashion";
  fashion.format = SourceFormat::idx;
  fashion.train_images = "/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz";
  fashion.train_labels = "/usr/share/datasets/fashion-mnist/train-labels-idx1-ubyte.gz";
  SourceConfig mnist = fashion;
  mnist.name = "mnist";
  mnist.train_images = data_dir() + "/mnist/train-images-idx3-ubyte.gz";
  mnist.train_labels = data_dir() + "/mnist/train-labels-idx1-ubyte.gz";
  job.sources = {fashion, mnist};
  TaskConfig t1;
  t1.name = "fashion";
  t1.source = "fashion";
  TaskConfig t2;
  t2.name = "mnist";
  t2.source = "mnist";
  job.tasks = {t1, t2};
  return build_tasks(job);
}

const TaskSet& tasks200() {
  static TaskSet t = real_tasks(200);
  return t;
}

JobConfig train_job(Arch arch) {
  JobConfig job;
  job.model.arch = arch;
  job.model.hidden = arch == Arch::linear ? std::vector<int64_t>{} : std::vector<int64_t>{16};
  job.model.channels = {4, 8};
  job.model.width = 8;
  job.model.activation = arch == Arch::resnet18 ? Activation::relu : Activation::tanh;
  job.train.batch_size = 32;
  job.train.lr = 0.05;
  job.train.epochs = 10;
  job.train.eval_every = 10;
  job.train.polish_iters = 0;
  job.complexity.beta = 1.0;
  job.complexity.lambda2 = 1.0;
  return job;
}

// Softmax regression with weight decay on the scikit-learn 8×8 digits, polished in float64 to
// ‖∇f‖ ≤ 1e-7: a strictly convex problem with one optimum.
JobConfig digits_linear_job() {
  JobConfig job = train_job(Arch::linear);
  job.path = "digits";
  job.train.dtype = DType::float64;
  job.train.polish_iters = 4000;
  job.train.grad_tol = 1e-7;
  job.complexity.lambda2 = 0.05;
  return job;
}

int rank_of(MPI_Comm c) { int r; MPI_Comm_rank(c, &r); return r; }
int size_of(MPI_Comm c) { int s; MPI_Comm_size(c, &s); return s; }

double max_abs_diff(const std::vector<double>& a, const std::vector<double>& b) {
  EXPECT_EQ(a.size(), b.size());
  double m = 0;
  for (size_t i = 0; i < a.size() && i < b.size(); ++i) m = std::max(m, std::fabs(a[i] - b[i]));
  return m;
}

double max_abs(const std::vector<double>& a) {
  double m = 0;
  for (double x : a) m = std::max(m, std::fabs(x));
  return m;
}

// Softmax regression's Gauss–Newton product in closed form at w = [W row-major, b]:
// G v = Σ_i x̃_i ⊗ A_i (V x_i + c) with A_i = diag p_i − p_i p_iᵀ over the task's head rows,
// x̃ = [x; 1] and v = [V, c] in the same layout.
std::vector<double> linear_ggn_product(const Task& task, int64_t K, const std::vector<double>& w,
                                       const std::vector<double>& v) {
  const int64_t in = task.dim;
  auto X = torch::from_blob(const_cast<float*>(task.x.data()), {task.size(), in}, torch::kFloat).to(torch::kDouble);
  auto at = [&](const std::vector<double>& p) {
    auto t = torch::from_blob(const_cast<double*>(p.data()), {K * in + K}, torch::kDouble);
    return std::make_pair(t.slice(0, 0, K * in).view({K, in}), t.slice(0, K * in));
  };
  auto [W, b] = at(w);
  auto [V, c] = at(v);
  auto active = torch::zeros({K}, torch::kBool);
  for (int64_t r : task.active_rows) active[r] = true;
  auto P = torch::softmax((X.matmul(W.t()) + b).masked_fill(active.logical_not(), -INFINITY), 1);
  auto Z = X.matmul(V.t()) + c;                      // J_i v, one row per sample
  auto U = P * Z - P * (P * Z).sum(1, true);         // A_i J_i v
  auto out = torch::cat({U.t().matmul(X).reshape(-1), U.sum(0)}).contiguous();
  return std::vector<double>(out.data_ptr<double>(), out.data_ptr<double>() + out.numel());
}

class DeviceEnvironment : public ::testing::Environment {
  void SetUp() override {
    const std::string d = taskreach::testing::use_test_device();
    if (rank_of(MPI_COMM_WORLD) == 0) std::printf("device: %s\n", d.c_str());
  }
};
const auto* const kDevice = ::testing::AddGlobalTestEnvironment(new DeviceEnvironment);

}  // namespace

TEST(Train, LinearReachesTheSameOptimumOnOneAndAllRanks) {
  // Softmax regression with weight decay is strictly convex: one optimum, whatever the layout.
  JobConfig job = train_job(Arch::linear);
  job.train.dtype = DType::float64;
  job.train.polish_iters = 2000;
  // ‖∇f‖ ≤ 5e-8 (about the float64 floor here) with f strongly convex of modulus
  // β/(λ² n) = 0.1 puts w within 5e-7 of the unique optimum.
  job.train.grad_tol = 5e-8;
  job.complexity.lambda2 = 0.05;
  const auto& ts = tasks200();
  ModelShape shape = model_shape(job, ts);
  auto a = train_map(MPI_COMM_SELF, shape, ts.tasks[0], job, 3);
  auto b = train_map(MPI_COMM_WORLD, shape, ts.tasks[0], job, 3);
  EXPECT_EQ(a.status, "ok") << a.grad_norm;
  EXPECT_EQ(b.status, "ok") << b.grad_norm;
  EXPECT_LE(a.grad_norm, 5e-8);
  EXPECT_LE(max_abs_diff(a.weights, b.weights), 1e-6);
  EXPECT_NEAR(a.loss, b.loss, 1e-6 * a.loss);
}

TEST(Train, ConvexLinearOnSklearnDigitsReachesItsUniqueOptimum) {
  // Softmax regression with weight decay on the 1,797 scikit-learn 8×8 digits (a seeded 20% held
  // out): from two different initialisations the polish reaches ‖∇f‖ ≤ 1e-7, and strong
  // convexity (modulus μ = β/(λ² n) of the mean objective) puts both within 2·1e-7/μ of the one
  // optimum, hence of each other.
  JobConfig job = digits_linear_job();
  TaskSet ts = taskreach::testing::one_task_of(job, taskreach::testing::sklearn_digits_source(0.2));
  const Task& task = ts.tasks[0];
  ASSERT_GT(task.test_size(), 300);
  ModelShape shape = model_shape(job, ts);
  auto a = train_map(MPI_COMM_WORLD, shape, task, job, 1);
  auto b = train_map(MPI_COMM_WORLD, shape, task, job, 2);
  EXPECT_EQ(a.status, "ok");
  EXPECT_EQ(b.status, "ok");
  EXPECT_LE(a.grad_norm, 1e-7);
  EXPECT_LE(b.grad_norm, 1e-7);
  const double mu = job.complexity.beta / (job.complexity.lambda2 * double(task.size()));
  EXPECT_LE(max_abs_diff(a.weights, b.weights), 2.0 * 1e-7 / mu);
  EXPECT_GT(a.test_accuracy, 0.9);  // held-out digits
  if (rank_of(MPI_COMM_WORLD) == 0)
    std::printf("digits: n = %lld, grad norms %.2e / %.2e, max |w_a - w_b| = %.2e (bound %.2e), test accuracy %.3f\n",
                static_cast<long long>(task.size()), a.grad_norm, b.grad_norm, max_abs_diff(a.weights, b.weights),
                2e-7 / mu, a.test_accuracy);
}

// The three polishes reach the same MAP point: the unique optimum of the convex model (each
// within 2·grad_tol/μ of it), and grad_tol on the non-convex MLP from the same SGD end point.
// On the convex model the spectral preconditioner (top Ritz pairs of G at the SGD end point)
// must save data passes against plain L-BFGS: its condition number is the point of it.
TEST(Train, EveryPolishReachesTheSameOptimum) {
  JobConfig job = digits_linear_job();
  TaskSet ts = taskreach::testing::one_task_of(job, taskreach::testing::sklearn_digits_source(0.2));
  const Task& task = ts.tasks[0];
  ModelShape shape = model_shape(job, ts);
  job.train.polish = Polish::newton_cg;
  auto n = train_map(MPI_COMM_WORLD, shape, task, job, 1);
  job.train.polish = Polish::lbfgs;
  auto l = train_map(MPI_COMM_WORLD, shape, task, job, 1);
  job.train.polish = Polish::spectral_lbfgs;
  auto s = train_map(MPI_COMM_WORLD, shape, task, job, 1);
  EXPECT_EQ(n.status, "ok") << n.grad_norm;
  EXPECT_EQ(l.status, "ok") << l.grad_norm;
  EXPECT_EQ(s.status, "ok") << s.grad_norm;
  const double mu = job.complexity.beta / (job.complexity.lambda2 * double(task.size()));
  EXPECT_LE(max_abs_diff(n.weights, l.weights), 2.0 * 1e-7 / mu);
  EXPECT_LE(max_abs_diff(s.weights, l.weights), 2.0 * 1e-7 / mu);
  EXPECT_NEAR(n.loss, l.loss, 1e-6 * l.loss);
  EXPECT_NEAR(s.loss, l.loss, 1e-6 * l.loss);
  EXPECT_LT(s.polish_passes, l.polish_passes);

  JobConfig mj = train_job(Arch::mlp);
  mj.train.dtype = DType::float64;
  mj.train.polish_iters = 3000;
  mj.train.grad_tol = 1e-6;
  const auto& t200 = tasks200();
  ModelShape ms = model_shape(mj, t200);
  mj.train.polish = Polish::newton_cg;
  auto mn = train_map(MPI_COMM_WORLD, ms, t200.tasks[1], mj, 4);
  mj.train.polish = Polish::lbfgs;
  auto ml = train_map(MPI_COMM_WORLD, ms, t200.tasks[1], mj, 4);
  mj.train.polish = Polish::spectral_lbfgs;
  auto msp = train_map(MPI_COMM_WORLD, ms, t200.tasks[1], mj, 4);
  EXPECT_EQ(mn.status, "ok") << mn.grad_norm;
  EXPECT_EQ(ml.status, "ok") << ml.grad_norm;
  EXPECT_EQ(msp.status, "ok") << msp.grad_norm;
  EXPECT_LE(mn.grad_norm, 1e-6);
  EXPECT_LE(msp.grad_norm, 1e-6);
  if (rank_of(MPI_COMM_WORLD) == 0)
    std::printf("polish to grad_tol, data passes (seconds): digits (linear) newton_cg %lld (%.2f), lbfgs %lld (%.2f), "
                "spectral_lbfgs %lld (%.2f); mlp newton_cg %lld (%.2f), lbfgs %lld (%.2f), spectral_lbfgs %lld (%.2f); "
                "mlp losses %.6f / %.6f / %.6f\n",
                static_cast<long long>(n.polish_passes), n.polish_seconds, static_cast<long long>(l.polish_passes),
                l.polish_seconds, static_cast<long long>(s.polish_passes), s.polish_seconds,
                static_cast<long long>(mn.polish_passes), mn.polish_seconds, static_cast<long long>(ml.polish_passes),
                ml.polish_seconds, static_cast<long long>(msp.polish_passes), msp.polish_seconds, mn.loss, ml.loss,
                msp.loss);
}

TEST(Train, MlpFollowsTheSameFloat64TrajectoryOnOneAndAllRanks) {
  JobConfig job = train_job(Arch::mlp);
  job.train.dtype = DType::float64;
  job.train.steps = 50;
  const auto& ts = tasks200();
  ModelShape shape = model_shape(job, ts);
  auto a = train_map(MPI_COMM_SELF, shape, ts.tasks[1], job, 9);
  auto b = train_map(MPI_COMM_WORLD, shape, ts.tasks[1], job, 9);
  ASSERT_EQ(a.sgd_steps, 50);
  ASSERT_EQ(b.sgd_steps, 50);
  EXPECT_LE(max_abs_diff(a.weights, b.weights), 1e-8 * std::max(1.0, max_abs(a.weights)));
  ASSERT_EQ(a.curve.size(), b.curve.size());
  for (size_t k = 0; k < a.curve.size(); ++k) EXPECT_NEAR(a.curve[k][1], b.curve[k][1], 1e-8);
}

// Every architecture learns real data: the whole-task mean loss falls below a threshold, and
// the convergence step is the first evaluation below it.
class EveryModel : public ::testing::TestWithParam<Arch> {};

TEST_P(EveryModel, TrainsToTheLossThreshold) {
  JobConfig job = train_job(GetParam());
  job.train.loss_threshold = 0.5;
  job.train.epochs = 20;
  if (GetParam() == Arch::resnet18) job.train.lr = 0.02;
  const auto& ts = tasks200();
  ModelShape shape = model_shape(job, ts);
  auto out = train_map(MPI_COMM_WORLD, shape, ts.tasks[1], job, 1);
  if (rank_of(MPI_COMM_WORLD) == 0)
    std::printf("%s: d = %lld, convergence step %lld, final mean loss %.4f, %.1f s\n", to_string(GetParam()),
                static_cast<long long>(num_parameters(shape)), static_cast<long long>(out.convergence_step),
                out.curve.back()[1], out.seconds);
  EXPECT_NE(out.status, "diverged");
  ASSERT_GE(out.convergence_step, 0) << "final mean loss " << out.curve.back()[1];
  for (const auto& c : out.curve) {
    if (c[0] < double(out.convergence_step)) {
      EXPECT_GE(c[1], 0.5);
    } else if (c[0] == double(out.convergence_step)) {
      EXPECT_LT(c[1], 0.5);
    }
  }
  EXPECT_EQ(int64_t(out.weights.size()), num_parameters(shape));
}

INSTANTIATE_TEST_SUITE_P(Models, EveryModel, ::testing::Values(Arch::linear, Arch::mlp, Arch::cnn, Arch::resnet18));

TEST(Train, DivergenceIsReportedNotCrashed) {
  JobConfig job = train_job(Arch::mlp);
  job.train.lr = 1e6;
  job.train.momentum = 0.0;
  job.train.polish_iters = 100;
  const auto& ts = tasks200();
  auto out = train_map(MPI_COMM_WORLD, model_shape(job, ts), ts.tasks[0], job, 2);
  EXPECT_EQ(out.status, "diverged");
  EXPECT_LT(out.sgd_steps, 70);  // stopped at the first non-finite loss, not run to the end
}

TEST(Train, CheckpointHoldsWhatTheCurvatureReads) {
  // The checkpoint round trip is bitwise, with the SGD state beside it; and the curvature read
  // from a checkpoint is the curvature at the trained w*: for softmax regression, against the
  // closed-form Gauss–Newton product at the weights train_map returned, on one rank and
  // distributed over the world with another batch size.
  const auto& ts = tasks200();
  const Task& task = ts.tasks[0];
  for (const Arch arch : {Arch::mlp, Arch::linear}) {
    JobConfig job = train_job(arch);
    ModelShape shape = model_shape(job, ts);
    std::string path = "/tmp/taskreach_test_ckpt_" + std::string(to_string(arch)) + "_" + std::to_string(rank_of(MPI_COMM_WORLD)) + ".pt";
    auto out = train_map(MPI_COMM_SELF, shape, task, job, 4, path);
    std::vector<double> buffers;
    auto w = load_checkpoint(shape, path, &buffers);
    EXPECT_EQ(w, out.weights) << to_string(arch);  // bitwise
    EXPECT_TRUE(std::filesystem::exists(path + ".sgd")) << to_string(arch);
    std::filesystem::remove(path);
    std::filesystem::remove(path + ".sgd");
    if (arch != Arch::linear) continue;
    std::vector<double> v(w.size());
    for (size_t i = 0; i < v.size(); ++i) v[i] = std::sin(0.37 * double(i)) + 0.1;
    const auto ref = linear_ggn_product(task, shape.k_tot, out.weights, v);
    TorchCurvature self_op(shape, w, task, 0, 1, Curvature::ggn, 64);
    TorchCurvature world_op(shape, w, task, rank_of(MPI_COMM_WORLD), size_of(MPI_COMM_WORLD), Curvature::ggn, 48);
    ASSERT_EQ(self_op.dim(), int64_t(ref.size()));
    std::vector<double> y_self(v.size());
    self_op.apply_shard(v.data(), y_self.data());
    const auto y_world = apply_distributed(MPI_COMM_WORLD, world_op, v);
    const double scale = max_abs(ref);
    ASSERT_GT(scale, 0.0);
    EXPECT_LE(max_abs_diff(y_self, ref), 1e-10 * scale);
    EXPECT_LE(max_abs_diff(y_world, ref), 1e-10 * scale);
    if (rank_of(MPI_COMM_WORLD) == 0)
      std::printf("linear checkpoint: |Gv - closed form| / max = %.2e (one rank), %.2e (world)\n",
                  max_abs_diff(y_self, ref) / scale, max_abs_diff(y_world, ref) / scale);
  }
}

TEST(Train, BatchNormCurvatureUsesEvalModeAndSavedStatistics) {
  // resnet18 with BatchNorm: the running statistics travel with w* through the checkpoint,
  // and the curvature (eval mode) is a symmetric operator: uᵀ(Gv) = vᵀ(Gu).
  JobConfig job = train_job(Arch::resnet18);
  job.model.norm = Norm::batch;
  job.train.steps = 20;
  job.train.lr = 0.02;
  const auto& ts = tasks200();
  ModelShape shape = model_shape(job, ts);
  std::string path = "/tmp/taskreach_test_bn_" + std::to_string(rank_of(MPI_COMM_WORLD)) + ".pt";
  auto out = train_map(MPI_COMM_SELF, shape, ts.tasks[1], job, 4, path);
  std::vector<double> buffers;
  auto w = load_checkpoint(shape, path, &buffers);
  EXPECT_EQ(buffers, out.buffers);
  ASSERT_FALSE(buffers.empty());
  TorchCurvature g(shape, w, ts.tasks[1], 0, 1, Curvature::ggn, 100, buffers, /*subsample=*/40, 1);
  std::vector<double> u(size_t(g.dim())), v(u.size()), gu(u.size()), gv(u.size());
  for (size_t i = 0; i < u.size(); ++i) {
    u[i] = std::sin(0.1 * double(i));
    v[i] = std::cos(0.37 * double(i));
  }
  g.apply_shard(u.data(), gu.data());
  g.apply_shard(v.data(), gv.data());
  double ugv = 0, vgu = 0;
  for (size_t i = 0; i < u.size(); ++i) {
    ugv += u[i] * gv[i];
    vgu += v[i] * gu[i];
  }
  EXPECT_NEAR(ugv, vgu, 1e-9 * std::max(std::fabs(ugv), 1.0));
  std::filesystem::remove(path);
  std::filesystem::remove(path + ".sgd");
}

TEST(Finetune, ProtocolThresholdsAndCosts) {
  JobConfig job = train_job(Arch::mlp);
  job.finetune.lr = 0.05;
  job.finetune.batch_size = 32;
  job.finetune.eval_every = 10;
  job.finetune.max_steps = 400;
  const auto& ts = tasks200();
  ModelShape shape = model_shape(job, ts);
  const Task& mnist = ts.tasks[1];
  auto scratch = finetune_scratch(MPI_COMM_WORLD, shape, mnist, job, 7);
  ASSERT_EQ(scratch.status, "ok");
  // θ = median of the last 10 evaluations + margin, and T(i|i) is the first evaluation below it.
  std::vector<double> last;
  for (size_t k = scratch.curve.size() - 10; k < scratch.curve.size(); ++k) last.push_back(scratch.curve[k][1]);
  std::sort(last.begin(), last.end());
  EXPECT_NEAR(scratch.threshold, 0.5 * (last[4] + last[5]) + job.finetune.loss_margin, 1e-12);
  // θ is unstable when those evaluations spread by more than the margin.
  EXPECT_NEAR(scratch.spread, last.back() - last.front(), 1e-15);
  EXPECT_GT(scratch.spread, 0.0);
  EXPECT_EQ(scratch.unstable, scratch.spread > job.finetune.loss_margin);
  JobConfig tight = job;
  tight.finetune.loss_margin = 0.5 * scratch.spread;
  EXPECT_TRUE(finetune_scratch(MPI_COMM_WORLD, shape, mnist, tight, 7).unstable);
  tight.finetune.loss_margin = 2.0 * scratch.spread;
  EXPECT_FALSE(finetune_scratch(MPI_COMM_WORLD, shape, mnist, tight, 7).unstable);
  ASSERT_GT(scratch.steps, 0);
  for (const auto& c : scratch.curve) {
    if (c[0] < double(scratch.steps)) {
      EXPECT_GT(c[1], scratch.threshold);
    }
  }

  // From the task's own trained weights the threshold is met before any step.
  JobConfig tj = job;
  tj.train.epochs = 30;
  auto own = train_map(MPI_COMM_WORLD, shape, mnist, tj, 7);
  auto self = finetune_from(MPI_COMM_WORLD, shape, mnist, job, own.weights, scratch.threshold, 8);
  EXPECT_EQ(self.steps, 0);
  EXPECT_EQ(self.samples, 0);
  // From another task's weights it takes some steps; an unreachable θ is "not reached", not the cap.
  auto fashion = train_map(MPI_COMM_WORLD, shape, ts.tasks[0], tj, 7);
  auto other = finetune_from(MPI_COMM_WORLD, shape, mnist, job, fashion.weights, scratch.threshold, 8);
  EXPECT_EQ(other.status, "ok");
  EXPECT_GT(other.steps, 0);
  // An epoch of 200 samples is 6 batches of 32 and one of 8: samples count what was processed.
  EXPECT_EQ(other.samples, 200 * (other.steps / 7) + 32 * (other.steps % 7));
  auto never = finetune_from(MPI_COMM_WORLD, shape, mnist, job, fashion.weights, 1e-9, 8);
  EXPECT_EQ(never.status, "not_reached");
  EXPECT_EQ(never.steps, -1);
}
