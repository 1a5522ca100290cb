// The per-job result store (one binary format for every stored result).
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>

#include "taskreach/files.hpp"
#include "taskreach/results.hpp"
#include "taskreach/util.hpp"

namespace taskreach {
namespace {
constexpr char kMagic[8] = {'T', 'R', 'R', 'E', 'S', '0', '0', '1'};
constexpr const char* kSuffix = ".res";
}  // namespace

std::string ResultStore::path_of(uint64_t key) const { return dir_ + "/" + util::hex16(key) + kSuffix; }

bool ResultStore::contains(uint64_t key) const { return enabled() && std::filesystem::exists(path_of(key)); }

void ResultStore::prepare() const {
  if (!enabled()) return;
  std::filesystem::create_directories(dir_);
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(dir_, ec))
    if (e.path().filename().string().find(std::string(kSuffix) + ".tmp") != std::string::npos)
      std::filesystem::remove(e.path(), ec);
}

std::vector<double> ResultStore::read(uint64_t key) const {
  if (!enabled()) return {};
  const std::string path = path_of(key);
  std::ifstream in(path, std::ios::binary);
  if (!in) return {};
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  in.close();
  const size_t head = sizeof kMagic + 2 * sizeof(uint64_t);
  const char* damage = nullptr;
  uint64_t k = 0, n = 0, sum = 0;
  if (bytes.size() < head + sizeof(uint64_t) || bytes.compare(0, sizeof kMagic, kMagic, sizeof kMagic) != 0) {
    damage = "not a taskreach job result";
  } else {
    std::memcpy(&k, bytes.data() + sizeof kMagic, sizeof k);
    std::memcpy(&n, bytes.data() + sizeof kMagic + sizeof k, sizeof n);
    std::memcpy(&sum, bytes.data() + bytes.size() - sizeof sum, sizeof sum);
    if (k != key) damage = "written for another job";
    else if (n > (1ULL << 32) || bytes.size() != head + n * sizeof(double) + sizeof sum) damage = "truncated";
    else if (sum != util::fnv1a(bytes.data(), bytes.size() - sizeof sum)) damage = "checksum mismatch";
  }
  if (damage) {
    std::cerr << "taskreach: warning: " << path << ": damaged job result (" << damage << "); recomputing" << std::endl;
    std::remove(path.c_str());
    return {};
  }
  std::vector<double> out(n);
  std::memcpy(out.data(), bytes.data() + head, n * sizeof(double));
  return out;
}

void ResultStore::write(uint64_t key, const std::vector<double>& data) const {
  if (!enabled()) return;
  std::string bytes(kMagic, sizeof kMagic);
  const uint64_t n = data.size();
  bytes.append(reinterpret_cast<const char*>(&key), sizeof key);
  bytes.append(reinterpret_cast<const char*>(&n), sizeof n);
  bytes.append(reinterpret_cast<const char*>(data.data()), n * sizeof(double));
  const uint64_t sum = util::fnv1a(bytes.data(), bytes.size());
  bytes.append(reinterpret_cast<const char*>(&sum), sizeof sum);
  std::error_code ec;
  std::filesystem::create_directories(dir_, ec);  // a failure surfaces in the write below
  write_file_atomically(path_of(key), bytes, "write a job result");
}

}  // namespace taskreach
