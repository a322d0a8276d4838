#include "model/model_inspection.h"

#include "model/loaded_model.h"

#include <algorithm>

namespace scalpel {

ModelInspection inspectModel(const std::string& path, const InspectOptions& options) {
  return LoadedModel::open(path, options).inspection();
}

std::string fittingNote(const std::vector<std::int64_t>& itemShape, const ModelMetadata& metadata) {
  const auto& input = metadata.inputShape;
  if (itemShape.size() != 3 || input.size() != 4) return {};
  if (std::equal(itemShape.begin(), itemShape.end(), input.begin() + 1)) return {};
  std::vector<std::string> steps;
  if (itemShape[0] != input[1]) {
    if (itemShape[0] == 1)
      steps.push_back("made RGB");
    else if (input[1] == 1)
      steps.push_back("made grey");
    else
      return {};  // refused when the batches are made, with its own message
  }
  if (itemShape[1] != input[2] || itemShape[2] != input[3]) {
    steps.push_back(metadata.resize >= std::max(input[2], input[3])
                        ? "scaled to " + std::to_string(metadata.resize) +
                              " on its shorter side and centre-cropped"
                        : std::string("scaled"));
  }
  std::string text = "each " + formatShape(itemShape) + " item is ";
  for (std::size_t i = 0; i < steps.size(); ++i) text += (i ? " and " : "") + steps[i];
  return text + " to " + formatShape({input.begin() + 1, input.end()}) + ", as the model takes it";
}

}  // namespace scalpel
