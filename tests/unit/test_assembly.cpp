// The statistics of a run's output on hand-made measurements, where every expected value is
// known: which jobs are kept and which are left out of the analysis, the degrees of freedom a
// seed error carries, the errors of seed means over shared probes, the flags of the matrix,
// and the cross-validated prediction of the fine-tune cost.
#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <string>
#include <vector>

#include "taskreach/analysis.hpp"
#include "taskreach/complexity.hpp"
#include "taskreach/results.hpp"
#include "taskreach/util.hpp"

using namespace taskreach;

namespace {

constexpr int64_t kProbes = 16;

// Per-probe values around `mean` with a known spread (a fixed ±pattern of amplitude a).
std::vector<double> probe_values(double mean, double a) {
  std::vector<double> q;
  for (int64_t p = 0; p < kProbes; ++p) q.push_back(mean + (p % 2 ? a : -a) * (1.0 + 0.1 * double(p % 5)));
  return q;
}

double stderr_of(const std::vector<double>& v) {
  double m = 0;
  for (double x : v) m += x / double(v.size());
  double s = 0;
  for (double x : v) s += (x - m) * (x - m);
  return std::sqrt(s / double(v.size() - 1) / double(v.size()));
}

Task make_task(const std::string& name, std::vector<int64_t> ids) {
  Task t;
  t.name = name;
  for (int64_t i : ids) {
    t.y.push_back(i % 3);
    t.keys.push_back({0, i, 0, i % 3});
  }
  t.identity = uint64_t(ids.front() * 1000 + ids.size());
  return t;
}

// Three tasks (0, 1, 2), their singles and unions, and S seeds of measurements whose C are
// set per (job, seed) through `C_of`; β = 1, so C's probe error is ½·stderr(probes).
struct SyntheticRun {
  JobConfig job;
  TaskSet tasks;
  std::vector<PlannedJob> jobs;
  std::vector<std::vector<int64_t>> job_of;
  std::vector<std::vector<Measurement>> ms;  // [job][seed]

  explicit SyntheticRun(int64_t S) {
    job.complexity.probes = kProbes;
    job.train.seeds = S;
    tasks.tasks = {make_task("a", {0, 1, 2, 3}), make_task("b", {10, 11, 12}), make_task("c", {20, 21})};
    job_of.assign(3, std::vector<int64_t>(3, -1));
    for (int64_t i = 0; i < 3; ++i) {
      jobs.push_back({"single:" + tasks.tasks[size_t(i)].name, tasks.tasks[size_t(i)]});
      job_of[size_t(i)][size_t(i)] = i;
    }
    for (int64_t i = 0; i < 3; ++i)
      for (int64_t j = i + 1; j < 3; ++j) {
        const auto& a = tasks.tasks[size_t(i)];
        const auto& b = tasks.tasks[size_t(j)];
        jobs.push_back({"union:" + a.name + "+" + b.name, unite(a, b, a.name + "+" + b.name)});
        job_of[size_t(i)][size_t(j)] = job_of[size_t(j)][size_t(i)] = int64_t(jobs.size()) - 1;
      }
    ms.assign(jobs.size(), std::vector<Measurement>(size_t(S)));
    for (size_t j = 0; j < jobs.size(); ++j)
      for (int64_t s = 0; s < S; ++s) set(int64_t(j), s, 100.0 * double(jobs[j].task.size()), amplitude(j));
  }
  // Each job its own probe spread, so that paired differences have an error.
  static double amplitude(size_t j) { return 1.0 + 0.5 * double(j); }
  // Job j at seed s: C = loss + ½·logdet with the log det's probes around `logdet` (spread a).
  void set(int64_t j, int64_t s, double logdet, double a, double loss = 5.0) {
    Measurement& m = ms[size_t(j)][size_t(s)];
    m.probes = probe_values(logdet, a);
    m.probes_half = m.probes;
    m.probes_alt = probe_values(2 * logdet, a);
    m.trace_probes = probe_values(3 * logdet, a);
    m.logdet = logdet;
    m.loss = loss;
    m.weight_norm2 = 0.0;
    m.C = complexity(m.loss, 0.0, m.logdet, job.complexity);
  }
  RunOutput assemble() const {
    std::vector<std::vector<const Measurement*>> by_job;
    for (const auto& seeds : ms) {
      by_job.emplace_back();
      for (const auto& m : seeds) by_job.back().push_back(&m);
    }
    RunOutput out;
    assemble_reachability(out, job, tasks, jobs, job_of, by_job);
    return out;
  }
};

const int64_t kAB = 3, kAC = 4, kBC = 5;  // the unions' jobs

}  // namespace

