// Invariants of jobs/tiny.toml's results on 1 and 2 ranks (written by the e2e_tiny_run tests).
#include <gtest/gtest.h>
#include <hdf5.h>

#include <cmath>
#include <cstdio>
#include <map>
#include <string>

#include "taskreach/config.hpp"
#include "taskreach/io.hpp"

using namespace taskreach;

namespace {
const std::string kDir = TASKREACH_E2E_DIR;

int64_t index_of(const RunOutput& r, const std::string& name) {
  for (size_t i = 0; i < r.task_names.size(); ++i)
    if (r.task_names[i] == name) return int64_t(i);
  ADD_FAILURE() << "no task " << name;
  return 0;
}

// Opens `path` in `file` and checks its rank, dimensions and type class/size.
void expect_dataset(hid_t file, const std::string& path, std::vector<hsize_t> dims, H5T_class_t cls, size_t size) {
  SCOPED_TRACE(path);
  ASSERT_GT(H5Lexists(file, path.c_str(), H5P_DEFAULT), 0) << "missing";
  hid_t d = H5Dopen2(file, path.c_str(), H5P_DEFAULT);
  ASSERT_GE(d, 0);
  hid_t s = H5Dget_space(d), t = H5Dget_type(d);
  std::vector<hsize_t> got(size_t(H5Sget_simple_extent_ndims(s)));
  H5Sget_simple_extent_dims(s, got.data(), nullptr);
  EXPECT_EQ(got, dims);
  EXPECT_EQ(H5Tget_class(t), cls);
  if (size) {
    EXPECT_EQ(H5Tget_size(t), size);
  }
  H5Tclose(t);
  H5Sclose(s);
  H5Dclose(d);
}
}  // namespace

TEST(E2ETiny, ReachabilityInvariantsHoldExactly) {
  for (int np : {1, 2}) {
    SCOPED_TRACE("np " + std::to_string(np));
    RunOutput r = read_output(kDir + "/tiny_np" + std::to_string(np) + ".h5");
    ASSERT_EQ(r.task_names.size(), 3u);
    for (int64_t i = 0; i < 3; ++i) EXPECT_EQ(r.R(i, i), 0.0) << "R(i|i) must be exactly 0";
    const int64_t full = index_of(r, "mnist"), half = index_of(r, "mnist-half");
    // mnist-half ⊆ mnist: the union is mnist itself, one job, so R(half|mnist) = 0 exactly.
    EXPECT_EQ(r.R(half, full), 0.0);
    EXPECT_EQ(r.unions_C(half, full), r.C[size_t(full)]);
    // tiny.toml has one seed: the seed error is unknown (NaN), the probe error is what is known.
    EXPECT_TRUE(std::isnan(r.stderr_total(full, half)));
    EXPECT_TRUE(r.flags(full, half) & reach_flag::seed_error_unknown);
    EXPECT_GT(r.R(full, half), 3.0 * r.stderr_probe(full, half));
    for (int64_t i = 0; i < 3; ++i)
      for (int64_t j = 0; j < 3; ++j) {
        EXPECT_TRUE(std::isfinite(r.R(i, j)));
        EXPECT_DOUBLE_EQ(r.unions_C(i, j), r.unions_C(j, i));
        // R by an independent subtraction of the C values read back from the file.
        EXPECT_NEAR(r.R(i, j), r.unions_C(i, j) - r.unions_C(j, j), 1e-9 * std::fabs(r.unions_C(i, j)));
      }
    // C_β from its stored terms and the file's own β and λ², written out here rather than
    // through the code's formula: L + β/2·(‖w‖²/λ² + log det).
    const double beta = r.attrs_f64.at("beta"), lambda2 = r.attrs_f64.at("lambda2");
    for (size_t i = 0; i < 3; ++i) {
      const double c = r.loss[i] + beta / 2.0 * (r.weight_norm2[i] / lambda2 + r.logdet[i]);
      EXPECT_NEAR(r.C[i], c, 1e-9 * std::fabs(c)) << r.task_names[i];
      EXPECT_EQ(r.unions_C(int64_t(i), int64_t(i)), r.C[i]);
    }
    for (const auto& job : r.jobs)  // every model reached the MAP point (fine-tunes may not reach θ)
      if (job.name.rfind("single:", 0) == 0 || job.name.rfind("union:", 0) == 0) {
        EXPECT_EQ(job.status, "ok") << job.name << " " << job.record;
      }
    for (const auto& sp : r.spectra)
      for (size_t k = 0; k < sp.eigenvalues.size(); ++k)  // SLEPc's relative criterion, at the default tolerance
        EXPECT_LE(sp.residuals[k], 10 * taskreach::ComplexityConfig{}.eps_tol * sp.eigenvalues[k]);
  }
}

