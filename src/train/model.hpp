#pragma once
// Internal to the train module (the only place torch headers are included).
#include <torch/torch.h>

#include <vector>

#include "taskreach/train_model.hpp"  // MPI-free: tests/gpu/ builds this module part with LibTorch alone

namespace taskreach::detail {

// CIFAR-style ResNet basic block; GroupNorm keeps the loss a per-sample sum (shards agree),
// BatchNorm is the option.
struct BlockImpl : torch::nn::Module {
  BlockImpl(int64_t in, int64_t out, int64_t stride, Norm norm);
  torch::Tensor forward(torch::Tensor x);
  torch::nn::Conv2d conv1{nullptr}, conv2{nullptr}, proj{nullptr};
  torch::nn::AnyModule n1, n2, nproj;
};
TORCH_MODULE(Block);

// linear: an affine map to the shared head; mlp: dense layers; cnn: 3×3 convolutions with
// 2×2 average pooling, a dense layer, the head; resnet18: 3×3 stem, no max-pool, 4 stages of
// 2 blocks, global average pooling, the head. Input is [b, C·H·W].
struct NetImpl : torch::nn::Module {
  explicit NetImpl(const ModelShape& shape);
  torch::Tensor forward(torch::Tensor x);  // raw logits [b, k_tot], no mask
  ModelShape shape;
  std::vector<torch::nn::Linear> dense;
  std::vector<torch::nn::Conv2d> convs;
  torch::nn::Conv2d stem{nullptr};
  torch::nn::AnyModule stem_norm;
  std::vector<Block> blocks;
  torch::nn::Linear head{nullptr};
};
TORCH_MODULE(Net);

// Initialised from `seed`; the head rows outside the task's label space(s) start at zero,
// where the mask keeps them (DESIGN §3: C_β(D) does not depend on the rest of the job).
Net make_net(const ModelShape& shape, uint64_t seed, const std::vector<int64_t>& active_rows);

torch::Tensor head_mask(int64_t k_tot, const std::vector<int64_t>& active_rows);  // bool [k_tot]
torch::Tensor masked(const torch::Tensor& logits, const torch::Tensor& mask);    // −∞ off the mask

std::vector<double> flatten(const std::vector<torch::Tensor>& tensors);
// The floating-point buffers (BatchNorm running statistics): the state beside the weights.
std::vector<torch::Tensor> float_buffers(const torch::nn::Module& net);
void unflatten(const double* w, const std::vector<torch::Tensor>& params);

// The task's features and labels as tensors on `device()` (features copied, in `dtype`).
torch::Tensor features(const Task& task, torch::Dtype dtype);
torch::Tensor labels(const Task& task);

// One batch's Gauss–Newton graph at the net's weights: raw logits, their softmax (detached, 0
// off the mask), a dummy u and Jᵀu built with create_graph. ggn_apply gives the batch's
// Jᵀ(diag p − ppᵀ)J v for a vector v shaped like `params` (J v by differentiating Jᵀu in u);
// the graph serves any number of vectors. Shared by the curvature operator and the polish.
struct GgnGraph {
  torch::Tensor logits, p, u;
  std::vector<torch::Tensor> jtu;
};
GgnGraph ggn_graph(Net& net, const std::vector<torch::Tensor>& params, const torch::Tensor& x,
                   const torch::Tensor& mask);
std::vector<torch::Tensor> ggn_apply(const GgnGraph& g, const std::vector<torch::Tensor>& params,
                                     const std::vector<torch::Tensor>& v);

// Indices r, r+g, r+2g, … of [0, n): a rank's shard.
torch::Tensor shard_indices(int64_t n, int rank, int size);

// The device chosen by select_device (CPU by default).
torch::Device device();
// Sets it directly (tests/gpu/ runs the same code on the CPU and on CUDA in one process).
void use_device(torch::Device d);

// The local part of one SGD step: zeroes the gradients of `params`, then back-propagates the
// summed cross-entropy of the masked logits of the samples `rows` of (x, y), divided by
// `batch` (the global batch size). Returns that loss (0 with no rows).
double minibatch_backward(Net& net, const std::vector<torch::Tensor>& params, const torch::Tensor& x,
                          const torch::Tensor& y, const torch::Tensor& mask, const std::vector<int64_t>& rows,
                          int64_t batch);

}  // namespace taskreach::detail
