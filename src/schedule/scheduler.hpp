#pragma once
// Internal to the schedule module: task groups over the world, a dynamic largest-first
// hand-out of work items, durable per-item results (resume) and a clean stop on signals.
#include <mpi.h>

#include <cstdint>
#include <functional>
#include <ostream>
#include <string>
#include <vector>

namespace taskreach::detail {

// One kind of work (all its items are independent): costs order the hand-out, keys name the
// durable result files (a hash of everything the result depends on), labels the progress.
struct Phase {
  std::string name;
  std::vector<double> cost;
  std::vector<uint64_t> key;
  std::vector<std::string> label;
};

class Scheduler {
 public:
  // `results_dir` holds one file per finished item; with `resume`, valid ones are reused.
  Scheduler(MPI_Comm world, int64_t ranks_per_task, std::string results_dir, bool resume, std::ostream* progress);
  ~Scheduler();
  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;

  MPI_Comm group() const { return group_; }
  int ranks_per_group() const { return g_; }
  int count() const { return count_; }
  bool dynamic() const { return dynamic_; }

  // Runs every item of the phase not already done (work(k) on this group; `reusable(k)` adds a
  // condition for reuse beyond a valid result file) and returns every item's result on every
  // rank. Throws Interrupted when a stop was requested; finished items stay durable.
  std::vector<std::vector<double>> run(const Phase& phase, const std::function<std::vector<double>(size_t)>& work,
                                       const std::function<bool(size_t)>& reusable = nullptr);

  int64_t computed() const { return computed_; }
  int64_t reused() const { return reused_; }
  double seconds() const { return seconds_; }  // wall time inside run(), all phases

 private:
  std::vector<double> read_result(uint64_t key) const;  // empty if missing or invalid
  void write_result(uint64_t key, const std::vector<double>& data) const;
  void serve(const Phase& phase, const std::vector<size_t>& todo, int64_t total, int64_t already);

  MPI_Comm world_, group_ = MPI_COMM_NULL, sched_ = MPI_COMM_NULL;
  int rank_ = 0, size_ = 1, g_ = 1, count_ = 1, color_ = 0, group_rank_ = 0;
  bool dynamic_ = false, resume_ = false;
  std::string dir_;
  std::ostream* progress_;
  int64_t computed_ = 0, reused_ = 0, stop_after_ = -1;
  double start_, seconds_ = 0;
};

// FNV-1a over the bytes of each part: keys of durable results.
uint64_t hash_parts(const std::vector<std::string>& parts);

}  // namespace taskreach::detail
