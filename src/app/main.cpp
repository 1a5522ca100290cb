// taskreach: run / merge / validate / info / simulate / store. MPI, then SLEPc (PETSc), then Kokkos are initialised
// here and finalised in reverse; MPI_COMM_WORLD is named in this file only.
#include <hdf5.h>
#include <mpi.h>
#include <slepcsys.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <Kokkos_Core.hpp>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <map>
#include <set>
#include <sstream>

#include "taskreach/config.hpp"
#include "taskreach/curvature.hpp"
#include "taskreach/data.hpp"
#include "taskreach/experiments.hpp"
#include "taskreach/io.hpp"
#include "report.hpp"
#include "taskreach/schedule.hpp"
#include "taskreach/train.hpp"
#include "taskreach/util.hpp"

namespace fs = std::filesystem;
using namespace taskreach;

namespace {

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// PETSc/SLEPc options (-name [value]) go to PETSc's options database; the rest to CLI11.
// A single-dash word longer than two characters is a PETSc option; the word after it is its
// value unless it starts with '-' or is the job file / a subcommand the user gave first.
void split_args(int argc, char** argv, std::vector<std::string>& ours, std::vector<char*>& petsc) {
  petsc.push_back(argv[0]);
  ours.push_back(argv[0]);
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a.size() > 2 && a[0] == '-' && a[1] != '-') {
      petsc.push_back(argv[i]);
      if (i + 1 < argc && argv[i + 1][0] != '-' && !ends_with(argv[i + 1], ".toml") &&
          !ends_with(argv[i + 1], ".h5"))
        petsc.push_back(argv[++i]);
    } else {
      ours.push_back(a);
    }
  }
  petsc.push_back(nullptr);
}

std::string hdf5_version() {
  unsigned maj = 0, min = 0, rel = 0;
  H5get_libversion(&maj, &min, &rel);
  return std::to_string(maj) + "." + std::to_string(min) + "." + std::to_string(rel);
}

// This rank's index among the ranks of its node: picks its GPU.
int local_rank(MPI_Comm world) {
  MPI_Comm node;
  MPI_Comm_split_type(world, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &node);
  int r = 0;
  MPI_Comm_rank(node, &r);
  MPI_Comm_free(&node);
  return r;
}

int threads_from_env() {
  const char* v = std::getenv("OMP_NUM_THREADS");
  return v ? std::max(1, std::atoi(v)) : 1;
}

// Loads the job and its data on every rank; an input error on any rank is reported once
// and every rank returns false, so no rank is left waiting in a collective.
bool load_everywhere(MPI_Comm world, const std::string& path, JobConfig& job, TaskSet& tasks) {
  int rank = 0;
  MPI_Comm_rank(world, &rank);
  std::string error;
  try {
    job = load_job(path);
    // A reachability run renders each job's features when the job runs (a rank holds the N
    // tasks as headers and the job it works on); the learning-dynamics experiments rerun a few
    // tasks many times and keep their features.
    tasks = build_tasks(job, job.experiment == Experiment::reachability ? Features::on_demand : Features::render);
  } catch (const InputError& e) {
    error = e.what();
  }
  int bad = error.empty() ? 0 : 1, first_bad = bad ? rank : INT32_MAX;
  MPI_Allreduce(MPI_IN_PLACE, &first_bad, 1, MPI_INT, MPI_MIN, world);
  if (first_bad == INT32_MAX) return true;
  if (rank == first_bad) std::cerr << "taskreach: error: " << error << std::endl;
  return false;
}

// The output directory must exist and be writable before hours of work start.
std::string check_output(const std::string& output) {
  fs::path dir = fs::path(output).parent_path();
  if (dir.empty()) dir = ".";
  if (!fs::is_directory(dir)) return "--output " + output + ": directory " + dir.string() + " does not exist";
  if (::access(dir.c_str(), W_OK) != 0) return "--output " + output + ": directory " + dir.string() + " is not writable";
  return {};
}

