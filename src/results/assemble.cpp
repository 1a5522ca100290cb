// Assembly of a run's output from its stored measurements (DESIGN §5): the per-task terms of
// C_β, the union matrix, R(i|j) with its paired probe and seed errors, and the job records.
#include <algorithm>
#include <cmath>
#include <ctime>
#include <sstream>

#include "taskreach/complexity.hpp"
#include "taskreach/config.hpp"
#include "taskreach/data.hpp"
#include "taskreach/formulas.hpp"
#include "taskreach/results.hpp"
#include "taskreach/util.hpp"

namespace taskreach {
namespace {

std::string now_iso() {
  std::time_t t = std::time(nullptr);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&t));
  return buf;
}

// The per-probe values `f` of a job averaged over its seeds (the probes are shared by every
// seed and model of a job); empty where the seeds disagree in their count.
std::vector<double> seed_averaged(const std::vector<const Measurement*>& seeds, std::vector<double> Measurement::*f) {
  std::vector<double> q;
  for (const auto* m : seeds) {
    const auto& v = m->*f;
    if (q.empty()) q.assign(v.size(), 0.0);
    if (v.size() != q.size()) return {};
    for (size_t p = 0; p < q.size(); ++p) q[p] += v[p] / double(seeds.size());
  }
  return q;
}

}  // namespace

PairedDifference paired_difference(double beta, const std::vector<const Measurement*>& u,
                                   const std::vector<const Measurement*>& s) {
  PairedDifference d;
  const auto qu = seed_averaged(u, &Measurement::probes), qs = seed_averaged(s, &Measurement::probes);
  const auto hu = seed_averaged(u, &Measurement::probes_half), hs = seed_averaged(s, &Measurement::probes_half);
  for (size_t p = 0; p < qu.size() && p < qs.size(); ++p) d.at_m.push_back(formulas::logdet_term(qu[p] - qs[p], beta));
  for (size_t p = 0; p < hu.size() && p < hs.size(); ++p)
    d.at_half.push_back(formulas::logdet_term(hu[p] - hs[p], beta));
  return d;
}

bool PairedDifference::quadrature_unconverged() const {
  return at_half.size() == at_m.size() && !at_m.empty() &&
         formulas::quadrature_unconverged(std::fabs(formulas::mean(at_m) - formulas::mean(at_half)),
                                          formulas::stderr_of_mean(at_m));
}

void JobRecord::add(const std::string& key, double value) {
  std::ostringstream o;
  // Counts print as integers; other values with 6 significant digits.
  if (std::isfinite(value) && value == std::round(value) && std::fabs(value) < 0x1p53)
    o << static_cast<int64_t>(value);
  else
    o << value;
  add_text(key, o.str());
  if (!std::isnan(value)) metrics[key] = value;
}

void JobRecord::add_text(const std::string& key, const std::string& value) {
  record += (record.empty() ? "" : " ") + key + "=" + value;
}

