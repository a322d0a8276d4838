#include "model/loaded_model.h"

#include "model/activation_taps.h"
#include "model/script_model.h"
#include "util/fingerprint.h"
#include "util/logging.h"
#include "util/torch_errors.h"

namespace scalpel {

namespace {

// Probes the output shapes (the stored input shape, else one guessed from the first layer).
// Returns "" or the error that stops the open: a shape the user or the model named that does not
// fit; a guessed one that does not fit is only a warning.
std::string probeShapes(ScriptModel& model, const InspectOptions& options,
                        ModelInspection& inspection) {
  const auto shape = options.inputShape.empty() ? model.defaultInputShape() : options.inputShape;
  if (shape.empty()) {
    inspection.warnings.push_back(
        "no input shape is stored with the model and none could be guessed — give one (e.g. "
        "1,3,224,224) to see output shapes");
    return {};
  }
  if (auto problem = model.probe(shape); !problem.empty()) {
    const bool guessed = options.inputShape.empty() && model.metadata().inputShape.empty();
    if (!guessed) return problem;
    inspection.warnings.push_back(
        problem +
        " — the shape was guessed from the first layer; give the real one to see output shapes");
    return {};
  }
  inspection.inputShape = shape;
  return {};
}

}  // namespace

LoadedModel::LoadedModel() = default;

LoadedModel LoadedModel::open(const std::string& path, const InspectOptions& options) {
  LoadedModel opened;
  ModelInspection& inspection = opened.m_inspection;
  inspection.path = path;
  inspection.device = options.device;
  try {
    auto loaded = ScriptModel::load(path, options.device, options.choices.architecture);
    if (!loaded) {
      inspection.error = loaded.error;
      inspection.candidates = loaded.candidates;
      return opened;
    }
    ScriptModel& model = *loaded.model;
    const ModelChoices& choices = options.choices;
    if (!choices.preprocessing.empty()) {
      auto metadata = model.metadata();
      if (metadata.inputShape.empty()) {  // a preset needs the size it fits images to
        metadata.inputShape =
            options.inputShape.empty() ? model.defaultInputShape() : options.inputShape;
      }
      if (auto problem =
              applyPreprocessing(metadata, choices.preprocessing, choices.mean, choices.std);
          !problem.empty()) {
        inspection.error = problem;
        return opened;
      }
      model.setMetadata(std::move(metadata));
    }
    if (!choices.newHeadClasses.empty()) {
      if (auto problem = model.replaceHead(choices.newHeadClasses); !problem.empty()) {
        inspection.error = path + ": " + problem;
        return opened;
      }
    }
    inspection.format = model.format();
    inspection.notes = model.notes();
    inspection.warnings = model.warnings();
    inspection.metadata = model.metadata();
    inspection.tappableCalls =
        model.taps() ? static_cast<int>(model.taps()->tappedCalls().size()) : 0;
    if (auto problem = probeShapes(model, options, inspection); !problem.empty()) {
      inspection.error = problem;
      return opened;
    }
    inspection.tree = model.tree();
    inspection.ok = true;
    opened.m_fingerprint = fileFingerprint(path);
    opened.m_model = std::move(loaded.model);
  } catch (const std::exception& error) {
    inspection.error = path + ": " + summariseTorchError(error.what());
    logger("core")->error("inspecting {} failed: {}", path, error.what());
  }
  return opened;
}

ScriptModel& LoadedModel::script() const {
  if (!m_model) throw std::logic_error("no model is open: " + m_inspection.error);
  return *m_model;
}

}  // namespace scalpel
