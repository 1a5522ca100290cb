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

#include "taskreach/analysis.hpp"
#include "taskreach/curvature.hpp"
#include "taskreach/experiments.hpp"
#include "taskreach/train.hpp"
#include "taskreach/util.hpp"

namespace taskreach {
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
    << tasks.k_tot << ", model " << to_string(job.model.arch) << ", d = " << plan.d << " parameters\n";
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
  o << "curvature: " << to_string(job.complexity.curvature) << ", top-"
    << (job.complexity.top_k_auto ? "max(" + std::to_string(job.complexity.top_k) + ", head rows)"
                                  : std::to_string(job.complexity.top_k))
    << " + SLQ "
    << job.complexity.probes << " probes x " << job.complexity.lanczos_steps << " steps; c = " << job.logdet_c()
    << " (" << to_string(job.complexity.logdet_scale) << ")\n";
  return o.str();
}

namespace {

std::string checkpoint_path(const std::string& workdir, uint64_t key) {
  if (workdir.empty()) return {};
  return workdir + "/ckpt/" + util::hex16(key) + ".pt";
}

std::string id(uint64_t v) { return std::to_string(v); }

// A fine-tune that cannot start: its target has no threshold (the scratch run diverged).
FinetuneOutcome diverged_outcome(double theta) {
  FinetuneOutcome o;
  o.status = "diverged";
  o.threshold = theta;
  return o;
}

}  // namespace

RunOutput run_reachability(MPI_Comm world, const JobConfig& job, const TaskSet& tasks, const Plan& plan,
                           const RunOptions& options) {
  int rank = 0, world_size = 1;
  MPI_Comm_rank(world, &rank);
  MPI_Comm_size(world, &world_size);
  const std::string& workdir = options.workdir;
  if (rank == 0 && !workdir.empty()) std::filesystem::create_directories(workdir + "/ckpt");
  Scheduler sched(world, job.ranks_per_task, workdir.empty() ? "" : workdir + "/jobs", options.resume,
                          rank == 0 ? options.progress : nullptr);
  const ModelShape shape = model_shape(job, tasks);
  // Every durable result is keyed by everything it depends on: the program version, the job
  // file verbatim, and the item itself. An edited job file never reuses a stale result.
  auto key = [&](std::vector<std::string> parts) {
    parts.insert(parts.begin(), {TASKREACH_VERSION, kResultFormat, job.text});
    return util::hash_parts(parts);
  };

  // --- phase 1: every distinct sample set x seed: train, polish, curvature, C_β.
  struct Item { int64_t job, seed; };
  std::vector<Item> items;
  Phase p1{"complexity (train, polish, curvature)", {}, {}, {}};
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
    Phase p2{"fine-tune protocol from scratch", {}, {}, {}};
    for (int64_t i = 0; i < N; ++i) {
      const auto& t = tasks.tasks[size_t(i)];
      p2.cost.push_back(double(t.size()));
      p2.key.push_back(key({"scratch", id(t.identity)}));
      p2.label.push_back("scratch:" + t.name);
    }
    auto r2 = sched.run(p2, [&](size_t i) {
      auto o = finetune_scratch(sched.group(), shape, tasks.tasks[i], job, train_seed(job, 0));
      return std::vector<double>{double(o.steps), double(o.samples), o.threshold, o.seconds,
                                 o.status == "diverged" ? 1.0 : 0.0, o.spread, o.unstable ? 1.0 : 0.0};
    });
    for (int64_t i = 0; i < N; ++i) {
      const auto& v = r2[size_t(i)];
      auto& sc = scratch[size_t(i)];
      sc.steps = int64_t(v[0]);
      sc.samples = int64_t(v[1]);
      sc.threshold = v[2];
      sc.seconds = v[3];
      sc.status = v[4] > 0 ? "diverged" : (v[0] < 0 ? "not_reached" : "ok");
      sc.spread = v[5];
      sc.unstable = v[6] > 0;
      ft_steps(i, i) = sc.steps;
      ft_samples(i, i) = sc.samples;
      ft_status[size_t(i * N + i)] = sc.status;
      ft_seconds[size_t(i * N + i)] = sc.seconds;
    }
    // finetune(i ← j) starts from the saved w*_j of single(j), seed 0.
    std::vector<std::pair<int64_t, int64_t>> pairs;
    Phase p3{"fine-tune T(i|j)", {}, {}, {}};
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
                                               : diverged_outcome(theta);
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
  std::vector<std::vector<const Measurement*>> by_job(plan.jobs.size(),
                                                      std::vector<const Measurement*>(size_t(plan.seeds)));
  for (size_t k = 0; k < items.size(); ++k) by_job[size_t(items[k].job)][size_t(items[k].seed)] = &ms[k];
  RunOutput out;
  assemble_reachability(out, job, tasks, plan.jobs, plan.job_of, by_job);

  if (do_finetune) {
    out.finetune_steps = ft_steps;
    out.finetune_samples = ft_samples;
    for (const auto& sc : scratch) {
      out.finetune_threshold.push_back(sc.threshold);
      out.finetune_threshold_spread.push_back(sc.spread);
      out.finetune_unstable.push_back(sc.unstable ? 1 : 0);
    }
    for (int64_t i = 0; i < N; ++i)
      if (scratch[size_t(i)].unstable)
        for (int64_t j = 0; j < N; ++j) out.flags(i, j) |= reach_flag::unstable_target;
    for (int64_t i = 0; i < N; ++i)
      for (int64_t j = 0; j < N; ++j) {
        std::ostringstream rec;
        rec << "lr=" << job.finetune.lr << " B=" << job.finetune.batch_size << " momentum=" << job.finetune.momentum
            << " eval_every=" << job.finetune.eval_every << " max_steps=" << job.finetune.max_steps
            << " theta=" << out.finetune_threshold[size_t(i)] << " steps=" << ft_steps(i, j)
            << " samples=" << ft_samples(i, j);
        const std::string name = i == j ? "scratch:" + tasks.tasks[size_t(i)].name
                                         : "finetune:" + tasks.tasks[size_t(i)].name + "<-" + tasks.tasks[size_t(j)].name;
        const bool unstable = i == j && scratch[size_t(i)].unstable;
        if (i == j) rec << " theta_spread=" << scratch[size_t(i)].spread;
        out.jobs.push_back({name, unstable ? ft_status[size_t(i * N + j)] + "+unstable" : ft_status[size_t(i * N + j)],
                            ft_seconds[size_t(i * N + j)], rec.str()});
      }
  }

  if (do_finetune) analyse_reachability(out, loss_at_source);

  job_attributes(out, job, world_size);
  sched.add_attributes(out);
  out.attrs_i64["seeds"] = plan.seeds;
  out.attrs_i64["parameters"] = plan.d;
  out.attrs_i64["k_tot"] = tasks.k_tot;
  return out;
}

}  // namespace taskreach
