// Data module on real bytes: IDX reading (Fashion-MNIST, the cached MNIST digits, small
// hand-made bad files), the transform kernels, and tasks built from a small job.
#include <gtest/gtest.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "../../src/data/transforms.hpp"
#include "taskreach/data.hpp"

namespace fs = std::filesystem;
using namespace taskreach;

namespace {

const std::string kFashion = "/usr/share/datasets/fashion-mnist/";

std::string data_dir() {
  const char* e = std::getenv("TASKREACH_DATA");
  if (e && *e) return e;
  const char* home = std::getenv("HOME");
  return std::string(home ? home : "") + "/.cache/taskreach/data";
}
std::string mnist_images() { return data_dir() + "/mnist/train-images-idx3-ubyte.gz"; }
std::string mnist_labels() { return data_dir() + "/mnist/train-labels-idx1-ubyte.gz"; }
std::string fashion(const std::string& split, const std::string& what) {
  return kFashion + split + "-" + what + "-ubyte.gz";
}

// A scratch directory per test, removed afterwards.
struct TempDir {
  fs::path path;
  TempDir() {
    static int counter = 0;
    path = fs::temp_directory_path() /
           ("taskreach_test_data_" + std::to_string(::getpid()) + "_" + std::to_string(counter++));
    fs::create_directories(path);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
  std::string operator/(const std::string& name) const { return (path / name).string(); }
};

std::vector<uint8_t> idx_bytes(uint32_t magic, const std::vector<uint32_t>& dims,
                               const std::vector<uint8_t>& payload) {
  std::vector<uint8_t> b;
  auto be32 = [&b](uint32_t v) {
    for (int s = 24; s >= 0; s -= 8) b.push_back(static_cast<uint8_t>(v >> s));
  };
  be32(magic);
  for (uint32_t d : dims) be32(d);
  b.insert(b.end(), payload.begin(), payload.end());
  return b;
}

void write_plain(const std::string& path, const std::vector<uint8_t>& b) {
  std::ofstream f(path, std::ios::binary);
  f.write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
}

void write_gz(const std::string& path, const std::vector<uint8_t>& b) {
  gzFile f = gzopen(path.c_str(), "wb");
  ASSERT_NE(f, nullptr);
  ASSERT_EQ(gzwrite(f, b.data(), static_cast<unsigned>(b.size())), static_cast<int>(b.size()));
  gzclose(f);
}

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

std::vector<uint8_t> read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::vector<uint8_t>(std::istreambuf_iterator<char>(f), {});
}

// A tiny valid IDX pair of n h×w images whose labels are `labels`.
void write_pair(const std::string& images, const std::string& labels_path, const std::vector<uint8_t>& labels,
                uint32_t h = 5, uint32_t w = 5) {
  const uint32_t n = static_cast<uint32_t>(labels.size());
  std::vector<uint8_t> px(size_t{n} * h * w);
  for (size_t i = 0; i < px.size(); ++i) px[i] = static_cast<uint8_t>(i * 37 % 256);
  write_plain(images, idx_bytes(0x803, {n, h, w}, px));
  write_plain(labels_path, idx_bytes(0x801, {n}, labels));
}

// Runs f, expects an InputError, returns its message.
template <class F>
std::string input_error(F&& f) {
  try {
    f();
  } catch (const InputError& e) {
    return e.what();
  } catch (const std::exception& e) {
    ADD_FAILURE() << "expected InputError, got another exception: " << e.what();
    return {};
  }
  ADD_FAILURE() << "expected InputError, nothing was thrown";
  return {};
}

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

data::Images upload(const std::vector<float>& h, int64_t n, int64_t c, int64_t hgt, int64_t w) {
  data::Images x("test_images", n, c, hgt, w);
  auto m = Kokkos::create_mirror_view(x);
  std::copy(h.begin(), h.end(), m.data());
  Kokkos::deep_copy(x, m);
  return x;
}

std::vector<float> host(const data::Images& x) {
  std::vector<float> out(x.size());
  data::copy_back(x, data::HostImages(out.data(), x.extent(0), x.extent(1), x.extent(2), x.extent(3)));
  return out;
}

// Population mean and std of pixel/255, in double, independently of the library.
std::pair<double, double> stats_of(const std::vector<uint8_t>& px) {
  double s = 0, ss = 0;
  for (uint8_t p : px) {
    s += p / 255.0;
    ss += (p / 255.0) * (p / 255.0);
  }
  const double n = static_cast<double>(px.size()), mean = s / n;
  return {mean, std::sqrt(ss / n - mean * mean)};
}

}  // namespace

// ---------------------------------------------------------------------------- IDX reader

