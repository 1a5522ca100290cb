// The torch-only GPU check: taskreach's own model, SGD step and curvature products
// (src/train/model.cpp, src/train/curvature_product.cpp, compiled as they are) on the CPU and
// on CUDA in float64, compared and timed in one run. Needs LibTorch alone (no MPI, PETSc,
// HDF5, Kokkos): tests/gpu/run.sh builds it when the full stack is missing.
//
//   gpu_check [--quick] [--repeats R] [--steps N] [--samples N] [--tol T] [--threads N]
//
// For the mlp and cnn models of a job file's defaults, on seeded random inputs of MNIST's
// shape (1×28×28, 10 of 20 head rows active): (a) N SGD steps from the same initial weights,
// (b) G·v and H·v at the trained weights for the same v, each compared CPU against CUDA
// (max |cpu − cuda| / max |cpu| ≤ tol, default 1e-10) and timed (median of R repeats, CUDA
// synchronised; the CPU/CUDA ratio is of the medians of this run). Before that, on the CPU:
// repeatable SGD and products, inactive head rows kept at zero, G and H symmetric, G positive
// semi-definite, and G·v, H·v against central finite differences of the model's logits and
// gradient.
//
// Exit codes: 0 every check passed on CPU and CUDA; 1 a check failed (a disagreement);
// 2 bad arguments or an error; 3 CUDA is not available (the CPU checks ran and passed; no GPU
// figure was measured).
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>
#include <vector>

#include "model.hpp"  // src/train/model.hpp: Net, make_net, minibatch_backward, use_device, …
#include "taskreach/train_model.hpp"
#include "taskreach/util.hpp"

using namespace taskreach;
namespace td = taskreach::detail;  // the train module's internals (src/train/model.hpp)

namespace {

constexpr int kExitOk = 0, kExitFailed = 1, kExitError = 2, kExitNoCuda = 3;

// The protocol of a job file's defaults ([train] lr, momentum; [complexity] batch_size;
// weight decay β/(λ² n) at β = λ² = 1).
constexpr double kLr = 0.05, kMomentum = 0.9;
constexpr int64_t kCurvatureBatch = 256;
constexpr uint64_t kInitSeed = 7, kOrderSeed = 11, kDataSeed = 13;
constexpr double kFdStep = 1e-5, kFdTol = 1e-6;

struct Options {
  int repeats = 5, threads = 0;  // threads 0: LibTorch's default
  int64_t steps = 40, samples = 512, batch = 64;
  double tol = 1e-10;
};

struct Case {
  std::string name;
  ModelShape shape;
  Task task;
};

// n seeded random inputs in [−1, 1] of shape 1×28×28 with labels in 0..9, heads of 20 rows
// of which the first 10 are active (as MNIST in a job that also holds Fashion-MNIST).
Task random_task(int64_t n) {
  Task t;
  t.name = "random";
  t.dim = 28 * 28;
  t.x.resize(size_t(n * t.dim));
  for (size_t i = 0; i < t.x.size(); ++i) t.x[i] = float(2.0 * util::uniform_at(kDataSeed, i) - 1.0);
  for (int64_t i = 0; i < n; ++i) t.y.push_back(int64_t(util::below_at(kDataSeed + 1, uint64_t(i), 10)));
  for (int64_t r = 0; r < 10; ++r) t.active_rows.push_back(r);
  return t;
}

std::vector<Case> cases(const Options& o) {
  ModelShape base;
  base.channels = 1;
  base.height = base.width = 28;
  base.k_tot = 20;
  base.activation = Activation::tanh;
  base.hidden = {32};
  Case mlp{"mlp", base, random_task(o.samples)};
  mlp.shape.arch = Arch::mlp;
  Case cnn{"cnn", base, mlp.task};
  cnn.shape.arch = Arch::cnn;
  cnn.shape.conv = {16, 32};
  return {mlp, cnn};
}

// A unit vector of d seeded normal entries (Box–Muller on counter-based uniforms).
std::vector<double> unit_vector(int64_t d, uint64_t seed) {
  std::vector<double> v(static_cast<size_t>(d));
  double s = 0;
  for (int64_t i = 0; i < d; ++i) {
    const double u1 = 1.0 - util::uniform_at(seed, uint64_t(2 * i)), u2 = util::uniform_at(seed, uint64_t(2 * i + 1));
    v[size_t(i)] = std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * M_PI * u2);
    s += v[size_t(i)] * v[size_t(i)];
  }
  for (auto& x : v) x /= std::sqrt(s);
  return v;
}

