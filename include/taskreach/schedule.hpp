#pragma once
// Work distribution (DESIGN §4): task groups over a communicator, a dynamic largest-first
// hand-out of independent work items, their results kept in the result store (resume), a
// clean stop on signals; and the simulator that replays measured costs on P ranks.
#include <mpi.h>

#include <cstdint>
#include <functional>
#include <ostream>
#include <stdexcept>
#include <string>
#include <vector>

#include "taskreach/results.hpp"

namespace taskreach {

// A run stopped by SIGTERM/SIGUSR1 at a safe point: what finished is kept in the work
// directory, and the same command with --resume carries on from there.
class Interrupted : public std::runtime_error {
 public:
  Interrupted(int64_t done, int64_t total)
      : std::runtime_error("stopped by a signal after " + std::to_string(done) + " of " + std::to_string(total) +
                           " jobs"),
        done(done), total(total) {}
  int64_t done, total;
};

// SIGTERM and SIGUSR1 (SLURM's warning before the time limit) ask for a stop at the next safe
// point (between jobs). Install once, in main.
void install_stop_handlers();
bool stop_requested();
// The line written to stderr the moment a stop signal arrives (on the rank that sets it, rank 0):
// even a run that never reaches a safe point (the launcher killing it after a lost rank) says
// how to resume. Set once before the work starts; at most 1 KiB.
void set_stop_announcement(const std::string& line);

struct RunOptions {
  std::string workdir;   // the store: checkpoints and durable per-job results (shared by all ranks)
  bool resume = true;    // reuse every valid stored result (keys name every input, so always safe)
  std::ostream* progress = nullptr;  // rank 0's progress lines
  // Shards: with shards > 0, only shard `shard` (0-based) of `shards` is computed into the
  // store and nothing is assembled. A job whose dependencies another shard computes waits up
  // to `wait_seconds` for them to appear in the store.
  int shard = 0, shards = 0;
  double wait_seconds = 0;
  bool merge = false;    // compute nothing: assemble from the store, fail naming what is missing
};

// One kind of work (all its items are independent): costs order the hand-out, keys name the
// stored results (a hash of everything the result depends on), labels the progress.
struct Phase {
  std::string name;
  std::vector<double> cost;
  std::vector<uint64_t> key;
  std::vector<std::string> label;
  std::vector<uint64_t> parent = {};  // optional: the stored result each item derives from (StoredInfo)
  // The status of a result, kept in the store's description of it (`taskreach store ls`).
  std::function<std::string(const std::vector<double>&)> status = nullptr;
  // Called on the group's first rank when this group's result of item k was dropped because
  // another writer stored the same key first (its result is then used instead).
  std::function<void(size_t)> dropped = nullptr;
};

// How items reach the task groups. `thread`: rank 0 serves requests from a helper thread
// (needs MPI_THREAD_MULTIPLE); `one_sided`: each group's first rank takes the next item from a
// shared counter on rank 0 (MPI_Fetch_and_op, passive target), no thread support needed;
// `single`: one group walks the list alone.
enum class HandOut { single, thread, one_sided };
const char* to_string(HandOut h);

class Scheduler {
 public:
  // The scheduler duplicates `comm` and owns the copy (and the task groups split from it).
  // `results_dir` holds one stored result per finished item; with `resume`, valid ones are
  // reused. `prefer`: the hand-out to use where several are possible. One-sided by default:
  // measured (bench_handout, 2 ranks, rank 0 busy) 1.4 µs per item against 2.3–3.7 ms for the
  // serving thread, which sleeps between polls and competes with rank 0's work for a core.
  Scheduler(MPI_Comm comm, int64_t ranks_per_task, std::string results_dir, bool resume, std::ostream* progress,
            HandOut prefer = HandOut::one_sided);
  ~Scheduler();
  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;

  MPI_Comm group() const { return group_; }
  int ranks_per_group() const { return g_; }
  int count() const { return count_; }
  HandOut hand_out() const { return hand_out_; }

  // Runs every item of the phase not already done (work(k) on this group; `reusable(k, info)`
  // adds a condition for reuse beyond a valid stored result) and returns every item's result
  // on every rank. Throws Interrupted when a stop was requested; finished items stay durable.
  std::vector<std::vector<double>> run(const Phase& phase, const std::function<std::vector<double>(size_t)>& work,
                                       const std::function<bool(size_t, const StoredInfo&)>& reusable = nullptr);