// What `run` and `merge` are asked to do beyond the job file.
struct RunRequest {
  std::string output, store;   // store: default OUTPUT.work
  std::string shard;           // "i/K" (1-based i), empty: the whole job
  double wait_seconds = 600;
  bool merge = false;
};

// "i/K" with 1 <= i <= K: the shard's 0-based index and K; throws InputError otherwise.
std::pair<int, int> parse_shard(const std::string& text) {
  const size_t slash = text.find('/');
  int i = 0, k = 0;
  char rest = 0;
  if (slash == std::string::npos || std::sscanf(text.c_str(), "%d/%d%c", &i, &k, &rest) != 2 || k < 1 || i < 1 ||
      i > k)
    throw InputError("--shard " + text + ": expected i/K with 1 <= i <= K, e.g. --shard 2/3");
  return {i - 1, k};
}

int cmd_run(MPI_Comm world, const std::string& job_path, RunRequest req, const std::string& device) {
  int rank = 0, size = 1;
  MPI_Comm_rank(world, &rank);
  MPI_Comm_size(world, &size);
  JobConfig job;
  TaskSet tasks;
  if (!load_everywhere(world, job_path, job, tasks)) return 2;
  std::string& output = req.output;
  if (output.empty()) output = fs::path(job_path).stem().string() + ".h5";
  const bool sharded = !req.shard.empty();
  std::pair<int, int> shard{0, 0};
  if (sharded) shard = parse_shard(req.shard);
  if (!sharded) {
    if (std::string err = check_output(output); !err.empty()) {
      if (rank == 0) std::cerr << "taskreach: error: " << err << std::endl;
      return 2;
    }
  }
  const bool reachability = job.experiment == Experiment::reachability;
  if ((sharded || req.merge) && !reachability)
    throw InputError(job.path + ": experiment: " + (req.merge ? "merge" : "--shard") + " needs experiment = \"reachability\", not '" +
                     to_string(job.experiment) + "'");
  Plan plan;
  if (reachability) plan = make_plan(job, tasks);
  // On every rank: an experiment's task variants are built here, and a bad one must stop all
  // ranks at the same point, before anything collective.
  const std::string described =
      reachability ? describe_plan(job, tasks, plan, size) : describe_experiment(job, tasks, size);
  if (rank == 0) std::cout << described << "device: " << device << " (rank 0)\n" << std::flush;
  // The store: checkpoints of every w* and every finished job, by default beside the output.
  const std::string workdir = req.store.empty() ? output + ".work" : req.store;
  if (rank == 0) std::cout << "store: " << workdir << "\n" << std::flush;
  int made = 1;
  if (rank == 0 && !req.merge) {
    std::error_code ec;
    fs::create_directories(workdir, ec);
    made = ec ? 0 : 1;
    if (ec) std::cerr << "taskreach: error: " << workdir << ": cannot create the work directory: " << ec.message() << std::endl;
  }
  MPI_Bcast(&made, 1, MPI_INT, 0, world);
  if (!made) return 3;
  std::string again = "taskreach run " + job_path + " --output " + output;
  if (!req.store.empty()) again += " --store " + req.store;
  if (sharded) again += " --shard " + req.shard;
  const std::string resume_hint = "resume with: " + again + " --resume";
  if (rank == 0 && !req.merge)
    set_stop_announcement("taskreach: stop signal received: stopping after the jobs in progress; finished jobs are kept in " +
                          workdir + "; " + resume_hint);
  RunOptions options;
  options.workdir = workdir;
  options.resume = true;
  options.progress = rank == 0 ? &std::cout : nullptr;
  options.shard = shard.first;
  options.shards = shard.second;
  options.wait_seconds = req.wait_seconds;
  options.merge = req.merge;
  RunOutput out;
  try {
    out = reachability ? run_reachability(world, job, tasks, plan, options) : run_experiment(world, job, tasks, options);
  } catch (const Interrupted& e) {
    if (rank == 0)
      std::cerr << "taskreach: " << e.what() << "; finished jobs are kept in " << workdir
                << "; " << resume_hint << std::endl;
    return 4;
  } catch (const MissingJobs& e) {
    if (rank == 0) std::cerr << "taskreach: error: merge " << job_path << ": " << e.what() << "; nothing written" << std::endl;
    return 5;
  }
  const auto count = [&](const char* name) { return out.attrs_i64.count(name) ? out.attrs_i64.at(name) : 0; };
  if (rank == 0 && !req.merge)
    std::cout << "jobs: " << count("jobs_computed") << " computed, " << count("jobs_reused") << " reused"
              << (count("jobs_dropped") ? ", " + std::to_string(count("jobs_dropped")) +
                                              " dropped (another run stored them first)"
                                        : "")
              << " (store " << workdir << ")" << std::endl;
  if (sharded) {
    if (rank == 0)
      std::cout << "shard " << req.shard << ": " << count("shard_jobs") << " jobs in this shard"
                << (count("jobs_waiting") ? ", " + std::to_string(count("jobs_waiting")) + " still waiting for " +
                                                out.attrs_str["waited_for"]
                                          : ", all in the store")
                << "; no matrix written (assemble with: taskreach merge " << job_path << " --output " << output
                << (req.store.empty() ? "" : " --store " + req.store) << ")" << std::endl;
    return count("jobs_waiting") ? 5 : 0;
  }
  out.attrs_str["version"] = TASKREACH_VERSION;
  out.attrs_str["device"] = device;
  out.attrs_str["petsc"] = petsc_version();
  out.attrs_str["slepc"] = slepc_version();
  out.attrs_str["hdf5"] = hdf5_version();
  out.attrs_str["kokkos"] = std::to_string(KOKKOS_VERSION);
  write_output(world, output, out);
  if (rank == 0) std::cout << "result: " << fs::absolute(output).string() << "\n" << format_info(out) << std::flush;
  return 0;
}

