// Job file parsing: strict (unknown keys are errors), every message one line naming the
// file and the field.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <set>
#include <sstream>
#include <string_view>

#include <toml++/toml.h>

#include "taskreach/config.hpp"
#include "taskreach/formulas.hpp"

namespace taskreach {
namespace {

class Reader {
 public:
  explicit Reader(std::string file) : file_(std::move(file)) {}

  [[noreturn]] void fail(const std::string& field, const std::string& what) const {
    throw InputError(file_ + ": " + field + ": " + what);
  }

  // Rejects keys of `table` not in `allowed`.
  void only(const toml::table& table, const std::string& where,
            std::initializer_list<const char*> allowed) const {
    std::set<std::string> ok(allowed.begin(), allowed.end());
    for (const auto& [key, node] : table) {
      std::string k(key.str());
      if (!ok.count(k)) {
        std::string list;
        for (const auto& a : ok) list += (list.empty() ? "" : ", ") + a;
        fail(join(where, k), "unknown key; expected one of: " + list);
      }
    }
  }

  static std::string join(const std::string& where, const std::string& key) {
    return where.empty() ? key : where + "." + key;
  }

  template <typename T>
  void get(const toml::table& t, const std::string& where, const char* key, T& out) const {
    const toml::node* n = t.get(key);
    if (!n) return;
    // The node's type is checked before value<T>() converts it: toml++ 3.3 converts a float
    // to an integer with a cast that is undefined behaviour when the float is out of range.
    if constexpr (std::is_same_v<T, std::string>) {
      if (!n->is_string()) fail(join(where, key), "expected a string");
      out = *n->value<std::string>();
    } else if constexpr (std::is_same_v<T, double>) {
      if (!(n->is_floating_point() || n->is_integer())) fail(join(where, key), "expected a number");
      out = *n->value<double>();
      // TOML has nan and inf; no setting takes them (a NaN would pass every range check).
      if (!std::isfinite(out)) fail(join(where, key), "expected a finite number, got " + num(out));
    } else if constexpr (std::is_same_v<T, bool>) {
      if (!n->is_boolean()) fail(join(where, key), "expected true or false");
      out = *n->value<bool>();
    } else if constexpr (std::is_same_v<T, uint64_t>) {
      if (!n->is_integer() || *n->value<int64_t>() < 0) fail(join(where, key), "expected a non-negative integer");
      out = static_cast<uint64_t>(*n->value<int64_t>());
    } else {
      if (!n->is_integer()) fail(join(where, key), "expected an integer");
      out = *n->value<int64_t>();
    }
  }

  // One of an enum's names (kNames<E>); `what` names the setting in the error.
  template <typename E>
  void choice(const toml::table& t, const std::string& where, const char* key, E& out, const std::string& what,
              bool required = false) const {
    std::string list;
    for (const char* name : kNames<E>) list += (list.empty() ? "" : ", ") + std::string(name);
    if (!t.get(key)) {
      if (required) fail(join(where, key), "missing; expected one of: " + list);
      return;
    }
    std::string v;
    get(t, where, key, v);
    for (size_t i = 0; i < kNames<E>.size(); ++i)
      if (v == kNames<E>[i]) {
        out = static_cast<E>(i);
        return;
      }
    fail(join(where, key), "unknown " + what + " '" + v + "', expected one of: " + list);
  }

  std::vector<int64_t> ints(const toml::table& t, const std::string& where, const char* key) const {
    std::vector<int64_t> out;
    const toml::node* n = t.get(key);
    if (!n) return out;
    const toml::array* a = n->as_array();
    if (!a) fail(join(where, key), "expected an array of integers");
    for (const auto& e : *a) {
      if (!e.is_integer()) fail(join(where, key), "expected an array of integers");
      out.push_back(*e.value<int64_t>());
    }
    return out;
  }

  const toml::table* table(const toml::table& t, const std::string& where, const char* key) const {
    const toml::node* n = t.get(key);
    if (!n) return nullptr;
    if (!n->is_table()) fail(join(where, key), "expected a table");
    return n->as_table();
  }

  void positive(const std::string& field, double v) const {
    if (!(v > 0)) fail(field, "expected a positive value, got " + num(v));
  }
  void at_least(const std::string& field, int64_t v, int64_t lo) const {
    if (v < lo) fail(field, "expected an integer >= " + std::to_string(lo) + ", got " + std::to_string(v));
  }
  // [C, H, W]: three dimensions >= 1 whose product (the values of one sample) is at most
  // 2^31, so that sizes computed from it cannot overflow.
  void shape3(const std::string& field, const std::vector<int64_t>& shape) const {
    if (shape.size() != 3) fail(field, "expected [C, H, W], three integers");
    for (int64_t d : shape) at_least(field, d, 1);
    constexpr int64_t kMax = int64_t{1} << 31;
    if (shape[0] > kMax || shape[1] > kMax || shape[2] > kMax || shape[0] * shape[1] > kMax ||
        shape[0] * shape[1] * shape[2] > kMax)
      fail(field, "expected at most 2^31 values per sample, got " + std::to_string(shape[0]) + "x" +
                      std::to_string(shape[1]) + "x" + std::to_string(shape[2]));
  }
  static std::string num(double v) {
    std::ostringstream s;
    s << v;
    return s.str();
  }

