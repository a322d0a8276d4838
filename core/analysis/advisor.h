#pragma once

// Turns a shift analysis (and, for auto-rgn, a gradient profile) into a diagnosis a person can
// check against the heatmap, and a freeze plan. Torch-free.

#include <map>
#include <string>
#include <vector>

#include "analysis/gradient_profile.h"
#include "analysis/shift_analysis.h"
#include "model/layer_tree.h"

namespace scalpel {

enum class ShiftKind { None, InputLevel, FeatureLevel, OutputLevel };
std::string shiftKindName(ShiftKind kind);  // "input-level", ...

struct Diagnosis {
  ShiftKind kind = ShiftKind::None;
  std::string summary;                // one sentence
  std::vector<std::string> evidence;  // sentences with the numbers behind the summary
  std::string firstSignificantLayer;  // where the shift first rises above noise ("" if nowhere)
  int firstSignificantNode = -1;      // that layer's node in the LayerTree
};

struct FreezePlan {
  std::string strategy;
  std::vector<std::string> trainable;               // modules to train; everything else is frozen
  std::map<std::string, double> learningRateScale;  // per trainable module; 1 when absent
  std::string explanation;
  // How the plan treats BatchNorm, which is part of what it changes: "" follows
  // TrainOptions::batchNormEval; "eval" keeps every BatchNorm's statistics, "train" lets the
  // trainable blocks' BatchNorms follow the target's batches. With `recalibrate`, every
  // BatchNorm's statistics are first re-estimated on the training split (AdaBN), which alone,
  // with nothing trainable, is the plan "recalibrate".
  std::string batchNorm;
  bool recalibrate = false;
};

// Auto-RGN's plan, also when the validated "auto" chose it: its learning-rate scales are measured
// again at the start of every epoch.
bool rescalesByRgn(const FreezePlan& plan);

// "eval", "train", "recalibrated, eval", "recalibrated, train": how a run with these options
// treats BatchNorm under `plan`.
std::string batchNormModeName(const FreezePlan& plan, bool optionsBatchNormEval);

struct AdvisorThresholds {
  double noiseMultiple =
      20;                   // a layer's shift is significant above this multiple of its noise floor
  double minimumKl = 0.02;  // ... and above this KL
  double lowAccuracy = 0.5;  // below this, unchanged activations point at the outputs
  // Input-level shift trains the first blocks until they hold this share of the parameters: a
  // lone stem convolution (0.2% of the demo model) is too small to relearn the inputs. In the
  // fmnist-paper sweep it trailed stem+layer1 by 3 (noise) and 29 (contrast) points.
  double minimumInputShare = 0.005;
};

Diagnosis diagnose(const ShiftAnalysis& analysis, const LayerTree& tree,
                   const AdvisorThresholds& thresholds = {});

// The parts a plan trains alone: the model's blocks with parameters, except that the first ones
// are merged until they hold thresholds.minimumInputShare of the parameters (a lone stem
// convolution is too small to train alone). Each unit lists its block names, input first.
std::vector<std::vector<std::string>> trainingUnits(const LayerTree& tree,
                                                    const AdvisorThresholds& thresholds = {});

// Strategies: "auto" (follows the diagnosis), "recalibrate" (no training: every BatchNorm's
// statistics re-estimated on the target), "auto-rgn" (the paper: everything trains, each
// module at a learning rate scaled by its relative gradient norm; needs `gradients`),
// "block:NAME", "all", "last". Returns "" or what is wrong (an unknown strategy or block).
std::string planFreeze(const std::string& strategy, const LayerTree& tree,
                       const Diagnosis& diagnosis, const GradientProfile* gradients,
                       FreezePlan& plan, const AdvisorThresholds& thresholds = {});

}  // namespace scalpel
