// The HDF5 contract on one rank: exact round trip, the on-disk types, atomic replacement,
// one-line errors that name the file, and the info table.
#include <gtest/gtest.h>
#include <mpi.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>
#include <sstream>
#include <string>
#include <vector>

#include "taskreach/io.hpp"

#include <hdf5.h>

namespace fs = std::filesystem;
using namespace taskreach;

namespace {

// A job TOML well past 64 KiB (HDF5's compact attribute limit), multi-line, UTF-8.
std::string long_config() {
  std::string s = "# taskreach job — γ and λ² in comments\nname = \"round-trip\"\nseed = 7\n";
  for (int i = 0; i < 1500; ++i) {
    s += "\n[[tasks]]\nname = \"task_" + std::to_string(i) + "\"\nsource = \"mnist\"\n" +
         "transforms = [{ type = \"class_subset\", classes = [0, 1, 2, 3, 4] }]\n";
  }
  return s;
}

// Every value distinct, so a swapped or misplaced dataset cannot go unnoticed.
RunOutput synthetic(size_t n) {
  const std::vector<std::string> pool = {"mnist", "fashion_mnist", "kmnist-γ", "digits_0_4",
                                         "a_rather_long_task_name_x"};
  double next = 0.1;
  auto value = [&] { return next = next * 1.01 + 0.37; };
  RunOutput o;
  o.attrs_str = {{"version", "0.1.0"}, {"created", "2024-05-01T12:00:00Z"},
                 {"config", long_config()}, {"curvature", "ggn"},
                 {"logdet_scale", "laplace"}, {"empty", ""}};
  o.attrs_f64 = {{"beta", 1e-3}, {"lambda2", 0.25}, {"tiny", 5e-310}};
  o.attrs_i64 = {{"mpi_ranks", 4}, {"ranks_per_task", 2}, {"seeds", 3}, {"negative", -7},
                 {"big", std::numeric_limits<int64_t>::max()}};
  for (size_t i = 0; i < n; ++i) {
    o.task_names.push_back(pool[i % pool.size()] + (i < pool.size() ? "" : std::to_string(i)));
    o.num_samples.push_back(1000 + 17 * static_cast<int64_t>(i));
    o.num_classes.push_back(2 + static_cast<int64_t>(i));
    for (auto* v : {&o.C, &o.loss, &o.weight_norm2, &o.logdet, &o.logdet_stderr, &o.grad_norm, &o.C_stderr,
                    &o.C_laplace, &o.C_laplace_stderr, &o.C_paper, &o.C_paper_stderr, &o.trace, &o.trace_stderr,
                    &o.finetune_threshold}) {
      v->push_back(value());
    }
    TrainingRecord t;
    for (size_t e = 0; e < 3 * (i + 1); ++e) t.curve.push_back(value());
    t.convergence_step = 10 * static_cast<int64_t>(i) - 1;
    t.test_accuracy = value();
    o.training.push_back(t);
  }
  const auto nn = static_cast<int64_t>(n);
  for (auto* m : {&o.unions_C, &o.R, &o.R_per_sample, &o.stderr_total, &o.stderr_probe,
                  &o.stderr_seed, &o.stderr_probe_unpaired}) {
    *m = Matrix<double>(nn, nn, 0.0);
    for (double& x : m->data) x = value();
  }
  o.unions_conflicts = o.finetune_steps = o.finetune_samples = Matrix<int64_t>(nn, nn, 0);
  for (int64_t i = 0; i < nn; ++i) {
    for (int64_t j = 0; j < nn; ++j) {
      o.unions_conflicts(i, j) = 100 * i + j - 3;
      o.finetune_steps(i, j) = i == j ? -1 : 10 * i + j;
      o.finetune_samples(i, j) = 1000 * i + j;
    }
  }
  if (n > 1) o.stderr_seed(0, 1) = std::numeric_limits<double>::quiet_NaN();  // one seed
  for (size_t i = 0; i < n; ++i) {
    SpectrumRecord s;
    const size_t k = (i * 3 + 2) % 5;  // 2, 0, 3, 1, 4: different lengths, one empty
    for (size_t e = 0; e < k; ++e) {
      s.eigenvalues.push_back(value());
      s.residuals.push_back(value() * 1e-12);
    }
    for (size_t e = 0; e < k + 1; ++e) {
      s.esd_nodes.push_back(value());
      s.esd_weights.push_back(value());
    }
    s.hvp_count = 40 + static_cast<int64_t>(i);
    s.seconds = value();
    o.spectra.push_back(s);
  }
  o.analysis = {{"spearman_R_T", value()}, {"baselines/scratch_cost/spearman_T", value()},
                {"baselines/loss_at_source/kendall_within_target", std::numeric_limits<double>::quiet_NaN()}};
  o.analysis_i64 = {{"pairs_used", 17}};
  const char* statuses[] = {"ok", "ok", "diverged", "not_converged", "ok"};
  for (size_t j = 0; j < 5; ++j) {
    o.jobs.push_back({"single:task" + std::to_string(j) + "/seed1", statuses[j], value(),
                      "seed=1 γ=1e-4 lr=0.05 B=64 steps=" + std::to_string(100 * j) +
                          " grad_norm=3e-6 dtype=float32 threads=1"});
  }
  return o;
}

bool same(double a, double b) {
  uint64_t x = 0, y = 0;
  std::memcpy(&x, &a, sizeof a);
  std::memcpy(&y, &b, sizeof b);
  return x == y;
}

template <typename T>
void expect_same(const std::vector<T>& a, const std::vector<T>& b, const std::string& what) {
  ASSERT_EQ(a.size(), b.size()) << what;
  for (size_t i = 0; i < a.size(); ++i) {
    if constexpr (std::is_same<T, double>::value) {
      EXPECT_TRUE(same(a[i], b[i])) << what << "[" << i << "]: " << a[i] << " vs " << b[i];
    } else {
      EXPECT_EQ(a[i], b[i]) << what << "[" << i << "]";
    }
  }
}

template <typename T>
void expect_same(const Matrix<T>& a, const Matrix<T>& b, const std::string& what) {
  EXPECT_EQ(a.rows, b.rows) << what;
  EXPECT_EQ(a.cols, b.cols) << what;
  expect_same(a.data, b.data, what);
}

void expect_same(const RunOutput& a, const RunOutput& b) {
  EXPECT_EQ(a.attrs_str, b.attrs_str);
  EXPECT_EQ(a.attrs_i64, b.attrs_i64);
  ASSERT_EQ(a.attrs_f64.size(), b.attrs_f64.size());
  for (const auto& [k, v] : a.attrs_f64) {
    ASSERT_TRUE(b.attrs_f64.count(k)) << k;
    EXPECT_TRUE(same(v, b.attrs_f64.at(k))) << k;
  }
  EXPECT_EQ(a.task_names, b.task_names);
  expect_same(a.num_samples, b.num_samples, "num_samples");
  expect_same(a.num_classes, b.num_classes, "num_classes");
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
  expect_same(a.stderr_probe_unpaired, b.stderr_probe_unpaired, "stderr_probe_unpaired");
  expect_same(a.C_stderr, b.C_stderr, "C_stderr");
  expect_same(a.C_laplace, b.C_laplace, "C_laplace");
  expect_same(a.C_paper_stderr, b.C_paper_stderr, "C_paper_stderr");
  expect_same(a.trace, b.trace, "trace");
  expect_same(a.finetune_threshold, b.finetune_threshold, "finetune_threshold");
  expect_same(a.finetune_steps, b.finetune_steps, "finetune_steps");
  expect_same(a.finetune_samples, b.finetune_samples, "finetune_samples");
  EXPECT_EQ(a.analysis_i64, b.analysis_i64);
  ASSERT_EQ(a.analysis.size(), b.analysis.size());
  for (const auto& [k, v] : a.analysis) {
    ASSERT_TRUE(b.analysis.count(k)) << k;
    EXPECT_TRUE(same(v, b.analysis.at(k))) << k;
  }
  ASSERT_EQ(a.training.size(), b.training.size());
  for (size_t i = 0; i < a.training.size(); ++i) {
    expect_same(a.training[i].curve, b.training[i].curve, "curve");
    EXPECT_EQ(a.training[i].convergence_step, b.training[i].convergence_step);
    EXPECT_TRUE(same(a.training[i].test_accuracy, b.training[i].test_accuracy));
  }
  ASSERT_EQ(a.spectra.size(), b.spectra.size());
  for (size_t i = 0; i < a.spectra.size(); ++i) {
    expect_same(a.spectra[i].eigenvalues, b.spectra[i].eigenvalues, "eigenvalues");
    expect_same(a.spectra[i].residuals, b.spectra[i].residuals, "residuals");
    expect_same(a.spectra[i].esd_nodes, b.spectra[i].esd_nodes, "esd_nodes");
    expect_same(a.spectra[i].esd_weights, b.spectra[i].esd_weights, "esd_weights");
    EXPECT_EQ(a.spectra[i].hvp_count, b.spectra[i].hvp_count);
    EXPECT_TRUE(same(a.spectra[i].seconds, b.spectra[i].seconds));
  }
  ASSERT_EQ(a.jobs.size(), b.jobs.size());
  for (size_t i = 0; i < a.jobs.size(); ++i) {
    EXPECT_EQ(a.jobs[i].name, b.jobs[i].name);
    EXPECT_EQ(a.jobs[i].status, b.jobs[i].status);
    EXPECT_EQ(a.jobs[i].record, b.jobs[i].record);
    EXPECT_TRUE(same(a.jobs[i].seconds, b.jobs[i].seconds));
  }
}

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

std::vector<std::string> listing(const fs::path& dir) {
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(dir)) names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  return names;
}

