// The learning-dynamics experiments (paper §4.1 and §4.3; critical periods after Achille et
// al. 2017), each a set of jobs scheduled over task groups with durable results, like the
// reachability run, and each writing its own group of the output:
//   convergence      steps τ to a loss threshold and C_β against random labels, batch size
//                    and architecture; fits of log τ (Kramers' law)
//   potential        one long training with snapshots; U, S (log det and trace forms) and
//                    the weight velocity; fits of ½v² = E − aU − bS
//   critical_period  a blur deficit for the first K epochs, then clean training for a fixed
//                    budget; and the reachability between the sharp and the blurred task
#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <memory>
#include <numeric>
#include <sstream>

#include "measure.hpp"
#include "scheduler.hpp"
#include "taskreach/experiments.hpp"
#include "taskreach/files.hpp"
#include "taskreach/train.hpp"

namespace taskreach {
namespace {

using detail::Measurement;
namespace fs = std::filesystem;
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

std::string join(const std::vector<std::string>& v, const char* sep) {
  std::string s;
  for (const auto& x : v) s += (s.empty() ? "" : sep) + x;
  return s;
}

std::string num(double v) {
  std::ostringstream o;
  o << v;
  return o.str();
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

// Durable-result keys: the program version, the job file verbatim and the item.
uint64_t key_of(const JobConfig& job, std::vector<std::string> parts) {
  parts.insert(parts.begin(), {TASKREACH_VERSION, detail::kResultFormat, job.text});
  return detail::hash_parts(parts);
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
  std::string s = m.arch;
  if (m.arch == "mlp")
    for (auto h : m.hidden) s += "-" + std::to_string(h);
  if (m.arch == "cnn") {
    for (auto c : m.channels) s += "-" + std::to_string(c);
    for (auto h : m.hidden) s += "-" + std::to_string(h);
  }
  if (m.arch == "resnet18") s += "-w" + std::to_string(m.width) + "-" + m.norm;
  return s;
}

int64_t steps_per_epoch(const JobConfig& job, int64_t n) {
  return (n + job.train.batch_size - 1) / job.train.batch_size;
}

double tau_of(const Measurement& m) { return m.convergence_step >= 0 ? double(m.convergence_step) : kNaN; }

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
std::vector<Measurement> measure_runs(detail::Scheduler& sched, const JobConfig& job, const std::string& phase,
                                      const std::vector<Run>& runs, RunOutput& out) {
  detail::Phase p{phase, {}, {}, {}};
  for (const auto& r : runs) {
    const int64_t steps = r.job.train.steps > 0 ? r.job.train.steps
                                                : r.job.train.epochs * steps_per_epoch(r.job, r.task->size());
    p.cost.push_back(double(steps + r.hooks.deficit_steps) * double(r.job.train.batch_size) + double(r.task->size()));
    p.key.push_back(key_of(job, {job.experiment, r.label}));
    p.label.push_back(r.label);
  }
  auto packed = sched.run(p, [&](size_t k) {
    const Run& r = runs[k];
    return detail::measure(sched.group(), r.job, r.shape, PlannedJob{r.label, *r.task}, r.seed, "", r.hooks).pack();
  });
  std::vector<Measurement> ms;
  for (size_t k = 0; k < runs.size(); ++k) {
    ms.push_back(Measurement::unpack(packed[k]));
    const Measurement& m = ms.back();
    std::ostringstream rec;
    rec << "seed=" << detail::train_seed(runs[k].job, runs[k].seed) << " lr=" << runs[k].job.train.lr
        << " B=" << runs[k].job.train.batch_size << " arch=" << arch_label(runs[k].job.model)
        << " sgd_steps=" << m.sgd_steps << " tau=" << m.convergence_step << " grad_norm=" << m.grad_norm;
    out.jobs.push_back({runs[k].label, m.status, m.seconds, rec.str()});
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
    C_err.push_back(0.5 * job.complexity.beta * ms[k].logdet_stderr);
    loss.push_back(ms[k].loss);
    status.push_back(ms[k].status);
  }
  out.extra[group + "/" + x_name] = x;
  out.extra[group + "/seed"] = seed;
  out.extra[group + "/steps"] = steps;
  out.extra[group + "/C"] = C;
  out.extra[group + "/C_stderr"] = C_err;
  out.extra[group + "/loss"] = loss;
  out.extra_strings[group + "/status"] = status;
}

// Only runs whose solution is trusted enter a fit (ok; not diverged, polished, solved).
std::vector<double> trusted(const std::vector<Measurement>& ms, const std::vector<double>& v) {
  std::vector<double> out(v);
  for (size_t k = 0; k < ms.size(); ++k)
    if (ms[k].status != "ok") out[k] = kNaN;
  return out;
}

// ---------------------------------------------------------------------------------------
// convergence (paper §4.1, Fig. 1–2)

struct ConvergencePlan {
  // The base task with 0, m1, m2, … random labels; on the heap, so runs may point into it.
  std::shared_ptr<TaskSet> variants = std::make_shared<TaskSet>();
  std::vector<Run> labels, batches, archs;
};

std::string random_variant_name(const std::string& base, int64_t m) { return base + "-rl" + std::to_string(m); }

ConvergencePlan plan_convergence(const JobConfig& job, const TaskSet& tasks) {
  const auto& cc = job.convergence;
  const TaskConfig& base = task_config(job, cc.task);
  const int64_t n = task_named(tasks, cc.task).size();
  auto check = [&](const char* field, int64_t m) {
    if (m > n)
      throw InputError(job.path + ": convergence." + field + ": " + std::to_string(m) + " random labels, but task '" +
                       cc.task + "' has only " + std::to_string(n) + " samples");
  };
  for (int64_t m : cc.random_labels) check("random_labels", m);
  if (!cc.batch_sizes.empty()) check("batch_random_labels", cc.batch_random_labels);
  ConvergencePlan p;
  std::vector<int64_t> counts = cc.random_labels;
  if (!cc.batch_sizes.empty()) counts.push_back(cc.batch_random_labels);
  std::sort(counts.begin(), counts.end());
  counts.erase(std::unique(counts.begin(), counts.end()), counts.end());
  std::vector<TaskConfig> variants;
  for (int64_t m : counts) {
    TaskConfig t = base;
    t.name = random_variant_name(base.name, m);
    if (m > 0) {
      TransformConfig tr;
      tr.type = "random_labels";
      tr.count = m;
      t.transforms.push_back(tr);
    }
    variants.push_back(t);
  }
  if (!variants.empty()) *p.variants = build_variants(job, variants);
  const ModelShape shape = p.variants->tasks.empty() ? ModelShape{} : model_shape(job, *p.variants);
  for (int64_t m : cc.random_labels)
    for (int64_t s = 0; s < cc.seeds; ++s)
      p.labels.push_back({"random_labels=" + std::to_string(m) + " seed " + std::to_string(s), double(m), s,
                          &task_named(*p.variants, random_variant_name(base.name, m)), job, shape, {}});
  for (int64_t B : cc.batch_sizes)
    for (int64_t s = 0; s < cc.seeds; ++s) {
      JobConfig jb = job;
      jb.train.batch_size = B;
      p.batches.push_back({"batch_size=" + std::to_string(B) + " seed " + std::to_string(s), double(B), s,
                           &task_named(*p.variants, random_variant_name(base.name, cc.batch_random_labels)), jb,
                           shape, {}});
    }
  for (size_t a = 0; a < cc.architectures.size(); ++a) {
    JobConfig ja = job;
    ja.model = cc.architectures[a];
    const ModelShape sa = model_shape(ja, tasks);
    for (const auto& t : tasks.tasks)
      for (int64_t s = 0; s < cc.seeds; ++s)
        p.archs.push_back({"architecture " + std::to_string(a) + " (" + arch_label(ja.model) + ") task " + t.name +
                               " seed " + std::to_string(s),
                           double(a), s, &t, ja, sa, {}});
  }
  return p;
}

void run_convergence(detail::Scheduler& sched, const JobConfig& job, const TaskSet& tasks, RunOutput& out) {
  const auto& cc = job.convergence;
  ConvergencePlan p = plan_convergence(job, tasks);
  std::vector<Run> all = p.labels;
  all.insert(all.end(), p.batches.begin(), p.batches.end());
  all.insert(all.end(), p.archs.begin(), p.archs.end());
  const std::vector<Measurement> ms = measure_runs(sched, job, "convergence (train, polish, curvature)", all, out);
  const auto nl = long(p.labels.size()), nb = long(p.batches.size());
  const std::vector<Measurement> ml(ms.begin(), ms.begin() + nl), mb(ms.begin() + nl, ms.begin() + nl + nb),
      ma(ms.begin() + nl + nb, ms.end());
  auto column = [](const std::vector<Measurement>& m, auto f) {
    std::vector<double> v;
    for (const auto& x : m) v.push_back(f(x));
    return v;
  };
  auto xs = [](const std::vector<Run>& r) {
    std::vector<double> v;
    for (const auto& x : r) v.push_back(x.x);
    return v;
  };
  const std::string g = "/convergence";
  if (!p.labels.empty()) {
    store_sweep(out, g + "/random_labels", "n_random", p.labels, ml, job);
    const auto tau = trusted(ml, column(ml, tau_of));
    const auto C = trusted(ml, column(ml, [](const Measurement& m) { return m.C; }));
    store_fit(out, g + "/fits/log_tau_vs_random_labels", fit_log_linear(xs(p.labels), tau, "n_random"));
    // The premise of the experiment: below the critical β, C grows linearly with the labels.
    std::vector<std::vector<double>> X;
    for (const auto& r : p.labels) X.push_back({1.0, r.x});
    store_fit(out, g + "/fits/C_vs_random_labels", least_squares(X, C, {"a", "b"}, "C = a + b * n_random"));
  }
  if (!p.batches.empty()) {
    store_sweep(out, g + "/batch_size", "B", p.batches, mb, job);
    const auto tau = trusted(mb, column(mb, tau_of));
    const auto C = trusted(mb, column(mb, [](const Measurement& m) { return m.C; }));
    double sum = 0.0;
    int64_t count = 0;
    for (double c : C)
      if (std::isfinite(c)) sum += c, ++count;
    const double delta_c = count ? sum / double(count) : kNaN;
    out.extra[g + "/batch_size/delta_C"] = {delta_c};
    store_fit(out, g + "/fits/kramers", fit_kramers(xs(p.batches), tau, delta_c, double(p.batches[0].task->size())));
  }
  if (!p.archs.empty()) {
    store_sweep(out, g + "/architecture", "arch_index", p.archs, ma, job);
    std::vector<std::string> names, task_names;
    for (const auto& r : p.archs) {
      names.push_back(arch_label(r.job.model));
      task_names.push_back(r.task->name);
    }
    out.extra_strings[g + "/architecture/arch"] = names;
    out.extra_strings[g + "/architecture/task"] = task_names;
    const auto tau = trusted(ma, column(ma, tau_of));
    const auto C = trusted(ma, column(ma, [](const Measurement& m) { return m.C; }));
    for (size_t a = 0; a < cc.architectures.size(); ++a) {
      std::vector<double> ca, ta;
      for (size_t k = 0; k < p.archs.size(); ++k)
        if (p.archs[k].x == double(a)) {
          ca.push_back(C[k]);
          ta.push_back(tau[k]);
        }
      store_fit(out, g + "/fits/log_tau_vs_C/" + arch_label(cc.architectures[a]), fit_log_linear(ca, ta, "C"));
    }
  }
}

// ---------------------------------------------------------------------------------------
// potential (paper §4.3, Fig. 4–5)

// Snapshot files: [count of weights, count of buffers, weights…, buffers…] as doubles.
void write_snapshot(const std::string& path, const std::vector<double>& w, const std::vector<double>& b) {
  const double head[2] = {double(w.size()), double(b.size())};
  std::string bytes(reinterpret_cast<const char*>(head), sizeof head);
  bytes.append(reinterpret_cast<const char*>(w.data()), w.size() * sizeof(double));
  bytes.append(reinterpret_cast<const char*>(b.data()), b.size() * sizeof(double));
  write_file_atomically(path, bytes, "write a weight snapshot");
}

void read_snapshot(const std::string& path, std::vector<double>& w, std::vector<double>& b) {
  std::ifstream f(path, std::ios::binary);
  double head[2] = {0, 0};
  f.read(reinterpret_cast<char*>(head), sizeof head);
  if (!f || head[0] < 0 || head[1] < 0) throw std::runtime_error(path + ": cannot read a weight snapshot");
  w.resize(size_t(head[0]));
  b.resize(size_t(head[1]));
  f.read(reinterpret_cast<char*>(w.data()), std::streamsize(w.size() * sizeof(double)));
  f.read(reinterpret_cast<char*>(b.data()), std::streamsize(b.size() * sizeof(double)));
  if (!f) throw std::runtime_error(path + ": truncated weight snapshot");
}

void run_potential(detail::Scheduler& sched, const JobConfig& job, const TaskSet& tasks, const std::string& workdir,
                   RunOutput& out) {
  const Task& task = task_named(tasks, job.potential.task);
  const ModelShape shape = model_shape(job, tasks);
  const int64_t d = num_parameters(shape), n = task.size();
  if (workdir.empty()) throw std::logic_error("potential: needs a work directory for its snapshots");
  const std::string dir = workdir + "/snapshots";  // created by run_experiment
  const uint64_t train_key = key_of(job, {"potential", "train"});
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(train_key));
  auto snapshot_path = [&](int64_t i) { return dir + "/" + hex + "-" + std::to_string(i) + ".bin"; };
  const std::string complete = dir + "/" + hex + ".complete";

  // Phase 1: the long training; each k-th evaluation is a snapshot (U, accuracy, weights).
  detail::Phase p1{"potential: training with snapshots", {1.0}, {train_key}, {"potential:train " + task.name}};
  JobConfig jt = job;
  jt.train.polish_iters = 0;  // the trajectory is the object here, not w*
  auto r1 = sched.run(
      p1,
      [&](size_t) {
        int grank = 0;
        MPI_Comm_rank(sched.group(), &grank);
        std::vector<double> series, prev;  // rows: step, U, accuracy, ‖w − w_prev‖²
        int64_t evals = 0, count = 0;
        TrainHooks hooks;
        hooks.on_eval = [&](const CurvePoint& c, const std::vector<double>& w, const std::vector<double>& b) {
          if (evals++ % job.potential.curvature_every) return;
          double dist2 = kNaN;
          if (!prev.empty()) {
            dist2 = 0.0;
            for (size_t q = 0; q < w.size(); ++q) dist2 += (w[q] - prev[q]) * (w[q] - prev[q]);
          }
          prev = w;
          series.insert(series.end(), {c[0], c[1], c[2], dist2});
          if (grank == 0) write_snapshot(snapshot_path(count), w, b);
          ++count;
        };
        const TrainOutcome tr = train_map(sched.group(), shape, task, jt, detail::train_seed(job, 0), "", hooks);
        MPI_Barrier(sched.group());
        if (grank == 0) write_file_atomically(complete, std::to_string(count) + "\n", "mark the snapshots complete");
        series.insert(series.begin(), {tr.status == "diverged" ? 1.0 : 0.0, tr.weight_decay});
        return series;
      },
      [&](size_t) { return fs::exists(complete); });
  const std::vector<double>& s1 = r1[0];
  const bool diverged = s1[0] != 0.0;
  const double gamma = s1[1];
  const size_t S = (s1.size() - 2) / 4;
  auto at = [&](size_t i, size_t c) { return s1[2 + 4 * i + c]; };
  if (!(gamma > 0))
    throw InputError(job.path + ": train.weight_decay: the potential's S = log det(gamma I + G/n)/d needs gamma > 0");

  // Phase 2: the curvature at every snapshot: log det(γI + G/n) = d·log γ + log det(I + G/(nγ)).
  detail::Phase p2{"potential: curvature at each snapshot", {}, {}, {}};
  for (size_t i = 0; i < S; ++i) {
    p2.cost.push_back(1.0);
    p2.key.push_back(key_of(job, {"potential", "curvature", std::to_string(i)}));
    p2.label.push_back("potential:curvature step " + std::to_string(int64_t(at(i, 0))));
  }
  SpectrumOptions so = detail::spectrum_options(job);
  so.c = so.c_alt = 1.0 / (double(n) * gamma);
  auto r2 = sched.run(p2, [&](size_t i) {
    std::vector<double> w, b;
    read_snapshot(snapshot_path(int64_t(i)), w, b);
    const SpectrumResult sp = detail::spectrum_at(sched.group(), job, shape, task, w, b, so);
    return std::vector<double>{sp.logdet, sp.logdet_stderr, sp.trace, sp.trace_stderr, sp.seconds};
  });

  const double spe = double(steps_per_epoch(job, n));
  std::vector<double> step, epoch, U, acc, S_logdet, S_logdet_err, S_trace;
  for (size_t i = 0; i < S; ++i) {
    step.push_back(at(i, 0));
    epoch.push_back(at(i, 0) / spe);
    U.push_back(at(i, 1));
    acc.push_back(at(i, 2));
    S_logdet.push_back(std::log(gamma) + r2[i][0] / double(d));
    S_logdet_err.push_back(r2[i][1] / double(d));
    S_trace.push_back(r2[i][2] / (double(n) * double(d)));
    out.jobs.push_back({p2.label[i], "ok", r2[i][4], "gamma=" + num(gamma) + " c=" + num(so.c)});
  }
  out.jobs.insert(out.jobs.begin(), {p1.label[0], diverged ? "diverged" : "ok", 0.0, "snapshots=" + std::to_string(S)});
  const std::string g = "/potential";
  out.extra[g + "/snapshots/step"] = step;
  out.extra[g + "/snapshots/epoch"] = epoch;
  out.extra[g + "/snapshots/U"] = U;
  out.extra[g + "/snapshots/accuracy"] = acc;
  out.extra[g + "/snapshots/S_logdet"] = S_logdet;
  out.extra[g + "/snapshots/S_logdet_stderr"] = S_logdet_err;
  out.extra[g + "/snapshots/S_trace"] = S_trace;
  // Between consecutive snapshots: ½v² with v = ‖Δw‖/Δstep, and U, S at the interval's middle.
  std::vector<double> mid_epoch, mid_U, mid_logdet, mid_trace, half_v2;
  for (size_t i = 1; i < S; ++i) {
    const double dt = step[i] - step[i - 1];
    mid_epoch.push_back(0.5 * (epoch[i] + epoch[i - 1]));
    mid_U.push_back(0.5 * (U[i] + U[i - 1]));
    mid_logdet.push_back(0.5 * (S_logdet[i] + S_logdet[i - 1]));
    mid_trace.push_back(0.5 * (S_trace[i] + S_trace[i - 1]));
    half_v2.push_back(0.5 * at(i, 3) / (dt * dt));
  }
  out.extra[g + "/epoch"] = mid_epoch;
  out.extra[g + "/U"] = mid_U;
  out.extra[g + "/S_logdet"] = mid_logdet;
  out.extra[g + "/S_trace"] = mid_trace;
  out.extra[g + "/half_v2"] = half_v2;
  out.extra[g + "/gamma"] = {gamma};
  store_fit(out, g + "/fits/logdet", fit_potential(half_v2, mid_U, mid_logdet));
  store_fit(out, g + "/fits/trace", fit_potential(half_v2, mid_U, mid_trace));
  // Without S: what the curvature term adds is the difference in R².
  std::vector<std::vector<double>> X;
  for (double u : mid_U) X.push_back({1.0, -u});
  store_fit(out, g + "/fits/U_only", least_squares(X, half_v2, {"E", "a"}, "v^2/2 = E - a * U"));
}

// ---------------------------------------------------------------------------------------
// critical_period (Achille et al. 2017)

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
  TransformConfig blur;
  blur.type = "blur";
  blur.sigma = cp.sigma;
  blurred.transforms.push_back(blur);
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

void run_critical_period_sweep(detail::Scheduler& sched, const JobConfig& job, const CriticalPlan& p,
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

std::string describe_experiment(const JobConfig& job, const TaskSet& tasks, int world_size) {
  std::ostringstream o;
  const int64_t g = std::min<int64_t>(job.ranks_per_task, world_size);
  o << "job " << job.path << (job.name.empty() ? "" : " (" + job.name + ")") << ": experiment " << job.experiment
    << "\n";
  if (job.experiment == "convergence") {
    const ConvergencePlan p = plan_convergence(job, tasks);
    o << "random labels (" << p.labels.size() << " runs), batch sizes (" << p.batches.size() << " runs), "
      << job.convergence.architectures.size() << " architectures x " << tasks.tasks.size() << " tasks ("
      << p.archs.size() << " runs); tau = first SGD step with mean loss < " << job.train.loss_threshold << "\n";
    for (const auto& t : p.variants->tasks) o << "  " << t.name << "  n = " << t.size() << "\n";
  } else if (job.experiment == "potential") {
    const Task& t = task_named(tasks, job.potential.task);
    const int64_t steps = job.train.steps > 0 ? job.train.steps : job.train.epochs * steps_per_epoch(job, t.size());
    o << "one training of " << t.name << " (n = " << t.size() << ", " << steps << " SGD steps), a snapshot every "
      << job.train.eval_every * job.potential.curvature_every << " steps, the curvature at each\n";
  } else if (job.experiment == "critical_period") {
    const CriticalPlan p = plan_critical(job);
    o << "deficit: " << p.pair->tasks[1].name << " for K epochs of {";
    for (size_t k = 0; k < job.critical_period.deficit_epochs.size(); ++k)
      o << (k ? ", " : "") << job.critical_period.deficit_epochs[k];
    o << "}, then " << job.critical_period.clean_epochs << " epochs on " << p.pair->tasks[0].name << " (n = "
      << p.pair->tasks[0].size() << ", test n = " << p.pair->tasks[0].test_size() << "); " << p.runs.size()
      << " runs, then the reachability between the two\n";
  }
  o << "groups: " << std::max<int64_t>(1, world_size / g) << " of " << g << " rank(s) on " << world_size
    << " rank(s)\n";
  return o.str();
}

RunOutput run_experiment(MPI_Comm world, const JobConfig& job, const TaskSet& tasks, const RunOptions& options) {
  int rank = 0, world_size = 1;
  MPI_Comm_rank(world, &rank);
  MPI_Comm_size(world, &world_size);
  RunOutput out;
  std::ostream* progress = rank == 0 ? options.progress : nullptr;
  if (job.experiment == "critical_period") {
    // The K sweep, then the sharp/blurred pair through the reachability run itself.
    const CriticalPlan p = plan_critical(job);
    RunOutput sweep;
    {
      detail::Scheduler sched(world, job.ranks_per_task, options.workdir.empty() ? "" : options.workdir + "/jobs",
                              options.resume, progress);
      run_critical_period_sweep(sched, job, p, sweep);
      detail::schedule_attributes(sweep, sched);
    }
    RunOptions pair_options = options;
    if (!options.workdir.empty()) pair_options.workdir = options.workdir + "/pair";
    out = run_reachability(world, p.pair_job, *p.pair, make_plan(p.pair_job, *p.pair), pair_options);
    out.extra = sweep.extra;
    out.extra_strings = sweep.extra_strings;
    out.jobs.insert(out.jobs.begin(), sweep.jobs.begin(), sweep.jobs.end());
    for (const char* a : {"schedule_seconds"}) out.attrs_f64[a] += sweep.attrs_f64[a];
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
  detail::Scheduler sched(world, job.ranks_per_task, options.workdir.empty() ? "" : options.workdir + "/jobs",
                          options.resume, progress);
  if (job.experiment == "convergence") run_convergence(sched, job, tasks, out);
  else if (job.experiment == "potential") {
    if (rank == 0 && !options.workdir.empty()) fs::create_directories(options.workdir + "/snapshots");
    MPI_Barrier(world);
    run_potential(sched, job, tasks, options.workdir, out);
  }
  else throw std::logic_error("run_experiment: not an experiment: " + job.experiment);
  detail::job_attributes(out, job, world_size);
  detail::schedule_attributes(out, sched);
  out.R = out.R_per_sample = out.stderr_total = out.stderr_probe = out.stderr_seed = Matrix<double>(0, 0, 0.0);
  out.unions_C = Matrix<double>(0, 0, 0.0);
  out.unions_conflicts = Matrix<int64_t>(0, 0, 0);
  return out;
}

}  // namespace taskreach
