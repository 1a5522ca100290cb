#pragma once
// What each fuzz target does with one input, shared by the libFuzzer targets (fuzz_*.cpp)
// and the regression test (tests/unit/test_fuzz_regressions.cpp), so that a saved input
// replays exactly as the fuzzer ran it.
//
// An input is a few parameter bytes then file contents. The readers take paths, so the
// contents are written to files in `dir` (/dev/shm for the fuzzers). Bad input must end in a
// taskreach::InputError, which is left to the caller; a result that breaks the reader's
// contract throws ContractError; anything else (a crash, a sanitizer report, another
// exception) is a finding.
//
//   idx:   [flags][num_classes][split lo][split hi] images... | labels...
//          flags bit 0: transpose (EMNIST); split: bytes of the image file, the rest labels
//   cifar: [mode][num_classes][split lo][split hi] batch 1... | batch 2...
//          mode % 3: cifar10, cifar100 fine, cifar100 coarse; split 0 or past the end: one file
//   csv:   [label_column (int8)][flags][num_classes][skip_rows][scale (f64 LE)]
//          [C (i64 LE)][H (i64 LE)][W (i64 LE)] text...
//          flags bit 0: letter labels, bit 1: use shape [C, H, W]; scale and shape are mapped
//          into what the job parser accepts (> 0, >= 1)
//   job:   the TOML text of a job file
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#include "taskreach/config.hpp"
#include "taskreach/data.hpp"

