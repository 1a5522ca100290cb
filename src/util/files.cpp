// Durable small-file writes: temporary, fsync, rename, directory fsync.
#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <stdexcept>

#include "taskreach/files.hpp"
#include "taskreach/util.hpp"

namespace taskreach {

namespace {

// A temporary's name no other writer uses: writers on other hosts of a shared file system, or
// several threads of this process, never share one (host, pid, counter).
std::string temporary_name(const std::string& path) {
  static std::atomic<unsigned> counter{0};
  char host[256] = "host";
  ::gethostname(host, sizeof host - 1);
  host[sizeof host - 1] = 0;
  return path + ".tmp." + host + "." + std::to_string(::getpid()) + "." + std::to_string(counter++);
}

void sync_directory_of(const std::string& path) {
  const size_t slash = path.rfind('/');
  const std::string dir = slash == std::string::npos ? "." : slash == 0 ? "/" : path.substr(0, slash);
  if (const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC); dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
}

// Writes and fsyncs `bytes` into a fresh temporary beside `path`; returns its name.
std::string write_temporary(const std::string& path, const std::string& bytes, const std::string& what) {
  const std::string tmp = temporary_name(path);
  auto fail = [&](int err) {
    ::unlink(tmp.c_str());
    throw std::runtime_error(path + ": cannot " + what + ": " + std::strerror(err));
  };
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) fail(errno);
  for (size_t off = 0; off < bytes.size();) {
    const ssize_t w = ::write(fd, bytes.data() + off, bytes.size() - off);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) {
      const int err = w < 0 ? errno : EIO;
      ::close(fd);
      fail(err);
    }
    off += size_t(w);
  }
  if (::fsync(fd) != 0) {
    const int err = errno;
    ::close(fd);
    fail(err);
  }
  if (::close(fd) != 0) fail(errno);
  return tmp;
}

}  // namespace

void write_file_atomically(const std::string& path, const std::string& bytes, const std::string& what) {
  const std::string tmp = write_temporary(path, bytes, what);
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    const int err = errno;
    ::unlink(tmp.c_str());
    throw std::runtime_error(path + ": cannot " + what + ": " + std::strerror(err));
  }
  // The rename itself is durable once the directory is synced.
  sync_directory_of(path);
}

bool write_file_once(const std::string& path, const std::string& bytes, const std::string& what) {
  const std::string tmp = write_temporary(path, bytes, what);
  // link(2) never replaces an existing name: of two writers of one path exactly one succeeds,
  // and the file is whole whichever it is.
  const int rc = ::link(tmp.c_str(), path.c_str());
  const int err = errno;
  ::unlink(tmp.c_str());
  if (rc != 0 && err == EEXIST) return false;
  if (rc != 0) throw std::runtime_error(path + ": cannot " + what + ": " + std::strerror(err));
  sync_directory_of(path);
  return true;
}

}  // namespace taskreach

namespace taskreach::util {

std::string hex16(uint64_t key) {
  char b[17];
  std::snprintf(b, sizeof b, "%016llx", static_cast<unsigned long long>(key));
  return b;
}

}  // namespace taskreach::util
