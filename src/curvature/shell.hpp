#pragma once
// Internal: the curvature operator as a PETSc MATSHELL over a distributed Vec.
#include "petsc.hpp"
#include "taskreach/curvature.hpp"

#include <vector>

namespace taskreach::detail {

// MatMult gathers x to every rank (scatter created once), applies the rank's shard of
// the operator and reduce-scatters the partial products back into y's layout. The ranks
// agree on the shard's outcome first: a shard that throws on one rank makes MatMult fail
// with the same PETSc error on every rank ("product failed on rank r: …"), never a rank
// left waiting in the reduce-scatter. Everything lives on a duplicate of `comm` with
// MPI_ERRORS_RETURN.
class ShellOperator {
 public:
  ShellOperator(MPI_Comm comm, CurvatureOperator& op);
  ShellOperator(const ShellOperator&) = delete;
  ShellOperator& operator=(const ShellOperator&) = delete;
  MPI_Comm comm() const { return comm_; }
  Mat mat() const { return mat_; }
  Vec vec_like() const { return x_; }           // a distributed Vec of the operator's layout
  int64_t products() const { return products_; }  // vectors applied
  int64_t passes() const { return passes_; }      // MatMults and block products
  // y[j] = A x[j] for every j in one block product (one pass over each shard's data), with
  // MatMult's agreement on the shards' outcome: throws the same error on every rank.
  void mult_block(const std::vector<Vec>& x, const std::vector<Vec>& y);
  double seconds() const { return seconds_; }

 private:
  static PetscErrorCode mult(Mat A, Vec x, Vec y);
  CurvatureOperator& op_;
  OwnedComm comm_;  // first: outlives the PETSc objects created on it
  OwnedMat mat_;
  OwnedVec x_, full_;
  OwnedScatter to_all_;
  std::vector<double> partial_;
  std::vector<int> counts_;
  std::vector<double> block_in_, block_out_, block_send_, block_recv_;
  int64_t products_ = 0, passes_ = 0;
  double seconds_ = 0.0;
};

}  // namespace taskreach::detail
