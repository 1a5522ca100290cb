#pragma once
// Internal: RAII owners for PETSc/SLEPc handles and MPI communicators, the error checks at the
// C++ boundary, and the agreement that turns a failure on one rank into the same error on all.
#include <mpi.h>
#include <petscmat.h>
#include <slepceps.h>

#include <stdexcept>
#include <string>

// A PETSc error becomes an exception carrying PETSc's own message:
//   "curvature: PETSc error 62 (Invalid argument: <what PETSc said>) in EPSSolve(eps)".
#define TASKREACH_PETSC(call)                                                     \
  do {                                                                            \
    PetscErrorCode taskreach_ierr_ = (call);                                      \
    if (taskreach_ierr_) ::taskreach::detail::throw_petsc_error(taskreach_ierr_, #call); \
  } while (0)

// The same for an MPI call on a communicator whose handler is MPI_ERRORS_RETURN.
#define TASKREACH_MPI(call)                                                       \
  do {                                                                            \
    int taskreach_mpi_rc_ = (call);                                               \
    if (taskreach_mpi_rc_ != MPI_SUCCESS) ::taskreach::detail::throw_mpi_error(taskreach_mpi_rc_, #call); \
  } while (0)

namespace taskreach::detail {

[[noreturn]] void throw_petsc_error(PetscErrorCode code, const char* call);
[[noreturn]] void throw_mpi_error(int code, const char* call);

// While alive, PETSc errors are not printed but kept (the first message of the most recent
// error) for throw_petsc_error. PETSc's default handler would print a traceback on every rank
// and, on the other ranks of a parallel communicator, sleep 10 s and exit(0).
class PetscErrorScope {
 public:
  PetscErrorScope();
  PetscErrorScope(const PetscErrorScope&) = delete;
  PetscErrorScope& operator=(const PetscErrorScope&) = delete;
  ~PetscErrorScope();
};

// Collective on `comm`: every rank learns the lowest rank whose `ok` is false (-1: none) and
// that rank's message (its first line). Called before a collective that a failed rank
// cannot join, so that every rank leaves it the same way.
PetscErrorCode agree(MPI_Comm comm, bool ok, const std::string& what, int* failed, std::string* message);

// The C++ form: throws "curvature: <section> failed on rank r: <message>" on every rank.
void agree_or_throw(MPI_Comm comm, bool ok, const std::string& what, const char* section);

// A duplicate of the communicator it is given, with MPI_ERRORS_RETURN: MPI errors on it come
// back as codes (checked with PetscCallMPI / TASKREACH_MPI) instead of ending the process.
// PETSc objects created on it inherit the handler through PETSc's own inner duplicate.
class OwnedComm {
 public:
  explicit OwnedComm(MPI_Comm comm);
  OwnedComm(const OwnedComm&) = delete;
  OwnedComm& operator=(const OwnedComm&) = delete;
  ~OwnedComm();
  operator MPI_Comm() const { return comm_; }

 private:
  MPI_Comm comm_ = MPI_COMM_NULL;
};

template <typename H, PetscErrorCode (*Destroy)(H*)>
class Owned {
 public:
  Owned() = default;
  Owned(const Owned&) = delete;
  Owned& operator=(const Owned&) = delete;
  Owned(Owned&& o) noexcept : h_(o.h_) { o.h_ = nullptr; }
  ~Owned() {
    if (h_) Destroy(&h_);  // never throws; an error here has nowhere to go
  }
  H* operator&() { return &h_; }
  operator H() const { return h_; }

 private:
  H h_ = nullptr;
};

using OwnedVec = Owned<Vec, VecDestroy>;
using OwnedMat = Owned<Mat, MatDestroy>;
using OwnedEPS = Owned<EPS, EPSDestroy>;
using OwnedScatter = Owned<VecScatter, VecScatterDestroy>;

// k vectors like a template, destroyed together.
class OwnedVecs {
 public:
  OwnedVecs(Vec like, PetscInt k) : k_(k) {
    if (k_ > 0) TASKREACH_PETSC(VecDuplicateVecs(like, k_, &v_));
  }
  OwnedVecs(const OwnedVecs&) = delete;
  OwnedVecs& operator=(const OwnedVecs&) = delete;
  ~OwnedVecs() {
    if (v_) VecDestroyVecs(k_, &v_);
  }
  Vec operator[](PetscInt i) const { return v_[i]; }
  Vec* data() { return v_; }
  PetscInt size() const { return k_; }

 private:
  PetscInt k_ = 0;
  Vec* v_ = nullptr;
};

}  // namespace taskreach::detail
