// One (job, seed) measurement: MAP training, polish, checkpoint, then the curvature's
// spectrum at the saved w* and C_β (DESIGN §1).
#include "taskreach/complexity.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <utility>

namespace taskreach {

namespace {
DivergeHook g_diverge = nullptr;
}  // namespace

void set_diverge_hook(DivergeHook hook) { g_diverge = hook; }

std::string status_of(int64_t flags) {
  static constexpr std::pair<int64_t, const char*> kNames[] = {
      {job_flag::diverged, "diverged"},
      {job_flag::not_converged, "not_converged"},
      {job_flag::eps_not_converged, "eps_not_converged"},
      {job_flag::quadrature_unconverged, "quadrature_unconverged"}};
  std::string s;
  for (const auto& [bit, name] : kNames)
    if (flags & bit) s += (s.empty() ? "" : "+") + std::string(name);
  return s.empty() ? "ok" : s;
}

uint64_t train_seed(const JobConfig& job, int64_t s) {
  return job.seed * 1000003ULL + static_cast<uint64_t>(s);
}

SpectrumOptions spectrum_options(const JobConfig& job) {
  SpectrumOptions so;
  so.top_k = job.complexity.top_k;
  so.probes = job.complexity.probes;
  so.lanczos_steps = job.complexity.lanczos_steps;
  so.lanczos_max = job.complexity.lanczos_max;
  so.probe_block = job.complexity.probe_block;
  so.c = job.logdet_c();
  // The other convention from the same Lanczos runs: laplace c = λ²/β, paper 2λ²/β.
  const auto& cc = job.complexity;
  so.c_alt = cc.logdet_scale == LogdetScale::paper ? formulas::logdet_c_laplace(cc.beta, cc.lambda2)
                                        : formulas::logdet_c_paper(cc.beta, cc.lambda2);
  so.seed = job.seed;  // the same probes for every model of the job
  so.eps_tol = job.complexity.eps_tol;
  return so;
}

SpectrumResult spectrum_at(MPI_Comm group, const JobConfig& job, const ModelShape& shape, const Task& task,
                           const std::vector<double>& weights, const std::vector<double>& buffers,
                           const SpectrumOptions& so) {
  int rank = 0, size = 1;
  MPI_Comm_rank(group, &rank);
  MPI_Comm_size(group, &size);
  TorchCurvature op(shape, weights, task, rank, size, job.complexity.curvature, job.complexity.batch_size, buffers,
                    job.complexity.samples, job.seed, job.complexity.graph_samples,
                    job.complexity.dtype == DType::float32);
  SpectrumOptions o = so;
  if (job.complexity.top_k_auto) o.top_k = std::max<int64_t>(o.top_k, int64_t(task.active_rows.size()));
  return estimate_spectrum(group, op, o);
}

namespace {
// The curvature part of a measurement at (weights, buffers): the spectrum, the log det and C_β
// into `m` (its training part already there). `min_steps` > 0: at least that many Lanczos steps
// and no extension (a paired rerun is the one extension its jobs get).
void measure_curvature(Measurement& m, MPI_Comm group, const JobConfig& job, const ModelShape& shape,
                       const Task& task, const std::vector<double>& weights, const std::vector<double>& buffers,
                       int64_t min_steps) {
  SpectrumOptions so = spectrum_options(job);
  // The quadrature check: the same probes at m/2 steps must move the log det by less than a
  // third of its probe error. Otherwise the Lanczos runs go on to 2m steps (once); still
  // failing, the job is marked and left out of the analysis.
  so.quadrature_check = job.complexity.quadrature_check && min_steps <= 0;
  so.min_lanczos_steps = std::max<int64_t>(0, min_steps);
  SpectrumResult sp = spectrum_at(group, job, shape, task, weights, buffers, so);
  m.flags &= ~(job_flag::quadrature_unconverged | job_flag::eps_not_converged);
  if (job.complexity.quadrature_check && formulas::quadrature_unconverged(sp.quadrature_change, sp.logdet_stderr))
    m.flags |= job_flag::quadrature_unconverged;
  m.lanczos_steps = sp.lanczos_steps;
  m.lanczos_extended = sp.lanczos_extended ? 1 : 0;
  m.logdet = sp.logdet;
  m.logdet_stderr = sp.logdet_stderr;
  m.quadrature_change = sp.quadrature_change;
  m.probes = sp.probe_values;
  m.probes_half = sp.probe_values_half;
  m.probes_alt = sp.probe_values_alt;
  m.trace_probes = sp.trace_probes;
  m.eigenvalues = sp.eigenvalues;
  m.residuals = sp.residuals;
  m.products = sp.products;
  m.curvature_passes = sp.passes;
  m.curvature_seconds = sp.seconds;
  m.topk_seconds = sp.topk_seconds;
  m.slq_seconds = sp.slq_seconds;
  m.logdet_alt = sp.logdet_alt;
  m.logdet_alt_stderr = sp.logdet_alt_stderr;
  m.trace = sp.trace;
  m.trace_stderr = sp.trace_stderr;
  m.esd_nodes = sp.esd_nodes;
  m.esd_weights = sp.esd_weights;
  m.eps_requested = sp.requested;
  m.eps_converged = sp.converged;
  if (sp.converged < sp.requested) m.flags |= job_flag::eps_not_converged;
  m.C = complexity(m.loss, m.weight_norm2, m.logdet, job.complexity);
}

Measurement measure_with(MPI_Comm group, const JobConfig& job_in, const ModelShape& shape, const PlannedJob& pj,
                         int64_t s, const std::string& checkpoint, const TrainHooks& hooks, int64_t min_steps) {
  const auto t0 = std::chrono::steady_clock::now();
  const Task& task = pj.task;
  Measurement m;
  JobConfig job = job_in;
  // Fault injection (test builds only): the run must record the job and complete the rest.
  if (g_diverge && g_diverge(pj.name)) {
    job.train.lr = 1e6;
    job.train.momentum = 0.0;
  }
  TrainOutcome tr = train_map(group, shape, task, job, train_seed(job, s), checkpoint, hooks);
  m.convergence_step = tr.convergence_step;
  m.test_accuracy = tr.test_accuracy;
  m.test_accuracy_sgd = tr.test_accuracy_sgd;
  for (const auto& c : tr.curve) m.curve.insert(m.curve.end(), c.begin(), c.end());
  if (tr.status == "diverged") m.flags |= job_flag::diverged;
  if (tr.status == "not_converged") m.flags |= job_flag::not_converged;
  m.loss = tr.loss;
  m.weight_norm2 = tr.weight_norm2;
  m.grad_norm = tr.grad_norm;
  m.weight_decay = tr.weight_decay;
  m.sgd_steps = tr.sgd_steps;
  m.polish_iters = tr.polish_iters;
  m.polish_passes = tr.polish_passes;
  m.sgd_seconds = tr.sgd_seconds;
  m.polish_seconds = tr.polish_seconds;
  if (!(m.flags & job_flag::diverged)) {
    // The curvature is evaluated at the saved w*: what a later run (or a user) reads back.
    if (!checkpoint.empty()) {
      MPI_Barrier(group);
      tr.weights = load_checkpoint(shape, checkpoint, &tr.buffers);
    }
    measure_curvature(m, group, job, shape, task, tr.weights, tr.buffers, min_steps);
  } else {
    m.C = m.loss = m.logdet = std::nan("");
  }
  m.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return m;
}
}  // namespace

Measurement measure(MPI_Comm group, const JobConfig& job, const ModelShape& shape, const PlannedJob& pj, int64_t s,
                    const std::string& checkpoint, const TrainHooks& hooks) {
  return measure_with(group, job, shape, pj, s, checkpoint, hooks, 0);
}

Measurement remeasure_curvature(MPI_Comm group, const JobConfig& job, const ModelShape& shape, const PlannedJob& pj,
                                int64_t s, const Measurement& base, const std::string& checkpoint,
                                int64_t min_steps) {
  if (base.flags & job_flag::diverged) return base;  // no w*, no C
  int rank = 0;
  MPI_Comm_rank(group, &rank);
  int have = rank == 0 && !checkpoint.empty() && std::filesystem::exists(checkpoint);
  MPI_Bcast(&have, 1, MPI_INT, 0, group);
  // Without the checkpoint, w* again from the same seed: training is deterministic.
  if (!have) return measure_with(group, job, shape, pj, s, "", {}, min_steps);
  const auto t0 = std::chrono::steady_clock::now();
  Measurement m = base;
  std::vector<double> buffers;
  const std::vector<double> weights = load_checkpoint(shape, checkpoint, &buffers);
  measure_curvature(m, group, job, shape, pj.task, weights, buffers, min_steps);
  // The training's seconds as they were, the curvature's as they are now.
  m.seconds = base.seconds - base.curvature_seconds +
              std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return m;
}

}  // namespace taskreach
