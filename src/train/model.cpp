#include "model.hpp"

#include <cstring>

namespace taskreach {

ModelShape model_shape(const JobConfig& job, const TaskSet& tasks) {
  ModelShape s;
  s.arch = job.model.arch;
  s.in_dim = tasks.channels * tasks.height * tasks.width;
  s.hidden = job.model.arch == "linear" ? std::vector<int64_t>{} : job.model.hidden;
  s.k_tot = tasks.k_tot;
  return s;
}

int64_t num_parameters(const ModelShape& shape) {
  int64_t d = 0, in = shape.in_dim;
  for (int64_t h : shape.hidden) {
    d += in * h + h;
    in = h;
  }
  return d + in * shape.k_tot + shape.k_tot;
}

namespace detail {

NetImpl::NetImpl(const ModelShape& shape) {
  int64_t in = shape.in_dim;
  for (size_t l = 0; l < shape.hidden.size(); ++l) {
    hidden.push_back(register_module("fc" + std::to_string(l), torch::nn::Linear(in, shape.hidden[l])));
    in = shape.hidden[l];
  }
  head = register_module("head", torch::nn::Linear(in, shape.k_tot));
}

torch::Tensor NetImpl::forward(torch::Tensor x) {
  for (auto& layer : hidden) x = torch::tanh(layer->forward(x));
  return head->forward(x);
}

Net make_net(const ModelShape& shape, uint64_t seed, const std::vector<int64_t>& active_rows) {
  torch::manual_seed(seed);
  Net net(shape);
  torch::NoGradGuard no_grad;
  auto inactive = head_mask(shape.k_tot, active_rows).logical_not();
  net->head->weight.index_put_({inactive}, 0.0);
  net->head->bias.index_put_({inactive}, 0.0);
  return net;
}

torch::Tensor head_mask(int64_t k_tot, const std::vector<int64_t>& active_rows) {
  auto mask = torch::zeros({k_tot}, torch::kBool);
  for (int64_t r : active_rows) mask[r] = true;
  return mask;
}

torch::Tensor masked(const torch::Tensor& logits, const torch::Tensor& mask) {
  return logits.masked_fill(mask.logical_not(), -std::numeric_limits<double>::infinity());
}

std::vector<double> flatten(const std::vector<torch::Tensor>& tensors) {
  std::vector<double> out;
  for (const auto& t : tensors) {
    auto c = t.detach().to(torch::kDouble).contiguous().view(-1);
    out.insert(out.end(), c.data_ptr<double>(), c.data_ptr<double>() + c.numel());
  }
  return out;
}

void unflatten(const double* w, const std::vector<torch::Tensor>& params) {
  torch::NoGradGuard no_grad;
  int64_t off = 0;
  for (const auto& p : params) {
    auto src = torch::from_blob(const_cast<double*>(w + off), p.sizes(), torch::kDouble);
    p.copy_(src);
    off += p.numel();
  }
}

torch::Tensor features(const Task& task, torch::Dtype dtype) {
  auto x = torch::from_blob(const_cast<float*>(task.x.data()), {task.size(), task.dim}, torch::kFloat);
  return x.to(dtype, /*non_blocking=*/false, /*copy=*/true);
}

torch::Tensor labels(const Task& task) {
  return torch::from_blob(const_cast<int64_t*>(task.y.data()), {task.size()}, torch::kLong).clone();
}

torch::Tensor shard_indices(int64_t n, int rank, int size) {
  return torch::arange(rank, n, size, torch::kLong);
}

}  // namespace detail
}  // namespace taskreach

#include <torch/version.h>
#include <ATen/Version.h>
#include <sstream>

namespace taskreach {
std::string torch_version() { return TORCH_VERSION; }
std::string blas_info() {
  // The BLAS LibTorch was built against, from its build configuration.
  std::istringstream cfg(at::show_config());
  std::string line;
  while (std::getline(cfg, line))
    if (line.find("BLAS_INFO") != std::string::npos) {
      auto b = line.find_first_not_of(" -");
      return line.substr(b == std::string::npos ? 0 : b);
    }
  return "unknown";
}
}  // namespace taskreach

namespace taskreach {
void set_threads(int threads) {
  torch::set_num_threads(std::max(1, threads));
  torch::set_num_interop_threads(1);
}
}  // namespace taskreach