TEST(Idx, FashionTrainHas60000BalancedImages) {
  const RawImages r = read_idx_pair(fashion("train", "images-idx3"), fashion("train", "labels-idx1"));
  EXPECT_EQ(r.n, 60000);
  EXPECT_EQ(r.channels, 1);
  EXPECT_EQ(r.height, 28);
  EXPECT_EQ(r.width, 28);
  EXPECT_EQ(r.pixels.size(), size_t{60000} * 28 * 28);
  ASSERT_EQ(r.labels.size(), 60000u);
  std::map<int64_t, int> count;
  for (int64_t l : r.labels) ++count[l];
  ASSERT_EQ(count.size(), 10u);
  for (const auto& [label, c] : count) {
    EXPECT_GE(label, 0);
    EXPECT_LE(label, 9);
    EXPECT_EQ(c, 6000) << "class " << label;
  }
}

TEST(Idx, FashionTestHas10000Images) {
  const RawImages r = read_idx_pair(fashion("t10k", "images-idx3"), fashion("t10k", "labels-idx1"));
  EXPECT_EQ(r.n, 10000);
  EXPECT_EQ(r.height, 28);
  EXPECT_EQ(r.width, 28);
  EXPECT_EQ(r.labels.size(), 10000u);
}

TEST(Idx, MnistDigitsHas10000SortedByDigit) {
  const RawImages r = read_idx_pair(mnist_images(), mnist_labels());
  EXPECT_EQ(r.n, 10000);
  EXPECT_EQ(r.height, 28);
  EXPECT_EQ(r.width, 28);
  EXPECT_TRUE(std::is_sorted(r.labels.begin(), r.labels.end()));
  EXPECT_EQ(r.labels.front(), 0);
  EXPECT_EQ(r.labels.back(), 9);
}

TEST(Idx, PlainAndGzipReadTheSameBytes) {
  TempDir tmp;
  write_plain(tmp / "images", gunzip(mnist_images()));
  write_plain(tmp / "labels", gunzip(mnist_labels()));
  const RawImages gz = read_idx_pair(mnist_images(), mnist_labels());
  const RawImages plain = read_idx_pair(tmp / "images", tmp / "labels");
  EXPECT_EQ(plain.n, gz.n);
  EXPECT_EQ(plain.height, gz.height);
  EXPECT_EQ(plain.width, gz.width);
  EXPECT_TRUE(plain.pixels == gz.pixels);
  EXPECT_TRUE(plain.labels == gz.labels);
  // The header (16 bytes) plus n·28·28 pixels is the whole decompressed file.
  EXPECT_EQ(read_file(tmp / "images").size(), 16 + gz.pixels.size());
}

TEST(Idx, BadMagicNamesTheFileAndTheExpectedMagic) {
  TempDir tmp;
  write_pair(tmp / "i", tmp / "l", {0, 1, 2});
  // A label file where images are expected, and a float (type 0x0d) image file.
  const std::string m1 = input_error([&] { read_idx_pair(tmp / "l", tmp / "l"); });
  EXPECT_EQ(m1, (tmp / "l") + ": bad IDX magic 0x00000801, expected 0x00000803 (ubyte images, rank 3)");
  write_plain(tmp / "f", idx_bytes(0xd03, {1, 1, 1}, {0, 0, 0, 0}));
  const std::string m2 = input_error([&] { read_idx_pair(tmp / "f", tmp / "l"); });
  EXPECT_TRUE(contains(m2, (tmp / "f") + ": bad IDX magic 0x00000d03")) << m2;
  // The label file is checked too.
  const std::string m3 = input_error([&] { read_idx_pair(tmp / "i", tmp / "i"); });
  EXPECT_EQ(m3, (tmp / "i") + ": bad IDX magic 0x00000803, expected 0x00000801 (ubyte labels, rank 1)");
}

TEST(Idx, TruncatedFilesSayHowMuchWasThere) {
  TempDir tmp;
  write_pair(tmp / "i", tmp / "l", std::vector<uint8_t>(10, 0));
  write_plain(tmp / "short", idx_bytes(0x803, {10, 28, 28}, std::vector<uint8_t>(1000, 7)));
  EXPECT_EQ(input_error([&] { read_idx_pair(tmp / "short", tmp / "l"); }),
            (tmp / "short") + ": truncated: expected 7840 pixel bytes, got 1000");
  // A gzip stream cut in the middle ends the data early in the same way.
  std::vector<uint8_t> gz_whole;
  write_gz(tmp / "whole.gz", idx_bytes(0x803, {10, 28, 28}, std::vector<uint8_t>(7840, 7)));
  gz_whole = read_file(tmp / "whole.gz");
  gz_whole.resize(gz_whole.size() / 2);
  write_plain(tmp / "cut.gz", gz_whole);
  const std::string m = input_error([&] { read_idx_pair(tmp / "cut.gz", tmp / "l"); });
  EXPECT_TRUE(contains(m, (tmp / "cut.gz") + ": ")) << m;
  // An empty file and a header cut short.
  write_plain(tmp / "empty", {});
  EXPECT_TRUE(contains(input_error([&] { read_idx_pair(tmp / "empty", tmp / "l"); }), (tmp / "empty") + ": truncated"));
  write_plain(tmp / "hdr", {0, 0, 8, 3, 0, 0});
  EXPECT_TRUE(contains(input_error([&] { read_idx_pair(tmp / "hdr", tmp / "l"); }), (tmp / "hdr") + ": truncated"));
  // Labels cut short.
  write_plain(tmp / "lshort", idx_bytes(0x801, {10}, {1, 2, 3}));
  EXPECT_EQ(input_error([&] { read_idx_pair(tmp / "i", tmp / "lshort"); }),
            (tmp / "lshort") + ": truncated: expected 10 label bytes, got 3");
}

