#pragma once

// The plans the validated "auto" weighs (the diagnosed blocks, those blocks with a neighbour,
// Auto-RGN's plan, every layer, each with a BatchNorm mode, and BatchNorm recalibration alone),
// what each scored on the validation split, and the words for the choice. Proposing and explaining
// need only the layer tree; workflow/plan_search.h runs the candidates. Torch-free.

#include <cstddef>
#include <limits>
#include <string>
#include <vector>

#include "analysis/advisor.h"
#include "model/layer_tree.h"

namespace scalpel {

// The outcome of a finalist that scored below the winner on validation.
inline constexpr const char* kLostLastRound = "lost the last round";

// One plan the search tried.
struct PlanCandidate {
  std::string name;         // what tables show: "stem+layer1 · BN train", "recalibrate"
  std::string origin;       // "diagnosis", "neighbour", "auto-rgn", "all", "recalibrate"
  FreezePlan plan;          // BatchNorm mode included
  double learningRate = 0;  // the better of the two it was tried at (0: none, recalibration)
  // Per round it ran in: its epochs and its best validation score (accuracy, R² for regression;
  // -1e9 for a run that failed), by which it was ranked.
  std::vector<int> epochs;
  std::vector<double> validation;
  double sourceAfter = std::numeric_limits<double>::quiet_NaN();  // last round; NaN: not known
  double seconds = 0;
  // "chosen", "out after round 1", kLostLastRound, "lost 5.2 source points (limit 2)"
  std::string outcome;
};

struct PlanSearch {
  std::vector<PlanCandidate> candidates;  // in the order they were proposed
  int chosen = -1;                        // index into candidates
  std::string scoreName = "accuracy";
  double validationBefore = 0;  // the unmodified model
  double sourceBefore = std::numeric_limits<double>::quiet_NaN();
  double maxSourceDrop = -1;  // the limit it applied (TrainOptions::maxSourceDrop)
  double seconds = 0;
  // The cost in epochs of training the whole model, measured against the `all` candidate's first
  // run in the same search (0 when it had none).
  double fullModelEpochs = 0;
  int runs = 0;
  // The validation split's size: how finely its accuracies can tell two plans apart.
  std::size_t validationItems = 0;
};

// The candidates for a tree and a diagnosis, before any training: the diagnosed plan, it joined
// with the training unit before and after it, Auto-RGN's plan (when `rgn` has its scales), every
// layer; each in BatchNorm eval mode and, when it trains a BatchNorm, train mode; then
// recalibration alone (when the model has BatchNorms). Duplicates are dropped.
std::vector<PlanCandidate> proposePlans(const LayerTree& tree, const Diagnosis& diagnosis,
                                        const FreezePlan* rgn,
                                        const AdvisorThresholds& thresholds = {});

// Whether the plan trains a module with BatchNorm statistics (only then can BatchNorm train).
bool trainsBatchNorm(const LayerTree& tree, const FreezePlan& plan);

// "stem+layer1 · BN recalibrated, train": a candidate's name for its plan's BatchNorm mode.
std::string candidateName(const std::string& name, const FreezePlan& plan);

// The candidates as a fixed-width table: validation per round, the learning rate, source accuracy
// after, and how each ended.
std::string searchTable(const PlanSearch& search);

// The chosen plan's explanation: what was tried, how each did, why the winner won.
std::string explainSearch(const PlanSearch& search);

}  // namespace scalpel
