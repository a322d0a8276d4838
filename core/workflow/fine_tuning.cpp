#include "workflow/fine_tuning.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <ctime>
#include <limits>
#include <sstream>

#include "analysis/gradient_profile.h"
#include "analysis/shift_analysis.h"
#include "data/splits.h"
#include "scalpel/version.h"
#include "util/device_info.h"
#include "util/logging.h"
#include "util/number_text.h"

namespace scalpel {

namespace {

std::string utcNow() {
  const std::time_t now = std::time(nullptr);
  char text[32];
  std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&now));
  return text;
}

}  // namespace

TargetData prepareTarget(const DataRequest& request, const TargetSplit& split) {
  Dataset all;
  DataSummary summary;
  loadRequestedData(request, all, summary);
  if (!summary.ok) {
    TargetData data;
    data.error = summary.error;
    data.summary = summary;
    return data;
  }
  TargetData data = splitTarget(all, split, request.describe());
  data.summary = summary;
  return data;
}

TargetData splitTarget(const Dataset& all, const TargetSplit& split,
                       const std::string& description) {
  TargetData data;
  data.summary.description = description;
  const auto parts = stratifiedSplitPerClass(all.strata(), split.trainPerClass,
                                             split.validationPerClass, split.seed);
  if (parts.train.empty() || parts.validation.empty()) {
    data.error = description +
                 " has too few items to split into training and validation data — use more data or "
                 "fewer items per class";
    return data;
  }
  data.train = all.subset(parts.train);
  data.validation = all.subset(parts.validation);
  data.test = all.subset(parts.test);
  data.ok = true;
  return data;
}

Dataset sampleOf(const Dataset& all, std::size_t limit) {
  if (all.size() <= limit) return all;
  std::vector<std::size_t> indices;
  const double stride = static_cast<double>(all.size()) / static_cast<double>(limit);
  for (std::size_t i = 0; i < limit; ++i)
    indices.push_back(static_cast<std::size_t>(static_cast<double>(i) * stride));
  return all.subset(indices);
}

std::string attachSource(TargetData& data, const Dataset& source) {
  if (source.size() == 0 || source.isRegression() || data.train.isRegression() ||
      source.labels.size() != source.size() || source.classNames != data.train.classNames)
    return {};
  data.source = sampleOf(source, 2000);
  return "source accuracy measured on " + std::to_string(data.source.size()) + " of " +
         std::to_string(source.size()) + " source items";
}

std::string learningRateText(double rate) {
  if (!std::isfinite(rate)) return "-";
  std::ostringstream text;
  text << rate;
  return text.str();
}

const std::vector<std::string>& strategyNames() {
  static const std::vector<std::string> names{"auto",        "diagnosis", "auto-rgn", "probe",
                                              "recalibrate", "all",       "last",     "block:NAME"};
  return names;
}

