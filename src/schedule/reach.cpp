// The reachability run (DESIGN §4): task groups of `ranks_per_task` ranks, each job trained,
// polished and measured on its group's communicator, results exchanged, C_β and R assembled.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <ctime>
#include <iomanip>
#include <map>
#include <numeric>
#include <sstream>

#include "taskreach/curvature.hpp"
#include "taskreach/schedule.hpp"
#include "taskreach/train.hpp"

namespace taskreach {
namespace {

// C_β(D) = L_D(w*) + β/2·[‖w*‖²/λ² + log det(I + cG)]   (paper eq. 3, DESIGN §1)
double complexity(double loss, double weight_norm2, double logdet, const ComplexityConfig& c) {
  return loss + 0.5 * c.beta * (weight_norm2 / c.lambda2 + logdet);
}

// One (job, seed) measurement, flattened for exchange between groups.
struct Measurement {
  std::string status = "ok";
  double seconds = 0, loss = 0, weight_norm2 = 0, logdet = 0, logdet_stderr = 0, grad_norm = 0, C = 0;
  double weight_decay = 0, quadrature_change = 0, curvature_seconds = 0;
  int64_t sgd_steps = 0, polish_iters = 0, products = 0, eps_requested = 0, eps_converged = 0;
  std::vector<double> probes, eigenvalues, residuals;

  std::vector<double> pack() const {
    static const char* kStatus[] = {"ok", "diverged", "not_converged", "eps_not_converged"};
    double code = 0;
    for (int s = 0; s < 4; ++s)
      if (status == kStatus[s]) code = s;
    std::vector<double> v{code, seconds, loss, weight_norm2, logdet, logdet_stderr, grad_norm, C,
                          weight_decay, quadrature_change, curvature_seconds,
                          double(sgd_steps), double(polish_iters), double(products),
                          double(eps_requested), double(eps_converged),
                          double(probes.size()), double(eigenvalues.size())};
    v.insert(v.end(), probes.begin(), probes.end());
    v.insert(v.end(), eigenvalues.begin(), eigenvalues.end());
    v.insert(v.end(), residuals.begin(), residuals.end());
    return v;
  }
  static Measurement unpack(const std::vector<double>& v) {
    static const char* kStatus[] = {"ok", "diverged", "not_converged", "eps_not_converged"};
    Measurement m;
    size_t k = 0;
    m.status = kStatus[static_cast<int>(v[k++])];
    for (double* f : {&m.seconds, &m.loss, &m.weight_norm2, &m.logdet, &m.logdet_stderr, &m.grad_norm, &m.C,
                      &m.weight_decay, &m.quadrature_change, &m.curvature_seconds})
      *f = v[k++];
    for (int64_t* f : {&m.sgd_steps, &m.polish_iters, &m.products, &m.eps_requested, &m.eps_converged})
      *f = static_cast<int64_t>(v[k++]);
    const auto np = static_cast<size_t>(v[k++]), ne = static_cast<size_t>(v[k++]);
    m.probes.assign(v.begin() + long(k), v.begin() + long(k + np));
    k += np;
    m.eigenvalues.assign(v.begin() + long(k), v.begin() + long(k + ne));
    k += ne;
    m.residuals.assign(v.begin() + long(k), v.begin() + long(k + ne));
    return m;
  }
};

// The seed of repetition s: the same initialisation for every job, so differences pair up.
uint64_t train_seed(const JobConfig& job, int64_t s) { return job.seed * 1000003ULL + static_cast<uint64_t>(s); }

Measurement measure(MPI_Comm group, const JobConfig& job, const ModelShape& shape, const Task& task, int64_t s) {
  const auto t0 = std::chrono::steady_clock::now();
  Measurement m;
  TrainOutcome tr = train_map(group, shape, task, job, train_seed(job, s));
  m.status = tr.status;
  m.loss = tr.loss;
  m.weight_norm2 = tr.weight_norm2;
  m.grad_norm = tr.grad_norm;
  m.weight_decay = tr.weight_decay;
  m.sgd_steps = tr.sgd_steps;
  m.polish_iters = tr.polish_iters;
  if (tr.status != "diverged") {
    int rank = 0, size = 1;
    MPI_Comm_rank(group, &rank);
    MPI_Comm_size(group, &size);
    TorchCurvature op(shape, tr.weights, task, rank, size, job.complexity.curvature, job.complexity.batch_size);
    SpectrumOptions so;
    so.top_k = job.complexity.top_k;
    so.probes = job.complexity.probes;
    so.lanczos_steps = job.complexity.lanczos_steps;
    so.c = job.logdet_c();
    so.seed = job.seed;  // the same probes for every model of the job
    so.eps_tol = job.complexity.eps_tol;
    SpectrumResult sp = estimate_spectrum(group, op, so);
    m.logdet = sp.logdet;
    m.logdet_stderr = sp.logdet_stderr;
    m.quadrature_change = sp.quadrature_change;
    m.probes = sp.probe_values;
    m.eigenvalues = sp.eigenvalues;
    m.residuals = sp.residuals;
    m.products = sp.products;
    m.curvature_seconds = sp.seconds;
    m.eps_requested = sp.requested;
    m.eps_converged = sp.converged;
    if (sp.converged < sp.requested && m.status == "ok") m.status = "eps_not_converged";
    m.C = complexity(m.loss, m.weight_norm2, m.logdet, job.complexity);
  } else {
    m.C = m.loss = m.logdet = std::nan("");
  }
  m.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return m;
}

double mean_of(const std::vector<double>& v) {
  return v.empty() ? std::nan("") : std::accumulate(v.begin(), v.end(), 0.0) / double(v.size());
}
// Standard error of the mean of v.
double stderr_of(const std::vector<double>& v) {
  if (v.size() < 2) return 0.0;
  const double m = mean_of(v);
  double s = 0;
  for (double x : v) s += (x - m) * (x - m);
  return std::sqrt(s / double(v.size() - 1) / double(v.size()));
}

std::string now_iso() {
  std::time_t t = std::time(nullptr);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&t));
  return buf;
}

}  // namespace

