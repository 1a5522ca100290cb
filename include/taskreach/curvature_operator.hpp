#pragma once
// The operator the curvature module works on, without MPI or PETSc: the train module's
// torch product implements it, and tests/gpu/ builds that product with LibTorch alone.
#include <cstdint>

namespace taskreach {

// A symmetric PSD operator on R^d given as a sum over the ranks' data shards.
class CurvatureOperator {
 public:
  virtual ~CurvatureOperator() = default;
  virtual int64_t dim() const = 0;
  // out = this rank's contribution to A v; v and out have length dim().
  virtual void apply_shard(const double* v, double* out) = 0;
};

}  // namespace taskreach
