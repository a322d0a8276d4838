#include "model/model_metadata.h"

#include <nlohmann/json.hpp>

namespace scalpel {

std::string parseModelMetadata(const std::string& text, ModelMetadata& out) {
  try {
    const auto json = nlohmann::json::parse(text);
    ModelMetadata parsed;
    parsed.inputShape = json.value("input_shape", std::vector<std::int64_t>{});
    parsed.mean = json.value("mean", std::vector<double>{});
    parsed.std = json.value("std", std::vector<double>{});
    parsed.classNames = json.value("class_names", std::vector<std::string>{});
    for (auto dim : parsed.inputShape) {
      if (dim <= 0) return "input_shape must hold positive sizes";
    }
    if (parsed.mean.size() != parsed.std.size()) return "mean and std must have the same length";
    for (double s : parsed.std) {
      if (!(s > 0)) return "std must be positive";
    }
    parsed.present = true;
    out = std::move(parsed);
    return {};
  } catch (const nlohmann::json::exception& error) {
    return error.what();
  }
}

std::string modelMetadataToJson(const ModelMetadata& metadata) {
  nlohmann::json json;
  json["input_shape"] = metadata.inputShape;
  json["mean"] = metadata.mean;
  json["std"] = metadata.std;
  json["class_names"] = metadata.classNames;
  return json.dump(2);
}

}  // namespace scalpel
