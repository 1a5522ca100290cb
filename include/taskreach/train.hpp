#pragma once
// Training (LibTorch behind this torch-free interface): MAP weights w* of
// L_D(w) + β/(2λ²)‖w‖² by SGD, then a full-batch L-BFGS polish, data-parallel over a
// task group's communicator; and the curvature-vector product at w*.
#include <mpi.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "taskreach/config.hpp"
#include "taskreach/curvature.hpp"
#include "taskreach/data.hpp"

namespace taskreach {

struct ModelShape {
  std::string arch = "mlp";
  int64_t in_dim = 0;
  std::vector<int64_t> hidden;
  int64_t k_tot = 0;
};

ModelShape model_shape(const JobConfig& job, const TaskSet& tasks);
int64_t num_parameters(const ModelShape& shape);

struct TrainOutcome {
  std::string status = "ok";     // ok | diverged | not_converged
  std::vector<double> weights;   // w*, flattened in parameter order
  double loss = 0.0;             // L_D(w*), summed, nats
  double weight_norm2 = 0.0;     // ‖w*‖²
  double grad_norm = 0.0;        // ‖∇(L_D + β/(2λ²)‖w‖²)‖ / n at w*
  double weight_decay = 0.0;     // γ used by SGD
  int64_t sgd_steps = 0;
  int64_t polish_iters = 0;
  double seconds = 0.0;
};

// Every rank of `group` holds the whole task; rank r works on the entries r, r+g, … of
// each global batch, so the trajectory does not depend on g up to summation order.
TrainOutcome train_map(MPI_Comm group, const ModelShape& shape, const Task& task,
                       const JobConfig& job, uint64_t seed);

// G v (Gauss–Newton of L_D alone) or H v (exact Hessian of L_D) at fixed weights, on the
// samples r, r+g, … of the task (this rank's shard), in float64. The per-batch graphs are
// built once and reused by every product.
class TorchCurvature final : public CurvatureOperator {
 public:
  TorchCurvature(const ModelShape& shape, const std::vector<double>& weights, const Task& task,
                 int shard_rank, int shard_size, const std::string& kind, int64_t batch_size);
  ~TorchCurvature() override;
  int64_t dim() const override;
  void apply_shard(const double* v, double* out) override;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace taskreach

namespace taskreach {
// Versions of the libraries behind the train module, for the output's root attributes.
std::string torch_version();
std::string blas_info();
}  // namespace taskreach

namespace taskreach {
// Intra-op threads per rank (torch::set_num_threads): 1 unless asked, since several ranks
// share a node's cores.
void set_threads(int threads);
}  // namespace taskreach
