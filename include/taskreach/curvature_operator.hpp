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
  // The same for `count` vectors at once (v and out hold count·dim() values, vector after
  // vector), sharing one pass over the shard's data where the operator can; each output is
  // bitwise what apply_shard gives for its vector. The default applies them one by one.
  virtual void apply_shard_block(const double* v, double* out, int64_t count) {
    for (int64_t j = 0; j < count; ++j) apply_shard(v + j * dim(), out + j * dim());
  }
};

}  // namespace taskreach
