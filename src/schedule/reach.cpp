// The reachability run (DESIGN §4): task groups of `ranks_per_task` ranks, each job trained,
// polished and measured on its group's communicator, results exchanged, C_β and R assembled.
#include <algorithm>
#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <chrono>
#include <cmath>
#include <ctime>
#include <iomanip>
#include <map>
#include <numeric>
#include <sstream>

#include "measure.hpp"
#include "scheduler.hpp"
#include "taskreach/curvature.hpp"
#include "taskreach/schedule.hpp"
#include "taskreach/statistics.hpp"
#include "taskreach/train.hpp"

namespace taskreach {
namespace {

using detail::complexity;
using detail::Measurement;
using detail::measure;
using detail::train_seed;

double mean_of(const std::vector<double>& v) {
  return v.empty() ? std::nan("") : std::accumulate(v.begin(), v.end(), 0.0) / double(v.size());
}
// Standard error of the mean of v.
double stderr_of(const std::vector<double>& v) {
  if (v.size() < 2) return 0.0;
  const double m = mean_of(v);
  double s = 0;
  for (double x : v) s += (x - m) * (x - m);
  return std::sqrt(s / double(v.size() - 1) / double(v.size()));
}

std::string now_iso() {
  std::time_t t = std::time(nullptr);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&t));
  return buf;
}

// /analysis (DESIGN §5): does R rank the measured fine-tune cost T(i|j)? Over the off-diagonal
// pairs that were reached and whose R is resolved (|R| > 3·stderr): Spearman of R against T,
// Pearson of R against log(1 + T) (T = 0 happens: the source already meets θ_i), and Kendall's
// τ_b within each target (sources ranked per target, averaged over targets with ≥ 3 of them);
// the same for simple predictors of T, and the partial correlation of R and T given T(i|i).
void analyse(RunOutput& out, const Matrix<double>& loss_at_source) {
  const int64_t N = int64_t(out.task_names.size());
  struct Pair { int64_t i, j; };
  std::vector<Pair> used;
  for (int64_t i = 0; i < N; ++i)
    for (int64_t j = 0; j < N; ++j)
      if (i != j && out.finetune_steps(i, j) >= 0 && std::isfinite(out.R(i, j)) &&
          std::fabs(out.R(i, j)) > 3.0 * out.stderr_total(i, j))
        used.push_back({i, j});
  out.analysis_i64["pairs_used"] = int64_t(used.size());
  std::vector<double> T, logT, scratch;
  for (const auto& p : used) {
    T.push_back(double(out.finetune_steps(p.i, p.j)));
    logT.push_back(std::log1p(T.back()));
    scratch.push_back(double(out.finetune_steps(p.i, p.i)));
  }
  auto statistics = [&](const std::string& prefix, const std::function<double(int64_t, int64_t)>& x) {
    std::vector<double> xs;
    for (const auto& p : used) xs.push_back(x(p.i, p.j));
    out.analysis[prefix + "spearman_T"] = spearman(xs, T);
    out.analysis[prefix + "pearson_logT"] = pearson(xs, logT);
    double sum = 0;
    int targets = 0;
    for (int64_t i = 0; i < N; ++i) {
      std::vector<double> xi, ti;
      for (size_t k = 0; k < used.size(); ++k)
        if (used[k].i == i) {
          xi.push_back(xs[k]);
          ti.push_back(T[k]);
        }
      const double tau = xi.size() >= 3 ? kendall_tau_b(xi, ti) : NAN;
      if (std::isfinite(tau)) {
        sum += tau;
        ++targets;
      }
    }
    out.analysis[prefix + "kendall_within_target"] = targets ? sum / targets : NAN;
    return xs;
  };
  auto r = statistics("", [&](int64_t i, int64_t j) { return out.R(i, j); });
  // The schema's names for R itself.
  out.analysis["spearman_R_T"] = out.analysis["spearman_T"];
  out.analysis["pearson_R_logT"] = out.analysis["pearson_logT"];
  out.analysis.erase("spearman_T");
  out.analysis.erase("pearson_logT");
  statistics("baselines/scratch_cost/", [&](int64_t i, int64_t) { return double(out.finetune_steps(i, i)); });
  statistics("baselines/loss_at_source/", [&](int64_t i, int64_t j) { return loss_at_source(i, j); });
  statistics("baselines/target_complexity/", [&](int64_t i, int64_t) { return out.C[size_t(i)]; });
  out.analysis["partial_spearman_R_T_given_scratch"] = partial_spearman(r, T, scratch);
}

}  // namespace