  int64_t computed() const { return computed_; }
  int64_t reused() const { return reused_; }
  // Results computed here but dropped because another writer stored the same job first.
  int64_t dropped() const { return dropped_; }
  // This run's writer id (equal on every rank): names the checkpoints it writes.
  uint64_t writer() const { return writer_; }
  const ResultStore& store() const { return store_; }
  double seconds() const { return seconds_; }  // wall time inside run(), all phases

  // ranks_per_task, task_groups, schedule; schedule_seconds, jobs_computed and jobs_reused are
  // added to what `out` holds, so several schedulers of one run sum up.
  void add_attributes(RunOutput& out) const;

  // Test-only fault injection: called on rank 0 with the number of items computed so far in
  // this process's schedulers; a test build raises SIGTERM from it.
  using AfterJobHook = void (*)(int64_t computed);
  static void set_after_job_hook(AfterJobHook hook);

 private:
  void serve(const Phase& phase, const std::vector<size_t>& todo, int64_t total, int64_t already);
  void after_job(int64_t computed_so_far) const;
  void report(const Phase& phase, const double* item, int64_t done, int64_t total, int64_t already) const;

  MPI_Comm comm_ = MPI_COMM_NULL, group_ = MPI_COMM_NULL;
  int rank_ = 0, size_ = 1, g_ = 1, count_ = 1, color_ = 0, group_rank_ = 0;
  HandOut hand_out_ = HandOut::single;
  bool resume_ = false;
  ResultStore store_;
  std::ostream* progress_;
  int64_t computed_ = 0, reused_ = 0, dropped_ = 0;
  uint64_t writer_ = 0;
  double start_, phase_start_ = 0, seconds_ = 0;
};

// The cost model of the hand-out order and of the shards, in per-sample gradient evaluations:
// a measurement is its SGD steps × batch, a quarter of its polish budget (L-BFGS iterations
// over all n samples: it stops at grad_tol) and its curvature products (top-k ≈ 3 products per
// eigenpair, the probes' Lanczos steps, 2 passes each); a scratch run always runs
// max_steps × batch; a fine-tune stops at θ_i, after a tenth of that on average. Calibrated on
// the demo (measured: single 18 s, union 42 s, scratch 1.5 s, fine-tune 0.1 s on average).
double predicted_measure_cost(int64_t n, int64_t sgd_steps, int64_t batch, int64_t polish_iters,
                              int64_t curvature_products, int64_t curvature_samples);
double predicted_finetune_cost(int64_t max_steps, int64_t batch, bool from_scratch);

// Deterministic shards of a job list, balanced by cost: which of `shards` shards computes each
// job. A job never lands in a shard before the shards of its dependencies (`deps`), so shards
// run one after another in index order always find what they need; the jobs others depend on
// fill the first shards, the rest go largest first to the least loaded shard allowed.
std::vector<int> assign_shards(const std::vector<double>& cost, const std::vector<std::vector<size_t>>& deps,
                               int shards);

// Predicted run of `tasks` tasks (0: as measured) on `ranks` ranks in groups of
// `ranks_per_task`, from the job costs measured in a result file: makespan (s), total work
// (rank-seconds, assuming ideal data-parallel speed-up within a group) and parallel efficiency
// work / (ranks × makespan).
struct SimulationResult {
  double makespan = 0, work = 0, efficiency = 0;
  int64_t jobs = 0;
  int groups = 0;
};
SimulationResult simulate_schedule(const RunOutput& measured, int ranks, int ranks_per_task, int64_t tasks,
                                   uint64_t seed = 1);

// The same run as `shards` shards (assign_shards over the drawn costs, the fine-tunes after
// their source and θ), each on ⌊groups/shards⌋ groups (at least one), all started at once:
// the longest shard is the wall time; a shard holds its groups only while it has work, so
// the group-seconds held drop from groups × makespan of the one wide job to the shards' sum.
struct ShardSimulation {
  SimulationResult whole;              // the one wide job
  std::vector<double> shard_makespan;  // each shard on its groups, phase after phase
  double longest = 0, held = 0;        // max shard makespan; Σ shard groups × makespan (group-s)
  double whole_held = 0;               // groups × makespan of the wide job (group-s)
  int groups_per_shard = 1;
  // The shards one after another, each on all the groups: each job a K-th as long.
  std::vector<double> wide_shard_makespan;
  double wide_total = 0;
};
ShardSimulation simulate_shards(const RunOutput& measured, int ranks, int ranks_per_task, int64_t tasks, int shards,
                                uint64_t seed = 1);

}  // namespace taskreach
