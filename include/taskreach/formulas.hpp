#pragma once
// Every formula of the method, once (STYLE 5), with the paper's equation or section
// (Achille, Mbeng, Soatto, "The Dynamics of Differential Learning I"). Part of the complexity
// module's interface; header-only and dependency-free, so the training, curvature, results,
// analysis and experiment modules all use these and none writes β/2 or λ²/β itself.
#include <algorithm>
#include <cmath>
#include <vector>

namespace taskreach::formulas {

// c in log det(I + c·G), eq. 3: λ²/β with the ½ of E_q[L] ≈ L(w*) + ½tr(HΣ) kept ("laplace");
// 2λ²/β as the paper prints it ("paper").
inline double logdet_c_laplace(double beta, double lambda2) { return lambda2 / beta; }
inline double logdet_c_paper(double beta, double lambda2) { return 2.0 * lambda2 / beta; }

// The MAP weight decay γ_D = β/(λ² n_D) (§2.2): SGD on the mean loss with weight decay γ has the
// optimum of L_D(w) + β/(2λ²)‖w‖².
inline double map_weight_decay(double beta, double lambda2, double n) { return beta / (lambda2 * n); }
// The prior's coefficient β/(2λ²) in the summed MAP objective L_D(w) + β/(2λ²)‖w‖².
inline double prior_coefficient(double beta, double lambda2) { return beta / (2.0 * lambda2); }

// C_β(D) = L_D(w*) + β/2·[‖w*‖²/λ² + log det(I + cG)]   (eq. 3)
inline double complexity(double loss, double weight_norm2, double logdet, double beta, double lambda2) {
  return loss + 0.5 * beta * (weight_norm2 / lambda2 + logdet);
}
// How a log-det term (a per-probe value, a standard error) enters C_β: × β/2   (eq. 3)
inline double logdet_term(double logdet, double beta) { return 0.5 * beta * logdet; }

// One eigenvalue's share of log det(I + cG), negative (Hessian) eigenvalues clipped to 0
// (§2.2: the Laplace approximation needs a PSD curvature).
inline double log1p_clipped(double c, double lambda) { return std::log1p(c * std::max(lambda, 0.0)); }

// R(i|j) = C_β(D_i ∪ D_j) − C_β(D_j)   (§2.3)
inline double reachability(double c_union, double c_source) { return c_union - c_source; }

// The quadrature check (DESIGN §1): the same probes at m/2 Lanczos steps move a log det (or a
// paired difference of two) by more than a third of its probe error.
inline bool quadrature_unconverged(double change, double probe_stderr) { return change > probe_stderr / 3.0; }

// Independent error parts (probe, seed) combined in quadrature.
inline double combined_stderr(double a, double b) { return std::hypot(a, b); }

// The Welch–Satterthwaite degrees of freedom of a + b, two independent error parts with
// standard errors se_a, se_b estimated with dof_a, dof_b degrees of freedom:
// ν = (a² + b²)² / (a⁴/ν_a + b⁴/ν_b). NaN when either part is unknown (NaN).
inline double welch_dof(double se_a, double dof_a, double se_b, double dof_b) {
  const double a2 = se_a * se_a, b2 = se_b * se_b;
  if (std::isnan(a2) || std::isnan(b2)) return std::nan("");
  const double den = (a2 > 0 ? a2 * a2 / dof_a : 0.0) + (b2 > 0 ? b2 * b2 / dof_b : 0.0);
  return den > 0 ? (a2 + b2) * (a2 + b2) / den : std::nan("");
}

// The mean and the standard error of the mean (NaN, unknown, for fewer than 2 values).
inline double mean(const std::vector<double>& v) {
  if (v.empty()) return std::nan("");
  double s = 0;
  for (double x : v) s += x;
  return s / double(v.size());
}
inline double stderr_of_mean(const std::vector<double>& v) {
  if (v.size() < 2) return std::nan("");
  const double m = mean(v);
  double s = 0;
  for (double x : v) s += (x - m) * (x - m);
  return std::sqrt(s / double(v.size() - 1) / double(v.size()));
}

// Kramers' law at a fixed learning rate (§3.4–3.5, §4.1): τ ≈ c·exp(ΔC/(n·D)) with D = k/B,
// so log τ = log c + s·B and k = ΔC/(n·s).
inline double kramers_k(double delta_c, double n, double slope) { return delta_c / (n * slope); }

// The effective potential's curvature term (§4.3, the §3.5 form): S = log det(γI + G/n)/d
// = log γ + log det(I + c·G)/d with c = 1/(nγ); the trace form S = tr(G/n)/d (Fig. 5).
inline double potential_c(double n, double gamma) { return 1.0 / (n * gamma); }
inline double potential_S_logdet(double logdet_I_cG, double gamma, double d) { return std::log(gamma) + logdet_I_cG / d; }
inline double potential_S_trace(double trace, double n, double d) { return trace / (n * d); }
// The kinetic term: ½v² with v = ‖Δw‖/Δstep (eq. 8/14).
inline double half_v2(double dist2, double dsteps) { return 0.5 * dist2 / (dsteps * dsteps); }

}  // namespace taskreach::formulas
