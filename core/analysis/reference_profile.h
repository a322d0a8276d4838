#pragma once

// A model's source statistics: per layer, the per-channel moments of the source data. Saved into
// the TorchScript file (extra file kReferenceProfileFile), so a model carries its own reference
// and later analyses need no source data. Torch-free.

#include <string>
#include <vector>

#include "analysis/channel_moments.h"
#include "model/loaded_model.h"
#include "model/model_metadata.h"  // kReferenceProfileFile

namespace scalpel {

struct ReferenceProfile {
  std::string description;  // which data, e.g. "source data (5000 items of fashion-mnist/train)"
  double items = 0;         // source items the moments came from (for the noise floor)
  std::vector<std::string> layers;      // layer labels, as in ShiftSnapshot
  std::vector<ChannelMoments> moments;  // one per layer
  bool empty() const { return layers.empty(); }
};

std::string referenceProfileToJson(const ReferenceProfile& profile);
// Returns "" or what is wrong with the JSON.
std::string parseReferenceProfile(const std::string& json, ReferenceProfile& out);

// Writes the model to `outPath` with `profile` embedded, and its preprocessing as it was loaded.
// Atomic. Returns "" or the error.
std::string saveModelWithReference(const LoadedModel& model, const ReferenceProfile& profile,
                                   const std::string& outPath);

}  // namespace scalpel