Plan make_plan(const JobConfig& job, const TaskSet& tasks) {
  Plan plan;
  const auto N = static_cast<int64_t>(tasks.tasks.size());
  plan.n_tasks = N;
  plan.seeds = job.train.seeds;
  ModelShape shape = model_shape(job, tasks);
  plan.d = num_parameters(shape);
  plan.job_of.assign(size_t(N), std::vector<int64_t>(size_t(N), -1));
  std::map<uint64_t, int64_t> by_identity;
  auto add = [&](Task t, const std::string& name) {
    auto it = by_identity.find(t.identity);
    if (it != by_identity.end()) return it->second;
    plan.jobs.push_back({name, std::move(t)});
    return by_identity[plan.jobs.back().task.identity] = int64_t(plan.jobs.size()) - 1;
  };
  for (int64_t i = 0; i < N; ++i) plan.job_of[i][i] = add(tasks.tasks[size_t(i)], "single:" + tasks.tasks[size_t(i)].name);
  for (int64_t i = 0; i < N; ++i)
    for (int64_t j = i + 1; j < N; ++j) {
      const auto& a = tasks.tasks[size_t(i)];
      const auto& b = tasks.tasks[size_t(j)];
      plan.job_of[i][j] = plan.job_of[j][i] = add(unite(a, b, a.name + "+" + b.name), "union:" + a.name + "+" + b.name);
    }
  return plan;
}

