#include "io/analysis_format.h"

#include <nlohmann/json.hpp>

#include <cstdio>
#include <iomanip>
#include <sstream>

namespace scalpel {

std::string snapshotToJson(const ShiftSnapshot& snapshot) {
  nlohmann::json json;
  json["batch"] = snapshot.batch;
  json["target_items"] = snapshot.targetItems;
  json["accuracy"] = snapshot.accuracy;
  auto& layers = json["layers"] = nlohmann::json::array();
  for (const auto& layer : snapshot.layers) {
    layers.push_back({{"layer", layer.layer},
                      {"type", layer.typeName},
                      {"channels", layer.channels},
                      {"kl", layer.kl},
                      {"smd", layer.smd},
                      {"noise_floor", layer.noiseFloor},
                      {"uncertainty", layer.uncertainty}});
  }
  return json.dump();
}

std::string analysisToText(const ShiftAnalysis& analysis, const std::string& targetDescription) {
  std::ostringstream out;
  const auto& last = analysis.snapshots.back();
  out << "target:    " << targetDescription << " (" << last.targetItems << " items)\n";
  out << "reference: " << analysis.reference << "\n\n";
  out << std::left << std::setw(36) << "layer" << std::setw(22) << "type" << std::right
      << std::setw(10) << "KL" << std::setw(10) << "± SE" << std::setw(12) << "× floor"
      << std::setw(8) << "SMD"
      << "\n";
  for (const auto& layer : last.layers) {
    char row[160];
    std::snprintf(row, sizeof row, "%10.4f%10.4f%12.1f%8.3f", layer.kl, layer.uncertainty,
                  layer.noiseFloor > 0 ? layer.kl / layer.noiseFloor : 0.0, layer.smd);
    out << std::left << std::setw(36) << layer.layer << std::setw(22) << layer.typeName << row
        << "\n";
  }
  const auto& output = analysis.output;
  char summary[200];
  std::snprintf(summary, sizeof summary,
                "\naccuracy of the unmodified model on the target: %.1f%% (loss %.3f)\n",
                100 * output.accuracy, output.loss);
  if (output.regression) {
    std::snprintf(summary, sizeof summary,
                  "\nmean squared error of the unmodified model on the target's numbers: %.4g\n",
                  output.loss);
  }
  out << (output.measured || output.regression
              ? summary
              : "\nthe model's outputs do not match the target's classes: accuracy not measured\n");
  if (output.permutation) {
    out << "its predictions follow a consistent permutation of the labels (" << std::fixed
        << std::setprecision(1) << 100 * output.mappedAccuracy << "% if mapped):";
    for (std::size_t t = 0; t < output.mapping.size(); ++t)
      out << " " << t << "→" << output.mapping[t];
    out << "\n";
  }
  return out.str();
}

std::string adviceToText(const Diagnosis& diagnosis, const FreezePlan& plan) {
  std::ostringstream out;
  out << "diagnosis: " << shiftKindName(diagnosis.kind) << "\n  " << diagnosis.summary << "\n";
  for (const auto& line : diagnosis.evidence) out << "  - " << line << "\n";
  out << "\nplan (" << plan.strategy << "): " << plan.explanation << "\n";
  if (plan.trainable.empty()) out << "  nothing to train\n";
  if (!plan.batchNorm.empty() || plan.recalibrate)
    out << "  BatchNorm: " << batchNormModeName(plan, true) << "\n";
  for (const auto& module : plan.trainable) {
    const auto scale = plan.learningRateScale.find(module);
    out << "  train " << module;
    if (scale != plan.learningRateScale.end()) {
      char text[40];
      std::snprintf(text, sizeof text, "  (learning rate × %.3f)", scale->second);
      out << text;
    }
    out << "\n";
  }
  return out.str();
}

}  // namespace scalpel
