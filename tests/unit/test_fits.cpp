// The experiments' least-squares fits recover known parameters from synthetic series, with
// standard errors that cover the truth and R² that reflects the noise.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "taskreach/analysis.hpp"

using namespace taskreach;

namespace {

// Deterministic Gaussian noise of standard deviation s.
std::vector<double> noise(size_t n, double s, unsigned seed) {
  std::mt19937_64 g(seed);
  std::normal_distribution<double> d(0.0, s);
  std::vector<double> v(n);
  for (auto& x : v) x = d(g);
  return v;
}

}  // namespace

TEST(Fits, ExactLineIsRecoveredWithZeroErrorAndUnitR2) {
  std::vector<std::vector<double>> X;
  std::vector<double> y;
  for (int i = 0; i < 6; ++i) {
    X.push_back({1.0, double(i)});
    y.push_back(2.5 - 0.75 * i);
  }
  const Fit f = least_squares(X, y, {"a", "b"}, "y = a + b x");
  ASSERT_TRUE(f.ok());
  EXPECT_NEAR(f.params[0], 2.5, 1e-12);
  EXPECT_NEAR(f.params[1], -0.75, 1e-12);
  EXPECT_NEAR(f.stderr_[1], 0.0, 1e-10);
  EXPECT_NEAR(f.r2, 1.0, 1e-12);
  EXPECT_EQ(f.n, 6);
}

TEST(Fits, LogTauAgainstRandomLabelsRecoversTheRateWithinErrors) {
  // τ = 40·exp(0.02·m) with 5% multiplicative noise, three seeds per m.
  std::vector<double> m, tau;
  const auto e = noise(30, 0.05, 7);
  for (int k = 0; k < 30; ++k) {
    m.push_back(10.0 * (k / 3));
    tau.push_back(40.0 * std::exp(0.02 * m.back() + e[size_t(k)]));
  }
  const Fit f = fit_log_linear(m, tau, "n_random");
  ASSERT_TRUE(f.ok());
  EXPECT_NEAR(f.params[1], 0.02, 3 * f.stderr_[1]);
  EXPECT_NEAR(f.params[0], std::log(40.0), 3 * f.stderr_[0]);
  EXPECT_LT(f.stderr_[1], 0.002);
  EXPECT_GT(f.r2, 0.95);
  EXPECT_NE(f.model.find("n_random"), std::string::npos);
}

TEST(Fits, PointsThatDidNotConvergeAreLeftOut) {
  // τ = NaN (threshold not reached) and τ ≤ 0 carry no information about the rate.
  const Fit f = fit_log_linear({0, 1, 2, 3, 4}, {1.0, std::exp(1.0), NAN, std::exp(3.0), -1.0}, "x");
  ASSERT_TRUE(f.ok());
  EXPECT_EQ(f.n, 3);
  EXPECT_NEAR(f.params[1], 1.0, 1e-12);
}

TEST(Fits, TooFewPointsOrNoSpreadGiveNoFit) {
  EXPECT_FALSE(fit_log_linear({1, 2}, {3, 4}, "x").ok());             // 2 points, 2 parameters
  EXPECT_FALSE(fit_log_linear({5, 5, 5, 5}, {1, 2, 3, 4}, "x").ok());  // x constant: singular
}

TEST(Fits, KramersLawRecoversTheDiffusionConstant) {
  // τ = c·exp(ΔC·B/(n·k)), ΔC = 600 nats summed over n = 300 samples, k = 50, c = 30.
  const double dC = 600, n = 300, k = 50, c = 30;
  std::vector<double> B, tau;
  const auto e = noise(12, 0.03, 11);
  for (int i = 0; i < 12; ++i) {
    B.push_back(16.0 * (1 << (i / 3)));
    tau.push_back(c * std::exp(dC * B.back() / (n * k) + e[size_t(i)]));
  }
  const Fit f = fit_kramers(B, tau, dC, n);
  ASSERT_TRUE(f.ok());
  ASSERT_EQ(f.names.size(), 3u);
  EXPECT_EQ(f.names[2], "k");
  EXPECT_NEAR(f.params[2], k, 3 * f.stderr_[2]);
  EXPECT_LT(f.stderr_[2] / k, 0.05);
  EXPECT_NEAR(f.params[0], std::log(c), 3 * f.stderr_[0]);
}

TEST(Fits, EffectivePotentialRecoversEnergyAndBothCoefficients) {
  // ½v² = E − a·U − b·S along a synthetic run where U and S decay at different rates, b < 0.
  const double E = 2.0, a = 0.8, b = -0.3;
  std::vector<double> half_v2, U, S;
  const auto e = noise(40, 0.002, 3);
  for (int t = 0; t < 40; ++t) {
    U.push_back(2.3 * std::exp(-0.1 * t));
    S.push_back(-4.0 + 1.5 * std::exp(-0.03 * t) + 0.2 * std::sin(0.4 * t));
    half_v2.push_back(E - a * U.back() - b * S.back() + e[size_t(t)]);
  }
  const Fit f = fit_potential(half_v2, U, S);
  ASSERT_TRUE(f.ok());
  EXPECT_NEAR(f.params[0], E, 3 * f.stderr_[0]);
  EXPECT_NEAR(f.params[1], a, 3 * f.stderr_[1]);
  EXPECT_NEAR(f.params[2], b, 3 * f.stderr_[2]);
  EXPECT_GT(f.r2, 0.99);
  // Pure noise has R² near 0: the statistic is not inflated by the fit.
  const auto pure = noise(40, 1.0, 5);
  const Fit g = fit_potential(pure, U, S);
  ASSERT_TRUE(g.ok());
  EXPECT_LT(g.r2, 0.3);
}
