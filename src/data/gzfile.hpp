#pragma once
// Internal to taskreach_readers: one reader for plain and gzip files. zlib's gzread passes a
// plain file through unchanged and inflates a gzip one (detected by its 1f 8b magic), so
// every format reads both. Errors are InputErrors naming the file.
#include <zlib.h>

#include <cstdint>
#include <string>
#include <vector>

#include "taskreach/config.hpp"

namespace taskreach::data {

class GzFile {
 public:
  explicit GzFile(const std::string& path);
  ~GzFile();
  GzFile(const GzFile&) = delete;
  GzFile& operator=(const GzFile&) = delete;

  [[noreturn]] void fail(const std::string& what) const;

  // Up to n bytes; fewer only at the end of the data. A corrupt gzip stream (bad block,
  // bad check sum, a stream cut short) is an InputError saying so.
  size_t read(uint8_t* out, size_t n);

  // Everything left.
  std::vector<uint8_t> read_all();

  const std::string& path() const { return path_; }

 private:
  std::string path_;
  gzFile f_ = nullptr;
};

}  // namespace taskreach::data
