// Rank statistics against values worked out by hand (and agreeing with scipy.stats).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "taskreach/analysis.hpp"

using namespace taskreach;

TEST(Statistics, AverageRanksShareTies) {
  EXPECT_EQ(average_ranks({10, 20, 20, 5}), (std::vector<double>{2, 3.5, 3.5, 1}));
}

TEST(Statistics, PearsonAndSpearman) {
  EXPECT_NEAR(pearson({1, 2, 3}, {2, 4, 6}), 1.0, 1e-15);
  EXPECT_NEAR(pearson({1, 2, 3}, {3, 2, 1}), -1.0, 1e-15);
  // x = 1..4, y = 1, 3, 2, 4: Pearson 0.8 (cov 4/3 ÷ var 5/3).
  EXPECT_NEAR(pearson({1, 2, 3, 4}, {1, 3, 2, 4}), 0.8, 1e-15);
  // A monotone but non-linear relation is a perfect rank correlation.
  EXPECT_NEAR(spearman({1, 2, 3, 4}, {1, 8, 27, 64}), 1.0, 1e-15);
  EXPECT_TRUE(std::isnan(pearson({1, 1, 1}, {1, 2, 3})));
  EXPECT_TRUE(std::isnan(spearman({1}, {2})));
}

TEST(Statistics, KendallTauB) {
  // 1, 3, 2, 4: 5 concordant pairs, 1 discordant: (5 − 1)/6.
  EXPECT_NEAR(kendall_tau_b({1, 2, 3, 4}, {1, 3, 2, 4}), 4.0 / 6.0, 1e-15);
  // With a tie in y: pairs (1,2) tied; 4 concordant, 1 discordant; τ_b = 3/√(6·5).
  EXPECT_NEAR(kendall_tau_b({1, 2, 3, 4}, {1, 1, 3, 2}), 3.0 / std::sqrt(30.0), 1e-15);
}

TEST(Statistics, PartialCorrelationRemovesACommonCause) {
  // x and y both follow z exactly: given z nothing is left, and the formula's denominator is 0.
  EXPECT_TRUE(std::isnan(partial_spearman({1, 2, 3, 4}, {1, 2, 3, 4}, {1, 2, 3, 4})));
  // Ten points with ties in x and z. The expectations were computed independently with SciPy
  // 1.10 by another method — the Pearson correlation of the residuals of rankdata(x) and
  // rankdata(y) regressed on rankdata(z) (numpy lstsq) — and spearmanr for the pairwise terms.
  const std::vector<double> x{3.1, 1.2, 5.5, 4.0, 2.2, 6.8, 7.1, 0.5, 5.5, 3.9};
  const std::vector<double> y{2.0, 1.0, 4.5, 5.0, 1.5, 6.0, 8.0, 0.7, 3.0, 4.1};
  const std::vector<double> z{1, 2, 3, 3, 1, 5, 6, 0, 4, 2};
  EXPECT_NEAR(spearman(x, y), 0.9300954818304988, 1e-12);
  EXPECT_NEAR(spearman(x, z), 0.9356004292452277, 1e-12);
  EXPECT_NEAR(spearman(y, z), 0.8624216160156492, 1e-12);
  EXPECT_NEAR(partial_spearman(x, y, z), 0.689437123913619, 1e-12);
}

#include "taskreach/schedule.hpp"

namespace {
RunOutput equal_costs(int n_tasks, double seconds) {
  RunOutput r;
  for (int i = 0; i < n_tasks; ++i) r.task_names.push_back("t" + std::to_string(i));
  r.attrs_i64["ranks_per_task"] = 1;
  r.attrs_i64["seeds"] = 1;
  for (const char* kind : {"single", "union", "scratch", "finetune"}) r.jobs.push_back({std::string(kind) + ":x", "ok", seconds, "", {}});
  return r;
}
}  // namespace

TEST(Simulate, OneRankDoesAllTheWorkInSequence) {
  auto r = simulate_schedule(equal_costs(4, 2.0), 1, 1, 4);
  // 4 singles + 6 unions, 4 scratch runs, 12 fine-tunes, 2 s each.
  EXPECT_EQ(r.jobs, 26);
  EXPECT_DOUBLE_EQ(r.makespan, 52.0);
  EXPECT_DOUBLE_EQ(r.efficiency, 1.0);
}

TEST(Simulate, EqualJobsFillRoundsPhaseByPhase) {
  // 4 groups: phase 1 has 10 jobs = 3 rounds, phase 2 has 4 = 1 round, phase 3 has 12 = 3 rounds.
  auto r = simulate_schedule(equal_costs(4, 1.0), 4, 1, 4);
  EXPECT_DOUBLE_EQ(r.makespan, 7.0);
  EXPECT_DOUBLE_EQ(r.efficiency, 26.0 / (4 * 7.0));
  // Groups of 2 ranks halve each job (ideal scaling within a group): 2 groups, same rounds × 2 / 2.
  auto g2 = simulate_schedule(equal_costs(4, 1.0), 4, 2, 4);
  EXPECT_DOUBLE_EQ(g2.makespan, 0.5 * (5 + 2 + 6));
}