std::string describe_plan(const JobConfig& job, const TaskSet& tasks, const Plan& plan, int world_size) {
  std::ostringstream o;
  const int64_t g = std::min<int64_t>(job.ranks_per_task, world_size);
  o << "job " << job.path << (job.name.empty() ? "" : " (" + job.name + ")") << "\n";
  o << "input " << tasks.channels << "x" << tasks.height << "x" << tasks.width << ", shared head K_tot = "
    << tasks.k_tot << ", model " << job.model.arch << ", d = " << plan.d << " parameters\n";
  o << "tasks (" << plan.n_tasks << "):\n";
  for (const auto& t : tasks.tasks)
    o << "  " << std::left << std::setw(20) << t.name << " n = " << t.size() << ", label rows "
      << t.active_rows.size() << "\n";
  int64_t unions = 0;
  for (const auto& j : plan.jobs) unions += j.name.rfind("union:", 0) == 0;
  o << "jobs: " << plan.n_tasks << " singles + " << unions << " distinct unions (of "
    << plan.n_tasks * (plan.n_tasks - 1) / 2 << " pairs; equal sample sets are one job) x " << plan.seeds
    << " seeds = " << plan.work_items() << " trainings\n";
  for (const auto& j : plan.jobs) o << "  " << j.name << "  n = " << j.task.size() << "\n";
  o << "groups: " << std::max<int64_t>(1, world_size / g) << " of " << g << " rank(s) on " << world_size
    << " rank(s)\n";
  o << "curvature: " << job.complexity.curvature << ", top-" << job.complexity.top_k << " + SLQ "
    << job.complexity.probes << " probes x " << job.complexity.lanczos_steps << " steps; c = " << job.logdet_c()
    << " (" << job.complexity.logdet_scale << ")\n";
  return o.str();
}

