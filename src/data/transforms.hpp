#pragma once
// Internal to taskreach_data: image transforms as named Kokkos kernels on the default
// execution space. Images are float in [0,1] (pixel/255) in the execution space's
// memory; the host reaches them only through Views and deep copies, so the same code
// runs on Serial, OpenMP and CUDA. On a host backend the "device" views alias the host
// buffers and every copy below is a no-op: building tasks touches each big buffer once.
#include <cstdint>
#include <vector>

#include <Kokkos_Core.hpp>

namespace taskreach::data {

using MemSpace = Kokkos::DefaultExecutionSpace::memory_space;
// LayoutRight throughout because CUDA's default layout is LayoutLeft while the host side
// (Task::x, the IDX bytes) is row-major: mirrors then hold the same bytes in the same order.
using Images = Kokkos::View<float****, Kokkos::LayoutRight, MemSpace>;  // n × C × H × W
using HostImages = Kokkos::View<float****, Kokkos::LayoutRight, Kokkos::HostSpace,
                                Kokkos::MemoryTraits<Kokkos::Unmanaged>>;
using BaseBytes = Kokkos::View<const uint8_t**, Kokkos::LayoutRight, MemSpace>;  // n_base × dim
using BaseValues = Kokkos::View<const float**, Kokkos::LayoutRight, MemSpace>;   // n_base × dim

// A source's pixels (n_base·dim bytes) or float features where kernels can read them.
BaseBytes to_device(const std::vector<uint8_t>& pixels, int64_t dim);
BaseValues to_device(const std::vector<float>& values, int64_t dim);

// Images with the extents of `out` for kernels to write; copy_back(x, out) then lands
// them in `out` (on a host backend x is `out` itself).
Images device_view(const HostImages& out);
void copy_back(const Images& x, const HostImages& out);

// x(i) = base(which[i]) / 255; x has which.size() images of base.extent(1) pixels.
void to_float(const BaseBytes& base, const std::vector<int64_t>& which, const Images& x);

// x(i) = base(which[i]) (pixels / 255, or the float values as they are) stored as
// C_s×H_s×W_s = `from`, fitted to x's C×H×W:
// - channels: equal, or one replicated to C, or C_s averaged to one (C = 1);
// - resize: bilinear with half-pixel centres (PyTorch's align_corners=False; clamped at the
//   border), the identity when the sizes agree;
// - pad: centred, zeros around a smaller image (a larger one is centre-cropped).
// Throws std::invalid_argument for a channel count it cannot map.
struct Shape {
  int64_t channels = 1, height = 1, width = 1;
};
enum class Fit { resize, pad };
void to_float(const BaseBytes& base, const std::vector<int64_t>& which, Shape from, Fit fit, const Images& x);
void to_float(const BaseValues& base, const std::vector<int64_t>& which, Shape from, Fit fit, const Images& x);

// Additive Gaussian noise x += σ·z, z ~ N(0, 1) from a counter-based generator keyed by
// (stream, which[i], pixel): an image gets the same noise in every batch, on every backend
// and rank count, whatever else is processed with it.
void add_noise(const Images& x, const std::vector<int64_t>& which, double sigma, uint64_t stream);

// The standard normal the noise kernel draws for (stream, index, pixel), on the host.
double noise_normal(uint64_t stream, uint64_t index, uint64_t pixel);

// x → 1 − x.
void invert(const Images& x);

// Normalised 1-D Gaussian weights at offsets −r..r, r = ceil(3σ); σ must be > 0.
std::vector<double> gaussian_kernel(double sigma);

// Separable Gaussian blur. At the border the weights are renormalised over the taps that
// fall inside the image (rather than zero padding), so a constant image stays constant:
// an inverted image (background 1) does not get a dark frame.
void blur(const Images& x, double sigma);

// x → (x − mean) / std.
void normalise(const Images& x, double mean, double std);

// Population mean and std of pixels/255 over all of `pixels`, from exact integer sums
// (so the statistics do not depend on the backend's reduction order).
struct PixelStats {
  double mean = 0.0, std = 1.0;
};
PixelStats pixel_stats(const std::vector<uint8_t>& pixels);
// The same over the rows `rows` of an n×dim array (exact for bytes; floats summed in
// double in a fixed order).
PixelStats pixel_stats(const std::vector<uint8_t>& pixels, int64_t dim, const std::vector<int64_t>& rows);
PixelStats value_stats(const std::vector<float>& values, int64_t dim, const std::vector<int64_t>& rows);

}  // namespace taskreach::data
