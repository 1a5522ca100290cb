#pragma once
// Curvature spectrum and log-determinant: a PETSc MATSHELL over a distributed Vec, SLEPc
// for the top-k eigenpairs, deflated stochastic Lanczos quadrature for log det(I + cA).
#include <mpi.h>

#include <cstdint>
#include <string>
#include <vector>

#include "taskreach/curvature_operator.hpp"

namespace taskreach {

struct SpectrumOptions {
  int64_t top_k = 10;
  int64_t probes = 16;
  int64_t lanczos_steps = 30;    // m, or its least value with lanczos_max > lanczos_steps
  // m from the deflated spectrum: ⌈√(1 + c·λ_{k+1})⌉ within [lanczos_steps, lanczos_max]
  // (λ_{k+1} the largest eigenvalue of the complement; the least converged λ_k bounds it).
  int64_t lanczos_max = 0;      // ≤ lanczos_steps: m = lanczos_steps
  // At least this many steps, whatever the rule above chose (a paired R difference's rerun).
  int64_t min_lanczos_steps = 0;
  // Probes whose Lanczos runs advance together, one block product per step (0: all of them,
  // within a memory bound on their bases). Changes the data passes, not the values.
  int64_t probe_block = 0;
  double c = 1.0;              // log det(I + c·A)
  double c_alt = 0.0;          // > 0: the same log-det at a second c, from the same Lanczos runs
  uint64_t seed = 1;           // probes: counter-based, keyed by (seed, probe, index)
  double eps_tol = 1e-10;
  // The quadrature check acted on: where the m/2 values move the log det by more than a third
  // of its probe error, every probe goes on to 2m steps (once; the result says so).
  bool quadrature_check = false;
  std::string prefix = "curv_";  // options prefix for the EPS
};

struct SpectrumResult {
  std::vector<double> eigenvalues;   // top-k of A, descending
  std::vector<double> residuals;     // ‖A v − λ v‖ per pair (v unit)
  double logdet_top = 0.0;           // Σ_k log(1 + c λ_k)
  std::vector<double> probe_values;  // q_p: SLQ estimate of log det on the complement, per probe
  std::vector<double> probe_values_half;  // the same probes at m/2 Lanczos steps
  double logdet = 0.0;               // logdet_top + mean(q_p)
  double logdet_stderr = 0.0;        // std(q_p)/√P
  double quadrature_change = 0.0;    // |mean q(m) − mean q(m/2)|
  int64_t requested = 0, converged = 0;  // eigenpairs asked of the EPS and converged
  std::vector<double> probe_values_alt;  // at c_alt (empty without one)
  double logdet_alt = 0.0, logdet_alt_stderr = 0.0;
  std::vector<double> trace_probes;      // zᵀ P⊥AP⊥ z per probe (Hutchinson on the complement)
  double trace = 0.0, trace_stderr = 0.0;  // Σ_k λ_k + mean(trace_probes)
  // Spectral density: the top-k eigenvalues (weight 1/d each) and every probe's Gauss nodes
  // (weight τ² (d − k)/(d P)); the weights sum to 1.
  std::vector<double> esd_nodes, esd_weights;
  int64_t dim = 0;
  int64_t products = 0;              // operator applications (vectors)
  int64_t passes = 0;                // passes over the data: single or block products
  int64_t lanczos_steps = 0;         // m used
  bool lanczos_extended = false;     // m is twice the chosen one: the check failed at first
  int64_t probe_block = 0;           // probes per block product used
  double lambda_next = 0.0;          // the bound on λ_{k+1} that chose m
  double seconds = 0.0;
  double topk_seconds = 0.0, slq_seconds = 0.0;  // its split: the eigensolver, the quadrature
};

// Runs EPS then deflated SLQ on the operator distributed over `comm` (collective).
SpectrumResult estimate_spectrum(MPI_Comm comm, CurvatureOperator& op, const SpectrumOptions& opt);

// A v through the distributed MATSHELL over `comm` (collective); every rank gets all of A v.
std::vector<double> apply_distributed(MPI_Comm comm, CurvatureOperator& op, const std::vector<double>& v);

// One Rademacher entry (±1) of probe p at global index i: the same for any rank layout.
double rademacher(uint64_t seed, uint64_t probe, uint64_t index);

// Gauss rules of Lanczos tridiagonals: per probe, nodes θ_k (Ritz values) and weights τ_k²
// (squared first components of the eigenvectors; they sum to 1).
struct GaussRules {
  std::vector<std::vector<double>> nodes, weights;
};

// Gauss quadrature of f(θ) = log(1 + cθ) over Lanczos tridiagonals (Kokkos kernel, one probe
// per work item): alpha is [P][m_p], beta [P][m_p − 1]; returns, for each c of `cs`,
// Σ_k τ_k² log(1 + c·max(θ_k, 0)) per probe (to be scaled by ‖z‖²); the rules if asked.
std::vector<std::vector<double>> lanczos_quadrature(const std::vector<std::vector<double>>& alpha,
                                                    const std::vector<std::vector<double>>& beta,
                                                    const std::vector<double>& cs, GaussRules* rules);
std::vector<double> lanczos_quadrature(const std::vector<std::vector<double>>& alpha,
                                       const std::vector<std::vector<double>>& beta, double c);

// Eigenvalues and first eigenvector components of a symmetric tridiagonal (implicit QL).
void tridiagonal_eigen(std::vector<double>& diag, std::vector<double> offdiag,
                       std::vector<double>& first_components);

}  // namespace taskreach

namespace taskreach {
std::string petsc_version();
std::string slepc_version();
}  // namespace taskreach
