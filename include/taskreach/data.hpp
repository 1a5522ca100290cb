#pragma once
// Tasks from real data: sources, transforms, label spaces, sample keys and set unions.
// Torch-free: tasks are plain float arrays, shared by the training and curvature modules.
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "taskreach/config.hpp"

namespace taskreach {

// A split of a base source as read from disk: n samples of C×H×W values and integer
// labels. Image formats keep uint8 pixels (value = pixel/255); CSV keeps float features
// already divided by the source's `scale`. Exactly one of `pixels` and `values` is filled.
struct RawImages {
  int64_t n = 0, channels = 1, height = 0, width = 0;
  std::vector<uint8_t> pixels;  // n*C*H*W, row-major
  std::vector<float> values;    // n*C*H*W, row-major (CSV)
  std::vector<int64_t> labels;  // n
  int64_t dim() const { return channels * height * width; }
  bool is_float() const { return !values.empty(); }
};

// Every reader throws InputError naming the file and what was wrong (and the record or line
// where there is one); plain and gzip files are both accepted (zlib detects which).
// `num_classes` > 0 declares the classes: a label outside 0..num_classes−1 is an error.

// An IDX image/label pair (MNIST, Fashion-MNIST, KMNIST, EMNIST): magic and rank checked,
// big-endian dimensions, uint8 pixels, image and label counts cross-checked.
RawImages read_idx_pair(const std::string& images_path, const std::string& labels_path, int64_t num_classes = 0);

// CIFAR binary batches, concatenated in order: records of `label_bytes` label bytes (1 for
// CIFAR-10; 2 for CIFAR-100, coarse then fine) and 3·32·32 pixel bytes (R, G, B planes,
// rows top to bottom). `label_index` picks the label byte (CIFAR-100: 0 coarse, 1 fine).
RawImages read_cifar(const std::vector<std::string>& batches, int label_bytes, int label_index,
                     int64_t num_classes);

// CSV, one sample a line, comma-separated; every file of `files` is one more block of rows.
struct CsvFormat {
  int64_t label_column = -1;             // 0-based; negative counts from the end
  LabelFormat label_format = LabelFormat::integer;  // letter: A..Z or a..z → 0..25
  int64_t skip_rows = 0;                 // header lines at the top of each file
  std::vector<int64_t> shape;            // [C, H, W] of the features; empty: [1, 1, F]
  double scale = 1.0;                    // features are divided by it
  int64_t num_classes = 0;
};
RawImages read_csv(const std::vector<std::string>& files, const CsvFormat& format);

// Reads one split (train or test) of a configured source: the format's reader with the
// source's settings. `test` selects test_images/test_labels or test_files.
RawImages read_source(const SourceConfig& source, bool test);

// Identity of one sample: equal keys are the same (input, label) pair.
struct SampleKey {
  uint32_t source = 0;       // index of the base source in the job
  int64_t index = 0;         // index in the source's file(s) of that split (train keys: train)
  uint64_t input_hash = 0;   // hash of the input transform chain
  int64_t label = 0;         // global head row
  bool operator<(const SampleKey& o) const;
  bool operator==(const SampleKey& o) const;
};

// Where a split's features come from (defined in tasks.cpp): the source images it needs, as
// stored, and how they become features (fit, input chain, normalisation).
struct SplitImages;

// A task ready to train: n samples, features of length dim (normalised with the base
// source's statistics), labels as rows of the job's shared head, the active head rows.
// A *header* holds everything but the features (x empty): build_tasks(job, Features::on_demand)
// makes headers, with_features() renders a header's features when its job runs.
struct Task {
  std::string name;
  int64_t dim = 0;
  std::vector<float> x;           // n*dim; empty in a header
  std::vector<int64_t> y;         // n, in [0, k_tot)
  std::vector<SampleKey> keys;    // n, sorted
  // n, beside keys: a hash of each sample's stored bytes and of how they become its features,
  // so that a set's content key needs no features (and a union's comes from its members').
  std::vector<uint64_t> digests;
  std::vector<int64_t> active_rows;  // sorted head rows of the task's label space(s)
  uint64_t identity = 0;          // hash of the key set
  std::shared_ptr<const SplitImages> images;  // renders x (not for unions: unite their members)
  int64_t size() const { return static_cast<int64_t>(y.size()); }
  bool has_features() const { return static_cast<int64_t>(x.size()) == size() * dim; }

