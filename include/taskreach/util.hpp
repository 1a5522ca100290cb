#pragma once
// Hashing and counter-based random draws, shared by every module (STYLE 13): each draw that
// affects a result is a pure function of (seed, index), so it is bit-identical across
// compilers, standard libraries, rank layouts and restarts. No std::mt19937 or
// std::shuffle in anything that reaches a result.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <numeric>
#include <string>
#include <vector>

namespace taskreach::util {

// splitmix64's output function: a cheap bijective mixer. constexpr, so Kokkos kernels and
// device code can call it.
constexpr uint64_t splitmix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

// Chains a value into a running hash: chain(chain(splitmix64(seed), a), b) is the stream of
// (seed, a, b).
constexpr uint64_t chain(uint64_t h, uint64_t v) { return splitmix64(h ^ v); }

// The index-th 64 random bits of stream `seed`.
constexpr uint64_t bits_at(uint64_t seed, uint64_t index) { return chain(splitmix64(seed), index); }

// A uniform double in [0, 1) from the top 53 bits of bits_at.
constexpr double uniform_at(uint64_t seed, uint64_t index) {
  return static_cast<double>(bits_at(seed, index) >> 11) * 0x1.0p-53;
}

// A uniform integer in [0, n), n > 0 (multiply-shift; bias below n/2^64).
inline uint64_t below_at(uint64_t seed, uint64_t index, uint64_t n) {
  return static_cast<uint64_t>((static_cast<unsigned __int128>(bits_at(seed, index)) * n) >> 64);
}

// A permutation of 0..n-1 that depends on (seed, n) alone: indices sorted by their bits.
inline std::vector<int64_t> permutation(uint64_t seed, int64_t n) {
  std::vector<int64_t> p(static_cast<size_t>(n));
  std::iota(p.begin(), p.end(), int64_t{0});
  std::vector<uint64_t> key(p.size());
  for (size_t i = 0; i < p.size(); ++i) key[i] = bits_at(seed, i);
  std::sort(p.begin(), p.end(), [&](int64_t a, int64_t b) {
    const uint64_t ka = key[size_t(a)], kb = key[size_t(b)];
    return ka != kb ? ka < kb : a < b;
  });
  return p;
}

// FNV-1a over bytes, continuing from `h`.
constexpr uint64_t kFnvOffset = 0xcbf29ce484222325ull;
inline uint64_t fnv1a(const void* data, size_t n, uint64_t h = kFnvOffset) {
  const auto* p = static_cast<const unsigned char*>(data);
  for (size_t i = 0; i < n; ++i) h = (h ^ p[i]) * 0x100000001b3ull;
  return h;
}

// FNV-1a over parts, each preceded by its length: ("ab", "c") and ("a", "bc") differ.
inline uint64_t hash_parts(const std::vector<std::string>& parts) {
  uint64_t h = kFnvOffset;
  for (const auto& s : parts) {
    const uint64_t n = s.size();
    h = fnv1a(&n, sizeof n, h);
    h = fnv1a(s.data(), s.size(), h);
  }
  return h;
}

// 16 lower-case hex digits: the file name of a key.
std::string hex16(uint64_t key);

// Student's t distribution with `dof` > 0 degrees of freedom (real-valued: Welch–Satterthwaite
// gives fractional ones): the CDF at t, and the quantile at probability p in (0, 1). NaN for
// dof ≤ 0 or NaN; dof = +inf is the normal distribution.
double student_t_cdf(double t, double dof);
double student_t_quantile(double p, double dof);

// The critical value that "3 standard errors" means at `dof` degrees of freedom: the t quantile
// at Φ(3) (one-sided 0.135%, the normal 3σ level), 3 for dof = +inf, NaN when dof is unknown.
double critical_value(double dof);

}  // namespace taskreach::util
