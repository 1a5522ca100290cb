// IDX image/label files (LeCun's MNIST format, also KMNIST and EMNIST), plain or gzip.
#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>

#include "gzfile.hpp"
#include "taskreach/data.hpp"

namespace taskreach {
namespace data {

GzFile::GzFile(const std::string& path) : path_(path) {
  errno = 0;
  f_ = gzopen(path.c_str(), "rb");
  // gzopen leaves errno at 0 only when zlib itself could not allocate its state.
  if (!f_) fail(std::string("cannot open: ") + (errno ? std::strerror(errno) : "out of memory"));
  gzbuffer(f_, 1u << 17);
}

GzFile::~GzFile() {
  if (f_) gzclose(f_);
}

void GzFile::fail(const std::string& what) const { throw InputError(path_ + ": " + what); }

size_t GzFile::read(uint8_t* out, size_t n) {
  size_t got = 0;
  while (got < n) {
    const unsigned chunk = static_cast<unsigned>(std::min<size_t>(n - got, size_t{1} << 30));
    const int k = gzread(f_, out + got, chunk);
    if (k < 0) {
      int err = 0;
      const char* msg = gzerror(f_, &err);
      // Z_BUF_ERROR: the gzip stream ended in the middle (a cut file); Z_DATA_ERROR: a bad
      // block or check sum. Both are damaged files, not I/O failures.
      if (err == Z_BUF_ERROR) fail(std::string("truncated gzip stream (zlib: ") + msg + ")");
      if (err == Z_DATA_ERROR) fail(std::string("corrupt gzip data (zlib: ") + msg + ")");
      fail(std::string("read error: ") + msg);
    }
    if (k == 0) {
      // zlib ends a gzip stream cut short like a file still being written: a clean end of
      // data, with Z_BUF_ERROR left behind.
      int err = Z_OK;
      const char* msg = gzerror(f_, &err);
      if (err == Z_BUF_ERROR) fail(std::string("truncated gzip stream (zlib: ") + msg + ")");
      break;
    }
    got += static_cast<size_t>(k);
  }
  return got;
}

std::vector<uint8_t> GzFile::read_all() {
  std::vector<uint8_t> out;
  size_t got = 0;
  // From 64 KiB (small files: CSV tables, fuzz inputs) doubling to 64 MiB chunks.
  for (size_t want = size_t{1} << 16;; want = std::min<size_t>(want * 2, size_t{1} << 26)) {
    out.resize(got + want);
    const size_t k = read(out.data() + got, want);
    got += k;
    if (k < want) break;
  }
  out.resize(got);
  return out;
}

}  // namespace data

namespace {

constexpr uint32_t kImagesMagic = 0x00000803;  // type 0x08 (ubyte), rank 3
constexpr uint32_t kLabelsMagic = 0x00000801;  // type 0x08 (ubyte), rank 1
// Beyond this the header is not an image set we could hold anyway; refusing it early
// also keeps a corrupt header from overflowing n·rows·cols.
constexpr uint64_t kMaxBytes = uint64_t{1} << 40;

std::string hex32(uint32_t v) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "0x%08x", v);
  return buf;
}

class IdxFile : public data::GzFile {
 public:
  using GzFile::GzFile;

  // Magic and big-endian dimensions; `what` describes the expected content for messages.
  std::vector<uint64_t> header(uint32_t magic, const char* what) {
    uint8_t b[4];
    const size_t got = read(b, 4);
    if (got < 4) fail("truncated: expected a 4-byte IDX magic, got " + std::to_string(got) + " bytes");
    const uint32_t m = uint32_t{b[0]} << 24 | uint32_t{b[1]} << 16 | uint32_t{b[2]} << 8 | b[3];
    // The magic packs zero, zero, the element type and the rank; comparing it whole
    // checks all three, and the message spells out which combination was expected.
    if (m != magic) fail("bad IDX magic " + hex32(m) + ", expected " + hex32(magic) + " (" + what + ")");
    std::vector<uint64_t> dims(b[3]);
    for (auto& d : dims) {
      uint8_t v[4];
      const size_t k = read(v, 4);
      if (k < 4)
        fail("truncated: expected " + std::to_string(4 + 4 * dims.size()) + " header bytes (" + what +
             ")");
      d = uint64_t{v[0]} << 24 | uint64_t{v[1]} << 16 | uint64_t{v[2]} << 8 | v[3];
    }
    return dims;
  }

  // Exactly `count` payload bytes and nothing after them. The buffer grows with the data
  // (1 MiB chunks, the vector doubling), so a header that promises more than the file
  // holds costs no more memory than the file: reserving the promised size up front would
  // ask for up to 4 GiB at once, which fails outright under a memory limit.
  std::vector<uint8_t> payload(uint64_t count, const char* what) {
    constexpr uint64_t kChunk = uint64_t{1} << 20;
    std::vector<uint8_t> out;
    out.reserve(static_cast<size_t>(std::min<uint64_t>(count, kChunk)));
    size_t got = 0;
    while (got < count) {
      const size_t want = static_cast<size_t>(std::min<uint64_t>(count - got, kChunk));
      out.resize(got + want);
      const size_t k = read(out.data() + got, want);
      got += k;
      if (k < want)
        fail("truncated: expected " + std::to_string(count) + " " + what + " bytes, got " +
             std::to_string(got));
    }
    uint8_t extra;
    if (read(&extra, 1) != 0)
      fail("trailing data after the " + std::to_string(count) + " " + what + " bytes the header declares");
    return out;
  }
};

}  // namespace

RawImages read_idx_pair(const std::string& images_path, const std::string& labels_path, int64_t num_classes) {
  RawImages raw;
  {
    IdxFile f(images_path);
    const auto d = f.header(kImagesMagic, "ubyte images, rank 3");
    if (d[1] == 0 || d[2] == 0)
      f.fail("image size " + std::to_string(d[1]) + "x" + std::to_string(d[2]) + ", expected both > 0");
    // Each factor is < 2^32, so test the product in two steps without overflowing.
    if (d[1] * d[2] > kMaxBytes || (d[0] != 0 && d[1] * d[2] > kMaxBytes / d[0]))
      f.fail("implausible size " + std::to_string(d[0]) + "x" + std::to_string(d[1]) + "x" +
             std::to_string(d[2]) + ", expected at most 2^40 pixel bytes");
    raw.n = static_cast<int64_t>(d[0]);
    raw.channels = 1;
    raw.height = static_cast<int64_t>(d[1]);
    raw.width = static_cast<int64_t>(d[2]);
    raw.pixels = f.payload(d[0] * d[1] * d[2], "pixel");
  }
  IdxFile f(labels_path);
  const auto d = f.header(kLabelsMagic, "ubyte labels, rank 1");
  if (d[0] != static_cast<uint64_t>(raw.n))
    f.fail(std::to_string(d[0]) + " labels but " + images_path + " has " + std::to_string(raw.n) +
           " images");
  const auto bytes = f.payload(d[0], "label");
  if (num_classes > 0)
    for (size_t i = 0; i < bytes.size(); ++i)
      if (bytes[i] >= num_classes)
        f.fail("item " + std::to_string(i) + ": label " + std::to_string(bytes[i]) +
               " outside the declared classes 0.." + std::to_string(num_classes - 1));
  raw.labels.assign(bytes.begin(), bytes.end());
  return raw;
}

}  // namespace taskreach
