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
  int64_t hvp_count = 0;
  double seconds = 0.0;
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

  Matrix<double> unions_C;          // [N,N], symmetric, diagonal = C
  Matrix<int64_t> unions_conflicts; // [N,N]
  Matrix<double> R, R_per_sample, stderr_total, stderr_probe, stderr_seed;  // [N,N]

  std::vector<SpectrumRecord> spectra;  // per task, job order
  std::vector<JobRecord> jobs;
};

}  // namespace taskreach
