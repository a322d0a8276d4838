#pragma once

// Torch-free description of the data a session uses, and a summary of what was loaded, for the
// UI and reports.

#include <cstdint>
#include <string>
#include <vector>

#include "data/dataset.h"
#include "data/image_export.h"

namespace scalpel {

// Which data, and which shift (if any) to put on it. A request fully determines the data.
struct DataRequest {
  std::string source = "fashion-mnist";  // see openDataSource()
  std::string split = "test";
  std::string shift;  // empty: as it is; else a name from shiftCatalogue()
  int severity = 3;
  std::uint64_t seed = 0;
  // For image folders: the model's input {C, H, W} and output class names (empty: from the data).
  std::vector<std::int64_t> itemShape;
  std::vector<std::string> classNames;
  // For a CSV: the numeric columns to predict (a regression task); empty: classify by its label.
  std::vector<std::string> regressionTargets;

  // e.g. "fashion-mnist/test + gaussian-noise (severity 5)", "houses.csv → price"
  std::string describe() const;
};

struct DataSummary {
  bool ok = false;
  std::string error;
  std::string description;  // DataRequest::describe()
  std::size_t items = 0;
  std::vector<std::int64_t> itemShape;
  std::vector<std::string> classNames;
  std::vector<std::size_t> classCounts;
  std::vector<std::string> targetNames;  // regression: the targets (then classNames is empty)
  std::vector<std::string> warnings;
  std::vector<std::string> notes;  // e.g. the folder → output mapping, a label permutation
  RgbImage preview;                // images: clean over shifted samples (or one row when unshifted)

  // What the items are labelled with: "10 classes", or "regression on price, volume".
  std::string labelling() const;
};

// Opens the data, applies the shift, and fills `summary`. On success `data` holds the (shifted)
// set. Never throws.
void loadRequestedData(const DataRequest& request, Dataset& data, DataSummary& summary);

}  // namespace scalpel
