#pragma once

// Torch-free facade over ScriptModel for the UI and the CLI: a model file in, plain data out.

#include <cstdint>
#include <string>
#include <vector>

#include "model/layer_tree.h"
#include "model/model_metadata.h"

namespace scalpel {

// What the user chose about a model beyond its file. Sessions keep it, so the model opens the
// same way again.
struct ModelChoices {
  std::string architecture;  // a checkpoint that several library architectures fit: which one
  // A preset of applyPreprocessing() in place of what the model stores ("": as stored), with the
  // mean and std that "source" and "custom" take.
  std::string preprocessing;
  std::vector<double> mean, std;
  // Non-empty: the classifier's last layer is replaced by a fresh one with an output per name
  // (transfer learning to other classes).
  std::vector<std::string> newHeadClasses;
};
inline bool operator==(const ModelChoices& a, const ModelChoices& b) {
  return a.architecture == b.architecture && a.preprocessing == b.preprocessing &&
         a.mean == b.mean && a.std == b.std && a.newHeadClasses == b.newHeadClasses;
}

struct InspectOptions {
  std::vector<std::int64_t> inputShape;  // empty: the shape stored with the model, else a guess
  std::string device = "cpu";
  ModelChoices choices;
};

struct ModelInspection {
  bool ok = false;
  std::string error;                  // when !ok: what is wrong and what to do
  std::vector<std::string> warnings;  // loaded, but the user should know
  std::string path;
  std::string device;
  LayerTree tree;  // execution order; output shapes filled when the probe ran
  ModelMetadata metadata;
  std::vector<std::int64_t> inputShape;  // the shape the probe used (empty if none ran)
  int tappableCalls = 0;                 // module calls whose outputs can be tapped
  // "TorchScript", "state dict (torch.save)" or "safetensors"; a checkpoint's architecture is
  // metadata.architecture, and what the load did to it (a prefix removed, ...) is in notes.
  std::string format;
  std::vector<std::string> notes;
  // When a checkpoint fits several architectures (then !ok): their names, to choose from.
  std::vector<std::string> candidates;
};

// What happens to images of `itemShape` ({C, H, W}) before a model with this preprocessing sees
// them, e.g. "each 1×28×28 image is made RGB, scaled to 256 on its shorter side and centre-cropped
// to 3×224×224"; "" when they go in as they are.
std::string fittingNote(const std::vector<std::int64_t>& itemShape, const ModelMetadata& metadata);

// Loads the model, builds its layer tree and probes output shapes. Never throws.
ModelInspection inspectModel(const std::string& path, const InspectOptions& options = {});

}  // namespace scalpel