// `store ls DIR`: every stored job (label, key, status, seconds) and the checkpoints.
int cmd_store_ls(MPI_Comm world, const std::string& dir) {
  int rank = 0;
  MPI_Comm_rank(world, &rank);
  if (rank != 0) return 0;
  if (!fs::is_directory(dir)) throw InputError(dir + ": not a directory (a store is OUTPUT.work/ or --store DIR)");
  const ResultStore store(dir + "/jobs");
  const auto entries = store.list();
  double seconds = 0;
  int64_t damaged = 0;
  std::printf("%-44s %-16s %-18s %10s\n", "job", "key", "status", "seconds");
  for (const auto& e : entries) {
    const std::string status = e.damage.empty() ? e.info.status : "damaged (" + e.damage + ")";
    std::printf("%-44s %-16s %-18s %10.1f\n", e.damage.empty() ? e.info.label.c_str() : "?",
                util::hex16(e.key).c_str(), status.c_str(), e.info.seconds);
    seconds += e.info.seconds;
    damaged += !e.damage.empty();
  }
  int64_t checkpoints = 0;
  std::error_code ec;
  for (const auto& f : fs::directory_iterator(dir + "/ckpt", ec)) checkpoints += f.path().extension() == ".pt";
  std::printf("%zu jobs (%lld damaged), %.1f s of computing; %lld checkpoints in %s/ckpt\n", entries.size(),
              static_cast<long long>(damaged), seconds, static_cast<long long>(checkpoints), dir.c_str());
  return 0;
}

