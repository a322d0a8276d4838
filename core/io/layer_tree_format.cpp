#include "io/layer_tree_format.h"

#include <nlohmann/json.hpp>

#include <iomanip>
#include <sstream>

#include "scalpel/version.h"

namespace scalpel {

std::string inspectionToText(const ModelInspection& inspection) {
  std::ostringstream out;
  const auto& tree = inspection.tree;
  out << inspection.path << "\n";
  out << "  " << formatCount(tree.node(0).totalParameters) << " parameters ("
      << tree.node(0).totalParameters << "), " << tree.size() - 1 << " modules, "
      << tree.blocks().size() << " blocks, input " << formatShape(inspection.inputShape)
      << ", device " << inspection.device << "\n";
  const auto& metadata = inspection.metadata;
  if (!inspection.format.empty()) {
    out << "  " << inspection.format;
    if (!metadata.architecture.empty()) {
      out << ": torchvision's " << metadata.architecture << " with "
          << (tree.node(0).outputShape.empty() ? std::string("?")
                                               : std::to_string(tree.node(0).outputShape.back()))
          << " classes";
    }
    out << "\n";
  }
  out << "  preprocessing: " << preprocessingText(metadata) << "\n";
  for (const auto& note : inspection.notes) out << "  " << note << "\n";
  out << "\n";
  for (int index : tree.preorder()) {
    if (index == 0) continue;
    const auto& node = tree.node(index);
    std::string label(static_cast<size_t>(2 * (node.depth - 1)), ' ');
    label += node.shortName();
    if (node.depth == 1) {
      label +=
          "  [block " + tree.blocks().at(static_cast<std::size_t>(tree.blockOf(index))).name + "]";
    }
    out << std::left << std::setw(44) << label << ' ' << std::setw(22) << node.typeName << ' '
        << std::right << std::setw(7) << formatCount(node.totalParameters) << "  "
        << formatShape(node.outputShape);
    if (node.callCount > 1) out << "  (called " << node.callCount << "×)";
    if (node.callCount == 0) out << "  (not called by forward)";
    if (node.hasBatchNormStats) out << "  [BN stats]";
    out << "\n";
  }
  for (const auto& warning : inspection.warnings) out << "\nwarning: " << warning << "\n";
  return out.str();
}

std::string inspectionToJson(const ModelInspection& inspection) {
  nlohmann::json json;
  json["scalpel_version"] = kVersion;
  json["path"] = inspection.path;
  json["device"] = inspection.device;
  json["input_shape"] = inspection.inputShape;
  json["warnings"] = inspection.warnings;
  json["tappable_calls"] = inspection.tappableCalls;
  json["format"] = inspection.format;
  json["architecture"] = inspection.metadata.architecture;
  json["notes"] = inspection.notes;
  json["preprocessing"] = {{"preset", inspection.metadata.preprocessing},
                           {"mean", inspection.metadata.mean},
                           {"std", inspection.metadata.std},
                           {"resize", inspection.metadata.resize},
                           {"input_shape", inspection.metadata.inputShape}};
  json["class_names"] = inspection.metadata.classNames;
  const auto& tree = inspection.tree;
  auto& nodes = json["modules"] = nlohmann::json::array();
  for (int index : tree.preorder()) {
    const auto& node = tree.node(index);
    nodes.push_back({{"name", node.name},
                     {"type", node.typeName},
                     {"depth", node.depth},
                     {"block", tree.blockOf(index)},
                     {"own_parameters", node.ownParameters},
                     {"total_parameters", node.totalParameters},
                     {"batchnorm_stats", node.hasBatchNormStats},
                     {"calls", node.callCount},
                     {"output_shape", node.outputShape}});
  }
  auto& blocks = json["blocks"] = nlohmann::json::array();
  for (const auto& block : tree.blocks()) {
    std::vector<std::string> members;
    for (int member : block.members) members.push_back(tree.node(member).name);
    blocks.push_back(
        {{"name", block.name}, {"members", members}, {"total_parameters", block.totalParameters}});
  }
  return json.dump(2);
}

}  // namespace scalpel
