// taskreach: run / validate / info. MPI, then SLEPc (PETSc), then Kokkos are initialised
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
#include <sstream>

#include "taskreach/config.hpp"
#include "taskreach/curvature.hpp"
#include "taskreach/data.hpp"
#include "taskreach/experiments.hpp"
#include "taskreach/io.hpp"
#include "report.hpp"
#include "taskreach/schedule.hpp"
#include "taskreach/train.hpp"

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
    tasks = build_tasks(job);
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

int cmd_run(MPI_Comm world, const std::string& job_path, std::string output, const std::string& device, bool resume) {
  int rank = 0, size = 1;
  MPI_Comm_rank(world, &rank);
  MPI_Comm_size(world, &size);
  JobConfig job;
  TaskSet tasks;
  if (!load_everywhere(world, job_path, job, tasks)) return 2;
  if (output.empty()) output = fs::path(job_path).stem().string() + ".h5";
  if (std::string err = check_output(output); !err.empty()) {
    if (rank == 0) std::cerr << "taskreach: error: " << err << std::endl;
    return 2;
  }
  const bool reachability = job.experiment == Experiment::reachability;
  Plan plan;
  if (reachability) plan = make_plan(job, tasks);
  // On every rank: an experiment's task variants are built here, and a bad one must stop all
  // ranks at the same point, before anything collective.
  const std::string described =
      reachability ? describe_plan(job, tasks, plan, size) : describe_experiment(job, tasks, size);
  if (rank == 0) std::cout << described << "device: " << device << " (rank 0)\n" << std::flush;
  // Checkpoints of every w* live beside the output, in OUTPUT.work/.
  const std::string workdir = output + ".work";
  int made = 1;
  if (rank == 0) {
    std::error_code ec;
    fs::create_directories(workdir, ec);
    made = ec ? 0 : 1;
    if (ec) std::cerr << "taskreach: error: " << workdir << ": cannot create the work directory: " << ec.message() << std::endl;
  }
  MPI_Bcast(&made, 1, MPI_INT, 0, world);
  if (!made) return 3;
  const std::string resume_hint = "resume with: taskreach run " + job_path + " --output " + output + " --resume";
  if (rank == 0)
    set_stop_announcement("taskreach: stop signal received: stopping after the jobs in progress; finished jobs are kept in " +
                          workdir + "; " + resume_hint);
  RunOptions options;
  options.workdir = workdir;
  options.resume = resume;
  options.progress = rank == 0 ? &std::cout : nullptr;
  RunOutput out;
  try {
    out = reachability ? run_reachability(world, job, tasks, plan, options) : run_experiment(world, job, tasks, options);
  } catch (const Interrupted& e) {
    if (rank == 0)
      std::cerr << "taskreach: " << e.what() << "; finished jobs are kept in " << workdir
                << "; " << resume_hint << std::endl;
    return 4;
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
  std::string job_path, output, result_path;
  auto* run = app.add_subcommand("run", "compute C_beta of every task and union, and R(i|j)");
  run->add_option("job", job_path, "job file (TOML)")->required();
  run->add_option("-o,--output", output, "result file (HDF5); default JOBNAME.h5 in the current directory");
  bool resume = false;
  run->add_flag("--resume", resume, "reuse the finished jobs of an earlier run of the same job file (OUTPUT.work/)");
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
      if (*run) rc = cmd_run(world, job_path, output, device, resume);
      else if (*validate) rc = cmd_validate(world, job_path);
      else if (*info) rc = cmd_info(world, result_path);
      else if (*simulate && rank == 0) {
        const RunOutput measured = read_output(result_path);
        const auto r = simulate_schedule(measured, sim_ranks, sim_rpt, sim_tasks);
        std::printf("simulated %lld jobs for %lld tasks on %d ranks (%d groups of %d): makespan %.1f s, "
                    "work %.1f rank-s, parallel efficiency %.3f\n",
                    static_cast<long long>(r.jobs),
                    static_cast<long long>(sim_tasks > 0 ? sim_tasks : int64_t(measured.task_names.size())), sim_ranks,
                    r.groups, std::min(sim_rpt, sim_ranks), r.makespan, r.work, r.efficiency);
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
