// Image transforms as Kokkos kernels. Every kernel is named so that Kokkos tools
// (kernel timers, nsys) attribute time to it, and uses only Views, so it runs unchanged
// on any backend.
#include "transforms.hpp"

#include <algorithm>
#include <cmath>
#include <stdexcept>

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

}  // namespace

BaseBytes to_device(const std::vector<uint8_t>& pixels, int64_t dim) {
  const size_t n = dim > 0 ? pixels.size() / static_cast<size_t>(dim) : 0;
  return Kokkos::create_mirror_view_and_copy(MemSpace(), HostUnmanaged<const uint8_t**>(pixels.data(), n,
                                                                                         static_cast<size_t>(dim)));
}

Images device_view(const HostImages& out) { return Kokkos::create_mirror_view(MemSpace(), out); }

void copy_back(const Images& x, const HostImages& out) { Kokkos::deep_copy(out, x); }

void to_float(const BaseBytes& base, const std::vector<int64_t>& which, const Images& x) {
  const auto idx = Kokkos::create_mirror_view_and_copy(
      MemSpace(), HostUnmanaged<const int64_t*>(which.data(), which.size()));
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