TEST(E2ETiny, FineTuneMatrixFollowsTheProtocol) {
  RunOutput r = read_output(kDir + "/tiny_np2.h5");
  ASSERT_EQ(r.finetune_threshold.size(), 3u);
  for (int64_t i = 0; i < 3; ++i) {
    EXPECT_GT(r.finetune_threshold[size_t(i)], 0.0);
    EXPECT_GE(r.finetune_steps(i, i), 0) << "the scratch run reaches its own threshold";
    ASSERT_EQ(r.training[size_t(i)].curve.size() % 3, 0u);
    EXPECT_GT(r.training[size_t(i)].curve.size(), 3u);
    for (int64_t j = 0; j < 3; ++j) {
      const int64_t t = r.finetune_steps(i, j);
      EXPECT_TRUE(t == -1 || (t >= 0 && t % 10 == 0)) << "steps are evaluation points or -1";
      if (t >= 0) {
        EXPECT_GE(r.finetune_samples(i, j), 0);
      }
    }
  }
  // Starting from a superset's weights, a subset is already learned: no step is needed.
  const int64_t full = index_of(r, "mnist"), half = index_of(r, "mnist-half");
  EXPECT_EQ(r.finetune_steps(half, full), 0);
}

TEST(E2ETiny, SharedProbesShrinkTheErrorOfDifferences) {
  // The same probes for every model: the error of C(D_i ∪ D_j) − C(D_j) is the paired one.
  RunOutput r = read_output(kDir + "/tiny_np2.h5");
  double paired = 0, unpaired = 0;
  int pairs = 0;
  for (int64_t i = 0; i < 3; ++i)
    for (int64_t j = 0; j < 3; ++j)
      if (r.R(i, j) != 0.0) {
        paired += r.stderr_probe(i, j);
        unpaired += r.stderr_probe_unpaired(i, j);
        ++pairs;
      }
  ASSERT_GT(pairs, 0);
  std::printf("mean probe stderr of R over %d pairs: paired %.3f, unpaired %.3f nats\n", pairs, paired / pairs,
              unpaired / pairs);
  EXPECT_LT(paired, unpaired);
}

TEST(E2ETiny, OneAndTwoRanksAgreeWithinErrors) {
  RunOutput a = read_output(kDir + "/tiny_np1.h5"), b = read_output(kDir + "/tiny_np2.h5");
  ASSERT_EQ(a.task_names, b.task_names);
  for (int64_t i = 0; i < 3; ++i) {
    EXPECT_NEAR(a.C[size_t(i)], b.C[size_t(i)],
                3.0 * std::hypot(a.logdet_stderr[size_t(i)], b.logdet_stderr[size_t(i)]) + 1e-3 * std::fabs(a.C[size_t(i)]));
    for (int64_t j = 0; j < 3; ++j) {
      // One seed (tiny.toml): within the probe errors, the part of the error that is known.
      const double tol = 3.0 * std::hypot(a.stderr_probe(i, j), b.stderr_probe(i, j));
      EXPECT_LE(std::fabs(a.R(i, j) - b.R(i, j)), tol + 1e-12) << "R(" << i << "|" << j << ")";
    }
  }
}