double dot(const std::vector<double>& a, const std::vector<double>& b) {
  double s = 0;
  for (size_t i = 0; i < a.size(); ++i) s += a[i] * b[i];
  return s;
}
double norm(const std::vector<double>& a) { return std::sqrt(dot(a, a)); }
double max_abs(const std::vector<double>& a) {
  double m = 0;
  for (double x : a) m = std::max(m, std::fabs(x));
  return m;
}
double max_abs_diff(const std::vector<double>& a, const std::vector<double>& b) {
  if (a.size() != b.size()) return INFINITY;
  double m = 0;
  for (size_t i = 0; i < a.size(); ++i) m = std::max(m, std::fabs(a[i] - b[i]));
  return std::isnan(m) ? INFINITY : m;
}

double median(std::vector<double> v) {
  if (v.empty()) return NAN;
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

void sync(torch::Device dev) {
  if (dev.is_cuda()) torch::cuda::synchronize(dev.index());
}

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

// ---- (a) SGD: the application's step (detail::minibatch_backward, which run_sgd calls,
// then SGD with momentum and weight decay) in its data order (a permutation per epoch).

struct SgdRun {
  std::vector<double> init, weights;
  double inactive_max = 0;  // max |head weight or bias| on the inactive rows after training
  double seconds = 0;       // the N steps alone
};

SgdRun run_sgd(const Case& c, torch::Device dev, const Options& o) {
  td::use_device(dev);
  td::Net net = td::make_net(c.shape, kInitSeed, c.task.active_rows);
  net->to(torch::kDouble);
  const auto x = td::features(c.task, torch::kDouble);
  const auto y = td::labels(c.task);
  const auto mask = td::head_mask(c.shape.k_tot, c.task.active_rows);
  auto params = net->parameters();
  SgdRun r;
  r.init = td::flatten(params);
  const int64_t n = c.task.size();
  torch::optim::SGD sgd(params, torch::optim::SGDOptions(kLr).momentum(kMomentum).weight_decay(1.0 / double(n)));
  net->train();
  std::vector<int64_t> perm;
  int64_t epoch = 0, pos = n;
  sync(dev);
  const auto t0 = Clock::now();
  for (int64_t step = 0; step < o.steps; ++step) {
    if (pos >= n) {
      perm = util::permutation(util::chain(kOrderSeed, uint64_t(epoch++)), n);
      pos = 0;
    }
    const int64_t b0 = pos, b1 = std::min(n, pos + o.batch);
    pos = b1;
    const std::vector<int64_t> rows(perm.begin() + b0, perm.begin() + b1);
    const double loss = td::minibatch_backward(net, params, x, y, mask, rows, b1 - b0);
    if (!std::isfinite(loss)) throw std::runtime_error(c.name + ": SGD diverged at step " + std::to_string(step + 1));
    sgd.step();
  }
  sync(dev);
  r.seconds = seconds_since(t0);
  r.weights = td::flatten(params);
  torch::NoGradGuard no_grad;
  const auto off = mask.logical_not();
  r.inactive_max = std::max(net->head->weight.index({off}).abs().max().item<double>(),
                            net->head->bias.index({off}).abs().max().item<double>());
  return r;
}

// ---- (b) the curvature products: TorchCurvature, the operator the eigensolver applies.

struct ProductRun {
  std::vector<std::vector<double>> out;  // A v, once per repeat
  std::vector<double> at_u;              // A u (the first product, also the warm-up)
  double build_seconds = 0;
  std::vector<double> seconds;
};

ProductRun run_product(const Case& c, const std::vector<double>& w, Curvature kind, torch::Device dev,
                       const std::vector<double>& v, const std::vector<double>& u, const Options& o) {
  td::use_device(dev);
  ProductRun r;
  sync(dev);
  auto t0 = Clock::now();
  TorchCurvature op(c.shape, w, c.task, /*shard_rank=*/0, /*shard_size=*/1, kind, kCurvatureBatch);
  sync(dev);
  r.build_seconds = seconds_since(t0);
  std::vector<double> out(size_t(op.dim()));
  op.apply_shard(u.data(), out.data());  // also the warm-up
  r.at_u = out;
  for (int k = 0; k < o.repeats; ++k) {
    sync(dev);
    t0 = Clock::now();
    op.apply_shard(v.data(), out.data());
    sync(dev);
    r.seconds.push_back(seconds_since(t0));
    r.out.push_back(out);
  }
  return r;
}

// ---- references on the CPU from the model's forward pass alone.

td::Net net_at(const Case& c, const std::vector<double>& w) {
  td::use_device(torch::kCPU);
  td::Net net = td::make_net(c.shape, 0, c.task.active_rows);
  net->to(torch::kDouble);
  net->eval();
  td::unflatten(w.data(), net->parameters());
  return net;
}

std::vector<double> axpy(const std::vector<double>& w, double a, const std::vector<double>& v) {
  std::vector<double> r(w);
  for (size_t i = 0; i < r.size(); ++i) r[i] += a * v[i];
  return r;
}

// ∇L_D(w), L_D the summed masked cross-entropy the Hessian product differentiates.
std::vector<double> loss_gradient(const Case& c, const std::vector<double>& w) {
  auto net = net_at(c, w);
  auto params = net->parameters();
  std::vector<int64_t> all(static_cast<size_t>(c.task.size()));
  for (size_t i = 0; i < all.size(); ++i) all[i] = int64_t(i);
  td::minibatch_backward(net, params, td::features(c.task, torch::kDouble), td::labels(c.task),
                         td::head_mask(c.shape.k_tot, c.task.active_rows), all, 1);
  std::vector<torch::Tensor> g;
  for (const auto& p : params) g.push_back(p.grad());
  return td::flatten(g);
}

torch::Tensor logits_at(const Case& c, const std::vector<double>& w) {
  torch::NoGradGuard no_grad;
  auto net = net_at(c, w);
  return net->forward(td::features(c.task, torch::kDouble));
}

// vᵀGv = Σ_i (J_i v)ᵀ(diag p_i − p_i p_iᵀ)(J_i v), J_i v by central differences of the logits.
double ggn_quadratic_fd(const Case& c, const std::vector<double>& w, const std::vector<double>& v) {
  const auto jv = (logits_at(c, axpy(w, kFdStep, v)) - logits_at(c, axpy(w, -kFdStep, v))) / (2 * kFdStep);
  const auto p = torch::softmax(td::masked(logits_at(c, w), td::head_mask(c.shape.k_tot, c.task.active_rows)), 1);
  return ((p * jv * jv).sum(1) - (p * jv).sum(1).pow(2)).sum().item<double>();
}

// H v by central differences of the gradient.
std::vector<double> hessian_fd(const Case& c, const std::vector<double>& w, const std::vector<double>& v) {
  const auto gp = loss_gradient(c, axpy(w, kFdStep, v)), gm = loss_gradient(c, axpy(w, -kFdStep, v));
  std::vector<double> r(gp.size());
  for (size_t i = 0; i < r.size(); ++i) r[i] = (gp[i] - gm[i]) / (2 * kFdStep);
  return r;
}

// ---- the report.

int failures = 0;

void check_row(const std::string& model, const std::string& what, double value, double limit, bool ok) {
  if (!ok) ++failures;
  std::printf("  %-4s %-44s %10.2e  %8.1e  %s\n", model.c_str(), what.c_str(), value, limit, ok ? "ok" : "FAILED");
}

std::string ms(double s) {
  if (!std::isfinite(s)) return "-";
  char b[32];
  std::snprintf(b, sizeof b, "%.3f", 1e3 * s);
  return b;
}

struct Row {
  std::string model, what;
  int64_t d = 0;
  double cpu_s = NAN, cuda_s = NAN;  // medians
  double abs_diff = NAN, rel_diff = NAN;
  bool compared = false, ok = true;
  bool timing_only = false;  // nothing to compare (building the operator)
};

void print_rows(const std::vector<Row>& rows, double tol) {
  std::printf("  %-4s %-22s %7s %11s %11s %9s %13s %10s  %s\n", "", "", "d", "cpu ms", "cuda ms", "cpu/cuda",
              "max|cpu-cuda|", "rel diff", "result");
  for (const auto& r : rows) {
    const bool timed = std::isfinite(r.cuda_s) && r.cuda_s > 0 && std::isfinite(r.cpu_s);
    char ratio[32] = "-", ad[32] = "-", rd[32] = "-";
    if (timed) std::snprintf(ratio, sizeof ratio, "%.2f", r.cpu_s / r.cuda_s);
    if (r.compared) {
      std::snprintf(ad, sizeof ad, "%.2e", r.abs_diff);
      std::snprintf(rd, sizeof rd, "%.2e", r.rel_diff);
    }
    const char* result = r.timing_only ? (timed ? "timed" : "cpu only")
                         : !r.compared ? "cpu only"
                         : r.ok        ? "ok"
                                       : "FAILED";
    std::printf("  %-4s %-22s %7lld %11s %11s %9s %13s %10s  %s\n", r.model.c_str(), r.what.c_str(), (long long)r.d,
                ms(r.cpu_s).c_str(), ms(r.cuda_s).c_str(), ratio, ad, rd, result);
  }
  std::printf("  (medians; SGD: ms per step; G.v, H.v: ms per product; graphs: building the operator once;\n"
              "   rel diff = max|cpu - cuda| / max|cpu|, limit %.0e)\n",
              tol);
}

// Compares one CUDA result (every repeat) against the CPU's.
void compare(Row& row, const std::vector<double>& cpu, const std::vector<std::vector<double>>& cuda, double tol) {
  row.compared = true;
  row.abs_diff = 0;
  for (const auto& c : cuda) row.abs_diff = std::max(row.abs_diff, max_abs_diff(cpu, c));
  const double scale = max_abs(cpu);
  row.rel_diff = scale > 0 ? row.abs_diff / scale : row.abs_diff;
  row.ok = row.rel_diff <= tol;
  if (!row.ok) ++failures;
}

int usage(const char* argv0) {
  std::fprintf(stderr,
               "usage: %s [--quick] [--repeats R] [--steps N] [--samples N] [--tol T] [--threads N]\n"
               "  --quick    repeats 2, steps 10, samples 128 (a smoke test)\n"
               "  defaults:  repeats 5, steps 40, samples 512, tol 1e-10, LibTorch's CPU threads\n",
               argv0);
  return kExitError;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&]() -> const char* { return i + 1 < argc ? argv[++i] : nullptr; };
    const char* val = nullptr;
    if (a == "--help" || a == "-h") {
      usage(argv[0]);
      return kExitOk;
    } else if (a == "--quick") {
      o.repeats = 2;
      o.steps = 10;
      o.samples = 128;
    } else if ((a == "--repeats" || a == "--steps" || a == "--samples" || a == "--tol" || a == "--threads") &&
               (val = next())) {
      char* end = nullptr;
      const double x = std::strtod(val, &end);
      if (*end != '\0' || !(x > 0)) return usage(argv[0]);
      if (a == "--repeats") o.repeats = int(x);
      if (a == "--steps") o.steps = int64_t(x);
      if (a == "--samples") o.samples = int64_t(x);
      if (a == "--tol") o.tol = x;
      if (a == "--threads") o.threads = int(x);
    } else {
      return usage(argv[0]);
    }
  }
  if (o.repeats < 1 || o.steps < 1 || o.samples < 2) return usage(argv[0]);

  try {
    if (o.threads > 0) torch::set_num_threads(o.threads);
    const bool cuda = torch::cuda::is_available() && torch::cuda::device_count() > 0;
    const torch::Device gpu = cuda ? torch::Device(torch::kCUDA, 0) : torch::Device(torch::kCPU);
    std::printf("gpu_check: taskreach's model, SGD step and curvature products (src/train/), float64\n");
    std::printf("  LibTorch %s; CPU: %d intra-op threads (--threads N sets them)\n", torch_version().c_str(),
                torch::get_num_threads());
    if (cuda)
      std::printf("  CUDA: %zu device(s), using cuda:0; cuDNN %s\n", torch::cuda::device_count(),
                  torch::cuda::cudnn_is_available() ? "available" : "not available");
    else
      std::printf("  CUDA: not available (this LibTorch has no CUDA, or no GPU is visible)\n");
    std::printf("  data: %lld seeded random samples 1x28x28, 10 of 20 head rows active; SGD %lld steps of %lld, "
                "lr %.2g, momentum %.2g; %d repeats\n\n",
                (long long)o.samples, (long long)o.steps, (long long)o.batch, kLr, kMomentum, o.repeats);

    std::vector<Row> rows;
    std::printf("CPU self-consistency (no GPU needed)\n");
    std::printf("  %-4s %-44s %10s  %8s  %s\n", "", "check", "value", "limit", "result");
    struct Done {
      Case c;
      std::vector<SgdRun> cpu_sgd;
      std::vector<double> v, u;
      ProductRun cpu_g, cpu_h;
    };
    std::vector<Done> done;
    for (const auto& c : cases(o)) {
      Done dn{c, {}, {}, {}, {}, {}};
      for (int k = 0; k < o.repeats; ++k) dn.cpu_sgd.push_back(run_sgd(c, torch::kCPU, o));
      const auto& w = dn.cpu_sgd[0].weights;
      // Repeats: 0 with a deterministic BLAS (OpenBLAS); MKL may round differently run to run.
      double spread = 0;
      for (const auto& r : dn.cpu_sgd) spread = std::max(spread, max_abs_diff(w, r.weights) / max_abs(w));
      check_row(c.name, "SGD repeats: max|w_k - w_0| / max|w_0|", spread, o.tol, spread <= o.tol);
      check_row(c.name, "SGD: inactive head rows stay 0", dn.cpu_sgd[0].inactive_max, 0.0,
                dn.cpu_sgd[0].inactive_max == 0.0);
      const int64_t d = int64_t(w.size());
      dn.v = unit_vector(d, 101);
      dn.u = unit_vector(d, 202);
      dn.cpu_g = run_product(c, w, Curvature::ggn, torch::kCPU, dn.v, dn.u, o);
      dn.cpu_h = run_product(c, w, Curvature::hessian, torch::kCPU, dn.v, dn.u, o);
      for (const auto* pr : {&dn.cpu_g, &dn.cpu_h}) {
        const char* a = pr == &dn.cpu_g ? "G" : "H";
        const auto& av = pr->out[0];
        double spread_p = 0;
        for (const auto& r : pr->out) spread_p = std::max(spread_p, max_abs_diff(av, r) / max_abs(av));
        check_row(c.name, std::string(a) + "v repeats: max|r_k - r_0| / max|r_0|", spread_p, o.tol, spread_p <= o.tol);
        const double sym = std::fabs(dot(dn.u, av) - dot(dn.v, pr->at_u)) / std::max(norm(av), norm(pr->at_u));
        check_row(c.name, std::string("|u'") + a + "v - v'" + a + "u| / max(|" + a + "v|, |" + a + "u|)", sym, o.tol,
                  sym <= o.tol);
      }
      const double vgv = dot(dn.v, dn.cpu_g.out[0]);
      check_row(c.name, "v'Gv / |Gv| >= 0 (G positive semi-definite)", vgv / norm(dn.cpu_g.out[0]), 0.0, vgv >= 0.0);
      const double q = ggn_quadratic_fd(c, w, dn.v);
      const double gfd = std::fabs(vgv - q) / std::fabs(q);
      check_row(c.name, "|v'Gv - finite differences of logits| / ..", gfd, kFdTol, gfd <= kFdTol);
      const auto hfd = hessian_fd(c, w, dn.v);
      const double hrel = max_abs_diff(dn.cpu_h.out[0], hfd) / max_abs(hfd);
      check_row(c.name, "max|Hv - finite differences of gradient| / ..", hrel, kFdTol, hrel <= kFdTol);
      std::fflush(stdout);
      done.push_back(std::move(dn));
    }

    std::printf("\nCPU against CUDA, timed\n");
    for (auto& dn : done) {
      const auto& c = dn.c;
      const int64_t d = int64_t(dn.v.size());
      Row init{c.name, "initial weights", d}, sgd{c.name, "SGD step (" + std::to_string(o.steps) + " steps)", d};
      Row gb{c.name, "G graphs (once)", d}, g{c.name, "G.v", d}, hb{c.name, "H graphs (once)", d}, h{c.name, "H.v", d};
      gb.timing_only = hb.timing_only = true;
      std::vector<double> t;
      for (const auto& r : dn.cpu_sgd) t.push_back(r.seconds / double(o.steps));
      sgd.cpu_s = median(t);
      gb.cpu_s = dn.cpu_g.build_seconds;
      hb.cpu_s = dn.cpu_h.build_seconds;
      g.cpu_s = median(dn.cpu_g.seconds);
      h.cpu_s = median(dn.cpu_h.seconds);
      if (cuda) {
        run_sgd(c, gpu, o);  // warm-up: CUDA context, cuBLAS and cuDNN handles
        std::vector<SgdRun> runs;
        for (int k = 0; k < o.repeats; ++k) runs.push_back(run_sgd(c, gpu, o));
        std::vector<std::vector<double>> inits, weights;
        t.clear();
        for (const auto& r : runs) {
          inits.push_back(r.init);
          weights.push_back(r.weights);
          t.push_back(r.seconds / double(o.steps));
          if (r.inactive_max != 0.0) {
            std::printf("  %s: CUDA SGD moved an inactive head row (max %.2e): FAILED\n", c.name.c_str(),
                        r.inactive_max);
            ++failures;
          }
        }
        compare(init, dn.cpu_sgd[0].init, inits, 0.0);  // the same initialisation, bit for bit
        compare(sgd, dn.cpu_sgd[0].weights, weights, o.tol);
        sgd.cuda_s = median(t);
        // The products at the CPU-trained weights, so that only the product differs.
        const auto& w = dn.cpu_sgd[0].weights;
        const auto cg = run_product(c, w, Curvature::ggn, gpu, dn.v, dn.u, o);
        const auto ch = run_product(c, w, Curvature::hessian, gpu, dn.v, dn.u, o);
        compare(g, dn.cpu_g.out[0], cg.out, o.tol);
        compare(h, dn.cpu_h.out[0], ch.out, o.tol);
        gb.cuda_s = cg.build_seconds;
        hb.cuda_s = ch.build_seconds;
        g.cuda_s = median(cg.seconds);
        h.cuda_s = median(ch.seconds);
      }
      for (auto* r : {&init, &sgd, &gb, &g, &hb, &h}) rows.push_back(*r);
    }
    td::use_device(torch::kCPU);
    print_rows(rows, o.tol);

    if (failures > 0) {
      std::printf("\ngpu_check: FAILED: %d check(s) out of limits (see above)\n", failures);
      return kExitFailed;
    }
    if (!cuda) {
      std::printf("\ngpu_check: CPU checks passed; CUDA NOT available, so nothing was compared with a GPU and no GPU "
                  "figure was measured (exit %d)\n",
                  kExitNoCuda);
      return kExitNoCuda;
    }
    std::printf("\ngpu_check: passed: CPU and CUDA agree within %.0e on every SGD run and product\n", o.tol);
    return kExitOk;
  } catch (const c10::Error& e) {
    std::fprintf(stderr, "gpu_check: error: %s\n", e.what_without_backtrace());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "gpu_check: error: %s\n", e.what());
  }
  return kExitError;
}
