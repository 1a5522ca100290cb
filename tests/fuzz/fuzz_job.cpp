// libFuzzer target: the job-file parser (parse_job) on TOML text, then the documented ranges
// of what it accepted. Sources must name readable files, so ${TASKREACH_DATA} is set for the
// seeds taken from jobs/*.toml.
#include <cstdlib>

#include "fuzz_common.hpp"

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  const char* home = std::getenv("HOME");
  setenv("TASKREACH_DATA", (std::string(home ? home : "/root") + "/.cache/taskreach/data").c_str(), 0);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  return taskreach::fuzz::guarded([&] { taskreach::fuzz::run_job(data, size); });
}
