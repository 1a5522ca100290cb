#include "taskreach/collective.hpp"

namespace taskreach::util {

int agree(MPI_Comm comm, bool ok, const std::string& what, Failure& out) {
  out = Failure{};
  int rank = 0, size = 1;
  if (int rc = MPI_Comm_rank(comm, &rank); rc != MPI_SUCCESS) return rc;
  if (int rc = MPI_Comm_size(comm, &size); rc != MPI_SUCCESS) return rc;
  int first = ok ? size : rank;
  if (size > 1)
    if (int rc = MPI_Allreduce(MPI_IN_PLACE, &first, 1, MPI_INT, MPI_MIN, comm); rc != MPI_SUCCESS) return rc;
  if (first == size) return MPI_SUCCESS;
  out.rank = first;
  out.message = what.substr(0, what.find('\n'));  // one line, whatever the source
  if (size > 1) {
    int len = static_cast<int>(out.message.size());
    if (int rc = MPI_Bcast(&len, 1, MPI_INT, first, comm); rc != MPI_SUCCESS) return rc;
    out.message.resize(static_cast<size_t>(len));
    if (int rc = MPI_Bcast(out.message.data(), len, MPI_CHAR, first, comm); rc != MPI_SUCCESS) return rc;
  }
  return MPI_SUCCESS;
}

}  // namespace taskreach::util
