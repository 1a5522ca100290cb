// Least-squares fits of the learning-dynamics experiments: small dense normal equations
// (p ≤ 3 parameters), solved by Gauss–Jordan elimination with partial pivoting.
#include <cmath>
#include <limits>

#include "taskreach/analysis.hpp"
#include "taskreach/formulas.hpp"

namespace taskreach {
namespace {

// The inverse of the p×p matrix A (row-major), or empty when it is (numerically) singular.
std::vector<double> invert(std::vector<double> A, size_t p) {
  std::vector<double> inv(p * p, 0.0);
  for (size_t i = 0; i < p; ++i) inv[i * p + i] = 1.0;
  double scale = 0.0;
  for (double a : A) scale = std::max(scale, std::fabs(a));
  for (size_t c = 0; c < p; ++c) {
    size_t piv = c;
    for (size_t r = c + 1; r < p; ++r)
      if (std::fabs(A[r * p + c]) > std::fabs(A[piv * p + c])) piv = r;
    if (!(std::fabs(A[piv * p + c]) > 1e-13 * scale)) return {};
    for (size_t k = 0; k < p; ++k) {
      std::swap(A[c * p + k], A[piv * p + k]);
      std::swap(inv[c * p + k], inv[piv * p + k]);
    }
    const double d = A[c * p + c];
    for (size_t k = 0; k < p; ++k) {
      A[c * p + k] /= d;
      inv[c * p + k] /= d;
    }
    for (size_t r = 0; r < p; ++r) {
      if (r == c) continue;
      const double f = A[r * p + c];
      for (size_t k = 0; k < p; ++k) {
        A[r * p + k] -= f * A[c * p + k];
        inv[r * p + k] -= f * inv[c * p + k];
      }
    }
  }
  return inv;
}

}  // namespace

Fit least_squares(const std::vector<std::vector<double>>& X, const std::vector<double>& y,
                  const std::vector<std::string>& names, const std::string& model) {
  Fit f;
  f.model = model;
  f.names = names;
  const size_t p = names.size();
  std::vector<size_t> use;
  for (size_t i = 0; i < y.size() && i < X.size(); ++i) {
    bool finite = std::isfinite(y[i]) && X[i].size() == p;
    for (double v : X[i]) finite = finite && std::isfinite(v);
    if (finite) use.push_back(i);
  }
  if (p == 0 || use.size() < p + 1) return f;
  std::vector<double> xtx(p * p, 0.0), xty(p, 0.0);
  for (size_t i : use)
    for (size_t a = 0; a < p; ++a) {
      xty[a] += X[i][a] * y[i];
      for (size_t b = 0; b < p; ++b) xtx[a * p + b] += X[i][a] * X[i][b];
    }
  const std::vector<double> inv = invert(xtx, p);
  if (inv.empty()) return f;
  f.params.assign(p, 0.0);
  for (size_t a = 0; a < p; ++a)
    for (size_t b = 0; b < p; ++b) f.params[a] += inv[a * p + b] * xty[b];
  double rss = 0.0, mean = 0.0, tss = 0.0;
  for (size_t i : use) mean += y[i] / double(use.size());
  for (size_t i : use) {
    double pred = 0.0;
    for (size_t a = 0; a < p; ++a) pred += X[i][a] * f.params[a];
    rss += (y[i] - pred) * (y[i] - pred);
    tss += (y[i] - mean) * (y[i] - mean);
  }
  const double sigma2 = rss / double(use.size() - p);
  f.stderr_.resize(p);
  for (size_t a = 0; a < p; ++a) f.stderr_[a] = std::sqrt(std::max(0.0, sigma2 * inv[a * p + a]));
  f.r2 = tss > 0 ? 1.0 - rss / tss : std::numeric_limits<double>::quiet_NaN();
  f.n = int64_t(use.size());
  return f;
}

Fit fit_log_linear(const std::vector<double>& x, const std::vector<double>& tau, const std::string& xname) {
  std::vector<std::vector<double>> X;
  std::vector<double> y;
  for (size_t i = 0; i < x.size() && i < tau.size(); ++i) {
    X.push_back({1.0, x[i]});
    y.push_back(tau[i] > 0 ? std::log(tau[i]) : std::numeric_limits<double>::quiet_NaN());
  }
  return least_squares(X, y, {"a", "b"}, "log tau = a + b * " + xname);
}

Fit fit_kramers(const std::vector<double>& batch, const std::vector<double>& tau, double delta_c, double n) {
  Fit f = fit_log_linear(batch, tau, "B");
  f.model = "tau = c * exp(dC * B / (n * k)), fitted as log tau = log_c + s * B; k = dC / (n * s)";
  f.names = {"log_c", "s"};
  if (!f.ok()) return f;
  const double s = f.params[1], k = formulas::kramers_k(delta_c, n, s);
  f.names.push_back("k");
  f.params.push_back(k);
  f.stderr_.push_back(std::fabs(k) * f.stderr_[1] / std::fabs(s));
  return f;
}

Fit fit_potential(const std::vector<double>& half_v2, const std::vector<double>& U, const std::vector<double>& S) {
  std::vector<std::vector<double>> X;
  for (size_t i = 0; i < half_v2.size(); ++i) X.push_back({1.0, -U.at(i), -S.at(i)});
  return least_squares(X, half_v2, {"E", "a", "b"}, "v^2/2 = E - a * U - b * S");
}

}  // namespace taskreach