TEST(Idx, TrailingBytesAreRejected) {
  TempDir tmp;
  write_pair(tmp / "i", tmp / "l", {0, 1});
  auto b = read_file(tmp / "i");
  b.push_back(0);
  write_plain(tmp / "long", b);
  const std::string m = input_error([&] { read_idx_pair(tmp / "long", tmp / "l"); });
  EXPECT_TRUE(contains(m, (tmp / "long") + ": trailing data")) << m;
}

TEST(Idx, CountMismatchNamesBothFiles) {
  TempDir tmp;
  write_pair(tmp / "i", tmp / "l", {0, 1, 2});
  write_plain(tmp / "l2", idx_bytes(0x801, {2}, {0, 1}));
  EXPECT_EQ(input_error([&] { read_idx_pair(tmp / "i", tmp / "l2"); }),
            (tmp / "l2") + ": 2 labels but " + (tmp / "i") + " has 3 images");
}

TEST(Idx, MissingFileSaysCannotOpen) {
  TempDir tmp;
  write_pair(tmp / "i", tmp / "l", {0});
  EXPECT_EQ(input_error([&] { read_idx_pair(tmp / "nope.gz", tmp / "l"); }),
            (tmp / "nope.gz") + ": cannot open: No such file or directory");
  EXPECT_EQ(input_error([&] { read_idx_pair(tmp / "i", tmp / "nope"); }),
            (tmp / "nope") + ": cannot open: No such file or directory");
}

// ---------------------------------------------------------------------------- transforms

TEST(Transforms, InvertTwiceIsIdentity) {
  const RawImages r = read_idx_pair(mnist_images(), mnist_labels());
  const std::vector<int64_t> which{0, 1, 5000, 9999};
  data::Images x("x", which.size(), 1, 28, 28);
  data::to_float(data::to_device(r.pixels, 784), which, x);
  const std::vector<float> before = host(x);
  data::invert(x);
  const std::vector<float> once = host(x);
  data::invert(x);
  const std::vector<float> twice = host(x);
  ASSERT_EQ(before.size(), which.size() * 784);
  // 1 − x is rounded to the 2⁻²⁴ grid of [½, 1], so for x < ½ the round trip is exact only
  // up to that rounding; for x ≥ ½ (and for the 0 background) it is bit-exact.
  for (size_t i = 0; i < before.size(); ++i) {
    const uint8_t p = r.pixels[static_cast<size_t>(which[i / 784]) * 784 + i % 784];
    EXPECT_EQ(before[i], static_cast<float>(p) / 255.0f);
    EXPECT_NEAR(once[i], (255.0 - p) / 255.0, 1e-7);
    if (before[i] >= 0.5f || before[i] == 0.0f) EXPECT_EQ(twice[i], before[i]) << i;
    else EXPECT_LE(std::fabs(twice[i] - before[i]), std::ldexp(1.0f, -24)) << i;
  }
}

TEST(Transforms, ResultsLandInTheHostBuffer) {
  const RawImages r = read_idx_pair(mnist_images(), mnist_labels());
  const std::vector<int64_t> which{9999, 3, 3};
  std::vector<float> buf(3 * 784, -1.0f);
  const data::HostImages out(buf.data(), 3, 1, 28, 28);
  const data::Images x = data::device_view(out);
  data::to_float(data::to_device(r.pixels, 784), which, x);
  data::copy_back(x, out);
  for (size_t i = 0; i < buf.size(); ++i)
    ASSERT_EQ(buf[i], r.pixels[static_cast<size_t>(which[i / 784]) * 784 + i % 784] / 255.0f) << i;
}

TEST(Transforms, GaussianKernelIsNormalisedAndSymmetric) {
  for (double sigma : {0.3, 1.0, 1.5, 2.0}) {
    const auto w = data::gaussian_kernel(sigma);
    const size_t r = static_cast<size_t>(std::ceil(3 * sigma));
    ASSERT_EQ(w.size(), 2 * r + 1);
    double s = 0;
    for (size_t k = 0; k < w.size(); ++k) {
      s += w[k];
      EXPECT_DOUBLE_EQ(w[k], w[w.size() - 1 - k]);
    }
    EXPECT_NEAR(s, 1.0, 1e-12);
    // exp(−1/(2σ²)) between neighbours at the centre.
    EXPECT_NEAR(w[r + 1] / w[r], std::exp(-1.0 / (2 * sigma * sigma)), 1e-12);
  }
}

