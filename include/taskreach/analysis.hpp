#pragma once
// Analysis of a run's results (torch-, MPI- and HDF5-free): rank statistics, R against the
// measured fine-tune cost beside simple baselines (DESIGN §5 /analysis), and the
// least-squares fits of the learning-dynamics experiments.
#include <cstdint>
#include <string>
#include <vector>

#include "taskreach/results.hpp"

namespace taskreach {

// Ranks 1..n, ties sharing their average rank.
std::vector<double> average_ranks(const std::vector<double>& x);
double pearson(const std::vector<double>& x, const std::vector<double>& y);
double spearman(const std::vector<double>& x, const std::vector<double>& y);
// Kendall's τ_b (tie-corrected).
double kendall_tau_b(const std::vector<double>& x, const std::vector<double>& y);
// Spearman partial correlation of x and y given z: rank correlations, then
// (r_xy − r_xz r_yz) / √((1 − r_xz²)(1 − r_yz²)).
double partial_spearman(const std::vector<double>& x, const std::vector<double>& y, const std::vector<double>& z);
// The statistics above return NaN when undefined (fewer than 2 points, or a constant input).

// /analysis: over the off-diagonal pairs that were reached, carry no excluded or
// unstable_target flag and whose R is resolved (out.flags), R against T(i|j) and the same
// statistics for the baselines (the target's scratch cost, the loss of task i at w*_j,
// C(D_i)), the partial Spearman of R and T given the scratch cost, and the prediction below.
// `loss_at_source(i, j)`: the loss of task i at w*_j.
void analyse_reachability(RunOutput& out, const Matrix<double>& loss_at_source);

// /analysis/prediction: does R help predict the fine-tune cost? Leave-one-target-out
// cross-validated prediction of log(1 + T(i|j)) by a linear model (intercept + standardised
// features) of each predictor alone — R, the target's scratch cost log(1 + T(i|i)), the loss
// of task i at w*_j, C(D_i) — and of R together with the scratch cost and with all baselines.
// Over the reached off-diagonal pairs with trusted jobs and θ_i (resolved or not: a noisy
// predictor is judged as it is). Per model: the cross-validated Spearman and RMS error of
// log(1 + T), with 95% bootstrap intervals over targets (kBootstrap resamples, counter-based);
// the gain in RMS error of adding R, with its paired interval, and whether it is above 0.
constexpr int kBootstrap = 2000;
void predict_finetune_cost(RunOutput& out, const Matrix<double>& loss_at_source);

// An ordinary least-squares fit y ≈ X·p with the standard errors of p (from σ² = RSS/(n−p)
// and (XᵀX)⁻¹) and R² = 1 − RSS/TSS. `model` is the formula, `names` name the parameters.
struct Fit {
  std::string model;
  std::vector<std::string> names;
  std::vector<double> params, stderr_;
  double r2 = 0.0;
  int64_t n = 0;  // points used
  bool ok() const { return !params.empty(); }
};

// Rows of X (each of the same length p ≤ n) against y; points with a non-finite value are
// dropped. Returns an empty fit (ok() false) when fewer than p + 1 points remain or XᵀX is
// singular.
Fit least_squares(const std::vector<std::vector<double>>& X, const std::vector<double>& y,
                  const std::vector<std::string>& names, const std::string& model);

// log τ = a + b·x over the points with τ > 0 (convergence time against a predictor).
Fit fit_log_linear(const std::vector<double>& x, const std::vector<double>& tau, const std::string& xname);

// Kramers' law at fixed learning rate, D = k/B: τ = c·exp(ΔC·B/(n·k)), fitted as
// log τ = log c + s·B; the extra entry `k` = ΔC/(n·s) (ΔC the mean summed complexity of the
// runs, n their samples) carries its delta-method standard error.
Fit fit_kramers(const std::vector<double>& batch, const std::vector<double>& tau, double delta_c, double n);

// The effective potential along a run: ½v² = E − a·U − b·S (the sign of b left free).
Fit fit_potential(const std::vector<double>& half_v2, const std::vector<double>& U, const std::vector<double>& S);


}  // namespace taskreach
