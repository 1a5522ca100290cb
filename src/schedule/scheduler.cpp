// Task groups, the hand-out of work items (a serving thread or a one-sided counter), stored
// results for resume, and the clean stop on signals.
#include <unistd.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <csignal>
#include <cstring>
#include <deque>
#include <iomanip>
#include <iostream>
#include <random>
#include <thread>

#include "taskreach/schedule.hpp"
#include "taskreach/util.hpp"

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

constexpr int kTagRequest = 701, kTagReply = 702, kTagDone = 703;
// The one-sided counter is set to this once rank 0 has seen a stop request: every later fetch
// is past the end of any list.
constexpr int64_t kStopped = int64_t(1) << 60;

Scheduler::AfterJobHook g_after_job = nullptr;

// MPI calls on the communicators the scheduler owns: a failure is an exception naming it.
void mpi_ok(int rc, const char* what) {
  if (rc == MPI_SUCCESS) return;
  char msg[MPI_MAX_ERROR_STRING];
  int len = 0;
  MPI_Error_string(rc, msg, &len);
  throw std::runtime_error(std::string("schedule: ") + what + ": " + std::string(msg, size_t(len)));
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

const char* to_string(HandOut h) {
  static constexpr const char* kNames[] = {"single", "dynamic", "dynamic-one-sided"};  // enum order
  return kNames[static_cast<int>(h)];
}

void Scheduler::set_after_job_hook(AfterJobHook hook) { g_after_job = hook; }

void Scheduler::after_job(int64_t computed_so_far) const {
  if (g_after_job && rank_ == 0) g_after_job(computed_so_far);
}

Scheduler::Scheduler(MPI_Comm comm, int64_t ranks_per_task, std::string results_dir, bool resume,
                     std::ostream* progress, HandOut prefer)
    : resume_(resume), store_(std::move(results_dir)), progress_(progress), start_(now_s()) {
  // The scheduler's own communicator: its collectives never interleave with the caller's.
  mpi_ok(MPI_Comm_dup(comm, &comm_), "MPI_Comm_dup");
  MPI_Comm_set_errhandler(comm_, MPI_ERRORS_RETURN);
  MPI_Comm_rank(comm_, &rank_);
  MPI_Comm_size(comm_, &size_);
  g_ = static_cast<int>(std::min<int64_t>(ranks_per_task, size_));
  count_ = std::max(1, size_ / g_);
  // Ranks beyond count*g join the last group, so any world size works.
  color_ = std::min(rank_ / g_, count_ - 1);
  mpi_ok(MPI_Comm_split(comm_, color_, rank_, &group_), "MPI_Comm_split");
  MPI_Comm_rank(group_, &group_rank_);
  int provided = MPI_THREAD_SINGLE;
  MPI_Query_thread(&provided);
  if (count_ == 1) hand_out_ = HandOut::single;
  else if (prefer == HandOut::thread && provided >= MPI_THREAD_MULTIPLE) hand_out_ = HandOut::thread;
  else hand_out_ = HandOut::one_sided;
  if (rank_ == 0) {
    store_.prepare();
    // A writer id no other process sharing the store has: host, pid, clock and entropy.
    char host[256] = "host";
    ::gethostname(host, sizeof host - 1);
    host[sizeof host - 1] = 0;
    std::random_device rd;
    writer_ = util::hash_parts({host, std::to_string(::getpid()), std::to_string(now_s()),
                                std::to_string(rd()), std::to_string(rd())});
  }
  mpi_ok(MPI_Bcast(&writer_, 1, MPI_UINT64_T, 0, comm_), "MPI_Bcast");
}

Scheduler::~Scheduler() {
  MPI_Comm_free(&group_);
  MPI_Comm_free(&comm_);
}

void Scheduler::add_attributes(RunOutput& out) const {
  out.attrs_i64["ranks_per_task"] = g_;
  out.attrs_i64["task_groups"] = count_;
  out.attrs_f64["schedule_seconds"] = out.attrs_f64["schedule_seconds"] + seconds_;
  out.attrs_i64["jobs_computed"] = out.attrs_i64["jobs_computed"] + computed_;
  out.attrs_i64["jobs_reused"] = out.attrs_i64["jobs_reused"] + reused_;
  out.attrs_str["schedule"] = to_string(hand_out_);
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
    mpi_ok(MPI_Iprobe(MPI_ANY_SOURCE, kTagRequest, comm_, &flag, &st), "MPI_Iprobe");
    if (!flag) {
      std::this_thread::sleep_for(std::chrono::milliseconds(2));  // no busy spin beside the work
      continue;
    }
    double req[3];  // group, finished item (−1: none), its seconds
    mpi_ok(MPI_Recv(req, 3, MPI_DOUBLE, st.MPI_SOURCE, kTagRequest, comm_, MPI_STATUS_IGNORE), "MPI_Recv");
    if (req[1] >= 0) report(phase, req, ++done, total, already);
    int reply = -1;
    if (!stop_requested() && next < todo.size()) reply = int(todo[next++]);
    if (reply < 0) --active;
    mpi_ok(MPI_Send(&reply, 1, MPI_INT, st.MPI_SOURCE, kTagReply, comm_), "MPI_Send");
  }
}

