// The HDF5 output written collectively by every rank of MPI_COMM_WORLD: every entry of the
// schema table reads back exactly, the row blocks (an odd N splits unevenly) land where they
// belong, each transfer was collective (or write_output throws), the temporary is gone, and
// a failure on one rank fails all ranks with the same message instead of leaving them in a
// collective.
#include <gtest/gtest.h>
#include <mpi.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>
#include <string>
#include <vector>

#include "../../src/io/schema.hpp"
#include "taskreach/io.hpp"

namespace fs = std::filesystem;
using namespace taskreach;

namespace {

int rank_of(MPI_Comm comm) {
  int r = 0;
  MPI_Comm_rank(comm, &r);
  return r;
}

std::string bcast(std::string s) {
  unsigned long n = s.size();
  MPI_Bcast(&n, 1, MPI_UNSIGNED_LONG, 0, MPI_COMM_WORLD);
  s.resize(n);
  if (n > 0) MPI_Bcast(s.data(), static_cast<int>(n), MPI_CHAR, 0, MPI_COMM_WORLD);
  return s;
}

// Every member of the output filled, every value distinct (and the same on every rank), so
// a misplaced row block, a swapped dataset or a skipped entry shows.
RunOutput synthetic(size_t n) {
  double next = 0.3;
  auto value = [&] { return next = next * 1.013 + 0.71; };
  int64_t count = 7;
  auto integer = [&] { return count = (count * 7919 + 13) % 1000003; };
  RunOutput o;
  o.attrs_str = {{"version", "0.1.0"}, {"config", "name = \"p\"\n[train]\nepochs = 3\n"}, {"empty", ""}};
  o.attrs_f64 = {{"beta", 0.5}, {"lambda2", value()}};
  o.attrs_i64 = {{"mpi_ranks", 2}, {"seeds", -integer()}};
  for (size_t i = 0; i < n; ++i) {
    o.task_names.push_back("task_" + std::string(i + 1, static_cast<char>('a' + i)));
    o.num_samples.push_back(500 + integer());
    o.num_classes.push_back(10 - static_cast<int64_t>(i));
    for (auto* v : {&o.C, &o.loss, &o.weight_norm2, &o.logdet, &o.logdet_stderr, &o.grad_norm, &o.C_stderr,
                    &o.C_laplace, &o.C_laplace_stderr, &o.C_paper, &o.C_paper_stderr, &o.trace, &o.trace_stderr,
                    &o.finetune_threshold, &o.finetune_threshold_spread}) {
      v->push_back(value());
    }
    o.task_status.push_back(i % 2 ? "ok" : "eps_not_converged");
    o.finetune_unstable.push_back(static_cast<int64_t>(i % 2));
    SpectrumRecord s;
    for (size_t k = 0; k < (i % 3) + 1; ++k) {
      s.eigenvalues.push_back(value());
      s.residuals.push_back(value());
    }
    for (size_t k = 0; k < i + 2; ++k) {
      s.esd_nodes.push_back(value());
      s.esd_weights.push_back(value());
    }
    s.hvp_count = integer();
    s.seconds = value();
    o.spectra.push_back(s);
    TrainingRecord t;
    for (size_t k = 0; k < 3 * (i + 2); ++k) t.curve.push_back(value());
    t.convergence_step = integer();
    t.test_accuracy = value();
    o.training.push_back(t);
  }
  const auto nn = static_cast<int64_t>(n);
  for (auto* m : {&o.unions_C, &o.R, &o.R_per_sample, &o.stderr_total, &o.stderr_probe, &o.stderr_seed,
                  &o.stderr_probe_unpaired, &o.dof, &o.critical}) {
    *m = Matrix<double>(nn, nn, 0.0);
    for (double& x : m->data) x = value();
  }
  for (auto* m : {&o.unions_conflicts, &o.finetune_steps, &o.finetune_samples, &o.flags}) {
    *m = Matrix<int64_t>(nn, nn, 0);
    for (int64_t& x : m->data) x = integer() - 500000;
  }
  o.analysis = {{"spearman_R_T", value()}, {"baselines/scratch_cost/spearman_T", value()}};
  o.analysis_i64 = {{"pairs_used", integer()}, {"baselines/scratch_cost/pairs", integer()}};
  for (size_t j = 0; j < n + 2; ++j) {
    o.jobs.push_back({"job" + std::to_string(j), j % 3 ? "ok" : "diverged", value(),
                      "seed=" + std::to_string(j) + std::string(j, '*'), {{"time_polish", value()}}});
    if (j % 2) o.jobs.back().metrics["steps"] = double(integer());
  }
  o.extra = {{"/convergence/random_labels/steps", {value(), value(), value()}},
             {"/convergence/fits/steps/params", {value(), value()}},
             {"/potential/scan/C", {value()}},
             {"/critical_period/deficit/steps", {value(), value()}}};
  o.extra_strings = {{"/convergence/architecture/arch", {"mlp", "cnn-wide"}}, {"/potential/scan/names", {"γ"}}};
  o.extra_attrs = {{"/convergence/fits/steps", {{"model", "exp(a + b n)"}, {"param_names", "a,b"}}},
                   {"/critical_period/deficit", {{"unit", "steps"}}}};
  return o;
}

bool same_bits(double a, double b) {
  uint64_t x = 0, y = 0;
  std::memcpy(&x, &a, sizeof a);
  std::memcpy(&y, &b, sizeof b);
  return x == y;
}

std::string where(const io::Item& it) { return it.path + (it.attribute.empty() ? "" : "@" + it.attribute); }

// Every entry of the schema table, item by item: the same paths, shapes and values (doubles
// bit for bit), so an entry added to the table is compared without a change here.
void expect_same(const RunOutput& a, const RunOutput& b) {
  for (const io::Entry& e : io::schema()) {
    const std::vector<io::Item> x = io::contents(e, a), y = io::contents(e, b);
    ASSERT_EQ(x.size(), y.size()) << e.path;
    for (size_t k = 0; k < x.size(); ++k) {
      const std::string what = e.path + " at " + where(x[k]);
      EXPECT_EQ(where(x[k]), where(y[k])) << what;
      EXPECT_EQ(x[k].task, y[k].task) << what;
      EXPECT_EQ(x[k].dims, y[k].dims) << what;
      EXPECT_EQ(x[k].i64, y[k].i64) << what;
      EXPECT_EQ(x[k].str, y[k].str) << what;
      ASSERT_EQ(x[k].f64.size(), y[k].f64.size()) << what;
      for (size_t i = 0; i < x[k].f64.size(); ++i)
        EXPECT_TRUE(same_bits(x[k].f64[i], y[k].f64[i])) << what << "[" << i << "]";
    }
  }
}

std::vector<std::string> listing(const fs::path& dir) {
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(dir)) names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  return names;
}

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// One scratch directory for all ranks: rank 0 makes it and tells the others.
class H5ParallelTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string dir;
    if (rank_of(MPI_COMM_WORLD) == 0) {
      std::string templ = (fs::temp_directory_path() / "taskreach_h5p_XXXXXX").string();
      if (::mkdtemp(templ.data()) != nullptr) dir = templ;
    }
    dir_ = bcast(dir);
    ASSERT_FALSE(dir_.empty());
  }
  void TearDown() override {
    MPI_Barrier(MPI_COMM_WORLD);
    if (rank_of(MPI_COMM_WORLD) == 0) {
      std::error_code ec;
      fs::remove_all(dir_, ec);
    }
  }
  std::string path(const std::string& name) const { return (dir_ / name).string(); }
  fs::path dir_;
};

