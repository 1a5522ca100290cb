// The table of schema.hpp, and how each kind of RunOutput member becomes items and back.
#include "schema.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <set>
#include <stdexcept>
#include <type_traits>
#include <utility>

namespace taskreach::io {
namespace {

using f64 = double;
using i64 = int64_t;
using str = std::string;
using Strings = std::vector<std::string>;

template <typename T>
constexpr Type type_of() {
  if constexpr (std::is_same_v<T, double>) return Type::f64;
  else if constexpr (std::is_same_v<T, int64_t>) return Type::i64;
  else {
    static_assert(std::is_same_v<T, std::string>, "an output holds float64, int64 or strings");
    return Type::str;
  }
}

// The vector of an item that holds values of type T (const for a const item).
template <typename T, typename I>
auto& values(I& it) {
  if constexpr (type_of<T>() == Type::f64) return it.f64;
  else if constexpr (type_of<T>() == Type::i64) return it.i64;
  else return it.str;
}

template <typename T>
Item item(std::string path, std::vector<uint64_t> dims, std::vector<T> v) {
  Item it;
  it.path = std::move(path);
  it.dims = std::move(dims);
  values<T>(it) = std::move(v);
  return it;
}

// A table row that cannot work is a programming error, reported on first use of the table.
void expect(bool ok, const std::string& path, const char* what) {
  if (!ok) throw std::logic_error("io schema: " + path + ": " + what);
}

std::string replace(std::string s, const std::string& placeholder, const std::string& by) {
  return s.replace(s.find(placeholder), placeholder.size(), by);
}

template <typename T>
Entry row(const std::string& path, Shape shape, Need need, Strings under = {}) {
  return Entry{path, type_of<T>(), shape, std::move(need), std::move(under), {}, {}};
}

Need follows(std::string leader) { return {Need::follows, std::move(leader)}; }

// ---------------------------------------------------------------------------------------
// One overload of `field` per kind of member.

// An [N] vector of the output.
template <typename T>
Entry field(const std::string& path, Shape shape, Need need, std::vector<T> RunOutput::*m) {
  expect(shape == Shape::tasks, path, "a vector of the output is one value per task");
  Entry e = row<T>(path, shape, std::move(need));
  e.get = [path, m](const RunOutput& out) {
    return std::vector<Item>{item(path, {(out.*m).size()}, out.*m)};
  };
  e.put = [m](RunOutput& out, const Item& it) { out.*m = values<T>(it); };
  return e;
}

// An [N,N] matrix.
template <typename T>
Entry field(const std::string& path, Shape shape, Need need, Matrix<T> RunOutput::*m) {
  expect(shape == Shape::pairs, path, "a matrix is [N,N]");
  Entry e = row<T>(path, shape, std::move(need));
  e.get = [path, m](const RunOutput& out) {
    const Matrix<T>& x = out.*m;
    return std::vector<Item>{
        item(path, {static_cast<uint64_t>(x.rows), static_cast<uint64_t>(x.cols)}, x.data)};
  };
  e.put = [m](RunOutput& out, const Item& it) {
    Matrix<T>& x = out.*m;
    x.rows = static_cast<int64_t>(it.dims.at(0));
    x.cols = static_cast<int64_t>(it.dims.at(1));
    x.data = values<T>(it);
  };
  return e;
}

// One field of every job record, as one [J] dataset.
template <typename T>
Entry field(const std::string& path, Shape shape, Need need, std::vector<JobRecord> RunOutput::*records,
            T JobRecord::*m) {
  expect(shape == Shape::jobs, path, "a job record's field is one value per job");
  Entry e = row<T>(path, shape, std::move(need));
  e.get = [path, records, m](const RunOutput& out) {
    std::vector<T> v;
    for (const JobRecord& r : out.*records) v.push_back(r.*m);
    const uint64_t n = v.size();
    return std::vector<Item>{item(path, {n}, std::move(v))};
  };
  e.put = [records, m](RunOutput& out, const Item& it) {
    const std::vector<T>& v = values<T>(it);
    std::vector<JobRecord>& r = out.*records;
    if (r.size() < v.size()) r.resize(v.size());
    for (size_t i = 0; i < v.size(); ++i) r[i].*m = v[i];
  };
  return e;
}

// The named figures of every job record (a map per record) as [J] datasets at
// path = prefix + name, one per name any record holds: NaN where a record has none.
Entry field(const std::string& path, Shape shape, Need need, std::vector<JobRecord> RunOutput::*records,
            std::map<std::string, double> JobRecord::*m, Strings under) {
  const size_t at = path.find("<key>");
  expect(at != std::string::npos && shape == Shape::jobs && !under.empty(), path,
         "the jobs' named figures are [J] datasets at <key> below a group");
  const std::string prefix = path.substr(0, at);
  Entry e = row<f64>(path, shape, std::move(need), std::move(under));
  e.get = [prefix, records, m](const RunOutput& out) {
    const std::vector<JobRecord>& r = out.*records;
    std::set<std::string> names;
    for (const JobRecord& job : r)
      for (const auto& kv : job.*m) names.insert(kv.first);
    std::vector<Item> items;
    for (const std::string& name : names) {
      std::vector<double> v(r.size(), std::numeric_limits<double>::quiet_NaN());
      for (size_t i = 0; i < r.size(); ++i)
        if (auto f = (r[i].*m).find(name); f != (r[i].*m).end()) v[i] = f->second;
      items.push_back(item(prefix + name, {r.size()}, std::move(v)));
    }
    return items;
  };
  e.put = [prefix, records, m](RunOutput& out, const Item& it) {
    const std::vector<double>& v = it.f64;
    std::vector<JobRecord>& r = out.*records;
    if (r.size() < v.size()) r.resize(v.size());
    const std::string name = it.path.substr(prefix.size());
    for (size_t i = 0; i < v.size(); ++i)
      if (!std::isnan(v[i])) (r[i].*m)[name] = v[i];
  };
  return e;
}

// One dataset per task (its path holds <task>) from a field of the per-task records, written
// when there is one record per task.
template <typename T, typename Rec, typename Field>
Entry per_task(const std::string& path, Shape shape, Need need, std::vector<Rec> RunOutput::*records,
               Field Rec::*m) {
  expect(path.find("<task>") != std::string::npos, path, "a per-task record's field needs <task>");
  Entry e = row<T>(path, shape, std::move(need));
  e.get = [path, shape, records, m](const RunOutput& out) {
    std::vector<Item> items;
    const std::vector<Rec>& r = out.*records;
    if (r.empty() || r.size() != out.task_names.size()) return items;
    for (size_t i = 0; i < r.size(); ++i) {
      const std::string p = replace(path, "<task>", out.task_names[i]);
      if constexpr (std::is_same_v<Field, T>) {
        items.push_back(item(p, {}, std::vector<T>{r[i].*m}));
      } else {
        const std::vector<T>& v = r[i].*m;
        items.push_back(item(p, shape == Shape::rows3 ? std::vector<uint64_t>{v.size() / 3, 3}
                                                      : std::vector<uint64_t>{v.size()},
                             v));
      }
      items.back().task = i;
    }
    return items;
  };
  e.put = [records, m](RunOutput& out, const Item& it) {
    std::vector<Rec>& r = out.*records;
    if (r.size() < out.task_names.size()) r.resize(out.task_names.size());
    if constexpr (std::is_same_v<Field, T>) r.at(it.task).*m = values<T>(it).at(0);
    else r.at(it.task).*m = values<T>(it);
  };
  return e;
}

template <typename T, typename Rec>
Entry field(const std::string& path, Shape shape, Need need, std::vector<Rec> RunOutput::*records,
            std::vector<T> Rec::*m) {
  expect(shape == Shape::list || shape == Shape::rows3, path, "a per-task vector is [k] or [k,3]");
  return per_task<T>(path, shape, std::move(need), records, m);
}

template <typename T, typename Rec>
Entry field(const std::string& path, Shape shape, Need need, std::vector<Rec> RunOutput::*records,
            T Rec::*m) {
  expect(shape == Shape::scalar, path, "a per-task value is a scalar");
  return per_task<T>(path, shape, std::move(need), records, m);
}

// A map of single values: scalar datasets at path = prefix + key ("/analysis/<key>"), or
// attributes of one object, named by the key ("/@<key>").
template <typename T>
Entry field(const std::string& path, Shape shape, Need need, std::map<std::string, T> RunOutput::*m,
            Strings under = {}) {
  const size_t at = path.find("<key>");
  expect(at != std::string::npos, path, "a map's entry needs <key>");
  const bool attribute = shape == Shape::attribute;
  expect(shape == Shape::scalar || (attribute && at > 0 && path[at - 1] == '@'), path,
         "a map of values is scalar datasets at <key> or the attributes <key> of one object");
  const std::string prefix = path.substr(0, attribute ? at - 1 : at);
  Entry e = row<T>(path, shape, std::move(need), std::move(under));
  e.get = [prefix, attribute, m](const RunOutput& out) {
    std::vector<Item> items;
    for (const auto& [key, value] : out.*m) {
      items.push_back(item(attribute ? prefix : prefix + key, {}, std::vector<T>{value}));
      if (attribute) items.back().attribute = key;
    }
    return items;
  };
  e.put = [prefix, attribute, m](RunOutput& out, const Item& it) {
    (out.*m)[attribute ? it.attribute : it.path.substr(prefix.size())] = values<T>(it).at(0);
  };
  return e;
}

// A map of 1-D datasets, at path = prefix + key.
template <typename T>
Entry field(const std::string& path, Shape shape, Need need,
            std::map<std::string, std::vector<T>> RunOutput::*m, Strings under) {
  const size_t at = path.find("<key>");
  expect(at != std::string::npos && shape == Shape::list, path, "a map of vectors is [k] datasets at <key>");
  const std::string prefix = path.substr(0, at);
  Entry e = row<T>(path, shape, std::move(need), std::move(under));
  e.get = [prefix, m](const RunOutput& out) {
    std::vector<Item> items;
    for (const auto& [key, v] : out.*m) items.push_back(item(prefix + key, {v.size()}, v));
    return items;
  };
  e.put = [prefix, m](RunOutput& out, const Item& it) {
    (out.*m)[it.path.substr(prefix.size())] = values<T>(it);
  };
  return e;
}

// String attributes of groups named by the keys ("<key>@<name>").
Entry field(const std::string& path, Shape shape, Need need,
            std::map<std::string, std::map<std::string, std::string>> RunOutput::*m, Strings under) {
  expect(path == "<key>@<name>" && shape == Shape::attribute, path, "group attributes are <key>@<name>");
  Entry e = row<str>(path, shape, std::move(need), std::move(under));
  e.get = [m](const RunOutput& out) {
    std::vector<Item> items;
    for (const auto& [group, attrs] : out.*m) {
      for (const auto& [name, value] : attrs) {
        items.push_back(item(group, {}, Strings{value}));
        items.back().attribute = name;
      }
    }
    return items;
  };
  e.put = [m](RunOutput& out, const Item& it) { (out.*m)[it.path][it.attribute] = it.str.at(0); };
  return e;
}

Entry group(const std::string& path) {
  Entry e = row<str>(path, Shape::group, Need{Need::required, {}});
  e.get = [path](const RunOutput&) { return std::vector<Item>{item(path, {}, Strings{})}; };
  e.put = [](RunOutput&, const Item&) {};
  return e;
}

std::vector<Entry> make_schema() {
  using R = RunOutput;
  using S = SpectrumRecord;
  using T = TrainingRecord;
  using J = JobRecord;
  constexpr Shape scalar = Shape::scalar, tasks = Shape::tasks, pairs = Shape::pairs, jobs = Shape::jobs,
                  list = Shape::list, rows3 = Shape::rows3, attribute = Shape::attribute;
  const Need required{Need::required, {}}, optional{Need::optional, {}};
  // The learning-dynamics experiments' groups: the keys of their maps are full paths below.
  const Strings experiments = {"/convergence", "/potential", "/critical_period"};
  return {
      //         path                                     shape      need       member
      field<str>("/@<key>",                               attribute, optional,  &R::attrs_str),
      field<f64>("/@<key>",                               attribute, optional,  &R::attrs_f64),
      field<i64>("/@<key>",                               attribute, optional,  &R::attrs_i64),

      field<str>("/tasks/name",                           tasks,     required,  &R::task_names),
      field<i64>("/tasks/num_samples",                    tasks,     required,  &R::num_samples),
      field<i64>("/tasks/num_classes",                    tasks,     required,  &R::num_classes),

      field<f64>("/complexity/C",                         tasks,     required,  &R::C),
      field<f64>("/complexity/loss",                      tasks,     required,  &R::loss),
      field<f64>("/complexity/weight_norm2",              tasks,     required,  &R::weight_norm2),
      field<f64>("/complexity/logdet",                    tasks,     required,  &R::logdet),
      field<f64>("/complexity/logdet_stderr",             tasks,     required,  &R::logdet_stderr),
      field<f64>("/complexity/grad_norm",                 tasks,     required,  &R::grad_norm),
      field<str>("/complexity/status",                    tasks,     optional,  &R::task_status),
      field<f64>("/complexity/C_stderr",                  tasks,     optional,  &R::C_stderr),
      field<f64>("/complexity/C_laplace",                 tasks,     optional,  &R::C_laplace),
      field<f64>("/complexity/C_laplace_stderr",          tasks,     optional,  &R::C_laplace_stderr),
      field<f64>("/complexity/C_paper",                   tasks,     optional,  &R::C_paper),
      field<f64>("/complexity/C_paper_stderr",            tasks,     optional,  &R::C_paper_stderr),
      field<f64>("/complexity/trace",                     tasks,     optional,  &R::trace),
      field<f64>("/complexity/trace_stderr",              tasks,     optional,  &R::trace_stderr),

      field<f64>("/unions/C",                             pairs,     required,  &R::unions_C),
      field<i64>("/unions/conflicts",                     pairs,     required,  &R::unions_conflicts),
      field<f64>("/reachability/R",                       pairs,     required,  &R::R),
      field<f64>("/reachability/R_per_sample",            pairs,     required,  &R::R_per_sample),
      field<f64>("/reachability/stderr",                  pairs,     required,  &R::stderr_total),
      field<f64>("/reachability/stderr_probe",            pairs,     required,  &R::stderr_probe),
      field<f64>("/reachability/stderr_seed",             pairs,     required,  &R::stderr_seed),
      field<f64>("/reachability/stderr_probe_unpaired",   pairs,     optional,  &R::stderr_probe_unpaired),
      field<f64>("/reachability/dof",                     pairs,     optional,  &R::dof),
      field<f64>("/reachability/critical",                pairs,     optional,  &R::critical),
      field<i64>("/reachability/flags",                   pairs,     optional,  &R::flags),

      field<i64>("/finetune/steps",                       pairs,     follows("/finetune/threshold"), &R::finetune_steps),
      field<i64>("/finetune/samples",                     pairs,     follows("/finetune/threshold"), &R::finetune_samples),
      field<f64>("/finetune/threshold",                   tasks,     optional,  &R::finetune_threshold),
      field<f64>("/finetune/threshold_spread",            tasks,     optional,  &R::finetune_threshold_spread),
      field<i64>("/finetune/unstable",                    tasks,     optional,  &R::finetune_unstable),

      field<f64>("/analysis/<key>",                       scalar,    optional,  &R::analysis, {"/analysis"}),
      field<i64>("/analysis/<key>",                       scalar,    optional,  &R::analysis_i64, {"/analysis"}),

      field<f64>("/training/<task>/curve",                rows3,     required,  &R::training, &T::curve),
      field<i64>("/training/<task>/convergence_step",     scalar,    required,  &R::training, &T::convergence_step),
      field<f64>("/training/<task>/test_accuracy",        scalar,    required,  &R::training, &T::test_accuracy),

      group("/spectra"),
      field<f64>("/spectra/<task>/eigenvalues",           list,      required,  &R::spectra, &S::eigenvalues),
      field<f64>("/spectra/<task>/residuals",             list,      required,  &R::spectra, &S::residuals),
      field<i64>("/spectra/<task>/hvp_count",             scalar,    required,  &R::spectra, &S::hvp_count),
      field<f64>("/spectra/<task>/esd_nodes",             list,      optional,  &R::spectra, &S::esd_nodes),
      field<f64>("/spectra/<task>/esd_weights",           list,      follows("/spectra/<task>/esd_nodes"),
                 &R::spectra, &S::esd_weights),
      field<f64>("/spectra/<task>/seconds",               scalar,    required,  &R::spectra, &S::seconds),

      field<f64>("<key>",                                 list,      optional,  &R::extra, experiments),
      field<str>("<key>",                                 list,      optional,  &R::extra_strings, experiments),
      field     ("<key>@<name>",                          attribute, optional,  &R::extra_attrs, experiments),

      field<str>("/jobs/name",                            jobs,      required,  &R::jobs, &J::name),
      field<str>("/jobs/status",                          jobs,      required,  &R::jobs, &J::status),
      field<str>("/jobs/record",                          jobs,      required,  &R::jobs, &J::record),
      field<f64>("/jobs/seconds",                         jobs,      required,  &R::jobs, &J::seconds),
      field     ("/jobs/metrics/<key>",                   jobs,      optional,  &R::jobs, &J::metrics, {"/jobs/metrics"}),
  };
}

}  // namespace

const std::vector<Entry>& schema() {
  static const std::vector<Entry> table = make_schema();
  return table;
}

std::vector<Item> contents(const Entry& entry, const RunOutput& out) {
  std::vector<Item> items = entry.get(out);
  switch (entry.need.kind) {
    case Need::required:
      break;
    case Need::optional:
      // A key of a map is there even with no values; a member without values is not.
      if (entry.path.find("<key>") == std::string::npos) {
        items.erase(std::remove_if(items.begin(), items.end(), [](const Item& it) { return it.count() == 0; }),
                    items.end());
      }
      break;
    case Need::follows: {
      auto leader = std::find_if(schema().begin(), schema().end(),
                                 [&](const Entry& e) { return e.path == entry.need.leader; });
      expect(leader != schema().end(), entry.path, "follows an entry that is not in the table");
      std::vector<bool> led(out.task_names.size() + 1, false);
      for (const Item& it : contents(*leader, out)) led.at(it.task) = true;
      items.erase(std::remove_if(items.begin(), items.end(), [&](const Item& it) { return !led.at(it.task); }),
                  items.end());
      break;
    }
  }
  return items;
}

const char* type_name(Type type) {
  switch (type) {
    case Type::f64: return "float64";
    case Type::i64: return "int64";
    case Type::str: return "string";
  }
  return "?";
}

const char* shape_name(Shape shape) {
  switch (shape) {
    case Shape::scalar: return "scalar";
    case Shape::tasks: return "[N]";
    case Shape::pairs: return "[N,N]";
    case Shape::jobs: return "[J]";
    case Shape::list: return "[k]";
    case Shape::rows3: return "[k,3]";
    case Shape::attribute: return "attribute";
    case Shape::group: return "group";
  }
  return "?";
}

}  // namespace taskreach::io
