#pragma once

// Torch-free facade: how strongly the target loss pulls on each parameter tensor, module and
// block (the paper's relative gradient norm and gradient signal-to-noise ratio).

#include <cstdint>
#include <string>
#include <vector>

#include "data/dataset.h"
#include "model/loaded_model.h"

namespace scalpel {

struct ParameterGradient {
  std::string name;    // "layer1.conv1.weight"
  std::string module;  // "layer1.conv1"
  std::int64_t numel = 0;
  double rgn = 0;  // ||mean_b g_b|| / ||θ||, g_b = gradient of the mean loss on batch b;
                   // 0 for an all-zero tensor (a fresh bias), where the ratio means nothing
  double snr = 0;  // mean over elements of mean_b(g)² / (var_b(g) + 1e-12), var over batches
  double meanGradNorm = 0;       // ||mean_b g_b||, for roll-ups
  double paramNorm = 0;          // ||θ||
  bool batchNormAffine = false;  // a BatchNorm's weight or bias (left out of roll-ups by default)
};

// A roll-up over several parameter tensors: RGN of the concatenation, SNR weighted by size.
struct GradientSummary {
  std::string name;
  int index = -1;  // a module's node in the LayerTree, or a block's index among the blocks
  std::int64_t parameters = 0;
  double rgn = 0;
  double snr = 0;
};

struct GradientOptions {
  std::size_t batches = 5;
  std::size_t batchSize = 64;
  bool includeBatchNormAffine = false;  // like the paper's code: their small norms inflate RGN
  std::string device = "auto";          // CUDA when available, else CPU
  std::uint64_t seed = 0;
};

struct GradientProfile {
  bool ok = false;
  std::string error;
  std::vector<ParameterGradient> parameters;  // in the model's parameter order
  std::vector<GradientSummary> modules;       // every module with parameters, execution order
  std::vector<GradientSummary> blocks;        // the model's blocks
};

// Labelled target batches through the model in eval mode (BatchNorm frozen, as in the paper).
// Never throws.
GradientProfile gradientProfile(const LoadedModel& model, const Dataset& target,
                                const GradientOptions& options = {});

// Rolls parameter tensors up into one summary.
GradientSummary rollUp(const std::string& name, const std::vector<const ParameterGradient*>& parts);

}  // namespace scalpel
