#pragma once
// Training (LibTorch behind this torch-free interface): MAP weights w* of
// L_D(w) + β/(2λ²)‖w‖² by SGD, then a full-batch L-BFGS polish, data-parallel over a
// task group's communicator; fine-tuning under a fixed protocol; checkpoints; and the
// curvature-vector product at w*.
#include <mpi.h>

#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "taskreach/config.hpp"
#include "taskreach/curvature.hpp"
#include "taskreach/data.hpp"
#include "taskreach/train_model.hpp"  // ModelShape, TorchCurvature, devices: the MPI-free part

namespace taskreach {

// One evaluation of the whole task during training: step, mean loss (nats), accuracy.
using CurvePoint = std::array<double, 3>;

struct TrainOutcome {
  std::string status = "ok";     // ok | diverged | not_converged
  std::vector<double> weights;   // w*, flattened in parameter order
  std::vector<double> buffers;   // non-trainable state (BatchNorm running statistics), flattened
  double loss = 0.0;             // L_D(w*), summed, nats
  double weight_norm2 = 0.0;     // ‖w*‖²
  double grad_norm = 0.0;        // ‖∇(L_D + β/(2λ²)‖w‖²)‖ / n at w*
  double weight_decay = 0.0;     // γ used by SGD
  int64_t sgd_steps = 0;
  int64_t polish_iters = 0;
  int64_t polish_passes = 0;     // data passes of the polish: f and ∇f, Hessian or block G products
  int64_t convergence_step = -1;  // first evaluated step with mean loss < train.loss_threshold
  std::vector<CurvePoint> curve;  // SGD evaluations every train.eval_every steps
  double test_accuracy = -1.0;    // at w*, when the task has a test split
  double test_accuracy_sgd = -1.0;  // at the end of SGD, before the polish (likewise)
  double seconds = 0.0;
  double sgd_seconds = 0.0, polish_seconds = 0.0;  // the split of `seconds` that matters
};

// What the learning-dynamics experiments change about a training run (all optional).
struct TrainHooks {
  // Critical periods: first `deficit_steps` SGD steps on `deficit` (same protocol, same
  // optimiser state), then the usual run on the task itself.
  const Task* deficit = nullptr;
  int64_t deficit_steps = 0;
  // The effective potential: called on every rank at each evaluation of the SGD run on the
  // task (every train.eval_every steps and at the end) with the evaluation, the weights and the
  // non-trainable buffers (flattened as in TrainOutcome).
  std::function<void(const CurvePoint&, const std::vector<double>& weights, const std::vector<double>& buffers)>
      on_eval;
};

// Every rank of `group` holds the whole task; rank r works on the entries r, r+g, … of
// each global batch, so the trajectory does not depend on g up to summation order.
// With a non-empty `checkpoint`, the model and SGD state at w* are saved there (rank 0).
TrainOutcome train_map(MPI_Comm group, const ModelShape& shape, const Task& task,
                       const JobConfig& job, uint64_t seed, const std::string& checkpoint = "",
                       const TrainHooks& hooks = {});

// The weights (and, if asked, the buffers) stored in a checkpoint written by train_map.
std::vector<double> load_checkpoint(const ModelShape& shape, const std::string& checkpoint,
                                    std::vector<double>* buffers = nullptr);

struct FinetuneOutcome {
  std::string status = "ok";  // ok | not_reached | diverged
  int64_t steps = -1;         // first evaluated step with mean loss ≤ θ; −1: not reached
  int64_t samples = 0;        // samples processed until then (or until the cap)
  double threshold = 0.0;     // θ used (set by the scratch run)
  // Scratch runs: max − min of the evaluations θ is the median of, and whether that spread
  // exceeds finetune.loss_margin (the run still oscillates: θ is unstable). Automatic θ only.
  double spread = 0.0;
  bool unstable = false;
  std::vector<CurvePoint> curve;
  double seconds = 0.0;
};

// The fine-tune protocol from scratch (random init of `seed`) on `task`: runs
// finetune.max_steps steps; θ = median of the last 10 evaluations + loss_margin (or the
// fixed threshold), and steps = the first evaluation at or below θ: T(i|i).
FinetuneOutcome finetune_scratch(MPI_Comm group, const ModelShape& shape, const Task& task,
                                 const JobConfig& job, uint64_t seed);

// T(i|j): the same protocol from `source_weights` (w*_j) until the mean loss of `task` ≤ θ.
FinetuneOutcome finetune_from(MPI_Comm group, const ModelShape& shape, const Task& task,
                              const JobConfig& job, const std::vector<double>& source_weights,
                              double threshold, uint64_t seed);

}  // namespace taskreach
