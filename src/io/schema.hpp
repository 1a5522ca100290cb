#pragma once
// The HDF5 output contract (DESIGN §5) declared once, as a table: every dataset, attribute and
// group of a result file, the RunOutput member it holds, its shape, its element type and
// whether it must be there. write_output, read_output (and the checks on both sides) and the
// tests' round trip iterate this table, so a new output is one new row in schema.cpp.
//
// A path may hold placeholders:
//   <task>  one instance per task, named after it, in job order, from a per-task record list
//           (RunOutput::spectra, ::training); written only when there is one record per task
//   <key>   one instance per key of a map member; the entry's `under` names the groups that
//           hold its keys, which is where a reader looks for them
//   @       an attribute of the object before the '@' ("/@<key>": a root attribute)
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "taskreach/results.hpp"

namespace taskreach::io {

// float64 little-endian, int64 little-endian, fixed-length null-padded UTF-8.
enum class Type { f64, i64, str };

enum class Shape {
  scalar,     // one value
  tasks,      // [N]: one value per task, in job order
  pairs,      // [N,N]: [i][j] = target i, source j; written as row blocks, one per rank
  jobs,       // [J]: one value per job record
  list,       // [k]: any length
  rows3,      // [k,3]: rows of (step, mean loss, accuracy)
  attribute,  // a scalar attribute
  group,      // a group that exists even when it holds nothing
};

struct Need {
  enum Kind {
    required,  // always written; reading a file without it fails
    optional,  // written when the output holds it (a non-empty member, a key of a map)
    follows,   // written and read exactly when the entry at `leader` is (same <task>)
  } kind;
  std::string leader;
};

// One dataset, attribute or group of a file, with the values the output holds for it.
struct Item {
  std::string path;       // the dataset or group; for an attribute, the object holding it
  std::string attribute;  // attributes: the attribute's name
  size_t task = 0;        // <task> entries: the task's index
  std::vector<uint64_t> dims;  // {} for a scalar or an attribute
  // The values, in the one vector of the entry's type (row-major).
  std::vector<double> f64;
  std::vector<int64_t> i64;
  std::vector<std::string> str;

  size_t count() const { return f64.size() + i64.size() + str.size(); }
};

struct Entry {
  std::string path;
  Type type;
  Shape shape;
  Need need;
  std::vector<std::string> under;  // <key> entries: the groups holding the keys
  // The items `out` holds for this entry, before the rules of `need` (see contents()).
  std::function<std::vector<Item>(const RunOutput&)> get;
  // Puts one item read from a file back into `out`.
  std::function<void(RunOutput&, const Item&)> put;
};

// The table, in the order a file is written and read: /tasks/name first (it defines N and the
// <task> names).
const std::vector<Entry>& schema();

// What `out` holds for `entry` and a file written from `out` holds: an optional entry only
// when it has values (or a key), a following entry only beside its leader.
std::vector<Item> contents(const Entry& entry, const RunOutput& out);

// "float64", "int64", "string"; "[N,N]", … (for messages and tests).
const char* type_name(Type type);
const char* shape_name(Shape shape);

}  // namespace taskreach::io
