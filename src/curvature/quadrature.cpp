// Gauss quadrature of log(1 + cθ) over Lanczos tridiagonals, one probe per Kokkos work
// item (DESIGN §2: the batched quadrature is an on-node kernel); and the probe generator.
#include <Kokkos_Core.hpp>

#include <cmath>
#include <cfloat>

#include "taskreach/curvature.hpp"
#include "taskreach/formulas.hpp"
#include "taskreach/util.hpp"

namespace taskreach {
namespace {

// Kokkos' device math moved from Kokkos::Experimental (≤ 3.6, Debian 12) to Kokkos (3.7+).
#if KOKKOS_VERSION >= 30700
namespace kmath = Kokkos;
#else
namespace kmath = Kokkos::Experimental;
#endif

KOKKOS_INLINE_FUNCTION double hypot2(double a, double b) { return kmath::sqrt(a * a + b * b); }

// Implicit QL with Wilkinson shifts on a symmetric tridiagonal: diagonal d[0..n), coupling
// e[i] between i and i+1 (e[n-1] is scratch). On return d holds the eigenvalues and z the
// first row of the eigenvector matrix (z starts as e_1). Returns false if a shift sweep
// failed to converge in 60 iterations.
KOKKOS_INLINE_FUNCTION bool ql_implicit(double* d, double* e, double* z, int n) {
  if (n <= 0) return true;
  e[n - 1] = 0.0;
  for (int l = 0; l < n; ++l) {
    int iter = 0;
    int m = l;
    do {
      for (m = l; m < n - 1; ++m) {
        const double dd = kmath::fabs(d[m]) + kmath::fabs(d[m + 1]);
        if (kmath::fabs(e[m]) <= DBL_EPSILON * dd) break;
      }
      if (m != l) {
        if (iter++ == 60) return false;
        double g = (d[l + 1] - d[l]) / (2.0 * e[l]);
        double r = hypot2(g, 1.0);
        g = d[m] - d[l] + e[l] / (g + (g >= 0 ? kmath::fabs(r) : -kmath::fabs(r)));
        double s = 1.0, c = 1.0, p = 0.0;
        int i = m - 1;
        bool underflow = false;
        for (; i >= l; --i) {
          double f = s * e[i];
          const double b = c * e[i];
          r = hypot2(f, g);
          e[i + 1] = r;
          if (r == 0.0) {
            d[i + 1] -= p;
            e[m] = 0.0;
            underflow = true;
            break;
          }
          s = f / r;
          c = g / r;
          g = d[i + 1] - p;
          r = (d[i] - g) * s + 2.0 * c * b;
          p = s * r;
          d[i + 1] = g + p;
          g = c * r - b;
          f = z[i + 1];
          z[i + 1] = s * z[i] + c * f;
          z[i] = c * z[i] - s * f;
        }
        if (underflow) continue;
        d[l] -= p;
        e[l] = g;
        e[m] = 0.0;
      }
    } while (m != l);
  }
  return true;
}

using util::splitmix64;

}  // namespace

double rademacher(uint64_t seed, uint64_t probe, uint64_t index) {
  return (splitmix64(splitmix64(splitmix64(seed) ^ probe) ^ index) >> 63) ? 1.0 : -1.0;
}

void tridiagonal_eigen(std::vector<double>& diag, std::vector<double> offdiag,
                       std::vector<double>& first_components) {
  const int n = static_cast<int>(diag.size());
  offdiag.resize(static_cast<size_t>(std::max(n, 1)), 0.0);
  first_components.assign(static_cast<size_t>(n), 0.0);
  if (n == 0) return;
  first_components[0] = 1.0;
  if (!ql_implicit(diag.data(), offdiag.data(), first_components.data(), n))
    throw std::runtime_error("curvature: tridiagonal eigensolver did not converge");
}

std::vector<std::vector<double>> lanczos_quadrature(const std::vector<std::vector<double>>& alpha,
                                                    const std::vector<std::vector<double>>& beta,
                                                    const std::vector<double>& cs, GaussRules* rules) {
  const int P = static_cast<int>(alpha.size());
  const int C = static_cast<int>(cs.size());
  int mmax = 1;
  for (const auto& a : alpha) mmax = std::max(mmax, static_cast<int>(a.size()));
  // Rows contiguous on every backend: the kernel walks a probe's row through a pointer.
  using Rows = Kokkos::View<double**, Kokkos::LayoutRight>;
  Rows d("taskreach::quadrature::d", P, mmax), e("taskreach::quadrature::e", P, mmax),
      z("taskreach::quadrature::z", P, mmax), q("taskreach::quadrature::q", C, P);
  Kokkos::View<int*> len("taskreach::quadrature::len", P);
  Kokkos::View<double*> cv("taskreach::quadrature::c", C);
  auto hd = Kokkos::create_mirror_view(d), he = Kokkos::create_mirror_view(e);
  auto hlen = Kokkos::create_mirror_view(len);
  auto hc = Kokkos::create_mirror_view(cv);
  for (int p = 0; p < P; ++p) {
    hlen(p) = static_cast<int>(alpha[p].size());
    for (int i = 0; i < hlen(p); ++i) hd(p, i) = alpha[p][i];
    for (int i = 0; i + 1 < hlen(p); ++i) he(p, i) = beta[p][i];
  }
  for (int k = 0; k < C; ++k) hc(k) = cs[k];
  Kokkos::deep_copy(d, hd);
  Kokkos::deep_copy(e, he);
  Kokkos::deep_copy(len, hlen);
  Kokkos::deep_copy(cv, hc);
  Kokkos::View<int> failures("taskreach::quadrature::failures");
  Kokkos::parallel_for(
      "taskreach::curvature::lanczos_quadrature", Kokkos::RangePolicy<>(0, P), KOKKOS_LAMBDA(const int p) {
        const int n = len(p);
        double* dp = &d(p, 0);
        double* ep = &e(p, 0);
        double* zp = &z(p, 0);
        for (int i = 0; i < n; ++i) zp[i] = i == 0 ? 1.0 : 0.0;
        if (!ql_implicit(dp, ep, zp, n)) Kokkos::atomic_add(&failures(), 1);
        for (int i = 0; i < n; ++i) zp[i] *= zp[i];  // Gauss weights τ_i²
        // Eigenvalues below 0 (exact Hessian, or round-off) are clipped: log(1 + c·max(θ, 0)).
        for (int k = 0; k < cv.extent_int(0); ++k) {
          double s = 0.0;
          for (int i = 0; i < n; ++i) s += zp[i] * formulas::log1p_clipped(cv(k), dp[i]);
          q(k, p) = s;
        }
      });
  int nfail = 0;
  Kokkos::deep_copy(nfail, failures);
  if (nfail) throw std::runtime_error("curvature: tridiagonal eigensolver did not converge for " +
                                      std::to_string(nfail) + " probes");
  auto hq = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), q);
  std::vector<std::vector<double>> out(static_cast<size_t>(C));
  for (int k = 0; k < C; ++k) out[k].assign(&hq(k, 0), &hq(k, 0) + P);
  if (rules) {
    auto nodes = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), d);
    auto weights = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), z);
    rules->nodes.assign(static_cast<size_t>(P), {});
    rules->weights.assign(static_cast<size_t>(P), {});
    for (int p = 0; p < P; ++p) {
      rules->nodes[p].assign(&nodes(p, 0), &nodes(p, 0) + hlen(p));
      rules->weights[p].assign(&weights(p, 0), &weights(p, 0) + hlen(p));
    }
  }
  return out;
}

std::vector<double> lanczos_quadrature(const std::vector<std::vector<double>>& alpha,
                                       const std::vector<std::vector<double>>& beta, double c) {
  return lanczos_quadrature(alpha, beta, std::vector<double>{c}, nullptr)[0];
}

}  // namespace taskreach