namespace taskreach::fuzz {

struct ContractError : std::logic_error {
  using std::logic_error::logic_error;
};

inline void require(bool ok, const std::string& what) {
  if (!ok) throw ContractError(what);
}

inline void write_file(const std::string& path, const uint8_t* data, size_t size) {
  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (!f) throw std::runtime_error("cannot write " + path);
  const size_t put = size ? std::fwrite(data, 1, size, f) : 0;
  const bool ok = std::fclose(f) == 0 && put == size;
  if (!ok) throw std::runtime_error("cannot write " + path);
}

template <typename T>
T load_le(const uint8_t* p) {
  uint64_t v = 0;
  for (size_t i = 0; i < sizeof(T); ++i) v |= uint64_t{p[i]} << (8 * i);
  T out;
  std::memcpy(&out, &v, sizeof(T));
  return out;
}

// Shape, sizes and labels agree with each other and with the declared classes.
inline void check_raw(const RawImages& r, int64_t classes) {
  require(r.n >= 0 && r.channels >= 1 && r.height >= 1 && r.width >= 1, "bad shape");
  require(r.labels.size() == static_cast<size_t>(r.n), "labels.size() != n");
  const size_t want = static_cast<size_t>(r.n) * static_cast<size_t>(r.dim());
  require(r.pixels.size() + r.values.size() == want, "payload size != n*C*H*W");
  require(r.pixels.empty() || r.values.empty(), "both pixels and values");
  for (int64_t y : r.labels) require(y >= 0 && (classes <= 0 || y < classes), "label out of range");
  for (float v : r.values) require(std::isfinite(v), "non-finite feature");
}

inline void run_idx(const uint8_t* data, size_t size, const std::string& dir) {
  if (size < 4) return;
  SourceConfig s;
  s.name = "fuzz";
  s.format = SourceFormat::idx;
  s.transpose = data[0] & 1;
  s.num_classes = data[1];
  size_t split = load_le<uint16_t>(data + 2);
  data += 4, size -= 4;
  if (split > size) split = size;
  s.train_images = dir + "/images";
  s.train_labels = dir + "/labels";
  write_file(s.train_images, data, split);
  write_file(s.train_labels, data + split, size - split);
  const RawImages r = read_source(s, false);
  check_raw(r, s.num_classes);
  require(r.channels == 1 && r.values.empty(), "idx: expected one channel of pixels");
}

inline void run_cifar(const uint8_t* data, size_t size, const std::string& dir) {
  if (size < 4) return;
  SourceConfig s;
  s.name = "fuzz";
  const int mode = data[0] % 3;
  s.format = mode == 0 ? SourceFormat::cifar10 : SourceFormat::cifar100;
  s.cifar_label = mode == 2 ? CifarLabel::coarse : CifarLabel::fine;
  s.num_classes = data[1];
  size_t split = load_le<uint16_t>(data + 2);
  data += 4, size -= 4;
  if (split == 0 || split >= size) split = size;
  s.train_files.push_back(dir + "/batch1");
  write_file(s.train_files.back(), data, split);
  if (split < size) {
    s.train_files.push_back(dir + "/batch2");
    write_file(s.train_files.back(), data + split, size - split);
  }
  const RawImages r = read_source(s, false);
  check_raw(r, s.num_classes > 0 ? s.num_classes : mode == 0 ? 10 : mode == 1 ? 100 : 20);
  require(r.channels == 3 && r.height == 32 && r.width == 32, "cifar: expected 3x32x32");
}

constexpr size_t kCsvHeader = 4 + 8 + 3 * 8;

inline void run_csv(const uint8_t* data, size_t size, const std::string& dir) {
  if (size < kCsvHeader) return;
  SourceConfig s;
  s.name = "fuzz";
  s.format = SourceFormat::csv;
  s.label_column = static_cast<int8_t>(data[0]);
  s.label_format = data[1] & 1 ? LabelFormat::letter : LabelFormat::integer;
  s.num_classes = data[2];
  s.skip_rows = data[3] % 4;
  const double scale = load_le<double>(data + 4);
  s.scale = scale > 0 && std::isfinite(scale) ? scale : 1.0;  // the parser's rule: > 0
  if (data[1] & 2)
    for (int k = 0; k < 3; ++k) {
      const int64_t d = load_le<int64_t>(data + 12 + 8 * k);
      s.shape.push_back(d >= 1 ? d : 1);  // the parser's rule: >= 1, no upper bound
    }
  data += kCsvHeader, size -= kCsvHeader;
  s.train_files.push_back(dir + "/table.csv");
  write_file(s.train_files.back(), data, size);
  const RawImages r = read_source(s, false);
  const int64_t classes = s.num_classes > 0 ? s.num_classes : s.label_format == LabelFormat::letter ? 26 : 0;
  check_raw(r, classes);
  require(r.pixels.empty(), "csv: expected float values");
}

// The documented ranges of every number the parser accepts (README, "Job files").
inline void check_job(const JobConfig& j) {
  auto finite_pos = [](double v) { return std::isfinite(v) && v > 0; };
  auto finite_nonneg = [](double v) { return std::isfinite(v) && v >= 0; };
  require(j.ranks_per_task >= 1 && j.n_per_task >= 0 && j.n_test_per_task >= 0, "job: counts");
  auto shape_ok = [](const std::vector<int64_t>& s) {
    return s.empty() || (s.size() == 3 && s[0] >= 1 && s[1] >= 1 && s[2] >= 1 &&
                         s[0] <= (int64_t{1} << 31) / s[1] / s[2]);
  };
  require(shape_ok(j.input_shape), "job: input_shape");
  const auto& t = j.train;
  require(finite_pos(t.lr) && finite_pos(t.grad_tol) && finite_pos(t.factor), "train: lr, grad_tol, factor");
  require(std::isfinite(t.momentum) && t.momentum >= 0 && t.momentum < 1, "train.momentum");
  require(t.weight_decay_auto || finite_nonneg(t.weight_decay), "train.weight_decay");
  require(finite_nonneg(t.loss_threshold), "train.loss_threshold");
  require(t.epochs >= 0 && t.batch_size >= 1 && t.seeds >= 1 && t.eval_every >= 1, "train: counts");
  const auto& f = j.finetune;
  require(finite_pos(f.lr) && std::isfinite(f.momentum) && f.momentum >= 0 && f.momentum < 1, "finetune: lr, momentum");
  require(finite_nonneg(f.loss_margin) && finite_nonneg(f.threshold), "finetune: margin, threshold");
  require(f.eval_every >= 1 && f.max_steps / 10 >= f.eval_every, "finetune: steps");
  const auto& c = j.complexity;
  require(finite_pos(c.beta) && finite_pos(c.lambda2) && finite_pos(c.eps_tol), "complexity: beta, lambda2, eps_tol");
  require(std::isfinite(j.logdet_c()) && j.logdet_c() > 0, "complexity: logdet_c");
  require(c.top_k >= 1 && c.probes >= 2 && c.lanczos_steps >= 2 && c.batch_size >= 1, "complexity: counts");
  require(!j.sources.empty() && !j.tasks.empty(), "job: sources and tasks");
  for (const auto& s : j.sources) {
    require(finite_pos(s.scale), "source.scale");
    require(std::isfinite(s.test_fraction) && s.test_fraction >= 0 && s.test_fraction < 1, "source.test_fraction");
    require(shape_ok(s.shape), "source.shape");
  }
  for (const auto& task : j.tasks)
    for (const auto& tr : task.transforms)
      std::visit(overloaded{[&](const transform::Blur& b) { require(finite_pos(b.sigma), "transform.sigma"); },
                            [&](const transform::Noise& n) { require(finite_pos(n.sigma), "transform.sigma"); },
                            [](const transform::RandomLabels& r) {
                              require(r.count >= 0 || (r.fraction >= 0 && r.fraction <= 1), "transform.fraction");
                            },
                            [](const transform::Subsample& s) { require(s.n >= 1, "transform.n"); },
                            [](const auto&) {}},
                 tr);
}

inline void run_job(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  check_job(parse_job(text, "fuzz.toml"));
}

}  // namespace taskreach::fuzz