TEST(Transforms, BlurOfADeltaIsTheGaussianOuterProduct) {
  for (double sigma : {1.0, 2.0}) {
    std::vector<float> h(28 * 28, 0.0f);
    h[14 * 28 + 13] = 1.0f;
    data::Images x = upload(h, 1, 1, 28, 28);
    data::blur(x, sigma);
    const std::vector<float> out = host(x);
    const auto w = data::gaussian_kernel(sigma);
    const int r = static_cast<int>(w.size() / 2);
    double total = 0;
    for (int i = 0; i < 28; ++i)
      for (int j = 0; j < 28; ++j) {
        const int di = i - 14, dj = j - 13;
        const double expect = (std::abs(di) <= r && std::abs(dj) <= r) ? w[di + r] * w[dj + r] : 0.0;
        EXPECT_NEAR(out[i * 28 + j], expect, 1e-6) << "sigma " << sigma << " at " << i << "," << j;
        total += out[i * 28 + j];
      }
    EXPECT_NEAR(total, 1.0, 1e-6);
  }
}

TEST(Transforms, BlurPreservesInteriorSumAndConstants) {
  // Border renormalisation changes the output within r of the edge, which inputs within
  // 2r reach; so a real digit is pasted into a 52×52 canvas with a 12-pixel frame, which
  // keeps its mass out of reach of the edge for r = ceil(3σ) ≤ 6.
  const RawImages r = read_idx_pair(mnist_images(), mnist_labels());
  for (int64_t img : {int64_t{0}, int64_t{4321}, int64_t{9999}}) {
    std::vector<float> canvas(52 * 52, 0.0f);
    double s0 = 0;
    for (int i = 0; i < 28; ++i)
      for (int j = 0; j < 28; ++j) {
        const float v = r.pixels[static_cast<size_t>(img) * 784 + i * 28 + j] / 255.0f;
        canvas[(i + 12) * 52 + j + 12] = v;
        s0 += v;
      }
    for (double sigma : {0.5, 1.0, 2.0}) {
      data::Images x = upload(canvas, 1, 1, 52, 52);
      data::blur(x, sigma);
      double s1 = 0;
      for (float v : host(x)) s1 += v;
      EXPECT_GT(s0, 10.0);
      EXPECT_NEAR(s1, s0, 1e-5 * s0) << "image " << img << " sigma " << sigma;
    }
  }
  // Renormalising at the border keeps a constant image constant (no dark frame).
  data::Images c = upload(std::vector<float>(2 * 28 * 28, 0.75f), 2, 1, 28, 28);
  data::blur(c, 1.5);
  for (float v : host(c)) EXPECT_NEAR(v, 0.75f, 1e-6);
}

TEST(Transforms, PixelStatsAndNormalise) {
  const auto s = data::pixel_stats({0, 255, 0, 255});
  EXPECT_DOUBLE_EQ(s.mean, 0.5);
  EXPECT_DOUBLE_EQ(s.std, 0.5);
  EXPECT_DOUBLE_EQ(data::pixel_stats({7, 7, 7}).std, 1.0);  // constant: left unscaled
  data::Images x = upload({0.0f, 1.0f, 0.5f, 0.25f}, 1, 1, 2, 2);
  data::normalise(x, 0.5, 0.5);
  const auto out = host(x);
  EXPECT_FLOAT_EQ(out[0], -1.0f);
  EXPECT_FLOAT_EQ(out[1], 1.0f);
  EXPECT_FLOAT_EQ(out[2], 0.0f);
  EXPECT_FLOAT_EQ(out[3], -0.5f);
}

// ---------------------------------------------------------------------------- tasks

namespace {

SourceConfig mnist_source() {
  SourceConfig s;
  s.name = "mnist";
  s.format = "idx";
  s.train_images = mnist_images();
  s.train_labels = mnist_labels();
  return s;
}
SourceConfig fashion_source() {
  SourceConfig s;
  s.name = "fashion";
  s.format = "idx";
  s.train_images = fashion("train", "images-idx3");
  s.train_labels = fashion("train", "labels-idx1");
  return s;
}
TransformConfig tr(const std::string& type) {
  TransformConfig t;
  t.type = type;
  return t;
}
TaskConfig task(const std::string& name, const std::string& source, std::vector<TransformConfig> ts = {}) {
  return TaskConfig{name, source, std::move(ts)};
}

JobConfig small_job() {
  JobConfig job;
  job.path = "/jobs/small.toml";
  job.seed = 7;
  job.n_per_task = 200;
  job.sources = {mnist_source(), fashion_source()};
  TransformConfig subset = tr("class_subset");
  subset.classes = {0, 1, 2};
  TransformConfig sub50 = tr("subsample");
  sub50.n = 50;
  job.tasks = {task("mnist", "mnist"), task("fashion", "fashion"), task("mnist012", "mnist", {subset}),
               task("mnist_inv", "mnist", {tr("invert")}), task("mnist50", "mnist", {sub50})};
  return job;
}

class SmallJob : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    set_ = new TaskSet(build_tasks(small_job()));
    mnist_ = new RawImages(read_idx_pair(mnist_images(), mnist_labels()));
  }
  static void TearDownTestSuite() {
    delete set_;
    delete mnist_;
  }
  static const Task& t(size_t i) { return set_->tasks.at(i); }
  static TaskSet* set_;
  static RawImages* mnist_;
};
TaskSet* SmallJob::set_ = nullptr;
RawImages* SmallJob::mnist_ = nullptr;