class H5Test : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string templ = (fs::temp_directory_path() / "taskreach_h5_XXXXXX").string();
    ASSERT_NE(::mkdtemp(templ.data()), nullptr);
    dir_ = templ;
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  std::string path(const std::string& name) const { return (dir_ / name).string(); }
  fs::path dir_;
};

// Runs `f`, expects an IoError, and returns its message.
template <typename F>
std::string io_error(F&& f) {
  try {
    f();
  } catch (const IoError& e) {
    return e.what();
  }
  ADD_FAILURE() << "no IoError";
  return {};
}

}  // namespace

TEST_F(H5Test, RoundTripIsExact) {
  const RunOutput out = synthetic(3);
  const std::string file = path("run.h5");
  write_output(MPI_COMM_SELF, file, out);
  expect_same(out, read_output(file));
  EXPECT_EQ(listing(dir_), std::vector<std::string>{"run.h5"});  // no temporary left
}

TEST_F(H5Test, RoundTripWithoutSpectraOrJobs) {
  RunOutput out = synthetic(2);
  out.spectra.clear();
  out.jobs.clear();
  out.attrs_str.clear();
  write_output(MPI_COMM_SELF, path("run.h5"), out);
  expect_same(out, read_output(path("run.h5")));
}

TEST_F(H5Test, RoundTripOfAnEmptyRun) {
  const RunOutput out = synthetic(0);
  write_output(MPI_COMM_SELF, path("empty.h5"), out);
  const RunOutput back = read_output(path("empty.h5"));
  expect_same(out, back);
  EXPECT_TRUE(back.task_names.empty());
}

