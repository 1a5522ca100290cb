#pragma once
// Parallel HDF5 output (collective MPI-IO) and reading results back. What a file holds is
// the table of src/io/schema.hpp (DESIGN §5).
#include <mpi.h>

#include <stdexcept>
#include <string>

#include "taskreach/results.hpp"

namespace taskreach {

class IoError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Collective over `comm`: every rank opens the file with MPI-IO and writes its block of
// rows of each N×N dataset with a collective hyperslab write (verified collective). The
// file is written as `path` + ".tmp-<id>" and renamed to `path` only when complete; on any
// error the temporary is removed and an existing `path` is left untouched.
void write_output(MPI_Comm comm, const std::string& path, const RunOutput& out);

// Serial read of what write_output wrote (for `taskreach info` and tests).
RunOutput read_output(const std::string& path);

}  // namespace taskreach
