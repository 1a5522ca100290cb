#pragma once
// What a job runs, one file each under src/experiments/: the N×N reachability (the plan of
// unique sample sets × seeds, its phases and assembly) and the learning-dynamics experiments
// (paper §4.1, §4.3 and the critical periods of its reference [1]) — `convergence`,
// `potential` and `critical_period` — all scheduled over task groups with stored results.
#include <mpi.h>

#include <cstdint>
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
  std::vector<PlannedJob> jobs;         // singles first, in task order
  std::vector<std::vector<int64_t>> job_of;  // [i][j]: job of D_i ∪ D_j; [i][i] = single i
  int64_t seeds = 1;
  int64_t work_items() const { return static_cast<int64_t>(jobs.size()) * seeds; }
};

Plan make_plan(const JobConfig& job, const TaskSet& tasks);

// Human-readable plan (for `validate`): tasks, sizes, jobs, groups, parameter count.
std::string describe_plan(const JobConfig& job, const TaskSet& tasks, const Plan& plan, int world_size);

// Runs every job over task groups split from `world` (each finished job written at once to
// the result store in workdir) and assembles the result on every rank. Throws Interrupted.
RunOutput run_reachability(MPI_Comm world, const JobConfig& job, const TaskSet& tasks, const Plan& plan,
                           const RunOptions& options);

// Runs the experiment of `job.experiment` (not "reachability") on `world` and returns its
// output: the groups of the experiment in RunOutput::extra, any reachability it needs in
// the usual fields. Durable results and --resume as for the reachability run.
RunOutput run_experiment(MPI_Comm world, const JobConfig& job, const TaskSet& tasks, const RunOptions& options);

// The experiment's plan in words, for `validate` and the start of `run`.
std::string describe_experiment(const JobConfig& job, const TaskSet& tasks, int world_size);

}  // namespace taskreach
