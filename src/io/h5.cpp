// The run's HDF5 file (DESIGN §5): created collectively over MPI-IO under a temporary name,
// N×N datasets written as row blocks with collective hyperslab writes (checked to have been
// collective), renamed into place only when complete. Read back serially.
#include <hdf5.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <map>
#include <set>
#include <iomanip>
#include <sstream>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "h5_handles.hpp"
#include "taskreach/io.hpp"

namespace taskreach {
namespace {

namespace fs = std::filesystem;

// ---------------------------------------------------------------------------------------
// Errors

// The innermost (most specific) entry of HDF5's error stack, as " (hdf5: …)", or "".
std::string hdf5_detail() {
  std::string desc;
  auto walk = [](unsigned n, const H5E_error2_t* err, void* data) -> herr_t {
    if (n == 0 && err != nullptr && err->desc != nullptr) {
      *static_cast<std::string*>(data) = err->desc;
    }
    return 0;
  };
  H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, walk, &desc);
  std::replace(desc.begin(), desc.end(), '\n', ' ');
  return desc.empty() ? std::string() : " (hdf5: " + desc + ")";
}

// Names the file in every message, so each error is one self-contained line.
struct Ctx {
  std::string path;

  [[noreturn]] void fail(const std::string& what) const {
    throw IoError("io: " + path + ": " + what);
  }
  [[noreturn]] void fail_hdf5(const std::string& what) const { fail(what + hdf5_detail()); }
  hid_t id(hid_t id, const std::string& what) const {
    if (id < 0) fail_hdf5(what);
    return id;
  }
  void ok(herr_t rc, const std::string& what) const {
    if (rc < 0) fail_hdf5(what);
  }
};

// ---------------------------------------------------------------------------------------
// Agreement between ranks

struct Comm {
  MPI_Comm comm;
  int rank = 0, size = 1;
  explicit Comm(MPI_Comm c) : comm(c) {
    MPI_Comm_rank(comm, &rank);
    MPI_Comm_size(comm, &size);
  }
};

std::string broadcast(const Comm& c, std::string s, int root) {
  unsigned long n = s.size();
  MPI_Bcast(&n, 1, MPI_UNSIGNED_LONG, root, c.comm);
  s.resize(n);
  if (n > 0) MPI_Bcast(s.data(), static_cast<int>(n), MPI_CHAR, root, c.comm);
  return s;
}

// Runs one step on every rank, then all ranks agree on its outcome before anything
// collective follows, so a rank that failed never leaves the others waiting inside a
// collective call. On failure every rank throws the same IoError: the message of the
// lowest failing rank.
template <typename F>
void phase(const Comm& c, const Ctx& ctx, F&& step) {
  std::string msg;
  try {
    step();
  } catch (const IoError& e) {
    msg = e.what();
  } catch (const std::exception& e) {
    msg = "io: " + ctx.path + ": " + e.what();
  }
  int failed = msg.empty() ? c.size : c.rank;
  MPI_Allreduce(MPI_IN_PLACE, &failed, 1, MPI_INT, MPI_MIN, c.comm);
  if (failed == c.size) return;
  throw IoError(broadcast(c, msg, failed));
}

// ---------------------------------------------------------------------------------------
// Validation: everything that can be known wrong before a file is created.

bool valid_link_name(const std::string& name) {
  return !name.empty() && name != "." && name != ".." && name.find('/') == std::string::npos;
}

// The [N] datasets that a result may or may not have, by path.
template <typename Out>
auto optional_vectors(Out& out) {
  using V = std::conditional_t<std::is_const_v<Out>, const std::vector<double>*, std::vector<double>*>;
  return std::vector<std::pair<std::string, V>>{
      {"/complexity/C_stderr", &out.C_stderr},         {"/complexity/C_laplace", &out.C_laplace},
      {"/complexity/C_laplace_stderr", &out.C_laplace_stderr}, {"/complexity/C_paper", &out.C_paper},
      {"/complexity/C_paper_stderr", &out.C_paper_stderr}, {"/complexity/trace", &out.trace},
      {"/complexity/trace_stderr", &out.trace_stderr}};
}

// Every group the experiments' paths need, parents before children.
std::set<std::string> extra_groups(const RunOutput& out) {
  std::set<std::string> groups;
  auto parents = [&](const std::string& path, bool self) {
    for (size_t at = path.find('/', 1); at != std::string::npos; at = path.find('/', at + 1))
      groups.insert(path.substr(0, at));
    if (self) groups.insert(path);
  };
  for (const auto& kv : out.extra) parents(kv.first, false);
  for (const auto& kv : out.extra_strings) parents(kv.first, false);
  for (const auto& kv : out.extra_attrs) parents(kv.first, true);
  return groups;
}

void validate(const Ctx& ctx, const RunOutput& out) {
  auto bad = [&](const std::string& what) { ctx.fail("invalid output: " + what); };
  const size_t n = out.task_names.size();
  std::set<std::string> names;
  for (size_t i = 0; i < n; ++i) {
    const std::string& name = out.task_names[i];
    if (name.empty()) bad("task " + std::to_string(i) + " has an empty name");
    if (!names.insert(name).second) bad("task name '" + name + "' appears twice");
    if (out.spectra.size() == n && !valid_link_name(name)) {
      bad("task name '" + name + "' cannot name the group /spectra/" + name);
    }
  }
  auto length = [&](const char* what, size_t size) {
    if (size != n) {
      bad(std::string(what) + " has " + std::to_string(size) + " entries for " + std::to_string(n) +
          " tasks");
    }
  };
  length("/tasks/num_samples", out.num_samples.size());
  length("/tasks/num_classes", out.num_classes.size());
  length("/complexity/C", out.C.size());
  length("/complexity/loss", out.loss.size());
  length("/complexity/weight_norm2", out.weight_norm2.size());
  length("/complexity/logdet", out.logdet.size());
  length("/complexity/logdet_stderr", out.logdet_stderr.size());
  length("/complexity/grad_norm", out.grad_norm.size());
  for (const auto& [name, v] : optional_vectors(out))
    if (!v->empty()) length(name.c_str(), v->size());

  auto square = [&](const char* what, int64_t rows, int64_t cols, size_t size) {
    const auto nn = static_cast<int64_t>(n);
    if (rows != nn || cols != nn || size != static_cast<size_t>(rows * cols)) {
      bad(std::string(what) + " is " + std::to_string(rows) + "x" + std::to_string(cols) + " (" +
          std::to_string(size) + " values) for " + std::to_string(n) + " tasks");
    }
  };
  square("/unions/C", out.unions_C.rows, out.unions_C.cols, out.unions_C.data.size());
  square("/unions/conflicts", out.unions_conflicts.rows, out.unions_conflicts.cols,
         out.unions_conflicts.data.size());
  square("/reachability/R", out.R.rows, out.R.cols, out.R.data.size());
  square("/reachability/R_per_sample", out.R_per_sample.rows, out.R_per_sample.cols,
         out.R_per_sample.data.size());
  square("/reachability/stderr", out.stderr_total.rows, out.stderr_total.cols,
         out.stderr_total.data.size());
  square("/reachability/stderr_probe", out.stderr_probe.rows, out.stderr_probe.cols,
         out.stderr_probe.data.size());
  square("/reachability/stderr_seed", out.stderr_seed.rows, out.stderr_seed.cols,
         out.stderr_seed.data.size());
  if (!out.finetune_threshold.empty()) {
    length("/finetune/threshold", out.finetune_threshold.size());
    square("/finetune/steps", out.finetune_steps.rows, out.finetune_steps.cols, out.finetune_steps.data.size());
    square("/finetune/samples", out.finetune_samples.rows, out.finetune_samples.cols,
           out.finetune_samples.data.size());
  }
  for (const auto& t : out.training)
    if (t.curve.size() % 3) bad("a training curve is not a list of (step, loss, accuracy) rows");

  // Experiment groups live beside the reachability groups, never inside them.
  auto experiment_path = [&](const std::string& path) {
    static const char* kRoots[] = {"/convergence/", "/potential/", "/critical_period/"};
    bool ok = false;
    for (const char* r : kRoots) ok = ok || path.rfind(r, 0) == 0;
    if (!ok || path.back() == '/' || path.find("//") != std::string::npos)
      bad("experiment path '" + path + "' is not under /convergence, /potential or /critical_period");
  };
  for (const auto& kv : out.extra) experiment_path(kv.first);
  for (const auto& kv : out.extra_strings) experiment_path(kv.first);
  for (const auto& kv : out.extra_attrs) experiment_path(kv.first);
  std::set<std::string> groups = extra_groups(out);
  for (const auto& kv : out.extra)
    if (groups.count(kv.first)) bad("'" + kv.first + "' is both a group and a dataset");

  std::map<std::string, int> attrs;
  for (const auto& kv : out.attrs_str) ++attrs[kv.first];
  for (const auto& kv : out.attrs_f64) ++attrs[kv.first];
  for (const auto& kv : out.attrs_i64) ++attrs[kv.first];
  for (const auto& kv : attrs) {
    if (kv.first.empty()) bad("an attribute has an empty name");
    if (kv.second > 1) bad("attribute '" + kv.first + "' is given with two types");
  }
}

// ---------------------------------------------------------------------------------------
// Writing

// Fixed-length UTF-8 strings, null-padded: variable-length strings cannot be written in
// parallel.
h5::Datatype string_type(const Ctx& ctx, size_t width) {
  h5::Datatype t(ctx.id(H5Tcopy(H5T_C_S1), "cannot create a string type"));
  ctx.ok(H5Tset_size(t.get(), std::max<size_t>(width, 1)), "cannot size a string type");
  ctx.ok(H5Tset_strpad(t.get(), H5T_STR_NULLPAD), "cannot set a string type's padding");
  ctx.ok(H5Tset_cset(t.get(), H5T_CSET_UTF8), "cannot set a string type's character set");
  return t;
}

struct PackedStrings {
  size_t width = 1;
  std::vector<char> bytes;
};

PackedStrings pack(const std::vector<std::string>& v) {
  PackedStrings p;
  for (const auto& s : v) p.width = std::max(p.width, s.size());
  p.bytes.assign(std::max<size_t>(v.size() * p.width, 1), '\0');
  for (size_t i = 0; i < v.size(); ++i) std::memcpy(&p.bytes[i * p.width], v[i].data(), v[i].size());
  return p;
}

// An upper estimate of the file's size: the data plus a generous allowance per object.
double approx_file_bytes(const RunOutput& out) {
  const auto n = static_cast<double>(out.task_names.size());
  double bytes = 7 * n * n * 8 + 8 * n * 8;  // the N×N datasets, the N-vectors
  double objects = 30;
  auto width = [](size_t w, const std::string& s) { return std::max(w, s.size()); };
  size_t name = 1, job = 1, status = 1, record = 1;
  for (const auto& t : out.task_names) name = width(name, t);
  for (const auto& j : out.jobs) {
    job = width(job, j.name);
    status = width(status, j.status);
    record = width(record, j.record);
  }
  bytes += n * static_cast<double>(name) +
           static_cast<double>(out.jobs.size() * (job + status + record + 8));
  for (const auto& sp : out.spectra) {
    bytes += static_cast<double>(sp.eigenvalues.size() + sp.residuals.size() + 2) * 8;
    objects += 5;
  }
  for (const auto& kv : out.attrs_str) bytes += static_cast<double>(kv.first.size() + kv.second.size());
  for (const auto& kv : out.extra) bytes += static_cast<double>(kv.second.size()) * 8;
  for (const auto& kv : out.extra_strings)
    for (const auto& v : kv.second) bytes += static_cast<double>(v.size()) + 8;
  objects += static_cast<double>(out.extra.size() + out.extra_strings.size() + 2 * out.extra_attrs.size());
  objects += static_cast<double>(out.attrs_str.size() + out.attrs_f64.size() + out.attrs_i64.size());
  return bytes + objects * 4096 + 65536;
}

// Who writes what: an N×N dataset is split into contiguous row blocks over the ranks;
// anything else is written by rank 0 while the others take part with empty selections.
enum class Split { rows, rank0 };

class Writer {
 public:
  Writer(const Comm& c, const Ctx& ctx, const RunOutput& out) : c_(c), ctx_(ctx), out_(out) {}

