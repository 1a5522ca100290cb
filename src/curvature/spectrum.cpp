// Top-k eigenpairs with SLEPc and log det(I + cA) by deflated stochastic Lanczos
// quadrature (DESIGN §2): log det = Σ_k log(1 + cλ_k) + E_z[zᵀ log(I + c P⊥AP⊥) z].
#include <algorithm>
#include <chrono>
#include <cmath>
#include <memory>
#include <optional>

#include "shell.hpp"
#include "taskreach/formulas.hpp"

namespace taskreach {
namespace {

using detail::OwnedEPS;
using detail::OwnedVec;
using detail::OwnedVecs;

// w ← w − Σ_i (v_iᵀ w) v_i, applied twice ("twice is enough" for orthogonality).
void orthogonalize(Vec w, PetscInt k, Vec* basis, std::vector<PetscScalar>& coef) {
  if (k <= 0) return;
  coef.resize(static_cast<size_t>(k));
  for (int pass = 0; pass < 2; ++pass) {
    TASKREACH_PETSC(VecMDot(w, k, basis, coef.data()));
    for (auto& c : coef) c = -c;
    TASKREACH_PETSC(VecMAXPY(w, k, coef.data(), basis));
  }
}

void fill_rademacher(Vec z, uint64_t seed, uint64_t probe) {
  PetscInt lo = 0, hi = 0;
  TASKREACH_PETSC(VecGetOwnershipRange(z, &lo, &hi));
  PetscScalar* a = nullptr;
  TASKREACH_PETSC(VecGetArray(z, &a));
  for (PetscInt i = lo; i < hi; ++i) a[i - lo] = rademacher(seed, probe, static_cast<uint64_t>(i));
  TASKREACH_PETSC(VecRestoreArray(z, &a));
}

double mean(const std::vector<double>& v) {
  double s = 0;
  for (double x : v) s += x;
  return v.empty() ? 0.0 : s / static_cast<double>(v.size());
}

double stderr_of_mean(const std::vector<double>& v) {
  if (v.size() < 2) return 0.0;
  const double m = mean(v);
  double s = 0;
  for (double x : v) s += (x - m) * (x - m);
  return std::sqrt(s / static_cast<double>(v.size() - 1) / static_cast<double>(v.size()));
}

}  // namespace

SpectrumResult estimate_spectrum(MPI_Comm comm, CurvatureOperator& op, const SpectrumOptions& opt) {
  const auto t0 = std::chrono::steady_clock::now();
  detail::PetscErrorScope errors;
  detail::ShellOperator A(comm, op);
  const PetscInt d = static_cast<PetscInt>(op.dim());
  SpectrumResult res;

  // --- top-k: Krylov–Schur, Hermitian, largest real; defaults first, options last.
  const PetscInt k = static_cast<PetscInt>(std::min<int64_t>(opt.top_k, d));
  // With m chosen from the spectrum, one pair more than deflated: its eigenvalue is λ_{k+1}.
  const bool choose_m = opt.lanczos_max > opt.lanczos_steps;
  const PetscInt k_solve = choose_m ? std::min<PetscInt>(k + 1, d) : k;
  OwnedEPS eps;
  TASKREACH_PETSC(EPSCreate(A.comm(), &eps));
  TASKREACH_PETSC(EPSSetOperators(eps, A.mat(), nullptr));
  TASKREACH_PETSC(EPSSetProblemType(eps, EPS_HEP));
  TASKREACH_PETSC(EPSSetType(eps, EPSKRYLOVSCHUR));
  TASKREACH_PETSC(EPSSetWhichEigenpairs(eps, EPS_LARGEST_REAL));
  TASKREACH_PETSC(EPSSetDimensions(eps, k_solve, PETSC_DEFAULT, PETSC_DEFAULT));
  TASKREACH_PETSC(EPSSetTolerances(eps, opt.eps_tol, 10000));
  TASKREACH_PETSC(EPSSetOptionsPrefix(eps, opt.prefix.c_str()));
  {
    // A start vector from the probe generator: the same for any rank layout.
    OwnedVec v0;
    TASKREACH_PETSC(VecDuplicate(A.vec_like(), &v0));
    fill_rademacher(v0, opt.seed, ~0ULL);
    Vec init = v0;
    TASKREACH_PETSC(EPSSetInitialSpace(eps, 1, &init));
  }
  TASKREACH_PETSC(EPSSetFromOptions(eps));
  TASKREACH_PETSC(EPSSolve(eps));
  PetscInt nconv = 0;
  TASKREACH_PETSC(EPSGetConverged(eps, &nconv));
  res.requested = k;
  res.converged = std::min(nconv, k);
  OwnedVecs V(A.vec_like(), res.converged);
  OwnedVec w;
  TASKREACH_PETSC(VecDuplicate(A.vec_like(), &w));
  for (PetscInt i = 0; i < res.converged; ++i) {
    PetscScalar lambda = 0;
    TASKREACH_PETSC(EPSGetEigenpair(eps, i, &lambda, nullptr, V[i], nullptr));
    PetscReal nv = 0;
    TASKREACH_PETSC(VecNormalize(V[i], &nv));
    TASKREACH_PETSC(MatMult(A.mat(), V[i], w));
    TASKREACH_PETSC(VecAXPY(w, -lambda, V[i]));
    PetscReal r = 0;
    TASKREACH_PETSC(VecNorm(w, NORM_2, &r));
    res.eigenvalues.push_back(lambda);
    res.residuals.push_back(r);
    res.logdet_top += formulas::log1p_clipped(opt.c, lambda);
  }

  const auto t_topk = std::chrono::steady_clock::now();
  res.topk_seconds = std::chrono::duration<double>(t_topk - t0).count();

  // --- m from the deflated spectrum: the complement's eigenvalues lie in [0, λ_{k+1}];
  // Gauss quadrature of log on [1, κ], κ = 1 + cλ_{k+1}, loses accuracy like exp(−4m/√κ), so m
  // grows like √κ, within [lanczos_steps, lanczos_max]. λ_{k+1} is the extra pair's eigenvalue
  // where it converged, else the least deflated one (an upper bound).
  PetscInt m = static_cast<PetscInt>(opt.lanczos_steps);
  if (choose_m && (nconv > k || res.converged > 0)) {
    PetscScalar next = res.converged > 0 ? res.eigenvalues.back() : 0.0;
    if (nconv > k) TASKREACH_PETSC(EPSGetEigenvalue(eps, k, &next, nullptr));
    res.lambda_next = std::max(0.0, double(next));
    const double want = std::ceil(std::sqrt(1.0 + opt.c * res.lambda_next));
    m = static_cast<PetscInt>(std::clamp(want, double(opt.lanczos_steps), double(opt.lanczos_max)));
  }
  m = std::max<PetscInt>(m, PetscInt(opt.min_lanczos_steps));
  m = std::max<PetscInt>(1, std::min<PetscInt>(m, d - res.converged));
  res.lanczos_steps = m;

  // --- SLQ on the complement of the converged eigenvectors: the probes of a block advance
  // together, one block product per Lanczos step; each probe's arithmetic is what it would
  // be alone, so the values do not depend on the block size.
  const PetscInt probes = PetscInt(opt.probes);
  PetscInt local = 0;
  TASKREACH_PETSC(VecGetLocalSize(A.vec_like(), &local));
  auto block_for = [&](PetscInt steps) {
    if (opt.probe_block > 0) return std::min<PetscInt>(PetscInt(opt.probe_block), probes);
    // Automatic: the bases (steps + 1 local vectors per probe) and the block product's buffers
    // (3 full vectors per probe: gathered, product, reduce-scatter) within kBlockBytes per rank.
    constexpr double kBlockBytes = 1024.0 * 1024.0 * 1024.0;
    const double per_probe = 8.0 * (double(steps + 1) * double(local) + 3.0 * double(d));
    return std::max<PetscInt>(1, std::min<PetscInt>(probes, static_cast<PetscInt>(kBlockBytes / per_probe)));
  };
  std::vector<PetscScalar> coef;
  std::vector<std::vector<double>> alpha(static_cast<size_t>(opt.probes)), beta(alpha.size());
  std::vector<std::vector<double>> alpha_half(alpha.size()), beta_half(alpha.size());
  std::vector<double> znorm2(alpha.size());
  // One block of probes: each probe's Lanczos basis and its last product (A q_{steps−1}, not
  // yet orthogonalised), so that a block taken to m steps can be taken on to 2m exactly as if
  // it had run 2m steps at once.
  struct ProbeBlock {
    PetscInt p0 = 0, nb = 0, steps = 0;
    std::vector<std::unique_ptr<OwnedVecs>> Q;
    std::unique_ptr<OwnedVecs> W;
    std::vector<bool> active;
  };
  auto start_block = [&](PetscInt p0, PetscInt nb) {
    ProbeBlock b;
    b.p0 = p0;
    b.nb = nb;
    b.W = std::make_unique<OwnedVecs>(A.vec_like(), nb);
    b.active.assign(size_t(nb), true);
    for (PetscInt i = 0; i < nb; ++i) {
      alpha[size_t(p0 + i)].clear();
      beta[size_t(p0 + i)].clear();
      b.Q.push_back(std::make_unique<OwnedVecs>(A.vec_like(), 1));
      Vec q0 = (*b.Q[size_t(i)])[0];
      fill_rademacher(q0, opt.seed, static_cast<uint64_t>(p0 + i));
      orthogonalize(q0, res.converged, V.data(), coef);
      PetscReal nz = 0;
      TASKREACH_PETSC(VecNormalize(q0, &nz));
      znorm2[size_t(p0 + i)] = nz * nz;
    }
    return b;
  };
  auto advance = [&](ProbeBlock& b, PetscInt steps) {
    for (PetscInt i = 0; i < b.nb; ++i) {  // room for q_0 … q_{steps−1}
      auto& q = b.Q[size_t(i)];
      if (!b.active[size_t(i)] || q->size() >= steps) continue;
      auto grown = std::make_unique<OwnedVecs>(A.vec_like(), steps);
      for (PetscInt j = 0; j < std::max<PetscInt>(b.steps, 1); ++j) TASKREACH_PETSC(VecCopy((*q)[j], (*grown)[j]));
      q = std::move(grown);
    }
    for (PetscInt j = b.steps; j < steps; ++j) {
      std::vector<Vec> in, out;
      for (PetscInt i = 0; i < b.nb; ++i) {
        if (!b.active[size_t(i)]) continue;
        Vec w_i = (*b.W)[i];
        if (j > 0) {
          // β_{j−1} and q_j from A q_{j−1}: full reorthogonalisation against the Lanczos basis
          // and the deflated eigenvectors.
          orthogonalize(w_i, j, b.Q[size_t(i)]->data(), coef);
          orthogonalize(w_i, res.converged, V.data(), coef);
          PetscReal bj = 0;
          TASKREACH_PETSC(VecNorm(w_i, NORM_2, &bj));
          if (bj <= 1e-12 * std::max(1.0, std::fabs(alpha[size_t(b.p0 + i)].back()))) {  // invariant subspace
            b.active[size_t(i)] = false;
            continue;
          }
          beta[size_t(b.p0 + i)].push_back(bj);
          TASKREACH_PETSC(VecAXPBY((*b.Q[size_t(i)])[j], 1.0 / bj, 0.0, w_i));
        }
        in.push_back((*b.Q[size_t(i)])[j]);
        out.push_back(w_i);
      }
      if (in.empty()) break;
      if (in.size() == 1) TASKREACH_PETSC(MatMult(A.mat(), in[0], out[0]));
      else A.mult_block(in, out);
      for (PetscInt i = 0, o = 0; i < b.nb; ++i) {
        if (!b.active[size_t(i)]) continue;
        PetscScalar aj = 0;
        TASKREACH_PETSC(VecDot(out[size_t(o++)], (*b.Q[size_t(i)])[j], &aj));
        alpha[size_t(b.p0 + i)].push_back(aj);
      }
    }
    b.steps = steps;
  };
  // Every probe to m steps. One block is kept (its bases are what a longer run continues
  // from); several are run one after another, each released when done.
  std::optional<ProbeBlock> kept;
  auto run_all = [&](PetscInt steps) {
    const PetscInt block = block_for(steps);
    res.probe_block = block;
    kept.reset();
    for (PetscInt p0 = 0; p0 < probes; p0 += block) {
      ProbeBlock b = start_block(p0, std::min<PetscInt>(block, probes - p0));
      advance(b, steps);
      if (block >= probes) kept = std::move(b);
    }
  };
  // The values of every probe from its tridiagonal, and the quadrature check: the same probe
  // truncated at half its steps. Local, but the caller goes on to collectives: the ranks agree.
  auto quadrature = [&] {
    bool ok = true;
    std::string what;
    try {
      for (size_t p = 0; p < alpha.size(); ++p) {
        const auto& a = alpha[p];
        const auto& b = beta[p];
        const size_t half = std::max<size_t>(1, a.size() / 2);
        alpha_half[p].assign(a.begin(), a.begin() + static_cast<long>(half));
        beta_half[p].assign(b.begin(), b.begin() + static_cast<long>(std::min(half - 1, b.size())));
      }
      std::vector<double> cs{opt.c};
      if (opt.c_alt > 0) cs.push_back(opt.c_alt);
      GaussRules rules;
      auto q = lanczos_quadrature(alpha, beta, cs, &rules);
      res.probe_values = q[0];
      res.probe_values_half = lanczos_quadrature(alpha_half, beta_half, opt.c);
      res.trace_probes.clear();
      for (size_t p = 0; p < znorm2.size(); ++p) {
        res.probe_values[p] *= znorm2[p];
        res.probe_values_half[p] *= znorm2[p];
        res.trace_probes.push_back(znorm2[p] * alpha[p][0]);  // zᵀAz = ‖z‖² α₀
      }
      res.logdet = res.logdet_top + mean(res.probe_values);
      res.logdet_stderr = stderr_of_mean(res.probe_values);
      res.quadrature_change = std::fabs(mean(res.probe_values) - mean(res.probe_values_half));
      if (opt.c_alt > 0) {
        double top_alt = 0;
        for (double l : res.eigenvalues) top_alt += formulas::log1p_clipped(opt.c_alt, l);
        res.probe_values_alt = q[1];
        for (size_t p = 0; p < znorm2.size(); ++p) res.probe_values_alt[p] *= znorm2[p];
        res.logdet_alt = top_alt + mean(res.probe_values_alt);
        res.logdet_alt_stderr = stderr_of_mean(res.probe_values_alt);
      }
      res.trace = mean(res.trace_probes);
      for (double l : res.eigenvalues) res.trace += l;
      res.trace_stderr = stderr_of_mean(res.trace_probes);
      res.dim = d;
      const double complement = double(d - res.converged) / double(d) / double(std::max<int64_t>(1, opt.probes));
      res.esd_nodes.clear();
      res.esd_weights.clear();
      for (double l : res.eigenvalues) {
        res.esd_nodes.push_back(l);
        res.esd_weights.push_back(1.0 / double(d));
      }
      for (size_t p = 0; p < rules.nodes.size(); ++p)
        for (size_t k = 0; k < rules.nodes[p].size(); ++k) {
          res.esd_nodes.push_back(rules.nodes[p][k]);
          res.esd_weights.push_back(complement * rules.weights[p][k]);
        }
    } catch (const std::exception& e) {
      ok = false;
      what = e.what();
    }
    detail::agree_or_throw(A.comm(), ok, what, "quadrature");
  };
  run_all(m);
  quadrature();
  // The check failed: the runs go on to 2m steps (the kept block continues from its bases,
  // several blocks run again from the start) — the values of a 2m run, without a second
  // top-k solve or the first m steps. m/2 → m is then the check.
  const PetscInt m2 = std::min<PetscInt>(2 * m, d - res.converged);
  if (opt.quadrature_check && formulas::quadrature_unconverged(res.quadrature_change, res.logdet_stderr) && m2 > m) {
    if (kept && block_for(m2) >= probes) advance(*kept, m2);
    else run_all(m2);
    res.lanczos_steps = m2;
    res.lanczos_extended = true;
    quadrature();
  }
  res.products = A.products();
  res.passes = A.passes();
  res.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  res.slq_seconds = res.seconds - res.topk_seconds;
  return res;
}

}  // namespace taskreach

