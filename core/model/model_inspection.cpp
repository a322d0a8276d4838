#include "model/model_inspection.h"

#include "model/activation_taps.h"
#include "model/script_model.h"
#include "util/logging.h"
#include "util/torch_errors.h"

namespace scalpel {

ModelInspection inspectModel(const std::string& path, const InspectOptions& options) {
  ModelInspection inspection;
  inspection.path = path;
  inspection.device = options.device;
  try {
    auto loaded = ScriptModel::load(path, options.device);
    if (!loaded) {
      inspection.error = loaded.error;
      return inspection;
    }
    ScriptModel& model = *loaded.model;
    inspection.warnings = model.warnings();
    inspection.metadata = model.metadata();
    inspection.tappableCalls =
        model.taps() ? static_cast<int>(model.taps()->tappedCalls().size()) : 0;
    const auto shape = options.inputShape.empty() ? model.defaultInputShape() : options.inputShape;
    if (shape.empty()) {
      inspection.warnings.push_back(
          "no input shape is stored with the model and none could be guessed — give one (e.g. 1,3,224,224) to see output shapes");
    } else if (auto problem = model.probe(shape); !problem.empty()) {
      const bool guessed = options.inputShape.empty() && model.metadata().inputShape.empty();
      if (!guessed) {
        // The user (or the model's own metadata) named this shape: a mismatch is an error.
        inspection.error = problem;
        return inspection;
      }
      inspection.warnings.push_back(problem + " — the shape was guessed from the first layer; give the real one to see output shapes");
    } else {
      inspection.inputShape = shape;
    }
    inspection.tree = model.tree();
    inspection.ok = true;
  } catch (const std::exception& error) {
    inspection.error = path + ": " + summariseTorchError(error.what());
    logger("core")->error("inspecting {} failed: {}", path, error.what());
  }
  return inspection;
}

}  // namespace scalpel