void round_trip(const fs::path& dir, size_t n) {
  const std::string file = (dir / ("run" + std::to_string(n) + ".h5")).string();
  const RunOutput out = synthetic(n);
  // Every entry of the table holds something, so every one is written and compared.
  for (const io::Entry& e : io::schema()) ASSERT_FALSE(io::contents(e, out).empty()) << e.path << " is not tested";
  // Throws if any N×N transfer fell back to independent I/O.
  ASSERT_NO_THROW(write_output(MPI_COMM_WORLD, file, out));
  // write_output returns once the file is in place on every rank.
  expect_same(out, read_output(file));
  if (rank_of(MPI_COMM_WORLD) == 0) {
    EXPECT_EQ(listing(dir), std::vector<std::string>{"run" + std::to_string(n) + ".h5"});
  }
  MPI_Barrier(MPI_COMM_WORLD);
}

}  // namespace

TEST_F(H5ParallelTest, RoundTripEvenSplit) { round_trip(dir_, 4); }

TEST_F(H5ParallelTest, RoundTripThreeTasks) { round_trip(dir_, 3); }

TEST_F(H5ParallelTest, RoundTripFiveTasksOddRowSplit) { round_trip(dir_, 5); }

TEST_F(H5ParallelTest, RoundTripFewerRowsThanRanks) { round_trip(dir_, 1); }

