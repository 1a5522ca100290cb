// A discrete-event replay of the scheduling policy (DESIGN §6 `simulate`): the measured job
// costs of a result, resampled to N tasks, handed out largest first to whichever task group
// is free first, phase after phase as the run does.
#include <algorithm>
#include <functional>
#include <map>
#include <queue>
#include <sstream>

#include "taskreach/schedule.hpp"
#include "taskreach/util.hpp"

namespace taskreach {

SimulationResult simulate_schedule(const RunOutput& measured, int ranks, int ranks_per_task, int64_t tasks,
                                   uint64_t seed) {
  if (ranks < 1 || ranks_per_task < 1) throw std::invalid_argument("simulate: ranks and ranks per task must be >= 1");
  const int64_t N = tasks > 0 ? tasks : int64_t(measured.task_names.size());
  const int64_t g0 = measured.attrs_i64.count("ranks_per_task") ? measured.attrs_i64.at("ranks_per_task") : 1;
  const int64_t S = measured.attrs_i64.count("seeds") ? measured.attrs_i64.at("seeds") : 1;
  // Measured costs by kind, as single-rank work (ideal data-parallel scaling within a group).
  std::map<std::string, std::vector<double>> cost;
  for (const auto& j : measured.jobs) {
    const std::string kind = j.name.substr(0, j.name.find(':'));
    cost[kind].push_back(j.seconds * double(g0));
  }
  if (cost["single"].empty()) throw std::invalid_argument("simulate: the result holds no measured single jobs");
  if (cost["union"].empty()) cost["union"] = cost["single"];
  const int g = std::min(ranks_per_task, ranks);
  const int groups = std::max(1, ranks / g);
  uint64_t counter = 0;  // counter-based draws: the same replay on any standard library
  auto draw = [&](const std::string& kind, int64_t count) {
    std::vector<double> v;
    const auto& pool = cost[kind];
    if (pool.empty()) return v;
    for (int64_t k = 0; k < count; ++k) v.push_back(pool[util::below_at(seed, counter++, pool.size())]);
    return v;
  };
  // The run's phases: complexity (singles and unions × seeds), scratch runs, fine-tunes.
  std::vector<std::vector<double>> phases;
  auto p1 = draw("single", N * S), u = draw("union", N * (N - 1) / 2 * S);
  p1.insert(p1.end(), u.begin(), u.end());
  phases.push_back(p1);
  if (!cost["scratch"].empty()) phases.push_back(draw("scratch", N));
  if (!cost["finetune"].empty()) phases.push_back(draw("finetune", N * (N - 1)));

  SimulationResult r;
  r.groups = groups;
  for (auto& jobs : phases) {
    std::sort(jobs.begin(), jobs.end(), std::greater<>());
    // Groups ordered by the time they become free; each takes the largest job left.
    std::priority_queue<double, std::vector<double>, std::greater<>> free_at;
    for (int k = 0; k < groups; ++k) free_at.push(0.0);
    double end = 0;
    for (double c : jobs) {
      const double t = free_at.top() + c / double(g);
      free_at.pop();
      free_at.push(t);
      end = std::max(end, t);
      r.work += c;
      ++r.jobs;
    }
    r.makespan += end;  // every phase waits for the previous one
  }
  r.efficiency = r.makespan > 0 ? r.work / (double(ranks) * r.makespan) : 0.0;
  return r;
}

}  // namespace taskreach

