// Image transforms as Kokkos kernels. Every kernel is named so that Kokkos tools
// (kernel timers, nsys) attribute time to it, and uses only Views, so it runs unchanged
// on any backend.
#include "transforms.hpp"

#include "taskreach/util.hpp"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>

namespace taskreach::data {
namespace {

using Policy4 = Kokkos::MDRangePolicy<Kokkos::Rank<4>, Kokkos::IndexType<int64_t>>;

// Images [i0, i1) of x, every pixel.
Policy4 images(const Images& x, int64_t i0, int64_t i1) {
  return Policy4({i0, 0, 0, 0}, {i1, static_cast<int64_t>(x.extent(1)), static_cast<int64_t>(x.extent(2)),
                                 static_cast<int64_t>(x.extent(3))});
}
Policy4 whole(const Images& x) { return images(x, 0, static_cast<int64_t>(x.extent(0))); }

template <class T>
using HostUnmanaged = Kokkos::View<T, Kokkos::LayoutRight, Kokkos::HostSpace,
                                   Kokkos::MemoryTraits<Kokkos::Unmanaged>>;

// Kokkos' device math moved from Kokkos::Experimental (≤ 3.6, Debian 12) to Kokkos (3.7+).
#if KOKKOS_VERSION >= 30700
namespace kmath = Kokkos;
#else
namespace kmath = Kokkos::Experimental;
#endif

KOKKOS_INLINE_FUNCTION uint64_t mix64(uint64_t x) { return util::splitmix64(x); }

// Box–Muller on two 53-bit uniforms from the hashed counter; u1 in (0, 1] keeps log finite.
KOKKOS_INLINE_FUNCTION double normal_at(uint64_t stream, uint64_t index, uint64_t pixel) {
  const uint64_t a = mix64(stream ^ mix64(index ^ mix64(pixel)));
  const uint64_t b = mix64(a ^ 0x6e6f697365ull);  // "noise"
  const double u1 = static_cast<double>((a >> 11) + 1) * 0x1.0p-53;
  const double u2 = static_cast<double>(b >> 11) * 0x1.0p-53;
  return kmath::sqrt(-2.0 * kmath::log(u1)) * kmath::cos(6.283185307179586 * u2);
}

Kokkos::View<const int64_t*, MemSpace> indices_on_device(const std::vector<int64_t>& which) {
  return Kokkos::create_mirror_view_and_copy(MemSpace(), HostUnmanaged<const int64_t*>(which.data(), which.size()));
}

// The fitted load, for bytes (divisor 255) and floats (divisor 1). Dividing (rather than
// multiplying by 1/255) gives the same floats as the unfitted to_float.
template <class Base>
void load(const Base& base, float divisor, const std::vector<int64_t>& which, Shape from, Fit fit, const Images& x) {
  const int64_t C = static_cast<int64_t>(x.extent(1)), H = static_cast<int64_t>(x.extent(2)),
                W = static_cast<int64_t>(x.extent(3));
  const int64_t Cs = from.channels, Hs = from.height, Ws = from.width;
  if (Cs * Hs * Ws != static_cast<int64_t>(base.extent(1)))
    throw std::invalid_argument("to_float: source shape does not match the stored rows");
  if (!(Cs == C || Cs == 1 || C == 1))
    throw std::invalid_argument("to_float: cannot map " + std::to_string(Cs) + " channels to " + std::to_string(C));
  // Channel c of the output reads source channels [c0, c0 + nc): the same one, the single
  // one (replication), or all of them averaged.
  const bool average = C == 1 && Cs > 1;
  const int64_t nc = average ? Cs : 1;
  const float denom = divisor * static_cast<float>(nc);
  const auto idx = indices_on_device(which);
  if (fit == Fit::pad || (Hs == H && Ws == W)) {
    // Centred: the offset of the source inside the output (negative: a crop).
    const int64_t oh = (H - Hs) / 2, ow = (W - Ws) / 2;
    Kokkos::parallel_for(
        "taskreach::data::to_float_pad", whole(x), KOKKOS_LAMBDA(int64_t i, int64_t c, int64_t h, int64_t w) {
          const int64_t hs = h - oh, ws = w - ow;
          float v = 0.0f;
          if (hs >= 0 && hs < Hs && ws >= 0 && ws < Ws) {
            const int64_t c0 = average ? 0 : (Cs == 1 ? 0 : c);
            for (int64_t k = 0; k < nc; ++k) v += static_cast<float>(base(idx(i), ((c0 + k) * Hs + hs) * Ws + ws));
            v /= denom;
          }
          x(i, c, h, w) = v;
        });
    return;
  }
  const double sh = static_cast<double>(Hs) / static_cast<double>(H);
  const double sw = static_cast<double>(Ws) / static_cast<double>(W);
  Kokkos::parallel_for(
      "taskreach::data::to_float_resize", whole(x), KOKKOS_LAMBDA(int64_t i, int64_t c, int64_t h, int64_t w) {
        // Half-pixel centres, clamped to the source: the sample point and its 2×2 cell.
        double y = (static_cast<double>(h) + 0.5) * sh - 0.5, z = (static_cast<double>(w) + 0.5) * sw - 0.5;
        y = y < 0.0 ? 0.0 : y;
        z = z < 0.0 ? 0.0 : z;
        int64_t y0 = static_cast<int64_t>(y), z0 = static_cast<int64_t>(z);
        y0 = y0 > Hs - 1 ? Hs - 1 : y0;
        z0 = z0 > Ws - 1 ? Ws - 1 : z0;
        const int64_t y1 = y0 + 1 < Hs ? y0 + 1 : Hs - 1, z1 = z0 + 1 < Ws ? z0 + 1 : Ws - 1;
        const double fy = y - static_cast<double>(y0) > 1.0 ? 1.0 : y - static_cast<double>(y0);
        const double fz = z - static_cast<double>(z0) > 1.0 ? 1.0 : z - static_cast<double>(z0);
        const int64_t c0 = average ? 0 : (Cs == 1 ? 0 : c);
        double v = 0.0;
        for (int64_t k = 0; k < nc; ++k) {
          const int64_t plane = (c0 + k) * Hs;
          const double a = base(idx(i), (plane + y0) * Ws + z0), b = base(idx(i), (plane + y0) * Ws + z1);
          const double d = base(idx(i), (plane + y1) * Ws + z0), e = base(idx(i), (plane + y1) * Ws + z1);
          v += (1.0 - fy) * ((1.0 - fz) * a + fz * b) + fy * ((1.0 - fz) * d + fz * e);
        }
        x(i, c, h, w) = static_cast<float>(v / static_cast<double>(denom));
      });
}

}  // namespace

BaseBytes to_device(const std::vector<uint8_t>& pixels, int64_t dim) {
  const size_t n = dim > 0 ? pixels.size() / static_cast<size_t>(dim) : 0;
  return Kokkos::create_mirror_view_and_copy(MemSpace(), HostUnmanaged<const uint8_t**>(pixels.data(), n,
                                                                                         static_cast<size_t>(dim)));
}

BaseValues to_device(const std::vector<float>& values, int64_t dim) {
  const size_t n = dim > 0 ? values.size() / static_cast<size_t>(dim) : 0;
  return Kokkos::create_mirror_view_and_copy(MemSpace(), HostUnmanaged<const float**>(values.data(), n,
                                                                                       static_cast<size_t>(dim)));
}

void to_float(const BaseBytes& base, const std::vector<int64_t>& which, Shape from, Fit fit, const Images& x) {
  load(base, 255.0f, which, from, fit, x);
}
void to_float(const BaseValues& base, const std::vector<int64_t>& which, Shape from, Fit fit, const Images& x) {
  load(base, 1.0f, which, from, fit, x);
}

void add_noise(const Images& x, const std::vector<int64_t>& which, double sigma, uint64_t stream) {
  const auto idx = indices_on_device(which);
  const int64_t H = static_cast<int64_t>(x.extent(2)), W = static_cast<int64_t>(x.extent(3));
  Kokkos::parallel_for(
      "taskreach::data::noise", whole(x), KOKKOS_LAMBDA(int64_t i, int64_t c, int64_t h, int64_t w) {
        const uint64_t pixel = static_cast<uint64_t>((c * H + h) * W + w);
        x(i, c, h, w) += static_cast<float>(sigma * normal_at(stream, static_cast<uint64_t>(idx(i)), pixel));
      });
}

double noise_normal(uint64_t stream, uint64_t index, uint64_t pixel) { return normal_at(stream, index, pixel); }

Images device_view(const HostImages& out) { return Kokkos::create_mirror_view(MemSpace(), out); }

void copy_back(const Images& x, const HostImages& out) { Kokkos::deep_copy(out, x); }

void to_float(const BaseBytes& base, const std::vector<int64_t>& which, const Images& x) {
  const auto idx = indices_on_device(which);
  const int64_t H = static_cast<int64_t>(x.extent(2)), W = static_cast<int64_t>(x.extent(3));
  Kokkos::parallel_for(
      "taskreach::data::to_float", whole(x), KOKKOS_LAMBDA(int64_t i, int64_t c, int64_t h, int64_t w) {
        x(i, c, h, w) = static_cast<float>(base(idx(i), (c * H + h) * W + w)) / 255.0f;
      });
}

void invert(const Images& x) {
  Kokkos::parallel_for(
      "taskreach::data::invert", whole(x),
      KOKKOS_LAMBDA(int64_t i, int64_t c, int64_t h, int64_t w) { x(i, c, h, w) = 1.0f - x(i, c, h, w); });
}

std::vector<double> gaussian_kernel(double sigma) {
  if (!(sigma > 0.0)) throw std::invalid_argument("gaussian_kernel: sigma must be > 0");
  const int64_t r = static_cast<int64_t>(std::ceil(3.0 * sigma));
  std::vector<double> w(static_cast<size_t>(2 * r + 1));
  double sum = 0.0;
  for (int64_t k = -r; k <= r; ++k) {
    w[static_cast<size_t>(k + r)] = std::exp(-static_cast<double>(k * k) / (2.0 * sigma * sigma));
    sum += w[static_cast<size_t>(k + r)];
  }
  for (double& v : w) v /= sum;
  return w;
}

void blur(const Images& x, double sigma) {
  const std::vector<double> host_w = gaussian_kernel(sigma);
  const int64_t r = static_cast<int64_t>(host_w.size() / 2);
  Kokkos::View<float*, MemSpace> wts("taskreach::data::blur_weights", host_w.size());
  auto wts_h = Kokkos::create_mirror_view(wts);
  for (size_t k = 0; k < host_w.size(); ++k) wts_h(k) = static_cast<float>(host_w[k]);
  Kokkos::deep_copy(wts, wts_h);

  const int64_t n = static_cast<int64_t>(x.extent(0)), H = static_cast<int64_t>(x.extent(2)),
                W = static_cast<int64_t>(x.extent(3));
  const int64_t dim = static_cast<int64_t>(x.extent(1)) * H * W;
  // The horizontal pass goes to a scratch buffer of a few MB, a chunk of images at a time,
  // rather than to a copy of all of x: first-touching fresh memory is the dominant cost
  // of building tasks on a host backend, and the chunks still fill a GPU.
  const int64_t chunk = std::min(n, std::max<int64_t>(1, (int64_t{1} << 22) / std::max<int64_t>(dim, 1)));
  Images tmp(Kokkos::view_alloc(Kokkos::WithoutInitializing, "taskreach::data::blur_tmp"), chunk,
             x.extent(1), x.extent(2), x.extent(3));
  for (int64_t i0 = 0; i0 < n; i0 += chunk) {
    const int64_t i1 = std::min(n, i0 + chunk);
    // Dividing by the in-image weight sum is the border rule; in the interior that sum
    // is the float-rounded 1, the same for every pixel, so the passes stay separable.
    Kokkos::parallel_for(
        "taskreach::data::blur_h", images(x, i0, i1), KOKKOS_LAMBDA(int64_t i, int64_t c, int64_t h, int64_t w) {
          const int64_t lo = w < r ? -w : -r, hi = W - 1 - w < r ? W - 1 - w : r;
          float acc = 0.0f, norm = 0.0f;
          for (int64_t k = lo; k <= hi; ++k) {
            acc += wts(k + r) * x(i, c, h, w + k);
            norm += wts(k + r);
          }
          tmp(i - i0, c, h, w) = acc / norm;
        });
    Kokkos::parallel_for(
        "taskreach::data::blur_v", images(x, i0, i1), KOKKOS_LAMBDA(int64_t i, int64_t c, int64_t h, int64_t w) {
          const int64_t lo = h < r ? -h : -r, hi = H - 1 - h < r ? H - 1 - h : r;
          float acc = 0.0f, norm = 0.0f;
          for (int64_t k = lo; k <= hi; ++k) {
            acc += wts(k + r) * tmp(i - i0, c, h + k, w);
            norm += wts(k + r);
          }
          x(i, c, h, w) = acc / norm;
        });
  }
}

void normalise(const Images& x, double mean, double std) {
  const float m = static_cast<float>(mean), inv = static_cast<float>(1.0 / std);
  Kokkos::parallel_for(
      "taskreach::data::normalise", whole(x),
      KOKKOS_LAMBDA(int64_t i, int64_t c, int64_t h, int64_t w) { x(i, c, h, w) = (x(i, c, h, w) - m) * inv; });
}

PixelStats pixel_stats(const std::vector<uint8_t>& pixels) {
  PixelStats s;
  const int64_t n = static_cast<int64_t>(pixels.size());
  if (n == 0) return s;
  // The bytes are on the host and the sums exact, so a host reduction loses nothing.
  const uint8_t* p = pixels.data();
  using HostPolicy = Kokkos::RangePolicy<Kokkos::DefaultHostExecutionSpace, Kokkos::IndexType<int64_t>>;
  int64_t sum = 0, sumsq = 0;
  Kokkos::parallel_reduce(
      "taskreach::data::pixel_sum", HostPolicy(0, n), [=](int64_t i, int64_t& a) { a += p[i]; }, sum);
  Kokkos::parallel_reduce(
      "taskreach::data::pixel_sumsq", HostPolicy(0, n),
      [=](int64_t i, int64_t& a) { a += int64_t{p[i]} * p[i]; }, sumsq);
  const double mean = static_cast<double>(sum) / static_cast<double>(n);
  const double var = std::max(0.0, static_cast<double>(sumsq) / static_cast<double>(n) - mean * mean);
  s.mean = mean / 255.0;
  // A constant source has no spread to divide by; leave it centred but unscaled.
  s.std = var > 0.0 ? std::sqrt(var) / 255.0 : 1.0;
  return s;
}

}  // namespace taskreach::data