// The shards of a reachability-shaped list: N measurements (the first N the fine-tune
// sources), N scratch runs, N(N-1) fine-tunes each needing a source and a scratch run.
namespace {
struct ShardCase {
  std::vector<double> cost;
  std::vector<std::vector<size_t>> deps;
};
ShardCase reachability_like(size_t N) {
  ShardCase c;
  const size_t unions = N * (N - 1) / 2;
  for (size_t k = 0; k < N + unions; ++k) c.cost.push_back(k < N ? 10.0 : 20.0);  // unions twice a single
  c.deps.resize(c.cost.size());
  const size_t scratch = c.cost.size();
  for (size_t i = 0; i < N; ++i) c.cost.push_back(15.0), c.deps.emplace_back();
  for (size_t i = 0; i < N; ++i)
    for (size_t j = 0; j < N; ++j)
      if (i != j) c.cost.push_back(5.0), c.deps.push_back({j, scratch + i});
  return c;
}
}  // namespace

TEST(Shards, EveryJobOnceDependenciesFirstAndBalanced) {
  for (size_t N : {3, 5, 8})
    for (int K : {1, 2, 3, 7}) {
      const ShardCase c = reachability_like(N);
      const auto shard = assign_shards(c.cost, c.deps, K);
      ASSERT_EQ(shard.size(), c.cost.size());
      std::vector<double> load(size_t(K), 0.0);
      double total = 0, largest = 0;
      for (size_t k = 0; k < shard.size(); ++k) {
        ASSERT_GE(shard[k], 0);
        ASSERT_LT(shard[k], K);
        load[size_t(shard[k])] += c.cost[k];
        total += c.cost[k];
        largest = std::max(largest, c.cost[k]);
        // Shards run in index order always find their dependencies done.
        for (size_t d : c.deps[k]) EXPECT_LE(shard[d], shard[k]) << "N=" << N << " K=" << K << " job " << k;
      }
      // Within one largest job of the mean (the greedy bound for this list).
      for (double l : load) EXPECT_LE(l, total / K + 2 * largest) << "N=" << N << " K=" << K;
      // Deterministic: the same list gives the same shards.
      EXPECT_EQ(assign_shards(c.cost, c.deps, K), shard);
    }
}

TEST(Shards, RejectsADependencyAfterItsDependent) {
  // Job 1 is needed by job 0 and needs job 2, which comes after it.
  EXPECT_THROW(assign_shards({1, 1, 1}, {{1}, {2}, {}}, 2), std::invalid_argument);
  EXPECT_THROW(assign_shards({1}, {{}}, 0), std::invalid_argument);
}

TEST(Simulate, OneShardIsTheWholeRun) {
  const auto sh = simulate_shards(equal_costs(4, 2.0), 1, 1, 4, 1);
  EXPECT_DOUBLE_EQ(sh.whole.makespan, 52.0);
  EXPECT_DOUBLE_EQ(sh.longest, 52.0);
  EXPECT_DOUBLE_EQ(sh.held, 52.0);
  EXPECT_DOUBLE_EQ(sh.whole_held, 52.0);
}

TEST(Simulate, ShardsHoldNoLessThanTheWorkAndNoMoreThanItTakesInSequence) {
  for (int K : {2, 4}) {
    const auto sh = simulate_shards(equal_costs(8, 1.0), 8, 1, 8, K);
    const double work = sh.whole.work;  // 8 + 28 + 8 + 56 jobs of 1 s
    EXPECT_DOUBLE_EQ(work, 100.0);
    EXPECT_EQ(sh.groups_per_shard, 8 / K);
    ASSERT_EQ(sh.shard_makespan.size(), size_t(K));
    EXPECT_GE(sh.held, work - 1e-9) << K;  // a group cannot do more than one job at a time
    EXPECT_GE(sh.longest, work / 8 - 1e-9) << K;
    EXPECT_LE(sh.longest, work) << K;
    EXPECT_DOUBLE_EQ(sh.whole_held, 8 * sh.whole.makespan);
  }
}

TEST(Simulate, ShardsOneAfterAnotherDoTheWholeWork) {
  // One group: shards in sequence do exactly the one job's work, whatever K.
  for (int K : {1, 3}) {
    const auto sh = simulate_shards(equal_costs(4, 2.0), 1, 1, 4, K);
    ASSERT_EQ(sh.wide_shard_makespan.size(), size_t(K));
    EXPECT_DOUBLE_EQ(sh.wide_total, 52.0) << K;
  }
  // More groups: never faster than the one job's lower bound, work / groups.
  const auto sh = simulate_shards(equal_costs(8, 1.0), 8, 1, 8, 4);
  EXPECT_GE(sh.wide_total, sh.whole.work / 8 - 1e-9);
}
