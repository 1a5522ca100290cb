// What the experiments share: a measured run, its scheduling and storage, fits as groups.

#include "common.hpp"
#include "taskreach/formulas.hpp"
#include "taskreach/util.hpp"

namespace taskreach::experiments {

std::string join(const std::vector<std::string>& v, const char* sep) {
  std::string s;
  for (const auto& x : v) s += (s.empty() ? "" : sep) + x;
  return s;
}

// A fit as a group: params, stderr, r2 and points (1-D), the formula and the parameter names
// as attributes. A fit that could not be made is stored as NaNs, so its absence is visible.
void store_fit(RunOutput& out, const std::string& group, const Fit& f) {
  out.extra_attrs[group]["model"] = f.model;
  out.extra_attrs[group]["param_names"] = join(f.names, ",");
  out.extra[group + "/params"] = f.ok() ? f.params : std::vector<double>(f.names.size(), kNaN);
  out.extra[group + "/stderr"] = f.ok() ? f.stderr_ : std::vector<double>(f.names.size(), kNaN);
  out.extra[group + "/r2"] = {f.ok() ? f.r2 : kNaN};
  out.extra[group + "/points"] = {double(f.n)};
}

// Durable-result keys by effective inputs: the measurement layout, the settings a training
// and its curvature read, and the item (its model, sample set and what else it depends on).
uint64_t key_of(const JobConfig& job, std::vector<std::string> parts) {
  parts.insert(parts.begin(), {kResultFormat, measure_settings(job)});
  return util::hash_parts(parts);
}

const TaskConfig& task_config(const JobConfig& job, const std::string& name) {
  for (const auto& t : job.tasks)
    if (t.name == name) return t;
  throw InputError(job.path + ": task '" + name + "': not among the [[tasks]]");
}

const Task& task_named(const TaskSet& set, const std::string& name) {
  for (const auto& t : set.tasks)
    if (t.name == name) return t;
  throw std::logic_error("experiments: no task " + name);
}

// The job with other [[tasks]]: the same sources, settings and seed.
TaskSet build_variants(const JobConfig& job, std::vector<TaskConfig> tasks) {
  JobConfig j = job;
  j.tasks = std::move(tasks);
  return build_tasks(j);
}

// A short name of an architecture, usable as an HDF5 group name: mlp-32, linear, cnn-16-32-64.
std::string arch_label(const ModelConfig& m) {
  std::string s = to_string(m.arch);
  if (m.arch == Arch::mlp)
    for (auto h : m.hidden) s += "-" + std::to_string(h);
  if (m.arch == Arch::cnn) {
    for (auto c : m.channels) s += "-" + std::to_string(c);
    for (auto h : m.hidden) s += "-" + std::to_string(h);
  }
  if (m.arch == Arch::resnet18) s += "-w" + std::to_string(m.width) + "-" + to_string(m.norm);
  return s;
}

int64_t steps_per_epoch(const JobConfig& job, int64_t n) {
  return (n + job.train.batch_size - 1) / job.train.batch_size;
}

double tau_of(const Measurement& m) { return m.convergence_step >= 0 ? double(m.convergence_step) : kNaN; }

// Every run as a scheduled job (train, polish, curvature, C_β); the measurements in order.
std::vector<Measurement> measure_runs(Scheduler& sched, const JobConfig& /*job: each run carries its own variant*/, const std::string& phase,
                                      const std::vector<Run>& runs, RunOutput& out) {
  Phase p{phase, {}, {}, {}};
  for (const auto& r : runs) {
    const int64_t steps = r.job.train.steps > 0 ? r.job.train.steps
                                                : r.job.train.epochs * steps_per_epoch(r.job, r.task->size());
    p.cost.push_back(double(steps + r.hooks.deficit_steps) * double(r.job.train.batch_size) + double(r.task->size()));
    // The run's own job variant, model, sample set, seed and deficit; not its label.
    p.key.push_back(key_of(r.job, {"run", model_settings(r.shape), util::hex16(sample_set_key(*r.task)),
                                   std::to_string(r.seed), std::to_string(r.hooks.deficit_steps),
                                   r.hooks.deficit ? util::hex16(sample_set_key(*r.hooks.deficit)) : ""}));
    p.label.push_back(r.label);
  }
  auto packed = sched.run(p, [&](size_t k) {
    const Run& r = runs[k];
    return measure(sched.group(), r.job, r.shape, PlannedJob{r.label, *r.task}, r.seed, "", r.hooks).pack();
  });
  std::vector<Measurement> ms;
  for (size_t k = 0; k < runs.size(); ++k) {
    ms.push_back(Measurement::unpack(packed[k]));
    const Measurement& m = ms.back();
    JobRecord r{runs[k].label, m.status(), m.seconds, {}, {}};
    r.add_text("seed", std::to_string(train_seed(runs[k].job, runs[k].seed)));
    r.add("lr", runs[k].job.train.lr);
    r.add("B", double(runs[k].job.train.batch_size));
    r.add_text("arch", arch_label(runs[k].job.model));
    r.add("sgd_steps", double(m.sgd_steps));
    r.add("tau", double(m.convergence_step));
    r.add("grad_norm", m.grad_norm);
    out.jobs.push_back(std::move(r));
  }
  return ms;
}

// The columns every sweep stores: the swept value, seed, τ (NaN: threshold not reached), C_β
// and its probe error, the loss at w* and the status.
void store_sweep(RunOutput& out, const std::string& group, const char* x_name, const std::vector<Run>& runs,
                 const std::vector<Measurement>& ms, const JobConfig& job) {
  std::vector<double> x, seed, steps, C, C_err, loss;
  std::vector<std::string> status;
  for (size_t k = 0; k < runs.size(); ++k) {
    x.push_back(runs[k].x);
    seed.push_back(double(runs[k].seed));
    steps.push_back(tau_of(ms[k]));
    C.push_back(ms[k].C);
    C_err.push_back(formulas::logdet_term(ms[k].logdet_stderr, job.complexity.beta));
    loss.push_back(ms[k].loss);
    status.push_back(ms[k].status());
  }
  out.extra[group + "/" + x_name] = x;
  out.extra[group + "/seed"] = seed;
  out.extra[group + "/steps"] = steps;
  out.extra[group + "/C"] = C;
  out.extra[group + "/C_stderr"] = C_err;
  out.extra[group + "/loss"] = loss;
  out.extra_strings[group + "/status"] = status;
}

// Only runs whose solution is trusted enter a fit: not diverged, polished, quadrature
// converged (fewer converged eigenpairs only add noise and are kept).
std::vector<double> trusted(const std::vector<Measurement>& ms, const std::vector<double>& v) {
  std::vector<double> out(v);
  for (size_t k = 0; k < ms.size(); ++k)
    if (ms[k].flags & job_flag::excluded) out[k] = kNaN;
  return out;
}

}  // namespace taskreach::experiments
