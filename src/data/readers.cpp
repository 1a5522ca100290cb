// CIFAR binary batches and CSV tables, plain or gzip, and the dispatch from a [[sources]]
// table to its reader. Every error names the file and, where there is one, the record
// or the line.
#include <charconv>
#include <cmath>
#include <cstdio>
#include <limits>
#include <string>
#include <system_error>
#include <utility>

#include "gzfile.hpp"
#include "taskreach/data.hpp"

namespace taskreach {
namespace {

constexpr int64_t kCifarSide = 32, kCifarPixels = 3 * kCifarSide * kCifarSide;

std::string classes_range(int64_t k) { return "0.." + std::to_string(k - 1); }

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) s.remove_suffix(1);
  return s;
}

std::string number_text(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.6g", v);
  return buf;
}

// A field as an error message quotes it: at most 24 bytes, and every byte that is not
// printable ASCII (control bytes, binary data, the bytes of UTF-8) as \xNN, so a binary file
// passed as CSV cannot write raw bytes to the terminal.
std::string printable(std::string_view s) {
  constexpr size_t kMax = 24;
  std::string out;
  for (const char ch : s.substr(0, kMax)) {
    const auto c = static_cast<unsigned char>(ch);
    if (c >= 0x20 && c < 0x7f && c != '\\') {
      out += ch;
    } else {
      static constexpr char kHex[] = "0123456789abcdef";
      out += "\\x";
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out + (s.size() > kMax ? "..." : "");
}
std::string shown(std::string_view s) { return "'" + printable(s) + "'"; }

}  // namespace

RawImages read_cifar(const std::vector<std::string>& batches, int label_bytes, int label_index, int64_t num_classes) {
  RawImages raw;
  raw.channels = 3;
  raw.height = raw.width = kCifarSide;
  const size_t record = static_cast<size_t>(label_bytes) + kCifarPixels;
  // Records are copied out of a buffer of whole records, so no file is held twice. 64
  // records (under 200 KB) keep small files cheap; zlib reads ahead in its own buffer.
  const size_t chunk = 64;
  std::vector<uint8_t> buf(chunk * record);
  for (const auto& path : batches) {
    data::GzFile f(path);
    size_t n = 0;
    for (;;) {
      const size_t got = f.read(buf.data(), buf.size());
      const size_t whole = got / record;
      for (size_t r = 0; r < whole; ++r, ++n) {
        const uint8_t* rec = buf.data() + r * record;
        const int64_t label = rec[label_index];
        if (label >= num_classes)
          f.fail("record " + std::to_string(n) + ": label " + std::to_string(label) +
                 " outside the declared classes " + classes_range(num_classes));
        raw.labels.push_back(label);
        raw.pixels.insert(raw.pixels.end(), rec + label_bytes, rec + record);
      }
      if (got % record != 0) {
        const size_t total = n * record + got % record;
        f.fail("truncated: " + std::to_string(total) + " bytes is not a whole number of " + std::to_string(record) +
               "-byte CIFAR records (" + std::to_string(n) + " records and " + std::to_string(got % record) +
               " bytes)");
      }
      if (got < buf.size()) break;
    }
    if (n == 0) f.fail("empty; expected " + std::to_string(record) + "-byte CIFAR records");
  }
  raw.n = static_cast<int64_t>(raw.labels.size());
  return raw;
}

RawImages read_csv(const std::vector<std::string>& files, const CsvFormat& format) {
  RawImages raw;
  int64_t n_features = -1;
  const int64_t declared = format.num_classes > 0 ? format.num_classes : (format.label_format == LabelFormat::letter ? 26 : 0);
  for (const auto& path : files) {
    data::GzFile f(path);
    const std::vector<uint8_t> bytes = f.read_all();
    const std::string_view text(reinterpret_cast<const char*>(bytes.data()), bytes.size());
    int64_t line_no = 0, rows = 0;
    std::vector<std::string_view> fields;
    for (size_t pos = 0; pos < text.size();) {
      size_t end = text.find('\n', pos);
      if (end == std::string_view::npos) end = text.size();
      const std::string_view line = trim(text.substr(pos, end - pos));
      pos = end + 1;
      ++line_no;
      if (line_no <= format.skip_rows || line.empty()) continue;
      auto where = [&](const std::string& what) { f.fail("line " + std::to_string(line_no) + ": " + what); };

      fields.clear();
      for (size_t a = 0;;) {
        const size_t b = line.find(',', a);
        fields.push_back(trim(line.substr(a, b == std::string_view::npos ? std::string_view::npos : b - a)));
        if (b == std::string_view::npos) break;
        a = b + 1;
      }
      const int64_t nf = static_cast<int64_t>(fields.size());
      if (n_features < 0) {
        if (nf < 2) where("expected a label and at least one feature, got " + std::to_string(nf) + " field");
        n_features = nf - 1;
      } else if (nf != n_features + 1) {
        where("expected " + std::to_string(n_features + 1) + " fields, got " + std::to_string(nf));
      }
      const int64_t lc = format.label_column < 0 ? nf + format.label_column : format.label_column;
      if (lc < 0 || lc >= nf)
        where("label_column " + std::to_string(format.label_column) + " outside the " + std::to_string(nf) +
              " fields");

      for (int64_t k = 0; k < nf; ++k) {
        const std::string_view s = fields[static_cast<size_t>(k)];
        const std::string field = "field " + std::to_string(k + 1) + ": ";
        if (k == lc) {
          int64_t label = 0;
          if (format.label_format == LabelFormat::letter) {
            const char c = s.size() == 1 ? s[0] : 0;
            if (c >= 'A' && c <= 'Z') label = c - 'A';
            else if (c >= 'a' && c <= 'z') label = c - 'a';
            else where(field + "label " + shown(s) + " is not a letter A..Z");
          } else {
            const auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), label);
            if (ec != std::errc() || p != s.data() + s.size() || s.empty())
              where(field + "label " + shown(s) + " is not an integer");
            if (label < 0) where(field + "label " + std::to_string(label) + " is negative; expected a class index");
          }
          if (declared > 0 && label >= declared)
            where(field + "label " + printable(s) + " outside the declared classes " + classes_range(declared));
          raw.labels.push_back(label);
          continue;
        }
        double v = 0.0;
        // from_chars takes no leading '+'; allow it, since writers of CSV do use it.
        const std::string_view num = !s.empty() && s[0] == '+' ? s.substr(1) : s;
        const auto [p, ec] = std::from_chars(num.data(), num.data() + num.size(), v);
        if (num.empty() || p != num.data() + num.size() || (ec != std::errc() && ec != std::errc::result_out_of_range))
          where(field + shown(s) + " is not a number");
        if (!std::isfinite(v) || ec == std::errc::result_out_of_range)
          where(field + shown(s) + " is not a finite number");
        // Stored as float: a value that the scale takes past the float range would become
        // inf (or, converted, undefined behaviour), so it is bad input like inf itself.
        const double scaled = v / format.scale;
        if (!(std::fabs(scaled) <= std::numeric_limits<float>::max()))
          where(field + shown(s) + " divided by scale " + number_text(format.scale) +
                " is outside the range of a float");
        raw.values.push_back(static_cast<float>(scaled));
      }
      ++rows;
    }
    if (rows == 0) f.fail("no data rows" + std::string(format.skip_rows ? " after the skipped header" : ""));
    raw.n += rows;
  }
  raw.channels = 1;
  raw.height = 1;
  raw.width = n_features;
  if (!format.shape.empty()) {
    // The product of three unbounded dimensions need not fit in 64 bits.
    int64_t want = 1;
    bool fits = true;
    for (int64_t d : format.shape) fits = fits && !__builtin_mul_overflow(want, d, &want);
    if (!fits || want != n_features)
      throw InputError(files.front() + ": " + std::to_string(n_features) + " features per row, but shape " +
                       std::to_string(format.shape[0]) + "x" + std::to_string(format.shape[1]) + "x" +
                       std::to_string(format.shape[2]) + " needs " +
                       (fits ? std::to_string(want) : std::string("more than 2^63")));
    raw.channels = format.shape[0];
    raw.height = format.shape[1];
    raw.width = format.shape[2];
  }
  return raw;
}

