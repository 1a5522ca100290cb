#pragma once
// Durable small-file writes, shared by the modules that keep results and checkpoints.
#include <string>

namespace taskreach {

// Writes `bytes` to `path` through a temporary in the same directory: written, fsync'ed,
// renamed, and the directory synced, so the file is whole or absent even after a crash.
// Throws std::runtime_error "PATH: cannot WHAT: <reason>" (e.g. No space left on device),
// leaving no temporary behind. `what` names the file's kind ("write a job result").
void write_file_atomically(const std::string& path, const std::string& bytes, const std::string& what);

// The same, but the first writer of `path` wins: returns false (and leaves the existing file
// as it is) when `path` already exists, e.g. written by a concurrent run computing the same
// result. The temporaries of both are named by host, pid and a counter, so writers on a
// shared file system never collide.
bool write_file_once(const std::string& path, const std::string& bytes, const std::string& what);

}  // namespace taskreach
