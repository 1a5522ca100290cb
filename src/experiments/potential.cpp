// potential (paper §4.3, Fig. 4–5): one long training with snapshots; U, S (log-det and
// trace forms) and the weight velocity; fits of ½v² = E − aU − bS.
#include <cmath>
#include <sstream>

#include "common.hpp"
#include "taskreach/formulas.hpp"
#include "taskreach/util.hpp"

namespace taskreach::experiments {

namespace {

// Snapshots are stored results of their own: [count of weights, count of buffers, weights…,
// buffers…], keyed by the training's key and the snapshot's index.
uint64_t snapshot_key(uint64_t train_key, const std::string& which) {
  return util::hash_parts({"snapshot", util::hex16(train_key), which});
}

void write_snapshot(const ResultStore& store, uint64_t key, const std::vector<double>& w, const std::vector<double>& b) {
  std::vector<double> v{double(w.size()), double(b.size())};
  v.insert(v.end(), w.begin(), w.end());
  v.insert(v.end(), b.begin(), b.end());
  store.write(key, v);
}

void read_snapshot(const ResultStore& store, uint64_t key, std::vector<double>& w, std::vector<double>& b) {
  const std::vector<double> v = store.read(key);
  if (v.size() < 2 || v[0] < 0 || v[1] < 0 || v.size() != 2 + size_t(v[0]) + size_t(v[1]))
    throw std::runtime_error(store.path_of(key) + ": missing or damaged weight snapshot");
  w.assign(v.begin() + 2, v.begin() + 2 + long(v[0]));
  b.assign(v.begin() + 2 + long(v[0]), v.end());
}

}  // namespace

void run_potential(Scheduler& sched, const JobConfig& job, const TaskSet& tasks, const std::string& workdir,
                   RunOutput& out) {
  const Task& task = task_named(tasks, job.potential.task);
  const ModelShape shape = model_shape(job, tasks);
  const int64_t d = num_parameters(shape), n = task.size();
  if (workdir.empty()) throw std::logic_error("potential: needs a work directory for its snapshots");
  const ResultStore snapshots(workdir + "/snapshots");
  const uint64_t train_key = key_of(job, {"potential", "train", model_settings(shape),
                                          util::hex16(sample_set_key(task)),
                                          std::to_string(job.potential.curvature_every)});
  auto snapshot = [&](int64_t i) { return snapshot_key(train_key, std::to_string(i)); };
  const uint64_t complete = snapshot_key(train_key, "complete");

  // Phase 1: the long training; each k-th evaluation is a snapshot (U, accuracy, weights).
  Phase p1{"potential: training with snapshots", {1.0}, {train_key}, {"potential:train " + task.name}};
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
          if (grank == 0) write_snapshot(snapshots, snapshot(count), w, b);
          ++count;
        };
        const TrainOutcome tr = train_map(sched.group(), shape, task, jt, train_seed(job, 0), "", hooks);
        MPI_Barrier(sched.group());
        if (grank == 0) snapshots.write(complete, {double(count)});
        series.insert(series.begin(), {tr.status == "diverged" ? 1.0 : 0.0, tr.weight_decay});
        return series;
      },
      [&](size_t, const StoredInfo&) { return snapshots.contains(complete); });
  const std::vector<double>& s1 = r1[0];
  const bool diverged = s1[0] != 0.0;
  const double gamma = s1[1];
  const size_t S = (s1.size() - 2) / 4;
  auto at = [&](size_t i, size_t c) { return s1[2 + 4 * i + c]; };
  if (!(gamma > 0))
    throw InputError(job.path + ": train.weight_decay: the potential's S = log det(gamma I + G/n)/d needs gamma > 0");

  // Phase 2: the curvature at every snapshot: log det(γI + G/n) = d·log γ + log det(I + G/(nγ)).
  Phase p2{"potential: curvature at each snapshot", {}, {}, {}};
  for (size_t i = 0; i < S; ++i) {
    p2.cost.push_back(1.0);
    p2.key.push_back(key_of(job, {"potential", "curvature", util::hex16(train_key), std::to_string(i)}));
    p2.label.push_back("potential:curvature step " + std::to_string(int64_t(at(i, 0))));
  }
  SpectrumOptions so = spectrum_options(job);
  so.c = so.c_alt = formulas::potential_c(double(n), gamma);
  auto r2 = sched.run(p2, [&](size_t i) {
    std::vector<double> w, b;
    read_snapshot(snapshots, snapshot(int64_t(i)), w, b);
    const SpectrumResult sp = spectrum_at(sched.group(), job, shape, task, w, b, so);
    return std::vector<double>{sp.logdet, sp.logdet_stderr, sp.trace, sp.trace_stderr, sp.seconds};
  });

  const double spe = double(steps_per_epoch(job, n));
  std::vector<double> step, epoch, U, acc, S_logdet, S_logdet_err, S_trace;
  for (size_t i = 0; i < S; ++i) {
    step.push_back(at(i, 0));
    epoch.push_back(at(i, 0) / spe);
    U.push_back(at(i, 1));
    acc.push_back(at(i, 2));
    S_logdet.push_back(formulas::potential_S_logdet(r2[i][0], gamma, double(d)));
    S_logdet_err.push_back(r2[i][1] / double(d));
    S_trace.push_back(formulas::potential_S_trace(r2[i][2], double(n), double(d)));
    JobRecord r{p2.label[i], "ok", r2[i][4], {}, {}};
    r.add("gamma", gamma);
    r.add("c", so.c);
    out.jobs.push_back(std::move(r));
  }
  JobRecord first{p1.label[0], diverged ? "diverged" : "ok", 0.0, {}, {}};
  first.add("snapshots", double(S));
  out.jobs.insert(out.jobs.begin(), std::move(first));
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
    half_v2.push_back(formulas::half_v2(at(i, 3), dt));
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

std::string describe_potential(const JobConfig& job, const TaskSet& tasks) {
  std::ostringstream o;
  const Task& t = task_named(tasks, job.potential.task);
  const int64_t steps = job.train.steps > 0 ? job.train.steps : job.train.epochs * steps_per_epoch(job, t.size());
  o << "one training of " << t.name << " (n = " << t.size() << ", " << steps << " SGD steps), a snapshot every "
    << job.train.eval_every * job.potential.curvature_every << " steps, the curvature at each\n";
  return o.str();
}

}  // namespace taskreach::experiments
