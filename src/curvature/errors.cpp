// Errors at the C++ boundary of the curvature module: PETSc's message in the exception, MPI
// error strings, and the ok-flag agreement before collectives (STYLE convention 11).
#include <cstring>

#include "petsc.hpp"
#include "taskreach/collective.hpp"

namespace taskreach::detail {
namespace {

// The first message of the most recent PETSc error (PETSC_ERROR_INITIAL); the traceback
// frames that follow it (PETSC_ERROR_REPEAT) carry none.
char g_message[1024] = "";

PetscErrorCode keep_message(MPI_Comm, int, const char*, const char*, PetscErrorCode n, PetscErrorType p,
                            const char* mess, void*) {
  if (p == PETSC_ERROR_INITIAL) {
    std::strncpy(g_message, mess ? mess : "", sizeof g_message - 1);
    g_message[sizeof g_message - 1] = '\0';
  }
  return n;
}

std::string first_line(const std::string& s) { return s.substr(0, s.find('\n')); }

}  // namespace

void throw_petsc_error(PetscErrorCode code, const char* call) {
  const char* text = nullptr;
  char* specific = nullptr;
  PetscErrorMessage(static_cast<int>(code), &text, &specific);
  std::string detail = g_message[0] ? g_message : (specific ? specific : "");
  g_message[0] = '\0';
  std::string what = "curvature: PETSc error " + std::to_string(static_cast<int>(code));
  const std::string generic = text ? text : "";
  if (!generic.empty() || !detail.empty())
    what += " (" + generic + (!generic.empty() && !detail.empty() ? ": " : "") + first_line(detail) + ")";
  throw std::runtime_error(what + " in " + call);
}

void throw_mpi_error(int code, const char* call) {
  char text[MPI_MAX_ERROR_STRING] = "";
  int len = 0;
  if (MPI_Error_string(code, text, &len) != MPI_SUCCESS) len = 0;
  throw std::runtime_error("curvature: MPI error " + std::to_string(code) + " (" + std::string(text, size_t(len)) +
                           ") in " + call);
}

PetscErrorScope::PetscErrorScope() {
  TASKREACH_PETSC(PetscPushErrorHandler(keep_message, nullptr));
  g_message[0] = '\0';
}

PetscErrorScope::~PetscErrorScope() { PetscPopErrorHandler(); }

PetscErrorCode agree(MPI_Comm comm, bool ok, const std::string& what, int* failed, std::string* message) {
  PetscFunctionBeginUser;
  util::Failure f;
  PetscCallMPI(util::agree(comm, ok, what, f));
  *failed = f.rank;
  *message = std::move(f.message);
  PetscFunctionReturn(0);
}

void agree_or_throw(MPI_Comm comm, bool ok, const std::string& what, const char* section) {
  int failed = -1;
  std::string message;
  TASKREACH_PETSC(agree(comm, ok, what, &failed, &message));
  if (failed < 0) return;
  const std::string prefix = "curvature: ";
  if (message.compare(0, prefix.size(), prefix) == 0) message.erase(0, prefix.size());
  throw std::runtime_error(prefix + section + " failed on rank " + std::to_string(failed) + ": " + message);
}

OwnedComm::OwnedComm(MPI_Comm comm) {
  // The dup itself runs under the handler of `comm` (the caller's).
  TASKREACH_MPI(MPI_Comm_dup(comm, &comm_));
  const int rc = MPI_Comm_set_errhandler(comm_, MPI_ERRORS_RETURN);
  if (rc != MPI_SUCCESS) {
    MPI_Comm_free(&comm_);
    throw_mpi_error(rc, "MPI_Comm_set_errhandler(comm_, MPI_ERRORS_RETURN)");
  }
}

OwnedComm::~OwnedComm() {
  if (comm_ != MPI_COMM_NULL) MPI_Comm_free(&comm_);  // never throws
}

}  // namespace taskreach::detail