namespace {
struct DatasetInfo {
  H5T_class_t cls = H5T_NO_CLASS;
  size_t size = 0;
  bool native_double = false, native_int64 = false, variable = false;
  std::vector<hsize_t> dims;
};

DatasetInfo inspect(hid_t file, const char* name) {
  DatasetInfo info;
  const hid_t ds = H5Dopen2(file, name, H5P_DEFAULT);
  EXPECT_GE(ds, 0) << name;
  if (ds < 0) return info;
  const hid_t type = H5Dget_type(ds);
  const hid_t space = H5Dget_space(ds);
  info.cls = H5Tget_class(type);
  info.size = H5Tget_size(type);
  info.native_double = H5Tequal(type, H5T_NATIVE_DOUBLE) > 0;
  info.native_int64 = H5Tequal(type, H5T_NATIVE_INT64) > 0;
  info.variable = H5Tis_variable_str(type) > 0;
  info.dims.resize(static_cast<size_t>(H5Sget_simple_extent_ndims(space)));
  H5Sget_simple_extent_dims(space, info.dims.data(), nullptr);
  H5Sclose(space);
  H5Tclose(type);
  H5Dclose(ds);
  return info;
}
}  // namespace

TEST_F(H5Test, OnDiskTypesFollowTheContract) {
  const RunOutput out = synthetic(3);
  write_output(MPI_COMM_SELF, path("run.h5"), out);
  const hid_t file = H5Fopen(path("run.h5").c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  ASSERT_GE(file, 0);

  const DatasetInfo r = inspect(file, "/reachability/R");
  EXPECT_EQ(r.cls, H5T_FLOAT);
  EXPECT_TRUE(r.native_double);
  EXPECT_EQ(r.dims, (std::vector<hsize_t>{3, 3}));

  const DatasetInfo conflicts = inspect(file, "/unions/conflicts");
  EXPECT_EQ(conflicts.cls, H5T_INTEGER);
  EXPECT_EQ(conflicts.size, 8u);
  EXPECT_TRUE(conflicts.native_int64);
  EXPECT_EQ(conflicts.dims, (std::vector<hsize_t>{3, 3}));

  const DatasetInfo c = inspect(file, "/complexity/logdet_stderr");
  EXPECT_TRUE(c.native_double);
  EXPECT_EQ(c.dims, (std::vector<hsize_t>{3}));
  EXPECT_TRUE(inspect(file, "/tasks/num_classes").native_int64);

  // Fixed-length strings, as wide as the longest name in bytes ("fashion_mnist").
  const DatasetInfo names = inspect(file, "/tasks/name");
  EXPECT_EQ(names.cls, H5T_STRING);
  EXPECT_FALSE(names.variable);
  EXPECT_EQ(names.size, std::string("fashion_mnist").size());
  EXPECT_EQ(names.dims, (std::vector<hsize_t>{3}));
  EXPECT_EQ(inspect(file, "/jobs/record").dims, (std::vector<hsize_t>{5}));

  const DatasetInfo hvp = inspect(file, "/spectra/mnist/hvp_count");
  EXPECT_TRUE(hvp.native_int64);
  EXPECT_TRUE(hvp.dims.empty());  // scalar
  EXPECT_EQ(inspect(file, "/spectra/kmnist-γ/eigenvalues").dims, (std::vector<hsize_t>{3}));

  // The whole TOML in one fixed-length attribute, not truncated.
  const hid_t attr = H5Aopen(file, "config", H5P_DEFAULT);
  ASSERT_GE(attr, 0);
  const hid_t type = H5Aget_type(attr);
  EXPECT_EQ(H5Tget_class(type), H5T_STRING);
  EXPECT_EQ(H5Tget_size(type), out.attrs_str.at("config").size());
  H5Tclose(type);
  H5Aclose(attr);
  H5Fclose(file);
}

TEST_F(H5Test, ReadingAnHdf5FileThatIsNotAResultFails) {
  const hid_t file = H5Fcreate(path("other.h5").c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  ASSERT_GE(file, 0);
  H5Fclose(file);
  const std::string msg = io_error([&] { read_output(path("other.h5")); });
  EXPECT_NE(msg.find(path("other.h5")), std::string::npos) << msg;
  EXPECT_NE(msg.find("not a taskreach result"), std::string::npos) << msg;
}

TEST_F(H5Test, InfoShowsTasksAndTheMatrix) {
  RunOutput out = synthetic(3);
  for (int64_t i = 0; i < 3; ++i) {
    for (int64_t j = 0; j < 3; ++j) {
      out.R(i, j) = i == j ? 0.0 : 10.5 + 3 * i + 0.25 * j;
      out.stderr_total(i, j) = 0.5;
    }
  }
  const std::string info = format_info(out);
  for (const auto& name : out.task_names) EXPECT_NE(info.find(name), std::string::npos) << name;
  for (const char* cell : {"10.75 ± 0.5", "11 ± 0.5", "13.5 ± 0.5", "16.75 ± 0.5", "0 ± 0.5"}) {
    EXPECT_NE(info.find(cell), std::string::npos) << cell << "\n" << info;
  }
  EXPECT_NE(info.find("R(i|j): row i = target, column j = source, nats"), std::string::npos);
  EXPECT_NE(info.find("jobs: 5 (ok 3, diverged 1, not_converged 1)"), std::string::npos) << info;
  EXPECT_NE(info.find("0.1.0"), std::string::npos);
  EXPECT_NE(info.find("lambda2"), std::string::npos);
  EXPECT_EQ(info.find("[[tasks]]"), std::string::npos) << "the config is not printed";

  // The matrix rows line up: the header and each row have the same width in columns.
  std::istringstream lines(info);
  std::string line;
  std::vector<size_t> widths;
  bool in_table = false;
  while (std::getline(lines, line)) {
    if (line.rfind("R(i|j)", 0) == 0) {
      in_table = true;
      continue;
    }
    if (in_table && line.empty()) break;
    if (in_table) {
      size_t cols = 0;
      for (unsigned char ch : line) cols += (ch & 0xC0) != 0x80;
      widths.push_back(cols);
    }
  }
  ASSERT_EQ(widths.size(), 4u) << info;
  for (size_t w : widths) EXPECT_EQ(w, widths[0]) << info;
}

TEST_F(H5Test, WritingIntoAMissingDirectoryFailsAndLeavesNothing) {
  const std::string file = path("no/such/dir/run.h5");
  const std::string msg = io_error([&] { write_output(MPI_COMM_SELF, file, synthetic(3)); });
  EXPECT_NE(msg.find("io: " + file + ": "), std::string::npos) << msg;
  EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
  EXPECT_TRUE(listing(dir_).empty());
}

TEST_F(H5Test, ASuccessfulWriteReplacesTheOldFile) {
  const std::string file = path("run.h5");
  write_output(MPI_COMM_SELF, file, synthetic(3));
  const RunOutput second = synthetic(4);
  write_output(MPI_COMM_SELF, file, second);
  expect_same(second, read_output(file));
  EXPECT_EQ(listing(dir_), std::vector<std::string>{"run.h5"});
}

TEST_F(H5Test, AnInvalidOutputFailsBeforeTouchingAnything) {
  const std::string file = path("run.h5");
  write_output(MPI_COMM_SELF, file, synthetic(3));
  const std::string before = slurp(file);

  RunOutput bad = synthetic(3);
  bad.R = Matrix<double>(2, 3, 1.0);
  std::string msg = io_error([&] { write_output(MPI_COMM_SELF, file, bad); });
  EXPECT_NE(msg.find(file), std::string::npos) << msg;
  EXPECT_NE(msg.find("/reachability/R"), std::string::npos) << msg;

  bad = synthetic(3);
  bad.loss.pop_back();
  msg = io_error([&] { write_output(MPI_COMM_SELF, file, bad); });
  EXPECT_NE(msg.find("/complexity/loss"), std::string::npos) << msg;

  bad = synthetic(3);
  bad.task_names[2] = bad.task_names[0];
  msg = io_error([&] { write_output(MPI_COMM_SELF, file, bad); });
  EXPECT_NE(msg.find("twice"), std::string::npos) << msg;

  bad = synthetic(3);
  bad.attrs_f64["version"] = 1.0;  // also a string attribute
  msg = io_error([&] { write_output(MPI_COMM_SELF, file, bad); });
  EXPECT_NE(msg.find("'version'"), std::string::npos) << msg;

  EXPECT_EQ(slurp(file), before);
  EXPECT_EQ(listing(dir_), std::vector<std::string>{"run.h5"});
}

TEST_F(H5Test, AFailedCreationLeavesTheOldFileByteIdentical) {
  const std::string file = path("run.h5");
  write_output(MPI_COMM_SELF, file, synthetic(3));
  const std::string before = slurp(file);

  // A directory where the temporary should go: the file cannot be created.
  const fs::path blocker = file + ".tmp-" + std::to_string(::getpid());
  fs::create_directory(blocker);
  const std::string msg = io_error([&] { write_output(MPI_COMM_SELF, file, synthetic(4)); });
  EXPECT_NE(msg.find("io: " + file + ": cannot create file"), std::string::npos) << msg;
  EXPECT_EQ(slurp(file), before);
  EXPECT_TRUE(fs::is_directory(blocker)) << "what write_output did not create, it leaves";
  fs::remove(blocker);
  EXPECT_EQ(listing(dir_), std::vector<std::string>{"run.h5"});
  expect_same(synthetic(3), read_output(file));
}

TEST_F(H5Test, ReadingAMissingOrForeignFileFails) {
  std::string msg = io_error([&] { read_output(path("missing.h5")); });
  EXPECT_NE(msg.find("io: " + path("missing.h5") + ": "), std::string::npos) << msg;

  std::ofstream(path("text.h5")) << "not hdf5\n";
  msg = io_error([&] { read_output(path("text.h5")); });
  EXPECT_NE(msg.find("io: " + path("text.h5") + ": "), std::string::npos) << msg;
  EXPECT_NE(msg.find("not an HDF5 file"), std::string::npos) << msg;
  EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;

  msg = io_error([&] { read_output(dir_.string()); });
  EXPECT_NE(msg.find(dir_.string()), std::string::npos) << msg;
}
