// MAP training of L_D(w) + β/(2λ²)‖w‖² (DESIGN §1): SGD with momentum on the mean loss
// with weight decay γ_D = β/(λ² n_D), then a full-batch L-BFGS polish in float64 until
// ‖∇‖/n ≤ grad_tol. Data-parallel over the task group: one all-reduce per step.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <numeric>
#include <random>

#include "model.hpp"

namespace taskreach {
namespace {

using detail::Net;

MPI_Datatype mpi_type(torch::Dtype t) { return t == torch::kDouble ? MPI_DOUBLE : MPI_FLOAT; }

// Sums the gradients of `params` over the group with a single all-reduce.
void allreduce_grads(MPI_Comm group, const std::vector<torch::Tensor>& params) {
  std::vector<torch::Tensor> grads;
  for (const auto& p : params) {
    if (!p.grad().defined()) p.mutable_grad() = torch::zeros_like(p);
    grads.push_back(p.grad().view(-1));
  }
  auto flat = torch::cat(grads).contiguous();
  MPI_Allreduce(MPI_IN_PLACE, flat.data_ptr(), static_cast<int>(flat.numel()),
                mpi_type(flat.scalar_type()), MPI_SUM, group);
  int64_t off = 0;
  for (const auto& p : params) {
    p.grad().view(-1).copy_(flat.slice(0, off, off + p.numel()));
    off += p.numel();
  }
}

double allreduce_sum(MPI_Comm group, double v) {
  MPI_Allreduce(MPI_IN_PLACE, &v, 1, MPI_DOUBLE, MPI_SUM, group);
  return v;
}

// Keeps every rank's weights bitwise equal to rank 0's.
void broadcast_params(MPI_Comm group, const std::vector<torch::Tensor>& params) {
  torch::NoGradGuard no_grad;
  for (const auto& p : params) {
    auto c = p.detach().contiguous();
    MPI_Bcast(c.data_ptr(), static_cast<int>(c.numel()), mpi_type(c.scalar_type()), 0, group);
    if (!c.is_same(p)) p.copy_(c);
  }
}

double norm2(const std::vector<torch::Tensor>& ts) {
  double s = 0;
  for (const auto& t : ts) s += t.detach().to(torch::kDouble).pow(2).sum().item<double>();
  return s;
}

struct Objective {
  // f(w) = [L_D(w) + β/(2λ²)‖w‖²] / n, evaluated on this rank's shard and summed over the
  // group (the penalty is added by rank 0 only, so the sum counts it once).
  MPI_Comm group;
  Net net;
  torch::Tensor x, y, mask;
  double penalty;  // β/(2λ²)
  double n;
  bool rank0;

  double loss_sum() {  // L_D(w), summed over the whole task
    torch::NoGradGuard no_grad;
    double local = x.size(0) ? torch::nn::functional::cross_entropy(
                                   detail::masked(net->forward(x), mask), y,
                                   torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kSum))
                                   .item<double>()
                             : 0.0;
    return allreduce_sum(group, local);
  }

  // Value and gradient of f (gradients left in .grad(), summed over the group).
  double evaluate() {
    auto params = net->parameters();
    for (auto& p : params) p.mutable_grad() = torch::zeros_like(p);
    torch::Tensor f = torch::zeros({}, torch::kDouble);
    if (x.size(0))
      f = torch::nn::functional::cross_entropy(
          detail::masked(net->forward(x), mask), y,
          torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kSum));
    if (rank0) {
      torch::Tensor w2 = torch::zeros({}, torch::kDouble);
      for (const auto& p : params) w2 = w2 + p.pow(2).sum();
      f = f + penalty * w2;
    }
    f = f / n;
    f.backward();
    allreduce_grads(group, params);
    return allreduce_sum(group, f.item<double>());
  }

  double grad_norm() {  // ‖∇(L_D + β/(2λ²)‖w‖²)‖ / n
    evaluate();
    std::vector<torch::Tensor> g;
    for (const auto& p : net->parameters()) g.push_back(p.grad());
    return std::sqrt(norm2(g));
  }
};

}  // namespace

