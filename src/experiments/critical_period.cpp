// critical_period (Achille et al. 2017): a blur deficit for the first K epochs, then clean
// training for a fixed budget; and the reachability between the sharp and the blurred task.
#include <memory>
#include <sstream>

#include "common.hpp"

namespace taskreach::experiments {
namespace {

struct CriticalPlan {
  JobConfig pair_job;  // [[tasks]] = the sharp task and its blurred copy
  std::shared_ptr<TaskSet> pair = std::make_shared<TaskSet>();  // on the heap: runs point into it
  std::vector<Run> runs;
};

CriticalPlan plan_critical(const JobConfig& job) {
  const auto& cp = job.critical_period;
  CriticalPlan p;
  TaskConfig sharp = task_config(job, cp.task), blurred = sharp;
  blurred.name = sharp.name + "-blurred";
  blurred.transforms.push_back(transform::Blur{cp.sigma});
  p.pair_job = job;
  p.pair_job.tasks = {sharp, blurred};
  *p.pair = build_tasks(p.pair_job);
  const ModelShape shape = model_shape(job, *p.pair);
  const Task& clean = p.pair->tasks[0];
  for (int64_t K : cp.deficit_epochs)
    for (int64_t s = 0; s < cp.seeds; ++s) {
      Run r{"deficit K=" + std::to_string(K) + " seed " + std::to_string(s), double(K), s, &clean, job, shape, {}};
      r.job.train.epochs = cp.clean_epochs;
      r.job.train.steps = 0;
      r.hooks.deficit = &p.pair->tasks[1];
      r.hooks.deficit_steps = K * steps_per_epoch(job, clean.size());
      p.runs.push_back(r);
    }
  return p;
}

void run_critical_period_sweep(Scheduler& sched, const JobConfig& job, const CriticalPlan& p,
                               RunOutput& out) {
  const std::vector<Measurement> ms = measure_runs(sched, job, "critical period (deficit, clean, C)", p.runs, out);
  const std::string g = "/critical_period";
  store_sweep(out, g, "K", p.runs, ms, job);
  // At the end of the clean SGD budget (what the deficit may have damaged) and at the
  // polished MAP point, where C_β is measured.
  std::vector<double> acc, acc_map;
  for (const auto& m : ms) {
    acc.push_back(m.test_accuracy_sgd);
    acc_map.push_back(m.test_accuracy);
  }
  out.extra[g + "/test_accuracy"] = acc;
  out.extra[g + "/test_accuracy_map"] = acc_map;
  out.extra[g + "/sigma"] = {job.critical_period.sigma};
  out.extra[g + "/clean_epochs"] = {double(job.critical_period.clean_epochs)};
}

}  // namespace

std::string describe_critical_period(const JobConfig& job) {
  std::ostringstream o;
  const CriticalPlan p = plan_critical(job);
  o << "deficit: " << p.pair->tasks[1].name << " for K epochs of {";
  for (size_t k = 0; k < job.critical_period.deficit_epochs.size(); ++k)
    o << (k ? ", " : "") << job.critical_period.deficit_epochs[k];
  o << "}, then " << job.critical_period.clean_epochs << " epochs on " << p.pair->tasks[0].name << " (n = "
    << p.pair->tasks[0].size() << ", test n = " << p.pair->tasks[0].test_size() << "); " << p.runs.size()
    << " runs, then the reachability between the two\n";
  return o.str();
}

// The K sweep, then the sharp/blurred pair through the reachability run itself.
RunOutput run_critical_period(MPI_Comm world, const JobConfig& job, const RunOptions& options) {
  int rank = 0;
  MPI_Comm_rank(world, &rank);
  std::ostream* progress = rank == 0 ? options.progress : nullptr;
  const CriticalPlan p = plan_critical(job);
  RunOutput sweep;
  {
    Scheduler sched(world, job.ranks_per_task, options.workdir.empty() ? "" : options.workdir + "/jobs",
                    options.resume, progress);
    run_critical_period_sweep(sched, job, p, sweep);
    sched.add_attributes(sweep);
  }
  RunOptions pair_options = options;
  if (!options.workdir.empty()) pair_options.workdir = options.workdir + "/pair";
  RunOutput out = run_reachability(world, p.pair_job, *p.pair, make_plan(p.pair_job, *p.pair), pair_options);
  out.extra = sweep.extra;
  out.extra_strings = sweep.extra_strings;
  out.jobs.insert(out.jobs.begin(), sweep.jobs.begin(), sweep.jobs.end());
  out.attrs_f64["schedule_seconds"] += sweep.attrs_f64["schedule_seconds"];
  for (const char* a : {"jobs_computed", "jobs_reused"}) out.attrs_i64[a] += sweep.attrs_i64[a];
  // Both directions of the pair: [0] sharp, [1] blurred; R(i|j) = from j to i.
  const std::string g = "/critical_period/transfer";
  out.extra[g + "/R_sharp_from_blurred"] = {out.R(0, 1)};
  out.extra[g + "/R_blurred_from_sharp"] = {out.R(1, 0)};
  out.extra[g + "/R_sharp_from_blurred_stderr"] = {out.stderr_total(0, 1)};
  out.extra[g + "/R_blurred_from_sharp_stderr"] = {out.stderr_total(1, 0)};
  const bool ft = out.finetune_steps.data.size() == 4;
  out.extra[g + "/steps_sharp_from_blurred"] = {ft ? double(out.finetune_steps(0, 1)) : kNaN};
  out.extra[g + "/steps_blurred_from_sharp"] = {ft ? double(out.finetune_steps(1, 0)) : kNaN};
  return out;
}

}  // namespace taskreach::experiments