// tiny.toml at a fixed m = 12 (tiny_paired.toml): paired R differences failing their m/2
// check had both jobs measured again at twice the pair's larger m, and an entry is flagged
// `quadrature` only after its jobs' rerun. On 1 and 2 ranks.
TEST(E2ETiny, FailingPairedDifferencesAreRerunAtTwiceTheirSteps) {
  for (int np : {1, 2}) {
    SCOPED_TRACE("np " + std::to_string(np));
    RunOutput r = read_output(kDir + "/tiny_paired_np" + std::to_string(np) + ".h5");
    const int64_t reruns = r.attrs_i64.at("paired_reruns");
    EXPECT_GT(reruns, 0) << "tiny_paired.toml is meant to fail some paired checks at m = 12";
    std::map<std::string, const JobRecord*> by_name;
    int64_t marked = 0;
    for (const auto& job : r.jobs) {
      by_name[job.name] = &job;
      if (job.metrics.count("paired_rerun") && job.metrics.at("paired_rerun") == 1.0) {
        ++marked;
        // Twice the larger m of a pair: 12, or 24 where a job's own check extended it.
        const double m = job.metrics.at("lanczos_steps");
        EXPECT_TRUE(m == 24.0 || m == 48.0) << job.name << " " << job.record;
        EXPECT_EQ(job.metrics.at("lanczos_extended"), 0.0) << job.name;
      }
    }
    EXPECT_EQ(marked, reruns);
    // Each job computed once, each rerun once: the trainings plus the reruns.
    EXPECT_EQ(r.attrs_i64.at("jobs_computed"), int64_t(r.jobs.size()) + reruns);
    for (int64_t i = 0; i < 3; ++i)
      for (int64_t j = 0; j < 3; ++j) {
        EXPECT_NEAR(r.R(i, j), r.unions_C(i, j) - r.unions_C(j, j), 1e-9 * std::fabs(r.unions_C(i, j)));
        if (!(r.flags(i, j) & reach_flag::quadrature)) continue;
        EXPECT_TRUE(r.flags(i, j) & reach_flag::excluded);
        // Flagged only after its rerun: the source's single job was rerun.
        const auto it = by_name.find("single:" + r.task_names[size_t(j)] + "/seed0");
        ASSERT_NE(it, by_name.end());
        EXPECT_EQ(it->second->metrics.at("paired_rerun"), 1.0) << "R(" << i << "|" << j << ") flagged without a rerun";
      }
  }
}

// Every interrupted-then-resumed or repaired run must equal the uninterrupted one (1e-12).
void expect_same_matrices(const RunOutput& a, const RunOutput& b) {
  auto same = [](const Matrix<double>& x, const Matrix<double>& y, const char* what) {
    ASSERT_EQ(x.data.size(), y.data.size()) << what;
    for (size_t k = 0; k < x.data.size(); ++k) {
      if (std::isnan(x.data[k]) && std::isnan(y.data[k])) continue;  // unknown in both
      EXPECT_NEAR(x.data[k], y.data[k], 1e-12 * std::max(1.0, std::fabs(x.data[k]))) << what << " entry " << k;
    }
  };
  same(a.R, b.R, "R");
  same(a.unions_C, b.unions_C, "unions C");
  same(a.stderr_total, b.stderr_total, "stderr");
  same(a.stderr_probe, b.stderr_probe, "stderr_probe");
  EXPECT_EQ(a.flags.data, b.flags.data);
  EXPECT_EQ(a.finetune_steps.data, b.finetune_steps.data);
}

TEST(E2ETiny, ResumedRunEqualsUninterruptedAndRecomputesNothing) {
  RunOutput a = read_output(kDir + "/tiny_np2.h5"), b = read_output(kDir + "/tiny_resumed.h5");
  expect_same_matrices(a, b);
  // 3 jobs were finished before the stop: reused, not recomputed.
  EXPECT_EQ(b.attrs_i64.at("jobs_reused"), 3);
  EXPECT_EQ(b.attrs_i64.at("jobs_computed") + 3, a.attrs_i64.at("jobs_computed"));
}

// Two task groups of one rank each (the one-sided hand-out) compute every job exactly as one
// rank alone does: the hand-out and the exchange of results change nothing.
TEST(E2ETiny, TwoGroupsOfOneRankEqualOneRank) {
  RunOutput a = read_output(kDir + "/tiny_np1.h5"), b = read_output(kDir + "/tiny_groups_np2.h5");
  EXPECT_EQ(b.attrs_str.at("schedule"), "dynamic-one-sided");
  EXPECT_EQ(b.attrs_i64.at("task_groups"), 2);
  expect_same_matrices(a, b);
  EXPECT_EQ(a.C, b.C);
  EXPECT_EQ(a.finetune_threshold, b.finetune_threshold);
}

// Written by the e2e_fault_kill and e2e_fault_corrupt tests (tests/e2e/faults.sh), which
// check the counts of reused and recomputed jobs.
TEST(E2ETiny, RunResumedAfterAKilledRankEqualsUninterrupted) {
  expect_same_matrices(read_output(kDir + "/tiny_np2.h5"), read_output(kDir + "/tiny_killed.h5"));
}