Plan make_plan(const JobConfig& job, const TaskSet& tasks) {
  Plan plan;
  const auto N = static_cast<int64_t>(tasks.tasks.size());
  plan.n_tasks = N;
  plan.seeds = job.train.seeds;
  ModelShape shape = model_shape(job, tasks);
  plan.d = num_parameters(shape);
  plan.job_of.assign(size_t(N), std::vector<int64_t>(size_t(N), -1));
  std::map<uint64_t, int64_t> by_identity;
  auto add = [&](Task t, const std::string& name) {
    auto it = by_identity.find(t.identity);
    if (it != by_identity.end()) return it->second;
    plan.jobs.push_back({name, std::move(t)});
    return by_identity[plan.jobs.back().task.identity] = int64_t(plan.jobs.size()) - 1;
  };
  for (int64_t i = 0; i < N; ++i) plan.job_of[i][i] = add(tasks.tasks[size_t(i)], "single:" + tasks.tasks[size_t(i)].name);
  for (int64_t i = 0; i < N; ++i)
    for (int64_t j = i + 1; j < N; ++j) {
      const auto& a = tasks.tasks[size_t(i)];
      const auto& b = tasks.tasks[size_t(j)];
      plan.job_of[i][j] = plan.job_of[j][i] = add(unite(a, b, a.name + "+" + b.name), "union:" + a.name + "+" + b.name);
    }
  return plan;
}

std::string describe_plan(const JobConfig& job, const TaskSet& tasks, const Plan& plan, int world_size) {
  std::ostringstream o;
  const int64_t g = std::min<int64_t>(job.ranks_per_task, world_size);
  o << "job " << job.path << (job.name.empty() ? "" : " (" + job.name + ")") << "\n";
  o << "input " << tasks.channels << "x" << tasks.height << "x" << tasks.width << ", shared head K_tot = "
    << tasks.k_tot << ", model " << job.model.arch << ", d = " << plan.d << " parameters\n";
  o << "tasks (" << plan.n_tasks << "):\n";
  for (const auto& t : tasks.tasks)
    o << "  " << std::left << std::setw(20) << t.name << " n = " << t.size() << ", label rows "
      << t.active_rows.size() << "\n";
  int64_t unions = 0;
  for (const auto& j : plan.jobs) unions += j.name.rfind("union:", 0) == 0;
  o << "jobs: " << plan.n_tasks << " singles + " << unions << " distinct unions (of "
    << plan.n_tasks * (plan.n_tasks - 1) / 2 << " pairs; equal sample sets are one job) x " << plan.seeds
    << " seeds = " << plan.work_items() << " trainings\n";
  for (const auto& j : plan.jobs) o << "  " << j.name << "  n = " << j.task.size() << "\n";
  o << "groups: " << std::max<int64_t>(1, world_size / g) << " of " << g << " rank(s) on " << world_size
    << " rank(s)\n";
  o << "curvature: " << job.complexity.curvature << ", top-" << job.complexity.top_k << " + SLQ "
    << job.complexity.probes << " probes x " << job.complexity.lanczos_steps << " steps; c = " << job.logdet_c()
    << " (" << job.complexity.logdet_scale << ")\n";
  return o.str();
}

namespace {

std::string checkpoint_path(const std::string& workdir, uint64_t key) {
  if (workdir.empty()) return {};
  char b[17];
  std::snprintf(b, sizeof b, "%016llx", static_cast<unsigned long long>(key));
  return workdir + "/ckpt/" + b + ".pt";
}

std::string id(uint64_t v) { return std::to_string(v); }

}  // namespace

