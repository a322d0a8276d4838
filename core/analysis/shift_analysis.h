#pragma once

// Torch-free facade: how far each layer's activations on target data moved from the source,
// streamed batch by batch, plus what the model's outputs say. The numbers behind the heatmaps.

#include <atomic>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "analysis/reference_profile.h"
#include "data/dataset.h"
#include "model/loaded_model.h"

namespace scalpel {

struct AnalysisOptions {
  std::size_t batchSize = 100;
  std::size_t maxBatches = 0;      // target batches to analyse; 0: all
  std::size_t sourceItems = 5000;  // source items for the reference (when source data is given)
  std::string device = "auto";     // CUDA when available, else CPU (see ScriptModel::load); the
                                   // analysis runs on a copy of the model when it is elsewhere
  std::uint64_t seed = 0;          // which items, in which order
};

struct LayerScore {
  std::string layer;     // module path ("layer1.0.bn1"); "#1" marks a second call
  int node = -1;         // the module's index in the model's LayerTree
  int call = 0;          // which call of it in one forward pass (0: the first)
  std::string typeName;  // e.g. "BatchNorm2d"
  std::int64_t channels = 0;
  double kl = 0;           // symmetric Gaussian KL, mean over channels, cumulative
  double smd = 0;          // standardised mean difference, mean over channels
  double noiseFloor = 0;   // KL expected from sampling error alone at this many items
  double uncertainty = 0;  // standard error of the score, from its batch-to-batch spread
};

// After each target batch: every layer's score so far, in execution order.
struct ShiftSnapshot {
  int batch = 0;  // 1-based
  std::size_t targetItems = 0;
  std::vector<LayerScore> layers;
  double accuracy = 0;  // of the unmodified model on the target items so far
};

// What the unmodified model's outputs say about the target data.
struct OutputEvidence {
  bool measured = false;  // false when the model's outputs do not match the data's classes
  // The target has numeric targets: the loss is their mean squared error (when the outputs fit
  // them) and the class-based evidence (accuracy, confusion, permutation) does not apply.
  bool regression = false;
  double loss = 0;  // mean cross-entropy (regression: mean squared error)
  double accuracy = 0;
  std::vector<std::vector<std::int64_t>> confusion;  // [true label][predicted class]
  // The predicted class each label maps to most often; a consistent permutation when these are
  // all different, not the identity, and explain far more than plain accuracy does.
  std::vector<int> mapping;
  double mappedAccuracy = 0;
  bool permutation = false;
};

struct ShiftAnalysis {
  bool ok = false;
  bool cancelled = false;
  std::string error;
  std::string reference;  // "source data (5000 items …)", "the reference stored with the model"
                          // or "BatchNorm running statistics"
  ReferenceProfile profile;              // the source-data reference, to save with the model
  std::vector<ShiftSnapshot> snapshots;  // one per batch; the last is the result
  OutputEvidence output;
};

// Streams `target` through the model with taps on every layer and compares each
// layer's per-channel statistics with the reference: `source` processed the same way; with no
// source, the reference profile stored in the model file; failing that, each BatchNorm's running
// statistics against that BatchNorm's input. Inputs are
// normalised with the model's stored mean/std. Never throws; `onSnapshot` is called after every
// batch, `cancel` is checked between batches.
ShiftAnalysis analyzeShift(const LoadedModel& model, const Dataset& target, const Dataset* source,
                           const AnalysisOptions& options,
                           const std::function<void(const ShiftSnapshot&)>& onSnapshot = {},
                           const std::atomic<bool>* cancel = nullptr);

}  // namespace scalpel