TEST(StudentT, AgreesWithScipy) {
  // scipy.stats.t.cdf / t.ppf(norm.cdf(3), dof), computed independently.
  EXPECT_NEAR(util::student_t_cdf(0.5, 1), 0.6475836176504333, 1e-12);
  EXPECT_NEAR(util::student_t_cdf(2.0, 3), 0.9303370157205785, 1e-12);
  EXPECT_NEAR(util::student_t_cdf(-1.3, 7.5), 0.11606338940780428, 1e-12);
  EXPECT_NEAR(util::student_t_cdf(4.0, 2), 0.9714045207910317, 1e-12);
  EXPECT_NEAR(util::critical_value(1), 235.80149796043503, 1e-7);
  EXPECT_NEAR(util::critical_value(2), 19.20674421144558, 1e-9);
  EXPECT_NEAR(util::critical_value(3), 9.218940458700201, 1e-9);
  // Fractional degrees of freedom (Welch–Satterthwaite): SciPy's ppf is good to ~1e-9 there,
  // its cdf at our quantile returns Φ(3) to the last digit.
  EXPECT_NEAR(util::critical_value(4.5), 5.967916007025871, 1e-8);
  EXPECT_NEAR(util::student_t_cdf(util::critical_value(4.5), 4.5), 0.9986501019683699, 1e-15);
  EXPECT_NEAR(util::critical_value(10), 3.9569366600027562, 1e-9);
  EXPECT_NEAR(util::critical_value(30), 3.2703338824675794, 1e-9);
  EXPECT_NEAR(util::critical_value(1000), 3.007517280226099, 1e-9);
  EXPECT_EQ(util::critical_value(INFINITY), 3.0);
  EXPECT_TRUE(std::isnan(util::critical_value(0)));
  EXPECT_TRUE(std::isnan(util::critical_value(NAN)));
}

TEST(Status, EveryFlagIsRecordedAndSurvivesTheStore) {
  EXPECT_EQ(status_of(0), "ok");
  EXPECT_EQ(status_of(job_flag::not_converged | job_flag::eps_not_converged), "not_converged+eps_not_converged");
  Measurement m;
  m.flags = job_flag::not_converged | job_flag::eps_not_converged;
  m.probes = {1, 2, 3};
  m.trace_probes = {4, 5};
  const Measurement back = Measurement::unpack(m.pack());
  EXPECT_EQ(back.flags, m.flags);
  EXPECT_EQ(back.status(), "not_converged+eps_not_converged");
  EXPECT_EQ(back.trace_probes, m.trace_probes);
}

TEST(Assembly, EpsNotConvergedKeepsRAndFlagsIt) {
  SyntheticRun run(2);
  run.ms[kAB][1].flags = job_flag::eps_not_converged;
  const RunOutput out = run.assemble();
  EXPECT_TRUE(std::isfinite(out.R(0, 1)));
  EXPECT_TRUE(std::isfinite(out.R(1, 0)));
  EXPECT_NEAR(out.R(0, 1), run.ms[kAB][0].C - run.ms[1][0].C, 1e-9);
  EXPECT_TRUE(out.flags(0, 1) & reach_flag::eps_not_converged);
  EXPECT_FALSE(out.flags(0, 1) & reach_flag::excluded);
  EXPECT_FALSE(out.flags(0, 2) & reach_flag::eps_not_converged);
}

TEST(JobRecord, FiguresGoToTheTextAndTheMetrics) {
  JobRecord r;
  r.add_text("seed", "18446744073709551615");  // beyond a double: text only
  r.add("sgd_steps", 600);
  r.add("gamma", 5e-4);
  r.add("quadrature_change", std::nan(""));  // in the text, not a metric (NaN in the file)
  EXPECT_EQ(r.record, "seed=18446744073709551615 sgd_steps=600 gamma=0.0005 quadrature_change=nan");
  EXPECT_EQ(r.metrics, (std::map<std::string, double>{{"gamma", 5e-4}, {"sgd_steps", 600.0}}));
}