namespace taskreach {

ShardSimulation simulate_shards(const RunOutput& measured, int ranks, int ranks_per_task, int64_t tasks, int shards,
                                uint64_t seed) {
  if (shards < 1) throw std::invalid_argument("simulate: shards must be >= 1");
  ShardSimulation out;
  out.whole = simulate_schedule(measured, ranks, ranks_per_task, tasks, seed);
  const int g = std::min(ranks_per_task, ranks);
  out.whole_held = double(out.whole.groups) * out.whole.makespan;
  out.groups_per_shard = std::max(1, out.whole.groups / shards);
  // The job list of the run with the same draws as simulate_schedule: measurements (singles
  // first), scratch runs, fine-tunes (i <- j needs single j and scratch i).
  const int64_t N = tasks > 0 ? tasks : int64_t(measured.task_names.size());
  const int64_t g0 = measured.attrs_i64.count("ranks_per_task") ? measured.attrs_i64.at("ranks_per_task") : 1;
  const int64_t S = measured.attrs_i64.count("seeds") ? measured.attrs_i64.at("seeds") : 1;
  std::map<std::string, std::vector<double>> cost;
  for (const auto& j : measured.jobs) cost[j.name.substr(0, j.name.find(':'))].push_back(j.seconds * double(g0));
  if (cost["union"].empty()) cost["union"] = cost["single"];
  uint64_t counter = 0;
  auto draw = [&](const std::string& kind) {
    const auto& pool = cost[kind];
    return pool[util::below_at(seed, counter++, pool.size())];
  };
  std::vector<double> c;
  std::vector<int> phase;
  std::vector<std::vector<size_t>> deps;
  auto add = [&](double x, int ph, std::vector<size_t> d) {
    c.push_back(x);
    phase.push_back(ph);
    deps.push_back(std::move(d));
  };
  for (int64_t k = 0; k < N * S; ++k) add(draw("single"), 0, {});
  for (int64_t k = 0; k < N * (N - 1) / 2 * S; ++k) add(draw("union"), 0, {});
  const bool ft = !cost["scratch"].empty() && !cost["finetune"].empty();
  const size_t scratch0 = c.size();
  if (ft) {
    for (int64_t i = 0; i < N; ++i) add(draw("scratch"), 1, {});
    for (int64_t i = 0; i < N; ++i)
      for (int64_t j = 0; j < N; ++j)
        if (i != j) add(draw("finetune"), 2, {size_t(j), scratch0 + size_t(i)});
  }
  const std::vector<int> shard = assign_shards(c, deps, shards);
  // One shard's phases on `groups` groups from `t0` (largest first, as the run hands out); the
  // fine-tunes start when all their sources and θ's are done (a shard waits for those of
  // other shards before its fine-tune phase, as the run does). Returns the shard's end.
  std::vector<double> finish(c.size(), 0.0);
  auto run_phase = [&](int s, int ph, int groups, double t0) {
    std::vector<size_t> jobs;
    double start = t0;
    for (size_t k = 0; k < c.size(); ++k)
      if (shard[k] == s && phase[k] == ph) {
        jobs.push_back(k);
        for (size_t d : deps[k]) start = std::max(start, finish[d]);
      }
    if (jobs.empty()) return t0;
    std::stable_sort(jobs.begin(), jobs.end(), [&](size_t a, size_t b) { return c[a] > c[b]; });
    std::priority_queue<double, std::vector<double>, std::greater<>> free_at;
    for (int k = 0; k < groups; ++k) free_at.push(start);
    double end = start;
    for (size_t k : jobs) {
      finish[k] = free_at.top() + c[k] / double(g);
      free_at.pop();
      free_at.push(finish[k]);
      end = std::max(end, finish[k]);
    }
    return end;
  };
  // All shards at once, each on groups/K groups.
  out.shard_makespan.assign(size_t(shards), 0.0);
  for (int ph = 0; ph < 3; ++ph)
    for (int s = 0; s < shards; ++s)
      out.shard_makespan[size_t(s)] = run_phase(s, ph, out.groups_per_shard, out.shard_makespan[size_t(s)]);
  // A shard holds its groups from the start until its last job (waits included).
  for (int s = 0; s < shards; ++s) {
    out.longest = std::max(out.longest, out.shard_makespan[size_t(s)]);
    out.held += double(out.groups_per_shard) * out.shard_makespan[size_t(s)];
  }
  // One after another, each on all the groups (shorter jobs for the queue: each a K-th).
  double t = 0;
  for (int s = 0; s < shards; ++s) {
    const double t0 = t;
    for (int ph = 0; ph < 3; ++ph) t = run_phase(s, ph, out.whole.groups, t);
    out.wide_shard_makespan.push_back(t - t0);
  }
  out.wide_total = t;
  return out;
}

double predicted_measure_cost(int64_t n, int64_t sgd_steps, int64_t batch, int64_t polish_iters,
                              int64_t curvature_products, int64_t curvature_samples) {
  const int64_t m = curvature_samples > 0 ? std::min(curvature_samples, n) : n;
  // The polish stops at grad_tol: in the demo a quarter of its budget on average (150-5075 of
  // 8000 iterations), one full-batch evaluation each.
  return double(sgd_steps) * double(batch) + 0.25 * double(polish_iters) * double(n) +
         2.0 * double(curvature_products) * double(m);
}

double predicted_finetune_cost(int64_t max_steps, int64_t batch, bool from_scratch) {
  // A fine-tune stops at θ_i: in the demo after a tenth of the scratch run's time on average.
  return double(max_steps) * double(batch) * (from_scratch ? 1.0 : 0.1);
}

std::vector<int> assign_shards(const std::vector<double>& cost, const std::vector<std::vector<size_t>>& deps,
                               int shards) {
  if (shards < 1) throw std::invalid_argument("assign_shards: shards must be >= 1");
  const size_t n = cost.size();
  std::vector<int> shard(n, -1);
  std::vector<double> load(size_t(shards), 0.0);
  double total = 0;
  for (double c : cost) total += c;
  const double target = total / shards;
  std::vector<char> needed(n, 0);
  for (const auto& d : deps)
    for (size_t k : d) needed.at(k) = 1;
  // The jobs others depend on, in list order, fill shard 0, then 1, ... up to the target load.
  int s = 0;
  for (size_t k = 0; k < n; ++k) {
    if (!needed[k]) continue;
    for (size_t d : deps[k])
      if (shard[d] < 0) throw std::invalid_argument("assign_shards: a dependency must come before its dependents");
    if (load[size_t(s)] >= target && s + 1 < shards) ++s;
    shard[k] = s;
    load[size_t(s)] += cost[k];
  }
  // The rest largest first (ties in list order) to the least loaded shard at or after its
  // dependencies' shards.
  std::vector<size_t> rest;
  for (size_t k = 0; k < n; ++k)
    if (!needed[k]) rest.push_back(k);
  std::stable_sort(rest.begin(), rest.end(), [&](size_t a, size_t b) { return cost[a] > cost[b]; });
  for (size_t k : rest) {
    int lo = 0;
    for (size_t d : deps[k]) {
      if (shard[d] < 0) throw std::invalid_argument("assign_shards: a dependency must come before its dependents");
      lo = std::max(lo, shard[d]);
    }
    int best = lo;
    for (int t = lo + 1; t < shards; ++t)
      if (load[size_t(t)] < load[size_t(best)]) best = t;
    shard[k] = best;
    load[size_t(best)] += cost[k];
  }
  return shard;
}

}  // namespace taskreach
