#pragma once
// What a run produces: one record per job and the assembled N×N matrices (all torch-,
// PETSc- and HDF5-free, so every module can read them).
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
  std::string status;  // ok | diverged | not_converged | eps_not_converged
  double seconds = 0.0;
  std::string record;  // key=value list: seed, γ, lr, B, steps, grad norm, dtype, threads
};

// Everything written to the HDF5 file; every rank holds all of it after the run.
struct RunOutput {
  std::map<std::string, std::string> attrs_str;
  std::map<std::string, double> attrs_f64;
  std::map<std::string, int64_t> attrs_i64;

  std::vector<std::string> task_names;
  std::vector<int64_t> num_samples, num_classes;

  // /complexity, length N
  std::vector<double> C, loss, weight_norm2, logdet, logdet_stderr, grad_norm;
  // Optional (written when of length N): C's error, C under both log-det conventions
  // (c = λ²/β "laplace", 2λ²/β "paper") with their errors, and the trace of the curvature.
  std::vector<double> C_stderr, C_laplace, C_laplace_stderr, C_paper, C_paper_stderr, trace, trace_stderr;

  Matrix<double> unions_C;          // [N,N], symmetric, diagonal = C
  Matrix<int64_t> unions_conflicts; // [N,N]
  Matrix<double> R, R_per_sample, stderr_total, stderr_probe, stderr_seed;  // [N,N]
  Matrix<double> stderr_probe_unpaired;  // optional: the probe error had the probes not been shared

  std::vector<SpectrumRecord> spectra;  // per task, job order
  std::vector<TrainingRecord> training; // per task, job order (written when of size N)

  // /finetune, written when finetune_threshold has N entries: T(i|j) in SGD steps (−1: not
  // reached), samples processed, and θ_i.
  Matrix<int64_t> finetune_steps, finetune_samples;
  std::vector<double> finetune_threshold;

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

}  // namespace taskreach
