#pragma once
// The reachability run: the plan of jobs (unique sample sets × seeds), task groups over the
// world, and assembly of C_β, R and its errors into a RunOutput.
#include <mpi.h>

#include <cstdint>
#include <ostream>
#include <stdexcept>
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
  std::string workdir;   // checkpoints and durable per-job results (shared by all ranks)
  bool resume = false;   // reuse every valid result in workdir whose inputs are unchanged
  std::ostream* progress = nullptr;  // rank 0's progress lines
};

// Runs every job over task groups split from `world` (each finished job written at once to
// its own file in workdir) and assembles the result on every rank. Throws Interrupted.
RunOutput run_reachability(MPI_Comm world, const JobConfig& job, const TaskSet& tasks, const Plan& plan,
                           const RunOptions& options);

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

}  // namespace taskreach
