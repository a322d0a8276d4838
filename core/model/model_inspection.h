#pragma once

// Torch-free facade over ScriptModel for the UI and the CLI: a model file in, plain data out.

#include <cstdint>
#include <string>
#include <vector>

#include "model/layer_tree.h"
#include "model/model_metadata.h"

namespace scalpel {

struct InspectOptions {
  std::vector<std::int64_t> inputShape;  // empty: the shape stored with the model, else a guess
  std::string device = "cpu";
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
};

// Loads the model, builds its layer tree and probes output shapes. Never throws.
ModelInspection inspectModel(const std::string& path, const InspectOptions& options = {});

}  // namespace scalpel
