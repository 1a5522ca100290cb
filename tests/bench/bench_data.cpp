// Throughput of the data module in MB/s (10^6 bytes a second): the readers on real and
// documented-format files (bytes of the decompressed file), and the transform kernels on
// 10,000 Fashion-MNIST images (bytes of float32 output). One thread, Kokkos' default
// execution space.
//   build/release/tests/bench/bench_data --benchmark_counters_tabular=true
#include <benchmark/benchmark.h>
#include <unistd.h>
#include <zlib.h>

#include <Kokkos_Core.hpp>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "../../src/data/transforms.hpp"
#include "taskreach/data.hpp"

using namespace taskreach;
namespace fs = std::filesystem;

namespace {

const std::string kFashionImages = "/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz";
const std::string kFashionLabels = "/usr/share/datasets/fashion-mnist/train-labels-idx1-ubyte.gz";
const std::string kDigitsCsv = "/usr/lib/python3/dist-packages/sklearn/datasets/data/digits.csv.gz";

std::vector<uint8_t> gunzip(const std::string& path) {
  std::vector<uint8_t> out;
  gzFile f = gzopen(path.c_str(), "rb");
  if (!f) return out;
  uint8_t buf[1 << 16];
  int k;
  while ((k = gzread(f, buf, sizeof buf)) > 0) out.insert(out.end(), buf, buf + k);
  gzclose(f);
  return out;
}

void write(const std::string& path, const std::vector<uint8_t>& b, bool gz) {
  if (gz) {
    gzFile f = gzopen(path.c_str(), "wb6");
    gzwrite(f, b.data(), static_cast<unsigned>(b.size()));
    gzclose(f);
  } else {
    std::ofstream(path, std::ios::binary).write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
  }
}

// Scratch files made once: plain copies of the packaged gzip files, a CIFAR-10 batch of
// 10,000 records and a 20,000-row letter-recognition-style CSV.
struct Files {
  fs::path dir = fs::temp_directory_path() / ("taskreach_bench_data_" + std::to_string(::getpid()));
  std::string images, labels, cifar, cifar_gz, letters, digits;
  size_t idx_bytes = 0, cifar_bytes = 0, letters_bytes = 0, digits_bytes = 0;
  Files() {
    fs::create_directories(dir);
    images = (dir / "images").string();
    labels = (dir / "labels").string();
    const auto im = gunzip(kFashionImages), lb = gunzip(kFashionLabels);
    write(images, im, false);
    write(labels, lb, false);
    idx_bytes = im.size() + lb.size();
    std::vector<uint8_t> c;
    for (int r = 0; r < 10000; ++r) {
      c.push_back(static_cast<uint8_t>(r % 10));
      // Real image bytes (three Fashion-MNIST images as planes), so gzip sees real data.
      for (int p = 0; p < 3072; ++p) c.push_back(im[16 + (static_cast<size_t>(r) * 3072 + p) % (im.size() - 16)]);
    }
    cifar = (dir / "data_batch_1.bin").string();
    cifar_gz = (dir / "data_batch_1.bin.gz").string();
    write(cifar, c, false);
    write(cifar_gz, c, true);
    cifar_bytes = c.size();
    std::string t;
    for (int r = 0; r < 20000; ++r) {
      t += static_cast<char>('A' + r % 26);
      for (int k = 0; k < 16; ++k) t += "," + std::to_string((r * 7 + k * 13) % 16);
      t += "\n";
    }
    letters = (dir / "letters.csv").string();
    write(letters, std::vector<uint8_t>(t.begin(), t.end()), false);
    letters_bytes = t.size();
    digits = kDigitsCsv;
    digits_bytes = gunzip(kDigitsCsv).size();
  }
  ~Files() {
    std::error_code ec;
    fs::remove_all(dir, ec);
  }
};

Files& files() {
  static Files f;
  return f;
}

void mb_per_s(benchmark::State& state, size_t bytes) {
  state.counters["MB/s"] =
      benchmark::Counter(static_cast<double>(bytes) / 1e6, benchmark::Counter::kIsIterationInvariantRate);
}

void BM_ReadIdxGzip(benchmark::State& state) {
  for (auto _ : state) benchmark::DoNotOptimize(read_idx_pair(kFashionImages, kFashionLabels).n);
  mb_per_s(state, files().idx_bytes);
}
void BM_ReadIdxPlain(benchmark::State& state) {
  for (auto _ : state) benchmark::DoNotOptimize(read_idx_pair(files().images, files().labels).n);
  mb_per_s(state, files().idx_bytes);
}
void BM_ReadCifarPlain(benchmark::State& state) {
  for (auto _ : state) benchmark::DoNotOptimize(read_cifar({files().cifar}, 1, 0, 10).n);
  mb_per_s(state, files().cifar_bytes);
}
void BM_ReadCifarGzip(benchmark::State& state) {
  for (auto _ : state) benchmark::DoNotOptimize(read_cifar({files().cifar_gz}, 1, 0, 10).n);
  mb_per_s(state, files().cifar_bytes);
}
void BM_ReadCsvGzipDigits(benchmark::State& state) {
  CsvFormat f;
  f.shape = {1, 8, 8};
  f.scale = 16;
  for (auto _ : state) benchmark::DoNotOptimize(read_csv({files().digits}, f).n);
  mb_per_s(state, files().digits_bytes);
}
void BM_ReadCsvPlainLetters(benchmark::State& state) {
  CsvFormat f;
  f.label_column = 0;
  f.label_format = LabelFormat::letter;
  f.scale = 15;
  for (auto _ : state) benchmark::DoNotOptimize(read_csv({files().letters}, f).n);
  mb_per_s(state, files().letters_bytes);
}

// 10,000 Fashion-MNIST images on the device, and the index list of them.
struct Images {
  RawImages raw = read_idx_pair(kFashionImages, kFashionLabels);
  data::BaseBytes base = data::to_device(raw.pixels, 784);
  std::vector<int64_t> which;
  Images() {
    for (int64_t i = 0; i < 10000; ++i) which.push_back(i * 6);
  }
};
// Views must go before Kokkos is finalised: main deletes this inside the ScopeGuard.
Images* g_images = nullptr;
Images& images() {
  if (!g_images) g_images = new Images;
  return *g_images;
}

data::Images loaded(int64_t c = 1, int64_t side = 28) {
  data::Images x("bench_x", images().which.size(), c, side, side);
  data::to_float(images().base, images().which, {1, 28, 28}, data::Fit::pad, x);
  return x;
}

size_t bytes_of(const data::Images& x) { return x.size() * sizeof(float); }

void BM_ToFloat(benchmark::State& state) {
  data::Images x("bench_x", images().which.size(), 1, 28, 28);
  for (auto _ : state) {
    data::to_float(images().base, images().which, x);
    Kokkos::fence();
  }
  mb_per_s(state, bytes_of(x));
}
void BM_FitPad28To32(benchmark::State& state) {
  data::Images x("bench_x", images().which.size(), 1, 32, 32);
  for (auto _ : state) {
    data::to_float(images().base, images().which, {1, 28, 28}, data::Fit::pad, x);
    Kokkos::fence();
  }
  mb_per_s(state, bytes_of(x));
}
void BM_FitResize28To32(benchmark::State& state) {
  data::Images x("bench_x", images().which.size(), 1, 32, 32);
  for (auto _ : state) {
    data::to_float(images().base, images().which, {1, 28, 28}, data::Fit::resize, x);
    Kokkos::fence();
  }
  mb_per_s(state, bytes_of(x));
}
void BM_FitReplicate1To3Channels(benchmark::State& state) {
  data::Images x("bench_x", images().which.size(), 3, 28, 28);
  for (auto _ : state) {
    data::to_float(images().base, images().which, {1, 28, 28}, data::Fit::pad, x);
    Kokkos::fence();
  }
  mb_per_s(state, bytes_of(x));
}
void BM_Invert(benchmark::State& state) {
  data::Images x = loaded();
  for (auto _ : state) {
    data::invert(x);
    Kokkos::fence();
  }
  mb_per_s(state, bytes_of(x));
}
void BM_Blur(benchmark::State& state) {
  data::Images x = loaded();
  const double sigma = static_cast<double>(state.range(0)) / 2.0;
  for (auto _ : state) {
    data::blur(x, sigma);
    Kokkos::fence();
  }
  mb_per_s(state, bytes_of(x));
}
void BM_Noise(benchmark::State& state) {
  data::Images x = loaded();
  for (auto _ : state) {
    data::add_noise(x, images().which, 0.1, 7);
    Kokkos::fence();
  }
  mb_per_s(state, bytes_of(x));
}
void BM_Normalise(benchmark::State& state) {
  data::Images x = loaded();
  for (auto _ : state) {
    data::normalise(x, 0.286, 0.353);
    Kokkos::fence();
  }
  mb_per_s(state, bytes_of(x));
}

}  // namespace

BENCHMARK(BM_ReadIdxGzip)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_ReadIdxPlain)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_ReadCifarPlain)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_ReadCifarGzip)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_ReadCsvGzipDigits)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_ReadCsvPlainLetters)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_ToFloat)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_FitPad28To32)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_FitResize28To32)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_FitReplicate1To3Channels)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_Invert)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_Blur)->Arg(2)->Arg(4)->ArgName("2sigma")->Unit(benchmark::kMillisecond);
BENCHMARK(BM_Noise)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_Normalise)->Unit(benchmark::kMillisecond);

int main(int argc, char** argv) {
  Kokkos::ScopeGuard kokkos(argc, argv);
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  delete g_images;
  return 0;
}