  void run(const std::string& tmp) {
    phase(c_, ctx_, [&] { check_directory(); });
    phase(c_, ctx_, [&] { create_file(tmp); });
    phase(c_, ctx_, [&] { write_attributes(); });
    const bool spectra = out_.spectra.size() == out_.task_names.size();
    const bool training = !out_.task_names.empty() && out_.training.size() == out_.task_names.size();
    const bool finetune = !out_.task_names.empty() && out_.finetune_threshold.size() == out_.task_names.size();
    phase(c_, ctx_, [&] {
      for (const char* g : {"/tasks", "/complexity", "/unions", "/reachability", "/spectra", "/jobs"}) {
        create_group(g);
      }
      if (spectra) {
        for (const auto& name : out_.task_names) create_group("/spectra/" + name);
      }
      if (training) {
        create_group("/training");
        for (const auto& name : out_.task_names) create_group("/training/" + name);
      }
      if (finetune) create_group("/finetune");
      if (!out_.analysis.empty() || !out_.analysis_i64.empty()) {
        std::set<std::string> groups{"/analysis"};
        auto parents = [&](const std::string& name) {
          for (size_t at = name.find('/'); at != std::string::npos; at = name.find('/', at + 1))
            groups.insert("/analysis/" + name.substr(0, at));
        };
        for (const auto& kv : out_.analysis) parents(kv.first);
        for (const auto& kv : out_.analysis_i64) parents(kv.first);
        for (const auto& g : groups) create_group(g);  // sorted: parents before children
      }
      for (const auto& g : extra_groups(out_)) create_group(g);
    });

    strings("/tasks/name", out_.task_names);
    vector("/tasks/num_samples", out_.num_samples);
    vector("/tasks/num_classes", out_.num_classes);

    vector("/complexity/C", out_.C);
    vector("/complexity/loss", out_.loss);
    vector("/complexity/weight_norm2", out_.weight_norm2);
    vector("/complexity/logdet", out_.logdet);
    vector("/complexity/logdet_stderr", out_.logdet_stderr);
    vector("/complexity/grad_norm", out_.grad_norm);
    for (const auto& [name, v] : optional_vectors(out_))
      if (v->size() == out_.task_names.size() && !v->empty()) vector(name, *v);

    matrix("/unions/C", out_.unions_C);
    matrix("/unions/conflicts", out_.unions_conflicts);
    matrix("/reachability/R", out_.R);
    matrix("/reachability/R_per_sample", out_.R_per_sample);
    matrix("/reachability/stderr", out_.stderr_total);
    matrix("/reachability/stderr_probe", out_.stderr_probe);
    matrix("/reachability/stderr_seed", out_.stderr_seed);
    if (!out_.task_names.empty() && out_.stderr_probe_unpaired.rows == int64_t(out_.task_names.size()))
      matrix("/reachability/stderr_probe_unpaired", out_.stderr_probe_unpaired);

    if (finetune) {
      matrix("/finetune/steps", out_.finetune_steps);
      matrix("/finetune/samples", out_.finetune_samples);
      vector("/finetune/threshold", out_.finetune_threshold);
    }
    for (const auto& [name, v] : out_.analysis) scalar("/analysis/" + name, v);
    for (const auto& [name, v] : out_.analysis_i64) scalar("/analysis/" + name, v);
    if (training) {
      for (size_t i = 0; i < out_.task_names.size(); ++i) {
        const std::string g = "/training/" + out_.task_names[i];
        const TrainingRecord& t = out_.training[i];
        dataset(g + "/curve", file_type(double{}), mem_type(double{}), {t.curve.size() / 3, 3}, t.curve.data(),
                Split::rank0);
        scalar(g + "/convergence_step", t.convergence_step);
        scalar(g + "/test_accuracy", t.test_accuracy);
      }
    }
    if (spectra) {
      for (size_t i = 0; i < out_.task_names.size(); ++i) {
        const std::string g = "/spectra/" + out_.task_names[i];
        const SpectrumRecord& s = out_.spectra[i];
        vector(g + "/eigenvalues", s.eigenvalues);
        vector(g + "/residuals", s.residuals);
        scalar(g + "/hvp_count", s.hvp_count);
        if (!s.esd_nodes.empty()) {
          vector(g + "/esd_nodes", s.esd_nodes);
          vector(g + "/esd_weights", s.esd_weights);
        }
        scalar(g + "/seconds", s.seconds);
      }
    }

    for (const auto& [name, v] : out_.extra) vector(name, v);
    for (const auto& [name, v] : out_.extra_strings) strings(name, v);
    phase(c_, ctx_, [&] {
      for (const auto& [group, attrs] : out_.extra_attrs)
        for (const auto& [name, value] : attrs) group_attribute(group, name, value);
    });

    std::vector<std::string> job_name, job_status, job_record;
    std::vector<double> job_seconds;
    for (const auto& j : out_.jobs) {
      job_name.push_back(j.name);
      job_status.push_back(j.status);
      job_record.push_back(j.record);
      job_seconds.push_back(j.seconds);
    }
    strings("/jobs/name", job_name);
    strings("/jobs/status", job_status);
    strings("/jobs/record", job_record);
    vector("/jobs/seconds", job_seconds);

    // The close flushes the metadata: a file is complete only when it succeeds everywhere.
    phase(c_, ctx_, [&] { ctx_.ok(file_.close(), "cannot close (flush) the file"); });
  }

