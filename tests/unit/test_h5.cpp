// The HDF5 contract on one rank: an exact round trip of every entry of the schema table, the
// on-disk types and shapes the table declares (and nothing else in the file), atomic
// replacement, one-line errors that name the file, and the info table.
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
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "../../src/app/report.hpp"
#include "../../src/io/schema.hpp"
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
                    &o.finetune_threshold, &o.finetune_threshold_spread}) {
      v->push_back(value());
    }
    o.task_status.push_back(i % 2 ? "ok" : "not_converged+eps_not_converged");
    o.finetune_unstable.push_back(static_cast<int64_t>(i % 2));
    TrainingRecord t;
    for (size_t e = 0; e < 3 * (i + 1); ++e) t.curve.push_back(value());
    t.convergence_step = 10 * static_cast<int64_t>(i) - 1;
    t.test_accuracy = value();
    o.training.push_back(t);
  }
  const auto nn = static_cast<int64_t>(n);
  for (auto* m : {&o.unions_C, &o.R, &o.R_per_sample, &o.stderr_total, &o.stderr_probe,
                  &o.stderr_seed, &o.stderr_probe_unpaired, &o.dof, &o.critical}) {
    *m = Matrix<double>(nn, nn, 0.0);
    for (double& x : m->data) x = value();
  }
  o.unions_conflicts = o.finetune_steps = o.finetune_samples = o.flags = Matrix<int64_t>(nn, nn, 0);
  for (int64_t i = 0; i < nn; ++i) {
    for (int64_t j = 0; j < nn; ++j) {
      o.unions_conflicts(i, j) = 100 * i + j - 3;
      o.flags(i, j) = (3 * i + j) % 64;
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
  o.extra = {{"/convergence/batch_size/steps", {value(), value(), std::numeric_limits<double>::quiet_NaN()}},
             {"/convergence/fits/steps_vs_B/params", {value(), value()}},
             {"/potential/curve", {}},
             {"/critical_period/deficit/C", {value()}}};
  o.extra_strings = {{"/convergence/architecture/arch", {"mlp", "cnn", "résnet"}}, {"/potential/labels", {}}};
  o.extra_attrs = {{"/convergence/fits/steps_vs_B", {{"model", "a + b·B"}, {"param_names", "a,b"}}},
                   {"/critical_period/deficit", {{"note", ""}}}};
  const char* statuses[] = {"ok", "ok", "diverged", "not_converged", "ok"};
  for (size_t j = 0; j < 5; ++j) {
    o.jobs.push_back({"single:task" + std::to_string(j) + "/seed1", statuses[j], value(),
                      "seed=1 γ=1e-4 lr=0.05 B=64 steps=" + std::to_string(100 * j) +
                          " grad_norm=3e-6 dtype=float32 threads=1",
                      {{"steps", 100.0 * double(j)}, {"time_sgd", 0.5}, {"time_polish", 1.5 + double(j)}}});
    if (j % 2) o.jobs.back().metrics["time_slq"] = 2.0;  // NaN for the other jobs in the file
  }
  return o;
}

bool same_bits(double a, double b) {
  uint64_t x = 0, y = 0;
  std::memcpy(&x, &a, sizeof a);
  std::memcpy(&y, &b, sizeof b);
  return x == y;
}

std::string where(const io::Item& it) {
  return it.path + (it.attribute.empty() ? "" : "@" + it.attribute);
}

// Every entry of the schema table, item by item: the same paths, shapes and values (doubles
// bit for bit). Empty when a and b hold the same output.
std::vector<std::string> differences(const RunOutput& a, const RunOutput& b) {
  std::vector<std::string> diff;
  for (const io::Entry& e : io::schema()) {
    const std::vector<io::Item> x = io::contents(e, a), y = io::contents(e, b);
    if (x.size() != y.size()) {
      diff.push_back(e.path + ": " + std::to_string(x.size()) + " vs " + std::to_string(y.size()) + " items");
      continue;
    }
    for (size_t k = 0; k < x.size(); ++k) {
      bool f64 = x[k].f64.size() == y[k].f64.size();
      for (size_t i = 0; f64 && i < x[k].f64.size(); ++i) f64 = same_bits(x[k].f64[i], y[k].f64[i]);
      if (where(x[k]) != where(y[k]) || x[k].task != y[k].task || x[k].dims != y[k].dims || !f64 ||
          x[k].i64 != y[k].i64 || x[k].str != y[k].str) {
        diff.push_back(e.path + ": " + where(x[k]) + " differs");
      }
    }
  }
  return diff;
}

void expect_same(const RunOutput& a, const RunOutput& b) {
  std::string all;
  for (const auto& d : differences(a, b)) all += "\n  " + d;
  EXPECT_TRUE(all.empty()) << all;
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
  for (const io::Entry& e : io::schema()) EXPECT_FALSE(io::contents(e, out).empty()) << e.path << " is not tested";
  const std::string file = path("run.h5");
  write_output(MPI_COMM_SELF, file, out);
  const RunOutput back = read_output(file);
  expect_same(out, back);
  EXPECT_EQ(listing(dir_), std::vector<std::string>{"run.h5"});  // no temporary left
  // A job's figures come back as they were: a NaN in its column is a figure it does not have.
  ASSERT_EQ(back.jobs.size(), out.jobs.size());
  for (size_t j = 0; j < out.jobs.size(); ++j) EXPECT_EQ(back.jobs[j].metrics, out.jobs[j].metrics) << j;
  EXPECT_EQ(back.jobs[0].metrics.count("time_slq"), 0u);
  EXPECT_EQ(back.jobs[1].metrics.at("time_slq"), 2.0);
}

// The comparison the round trips rely on sees a change in any entry, and every entry puts
// back what it gets.
TEST(H5Schema, TheComparisonSeesAChangeInEveryEntry) {
  const RunOutput out = synthetic(3);
  for (const io::Entry& e : io::schema()) {
    if (e.shape == io::Shape::group) continue;
    std::vector<io::Item> items = io::contents(e, out);
    auto it = std::find_if(items.begin(), items.end(), [](const io::Item& i) { return i.count() > 0; });
    ASSERT_NE(it, items.end()) << e.path << " holds no values to change";
    RunOutput changed = out;
    for (const io::Item& i : items) e.put(changed, i);
    EXPECT_TRUE(differences(out, changed).empty()) << e.path << ": put(get()) changes the output";
    if (!it->f64.empty()) it->f64[0] = it->f64[0] == 1.5 ? 2.5 : 1.5;  // NaN too
    if (!it->i64.empty()) it->i64[0] = it->i64[0] == 1 ? 2 : 1;  // never overflows (INT64_MAX is test data)
    if (!it->str.empty()) it->str[0] += "x";
    e.put(changed, *it);
    const std::vector<std::string> diff = differences(out, changed);
    ASSERT_FALSE(diff.empty()) << e.path;
    EXPECT_EQ(diff[0].rfind(e.path + ":", 0), 0u) << diff[0];
  }
}

TEST(H5Schema, TheTableIsConsistent) {
  const std::vector<io::Entry>& table = io::schema();
  auto first_tasks =
      std::find_if(table.begin(), table.end(), [](const io::Entry& e) { return e.shape == io::Shape::tasks; });
  ASSERT_NE(first_tasks, table.end());
  EXPECT_EQ(first_tasks->path, "/tasks/name") << "the first [N] entry defines N and the task names";
  std::set<std::pair<std::string, io::Type>> seen;
  for (const io::Entry& e : table) {
    EXPECT_TRUE(seen.insert({e.path, e.type}).second) << e.path << " twice";
    if (e.need.kind == io::Need::follows) {
      EXPECT_TRUE(std::any_of(table.begin(), table.end(), [&](const io::Entry& l) { return l.path == e.need.leader; }))
          << e.path << " follows " << e.need.leader;
    }
    if (e.path.find("<key>") != std::string::npos && e.path[0] != '/') {
      EXPECT_FALSE(e.under.empty()) << e.path << ": a reader would not know where its keys are";
    }
  }
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
  // The jobs' figures as float64 columns, NaN where a job has none (time_slq: odd jobs only).
  const DatasetInfo slq = inspect(file, "/jobs/metrics/time_slq");
  EXPECT_TRUE(slq.native_double);
  EXPECT_EQ(slq.dims, (std::vector<hsize_t>{5}));

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

namespace {
// What a file holds, object by object: datasets with type and shape, attributes by owner.
struct FileListing {
  struct Dataset {
    std::string type;  // "float64", "int64", "string"; "other" for anything else
    std::vector<uint64_t> dims;
  };
  std::map<std::string, Dataset> datasets;
  std::map<std::pair<std::string, std::string>, std::string> attributes;  // (owner, name) -> type
};

std::string type_of(hid_t type) {
  if (H5Tequal(type, H5T_IEEE_F64LE) > 0) return "float64";
  if (H5Tequal(type, H5T_STD_I64LE) > 0) return "int64";
  if (H5Tget_class(type) == H5T_STRING && H5Tis_variable_str(type) == 0 && H5Tget_strpad(type) == H5T_STR_NULLPAD &&
      H5Tget_cset(type) == H5T_CSET_UTF8)
    return "string";
  return "other";
}

herr_t list_attribute(hid_t owner, const char* name, const H5A_info_t*, void* data) {
  auto* found = static_cast<std::vector<std::pair<std::string, std::string>>*>(data);
  const hid_t a = H5Aopen(owner, name, H5P_DEFAULT);
  const hid_t t = H5Aget_type(a);
  const hid_t s = H5Aget_space(a);
  found->emplace_back(name, H5Sget_simple_extent_type(s) == H5S_SCALAR ? type_of(t) : "not scalar");
  H5Sclose(s);
  H5Tclose(t);
  H5Aclose(a);
  return 0;
}

void list_attributes(hid_t file, const std::string& owner, FileListing& listing) {
  std::vector<std::pair<std::string, std::string>> found;
  const hid_t o = H5Oopen(file, owner.c_str(), H5P_DEFAULT);
  hsize_t idx = 0;
  H5Aiterate2(o, H5_INDEX_NAME, H5_ITER_INC, &idx, list_attribute, &found);
  H5Oclose(o);
  for (const auto& [name, type] : found) listing.attributes[{owner, name}] = type;
}

FileListing list_file(const std::string& path) {
  FileListing listing;
  const hid_t file = H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  EXPECT_GE(file, 0) << path;
  std::vector<std::pair<std::string, bool>> objects;  // (path, is a dataset)
  auto visit = [](hid_t, const char* name, const H5O_info_t* info, void* data) -> herr_t {
    auto* found = static_cast<std::vector<std::pair<std::string, bool>>*>(data);
    found->emplace_back(std::string(name) == "." ? "/" : "/" + std::string(name), info->type == H5O_TYPE_DATASET);
    return 0;
  };
  H5Ovisit(file, H5_INDEX_NAME, H5_ITER_NATIVE, visit, &objects);
  for (const auto& [object, is_dataset] : objects) {
    list_attributes(file, object, listing);
    if (!is_dataset) continue;
    const hid_t ds = H5Dopen2(file, object.c_str(), H5P_DEFAULT);
    const hid_t type = H5Dget_type(ds);
    const hid_t space = H5Dget_space(ds);
    std::vector<hsize_t> dims(static_cast<size_t>(H5Sget_simple_extent_ndims(space)));
    H5Sget_simple_extent_dims(space, dims.data(), nullptr);
    listing.datasets[object] = {type_of(type), std::vector<uint64_t>(dims.begin(), dims.end())};
    H5Sclose(space);
    H5Tclose(type);
    H5Dclose(ds);
  }
  H5Fclose(file);
  return listing;
}
}  // namespace

// Every item of the table is in the file with the table's type and its shape, and the file
// holds nothing the table does not describe.
TEST_F(H5Test, TheFileHoldsWhatTheTableSaysAndNothingElse) {
  for (size_t n : {0, 3}) {
    const RunOutput out = synthetic(n);
    write_output(MPI_COMM_SELF, path("run.h5"), out);
    FileListing file = list_file(path("run.h5"));
    for (const io::Entry& e : io::schema()) {
      for (const io::Item& it : io::contents(e, out)) {
        if (e.shape == io::Shape::group) continue;
        if (e.shape == io::Shape::attribute) {
          auto a = file.attributes.find({it.path, it.attribute});
          ASSERT_NE(a, file.attributes.end()) << it.path << "@" << it.attribute;
          EXPECT_EQ(a->second, io::type_name(e.type)) << it.path << "@" << it.attribute;
          file.attributes.erase(a);
          continue;
        }
        auto d = file.datasets.find(it.path);
        ASSERT_NE(d, file.datasets.end()) << it.path;
        EXPECT_EQ(d->second.type, io::type_name(e.type)) << it.path;
        EXPECT_EQ(d->second.dims, it.dims) << it.path << " (" << io::shape_name(e.shape) << ")";
        if (e.shape == io::Shape::tasks) {
          EXPECT_EQ(it.dims, std::vector<uint64_t>{n}) << it.path;
        } else if (e.shape == io::Shape::pairs) {
          EXPECT_EQ(it.dims, (std::vector<uint64_t>{n, n})) << it.path;
        } else if (e.shape == io::Shape::scalar) {
          EXPECT_TRUE(it.dims.empty()) << it.path;
        }
        file.datasets.erase(d);
      }
    }
    for (const auto& [p, d] : file.datasets) ADD_FAILURE() << "n=" << n << ": " << p << " is not in the table";
    for (const auto& [a, t] : file.attributes)
      ADD_FAILURE() << "n=" << n << ": " << a.first << "@" << a.second << " is not in the table";
  }
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
  // The time split of the jobs' time_* figures: 2.5 + 17.5 + 0 + 4 = 24 s.
  EXPECT_NE(info.find("time of the 5 trainings and curvature solves: 24 s: SGD 2.5 s"), std::string::npos) << info;
  EXPECT_NE(info.find("polish 17.5 s"), std::string::npos) << info;
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

namespace {
// Edits a written file with the HDF5 C API: `edit` gets the file's id.
template <typename F>
void edit(const std::string& file, F&& f) {
  const hid_t id = H5Fopen(file.c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
  ASSERT_GE(id, 0) << file;
  f(id);
  ASSERT_GE(H5Fclose(id), 0);
}
}  // namespace

// Reading checks every dataset against the table: present when it must be, all tasks'
// groups or none, the declared type and shape. Each failure is one line naming file and path.
TEST_F(H5Test, ReadingABrokenFileNamesWhatIsWrong) {
  const std::string file = path("run.h5");
  auto expect_read_error = [&](const std::string& part) {
    const std::string msg = io_error([&] { read_output(file); });
    EXPECT_NE(msg.find("io: " + file + ": "), std::string::npos) << msg;
    EXPECT_NE(msg.find(part), std::string::npos) << msg;
    EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
  };
  auto broken = [&](const char* remove) {
    write_output(MPI_COMM_SELF, file, synthetic(3));
    edit(file, [&](hid_t f) { ASSERT_GE(H5Ldelete(f, remove, H5P_DEFAULT), 0) << remove; });
  };
  broken("/complexity/weight_norm2");
  expect_read_error("not a taskreach result (no /complexity/weight_norm2)");
  broken("/finetune/steps");
  expect_read_error("missing /finetune/steps");
  broken("/spectra/kmnist-γ/residuals");
  expect_read_error("missing /spectra/kmnist-γ/residuals");
  broken("/training/mnist");
  expect_read_error("/training has groups for 2 of 3 tasks");

  // Without its leader a following entry is not read; without an optional one, nothing is lost.
  broken("/finetune/threshold");
  RunOutput back = read_output(file);
  EXPECT_TRUE(back.finetune_threshold.empty());
  EXPECT_EQ(back.finetune_steps.rows, 0);
  broken("/complexity/C_laplace");
  back = read_output(file);
  EXPECT_TRUE(back.C_laplace.empty());
  EXPECT_EQ(back.C_paper, synthetic(3).C_paper);

  // A dataset of the wrong shape or type in place of the real one.
  auto replaced = [&](const char* name, hid_t type, std::vector<hsize_t> dims) {
    write_output(MPI_COMM_SELF, file, synthetic(3));
    edit(file, [&](hid_t f) {
      ASSERT_GE(H5Ldelete(f, name, H5P_DEFAULT), 0) << name;
      const hid_t space = H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr);
      const hid_t d = H5Dcreate2(f, name, type, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
      ASSERT_GE(d, 0) << name;
      H5Dclose(d);
      H5Sclose(space);
    });
  };
  replaced("/complexity/loss", H5T_IEEE_F64LE, {2});
  expect_read_error("/complexity/loss has shape [2], expected [3]");
  replaced("/reachability/stderr_seed", H5T_IEEE_F64LE, {3, 2});
  expect_read_error("/reachability/stderr_seed has shape [3,2], expected [3,3]");
  replaced("/unions/conflicts", H5T_IEEE_F64LE, {3, 3});
  expect_read_error("/unions/conflicts is not an integer dataset");
  replaced("/jobs/seconds", H5T_IEEE_F64LE, {4});
  expect_read_error("/jobs/seconds has shape [4], expected [5]");
  replaced("/training/kmnist-γ/curve", H5T_IEEE_F64LE, {2, 2});
  expect_read_error("/training/kmnist-γ/curve has shape [2,2], expected [k,3]");
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

  // Each a mistake the table's shapes and paths reveal, named by its path.
  auto expect_rejected = [&](RunOutput out, const std::string& part) {
    const std::string m = io_error([&] { write_output(MPI_COMM_SELF, file, out); });
    EXPECT_NE(m.find("io: " + file + ": invalid output: "), std::string::npos) << m;
    EXPECT_NE(m.find(part), std::string::npos) << m;
  };
  bad = synthetic(3);
  bad.finetune_samples = Matrix<int64_t>(3, 2, 0);
  expect_rejected(bad, "/finetune/samples is 3x2");
  bad = synthetic(3);
  bad.C_paper.push_back(1.0);
  expect_rejected(bad, "/complexity/C_paper has 4 entries for 3 tasks");
  bad = synthetic(3);
  bad.training[1].curve.pop_back();
  expect_rejected(bad, "/training/fashion_mnist/curve is not a list of (step, loss, accuracy) rows");
  bad = synthetic(3);
  bad.extra["/elsewhere/x"] = {1.0};
  expect_rejected(bad, "'/elsewhere/x' is not under /convergence, /potential or /critical_period");
  bad = synthetic(3);
  bad.extra["/convergence/batch_size/steps/more"] = {1.0};
  expect_rejected(bad, "'/convergence/batch_size/steps' is both a group and a dataset");
  bad = synthetic(3);
  bad.extra_strings["/convergence/batch_size/steps"] = {"a"};
  expect_rejected(bad, "'/convergence/batch_size/steps' is given with two types");
  bad = synthetic(3);
  bad.analysis_i64["spearman_R_T"] = 1;
  expect_rejected(bad, "'/analysis/spearman_R_T' is given with two types");
  bad = synthetic(3);
  bad.task_names[1] = "a/b";
  expect_rejected(bad, "task name 'a/b' cannot name the group /training/a/b");

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