std::vector<int64_t> range(int64_t lo, int64_t hi) {
  std::vector<int64_t> v;
  for (int64_t i = lo; i < hi; ++i) v.push_back(i);
  return v;
}

std::map<int64_t, int> per_row(const Task& task) {
  std::map<int64_t, int> c;
  for (int64_t y : task.y) ++c[y];
  return c;
}

// Position of key k in task, or -1.
int64_t find_key(const Task& task, const SampleKey& k) {
  auto it = std::lower_bound(task.keys.begin(), task.keys.end(), k);
  return it != task.keys.end() && *it == k ? it - task.keys.begin() : -1;
}

}  // namespace

TEST_F(SmallJob, ShapesRowsAndSizes) {
  EXPECT_EQ(set_->k_tot, 20);
  EXPECT_EQ(set_->channels, 1);
  EXPECT_EQ(set_->height, 28);
  EXPECT_EQ(set_->width, 28);
  ASSERT_EQ(set_->tasks.size(), 5u);
  const std::vector<std::string> names{"mnist", "fashion", "mnist012", "mnist_inv", "mnist50"};
  const std::vector<int64_t> sizes{200, 200, 200, 200, 50};
  for (size_t i = 0; i < 5; ++i) {
    EXPECT_EQ(t(i).name, names[i]);
    EXPECT_EQ(t(i).size(), sizes[i]) << names[i];
    EXPECT_EQ(t(i).dim, 784);
    EXPECT_EQ(t(i).x.size(), static_cast<size_t>(sizes[i] * 784));
    EXPECT_EQ(t(i).keys.size(), t(i).y.size());
    EXPECT_TRUE(std::is_sorted(t(i).keys.begin(), t(i).keys.end()));
    EXPECT_TRUE(std::adjacent_find(t(i).keys.begin(), t(i).keys.end()) == t(i).keys.end());
    for (size_t j = 0; j < t(i).keys.size(); ++j) EXPECT_EQ(t(i).keys[j].label, t(i).y[j]);
  }
  // MNIST owns rows 0..9, Fashion rows 10..19; class_subset keeps the whole block active.
  for (size_t i : {0, 2, 3, 4}) {
    EXPECT_EQ(t(i).active_rows, range(0, 10)) << t(i).name;
    for (const auto& k : t(i).keys) EXPECT_EQ(k.source, 0u);
    for (int64_t y : t(i).y) EXPECT_TRUE(y >= 0 && y < 10);
  }
  EXPECT_EQ(t(1).active_rows, range(10, 20));
  for (int64_t y : t(1).y) EXPECT_TRUE(y >= 10 && y < 20);
  for (const auto& k : t(1).keys) EXPECT_EQ(k.source, 1u);
  for (int64_t y : t(2).y) EXPECT_TRUE(y >= 0 && y <= 2);
  // Labels are the source's: the MNIST digits file is sorted by digit.
  for (const auto& k : t(0).keys) EXPECT_EQ(k.label, mnist_->labels[static_cast<size_t>(k.index)]);
}

TEST_F(SmallJob, CapIsStratified) {
  // Fashion: 6000 per class, so 200 is exactly 20 per class.
  const auto f = per_row(t(1));
  ASSERT_EQ(f.size(), 10u);
  for (const auto& [row, c] : f) EXPECT_EQ(c, 20) << "row " << row;
  // MNIST digits are unbalanced (863..1127 per class): each class gets its share ±1.
  std::map<int64_t, int> m;
  for (int64_t l : mnist_->labels) ++m[l];
  const auto got = per_row(t(0));
  for (const auto& [label, count] : m) {
    const double share = 200.0 * count / 10000.0;
    EXPECT_LE(std::fabs(got.count(label) ? got.at(label) - share : share), 1.0) << "digit " << label;
  }
  // class_subset {0,1,2}: 200 split in proportion to 1001 : 1127 : 991.
  const auto s = per_row(t(2));
  const double tot = m[0] + m[1] + m[2];
  for (int64_t l : {0, 1, 2}) EXPECT_LE(std::fabs(s.at(l) - 200.0 * m[l] / tot), 1.0) << "digit " << l;
}

TEST_F(SmallJob, SubsamplesNest) {
  EXPECT_TRUE(std::includes(t(0).keys.begin(), t(0).keys.end(), t(4).keys.begin(), t(4).keys.end()));
  // A job with a smaller cap picks a subset of the same samples, with the same bytes.
  JobConfig job = small_job();
  job.n_per_task = 120;
  job.tasks = {job.tasks[2], job.tasks[0]};
  const TaskSet small = build_tasks(job);
  for (size_t a = 0; a < 2; ++a) {
    const Task& sm = small.tasks[a];
    const Task& big = t(a == 0 ? 2 : 0);
    EXPECT_EQ(sm.size(), 120);
    EXPECT_TRUE(std::includes(big.keys.begin(), big.keys.end(), sm.keys.begin(), sm.keys.end())) << sm.name;
    for (size_t j = 0; j < sm.keys.size(); ++j) {
      const int64_t at = find_key(big, sm.keys[j]);
      ASSERT_GE(at, 0);
      EXPECT_EQ(std::memcmp(sm.x.data() + j * 784, big.x.data() + at * 784, 784 * sizeof(float)), 0);
    }
  }
  // The seed changes the draw.
  job.seed = 8;
  EXPECT_NE(build_tasks(job).tasks[1].identity, small.tasks[1].identity);
}

