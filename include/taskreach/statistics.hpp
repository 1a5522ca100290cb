#pragma once
// Rank statistics for judging R against the measured fine-tune cost (DESIGN §5 /analysis).
// Every function returns NaN when the statistic is undefined (fewer than 2 points, or a
// constant input).
#include <vector>

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

}  // namespace taskreach