TEST(Assembly, EveryJobRecordCarriesItsTimeSplitAndPasses) {
  SyntheticRun run(2);
  for (size_t j = 0; j < run.ms.size(); ++j)
    for (size_t s = 0; s < 2; ++s) {
      Measurement& m = run.ms[j][s];
      m.sgd_seconds = 1.0 + double(j);
      m.polish_seconds = 10.0 + double(s);
      m.topk_seconds = 0.25;
      m.slq_seconds = 3.5;
      m.polish_passes = 100 * int64_t(j) + int64_t(s);
      m.curvature_passes = 7;
      m.lanczos_extended = int64_t(j % 2);
      m.paired_rerun = int64_t(j % 3 == 0);
    }
  const RunOutput out = run.assemble();
  ASSERT_EQ(out.jobs.size(), 2 * run.ms.size());
  for (size_t j = 0; j < run.ms.size(); ++j)
    for (size_t s = 0; s < 2; ++s) {
      const JobRecord& r = out.jobs[s * run.ms.size() + j];
      const Measurement& m = run.ms[j][s];
      EXPECT_EQ(r.name, run.jobs[j].name + "/seed" + std::to_string(s));
      EXPECT_EQ(r.metrics.at("time_sgd"), m.sgd_seconds);
      EXPECT_EQ(r.metrics.at("time_polish"), m.polish_seconds);
      EXPECT_EQ(r.metrics.at("time_topk"), m.topk_seconds);
      EXPECT_EQ(r.metrics.at("time_slq"), m.slq_seconds);
      EXPECT_EQ(r.metrics.at("polish_passes"), double(m.polish_passes));
      EXPECT_EQ(r.metrics.at("n"), double(run.jobs[j].task.size()));
      EXPECT_EQ(r.metrics.at("lanczos_extended"), double(m.lanczos_extended));
      EXPECT_EQ(r.metrics.at("paired_rerun"), double(m.paired_rerun));
      EXPECT_NE(r.record.find(" polish_passes=" + std::to_string(m.polish_passes) + " "), std::string::npos) << r.record;
      EXPECT_NE(r.record.find(" dtype=float32+float64_polish "), std::string::npos) << r.record;
    }
}

TEST(Assembly, NotConvergedIsStoredButLeftOutOfTheAnalysis) {
  SyntheticRun run(2);
  // Task c's single job: its polish and its eigensolver both failed at seed 0.
  run.ms[2][0].flags = job_flag::not_converged | job_flag::eps_not_converged;
  // Seed-to-seed differences small against the probe error: everything else is resolved.
  for (size_t j = 0; j < run.jobs.size(); ++j)
    run.set(int64_t(j), 1, 100.0 * double(run.jobs[j].task.size()) + 0.01, SyntheticRun::amplitude(j));
  RunOutput out = run.assemble();
  EXPECT_EQ(out.task_status[2], "not_converged+eps_not_converged");
  EXPECT_EQ(out.task_status[0], "ok");
  // Kept: R(a|c) has its value; flagged as left out.
  EXPECT_TRUE(std::isfinite(out.R(0, 2)));
  EXPECT_TRUE(out.flags(0, 2) & reach_flag::excluded);
  EXPECT_TRUE(out.flags(1, 2) & reach_flag::excluded);
  EXPECT_FALSE(out.flags(2, 0) & reach_flag::excluded);  // c ∪ a and a are fine
  // The analysis: every pair reached, only the 4 with trusted jobs can be used.
  out.finetune_steps = Matrix<int64_t>(3, 3, 0);
  out.finetune_samples = Matrix<int64_t>(3, 3, 0);
  int64_t k = 1;
  for (int64_t i = 0; i < 3; ++i)
    for (int64_t j = 0; j < 3; ++j) out.finetune_steps(i, j) = 10 * k++;
  out.finetune_threshold = {0.1, 0.1, 0.1};
  analyse_reachability(out, Matrix<double>(3, 3, 1.0));
  EXPECT_EQ(out.analysis_i64.at("pairs_excluded"), 2);
  EXPECT_EQ(out.analysis_i64.at("pairs_used") + out.analysis_i64.at("pairs_unresolved"), 4);
  EXPECT_EQ(out.analysis_i64.at("pairs_used"), 4);
  EXPECT_EQ(out.analysis_i64.at("prediction/pairs"), 4);
}

