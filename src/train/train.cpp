// MAP training of L_D(w) + β/(2λ²)‖w‖² (DESIGN §1): SGD with momentum on the mean loss
// with weight decay γ_D = β/(λ² n_D), then a full-batch L-BFGS polish in float64 until
// ‖∇‖/n ≤ grad_tol. Data-parallel over the task group: one all-reduce per step.
// Fine-tuning under the fixed protocol of DESIGN §1 shares the SGD loop.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <functional>
#include <numeric>
#include <sstream>

#include "model.hpp"
#include "taskreach/train.hpp"
#include "taskreach/files.hpp"
#include "taskreach/collective.hpp"
#include "taskreach/formulas.hpp"
#include "taskreach/util.hpp"

namespace taskreach {
namespace {

using detail::Net;
namespace F = torch::nn::functional;

MPI_Datatype mpi_type(torch::Dtype t) { return t == torch::kDouble ? MPI_DOUBLE : MPI_FLOAT; }

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// This rank's part of a collective section (its forward/backward), then an agreement on how
// it went before the section's collectives: a throw on one rank becomes the same exception
// on every rank ("train: SGD step 12 failed on rank 1: …"), never ranks left waiting in an
// all-reduce that the failed rank will not join (STYLE convention 11).
template <class Local>
void local_then_agree(MPI_Comm group, const std::string& section, Local&& local) {
  const std::string what = util::failure_of([&] {
    try {
      local();
    } catch (const c10::Error& e) {  // LibTorch's message without its C++ backtrace
      throw std::runtime_error(e.what_without_backtrace());
    }
  });
  util::Failure f;
  util::agree(group, what.empty(), what, f);
  if (f.any()) throw std::runtime_error("train: " + section + " failed on rank " + std::to_string(f.rank) + ": " + f.message);
}

// Sums the gradients of `params` over the group with a single all-reduce.
void allreduce_grads(MPI_Comm group, const std::vector<torch::Tensor>& params) {
  std::vector<torch::Tensor> grads;
  for (const auto& p : params) {
    if (!p.grad().defined()) p.mutable_grad() = torch::zeros_like(p);
    grads.push_back(p.grad().view(-1));
  }
  int size = 1;
  MPI_Comm_size(group, &size);
  if (size == 1) return;
  auto flat = torch::cat(grads).to(torch::kCPU).contiguous();
  MPI_Allreduce(MPI_IN_PLACE, flat.data_ptr(), static_cast<int>(flat.numel()),
                mpi_type(flat.scalar_type()), MPI_SUM, group);
  flat = flat.to(params[0].device());
  int64_t off = 0;
  for (const auto& p : params) {
    p.grad().view(-1).copy_(flat.slice(0, off, off + p.numel()).view_as(p.grad().view(-1)));
    off += p.numel();
  }
}

double allreduce_sum(MPI_Comm group, double v) {
  MPI_Allreduce(MPI_IN_PLACE, &v, 1, MPI_DOUBLE, MPI_SUM, group);
  return v;
}

// A float64 tensor summed over the group (through the host), on the tensor's device.
torch::Tensor allreduce_sum(MPI_Comm group, const torch::Tensor& t) {
  int size = 1;
  MPI_Comm_size(group, &size);
  if (size == 1) return t;
  auto host = t.to(torch::kCPU).contiguous();
  MPI_Allreduce(MPI_IN_PLACE, host.data_ptr(), static_cast<int>(host.numel()), MPI_DOUBLE, MPI_SUM, group);
  return host.to(t.device());
}

// Keeps every rank's weights (and buffers) bitwise equal to rank 0's.
void broadcast_state(MPI_Comm group, Net& net) {
  torch::NoGradGuard no_grad;
  auto tensors = net->parameters();
  for (const auto& b : net->buffers()) tensors.push_back(b);
  for (const auto& p : tensors) {
    if (!p.is_floating_point()) continue;  // e.g. BatchNorm's step counter
    auto c = p.detach().to(torch::kCPU).contiguous();
    MPI_Bcast(c.data_ptr(), static_cast<int>(c.numel()), mpi_type(c.scalar_type()), 0, group);
    p.copy_(c);
  }
}

double norm2(const std::vector<torch::Tensor>& ts) {
  double s = 0;
  for (const auto& t : ts) s += t.detach().to(torch::kDouble).pow(2).sum().item<double>();
  return s;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

// The task held by every rank of the group, with this rank's shard for evaluations.
struct Data {
  torch::Tensor x, y, mask;  // whole task
  torch::Tensor xs, ys;      // this rank's shard: samples r, r+g, …
  int rank = 0, size = 1;
  int64_t n = 0;
  Data(MPI_Comm group, const Task& task, const ModelShape& shape, torch::Dtype dtype) {
    MPI_Comm_rank(group, &rank);
    MPI_Comm_size(group, &size);
    n = task.size();
    x = detail::features(task, dtype);
    y = detail::labels(task);
    mask = detail::head_mask(shape.k_tot, task.active_rows);
    auto idx = detail::shard_indices(n, rank, size);
    xs = x.index_select(0, idx);
    ys = y.index_select(0, idx);
  }
  // After SGD only the shard is read (the polish, evaluations): it alone goes to the polish's
  // precision, and the whole task's copies are released (at n = 16k on 2 ranks, 150 MB a rank).
  void for_polish(torch::Dtype dtype) {
    xs = xs.to(dtype);
    x = torch::Tensor();
    y = torch::Tensor();
  }
};

// Accuracy on the task's test split at the current weights (−1 without one), eval mode.
double test_accuracy(MPI_Comm group, Net& net, const Task& task, const torch::Tensor& mask, torch::Dtype dtype) {
  if (task.test_size() == 0) return -1.0;
  torch::NoGradGuard no_grad;
  int rank = 0, size = 1;
  MPI_Comm_rank(group, &rank);
  MPI_Comm_size(group, &size);
  net->eval();
  // This rank's rows (every size-th), rendered from the source's held-out images a batch at a
  // time: the split's features are never held whole.
  constexpr int64_t kBatch = 1024;
  double correct = 0;
  local_then_agree(group, "test accuracy", [&] {
    std::vector<int64_t> rows;
    std::vector<int64_t> labels;
    for (int64_t b0 = rank; b0 < task.test_size(); b0 += kBatch * size) {
      rows.clear();
      labels.clear();
      for (int64_t r = b0; r < std::min(task.test_size(), b0 + kBatch * size); r += size) {
        rows.push_back(r);
        labels.push_back(task.y_test[static_cast<size_t>(r)]);
      }
      std::vector<float> feats = task.test_features(rows);
      const auto nb = static_cast<int64_t>(rows.size());
      auto xb = torch::from_blob(feats.data(), {nb, task.dim}, torch::kFloat).to(detail::device(), dtype);
      auto yb = torch::from_blob(labels.data(), {nb}, torch::kLong).to(detail::device());
      correct += detail::masked(net->forward(xb), mask).argmax(1).eq(yb).sum().item<double>();
    }
  });
  return allreduce_sum(group, correct) / double(task.test_size());
}

// Mean loss and accuracy over the whole task, in eval mode (summed over the group).
CurvePoint evaluate(MPI_Comm group, Net& net, const Data& d, int64_t step) {
  torch::NoGradGuard no_grad;
  const bool was_training = net->is_training();
  net->eval();
  double loss = 0, correct = 0;
  local_then_agree(group, "evaluation at step " + std::to_string(step), [&] {
    for (int64_t b0 = 0; b0 < d.xs.size(0); b0 += 1024) {
      auto logits = detail::masked(net->forward(d.xs.slice(0, b0, b0 + 1024)), d.mask);
      auto yb = d.ys.slice(0, b0, b0 + 1024);
      loss += F::cross_entropy(logits, yb, F::CrossEntropyFuncOptions().reduction(torch::kSum)).item<double>();
      correct += logits.argmax(1).eq(yb).sum().item<double>();
    }
  });
  net->train(was_training);
  double v[2] = {loss, correct};
  MPI_Allreduce(MPI_IN_PLACE, v, 2, MPI_DOUBLE, MPI_SUM, group);
  return {double(step), v[0] / double(d.n), v[1] / double(d.n)};
}

struct SgdSpec {
  double lr, momentum, weight_decay;
  int64_t batch, steps, eval_every;
  Schedule schedule = Schedule::constant;
  std::vector<int64_t> milestones;
  double factor = 0.1;
  double stop_below = -1.0;  // stop at the first evaluation with mean loss ≤ this (fine-tuning)
  uint64_t order_seed = 0;
  std::function<void(const CurvePoint&)> on_eval;  // after each evaluation
};

struct SgdResult {
  bool diverged = false;
  int64_t steps = 0, samples = 0;
  std::vector<CurvePoint> curve;
  int64_t stopped_at = -1;  // evaluated step at which stop_below was met
};

double scheduled_lr(const SgdSpec& s, int64_t step) {
  if (s.schedule == Schedule::step) {
    double lr = s.lr;
    for (int64_t m : s.milestones)
      if (step >= m) lr *= s.factor;
    return lr;
  }
  if (s.schedule == Schedule::cosine) return 0.5 * s.lr * (1.0 + std::cos(M_PI * double(step) / double(std::max<int64_t>(1, s.steps))));
  return s.lr;
}

// SGD with momentum, evaluating the whole task every eval_every steps and at the end. The
// global batch is the same for any group size. A fresh optimiser (momentum starts at zero)
// unless `keep` holds one from an earlier stage, which is then continued.
SgdResult run_sgd(MPI_Comm group, Net& net, const Data& d, const SgdSpec& s, torch::optim::SGD** keep = nullptr) {
  SgdResult r;
  auto params = net->parameters();
  auto* sgd = keep && *keep ? *keep
                            : new torch::optim::SGD(params, torch::optim::SGDOptions(s.lr).momentum(s.momentum).weight_decay(s.weight_decay));
  std::unique_ptr<torch::optim::SGD> owner(sgd);
  if (keep) *keep = nullptr;  // handed back at the end, never left dangling
  std::vector<int64_t> perm;
  int64_t epoch = 0;
  net->train();
  auto eval_now = [&](int64_t step) {
    r.curve.push_back(evaluate(group, net, d, step));
    if (s.on_eval)
      local_then_agree(group, "evaluation hook at step " + std::to_string(step), [&] { s.on_eval(r.curve.back()); });
    const double loss = r.curve.back()[1];
    if (!std::isfinite(loss)) r.diverged = true;
    if (s.stop_below >= 0 && loss <= s.stop_below && r.stopped_at < 0) r.stopped_at = step;
    return r.diverged || r.stopped_at >= 0;
  };
  if (s.stop_below >= 0 && eval_now(0)) return r;
  int64_t pos = d.n;  // position in the current permutation
  while (r.steps < s.steps) {
    if (pos >= d.n) {
      // Counter-based: epoch e's order is a function of (order_seed, e) alone (STYLE 13).
      perm = util::permutation(util::chain(s.order_seed, uint64_t(epoch++)), d.n);
      pos = 0;
    }
    const int64_t b0 = pos, b1 = std::min(d.n, pos + s.batch);
    pos = b1;
    std::vector<int64_t> mine;
    for (int64_t q = b0 + d.rank; q < b1; q += d.size) mine.push_back(perm[static_cast<size_t>(q)]);
    static_cast<torch::optim::SGDOptions&>(sgd->param_groups()[0].options()).lr(scheduled_lr(s, r.steps));
    double local = 0.0;
    local_then_agree(group, "SGD step " + std::to_string(r.steps + 1),
                     [&] { local = detail::minibatch_backward(net, params, d.x, d.y, d.mask, mine, b1 - b0); });
    allreduce_grads(group, params);
    if (!std::isfinite(allreduce_sum(group, local))) {
      r.diverged = true;
      break;
    }
    sgd->step();
    ++r.steps;
    r.samples += b1 - b0;
    if (r.steps % s.eval_every == 0 && eval_now(r.steps)) break;
  }
  if (!r.diverged && (r.curve.empty() || r.curve.back()[0] != double(r.steps))) eval_now(r.steps);
  if (keep) *keep = owner.release();
  return r;
}

// Samples per forward/backward pass of the full-batch polish: its memory is that of one such
// micro-batch, whatever the shard's size (the gradients of the passes accumulate).
constexpr int64_t kPolishChunk = 1024;
// The spectral preconditioner's Krylov blocks, and the memory its bases may take per rank.
constexpr int64_t kSpectralBlocks = 3;
constexpr double kSpectralBudgetBytes = 512.0 * 1024 * 1024;

// f(w) = [L_D(w) + β/(2λ²)‖w‖²] / n on this rank's shard, summed over the group (the
// penalty is added by rank 0 only, so the sum counts it once). Gradients land in .grad(),
// accumulated over micro-batches of kPolishChunk samples: one autograd graph at a time.
double map_objective(MPI_Comm group, Net& net, const Data& d, double penalty) {
  auto params = net->parameters();
  double local = 0.0;
  local_then_agree(group, "MAP objective", [&] {
    for (auto& p : params) p.mutable_grad() = torch::zeros_like(p);
    for (int64_t b0 = 0; b0 < d.xs.size(0); b0 += kPolishChunk) {
      auto f = F::cross_entropy(detail::masked(net->forward(d.xs.slice(0, b0, b0 + kPolishChunk)), d.mask),
                                d.ys.slice(0, b0, b0 + kPolishChunk), F::CrossEntropyFuncOptions().reduction(torch::kSum)) /
               double(d.n);
      f.backward();
      local += f.item<double>();
    }
    if (d.rank == 0) {
      torch::Tensor f = torch::zeros({}, torch::TensorOptions(torch::kDouble).device(d.xs.device()));
      for (const auto& p : params) f = f + penalty * p.pow(2).sum();
      f = f / double(d.n);
      f.backward();
      local += f.item<double>();
    }
  });
  allreduce_grads(group, params);
  return allreduce_sum(group, local);
}

double grad_norm(MPI_Comm group, Net& net, const Data& d, double penalty) {
  map_objective(group, net, d, penalty);
  std::vector<torch::Tensor> g;
  for (const auto& p : net->parameters()) g.push_back(p.grad());
  return std::sqrt(norm2(g));
}


// Flattened views of a list of tensors, and back.
torch::Tensor flat_of(const std::vector<torch::Tensor>& ts) {
  std::vector<torch::Tensor> v;
  for (const auto& t : ts) v.push_back(t.detach().reshape(-1));
  return torch::cat(v);
}
std::vector<torch::Tensor> split_like(const torch::Tensor& flat, const std::vector<torch::Tensor>& like) {
  std::vector<torch::Tensor> out;
  int64_t off = 0;
  for (const auto& p : like) {
    out.push_back(flat.slice(0, off, off + p.numel()).view_as(p));
    off += p.numel();
  }
  return out;
}
void set_params(const std::vector<torch::Tensor>& params, const torch::Tensor& flat) {
  torch::NoGradGuard no_grad;
  auto parts = split_like(flat, params);
  for (size_t k = 0; k < params.size(); ++k) params[k].copy_(parts[k]);
}

// H v of the MAP objective f of map_objective (exact Hessian, double backward), accumulated
// over micro-batches of kPolishChunk samples and summed over the group.
torch::Tensor map_hessian_product(MPI_Comm group, Net& net, const Data& d, double penalty, const torch::Tensor& v) {
  auto params = net->parameters();
  const auto vs = split_like(v, params);
  torch::Tensor acc = torch::zeros_like(v);
  local_then_agree(group, "MAP Hessian product", [&] {
    for (int64_t b0 = 0; b0 < d.xs.size(0); b0 += kPolishChunk) {
      auto f = F::cross_entropy(detail::masked(net->forward(d.xs.slice(0, b0, b0 + kPolishChunk)), d.mask),
                                d.ys.slice(0, b0, b0 + kPolishChunk), F::CrossEntropyFuncOptions().reduction(torch::kSum)) /
               double(d.n);
      auto g = torch::autograd::grad({f}, params, {}, /*retain_graph=*/true, /*create_graph=*/true);
      torch::Tensor dot = torch::zeros({}, v.options());
      for (size_t k = 0; k < g.size(); ++k) dot = dot + (g[k] * vs[k]).sum();
      acc += flat_of(torch::autograd::grad({dot}, params));
    }
    if (d.rank == 0) acc += (2.0 * penalty / double(d.n)) * v;
  });
  return allreduce_sum(group, acc);
}

// The polish's spectral preconditioner. The mean objective's Hessian is G/n + μI with μ the
// prior's curvature 2·penalty/n = β/(λ²n): the outlying Gauss–Newton eigenvalues (about one per
// class) against μ give L-BFGS a condition number of 10³–10⁵. The top r Ritz pairs (θ_i, u_i)
// of G/n from a block Krylov space at the SGD end point bring it to about (θ_r + μ)/μ: the
// polish runs on u with w = w₀ + S u, S = I + U diag(s − 1) Uᵀ, s_i = √((θ_r + μ)/(θ_i + μ)),
// so that S H S has the outliers at the level of θ_r + μ. Measured on a 512-sample Fashion MLP
// (tests/bench BM_Polish): θ_1/μ ≈ 1,100 → θ_30/μ ≈ 54, yet L-BFGS's passes fell only ~1.5×:
// most of them go to the non-quadratic path from the SGD end point, not to conditioning.
struct Spectral {
  torch::Tensor U, s;  // [d, r] orthonormal columns, [r] scales; undefined: no preconditioner
  int64_t passes = 0;  // block passes over the data spent to find them
  torch::Tensor apply(const torch::Tensor& v) const {
    if (!U.defined()) return v;
    return v + U.mv((s - 1.0) * U.t().mv(v));
  }
};

// The polish as a trust-region Newton–CG (Steihaug–Toint): each step solves H p = −g by
// conjugate gradients on exact Hessian products, truncated at the trust radius, at negative
// curvature or at the forcing tolerance min(½, √‖g‖)·‖g‖, and is accepted by the actual
// against the predicted decrease of f. Near the optimum it converges quadratically, where
// L-BFGS needs hundreds of full-batch gradients. Every quantity is identical on every rank
// (all-reduced gradients and products), so the ranks take the same steps. It works in the
// variables u of the spectral preconditioner (w = w₀ + S u: gradient S g, Hessian S H S; the
// trust region is a ball in u). Returns the data passes used (gradients and products), at most
// max_passes.
int64_t polish_newton_cg(MPI_Comm group, Net& net, const Data& d, double penalty, double grad_tol, int64_t max_passes,
                         const Spectral& pre) {
  auto params = net->parameters();
  int64_t passes = 0;
  double f = map_objective(group, net, d, penalty);
  ++passes;
  std::vector<torch::Tensor> gs;
  for (const auto& p : params) gs.push_back(p.grad());
  double g_true = flat_of(gs).norm().item<double>();  // ‖∇f(w)‖, the stopping rule's
  torch::Tensor g = pre.apply(flat_of(gs)), w = flat_of(params);
  double radius = std::max(1.0, 0.1 * w.norm().item<double>());
  constexpr int kMaxCg = 30;
  while (passes < max_passes) {
    const double gn = g.norm().item<double>();
    if (!(g_true > grad_tol)) break;
    // Steihaug CG on H z = −g within ‖z‖ ≤ radius.
    torch::Tensor z = torch::zeros_like(g), Hz = torch::zeros_like(g), r = g.clone(), p = -g;
    const double tol = std::min(0.5, std::sqrt(gn)) * gn;
    double rr = r.dot(r).item<double>();
    for (int j = 0; j < kMaxCg && passes < max_passes; ++j) {
      const torch::Tensor Hp = pre.apply(map_hessian_product(group, net, d, penalty, pre.apply(p)));
      ++passes;
      const double pHp = p.dot(Hp).item<double>();
      auto to_boundary = [&] {
        const double a = p.dot(p).item<double>(), b = 2.0 * z.dot(p).item<double>(),
                     c = z.dot(z).item<double>() - radius * radius;
        const double tau = (-b + std::sqrt(std::max(b * b - 4.0 * a * c, 0.0))) / (2.0 * a);
        z = z + tau * p;
        Hz = Hz + tau * Hp;
      };
      if (pHp <= 0) {  // negative curvature: follow it to the boundary
        to_boundary();
        break;
      }
      const double alpha = rr / pHp;
      if ((z + alpha * p).norm().item<double>() >= radius) {
        to_boundary();
        break;
      }
      z = z + alpha * p;
      Hz = Hz + alpha * Hp;
      r = r + alpha * Hp;
      const double rr_next = r.dot(r).item<double>();
      if (std::sqrt(rr_next) < tol) break;
      p = -r + (rr_next / rr) * p;
      rr = rr_next;
    }
    const double predicted = g.dot(z).item<double>() + 0.5 * z.dot(Hz).item<double>();  // < 0
    const torch::Tensor step_w = pre.apply(z);
    set_params(params, w + step_w);
    const double f_new = map_objective(group, net, d, penalty);
    ++passes;
    gs.clear();
    for (const auto& q : params) gs.push_back(q.grad());
    const double g_new_true = flat_of(gs).norm().item<double>();
    const torch::Tensor g_new = pre.apply(flat_of(gs));
    const double rho = predicted < 0 ? (f_new - f) / predicted : 0.0;
    const double step = z.norm().item<double>();
    if (!std::isfinite(f_new) || rho < 0.25) radius = 0.25 * step;
    else if (rho > 0.75 && step >= 0.99 * radius) radius = std::min(2.0 * radius, 1e6);
    // Accept a real decrease; below rounding (f changes by ~1e-16·f) a smaller gradient counts.
    const bool rounding = std::fabs(predicted) < 1e-13 * std::max(1.0, std::fabs(f));
    if (std::isfinite(f_new) && (rho > 1e-4 || (rounding && g_new.norm().item<double>() < gn))) {
      w = w + step_w;
      f = f_new;
      g = g_new;
      g_true = g_new_true;
    } else {
      set_params(params, w);
      if (radius < 1e-14) break;
    }
  }
  set_params(params, w);
  return passes;
}

// (G/n) V for the columns of V [d, ℓ], this rank's shard in micro-batches of kPolishChunk
// samples (one graph at a time, each serving every column), summed over the group.
torch::Tensor ggn_block(MPI_Comm group, Net& net, const Data& d, const torch::Tensor& V) {
  auto params = net->parameters();
  torch::Tensor acc = torch::zeros_like(V);
  local_then_agree(group, "polish preconditioner product", [&] {
    std::vector<std::vector<torch::Tensor>> vs;
    for (int64_t j = 0; j < V.size(1); ++j) vs.push_back(split_like(V.select(1, j).contiguous(), params));
    for (int64_t b0 = 0; b0 < d.xs.size(0); b0 += kPolishChunk) {
      const auto g = detail::ggn_graph(net, params, d.xs.slice(0, b0, b0 + kPolishChunk), d.mask);
      for (int64_t j = 0; j < V.size(1); ++j) acc.select(1, j).add_(flat_of(detail::ggn_apply(g, params, vs[size_t(j)])));
    }
  });
  return allreduce_sum(group, acc.div_(double(d.n)));
}

// Rayleigh–Ritz on the block Krylov space [Ω, GΩ, …, G^{blocks−1}Ω] of width ℓ (Ω uniform
// from `seed`, counter-based), fully reorthogonalised; the top ℓ Ritz pairs are kept. The
// space's two bases ([d, blocks·ℓ] each) stay under `budget_bytes`, else it narrows, and below
// 4 columns there is no preconditioner. Rank 0's pairs are broadcast, so every rank applies
// the same S.
Spectral spectral_preconditioner(MPI_Comm group, Net& net, const Data& d, double mu, int64_t width, int64_t blocks,
                                 uint64_t seed, double budget_bytes) {
  Spectral sp;
  auto params = net->parameters();
  int64_t dim = 0;
  for (const auto& p : params) dim += p.numel();
  while (blocks > 2 && 16.0 * double(dim) * double(blocks * width) > budget_bytes) --blocks;
  while (width > 4 && 16.0 * double(dim) * double(blocks * width) > budget_bytes) --width;
  width = std::min<int64_t>(width, dim / (2 * blocks));
  if (width < 4 || 16.0 * double(dim) * double(blocks * width) > budget_bytes) return sp;
  const auto opts = torch::TensorOptions(torch::kDouble).device(params[0].device());
  std::vector<double> start(static_cast<size_t>(dim * width));
  for (size_t i = 0; i < start.size(); ++i) start[i] = 2.0 * util::uniform_at(seed, i) - 1.0;
  auto omega = torch::from_blob(start.data(), {dim, width}, torch::kDouble).to(opts.device());
  std::vector<torch::Tensor> qs{std::get<0>(torch::linalg_qr(omega))}, ws;
  for (int64_t b = 0; b < blocks; ++b) {
    ws.push_back(ggn_block(group, net, d, qs.back()));
    ++sp.passes;
    if (b + 1 == blocks) break;
    const auto q = torch::cat(qs, 1);
    auto z = ws.back();
    for (int pass = 0; pass < 2; ++pass) z = z - q.mm(q.t().mm(z));
    qs.push_back(std::get<0>(torch::linalg_qr(z)));
  }
  torch::Tensor theta, u;
  local_then_agree(group, "polish preconditioner Rayleigh–Ritz", [&] {
    const auto q = torch::cat(qs, 1), w = torch::cat(ws, 1);
    auto t = q.t().mm(w);
    t = 0.5 * (t + t.t());
    auto [evals, evecs] = torch::linalg_eigh(t);  // ascending
    const int64_t k = evals.size(0);
    theta = evals.slice(0, k - width, k).clamp_min(0.0).to(torch::kCPU).contiguous();
    u = q.mm(evecs.slice(1, k - width, k)).to(torch::kCPU).contiguous();
  });
  MPI_Bcast(u.data_ptr(), static_cast<int>(u.numel()), MPI_DOUBLE, 0, group);
  MPI_Bcast(theta.data_ptr(), static_cast<int>(theta.numel()), MPI_DOUBLE, 0, group);
  const double floor = theta[0].item<double>() + mu;
  sp.U = u.to(opts.device());
  sp.s = torch::sqrt(floor / (theta + mu)).to(opts.device());
  return sp;
}

// The L-BFGS polish (strong-Wolfe line search, history 20) on u with w = w₀ + S u: S = I is
// plain L-BFGS. Stops at ‖∇f(w)‖ ≤ grad_tol or after `max_iters` iterations; returns the
// iterations and adds the data passes (evaluations of f and ∇f) to `passes`.
int64_t polish_lbfgs(MPI_Comm group, Net& net, const Data& d, double penalty, double grad_tol, int64_t max_iters,
                     const Spectral& pre, int64_t& passes) {
  auto params = net->parameters();
  const torch::Tensor w0 = flat_of(params);
  torch::Tensor u = torch::zeros_like(w0).requires_grad_(true);
  auto place = [&] { set_params(params, w0 + pre.apply(u.detach())); };
  constexpr int64_t kInner = 25;
  torch::optim::LBFGS lbfgs(std::vector<torch::Tensor>{u}, torch::optim::LBFGSOptions(1.0)
                                                               .max_iter(kInner)
                                                               .history_size(20)
                                                               .tolerance_grad(1e-14)
                                                               .tolerance_change(1e-16)
                                                               .line_search_fn("strong_wolfe"));
  int64_t iters = 0;
  while (iters < max_iters) {
    place();
    ++passes;
    if (grad_norm(group, net, d, penalty) <= grad_tol) break;
    lbfgs.step([&] {
      place();
      const double f = map_objective(group, net, d, penalty);
      ++passes;
      std::vector<torch::Tensor> gs;
      for (const auto& p : params) gs.push_back(p.grad());
      u.mutable_grad() = pre.apply(flat_of(gs));
      return torch::tensor(f, torch::kDouble);
    });
    iters += kInner;
    if (!std::isfinite(u.detach().pow(2).sum().item<double>())) break;
  }
  place();
  return iters;
}

torch::Dtype train_dtype(const JobConfig& job) { return job.train.dtype == DType::float64 ? torch::kDouble : torch::kFloat; }

double weight_decay_for(const JobConfig& job, int64_t n) {
  // γ_D = β/(λ² n_D): SGD on the mean loss then has the MAP point of DESIGN §1 as its optimum.
  return job.train.weight_decay_auto ? formulas::map_weight_decay(job.complexity.beta, job.complexity.lambda2, double(n))
                                     : job.train.weight_decay;
}

// Serialises through `save(stream)` into memory, then writes the file durably: LibTorch's own
// file writer aborts the process when the disk fills (its destructor throws while unwinding).
template <class Save>
void save_atomically(const std::string& path, Save save) {
  std::ostringstream buf;
  save(buf);
  write_file_atomically(path, buf.str(), "write a checkpoint");
}

// The data order of every fine-tuning run of the job: the same for every source.
uint64_t finetune_order_seed(const JobConfig& job) { return job.seed * 0x9E3779B97F4A7C15ULL + 17; }

}  // namespace

TrainOutcome train_map(MPI_Comm group, const ModelShape& shape, const Task& task, const JobConfig& job,
                       uint64_t seed, const std::string& checkpoint, const TrainHooks& hooks) {
  const auto t0 = std::chrono::steady_clock::now();
  const auto& tc = job.train;
  const auto& cc = job.complexity;
  TrainOutcome out;
  out.weight_decay = weight_decay_for(job, task.size());

  const torch::Dtype dtype = train_dtype(job);
  Net net = detail::make_net(shape, seed, task.active_rows);
  net->to(dtype);
  Data d(group, task, shape, dtype);

  SgdSpec spec;
  spec.lr = tc.lr;
  spec.momentum = tc.momentum;
  spec.weight_decay = out.weight_decay;
  spec.batch = tc.batch_size;
  spec.steps = tc.steps > 0 ? tc.steps : tc.epochs * ((d.n + tc.batch_size - 1) / tc.batch_size);
  spec.eval_every = tc.eval_every;
  spec.schedule = tc.schedule;
  spec.milestones = tc.milestones;
  spec.factor = tc.factor;
  spec.order_seed = seed * 0x9E3779B97F4A7C15ULL + 0x5851F42D4C957F2DULL;
  torch::optim::SGD* sgd_raw = nullptr;
  if (hooks.deficit && hooks.deficit_steps > 0) {
    // The deficit stage: the same protocol on the impaired inputs; its optimiser carries on.
    Data dd(group, *hooks.deficit, shape, dtype);
    SgdSpec ds = spec;
    ds.steps = hooks.deficit_steps;
    ds.eval_every = std::max<int64_t>(hooks.deficit_steps, 1);
    ds.order_seed = spec.order_seed + 1;
    if (run_sgd(group, net, dd, ds, &sgd_raw).diverged) out.status = "diverged";
  }
  if (hooks.on_eval)
    spec.on_eval = [&](const CurvePoint& c) {
      hooks.on_eval(c, detail::flatten(net->parameters()), detail::flatten(detail::float_buffers(*net)));
    };
  SgdResult sr = run_sgd(group, net, d, spec, &sgd_raw);
  std::unique_ptr<torch::optim::SGD> sgd(sgd_raw);
  out.test_accuracy_sgd = test_accuracy(group, net, task, d.mask, dtype);
  sr.diverged = sr.diverged || out.status == "diverged";
  out.sgd_steps = sr.steps;
  out.curve = sr.curve;
  if (tc.loss_threshold > 0)
    for (const auto& c : sr.curve)
      if (c[1] < tc.loss_threshold) {
        out.convergence_step = int64_t(c[0]);
        break;
      }
  broadcast_state(group, net);

  out.sgd_seconds = seconds_since(t0);
  // Polish in float64, eval mode (BatchNorm uses its running statistics, as the curvature does).
  net->to(torch::kDouble);
  net->eval();
  d.for_polish(torch::kDouble);
  const double penalty = formulas::prior_coefficient(cc.beta, cc.lambda2);
  auto params = net->parameters();
  if (!sr.diverged && tc.polish_iters > 0) {
    Spectral pre;
    if (tc.polish != Polish::lbfgs) {
      // Width: the outliers (about one per active class, at least top_k) and 10 more.
      const int64_t width = std::max<int64_t>(cc.top_k, int64_t(task.active_rows.size())) + 10;
      pre = spectral_preconditioner(group, net, d, 2.0 * penalty / double(d.n), width, kSpectralBlocks,
                                    seed ^ 0x5EC7A1ULL, kSpectralBudgetBytes);
    }
    if (tc.polish == Polish::newton_cg) {
      out.polish_iters = polish_newton_cg(group, net, d, penalty, tc.grad_tol, tc.polish_iters, pre);
      out.polish_passes = out.polish_iters + pre.passes;
    } else {
      out.polish_passes = pre.passes;
      out.polish_iters = polish_lbfgs(group, net, d, penalty, tc.grad_tol, tc.polish_iters, pre, out.polish_passes);
    }
    broadcast_state(group, net);
  }
  out.polish_seconds = seconds_since(t0) - out.sgd_seconds;

  out.weights = detail::flatten(params);
  out.buffers = detail::flatten(detail::float_buffers(*net));
  out.weight_norm2 = norm2(params);
  out.loss = evaluate(group, net, d, 0)[1] * double(d.n);
  out.grad_norm = grad_norm(group, net, d, penalty);
  out.test_accuracy = test_accuracy(group, net, task, d.mask, torch::kDouble);
  if (sr.diverged || !std::isfinite(out.loss) || !std::isfinite(out.weight_norm2))
    out.status = "diverged";
  else if (out.grad_norm > tc.grad_tol)
    out.status = "not_converged";
  if (!checkpoint.empty() && d.rank == 0) {
    save_atomically(checkpoint, [&](std::ostream& o) { torch::save(net, o); });
    if (sgd) save_atomically(checkpoint + ".sgd", [&](std::ostream& o) { torch::save(*sgd, o); });
  }
  out.seconds = seconds_since(t0);
  return out;
}

std::vector<double> load_checkpoint(const ModelShape& shape, const std::string& checkpoint,
                                    std::vector<double>* buffers) {
  detail::Net net(shape);
  net->to(torch::kDouble);
  torch::load(net, checkpoint);
  if (buffers) *buffers = detail::flatten(detail::float_buffers(*net));
  return detail::flatten(net->parameters());
}

namespace {

SgdSpec finetune_spec(const JobConfig& job, int64_t n) {
  const auto& f = job.finetune;
  SgdSpec s;
  s.lr = f.lr;
  s.momentum = f.momentum;
  s.weight_decay = weight_decay_for(job, n);
  s.batch = f.batch_size;
  s.steps = f.max_steps;
  s.eval_every = f.eval_every;
  s.order_seed = finetune_order_seed(job);
  return s;
}

FinetuneOutcome finish(const SgdResult& r, double threshold, std::chrono::steady_clock::time_point t0) {
  FinetuneOutcome o;
  o.threshold = threshold;
  o.curve = r.curve;
  for (const auto& c : r.curve)
    if (c[1] <= threshold) {
      o.steps = int64_t(c[0]);
      break;
    }
  o.samples = r.samples;
  o.status = r.diverged ? "diverged" : (o.steps < 0 ? "not_reached" : "ok");
  o.seconds = seconds_since(t0);
  return o;
}

}  // namespace

FinetuneOutcome finetune_scratch(MPI_Comm group, const ModelShape& shape, const Task& task, const JobConfig& job,
                                 uint64_t seed) {
  const auto t0 = std::chrono::steady_clock::now();
  const torch::Dtype dtype = train_dtype(job);
  Net net = detail::make_net(shape, seed, task.active_rows);
  net->to(dtype);
  Data d(group, task, shape, dtype);
  SgdResult r = run_sgd(group, net, d, finetune_spec(job, d.n));
  double theta = job.finetune.threshold;
  double spread = NAN;
  if (theta <= 0) {
    // θ_i = median of the last 10 evaluations of the scratch run + margin (DESIGN §1).
    std::vector<double> last;
    for (size_t k = r.curve.size() >= 10 ? r.curve.size() - 10 : 0; k < r.curve.size(); ++k) last.push_back(r.curve[k][1]);
    theta = last.empty() ? NAN : median(last) + job.finetune.loss_margin;
    if (!last.empty()) spread = *std::max_element(last.begin(), last.end()) - *std::min_element(last.begin(), last.end());
  }
  FinetuneOutcome o = finish(r, theta, t0);
  o.spread = spread;
  // A run whose last evaluations swing by more than the margin has not settled: its median
  // says little about the level a fine-tune must reach.
  o.unstable = std::isfinite(spread) && spread > job.finetune.loss_margin;
  // The scratch run always runs to max_steps; report the samples until θ was first met.
  if (o.steps >= 0) o.samples = std::min(r.samples, o.steps * job.finetune.batch_size);
  return o;
}

FinetuneOutcome finetune_from(MPI_Comm group, const ModelShape& shape, const Task& task, const JobConfig& job,
                              const std::vector<double>& source_weights, double threshold, uint64_t seed) {
  const auto t0 = std::chrono::steady_clock::now();
  const torch::Dtype dtype = train_dtype(job);
  Net net = detail::make_net(shape, seed, task.active_rows);
  net->to(torch::kDouble);
  auto params = net->parameters();
  if (int64_t(source_weights.size()) != int64_t(detail::flatten(params).size()))
    throw std::invalid_argument("finetune: source weights do not fit the model");
  detail::unflatten(source_weights.data(), params);  // every weight kept: the head is shared
  net->to(dtype);
  Data d(group, task, shape, dtype);
  SgdSpec s = finetune_spec(job, d.n);
  s.stop_below = threshold;
  SgdResult r = run_sgd(group, net, d, s);
  return finish(r, threshold, t0);
}

}  // namespace taskreach