RunOutput run_reachability(MPI_Comm world, const JobConfig& job, const TaskSet& tasks, const Plan& plan,
                           const RunOptions& options) {
  int rank = 0, world_size = 1;
  MPI_Comm_rank(world, &rank);
  MPI_Comm_size(world, &world_size);
  const std::string& workdir = options.workdir;
  if (rank == 0 && !workdir.empty()) std::filesystem::create_directories(workdir + "/ckpt");
  detail::Scheduler sched(world, job.ranks_per_task, workdir.empty() ? "" : workdir + "/jobs", options.resume,
                          rank == 0 ? options.progress : nullptr);
  const ModelShape shape = model_shape(job, tasks);
  // Every durable result is keyed by everything it depends on: the program version, the job
  // file verbatim, and the item itself. An edited job file never reuses a stale result.
  auto key = [&](std::vector<std::string> parts) {
    parts.insert(parts.begin(), {TASKREACH_VERSION, detail::kResultFormat, job.text});
    return detail::hash_parts(parts);
  };

  // --- phase 1: every distinct sample set x seed: train, polish, curvature, C_β.
  struct Item { int64_t job, seed; };
  std::vector<Item> items;
  detail::Phase p1{"complexity (train, polish, curvature)", {}, {}, {}};
  for (int64_t s = 0; s < plan.seeds; ++s)
    for (int64_t j = 0; j < int64_t(plan.jobs.size()); ++j) {
      const auto& pj = plan.jobs[size_t(j)];
      items.push_back({j, s});
      p1.cost.push_back(double(pj.task.size()));
      p1.key.push_back(key({"measure", id(pj.task.identity), id(uint64_t(s))}));
      p1.label.push_back(pj.name + " seed " + std::to_string(s));
    }
  std::vector<Measurement> ms(items.size());
  auto packed = sched.run(
      p1,
      [&](size_t k) {
        const auto& pj = plan.jobs[size_t(items[k].job)];
        return measure(sched.group(), job, shape, pj, items[k].seed, checkpoint_path(workdir, p1.key[k])).pack();
      },
      // A result is reusable only with the checkpoint that fine-tuning starts from.
      [&](size_t k) { return workdir.empty() || std::filesystem::exists(checkpoint_path(workdir, p1.key[k])); });
  for (size_t k = 0; k < items.size(); ++k) ms[k] = Measurement::unpack(packed[k]);

  // --- phase 2: fine-tune cost. From scratch on each task (θ_i and T(i|i)), then from w*_j.
  const int64_t N = plan.n_tasks;
  std::vector<FinetuneOutcome> scratch(static_cast<size_t>(N));
  Matrix<int64_t> ft_steps(N, N, -1), ft_samples(N, N, 0);
  Matrix<double> loss_at_source(N, N, std::nan(""));
  std::vector<std::string> ft_status(size_t(N * N), "");
  std::vector<double> ft_seconds(size_t(N * N), 0.0);
  const bool do_finetune = job.finetune.enabled && !workdir.empty();
  if (do_finetune) {
    detail::Phase p2{"fine-tune protocol from scratch", {}, {}, {}};
    for (int64_t i = 0; i < N; ++i) {
      const auto& t = tasks.tasks[size_t(i)];
      p2.cost.push_back(double(t.size()));
      p2.key.push_back(key({"scratch", id(t.identity)}));
      p2.label.push_back("scratch:" + t.name);
    }
    auto r2 = sched.run(p2, [&](size_t i) {
      auto o = finetune_scratch(sched.group(), shape, tasks.tasks[i], job, train_seed(job, 0));
      return std::vector<double>{double(o.steps), double(o.samples), o.threshold, o.seconds,
                                 o.status == "diverged" ? 1.0 : 0.0};
    });
    for (int64_t i = 0; i < N; ++i) {
      const auto& v = r2[size_t(i)];
      auto& sc = scratch[size_t(i)];
      sc.steps = int64_t(v[0]);
      sc.samples = int64_t(v[1]);
      sc.threshold = v[2];
      sc.seconds = v[3];
      sc.status = v[4] > 0 ? "diverged" : (v[0] < 0 ? "not_reached" : "ok");
      ft_steps(i, i) = sc.steps;
      ft_samples(i, i) = sc.samples;
      ft_status[size_t(i * N + i)] = sc.status;
      ft_seconds[size_t(i * N + i)] = sc.seconds;
    }
    // finetune(i ← j) starts from the saved w*_j of single(j), seed 0.
    std::vector<std::pair<int64_t, int64_t>> pairs;
    detail::Phase p3{"fine-tune T(i|j)", {}, {}, {}};
    for (int64_t i = 0; i < N; ++i)
      for (int64_t j = 0; j < N; ++j)
        if (i != j) {
          pairs.push_back({i, j});
          const auto& ti = tasks.tasks[size_t(i)];
          const auto& tj = tasks.tasks[size_t(j)];
          p3.cost.push_back(double(ti.size()));
          p3.key.push_back(key({"finetune", id(ti.identity), id(tj.identity)}));
          p3.label.push_back("finetune:" + ti.name + "<-" + tj.name);
        }
    auto r3 = sched.run(p3, [&](size_t k) {
      const auto [i, j] = pairs[k];
      const double theta = scratch[size_t(i)].threshold;
      const size_t source_item = size_t(plan.job_of[j][j]);  // seed 0 items come first
      std::vector<double> w = load_checkpoint(shape, checkpoint_path(workdir, p1.key[source_item]));
      FinetuneOutcome o = std::isfinite(theta) ? finetune_from(sched.group(), shape, tasks.tasks[size_t(i)], job, w,
                                                               theta, train_seed(job, 0))
                                               : FinetuneOutcome{"diverged", -1, 0, theta, {}, 0.0};
      // The first evaluation, before any step: the loss of task i at w*_j (a baseline for T).
      const double l0 = o.curve.empty() ? std::nan("") : o.curve.front()[1];
      return std::vector<double>{double(o.steps), double(o.samples), o.seconds, o.status == "diverged" ? 1.0 : 0.0, l0};
    });
    for (size_t k = 0; k < pairs.size(); ++k) {
      const auto [i, j] = pairs[k];
      const auto& v = r3[k];
      ft_steps(i, j) = int64_t(v[0]);
      ft_samples(i, j) = int64_t(v[1]);
      ft_seconds[size_t(i * N + j)] = v[2];
      ft_status[size_t(i * N + j)] = v[3] > 0 ? "diverged" : (v[0] < 0 ? "not_reached" : "ok");
      loss_at_source(i, j) = v[4];
    }
  }

  // --- assembly. by_job[j][s]: the measurement of job j with seed s.
  const int64_t S = plan.seeds;
  std::vector<std::vector<const Measurement*>> by_job(plan.jobs.size(), std::vector<const Measurement*>(size_t(S)));
  for (size_t k = 0; k < items.size(); ++k) by_job[size_t(items[k].job)][size_t(items[k].seed)] = &ms[k];
  const auto& cc = job.complexity;
  RunOutput out;
  auto seed_mean = [&](int64_t j, double Measurement::*f) {
    std::vector<double> v;
    for (const auto* m : by_job[size_t(j)]) v.push_back(m->*f);
    return mean_of(v);
  };
  auto failed = [&](int64_t j) {
    for (const auto* m : by_job[size_t(j)])
      if (m->status == "diverged" || m->status == "eps_not_converged") return true;
    return false;
  };
  for (int64_t i = 0; i < N; ++i) {
    const auto& t = tasks.tasks[size_t(i)];
    const int64_t j = plan.job_of[i][i];
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
    const double se = std::hypot(0.5 * cc.beta * out.logdet_stderr.back(), stderr_of(c_seeds));
    const double se_alt = std::hypot(0.5 * cc.beta * std::sqrt(v_alt) / double(S), stderr_of(c_alt_seeds));
    out.C_stderr.push_back(se);
    const bool laplace = cc.logdet_scale == "laplace";
    out.C_laplace.push_back(laplace ? out.C.back() : mean_of(c_alt_seeds));
    out.C_laplace_stderr.push_back(laplace ? se : se_alt);
    out.C_paper.push_back(laplace ? mean_of(c_alt_seeds) : out.C.back());
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
      for (size_t p = 0; p < q.size(); ++p) q[p] += 0.5 * cc.beta * m->probes[p] / double(S);
    return stderr_of(q);
  };
  const double nan = std::nan("");
  for (int64_t i = 0; i < N; ++i)
    for (int64_t jj = 0; jj < N; ++jj) {
      const int64_t u = plan.job_of[i][jj], s = plan.job_of[jj][jj];
      out.unions_C(i, jj) = seed_mean(u, &Measurement::C);
      out.unions_conflicts(i, jj) = count_conflicts(plan.jobs[size_t(u)].task);
      // R(i|j) = C_β(D_i ∪ D_j) − C_β(D_j)   (paper §2.3)
      std::vector<double> r_seed;
      for (int64_t q = 0; q < S; ++q) r_seed.push_back(by_job[size_t(u)][size_t(q)]->C - by_job[size_t(s)][size_t(q)]->C);
      // Paired over probes: the same probe vectors for every model of the job.
      std::vector<double> dp;
      const size_t P = by_job[size_t(u)][0]->probes.size();
      for (size_t p = 0; p < P; ++p) {
        double du = 0, ds = 0;
        for (int64_t q = 0; q < S; ++q) {
          du += by_job[size_t(u)][size_t(q)]->probes[p];
          ds += by_job[size_t(s)][size_t(q)]->probes[p];
        }
        dp.push_back(0.5 * cc.beta * (du - ds) / double(S));
      }
      const bool bad = failed(u) || failed(s);
      out.R(i, jj) = bad ? nan : (u == s ? 0.0 : mean_of(r_seed));
      out.R_per_sample(i, jj) = out.R(i, jj) / double(tasks.tasks[size_t(i)].size());
      out.stderr_probe(i, jj) = bad ? nan : stderr_of(dp);
      // What the probe error would be with independent probes per model (for comparison).
      out.stderr_probe_unpaired(i, jj) = bad ? nan : (u == s ? 0.0 : std::hypot(probe_se(u), probe_se(s)));
      out.stderr_seed(i, jj) = bad ? nan : stderr_of(r_seed);
      out.stderr_total(i, jj) = std::hypot(out.stderr_probe(i, jj), out.stderr_seed(i, jj));
    }

  for (size_t k = 0; k < items.size(); ++k) {
    const auto& m = ms[k];
    std::ostringstream rec;
    rec << "seed=" << train_seed(job, items[k].seed) << " gamma=" << m.weight_decay << " lr=" << job.train.lr
        << " B=" << job.train.batch_size << " sgd_steps=" << m.sgd_steps << " polish_iters=" << m.polish_iters
        << " grad_norm=" << m.grad_norm << " dtype=" << job.train.dtype << "+float64_polish threads=1"
        << " n=" << plan.jobs[size_t(items[k].job)].task.size() << " hvp=" << m.products
        << " eps=" << m.eps_converged << "/" << m.eps_requested << " quadrature_change=" << m.quadrature_change
        << " logdet_stderr=" << m.logdet_stderr << " curvature_samples="
        << (cc.samples > 0 ? std::min<int64_t>(cc.samples, plan.jobs[size_t(items[k].job)].task.size())
                           : plan.jobs[size_t(items[k].job)].task.size())
        << " curvature_subsample_seed=" << job.seed;
    out.jobs.push_back({plan.jobs[size_t(items[k].job)].name + "/seed" + std::to_string(items[k].seed), m.status,
                        m.seconds, rec.str()});
  }

  if (do_finetune) {
    out.finetune_steps = ft_steps;
    out.finetune_samples = ft_samples;
    for (const auto& sc : scratch) out.finetune_threshold.push_back(sc.threshold);
    for (int64_t i = 0; i < N; ++i)
      for (int64_t j = 0; j < N; ++j) {
        std::ostringstream rec;
        rec << "lr=" << job.finetune.lr << " B=" << job.finetune.batch_size << " momentum=" << job.finetune.momentum
            << " eval_every=" << job.finetune.eval_every << " max_steps=" << job.finetune.max_steps
            << " theta=" << out.finetune_threshold[size_t(i)] << " steps=" << ft_steps(i, j)
            << " samples=" << ft_samples(i, j);
        const std::string name = i == j ? "scratch:" + tasks.tasks[size_t(i)].name
                                         : "finetune:" + tasks.tasks[size_t(i)].name + "<-" + tasks.tasks[size_t(j)].name;
        out.jobs.push_back({name, ft_status[size_t(i * N + j)], ft_seconds[size_t(i * N + j)], rec.str()});
      }
  }

  if (do_finetune) analyse(out, loss_at_source);

  detail::job_attributes(out, job, world_size);
  detail::schedule_attributes(out, sched);
  out.attrs_i64["seeds"] = S;
  out.attrs_i64["parameters"] = plan.d;
  out.attrs_i64["k_tot"] = tasks.k_tot;
  return out;
}

namespace detail {

void job_attributes(RunOutput& out, const JobConfig& job, int world_size) {
  const auto& cc = job.complexity;
  out.attrs_str["experiment"] = job.experiment;
  out.attrs_str["config"] = job.text;
  out.attrs_str["created"] = now_iso();
  out.attrs_str["logdet_scale"] = cc.logdet_scale;
  out.attrs_str["curvature"] = cc.curvature;
  out.attrs_str["model"] = job.model.arch;
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

void schedule_attributes(RunOutput& out, const Scheduler& sched) {
  out.attrs_i64["ranks_per_task"] = sched.ranks_per_group();
  out.attrs_i64["task_groups"] = sched.count();
  out.attrs_f64["schedule_seconds"] = out.attrs_f64["schedule_seconds"] + sched.seconds();
  out.attrs_i64["jobs_computed"] = out.attrs_i64["jobs_computed"] + sched.computed();
  out.attrs_i64["jobs_reused"] = out.attrs_i64["jobs_reused"] + sched.reused();
  out.attrs_str["schedule"] = sched.dynamic() ? "dynamic" : "static";
}

}  // namespace detail
}  // namespace taskreach
