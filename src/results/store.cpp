// The per-job result store (one binary format for every stored result).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <sstream>

#include "taskreach/files.hpp"
#include "taskreach/results.hpp"
#include "taskreach/util.hpp"

namespace taskreach {
namespace {
constexpr char kMagic[8] = {'T', 'R', 'R', 'E', 'S', '0', '0', '2'};
constexpr const char* kSuffix = ".res";

// The description travels as "label\\nstatus\\nseconds[\\nparent]" (labels and statuses hold no
// newline; the parent's key in hex, only where there is one).
std::string meta_of(const StoredInfo& info) {
  std::ostringstream o;
  o.precision(17);
  o << info.label << "\n" << info.status << "\n" << info.seconds;
  if (info.parent) o << "\n" << util::hex16(info.parent);
  return o.str();
}

StoredInfo info_of(const std::string& meta, uint64_t writer) {
  StoredInfo info;
  info.writer = writer;
  std::istringstream in(meta);
  std::getline(in, info.label);
  std::getline(in, info.status);
  in >> info.seconds;
  std::string parent;
  if (in >> parent) info.parent = std::strtoull(parent.c_str(), nullptr, 16);
  return info;
}

// Checks one record's bytes: the damage, or null with its data and description.
const char* parse(const std::string& bytes, uint64_t key, std::vector<double>* out, StoredInfo* info) {
  const size_t head = sizeof kMagic + 3 * sizeof(uint64_t);
  uint64_t k = 0, writer = 0, m = 0, n = 0, sum = 0;
  if (bytes.size() < head + 2 * sizeof(uint64_t) || bytes.compare(0, sizeof kMagic, kMagic, sizeof kMagic) != 0)
    return "not a taskreach job result";
  std::memcpy(&k, bytes.data() + sizeof kMagic, sizeof k);
  std::memcpy(&writer, bytes.data() + sizeof kMagic + 8, sizeof writer);
  std::memcpy(&m, bytes.data() + sizeof kMagic + 16, sizeof m);
  std::memcpy(&sum, bytes.data() + bytes.size() - sizeof sum, sizeof sum);
  if (k != key) return "written for another job";
  if (m > (1ULL << 20) || bytes.size() < head + m + 2 * sizeof(uint64_t)) return "truncated";
  std::memcpy(&n, bytes.data() + head + m, sizeof n);
  if (n > (1ULL << 32) || bytes.size() != head + m + sizeof n + n * sizeof(double) + sizeof sum) return "truncated";
  if (sum != util::fnv1a(bytes.data(), bytes.size() - sizeof sum)) return "checksum mismatch";
  if (info) *info = info_of(bytes.substr(head, m), writer);
  if (out) {
    out->resize(n);
    std::memcpy(out->data(), bytes.data() + head + m + sizeof n, n * sizeof(double));
  }
  return nullptr;
}

bool read_bytes(const std::string& path, std::string& bytes) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return false;
  bytes.assign((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  return true;
}

}  // namespace

std::string ResultStore::path_of(uint64_t key) const { return dir_ + "/" + util::hex16(key) + kSuffix; }

bool ResultStore::contains(uint64_t key) const { return enabled() && std::filesystem::exists(path_of(key)); }

void ResultStore::prepare() const {
  if (!enabled()) return;
  std::filesystem::create_directories(dir_);
  // A temporary lives for the milliseconds of one write; one older than an hour belongs to a
  // writer that was killed. Younger ones may be another run's, writing into the same store.
  const auto cutoff = std::filesystem::file_time_type::clock::now() - std::chrono::hours(1);
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(dir_, ec))
    if (e.path().filename().string().find(std::string(kSuffix) + ".tmp") != std::string::npos) {
      std::error_code ec2;
      const auto t = std::filesystem::last_write_time(e.path(), ec2);
      if (!ec2 && t < cutoff) std::filesystem::remove(e.path(), ec2);
    }
}

std::vector<double> ResultStore::read(uint64_t key, StoredInfo* info) const {
  if (!enabled()) return {};
  const std::string path = path_of(key);
  std::string bytes;
  if (!read_bytes(path, bytes)) return {};
  std::vector<double> out;
  if (const char* damage = parse(bytes, key, &out, info)) {
    std::cerr << "taskreach: warning: " << path << ": damaged job result (" << damage << "); recomputing" << std::endl;
    std::remove(path.c_str());
    return {};
  }
  return out;
}

bool ResultStore::write(uint64_t key, const std::vector<double>& data, const StoredInfo& info) const {
  if (!enabled()) return true;
  std::string bytes(kMagic, sizeof kMagic);
  const std::string meta = meta_of(info);
  const uint64_t n = data.size(), m = meta.size();
  bytes.append(reinterpret_cast<const char*>(&key), sizeof key);
  bytes.append(reinterpret_cast<const char*>(&info.writer), sizeof info.writer);
  bytes.append(reinterpret_cast<const char*>(&m), sizeof m);
  bytes.append(meta);
  bytes.append(reinterpret_cast<const char*>(&n), sizeof n);
  bytes.append(reinterpret_cast<const char*>(data.data()), n * sizeof(double));
  const uint64_t sum = util::fnv1a(bytes.data(), bytes.size());
  bytes.append(reinterpret_cast<const char*>(&sum), sizeof sum);
  std::error_code ec;
  std::filesystem::create_directories(dir_, ec);  // a failure surfaces in the write below
  return write_file_once(path_of(key), bytes, "write a job result");
}

void ResultStore::remove(uint64_t key) const {
  if (enabled()) std::remove(path_of(key).c_str());
}

std::vector<ResultStore::Entry> ResultStore::list() const {
  std::vector<Entry> out;
  if (!enabled()) return out;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(dir_, ec)) {
    const std::string name = e.path().filename().string();
    if (name.size() != 16 + std::strlen(kSuffix) || name.compare(16, std::string::npos, kSuffix) != 0) continue;
    Entry entry;
    entry.path = e.path().string();
    entry.key = std::strtoull(name.substr(0, 16).c_str(), nullptr, 16);
    std::string bytes;
    if (!read_bytes(entry.path, bytes)) continue;  // removed meanwhile
    entry.bytes = bytes.size();
    if (const char* damage = parse(bytes, entry.key, nullptr, &entry.info)) entry.damage = damage;
    out.push_back(std::move(entry));
  }
  std::sort(out.begin(), out.end(), [](const Entry& a, const Entry& b) { return a.info.label < b.info.label; });
  return out;
}

}  // namespace taskreach