TEST_F(SmallJob, UniteByKeys) {
  const Task aa = unite(t(0), t(0), "aa");
  EXPECT_EQ(aa.name, "aa");
  EXPECT_EQ(aa.identity, t(0).identity);
  EXPECT_TRUE(aa.keys == t(0).keys);
  EXPECT_TRUE(aa.x == t(0).x);
  EXPECT_TRUE(aa.y == t(0).y);
  const Task sub = unite(t(4), t(0), "sub");
  EXPECT_EQ(sub.identity, t(0).identity);
  EXPECT_TRUE(sub.keys == t(0).keys);
  EXPECT_TRUE(sub.x == t(0).x);
  EXPECT_TRUE(sub.y == t(0).y);
  EXPECT_EQ(sub.active_rows, range(0, 10));

  const Task mf = unite(t(0), t(1), "mf");
  EXPECT_EQ(mf.size(), 400);
  EXPECT_EQ(mf.x.size(), 400u * 784);
  EXPECT_EQ(mf.active_rows, range(0, 20));
  EXPECT_TRUE(std::is_sorted(mf.keys.begin(), mf.keys.end()));
  EXPECT_NE(mf.identity, t(0).identity);
  EXPECT_NE(mf.identity, t(1).identity);
  EXPECT_EQ(unite(t(1), t(0), "fm").identity, mf.identity);
  // Features follow their keys through the merge.
  for (size_t j = 0; j < mf.keys.size(); ++j) {
    const Task& from = mf.keys[j].source == 0 ? t(0) : t(1);
    const int64_t at = find_key(from, mf.keys[j]);
    ASSERT_GE(at, 0);
    EXPECT_EQ(std::memcmp(mf.x.data() + j * 784, from.x.data() + at * 784, 784 * sizeof(float)), 0);
  }
  // Distinct task identities.
  std::set<uint64_t> ids;
  for (const auto& task : set_->tasks) ids.insert(task.identity);
  EXPECT_EQ(ids.size(), 5u);
}

TEST_F(SmallJob, InvertedInputsAreOtherKeys) {
  const Task& m = t(0);
  const Task& inv = t(3);
  ASSERT_EQ(inv.size(), m.size());
  const Task both = unite(m, inv, "both");
  EXPECT_EQ(both.size(), 400);  // no shared keys
  EXPECT_EQ(count_conflicts(both), 0);
  for (size_t j = 0; j < m.keys.size(); ++j) {
    // Same base samples (selection ignores inputs), different input hash.
    EXPECT_EQ(inv.keys[j].index, m.keys[j].index);
    EXPECT_EQ(inv.keys[j].label, m.keys[j].label);
    EXPECT_NE(inv.keys[j].input_hash, m.keys[j].input_hash);
  }
  // Un-normalised, the two add up to 1 pixel by pixel.
  const auto [mean, sd] = stats_of(mnist_->pixels);
  for (size_t k = 0; k < m.x.size(); k += 7)
    EXPECT_NEAR((m.x[k] * sd + mean) + (inv.x[k] * sd + mean), 1.0, 1e-5) << k;
}

TEST_F(SmallJob, Conflicts) {
  for (const auto& task : set_->tasks) EXPECT_EQ(count_conflicts(task), 0) << task.name;
  EXPECT_EQ(count_conflicts(unite(t(0), t(2), "u")), 0);
  Task h;
  h.name = "hand";
  h.dim = 1;
  h.keys = {{0, 5, 99, 3}, {0, 5, 99, 7}, {0, 6, 99, 3}, {0, 5, 98, 4}};
  h.y = {3, 7, 3, 4};
  h.x = {0, 0, 0, 0};
  EXPECT_EQ(count_conflicts(h), 1);
  h.keys.push_back({0, 5, 99, 8});  // a third label on the same input is still one input
  EXPECT_EQ(count_conflicts(h), 1);
  h.keys.push_back({1, 6, 99, 4});
  h.keys.push_back({1, 6, 99, 5});
  EXPECT_EQ(count_conflicts(h), 2);
}

