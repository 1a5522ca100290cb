// Curvature-vector products at w* (DESIGN §1–2) on this rank's shard, in float64.
// G v = Σ_i J_iᵀ (diag p_i − p_i p_iᵀ) J_i v with J_i the logits' Jacobian: J v comes from
// differentiating Jᵀu with respect to the dummy u (double backward). The graphs of the first
// `keep_graphs` samples' batches (within kGraphBudgetBytes) are built once here and reused by
// every product; the other batches keep only their inputs and rebuild their graph in each
// product, so the operator's memory beyond the data is that of the held graphs plus one
// micro-batch's.
#include <malloc.h>

#include <algorithm>
#include <numeric>

#include "model.hpp"
#include "taskreach/util.hpp"

namespace taskreach {
namespace {

// Bytes the process's heap holds in use (glibc: the arenas' allocated chunks and the mmapped
// ones), where LibTorch's CPU tensors live.
double heap_in_use() {
  const struct mallinfo2 mi = mallinfo2();
  return double(mi.uordblks) + double(mi.hblkhd);
}

}  // namespace

struct TorchCurvature::Impl {
  detail::Net net{nullptr};
  std::vector<torch::Tensor> params;
  bool ggn = true;
  struct Batch {
    torch::Tensor x, y;               // the batch's inputs and labels
    bool built = false;               // whether the graph below is held
    detail::GgnGraph ggn;             // ggn: logits, softmax, dummy u, Jᵀu
    std::vector<torch::Tensor> grad;  // hessian: ∇L_batch, built with create_graph
  };
  std::vector<Batch> batches;
  torch::Tensor mask;
  int64_t kept = 0;
  double kept_bytes = 0.0;

  // The double-backward graph of one batch at the operator's weights.
  void build(Batch& b) {
    if (ggn) {
      b.ggn = detail::ggn_graph(net, params, b.x, mask);
    } else {
      auto loss = torch::nn::functional::cross_entropy(
          detail::masked(net->forward(b.x), mask), b.y,
          torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kSum));
      b.grad = torch::autograd::grad({loss}, params, {}, /*retain_graph=*/true, /*create_graph=*/true);
    }
    b.built = true;
  }
  void release(Batch& b) {
    b.ggn = detail::GgnGraph();
    b.grad.clear();
    b.built = false;
  }
  double scale = 1.0;              // n / n_sub
  int64_t d = 0;
};

TorchCurvature::TorchCurvature(const ModelShape& shape, const std::vector<double>& weights,
                               const Task& task, int shard_rank, int shard_size,
                               Curvature kind, int64_t batch_size,
                               const std::vector<double>& buffers, int64_t subsample, uint64_t seed,
                               int64_t keep_graphs, bool float32, double keep_bytes)
    : impl_(std::make_unique<Impl>()) {
  auto& m = *impl_;
  m.ggn = kind == Curvature::ggn;
  m.net = detail::make_net(shape, 0, task.active_rows);
  m.net->to(torch::kDouble);
  m.net->eval();
  m.params = m.net->parameters();
  for (const auto& p : m.params) m.d += p.numel();
  if (static_cast<int64_t>(weights.size()) != m.d)
    throw std::invalid_argument("curvature: weight vector has " + std::to_string(weights.size()) +
                                " entries, the model " + std::to_string(m.d));
  detail::unflatten(weights.data(), m.params);
  if (!buffers.empty()) detail::unflatten(buffers.data(), detail::float_buffers(*m.net));
  // float32: w* rounded once, the graphs and products in float32, the sums over batches and
  // the Krylov vectors in float64.
  const torch::Dtype dtype = float32 ? torch::kFloat : torch::kDouble;
  if (float32) {
    m.net->to(torch::kFloat);
    m.params = m.net->parameters();
  }
  m.mask = detail::head_mask(shape.k_tot, task.active_rows);
  // This rank's shard (every g-th sample) of the samples the curvature is taken over.
  const auto chosen = curvature_subsample(task.size(), subsample, seed);
  m.scale = double(task.size()) / double(chosen.size());
  std::vector<int64_t> mine;
  for (size_t q = size_t(shard_rank); q < chosen.size(); q += size_t(shard_size)) mine.push_back(chosen[q]);
  const auto idx = torch::tensor(mine, torch::kLong).to(detail::device());
  const auto x = detail::features(task, dtype).index_select(0, idx);
  const auto y = detail::labels(task).index_select(0, idx);
  bool holding = true;
  for (int64_t b0 = 0; b0 < x.size(0); b0 += batch_size) {
    const int64_t b1 = std::min<int64_t>(x.size(0), b0 + batch_size);
    Impl::Batch b;
    b.x = x.slice(0, b0, b1);
    b.y = y.slice(0, b0, b1);
    if (holding && (keep_graphs < 0 || m.kept + (b1 - b0) <= keep_graphs)) {
      const double before = heap_in_use();
      m.build(b);
      const double bytes = std::max(0.0, heap_in_use() - before);
      if (m.kept_bytes + bytes <= keep_bytes) {
        m.kept += b1 - b0;
        m.kept_bytes += bytes;
      } else {  // over the budget: this batch and the rest rebuild their graphs in every product
        m.release(b);
        holding = false;
      }
    }
    m.batches.push_back(std::move(b));
  }
}

