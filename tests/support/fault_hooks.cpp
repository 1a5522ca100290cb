// Fault injection for the end-to-end tests, linked only into the test twin of the app
// (taskreach_faults): the production binary reads no such variables.
//   TASKREACH_FORCE_DIVERGE=NAME   jobs whose name contains NAME train at an absurd rate
//   TASKREACH_STOP_AFTER_JOBS=K    rank 0 raises SIGTERM once K jobs have been computed
#include <csignal>
#include <cstdlib>
#include <string>

#include "taskreach/complexity.hpp"
#include "taskreach/schedule.hpp"

namespace {

std::string g_diverge_name;
long long g_stop_after = -1;

bool diverge(const std::string& job) { return job.find(g_diverge_name) != std::string::npos; }
void after_job(int64_t computed) {
  if (computed >= g_stop_after) std::raise(SIGTERM);
}

const bool g_installed = [] {
  if (const char* f = std::getenv("TASKREACH_FORCE_DIVERGE"); f && *f) {
    g_diverge_name = f;
    taskreach::set_diverge_hook(&diverge);
  }
  if (const char* s = std::getenv("TASKREACH_STOP_AFTER_JOBS"); s && *s) {
    g_stop_after = std::atoll(s);
    taskreach::Scheduler::set_after_job_hook(&after_job);
  }
  return true;
}();

}  // namespace