TEST_F(SmallJob, NormalisedWithWholeSourceStatistics) {
  const auto [mean, sd] = stats_of(mnist_->pixels);
  for (size_t j = 0; j < t(0).keys.size(); ++j)
    for (size_t p = 0; p < 784; p += 13) {
      const double raw = mnist_->pixels[static_cast<size_t>(t(0).keys[j].index) * 784 + p] / 255.0;
      EXPECT_NEAR(t(0).x[j * 784 + p], (raw - mean) / sd, 1e-5);
    }
  // Fashion-MNIST's train split has the well-known mean 0.2860 and std 0.3530: the
  // background (pixel 0) maps to −0.2860/0.3530 ≈ −0.810.
  const float bg = t(1).x[0];  // corner pixels are background
  EXPECT_NEAR(bg, -0.2860 / 0.3530, 2e-3);
  // Shared samples have the same bytes in every task (mnist vs mnist012 and mnist50).
  int shared = 0;
  for (size_t other : {2, 4})
    for (size_t j = 0; j < t(other).keys.size(); ++j) {
      const int64_t at = find_key(t(0), t(other).keys[j]);
      if (at < 0) continue;
      ++shared;
      EXPECT_EQ(std::memcmp(t(other).x.data() + j * 784, t(0).x.data() + at * 784, 784 * sizeof(float)), 0);
    }
  EXPECT_GE(shared, 50 + 50);  // mnist50 ⊂ mnist, and ~20 per digit of 0,1,2
}

// ---------------------------------------------------------------------------- label spaces

TEST(Tasks, LabelSpacesShareBlocksInOrderOfAppearance) {
  TempDir tmp;
  write_pair(tmp / "a.i", tmp / "a.l", {0, 1, 2, 1});
  write_pair(tmp / "b.i", tmp / "b.l", {0, 4, 3});
  write_pair(tmp / "c.i", tmp / "c.l", {0, 1});
  JobConfig job;
  job.path = "j.toml";
  job.sources = {SourceConfig{"c", "idx", tmp / "c.i", tmp / "c.l", "", "", ""},
                 SourceConfig{"a", "idx", tmp / "a.i", tmp / "a.l", "", "", "digits"},
                 SourceConfig{"b", "idx", tmp / "b.i", tmp / "b.l", "", "", "digits"}};
  job.tasks = {task("ta", "a"), task("tb", "b"), task("tc", "c")};
  const TaskSet s = build_tasks(job);
  EXPECT_EQ(s.k_tot, 2 + 5);  // c: rows 0..1; digits (max label 4): rows 2..6
  EXPECT_EQ(s.channels * s.height * s.width, 25);
  EXPECT_EQ(s.tasks[0].active_rows, range(2, 7));
  EXPECT_EQ(s.tasks[1].active_rows, range(2, 7));
  EXPECT_EQ(s.tasks[2].active_rows, range(0, 2));
  EXPECT_EQ(s.tasks[0].y, (std::vector<int64_t>{2, 3, 4, 3}));
  EXPECT_EQ(s.tasks[1].y, (std::vector<int64_t>{2, 6, 5}));
  EXPECT_EQ(s.tasks[2].y, (std::vector<int64_t>{0, 1}));
  // Same label space, different sources: a and b share rows but not inputs.
  EXPECT_EQ(count_conflicts(unite(s.tasks[0], s.tasks[1], "ab")), 0);
}

// ---------------------------------------------------------------------------- job errors

TEST(Tasks, ErrorsNameTheJobFileAndField) {
  JobConfig base;
  base.path = "/jobs/bad.toml";
  base.n_per_task = 10;
  base.sources = {mnist_source()};
  base.tasks = {task("m", "mnist")};

  JobConfig j = base;
  SourceConfig csv = mnist_source();
  csv.name = "other";
  csv.format = "csv";
  j.sources.push_back(csv);
  EXPECT_EQ(input_error([&] { build_tasks(j); }),
            "/jobs/bad.toml: sources[1].format: unknown format 'csv', expected one of: idx");

  j = base;
  j.tasks[0].source = "x";
  EXPECT_EQ(input_error([&] { build_tasks(j); }), "/jobs/bad.toml: tasks[0].source: unknown source 'x'");

  j = base;
  TransformConfig c = tr("class_subset");
  c.classes = {1, 12};
  j.tasks[0].transforms = {tr("invert"), c};
  EXPECT_EQ(input_error([&] { build_tasks(j); }),
            "/jobs/bad.toml: tasks[0].transforms[1].classes: class 12 not in source 'mnist' (labels 0..9)");

  for (double sigma : {0.0, -1.0}) {
    j = base;
    TransformConfig b = tr("blur");
    b.sigma = sigma;
    j.tasks[0].transforms = {tr("invert"), b};
    const std::string m = input_error([&] { build_tasks(j); });
    EXPECT_TRUE(contains(m, "/jobs/bad.toml: tasks[0].transforms[1].sigma: task 'm'")) << m;
  }

  j = base;
  j.tasks[0].transforms = {tr("rotate")};
  EXPECT_TRUE(contains(input_error([&] { build_tasks(j); }),
                       "/jobs/bad.toml: tasks[0].transforms[0].type: unknown transform 'rotate'"));

  j = base;
  j.tasks[0].transforms = {tr("subsample")};  // n = 0
  EXPECT_TRUE(contains(input_error([&] { build_tasks(j); }), "/jobs/bad.toml: tasks[0].transforms[0].n: "));

  // Source files are named by the reader's own message.
  j = base;
  j.sources[0].train_labels = "/nonexistent/labels.gz";
  EXPECT_EQ(input_error([&] { build_tasks(j); }), "/nonexistent/labels.gz: cannot open: No such file or directory");

  TempDir tmp;
  // A source of another shape.
  write_pair(tmp / "s.i", tmp / "s.l", {0, 1}, 5, 5);
  j = base;
  j.sources.push_back(SourceConfig{"small", "idx", tmp / "s.i", tmp / "s.l", "", "", ""});
  EXPECT_EQ(input_error([&] { build_tasks(j); }),
            "/jobs/bad.toml: sources[1]: source 'small' has 1x5x5 images, expected 1x28x28 like source 'mnist' "
            "(all sources must share one shape)");

  // A class inside the label range with no samples leaves the task empty.
  write_pair(tmp / "g.i", tmp / "g.l", {0, 2, 2});
  j = base;
  j.sources = {SourceConfig{"gap", "idx", tmp / "g.i", tmp / "g.l", "", "", ""}};
  TransformConfig one = tr("class_subset");
  one.classes = {1};
  j.tasks = {task("empty", "gap", {one})};
  EXPECT_EQ(input_error([&] { build_tasks(j); }),
            "/jobs/bad.toml: tasks[0]: task 'empty' has no samples after its transforms");
}

