// The run's HDF5 file (DESIGN §5), laid out by the table of schema.hpp: created collectively
// over MPI-IO under a temporary name, N×N datasets written as row blocks with collective
// hyperslab writes (checked to have been collective), renamed into place only when complete.
// Read back serially through the same table.
#include <hdf5.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "h5_handles.hpp"
#include "schema.hpp"
#include "taskreach/collective.hpp"
#include "taskreach/io.hpp"

namespace taskreach {
namespace {

namespace fs = std::filesystem;
using io::Entry;
using io::Item;
using io::Need;
using io::Shape;
using io::Type;

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
  util::Failure f;
  util::agree(c.comm, msg.empty(), msg, f);
  if (f.any()) throw IoError(f.message);
}

// ---------------------------------------------------------------------------------------
// Paths

bool has(const std::string& s, const char* part) { return s.find(part) != std::string::npos; }

bool valid_link_name(const std::string& name) {
  return !name.empty() && name != "." && name != ".." && name.find('/') == std::string::npos;
}

// A pattern with its <task> (if any) replaced by a task's name.
std::string for_task(std::string pattern, const std::string& task) {
  const size_t at = pattern.find("<task>");
  return at == std::string::npos ? pattern : pattern.replace(at, 6, task);
}

// Every group above `path` ("/a/b/c": "/a", "/a/b"), and `path` itself when `self`.
void add_groups(std::set<std::string>& groups, const std::string& path, bool self) {
  for (size_t at = path.find('/', 1); at != std::string::npos; at = path.find('/', at + 1))
    groups.insert(path.substr(0, at));
  if (self && path != "/") groups.insert(path);
}

template <typename Dims>
std::string shape_text(const Dims& dims) {
  std::string s = "[";
  for (size_t i = 0; i < dims.size(); ++i) s += (i ? "," : "") + std::to_string(dims[i]);
  return s + "]";
}

// "/a, /b or /c"
std::string alternatives(const std::vector<std::string>& v) {
  std::string s;
  for (size_t i = 0; i < v.size(); ++i) s += (i == 0 ? "" : i + 1 == v.size() ? " or " : ", ") + v[i];
  return s;
}

// ---------------------------------------------------------------------------------------
// What a file written from an output holds: the table's entries with their items.

struct Planned {
  const Entry* entry;
  std::vector<Item> items;
};

std::vector<Planned> plan(const RunOutput& out) {
  std::vector<Planned> p;
  for (const Entry& e : io::schema()) p.push_back({&e, io::contents(e, out)});
  return p;
}

// Every group the items need, sorted: parents before children.
std::set<std::string> groups_of(const std::vector<Planned>& plan) {
  std::set<std::string> groups;
  for (const Planned& p : plan) {
    const bool is_group = p.entry->shape == Shape::attribute || p.entry->shape == Shape::group;
    for (const Item& it : p.items) add_groups(groups, it.path, is_group);
  }
  return groups;
}

// ---------------------------------------------------------------------------------------
// Validation: everything that can be known wrong before a file is created.

// Why `it` does not have its entry's shape for n tasks, or "".
std::string misshapen(const Entry& e, const Item& it, size_t n) {
  uint64_t values = 1;
  for (uint64_t d : it.dims) values *= d;
  const std::string tasks = " for " + std::to_string(n) + " tasks";
  switch (e.shape) {
    case Shape::tasks:
      if (it.dims.at(0) != n) return it.path + " has " + std::to_string(it.dims[0]) + " entries" + tasks;
      break;
    case Shape::pairs:
      if (it.dims != std::vector<uint64_t>{n, n} || it.count() != n * n) {
        return it.path + " is " + std::to_string(it.dims.at(0)) + "x" + std::to_string(it.dims.at(1)) + " (" +
               std::to_string(it.count()) + " values)" + tasks;
      }
      break;
    case Shape::rows3:
      if (values != it.count()) return it.path + " is not a list of (step, loss, accuracy) rows";
      break;
    default:  // the other shapes follow from their members
      break;
  }
  return {};
}

void validate(const Ctx& ctx, const std::vector<Planned>& plan, const RunOutput& out) {
  auto bad = [&](const std::string& what) { ctx.fail("invalid output: " + what); };
  const size_t n = out.task_names.size();
  // The first per-task group written, if any: task names then name groups.
  std::string task_group;
  for (const Planned& p : plan) {
    if (task_group.empty() && has(p.entry->path, "<task>") && !p.items.empty())
      task_group = p.entry->path.substr(0, p.entry->path.find("<task>"));
  }
  std::set<std::string> names;
  for (size_t i = 0; i < n; ++i) {
    const std::string& name = out.task_names[i];
    if (name.empty()) bad("task " + std::to_string(i) + " has an empty name");
    if (!names.insert(name).second) bad("task name '" + name + "' appears twice");
    if (!task_group.empty() && !valid_link_name(name))
      bad("task name '" + name + "' cannot name the group " + task_group + name);
  }

  std::set<std::string> datasets;
  std::set<std::pair<std::string, std::string>> attributes;
  for (const Planned& p : plan) {
    const Entry& e = *p.entry;
    for (const Item& it : p.items) {
      if (const std::string why = misshapen(e, it, n); !why.empty()) bad(why);
      // A key that is a path lies strictly below one of the entry's groups, without empty parts.
      if (has(e.path, "<key>") && !e.under.empty()) {
        bool below = false;
        for (const std::string& root : e.under)
          below = below || (it.path.size() > root.size() + 1 && it.path.compare(0, root.size() + 1, root + "/") == 0);
        if (!below || it.path.back() == '/' || has(it.path, "//"))
          bad("path '" + it.path + "' is not under " + alternatives(e.under));
      }
      if (e.shape == Shape::attribute) {
        if (it.attribute.empty()) bad("an attribute has an empty name");
        if (!attributes.insert({it.path, it.attribute}).second)
          bad("attribute '" + it.attribute + "' is given with two types");
      } else if (e.shape != Shape::group && !datasets.insert(it.path).second) {
        bad("'" + it.path + "' is given with two types");
      }
    }
  }
  const std::set<std::string> groups = groups_of(plan);
  for (const std::string& d : datasets)
    if (groups.count(d)) bad("'" + d + "' is both a group and a dataset");
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
double approx_file_bytes(const std::vector<Planned>& plan) {
  double bytes = 65536, objects = static_cast<double>(groups_of(plan).size());
  for (const Planned& p : plan) {
    for (const Item& it : p.items) {
      size_t width = 1;
      for (const auto& s : it.str) width = std::max(width, s.size());
      bytes += 8.0 * static_cast<double>(it.f64.size() + it.i64.size()) +
               static_cast<double>(width * it.str.size() + it.attribute.size());
      objects += 1;
    }
  }
  return bytes + objects * 4096;
}

hid_t file_type(Type t) { return t == Type::f64 ? H5T_IEEE_F64LE : H5T_STD_I64LE; }
hid_t mem_type(Type t) { return t == Type::f64 ? H5T_NATIVE_DOUBLE : H5T_NATIVE_INT64; }

// Who writes what: an N×N dataset is split into contiguous row blocks over the ranks;
// anything else is written by rank 0 while the others take part with empty selections.
enum class Split { rows, rank0 };

class Writer {
 public:
  Writer(const Comm& c, const Ctx& ctx, const std::vector<Planned>& plan) : c_(c), ctx_(ctx), plan_(plan) {}

  void run(const std::string& tmp) {
    phase(c_, ctx_, [&] { check_directory(); });
    phase(c_, ctx_, [&] { create_file(tmp); });
    phase(c_, ctx_, [&] {
      for (const std::string& g : groups_of(plan_)) create_group(g);
    });
    for (const Planned& p : plan_) {
      const Entry& e = *p.entry;
      if (e.shape == Shape::attribute && !p.items.empty()) {
        // Attribute writes are collective: every rank writes the same values.
        phase(c_, ctx_, [&] {
          for (const Item& it : p.items) attribute(e.type, it);
        });
      } else if (e.shape != Shape::attribute && e.shape != Shape::group) {
        for (const Item& it : p.items) dataset(e, it);
      }
    }
    // The close flushes the metadata: a file is complete only when it succeeds everywhere.
    phase(c_, ctx_, [&] { ctx_.ok(file_.close(), "cannot close (flush) the file"); });
  }

 private:
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
      const double need = approx_file_bytes(plan_);
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

  void create_group(const std::string& name) {
    h5::Group g(ctx_.id(H5Gcreate2(file_.get(), name.c_str(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT),
                        "cannot create group " + name));
    ctx_.ok(g.close(), "cannot close group " + name);
  }

  // A scalar attribute of the object at it.path ("/": the root).
  void attribute(Type type, const Item& it) {
    const std::string what = "attribute '" + it.attribute + "'" + (it.path == "/" ? "" : " of " + it.path);
    h5::Dataspace scalar(ctx_.id(H5Screate(H5S_SCALAR), "cannot create a scalar dataspace"));
    h5::Datatype str;
    hid_t ftype = 0, mtype = 0;
    const void* value = nullptr;
    if (type == Type::str) {
      str = string_type(ctx_, it.str.at(0).size());
      ftype = mtype = str.get();
      value = it.str[0].c_str();  // c_str(): an empty value is written as one null byte
    } else {
      ftype = file_type(type);
      mtype = mem_type(type);
      value = type == Type::f64 ? static_cast<const void*>(it.f64.data()) : it.i64.data();
    }
    h5::Attribute a(ctx_.id(H5Acreate_by_name(file_.get(), it.path.c_str(), it.attribute.c_str(), ftype,
                                              scalar.get(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT),
                            "cannot create " + what));
    ctx_.ok(H5Awrite(a.get(), mtype, value), "cannot write " + what);
    ctx_.ok(a.close(), "cannot close " + what);
  }

  void dataset(const Entry& e, const Item& it) {
    const std::vector<hsize_t> dims(it.dims.begin(), it.dims.end());
    const Split split = e.shape == Shape::pairs ? Split::rows : Split::rank0;
    if (e.type == Type::str) {
      const PackedStrings p = pack(it.str);
      h5::Datatype t;
      phase(c_, ctx_, [&] { t = string_type(ctx_, p.width); });
      create_and_write(it.path, t.get(), t.get(), dims, p.bytes.data(), split);
    } else {
      const void* data = e.type == Type::f64 ? static_cast<const void*>(it.f64.data()) : it.i64.data();
      create_and_write(it.path, file_type(e.type), mem_type(e.type), dims, data, split);
    }
  }

  // Creation and the collective write are separate phases: a rank whose creation failed
  // must not leave the others inside the collective write.
  void create_and_write(const std::string& name, hid_t ftype, hid_t mtype, const std::vector<hsize_t>& dims,
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
  const std::vector<Planned>& plan_;
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

H5T_class_t class_of(Type t) {
  return t == Type::f64 ? H5T_FLOAT : t == Type::i64 ? H5T_INTEGER : H5T_STRING;
}

const char* kind_of(Type t) { return t == Type::f64 ? "a float" : t == Type::i64 ? "an integer" : "a string"; }

// Objects below a group, by full path, with whether each is a dataset.
std::vector<std::pair<std::string, bool>> objects_below(hid_t file, const Ctx& ctx, const std::string& root) {
  std::vector<std::pair<std::string, bool>> found;
  auto visit = [](hid_t, const char* name, const H5O_info_t* info, void* data) -> herr_t {
    if (std::string(name) != ".") {
      static_cast<std::vector<std::pair<std::string, bool>>*>(data)->emplace_back(
          name, info->type == H5O_TYPE_DATASET);
    }
    return 0;
  };
  h5::Group g(ctx.id(H5Gopen2(file, root.c_str(), H5P_DEFAULT), "cannot open " + root));
  ctx.ok(H5Ovisit(g.get(), H5_INDEX_NAME, H5_ITER_NATIVE, visit, &found), "cannot list " + root);
  for (auto& object : found) object.first = root + "/" + object.first;
  return found;
}

// Reads the file entry by entry, checking each dataset's type and shape against the table.
class Reader {
 public:
  Reader(hid_t file, const Ctx& ctx) : f_(file), ctx_(ctx) {}

  RunOutput run() {
    for (const Entry& e : io::schema()) {
      if (e.shape == Shape::attribute) attributes(e);
      else if (has(e.path, "<key>")) keyed(e);
      else if (has(e.path, "<task>")) per_task(e);
      else if (e.shape != Shape::group) fixed(e);
    }
    return std::move(out_);
  }

 private:
  void fixed(const Entry& e) {
    const bool present = exists(f_, e.path);
    if (e.need.kind == Need::required && !present) ctx_.fail("not a taskreach result (no " + e.path + ")");
    if (e.need.kind == Need::optional && !present) return;
    if (e.need.kind == Need::follows && !exists(f_, e.need.leader)) return;
    dataset(e, e.path, 0);
  }

  // All the tasks' groups or none of them.
  void per_task(const Entry& e) {
    const std::vector<std::string>& names = out_.task_names;
    const std::string parent = e.path.substr(0, e.path.find("/<task>"));
    size_t groups = 0;
    for (const auto& name : names) groups += valid_link_name(name) && exists(f_, parent + "/" + name);
    if (groups == 0) return;
    if (groups != names.size()) {
      ctx_.fail(parent + " has groups for " + std::to_string(groups) + " of " + std::to_string(names.size()) +
                " tasks");
    }
    for (size_t i = 0; i < names.size(); ++i) {
      const std::string path = for_task(e.path, names[i]);
      if (e.need.kind == Need::optional && !exists(f_, path)) continue;
      if (e.need.kind == Need::follows && !exists(f_, for_task(e.need.leader, names[i]))) continue;
      dataset(e, path, i);
    }
  }

  // Every dataset of the entry's type below its groups.
  void keyed(const Entry& e) {
    for (const std::string& root : e.under) {
      if (!exists(f_, root)) continue;
      for (const auto& [path, is_dataset] : objects_below(f_, ctx_, root)) {
        if (!is_dataset) continue;
        h5::Dataset d(ctx_.id(H5Dopen2(f_, path.c_str(), H5P_DEFAULT), "cannot open " + path));
        h5::Datatype t(ctx_.id(H5Dget_type(d.get()), "cannot read the type of " + path));
        if (H5Tget_class(t.get()) == class_of(e.type)) dataset(e, path, 0);
      }
    }
  }

  // The scalar attributes of the entry's type: of the root ("/@<key>"), or of the groups
  // below the entry's groups, these included ("<key>@<name>").
  void attributes(const Entry& e) {
    std::vector<std::string> objects;
    if (e.under.empty()) objects.push_back(e.path.substr(0, e.path.find('@')));
    for (const std::string& root : e.under) {
      if (!exists(f_, root)) continue;
      objects.push_back(root);
      for (const auto& [path, is_dataset] : objects_below(f_, ctx_, root))
        if (!is_dataset) objects.push_back(path);
    }
    for (const std::string& object : objects) {
      h5::Group g(ctx_.id(H5Gopen2(f_, object.c_str(), H5P_DEFAULT), "cannot open " + object));
      for (const std::string& name : attribute_names(g.get(), object)) {
        Item it;
        if (attribute(g.get(), name, object, e.type, it)) e.put(out_, it);
      }
    }
  }

  std::vector<std::string> attribute_names(hid_t object, const std::string& path) {
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
    ctx_.ok(H5Aiterate2(object, H5_INDEX_NAME, H5_ITER_INC, &idx, collect, &names),
            path == "/" ? std::string("cannot list the root attributes") : "cannot list the attributes of " + path);
    return names;
  }

  // Reads attribute `name` into `it` if it is a scalar of `type`; others are not part of the
  // contract and are skipped.
  bool attribute(hid_t object, const std::string& name, const std::string& path, Type type, Item& it) {
    const std::string what = "attribute '" + name + "'" + (path == "/" ? "" : " of " + path);
    h5::Attribute a(ctx_.id(H5Aopen(object, name.c_str(), H5P_DEFAULT), "cannot open " + what));
    h5::Datatype t(ctx_.id(H5Aget_type(a.get()), "cannot get the type of " + what));
    h5::Dataspace space(ctx_.id(H5Aget_space(a.get()), "cannot get the dataspace of " + what));
    if (H5Sget_simple_extent_npoints(space.get()) != 1 || H5Tget_class(t.get()) != class_of(type)) return false;
    it.path = path;
    it.attribute = name;
    if (type == Type::f64) {
      it.f64.resize(1);
      ctx_.ok(H5Aread(a.get(), H5T_NATIVE_DOUBLE, it.f64.data()), "cannot read " + what);
    } else if (type == Type::i64) {
      it.i64.resize(1);
      ctx_.ok(H5Aread(a.get(), H5T_NATIVE_INT64, it.i64.data()), "cannot read " + what);
    } else if (H5Tis_variable_str(t.get()) > 0) {
      h5::Datatype mt(ctx_.id(H5Tcopy(H5T_C_S1), "cannot create a string type"));
      ctx_.ok(H5Tset_size(mt.get(), H5T_VARIABLE), "cannot create a string type");
      char* p = nullptr;
      ctx_.ok(H5Aread(a.get(), mt.get(), &p), "cannot read " + what);
      it.str = {p ? p : ""};
      H5Dvlen_reclaim(mt.get(), space.get(), H5P_DEFAULT, &p);
    } else {
      const size_t width = H5Tget_size(t.get());
      if (width == 0) ctx_.fail_hdf5("cannot get the string width of " + what);
      std::vector<char> bytes(width);
      ctx_.ok(H5Aread(a.get(), t.get(), bytes.data()), "cannot read " + what);
      it.str = {decode(bytes.data(), width, H5Tget_strpad(t.get()))};
    }
    return true;
  }

  // Reads the dataset at `path`, checks it against the entry and stores it in the output.
  void dataset(const Entry& e, const std::string& path, size_t task) {
    if (!exists(f_, path)) ctx_.fail("missing " + path);
    h5::Dataset ds(ctx_.id(H5Dopen2(f_, path.c_str(), H5P_DEFAULT), "cannot open " + path));
    h5::Datatype type(ctx_.id(H5Dget_type(ds.get()), "cannot get the type of " + path));
    if (H5Tget_class(type.get()) != class_of(e.type)) ctx_.fail(path + " is not " + kind_of(e.type) + " dataset");
    h5::Dataspace space(ctx_.id(H5Dget_space(ds.get()), "cannot get the dataspace of " + path));
    const int ndims = H5Sget_simple_extent_ndims(space.get());
    if (ndims < 0) ctx_.fail_hdf5("cannot get the shape of " + path);
    std::vector<hsize_t> dims(static_cast<size_t>(ndims));
    ctx_.ok(H5Sget_simple_extent_dims(space.get(), dims.data(), nullptr), "cannot get the shape of " + path);
    const hssize_t npoints = H5Sget_simple_extent_npoints(space.get());
    if (npoints < 0) ctx_.fail_hdf5("cannot get the size of " + path);
    const auto n = static_cast<size_t>(npoints);

    Item it;
    it.path = path;
    it.task = task;
    it.dims.assign(dims.begin(), dims.end());
    check_shape(e, it, n);
    if (e.type == Type::str) {
      it.str = strings(ds.get(), type.get(), space.get(), n, path);
    } else if (e.type == Type::f64) {
      it.f64.resize(n);
      if (n > 0) read(ds.get(), H5T_NATIVE_DOUBLE, it.f64.data(), path);
    } else {
      it.i64.resize(n);
      if (n > 0) read(ds.get(), H5T_NATIVE_INT64, it.i64.data(), path);
    }
    e.put(out_, it);
  }

  void read(hid_t ds, hid_t mtype, void* buf, const std::string& path) {
    ctx_.ok(H5Dread(ds, mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf), "cannot read " + path);
  }

  // The first [N] dataset (/tasks/name) sets N, the first [J] one sets J.
  void check_shape(const Entry& e, const Item& it, size_t values) {
    auto wrong = [&](const std::string& expected) {
      ctx_.fail(it.path + " has shape " + shape_text(it.dims) + ", expected " + expected);
    };
    std::vector<uint64_t> want;
    switch (e.shape) {
      case Shape::scalar:
        if (values != 1) wrong("a scalar");
        return;
      case Shape::list:
        if (it.dims.size() != 1) wrong("1-D");
        return;
      case Shape::rows3:
        if (it.dims.size() != 2 || it.dims[1] != 3) wrong("[k,3]");
        return;
      case Shape::tasks:
      case Shape::jobs: {
        std::optional<uint64_t>& length = e.shape == Shape::tasks ? tasks_ : jobs_;
        if (it.dims.size() != 1) wrong("1-D");
        if (!length) length = it.dims[0];
        want = {*length};
        break;
      }
      case Shape::pairs:
        want = {tasks_.value_or(0), tasks_.value_or(0)};
        break;
      case Shape::attribute:
      case Shape::group:
        return;
    }
    if (it.dims != want) wrong(shape_text(want));
  }

  // A string dataset, fixed-length (what write_output writes) or variable-length (h5py's
  // default, should anyone edit a file by hand).
  std::vector<std::string> strings(hid_t ds, hid_t type, hid_t space, size_t n, const std::string& path) {
    std::vector<std::string> out(n);
    if (n == 0) return out;
    if (H5Tis_variable_str(type) > 0) {
      h5::Datatype mt(ctx_.id(H5Tcopy(H5T_C_S1), "cannot create a string type"));
      ctx_.ok(H5Tset_size(mt.get(), H5T_VARIABLE), "cannot create a string type");
      std::vector<char*> p(n, nullptr);
      read(ds, mt.get(), p.data(), path);
      for (size_t i = 0; i < n; ++i) out[i] = p[i] ? p[i] : "";
      H5Dvlen_reclaim(mt.get(), space, H5P_DEFAULT, p.data());
    } else {
      const size_t width = H5Tget_size(type);
      if (width == 0) ctx_.fail_hdf5("cannot get the string width of " + path);
      const H5T_str_t pad = H5Tget_strpad(type);
      std::vector<char> bytes(n * width);
      read(ds, type, bytes.data(), path);
      for (size_t i = 0; i < n; ++i) out[i] = decode(&bytes[i * width], width, pad);
    }
    return out;
  }

  hid_t f_;
  const Ctx& ctx_;
  RunOutput out_;
  std::optional<uint64_t> tasks_, jobs_;
};

}  // namespace

// ---------------------------------------------------------------------------------------

void write_output(MPI_Comm comm, const std::string& path, const RunOutput& out) {
  h5::QuietErrors quiet;
  const Comm c(comm);
  const Ctx ctx{path};
  std::vector<Planned> layout;
  phase(c, ctx, [&] {
    layout = plan(out);
    validate(ctx, layout, out);
  });
  const std::string tmp =
      broadcast(c, c.rank == 0 ? path + ".tmp-" + std::to_string(::getpid()) : std::string(), 0);
  try {
    Writer(c, ctx, layout).run(tmp);
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
  RunOutput out = Reader(file.get(), ctx).run();
  ctx.ok(file.close(), "cannot close file");
  return out;
}

}  // namespace taskreach
