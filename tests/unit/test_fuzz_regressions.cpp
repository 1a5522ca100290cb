// Every input the fuzzers found (tests/fuzz/regressions/TARGET-NAME), replayed through the
// same harness as the fuzz target (tests/fuzz/harness.hpp): each must now end in a clean
// InputError — no crash, no sanitizer report, no other exception, no broken contract.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <string>
#include <vector>

#include "../fuzz/harness.hpp"

namespace fs = std::filesystem;
using namespace taskreach;

namespace {

const fs::path kDir = fs::path(TASKREACH_SOURCE_DIR) / "tests" / "fuzz" / "regressions";

std::vector<uint8_t> slurp(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>()};
}

struct Scratch {
  fs::path path = fs::temp_directory_path() / ("taskreach_fuzz_regressions_" + std::to_string(::getpid()));
  Scratch() { fs::create_directories(path); }
  ~Scratch() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

// Replays every saved input of one target; returns how many there were.
int replay(const std::string& target) {
  Scratch scratch;
  int count = 0;
  for (const auto& e : fs::directory_iterator(kDir)) {
    const std::string name = e.path().filename().string();
    if (name.rfind(target + "-", 0) != 0) continue;
    ++count;
    const std::vector<uint8_t> in = slurp(e.path());
    SCOPED_TRACE(name);
    try {
      if (target == "idx") fuzz::run_idx(in.data(), in.size(), scratch.path.string());
      if (target == "cifar") fuzz::run_cifar(in.data(), in.size(), scratch.path.string());
      if (target == "csv") fuzz::run_csv(in.data(), in.size(), scratch.path.string());
      if (target == "job") fuzz::run_job(in.data(), in.size());
      ADD_FAILURE() << name << ": accepted; expected an InputError";
    } catch (const InputError& err) {
      const std::string what = err.what();
      EXPECT_EQ(what.find('\n'), std::string::npos) << "more than one line: " << what;
      std::cout << "  " << name << ": " << what << "\n";
    } catch (const std::exception& err) {
      ADD_FAILURE() << name << ": " << err.what();
    }
  }
  return count;
}

}  // namespace

TEST(FuzzRegressions, Idx) { EXPECT_GE(replay("idx"), 1); }
TEST(FuzzRegressions, Cifar) { EXPECT_GE(replay("cifar"), 4); }
TEST(FuzzRegressions, Csv) { EXPECT_GE(replay("csv"), 1); }
TEST(FuzzRegressions, Job) { EXPECT_GE(replay("job"), 1); }
