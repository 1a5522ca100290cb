// Tasks from sources: selection (class_subset, subsample, the n_per_task cap) works on
// base indices only, and input transforms (invert, blur) plus normalisation are applied
// once per (source, input chain) to the union of the images its tasks need. So a sample
// has the same bytes in every task that holds it, whatever else the job contains.
#include <algorithm>
#include <cstdio>
#include <cstring>
#include <iterator>
#include <map>
#include <stdexcept>
#include <string>
#include <tuple>
#include <utility>

#include "taskreach/data.hpp"
#include "transforms.hpp"

namespace taskreach {

bool SampleKey::operator<(const SampleKey& o) const {
  return std::tie(source, index, input_hash, label) < std::tie(o.source, o.index, o.input_hash, o.label);
}
bool SampleKey::operator==(const SampleKey& o) const {
  return std::tie(source, index, input_hash, label) == std::tie(o.source, o.index, o.input_hash, o.label);
}

namespace {

// splitmix64's output function: a cheap bijective mixer, stable across platforms.
uint64_t mix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}
uint64_t chain(uint64_t h, uint64_t v) { return mix(h ^ v); }

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

// An input transform as it enters the input hash: its kind and, for blur, the sigma bits.
struct InputStep {
  char kind;  // 'i' invert, 'b' blur
  double sigma;
};

uint64_t input_hash(const std::vector<InputStep>& steps) {
  uint64_t h = 0xcbf29ce484222325ull;  // FNV-1a, bytewise
  auto eat = [&h](const void* p, size_t n) {
    for (size_t i = 0; i < n; ++i) h = (h ^ static_cast<const uint8_t*>(p)[i]) * 0x100000001b3ull;
  };
  for (const auto& s : steps) {
    eat(&s.kind, 1);
    if (s.kind == 'b') eat(&s.sigma, sizeof s.sigma);
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

std::string shape_str(const RawImages& r) {
  return std::to_string(r.channels) + "x" + std::to_string(r.height) + "x" + std::to_string(r.width);
}

std::string num(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", v);
  return buf;
}

}  // namespace

TaskSet build_tasks(const JobConfig& job) {
  auto error = [&job](const std::string& field, const std::string& what) {
    return InputError(job.path + ": " + field + ": " + what);
  };

  // Sources, their normalisation statistics and the common shape.
  std::vector<RawImages> raw;
  std::vector<data::PixelStats> stats;
  std::map<std::string, uint32_t> source_of;
  for (size_t k = 0; k < job.sources.size(); ++k) {  // before any file is read
    const SourceConfig& sc = job.sources[k];
    const std::string field = "sources[" + std::to_string(k) + "]";
    if (sc.format != "idx")
      throw error(field + ".format", "unknown format '" + sc.format + "', expected one of: idx");
    if (!source_of.emplace(sc.name, static_cast<uint32_t>(k)).second)
      throw error(field + ".name", "duplicate source name '" + sc.name + "'");
  }
  for (size_t k = 0; k < job.sources.size(); ++k) {
    const SourceConfig& sc = job.sources[k];
    const std::string field = "sources[" + std::to_string(k) + "]";
    raw.push_back(read_idx_pair(sc.train_images, sc.train_labels));
    if (k > 0 && (raw[k].channels != raw[0].channels || raw[k].height != raw[0].height ||
                  raw[k].width != raw[0].width))
      throw error(field, "source '" + sc.name + "' has " + shape_str(raw[k]) + " images, expected " +
                             shape_str(raw[0]) + " like source '" + job.sources[0].name +
                             "' (all sources must share one shape)");
    stats.push_back(data::pixel_stats(raw[k].pixels));
  }

  TaskSet set;
  if (!raw.empty()) {
    set.channels = raw[0].channels;
    set.height = raw[0].height;
    set.width = raw[0].width;
  }
  const int64_t dim = set.channels * set.height * set.width;

  // Label spaces: one block of head rows each, in order of first appearance, as wide as
  // the largest label any of its sources uses.
  std::vector<int64_t> max_label(raw.size(), -1);
  std::vector<std::string> spaces;
  std::map<std::string, int64_t> space_rows;
  for (size_t k = 0; k < raw.size(); ++k) {
    for (int64_t l : raw[k].labels) max_label[k] = std::max(max_label[k], l);
    const SourceConfig& sc = job.sources[k];
    const std::string& sp = sc.label_space.empty() ? sc.name : sc.label_space;
    if (space_rows.emplace(sp, 0).second) spaces.push_back(sp);
    space_rows[sp] = std::max(space_rows[sp], max_label[k] + 1);
  }
  std::map<std::string, int64_t> space_offset;
  for (const auto& sp : spaces) {
    space_offset[sp] = set.k_tot;
    set.k_tot += space_rows[sp];
  }
  auto space_of = [&job](uint32_t s) -> const std::string& {
    const SourceConfig& sc = job.sources[s];
    return sc.label_space.empty() ? sc.name : sc.label_space;
  };

  // Selection per task: base indices and the input chain, no pixels touched yet.
  struct Plan {
    uint32_t source = 0;
    std::vector<InputStep> steps;
    uint64_t hash = 0;
    std::vector<int64_t> index;
  };
  std::vector<Plan> plans(job.tasks.size());
  for (size_t t = 0; t < job.tasks.size(); ++t) {
    const TaskConfig& tc = job.tasks[t];
    const std::string tfield = "tasks[" + std::to_string(t) + "]";
    const auto found = source_of.find(tc.source);
    if (found == source_of.end()) throw error(tfield + ".source", "unknown source '" + tc.source + "'");
    Plan& p = plans[t];
    p.source = found->second;
    const RawImages& r = raw[p.source];
    p.index.resize(static_cast<size_t>(r.n));
    for (int64_t i = 0; i < r.n; ++i) p.index[static_cast<size_t>(i)] = i;

    for (size_t k = 0; k < tc.transforms.size(); ++k) {
      const TransformConfig& tr = tc.transforms[k];
      const std::string f = tfield + ".transforms[" + std::to_string(k) + "]";
      if (tr.type == "class_subset") {
        if (tr.classes.empty()) throw error(f + ".classes", "empty, expected at least one class");
        std::vector<char> keep(static_cast<size_t>(max_label[p.source] + 1), 0);
        for (int64_t c : tr.classes) {
          if (c < 0 || c > max_label[p.source])
            throw error(f + ".classes", "class " + std::to_string(c) + " not in source '" + tc.source +
                                            "' (labels 0.." + std::to_string(max_label[p.source]) + ")");
          keep[static_cast<size_t>(c)] = 1;
        }
        std::vector<int64_t> kept;
        for (int64_t i : p.index)
          if (keep[static_cast<size_t>(r.labels[static_cast<size_t>(i)])]) kept.push_back(i);
        p.index = std::move(kept);
      } else if (tr.type == "invert") {
        p.steps.push_back({'i', 0.0});
      } else if (tr.type == "blur") {
        // Past the image size a wider blur is nearly uniform but costs O(σ) per pixel.
        const double limit = static_cast<double>(std::max(set.height, set.width));
        if (!(tr.sigma > 0.0) || !(tr.sigma <= limit))
          throw error(f + ".sigma", "task '" + tc.name + "': blur sigma " + num(tr.sigma) +
                                        ", expected 0 < sigma <= " + num(limit) + " (pixels)");
        p.steps.push_back({'b', tr.sigma});
      } else if (tr.type == "subsample") {
        if (tr.n < 1) throw error(f + ".n", "subsample n " + std::to_string(tr.n) + ", expected >= 1");
        p.index = stratified(p.index, r.labels, job.seed, p.source, tr.n);
      } else {
        throw error(f + ".type",
                    "unknown transform '" + tr.type + "', expected one of: class_subset, invert, blur, subsample");
      }
    }
    if (job.n_per_task > 0) p.index = stratified(p.index, r.labels, job.seed, p.source, job.n_per_task);
    if (p.index.empty()) throw error(tfield, "task '" + tc.name + "' has no samples after its transforms");
    p.hash = input_hash(p.steps);
  }

  // Features: one device pass per (source, input chain) over the union of its tasks'
  // images, written straight into the task when the chain has a single task.
  std::vector<data::BaseBytes> base(raw.size());
  std::map<std::pair<uint32_t, uint64_t>, std::vector<size_t>> groups;
  for (size_t t = 0; t < plans.size(); ++t) groups[{plans[t].source, plans[t].hash}].push_back(t);
  set.tasks.resize(job.tasks.size());
  const size_t udim = static_cast<size_t>(dim);
  for (const auto& [group, members] : groups) {
    const uint32_t s = group.first;
    std::vector<int64_t> need;
    for (size_t t : members) need.insert(need.end(), plans[t].index.begin(), plans[t].index.end());
    std::sort(need.begin(), need.end());
    need.erase(std::unique(need.begin(), need.end()), need.end());

    std::vector<float> shared;
    std::vector<float>& feats = members.size() == 1 ? set.tasks[members[0]].x : shared;
    feats.resize(need.size() * udim);
    const data::HostImages out(feats.data(), need.size(), static_cast<size_t>(set.channels),
                               static_cast<size_t>(set.height), static_cast<size_t>(set.width));
    if (!base[s].data()) base[s] = data::to_device(raw[s].pixels, dim);
    const data::Images x = data::device_view(out);
    data::to_float(base[s], need, x);
    for (const auto& st : plans[members.front()].steps) {
      if (st.kind == 'i') data::invert(x);
      else data::blur(x, st.sigma);
    }
    data::normalise(x, stats[s].mean, stats[s].std);
    data::copy_back(x, out);

    const int64_t offset = space_offset[space_of(s)];
    const int64_t rows = space_rows[space_of(s)];
    for (size_t t : members) {
      const Plan& p = plans[t];
      Task& task = set.tasks[t];
      task.name = job.tasks[t].name;
      task.dim = dim;
      const size_t n = p.index.size();
      if (&feats != &task.x) {
        task.x.resize(n * udim);
        for (size_t j = 0; j < n; ++j) {
          const size_t at = static_cast<size_t>(std::lower_bound(need.begin(), need.end(), p.index[j]) - need.begin());
          std::memcpy(task.x.data() + j * udim, feats.data() + at * udim, udim * sizeof(float));
        }
      }
      task.y.resize(n);
      task.keys.resize(n);
      // p.index is ascending and source and hash are fixed, so the keys come out sorted.
      for (size_t j = 0; j < n; ++j) {
        task.y[j] = offset + raw[s].labels[static_cast<size_t>(p.index[j])];
        task.keys[j] = SampleKey{s, p.index[j], p.hash, task.y[j]};
      }
      task.active_rows.resize(static_cast<size_t>(rows));
      for (int64_t r = 0; r < rows; ++r) task.active_rows[static_cast<size_t>(r)] = offset + r;
      task.identity = identity_of(task.keys);
    }
  }
  return set;
}

Task unite(const Task& a, const Task& b, const std::string& name) {
  if (a.size() > 0 && b.size() > 0 && a.dim != b.dim)
    throw std::invalid_argument("unite: tasks '" + a.name + "' and '" + b.name + "' have different dims");
  if (!std::is_sorted(a.keys.begin(), a.keys.end()) || !std::is_sorted(b.keys.begin(), b.keys.end()))
    throw std::invalid_argument("unite: keys of '" + a.name + "' or '" + b.name + "' are not sorted");
  Task u;
  u.name = name;
  u.dim = a.size() > 0 ? a.dim : b.dim;
  const size_t dim = static_cast<size_t>(u.dim);
  auto take = [&u, dim](const Task& t, size_t i) {
    if (!u.keys.empty() && u.keys.back() == t.keys[i]) return;  // a repeated key in one input
    u.keys.push_back(t.keys[i]);
    u.y.push_back(t.y[i]);
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

}  // namespace taskreach
