#pragma once
// The libFuzzer side of a target: a private scratch folder in /dev/shm (falling back to
// $TMPDIR or /tmp), and the rule that only taskreach::InputError is an expected failure.
// Anything else that escapes (ContractError from the harness, std::bad_alloc, ...) aborts, so
// libFuzzer keeps the input as a crash.
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <string>

#include "harness.hpp"

namespace taskreach::fuzz {

inline const std::string& scratch_dir() {
  // Never destroyed, so that the exit handler that removes the folder can still read it.
  static const std::string* dir = [] {
    namespace fs = std::filesystem;
    std::error_code ec;
    fs::path base = fs::is_directory("/dev/shm", ec) ? fs::path("/dev/shm") : fs::temp_directory_path();
    fs::path d = base / ("taskreach-fuzz-" + std::to_string(::getpid()));
    fs::create_directories(d);
    std::atexit([] {
      std::error_code e;
      fs::remove_all(scratch_dir(), e);
    });
    return new std::string(d.string());
  }();
  return *dir;
}

template <typename F>
int guarded(F&& f) {
  try {
    f();
  } catch (const InputError&) {
    // expected: bad input, rejected cleanly
  } catch (const std::exception& e) {
    std::fprintf(stderr, "finding: exception escaped: %s\n", e.what());
    std::abort();
  } catch (...) {
    std::fprintf(stderr, "finding: non-standard exception escaped\n");
    std::abort();
  }
  return 0;
}

}  // namespace taskreach::fuzz
