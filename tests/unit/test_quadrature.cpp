// The quadrature kernel and the probe generator against closed forms.
#include <gtest/gtest.h>

#include <cmath>

#include "taskreach/curvature.hpp"

using namespace taskreach;

namespace {
// Toeplitz tridiagonal (a on the diagonal, b off it): λ_k = a + 2b cos(kπ/(n+1)),
// v_k(1)² = 2/(n+1) sin²(kπ/(n+1)).
struct Toeplitz {
  int n;
  double a, b;
  double lambda(int k) const { return a + 2 * b * std::cos(k * M_PI / (n + 1)); }
  double tau2(int k) const { return 2.0 / (n + 1) * std::pow(std::sin(k * M_PI / (n + 1)), 2); }
};
}  // namespace

TEST(Quadrature, TridiagonalEigenMatchesClosedForm) {
  Toeplitz t{12, 3.0, -1.0};
  std::vector<double> d(t.n, t.a), e(t.n - 1, t.b), z;
  tridiagonal_eigen(d, e, z);
  std::vector<std::pair<double, double>> got;
  for (int i = 0; i < t.n; ++i) got.push_back({d[i], z[i] * z[i]});
  std::sort(got.begin(), got.end());
  std::vector<std::pair<double, double>> want;
  for (int k = 1; k <= t.n; ++k) want.push_back({t.lambda(k), t.tau2(k)});
  std::sort(want.begin(), want.end());
  for (int i = 0; i < t.n; ++i) {
    EXPECT_NEAR(got[i].first, want[i].first, 1e-12);
    EXPECT_NEAR(got[i].second, want[i].second, 1e-12);
  }
}

TEST(Quadrature, KernelGivesFirstEntryOfMatrixFunction) {
  // e1ᵀ log(I + cT) e1 = Σ_k τ_k² log(1 + cλ_k), batched over tridiagonals of unequal length.
  const double c = 0.7;
  std::vector<Toeplitz> ts{{12, 3.0, -1.0}, {5, 2.0, 0.5}, {1, 4.0, 0.0}};
  std::vector<std::vector<double>> alpha, beta;
  for (const auto& t : ts) {
    alpha.emplace_back(t.n, t.a);
    beta.emplace_back(t.n - 1, t.b);
  }
  auto q = lanczos_quadrature(alpha, beta, c);
  ASSERT_EQ(q.size(), ts.size());
  for (size_t p = 0; p < ts.size(); ++p) {
    double want = 0;
    for (int k = 1; k <= ts[p].n; ++k) want += ts[p].tau2(k) * std::log1p(c * ts[p].lambda(k));
    EXPECT_NEAR(q[p], want, 1e-12) << "probe " << p;
  }
}

TEST(Quadrature, NegativeEigenvaluesAreClipped) {
  // A 1×1 "tridiagonal" with θ = −2: log(1 + c·max(θ, 0)) = 0.
  auto q = lanczos_quadrature({{-2.0}}, {{}}, 1.0);
  EXPECT_EQ(q[0], 0.0);
}

TEST(Probes, RademacherIsBalancedAndKeyedByIndices) {
  int64_t sum = 0;
  for (uint64_t i = 0; i < 100000; ++i) {
    double r = rademacher(7, 3, i);
    ASSERT_TRUE(r == 1.0 || r == -1.0);
    sum += static_cast<int64_t>(r);
  }
  EXPECT_LT(std::abs(sum), 1500);  // 4.7 standard deviations of a fair ±1 sum
  EXPECT_EQ(rademacher(7, 3, 12345), rademacher(7, 3, 12345));
  int differ = 0;
  for (uint64_t i = 0; i < 1000; ++i) differ += rademacher(7, 3, i) != rademacher(7, 4, i);
  EXPECT_GT(differ, 400);
  EXPECT_LT(differ, 600);
}
