#pragma once
// What a job runs, one file each under src/experiments/: the N×N reachability (the plan of
// unique sample sets × seeds, its phases and assembly) and the learning-dynamics experiments
// (paper §4.1, §4.3 and the critical periods of its reference [1]) — `convergence`,
// `potential` and `critical_period` — all scheduled over task groups with stored results.
#include <mpi.h>

#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "taskreach/complexity.hpp"
#include "taskreach/config.hpp"
#include "taskreach/data.hpp"
#include "taskreach/results.hpp"
#include "taskreach/schedule.hpp"

namespace taskreach {

struct Plan {
  int64_t n_tasks = 0;
  int64_t d = 0;                        // parameters of every model of the job
  // Singles first, in task order. Each holds its sample set's header only (names, keys, labels,
  // head rows: no features, no test split): job_task() builds the features again from the
  // member tasks when the job runs, so a rank holds the N tasks and the job it runs, never the
  // N(N − 1)/2 unions.
  std::vector<PlannedJob> jobs;
  std::vector<std::vector<int64_t>> members;  // [job]: its task indices (one, or a union's two)
  std::vector<uint64_t> content;        // [job]: sample_set_key of its whole sample set
  std::vector<std::vector<int64_t>> job_of;  // [i][j]: job of D_i ∪ D_j; [i][i] = single i
  int64_t seeds = 1;
  int64_t work_items() const { return static_cast<int64_t>(jobs.size()) * seeds; }
};

Plan make_plan(const JobConfig& job, const TaskSet& tasks);

// Job j of the plan with its features (and, for a single, its test split): the task itself,
// or the union of its two members, built now.
PlannedJob job_task(const Plan& plan, size_t j, const TaskSet& tasks);

// --- Stored-result keys by effective inputs (keys.cpp). A job's key names what that job
// alone depends on: its sample set's content (features after every transform, labels as head
// rows, active rows, test split), the model shape, the settings that reach it, the seed and
// the layout of the stored result; never the job file's text, the task order or the names.
uint64_t sample_set_key(const Task& task);
std::string model_settings(const ModelShape& shape);
std::string measure_settings(const JobConfig& job);   // [train] but seeds, [complexity], seed
std::string finetune_settings(const JobConfig& job);  // [finetune] but enabled, dtype, γ, seed
// The layout of a stored fine-tune outcome (scratch run and fine-tune alike).
constexpr const char* kFinetuneFormat = "finetune-v2";
uint64_t measure_key(const JobConfig& job, const ModelShape& shape, uint64_t sample_set, int64_t seed);
// A paired rerun's key: the measurement whose w* it measures again and its least Lanczos steps.
uint64_t rerun_key(uint64_t measurement, int64_t min_steps);
uint64_t scratch_key(const JobConfig& job, const ModelShape& shape, uint64_t sample_set);
// A fine-tune's key holds its source's key (the measurement whose w* it starts from) and the
// key of the target's scratch run (θ_i).
uint64_t finetune_key(const JobConfig& job, const ModelShape& shape, uint64_t target_set, uint64_t source_measure,
                      uint64_t target_scratch);

// Every stored job of a reachability run, in the order the run computes them: the
// measurements (plan job × seed, seeds outermost), the scratch runs, the fine-tunes T(i|j).
struct StoredJob {
  enum Kind { measure, scratch, finetune } kind = measure;
  std::string label;          // "single:A seed 0", "union:A+B seed 1", "scratch:A", "finetune:A<-B"
  uint64_t key = 0;
  double cost = 0;            // predicted (predicted_cost), for the hand-out order and the shards
  std::vector<size_t> deps;   // jobs whose results it needs (a fine-tune: its source and θ_i)
  int64_t a = 0, b = 0;       // measure: plan job, seed; scratch: task; finetune: target i, source j
};
std::vector<StoredJob> stored_jobs(const JobConfig& job, const TaskSet& tasks, const Plan& plan);

// A merge that found jobs missing from the store: names them, nothing is written.
class MissingJobs : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Human-readable plan (for `validate`): tasks, sizes, jobs, groups, parameter count.
std::string describe_plan(const JobConfig& job, const TaskSet& tasks, const Plan& plan, int world_size);

// Runs every job over task groups split from `world` (each finished job written at once to
// the result store in workdir) and assembles the result on every rank. Throws Interrupted.
// With options.shards > 0 only shard options.shard's share is computed and nothing is
// assembled (the returned output holds the counts); with options.merge nothing is computed:
// every job is read from the store, and MissingJobs names those that are not there.
RunOutput run_reachability(MPI_Comm world, const JobConfig& job, const TaskSet& tasks, const Plan& plan,
                           const RunOptions& options);

// The output of a reachability run (matrices, records, analysis) from the results of every
// stored job, in the order of stored_jobs(); the counts of the run are added by the caller.
// reruns[k], where not empty, is measurement k's paired rerun, used in its place.
RunOutput assemble_stored(const JobConfig& job, const TaskSet& tasks, const Plan& plan,
                          const std::vector<StoredJob>& list, const std::vector<std::vector<double>>& results,
                          bool do_finetune, const std::vector<std::vector<double>>& reruns = {});

// Runs the experiment of `job.experiment` (not "reachability") on `world` and returns its
// output: the groups of the experiment in RunOutput::extra, any reachability it needs in
// the usual fields. Durable results and --resume as for the reachability run.
RunOutput run_experiment(MPI_Comm world, const JobConfig& job, const TaskSet& tasks, const RunOptions& options);

// The experiment's plan in words, for `validate` and the start of `run`.
std::string describe_experiment(const JobConfig& job, const TaskSet& tasks, int world_size);

}  // namespace taskreach