TEST(Assembly, OneSeedLeavesTheSeedErrorUnknown) {
  SyntheticRun run(1);
  const RunOutput out = run.assemble();
  EXPECT_TRUE(std::isfinite(out.R(0, 1)));
  EXPECT_TRUE(std::isnan(out.stderr_seed(0, 1)));
  EXPECT_TRUE(std::isnan(out.stderr_total(0, 1)));
  EXPECT_GT(out.stderr_probe(0, 1), 0.0);
  EXPECT_TRUE(std::isnan(out.C_stderr[0]));
  for (int64_t i = 0; i < 3; ++i)
    for (int64_t j = 0; j < 3; ++j) {
      EXPECT_TRUE(out.flags(i, j) & reach_flag::seed_error_unknown);
      EXPECT_FALSE(out.flags(i, j) & reach_flag::resolved);
    }
  EXPECT_EQ(out.R(1, 1), 0.0);
}

TEST(Assembly, SeedErrorsAreJudgedWithTheirDegreesOfFreedom) {
  SyntheticRun run(2);
  // R(a|b): the union a∪b differs by seed (C ±1), its probes like b's: the error is the seed
  // part alone, with one degree of freedom.
  run.set(1, 0, 300.0, 1e-3);
  run.set(1, 1, 300.0, 1e-3);
  run.set(kAB, 0, 322.0, 1e-3);
  run.set(kAB, 1, 318.0, 1e-3);
  const RunOutput out = run.assemble();
  // R(a|b) = ½(320 − 300) = 10, stderr_seed = ½·2 = 1 (|R| = 10 stderr).
  EXPECT_NEAR(out.R(0, 1), 10.0, 1e-9);
  EXPECT_NEAR(out.stderr_seed(0, 1), 1.0, 1e-9);
  EXPECT_NEAR(out.dof(0, 1), 1.0, 1e-3);
  EXPECT_NEAR(out.critical(0, 1), 235.8, 0.2);
  EXPECT_GT(std::fabs(out.R(0, 1)), 3.0 * out.stderr_total(0, 1));  // what 3·stderr called resolved
  EXPECT_FALSE(out.flags(0, 1) & reach_flag::resolved);
}

TEST(Assembly, ProbeDominatedErrorsResolveAndNegativeEntriesAreFlagged) {
  SyntheticRun run(2);
  // C(a∪c) below C(a) by far more than its error; the seeds agree, so the paired probe error
  // (the union's pattern has 3× a's spread) is all of it, with kProbes − 1 degrees of freedom.
  run.set(0, 0, 400.0, 1.0);
  run.set(0, 1, 400.0, 1.0);
  run.set(kAC, 0, 380.0, 3.0);
  run.set(kAC, 1, 380.0, 3.0);
  const RunOutput out = run.assemble();
  // R(c|a) = ½(380 − 400) = −10; paired probe error = ½·stderr(2·pattern).
  const double se = 0.5 * stderr_of(probe_values(0.0, 2.0));
  EXPECT_NEAR(out.R(2, 0), -10.0, 1e-9);
  EXPECT_NEAR(out.stderr_probe(2, 0), se, 1e-12);
  EXPECT_EQ(out.stderr_seed(2, 0), 0.0);
  EXPECT_NEAR(out.dof(2, 0), double(kProbes - 1), 1e-9);
  EXPECT_NEAR(out.critical(2, 0), util::critical_value(kProbes - 1), 1e-12);
  ASSERT_GT(10.0, out.critical(2, 0) * se);
  EXPECT_TRUE(out.flags(2, 0) & reach_flag::resolved);
  EXPECT_TRUE(out.flags(2, 0) & reach_flag::negative);
  EXPECT_FALSE(out.flags(0, 2) & reach_flag::negative);
}

