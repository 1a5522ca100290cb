#pragma once
// Internal: RAII owners for PETSc/SLEPc handles and the error check at the C++ boundary.
#include <petscmat.h>
#include <slepceps.h>

#include <stdexcept>
#include <string>

#define TASKREACH_PETSC(call)                                                                   \
  do {                                                                                          \
    PetscErrorCode taskreach_ierr_ = (call);                                                    \
    if (taskreach_ierr_)                                                                        \
      throw std::runtime_error(std::string("curvature: PETSc error ") +                         \
                               std::to_string(static_cast<int>(taskreach_ierr_)) + " in " #call); \
  } while (0)

namespace taskreach::detail {

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