// `store gc DIR --keep JOB...`: removes every stored job and checkpoint that none of the job
// files uses (and temporaries of killed writers).
int cmd_store_gc(MPI_Comm world, const std::string& dir, const std::vector<std::string>& keep) {
  int rank = 0;
  MPI_Comm_rank(world, &rank);
  if (!fs::is_directory(dir)) throw InputError(dir + ": not a directory (a store is OUTPUT.work/ or --store DIR)");
  std::set<uint64_t> used;
  for (const auto& path : keep) {
    JobConfig job;
    TaskSet tasks;
    if (!load_everywhere(world, path, job, tasks)) return 2;
    if (job.experiment != Experiment::reachability)
      throw InputError(path + ": experiment: store gc knows the jobs of experiment = \"reachability\" only, not '" +
                       to_string(job.experiment) + "'");
    for (const auto& sj : stored_jobs(job, tasks, make_plan(job, tasks))) used.insert(sj.key);
  }
  if (rank != 0) return 0;
  const ResultStore store(dir + "/jobs");
  std::map<uint64_t, uint64_t> writer;  // kept key → the writer its checkpoint must have
  int64_t removed = 0, kept = 0, ckpt_removed = 0;
  uintmax_t bytes = 0;
  for (const auto& e : store.list()) {
    // A paired rerun is kept with the measurement it reran.
    if ((used.count(e.key) || (e.info.parent && used.count(e.info.parent))) && e.damage.empty()) {
      writer[e.key] = e.info.writer;
      ++kept;
      continue;
    }
    std::error_code ec;
    bytes += e.bytes;
    if (fs::remove(e.path, ec)) ++removed;
  }
  std::error_code ec;
  for (const auto& f : fs::directory_iterator(dir + "/ckpt", ec)) {
    // KEY.WRITER.pt (and .pt.sgd): kept only as the checkpoint of a kept record.
    const std::string name = f.path().filename().string();
    bool keep_it = false;
    if (name.size() >= 36 && name[16] == '.') {
      const uint64_t key = std::strtoull(name.substr(0, 16).c_str(), nullptr, 16);
      const uint64_t w = std::strtoull(name.substr(17, 16).c_str(), nullptr, 16);
      const auto it = writer.find(key);
      keep_it = it != writer.end() && it->second == w && name.find(".tmp") == std::string::npos;
    }
    if (keep_it) continue;
    std::error_code ec2;
    const uintmax_t sz = fs::file_size(f.path(), ec2);
    if (fs::remove(f.path(), ec2)) {
      ++ckpt_removed;
      bytes += ec2 ? 0 : sz;
    }
  }
  std::printf("store gc %s: kept %lld jobs used by %zu job file(s); removed %lld jobs and %lld checkpoint files "
              "(%.1f MB)\n",
              dir.c_str(), static_cast<long long>(kept), keep.size(), static_cast<long long>(removed),
              static_cast<long long>(ckpt_removed), double(bytes) / 1e6);
  return 0;
}

int cmd_validate(MPI_Comm world, const std::string& job_path) {
  int rank = 0, size = 1;
  MPI_Comm_rank(world, &rank);
  MPI_Comm_size(world, &size);
  JobConfig job;
  TaskSet tasks;
  if (!load_everywhere(world, job_path, job, tasks)) return 2;
  // Every rank built the data on its own; max(f) and max(~f) agree only if all f are equal.
  const uint64_t mine = fingerprint(tasks);
  uint64_t fp[2] = {mine, ~mine};
  MPI_Allreduce(MPI_IN_PLACE, fp, 2, MPI_UINT64_T, MPI_MAX, world);
  if (fp[0] != ~fp[1]) {
    if (rank == 0) std::cerr << "taskreach: error: the ranks built different data (fingerprints differ)" << std::endl;
    return 1;
  }
  // Experiments build their own task variants: errors in them surface here too.
  const std::string plan = job.experiment == Experiment::reachability ? describe_plan(job, tasks, make_plan(job, tasks), size)
                                                           : describe_experiment(job, tasks, size);
  if (rank == 0) {
    char hex[24];
    std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(fp[0]));
    std::cout << describe_tasks(job, tasks) << "data fingerprint " << hex << " (equal on all " << size
              << " ranks)\n" << plan << "valid\n";
  }
  return 0;
}

