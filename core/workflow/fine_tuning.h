#pragma once

// One fine-tuning job from data request to report, shared by the CLI and the desktop app:
// prepare the target splits, choose the freeze plan by a strategy, train, and describe the run.
// Torch-free.

#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "analysis/advisor.h"
#include "data/data_request.h"
#include "io/run_report.h"
#include "io/session.h"
#include "train/trainer.h"

namespace scalpel {

// The target data split by the paper's protocol: per-class counts to train and validate on, the
// rest to test.
struct TargetData {
  bool ok = false;
  std::string error;
  DataSummary summary;
  Dataset train, validation, test;
  TrainData view() const { return {&train, &validation, &test}; }
};
TargetData prepareTarget(const DataRequest& request, const TargetSplit& split);
// The same for data already loaded (and shifted); `description` names it in reports.
TargetData splitTarget(const Dataset& all, const TargetSplit& split,
                       const std::string& description);

// A learning rate as plans, probes and the sweep's tables write it ("0.001"; "-" for none).
std::string learningRateText(double rate);

// The strategies a plan can be chosen by: those of planFreeze() plus "probe".
const std::vector<std::string>& strategyNames();

struct PlanChoice {
  bool ok = false;
  std::string error;
  bool diagnosed = false;  // the shift was analysed ("auto")
  Diagnosis diagnosis;
  std::vector<LayerShift> layerShifts;
  FreezePlan plan;
  // "probe": validation accuracy (R² for regression) of each training unit (trainingUnits(): a
  // block, or the first blocks together; names joined by '+') in each round of the successive
  // halving, in order; in the first round the better of its two learning rates.
  std::vector<std::pair<std::string, double>> probeScores;
};

// Chooses a plan. "auto" analyses the target's activations against the model's BatchNorm
// statistics (or `source` when given) and follows the diagnosis; "auto-rgn" measures gradients
// on the training split; "probe" trains every block alone for `probeEpochs` epochs (at the
// options' learning rate and a tenth of it, keeping the better), the better half again for twice
// as many at its better rate, and so on (successive halving), and keeps the last one standing
// on validation accuracy (the paper's cross-validation, on a budget);
// "block:NAME", "all" and "last" need only the layer tree. `status` hears what is happening.
PlanChoice choosePlan(const LoadedModel& model, const std::string& strategy, const TargetData& data,
                      const Dataset* source, const TrainOptions& options, int probeEpochs = 2,
                      const std::function<void(const std::string&)>& status = {},
                      TrainControl* control = nullptr);

struct FineTuneRun {
  TrainResult result;
  RunReport report;
};

// Trains under the chosen plan and fills the run's report (versions, fingerprints, plan,
// options, metrics).
FineTuneRun fineTune(const LoadedModel& model, const PlanChoice& choice, const TargetData& data,
                     const TrainOptions& options,
                     const std::function<void(const TrainEvent&)>& events = {},
                     TrainControl* control = nullptr);

}  // namespace scalpel
