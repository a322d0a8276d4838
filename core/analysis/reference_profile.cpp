#include "analysis/reference_profile.h"

#include <torch/script.h>

#include <nlohmann/json.hpp>

#include <sstream>

#include "files/atomic_file.h"
#include "model/model_metadata.h"
#include "model/script_model.h"
#include "util/torch_errors.h"

namespace scalpel {

std::string referenceProfileToJson(const ReferenceProfile& profile) {
  nlohmann::json json;
  json["description"] = profile.description;
  json["items"] = profile.items;
  auto& layers = json["layers"] = nlohmann::json::array();
  for (std::size_t i = 0; i < profile.layers.size(); ++i) {
    const auto& m = profile.moments[i];
    layers.push_back(
        {{"layer", profile.layers[i]}, {"count", m.count}, {"mean", m.mean}, {"m2", m.m2}});
  }
  return json.dump();
}

std::string parseReferenceProfile(const std::string& text, ReferenceProfile& out) {
  try {
    const auto json = nlohmann::json::parse(text);
    ReferenceProfile profile;
    profile.description = json.at("description").get<std::string>();
    profile.items = json.at("items").get<double>();
    for (const auto& layer : json.at("layers")) {
      ChannelMoments moments;
      moments.count = layer.at("count").get<double>();
      moments.mean = layer.at("mean").get<std::vector<double>>();
      moments.m2 = layer.at("m2").get<std::vector<double>>();
      if (moments.mean.size() != moments.m2.size()) return "a layer's mean and m2 differ in length";
      profile.layers.push_back(layer.at("layer").get<std::string>());
      profile.moments.push_back(std::move(moments));
    }
    out = std::move(profile);
    return {};
  } catch (const nlohmann::json::exception& error) {
    return error.what();
  }
}

std::string saveModelWithReference(const LoadedModel& model, const ReferenceProfile& profile,
                                   const std::string& outPath) {
  if (!model.ok()) return model.error();
  try {
    const ScriptModel& loaded = model.script();
    torch::jit::ExtraFilesMap extra;
    if (loaded.metadata().present)
      extra[kModelMetadataFile] = modelMetadataToJson(loaded.metadata());
    extra[kReferenceProfileFile] = referenceProfileToJson(profile);
    std::ostringstream bytes;
    loaded.module().save(bytes, extra);
    return writeFileAtomically(outPath, bytes.str());
  } catch (const std::exception& error) {
    return "cannot save " + outPath + ": " + summariseTorchError(error.what());
  }
}

}  // namespace scalpel
