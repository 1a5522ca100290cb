// Hand-out latency of the scheduler's two dynamic mechanisms while rank 0 is busy in a long
// job without entering MPI (the case where passive-target progress may wait for the target):
// rank 0's group takes the first item and computes for `busy` ms; every other group's items
// are empty, so its time per item is the hand-out latency. Run with 2 or more ranks:
//   mpirun -np 2 build/release/tests/bench/bench_handout
// Counters: handout_us (mean time per item on the other groups), items_other (items they
// took while rank 0 was busy; 199 = all of them), mode 1 = thread, 2 = one-sided.
#include <benchmark/benchmark.h>
#include <mpi.h>

#include <chrono>
#include <string>
#include <vector>

#include "taskreach/schedule.hpp"

namespace {

using taskreach::HandOut;
using taskreach::Phase;
using taskreach::Scheduler;

double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

void spin_for(double seconds) {
  const double end = now_s() + seconds;
  volatile double x = 0;
  while (now_s() < end) x = x + 1.0;
}

void BM_HandOut(benchmark::State& state) {
  const HandOut prefer = state.range(0) == 0 ? HandOut::thread : HandOut::one_sided;
  const double busy = double(state.range(1)) * 1e-3;
  int rank = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  Scheduler sched(MPI_COMM_WORLD, 1, "", false, nullptr, prefer);
  int group_rank = 0;
  MPI_Comm_rank(sched.group(), &group_rank);
  const bool in_group0 = rank < sched.ranks_per_group();
  constexpr size_t kItems = 200;
  Phase phase{"bench", std::vector<double>(kItems, 1.0), std::vector<uint64_t>(kItems, 0),
              std::vector<std::string>(kItems, "item")};
  double latency = 0, items = 0;
  for (auto _ : state) {
    bool busy_done = false;
    int64_t mine = 0;
    double last = 0;
    const double t0 = now_s();
    sched.run(phase, [&](size_t) {
      if (in_group0 && !busy_done) {
        spin_for(busy);
        busy_done = true;
      } else if (!in_group0) {
        ++mine;
        last = now_s();
      }
      return std::vector<double>{1.0};
    });
    double mine_v[2] = {mine ? (last - t0) / double(mine) : 0.0, double(mine)};
    MPI_Allreduce(MPI_IN_PLACE, mine_v, 2, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
    latency = mine_v[0];
    items = mine_v[1];
  }
  state.counters["handout_us"] = latency * 1e6;
  state.counters["items_other"] = items;
  state.counters["mode"] = sched.hand_out() == HandOut::thread ? 1 : 2;
}
// (mechanism: 0 thread, 1 one-sided) × rank 0 busy for 50 or 500 ms.
BENCHMARK(BM_HandOut)->ArgsProduct({{0, 1}, {50, 500}})->Iterations(3)->Unit(benchmark::kMillisecond);

class QuietReporter : public benchmark::BenchmarkReporter {
 public:
  bool ReportContext(const Context&) override { return true; }
  void ReportRuns(const std::vector<Run>&) override {}
};

}  // namespace

int main(int argc, char** argv) {
  int provided = 0;
  MPI_Init_thread(&argc, &argv, MPI_THREAD_MULTIPLE, &provided);
  benchmark::Initialize(&argc, argv);
  int rank = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  QuietReporter quiet;
  if (rank == 0)
    benchmark::RunSpecifiedBenchmarks();
  else
    benchmark::RunSpecifiedBenchmarks(&quiet);
  benchmark::Shutdown();
  MPI_Finalize();
  return 0;
}