  // Held-out data of the same task, for test accuracy: the source's test split (its own
  // files, or the seeded share set by test_fraction) with the task's class_subset,
  // label_remap and input transforms applied, normalised with the *train* statistics, and
  // capped by n_test_per_task; never subsampled or relabelled at random. test_keys.index
  // is the index in the test split's file(s) (for a seeded split, in the source's file).
  // Empty when the source has no test split. unite() leaves it empty: a union is tested
  // on its members' test sets.
  // Only labels and keys are held: the features are rendered when asked for, from the
  // source's held-out images (kept once per source, as stored: bytes for image formats) and
  // the task's input chain, so that a run's memory does not grow by a test split per task.
  std::vector<int64_t> y_test;        // n_test
  std::vector<SampleKey> test_keys;   // n_test, sorted
  std::shared_ptr<const SplitImages> test_images;  // set when n_test > 0
  uint64_t test_digest = 0;           // of the test samples' bytes, rendering and labels
  int64_t test_size() const { return static_cast<int64_t>(y_test.size()); }
  // The normalised features of test samples `rows` (positions in y_test), rows.size()*dim
  // floats; the same values whichever rows are asked for together. Throws std::logic_error
  // for a row out of range or a task whose test split has no images behind it.
  std::vector<float> test_features(const std::vector<int64_t>& rows) const;
  std::vector<float> test_features() const;  // every row

  // random_labels: base indices (in the source's train file) whose label was replaced,
  // sorted; each label differs from the one it replaced. Empty otherwise and for unions.
  std::vector<int64_t> random_label_indices;
};

// What build_tasks made of each [[sources]] table: its shape, splits and statistics.
struct SourceInfo {
  std::string name, label_space;
  SourceFormat format = SourceFormat::idx;
  int64_t channels = 0, height = 0, width = 0;  // as stored, before fitting to input_shape
  int64_t n_train = 0, n_test = 0;
  std::string test_split;               // "own" (its own files), "seeded" or "none"
  std::vector<int64_t> test_indices;    // seeded: indices of the file held out, sorted
  int64_t row_offset = 0, rows = 0;     // the label space's block of head rows
  double mean = 0.0, std = 1.0;         // normalisation: pixel/255 (or value/scale) of train
};

struct TaskSet {
  int64_t k_tot = 0;
  int64_t channels = 0, height = 0, width = 0;  // the common input shape
  std::vector<Task> tasks;         // in job order
  std::vector<SourceInfo> sources; // in job order
  // Things a user should know but that are not errors (e.g. gaps in a label set), one line each.
  std::vector<std::string> warnings;
};

// Loads every source, applies the transforms and the n_per_task cap. Deterministic: the same
// job gives the same bytes on every rank and rank count. Throws InputError. `on_demand`: the
// tasks are headers, and the set keeps only the images some task holds, as stored (bytes for
// image formats), so that memory grows by a few bytes per sample and task rather than by
// 4·dim; `render`: every task's features too.
enum class Features { render, on_demand };
TaskSet build_tasks(const JobConfig& job, Features features = Features::render);

// The task with its features: `t` itself when it has them, else a copy with x rendered from
// its images. Throws std::logic_error for a header without images (a union: unite the
// members' features instead).
Task with_features(const Task& t);

// D_a ∪ D_b: distinct keys in sorted order; identity from the key set. Of two headers, a
// header; of two tasks with features, the features too.
Task unite(const Task& a, const Task& b, const std::string& name);

// Number of inputs (source, index, input hash) that carry two different labels.
int64_t count_conflicts(const Task& t);

// The share [begin, end) of n samples that rank r of a g-rank group holds: contiguous and
// balanced (sizes differ by at most one, the larger shares first).
struct ShardRange {
  int64_t begin = 0, end = 0;
  int64_t size() const { return end - begin; }
};
ShardRange shard_range(int64_t n, int rank, int ranks);

// A hash of every task's keys, labels and sample digests (train and test), and of its features
// where it holds them: equal on every rank when the data are built deterministically.
uint64_t fingerprint(const TaskSet& set);

// The validation table: sources (format, shape, splits) and tasks (name, source, samples,
// test samples, classes, input shape, label space, head rows, conflicts with other tasks),
// then the pairs of tasks whose union holds conflicting labels.
std::string describe_tasks(const JobConfig& job, const TaskSet& set);

}  // namespace taskreach
