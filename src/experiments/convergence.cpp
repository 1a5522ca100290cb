// convergence (paper §4.1, Fig. 1–2): steps τ to a loss threshold and C_β against random
// labels, batch size and architecture; fits of log τ (Kramers' law).
#include <algorithm>
#include <cmath>
#include <memory>
#include <sstream>

#include "common.hpp"

namespace taskreach::experiments {
namespace {

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
      transform::RandomLabels tr;
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

}  // namespace

void run_convergence(Scheduler& sched, const JobConfig& job, const TaskSet& tasks, RunOutput& out) {
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

std::string describe_convergence(const JobConfig& job, const TaskSet& tasks) {
  std::ostringstream o;
  const ConvergencePlan p = plan_convergence(job, tasks);
  o << "random labels (" << p.labels.size() << " runs), batch sizes (" << p.batches.size() << " runs), "
    << job.convergence.architectures.size() << " architectures x " << tasks.tasks.size() << " tasks ("
    << p.archs.size() << " runs); tau = first SGD step with mean loss < " << job.train.loss_threshold << "\n";
  for (const auto& t : p.variants->tasks) o << "  " << t.name << "  n = " << t.size() << "\n";
  return o.str();
}

}  // namespace taskreach::experiments
