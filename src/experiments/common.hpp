#pragma once
// Internal to the experiments module: what the experiments share — a measured run, its
// scheduling and storage, fits as groups — and each experiment's entry points.
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "taskreach/analysis.hpp"
#include "taskreach/experiments.hpp"
#include "taskreach/train.hpp"

namespace taskreach::experiments {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

std::string join(const std::vector<std::string>& v, const char* sep);
// A fit as a group: params, stderr, r2 and points (1-D), the formula and the parameter names
// as attributes. A fit that could not be made is stored as NaNs, so its absence is visible.
void store_fit(RunOutput& out, const std::string& group, const Fit& f);
// Stored-result keys by effective inputs: the measurement layout, the settings a training and
// its curvature read (measure_settings), and the item's parts (model, sample set, ...).
uint64_t key_of(const JobConfig& job, std::vector<std::string> parts);
const TaskConfig& task_config(const JobConfig& job, const std::string& name);
const Task& task_named(const TaskSet& set, const std::string& name);
// The job with other [[tasks]]: the same sources, settings and seed.
TaskSet build_variants(const JobConfig& job, std::vector<TaskConfig> tasks);
// A short name of an architecture, usable as an HDF5 group name: mlp-32, linear, cnn-16-32-64.
std::string arch_label(const ModelConfig& m);
int64_t steps_per_epoch(const JobConfig& job, int64_t n);
double tau_of(const Measurement& m);

// One measured training of an experiment: a task under a job variant (batch size, model).
struct Run {
  std::string label;  // unique within the experiment: names the durable result
  double x = 0.0;     // the swept value
  int64_t seed = 0;
  const Task* task = nullptr;
  JobConfig job;
  ModelShape shape;
  TrainHooks hooks;
};

// Every run as a scheduled job (train, polish, curvature, C_β); the measurements in order.
std::vector<Measurement> measure_runs(Scheduler& sched, const JobConfig& job, const std::string& phase,
                                      const std::vector<Run>& runs, RunOutput& out);
// The columns every sweep stores: the swept value, seed, τ (NaN: threshold not reached), C_β
// and its probe error, the loss at w* and the status.
void store_sweep(RunOutput& out, const std::string& group, const char* x_name, const std::vector<Run>& runs,
                 const std::vector<Measurement>& ms, const JobConfig& job);
// Only runs whose solution is trusted enter a fit (ok; not diverged, polished, solved).
std::vector<double> trusted(const std::vector<Measurement>& ms, const std::vector<double>& v);

// convergence.cpp (paper §4.1, Fig. 1–2)
std::string describe_convergence(const JobConfig& job, const TaskSet& tasks);
void run_convergence(Scheduler& sched, const JobConfig& job, const TaskSet& tasks, RunOutput& out);
// potential.cpp (paper §4.3, Fig. 4–5)
std::string describe_potential(const JobConfig& job, const TaskSet& tasks);
void run_potential(Scheduler& sched, const JobConfig& job, const TaskSet& tasks, const std::string& workdir,
                   RunOutput& out);
// critical_period.cpp (Achille et al. 2017): the deficit sweep, then the sharp/blurred pair
// through the reachability run.
std::string describe_critical_period(const JobConfig& job);
RunOutput run_critical_period(MPI_Comm world, const JobConfig& job, const RunOptions& options);

}  // namespace taskreach::experiments
