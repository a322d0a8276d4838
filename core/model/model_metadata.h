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
  // Images are fitted to inputShape before the forward: the shorter side scaled to `resize`, then
  // the centre cropped to H×W (torchvision's Resize + CenterCrop); 0 scales straight to H×W.
  int resize = 0;
  std::string preprocessing;  // the preset mean/std came from: "imagenet", "source", "custom", ...
  std::string architecture;   // the library architecture a checkpoint was rebuilt into, if any
  bool present = false;       // read from the file (false: nothing stored, fields empty)
};

inline constexpr const char* kModelMetadataFile = "scalpel/model.json";
// The source reference profile (analysis/reference_profile.h), when one was saved with the model.
inline constexpr const char* kReferenceProfileFile = "scalpel/reference.json";

// The preprocessing presets a user can choose for a model that stores none (or to override it):
// "imagenet" (torchvision's: shorter side to 256/224 of the input, centre crop, ImageNet's mean
// and std), "none" (pixels as they are, 0–1), "source" and "custom" (the mean and std given:
// from the source data, or typed). Returns "" or what is wrong.
std::string applyPreprocessing(ModelMetadata& metadata, const std::string& preset,
                               const std::vector<double>& mean = {},
                               const std::vector<double>& std = {});
// "imagenet: resize 256, centre crop 224, mean 0.485/0.456/0.406, std 0.229/0.224/0.225", or
// "none (pixels from 0 to 1)".
std::string preprocessingText(const ModelMetadata& metadata);
// The names applyPreprocessing() takes.
const std::vector<std::string>& preprocessingPresets();

// Parses the JSON of kModelMetadataFile; returns an error message or "".
std::string parseModelMetadata(const std::string& json, ModelMetadata& out);
std::string modelMetadataToJson(const ModelMetadata& metadata);

}  // namespace scalpel
