#include "model/model_metadata.h"

#include <nlohmann/json.hpp>

#include <cstdio>

namespace scalpel {

const std::vector<std::string>& preprocessingPresets() {
  static const std::vector<std::string> presets{"imagenet", "none", "source", "custom"};
  return presets;
}

std::string preprocessingText(const ModelMetadata& metadata) {
  const auto list = [](const std::vector<double>& values) {
    std::string text;
    for (std::size_t i = 0; i < values.size(); ++i) {
      char number[32];
      std::snprintf(number, sizeof number, "%.4g", values[i]);
      text += (i ? "/" : "") + std::string(number);
    }
    return text;
  };
  std::string text = metadata.preprocessing.empty() ? "" : metadata.preprocessing + ": ";
  const auto& shape = metadata.inputShape;
  if (metadata.resize > 0 && shape.size() == 4) {
    text += "resize " + std::to_string(metadata.resize) + ", centre crop " +
            std::to_string(shape[2]) +
            (shape[2] == shape[3] ? "" : "×" + std::to_string(shape[3])) + ", ";
  }
  if (metadata.mean.empty()) return text + "no normalisation (pixels from 0 to 1)";
  return text + "mean " + list(metadata.mean) + ", std " + list(metadata.std);
}

std::string applyPreprocessing(ModelMetadata& metadata, const std::string& preset,
                               const std::vector<double>& mean, const std::vector<double>& std) {
  if (preset == "imagenet") {
    metadata.mean = {0.485, 0.456, 0.406};
    metadata.std = {0.229, 0.224, 0.225};
    // torchvision's 256 → 224, kept in proportion for other input sizes.
    const auto& shape = metadata.inputShape;
    metadata.resize = shape.size() == 4 ? static_cast<int>((shape[2] * 256 + 112) / 224) : 0;
  } else if (preset == "none") {
    metadata.mean.clear();
    metadata.std.clear();
    metadata.resize = 0;
  } else if (preset == "source" || preset == "custom") {
    if (mean.empty() || mean.size() != std.size()) {
      return "preprocessing '" + preset + "' needs a mean and a std per channel (or one for all)";
    }
    for (double s : std) {
      if (!(s > 0)) return "every std must be positive";
    }
    metadata.mean = mean;
    metadata.std = std;
  } else {
    return "unknown preprocessing '" + preset + "' — choose imagenet, none, source or custom";
  }
  metadata.preprocessing = preset;
  metadata.present = true;
  return {};
}

std::string parseModelMetadata(const std::string& text, ModelMetadata& out) {
  try {
    const auto json = nlohmann::json::parse(text);
    ModelMetadata parsed;
    parsed.inputShape = json.value("input_shape", std::vector<std::int64_t>{});
    parsed.mean = json.value("mean", std::vector<double>{});
    parsed.std = json.value("std", std::vector<double>{});
    parsed.classNames = json.value("class_names", std::vector<std::string>{});
    parsed.resize = json.value("resize", 0);
    parsed.preprocessing = json.value("preprocessing", std::string());
    parsed.architecture = json.value("architecture", std::string());
    if (parsed.resize < 0) return "resize must not be negative";
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
  if (metadata.resize > 0) json["resize"] = metadata.resize;
  if (!metadata.preprocessing.empty()) json["preprocessing"] = metadata.preprocessing;
  if (!metadata.architecture.empty()) json["architecture"] = metadata.architecture;
  return json.dump(2);
}

}  // namespace scalpel