// The m/2 check of a paired difference: where the union's half-step probes move the
// difference by more than a third of its probe error, the entry is flagged and left out.
TEST(Assembly, ADifferenceFailingItsQuadratureCheckIsLeftOut) {
  SyntheticRun run(2);
  for (int64_t s = 0; s < 2; ++s)
    for (double& q : run.ms[kAB][size_t(s)].probes_half) q -= 30.0;  // 15 nats in C at m/2
  const RunOutput out = run.assemble();
  EXPECT_TRUE(out.flags(0, 1) & reach_flag::quadrature);
  EXPECT_TRUE(out.flags(0, 1) & reach_flag::excluded);
  EXPECT_TRUE(out.flags(1, 0) & reach_flag::quadrature);  // the same union, source a
  EXPECT_FALSE(out.flags(0, 2) & reach_flag::quadrature);
  EXPECT_TRUE(std::isfinite(out.R(0, 1)));
}

// The check is paired: a quadrature error the union and the single share (the same shift of
// every half-step probe in both) cancels in the difference, though each job alone would fail
// its own check; moving one job's half-step values by just over or under a third of the
// difference's probe error decides it.
TEST(Assembly, PairedQuadratureCheckSeesOnlyTheDifference) {
  SyntheticRun run(2);
  auto seeds = [&](int64_t j) {
    std::vector<const Measurement*> v;
    for (const auto& m : run.ms[size_t(j)]) v.push_back(&m);
    return v;
  };
  for (int64_t j : {kAB, int64_t(1)})
    for (auto& m : run.ms[size_t(j)])
      for (double& q : m.probes_half) q -= 30.0;
  const PairedDifference shared = paired_difference(1.0, seeds(kAB), seeds(1));
  ASSERT_EQ(shared.at_m.size(), size_t(kProbes));
  EXPECT_FALSE(shared.quadrature_unconverged());
  EXPECT_TRUE(formulas::quadrature_unconverged(30.0, stderr_of(run.ms[kAB][0].probes)));  // the union alone
  // β = 1: the difference's log-det term is ½(q_u − q_s); its stderr from the per-probe terms.
  const double se = stderr_of(shared.at_m);
  ASSERT_GT(se, 0.0);
  for (const double frac : {0.34, 0.32}) {
    SyntheticRun r = run;
    for (auto& m : r.ms[kAB])
      for (double& q : m.probes_half) q -= 2.0 * frac * se;  // the term moves by frac·se
    std::vector<const Measurement*> u, s;
    for (const auto& m : r.ms[kAB]) u.push_back(&m);
    for (const auto& m : r.ms[1]) s.push_back(&m);
    EXPECT_EQ(paired_difference(1.0, u, s).quadrature_unconverged(), frac > 1.0 / 3.0) << frac;
  }
  // No probe values (a diverged job): nothing to check.
  SyntheticRun none = run;
  for (auto& m : none.ms[1]) m.probes.clear(), m.probes_half.clear();
  std::vector<const Measurement*> u, s;
  for (const auto& m : none.ms[kAB]) u.push_back(&m);
  for (const auto& m : none.ms[1]) s.push_back(&m);
  EXPECT_TRUE(paired_difference(1.0, u, s).at_m.empty());
  EXPECT_FALSE(paired_difference(1.0, u, s).quadrature_unconverged());
}

TEST(Assembly, TaskErrorsComeFromSeedAveragedProbes) {
  SyntheticRun run(2);
  // The same probes at both seeds (they are shared): the seed mean has the probes' error, not
  // that error over √2 as independent probes would give.
  run.set(0, 0, 400.0, 2.0);
  run.set(0, 1, 400.0, 2.0);
  const RunOutput out = run.assemble();
  const double se = stderr_of(probe_values(400.0, 2.0));
  EXPECT_NEAR(out.logdet_stderr[0], se, 1e-12);
  EXPECT_NEAR(out.trace_stderr[0], se, 1e-12);
  EXPECT_NEAR(out.C_stderr[0], 0.5 * se, 1e-12);  // seeds agree: the probe part alone
  EXPECT_NEAR(out.C_paper_stderr[0], 0.5 * se, 1e-12);
}

