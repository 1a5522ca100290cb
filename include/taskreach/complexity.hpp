#pragma once
// One measurement of a sample set at one seed: train → polish → curvature → C_β (DESIGN §1),
// and its flat form for exchange between task groups and for the result store. The formulas
// themselves are in formulas.hpp.
#include <mpi.h>

#include <cstdint>
#include <string>
#include <vector>

#include "taskreach/config.hpp"
#include "taskreach/curvature.hpp"
#include "taskreach/data.hpp"
#include "taskreach/formulas.hpp"
#include "taskreach/train.hpp"

namespace taskreach {

// A unique sample set to train and measure: a single task or a union. Equal sample sets
// (same identity) are one job, so R(i|i) = 0 and R(subset|superset) = 0 hold exactly.
struct PlannedJob {
  std::string name;   // "single:A" or "union:A+B"
  Task task;
};

// C_β of the job's settings, eq. 3.
inline double complexity(double loss, double weight_norm2, double logdet, const ComplexityConfig& c) {
  return formulas::complexity(loss, weight_norm2, logdet, c.beta, c.lambda2);
}

// One (job, seed) measurement, flattened for exchange between groups.
struct Measurement {
  std::string status = "ok";
  double seconds = 0, loss = 0, weight_norm2 = 0, logdet = 0, logdet_stderr = 0, grad_norm = 0, C = 0;
  double weight_decay = 0, quadrature_change = 0, curvature_seconds = 0, test_accuracy = -1.0, test_accuracy_sgd = -1.0;
  double logdet_alt = 0, logdet_alt_stderr = 0, trace = 0, trace_stderr = 0;
  int64_t sgd_steps = 0, polish_iters = 0, products = 0, eps_requested = 0, eps_converged = 0;
  int64_t convergence_step = -1;
  std::vector<double> probes, eigenvalues, residuals, curve, esd_nodes, esd_weights;

  static constexpr const char* kStatus[] = {"ok", "diverged", "not_converged", "eps_not_converged"};

  // Every field once, in one order, for pack() and unpack() alike.
  template <typename Self, typename F64, typename I64, typename Vec>
  static void fields(Self& m, F64 f64, I64 i64, Vec vec) {
    for (auto* f : {&m.seconds, &m.loss, &m.weight_norm2, &m.logdet, &m.logdet_stderr, &m.grad_norm, &m.C,
                    &m.weight_decay, &m.quadrature_change, &m.curvature_seconds, &m.test_accuracy, &m.test_accuracy_sgd,
                    &m.logdet_alt, &m.logdet_alt_stderr, &m.trace, &m.trace_stderr})
      f64(*f);
    for (auto* f : {&m.sgd_steps, &m.polish_iters, &m.products, &m.eps_requested, &m.eps_converged,
                    &m.convergence_step})
      i64(*f);
    for (auto* f : {&m.probes, &m.eigenvalues, &m.residuals, &m.curve, &m.esd_nodes, &m.esd_weights}) vec(*f);
  }

  std::vector<double> pack() const {
    std::vector<double> v;
    for (int s = 0; s < 4; ++s)
      if (status == kStatus[s]) v.push_back(s);
    fields(
        *this, [&](double x) { v.push_back(x); }, [&](int64_t x) { v.push_back(double(x)); },
        [&](const std::vector<double>& x) {
          v.push_back(double(x.size()));
          v.insert(v.end(), x.begin(), x.end());
        });
    return v;
  }
  static Measurement unpack(const std::vector<double>& v) {
    Measurement m;
    size_t k = 0;
    m.status = kStatus[static_cast<int>(v[k++])];
    fields(
        m, [&](double& x) { x = v[k++]; }, [&](int64_t& x) { x = static_cast<int64_t>(v[k++]); },
        [&](std::vector<double>& x) {
          const auto n = static_cast<size_t>(v[k++]);
          x.assign(v.begin() + long(k), v.begin() + long(k + n));
          k += n;
        });
    return m;
  }
};

// The layout of a packed Measurement, part of every durable result's key: a result written by
// a build with another layout is never unpacked, it is recomputed.
constexpr const char* kResultFormat = "measurement-v3";

// The seed of repetition s: the same initialisation for every job, so differences pair up.
uint64_t train_seed(const JobConfig& job, int64_t s);

// The spectrum of the job's curvature at `weights`: top-k, and SLQ log det(I + c·G) (c =
// so.c) with the trace, on the group's shards of `task`.
SpectrumResult spectrum_at(MPI_Comm group, const JobConfig& job, const ModelShape& shape, const Task& task,
                           const std::vector<double>& weights, const std::vector<double>& buffers,
                           const SpectrumOptions& so);

// The job's spectrum options: top_k, probes, Lanczos steps, c of logdet_scale (and the other
// convention as c_alt), the job's probe seed.
SpectrumOptions spectrum_options(const JobConfig& job);

// Trains (with `hooks`), polishes, checkpoints and measures one sample set at seed index s.
Measurement measure(MPI_Comm group, const JobConfig& job, const ModelShape& shape, const PlannedJob& pj, int64_t s,
                    const std::string& checkpoint, const TrainHooks& hooks = {});

// Test-only fault injection: when set (by a test build's hook), the jobs for which it returns
// true train at an absurd rate and diverge. Never set in the production binary.
using DivergeHook = bool (*)(const std::string& job_name);
void set_diverge_hook(DivergeHook hook);

}  // namespace taskreach