 private:
  static hid_t file_type(double) { return H5T_IEEE_F64LE; }
  static hid_t file_type(int64_t) { return H5T_STD_I64LE; }
  static hid_t mem_type(double) { return H5T_NATIVE_DOUBLE; }
  static hid_t mem_type(int64_t) { return H5T_NATIVE_INT64; }

  // Rank 0 looks first, so the common mistakes fail before any collective file creation.
  // A full disk in particular: HDF5 1.10 cannot close a file whose flush failed (the id is
  // left dangling and the library crashes or hangs when it shuts down), so running out of
  // space is best found before the first byte is written.
  void check_directory() const {
    if (c_.rank != 0) return;
    std::error_code ec;
    const fs::path dir = fs::path(ctx_.path).parent_path();
    if (!dir.empty() && (!fs::is_directory(dir, ec) || ::access(dir.c_str(), W_OK) != 0)) {
      ctx_.fail("cannot create file (directory missing or not writable)");
    }
    struct statvfs st {};
    if (::statvfs(dir.empty() ? "." : dir.c_str(), &st) == 0 && st.f_blocks > 0) {
      const double free_bytes = static_cast<double>(st.f_bavail) * static_cast<double>(st.f_frsize);
      const double need = approx_file_bytes(out_);
      if (free_bytes < need) {
        char what[160];
        std::snprintf(what, sizeof what,
                      "not enough free space (the file needs about %.1f MiB, %.1f MiB free)",
                      need / 1048576.0, free_bytes / 1048576.0);
        ctx_.fail(what);
      }
    }
  }

  void create_file(const std::string& tmp) {
    h5::PropList fapl(ctx_.id(H5Pcreate(H5P_FILE_ACCESS), "cannot create a file access list"));
    ctx_.ok(H5Pset_fapl_mpio(fapl.get(), c_.comm, MPI_INFO_NULL), "cannot select MPI-IO");
    // 1.8 object headers: attributes above 64 KiB (the job TOML) go to dense storage.
    ctx_.ok(H5Pset_libver_bounds(fapl.get(), H5F_LIBVER_V18, H5F_LIBVER_V18),
            "cannot set the file format version");
    const hid_t f = H5Fcreate(tmp.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, fapl.get());
    if (f < 0) ctx_.fail("cannot create file (directory missing or not writable)");
    file_ = h5::File(f);
  }

  // Attribute writes are collective: every rank writes the same values.
  void write_attributes() {
    const hid_t root = file_.get();
    h5::Dataspace scalar(ctx_.id(H5Screate(H5S_SCALAR), "cannot create a scalar dataspace"));
    auto create = [&](const std::string& name, hid_t type) {
      return h5::Attribute(ctx_.id(
          H5Acreate2(root, name.c_str(), type, scalar.get(), H5P_DEFAULT, H5P_DEFAULT),
          "cannot create attribute '" + name + "'"));
    };
    for (const auto& [name, value] : out_.attrs_str) {
      h5::Datatype t = string_type(ctx_, value.size());
      h5::Attribute a = create(name, t.get());
      // c_str(): an empty value is written as one null byte.
      ctx_.ok(H5Awrite(a.get(), t.get(), value.c_str()), "cannot write attribute '" + name + "'");
      ctx_.ok(a.close(), "cannot close attribute '" + name + "'");
    }
    for (const auto& [name, value] : out_.attrs_f64) {
      h5::Attribute a = create(name, H5T_IEEE_F64LE);
      ctx_.ok(H5Awrite(a.get(), H5T_NATIVE_DOUBLE, &value), "cannot write attribute '" + name + "'");
      ctx_.ok(a.close(), "cannot close attribute '" + name + "'");
    }
    for (const auto& [name, value] : out_.attrs_i64) {
      h5::Attribute a = create(name, H5T_STD_I64LE);
      ctx_.ok(H5Awrite(a.get(), H5T_NATIVE_INT64, &value), "cannot write attribute '" + name + "'");
      ctx_.ok(a.close(), "cannot close attribute '" + name + "'");
    }
  }

