#pragma once
// The agreement before a collective (STYLE 11): every rank of a communicator says whether its
// local part went well; all learn the lowest failing rank and its message, so they fail alike
// (or go on together) and none is left waiting in a collective that a failed rank will not
// join. Used by the curvature products, the training steps and the HDF5 writes.
#include <mpi.h>

#include <string>

namespace taskreach::util {

struct Failure {
  int rank = -1;        // the lowest failing rank, −1 when every rank is fine
  std::string message;  // its message, first line only
  bool any() const { return rank >= 0; }
};

// Runs this rank's local part and returns what it threw, as text ("" when it did not throw),
// ready for agree().
template <class Local>
std::string failure_of(Local&& local) {
  try {
    local();
    return {};
  } catch (const std::exception& e) {
    const std::string what = e.what();
    return what.empty() ? "exception" : what;
  } catch (...) {
    return "unknown exception";
  }
}

// Collective over `comm`. Returns the MPI return code of its calls (MPI_SUCCESS normally).
int agree(MPI_Comm comm, bool ok, const std::string& what, Failure& out);

}  // namespace taskreach::util