void assemble_reachability(RunOutput& out, const JobConfig& job, const TaskSet& tasks,
                           const std::vector<PlannedJob>& jobs, const std::vector<std::vector<int64_t>>& job_of,
                           const std::vector<std::vector<const Measurement*>>& by_job) {
  const int64_t N = int64_t(tasks.tasks.size());
  const int64_t S = by_job.empty() ? 1 : int64_t(by_job[0].size());
  const auto& cc = job.complexity;
  const double nan = std::nan("");
  auto seed_values = [&](int64_t j, auto value) {
    std::vector<double> v;
    for (const auto* m : by_job[size_t(j)]) v.push_back(value(*m));
    return v;
  };
  auto seed_mean = [&](int64_t j, double Measurement::*f) {
    return formulas::mean(seed_values(j, [&](const Measurement& m) { return m.*f; }));
  };
  // The probes are shared by every seed (and model) of a job, so the probe error of a seed
  // mean is the standard error over seed-averaged per-probe values, not the per-seed errors
  // combined as if independent.
  auto probe_stderr = [&](int64_t j, std::vector<double> Measurement::*f) {
    return formulas::stderr_of_mean(seed_averaged(by_job[size_t(j)], f));
  };
  auto flags_of = [&](int64_t j) {
    int64_t f = 0;
    for (const auto* m : by_job[size_t(j)]) f |= m->flags;
    return f;
  };
  for (int64_t i = 0; i < N; ++i) {
    const auto& t = tasks.tasks[size_t(i)];
    const int64_t j = job_of[i][i];
    out.task_names.push_back(t.name);
    out.num_samples.push_back(t.size());
    std::vector<int64_t> classes(t.y);
    std::sort(classes.begin(), classes.end());
    out.num_classes.push_back(std::unique(classes.begin(), classes.end()) - classes.begin());
    out.task_status.push_back(status_of(flags_of(j)));
    out.C.push_back(seed_mean(j, &Measurement::C));
    out.loss.push_back(seed_mean(j, &Measurement::loss));
    out.weight_norm2.push_back(seed_mean(j, &Measurement::weight_norm2));
    out.logdet.push_back(seed_mean(j, &Measurement::logdet));
    out.logdet_stderr.push_back(probe_stderr(j, &Measurement::probes));
    out.grad_norm.push_back(seed_mean(j, &Measurement::grad_norm));
    // C's error: the probe error of the log-det term and the between-seed error (unknown, NaN,
    // with one seed), combined.
    const auto c_seeds = seed_values(j, [](const Measurement& m) { return m.C; });
    const auto c_alt_seeds = seed_values(j, [&](const Measurement& m) {
      return complexity(m.loss, m.weight_norm2, m.logdet_alt, cc);
    });
    const double se = formulas::combined_stderr(formulas::logdet_term(out.logdet_stderr.back(), cc.beta),
                                                formulas::stderr_of_mean(c_seeds));
    const double se_alt = formulas::combined_stderr(
        formulas::logdet_term(probe_stderr(j, &Measurement::probes_alt), cc.beta), formulas::stderr_of_mean(c_alt_seeds));
    out.C_stderr.push_back(se);
    const bool laplace = cc.logdet_scale == LogdetScale::laplace;
    out.C_laplace.push_back(laplace ? out.C.back() : formulas::mean(c_alt_seeds));
    out.C_laplace_stderr.push_back(laplace ? se : se_alt);
    out.C_paper.push_back(laplace ? formulas::mean(c_alt_seeds) : out.C.back());
    out.C_paper_stderr.push_back(laplace ? se_alt : se);
    out.trace.push_back(seed_mean(j, &Measurement::trace));
    out.trace_stderr.push_back(probe_stderr(j, &Measurement::trace_probes));
    const auto* m0 = by_job[size_t(j)][0];
    out.spectra.push_back({m0->eigenvalues, m0->residuals, m0->esd_nodes, m0->esd_weights, m0->products,
                           m0->curvature_seconds});
    out.training.push_back({m0->curve, m0->convergence_step, m0->test_accuracy});
  }
  out.unions_C = Matrix<double>(N, N, 0.0);
  out.unions_conflicts = Matrix<int64_t>(N, N, 0);
  out.R = out.R_per_sample = out.stderr_total = out.stderr_probe = out.stderr_seed = out.stderr_probe_unpaired =
      out.dof = out.critical = Matrix<double>(N, N, 0.0);
  out.flags = Matrix<int64_t>(N, N, 0);
  // The probe part of one job's C (seed mean): (β/2)·stderr of its per-probe values.
  auto probe_se = [&](int64_t j) { return formulas::logdet_term(probe_stderr(j, &Measurement::probes), cc.beta); };
  const double probe_dof = double(cc.probes - 1), seed_dof = double(S - 1);
  for (int64_t i = 0; i < N; ++i)
    for (int64_t jj = 0; jj < N; ++jj) {
      const int64_t u = job_of[i][jj], s = job_of[jj][jj];
      out.unions_C(i, jj) = seed_mean(u, &Measurement::C);
      out.unions_conflicts(i, jj) = count_conflicts(jobs[size_t(u)].task);
      const int64_t f = flags_of(u) | flags_of(s);
      int64_t& flag = out.flags(i, jj);
      if (f & job_flag::excluded) flag |= reach_flag::excluded;
      if (f & job_flag::eps_not_converged) flag |= reach_flag::eps_not_converged;
      if (S < 2) flag |= reach_flag::seed_error_unknown;
      if (f & job_flag::diverged) {  // no C, no R
        out.R(i, jj) = out.R_per_sample(i, jj) = out.stderr_probe(i, jj) = out.stderr_seed(i, jj) =
            out.stderr_total(i, jj) = out.stderr_probe_unpaired(i, jj) = out.dof(i, jj) = out.critical(i, jj) = nan;
        continue;
      }
      if (u == s) continue;  // the same sample set: R = 0 exactly, without error
      // R(i|j) = C_β(D_i ∪ D_j) − C_β(D_j)   (paper §2.3)
      std::vector<double> r_seed;
      for (int64_t q = 0; q < S; ++q)
        r_seed.push_back(formulas::reachability(by_job[size_t(u)][size_t(q)]->C, by_job[size_t(s)][size_t(q)]->C));
      // Paired over probes: the same probe vectors for every model of the job.
      const PairedDifference diff = paired_difference(cc.beta, by_job[size_t(u)], by_job[size_t(s)]);
      out.R(i, jj) = formulas::mean(r_seed);
      out.R_per_sample(i, jj) = out.R(i, jj) / double(tasks.tasks[size_t(i)].size());
      out.stderr_probe(i, jj) = formulas::stderr_of_mean(diff.at_m);
      // What the probe error would be with independent probes per model (for comparison).
      out.stderr_probe_unpaired(i, jj) = formulas::combined_stderr(probe_se(u), probe_se(s));
      out.stderr_seed(i, jj) = formulas::stderr_of_mean(r_seed);
      // The quadrature check of the difference itself (each C was checked in its own job;
      // a failing difference had its two jobs rerun at twice the steps before this assembly).
      if (cc.quadrature_check && diff.quadrature_unconverged()) flag |= reach_flag::quadrature | reach_flag::excluded;
      out.stderr_total(i, jj) = formulas::combined_stderr(out.stderr_probe(i, jj), out.stderr_seed(i, jj));
      // Judged with the t quantile of the combined error's degrees of freedom.
      out.dof(i, jj) = formulas::welch_dof(out.stderr_probe(i, jj), probe_dof, out.stderr_seed(i, jj), seed_dof);
      out.critical(i, jj) = util::critical_value(out.dof(i, jj));
      const double bound = out.critical(i, jj) * out.stderr_total(i, jj);
      if (std::isfinite(bound)) {
        if (std::fabs(out.R(i, jj)) > bound) flag |= reach_flag::resolved;
        if (out.R(i, jj) < -bound) flag |= reach_flag::negative;
      }
    }

  for (int64_t s = 0; s < S; ++s)
    for (size_t jb = 0; jb < jobs.size(); ++jb) {
      const auto& m = *by_job[jb][size_t(s)];
      JobRecord r{jobs[jb].name + "/seed" + std::to_string(s), m.status(), m.seconds, {}, {}};
      r.add_text("seed", std::to_string(train_seed(job, s)));
      r.add("gamma", m.weight_decay);
      r.add("lr", job.train.lr);
      r.add("B", double(job.train.batch_size));
      r.add("sgd_steps", double(m.sgd_steps));
      r.add("polish_iters", double(m.polish_iters));
      r.add("polish_passes", double(m.polish_passes));
      r.add("grad_norm", m.grad_norm);
      r.add_text("dtype", std::string(to_string(job.train.dtype)) + "+float64_polish");
      r.add("threads", 1);
      r.add("n", double(jobs[jb].task.size()));
      r.add("hvp", double(m.products));
      r.add("curvature_passes", double(m.curvature_passes));
      r.add("eps_converged", double(m.eps_converged));
      r.add("eps_requested", double(m.eps_requested));
      r.add("lanczos_steps", double(m.lanczos_steps));
      r.add("lanczos_extended", double(m.lanczos_extended));
      r.add("paired_rerun", double(m.paired_rerun));
      r.add("quadrature_change", m.quadrature_change);
      r.add("logdet_stderr", m.logdet_stderr);
      r.add("time_sgd", m.sgd_seconds);
      r.add("time_polish", m.polish_seconds);
      r.add("time_topk", m.topk_seconds);
      r.add("time_slq", m.slq_seconds);
      out.jobs.push_back(std::move(r));
    }
}