PlanChoice choosePlan(
    const LoadedModel& model, const std::string& strategy, const TargetData& data,
    const Dataset* source, const TrainOptions& options, int probeEpochs,
    const std::function<void(const std::string&)>& status, TrainControl* control,
    const std::function<void(const std::string&, int, const TrainEvent&)>& candidateEvent) {
  PlanChoice choice;
  const auto say = [&](const std::string& text) {
    if (status) status(text);
  };
  if (!model.ok()) {
    choice.error = model.error();
    return choice;
  }
  const LayerTree& tree = model.tree();

  if (strategy == "probe") {
    // Successive halving over the training units (each block with parameters; a tiny first
    // block goes with the next, as in the advisor's input-level plan): every unit trains for
    // `probeEpochs`, the better half goes on from scratch with twice the epochs, until one is
    // left or the run's own epoch budget is reached. One short round alone favours what
    // converges fastest (the smallest blocks); the later rounds let the better units show it.
    // The first round trains each unit at the run's learning rate and at a tenth of it and keeps
    // the better, which the later rounds use: blocks near the input often need a smaller step
    // than the head (the paper, too, chooses the rate per block on validation), and a single
    // rate would rank the blocks by how well they suit it.
    struct Candidate {
      std::string name;  // "stem+layer1"
      FreezePlan plan;
      double score = -1;
      double learningRate = 0;  // the rate it scored best at
    };
    std::vector<Candidate> candidates;
    for (const auto& unit : trainingUnits(tree)) {
      Candidate candidate;
      for (const auto& block : unit) {
        FreezePlan part;
        if (!planFreeze("block:" + block, tree, choice.diagnosis, nullptr, part).empty()) continue;
        candidate.plan.trainable.insert(candidate.plan.trainable.end(), part.trainable.begin(),
                                        part.trainable.end());
        candidate.name += (candidate.name.empty() ? "" : "+") + block;
      }
      if (!candidate.plan.trainable.empty()) candidates.push_back(std::move(candidate));
    }
    if (candidates.empty()) {
      choice.error = "the model has no block with parameters to probe";
      return choice;
    }
    std::string rounds;
    std::string scoreName = "accuracy";  // R² for regression
    const int firstEpochs = std::max(1, std::min(options.epochs, probeEpochs));
    for (int epochs = firstEpochs;; epochs *= 2) {
      TrainOptions probeOptions = options;
      probeOptions.epochs = epochs;
      probeOptions.maxSteps = 0;
      probeOptions.patience = 0;
      std::string scores;
      for (auto& candidate : candidates) {
        const std::vector<double> rates =
            epochs == firstEpochs
                ? std::vector<double>{options.learningRate, options.learningRate / 10}
                : std::vector<double>{candidate.learningRate};
        candidate.score = -std::numeric_limits<double>::infinity();  // R² has no floor
        for (const double rate : rates) {
          probeOptions.learningRate = rate;
          say("probing " + candidate.name + " for " + std::to_string(epochs) +
              (epochs == 1 ? " epoch" : " epochs") + " at lr " + learningRateText(rate) + " …");
          // No test split here: the probe chooses on validation data alone.
          const auto run =
              trainModel(model, candidate.plan, {&data.train, &data.validation, nullptr},
                         probeOptions, {}, control);
          if (run.cancelled) {
            choice.error = "the probe was cancelled";
            return choice;
          }
          if (!run.ok) {
            choice.error = "probing " + candidate.name + " failed: " + run.error;
            return choice;
          }
          if (run.validationAfter.score() > candidate.score) {
            candidate.score = run.validationAfter.score();
            candidate.learningRate = rate;
          }
          scoreName = run.validationAfter.scoreName();
        }
        // Later rounds say their epochs: "layer2 (4 epochs)".
        choice.probeScores.emplace_back(
            epochs == firstEpochs ? candidate.name
                                  : candidate.name + " (" + std::to_string(epochs) + " epochs)",
            candidate.score);
        scores +=
            (scores.empty() ? "" : ", ") + candidate.name + " " + percent(candidate.score) +
            (epochs == firstEpochs ? " at lr " + learningRateText(candidate.learningRate) : "");
      }
      rounds += (rounds.empty() ? "" : "; ") + std::to_string(epochs) +
                (epochs == 1 ? " epoch: " : " epochs: ") + scores;
      std::stable_sort(candidates.begin(), candidates.end(),
                       [](const Candidate& a, const Candidate& b) { return a.score > b.score; });
      if (epochs * 2 > options.epochs) break;
      candidates.resize((candidates.size() + 1) / 2);
      if (candidates.size() == 1) break;  // the winner of a round of two
    }
    choice.plan = candidates.front().plan;
    choice.plan.strategy = "probe";
    choice.plan.explanation =
        "A probe trained each block alone (a tiny first block with the next), keeping the better "
        "half for twice the epochs each round (validation " +
        scoreName + " after " + rounds + "); " + candidates.front().name +
        " did best, so train it.";
    choice.ok = true;
    return choice;
  }

  GradientProfile gradients;
  if (strategy == "auto-rgn" || strategy == "auto") {
    say("measuring gradients on the target …");
    GradientOptions gradientOptions;
    gradientOptions.device = options.device;
    gradientOptions.seed = options.seed;
    gradients = gradientProfile(model, data.train, gradientOptions);
    if (!gradients.ok) {
      choice.error = gradients.error;
      return choice;
    }
  }
  if (strategy == "auto" || strategy == "diagnosis") {
    say("analysing the shift …");
    AnalysisOptions analysisOptions;
    analysisOptions.device = options.device;
    analysisOptions.seed = options.seed;
    // The training split: the labelled target data an analyst has (the splits share one
    // distribution, so the rest would tell no other story).
    const auto analysis = analyzeShift(model, data.train, source, analysisOptions);
    if (!analysis.ok) {
      choice.error = analysis.error;
      return choice;
    }
    choice.diagnosis = diagnose(analysis, tree);
    choice.diagnosed = true;
    for (const auto& layer : analysis.snapshots.back().layers)
      choice.layerShifts.push_back({layer.layer, layer.kl, layer.noiseFloor});
  }
  if (strategy == "auto") {
    FreezePlan rgn;
    planFreeze("auto-rgn", tree, choice.diagnosis, &gradients, rgn);
    PlanSearchHooks hooks;
    hooks.status = status;
    hooks.event = candidateEvent;
    auto found = searchPlans(model, proposePlans(tree, choice.diagnosis, &rgn), data, options,
                             hooks, control);
    if (!found.error.empty()) {
      choice.error = found.error;
      return choice;
    }
    choice.search = std::move(found.search);
    const auto& winner = choice.search.candidates[static_cast<std::size_t>(choice.search.chosen)];
    choice.plan = winner.plan;
    choice.plan.strategy = "auto";
    choice.plan.explanation = explainSearch(choice.search);
    choice.learningRate = winner.learningRate;
    choice.resumeFrom = std::move(found.winnerState);
    choice.validationRecalibrated = found.validationRecalibrated;
    choice.ok = true;
    return choice;
  }
  const std::string planned = strategy == "diagnosis" ? "auto" : strategy;
  if (auto problem = planFreeze(planned, tree, choice.diagnosis, &gradients, choice.plan);
      !problem.empty()) {
    choice.error = problem;
    return choice;
  }
  choice.plan.strategy = strategy;
  choice.ok = true;
  return choice;
}