TEST(E2ETiny, RunRepairingDamagedResultsEqualsUninterrupted) {
  expect_same_matrices(read_output(kDir + "/tiny_np2.h5"), read_output(kDir + "/tiny_corrupt.h5"));
}

TEST(E2ETiny, ForcedDivergenceIsRecordedAndTheRestCompletes) {
  RunOutput r = read_output(kDir + "/tiny_diverged.h5");
  const int64_t full = index_of(r, "mnist"), half = index_of(r, "mnist-half"), fashion = index_of(r, "fashion");
  int diverged = 0;
  for (const auto& j : r.jobs) {
    const bool involves = j.name.find("fashion") != std::string::npos && j.name.rfind("scratch:", 0) != 0 &&
                          j.name.rfind("finetune:fashion<-", 0) != 0;
    if (j.name.rfind("single:", 0) == 0 || j.name.rfind("union:", 0) == 0) {
      EXPECT_EQ(j.status, involves ? "diverged" : "ok") << j.name;
      diverged += j.status == "diverged";
    }
  }
  EXPECT_EQ(diverged, 3);  // single:fashion and both unions with it
  EXPECT_TRUE(std::isfinite(r.R(full, half)));
  EXPECT_GT(r.R(full, half), 0.0);
  EXPECT_TRUE(std::isnan(r.R(fashion, full)));
  EXPECT_TRUE(std::isnan(r.R(full, fashion)));
}

TEST(E2ETiny, FileHasTheSchema) {
  const std::string path = kDir + "/tiny_np2.h5";
  hid_t f = H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  ASSERT_GE(f, 0);
  const hsize_t N = 3;
  expect_dataset(f, "/tasks/name", {N}, H5T_STRING, 0);
  expect_dataset(f, "/tasks/num_samples", {N}, H5T_INTEGER, 8);
  expect_dataset(f, "/tasks/num_classes", {N}, H5T_INTEGER, 8);
  for (const char* c : {"C", "loss", "weight_norm2", "logdet", "logdet_stderr", "grad_norm"})
    expect_dataset(f, std::string("/complexity/") + c, {N}, H5T_FLOAT, 8);
  expect_dataset(f, "/unions/C", {N, N}, H5T_FLOAT, 8);
  expect_dataset(f, "/unions/conflicts", {N, N}, H5T_INTEGER, 8);
  for (const char* c : {"R", "R_per_sample", "stderr", "stderr_probe", "stderr_seed"})
    expect_dataset(f, std::string("/reachability/") + c, {N, N}, H5T_FLOAT, 8);
  expect_dataset(f, "/spectra/mnist/eigenvalues", {5}, H5T_FLOAT, 8);
  expect_dataset(f, "/finetune/steps", {N, N}, H5T_INTEGER, 8);
  expect_dataset(f, "/finetune/samples", {N, N}, H5T_INTEGER, 8);
  expect_dataset(f, "/finetune/threshold", {N}, H5T_FLOAT, 8);
  expect_dataset(f, "/training/mnist/convergence_step", {}, H5T_INTEGER, 8);
  for (const char* a : {"spearman_R_T", "pearson_R_logT", "kendall_within_target", "partial_spearman_R_T_given_scratch",
                        "baselines/scratch_cost/spearman_T", "baselines/loss_at_source/spearman_T",
                        "baselines/target_complexity/pearson_logT"})
    expect_dataset(f, std::string("/analysis/") + a, {}, H5T_FLOAT, 8);
  expect_dataset(f, "/analysis/pairs_used", {}, H5T_INTEGER, 8);
  for (const char* a : {"version", "config", "created", "mpi_ranks", "ranks_per_task", "beta", "lambda2",
                        "logdet_scale", "curvature", "seeds", "torch", "petsc", "slepc", "hdf5", "mpi", "blas"})
    EXPECT_GT(H5Aexists(f, a), 0) << "attribute " << a;
  H5Fclose(f);
  RunOutput r = read_output(path);
  EXPECT_EQ(r.attrs_i64.at("mpi_ranks"), 2);
  EXPECT_NE(r.attrs_str.at("config").find("name = \"tiny\""), std::string::npos);
}