namespace taskreach::data {

PixelStats pixel_stats(const std::vector<uint8_t>& pixels, int64_t dim, const std::vector<int64_t>& rows) {
  PixelStats s;
  const int64_t n = static_cast<int64_t>(rows.size()) * dim;
  if (n == 0) return s;
  int64_t sum = 0, sumsq = 0;
  for (int64_t r : rows) {
    const uint8_t* p = pixels.data() + r * dim;
    for (int64_t k = 0; k < dim; ++k) {
      sum += p[k];
      sumsq += int64_t{p[k]} * p[k];
    }
  }
  const double mean = static_cast<double>(sum) / static_cast<double>(n);
  const double var = std::max(0.0, static_cast<double>(sumsq) / static_cast<double>(n) - mean * mean);
  s.mean = mean / 255.0;
  s.std = var > 0.0 ? std::sqrt(var) / 255.0 : 1.0;
  return s;
}

PixelStats value_stats(const std::vector<float>& values, int64_t dim, const std::vector<int64_t>& rows) {
  PixelStats s;
  const int64_t n = static_cast<int64_t>(rows.size()) * dim;
  if (n == 0) return s;
  // Two passes (mean, then squared deviations) in double, in row order: no cancellation,
  // and the same sums on every rank.
  double sum = 0.0;
  for (int64_t r : rows)
    for (int64_t k = 0; k < dim; ++k) sum += values[static_cast<size_t>(r * dim + k)];
  const double mean = sum / static_cast<double>(n);
  double ss = 0.0;
  for (int64_t r : rows)
    for (int64_t k = 0; k < dim; ++k) {
      const double d = values[static_cast<size_t>(r * dim + k)] - mean;
      ss += d * d;
    }
  s.mean = mean;
  s.std = ss > 0.0 ? std::sqrt(ss / static_cast<double>(n)) : 1.0;
  return s;
}

}  // namespace taskreach::data