FineTuneRun fineTune(const LoadedModel& model, const PlanChoice& choice, const TargetData& data,
                     const TrainOptions& options,
                     const std::function<void(const TrainEvent&)>& events, TrainControl* control) {
  FineTuneRun run;
  RunReport& report = run.report;
  report.scalpelVersion = kVersion;
  report.torchVersion = torchVersion();
  report.createdUtc = utcNow();
  report.modelPath = model.path();
  report.modelFingerprint = model.fingerprint();
  if (choice.diagnosed) {
    report.diagnosis = choice.diagnosis.summary;
    report.evidence = choice.diagnosis.evidence;
  }
  report.plan = choice.plan;
  report.search = choice.search;
  report.options = options;
  if (choice.learningRate > 0) report.options.learningRate = choice.learningRate;
  if (data.train.isRegression()) report.options.loss = "mse";  // what the trainer uses for targets
  report.layerShifts = choice.layerShifts;
  for (const auto& [role, part] :
       {std::pair{"train", &data.train}, std::pair{"validation", &data.validation},
        std::pair{"test", &data.test}}) {
    report.data.push_back(
        {role, data.summary.description, part->size(), datasetFingerprint(*part)});
  }
  TrainOptions runOptions = report.options;
  // The search's winner goes on from its last run where that run is the start of this one: the
  // search evaluates after every epoch and never stops early.
  if (runOptions.evaluateEverySteps == 0 && runOptions.patience == 0)
    runOptions.resumeFrom = choice.resumeFrom;
  run.result = trainModel(model, choice.plan, data.view(), runOptions, events, control);
  // It went on from a model the search had recalibrated once for every candidate.
  if (run.result.resumedEpochs > 0 && !run.result.validationRecalibrated.items)
    run.result.validationRecalibrated = choice.validationRecalibrated;
  fillRunReport(run.result, report);
  return run;
}

}  // namespace scalpel
