// libFuzzer target: the IDX reader through read_source (see harness.hpp for the input layout).
#include "fuzz_common.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  return taskreach::fuzz::guarded([&] { taskreach::fuzz::run_idx(data, size, taskreach::fuzz::scratch_dir()); });
}
