// Stored-result keys by effective inputs (issue 15): what one job's result depends on — its
// sample set's content, the model shape, the settings that reach it, the seed and the layout
// of what is stored — and nothing else: not the job file's text, the task order or the names.
#include <cstring>
#include <sstream>

#include "taskreach/experiments.hpp"
#include "taskreach/util.hpp"

namespace taskreach {
namespace {

// 64-bit words of a byte range, each mixed in (splitmix64): fast enough for every task's
// features once per run, and every bit reaches the whole hash.
uint64_t hash_words(uint64_t h, const void* data, size_t bytes) {
  const auto* p = static_cast<const unsigned char*>(data);
  size_t i = 0;
  for (; i + 8 <= bytes; i += 8) {
    uint64_t w;
    std::memcpy(&w, p + i, 8);
    h = util::chain(h, w);
  }
  uint64_t tail = 0;
  if (bytes > i) std::memcpy(&tail, p + i, bytes - i);  // never memcpy from an empty vector's null
  return util::chain(util::chain(h, tail), bytes);
}

template <typename T>
uint64_t hash_vector(uint64_t h, const std::vector<T>& v) {
  return hash_words(h, v.data(), v.size() * sizeof(T));
}

std::string ints(const std::vector<int64_t>& v) {
  std::string s = "[";
  for (auto x : v) s += std::to_string(x) + ",";
  return s + "]";
}

}  // namespace

uint64_t sample_set_key(const Task& t) {
  // What a training of the set sees, in the order it sees it: its samples' features (each as
  // the digest of its stored bytes and of the fit, input chain and normalisation that make its
  // features; a hand-made task without digests, its features), the labels as head rows, the
  // active rows, and the test split the test accuracy is taken on. Two tasks with equal content
  // share every result, whatever they are called and wherever they stand in the job file.
  uint64_t h = 0x73616d706c657332ull;  // "samples2"
  h = util::chain(h, uint64_t(t.dim));
  h = t.digests.size() == t.keys.size() && t.size() > 0 ? hash_vector(h, t.digests) : hash_vector(h, t.x);
  h = hash_vector(h, t.y);
  h = hash_vector(h, t.active_rows);
  h = util::chain(h, t.test_digest);
  h = hash_vector(h, t.y_test);
  return h;
}

std::string model_settings(const ModelShape& s) {
  std::ostringstream o;
  o << "model arch=" << to_string(s.arch) << " input=" << s.channels << "x" << s.height << "x" << s.width
    << " hidden=" << ints(s.hidden) << " conv=" << ints(s.conv) << " width=" << s.base_width
    << " norm=" << to_string(s.norm) << " activation=" << to_string(s.activation) << " k_tot=" << s.k_tot;
  return o.str();
}

// Every setting a measurement reads (train → polish → curvature → C_β), train.seeds aside: a
// second seed reuses the first seed's results. Doubles at full precision.
std::string measure_settings(const JobConfig& job) {
  const auto& t = job.train;
  const auto& c = job.complexity;
  std::ostringstream o;
  o.precision(17);
  o << "seed=" << job.seed << " train epochs=" << t.epochs << " steps=" << t.steps << " B=" << t.batch_size
    << " lr=" << t.lr << " momentum=" << t.momentum << " wd_auto=" << t.weight_decay_auto << " wd=" << t.weight_decay
    << " dtype=" << to_string(t.dtype) << " grad_tol=" << t.grad_tol << " polish=" << t.polish_iters
    << " schedule=" << to_string(t.schedule) << " milestones=" << ints(t.milestones) << " factor=" << t.factor
    << " eval_every=" << t.eval_every << " loss_threshold=" << t.loss_threshold << " complexity beta=" << c.beta
    << " lambda2=" << c.lambda2 << " scale=" << to_string(c.logdet_scale) << " curvature=" << to_string(c.curvature)
    << " top_k=" << c.top_k << " probes=" << c.probes << " lanczos=" << c.lanczos_steps << " B=" << c.batch_size
    << " eps_tol=" << c.eps_tol << " samples=" << c.samples << " polish_method=" << to_string(t.polish)
    << " top_k_auto=" << c.top_k_auto << " quadrature_check=" << c.quadrature_check
    << " lanczos_max=" << c.lanczos_max << " operator_dtype=" << to_string(c.dtype);
  // Not keyed: complexity.graph_samples (how many graphs are held in memory changes no product)
  // and probe_block (the probes of a block are advanced together, each as it would be alone).
  return o.str();
}

// Every setting the fine-tune protocol reads: [finetune] (but `enabled`), the SGD precision,
// the weight decay γ (train.weight_decay, β, λ²) and the job seed (initialisation, data order).
std::string finetune_settings(const JobConfig& job) {
  const auto& f = job.finetune;
  std::ostringstream o;
  o.precision(17);
  o << "seed=" << job.seed << " finetune lr=" << f.lr << " B=" << f.batch_size << " momentum=" << f.momentum
    << " eval_every=" << f.eval_every << " max_steps=" << f.max_steps << " margin=" << f.loss_margin
    << " threshold=" << f.threshold << " dtype=" << to_string(job.train.dtype)
    << " wd_auto=" << job.train.weight_decay_auto << " wd=" << job.train.weight_decay << " beta=" << job.complexity.beta
    << " lambda2=" << job.complexity.lambda2;
  return o.str();
}

uint64_t measure_key(const JobConfig& job, const ModelShape& shape, uint64_t sample_set, int64_t seed) {
  return util::hash_parts({kResultFormat, "measure", model_settings(shape), measure_settings(job),
                           util::hex16(sample_set), std::to_string(seed)});
}

uint64_t rerun_key(uint64_t measurement, int64_t min_steps) {
  return util::hash_parts({kResultFormat, "paired-rerun", util::hex16(measurement), std::to_string(min_steps)});
}

uint64_t scratch_key(const JobConfig& job, const ModelShape& shape, uint64_t sample_set) {
  return util::hash_parts({kFinetuneFormat, "scratch", model_settings(shape), finetune_settings(job),
                           util::hex16(sample_set)});
}

uint64_t finetune_key(const JobConfig& job, const ModelShape& shape, uint64_t target_set, uint64_t source_measure,
                      uint64_t target_scratch) {
  return util::hash_parts({kFinetuneFormat, "finetune", model_settings(shape), finetune_settings(job),
                           util::hex16(target_set), util::hex16(source_measure), util::hex16(target_scratch)});
}

}  // namespace taskreach
