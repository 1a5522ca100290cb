#include "scheduler.hpp"

#include <unistd.h>

#include <cerrno>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <numeric>
#include <sstream>
#include <thread>

#include "taskreach/files.hpp"
#include "taskreach/schedule.hpp"

namespace taskreach {
namespace {

volatile std::sig_atomic_t g_stop = 0;
char g_announcement[1024];  // written by the handler with write(2), which is async-signal-safe
volatile std::sig_atomic_t g_announcement_len = 0;
extern "C" void on_stop_signal(int) {
  if (!g_stop && g_announcement_len) {
    const ssize_t ignored = ::write(STDERR_FILENO, g_announcement, size_t(g_announcement_len));
    (void)ignored;
  }
  g_stop = 1;
}

double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

constexpr int kTagRequest = 701, kTagReply = 702;
constexpr char kMagic[8] = {'T', 'R', 'R', 'E', 'S', '0', '0', '1'};

uint64_t fnv1a(const void* data, size_t n, uint64_t h = 1469598103934665603ULL) {
  const auto* p = static_cast<const unsigned char*>(data);
  for (size_t i = 0; i < n; ++i) h = (h ^ p[i]) * 1099511628211ULL;
  return h;
}

std::string hex(uint64_t k) {
  char b[17];
  std::snprintf(b, sizeof b, "%016llx", static_cast<unsigned long long>(k));
  return b;
}

}  // namespace

void install_stop_handlers() {
  struct sigaction sa {};
  sa.sa_handler = on_stop_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGUSR1, &sa, nullptr);
}

bool stop_requested() { return g_stop != 0; }

void set_stop_announcement(const std::string& line) {
  const std::string text = line + "\n";
  g_announcement_len = 0;  // never half-written while a signal could read it
  std::memcpy(g_announcement, text.data(), std::min(text.size(), sizeof g_announcement));
  g_announcement_len = static_cast<std::sig_atomic_t>(std::min(text.size(), sizeof g_announcement));
}

