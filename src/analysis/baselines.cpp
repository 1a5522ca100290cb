// /analysis (DESIGN §5): R against the measured fine-tune cost, beside simple baselines.
#include <cmath>
#include <functional>

#include "taskreach/analysis.hpp"

namespace taskreach {

// /analysis (DESIGN §5): does R rank the measured fine-tune cost T(i|j)? Over the off-diagonal
// pairs that were reached, whose jobs and θ_i are trusted (no excluded or unstable_target
// flag) and whose R is resolved (|R| > t·stderr, the resolved flag): Spearman of R against T,
// Pearson of R against log(1 + T) (T = 0 happens: the source already meets θ_i), and Kendall's
// τ_b within each target (sources ranked per target, averaged over targets with ≥ 3 of them);
// the same for simple predictors of T, and the partial correlation of R and T given T(i|i).
void analyse_reachability(RunOutput& out, const Matrix<double>& loss_at_source) {
  const int64_t N = int64_t(out.task_names.size());
  struct Pair { int64_t i, j; };
  std::vector<Pair> used;
  int64_t excluded = 0, unstable = 0, unresolved = 0;
  for (int64_t i = 0; i < N; ++i)
    for (int64_t j = 0; j < N; ++j) {
      if (i == j || out.finetune_steps(i, j) < 0) continue;
      const int64_t f = out.flags(i, j);
      if (f & reach_flag::excluded) {
        ++excluded;
      } else if (f & reach_flag::unstable_target) {
        ++unstable;
      } else if (!(f & reach_flag::resolved)) {
        ++unresolved;
      } else {
        used.push_back({i, j});
      }
    }
  out.analysis_i64["pairs_used"] = int64_t(used.size());
  // Why the other reached pairs are not: a flagged job, an unstable θ_i, |R| ≤ t·stderr.
  out.analysis_i64["pairs_excluded"] = excluded;
  out.analysis_i64["pairs_unstable_target"] = unstable;
  out.analysis_i64["pairs_unresolved"] = unresolved;
  std::vector<double> T, logT, scratch;
  for (const auto& p : used) {
    T.push_back(double(out.finetune_steps(p.i, p.j)));
    logT.push_back(std::log1p(T.back()));
    scratch.push_back(double(out.finetune_steps(p.i, p.i)));
  }
  auto statistics = [&](const std::string& prefix, const std::function<double(int64_t, int64_t)>& x) {
    std::vector<double> xs;
    for (const auto& p : used) xs.push_back(x(p.i, p.j));
    out.analysis[prefix + "spearman_T"] = spearman(xs, T);
    out.analysis[prefix + "pearson_logT"] = pearson(xs, logT);
    double sum = 0;
    int targets = 0;
    for (int64_t i = 0; i < N; ++i) {
      std::vector<double> xi, ti;
      for (size_t k = 0; k < used.size(); ++k)
        if (used[k].i == i) {
          xi.push_back(xs[k]);
          ti.push_back(T[k]);
        }
      const double tau = xi.size() >= 3 ? kendall_tau_b(xi, ti) : NAN;
      if (std::isfinite(tau)) {
        sum += tau;
        ++targets;
      }
    }
    out.analysis[prefix + "kendall_within_target"] = targets ? sum / targets : NAN;
    return xs;
  };
  auto r = statistics("", [&](int64_t i, int64_t j) { return out.R(i, j); });
  // The schema's names for R itself.
  out.analysis["spearman_R_T"] = out.analysis["spearman_T"];
  out.analysis["pearson_R_logT"] = out.analysis["pearson_logT"];
  out.analysis.erase("spearman_T");
  out.analysis.erase("pearson_logT");
  statistics("baselines/scratch_cost/", [&](int64_t i, int64_t) { return double(out.finetune_steps(i, i)); });
  statistics("baselines/loss_at_source/", [&](int64_t i, int64_t j) { return loss_at_source(i, j); });
  statistics("baselines/target_complexity/", [&](int64_t i, int64_t) { return out.C[size_t(i)]; });
  out.analysis["partial_spearman_R_T_given_scratch"] = partial_spearman(r, T, scratch);
  predict_finetune_cost(out, loss_at_source);
}

}  // namespace taskreach
