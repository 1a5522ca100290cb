#include "shell.hpp"

#include "taskreach/collective.hpp"

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
  self->seconds_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  PetscFunctionReturn(0);
}

}  // namespace taskreach::detail
