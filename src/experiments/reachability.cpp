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
#include <thread>

#include "taskreach/analysis.hpp"
#include "taskreach/curvature.hpp"
#include "taskreach/experiments.hpp"
#include "taskreach/train.hpp"
#include "taskreach/util.hpp"

namespace taskreach {
namespace {
// D_i ∪ D_j, named "i+j": built the same way when planned and when its job runs.
Task union_of(const TaskSet& tasks, int64_t i, int64_t j) {
  const Task& a = tasks.tasks[size_t(i)];
  const Task& b = tasks.tasks[size_t(j)];
  return unite(a, b, a.name + "+" + b.name);
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
  // A header of the task: what the plan, the keys and the assembly read, without the data.
  auto header = [](const Task& t) {
    Task h;
    h.name = t.name;
    h.dim = t.dim;
    h.y = t.y;
    h.keys = t.keys;
    h.active_rows = t.active_rows;
    h.identity = t.identity;
    h.random_label_indices = t.random_label_indices;
    return h;
  };
  auto add = [&](const Task& t, const std::string& name, std::vector<int64_t> members) {
    auto it = by_identity.find(t.identity);
    if (it != by_identity.end()) return it->second;
    plan.jobs.push_back({name, header(t)});
    plan.members.push_back(std::move(members));
    plan.content.push_back(sample_set_key(t));
    return by_identity[t.identity] = int64_t(plan.jobs.size()) - 1;
  };
  for (int64_t i = 0; i < N; ++i)
    plan.job_of[i][i] = add(tasks.tasks[size_t(i)], "single:" + tasks.tasks[size_t(i)].name, {i});
  for (int64_t i = 0; i < N; ++i)
    for (int64_t j = i + 1; j < N; ++j) {
      // Built for its identity and content key, then dropped (one union at a time).
      const Task u = union_of(tasks, i, j);
      plan.job_of[i][j] = plan.job_of[j][i] = add(u, "union:" + u.name, {i, j});
    }
  return plan;
}

PlannedJob job_task(const Plan& plan, size_t j, const TaskSet& tasks) {
  const auto& m = plan.members.at(j);
  const Task a = with_features(tasks.tasks[size_t(m[0])]);
  if (m.size() == 1) return {plan.jobs[j].name, a};
  const Task& b = tasks.tasks[size_t(m[1])];
  return {plan.jobs[j].name, unite(a, with_features(b), a.name + "+" + b.name)};
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

std::vector<StoredJob> stored_jobs(const JobConfig& job, const TaskSet& tasks, const Plan& plan) {
  const ModelShape shape = model_shape(job, tasks);
  const int64_t N = plan.n_tasks;
  const std::vector<uint64_t>& content = plan.content;
  const auto& tc = job.train;
  const auto& cc = job.complexity;
  const int64_t products = 3 * cc.top_k + cc.probes * cc.lanczos_steps;
  std::vector<StoredJob> list;
  // Measurements: every distinct sample set × seed, seeds outermost (seed 0 first).
  for (int64_t s = 0; s < plan.seeds; ++s)
    for (int64_t j = 0; j < int64_t(plan.jobs.size()); ++j) {
      const auto& pj = plan.jobs[size_t(j)];
      const int64_t n = pj.task.size();
      const int64_t steps = tc.steps > 0 ? tc.steps : tc.epochs * ((n + tc.batch_size - 1) / tc.batch_size);
      StoredJob sj;
      sj.kind = StoredJob::measure;
      sj.label = pj.name + " seed " + std::to_string(s);
      sj.key = measure_key(job, shape, content[size_t(j)], s);
      sj.cost = predicted_measure_cost(n, steps, tc.batch_size, tc.polish_iters, products, cc.samples);
      sj.a = j;
      sj.b = s;
      list.push_back(std::move(sj));
    }
  if (!job.finetune.enabled) return list;
  // Scratch runs (θ_i and T(i|i)), then T(i|j) from w*_j of single(j), seed 0.
  const size_t first_scratch = list.size();
  for (int64_t i = 0; i < N; ++i) {
    StoredJob sj;
    sj.kind = StoredJob::scratch;
    sj.label = "scratch:" + tasks.tasks[size_t(i)].name;
    sj.key = scratch_key(job, shape, content[size_t(plan.job_of[i][i])]);
    sj.cost = predicted_finetune_cost(job.finetune.max_steps, job.finetune.batch_size, true);
    sj.a = i;
    list.push_back(std::move(sj));
  }
  for (int64_t i = 0; i < N; ++i)
    for (int64_t j = 0; j < N; ++j)
      if (i != j) {
        const size_t source = size_t(plan.job_of[j][j]);  // seed 0 items come first
        StoredJob sj;
        sj.kind = StoredJob::finetune;
        sj.label = "finetune:" + tasks.tasks[size_t(i)].name + "<-" + tasks.tasks[size_t(j)].name;
        sj.key = finetune_key(job, shape, content[size_t(plan.job_of[i][i])], list[source].key,
                              list[first_scratch + size_t(i)].key);
        sj.cost = predicted_finetune_cost(job.finetune.max_steps, job.finetune.batch_size, false);
        sj.deps = {source, first_scratch + size_t(i)};
        sj.a = i;
        sj.b = j;
        list.push_back(std::move(sj));
      }
  return list;
}

namespace {

// The checkpoint of a measurement's w*, named by its key and by the run that wrote it: of two
// runs computing one job into a shared store, the stored record names its own checkpoint.
std::string checkpoint_path(const std::string& workdir, uint64_t key, uint64_t writer) {
  if (workdir.empty()) return {};
  return workdir + "/ckpt/" + util::hex16(key) + "." + util::hex16(writer) + ".pt";
}

// The status a stored result is listed with (`taskreach store ls`).
std::string stored_status(StoredJob::Kind kind, const std::vector<double>& v) {
  if (v.empty()) return "missing";
  if (kind == StoredJob::measure) return Measurement::unpack(v).status();
  const bool diverged = kind == StoredJob::scratch ? v[4] > 0 : v[3] > 0;
  return diverged ? "diverged" : (v[0] < 0 ? "not_reached" : "ok");
}

// Rank 0 reads the stored results of `which` (those not held yet); every rank gets them.
// Returns the labels of those missing from the store.
std::vector<std::string> load_stored(MPI_Comm world, const ResultStore& store, const std::vector<StoredJob>& list,
                                     const std::vector<size_t>& which, std::vector<std::vector<double>>& results) {
  int rank = 0;
  MPI_Comm_rank(world, &rank);
  std::vector<std::string> missing;
  for (size_t k : which) {
    int len = 0;
    if (rank == 0) {
      if (results[k].empty()) results[k] = store.read(list[k].key);
      len = int(results[k].size());
    }
    MPI_Bcast(&len, 1, MPI_INT, 0, world);
    results[k].resize(size_t(len));
    MPI_Bcast(results[k].data(), len, MPI_DOUBLE, 0, world);
    if (len == 0) missing.push_back(list[k].label);
  }
  return missing;
}

std::string joined(const std::vector<std::string>& v, size_t at_most) {
  std::string s;
  for (size_t k = 0; k < v.size() && k < at_most; ++k) s += (k ? ", " : "") + v[k];
  if (v.size() > at_most) s += ", ... (" + std::to_string(v.size() - at_most) + " more)";
  return s;
}

// A fine-tune that cannot start: its target has no threshold (the scratch run diverged).
FinetuneOutcome diverged_outcome(double theta) {
  FinetuneOutcome o;
  o.status = "diverged";
  o.threshold = theta;
  return o;
}

// Measurements to rerun for the paired R check: every off-diagonal R(i|j) = C(u) − C(s) whose
// paired difference fails the m/2 check (a third of its probe error) has both jobs, all seeds,
// measured again at twice the larger m the pair used (over seeds). A measurement is rerun once:
// those already rerun are not asked again. A job whose own check failed at 2m is rerun too (at
// 4m, where the difference asks for it: the difference's one rerun, which may clear the job's
// flag); pairs with a diverged or unpolished job are left alone (no rerun mends those).
// Returns list index → steps.
std::map<size_t, int64_t> paired_reruns_wanted(const JobConfig& job, const Plan& plan,
                                               const std::vector<StoredJob>& list,
                                               const std::vector<std::vector<double>>& results,
                                               const std::vector<std::vector<double>>& reruns) {
  std::map<size_t, int64_t> want;
  if (!job.complexity.quadrature_check) return want;
  const size_t S = size_t(plan.seeds);
  std::vector<std::vector<size_t>> index(plan.jobs.size(), std::vector<size_t>(S));
  std::vector<Measurement> current(list.size());
  std::vector<int64_t> steps(list.size(), 0);
  for (size_t k = 0; k < list.size(); ++k)
    if (list[k].kind == StoredJob::measure && !results[k].empty()) {
      index[size_t(list[k].a)][size_t(list[k].b)] = k;
      Measurement base = Measurement::unpack(results[k]);
      steps[k] = base.lanczos_steps;
      current[k] = reruns[k].empty() ? std::move(base) : Measurement::unpack(reruns[k]);
    }
  auto seeds_of = [&](int64_t j) {
    std::vector<const Measurement*> v;
    for (size_t k : index[size_t(j)]) v.push_back(&current[k]);
    return v;
  };
  for (int64_t i = 0; i < plan.n_tasks; ++i)
    for (int64_t j = 0; j < plan.n_tasks; ++j) {
      const int64_t u = plan.job_of[size_t(i)][size_t(j)], s = plan.job_of[size_t(j)][size_t(j)];
      if (u == s) continue;
      bool excluded = false;
      int64_t m = 0;
      for (int64_t job_index : {u, s})
        for (size_t k : index[size_t(job_index)]) {
          excluded = excluded || (current[k].flags & (job_flag::diverged | job_flag::not_converged));
          m = std::max(m, steps[k]);
        }
      if (excluded || !paired_difference(job.complexity.beta, seeds_of(u), seeds_of(s)).quadrature_unconverged())
        continue;
      for (int64_t job_index : {u, s})
        for (size_t k : index[size_t(job_index)])
          if (reruns[k].empty()) want[k] = std::max(want[k], 2 * m);
    }
  return want;
}

}  // namespace

RunOutput run_reachability(MPI_Comm world, const JobConfig& job, const TaskSet& tasks, const Plan& plan,
                           const RunOptions& options) {
  int rank = 0, world_size = 1;
  MPI_Comm_rank(world, &rank);
  MPI_Comm_size(world, &world_size);
  const std::string& workdir = options.workdir;
  if (rank == 0 && !workdir.empty()) std::filesystem::create_directories(workdir + "/ckpt");
  const ModelShape shape = model_shape(job, tasks);
  const std::vector<StoredJob> list = stored_jobs(job, tasks, plan);
  std::vector<std::vector<double>> results(list.size());
  const ResultStore store(workdir.empty() ? "" : workdir + "/jobs");
  // The checkpoint of a stored measurement: the one its record's writer saved.
  auto stored_checkpoint = [&](uint64_t key) {
    StoredInfo info;
    if (store.read(key, &info).empty()) return std::string();
    return checkpoint_path(workdir, key, info.writer);
  };
  // The paired reruns (list index → result), computed after the measurements are all there.
  std::vector<std::vector<double>> reruns(list.size());
  auto run_paired_reruns = [&](Scheduler& sched) {
    // Rounds: a rerun job's new values can make another of its pairs fail (its difference
    // loses the cancellation of paired quadrature errors); each measurement reruns once.
    for (;;) {
      const std::map<size_t, int64_t> want = paired_reruns_wanted(job, plan, list, results, reruns);
      if (want.empty()) return;
      std::vector<std::pair<size_t, int64_t>> items(want.begin(), want.end());
      Phase p{"paired R differences at twice the Lanczos steps (curvature again)", {}, {}, {}};
      for (const auto& [k, steps] : items) {
        p.cost.push_back(list[k].cost);
        p.key.push_back(rerun_key(list[k].key, steps));
        p.label.push_back(list[k].label + " (paired rerun, m >= " + std::to_string(steps) + ")");
        p.parent.push_back(list[k].key);
      }
      p.status = [](const std::vector<double>& v) { return stored_status(StoredJob::measure, v); };
      auto r = sched.run(p, [&](size_t q) {
        const auto& [k, steps] = items[q];
        const StoredJob& sj = list[k];
        return remeasure_curvature(sched.group(), job, shape, job_task(plan, size_t(sj.a), tasks), sj.b,
                                   Measurement::unpack(results[k]), stored_checkpoint(sj.key), steps)
            .pack();
      });
      for (size_t q = 0; q < items.size(); ++q) reruns[items[q].first] = std::move(r[q]);
    }
  };
  auto count_reruns = [&](RunOutput& out) {
    int64_t n = 0;
    for (const auto& v : reruns) n += !v.empty();
    out.attrs_i64["paired_reruns"] = n;
  };

  int64_t merge_computed = 0, merge_reused = 0;  // the paired reruns a merge computed, reused
  if (options.merge) {
    std::vector<size_t> all(list.size());
    std::iota(all.begin(), all.end(), size_t(0));
    const auto missing = load_stored(world, store, list, all, results);
    if (!missing.empty())
      throw MissingJobs(std::to_string(missing.size()) + " of " + std::to_string(list.size()) + " jobs are not in " +
                        store.dir() + ": " + joined(missing, 50));
    // Shards cannot see each other's measurements: the paired reruns are the merge's work
    // (stored ones reused).
    Scheduler sched(world, job.ranks_per_task, store.dir(), true, rank == 0 ? options.progress : nullptr);
    run_paired_reruns(sched);
    RunOutput counts;
    sched.add_attributes(counts);
    merge_computed = counts.attrs_i64["jobs_computed"];
    merge_reused = counts.attrs_i64["jobs_reused"];
  } else {
    // Which jobs this run computes: all, or its shard's share.
    std::vector<char> mine(list.size(), 1);
    if (options.shards > 0) {
      std::vector<double> cost;
      std::vector<std::vector<size_t>> deps;
      for (const auto& sj : list) {
        cost.push_back(sj.cost);
        deps.push_back(sj.deps);
      }
      const std::vector<int> shard = assign_shards(cost, deps, options.shards);
      for (size_t k = 0; k < list.size(); ++k) mine[k] = shard[k] == options.shard;
    }
    Scheduler sched(world, job.ranks_per_task, store.dir(), options.resume, rank == 0 ? options.progress : nullptr);
    // One phase of the list: the jobs of `kind` that this run computes (and whose dependencies
    // are there), through the scheduler; results land in `results`.
    auto run_phase = [&](StoredJob::Kind kind, const std::string& name,
                         const std::function<std::vector<double>(const StoredJob&)>& work,
                         const std::vector<char>& ready) {
      std::vector<size_t> idx;
      for (size_t k = 0; k < list.size(); ++k)
        if (list[k].kind == kind && mine[k] && ready[k]) idx.push_back(k);
      Phase p{name, {}, {}, {}};
      for (size_t k : idx) {
        p.cost.push_back(list[k].cost);
        p.key.push_back(list[k].key);
        p.label.push_back(list[k].label);
      }
      p.status = [kind](const std::vector<double>& v) { return stored_status(kind, v); };
      if (kind == StoredJob::measure)
        p.dropped = [&](size_t k) {  // the kept record names another run's checkpoint
          const std::string mine_ckpt = checkpoint_path(workdir, list[idx[k]].key, sched.writer());
          std::remove(mine_ckpt.c_str());
          std::remove((mine_ckpt + ".sgd").c_str());
        };
      auto r = sched.run(
          p, [&](size_t k) { return work(list[idx[k]]); },
          // A measurement is reusable only with the checkpoint that fine-tuning starts from.
          [&](size_t k, const StoredInfo& info) {
            return kind != StoredJob::measure || workdir.empty() ||
                   std::filesystem::exists(checkpoint_path(workdir, list[idx[k]].key, info.writer));
          });
      for (size_t q = 0; q < idx.size(); ++q) results[idx[q]] = std::move(r[q]);
    };
    const std::vector<char> all_ready(list.size(), 1);

    // --- phase 1: every distinct sample set x seed: train, polish, curvature, C_β.
    run_phase(StoredJob::measure, "complexity (train, polish, curvature)", [&](const StoredJob& sj) {
      // The job's sample set with its features, for the length of the job only.
      return measure(sched.group(), job, shape, job_task(plan, size_t(sj.a), tasks), sj.b,
                     checkpoint_path(workdir, sj.key, sched.writer()))
          .pack();
    }, all_ready);
    // --- phase 1b: paired R differences whose m/2 check failed, their jobs at 2m (not in a
    // shard, which sees only its share: `--merge` runs them).
    if (options.shards == 0) run_paired_reruns(sched);

    // --- phase 2: fine-tune cost. From scratch on each task (θ_i and T(i|i)), then from w*_j.
    const bool do_finetune = job.finetune.enabled && !workdir.empty();
    std::vector<std::string> waited;
    int64_t left_waiting = 0;
    if (do_finetune) {
      run_phase(StoredJob::scratch, "fine-tune protocol from scratch", [&](const StoredJob& sj) {
        auto o = finetune_scratch(sched.group(), shape, with_features(tasks.tasks[size_t(sj.a)]), job,
                                  train_seed(job, 0));
        return std::vector<double>{double(o.steps), double(o.samples), o.threshold, o.seconds,
                                   o.status == "diverged" ? 1.0 : 0.0, o.spread, o.unstable ? 1.0 : 0.0};
      }, all_ready);
      // A fine-tune needs θ_i and the stored w*_j: in a shard, computed by this shard or an
      // earlier one; wait for those another shard is still computing.
      std::vector<size_t> need;
      for (size_t k = 0; k < list.size(); ++k)
        if (list[k].kind == StoredJob::finetune && mine[k])
          for (size_t d : list[k].deps)
            if (results[d].empty()) need.push_back(d);
      std::sort(need.begin(), need.end());
      need.erase(std::unique(need.begin(), need.end()), need.end());
      const double t0 = MPI_Wtime();
      for (bool said = false;;) {
        std::vector<size_t> still;
        for (size_t d : need)
          if (results[d].empty()) still.push_back(d);
        load_stored(world, store, list, still, results);
        // A measurement counts as there only with its checkpoint (rank 0 looks, all agree).
        int gone = 0;
        for (size_t d : still)
          if (!results[d].empty() && list[d].kind == StoredJob::measure && rank == 0 &&
              !std::filesystem::exists(stored_checkpoint(list[d].key))) {
            results[d].clear();
            gone = 1;
          }
        MPI_Bcast(&gone, 1, MPI_INT, 0, world);
        if (gone)
          for (size_t d : still) {
            int have = rank == 0 ? int(!results[d].empty()) : 0;
            MPI_Bcast(&have, 1, MPI_INT, 0, world);
            if (!have) results[d].clear();
          }
        std::vector<std::string> absent;
        for (size_t d : need)
          if (results[d].empty()) absent.push_back(list[d].label);
        if (absent.empty()) break;
        if (!said) waited = absent;
        const int timed_out = MPI_Wtime() - t0 >= options.wait_seconds || stop_requested();
        int any = timed_out;
        MPI_Allreduce(MPI_IN_PLACE, &any, 1, MPI_INT, MPI_MAX, world);
        if (any) break;
        if (!said && rank == 0 && options.progress)
          *options.progress << "shard " << options.shard + 1 << "/" << options.shards << ": waiting up to "
                            << std::fixed << std::setprecision(0) << options.wait_seconds << std::defaultfloat
                            << " s for " << absent.size()
                            << " jobs of other shards: " << joined(absent, 20) << std::endl;
        said = true;
        std::this_thread::sleep_for(std::chrono::seconds(2));
      }
      std::vector<char> ready(list.size(), 1);
      std::vector<std::string> blocked;
      for (size_t k = 0; k < list.size(); ++k)
        if (list[k].kind == StoredJob::finetune && mine[k])
          for (size_t d : list[k].deps)
            if (results[d].empty()) ready[k] = 0;
      for (size_t k = 0; k < list.size(); ++k)
        if (!ready[k]) {
          ++left_waiting;
          blocked.push_back(list[k].label);
        }
      if (left_waiting && rank == 0)
        std::cerr << "taskreach: shard " << options.shard + 1 << "/" << options.shards << ": " << left_waiting
                  << " fine-tunes wait for jobs not yet in " << store.dir() << " (" << joined(waited, 20)
                  << "); run this shard again once they are there" << std::endl;
      run_phase(StoredJob::finetune, "fine-tune T(i|j)", [&](const StoredJob& sj) {
        const double theta = results[sj.deps[1]][2];
        std::vector<double> w = load_checkpoint(shape, stored_checkpoint(list[sj.deps[0]].key));
        FinetuneOutcome o = std::isfinite(theta) ? finetune_from(sched.group(), shape,
                                                                 with_features(tasks.tasks[size_t(sj.a)]), job, w,
                                                                 theta, train_seed(job, 0))
                                                 : diverged_outcome(theta);
        // The first evaluation, before any step: the loss of task i at w*_j (a baseline for T).
        const double l0 = o.curve.empty() ? std::nan("") : o.curve.front()[1];
        return std::vector<double>{double(o.steps), double(o.samples), o.seconds, o.status == "diverged" ? 1.0 : 0.0,
                                   l0};
      }, ready);
    }
    if (options.shards > 0) {
      // A shard writes no matrix: its counts, what it waited for, what is left.
      RunOutput out;
      sched.add_attributes(out);
      int64_t share = 0;
      for (char m : mine) share += m;
      out.attrs_i64["shard_jobs"] = share;
      out.attrs_i64["jobs_waiting"] = left_waiting;
      out.attrs_i64["jobs_dropped"] = sched.dropped();
      out.attrs_str["waited_for"] = joined(waited, 20);
      return out;
    }
    RunOutput counts;
    sched.add_attributes(counts);
    counts.attrs_i64["jobs_dropped"] = sched.dropped();
    RunOutput out = assemble_stored(job, tasks, plan, list, results, do_finetune, reruns);
    count_reruns(out);
    for (const auto& [k, v] : counts.attrs_i64) out.attrs_i64[k] = v;
    for (const auto& [k, v] : counts.attrs_f64) out.attrs_f64[k] = v;
    for (const auto& [k, v] : counts.attrs_str) out.attrs_str[k] = v;
    job_attributes(out, job, world_size);
    return out;
  }
  RunOutput out = assemble_stored(job, tasks, plan, list, results, job.finetune.enabled && !workdir.empty(), reruns);
  count_reruns(out);
  out.attrs_i64["jobs_computed"] = merge_computed;
  out.attrs_i64["jobs_reused"] = int64_t(list.size()) + merge_reused;
  out.attrs_i64["ranks_per_task"] = std::min<int64_t>(job.ranks_per_task, world_size);
  out.attrs_i64["task_groups"] = std::max<int64_t>(1, world_size / std::min<int64_t>(job.ranks_per_task, world_size));
  out.attrs_f64["schedule_seconds"] = 0.0;
  out.attrs_str["schedule"] = "merge";
  job_attributes(out, job, world_size);
  return out;
}

// The output of a reachability run from the results of every stored job (list order).
RunOutput assemble_stored(const JobConfig& job, const TaskSet& tasks, const Plan& plan,
                          const std::vector<StoredJob>& list, const std::vector<std::vector<double>>& results,
                          bool do_finetune, const std::vector<std::vector<double>>& reruns) {
  const int64_t N = plan.n_tasks;
  std::vector<Measurement> ms;
  std::vector<size_t> measure_index;
  for (size_t k = 0; k < list.size(); ++k)
    if (list[k].kind == StoredJob::measure) measure_index.push_back(k);
  ms.reserve(measure_index.size());
  for (size_t k : measure_index) {
    const bool rerun = k < reruns.size() && !reruns[k].empty();
    ms.push_back(Measurement::unpack(rerun ? reruns[k] : results[k]));
    ms.back().paired_rerun = rerun ? 1 : 0;
  }

  std::vector<FinetuneOutcome> scratch(static_cast<size_t>(N));
  Matrix<int64_t> ft_steps(N, N, -1), ft_samples(N, N, 0);
  Matrix<double> loss_at_source(N, N, std::nan(""));
  std::vector<std::string> ft_status(size_t(N * N), "");
  std::vector<double> ft_seconds(size_t(N * N), 0.0);
  if (do_finetune) {
    for (size_t k = 0; k < list.size(); ++k) {
      if (list[k].kind != StoredJob::scratch) continue;
      const int64_t i = list[k].a;
      const auto& v = results[k];
      auto& sc = scratch[size_t(i)];
      sc.steps = int64_t(v[0]);
      sc.samples = int64_t(v[1]);
      sc.threshold = v[2];
      sc.seconds = v[3];
      sc.status = v[4] > 0 ? "diverged" : (v[0] < 0 ? "not_reached" : "ok");
      sc.spread = v.size() > 5 ? v[5] : std::nan("");
      sc.unstable = v.size() > 6 && v[6] > 0;
      ft_steps(i, i) = sc.steps;
      ft_samples(i, i) = sc.samples;
      ft_status[size_t(i * N + i)] = sc.status;
      ft_seconds[size_t(i * N + i)] = sc.seconds;
    }
    for (size_t k = 0; k < list.size(); ++k) {
      if (list[k].kind != StoredJob::finetune) continue;
      const int64_t i = list[k].a, j = list[k].b;
      const auto& v = results[k];
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
  for (size_t q = 0; q < measure_index.size(); ++q) {
    const StoredJob& sj = list[measure_index[q]];
    by_job[size_t(sj.a)][size_t(sj.b)] = &ms[q];
  }
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
        const std::string name = i == j ? "scratch:" + tasks.tasks[size_t(i)].name
                                         : "finetune:" + tasks.tasks[size_t(i)].name + "<-" + tasks.tasks[size_t(j)].name;
        const bool unstable = i == j && scratch[size_t(i)].unstable;
        JobRecord r{name, unstable ? ft_status[size_t(i * N + j)] + "+unstable" : ft_status[size_t(i * N + j)],
                    ft_seconds[size_t(i * N + j)], {}, {}};
        r.add("lr", job.finetune.lr);
        r.add("B", double(job.finetune.batch_size));
        r.add("momentum", job.finetune.momentum);
        r.add("eval_every", double(job.finetune.eval_every));
        r.add("max_steps", double(job.finetune.max_steps));
        r.add("theta", out.finetune_threshold[size_t(i)]);
        r.add("steps", double(ft_steps(i, j)));
        r.add("samples", double(ft_samples(i, j)));
        if (i == j) r.add("theta_spread", scratch[size_t(i)].spread);
        out.jobs.push_back(std::move(r));
      }
  }

  if (do_finetune) analyse_reachability(out, loss_at_source);

  out.attrs_i64["seeds"] = plan.seeds;
  out.attrs_i64["parameters"] = plan.d;
  out.attrs_i64["k_tot"] = tasks.k_tot;
  return out;
}

}  // namespace taskreach
