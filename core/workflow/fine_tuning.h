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
#include "workflow/plan_search.h"

namespace scalpel {

// The target data split by the paper's protocol: per-class counts to train and validate on, the
// rest to test.
struct TargetData {
  bool ok = false;
  std::string error;
  DataSummary summary;
  Dataset train, validation, test;
  // Labelled source data in the model's classes, to show what tuning forgets (empty: none).
  Dataset source;
  TrainData view() const { return {&train, &validation, &test, source.size() ? &source : nullptr}; }
};

// Every k-th item, at most `limit` of them: enough to measure an accuracy cheaply.
Dataset sampleOf(const Dataset& all, std::size_t limit);
// Gives `data` a sample (at most 2000 items) of `source` when it is labelled with the target's
// classes; returns what it did ("" when it did nothing).
std::string attachSource(TargetData& data, const Dataset& source);
TargetData prepareTarget(const DataRequest& request, const TargetSplit& split);
// The same for data already loaded (and shifted); `description` names it in reports.
TargetData splitTarget(const Dataset& all, const TargetSplit& split,
                       const std::string& description);

// A learning rate as plans, probes and the sweep's tables write it ("0.001"; "-" for none).
std::string learningRateText(double rate);

// The strategies a plan can be chosen by: "auto" (the validated plan: plan_search.h),
// "diagnosis" (the analysis' plan alone, untried), "probe", and those of planFreeze().
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
  // "auto": the candidates, their scores and the choice; the chosen candidate's learning rate,
  // which the run trains at (0: the options').
  PlanSearch search;
  double learningRate = 0;
  // Where the search's last run of the winner ended: the run goes on from there (null: from the
  // start), and the recalibrated model's validation when the search started from it.
  std::shared_ptr<const TrainState> resumeFrom;
  Evaluation validationRecalibrated;
};

// Chooses a plan. "diagnosis" analyses the target's activations against the model's BatchNorm
// statistics (or `source` when given) and follows the diagnosis; "auto" then tries the
// diagnosed plan against its neighbours, Auto-RGN, every layer and recalibration on the
// validation split (searchPlans) and keeps the winner; "auto-rgn" measures gradients
// on the training split; "probe" trains every block alone for `probeEpochs` epochs (at the
// options' learning rate and a tenth of it, keeping the better), the better half again for twice
// as many at its better rate, and so on (successive halving), and keeps the last one standing
// on validation accuracy (the paper's cross-validation, on a budget);
// "block:NAME", "all" and "last" need only the layer tree. `status` hears what is happening.
PlanChoice choosePlan(
    const LoadedModel& model, const std::string& strategy, const TargetData& data,
    const Dataset* source, const TrainOptions& options, int probeEpochs = 2,
    const std::function<void(const std::string&)>& status = {}, TrainControl* control = nullptr,
    const std::function<void(const std::string&, int, const TrainEvent&)>& candidateEvent = {});

struct FineTuneRun {
  TrainResult result;
  RunReport report;
};

// Trains under the chosen plan (at its learning rate when it has one) and fills the run's report
// (versions, fingerprints, plan, the search, options, metrics).
FineTuneRun fineTune(const LoadedModel& model, const PlanChoice& choice, const TargetData& data,
                     const TrainOptions& options,
                     const std::function<void(const TrainEvent&)>& events = {},
                     TrainControl* control = nullptr);

}  // namespace scalpel