TEST_F(H5ParallelTest, SameFileOnOneRankAndOnAll) {
  const RunOutput out = synthetic(5);
  write_output(MPI_COMM_WORLD, path("all.h5"), out);
  if (rank_of(MPI_COMM_WORLD) == 0) {
    write_output(MPI_COMM_SELF, path("one.h5"), out);
    expect_same(read_output(path("one.h5")), read_output(path("all.h5")));
  }
  MPI_Barrier(MPI_COMM_WORLD);
}

TEST_F(H5ParallelTest, AFailureOnOneRankFailsEveryRankAndKeepsTheOldFile) {
  const std::string file = path("run.h5");
  write_output(MPI_COMM_WORLD, file, synthetic(3));
  const std::string before = rank_of(MPI_COMM_WORLD) == 0 ? slurp(file) : std::string();

  // Only the last rank holds an inconsistent output: nobody may hang, everyone must throw.
  RunOutput out = synthetic(5);
  int size = 1;
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  if (rank_of(MPI_COMM_WORLD) == size - 1) out.stderr_probe = Matrix<double>(5, 4, 0.0);
  std::string msg;
  try {
    write_output(MPI_COMM_WORLD, file, out);
  } catch (const IoError& e) {
    msg = e.what();
  }
  EXPECT_NE(msg.find("io: " + file + ": "), std::string::npos) << msg;
  EXPECT_NE(msg.find("/reachability/stderr_probe"), std::string::npos) << msg;
  // The same message everywhere.
  EXPECT_EQ(bcast(msg), msg);

  if (rank_of(MPI_COMM_WORLD) == 0) {
    EXPECT_EQ(slurp(file), before);
    EXPECT_EQ(listing(dir_), std::vector<std::string>{"run.h5"});
  }
  MPI_Barrier(MPI_COMM_WORLD);
}

TEST_F(H5ParallelTest, AFailedCreationFailsEveryRankAndKeepsTheOldFile) {
  const std::string file = path("run.h5");
  write_output(MPI_COMM_WORLD, file, synthetic(3));
  std::string before;
  // A directory where rank 0's temporary should go.
  if (rank_of(MPI_COMM_WORLD) == 0) {
    before = slurp(file);
    fs::create_directory(file + ".tmp-" + std::to_string(::getpid()));
  }
  MPI_Barrier(MPI_COMM_WORLD);
  std::string msg;
  try {
    write_output(MPI_COMM_WORLD, file, synthetic(5));
  } catch (const IoError& e) {
    msg = e.what();
  }
  EXPECT_NE(msg.find("io: " + file + ": cannot create file"), std::string::npos) << msg;
  if (rank_of(MPI_COMM_WORLD) == 0) {
    EXPECT_EQ(slurp(file), before);
    fs::remove(file + ".tmp-" + std::to_string(::getpid()));
    expect_same(synthetic(3), read_output(file));
  }
  MPI_Barrier(MPI_COMM_WORLD);
}
