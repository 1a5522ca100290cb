#pragma once
// The learning-dynamics experiments beside the reachability run (paper §4.1, §4.3 and the
// critical periods of its reference [1]): job kinds `convergence`, `potential` and
// `critical_period`, scheduled over task groups like the rest, and the least-squares fits
// they store. The fits are torch- and MPI-free.
#include <mpi.h>

#include <cstdint>
#include <string>
#include <vector>

#include "taskreach/config.hpp"
#include "taskreach/data.hpp"
#include "taskreach/results.hpp"
#include "taskreach/schedule.hpp"

namespace taskreach {

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

// Runs the experiment of `job.experiment` (not "reachability") on `world` and returns its
// output: the groups of the experiment in RunOutput::extra, any reachability it needs in
// the usual fields. Durable results and --resume as for the reachability run.
RunOutput run_experiment(MPI_Comm world, const JobConfig& job, const TaskSet& tasks, const RunOptions& options);

// The experiment's plan in words, for `validate` and the start of `run`.
std::string describe_experiment(const JobConfig& job, const TaskSet& tasks, int world_size);

}  // namespace taskreach