RunOutput run_reachability(MPI_Comm world, const JobConfig& job, const TaskSet& tasks, const Plan& plan,
                           std::ostream* progress) {
  const auto t_start = std::chrono::steady_clock::now();
  int rank = 0, world_size = 1;
  MPI_Comm_rank(world, &rank);
  MPI_Comm_size(world, &world_size);
  const int g = static_cast<int>(std::min<int64_t>(job.ranks_per_task, world_size));
  const int groups = std::max(1, world_size / g);
  // Ranks beyond groups*g join the last group, so any world size works.
  const int color = std::min(rank / g, groups - 1);
  MPI_Comm group;
  MPI_Comm_split(world, color, rank, &group);
  int group_rank = 0;
  MPI_Comm_rank(group, &group_rank);
  const ModelShape shape = model_shape(job, tasks);

  // Largest first, each to the least-loaded group: the same assignment on every rank.
  struct Item { int64_t job, seed; int owner = 0; };
  std::vector<Item> items;
  for (int64_t s = 0; s < plan.seeds; ++s)
    for (int64_t j = 0; j < int64_t(plan.jobs.size()); ++j) items.push_back({j, s});
  std::stable_sort(items.begin(), items.end(), [&](const Item& a, const Item& b) {
    return plan.jobs[size_t(a.job)].task.size() > plan.jobs[size_t(b.job)].task.size();
  });
  std::vector<double> load(size_t(groups), 0.0);
  for (auto& it : items) {
    it.owner = int(std::min_element(load.begin(), load.end()) - load.begin());
    load[size_t(it.owner)] += double(plan.jobs[size_t(it.job)].task.size());
  }
  // World rank of each group's first rank.
  std::vector<int> root_of(static_cast<size_t>(groups), 0);
  for (int c = 0; c < groups; ++c) root_of[size_t(c)] = c * g;

  const int64_t total = int64_t(items.size());
  std::vector<std::vector<double>> packed(items.size());
  int64_t mine_done = 0, mine_total = 0;
  for (const auto& it : items) mine_total += it.owner == color;
  for (size_t k = 0; k < items.size(); ++k) {
    if (items[k].owner != color) continue;
    const auto& pj = plan.jobs[size_t(items[k].job)];
    Measurement m = measure(group, job, shape, pj.task, items[k].seed);
    packed[k] = m.pack();
    ++mine_done;
    if (progress && rank == 0) {
      const double el = std::chrono::duration<double>(std::chrono::steady_clock::now() - t_start).count();
      *progress << "[" << mine_done << "/" << mine_total << " of group 0, " << total << " in all] " << pj.name
                << " seed " << items[k].seed << ": " << m.status << ", C = " << std::setprecision(6) << m.C
                << " nats, " << std::fixed << std::setprecision(1) << m.seconds << " s (elapsed " << el
                << " s, ~" << el / double(mine_done) * double(mine_total - mine_done) << " s left)"
                << std::defaultfloat << std::endl;
    }
  }
  MPI_Comm_free(&group);

  // Every rank gets every measurement from the owning group's first rank.
  std::vector<Measurement> ms(items.size());
  for (size_t k = 0; k < items.size(); ++k) {
    const int root = root_of[size_t(items[k].owner)];
    int len = rank == root ? int(packed[k].size()) : 0;
    MPI_Bcast(&len, 1, MPI_INT, root, world);
    packed[k].resize(size_t(len));
    MPI_Bcast(packed[k].data(), len, MPI_DOUBLE, root, world);
    ms[k] = Measurement::unpack(packed[k]);
  }
  // by_job[j][s]
  std::vector<std::vector<const Measurement*>> by_job(plan.jobs.size(), std::vector<const Measurement*>(size_t(plan.seeds)));
  for (size_t k = 0; k < items.size(); ++k) by_job[size_t(items[k].job)][size_t(items[k].seed)] = &ms[k];

  // --- assembly
  const int64_t N = plan.n_tasks, S = plan.seeds;
  const auto& cc = job.complexity;
  RunOutput out;
  auto seed_mean = [&](int64_t j, double Measurement::*f) {
    std::vector<double> v;
    for (const auto* m : by_job[size_t(j)]) v.push_back(m->*f);
    return mean_of(v);
  };
  auto failed = [&](int64_t j) {
    for (const auto* m : by_job[size_t(j)])
      if (m->status == "diverged" || m->status == "eps_not_converged") return true;
    return false;
  };
  for (int64_t i = 0; i < N; ++i) {
    const auto& t = tasks.tasks[size_t(i)];
    const int64_t j = plan.job_of[i][i];
    out.task_names.push_back(t.name);
    out.num_samples.push_back(t.size());
    std::vector<int64_t> classes(t.y);
    std::sort(classes.begin(), classes.end());
    out.num_classes.push_back(std::unique(classes.begin(), classes.end()) - classes.begin());
    out.C.push_back(seed_mean(j, &Measurement::C));
    out.loss.push_back(seed_mean(j, &Measurement::loss));
    out.weight_norm2.push_back(seed_mean(j, &Measurement::weight_norm2));
    out.logdet.push_back(seed_mean(j, &Measurement::logdet));
    // Probe error of the seed mean: per-seed errors combined.
    double v = 0;
    for (const auto* m : by_job[size_t(j)]) v += m->logdet_stderr * m->logdet_stderr;
    out.logdet_stderr.push_back(std::sqrt(v) / double(S));
    out.grad_norm.push_back(seed_mean(j, &Measurement::grad_norm));
    const auto* m0 = by_job[size_t(j)][0];
    out.spectra.push_back({m0->eigenvalues, m0->residuals, m0->products, m0->curvature_seconds});
  }
  out.unions_C = Matrix<double>(N, N, 0.0);
  out.unions_conflicts = Matrix<int64_t>(N, N, 0);
  out.R = out.R_per_sample = out.stderr_total = out.stderr_probe = out.stderr_seed = Matrix<double>(N, N, 0.0);
  const double nan = std::nan("");
  for (int64_t i = 0; i < N; ++i)
    for (int64_t jj = 0; jj < N; ++jj) {
      const int64_t u = plan.job_of[i][jj], s = plan.job_of[jj][jj];
      out.unions_C(i, jj) = seed_mean(u, &Measurement::C);
      out.unions_conflicts(i, jj) = count_conflicts(plan.jobs[size_t(u)].task);
      // R(i|j) = C_β(D_i ∪ D_j) − C_β(D_j)   (paper §2.3)
      std::vector<double> r_seed;
      for (int64_t q = 0; q < S; ++q) r_seed.push_back(by_job[size_t(u)][size_t(q)]->C - by_job[size_t(s)][size_t(q)]->C);
      // Paired over probes: the same probe vectors for every model of the job.
      std::vector<double> dp;
      const size_t P = by_job[size_t(u)][0]->probes.size();
      for (size_t p = 0; p < P; ++p) {
        double du = 0, ds = 0;
        for (int64_t q = 0; q < S; ++q) {
          du += by_job[size_t(u)][size_t(q)]->probes[p];
          ds += by_job[size_t(s)][size_t(q)]->probes[p];
        }
        dp.push_back(0.5 * cc.beta * (du - ds) / double(S));
      }
      const bool bad = failed(u) || failed(s);
      out.R(i, jj) = bad ? nan : (u == s ? 0.0 : mean_of(r_seed));
      out.R_per_sample(i, jj) = out.R(i, jj) / double(tasks.tasks[size_t(i)].size());
      out.stderr_probe(i, jj) = bad ? nan : stderr_of(dp);
      out.stderr_seed(i, jj) = bad ? nan : stderr_of(r_seed);
      out.stderr_total(i, jj) = std::hypot(out.stderr_probe(i, jj), out.stderr_seed(i, jj));
    }

  for (size_t k = 0; k < items.size(); ++k) {
    const auto& m = ms[k];
    std::ostringstream rec;
    rec << "seed=" << train_seed(job, items[k].seed) << " gamma=" << m.weight_decay << " lr=" << job.train.lr
        << " B=" << job.train.batch_size << " sgd_steps=" << m.sgd_steps << " polish_iters=" << m.polish_iters
        << " grad_norm=" << m.grad_norm << " dtype=" << job.train.dtype << "+float64_polish threads=1"
        << " n=" << plan.jobs[size_t(items[k].job)].task.size() << " hvp=" << m.products
        << " eps=" << m.eps_converged << "/" << m.eps_requested << " quadrature_change=" << m.quadrature_change
        << " logdet_stderr=" << m.logdet_stderr;
    out.jobs.push_back({plan.jobs[size_t(items[k].job)].name + "/seed" + std::to_string(items[k].seed), m.status,
                        m.seconds, rec.str()});
  }

  out.attrs_str["config"] = job.text;
  out.attrs_str["created"] = now_iso();
  out.attrs_str["logdet_scale"] = cc.logdet_scale;
  out.attrs_str["curvature"] = cc.curvature;
  out.attrs_str["model"] = job.model.arch;
  out.attrs_str["weight_decay"] = job.train.weight_decay_auto
                                      ? "auto (MAP: beta/(lambda2 n))"
                                      : "explicit: C is not evaluated at the MAP point of its own prior";
  out.attrs_str["torch"] = torch_version();
  out.attrs_str["blas"] = blas_info();
  {
    char v[MPI_MAX_LIBRARY_VERSION_STRING];
    int len = 0;
    MPI_Get_library_version(v, &len);
    std::string s(v, size_t(len));
    out.attrs_str["mpi"] = s.substr(0, s.find_first_of("\n,"));
  }
  out.attrs_f64["beta"] = cc.beta;
  out.attrs_f64["lambda2"] = cc.lambda2;
  out.attrs_f64["logdet_c"] = job.logdet_c();
  out.attrs_i64["mpi_ranks"] = world_size;
  out.attrs_i64["ranks_per_task"] = g;
  out.attrs_i64["seeds"] = S;
  out.attrs_i64["parameters"] = plan.d;
  out.attrs_i64["k_tot"] = tasks.k_tot;
  out.attrs_i64["top_k"] = cc.top_k;
  out.attrs_i64["probes"] = cc.probes;
  out.attrs_i64["lanczos_steps"] = cc.lanczos_steps;
  return out;
}

}  // namespace taskreach
