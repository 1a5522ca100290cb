#pragma once
// Real data shipped by Debian packages, as job pieces for the tests.
#include "taskreach/config.hpp"
#include "taskreach/data.hpp"

namespace taskreach::testing {

// The 1,797 scikit-learn 8×8 digits (python3-sklearn), values 0–16 scaled to [0, 1].
inline SourceConfig sklearn_digits_source(double test_fraction = 0.0) {
  SourceConfig s;
  s.name = "digits";
  s.format = SourceFormat::csv;
  s.train_files = {"/usr/lib/python3/dist-packages/sklearn/datasets/data/digits.csv.gz"};
  s.label_column = -1;
  s.shape = {1, 8, 8};
  s.scale = 16.0;
  s.test_fraction = test_fraction;
  return s;
}

// `job` with `source` as its only source and one plain task of it, built.
inline TaskSet one_task_of(JobConfig job, const SourceConfig& source) {
  job.sources = {source};
  TaskConfig t;
  t.name = source.name;
  t.source = source.name;
  job.tasks = {t};
  return build_tasks(job);
}

}  // namespace taskreach::testing