TorchCurvature::~TorchCurvature() = default;

int64_t TorchCurvature::kept_samples() const { return impl_->kept; }

double TorchCurvature::kept_bytes() const { return impl_->kept_bytes; }

std::vector<int64_t> curvature_subsample(int64_t n, int64_t count, uint64_t seed) {
  std::vector<int64_t> idx(static_cast<size_t>(n));
  std::iota(idx.begin(), idx.end(), 0);
  if (count <= 0 || count >= n) return idx;
  idx = util::permutation(seed ^ 0xC0FFEE5EEDULL, n);
  idx.resize(static_cast<size_t>(count));
  std::sort(idx.begin(), idx.end());
  return idx;
}

int64_t TorchCurvature::dim() const { return impl_->d; }

void TorchCurvature::apply_shard(const double* v, double* out) { apply_shard_block(v, out, 1); }

void TorchCurvature::apply_shard_block(const double* v, double* out, int64_t count) {
  auto& m = *impl_;
  const auto dev = m.params[0].device();
  const auto dtype = m.params[0].scalar_type();
  // Per vector: its parts shaped like the parameters (in the model's precision), and its
  // accumulator (float64 whatever the model's precision).
  std::vector<std::vector<torch::Tensor>> vs(static_cast<size_t>(count)), acc(static_cast<size_t>(count));
  for (int64_t j = 0; j < count; ++j) {
    int64_t off = 0;
    for (const auto& p : m.params) {
      vs[size_t(j)].push_back(
          torch::from_blob(const_cast<double*>(v + j * m.d + off), p.sizes(), torch::kDouble).to(dev, dtype));
      acc[size_t(j)].push_back(torch::zeros(p.sizes(), torch::TensorOptions(torch::kDouble).device(dev)));
      off += p.numel();
    }
  }
  for (auto& b : m.batches) {
    const bool transient = !b.built;
    if (transient) m.build(b);  // once per pass, for every vector of the block
    for (int64_t j = 0; j < count; ++j) {
      std::vector<torch::Tensor> r;
      if (m.ggn) {
        r = detail::ggn_apply(b.ggn, m.params, vs[size_t(j)]);
      } else {
        r = torch::autograd::grad(b.grad, m.params, vs[size_t(j)], /*retain_graph=*/true);
      }
      for (size_t k = 0; k < r.size(); ++k) acc[size_t(j)][k].add_(r[k]);
    }
    if (transient) m.release(b);
  }
  for (int64_t j = 0; j < count; ++j) {
    int64_t off = 0;
    for (auto& a : acc[size_t(j)]) {
      if (m.scale != 1.0) a.mul_(m.scale);
      auto host = a.to(torch::kCPU).contiguous();
      std::copy(host.data_ptr<double>(), host.data_ptr<double>() + host.numel(), out + j * m.d + off);
      off += host.numel();
    }
  }
}

}  // namespace taskreach
