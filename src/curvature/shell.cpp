#include "shell.hpp"

#include "taskreach/collective.hpp"

#include <algorithm>
#include <chrono>
#include <type_traits>

static_assert(std::is_same_v<PetscScalar, double>, "taskreach needs a real, double-precision PETSc");

namespace taskreach::detail {

ShellOperator::ShellOperator(MPI_Comm comm, CurvatureOperator& op) : op_(op), comm_(comm) {
  const PetscInt d = static_cast<PetscInt>(op.dim());
  TASKREACH_PETSC(VecCreateMPI(comm_, PETSC_DECIDE, d, &x_));
  PetscInt local = 0;
  TASKREACH_PETSC(VecGetLocalSize(x_, &local));
  TASKREACH_PETSC(MatCreateShell(comm_, local, local, d, d, this, &mat_));
  TASKREACH_PETSC(MatShellSetOperation(mat_, MATOP_MULT, reinterpret_cast<void (*)(void)>(&ShellOperator::mult)));
  TASKREACH_PETSC(MatSetOption(mat_, MAT_SYMMETRIC, PETSC_TRUE));
  TASKREACH_PETSC(VecScatterCreateToAll(x_, &to_all_, &full_));
  partial_.resize(static_cast<size_t>(d));
  const PetscInt* ranges = nullptr;
  TASKREACH_PETSC(VecGetOwnershipRanges(x_, &ranges));
  int size = 1;
  TASKREACH_MPI(MPI_Comm_size(comm_, &size));
  for (int r = 0; r < size; ++r) counts_.push_back(static_cast<int>(ranges[r + 1] - ranges[r]));
}

PetscErrorCode ShellOperator::mult(Mat A, Vec x, Vec y) {
  ShellOperator* self = nullptr;
  MPI_Comm comm;
  PetscFunctionBeginUser;
  PetscCall(MatShellGetContext(A, &self));
  PetscCall(PetscObjectGetComm(reinterpret_cast<PetscObject>(A), &comm));
  const auto t0 = std::chrono::steady_clock::now();
  PetscCall(VecScatterBegin(self->to_all_, x, self->full_, INSERT_VALUES, SCATTER_FORWARD));
  PetscCall(VecScatterEnd(self->to_all_, x, self->full_, INSERT_VALUES, SCATTER_FORWARD));
  const PetscScalar* v = nullptr;
  PetscCall(VecGetArrayRead(self->full_, &v));
  const std::string what = util::failure_of([&] { self->op_.apply_shard(v, self->partial_.data()); });
  const bool ok = what.empty();
  PetscCall(VecRestoreArrayRead(self->full_, &v));
  // Every rank joins the agreement whatever its shard did; then all fail alike or go on.
  int failed = -1;
  std::string message;
  PetscCall(agree(comm, ok, what, &failed, &message));
  PetscCheck(failed < 0, PETSC_COMM_SELF, PETSC_ERR_LIB, "product failed on rank %d: %s", failed, message.c_str());
  PetscScalar* out = nullptr;
  PetscCall(VecGetArray(y, &out));
  PetscCallMPI(MPI_Reduce_scatter(self->partial_.data(), out, self->counts_.data(), MPI_DOUBLE, MPI_SUM, comm));
  PetscCall(VecRestoreArray(y, &out));
  ++self->products_;
  ++self->passes_;
  self->seconds_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  PetscFunctionReturn(0);
}

void ShellOperator::mult_block(const std::vector<Vec>& x, const std::vector<Vec>& y) {
  const auto t0 = std::chrono::steady_clock::now();
  const size_t count = x.size(), d = partial_.size();
  if (count == 0) return;
  block_in_.resize(count * d);
  block_out_.resize(count * d);
  for (size_t j = 0; j < count; ++j) {
    TASKREACH_PETSC(VecScatterBegin(to_all_, x[j], full_, INSERT_VALUES, SCATTER_FORWARD));
    TASKREACH_PETSC(VecScatterEnd(to_all_, x[j], full_, INSERT_VALUES, SCATTER_FORWARD));
    const PetscScalar* v = nullptr;
    TASKREACH_PETSC(VecGetArrayRead(full_, &v));
    std::copy(v, v + d, block_in_.begin() + long(j * d));
    TASKREACH_PETSC(VecRestoreArrayRead(full_, &v));
  }
  const std::string what = util::failure_of(
      [&] { op_.apply_shard_block(block_in_.data(), block_out_.data(), static_cast<int64_t>(count)); });
  agree_or_throw(comm_, what.empty(), what, "block product");
  // One reduce-scatter for the block: rank r receives its range of every vector, so the send
  // buffer holds, rank after rank, that range of vector 0, 1, ….
  std::vector<int> counts(counts_.size());
  block_send_.resize(count * d);
  size_t at = 0, lo = 0;
  for (size_t r = 0; r < counts_.size(); ++r) {
    const size_t c = size_t(counts_[r]);
    for (size_t j = 0; j < count; ++j, at += c)
      std::copy(block_out_.begin() + long(j * d + lo), block_out_.begin() + long(j * d + lo + c), block_send_.begin() + long(at));
    counts[r] = static_cast<int>(c * count);
    lo += c;
  }
  int rank = 0;
  TASKREACH_MPI(MPI_Comm_rank(comm_, &rank));
  const size_t local = size_t(counts_[size_t(rank)]);
  block_recv_.resize(local * count);
  TASKREACH_MPI(MPI_Reduce_scatter(block_send_.data(), block_recv_.data(), counts.data(), MPI_DOUBLE, MPI_SUM, comm_));
  for (size_t j = 0; j < count; ++j) {
    PetscScalar* out = nullptr;
    TASKREACH_PETSC(VecGetArray(y[j], &out));
    std::copy(block_recv_.begin() + long(j * local), block_recv_.begin() + long((j + 1) * local), out);
    TASKREACH_PETSC(VecRestoreArray(y[j], &out));
  }
  products_ += int64_t(count);
  ++passes_;
  seconds_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace taskreach::detail