// ---------------------------------------------------------------------------- timing

TEST(Tasks, FashionMnist60kLoadsAndBuildsQuickly) {
  using clock = std::chrono::steady_clock;
  auto secs = [](clock::time_point a, clock::time_point b) { return std::chrono::duration<double>(b - a).count(); };
  const auto t0 = clock::now();
  const RawImages r = read_idx_pair(fashion("train", "images-idx3"), fashion("train", "labels-idx1"));
  const auto t1 = clock::now();
  EXPECT_EQ(r.n, 60000);

  JobConfig job;
  job.path = "fashion.toml";
  job.sources = {fashion_source()};
  TransformConfig blur = tr("blur");
  blur.sigma = 1.0;
  TransformConfig sub = tr("subsample");
  sub.n = 5000;
  TransformConfig shirts = tr("class_subset");
  shirts.classes = {0, 6};
  job.tasks = {task("all", "fashion"), task("inverted", "fashion", {tr("invert")}),
               task("blurred", "fashion", {blur}), task("sub", "fashion", {shirts, sub})};
  // Typical: every task capped, so the time is mostly reading the source.
  job.n_per_task = 2000;
  const auto t2 = clock::now();
  const TaskSet capped = build_tasks(job);
  const auto t3 = clock::now();
  // Worst case: three tasks of all 60k images (188 MB of features each).
  job.n_per_task = 0;
  const TaskSet s = build_tasks(job);
  const auto t4 = clock::now();
  std::cout << "[ timing ] Fashion-MNIST train (60k): read_idx_pair " << secs(t0, t1)
            << " s; build_tasks, 4 tasks capped at 2000: " << secs(t2, t3)
            << " s; uncapped (all, inverted, blur sigma=1: 60k each; 5k subset): " << secs(t3, t4) << " s\n";
  RecordProperty("read_s", std::to_string(secs(t0, t1)));
  RecordProperty("build_capped_s", std::to_string(secs(t2, t3)));
  RecordProperty("build_full_s", std::to_string(secs(t3, t4)));

  for (const auto& task : capped.tasks) EXPECT_EQ(task.size(), 2000) << task.name;
  ASSERT_EQ(s.tasks.size(), 4u);
  EXPECT_EQ(s.tasks[0].size(), 60000);
  EXPECT_EQ(s.tasks[1].size(), 60000);
  EXPECT_EQ(s.tasks[2].size(), 60000);
  EXPECT_EQ(s.tasks[3].size(), 5000);
  const auto rows = per_row(s.tasks[3]);
  EXPECT_EQ(rows.at(0), 2500);
  EXPECT_EQ(rows.at(6), 2500);
  // The capped tasks are subsets of the uncapped ones with the same bytes.
  for (size_t t = 0; t < 4; ++t) {
    const Task& c = capped.tasks[t];
    for (size_t j = 0; j < c.keys.size(); j += 97) {
      const int64_t at = find_key(s.tasks[t], c.keys[j]);
      ASSERT_GE(at, 0) << c.name;
      EXPECT_EQ(std::memcmp(c.x.data() + j * 784, s.tasks[t].x.data() + at * 784, 784 * sizeof(float)), 0);
    }
  }
  // Normalised with the source's own statistics: over all pixels of all train images,
  // untransformed, mean 0 and spread 1.
  double sum = 0, sq = 0;
  for (float v : s.tasks[0].x) {
    sum += v;
    sq += double{v} * v;
  }
  const double n = static_cast<double>(s.tasks[0].x.size());
  EXPECT_NEAR(sum / n, 0.0, 1e-4);
  EXPECT_NEAR(sq / n, 1.0, 1e-4);
  // Generous bounds (shared CI machines); the point is the printed timing.
  EXPECT_LT(secs(t0, t1) + secs(t2, t3), 10.0);
  EXPECT_LT(secs(t3, t4), 30.0);
}
