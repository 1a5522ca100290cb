#pragma once
// The reachability run: the plan of jobs (unique sample sets × seeds), task groups over the
// world, and assembly of C_β, R and its errors into a RunOutput.
#include <mpi.h>

#include <cstdint>
#include <ostream>
#include <string>
#include <vector>

#include "taskreach/config.hpp"
#include "taskreach/data.hpp"
#include "taskreach/results.hpp"

namespace taskreach {

// A unique sample set to train and measure: a single task or a union. Equal sample sets
// (same identity) are one job, so R(i|i) = 0 and R(subset|superset) = 0 hold exactly.
struct PlannedJob {
  std::string name;   // "single:A" or "union:A+B"
  Task task;
};

struct Plan {
  int64_t n_tasks = 0;
  int64_t d = 0;                        // parameters of every model of the job
  std::vector<PlannedJob> jobs;         // singles first, in task order
  std::vector<std::vector<int64_t>> job_of;  // [i][j]: job of D_i ∪ D_j; [i][i] = single i
  int64_t seeds = 1;
  int64_t work_items() const { return static_cast<int64_t>(jobs.size()) * seeds; }
};

Plan make_plan(const JobConfig& job, const TaskSet& tasks);

// Human-readable plan (for `validate`): tasks, sizes, jobs, groups, parameter count.
std::string describe_plan(const JobConfig& job, const TaskSet& tasks, const Plan& plan, int world_size);

// Runs every job over task groups split from `world` and assembles the result on every
// rank. Rank 0 writes progress lines to `progress` (may be null). Checkpoints of w* go to
// `workdir` (which must exist; shared by all ranks); without one, no fine-tuning is done.
RunOutput run_reachability(MPI_Comm world, const JobConfig& job, const TaskSet& tasks, const Plan& plan,
                           std::ostream* progress, const std::string& workdir);

}  // namespace taskreach
