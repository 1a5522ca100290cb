#pragma once
// Internal to the train module (the only place torch headers are included).
#include <torch/torch.h>

#include <vector>

#include "taskreach/train.hpp"

namespace taskreach::detail {

// linear: one affine map to the shared head; mlp: ReLU hidden layers, then the head.
struct NetImpl : torch::nn::Module {
  explicit NetImpl(const ModelShape& shape);
  torch::Tensor forward(torch::Tensor x);  // raw logits [b, k_tot], no mask
  torch::nn::Linear head{nullptr};
  std::vector<torch::nn::Linear> hidden;
};
TORCH_MODULE(Net);

// Initialised from `seed`; the head rows outside the task's label space(s) start at zero,
// where the mask keeps them (DESIGN §3: C_β(D) does not depend on the rest of the job).
Net make_net(const ModelShape& shape, uint64_t seed, const std::vector<int64_t>& active_rows);

torch::Tensor head_mask(int64_t k_tot, const std::vector<int64_t>& active_rows);  // bool [k_tot]
torch::Tensor masked(const torch::Tensor& logits, const torch::Tensor& mask);    // −∞ off the mask

std::vector<double> flatten(const std::vector<torch::Tensor>& tensors);
void unflatten(const double* w, const std::vector<torch::Tensor>& params);

// The task's features and labels as tensors (features copied, in `dtype`).
torch::Tensor features(const Task& task, torch::Dtype dtype);
torch::Tensor labels(const Task& task);

// Indices r, r+g, r+2g, … of [0, n): a rank's shard.
torch::Tensor shard_indices(int64_t n, int rank, int size);

}  // namespace taskreach::detail
