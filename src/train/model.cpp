#include "model.hpp"

#include <ATen/Version.h>
#include <torch/version.h>

#include <numeric>
#include <sstream>

namespace taskreach {
namespace detail {
namespace {

torch::Device g_device(torch::kCPU);

torch::nn::AnyModule make_norm(Norm norm, int64_t ch) {
  if (norm == Norm::batch) return torch::nn::AnyModule(torch::nn::BatchNorm2d(ch));
  return torch::nn::AnyModule(torch::nn::GroupNorm(torch::nn::GroupNormOptions(std::gcd<int64_t>(ch, 32), ch)));
}

torch::nn::Conv2d conv3x3(int64_t in, int64_t out, int64_t stride) {
  return torch::nn::Conv2d(torch::nn::Conv2dOptions(in, out, 3).stride(stride).padding(1).bias(false));
}

torch::Tensor act(const torch::Tensor& x, Activation a) { return a == Activation::relu ? torch::relu(x) : torch::tanh(x); }

}  // namespace

BlockImpl::BlockImpl(int64_t in, int64_t out, int64_t stride, Norm norm) {
  conv1 = register_module("conv1", conv3x3(in, out, stride));
  n1 = make_norm(norm, out);
  register_module("n1", n1.ptr());
  conv2 = register_module("conv2", conv3x3(out, out, 1));
  n2 = make_norm(norm, out);
  register_module("n2", n2.ptr());
  if (stride != 1 || in != out) {
    proj = register_module("proj", torch::nn::Conv2d(torch::nn::Conv2dOptions(in, out, 1).stride(stride).bias(false)));
    nproj = make_norm(norm, out);
    register_module("nproj", nproj.ptr());
  }
}

torch::Tensor BlockImpl::forward(torch::Tensor x) {
  auto y = torch::relu(n1.forward(conv1->forward(x)));
  y = n2.forward(conv2->forward(y));
  auto skip = proj ? nproj.forward(proj->forward(x)) : x;
  return torch::relu(y + skip);
}

NetImpl::NetImpl(const ModelShape& s) : shape(s) {
  int64_t in = s.in_dim();
  if (s.arch == Arch::cnn) {
    int64_t c = s.channels, h = s.height, w = s.width;
    for (size_t l = 0; l < s.conv.size(); ++l) {
      convs.push_back(register_module("conv" + std::to_string(l),
                                      torch::nn::Conv2d(torch::nn::Conv2dOptions(c, s.conv[l], 3).padding(1))));
      c = s.conv[l];
      h /= 2;
      w /= 2;
    }
    in = c * h * w;
  } else if (s.arch == Arch::resnet18) {
    const int64_t w0 = s.base_width;
    stem = register_module("stem", conv3x3(s.channels, w0, 1));
    stem_norm = make_norm(s.norm, w0);
    register_module("stem_norm", stem_norm.ptr());
    int64_t c = w0;
    for (int stage = 0; stage < 4; ++stage) {
      const int64_t out = w0 << stage;
      for (int b = 0; b < 2; ++b) {
        blocks.push_back(register_module("block" + std::to_string(stage) + std::to_string(b),
                                         Block(c, out, (stage > 0 && b == 0) ? 2 : 1, s.norm)));
        c = out;
      }
    }
    in = c;
  }
  if (s.arch == Arch::mlp || s.arch == Arch::cnn)
    for (size_t l = 0; l < s.hidden.size(); ++l) {
      dense.push_back(register_module("fc" + std::to_string(l), torch::nn::Linear(in, s.hidden[l])));
      in = s.hidden[l];
    }
  head = register_module("head", torch::nn::Linear(in, s.k_tot));
}

torch::Tensor NetImpl::forward(torch::Tensor x) {
  if (shape.arch == Arch::cnn || shape.arch == Arch::resnet18) x = x.view({x.size(0), shape.channels, shape.height, shape.width});
  if (shape.arch == Arch::cnn) {
    for (auto& c : convs) x = torch::avg_pool2d(act(c->forward(x), shape.activation), 2);
    x = x.flatten(1);
  } else if (shape.arch == Arch::resnet18) {
    x = torch::relu(stem_norm.forward(stem->forward(x)));
    for (auto& b : blocks) x = b->forward(x);
    x = x.mean({2, 3});
  }
  for (auto& layer : dense) x = act(layer->forward(x), shape.activation);
  return head->forward(x);
}

Net make_net(const ModelShape& shape, uint64_t seed, const std::vector<int64_t>& active_rows) {
  torch::manual_seed(seed);
  Net net(shape);
  torch::NoGradGuard no_grad;
  auto inactive = head_mask(shape.k_tot, active_rows).logical_not();
  net->head->weight.index_put_({inactive}, 0.0);
  net->head->bias.index_put_({inactive}, 0.0);
  net->to(g_device);
  return net;
}

torch::Tensor head_mask(int64_t k_tot, const std::vector<int64_t>& active_rows) {
  auto mask = torch::zeros({k_tot}, torch::kBool);
  for (int64_t r : active_rows) mask[r] = true;
  return mask.to(g_device);
}

torch::Tensor masked(const torch::Tensor& logits, const torch::Tensor& mask) {
  return logits.masked_fill(mask.logical_not(), -std::numeric_limits<double>::infinity());
}

std::vector<double> flatten(const std::vector<torch::Tensor>& tensors) {
  std::vector<double> out;
  for (const auto& t : tensors) {
    auto c = t.detach().to(torch::kCPU, torch::kDouble).contiguous().view(-1);
    out.insert(out.end(), c.data_ptr<double>(), c.data_ptr<double>() + c.numel());
  }
  return out;
}

std::vector<torch::Tensor> float_buffers(const torch::nn::Module& net) {
  std::vector<torch::Tensor> out;
  for (const auto& b : net.buffers())
    if (b.is_floating_point()) out.push_back(b);
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
  return x.to(g_device, dtype, /*non_blocking=*/false, /*copy=*/true);
}

torch::Tensor labels(const Task& task) {
  return torch::from_blob(const_cast<int64_t*>(task.y.data()), {task.size()}, torch::kLong).to(g_device, torch::kLong, false, true);
}

torch::Tensor shard_indices(int64_t n, int rank, int size) {
  return torch::arange(rank, n, size, torch::TensorOptions(torch::kLong).device(g_device));
}

torch::Device device() { return g_device; }

void use_device(torch::Device d) { g_device = d; }

double minibatch_backward(Net& net, const std::vector<torch::Tensor>& params, const torch::Tensor& x,
                          const torch::Tensor& y, const torch::Tensor& mask, const std::vector<int64_t>& rows,
                          int64_t batch) {
  namespace F = torch::nn::functional;
  for (auto& p : params) p.mutable_grad() = torch::zeros_like(p);
  if (rows.empty()) return 0.0;
  auto idx = torch::tensor(rows, torch::kLong).to(x.device());
  auto loss = F::cross_entropy(masked(net->forward(x.index_select(0, idx)), mask), y.index_select(0, idx),
                               F::CrossEntropyFuncOptions().reduction(torch::kSum)) /
              static_cast<double>(batch);
  loss.backward();
  return loss.item<double>();
}

}  // namespace detail

ModelShape model_shape(const JobConfig& job, const TaskSet& tasks) {
  ModelShape s;
  s.arch = job.model.arch;
  s.channels = tasks.channels;
  s.height = tasks.height;
  s.width = tasks.width;
  s.hidden = job.model.arch == Arch::linear || job.model.arch == Arch::resnet18 ? std::vector<int64_t>{} : job.model.hidden;
  s.conv = job.model.channels;
  s.base_width = job.model.width;
  s.norm = job.model.norm;
  s.activation = job.model.activation;
  s.k_tot = tasks.k_tot;
  return s;
}

namespace detail {

GgnGraph ggn_graph(Net& net, const std::vector<torch::Tensor>& params, const torch::Tensor& x,
                   const torch::Tensor& mask) {
  GgnGraph g;
  g.logits = net->forward(x);
  g.p = torch::softmax(masked(g.logits.detach(), mask), 1);
  g.u = torch::zeros_like(g.logits).requires_grad_(true);
  g.jtu = torch::autograd::grad({g.logits}, params, {g.u}, /*retain_graph=*/true, /*create_graph=*/true);
  return g;
}

std::vector<torch::Tensor> ggn_apply(const GgnGraph& g, const std::vector<torch::Tensor>& params,
                                     const std::vector<torch::Tensor>& v) {
  auto jv = torch::autograd::grad(g.jtu, {g.u}, v, /*retain_graph=*/true)[0];
  auto mjv = g.p * jv - g.p * (g.p * jv).sum(1, /*keepdim=*/true);  // (diag p − ppᵀ) J v
  return torch::autograd::grad({g.logits}, params, {mjv}, /*retain_graph=*/true);
}

}  // namespace detail

int64_t num_parameters(const ModelShape& shape) {
  if (shape.arch == Arch::linear || shape.arch == Arch::mlp) {  // closed form: no model needed
    int64_t d = 0, in = shape.in_dim();
    for (int64_t h : shape.hidden) {
      d += in * h + h;
      in = h;
    }
    return d + in * shape.k_tot + shape.k_tot;
  }
  detail::Net net(shape);
  int64_t d = 0;
  for (const auto& p : net->parameters()) d += p.numel();
  return d;
}

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

void set_threads(int threads) {
  torch::set_num_threads(std::max(1, threads));
  torch::set_num_interop_threads(1);
}

std::string select_device(int local_rank) {
  if (torch::cuda::is_available() && torch::cuda::device_count() > 0) {
    const int idx = local_rank % static_cast<int>(torch::cuda::device_count());
    detail::g_device = torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(idx));
    return "cuda:" + std::to_string(idx);
  }
  detail::g_device = torch::Device(torch::kCPU);
  return "cpu";
}

}  // namespace taskreach
