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

namespace taskreach {
namespace {

std::string now_iso() {
  std::time_t t = std::time(nullptr);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&t));
  return buf;
}

}  // namespace

void assemble_reachability(RunOutput& out, const JobConfig& job, const TaskSet& tasks,
                           const std::vector<PlannedJob>& jobs, const std::vector<std::vector<int64_t>>& job_of,
                           const std::vector<std::vector<const Measurement*>>& by_job) {
  const int64_t N = int64_t(tasks.tasks.size());
  const int64_t S = by_job.empty() ? 1 : int64_t(by_job[0].size());
  const auto& cc = job.complexity;
  auto seed_mean = [&](int64_t j, double Measurement::*f) {
    std::vector<double> v;
    for (const auto* m : by_job[size_t(j)]) v.push_back(m->*f);
    return formulas::mean(v);
  };
  auto failed = [&](int64_t j) {
    for (const auto* m : by_job[size_t(j)])
      if (m->status == "diverged" || m->status == "eps_not_converged") return true;
    return false;
  };
  for (int64_t i = 0; i < N; ++i) {
    const auto& t = tasks.tasks[size_t(i)];
    const int64_t j = job_of[i][i];
    out.task_names.push_back(t.name);
    out.num_samples.push_back(t.size());
    std::vector<int64_t> classes(t.y);
    std::sort(classes.begin(), classes.end());
    out.num_classes.push_back(std::unique(classes.begin(), classes.end()) - classes.begin());
    out.C.push_back(seed_mean(j, &Measurement::C));
    out.loss.push_back(seed_mean(j, &Measurement::loss));
    out.weight_norm2.push_back(seed_mean(j, &Measurement::weight_norm2));
    out.logdet.push_back(seed_mean(j, &Measurement::logdet));
    // Probe error of the seed mean: per-seed errors combined.
    double v = 0;
    for (const auto* m : by_job[size_t(j)]) v += m->logdet_stderr * m->logdet_stderr;
    out.logdet_stderr.push_back(std::sqrt(v) / double(S));
    out.grad_norm.push_back(seed_mean(j, &Measurement::grad_norm));
    // C's error: the probe error of the log-det term and the between-seed error, combined.
    std::vector<double> c_seeds, c_alt_seeds;
    double v_alt = 0;
    for (const auto* m : by_job[size_t(j)]) {
      c_seeds.push_back(m->C);
      c_alt_seeds.push_back(complexity(m->loss, m->weight_norm2, m->logdet_alt, cc));
      v_alt += m->logdet_alt_stderr * m->logdet_alt_stderr;
    }
    const double se = formulas::combined_stderr(formulas::logdet_term(out.logdet_stderr.back(), cc.beta), formulas::stderr_of_mean(c_seeds));
    const double se_alt = formulas::combined_stderr(formulas::logdet_term(std::sqrt(v_alt) / double(S), cc.beta), formulas::stderr_of_mean(c_alt_seeds));
    out.C_stderr.push_back(se);
    const bool laplace = cc.logdet_scale == LogdetScale::laplace;
    out.C_laplace.push_back(laplace ? out.C.back() : formulas::mean(c_alt_seeds));
    out.C_laplace_stderr.push_back(laplace ? se : se_alt);
    out.C_paper.push_back(laplace ? formulas::mean(c_alt_seeds) : out.C.back());
    out.C_paper_stderr.push_back(laplace ? se_alt : se);
    out.trace.push_back(seed_mean(j, &Measurement::trace));
    double v_tr = 0;
    for (const auto* m : by_job[size_t(j)]) v_tr += m->trace_stderr * m->trace_stderr;
    out.trace_stderr.push_back(std::sqrt(v_tr) / double(S));
    const auto* m0 = by_job[size_t(j)][0];
    out.spectra.push_back({m0->eigenvalues, m0->residuals, m0->esd_nodes, m0->esd_weights, m0->products,
                           m0->curvature_seconds});
    out.training.push_back({m0->curve, m0->convergence_step, m0->test_accuracy});
  }
  out.unions_C = Matrix<double>(N, N, 0.0);
  out.unions_conflicts = Matrix<int64_t>(N, N, 0);
  out.R = out.R_per_sample = out.stderr_total = out.stderr_probe = out.stderr_seed = out.stderr_probe_unpaired =
      Matrix<double>(N, N, 0.0);
  // The probe part of one job's C (seed mean): (β/2)·stderr of its per-probe values.
  auto probe_se = [&](int64_t j) {
    std::vector<double> q(by_job[size_t(j)][0]->probes.size(), 0.0);
    for (const auto* m : by_job[size_t(j)])
      for (size_t p = 0; p < q.size(); ++p) q[p] += formulas::logdet_term(m->probes[p], cc.beta) / double(S);
    return formulas::stderr_of_mean(q);
  };
  const double nan = std::nan("");
  for (int64_t i = 0; i < N; ++i)
    for (int64_t jj = 0; jj < N; ++jj) {
      const int64_t u = job_of[i][jj], s = job_of[jj][jj];
      out.unions_C(i, jj) = seed_mean(u, &Measurement::C);
      out.unions_conflicts(i, jj) = count_conflicts(jobs[size_t(u)].task);
      // R(i|j) = C_β(D_i ∪ D_j) − C_β(D_j)   (paper §2.3)
      std::vector<double> r_seed;
      for (int64_t q = 0; q < S; ++q) r_seed.push_back(formulas::reachability(by_job[size_t(u)][size_t(q)]->C, by_job[size_t(s)][size_t(q)]->C));
      // Paired over probes: the same probe vectors for every model of the job.
      std::vector<double> dp;
      const size_t P = by_job[size_t(u)][0]->probes.size();
      for (size_t p = 0; p < P; ++p) {
        double du = 0, ds = 0;
        for (int64_t q = 0; q < S; ++q) {
          du += by_job[size_t(u)][size_t(q)]->probes[p];
          ds += by_job[size_t(s)][size_t(q)]->probes[p];
        }
        dp.push_back(formulas::logdet_term(du - ds, cc.beta) / double(S));
      }
      const bool bad = failed(u) || failed(s);
      out.R(i, jj) = bad ? nan : (u == s ? 0.0 : formulas::mean(r_seed));
      out.R_per_sample(i, jj) = out.R(i, jj) / double(tasks.tasks[size_t(i)].size());
      out.stderr_probe(i, jj) = bad ? nan : formulas::stderr_of_mean(dp);
      // What the probe error would be with independent probes per model (for comparison).
      out.stderr_probe_unpaired(i, jj) = bad ? nan : (u == s ? 0.0 : formulas::combined_stderr(probe_se(u), probe_se(s)));
      out.stderr_seed(i, jj) = bad ? nan : formulas::stderr_of_mean(r_seed);
      out.stderr_total(i, jj) = formulas::combined_stderr(out.stderr_probe(i, jj), out.stderr_seed(i, jj));
    }

  for (int64_t s = 0; s < S; ++s)
    for (size_t jb = 0; jb < jobs.size(); ++jb) {
      const auto& m = *by_job[jb][size_t(s)];
      std::ostringstream rec;
      rec << "seed=" << train_seed(job, s) << " gamma=" << m.weight_decay << " lr=" << job.train.lr
          << " B=" << job.train.batch_size << " sgd_steps=" << m.sgd_steps << " polish_iters=" << m.polish_iters
          << " grad_norm=" << m.grad_norm << " dtype=" << to_string(job.train.dtype) << "+float64_polish threads=1"
          << " n=" << jobs[jb].task.size() << " hvp=" << m.products
          << " eps=" << m.eps_converged << "/" << m.eps_requested << " quadrature_change=" << m.quadrature_change
          << " logdet_stderr=" << m.logdet_stderr << " curvature_samples="
          << (cc.samples > 0 ? std::min<int64_t>(cc.samples, jobs[jb].task.size()) : jobs[jb].task.size())
          << " curvature_subsample_seed=" << job.seed;
      out.jobs.push_back({jobs[jb].name + "/seed" + std::to_string(s), m.status, m.seconds, rec.str()});
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
  out.attrs_i64["probes"] = cc.probes;
  out.attrs_i64["lanczos_steps"] = cc.lanczos_steps;
}

}  // namespace taskreach