  // A string attribute of a group (collective: every rank writes the same value).
  void group_attribute(const std::string& group, const std::string& name, const std::string& value) {
    h5::Dataspace scalar(ctx_.id(H5Screate(H5S_SCALAR), "cannot create a scalar dataspace"));
    h5::Datatype t = string_type(ctx_, value.size());
    h5::Attribute a(ctx_.id(H5Acreate_by_name(file_.get(), group.c_str(), name.c_str(), t.get(), scalar.get(),
                                              H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT),
                            "cannot create attribute '" + name + "' of " + group));
    ctx_.ok(H5Awrite(a.get(), t.get(), value.c_str()), "cannot write attribute '" + name + "' of " + group);
    ctx_.ok(a.close(), "cannot close attribute '" + name + "' of " + group);
  }

  void create_group(const std::string& name) {
    h5::Group g(ctx_.id(H5Gcreate2(file_.get(), name.c_str(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT),
                        "cannot create group " + name));
    ctx_.ok(g.close(), "cannot close group " + name);
  }

  template <typename T>
  void vector(const std::string& name, const std::vector<T>& v) {
    dataset(name, file_type(T{}), mem_type(T{}), {v.size()}, v.data(), Split::rank0);
  }

  template <typename T>
  void scalar(const std::string& name, const T& value) {
    dataset(name, file_type(T{}), mem_type(T{}), {}, &value, Split::rank0);
  }

  template <typename T>
  void matrix(const std::string& name, const Matrix<T>& m) {
    dataset(name, file_type(T{}), mem_type(T{}),
            {static_cast<hsize_t>(m.rows), static_cast<hsize_t>(m.cols)}, m.data.data(), Split::rows);
  }

  void strings(const std::string& name, const std::vector<std::string>& v) {
    const PackedStrings p = pack(v);
    h5::Datatype t;
    phase(c_, ctx_, [&] { t = string_type(ctx_, p.width); });
    dataset(name, t.get(), t.get(), {v.size()}, p.bytes.data(), Split::rank0);
  }

  // Creation and the collective write are separate phases: a rank whose creation failed
  // must not leave the others inside the collective write.
  void dataset(const std::string& name, hid_t ftype, hid_t mtype, const std::vector<hsize_t>& dims,
               const void* buf, Split split) {
    h5::Dataset ds;
    phase(c_, ctx_, [&] {
      h5::Dataspace space(ctx_.id(dims.empty() ? H5Screate(H5S_SCALAR)
                                               : H5Screate_simple(static_cast<int>(dims.size()),
                                                                  dims.data(), nullptr),
                                  "cannot create the dataspace of " + name));
      h5::PropList dcpl(ctx_.id(H5Pcreate(H5P_DATASET_CREATE), "cannot create a creation list"));
      ctx_.ok(H5Pset_layout(dcpl.get(), H5D_CONTIGUOUS), "cannot set the layout of " + name);
      // Every element is written below; filling first would write the data twice.
      ctx_.ok(H5Pset_fill_time(dcpl.get(), H5D_FILL_TIME_NEVER), "cannot set the fill of " + name);
      ds = h5::Dataset(ctx_.id(H5Dcreate2(file_.get(), name.c_str(), ftype, space.get(), H5P_DEFAULT,
                                          dcpl.get(), H5P_DEFAULT),
                               "cannot create dataset " + name));
    });
    hsize_t total = 1;
    for (hsize_t d : dims) total *= d;
    phase(c_, ctx_, [&] {
      if (total > 0) write(ds.get(), name, mtype, dims, buf, split);
      ctx_.ok(ds.close(), "cannot close dataset " + name);
    });
  }

  void write(hid_t ds, const std::string& name, hid_t mtype, const std::vector<hsize_t>& dims,
             const void* buf, Split split) {
    h5::Dataspace fspace(ctx_.id(H5Dget_space(ds), "cannot get the dataspace of " + name));
    h5::Dataspace mspace;
    const char* data = static_cast<const char*>(buf);
    if (split == Split::rows) {
      const hsize_t n = dims[0], cols = dims[1];
      const hsize_t r0 = static_cast<hsize_t>(c_.rank) * n / static_cast<hsize_t>(c_.size);
      const hsize_t r1 = static_cast<hsize_t>(c_.rank + 1) * n / static_cast<hsize_t>(c_.size);
      if (r1 > r0) {
        const hsize_t start[2] = {r0, 0}, count[2] = {r1 - r0, cols};
        ctx_.ok(H5Sselect_hyperslab(fspace.get(), H5S_SELECT_SET, start, nullptr, count, nullptr),
                "cannot select rows of " + name);
        mspace = h5::Dataspace(
            ctx_.id(H5Screate_simple(2, count, nullptr), "cannot create the memory space of " + name));
        data += r0 * cols * H5Tget_size(mtype);
      } else {
        mspace = h5::Dataspace(ctx_.id(H5Screate_simple(2, dims.data(), nullptr),
                                       "cannot create the memory space of " + name));
        ctx_.ok(H5Sselect_none(fspace.get()), "cannot select nothing of " + name);
        ctx_.ok(H5Sselect_none(mspace.get()), "cannot select nothing of " + name);
      }
    } else {
      mspace = h5::Dataspace(ctx_.id(H5Scopy(fspace.get()), "cannot create the memory space of " + name));
      if (c_.rank != 0) {
        ctx_.ok(H5Sselect_none(fspace.get()), "cannot select nothing of " + name);
        ctx_.ok(H5Sselect_none(mspace.get()), "cannot select nothing of " + name);
      }
    }
    h5::PropList dxpl(ctx_.id(H5Pcreate(H5P_DATASET_XFER), "cannot create a transfer list"));
    ctx_.ok(H5Pset_dxpl_mpio(dxpl.get(), H5FD_MPIO_COLLECTIVE), "cannot request collective I/O");
    ctx_.ok(H5Dwrite(ds, mtype, mspace.get(), fspace.get(), dxpl.get(), data), "cannot write " + name);
    H5D_mpio_actual_io_mode_t mode = H5D_MPIO_NO_COLLECTIVE;
    ctx_.ok(H5Pget_mpio_actual_io_mode(dxpl.get(), &mode), "cannot query the I/O mode of " + name);
    if (mode == H5D_MPIO_NO_COLLECTIVE) {
      uint32_t local = 0, global = 0;
      H5Pget_mpio_no_collective_cause(dxpl.get(), &local, &global);
      char cause[32];
      std::snprintf(cause, sizeof cause, "0x%x", static_cast<unsigned>(global));
      ctx_.fail(name + ": the transfer was not collective (H5D_mpio_no_collective_cause_t " +
                cause + ")");
    }
  }

  const Comm& c_;
  const Ctx& ctx_;
  const RunOutput& out_;
  h5::File file_;
};

void remove_temporary(const std::string& tmp) {
  std::error_code ec;
  if (fs::is_regular_file(tmp, ec)) fs::remove(tmp, ec);
}

// ---------------------------------------------------------------------------------------
// Reading

bool exists(hid_t file, const std::string& path) {
  // H5Lexists needs every intermediate link to exist, so walk down one component at a time.
  std::string prefix;
  size_t pos = 0;
  while (pos < path.size()) {
    size_t next = path.find('/', pos + 1);
    if (next == std::string::npos) next = path.size();
    prefix = path.substr(0, next);
    if (prefix != "/" && H5Lexists(file, prefix.c_str(), H5P_DEFAULT) <= 0) return false;
    pos = next;
  }
  return true;
}

std::string decode(const char* p, size_t size, H5T_str_t pad) {
  std::string s(p, size);
  if (pad == H5T_STR_NULLTERM) {
    s.resize(std::strlen(s.c_str()));
  } else {
    const char fill = pad == H5T_STR_SPACEPAD ? ' ' : '\0';
    s.erase(s.find_last_not_of(fill) + 1);
  }
  return s;
}

template <typename T>
struct Array {
  std::vector<hsize_t> dims;
  std::vector<T> data;
};

template <typename T>
Array<T> read_array(hid_t file, const Ctx& ctx, const std::string& name) {
  if (!exists(file, name)) ctx.fail("missing " + name);
  h5::Dataset ds(ctx.id(H5Dopen2(file, name.c_str(), H5P_DEFAULT), "cannot open " + name));
  h5::Datatype type(ctx.id(H5Dget_type(ds.get()), "cannot get the type of " + name));
  const bool is_double = std::is_same<T, double>::value;
  if (H5Tget_class(type.get()) != (is_double ? H5T_FLOAT : H5T_INTEGER)) {
    ctx.fail(name + " is not " + (is_double ? "a float" : "an integer") + " dataset");
  }
  h5::Dataspace space(ctx.id(H5Dget_space(ds.get()), "cannot get the dataspace of " + name));
  const int ndims = H5Sget_simple_extent_ndims(space.get());
  if (ndims < 0) ctx.fail_hdf5("cannot get the shape of " + name);
  Array<T> a;
  a.dims.resize(static_cast<size_t>(ndims));
  ctx.ok(H5Sget_simple_extent_dims(space.get(), a.dims.data(), nullptr),
         "cannot get the shape of " + name);
  const hssize_t npoints = H5Sget_simple_extent_npoints(space.get());
  if (npoints < 0) ctx.fail_hdf5("cannot get the size of " + name);
  a.data.resize(static_cast<size_t>(npoints));
  if (npoints > 0) {
    ctx.ok(H5Dread(ds.get(), is_double ? H5T_NATIVE_DOUBLE : H5T_NATIVE_INT64, H5S_ALL, H5S_ALL,
                   H5P_DEFAULT, a.data.data()),
           "cannot read " + name);
  }
  return a;
}

std::string shape(const std::vector<hsize_t>& dims) {
  std::string s = "[";
  for (size_t i = 0; i < dims.size(); ++i) s += (i ? "," : "") + std::to_string(dims[i]);
  return s + "]";
}

template <typename T>
std::vector<T> read_shaped(hid_t file, const Ctx& ctx, const std::string& name,
                           const std::vector<hsize_t>& dims) {
  Array<T> a = read_array<T>(file, ctx, name);
  if (a.dims != dims) ctx.fail(name + " has shape " + shape(a.dims) + ", expected " + shape(dims));
  return std::move(a.data);
}

template <typename T>
std::vector<T> read_vector(hid_t file, const Ctx& ctx, const std::string& name) {
  Array<T> a = read_array<T>(file, ctx, name);
  if (a.dims.size() != 1) ctx.fail(name + " has shape " + shape(a.dims) + ", expected 1-D");
  return std::move(a.data);
}

template <typename T>
T read_scalar(hid_t file, const Ctx& ctx, const std::string& name) {
  Array<T> a = read_array<T>(file, ctx, name);
  if (a.data.size() != 1) ctx.fail(name + " has shape " + shape(a.dims) + ", expected a scalar");
  return a.data[0];
}

template <typename T>
Matrix<T> read_matrix(hid_t file, const Ctx& ctx, const std::string& name, size_t n) {
  Matrix<T> m;
  m.rows = m.cols = static_cast<int64_t>(n);
  m.data = read_shaped<T>(file, ctx, name, {n, n});
  return m;
}

// 1-D string dataset, fixed-length (what write_output writes) or variable-length (h5py's
// default, should anyone edit a file by hand).
std::vector<std::string> read_strings(hid_t file, const Ctx& ctx, const std::string& name) {
  if (!exists(file, name)) ctx.fail("missing " + name);
  h5::Dataset ds(ctx.id(H5Dopen2(file, name.c_str(), H5P_DEFAULT), "cannot open " + name));
  h5::Datatype type(ctx.id(H5Dget_type(ds.get()), "cannot get the type of " + name));
  if (H5Tget_class(type.get()) != H5T_STRING) ctx.fail(name + " is not a string dataset");
  h5::Dataspace space(ctx.id(H5Dget_space(ds.get()), "cannot get the dataspace of " + name));
  if (H5Sget_simple_extent_ndims(space.get()) != 1) ctx.fail(name + " is not 1-D");
  hsize_t n = 0;
  ctx.ok(H5Sget_simple_extent_dims(space.get(), &n, nullptr), "cannot get the shape of " + name);
  std::vector<std::string> out(n);
  if (n == 0) return out;
  if (H5Tis_variable_str(type.get()) > 0) {
    h5::Datatype mt(ctx.id(H5Tcopy(H5T_C_S1), "cannot create a string type"));
    ctx.ok(H5Tset_size(mt.get(), H5T_VARIABLE), "cannot create a string type");
    std::vector<char*> p(n, nullptr);
    ctx.ok(H5Dread(ds.get(), mt.get(), H5S_ALL, H5S_ALL, H5P_DEFAULT, p.data()), "cannot read " + name);
    for (size_t i = 0; i < n; ++i) out[i] = p[i] ? p[i] : "";
    H5Dvlen_reclaim(mt.get(), space.get(), H5P_DEFAULT, p.data());
  } else {
    const size_t width = H5Tget_size(type.get());
    if (width == 0) ctx.fail_hdf5("cannot get the string width of " + name);
    const H5T_str_t pad = H5Tget_strpad(type.get());
    std::vector<char> bytes(n * width);
    ctx.ok(H5Dread(ds.get(), type.get(), H5S_ALL, H5S_ALL, H5P_DEFAULT, bytes.data()),
           "cannot read " + name);
    for (size_t i = 0; i < n; ++i) out[i] = decode(&bytes[i * width], width, pad);
  }
  return out;
}

// Root attributes, sorted into the three kinds by HDF5 type class; other kinds and
// non-scalar attributes are not part of the contract and are skipped.
void read_attributes(hid_t file, const Ctx& ctx, RunOutput& out) {
  std::vector<std::string> names;
  auto collect = [](hid_t, const char* name, const H5A_info_t*, void* data) -> herr_t {
    try {
      static_cast<std::vector<std::string>*>(data)->emplace_back(name);
      return 0;
    } catch (...) {
      return -1;
    }
  };
  hsize_t idx = 0;
  ctx.ok(H5Aiterate2(file, H5_INDEX_NAME, H5_ITER_INC, &idx, collect, &names),
         "cannot list the root attributes");
  for (const auto& name : names) {
    const std::string what = "attribute '" + name + "'";
    h5::Attribute a(ctx.id(H5Aopen(file, name.c_str(), H5P_DEFAULT), "cannot open " + what));
    h5::Datatype type(ctx.id(H5Aget_type(a.get()), "cannot get the type of " + what));
    h5::Dataspace space(ctx.id(H5Aget_space(a.get()), "cannot get the dataspace of " + what));
    if (H5Sget_simple_extent_npoints(space.get()) != 1) continue;
    switch (H5Tget_class(type.get())) {
      case H5T_STRING:
        if (H5Tis_variable_str(type.get()) > 0) {
          h5::Datatype mt(ctx.id(H5Tcopy(H5T_C_S1), "cannot create a string type"));
          ctx.ok(H5Tset_size(mt.get(), H5T_VARIABLE), "cannot create a string type");
          char* p = nullptr;
          ctx.ok(H5Aread(a.get(), mt.get(), &p), "cannot read " + what);
          out.attrs_str[name] = p ? p : "";
          H5Dvlen_reclaim(mt.get(), space.get(), H5P_DEFAULT, &p);
        } else {
          const size_t width = H5Tget_size(type.get());
          if (width == 0) ctx.fail_hdf5("cannot get the string width of " + what);
          std::vector<char> bytes(width);
          ctx.ok(H5Aread(a.get(), type.get(), bytes.data()), "cannot read " + what);
          out.attrs_str[name] = decode(bytes.data(), width, H5Tget_strpad(type.get()));
        }
        break;
      case H5T_FLOAT: {
        double v = 0;
        ctx.ok(H5Aread(a.get(), H5T_NATIVE_DOUBLE, &v), "cannot read " + what);
        out.attrs_f64[name] = v;
        break;
      }
      case H5T_INTEGER: {
        int64_t v = 0;
        ctx.ok(H5Aread(a.get(), H5T_NATIVE_INT64, &v), "cannot read " + what);
        out.attrs_i64[name] = v;
        break;
      }
      default:
        break;
    }
  }
}

// ---------------------------------------------------------------------------------------
// Formatting

// Terminal columns of a UTF-8 string (one per code point; enough for names and "±").
size_t columns(const std::string& s) {
  size_t n = 0;
  for (unsigned char ch : s) n += (ch & 0xC0) != 0x80;
  return n;
}

std::string clip(const std::string& s, size_t width) {
  if (columns(s) <= width) return s;
  std::string out;
  size_t cols = 0;
  for (size_t i = 0; i < s.size(); ++i) {
    const auto ch = static_cast<unsigned char>(s[i]);
    if ((ch & 0xC0) != 0x80 && ++cols == width) break;
    out += s[i];
  }
  return out + "…";
}

std::string pad(const std::string& s, size_t width, bool right = false) {
  const size_t cols = columns(s);
  const std::string fill(width > cols ? width - cols : 0, ' ');
  return right ? fill + s : s + fill;
}

std::string num(double v, int digits) {
  char buf[48];
  std::snprintf(buf, sizeof buf, "%.*g", digits, v);
  return buf;
}

std::string attribute_text(const RunOutput& out, const std::string& key, bool* found) {
  *found = true;
  if (auto it = out.attrs_str.find(key); it != out.attrs_str.end()) {
    const std::string& s = it->second;
    return s.substr(0, s.find('\n'));
  }
  if (auto it = out.attrs_i64.find(key); it != out.attrs_i64.end()) return std::to_string(it->second);
  if (auto it = out.attrs_f64.find(key); it != out.attrs_f64.end()) return num(it->second, 6);
  *found = false;
  return {};
}

constexpr size_t kNameWidth = 20;

}  // namespace

// ---------------------------------------------------------------------------------------

void write_output(MPI_Comm comm, const std::string& path, const RunOutput& out) {
  h5::QuietErrors quiet;
  const Comm c(comm);
  const Ctx ctx{path};
  phase(c, ctx, [&] { validate(ctx, out); });
  const std::string tmp =
      broadcast(c, c.rank == 0 ? path + ".tmp-" + std::to_string(::getpid()) : std::string(), 0);
  try {
    Writer(c, ctx, out).run(tmp);
  } catch (const IoError&) {
    MPI_Barrier(comm);  // every rank has closed the file before it goes
    if (c.rank == 0) remove_temporary(tmp);
    throw;
  }
  std::string msg;
  if (c.rank == 0 && std::rename(tmp.c_str(), path.c_str()) != 0) {
    msg = "io: " + path + ": cannot rename the complete temporary " + tmp + " into place: " +
          std::strerror(errno);
    remove_temporary(tmp);
  }
  msg = broadcast(c, msg, 0);
  if (!msg.empty()) throw IoError(msg);
}

RunOutput read_output(const std::string& path) {
  h5::QuietErrors quiet;
  const Ctx ctx{path};
  std::error_code ec;
  if (!fs::exists(path, ec)) ctx.fail("no such file");
  if (fs::is_directory(path, ec)) ctx.fail("is a directory, not a result file");
  if (H5Fis_hdf5(path.c_str()) <= 0) ctx.fail("not an HDF5 file");
  h5::PropList fapl(ctx.id(H5Pcreate(H5P_FILE_ACCESS), "cannot create a file access list"));
  // Reading needs no lock; do not fail on file systems without flock (Lustre, NFS).
  ctx.ok(H5Pset_file_locking(fapl.get(), true, true), "cannot set file locking");
  h5::File file(ctx.id(H5Fopen(path.c_str(), H5F_ACC_RDONLY, fapl.get()), "cannot open file"));
  const hid_t f = file.get();
  for (const char* required : {"/tasks/name", "/reachability/R"}) {
    if (!exists(f, required)) ctx.fail(std::string("not a taskreach result (no ") + required + ")");
  }

  RunOutput out;
  read_attributes(f, ctx, out);
  out.task_names = read_strings(f, ctx, "/tasks/name");
  const size_t n = out.task_names.size();
  out.num_samples = read_shaped<int64_t>(f, ctx, "/tasks/num_samples", {n});
  out.num_classes = read_shaped<int64_t>(f, ctx, "/tasks/num_classes", {n});

  out.C = read_shaped<double>(f, ctx, "/complexity/C", {n});
  out.loss = read_shaped<double>(f, ctx, "/complexity/loss", {n});
  out.weight_norm2 = read_shaped<double>(f, ctx, "/complexity/weight_norm2", {n});
  out.logdet = read_shaped<double>(f, ctx, "/complexity/logdet", {n});
  out.logdet_stderr = read_shaped<double>(f, ctx, "/complexity/logdet_stderr", {n});
  out.grad_norm = read_shaped<double>(f, ctx, "/complexity/grad_norm", {n});

  out.unions_C = read_matrix<double>(f, ctx, "/unions/C", n);
  out.unions_conflicts = read_matrix<int64_t>(f, ctx, "/unions/conflicts", n);
  out.R = read_matrix<double>(f, ctx, "/reachability/R", n);
  out.R_per_sample = read_matrix<double>(f, ctx, "/reachability/R_per_sample", n);
  out.stderr_total = read_matrix<double>(f, ctx, "/reachability/stderr", n);
  out.stderr_probe = read_matrix<double>(f, ctx, "/reachability/stderr_probe", n);
  out.stderr_seed = read_matrix<double>(f, ctx, "/reachability/stderr_seed", n);
  for (auto& [name, v] : optional_vectors(out))
    if (n > 0 && exists(f, name)) *v = read_shaped<double>(f, ctx, name, {n});
  if (n > 0 && exists(f, "/reachability/stderr_probe_unpaired"))
    out.stderr_probe_unpaired = read_matrix<double>(f, ctx, "/reachability/stderr_probe_unpaired", n);
  if (n > 0 && exists(f, "/finetune/threshold")) {
    out.finetune_steps = read_matrix<int64_t>(f, ctx, "/finetune/steps", n);
    out.finetune_samples = read_matrix<int64_t>(f, ctx, "/finetune/samples", n);
    out.finetune_threshold = read_shaped<double>(f, ctx, "/finetune/threshold", {n});
  }
  if (exists(f, "/analysis")) {
    // Every scalar dataset below /analysis, by its path relative to it.
    std::vector<std::string> names;
    auto visit = [](hid_t, const char* name, const H5O_info_t* info, void* data) -> herr_t {
      if (info->type == H5O_TYPE_DATASET) static_cast<std::vector<std::string>*>(data)->push_back(name);
      return 0;
    };
    h5::Group g(ctx.id(H5Gopen2(f, "/analysis", H5P_DEFAULT), "cannot open /analysis"));
    ctx.ok(H5Ovisit(g.get(), H5_INDEX_NAME, H5_ITER_NATIVE, visit, &names), "cannot list /analysis");
    for (const auto& name : names) {
      const std::string path = "/analysis/" + name;
      h5::Dataset d(ctx.id(H5Dopen2(f, path.c_str(), H5P_DEFAULT), "cannot open " + path));
      h5::Datatype t(ctx.id(H5Dget_type(d.get()), "cannot read the type of " + path));
      if (H5Tget_class(t.get()) == H5T_INTEGER)
        out.analysis_i64[name] = read_scalar<int64_t>(f, ctx, path);
      else
        out.analysis[name] = read_scalar<double>(f, ctx, path);
    }
  }
  for (const char* root : {"/convergence", "/potential", "/critical_period"}) {
    if (!exists(f, root)) continue;
    // Every dataset (1-D float or string) and group attribute below the experiment's group.
    std::vector<std::pair<std::string, bool>> objects{{"", false}};  // (path below root, is a dataset)
    auto visit = [](hid_t, const char* name, const H5O_info_t* info, void* data) -> herr_t {
      if (std::string(name) != ".")
        static_cast<std::vector<std::pair<std::string, bool>>*>(data)->emplace_back(std::string("/") + name,
                                                                                  info->type == H5O_TYPE_DATASET);
      return 0;
    };
    h5::Group g(ctx.id(H5Gopen2(f, root, H5P_DEFAULT), std::string("cannot open ") + root));
    ctx.ok(H5Ovisit(g.get(), H5_INDEX_NAME, H5_ITER_NATIVE, visit, &objects), std::string("cannot list ") + root);
    for (const auto& [rel, is_dataset] : objects) {
      const std::string path = root + rel;
      if (is_dataset) {
        h5::Dataset d(ctx.id(H5Dopen2(f, path.c_str(), H5P_DEFAULT), "cannot open " + path));
        h5::Datatype t(ctx.id(H5Dget_type(d.get()), "cannot read the type of " + path));
        if (H5Tget_class(t.get()) == H5T_STRING) out.extra_strings[path] = read_strings(f, ctx, path);
        else out.extra[path] = read_array<double>(f, ctx, path).data;
      } else {
        h5::Group sub(ctx.id(H5Gopen2(f, path.c_str(), H5P_DEFAULT), "cannot open " + path));
        RunOutput attrs;
        read_attributes(sub.get(), ctx, attrs);
        if (!attrs.attrs_str.empty()) out.extra_attrs[path] = attrs.attrs_str;
      }
    }
  }
  if (n > 0 && exists(f, "/training")) {
    for (const auto& name : out.task_names) {
      const std::string g = "/training/" + name;
      TrainingRecord t;
      t.curve = read_array<double>(f, ctx, g + "/curve").data;
      t.convergence_step = read_scalar<int64_t>(f, ctx, g + "/convergence_step");
      t.test_accuracy = read_scalar<double>(f, ctx, g + "/test_accuracy");
      out.training.push_back(std::move(t));
    }
  }

  size_t groups = 0;
  for (const auto& name : out.task_names) {
    groups += valid_link_name(name) && exists(f, "/spectra/" + name);
  }
  if (groups == n && n > 0) {
    for (const auto& name : out.task_names) {
      const std::string g = "/spectra/" + name;
      SpectrumRecord s;
      s.eigenvalues = read_vector<double>(f, ctx, g + "/eigenvalues");
      s.residuals = read_vector<double>(f, ctx, g + "/residuals");
      s.hvp_count = read_scalar<int64_t>(f, ctx, g + "/hvp_count");
      s.seconds = read_scalar<double>(f, ctx, g + "/seconds");
      if (exists(f, g + "/esd_nodes")) {
        s.esd_nodes = read_vector<double>(f, ctx, g + "/esd_nodes");
        s.esd_weights = read_vector<double>(f, ctx, g + "/esd_weights");
      }
      out.spectra.push_back(std::move(s));
    }
  } else if (groups != 0) {
    ctx.fail("/spectra has groups for " + std::to_string(groups) + " of " + std::to_string(n) +
             " tasks");
  }

  const std::vector<std::string> names = read_strings(f, ctx, "/jobs/name");
  const std::vector<std::string> status = read_strings(f, ctx, "/jobs/status");
  const std::vector<std::string> record = read_strings(f, ctx, "/jobs/record");
  const size_t jobs = names.size();
  const std::vector<double> seconds = read_shaped<double>(f, ctx, "/jobs/seconds", {jobs});
  if (status.size() != jobs || record.size() != jobs) {
    ctx.fail("/jobs/name, /jobs/status and /jobs/record differ in length");
  }
  for (size_t i = 0; i < jobs; ++i) out.jobs.push_back({names[i], status[i], seconds[i], record[i]});

  ctx.ok(file.close(), "cannot close file");
  return out;
}

std::string format_info(const RunOutput& out) {
  std::ostringstream os;
  const size_t n = out.task_names.size();
  std::vector<std::string> names;
  size_t name_width = 4;
  for (const auto& t : out.task_names) {
    names.push_back(clip(t, kNameWidth));
    name_width = std::max(name_width, columns(names.back()));
  }
  auto at = [](const auto& v, size_t i) { return i < v.size() ? v[i] : typename std::decay_t<decltype(v)>::value_type{}; };
  auto cell = [](const auto& m, size_t i, size_t j, bool* ok) {
    *ok = m.rows > static_cast<int64_t>(i) && m.cols > static_cast<int64_t>(j) &&
          m.data.size() == static_cast<size_t>(m.rows * m.cols);
    return *ok ? m(static_cast<int64_t>(i), static_cast<int64_t>(j)) : 0.0;
  };

  os << "taskreach result\n";
  for (const char* key : {"version", "created", "mpi_ranks", "ranks_per_task", "beta", "lambda2",
                          "logdet_scale", "curvature", "seeds"}) {
    bool found = false;
    const std::string text = attribute_text(out, key, &found);
    if (found) os << "  " << pad(key, 16) << text << "\n";
  }

  if (n == 0) {  // an experiment without a task matrix: its fits follow
    bool found = false;
    os << "\nexperiment " << attribute_text(out, "experiment", &found) << "\n";
  } else {
    os << "\ntasks (" << n << ")\n";
    os << "  " << pad("#", 4) << pad("task", name_width + 2) << pad("n", 10, true) << pad("classes", 9, true)
       << "   C ± stderr (nats)\n";
    for (size_t i = 0; i < n; ++i) {
      os << "  " << pad(std::to_string(i), 4) << pad(names[i], name_width + 2)
         << pad(std::to_string(at(out.num_samples, i)), 10, true)
         << pad(std::to_string(at(out.num_classes, i)), 9, true) << "   "
         << num(at(out.C, i), 6) << " ± " << num(at(out.logdet_stderr, i), 2) << "\n";
    }

    // Cells first, then each column as wide as its widest entry.
    std::vector<std::vector<std::string>> cells(n, std::vector<std::string>(n));
    std::vector<size_t> width(n);
    for (size_t j = 0; j < n; ++j) width[j] = columns(names[j]);
    for (size_t i = 0; i < n; ++i) {
      for (size_t j = 0; j < n; ++j) {
        bool ok = false, have_err = false;
        const double r = cell(out.R, i, j, &ok);
        const double e = cell(out.stderr_total, i, j, &have_err);
        cells[i][j] = !ok ? "-" : have_err ? num(r, 4) + " ± " + num(e, 2) : num(r, 4);
        width[j] = std::max(width[j], columns(cells[i][j]));
      }
    }
    const std::string corner = "target \\ source";
    const size_t row_width = std::max(name_width, columns(corner));
    os << "\nR(i|j): row i = target, column j = source, nats\n";
    os << "  " << pad(corner, row_width);
    for (size_t j = 0; j < n; ++j) os << "  " << pad(names[j], width[j], true);
    os << "\n";
    for (size_t i = 0; i < n; ++i) {
      os << "  " << pad(names[i], row_width);
      for (size_t j = 0; j < n; ++j) os << "  " << pad(cells[i][j], width[j], true);
      os << "\n";
    }

    if (out.finetune_threshold.size() == n && out.finetune_steps.data.size() == n * n && n > 0) {
      os << "\nT(i|j): SGD steps fine-tuning from source j until task i's loss <= theta_i "
            "(diagonal: from scratch; - : not reached)\n";
      os << "  " << pad(corner, row_width);
      std::vector<size_t> tw(n);
      for (size_t j = 0; j < n; ++j) {
        tw[j] = std::max<size_t>(columns(names[j]), 8);
        os << "  " << pad(names[j], tw[j], true);
      }
      os << "  " << pad("theta_i", 8, true) << "\n";
      for (size_t i = 0; i < n; ++i) {
        os << "  " << pad(names[i], row_width);
        for (size_t j = 0; j < n; ++j) {
          const int64_t t = out.finetune_steps(int64_t(i), int64_t(j));
          os << "  " << pad(t < 0 ? std::string("-") : std::to_string(t), tw[j], true);
        }
        std::ostringstream th;
        th << std::setprecision(3) << out.finetune_threshold[i];
        os << "  " << pad(th.str(), 8, true) << "\n";
      }
    }
  }  // n > 0

  if (out.analysis.count("spearman_R_T")) {
    auto v = [&](const std::string& k) {
      std::ostringstream o;
      auto it = out.analysis.find(k);
      o << std::setprecision(3) << (it == out.analysis.end() ? NAN : it->second);
      return o.str();
    };
    const auto pairs = out.analysis_i64.count("pairs_used") ? out.analysis_i64.at("pairs_used") : 0;
    os << "\ndoes R predict the fine-tune cost? (" << pairs << " resolved, reached pairs)\n"
       << "  Spearman(R, T) " << v("spearman_R_T") << ", Pearson(R, log(1+T)) " << v("pearson_R_logT")
       << ", within-target Kendall " << v("kendall_within_target") << "\n"
       << "  baselines, Spearman with T: target's scratch cost " << v("baselines/scratch_cost/spearman_T")
       << ", loss of i at w*_j " << v("baselines/loss_at_source/spearman_T") << ", C(D_i) "
       << v("baselines/target_complexity/spearman_T") << "\n"
       << "  partial Spearman(R, T | scratch cost) " << v("partial_spearman_R_T_given_scratch") << "\n";
  }

  // The experiments' fits: every group with a formula, its parameters ± errors and R².
  bool fits_header = false;
  for (const auto& [group, attrs] : out.extra_attrs) {
    auto model = attrs.find("model");
    auto p = out.extra.find(group + "/params"), e = out.extra.find(group + "/stderr"), r2 = out.extra.find(group + "/r2");
    if (model == attrs.end() || p == out.extra.end()) continue;
    if (!fits_header) os << "\nfits (least squares)\n";
    fits_header = true;
    std::vector<std::string> pn;
    if (auto it = attrs.find("param_names"); it != attrs.end()) {
      std::istringstream in(it->second);
      for (std::string x; std::getline(in, x, ',');) pn.push_back(x);
    }
    os << "  " << group << ": " << model->second << "\n    ";
    for (size_t k = 0; k < p->second.size(); ++k)
      os << (k < pn.size() ? pn[k] : "p" + std::to_string(k)) << " = " << num(p->second[k], 4) << " ± "
         << num(e != out.extra.end() && k < e->second.size() ? e->second[k] : NAN, 2) << "   ";
    os << "R^2 = " << num(r2 != out.extra.end() && !r2->second.empty() ? r2->second[0] : NAN, 3) << "\n";
  }

  std::map<std::string, size_t> statuses;
  for (const auto& j : out.jobs) ++statuses[j.status];
  os << "\njobs: " << out.jobs.size();
  if (!out.jobs.empty()) {
    os << " (ok " << statuses["ok"];
    for (const auto& [status, count] : statuses) {
      if (status != "ok") os << ", " << status << " " << count;
    }
    os << ")";
  }
  os << "\n";
  return os.str();
}

}  // namespace taskreach
