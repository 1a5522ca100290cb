// The HDF5 output written collectively by every rank of MPI_COMM_WORLD: the row blocks
// (an odd N splits unevenly) land where they belong, each transfer was collective (or
// write_output throws), the temporary is gone, and a failure on one rank fails all ranks
// with the same message instead of leaving them in a collective.
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

// Every value distinct (and the same on every rank), so a misplaced row block shows.
RunOutput synthetic(size_t n) {
  double next = 0.3;
  auto value = [&] { return next = next * 1.013 + 0.71; };
  RunOutput o;
  o.attrs_str = {{"version", "0.1.0"}, {"config", "name = \"p\"\n[train]\nepochs = 3\n"}};
  o.attrs_f64 = {{"beta", 0.5}};
  o.attrs_i64 = {{"mpi_ranks", 2}};
  for (size_t i = 0; i < n; ++i) {
    o.task_names.push_back("task_" + std::string(i + 1, static_cast<char>('a' + i)));
    o.num_samples.push_back(500 + 3 * static_cast<int64_t>(i));
    o.num_classes.push_back(10 - static_cast<int64_t>(i));
    for (auto* v : {&o.C, &o.loss, &o.weight_norm2, &o.logdet, &o.logdet_stderr, &o.grad_norm}) {
      v->push_back(value());
    }
    SpectrumRecord s;
    for (size_t k = 0; k < (i % 3) + 1; ++k) {
      s.eigenvalues.push_back(value());
      s.residuals.push_back(value());
    }
    s.hvp_count = 10 * static_cast<int64_t>(i) + 1;
    s.seconds = value();
    o.spectra.push_back(s);
  }
  const auto nn = static_cast<int64_t>(n);
  for (auto* m : {&o.unions_C, &o.R, &o.R_per_sample, &o.stderr_total, &o.stderr_probe,
                  &o.stderr_seed}) {
    *m = Matrix<double>(nn, nn, 0.0);
    for (double& x : m->data) x = value();
  }
  o.unions_conflicts = Matrix<int64_t>(nn, nn, 0);
  for (int64_t i = 0; i < nn; ++i) {
    for (int64_t j = 0; j < nn; ++j) o.unions_conflicts(i, j) = 1000 * i + j;
  }
  for (size_t j = 0; j < n + 2; ++j) {
    o.jobs.push_back({"job" + std::to_string(j), j % 3 ? "ok" : "diverged", value(), "seed=1"});
  }
  return o;
}

void expect_same(const std::vector<double>& a, const std::vector<double>& b, const char* what) {
  ASSERT_EQ(a.size(), b.size()) << what;
  for (size_t i = 0; i < a.size(); ++i) EXPECT_EQ(a[i], b[i]) << what << "[" << i << "]";
}

template <typename T>
void expect_same(const Matrix<T>& a, const Matrix<T>& b, const char* what) {
  EXPECT_EQ(a.rows, b.rows) << what;
  EXPECT_EQ(a.cols, b.cols) << what;
  EXPECT_EQ(a.data, b.data) << what;
}

void expect_same(const RunOutput& a, const RunOutput& b) {
  EXPECT_EQ(a.attrs_str, b.attrs_str);
  EXPECT_EQ(a.attrs_f64, b.attrs_f64);
  EXPECT_EQ(a.attrs_i64, b.attrs_i64);
  EXPECT_EQ(a.task_names, b.task_names);
  EXPECT_EQ(a.num_samples, b.num_samples);
  EXPECT_EQ(a.num_classes, b.num_classes);
  expect_same(a.C, b.C, "C");
  expect_same(a.loss, b.loss, "loss");
  expect_same(a.weight_norm2, b.weight_norm2, "weight_norm2");
  expect_same(a.logdet, b.logdet, "logdet");
  expect_same(a.logdet_stderr, b.logdet_stderr, "logdet_stderr");
  expect_same(a.grad_norm, b.grad_norm, "grad_norm");
  expect_same(a.unions_C, b.unions_C, "unions_C");
  expect_same(a.unions_conflicts, b.unions_conflicts, "unions_conflicts");
  expect_same(a.R, b.R, "R");
  expect_same(a.R_per_sample, b.R_per_sample, "R_per_sample");
  expect_same(a.stderr_total, b.stderr_total, "stderr_total");
  expect_same(a.stderr_probe, b.stderr_probe, "stderr_probe");
  expect_same(a.stderr_seed, b.stderr_seed, "stderr_seed");
  ASSERT_EQ(a.spectra.size(), b.spectra.size());
  for (size_t i = 0; i < a.spectra.size(); ++i) {
    expect_same(a.spectra[i].eigenvalues, b.spectra[i].eigenvalues, "eigenvalues");
    expect_same(a.spectra[i].residuals, b.spectra[i].residuals, "residuals");
    EXPECT_EQ(a.spectra[i].hvp_count, b.spectra[i].hvp_count);
    EXPECT_EQ(a.spectra[i].seconds, b.spectra[i].seconds);
  }
  ASSERT_EQ(a.jobs.size(), b.jobs.size());
  for (size_t i = 0; i < a.jobs.size(); ++i) {
    EXPECT_EQ(a.jobs[i].name, b.jobs[i].name);
    EXPECT_EQ(a.jobs[i].status, b.jobs[i].status);
    EXPECT_EQ(a.jobs[i].seconds, b.jobs[i].seconds);
    EXPECT_EQ(a.jobs[i].record, b.jobs[i].record);
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
  // Throws if any N×N transfer fell back to independent I/O.
  ASSERT_NO_THROW(write_output(MPI_COMM_WORLD, file, out));
  // write_output returns once the file is in place on every rank.
  if (rank_of(MPI_COMM_WORLD) == 0) {
    expect_same(out, read_output(file));
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
