#pragma once
// Tasks from real data: sources, transforms, label spaces, sample keys and set unions.
// Torch-free: tasks are plain float arrays, shared by the training and curvature modules.
#include <cstdint>
#include <string>
#include <vector>

#include "taskreach/config.hpp"

namespace taskreach {

// A base source as read from disk: n images of C×H×W uint8 pixels, integer labels.
struct RawImages {
  int64_t n = 0, channels = 1, height = 0, width = 0;
  std::vector<uint8_t> pixels;  // n*C*H*W, row-major
  std::vector<int64_t> labels;  // n
};

// Reads an IDX image/label pair (plain or gzip, detected by magic). Throws InputError
// naming the file and what was wrong (magic, rank, counts disagree, truncated).
RawImages read_idx_pair(const std::string& images_path, const std::string& labels_path);

// Identity of one sample: equal keys are the same (input, label) pair.
struct SampleKey {
  uint32_t source = 0;       // index of the base source in the job
  int64_t index = 0;         // index in the base source's train split
  uint64_t input_hash = 0;   // hash of the input transform chain
  int64_t label = 0;         // global head row
  bool operator<(const SampleKey& o) const;
  bool operator==(const SampleKey& o) const;
};

// A task ready to train: n samples, features of length dim (normalised with the base
// source's statistics), labels as rows of the job's shared head, the active head rows.
struct Task {
  std::string name;
  int64_t dim = 0;
  std::vector<float> x;           // n*dim
  std::vector<int64_t> y;         // n, in [0, k_tot)
  std::vector<SampleKey> keys;    // n, sorted
  std::vector<int64_t> active_rows;  // sorted head rows of the task's label space(s)
  uint64_t identity = 0;          // hash of the key set
  int64_t size() const { return static_cast<int64_t>(y.size()); }
};

struct TaskSet {
  int64_t k_tot = 0;
  int64_t channels = 0, height = 0, width = 0;
  std::vector<Task> tasks;  // in job order
};

// Loads every source, applies the transforms and the n_per_task cap. Throws InputError.
TaskSet build_tasks(const JobConfig& job);

// D_a ∪ D_b: distinct keys in sorted order; identity from the key set.
Task unite(const Task& a, const Task& b, const std::string& name);

// Number of inputs (source, index, input hash) that carry two different labels.
int64_t count_conflicts(const Task& t);

}  // namespace taskreach
