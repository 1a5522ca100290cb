// Tasks from sources: selection (class_subset, label_remap, random_labels, subsample, the
// n_per_task cap) works on base indices and labels only, and the fit to the common shape,
// the input transforms (invert, blur, noise) and normalisation are applied once per
// (source, split, input chain) to the union of the images its tasks need. Every kernel is
// per image, so a sample has the same bytes in every task that holds it, whatever else the
// job contains and however many ranks build it.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <iomanip>
#include <iterator>
#include <map>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <tuple>
#include <utility>

#include "taskreach/data.hpp"
#include "taskreach/util.hpp"
#include "transforms.hpp"

namespace taskreach {

bool SampleKey::operator<(const SampleKey& o) const {
  return std::tie(source, index, input_hash, label) < std::tie(o.source, o.index, o.input_hash, o.label);
}
bool SampleKey::operator==(const SampleKey& o) const {
  return std::tie(source, index, input_hash, label) == std::tie(o.source, o.index, o.input_hash, o.label);
}

namespace {

using util::chain;
constexpr uint64_t mix(uint64_t x) { return util::splitmix64(x); }

// Domain tags, so that the seeded draws of different purposes are independent.
constexpr uint64_t kSplitTag = 0x73706c6974ull;         // "split"
constexpr uint64_t kRandomLabelTag = 0x72616e646c62ull;  // "randlb"
constexpr uint64_t kNoiseTag = 0x6e6f697365ull;          // "noise"

// One hash for "this set of samples", shared by build_tasks and unite so that equal key
// sets get equal identities however they were made.
uint64_t identity_of(const std::vector<SampleKey>& keys) {
  uint64_t h = 0x7461736b73657431ull;  // "tasksets1": a domain tag, so {} does not hash to 0
  for (const auto& k : keys) {
    h = chain(h, k.source);
    h = chain(h, static_cast<uint64_t>(k.index));
    h = chain(h, k.input_hash);
    h = chain(h, static_cast<uint64_t>(k.label));
  }
  return h;
}

// An input transform as it enters the input hash: its kind and parameters.
struct InputStep {
  char kind;  // 'i' invert, 'b' blur, 'n' noise
  double sigma;
  uint64_t seed;  // noise
};

uint64_t input_hash(const std::vector<InputStep>& steps) {
  uint64_t h = util::kFnvOffset;
  auto eat = [&h](const void* p, size_t n) { h = util::fnv1a(p, n, h); };
  for (const auto& s : steps) {
    eat(&s.kind, 1);
    if (s.kind == 'b' || s.kind == 'n') eat(&s.sigma, sizeof s.sigma);
    if (s.kind == 'n') eat(&s.seed, sizeof s.seed);
  }
  return h;
}

// The nested stratified subsample: the first n of `pool` in an order that depends only
// on the pool, the seed and the source, so smaller subsamples nest inside larger ones.
// Within a class, samples are ranked by a hash; the q-th of m gets the key (q + ½)/m, so
// taking keys in order draws every class in proportion to its size.
std::vector<int64_t> stratified(const std::vector<int64_t>& pool, const std::vector<int64_t>& labels,
                                uint64_t seed, uint32_t source, int64_t n) {
  if (n >= static_cast<int64_t>(pool.size())) return pool;
  struct Entry {
    int64_t index, cls;
    uint64_t rank;
    int64_t q = 0, m = 0;
  };
  std::vector<Entry> e;
  e.reserve(pool.size());
  const uint64_t base = chain(mix(seed), source);
  for (int64_t i : pool) e.push_back({i, labels[static_cast<size_t>(i)], chain(base, static_cast<uint64_t>(i))});
  std::sort(e.begin(), e.end(), [](const Entry& a, const Entry& b) {
    return std::tie(a.cls, a.rank, a.index) < std::tie(b.cls, b.rank, b.index);
  });
  for (size_t lo = 0; lo < e.size();) {
    size_t hi = lo;
    while (hi < e.size() && e[hi].cls == e[lo].cls) ++hi;
    for (size_t j = lo; j < hi; ++j) {
      e[j].q = static_cast<int64_t>(j - lo);
      e[j].m = static_cast<int64_t>(hi - lo);
    }
    lo = hi;
  }
  // (2q+1)/(2m) compared by cross-multiplication: exact, so ties are real ties.
  std::nth_element(e.begin(), e.begin() + n, e.end(), [](const Entry& a, const Entry& b) {
    const int64_t l = (2 * a.q + 1) * b.m, r = (2 * b.q + 1) * a.m;
    if (l != r) return l < r;
    return std::tie(a.rank, a.index) < std::tie(b.rank, b.index);
  });
  std::vector<int64_t> out;
  out.reserve(static_cast<size_t>(n));
  for (int64_t j = 0; j < n; ++j) out.push_back(e[static_cast<size_t>(j)].index);
  std::sort(out.begin(), out.end());
  return out;
}

std::string shape_str(int64_t c, int64_t h, int64_t w) {
  return std::to_string(c) + "x" + std::to_string(h) + "x" + std::to_string(w);
}
std::string shape_str(const RawImages& r) { return shape_str(r.channels, r.height, r.width); }

std::string num(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", v);
  return buf;
}

std::string list(const std::vector<int64_t>& v) {
  std::string s;
  for (int64_t x : v) s += (s.empty() ? "" : ", ") + std::to_string(x);
  return s;
}

// Sorted distinct labels of the selection.
std::vector<int64_t> classes_of(const std::vector<int64_t>& index, const std::vector<int64_t>& label) {
  std::vector<int64_t> c;
  for (int64_t i : index) c.push_back(label[static_cast<size_t>(i)]);
  std::sort(c.begin(), c.end());
  c.erase(std::unique(c.begin(), c.end()), c.end());
  return c;
}

// The classes a source declares: num_classes, or its format's (CIFAR, letters); 0 if none.
int64_t declared_classes(const SourceConfig& sc) {
  if (sc.num_classes > 0) return sc.num_classes;
  if (sc.format == SourceFormat::cifar10) return 10;
  if (sc.format == SourceFormat::cifar100) return sc.cifar_label == CifarLabel::coarse ? 20 : 100;
  if (sc.format == SourceFormat::csv && sc.label_format == LabelFormat::letter) return 26;
  return 0;
}

// How the images of one file of a source become task inputs: the fit to the common shape,
// and the seed and place that key an input chain's noise. Shared by the train features, the
// chain statistics and the test features rendered on demand.
struct RenderSpec {
  data::Shape from, to;
  data::Fit fit = data::Fit::resize;
  uint64_t job_seed = 0;
  uint32_t source = 0;
  int file = 0;  // 0 the train file, 1 the own test file
  bool same_shape() const {
    return from.channels == to.channels && from.height == to.height && from.width == to.width;
  }
};

// A source file's images where the kernels read them, loaded on first use.
struct DeviceBase {
  data::BaseBytes bytes;
  data::BaseValues values;
  void load(const RawImages& raw) {
    if (raw.is_float()) {
      if (!values.data()) values = data::to_device(raw.values, raw.dim());
    } else if (!bytes.data()) {
      bytes = data::to_device(raw.pixels, raw.dim());
    }
  }
};

// Images `rows` of `raw` through an input chain into x (fitted to the common shape), not yet
// normalised. `ids` are their indices in the source's file, which key the noise (equal to
// `rows` when raw is the whole file).
void render(const RawImages& raw, DeviceBase& base, const std::vector<int64_t>& rows, const std::vector<int64_t>& ids,
            const std::vector<InputStep>& steps, const RenderSpec& spec, const data::Images& x) {
  base.load(raw);
  if (raw.is_float()) data::to_float(base.values, rows, spec.from, spec.fit, x);
  else if (spec.same_shape()) data::to_float(base.bytes, rows, x);
  else data::to_float(base.bytes, rows, spec.from, spec.fit, x);
  for (size_t k = 0; k < steps.size(); ++k) {
    const InputStep& st = steps[k];
    if (st.kind == 'i') {
      data::invert(x);
    } else if (st.kind == 'b') {
      data::blur(x, st.sigma);
    } else {
      // The stream names everything the noise of a pixel may depend on but its image and
      // position: job seed, step seed and place in the chain, source and file.
      const uint64_t stream =
          chain(chain(chain(chain(chain(mix(spec.job_seed), kNoiseTag), st.seed), k), spec.source), spec.file);
      data::add_noise(x, ids, st.sigma, stream);
    }
  }
}

// The held-out images of one source file that some task tests on, as stored (bytes for image
// formats): row r is the file's image index[r].
struct HeldOut {
  RawImages raw;
  std::vector<int64_t> index;  // ascending
};

}  // namespace

struct SplitImages {
  std::shared_ptr<const HeldOut> held;  // shared by every task of the source file
  std::vector<InputStep> steps;
  RenderSpec spec;
  data::PixelStats stats;  // the chain's train statistics
};

namespace {

// The normalised features of samples `rows` (positions in `keys`) of a split.
std::vector<float> render_split(const SplitImages& t, const std::vector<SampleKey>& keys,
                                const std::vector<int64_t>& rows, int64_t dim, const std::string& name) {
  const HeldOut& held = *t.held;
  std::vector<int64_t> ids(rows.size()), at(rows.size());
  for (size_t j = 0; j < rows.size(); ++j) {
    if (rows[j] < 0 || rows[j] >= static_cast<int64_t>(keys.size()))
      throw std::logic_error("features of task '" + name + "': row " + std::to_string(rows[j]) + " of " +
                             std::to_string(keys.size()));
    ids[j] = keys[static_cast<size_t>(rows[j])].index;
    const auto it = std::lower_bound(held.index.begin(), held.index.end(), ids[j]);
    if (it == held.index.end() || *it != ids[j])
      throw std::logic_error("features of task '" + name + "': image " + std::to_string(ids[j]) + " not held");
    at[j] = it - held.index.begin();
  }
  std::vector<float> out(rows.size() * static_cast<size_t>(dim));
  if (rows.empty()) return out;
  const data::HostImages view(out.data(), rows.size(), static_cast<size_t>(t.spec.to.channels),
                              static_cast<size_t>(t.spec.to.height), static_cast<size_t>(t.spec.to.width));
  const data::Images x = data::device_view(view);
  DeviceBase base;
  render(held.raw, base, at, ids, t.steps, t.spec, x);
  data::normalise(x, t.stats.mean, t.stats.std);
  data::copy_back(x, view);
  return out;
}

std::vector<int64_t> all_rows(size_t n) {
  std::vector<int64_t> rows(n);
  for (size_t j = 0; j < n; ++j) rows[j] = static_cast<int64_t>(j);
  return rows;
}

uint64_t double_bits(double v) {
  uint64_t b;
  std::memcpy(&b, &v, sizeof b);
  return b;
}

// Per sample of a split: a hash of its stored bytes and of everything that turns them into
// its features (fit, input chain, the chain's statistics; with noise, also what keys it).
std::vector<uint64_t> sample_digests(const SplitImages& t, const std::vector<SampleKey>& keys, uint64_t input_hash) {
  const RenderSpec& sp = t.spec;
  uint64_t context = chain(chain(0x72656e6465723176ull, input_hash), double_bits(t.stats.mean));  // "render1v"
  context = chain(context, double_bits(t.stats.std));
  for (int64_t v : {sp.from.channels, sp.from.height, sp.from.width, sp.to.channels, sp.to.height, sp.to.width})
    context = chain(context, static_cast<uint64_t>(v));
  context = chain(context, sp.fit == data::Fit::pad ? 1 : 0);
  if (std::any_of(t.steps.begin(), t.steps.end(), [](const InputStep& st) { return st.kind == 'n'; }))
    context = chain(chain(chain(context, sp.job_seed), sp.source), static_cast<uint64_t>(sp.file));
  const HeldOut& held = *t.held;
  const RawImages& raw = held.raw;
  const auto rdim = static_cast<size_t>(raw.dim());
  std::vector<uint64_t> out(keys.size());
  for (size_t j = 0; j < keys.size(); ++j) {
    const auto at = static_cast<size_t>(std::lower_bound(held.index.begin(), held.index.end(), keys[j].index) -
                                        held.index.begin());
    const uint64_t bytes = raw.is_float() ? util::fnv1a(raw.values.data() + at * rdim, rdim * sizeof(float))
                                          : util::fnv1a(raw.pixels.data() + at * rdim, rdim);
    out[j] = chain(context, bytes);
  }
  return out;
}

}  // namespace

std::vector<float> Task::test_features(const std::vector<int64_t>& rows) const {
  if (rows.empty()) return {};
  if (!test_images) throw std::logic_error("test_features: task '" + name + "' has no test images behind it");
  return render_split(*test_images, test_keys, rows, dim, name);
}

std::vector<float> Task::test_features() const { return test_features(all_rows(test_keys.size())); }

Task with_features(const Task& t) {
  if (t.has_features()) return t;
  if (!t.images) throw std::logic_error("with_features: task '" + t.name + "' is a header without images");
  Task c = t;
  c.x = render_split(*t.images, t.keys, all_rows(t.keys.size()), t.dim, t.name);
  return c;
}

TaskSet build_tasks(const JobConfig& job, Features features) {
  auto error = [&job](const std::string& field, const std::string& what) {
    return InputError(job.path + ": " + field + ": " + what);
  };

  TaskSet set;
  const size_t n_src = job.sources.size();
  std::map<std::string, uint32_t> source_of;
  for (size_t k = 0; k < n_src; ++k) {  // before any file is read
    const SourceConfig& sc = job.sources[k];
    const std::string field = "sources[" + std::to_string(k) + "]";
    if (!source_of.emplace(sc.name, static_cast<uint32_t>(k)).second)
      throw error(field + ".name", "duplicate source name '" + sc.name + "'");
  }

  // Sources: both splits, the train pool (all of the train file, less a seeded test share),
  // the statistics of the train pool, the label spaces.
  std::vector<RawImages> train(n_src), own_test(n_src);
  std::vector<std::vector<int64_t>> train_pool(n_src), test_pool(n_src);
  std::vector<data::PixelStats> stats(n_src);
  set.sources.resize(n_src);
  for (size_t k = 0; k < n_src; ++k) {
    const SourceConfig& sc = job.sources[k];
    SourceInfo& info = set.sources[k];
    info.name = sc.name;
    info.format = sc.format;
    info.label_space = sc.label_space.empty() ? sc.name : sc.label_space;
    train[k] = read_source(sc, false);
    own_test[k] = read_source(sc, true);
    const RawImages& r = train[k];
    info.channels = r.channels;
    info.height = r.height;
    info.width = r.width;
    const bool has_own = !sc.test_images.empty() || !sc.test_files.empty();
    if (has_own && shape_str(own_test[k]) != shape_str(r))
      throw error("sources[" + std::to_string(k) + "]", "source '" + sc.name + "': test split has " +
                                                             shape_str(own_test[k]) + " images, train has " +
                                                             shape_str(r));
    std::vector<int64_t> all(static_cast<size_t>(r.n));
    for (int64_t i = 0; i < r.n; ++i) all[static_cast<size_t>(i)] = i;
    if (has_own) {
      info.test_split = "own";
      train_pool[k] = std::move(all);
      test_pool[k].resize(static_cast<size_t>(own_test[k].n));
      for (int64_t i = 0; i < own_test[k].n; ++i) test_pool[k][static_cast<size_t>(i)] = i;
    } else if (sc.test_fraction > 0.0) {
      // A stratified, seeded share of the train file, the same on every rank.
      info.test_split = "seeded";
      const auto n_test = static_cast<int64_t>(std::llround(sc.test_fraction * static_cast<double>(r.n)));
      test_pool[k] = stratified(all, r.labels, chain(job.seed, kSplitTag), static_cast<uint32_t>(k), n_test);
      std::set_difference(all.begin(), all.end(), test_pool[k].begin(), test_pool[k].end(),
                          std::back_inserter(train_pool[k]));
      info.test_indices = test_pool[k];
    } else {
      info.test_split = "none";
      train_pool[k] = std::move(all);
    }
    if (train_pool[k].empty())
      throw error("sources[" + std::to_string(k) + "]", "source '" + sc.name + "' has no training samples");
    info.n_train = static_cast<int64_t>(train_pool[k].size());
    info.n_test = static_cast<int64_t>(test_pool[k].size());
    stats[k] = r.is_float() ? data::value_stats(r.values, r.dim(), train_pool[k])
                            : data::pixel_stats(r.pixels, r.dim(), train_pool[k]);
    info.mean = stats[k].mean;
    info.std = stats[k].std;
  }

  // The common shape: input_shape, or the one shape every source has.
  if (!job.input_shape.empty()) {
    set.channels = job.input_shape[0];
    set.height = job.input_shape[1];
    set.width = job.input_shape[2];
    for (size_t k = 0; k < n_src; ++k) {
      const int64_t c = train[k].channels;
      if (c != set.channels && c != 1 && set.channels != 1)
        throw error("sources[" + std::to_string(k) + "]",
                    "source '" + job.sources[k].name + "' has " + shape_str(train[k]) + " images; cannot fit " +
                        std::to_string(c) + " channels to input_shape " +
                        shape_str(set.channels, set.height, set.width) + " (expected " + std::to_string(c) +
                        " or 1 channels there, or 1 channel in the source)");
    }
  } else if (n_src > 0) {
    set.channels = train[0].channels;
    set.height = train[0].height;
    set.width = train[0].width;
    for (size_t k = 1; k < n_src; ++k)
      if (shape_str(train[k]) != shape_str(train[0]))
        throw error("sources[" + std::to_string(k) + "]",
                    "source '" + job.sources[k].name + "' has " + shape_str(train[k]) + " images, expected " +
                        shape_str(train[0]) + " like source '" + job.sources[0].name +
                        "' (all sources must share one shape, or set input_shape = [C, H, W] to fit them)");
  }
  const int64_t dim = set.channels * set.height * set.width;

  // Label spaces: one block of head rows each, in order of first appearance, as wide as
  // the classes its sources declare, else the largest label any of them uses (either split).
  std::vector<std::string> spaces;
  std::map<std::string, int64_t> space_rows;
  for (size_t k = 0; k < n_src; ++k) {
    int64_t rows = declared_classes(job.sources[k]);
    if (rows == 0) {
      for (int64_t l : train[k].labels) rows = std::max(rows, l + 1);
      for (int64_t l : own_test[k].labels) rows = std::max(rows, l + 1);
    }
    const std::string& sp = set.sources[k].label_space;
    if (space_rows.emplace(sp, 0).second) spaces.push_back(sp);
    space_rows[sp] = std::max(space_rows[sp], rows);
  }
  std::map<std::string, int64_t> space_offset;
  for (const auto& sp : spaces) {
    space_offset[sp] = set.k_tot;
    set.k_tot += space_rows[sp];
  }
  for (auto& info : set.sources) {
    info.row_offset = space_offset[info.label_space];
    info.rows = space_rows[info.label_space];
  }
  // Gaps in a label space: rows no source of it uses (one label 200 among 0..9 makes a
  // 201-row head with 190 rows that nothing trains). Ranges of unused labels, named.
  for (const auto& sp : spaces) {
    std::vector<char> used(static_cast<size_t>(space_rows[sp]), 0);
    for (size_t k = 0; k < n_src; ++k)
      if (set.sources[k].label_space == sp)
        for (const auto* labels : {&train[k].labels, &own_test[k].labels})
          for (int64_t l : *labels)
            if (l >= 0 && l < int64_t(used.size())) used[size_t(l)] = 1;
    std::string gaps;
    int64_t unused = 0;
    for (int64_t l = 0; l < int64_t(used.size());) {
      if (used[size_t(l)]) {
        ++l;
        continue;
      }
      int64_t e = l;
      while (e + 1 < int64_t(used.size()) && !used[size_t(e + 1)]) ++e;
      gaps += (gaps.empty() ? "" : ", ") + (e == l ? std::to_string(l) : std::to_string(l) + ".." + std::to_string(e));
      unused += e - l + 1;
      l = e + 1;
    }
    if (unused > 0)
      set.warnings.push_back("label space '" + sp + "': labels " + gaps + " occur in none of its sources (" +
                             std::to_string(int64_t(used.size()) - unused) + " of " + std::to_string(used.size()) +
                             " head rows used); check for a label far outside the others or declare num_classes");
  }

  // Selection per task: base indices, current labels and the input chain; no pixels yet.
  struct Plan {
    uint32_t source = 0;
    std::vector<InputStep> steps;
    uint64_t hash = 0;
    std::vector<int64_t> index, test_index;   // selected, ascending
    std::vector<int64_t> label, test_label;   // current label of every base index
    std::vector<int64_t> randomised;          // base indices relabelled at random
  };
  std::vector<Plan> plans(job.tasks.size());
  for (size_t t = 0; t < job.tasks.size(); ++t) {
    const TaskConfig& tc = job.tasks[t];
    const std::string tfield = "tasks[" + std::to_string(t) + "]";
    const auto found = source_of.find(tc.source);
    if (found == source_of.end()) throw error(tfield + ".source", "unknown source '" + tc.source + "'");
    Plan& p = plans[t];
    p.source = found->second;
    const SourceInfo& info = set.sources[p.source];
    const int64_t rows = info.rows;
    const RawImages& tr_raw = train[p.source];
    // A seeded test split indexes the train file; an own one its own file.
    const RawImages& te_raw = info.test_split == "own" ? own_test[p.source] : tr_raw;
    p.index = train_pool[p.source];
    p.test_index = test_pool[p.source];
    p.label = tr_raw.labels;
    p.test_label = te_raw.labels;

    // The cap applies at the first step that changes labels (label_remap, random_labels), so
    // that a relabelled variant holds the same inputs as its base, or else after all
    // transforms.
    bool capped = false;
    auto cap = [&] {
      if (!capped && job.n_per_task > 0) p.index = stratified(p.index, p.label, job.seed, p.source, job.n_per_task);
      capped = true;
    };

    for (size_t k = 0; k < tc.transforms.size(); ++k) {
      const std::string f = tfield + ".transforms[" + std::to_string(k) + "]";
      std::visit(overloaded{
        [&](const transform::ClassSubset& tr) {
          if (tr.classes.empty()) throw error(f + ".classes", "empty, expected at least one class");
          std::vector<char> keep(static_cast<size_t>(rows), 0);
          const std::vector<int64_t> present = classes_of(p.index, p.label);
          for (int64_t c : tr.classes) {
            if (c < 0 || c >= rows)
              throw error(f + ".classes", "class " + std::to_string(c) + " not in source '" + tc.source +
                                              "' (labels 0.." + std::to_string(rows - 1) + ")");
            if (!std::binary_search(present.begin(), present.end(), c))
              throw error(f + ".classes", "class " + std::to_string(c) + " has no samples in task '" + tc.name +
                                              "' (its classes here: " + list(present) + ")");
            keep[static_cast<size_t>(c)] = 1;
          }
          auto filter = [&keep](std::vector<int64_t>& index, const std::vector<int64_t>& label) {
            std::vector<int64_t> kept;
            for (int64_t i : index)
              if (keep[static_cast<size_t>(label[static_cast<size_t>(i)])]) kept.push_back(i);
            index = std::move(kept);
          };
          filter(p.index, p.label);
          filter(p.test_index, p.test_label);
        },
        [&](const transform::LabelRemap& tr) {
          cap();
          if (static_cast<int64_t>(tr.map.size()) != rows)
            throw error(f + ".map", "task '" + tc.name + "': " + std::to_string(tr.map.size()) + " entries, expected " +
                                        std::to_string(rows) + " (one per class of label space '" + info.label_space +
                                        "')");
          for (size_t c = 0; c < tr.map.size(); ++c)
            if (tr.map[c] < 0 || tr.map[c] >= rows)
              throw error(f + ".map", "map[" + std::to_string(c) + "] = " + std::to_string(tr.map[c]) +
                                          " outside label space '" + info.label_space + "' (0.." +
                                          std::to_string(rows - 1) + ")");
          for (auto* labels : {&p.label, &p.test_label})
            for (int64_t& l : *labels) l = tr.map[static_cast<size_t>(l)];
        },
        [&](const transform::RandomLabels& tr) {
          cap();
          const auto n = static_cast<int64_t>(p.index.size());
          const int64_t count =
              tr.count >= 0 ? tr.count : static_cast<int64_t>(std::llround(tr.fraction * static_cast<double>(n)));
          if (tr.count < 0 && !(tr.fraction >= 0.0 && tr.fraction <= 1.0))
            throw error(f + ".fraction", "expected a value in [0, 1], got " + num(tr.fraction));
          if (count > n)
            throw error(f + ".count", "task '" + tc.name + "': " + std::to_string(count) + " random labels but only " +
                                          std::to_string(n) + " samples");
          const std::vector<int64_t> classes = classes_of(p.index, p.label);
          if (count > 0 && classes.size() < 2)
            throw error(f, "task '" + tc.name + "' has one class; random labels need at least two");
          // The `count` samples of lowest hash rank (nested in the count), each given one of
          // the task's other classes, uniformly.
          const uint64_t stream = chain(chain(chain(mix(job.seed), kRandomLabelTag), tr.seed), p.source);
          std::vector<std::pair<uint64_t, int64_t>> ranked;
          for (int64_t i : p.index) ranked.emplace_back(chain(stream, static_cast<uint64_t>(i)), i);
          std::nth_element(ranked.begin(), ranked.begin() + count, ranked.end());
          const auto K = static_cast<uint64_t>(classes.size());
          for (int64_t j = 0; j < count; ++j) {
            const auto [h, i] = ranked[static_cast<size_t>(j)];
            int64_t& l = p.label[static_cast<size_t>(i)];
            const auto at = static_cast<uint64_t>(std::lower_bound(classes.begin(), classes.end(), l) - classes.begin());
            l = classes[static_cast<size_t>((at + 1 + mix(h) % (K - 1)) % K)];
            p.randomised.push_back(i);
          }
        },
        [&](const transform::Invert&) { p.steps.push_back({'i', 0.0, 0}); },
        [&](const transform::Blur& tr) {
          // Past the image size a wider blur is nearly uniform but costs O(σ) per pixel.
          const double limit = static_cast<double>(std::max(set.height, set.width));
          if (!(tr.sigma > 0.0) || !(tr.sigma <= limit))
            throw error(f + ".sigma", "task '" + tc.name + "': blur sigma " + num(tr.sigma) +
                                          ", expected 0 < sigma <= " + num(limit) + " (pixels)");
          p.steps.push_back({'b', tr.sigma, 0});
        },
        [&](const transform::Noise& tr) {
          if (!(tr.sigma > 0.0) || !std::isfinite(tr.sigma))
            throw error(f + ".sigma", "task '" + tc.name + "': noise sigma " + num(tr.sigma) + ", expected > 0");
          p.steps.push_back({'n', tr.sigma, tr.seed});
        },
        [&](const transform::Subsample& tr) {
          if (tr.n < 1) throw error(f + ".n", "subsample n " + std::to_string(tr.n) + ", expected >= 1");
          p.index = stratified(p.index, p.label, job.seed, p.source, tr.n);
        }},
        tc.transforms[k]);
    }
    cap();
    if (job.n_test_per_task > 0)
      p.test_index = stratified(p.test_index, p.test_label, job.seed, p.source, job.n_test_per_task);
    if (p.index.empty()) throw error(tfield, "task '" + tc.name + "' has no samples after its transforms");
    // Only the relabelled samples the task still holds (a later subsample may drop some).
    std::sort(p.randomised.begin(), p.randomised.end());
    p.randomised.erase(std::unique(p.randomised.begin(), p.randomised.end()), p.randomised.end());
    std::vector<int64_t> held;
    std::set_intersection(p.randomised.begin(), p.randomised.end(), p.index.begin(), p.index.end(),
                          std::back_inserter(held));
    p.randomised = std::move(held);
    p.hash = input_hash(p.steps);
  }

  std::vector<DeviceBase> bases(n_src);  // of the train files, for the chain statistics
  set.tasks.resize(job.tasks.size());
  const size_t udim = static_cast<size_t>(dim);
  auto spec_of = [&](uint32_t s, int file) {
    const RawImages& raw = file == 1 ? own_test[s] : train[s];
    RenderSpec spec;
    spec.from = {raw.channels, raw.height, raw.width};
    spec.to = {set.channels, set.height, set.width};
    spec.fit = job.sources[s].fit == FitMode::pad ? data::Fit::pad : data::Fit::resize;
    spec.job_seed = job.seed;
    spec.source = s;
    spec.file = file;
    return spec;
  };
  // Head rows and keys of the samples `index` (ascending; source and hash fixed, so the keys
  // come out sorted).
  auto fill_labels = [](const std::vector<int64_t>& index, const std::vector<int64_t>& label, uint32_t s,
                        uint64_t hash, int64_t row_offset, std::vector<int64_t>& y, std::vector<SampleKey>& keys) {
    y.resize(index.size());
    keys.resize(index.size());
    for (size_t j = 0; j < index.size(); ++j) {
      y[j] = row_offset + label[static_cast<size_t>(index[j])];
      keys[j] = SampleKey{s, index[j], hash, y[j]};
    }
  };
  // Normalisation statistics per (source, input chain), over the source's whole train pool
  // after the chain: an inverted background pixel then has the same normalised value as a
  // plain one (per source alone it would be +2 instead of −0.8), and an image has the same
  // values in every task that holds it. A chain without steps keeps the source's own
  // statistics. Computed in chunks, summed in double in a fixed order.
  std::map<std::pair<uint32_t, uint64_t>, data::PixelStats> chain_stat;
  auto chain_stats = [&](uint32_t s, uint64_t hash, const std::vector<InputStep>& steps) -> const data::PixelStats& {
    if (steps.empty()) return stats[s];
    auto it = chain_stat.find({s, hash});
    if (it != chain_stat.end()) return it->second;
    constexpr size_t kChunk = 2048;
    const std::vector<int64_t>& pool = train_pool[s];
    std::vector<float> buf;
    double sum = 0.0, sum2 = 0.0;
    for (size_t at = 0; at < pool.size(); at += kChunk) {
      const std::vector<int64_t> need(pool.begin() + long(at), pool.begin() + long(std::min(pool.size(), at + kChunk)));
      buf.resize(need.size() * udim);
      const data::HostImages out(buf.data(), need.size(), static_cast<size_t>(set.channels),
                                 static_cast<size_t>(set.height), static_cast<size_t>(set.width));
      const data::Images x = data::device_view(out);
      render(train[s], bases[s], need, need, steps, spec_of(s, 0), x);
      data::copy_back(x, out);
      for (float v : buf) {
        sum += double(v);
        sum2 += double(v) * double(v);
      }
    }
    const double count = double(pool.size()) * double(udim);
    data::PixelStats st;
    st.mean = sum / count;
    const double var = std::max(sum2 / count - st.mean * st.mean, 0.0);
    st.std = var > 0 ? std::sqrt(var) : 1.0;
    return chain_stat.emplace(std::make_pair(s, hash), st).first->second;
  };
  // Features: every split renders from the images of its source file that some task holds,
  // kept once as stored (HeldOut); a header keeps the recipe, a rendered task its features too.
  auto hold = [&](const RawImages& raw, std::vector<int64_t> index) {
    std::sort(index.begin(), index.end());
    index.erase(std::unique(index.begin(), index.end()), index.end());
    auto h = std::make_shared<HeldOut>();
    RawImages& kept = h->raw;
    kept.n = static_cast<int64_t>(index.size());
    kept.channels = raw.channels;
    kept.height = raw.height;
    kept.width = raw.width;
    const auto rdim = static_cast<size_t>(raw.dim());
    if (raw.is_float()) kept.values.reserve(index.size() * rdim);
    else kept.pixels.reserve(index.size() * rdim);
    for (int64_t i : index) {
      const auto at = static_cast<long>(static_cast<size_t>(i) * rdim);
      const auto end = at + static_cast<long>(rdim);
      if (raw.is_float()) kept.values.insert(kept.values.end(), raw.values.begin() + at, raw.values.begin() + end);
      else kept.pixels.insert(kept.pixels.end(), raw.pixels.begin() + at, raw.pixels.begin() + end);
    }
    h->index = std::move(index);
    return std::shared_ptr<const HeldOut>(std::move(h));
  };
  std::map<uint32_t, std::vector<int64_t>> train_need, test_need;
  for (const Plan& p : plans) {
    auto& tn = train_need[p.source];
    tn.insert(tn.end(), p.index.begin(), p.index.end());
    auto& te = test_need[p.source];
    te.insert(te.end(), p.test_index.begin(), p.test_index.end());
  }
  std::map<uint32_t, std::shared_ptr<const HeldOut>> held_train, held_test;
  for (auto& [s, need] : train_need) held_train[s] = hold(train[s], std::move(need));
  for (auto& [s, need] : test_need)
    if (!need.empty())
      held_test[s] = hold(set.sources[s].test_split == "own" ? own_test[s] : train[s], std::move(need));

  for (size_t t = 0; t < plans.size(); ++t) {
    const Plan& p = plans[t];
    const uint32_t s = p.source;
    const SourceInfo& info = set.sources[s];
    Task& task = set.tasks[t];
    task.name = job.tasks[t].name;
    task.dim = dim;
    task.active_rows.resize(static_cast<size_t>(info.rows));
    for (int64_t r = 0; r < info.rows; ++r) task.active_rows[static_cast<size_t>(r)] = info.row_offset + r;
    task.random_label_indices = p.randomised;
    fill_labels(p.index, p.label, s, p.hash, info.row_offset, task.y, task.keys);
    task.identity = identity_of(task.keys);
    const data::PixelStats& st = chain_stats(s, p.hash, p.steps);
    auto images = std::make_shared<SplitImages>();
    images->held = held_train.at(s);
    images->steps = p.steps;
    images->spec = spec_of(s, 0);
    images->stats = st;
    task.digests = sample_digests(*images, task.keys, p.hash);
    task.images = std::move(images);
    if (features == Features::render)
      task.x = render_split(*task.images, task.keys, all_rows(task.keys.size()), dim, task.name);

    if (p.test_index.empty()) continue;
    fill_labels(p.test_index, p.test_label, s, p.hash, info.row_offset, task.y_test, task.test_keys);
    auto test = std::make_shared<SplitImages>();
    test->held = held_test.at(s);
    test->steps = p.steps;
    test->spec = spec_of(s, info.test_split == "own" ? 1 : 0);
    test->stats = st;
    uint64_t h = 0x7465737473706c31ull;  // "testspl1"
    for (uint64_t d : sample_digests(*test, task.test_keys, p.hash)) h = chain(h, d);
    for (int64_t y : task.y_test) h = chain(h, static_cast<uint64_t>(y));
    task.test_digest = h;
    task.test_images = std::move(test);
  }
  return set;
}

Task unite(const Task& a, const Task& b, const std::string& name) {
  if (a.size() > 0 && b.size() > 0 && a.dim != b.dim)
    throw std::invalid_argument("unite: tasks '" + a.name + "' and '" + b.name + "' have different dims");
  if (!std::is_sorted(a.keys.begin(), a.keys.end()) || !std::is_sorted(b.keys.begin(), b.keys.end()))
    throw std::invalid_argument("unite: keys of '" + a.name + "' or '" + b.name + "' are not sorted");
  const bool features = a.has_features() && b.has_features();
  if (!features && ((a.size() > 0 && a.has_features()) || (b.size() > 0 && b.has_features())))
    throw std::invalid_argument("unite: '" + a.name + "' and '" + b.name + "': a header and a task with features");
  const bool digests = a.digests.size() == a.keys.size() && b.digests.size() == b.keys.size();
  Task u;
  u.name = name;
  u.dim = a.size() > 0 ? a.dim : b.dim;
  const size_t dim = static_cast<size_t>(u.dim);
  auto take = [&u, dim, features, digests](const Task& t, size_t i) {
    if (!u.keys.empty() && u.keys.back() == t.keys[i]) return;  // a repeated key in one input
    u.keys.push_back(t.keys[i]);
    u.y.push_back(t.y[i]);
    if (digests) u.digests.push_back(t.digests[i]);
    if (features)
      u.x.insert(u.x.end(), t.x.begin() + static_cast<std::ptrdiff_t>(i * dim),
                 t.x.begin() + static_cast<std::ptrdiff_t>((i + 1) * dim));
  };
  size_t i = 0, j = 0;
  while (i < a.keys.size() || j < b.keys.size()) {
    if (j == b.keys.size() || (i < a.keys.size() && a.keys[i] < b.keys[j])) {
      take(a, i++);
    } else if (i == a.keys.size() || b.keys[j] < a.keys[i]) {
      take(b, j++);
    } else {  // the same key in both: same input, same label, same features
      take(a, i++);
      ++j;
    }
  }
  std::set_union(a.active_rows.begin(), a.active_rows.end(), b.active_rows.begin(), b.active_rows.end(),
                 std::back_inserter(u.active_rows));
  u.identity = identity_of(u.keys);
  return u;
}

int64_t count_conflicts(const Task& t) {
  std::vector<SampleKey> keys = t.keys;
  if (!std::is_sorted(keys.begin(), keys.end())) std::sort(keys.begin(), keys.end());
  auto same_input = [](const SampleKey& a, const SampleKey& b) {
    return a.source == b.source && a.index == b.index && a.input_hash == b.input_hash;
  };
  int64_t conflicts = 0;
  for (size_t lo = 0; lo < keys.size();) {
    size_t hi = lo + 1;
    bool two_labels = false;
    while (hi < keys.size() && same_input(keys[lo], keys[hi])) two_labels |= keys[hi++].label != keys[lo].label;
    conflicts += two_labels;
    lo = hi;
  }
  return conflicts;
}

ShardRange shard_range(int64_t n, int rank, int ranks) {
  if (ranks < 1 || rank < 0 || rank >= ranks)
    throw std::invalid_argument("shard_range: rank " + std::to_string(rank) + " of " + std::to_string(ranks));
  const int64_t base = n / ranks, extra = n % ranks, r = rank;
  ShardRange s;
  s.begin = r * base + std::min(r, extra);
  s.end = s.begin + base + (r < extra ? 1 : 0);
  return s;
}

uint64_t fingerprint(const TaskSet& set) {
  uint64_t h = chain(0x66696e6765727031ull, static_cast<uint64_t>(set.k_tot));  // "fingerp1"
  auto words = [&h](const void* p, size_t bytes) {
    const auto* b = static_cast<const uint8_t*>(p);
    size_t i = 0;
    for (; i + 8 <= bytes; i += 8) {
      uint64_t w;
      std::memcpy(&w, b + i, 8);
      h = chain(h, w);
    }
    uint64_t tail = 0;
    if (bytes > i) std::memcpy(&tail, b + i, bytes - i);
    h = chain(h, tail ^ (bytes << 56));
  };
  for (const Task& t : set.tasks) {
    h = chain(h, t.identity);
    words(t.x.data(), t.x.size() * sizeof(float));
    words(t.y.data(), t.y.size() * sizeof(int64_t));
    words(t.digests.data(), t.digests.size() * sizeof(uint64_t));
    h = chain(chain(h, identity_of(t.test_keys)), t.test_digest);
  }
  return h;
}

std::string describe_tasks(const JobConfig& job, const TaskSet& set) {
  std::ostringstream o;
  auto rows = [](int64_t off, int64_t n) { return std::to_string(off) + ".." + std::to_string(off + n - 1); };

  o << "sources\n";
  o << "  " << std::left << std::setw(16) << "name" << std::setw(9) << "format" << std::right << std::setw(8)
    << "train" << std::setw(8) << "test" << "  " << std::left << std::setw(7) << "split" << std::setw(10)
    << "shape" << std::setw(16) << "label space" << std::setw(8) << "rows"
    << "mean/std\n";
  for (const SourceInfo& s : set.sources) {
    char stat[48];
    std::snprintf(stat, sizeof stat, "%.4f/%.4f", s.mean, s.std);
    o << "  " << std::left << std::setw(16) << s.name << std::setw(9) << to_string(s.format) << std::right << std::setw(8)
      << s.n_train << std::setw(8) << s.n_test << "  " << std::left << std::setw(7) << s.test_split << std::setw(10)
      << shape_str(s.channels, s.height, s.width) << std::setw(16) << s.label_space << std::setw(8)
      << rows(s.row_offset, s.rows) << stat << "\n";
  }
  for (const auto& w : set.warnings) o << "warning: " << w << "\n";

  // Conflicts on keys alone: every (input, label, task), grouped by input.
  struct Entry {
    SampleKey key;
    size_t task;
  };
  std::vector<Entry> all;
  for (size_t t = 0; t < set.tasks.size(); ++t)
    for (const auto& k : set.tasks[t].keys) all.push_back({k, t});
  std::sort(all.begin(), all.end(), [](const Entry& a, const Entry& b) {
    return std::tie(a.key, a.task) < std::tie(b.key, b.task);
  });
  std::vector<int64_t> task_conflicts(set.tasks.size(), 0);
  std::map<std::pair<size_t, size_t>, int64_t> pair_conflicts;
  for (size_t lo = 0; lo < all.size();) {
    size_t hi = lo + 1;
    while (hi < all.size() && all[hi].key.source == all[lo].key.source && all[hi].key.index == all[lo].key.index &&
           all[hi].key.input_hash == all[lo].key.input_hash)
      ++hi;
    std::set<size_t> in_conflict;
    std::set<std::pair<size_t, size_t>> pairs;
    for (size_t a = lo; a < hi; ++a)
      for (size_t b = a + 1; b < hi; ++b)
        if (all[a].key.label != all[b].key.label && all[a].task != all[b].task) {
          in_conflict.insert(all[a].task);
          in_conflict.insert(all[b].task);
          pairs.insert(std::minmax(all[a].task, all[b].task));
        }
    for (size_t t : in_conflict) ++task_conflicts[t];
    for (const auto& pr : pairs) ++pair_conflicts[pr];
    lo = hi;
  }

  o << "tasks (input " << shape_str(set.channels, set.height, set.width) << ", K_tot = " << set.k_tot << ")\n";
  o << "  " << std::left << std::setw(20) << "name" << std::setw(16) << "source" << std::right << std::setw(8)
    << "samples" << std::setw(7) << "test" << std::setw(8) << "classes" << "  " << std::left << std::setw(10)
    << "input" << std::setw(16) << "label space" << std::setw(10) << "head rows" << std::right << std::setw(9)
    << "conflicts\n";
  for (size_t t = 0; t < set.tasks.size(); ++t) {
    const Task& task = set.tasks[t];
    const std::string& src = t < job.tasks.size() ? job.tasks[t].source : "";
    const SourceInfo* info = nullptr;
    for (const auto& s : set.sources)
      if (s.name == src) info = &s;
    std::set<int64_t> classes(task.y.begin(), task.y.end());
    const std::string head =
        task.active_rows.empty() ? "-" : rows(task.active_rows.front(), static_cast<int64_t>(task.active_rows.size()));
    o << "  " << std::left << std::setw(20) << task.name << std::setw(16) << src << std::right << std::setw(8)
      << task.size() << std::setw(7) << task.test_size() << std::setw(8) << classes.size() << "  " << std::left
      << std::setw(10) << shape_str(set.channels, set.height, set.width) << std::setw(16)
      << (info ? info->label_space : "") << std::setw(10) << head << std::right << std::setw(8)
      << task_conflicts[t] << "\n";
    if (!task.random_label_indices.empty())
      o << "    random labels on " << task.random_label_indices.size() << " samples\n";
  }
  if (pair_conflicts.empty()) {
    o << "conflicting labels: none in any union of two tasks\n";
  } else {
    o << "conflicting labels (inputs with two labels in the union):\n";
    for (const auto& [pr, c] : pair_conflicts)
      o << "  " << set.tasks[pr.first].name << " + " << set.tasks[pr.second].name << ": " << c << "\n";
  }
  return o.str();
}

}  // namespace taskreach