namespace taskreach {
std::string petsc_version() {
  char v[256];
  if (PetscGetVersion(v, sizeof v)) return "unknown";
  return v;
}
std::string slepc_version() {
  char v[256];
  if (SlepcGetVersion(v, sizeof v)) return "unknown";
  return v;
}
}  // namespace taskreach

namespace taskreach {
std::vector<double> apply_distributed(MPI_Comm comm, CurvatureOperator& op, const std::vector<double>& v) {
  detail::PetscErrorScope errors;
  detail::ShellOperator A(comm, op);
  detail::OwnedVec x, y;
  TASKREACH_PETSC(VecDuplicate(A.vec_like(), &x));
  TASKREACH_PETSC(VecDuplicate(A.vec_like(), &y));
  PetscInt lo = 0, hi = 0;
  TASKREACH_PETSC(VecGetOwnershipRange(x, &lo, &hi));
  PetscScalar* a = nullptr;
  TASKREACH_PETSC(VecGetArray(x, &a));
  for (PetscInt i = lo; i < hi; ++i) a[i - lo] = v[static_cast<size_t>(i)];
  TASKREACH_PETSC(VecRestoreArray(x, &a));
  TASKREACH_PETSC(MatMult(A.mat(), x, y));
  // Gather the distributed result to every rank.
  detail::OwnedScatter all;
  detail::OwnedVec full;
  TASKREACH_PETSC(VecScatterCreateToAll(y, &all, &full));
  TASKREACH_PETSC(VecScatterBegin(all, y, full, INSERT_VALUES, SCATTER_FORWARD));
  TASKREACH_PETSC(VecScatterEnd(all, y, full, INSERT_VALUES, SCATTER_FORWARD));
  const PetscScalar* f = nullptr;
  TASKREACH_PETSC(VecGetArrayRead(full, &f));
  std::vector<double> out(f, f + v.size());
  TASKREACH_PETSC(VecRestoreArrayRead(full, &f));
  return out;
}
}  // namespace taskreach
