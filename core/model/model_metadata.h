#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace scalpel {

// What a model expects of its input. Preprocessing belongs to the model, not to the data: target
// data must be normalised with the statistics the model was trained with (DESIGN.md).
// Stored in TorchScript files as the extra file kModelMetadataFile.
struct ModelMetadata {
  std::vector<std::int64_t> inputShape;  // including a batch dimension of 1, e.g. 1×3×224×224
  std::vector<double> mean;              // per input channel
  std::vector<double> std;
  std::vector<std::string> classNames;
  bool present = false;  // read from the file (false: nothing stored, fields empty)
};

inline constexpr const char* kModelMetadataFile = "scalpel/model.json";
// The source reference profile (analysis/reference_profile.h), when one was saved with the model.
inline constexpr const char* kReferenceProfileFile = "scalpel/reference.json";

// Parses the JSON of kModelMetadataFile; returns an error message or "".
std::string parseModelMetadata(const std::string& json, ModelMetadata& out);
std::string modelMetadataToJson(const ModelMetadata& metadata);

}  // namespace scalpel