RawImages read_source(const SourceConfig& s, bool test) {
  if (s.format == SourceFormat::idx) {
    if (test && s.test_images.empty()) return {};
    RawImages r = test ? read_idx_pair(s.test_images, s.test_labels, s.num_classes)
                       : read_idx_pair(s.train_images, s.train_labels, s.num_classes);
    if (s.transpose) {
      // EMNIST's files hold each image column by column: turn them upright (H and W swap).
      std::vector<uint8_t> t(r.pixels.size());
      const size_t H = static_cast<size_t>(r.height), W = static_cast<size_t>(r.width);
      for (size_t i = 0; i < static_cast<size_t>(r.n); ++i)
        for (size_t h = 0; h < H; ++h)
          for (size_t w = 0; w < W; ++w) t[i * H * W + w * H + h] = r.pixels[i * H * W + h * W + w];
      r.pixels = std::move(t);
      std::swap(r.height, r.width);
    }
    return r;
  }
  const auto& files = test ? s.test_files : s.train_files;
  if (files.empty()) {
    if (test) return {};
    throw InputError("source '" + s.name + "': no train files");
  }
  if (s.format == SourceFormat::cifar10) return read_cifar(files, 1, 0, s.num_classes > 0 ? s.num_classes : 10);
  if (s.format == SourceFormat::cifar100) {
    const bool fine = s.cifar_label != CifarLabel::coarse;
    return read_cifar(files, 2, fine ? 1 : 0, s.num_classes > 0 ? s.num_classes : (fine ? 100 : 20));
  }
  if (s.format == SourceFormat::csv) {
    CsvFormat fmt;
    fmt.label_column = s.label_column;
    fmt.label_format = s.label_format;
    fmt.skip_rows = s.skip_rows;
    fmt.shape = s.shape;
    fmt.scale = s.scale;
    fmt.num_classes = s.num_classes;
    return read_csv(files, fmt);
  }
  throw std::logic_error("source '" + s.name + "': no reader for its format");
}

}  // namespace taskreach
