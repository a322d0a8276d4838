#pragma once

#include <filesystem>
#include <string>

#include "data/dataset.h"

namespace scalpel {

struct CsvOptions {
  std::string labelColumn;  // header name of the label column; empty: the last column
  char delimiter = ',';
};

// Tabular data: numeric feature columns and one label column. The first row is a header when any
// of its feature fields is not a number. Labels are integers (class = value) or strings (classes
// in sorted order). Rows that are ragged or have non-numeric features make the load fail with
// their line numbers. `name` is used in messages.
DataLoadResult parseCsv(const std::string& text, const std::string& name,
                        const CsvOptions& options = {});
DataLoadResult readCsv(const std::filesystem::path& path, const CsvOptions& options = {});

}  // namespace scalpel
