#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace scalpel {

// A labelled data set held in memory: what every reader produces and the batcher consumes.
// Images are C×H×W floats in [0, 1] (not normalised: normalisation uses the *model's* mean/std,
// at batch time); tabular rows are F floats.
//
// A set is either for classification (a class label per item) or for regression (numeric
// targets per item, named by targetNames): exactly one of labels and targets is filled.
struct Dataset {
  std::string name;                     // where it came from, for messages and reports
  std::vector<std::int64_t> itemShape;  // {C, H, W} for images, {F} for feature rows
  std::vector<float> values;            // size() × itemSize(), item after item
  std::vector<int> labels;              // classification: class index of each item
  std::vector<std::string> classNames;  // classification: index → name
  std::vector<float> targets;           // regression: size() × targetNames.size(), item after item
  std::vector<std::string> targetNames;  // regression: what each target is (a CSV column)

  bool isRegression() const { return !targetNames.empty(); }
  std::size_t size() const {
    return isRegression() ? targets.size() / targetNames.size() : labels.size();
  }
  std::size_t itemSize() const;
  const float* item(std::size_t index) const { return values.data() + index * itemSize(); }
  bool isImage() const { return itemShape.size() == 3; }
  // Items per class, indexed by class (empty for regression).
  std::vector<std::size_t> classCounts() const;
  // What a split stratifies by: the class labels, or one group of all items for regression.
  std::vector<int> strata() const;
  // A copy holding only the given items, in that order.
  Dataset subset(const std::vector<std::size_t>& indices) const;
};

// A reader either gives a data set or says what is wrong, naming the file and the line or byte
// offset, and what to do. Warnings and notes do not stop the load (skipped files, the mapping of
// folders to model outputs).
struct DataLoadResult {
  std::optional<Dataset> dataset;
  std::string error;
  std::vector<std::string> warnings;
  std::vector<std::string> notes;
  explicit operator bool() const { return dataset.has_value(); }

  static DataLoadResult failure(std::string message) {
    DataLoadResult result;
    result.error = std::move(message);
    return result;
  }
};

// A fingerprint of a data set's shape, values, labels and names (util/fingerprint.h), to tell
// whether a run was made on this data.
std::string datasetFingerprint(const Dataset& data);

// Mean and standard deviation per channel (images) or of all values (rows): a new model's
// preprocessing (pretraining), or the "source" preset's (ModelMetadata).
void channelStatistics(const Dataset& data, std::vector<double>& mean, std::vector<double>& stdev);

}  // namespace scalpel