  const std::string& file() const { return file_; }

 private:
  std::string file_;
};

Transform parse_transform(const Reader& r, const toml::table& t, const std::string& where) {
  r.only(t, where, {"type", "classes", "map", "sigma", "n", "fraction", "count", "seed"});
  TransformKind kind = TransformKind::class_subset;
  r.choice(t, where, "type", kind, "transform", true);
  // A key that belongs to another transform type is a mistake worth catching.
  using K = TransformKind;
  auto stray = [&](const char* key, bool allowed) {
    if (t.get(key) && !allowed) r.fail(where + "." + key, "not a parameter of transform '" + std::string(to_string(kind)) + "'");
  };
  auto required = [&](const char* key, const char* expected) {
    if (!t.get(key)) r.fail(where + "." + key, std::string("missing; expected ") + expected);
  };
  auto sigma = [&](const char* expected) {
    required("sigma", expected);
    double v = 0.0;
    r.get(t, where, "sigma", v);
    r.positive(where + ".sigma", v);
    return v;
  };
  Transform out;
  switch (kind) {
    case K::class_subset: {
      transform::ClassSubset c{r.ints(t, where, "classes")};
      if (c.classes.empty()) r.fail(where + ".classes", "expected a non-empty array of class labels");
      out = std::move(c);
      break;
    }
    case K::label_remap: {
      transform::LabelRemap m{r.ints(t, where, "map")};
      if (m.map.empty()) r.fail(where + ".map", "expected a non-empty array: map[c] is the new label of class c");
      for (int64_t v : m.map) r.at_least(where + ".map", v, 0);
      out = std::move(m);
      break;
    }
    case K::random_labels: {
      transform::RandomLabels rl;
      const bool has_fraction = t.get("fraction") != nullptr, has_count = t.get("count") != nullptr;
      if (has_fraction == has_count)
        r.fail(where + (has_count ? ".count" : ".fraction"), "expected exactly one of fraction or count");
      if (has_fraction) {
        r.get(t, where, "fraction", rl.fraction);
        if (!(rl.fraction >= 0.0 && rl.fraction <= 1.0))
          r.fail(where + ".fraction", "expected a value in [0, 1], got " + Reader::num(rl.fraction));
      } else {
        r.get(t, where, "count", rl.count);
        r.at_least(where + ".count", rl.count, 0);
      }
      r.get(t, where, "seed", rl.seed);
      out = rl;
      break;
    }
    case K::invert:
      out = transform::Invert{};
      break;
    case K::blur:
      out = transform::Blur{sigma("the blur width in pixels")};
      break;
    case K::noise: {
      transform::Noise n{sigma("the noise std (pixel values are in [0, 1])"), 0};
      r.get(t, where, "seed", n.seed);
      out = n;
      break;
    }
    case K::subsample: {
      transform::Subsample sub;
      required("n", "the number of samples to keep");
      r.get(t, where, "n", sub.n);
      r.at_least(where + ".n", sub.n, 1);
      out = sub;
      break;
    }
  }
  stray("classes", kind == K::class_subset);
  stray("map", kind == K::label_remap);
  stray("sigma", kind == K::blur || kind == K::noise);
  stray("n", kind == K::subsample);
  stray("fraction", kind == K::random_labels);
  stray("count", kind == K::random_labels);
  stray("seed", kind == K::random_labels || kind == K::noise);
  return out;
}

// A path or an array of paths, each with ${VAR} expanded.
std::vector<std::string> paths(const Reader& r, const toml::table& t, const std::string& where, const char* key,
                               const std::string& file) {
  std::vector<std::string> out;
  const toml::node* n = t.get(key);
  if (!n) return out;
  const std::string field = where + "." + key;
  if (n->is_string()) {
    out.push_back(*n->value<std::string>());
  } else if (const toml::array* a = n->as_array()) {
    for (const auto& e : *a) {
      if (!e.is_string()) r.fail(field, "expected a path or an array of paths");
      out.push_back(*e.value<std::string>());
    }
  } else {
    r.fail(field, "expected a path or an array of paths");
  }
  for (auto& p : out) p = expand_env(p, file + ": " + field);
  return out;
}

// Everything of a [[sources]] table but its name: the format, its files (which must open)
// and the format's own keys; a key of another format is an error.
void parse_source(const Reader& r, const toml::table& t, const std::string& where, SourceConfig& s) {
  r.only(t, where, {"name", "format", "train_images", "train_labels", "test_images", "test_labels",
                    "train_files", "test_files", "label", "label_column", "label_format", "skip_rows",
                    "shape", "scale", "num_classes", "test_fraction", "fit", "label_space", "transpose"});
  r.choice(t, where, "format", s.format, "format", true);
  const bool idx = s.format == SourceFormat::idx, csv = s.format == SourceFormat::csv;
  auto stray = [&](const char* key, bool allowed) {
    if (t.get(key) && !allowed) r.fail(where + "." + key, "not a parameter of format '" + std::string(to_string(s.format)) + "'");
  };
  for (const char* key : {"train_images", "train_labels", "test_images", "test_labels"}) stray(key, idx);
  for (const char* key : {"train_files", "test_files"}) stray(key, !idx);
  stray("label", s.format == SourceFormat::cifar100);
  stray("transpose", idx);
  for (const char* key : {"label_column", "label_format", "skip_rows", "shape", "scale"}) stray(key, csv);
  auto readable = [&](const std::string& key, const std::string& file) {
    if (!std::ifstream(file)) r.fail(where + "." + key, "cannot open '" + file + "' (file missing or unreadable)");
  };
  if (idx) {
    for (auto [key, field] : {std::pair{"train_images", &s.train_images}, {"train_labels", &s.train_labels},
                              {"test_images", &s.test_images}, {"test_labels", &s.test_labels}}) {
      r.get(t, where, key, *field);
      *field = expand_env(*field, r.file() + ": " + where + "." + key);
    }
    for (auto [key, field] : {std::pair{"train_images", &s.train_images}, {"train_labels", &s.train_labels}}) {
      if (field->empty()) r.fail(where + "." + key, "missing; expected a path to an IDX file");
      readable(key, *field);
    }
    if (s.test_images.empty() != s.test_labels.empty())
      r.fail(where + (s.test_images.empty() ? ".test_images" : ".test_labels"),
             "missing; test_images and test_labels come as a pair");
    if (!s.test_images.empty()) {
      readable("test_images", s.test_images);
      readable("test_labels", s.test_labels);
    }
  } else {
    s.train_files = paths(r, t, where, "train_files", r.file());
    s.test_files = paths(r, t, where, "test_files", r.file());
    if (s.train_files.empty())
      r.fail(where + ".train_files", "missing; expected a path or an array of paths to " + std::string(to_string(s.format)) + " files");
    for (const auto& f : s.train_files) readable("train_files", f);
    for (const auto& f : s.test_files) readable("test_files", f);
  }
  r.choice(t, where, "label", s.cifar_label, "label set");
  r.get(t, where, "label_column", s.label_column);
  r.choice(t, where, "label_format", s.label_format, "label format");
  r.get(t, where, "skip_rows", s.skip_rows);
  r.at_least(where + ".skip_rows", s.skip_rows, 0);
  if (t.get("shape")) {
    s.shape = r.ints(t, where, "shape");
    r.shape3(where + ".shape", s.shape);
  }
  r.get(t, where, "scale", s.scale);
  r.positive(where + ".scale", s.scale);
  if (t.get("num_classes")) {
    r.get(t, where, "num_classes", s.num_classes);
    r.at_least(where + ".num_classes", s.num_classes, 1);
  }
  r.get(t, where, "test_fraction", s.test_fraction);
  if (!(s.test_fraction >= 0.0 && s.test_fraction < 1.0))
    r.fail(where + ".test_fraction", "expected a value in [0, 1), got " + Reader::num(s.test_fraction));
  const bool own_test = !s.test_images.empty() || !s.test_files.empty();
  if (own_test && s.test_fraction > 0.0)
    r.fail(where + ".test_fraction", "the source has a test split of its own; expected no test_fraction");
  r.choice(t, where, "fit", s.fit, "fit");
  r.get(t, where, "label_space", s.label_space);
  if (const toml::node* tr = t.get("transpose")) {
    if (!tr->is_boolean()) r.fail(where + ".transpose", "expected true or false");
    s.transpose = *tr->value<bool>();
  }
}

// toml++ 3.3 (Debian 12) classifies some non-ASCII characters with a table that reaches
// __builtin_unreachable for most code points: undefined behaviour on bad input (toml++
// issues #190 and #295, fixed upstream after 3.3). It does so for a non-ASCII character
// outside strings and comments (never valid TOML), inside a quoted key (no job-file key
// has one), right after a backslash in a """ string (never a valid escape) and first after
// a line-ending backslash there. Those are rejected here, before toml++ sees the text;
// non-ASCII in comments and in string values (paths, names) is fine.
// A [model] table (or one entry of convergence.architectures).
void parse_model(const Reader& r, const toml::table& m, const std::string& where, ModelConfig& mc) {
  r.only(m, where, {"arch", "hidden", "channels", "width", "norm", "activation"});
  r.choice(m, where, "arch", mc.arch, "architecture");
  if (m.get("hidden")) mc.hidden = r.ints(m, where, "hidden");
  if (m.get("channels")) mc.channels = r.ints(m, where, "channels");
  r.get(m, where, "width", mc.width);
  r.choice(m, where, "norm", mc.norm, "normalisation");
  // tanh keeps the loss smooth for the polish and the Hessian; ResNets default to relu.
  mc.activation = mc.arch == Arch::resnet18 ? Activation::relu : Activation::tanh;
  r.choice(m, where, "activation", mc.activation, "activation");
  for (auto h : mc.hidden) r.at_least(where + ".hidden", h, 1);
  for (auto c : mc.channels) r.at_least(where + ".channels", c, 1);
  r.at_least(where + ".width", mc.width, 4);
  if (mc.arch == Arch::linear) mc.hidden.clear();
}

// The experiment tables; names of tasks must exist. The convergence time needs a loss threshold.
void parse_experiments(const Reader& r, const toml::table& root, JobConfig& job, const std::set<std::string>& tasks) {
  auto task_name = [&](const toml::table& t, const std::string& where, std::string& out) {
    r.get(t, where, "task", out);
    if (out.empty()) out = job.tasks.front().name;
    if (!tasks.count(out)) r.fail(where + ".task", "unknown task '" + out + "'");
  };
  auto counts = [&](const toml::table& t, const std::string& where, const char* key, int64_t lo) {
    std::vector<int64_t> v = r.ints(t, where, key);
    for (auto x : v) r.at_least(where + "." + key, x, lo);
    return v;
  };
  static const toml::table kEmpty;
  if (job.experiment != Experiment::reachability && job.train.loss_threshold <= 0 &&
      job.experiment != Experiment::critical_period)
    r.fail("train.loss_threshold", "experiment '" + std::string(to_string(job.experiment)) +
                                       "' measures the steps to a loss threshold: expected a positive mean loss in nats");
  if (job.experiment == Experiment::convergence) {
    const toml::table* t = r.table(root, "", "convergence");
    const toml::table& c = t ? *t : kEmpty;
    auto& cc = job.convergence;
    r.only(c, "convergence", {"task", "random_labels", "batch_sizes", "batch_random_labels", "architectures", "seeds"});
    task_name(c, "convergence", cc.task);
    cc.random_labels = counts(c, "convergence", "random_labels", 0);
    cc.batch_sizes = counts(c, "convergence", "batch_sizes", 1);
    r.get(c, "convergence", "batch_random_labels", cc.batch_random_labels);
    r.at_least("convergence.batch_random_labels", cc.batch_random_labels, 0);
    r.get(c, "convergence", "seeds", cc.seeds);
    r.at_least("convergence.seeds", cc.seeds, 1);
    if (const toml::node* a = c.get("architectures")) {
      if (!a->is_array_of_tables() && !(a->is_array() && a->as_array()->empty()))
        r.fail("convergence.architectures", "expected an array of tables such as [{ arch = \"mlp\", hidden = [32] }]");
      int q = 0;
      for (const auto& e : *a->as_array()) {
        ModelConfig m;
        parse_model(r, *e.as_table(), "convergence.architectures[" + std::to_string(q++) + "]", m);
        cc.architectures.push_back(m);
      }
    }
    if (cc.random_labels.size() < 3 && cc.batch_sizes.size() < 3 && cc.architectures.empty())
      r.fail("convergence", "nothing to fit: expected >= 3 random_labels, >= 3 batch_sizes or architectures");
    for (const char* k : {"random_labels", "batch_sizes"})
      if (const size_t n = r.ints(c, "convergence", k).size(); n > 0 && n < 3)
        r.fail(std::string("convergence.") + k, "expected at least 3 values for a fit, got " + std::to_string(n));
  } else if (job.experiment == Experiment::potential) {
    const toml::table* t = r.table(root, "", "potential");
    const toml::table& c = t ? *t : kEmpty;
    r.only(c, "potential", {"task", "curvature_every"});
    task_name(c, "potential", job.potential.task);
    r.get(c, "potential", "curvature_every", job.potential.curvature_every);
    r.at_least("potential.curvature_every", job.potential.curvature_every, 1);
  } else if (job.experiment == Experiment::critical_period) {
    const toml::table* t = r.table(root, "", "critical_period");
    const toml::table& c = t ? *t : kEmpty;
    auto& cp = job.critical_period;
    r.only(c, "critical_period", {"task", "sigma", "deficit_epochs", "clean_epochs", "seeds"});
    task_name(c, "critical_period", cp.task);
    r.get(c, "critical_period", "sigma", cp.sigma);
    r.positive("critical_period.sigma", cp.sigma);
    cp.deficit_epochs = counts(c, "critical_period", "deficit_epochs", 0);
    if (std::find(cp.deficit_epochs.begin(), cp.deficit_epochs.end(), 0) == cp.deficit_epochs.end())
      cp.deficit_epochs.insert(cp.deficit_epochs.begin(), 0);
    if (cp.deficit_epochs.size() < 2)
      r.fail("critical_period.deficit_epochs", "expected at least one deficit length K > 0 (epochs)");
    r.get(c, "critical_period", "clean_epochs", cp.clean_epochs);
    r.at_least("critical_period.clean_epochs", cp.clean_epochs, 1);
    r.get(c, "critical_period", "seeds", cp.seeds);
    r.at_least("critical_period.seeds", cp.seeds, 1);
  }
}

void check_non_ascii(const std::string& text, const std::string& path) {
  const size_t n = text.size();
  size_t line = 1, line_start = 0;
  auto fail = [&](size_t at, const std::string& what) {
    throw InputError(path + ":" + std::to_string(line) + ":" + std::to_string(at - line_start + 1) +
                     ": TOML syntax error: " + what);
  };
  auto newline = [&](size_t at) {
    ++line;
    line_start = at + 1;
  };
  auto high = [&](size_t at) { return at < n && static_cast<unsigned char>(text[at]) >= 0x80; };
  auto starts = [&](size_t at, const char* delim) { return text.compare(at, 3, delim) == 0; };
  // Where a string stands: a key (line start, table header, inline table before '=') or a
  // value. `nest` holds the open arrays ('[') and inline tables ('{') of the current value.
  std::string nest;
  bool key = true, header = false;
  // A quote opens a string only where a key or a value starts; elsewhere (3"x) toml++ reads
  // it as part of a bare value, so what follows counts as outside a string.
  char prev = '\n';
  size_t i = text.compare(0, 3, "\xEF\xBB\xBF") == 0 ? 3 : 0;  // a UTF-8 byte order mark
  for (; i < n; ++i) {
    const char c = text[i];
    const bool opens = std::string_view("\n=[{,").find(prev) != std::string_view::npos ||
                       (prev == '.' && (key || header));  // a dotted key, not 0.'x'
    if (c != ' ' && c != '\t' && c != '#') prev = c;
    if (c == '\n') {
      newline(i);
      if (nest.empty()) key = true, header = false;
    } else if (c == '#') {
      while (i + 1 < n && text[i + 1] != '\n') ++i;
    } else if (!key && !header && std::string_view(" \t\r\"'[]{},").find(c) == std::string_view::npos) {
      // A bare value (number, boolean, date): toml++ reads up to a value terminator, quotes
      // and all, so nothing in it opens a string.
      for (; i < n && std::string_view(" \t\r\n]},#").find(text[i]) == std::string_view::npos; ++i)
        if (high(i)) fail(i, "non-ASCII character outside a string or comment");
      --i;
      prev = 'v';
    } else if (c == '=') {
      key = false;
    } else if (c == '[') {
      if (nest.empty() && key) header = true;
      else nest += '[', key = false;
    } else if (c == ']') {
      if (header) header = false, key = false;
      else if (!nest.empty() && nest.back() == '[') nest.pop_back();
    } else if (c == '{') {
      nest += '{', key = true;
    } else if (c == '}') {
      if (!nest.empty() && nest.back() == '{') nest.pop_back();
      key = false;
    } else if (c == ',') {
      key = !nest.empty() && nest.back() == '{';
    } else if ((c == '"' || c == '\'') && opens) {
      const bool basic = c == '"', in_key = key || header;
      if (starts(i, basic ? "\"\"\"" : "'''")) {  // multi-line: up to the closing delimiter
        for (i += 3; i < n && !starts(i, basic ? "\"\"\"" : "'''"); ++i) {
          if (text[i] == '\n') {
            newline(i);
          } else if (basic && text[i] == '\\') {
            size_t j = i + 1;
            if (high(j)) fail(j, "invalid escape sequence (a backslash before a non-ASCII character)");
            while (j < n && (text[j] == ' ' || text[j] == '\t' || text[j] == '\r')) ++j;
            if (j > i + 1 || (j < n && text[j] == '\n')) {  // a line-ending backslash: toml++ skips
              while (j < n && (text[j] == ' ' || text[j] == '\t' || text[j] == '\r' || text[j] == '\n'))
                if (text[j++] == '\n') newline(j - 1);
              if (high(j)) fail(j, "a non-ASCII character right after a line-ending backslash is not supported");
              i = j - 1;
            } else {
              ++i;  // the escaped character
            }
          } else if (in_key && high(i)) {
            fail(i, "non-ASCII character in a quoted key");
          }
        }
        i += 2;
        while (i + 1 < n && text[i + 1] == c) ++i;  // quotes right after it are content (TOML: two)
      } else {  // single-line: up to the closing quote or the end of the line
        for (++i; i < n && text[i] != c && text[i] != '\n'; ++i) {
          if (basic && text[i] == '\\' && i + 1 < n && text[i + 1] != '\n') ++i;  // escaped
          if (in_key && high(i)) fail(i, "non-ASCII character in a quoted key");
        }
        if (i < n && text[i] == '\n') --i;  // unterminated: the newline is handled above
      }
    } else if (high(i)) {
      fail(i, "non-ASCII character outside a string or comment");
    }
  }
}

}  // namespace

std::string expand_env(const std::string& s, const std::string& where) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '$' && i + 1 < s.size() && s[i + 1] == '{') {
      size_t end = s.find('}', i + 2);
      if (end == std::string::npos) throw InputError(where + ": unterminated ${ in '" + s + "'");
      std::string name = s.substr(i + 2, end - i - 2);
      const char* v = std::getenv(name.c_str());
      if (v) {
        out += v;
      } else if (name == "TASKREACH_DATA" && std::getenv("HOME")) {
        // The data cache that taskreach.sh fills, so the binary runs without the script.
        out += std::string(std::getenv("HOME")) + "/.cache/taskreach/data";
      } else {
        throw InputError(where + ": environment variable " + name + " is not set (used in '" + s + "')");
      }
      i = end;
    } else {
      out += s[i];
    }
  }
  return out;
}