namespace {

// A hand-made output of N targets × N sources for the prediction: T(i|j) from `cost`.
RunOutput prediction_output(int64_t N, double (*cost)(double R, double scratch, int64_t i, int64_t j)) {
  RunOutput out;
  for (int64_t i = 0; i < N; ++i) {
    out.task_names.push_back("t" + std::to_string(i));
    out.C.push_back(100.0 + 7.0 * double((i * 5) % N));
  }
  out.R = out.stderr_total = Matrix<double>(N, N, 0.0);
  out.flags = Matrix<int64_t>(N, N, reach_flag::resolved);
  out.finetune_steps = out.finetune_samples = Matrix<int64_t>(N, N, 0);
  for (int64_t i = 0; i < N; ++i) {
    const double scratch = 200.0 + 50.0 * double((i * 3) % N);
    out.finetune_steps(i, i) = int64_t(scratch);
    for (int64_t j = 0; j < N; ++j)
      if (i != j) {
        out.R(i, j) = 5.0 + 3.0 * double((i * 7 + j * 11) % 13);
        out.stderr_total(i, j) = 0.1;
        out.finetune_steps(i, j) = int64_t(std::llround(cost(out.R(i, j), scratch, i, j)));
      }
  }
  out.finetune_threshold.assign(size_t(N), 0.1);
  return out;
}

Matrix<double> loss_at(int64_t N) {
  Matrix<double> m(N, N, 0.0);
  for (int64_t i = 0; i < N; ++i)
    for (int64_t j = 0; j < N; ++j) m(i, j) = 1.0 + 0.01 * double((i * 13 + j * 5) % 17);
  return m;
}

}  // namespace

TEST(Prediction, RAddsWhereItCarriesTheCost) {
  const int64_t N = 8;
  RunOutput out = prediction_output(N, [](double R, double scratch, int64_t, int64_t) {
    return std::exp(0.002 * scratch + 0.08 * R);
  });
  analyse_reachability(out, loss_at(N));
  EXPECT_EQ(out.analysis_i64.at("prediction/pairs"), N * (N - 1));
  EXPECT_EQ(out.analysis_i64.at("prediction/targets"), N);
  EXPECT_GT(out.analysis.at("prediction/R/spearman_logT"), 0.8);
  EXPECT_LT(out.analysis.at("prediction/scratch_cost_R/rmse_logT"), out.analysis.at("prediction/scratch_cost/rmse_logT"));
  EXPECT_GT(out.analysis.at("prediction/R_gain_over_scratch_cost/rmse_logT_lo"), 0.0);
  EXPECT_EQ(out.analysis_i64.at("prediction/R_gain_over_scratch_cost/adds"), 1);
  EXPECT_EQ(out.analysis_i64.at("prediction/R_gain_over_baselines/adds"), 1);
  const double lo = out.analysis.at("prediction/R/spearman_logT_lo"), hi = out.analysis.at("prediction/R/spearman_logT_hi");
  EXPECT_LE(lo, out.analysis.at("prediction/R/spearman_logT") + 1e-12);
  EXPECT_LE(lo, hi);
}

TEST(Prediction, RDoesNotAddWhereTheScratchCostCarriesIt) {
  const int64_t N = 8;
  RunOutput out = prediction_output(N, [](double, double scratch, int64_t i, int64_t j) {
    return scratch * (1.0 + 0.02 * double((i + 3 * j) % 5));  // R plays no part
  });
  analyse_reachability(out, loss_at(N));
  EXPECT_EQ(out.analysis_i64.at("prediction/R_gain_over_scratch_cost/adds"), 0);
  EXPECT_GT(out.analysis.at("prediction/scratch_cost/spearman_logT"), 0.8);
}

TEST(Prediction, UnstableTargetsAreLeftOut) {
  const int64_t N = 6;
  RunOutput out = prediction_output(N, [](double R, double, int64_t, int64_t) { return 10.0 * R; });
  for (int64_t j = 0; j < N; ++j) out.flags(2, j) |= reach_flag::unstable_target;
  analyse_reachability(out, loss_at(N));
  EXPECT_EQ(out.analysis_i64.at("pairs_unstable_target"), N - 1);
  EXPECT_EQ(out.analysis_i64.at("pairs_used"), (N - 1) * (N - 1));
  EXPECT_EQ(out.analysis_i64.at("prediction/targets"), N - 1);
}
