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

// What went wrong in a (job, seed) measurement: bits, as many as apply (a job whose polish and
// eigensolver both failed carries both). Diverged: no C. Not converged (polish above grad_tol)
// and quadrature unconverged (the m/2 check failed at 2m): C stored, left out of analysis.
// Eps not converged (fewer top-k pairs than asked): deflating by fewer vectors is still
// unbiased, only noisier, so C and R are kept and flagged.
namespace job_flag {
constexpr int64_t diverged = 1, not_converged = 2, eps_not_converged = 4, quadrature_unconverged = 8;
constexpr int64_t excluded = diverged | not_converged | quadrature_unconverged;  // from analysis
}  // namespace job_flag

// "ok", or the flags' names joined by '+', e.g. "not_converged+eps_not_converged".
std::string status_of(int64_t flags);

// One (job, seed) measurement, flattened for exchange between groups.
struct Measurement {
  int64_t flags = 0;  // job_flag bits
  std::string status() const { return status_of(flags); }
  double seconds = 0, loss = 0, weight_norm2 = 0, logdet = 0, logdet_stderr = 0, grad_norm = 0, C = 0;
  double weight_decay = 0, quadrature_change = 0, curvature_seconds = 0, test_accuracy = -1.0, test_accuracy_sgd = -1.0;
  double logdet_alt = 0, logdet_alt_stderr = 0, trace = 0, trace_stderr = 0;
  // Where the time went: SGD (with its evaluations), the polish, the top-k eigensolver, SLQ.
  double sgd_seconds = 0, polish_seconds = 0, topk_seconds = 0, slq_seconds = 0;
  int64_t sgd_steps = 0, polish_iters = 0, products = 0, eps_requested = 0, eps_converged = 0;
  int64_t lanczos_steps = 0;  // m of the quadrature kept (2m after a failed m/2 check)
  int64_t lanczos_extended = 0;  // 1: the m/2 check failed at the chosen m and the runs went on to 2m
  int64_t curvature_passes = 0;  // passes over the data of the top-k solve and SLQ (block products: one)
  int64_t polish_passes = 0;     // passes over the data of the polish (its preconditioner's included)
  int64_t convergence_step = -1;
  // Not packed, not stored: set by the run that used a paired rerun's result in this job's place.
  int64_t paired_rerun = 0;
  // Per-probe values (the same probes for every model and seed of a job, so errors of seed
  // means and of differences are taken over seed-averaged per-probe values): the log det on
  // the complement at c, at m/2 Lanczos steps, at the other convention's c, and the trace.
  std::vector<double> probes, probes_half, probes_alt, trace_probes;
  std::vector<double> eigenvalues, residuals, curve, esd_nodes, esd_weights;

  // Every field once, in one order, for pack() and unpack() alike.
  template <typename Self, typename F64, typename I64, typename Vec>
  static void fields(Self& m, F64 f64, I64 i64, Vec vec) {
    for (auto* f : {&m.seconds, &m.loss, &m.weight_norm2, &m.logdet, &m.logdet_stderr, &m.grad_norm, &m.C,
                    &m.weight_decay, &m.quadrature_change, &m.curvature_seconds, &m.test_accuracy, &m.test_accuracy_sgd,
                    &m.logdet_alt, &m.logdet_alt_stderr, &m.trace, &m.trace_stderr, &m.sgd_seconds,
                    &m.polish_seconds, &m.topk_seconds, &m.slq_seconds})
      f64(*f);
    for (auto* f : {&m.sgd_steps, &m.polish_iters, &m.products, &m.eps_requested, &m.eps_converged,
                    &m.convergence_step, &m.lanczos_steps, &m.curvature_passes, &m.polish_passes, &m.lanczos_extended})
      i64(*f);
    for (auto* f : {&m.probes, &m.probes_half, &m.probes_alt, &m.trace_probes, &m.eigenvalues, &m.residuals, &m.curve, &m.esd_nodes, &m.esd_weights}) vec(*f);
  }

  std::vector<double> pack() const {
    std::vector<double> v;
    v.push_back(double(flags));
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
    m.flags = static_cast<int64_t>(v[k++]);
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
constexpr const char* kResultFormat = "measurement-v7";

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

// The curvature of a measured job again, with at least `min_steps` Lanczos steps and no
// extension (the rerun of a paired R difference whose m/2 check failed): at the w* of
// `checkpoint` where it exists, else trained again (deterministic). The training's part of
// `base` is kept; the spectrum, log det, C_β and their flags are new.
Measurement remeasure_curvature(MPI_Comm group, const JobConfig& job, const ModelShape& shape, const PlannedJob& pj,
                                int64_t s, const Measurement& base, const std::string& checkpoint,
                                int64_t min_steps);

// Test-only fault injection: when set (by a test build's hook), the jobs for which it returns
// true train at an absurd rate and diverge. Never set in the production binary.
using DivergeHook = bool (*)(const std::string& job_name);
void set_diverge_hook(DivergeHook hook);

}  // namespace taskreach