double JobConfig::logdet_c() const {
  return complexity.logdet_scale == LogdetScale::paper ? formulas::logdet_c_paper(complexity.beta, complexity.lambda2)
                                            : formulas::logdet_c_laplace(complexity.beta, complexity.lambda2);
}

JobConfig load_job(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw InputError(path + ": cannot open the job file");
  std::stringstream ss;
  ss << in.rdbuf();
  return parse_job(ss.str(), path);
}

JobConfig parse_job(const std::string& text, const std::string& path) {
  Reader r(path);
  toml::table root;
  check_non_ascii(text, path);
  try {
    root = toml::parse(text, path);
  } catch (const toml::parse_error& e) {
    const auto& b = e.source().begin;
    throw InputError(path + ":" + std::to_string(b.line) + ":" + std::to_string(b.column) +
                     ": TOML syntax error: " + std::string(e.description()));
  }
  JobConfig job;
  job.path = path;
  job.text = text;
  r.only(root, "", {"name", "experiment", "seed", "ranks_per_task", "n_per_task", "n_test_per_task", "input_shape",
                    "model", "train", "finetune", "complexity", "sources", "tasks", "convergence", "potential",
                    "critical_period"});
  r.choice(root, "", "experiment", job.experiment, "experiment");
  for (const char* section : {"convergence", "potential", "critical_period"})
    if (root.get(section) && to_string(job.experiment) != std::string(section))
      r.fail(section, std::string("a [") + section + "] table needs experiment = \"" + section + "\"");
  r.get(root, "", "name", job.name);
  r.get(root, "", "seed", job.seed);
  r.get(root, "", "ranks_per_task", job.ranks_per_task);
  r.at_least("ranks_per_task", job.ranks_per_task, 1);
  r.get(root, "", "n_per_task", job.n_per_task);
  r.at_least("n_per_task", job.n_per_task, 0);
  r.get(root, "", "n_test_per_task", job.n_test_per_task);
  r.at_least("n_test_per_task", job.n_test_per_task, 0);
  if (root.get("input_shape")) {
    job.input_shape = r.ints(root, "", "input_shape");
    r.shape3("input_shape", job.input_shape);
  }

  if (const auto* m = r.table(root, "", "model")) parse_model(r, *m, "model", job.model);
  if (const auto* t = r.table(root, "", "train")) {
    auto& c = job.train;
    r.only(*t, "train", {"epochs", "batch_size", "lr", "momentum", "weight_decay", "dtype",
                         "grad_tol", "polish_iters", "polish", "seeds", "steps", "schedule", "milestones",
                         "factor", "eval_every", "loss_threshold"});
    r.get(*t, "train", "epochs", c.epochs);
    r.at_least("train.epochs", c.epochs, 0);
    r.get(*t, "train", "batch_size", c.batch_size);
    r.at_least("train.batch_size", c.batch_size, 1);
    r.get(*t, "train", "lr", c.lr);
    r.positive("train.lr", c.lr);
    r.get(*t, "train", "momentum", c.momentum);
    if (c.momentum < 0 || c.momentum >= 1) r.fail("train.momentum", "expected a value in [0, 1)");
    if (const toml::node* wd = t->get("weight_decay")) {
      if (wd->is_string()) {
        if (*wd->value<std::string>() != "auto")
          r.fail("train.weight_decay", "expected \"auto\" or a non-negative number");
      } else {
        c.weight_decay_auto = false;
        r.get(*t, "train", "weight_decay", c.weight_decay);
        if (c.weight_decay < 0) r.fail("train.weight_decay", "expected \"auto\" or a non-negative number");
      }
    }
    r.choice(*t, "train", "dtype", c.dtype, "dtype");
    r.get(*t, "train", "grad_tol", c.grad_tol);
    r.positive("train.grad_tol", c.grad_tol);
    r.choice(*t, "train", "polish", c.polish, "polish method");
    r.get(*t, "train", "polish_iters", c.polish_iters);
    r.at_least("train.polish_iters", c.polish_iters, 0);
    r.get(*t, "train", "seeds", c.seeds);
    r.at_least("train.seeds", c.seeds, 1);
    r.get(*t, "train", "steps", c.steps);
    r.at_least("train.steps", c.steps, 0);
    r.choice(*t, "train", "schedule", c.schedule, "schedule");
    c.milestones = r.ints(*t, "train", "milestones");
    for (size_t q = 0; q < c.milestones.size(); ++q)
      if (c.milestones[q] < 1 || (q && c.milestones[q] <= c.milestones[q - 1]))
        r.fail("train.milestones", "expected increasing positive step numbers");
    r.get(*t, "train", "factor", c.factor);
    r.positive("train.factor", c.factor);
    r.get(*t, "train", "eval_every", c.eval_every);
    r.at_least("train.eval_every", c.eval_every, 1);
    r.get(*t, "train", "loss_threshold", c.loss_threshold);
    if (c.loss_threshold < 0) r.fail("train.loss_threshold", "expected a non-negative mean loss in nats");
  }
  if (const auto* t = r.table(root, "", "finetune")) {
    auto& f = job.finetune;
    r.only(*t, "finetune", {"enabled", "lr", "batch_size", "momentum", "eval_every", "max_steps",
                            "loss_margin", "threshold"});
    if (const toml::node* e = t->get("enabled")) {
      if (!e->is_boolean()) r.fail("finetune.enabled", "expected true or false");
      f.enabled = *e->value<bool>();
    }
    r.get(*t, "finetune", "lr", f.lr);
    r.positive("finetune.lr", f.lr);
    r.get(*t, "finetune", "batch_size", f.batch_size);
    r.at_least("finetune.batch_size", f.batch_size, 1);
    r.get(*t, "finetune", "momentum", f.momentum);
    if (f.momentum < 0 || f.momentum >= 1) r.fail("finetune.momentum", "expected a value in [0, 1)");
    r.get(*t, "finetune", "eval_every", f.eval_every);
    r.at_least("finetune.eval_every", f.eval_every, 1);
    r.get(*t, "finetune", "max_steps", f.max_steps);
    // max_steps >= 10·eval_every, tested without computing 10·eval_every (it may overflow).
    if (f.max_steps / 10 < f.eval_every)
      r.fail("finetune.max_steps", "expected an integer >= 10 * eval_every = " +
                                       (f.eval_every <= INT64_MAX / 10 ? std::to_string(10 * f.eval_every)
                                                                       : std::string("more than 2^63")) +
                                       ", got " + std::to_string(f.max_steps));
    r.get(*t, "finetune", "loss_margin", f.loss_margin);
    if (f.loss_margin < 0) r.fail("finetune.loss_margin", "expected a non-negative margin in nats");
    r.get(*t, "finetune", "threshold", f.threshold);
    if (f.threshold < 0) r.fail("finetune.threshold", "expected a positive mean loss in nats");
  }
  if (const auto* t = r.table(root, "", "complexity")) {
    auto& c = job.complexity;
    r.only(*t, "complexity", {"beta", "lambda2", "logdet_scale", "curvature", "top_k", "probes",
                              "lanczos_steps", "batch_size", "eps_tol", "samples", "graph_samples",
                              "quadrature_check", "lanczos_max", "probe_block", "dtype"});
    r.get(*t, "complexity", "beta", c.beta);
    r.positive("complexity.beta", c.beta);
    r.get(*t, "complexity", "lambda2", c.lambda2);
    r.positive("complexity.lambda2", c.lambda2);
    r.choice(*t, "complexity", "logdet_scale", c.logdet_scale, "log-det convention");
    r.choice(*t, "complexity", "curvature", c.curvature, "curvature");
    c.top_k_auto = !t->get("top_k");
    r.get(*t, "complexity", "top_k", c.top_k);
    r.at_least("complexity.top_k", c.top_k, 1);
    r.get(*t, "complexity", "probes", c.probes);
    r.at_least("complexity.probes", c.probes, 2);
    r.get(*t, "complexity", "lanczos_steps", c.lanczos_steps);
    r.at_least("complexity.lanczos_steps", c.lanczos_steps, 2);
    if (t->get("lanczos_max")) {
      r.get(*t, "complexity", "lanczos_max", c.lanczos_max);
      if (c.lanczos_max < c.lanczos_steps)
        r.fail("complexity.lanczos_max", std::to_string(c.lanczos_max) + ": expected at least lanczos_steps (" +
                                             std::to_string(c.lanczos_steps) + "); equal to it fixes m");
    } else {
      c.lanczos_max = std::max(c.lanczos_max, c.lanczos_steps);
    }
    r.get(*t, "complexity", "probe_block", c.probe_block);
    r.at_least("complexity.probe_block", c.probe_block, 0);
    r.choice(*t, "complexity", "dtype", c.dtype, "dtype");
    r.get(*t, "complexity", "batch_size", c.batch_size);
    r.at_least("complexity.batch_size", c.batch_size, 1);
    r.get(*t, "complexity", "eps_tol", c.eps_tol);
    r.positive("complexity.eps_tol", c.eps_tol);
    r.get(*t, "complexity", "quadrature_check", c.quadrature_check);
    r.get(*t, "complexity", "graph_samples", c.graph_samples);
    r.at_least("complexity.graph_samples", c.graph_samples, -1);
    r.get(*t, "complexity", "samples", c.samples);
    r.at_least("complexity.samples", c.samples, 0);
    // log det is concave: a product on a subsample scaled by n/n_sub biases it low, and more for
    // unions (2n samples) than singles. Every experiment's C, R or S holds a log det.
    if (c.samples > 0)
      r.fail("complexity.samples",
             std::to_string(c.samples) + ": a curvature subsample biases log det(I + cG) low (more for unions than "
             "singles), and every experiment's C, R and S holds one; remove it (the whole task is used)");
  }

  const toml::node* srcs = root.get("sources");
  if (!srcs || !srcs->is_array_of_tables() || srcs->as_array()->empty())
    r.fail("sources", "expected at least one [[sources]] table");
  std::set<std::string> source_names;
  int k = 0;
  for (const auto& node : *srcs->as_array()) {
    const std::string where = "sources[" + std::to_string(k++) + "]";
    const auto& t = *node.as_table();
    SourceConfig s;
    r.get(t, where, "name", s.name);
    if (s.name.empty()) r.fail(where + ".name", "missing; expected a source name");
    if (!source_names.insert(s.name).second) r.fail(where + ".name", "duplicate source name '" + s.name + "'");
    parse_source(r, t, where, s);
    job.sources.push_back(std::move(s));
  }

  const toml::node* tasks = root.get("tasks");
  if (!tasks || !tasks->is_array_of_tables() || tasks->as_array()->empty())
    r.fail("tasks", "expected at least one [[tasks]] table");
  std::set<std::string> task_names;
  k = 0;
  for (const auto& node : *tasks->as_array()) {
    const std::string where = "tasks[" + std::to_string(k++) + "]";
    const auto& t = *node.as_table();
    TaskConfig task;
    r.only(t, where, {"name", "source", "transforms"});
    r.get(t, where, "name", task.name);
    if (task.name.empty()) r.fail(where + ".name", "missing; expected a task name");
    if (task.name.find_first_of("/+") != std::string::npos)
      r.fail(where + ".name", "'" + task.name + "' may not contain '/' or '+'");
    if (!task_names.insert(task.name).second) r.fail(where + ".name", "duplicate task name '" + task.name + "'");
    r.get(t, where, "source", task.source);
    if (!source_names.count(task.source)) r.fail(where + ".source", "unknown source '" + task.source + "'");
    if (const toml::node* trs = t.get("transforms")) {
      const toml::array* a = trs->as_array();
      if (!a) r.fail(where + ".transforms", "expected an array of inline tables");
      int q = 0;
      for (const auto& e : *a) {
        const std::string tw = where + ".transforms[" + std::to_string(q++) + "]";
        if (!e.is_table()) r.fail(tw, "expected an inline table such as { type = \"invert\" }");
        task.transforms.push_back(parse_transform(r, *e.as_table(), tw));
      }
    }
    job.tasks.push_back(std::move(task));
  }
  parse_experiments(r, root, job, task_names);
  return job;
}

}  // namespace taskreach
