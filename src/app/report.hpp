#pragma once
// The text report of a result, for `taskreach info` and the end of a run.
#include <string>

#include "taskreach/results.hpp"

namespace taskreach {

// The R matrix as a table with task names (rows: target i, columns: source j), and a summary.
std::string format_info(const RunOutput& out);

}  // namespace taskreach
