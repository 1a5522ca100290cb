// /analysis/prediction: leave-one-target-out cross-validated prediction of the fine-tune cost
// from R and from the baselines, with bootstrap intervals over targets.
#include <algorithm>
#include <cmath>
#include <map>
#include <string>
#include <vector>

#include "taskreach/analysis.hpp"
#include "taskreach/util.hpp"

namespace taskreach {
namespace {

struct Model {
  std::string name;
  std::vector<int> features;  // indices into the feature row below
};

// Feature row of pair (i, j): R, log(1 + T(i|i)), the loss of task i at w*_j, C(D_i).
enum Feature { kR, kScratch, kLoss, kTarget };

// The quantile q of v (linear interpolation between order statistics), NaN when empty.
double quantile(std::vector<double> v, double q) {
  v.erase(std::remove_if(v.begin(), v.end(), [](double x) { return !std::isfinite(x); }), v.end());
  if (v.empty()) return std::nan("");
  std::sort(v.begin(), v.end());
  const double at = q * double(v.size() - 1);
  const size_t lo = size_t(std::floor(at)), hi = std::min(lo + 1, v.size() - 1);
  return v[lo] + (at - double(lo)) * (v[hi] - v[lo]);
}

double rms_error(const std::vector<double>& pred, const std::vector<double>& y) {
  double s = 0;
  for (size_t k = 0; k < y.size(); ++k) s += (pred[k] - y[k]) * (pred[k] - y[k]);
  return y.empty() ? std::nan("") : std::sqrt(s / double(y.size()));
}

// Leave-one-target-out predictions of y for every pair (NaN where the fold cannot be fitted):
// the model is fitted on the other targets' pairs, its features standardised with that fold's
// mean and standard deviation.
std::vector<double> cross_validate(const Model& m, const std::vector<std::vector<double>>& rows,
                                   const std::vector<double>& y, const std::vector<int64_t>& target) {
  std::vector<double> pred(y.size(), std::nan(""));
  std::vector<int64_t> targets(target);
  std::sort(targets.begin(), targets.end());
  targets.erase(std::unique(targets.begin(), targets.end()), targets.end());
  const size_t p = m.features.size();
  for (int64_t held : targets) {
    std::vector<double> mean(p, 0.0), sd(p, 0.0);
    size_t n = 0;
    for (size_t k = 0; k < y.size(); ++k)
      if (target[k] != held) {
        ++n;
        for (size_t f = 0; f < p; ++f) mean[f] += rows[k][size_t(m.features[f])];
      }
    if (n == 0) continue;
    for (size_t f = 0; f < p; ++f) mean[f] /= double(n);
    for (size_t k = 0; k < y.size(); ++k)
      if (target[k] != held)
        for (size_t f = 0; f < p; ++f) {
          const double d = rows[k][size_t(m.features[f])] - mean[f];
          sd[f] += d * d;
        }
    for (size_t f = 0; f < p; ++f) sd[f] = std::sqrt(sd[f] / double(n));
    auto standardised = [&](size_t k) {
      std::vector<double> x{1.0};
      // A feature constant over the fold carries nothing: 0 (its coefficient is then free, so
      // the fold is fitted only when the others determine it; see least_squares).
      for (size_t f = 0; f < p; ++f) x.push_back(sd[f] > 0 ? (rows[k][size_t(m.features[f])] - mean[f]) / sd[f] : 0.0);
      return x;
    };
    std::vector<std::vector<double>> X;
    std::vector<double> yy;
    std::vector<std::string> names{"intercept"};
    for (size_t f = 0; f < p; ++f) names.push_back("x" + std::to_string(f));
    for (size_t k = 0; k < y.size(); ++k)
      if (target[k] != held) {
        X.push_back(standardised(k));
        yy.push_back(y[k]);
      }
    const Fit fit = least_squares(X, yy, names, m.name);
    if (!fit.ok()) continue;
    for (size_t k = 0; k < y.size(); ++k)
      if (target[k] == held) {
        const auto x = standardised(k);
        double v = 0;
        for (size_t f = 0; f < x.size(); ++f) v += fit.params[f] * x[f];
        pred[k] = v;
      }
  }
  return pred;
}

}  // namespace

void predict_finetune_cost(RunOutput& out, const Matrix<double>& loss_at_source) {
  const int64_t N = int64_t(out.task_names.size());
  std::vector<std::vector<double>> rows;
  std::vector<double> y;
  std::vector<int64_t> target;
  for (int64_t i = 0; i < N; ++i)
    for (int64_t j = 0; j < N; ++j) {
      if (i == j || out.finetune_steps(i, j) < 0 || out.finetune_steps(i, i) < 0) continue;
      if (out.flags(i, j) & (reach_flag::excluded | reach_flag::unstable_target)) continue;
      std::vector<double> row{out.R(i, j), std::log1p(double(out.finetune_steps(i, i))), loss_at_source(i, j),
                              out.C[size_t(i)]};
      if (!std::all_of(row.begin(), row.end(), [](double v) { return std::isfinite(v); })) continue;
      rows.push_back(row);
      y.push_back(std::log1p(double(out.finetune_steps(i, j))));
      target.push_back(i);
    }
  const std::string g = "prediction/";
  std::vector<int64_t> targets(target);
  std::sort(targets.begin(), targets.end());
  targets.erase(std::unique(targets.begin(), targets.end()), targets.end());
  out.analysis_i64[g + "pairs"] = int64_t(y.size());
  out.analysis_i64[g + "targets"] = int64_t(targets.size());
  out.analysis_i64[g + "bootstrap"] = kBootstrap;

  const std::vector<Model> models = {
      {"R", {kR}},
      {"scratch_cost", {kScratch}},
      {"loss_at_source", {kLoss}},
      {"target_complexity", {kTarget}},
      {"scratch_cost_R", {kScratch, kR}},
      {"baselines", {kScratch, kLoss, kTarget}},
      {"baselines_R", {kScratch, kLoss, kTarget, kR}},
  };
  std::map<std::string, std::vector<double>> pred;
  for (const auto& m : models) pred[m.name] = cross_validate(m, rows, y, target);

  // Statistics over a multiset of targets (each drawn target contributes all of its pairs).
  auto over = [&](const std::vector<int64_t>& drawn, const std::vector<double>& p, bool spearman_of) {
    std::vector<double> a, b;
    for (int64_t t : drawn)
      for (size_t k = 0; k < y.size(); ++k)
        if (target[k] == t) {
          if (!std::isfinite(p[k])) return std::nan("");
          a.push_back(p[k]);
          b.push_back(y[k]);
        }
    return spearman_of ? spearman(a, b) : rms_error(a, b);
  };
  // Bootstrap resamples of the targets, the same draws for every model (paired intervals).
  std::vector<std::vector<int64_t>> draws;
  const uint64_t stream = util::hash_parts({"prediction bootstrap"});
  for (int b = 0; b < kBootstrap && !targets.empty(); ++b) {
    std::vector<int64_t> d;
    for (size_t k = 0; k < targets.size(); ++k)
      d.push_back(targets[util::below_at(stream, uint64_t(b) * targets.size() + k, targets.size())]);
    draws.push_back(d);
  }
  std::map<std::string, std::vector<double>> boot_rmse;
  for (const auto& m : models) {
    const auto& p = pred[m.name];
    const std::string at = g + m.name + "/";
    out.analysis[at + "spearman_logT"] = over(targets, p, true);
    out.analysis[at + "rmse_logT"] = over(targets, p, false);
    std::vector<double> bs, br;
    for (const auto& d : draws) {
      bs.push_back(over(d, p, true));
      br.push_back(over(d, p, false));
    }
    out.analysis[at + "spearman_logT_lo"] = quantile(bs, 0.025);
    out.analysis[at + "spearman_logT_hi"] = quantile(bs, 0.975);
    out.analysis[at + "rmse_logT_lo"] = quantile(br, 0.025);
    out.analysis[at + "rmse_logT_hi"] = quantile(br, 0.975);
    boot_rmse[m.name] = br;
  }
  // What adding R gains: the drop in cross-validated RMS error, with its paired interval; R
  // "adds" when the whole 95% interval is above 0.
  for (const auto& [without, with] : {std::pair<std::string, std::string>{"scratch_cost", "scratch_cost_R"},
                                      std::pair<std::string, std::string>{"baselines", "baselines_R"}}) {
    const std::string at = g + "R_gain_over_" + without + "/";
    const double gain = out.analysis[g + without + "/rmse_logT"] - out.analysis[g + with + "/rmse_logT"];
    std::vector<double> d;
    for (size_t b = 0; b < draws.size(); ++b) d.push_back(boot_rmse[without][b] - boot_rmse[with][b]);
    out.analysis[at + "rmse_logT"] = gain;
    out.analysis[at + "rmse_logT_lo"] = quantile(d, 0.025);
    out.analysis[at + "rmse_logT_hi"] = quantile(d, 0.975);
    out.analysis_i64[at + "adds"] = std::isfinite(gain) && out.analysis[at + "rmse_logT_lo"] > 0 ? 1 : 0;
  }
}

}  // namespace taskreach
