// The learning-dynamics experiments: the plan in words and the dispatch to each one's file.
#include <sstream>

#include "common.hpp"

namespace taskreach {

using namespace experiments;

std::string describe_experiment(const JobConfig& job, const TaskSet& tasks, int world_size) {
  std::ostringstream o;
  const int64_t g = std::min<int64_t>(job.ranks_per_task, world_size);
  o << "job " << job.path << (job.name.empty() ? "" : " (" + job.name + ")") << ": experiment " << to_string(job.experiment)
    << "\n";
  if (job.experiment == Experiment::convergence) o << describe_convergence(job, tasks);
  else if (job.experiment == Experiment::potential) o << describe_potential(job, tasks);
  else if (job.experiment == Experiment::critical_period) o << describe_critical_period(job);
  o << "groups: " << std::max<int64_t>(1, world_size / g) << " of " << g << " rank(s) on " << world_size
    << " rank(s)\n";
  return o.str();
}

RunOutput run_experiment(MPI_Comm world, const JobConfig& job, const TaskSet& tasks, const RunOptions& options) {
  int rank = 0, world_size = 1;
  MPI_Comm_rank(world, &rank);
  MPI_Comm_size(world, &world_size);
  if (job.experiment == Experiment::critical_period) return run_critical_period(world, job, options);
  RunOutput out;
  Scheduler sched(world, job.ranks_per_task, options.workdir.empty() ? "" : options.workdir + "/jobs",
                  options.resume, rank == 0 ? options.progress : nullptr);
  if (job.experiment == Experiment::convergence) {
    run_convergence(sched, job, tasks, out);
  } else if (job.experiment == Experiment::potential) {
    run_potential(sched, job, tasks, options.workdir, out);
  } else {
    throw std::logic_error(std::string("run_experiment: not an experiment: ") + to_string(job.experiment));
  }
  job_attributes(out, job, world_size);
  sched.add_attributes(out);
  out.R = out.R_per_sample = out.stderr_total = out.stderr_probe = out.stderr_seed = Matrix<double>(0, 0, 0.0);
  out.unions_C = Matrix<double>(0, 0, 0.0);
  out.unions_conflicts = Matrix<int64_t>(0, 0, 0);
  return out;
}

}  // namespace taskreach
