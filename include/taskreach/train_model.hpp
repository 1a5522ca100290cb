#pragma once
// The MPI-free part of the train module's interface (train.hpp includes it): model shapes,
// the torch curvature product at fixed weights, the device and the library versions. What it
// declares is defined in src/train/model.cpp and src/train/curvature_product.cpp, which need
// LibTorch alone, so tests/gpu/ builds them on a GPU machine without MPI, PETSc or HDF5.
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "taskreach/config.hpp"
#include "taskreach/curvature_operator.hpp"
#include "taskreach/data.hpp"

namespace taskreach {

struct ModelShape {
  Arch arch = Arch::mlp;
  int64_t channels = 1, height = 0, width = 0;  // input C×H×W (in_dim = C·H·W)
  std::vector<int64_t> hidden;                  // mlp widths; cnn dense layer
  std::vector<int64_t> conv{16, 32};            // cnn conv channels
  int64_t base_width = 64;                      // resnet18
  Norm norm = Norm::group;                      // resnet18
  Activation activation = Activation::tanh;
  int64_t k_tot = 0;
  int64_t in_dim() const { return channels * height * width; }
};

ModelShape model_shape(const JobConfig& job, const TaskSet& tasks);
int64_t num_parameters(const ModelShape& shape);

// The curvature operator holds graphs for at most keep_graphs samples and, measured as they
// are built (the host heap in use before and after each batch's graph), at most this many bytes
// per rank: a sample's graph takes under 1 kB for a small MLP and ~0.5 MB for the default CNN
// on 28×28 images (3,000 samples held 1,477 MB), so a sample count alone bounds nothing across
// architectures. Device memory is not measured: on a GPU the sample count is the bound.
inline constexpr double kGraphBudgetBytes = 2.0 * 1024 * 1024 * 1024;

// G v (Gauss–Newton of L_D alone) or H v (exact Hessian of L_D) at fixed weights, on the
// samples r, r+g, … of the task (this rank's shard), in float64 (or, with float32, the model
// and its graphs in float32 between float64 vectors), eval mode. The per-batch
// graphs are built once here and reused by every product. With 0 < subsample < n, the
// operator is the sum over a fixed subsample (the samples of curvature_subsample()) scaled
// by n/n_sub.
class TorchCurvature final : public CurvatureOperator {
 public:
  TorchCurvature(const ModelShape& shape, const std::vector<double>& weights, const Task& task,
                 int shard_rank, int shard_size, Curvature kind, int64_t batch_size,
                 const std::vector<double>& buffers = {}, int64_t subsample = 0, uint64_t seed = 0,
                 int64_t keep_graphs = -1, bool float32 = false, double keep_bytes = kGraphBudgetBytes);
  ~TorchCurvature() override;
  // Samples of this shard whose autograd graphs are held for the whole solve (the rest are
  // rebuilt, one micro-batch at a time, in every product), and the host memory they hold.
  int64_t kept_samples() const;
  double kept_bytes() const;
  int64_t dim() const override;
  void apply_shard(const double* v, double* out) override;
  // One pass over the batches for `count` vectors: each batch's graph is built (or found) once
  // and serves every vector; the outputs are bitwise those of apply_shard.
  void apply_shard_block(const double* v, double* out, int64_t count) override;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// The fixed subsample of `count` of the task's n samples used for the curvature: the first
// `count` of a permutation seeded by `seed`, in increasing order (all of them if count ≥ n or 0).
std::vector<int64_t> curvature_subsample(int64_t n, int64_t count, uint64_t seed);

// Versions of the libraries behind the train module, for the output's root attributes.
std::string torch_version();
std::string blas_info();

// Intra-op threads per rank (torch::set_num_threads): 1 unless asked, since several ranks
// share a node's cores.
void set_threads(int threads);

// The device this rank trains on: CUDA device (local_rank mod #GPUs) when LibTorch has
// CUDA and a GPU is visible, else the CPU. Returns a description ("cpu", "cuda:1").
std::string select_device(int local_rank);

}  // namespace taskreach
