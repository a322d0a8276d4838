#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "data/dataset.h"

namespace scalpel {

struct CsvOptions {
  std::string labelColumn;  // header name of the label column; empty: the last column
  char delimiter = ',';
  // Regression: the header names of the numeric columns to predict (one or more); the other
  // columns are the features. Empty: classification by the label column.
  std::vector<std::string> targetColumns;
};

// Tabular data: numeric feature columns and one label column (classification) or numeric target
// columns (regression, CsvOptions::targetColumns). The first row is a header when any of its
// feature fields is not a number, or when columns are named. Labels are integers (class = value)
// or strings (classes in sorted order). Rows that are ragged or have non-numeric features or
// targets make the load fail with their line numbers. `name` is used in messages.
DataLoadResult parseCsv(const std::string& text, const std::string& name,
                        const CsvOptions& options = {});
DataLoadResult readCsv(const std::filesystem::path& path, const CsvOptions& options = {});

}  // namespace scalpel