int cmd_info(MPI_Comm world, const std::string& path) {
  int rank = 0;
  MPI_Comm_rank(world, &rank);
  if (rank != 0) return 0;
  std::cout << format_info(read_output(path));
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  // Only the main thread calls MPI: the scheduler's dynamic hand-out is a one-sided counter,
  // so the run never asks for (or pays for) MPI_THREAD_MULTIPLE.
  int provided = MPI_THREAD_SINGLE;
  MPI_Init_thread(&argc, &argv, MPI_THREAD_FUNNELED, &provided);
  install_stop_handlers();
  MPI_Comm world = MPI_COMM_WORLD;
  int rank = 0;
  MPI_Comm_rank(world, &rank);

  std::vector<std::string> ours;
  std::vector<char*> petsc_argv;
  split_args(argc, argv, ours, petsc_argv);

  CLI::App app{"taskreach: how hard is it to learn task A starting from task B?"};
  app.set_version_flag("--version", std::string("taskreach ") + TASKREACH_VERSION);
  app.require_subcommand(1);
  std::string job_path, result_path;
  RunRequest req;
  auto* run = app.add_subcommand("run", "compute C_beta of every task and union, and R(i|j)");
  run->add_option("job", job_path, "job file (TOML)")->required();
  run->add_option("-o,--output", req.output, "result file (HDF5); default JOBNAME.h5 in the current directory");
  run->add_option("--store", req.store,
                  "result store shared between runs (default OUTPUT.work/): every job found there is reused");
  run->add_option("--shard", req.shard, "i/K: compute only shard i of K into the store, write no matrix");
  run->add_option("--wait", req.wait_seconds,
                  "with --shard: seconds to wait for jobs of other shards a fine-tune needs (default 600)")
      ->check(CLI::NonNegativeNumber);
  bool resume = false;
  run->add_flag("--resume", resume,
                "accepted for older scripts: every valid stored result is reused anyway (keys name every input)");
  auto* merge = app.add_subcommand("merge", "assemble the result of a job from its store (after --shard runs)");
  merge->add_option("job", job_path, "job file (TOML)")->required();
  merge->add_option("-o,--output", req.output, "result file (HDF5); default JOBNAME.h5 in the current directory");
  merge->add_option("--store", req.store, "result store (default OUTPUT.work/)");
  auto* store_cmd = app.add_subcommand("store", "inspect or clean a result store");
  store_cmd->require_subcommand(1);
  std::string store_dir;
  std::vector<std::string> keep_jobs;
  auto* store_ls = store_cmd->add_subcommand("ls", "list what a store holds: job, key, status, seconds");
  store_ls->add_option("dir", store_dir, "store directory (OUTPUT.work/ or a --store DIR)")->required();
  auto* store_gc = store_cmd->add_subcommand("gc", "remove every stored job that none of the given job files uses");
  store_gc->add_option("dir", store_dir, "store directory")->required();
  store_gc->add_option("--keep", keep_jobs, "job files whose jobs are kept")->required();
  auto* validate = app.add_subcommand("validate", "parse the job, load its data, print the plan and its size");
  validate->add_option("job", job_path, "job file (TOML)")->required();
  auto* info = app.add_subcommand("info", "print a result file's matrices and summary");
  info->add_option("result", result_path, "result file (HDF5)")->required();
  auto* simulate = app.add_subcommand("simulate", "replay measured job costs on P ranks: predicted makespan");
  int sim_ranks = 1, sim_rpt = 1;
  int64_t sim_tasks = 0;
  simulate->add_option("--ranks", sim_ranks, "ranks P")->required()->check(CLI::PositiveNumber);
  simulate->add_option("--ranks-per-task", sim_rpt, "ranks per task group")->check(CLI::PositiveNumber);
  simulate->add_option("--costs", result_path, "a result file whose job costs to replay")->required();
  simulate->add_option("--tasks", sim_tasks, "number of tasks N (default: as measured)")->check(CLI::NonNegativeNumber);
  int sim_shards = 0;
  simulate->add_option("--shards", sim_shards, "also predict K shards (run --shard i/K), each on groups/K groups")
      ->check(CLI::PositiveNumber);
  app.footer("PETSc/SLEPc options (e.g. -curv_eps_type arnoldi -curv_eps_tol 1e-8) are passed through.");

  int rc = 0;
  std::vector<const char*> cli_argv;
  for (const auto& s : ours) cli_argv.push_back(s.c_str());
  try {
    app.parse(static_cast<int>(cli_argv.size()), cli_argv.data());
  } catch (const CLI::ParseError& e) {
    rc = rank == 0 ? app.exit(e) : (e.get_exit_code() ? e.get_exit_code() : 0);
    MPI_Finalize();
    return rc;
  }

  int petsc_argc = static_cast<int>(petsc_argv.size()) - 1;
  char** pargv = petsc_argv.data();
  if (SlepcInitialize(&petsc_argc, &pargv, nullptr, nullptr)) {
    std::cerr << "taskreach: error: SLEPc initialisation failed\n";
    MPI_Abort(world, 1);
  }
  {
    Kokkos::ScopeGuard kokkos;
    set_threads(threads_from_env());
    const std::string device = select_device(local_rank(world));
    try {
      if (*run) {
        rc = cmd_run(world, job_path, req, device);
      } else if (*merge) {
        req.merge = true;
        rc = cmd_run(world, job_path, req, device);
      } else if (*store_ls) {
        rc = cmd_store_ls(world, store_dir);
      } else if (*store_gc) {
        rc = cmd_store_gc(world, store_dir, keep_jobs);
      } else if (*validate) rc = cmd_validate(world, job_path);
      else if (*info) rc = cmd_info(world, result_path);
      else if (*simulate && rank == 0) {
        const RunOutput measured = read_output(result_path);
        const auto r = simulate_schedule(measured, sim_ranks, sim_rpt, sim_tasks);
        std::printf("simulated %lld jobs for %lld tasks on %d ranks (%d groups of %d): makespan %.1f s, "
                    "work %.1f rank-s, parallel efficiency %.3f\n",
                    static_cast<long long>(r.jobs),
                    static_cast<long long>(sim_tasks > 0 ? sim_tasks : int64_t(measured.task_names.size())), sim_ranks,
                    r.groups, std::min(sim_rpt, sim_ranks), r.makespan, r.work, r.efficiency);
        if (sim_shards > 0) {
          const auto sh = simulate_shards(measured, sim_ranks, sim_rpt, sim_tasks, sim_shards);
          std::printf("as %d shards of %d group(s) each, all started at once: longest shard %.1f s (one job: %.1f s); "
                      "groups held %.1f group-s (one job: %.1f group-s, %.1f%% of it idle), saving %.1f%%\n",
                      sim_shards, sh.groups_per_shard, sh.longest, sh.whole.makespan, sh.held, sh.whole_held,
                      100.0 * (1.0 - sh.whole.work / double(std::min(sim_rpt, sim_ranks)) / sh.whole_held),
                      100.0 * (1.0 - sh.held / sh.whole_held));
          double longest = 0;
          for (double m : sh.wide_shard_makespan) longest = std::max(longest, m);
          std::printf("as %d shards one after another, each on all %d group(s): the longest %.1f s, in all %.1f s "
                      "(one job: %.1f s, overhead %.2f%%)\n",
                      sim_shards, sh.whole.groups, longest, sh.wide_total, sh.whole.makespan,
                      100.0 * (sh.wide_total / sh.whole.makespan - 1.0));
        }
      }
    } catch (const InputError& e) {
      // Raised alike on every rank (the job and the data are the same everywhere): said once.
      if (rank == 0) std::cerr << "taskreach: error: " << e.what() << std::endl;
      rc = 2;
    } catch (const IoError& e) {
      if (rank == 0) std::cerr << "taskreach: error: " << e.what() << std::endl;
      rc = 3;
    } catch (const std::exception& e) {
      // A failure inside a collective phase: other ranks may be waiting in it.
      std::cerr << "taskreach: error (rank " << rank << "): " << e.what() << std::endl;
      MPI_Abort(world, 1);
    }
  }
  SlepcFinalize();
  MPI_Finalize();
  return rc;
}
