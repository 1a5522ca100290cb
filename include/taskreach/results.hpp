#pragma once
// What a run produces: the result store (one durable record per finished job), one record
// per job and the assembled N×N matrices. All torch-, PETSc- and HDF5-free, so every module
// can read them.
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace taskreach {

// A dense row-major matrix.
template <typename T>
struct Matrix {
  int64_t rows = 0, cols = 0;
  std::vector<T> data;
  Matrix() = default;
  Matrix(int64_t r, int64_t c, T fill) : rows(r), cols(c), data(static_cast<size_t>(r * c), fill) {}
  T& operator()(int64_t i, int64_t j) { return data[static_cast<size_t>(i * cols + j)]; }
  const T& operator()(int64_t i, int64_t j) const { return data[static_cast<size_t>(i * cols + j)]; }
};

struct SpectrumRecord {
  std::vector<double> eigenvalues, residuals;
  std::vector<double> esd_nodes, esd_weights;  // spectral density (weights sum to 1)
  int64_t hvp_count = 0;
  double seconds = 0.0;
};

// The SGD run of a task's single job (seed 0): evaluations of the whole task.
struct TrainingRecord {
  std::vector<double> curve;        // rows of (step, mean loss, accuracy), flattened
  int64_t convergence_step = -1;    // first step with mean loss < train.loss_threshold
  double test_accuracy = -1.0;      // at w*, where the task has a test split
};

struct JobRecord {
  std::string name;    // e.g. "single:mnist/seed1", "union:mnist+fashion/seed1"
  // ok, or the job's flags joined by '+' (diverged, not_converged, eps_not_converged,
  // quadrature_unconverged); fine-tunes: ok | diverged | not_reached, scratch runs also unstable
  std::string status;
  double seconds = 0.0;
  // The job's settings and figures as text, "key=value key=value ..." in the order added.
  std::string record;
  // The numeric figures of `record` by name (sgd_steps, polish_passes, time_polish, ...):
  // /jobs/metrics/<name>, one [J] column per name, NaN where a job has no such figure.
  std::map<std::string, double> metrics;

  // A figure: into `record` and, unless NaN, `metrics`.
  void add(const std::string& key, double value);
  // A setting that is not a number (or a number a double cannot hold, like a 64-bit seed):
  // into `record` only.
  void add_text(const std::string& key, const std::string& value);
};

// What an entry of the reachability matrix carries (/reachability/flags, bits).
namespace reach_flag {
// The union's or the source's job (at some seed) diverged, did not converge in the polish or
// in the quadrature: R is stored (NaN where diverged) and left out of the analysis.
constexpr int64_t excluded = 1;
// Fewer top-k eigenpairs converged than asked for: deflation by fewer vectors, still unbiased.
constexpr int64_t eps_not_converged = 2;
// One seed: the seed part of the error is unknown (NaN), so nothing is judged resolved.
constexpr int64_t seed_error_unknown = 4;
// |R| > t·stderr, t the critical value at the Welch–Satterthwaite degrees of freedom.
constexpr int64_t resolved = 8;
// R < −t·stderr: impossible in theory (R ≥ 0), an optimisation failure.
constexpr int64_t negative = 16;
// θ_i is unstable (its scratch run still oscillates): T(i|·) is left out of the analysis.
constexpr int64_t unstable_target = 32;
// The quadrature check of the paired difference failed: the same probes at m/2 steps move
// β/2·(q(D_i ∪ D_j) − q(D_j)) by more than a third of stderr_probe. Set with `excluded`.
constexpr int64_t quadrature = 64;
}  // namespace reach_flag

// Everything written to the HDF5 file; every rank holds all of it after the run.
struct RunOutput {
  std::map<std::string, std::string> attrs_str;
  std::map<std::string, double> attrs_f64;
  std::map<std::string, int64_t> attrs_i64;

  std::vector<std::string> task_names;
  std::vector<int64_t> num_samples, num_classes;

  // /complexity, length N
  std::vector<double> C, loss, weight_norm2, logdet, logdet_stderr, grad_norm;
  // The status of each task's single job over its seeds (ok, or its flags joined by '+').
  std::vector<std::string> task_status;
  // Optional (written when of length N): C's error, C under both log-det conventions
  // (c = λ²/β "laplace", 2λ²/β "paper") with their errors, and the trace of the curvature.
  std::vector<double> C_stderr, C_laplace, C_laplace_stderr, C_paper, C_paper_stderr, trace, trace_stderr;

  Matrix<double> unions_C;          // [N,N], symmetric, diagonal = C
  Matrix<int64_t> unions_conflicts; // [N,N]
  Matrix<double> R, R_per_sample, stderr_total, stderr_probe, stderr_seed;  // [N,N]
  Matrix<double> stderr_probe_unpaired;  // optional: the probe error had the probes not been shared
  // The degrees of freedom of stderr (Welch–Satterthwaite: P − 1 probe, S − 1 seed) and the
  // critical value t they give, and the reach_flag bits of every entry.
  Matrix<double> dof, critical;
  Matrix<int64_t> flags;

  std::vector<SpectrumRecord> spectra;  // per task, job order
  std::vector<TrainingRecord> training; // per task, job order (written when of size N)

  // /finetune, written when finetune_threshold has N entries: T(i|j) in SGD steps (−1: not
  // reached), samples processed, and θ_i.
  Matrix<int64_t> finetune_steps, finetune_samples;
  std::vector<double> finetune_threshold;
  // max − min of the evaluations θ_i is the median of; θ_i is unstable (1) when it exceeds the
  // margin, and its row of T is left out of the analysis.
  std::vector<double> finetune_threshold_spread;
  std::vector<int64_t> finetune_unstable;

  // /analysis/<name> scalars (a name may hold '/', e.g. "baselines/scratch_cost/spearman_T").
  std::map<std::string, double> analysis;
  std::map<std::string, int64_t> analysis_i64;
  std::vector<JobRecord> jobs;

  // Groups of the learning-dynamics experiments (/convergence, /potential, /critical_period),
  // by full path: 1-D float64 datasets, string datasets, and string attributes of groups
  // (a fit's formula and parameter names).
  std::map<std::string, std::vector<double>> extra;
  std::map<std::string, std::vector<std::string>> extra_strings;
  std::map<std::string, std::map<std::string, std::string>> extra_attrs;
};

// The per-job result store: one file per finished job, named by its key (a hash of the
// effective inputs of that job alone). One format for every kind of stored result —
// measurements, fine-tune outcomes, weight snapshots: magic, key, writer, a short description
// (label, status, seconds), count, `count` doubles, FNV-1a of everything before it. Written
// through a temporary and fsync'ed; the first writer of a key wins (link(2)), so two runs that
// compute one job into a shared store leave exactly one whole record. A present but damaged
// record (truncated, bit rot, another key) is reported, removed and recomputed.
struct StoredInfo {
  std::string label;    // the job as the run that computed it named it, e.g. "single:mnist seed 0"
  std::string status;   // ok | diverged | not_converged | eps_not_converged | not_reached | ...
  double seconds = 0.0;
  uint64_t writer = 0;  // the process that computed it (names its checkpoints)
  uint64_t parent = 0;  // a result derived from another stored result (a paired rerun): its key
};

class ResultStore {
 public:
  ResultStore() = default;  // no directory: nothing is stored or found
  explicit ResultStore(std::string dir) : dir_(std::move(dir)) {}
  bool enabled() const { return !dir_.empty(); }
  const std::string& dir() const { return dir_; }
  std::string path_of(uint64_t key) const;
  bool contains(uint64_t key) const;
  // Empty when missing or damaged (then reported on stderr and removed).
  std::vector<double> read(uint64_t key, StoredInfo* info = nullptr) const;
  // True when this record is now the stored one; false when another writer's record of the
  // same key was there first (it is kept, this one is dropped).
  bool write(uint64_t key, const std::vector<double>& data, const StoredInfo& info = {}) const;
  // Removes the record of `key` (a stale one: its checkpoint is gone).
  void remove(uint64_t key) const;
  // Creates the directory and removes temporaries of writers killed mid-write (older than an
  // hour, so that a concurrent writer's temporary is never touched).
  void prepare() const;

  // Every record in the directory, checked but never removed: `damage` says what is wrong.
  struct Entry {
    uint64_t key = 0;
    StoredInfo info;
    std::string path, damage;
    uint64_t bytes = 0;
  };
  std::vector<Entry> list() const;

 private:
  std::string dir_;
};

struct JobConfig;
struct TaskSet;
struct PlannedJob;
struct Measurement;

// The root attributes of every run's output: the job (verbatim), conventions, versions, ranks.
void job_attributes(RunOutput& out, const JobConfig& job, int world_size);

// Assembly of a reachability run's output (DESIGN §5): /tasks, /complexity, /unions, R and its
// errors, /spectra, training records and the jobs' records, from the measurements
// `by_job[j][s]` of planned job j at seed s (job_of[i][j]: the job of D_i ∪ D_j).
void assemble_reachability(RunOutput& out, const JobConfig& job, const TaskSet& tasks,
                           const std::vector<PlannedJob>& jobs, const std::vector<std::vector<int64_t>>& job_of,
                           const std::vector<std::vector<const Measurement*>>& by_job);

// One paired difference C(u) − C(s) (R(i|j): u the union's job, s the single's) over the
// probes both jobs share: per probe, the log-det term of the seed-averaged difference at m
// Lanczos steps and at m/2 (empty where either job has no probe values, e.g. diverged).
struct PairedDifference {
  std::vector<double> at_m, at_half;
  // The m/2 check of the difference: its mean moves by more than a third of its stderr.
  bool quadrature_unconverged() const;
};
PairedDifference paired_difference(double beta, const std::vector<const Measurement*>& u,
                                   const std::vector<const Measurement*>& s);

}  // namespace taskreach