namespace detail {

uint64_t hash_parts(const std::vector<std::string>& parts) {
  uint64_t h = 1469598103934665603ULL;
  for (const auto& p : parts) {
    const uint64_t n = p.size();
    h = fnv1a(&n, sizeof n, h);  // length first: ("ab","c") and ("a","bc") differ
    h = fnv1a(p.data(), p.size(), h);
  }
  return h;
}

Scheduler::Scheduler(MPI_Comm world, int64_t ranks_per_task, std::string results_dir, bool resume,
                     std::ostream* progress)
    : world_(world), resume_(resume), dir_(std::move(results_dir)), progress_(progress), start_(now_s()) {
  MPI_Comm_rank(world, &rank_);
  MPI_Comm_size(world, &size_);
  g_ = static_cast<int>(std::min<int64_t>(ranks_per_task, size_));
  count_ = std::max(1, size_ / g_);
  // Ranks beyond count*g join the last group, so any world size works.
  color_ = std::min(rank_ / g_, count_ - 1);
  MPI_Comm_split(world, color_, rank_, &group_);
  MPI_Comm_rank(group_, &group_rank_);
  MPI_Comm_dup(world, &sched_);
  int provided = MPI_THREAD_SINGLE;
  MPI_Query_thread(&provided);
  // Several groups: rank 0 serves the hand-out from a thread beside its own work.
  dynamic_ = count_ > 1 && provided >= MPI_THREAD_MULTIPLE;
  if (const char* s = std::getenv("TASKREACH_STOP_AFTER_JOBS")) stop_after_ = std::atoll(s);
  if (rank_ == 0 && !dir_.empty()) {
    std::filesystem::create_directories(dir_);
    // Temporaries of writers killed mid-write (a result is renamed into place only when whole).
    std::error_code ec;
    for (const auto& e : std::filesystem::directory_iterator(dir_, ec))
      if (e.path().filename().string().find(".res.tmp") != std::string::npos) std::filesystem::remove(e.path(), ec);
  }
  MPI_Barrier(world);
}

Scheduler::~Scheduler() {
  MPI_Comm_free(&sched_);
  MPI_Comm_free(&group_);
}

// A result file: magic, key, count, `count` doubles, FNV-1a of everything before it.
// A missing file is simply not done; a present but damaged one (truncated, bit rot, another
// key) is reported, removed and recomputed.
std::vector<double> Scheduler::read_result(uint64_t key) const {
  const std::string path = dir_ + "/" + hex(key) + ".res";
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
    else if (sum != fnv1a(bytes.data(), bytes.size() - sizeof sum)) damage = "checksum mismatch";
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

// A result file is whole or absent, even after a node crash (write_file_atomically).
void Scheduler::write_result(uint64_t key, const std::vector<double>& data) const {
  if (dir_.empty()) return;
  std::string bytes(kMagic, sizeof kMagic);
  const uint64_t n = data.size();
  bytes.append(reinterpret_cast<const char*>(&key), sizeof key);
  bytes.append(reinterpret_cast<const char*>(&n), sizeof n);
  bytes.append(reinterpret_cast<const char*>(data.data()), n * sizeof(double));
  const uint64_t sum = fnv1a(bytes.data(), bytes.size());
  bytes.append(reinterpret_cast<const char*>(&sum), sizeof sum);
  write_file_atomically(dir_ + "/" + hex(key) + ".res", bytes, "write a job result");
}

// Rank 0's hand-out thread: each group's first rank asks for the next item (reporting the one
// it finished); the largest remaining item is the answer, −1 once none is left or a stop was
// requested. Progress lines are printed here, where every completion is seen.
void Scheduler::serve(const Phase& phase, const std::vector<size_t>& todo, int64_t total, int64_t already) {
  size_t next = 0;
  int active = count_;
  int64_t done = already;
  while (active > 0) {
    int flag = 0;
    MPI_Status st;
    MPI_Iprobe(MPI_ANY_SOURCE, kTagRequest, sched_, &flag, &st);
    if (!flag) {
      std::this_thread::sleep_for(std::chrono::milliseconds(2));  // no busy spin beside the work
      continue;
    }
    double req[3];  // group, finished item (−1: none), its seconds
    MPI_Recv(req, 3, MPI_DOUBLE, st.MPI_SOURCE, kTagRequest, sched_, MPI_STATUS_IGNORE);
    if (req[1] >= 0) {
      ++done;
      // Fault injection for tests: a real SIGTERM after a given number of computed jobs.
      if (stop_after_ >= 0 && computed_ + (done - already) >= stop_after_) std::raise(SIGTERM);
      if (progress_) {
        const double el = now_s() - start_;
        const double left = el / double(done) * double(total - done);
        *progress_ << "  [" << done << "/" << total << "] " << phase.label[size_t(req[1])] << " (group " << int(req[0])
                   << ", " << std::fixed << std::setprecision(1) << req[2] << " s; elapsed " << el << " s, ~" << left
                   << " s left)" << std::defaultfloat << std::endl;
      }
    }
    int reply = -1;
    if (!stop_requested() && next < todo.size()) reply = int(todo[next++]);
    if (reply < 0) --active;
    MPI_Send(&reply, 1, MPI_INT, st.MPI_SOURCE, kTagReply, sched_);
  }
}

std::vector<std::vector<double>> Scheduler::run(const Phase& phase,
                                                const std::function<std::vector<double>(size_t)>& work,
                                                const std::function<bool(size_t)>& reusable) {
  const size_t n = phase.cost.size();
  const double phase_start = now_s();
  std::vector<std::vector<double>> results(n);
  // Reuse: rank 0 reads the valid result files of unchanged inputs.
  std::vector<int> owner(n, -1);
  int64_t reused_here = 0;
  if (rank_ == 0 && resume_)
    for (size_t k = 0; k < n; ++k) {
      if (reusable && !reusable(k)) continue;
      results[k] = read_result(phase.key[k]);
      if (!results[k].empty()) {
        owner[k] = 0;
        ++reused_here;
      }
    }
  MPI_Bcast(owner.data(), int(n), MPI_INT, 0, world_);
  std::vector<size_t> todo;
  for (size_t k = 0; k < n; ++k)
    if (owner[k] < 0) todo.push_back(k);
  std::stable_sort(todo.begin(), todo.end(), [&](size_t a, size_t b) { return phase.cost[a] > phase.cost[b]; });
  MPI_Bcast(&reused_here, 1, MPI_INT64_T, 0, world_);
  reused_ += reused_here;
  if (progress_ && rank_ == 0)
    *progress_ << phase.name << ": " << n << " jobs" << (reused_here ? ", " + std::to_string(reused_here) + " reused" : "")
               << (dynamic_ ? " (dynamic hand-out to " : " (") << count_ << " group(s) of " << g_ << ")" << std::endl;

  std::thread server;
  if (dynamic_ && rank_ == 0) server = std::thread([&] { serve(phase, todo, int64_t(n), reused_here); });
  const bool root = group_rank_ == 0;
  std::vector<int> mine;
  int64_t done_here = 0;
  double last[3] = {double(color_), -1.0, 0.0};
  for (size_t cursor = 0;;) {
    int k = -1;
    if (root) {
      if (dynamic_) {
        MPI_Send(last, 3, MPI_DOUBLE, 0, kTagRequest, sched_);
        MPI_Recv(&k, 1, MPI_INT, 0, kTagReply, sched_, MPI_STATUS_IGNORE);
      } else if (!stop_requested()) {
        // One group, or no thread support: every group walks the same largest-first list.
        while (cursor < todo.size() && int(cursor % size_t(count_)) != color_) ++cursor;
        if (cursor < todo.size()) k = int(todo[cursor++]);
      }
    }
    MPI_Bcast(&k, 1, MPI_INT, 0, group_);
    if (k < 0) break;
    const double t0 = now_s();
    results[size_t(k)] = work(size_t(k));
    last[1] = k;
    last[2] = now_s() - t0;
    ++done_here;
    if (root) {
      write_result(phase.key[size_t(k)], results[size_t(k)]);
      mine.push_back(k);
      if (!dynamic_) {
        if (progress_ && rank_ == 0)
          *progress_ << "  [" << reused_here + done_here << "/" << n << " by group 0] " << phase.label[size_t(k)]
                     << " (" << std::fixed << std::setprecision(1) << last[2] << " s; elapsed " << now_s() - start_
                     << " s)" << std::defaultfloat << std::endl;
        if (rank_ == 0 && stop_after_ >= 0 && computed_ + done_here >= stop_after_) std::raise(SIGTERM);
      }
    }
  }
  if (server.joinable()) server.join();

  // Who holds what: every item's owner, then its result from there to everyone.
  for (int k : mine) owner[size_t(k)] = rank_;
  MPI_Allreduce(MPI_IN_PLACE, owner.data(), int(n), MPI_INT, MPI_MAX, world_);
  int64_t computed_all = 0;
  for (size_t k = 0; k < n; ++k) computed_all += owner[k] >= 0;
  computed_all -= reused_here;
  computed_ += computed_all;
  int stop = stop_requested() ? 1 : 0;
  MPI_Allreduce(MPI_IN_PLACE, &stop, 1, MPI_INT, MPI_MAX, world_);
  const auto missing = std::count(owner.begin(), owner.end(), -1);
  if (stop && missing > 0) throw Interrupted(int64_t(n) - missing, int64_t(n));
  for (size_t k = 0; k < n; ++k) {
    int len = rank_ == owner[k] ? int(results[k].size()) : 0;
    MPI_Bcast(&len, 1, MPI_INT, owner[k], world_);
    results[k].resize(size_t(len));
    MPI_Bcast(results[k].data(), len, MPI_DOUBLE, owner[k], world_);
  }
  seconds_ += now_s() - phase_start;
  return results;
}

}  // namespace detail
}  // namespace taskreach