TrainOutcome train_map(MPI_Comm group, const ModelShape& shape, const Task& task,
                       const JobConfig& job, uint64_t seed) {
  const auto t0 = std::chrono::steady_clock::now();
  int rank = 0, size = 1;
  MPI_Comm_rank(group, &rank);
  MPI_Comm_size(group, &size);
  const auto& tc = job.train;
  const auto& cc = job.complexity;
  const int64_t n = task.size();

  TrainOutcome out;
  // γ_D = β/(λ² n_D): SGD on the mean loss then has the MAP point of DESIGN §1 as its optimum.
  out.weight_decay = tc.weight_decay_auto ? cc.beta / (cc.lambda2 * static_cast<double>(n)) : tc.weight_decay;

  const torch::Dtype dtype = tc.dtype == "float64" ? torch::kDouble : torch::kFloat;
  Net net = detail::make_net(shape, seed, task.active_rows);
  net->to(dtype);
  const auto mask = detail::head_mask(shape.k_tot, task.active_rows);
  const auto x_all = detail::features(task, dtype);
  const auto y_all = detail::labels(task);
  auto params = net->parameters();

  torch::optim::SGD sgd(params, torch::optim::SGDOptions(tc.lr).momentum(tc.momentum).weight_decay(out.weight_decay));
  std::mt19937_64 order_rng(seed * 0x9E3779B97F4A7C15ULL + 0x5851F42D4C957F2DULL);
  std::vector<int64_t> perm(static_cast<size_t>(n));
  bool diverged = false;
  for (int64_t epoch = 0; epoch < tc.epochs && !diverged; ++epoch) {
    std::iota(perm.begin(), perm.end(), 0);
    std::shuffle(perm.begin(), perm.end(), order_rng);
    for (int64_t b0 = 0; b0 < n; b0 += tc.batch_size) {
      const int64_t b1 = std::min(n, b0 + tc.batch_size);
      std::vector<int64_t> mine;
      for (int64_t q = b0 + rank; q < b1; q += size) mine.push_back(perm[static_cast<size_t>(q)]);
      for (auto& p : params) p.mutable_grad() = torch::zeros_like(p);
      double local = 0.0;
      if (!mine.empty()) {
        auto idx = torch::tensor(mine, torch::kLong);
        auto loss = torch::nn::functional::cross_entropy(
                        detail::masked(net->forward(x_all.index_select(0, idx)), mask), y_all.index_select(0, idx),
                        torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kSum)) /
                    static_cast<double>(b1 - b0);
        loss.backward();
        local = loss.item<double>();
      }
      allreduce_grads(group, params);
      if (!std::isfinite(allreduce_sum(group, local))) {
        diverged = true;
        break;
      }
      sgd.step();
      ++out.sgd_steps;
    }
  }
  broadcast_params(group, params);

  // Polish in float64 on this rank's shard of the whole task.
  net->to(torch::kDouble);
  params = net->parameters();
  const auto shard = detail::shard_indices(n, rank, size);
  Objective obj{group, net, x_all.to(torch::kDouble).index_select(0, shard), y_all.index_select(0, shard),
                mask, cc.beta / (2.0 * cc.lambda2), static_cast<double>(n), rank == 0};
  if (!diverged && tc.polish_iters > 0) {
    constexpr int64_t kInner = 25;
    torch::optim::LBFGS lbfgs(params, torch::optim::LBFGSOptions(1.0)
                                          .max_iter(kInner)
                                          .history_size(20)
                                          .tolerance_grad(1e-14)
                                          .tolerance_change(1e-16)
                                          .line_search_fn("strong_wolfe"));
    while (out.polish_iters < tc.polish_iters) {
      if (obj.grad_norm() <= tc.grad_tol) break;
      lbfgs.step([&] { return torch::tensor(obj.evaluate(), torch::kDouble); });
      out.polish_iters += kInner;
      if (!std::isfinite(norm2(params))) break;
    }
    broadcast_params(group, params);
  }

  out.weights = detail::flatten(params);
  out.weight_norm2 = norm2(params);
  out.loss = obj.loss_sum();
  out.grad_norm = obj.grad_norm();
  if (diverged || !std::isfinite(out.loss) || !std::isfinite(out.weight_norm2))
    out.status = "diverged";
  else if (out.grad_norm > tc.grad_tol)
    out.status = "not_converged";
  out.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return out;
}

}  // namespace taskreach