void job_attributes(RunOutput& out, const JobConfig& job, int world_size) {
  const auto& cc = job.complexity;
  out.attrs_str["experiment"] = to_string(job.experiment);
  out.attrs_str["config"] = job.text;
  out.attrs_str["created"] = now_iso();
  out.attrs_str["logdet_scale"] = to_string(cc.logdet_scale);
  out.attrs_str["curvature"] = to_string(cc.curvature);
  out.attrs_str["model"] = to_string(job.model.arch);
  out.attrs_str["weight_decay"] = job.train.weight_decay_auto
                                      ? "auto (MAP: beta/(lambda2 n))"
                                      : "explicit: C is not evaluated at the MAP point of its own prior";
  out.attrs_str["torch"] = torch_version();
  out.attrs_str["blas"] = blas_info();
  char v[MPI_MAX_LIBRARY_VERSION_STRING];
  int len = 0;
  MPI_Get_library_version(v, &len);
  const std::string mpi(v, size_t(len));
  out.attrs_str["mpi"] = mpi.substr(0, mpi.find_first_of("\n,"));
  out.attrs_f64["beta"] = cc.beta;
  out.attrs_f64["lambda2"] = cc.lambda2;
  out.attrs_f64["logdet_c"] = job.logdet_c();
  out.attrs_i64["mpi_ranks"] = world_size;
  out.attrs_i64["top_k"] = cc.top_k;
  if (cc.top_k_auto) out.attrs_str["top_k_rule"] = "max(top_k, the job's active head rows)";
  out.attrs_i64["probes"] = cc.probes;
  out.attrs_i64["lanczos_steps"] = cc.lanczos_steps;
  out.attrs_i64["lanczos_max"] = cc.lanczos_max;
  out.attrs_str["curvature_dtype"] = to_string(cc.dtype);
}

}  // namespace taskreach
