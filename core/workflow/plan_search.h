#pragma once

// The validated plan ("auto"): the analysis proposes, the user's own validation split decides.
// Candidate plans (the diagnosed blocks, those blocks with a neighbour, Auto-RGN's plan, every
// layer, each with a BatchNorm mode, and BatchNorm recalibration alone) are trained briefly on the
// training split and ranked on the validation split by successive halving: the best third, and
// the diagnosed plan, train on to three times the epochs, until one is left. Torch-free.

#include <functional>
#include <memory>
#include <string>

#include "analysis/plan_candidates.h"
#include "train/trainer.h"

namespace scalpel {

struct TargetData;  // workflow/fine_tuning.h

struct PlanSearchHooks {
  std::function<void(const std::string&)> status;
  // A candidate's run: its name (PlanCandidate::name), round (0-based) and the trainer's event.
  std::function<void(const std::string& candidate, int round, const TrainEvent&)> event;
};

// Runs the search. The first round trains each candidate for max(1, epochs ÷ 10) epochs at the
// options' learning rate and a tenth of it (a BatchNorm train variant at its eval variant's
// choice); each later round keeps the best third, and the diagnosed plan's better variant, and
// trains them three times as long, at their rates, each going on from where its previous run
// ended (resumable() options; while their states fit a quarter of the host's memory, else from
// the start); the best in the last round wins.
// Recalibration that does not beat the unmodified model on validation is not applied to the
// other candidates; one that does is applied to all. Fails (error set) only
// when cancelled or every candidate fails.
struct PlanSearchResult {
  PlanSearch search;
  std::string error;
  // Where the winner's last short run ended, for its full run to go on from (TrainOptions::
  // resumeFrom); null where its runs could not be continued.
  std::shared_ptr<const TrainState> winnerState;
  // The recalibrated model's validation when the candidates started from it.
  Evaluation validationRecalibrated;
};
// With data.source, the last round also measures each candidate's source accuracy, and
// options.maxSourceDrop rules out those that lose too much.
PlanSearchResult searchPlans(const LoadedModel& model, std::vector<PlanCandidate> candidates,
                             const TargetData& data, const TrainOptions& options,
                             const PlanSearchHooks& hooks = {}, TrainControl* control = nullptr);

}  // namespace scalpel