// Rank 0: one finished item (`done` of `total` finished so far, `already` of them reused).
void Scheduler::report(const Phase& phase, const double* item, int64_t done, int64_t total, int64_t already) const {
  after_job(computed_ + (done - already));
  if (!progress_) return;
  const double el = now_s() - start_, in_phase = now_s() - phase_start_;
  const double left = in_phase / double(done - already) * double(total - done);
  *progress_ << "  [" << done << "/" << total << "] " << phase.label[size_t(item[1])] << " (group " << int(item[0])
             << ", " << std::fixed << std::setprecision(1) << item[2] << " s; elapsed " << el << " s, ~" << left
             << " s left)" << std::defaultfloat << std::endl;
}

std::vector<std::vector<double>> Scheduler::run(const Phase& phase,
                                                const std::function<std::vector<double>(size_t)>& work,
                                                const std::function<bool(size_t, const StoredInfo&)>& reusable) {
  const size_t n = phase.cost.size();
  const double phase_start = phase_start_ = now_s();
  std::vector<std::vector<double>> results(n);
  // Reuse: rank 0 reads the valid stored results of unchanged inputs.
  std::vector<int> owner(n, -1);
  int64_t reused_here = 0;
  if (rank_ == 0 && resume_)
    for (size_t k = 0; k < n; ++k) {
      StoredInfo info;
      results[k] = store_.read(phase.key[k], &info);
      if (!results[k].empty() && reusable && !reusable(k, info)) {
        // Stale (e.g. its checkpoint was deleted): removed, so that the recomputed one is kept.
        results[k].clear();
        store_.remove(phase.key[k]);
      }
      if (!results[k].empty()) {
        owner[k] = 0;
        ++reused_here;
      }
    }
  mpi_ok(MPI_Bcast(owner.data(), int(n), MPI_INT, 0, comm_), "MPI_Bcast");
  std::vector<size_t> todo;
  for (size_t k = 0; k < n; ++k)
    if (owner[k] < 0) todo.push_back(k);
  std::stable_sort(todo.begin(), todo.end(), [&](size_t a, size_t b) { return phase.cost[a] > phase.cost[b]; });
  mpi_ok(MPI_Bcast(&reused_here, 1, MPI_INT64_T, 0, comm_), "MPI_Bcast");
  reused_ += reused_here;
  if (progress_ && rank_ == 0)
    *progress_ << phase.name << ": " << n << " jobs" << (reused_here ? ", " + std::to_string(reused_here) + " reused" : "")
               << " (" << to_string(hand_out_) << " hand-out to " << count_ << " group(s) of " << g_ << ")" << std::endl;

  // The one-sided hand-out: a counter on rank 0 into the shared largest-first list.
  int64_t* counter = nullptr;
  MPI_Win win = MPI_WIN_NULL;
  if (hand_out_ == HandOut::one_sided) {
    mpi_ok(MPI_Win_allocate(rank_ == 0 ? MPI_Aint(sizeof(int64_t)) : 0, sizeof(int64_t), MPI_INFO_NULL, comm_,
                            &counter, &win),
           "MPI_Win_allocate");
    if (rank_ == 0) {
      mpi_ok(MPI_Win_lock(MPI_LOCK_EXCLUSIVE, 0, 0, win), "MPI_Win_lock");
      *counter = 0;
      mpi_ok(MPI_Win_unlock(0, win), "MPI_Win_unlock");
    }
    mpi_ok(MPI_Barrier(comm_), "MPI_Barrier");
  }
  auto fetch_next = [&](int64_t add) {
    int64_t k = 0;
    mpi_ok(MPI_Win_lock(MPI_LOCK_SHARED, 0, 0, win), "MPI_Win_lock");
    mpi_ok(MPI_Fetch_and_op(&add, &k, MPI_INT64_T, 0, 0, MPI_SUM, win), "MPI_Fetch_and_op");
    mpi_ok(MPI_Win_unlock(0, win), "MPI_Win_unlock");
    return k;
  };

  // One-sided: the other groups report each finished item to rank 0 without waiting for it;
  // rank 0 prints them whenever it is between its own items.
  std::deque<std::array<double, 3>> sent;
  std::vector<MPI_Request> sends;
  int64_t done_seen = reused_here;
  auto drain = [&](bool block, int64_t until) {
    while (done_seen < until) {
      int flag = 0;
      MPI_Status st;
      mpi_ok(block ? MPI_Probe(MPI_ANY_SOURCE, kTagDone, comm_, &st) : MPI_Iprobe(MPI_ANY_SOURCE, kTagDone, comm_, &flag, &st),
             "MPI_Probe");
      if (!block && !flag) return;
      double item[3];
      mpi_ok(MPI_Recv(item, 3, MPI_DOUBLE, st.MPI_SOURCE, kTagDone, comm_, MPI_STATUS_IGNORE), "MPI_Recv");
      report(phase, item, ++done_seen, int64_t(n), reused_here);
    }
  };

  std::thread server;
  if (hand_out_ == HandOut::thread && rank_ == 0)
    server = std::thread([&] { serve(phase, todo, int64_t(n), reused_here); });
  const bool root = group_rank_ == 0;
  std::vector<int> mine;
  int64_t dropped_here = 0, late_here = 0;
  double last[3] = {double(color_), -1.0, 0.0};
  for (size_t cursor = 0;;) {
    int k = -1;
    if (root) {
      if (hand_out_ == HandOut::thread) {
        mpi_ok(MPI_Send(last, 3, MPI_DOUBLE, 0, kTagRequest, comm_), "MPI_Send");
        mpi_ok(MPI_Recv(&k, 1, MPI_INT, 0, kTagReply, comm_, MPI_STATUS_IGNORE), "MPI_Recv");
      } else if (hand_out_ == HandOut::one_sided) {
        if (rank_ == 0) drain(false, int64_t(n));
        // Rank 0 publishes its stop request through the counter; every group sees it next.
        if (stop_requested()) {
          if (rank_ == 0) fetch_next(kStopped);
        } else {
          const int64_t c = fetch_next(1);
          if (c < int64_t(todo.size())) k = int(todo[size_t(c)]);
        }
      } else if (!stop_requested() && cursor < todo.size()) {
        k = int(todo[cursor++]);
      }
    }
    mpi_ok(MPI_Bcast(&k, 1, MPI_INT, 0, group_), "MPI_Bcast");
    if (k < 0) break;
    const double t0 = now_s();
    // Stored meanwhile by another run sharing the store (an overlapping shard, a second job
    // file): reused, not computed again.
    int stored = 0;
    if (root && resume_) {
      StoredInfo info;
      std::vector<double> theirs = store_.read(phase.key[size_t(k)], &info);
      if (!theirs.empty() && (!reusable || reusable(size_t(k), info))) {
        results[size_t(k)] = std::move(theirs);
        stored = 1;
      } else if (!theirs.empty()) {
        store_.remove(phase.key[size_t(k)]);
      }
    }
    mpi_ok(MPI_Bcast(&stored, 1, MPI_INT, 0, group_), "MPI_Bcast");
    if (!stored) results[size_t(k)] = work(size_t(k));
    last[1] = k;
    last[2] = now_s() - t0;
    if (root && stored) {
      ++late_here;
    } else if (root) {
      const StoredInfo info{phase.label[size_t(k)], phase.status ? phase.status(results[size_t(k)]) : "ok", last[2],
                            writer_, size_t(k) < phase.parent.size() ? phase.parent[size_t(k)] : 0};
      if (!store_.write(phase.key[size_t(k)], results[size_t(k)], info)) {
        // Another run stored this job first (a requeued duplicate, an overlapping shard): its
        // record is kept whole and is the result everybody uses; this one is dropped.
        std::vector<double> theirs = store_.read(phase.key[size_t(k)]);
        if (!theirs.empty()) results[size_t(k)] = std::move(theirs);
        ++dropped_here;
        if (phase.dropped) phase.dropped(size_t(k));
        std::cerr << "taskreach: note: " << phase.label[size_t(k)]
                  << ": another run stored this job first; its result is kept, this one dropped" << std::endl;
      }
    }
    if (root) {
      mine.push_back(k);
      if (hand_out_ != HandOut::thread) {
        if (rank_ == 0) {
          report(phase, last, ++done_seen, int64_t(n), reused_here);
        } else {
          sent.push_back({last[0], last[1], last[2]});
          sends.emplace_back();
          mpi_ok(MPI_Isend(sent.back().data(), 3, MPI_DOUBLE, 0, kTagDone, comm_, &sends.back()), "MPI_Isend");
        }
      }
    }
  }
  if (server.joinable()) server.join();
  if (win != MPI_WIN_NULL) mpi_ok(MPI_Win_free(&win), "MPI_Win_free");

  // Who holds what: every item's owner, then its result from there to everyone.
  for (int k : mine) owner[size_t(k)] = rank_;
  mpi_ok(MPI_Allreduce(MPI_IN_PLACE, owner.data(), int(n), MPI_INT, MPI_MAX, comm_), "MPI_Allreduce");
  int64_t computed_all = 0;
  for (size_t k = 0; k < n; ++k) computed_all += owner[k] >= 0;
  computed_all -= reused_here;
  if (hand_out_ == HandOut::one_sided) {
    if (rank_ == 0) drain(true, reused_here + computed_all);
    mpi_ok(MPI_Waitall(int(sends.size()), sends.data(), MPI_STATUSES_IGNORE), "MPI_Waitall");
  }
  mpi_ok(MPI_Allreduce(MPI_IN_PLACE, &late_here, 1, MPI_INT64_T, MPI_SUM, comm_), "MPI_Allreduce");
  computed_ += computed_all - late_here;
  reused_ += late_here;
  if (late_here && progress_ && rank_ == 0)
    *progress_ << phase.name << ": " << late_here << " jobs stored meanwhile by another run, reused" << std::endl;
  mpi_ok(MPI_Allreduce(MPI_IN_PLACE, &dropped_here, 1, MPI_INT64_T, MPI_SUM, comm_), "MPI_Allreduce");
  // Every group's first rank counted its own; the sum counts each dropped item once.
  dropped_ += dropped_here;
  int stop = stop_requested() ? 1 : 0;
  mpi_ok(MPI_Allreduce(MPI_IN_PLACE, &stop, 1, MPI_INT, MPI_MAX, comm_), "MPI_Allreduce");
  const auto missing = std::count(owner.begin(), owner.end(), -1);
  if (stop && missing > 0) throw Interrupted(int64_t(n) - missing, int64_t(n));
  for (size_t k = 0; k < n; ++k) {
    int len = rank_ == owner[k] ? int(results[k].size()) : 0;
    mpi_ok(MPI_Bcast(&len, 1, MPI_INT, owner[k], comm_), "MPI_Bcast");
    results[k].resize(size_t(len));
    mpi_ok(MPI_Bcast(results[k].data(), len, MPI_DOUBLE, owner[k], comm_), "MPI_Bcast");
  }
  seconds_ += now_s() - phase_start;
  return results;
}

}  // namespace taskreach
