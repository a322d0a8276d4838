#include "workflow/plan_search.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>

#include <unistd.h>

#include <atomic>
#include <filesystem>

#include "files/atomic_file.h"
#include "util/device_info.h"
#include "util/logging.h"
#include "util/number_text.h"
#include "workflow/fine_tuning.h"

namespace scalpel {

namespace {

constexpr double kFailed = -1e9;

// A run's score: its best validation (never below `start`, the model it started from, which a
// run keeps when it cannot beat it); a failed run scores nothing.
double scoreOf(const TrainResult& run, double start) {
  return run.ok ? std::max(start, run.validationAfter.score()) : kFailed;
}

}  // namespace

PlanSearchResult searchPlans(const LoadedModel& model, std::vector<PlanCandidate> candidates,
                             const TargetData& data, const TrainOptions& options,
                             const PlanSearchHooks& hooks, TrainControl* control) {
  using Clock = std::chrono::steady_clock;
  const auto began = Clock::now();
  PlanSearchResult result;
  PlanSearch& search = result.search;
  search.candidates = std::move(candidates);
  search.maxSourceDrop = options.maxSourceDrop;
  search.validationItems = data.validation.size();
  auto& all = search.candidates;
  const auto say = [&](const std::string& text) {
    if (hooks.status) hooks.status(text);
  };
  if (all.empty()) {
    result.error = "there is no plan to try";
    return result;
  }
  const Dataset sample = sampleOf(data.source, 1000);
  const TrainData shortData{&data.train, &data.validation, nullptr, nullptr};
  const TrainData lastData{&data.train, &data.validation, nullptr,
                           sample.size() ? &sample : nullptr};
  TrainOptions base = options;
  base.maxSteps = 0;
  base.patience = 0;
  base.evaluateEverySteps = 0;
  base.checkpointPath.clear();
  // Every run starts from one model on one data set: plans whose trainable layers begin at the
  // same layer compute the same frozen outputs, once.
  base.frozenOutputs = makeFrozenOutputs();
  const int firstEpochs = std::max(1, options.epochs / 10);
  double allSecondsPerEpoch = 0;

  // Once recalibration has helped, the candidates start from the recalibrated model, written
  // once, rather than each recalibrating again.
  const LoadedModel* start = &model;
  bool started = false;  // the unmodified model's validation is known
  // The validation score of the model runs start from: what a run that never beats it keeps.
  double startScore = -std::numeric_limits<double>::infinity();
  LoadedModel recalibrated;
  std::filesystem::path recalibratedFile;
  struct Remove {
    std::filesystem::path& file;
    ~Remove() {
      std::error_code ignored;
      if (!file.empty()) std::filesystem::remove(file, ignored);
    }
  } removeRecalibrated{recalibratedFile};

  // Each candidate's run at its chosen rate, for its next round to go on from: successive
  // halving's rounds then cost only their new epochs (as in ASHA, Li et al. 2020), and the winner
  // goes on from its last round. States live in host memory, within a quarter of what is free.
  const bool resumes = resumable(base);
  std::vector<std::shared_ptr<const TrainState>> states(all.size());
  const double stateBudget = availableHostMemory() / 4;
  double stateBytes = 0;
  const auto keepState = [&](std::size_t index, std::shared_ptr<const TrainState> state) {
    if (states[index]) stateBytes -= static_cast<double>(trainStateBytes(*states[index]));
    states[index].reset();
    if (!state || stateBytes + static_cast<double>(trainStateBytes(*state)) > stateBudget) return;
    stateBytes += static_cast<double>(trainStateBytes(*state));
    states[index] = std::move(state);
  };

  // One short run; false when cancelled (result.error says so). `from`: the run it goes on from.
  const auto run = [&](std::size_t index, int round, int epochs, double rate, bool withSource,
                       const std::shared_ptr<const TrainState>& from, TrainResult& outcome) {
    TrainOptions runOptions = base;
    runOptions.epochs = epochs;
    runOptions.keepEndState = resumes;
    runOptions.resumeFrom = from;
    runOptions.learningRate = rate;
    // Once is enough: every run starts from one model. Its source accuracy is measured by the
    // first run given source data (a pass over 1000 items each last-round run would repeat).
    runOptions.measureStart =
        !started || (withSource && sample.size() && !std::isfinite(search.sourceBefore));
    // Evaluated after every epoch only, as the run the winner goes on to is: a state from between
    // two epochs would be one that run never keeps.
    say("trying " + all[index].name + " for " + std::to_string(epochs) +
        (epochs == 1 ? " epoch" : " epochs") +
        (all[index].plan.trainable.empty() ? "" : " at lr " + learningRateText(rate)) + " …");
    FreezePlan plan = all[index].plan;
    if (start != &model) plan.recalibrate = false;  // it starts recalibrated
    const auto runBegan = Clock::now();
    outcome = trainModel(
        *start, plan, withSource ? lastData : shortData, runOptions,
        [&](const TrainEvent& event) {
          if (hooks.event) hooks.event(all[index].name, round, event);
        },
        control);
    ++search.runs;
    const double wall = std::chrono::duration<double>(Clock::now() - runBegan).count();
    all[index].seconds += wall;
    logger("train")->debug("plan search: {} for {} epochs in {:.2f} s ({:.2f} s training)",
                           all[index].name, epochs, wall, outcome.seconds);
    if (all[index].origin == "all" && round == 0 && allSecondsPerEpoch == 0 && outcome.ok)
      allSecondsPerEpoch = wall / epochs;
    if (outcome.cancelled) {
      result.error = "the search for a plan was cancelled";
      return false;
    }
    return true;
  };
  // The unmodified model's scores, from a run that started from it.
  const auto noteStart = [&](const TrainResult& outcome) {
    if (start != &model) return;
    if (outcome.sourceBefore.items) search.sourceBefore = outcome.sourceBefore.score();
    if (!outcome.validationBefore.items) return;
    search.validationBefore = outcome.validationBefore.score();
    search.scoreName = outcome.validationBefore.scoreName();
    startScore = search.validationBefore;
    started = true;
  };
  const auto record = [&](PlanCandidate& candidate, int epochs, const TrainResult& outcome) {
    candidate.epochs.push_back(epochs);
    candidate.validation.push_back(scoreOf(outcome, startScore));
    if (outcome.sourceAfter.items) candidate.sourceAfter = outcome.sourceAfter.score();
    if (!outcome.ok) candidate.outcome = "failed: " + outcome.error;
  };

  // Recalibration first: it costs one pass, and tells whether the others start from it.
  std::vector<std::size_t> alive;
  for (std::size_t i = 0; i < all.size(); ++i) {
    if (all[i].origin != "recalibrate") {
      alive.push_back(i);
      continue;
    }
    TrainResult outcome;
    if (!run(i, 0, 1, options.learningRate, true, nullptr, outcome)) return result;
    noteStart(outcome);
    const double score = outcome.validationAfter.score();
    record(all[i], 0, outcome);
    alive.push_back(i);
    if (outcome.ok && score > search.validationBefore && outcome.tunedModel) {
      static std::atomic<int> files{0};
      recalibratedFile = std::filesystem::temp_directory_path() /
                         ("scalpel-recalibrated-" + std::to_string(::getpid()) + "-" +
                          std::to_string(files++) + ".pt");
      if (auto problem = writeFileAtomically(recalibratedFile.string(), *outcome.tunedModel);
          problem.empty()) {
        recalibrated = LoadedModel::open(recalibratedFile.string());
        if (recalibrated.ok()) {
          start = &recalibrated;
          startScore = score;
          result.validationRecalibrated = outcome.validationRecalibrated;
        }
      }
      for (auto& other : all) {
        if (other.origin == "recalibrate") continue;
        other.plan.recalibrate = true;
        other.name = candidateName(other.name, other.plan);
      }
    }
  }
  const auto isRecalibration = [&](std::size_t i) { return all[i].origin == "recalibrate"; };

  // Successive halving with Hyperband's rate (Li et al. 2017): each round keeps the best third
  // and trains it three times as long, so every round costs about as much as the first. Short
  // runs favour what learns fastest (on the demo's sweep the best plan after 1 epoch was the best
  // after 10 in 1 of 12 cases, after 3 epochs in 7: docs/sweep/fast_learners.py), so the
  // diagnosed plan, the analysis' own evidence, always goes on to the last round, where the
  // budget is long enough to judge it.
  constexpr int kRate = 3;
  for (int epochs = firstEpochs, round = 0;; epochs *= kRate, ++round) {
    // The last round: no longer one within the run's epochs, or at most the best third and the
    // diagnosis left.
    const bool lastRound = epochs * kRate > options.epochs || alive.size() <= kRate + 1;
    for (const std::size_t i : alive) {
      if (isRecalibration(i)) {  // nothing trains: its score stands as it is
        if (round > 0) all[i].validation.push_back(all[i].validation.back());
        continue;
      }
      auto& candidate = all[i];
      // The first round tries two rates; a plan's BatchNorm train variant takes the rate its
      // eval variant chose (the same layers train), which spares a run per plan.
      std::vector<double> rates{candidate.learningRate};
      if (round == 0) {
        rates = {options.learningRate, options.learningRate / 10};
        const std::string base = candidate.name.substr(0, candidate.name.find(" · "));
        for (const auto& sibling : all) {
          if (&sibling != &candidate && sibling.plan.batchNorm == "eval" &&
              candidate.plan.batchNorm == "train" && sibling.learningRate > 0 &&
              sibling.name.substr(0, sibling.name.find(" · ")) == base)
            rates = {sibling.learningRate};
        }
      }
      TrainResult best;
      double bestScore = kFailed;
      for (const double rate : rates) {
        TrainResult outcome;
        if (!run(i, round, epochs, rate, lastRound, round == 0 ? nullptr : states[i], outcome))
          return result;
        noteStart(outcome);
        const double score = scoreOf(outcome, startScore);
        if (score > bestScore || rate == rates.front()) {
          bestScore = std::max(bestScore, score);
          best = outcome;
          candidate.learningRate = rate;
        }
      }
      record(candidate, epochs, best);
      keepState(i, best.endState);
    }
    std::stable_sort(alive.begin(), alive.end(), [&](std::size_t a, std::size_t b) {
      return all[a].validation.back() > all[b].validation.back();
    });
    if (lastRound) break;
    const std::size_t keep = (alive.size() + kRate - 1) / kRate;
    std::vector<std::size_t> next(alive.begin(), alive.begin() + static_cast<std::ptrdiff_t>(keep));
    const auto diagnosed = std::find_if(alive.begin(), alive.end(), [&](std::size_t i) {
      return all[i].origin == "diagnosis";
    });  // its better BatchNorm variant: the list is sorted
    if (diagnosed != alive.end() && std::find(next.begin(), next.end(), *diagnosed) == next.end())
      next.push_back(*diagnosed);
    for (const std::size_t i : alive) {
      if (std::find(next.begin(), next.end(), i) != next.end()) continue;
      all[i].outcome = "out after round " + std::to_string(round + 1);
      keepState(i, nullptr);
    }
    alive = next;
    if (alive.size() == 1) break;
  }

  // What may be lost: a candidate that forgets more than the limit allows is ruled out, unless
  // every one does (then the one that forgets least).
  std::vector<std::size_t> allowed;
  const bool limited = options.maxSourceDrop >= 0 && std::isfinite(search.sourceBefore);
  for (const std::size_t i : alive) {
    const double drop = search.sourceBefore - all[i].sourceAfter;
    if (limited && std::isfinite(all[i].sourceAfter) && drop > options.maxSourceDrop + 1e-9) {
      all[i].outcome =
          "lost " + points(drop) + " source points (limit " + points(options.maxSourceDrop) + ")";
      continue;
    }
    allowed.push_back(i);
  }
  if (allowed.empty()) {
    allowed = alive;
    std::stable_sort(allowed.begin(), allowed.end(), [&](std::size_t a, std::size_t b) {
      return all[a].sourceAfter > all[b].sourceAfter;
    });
  }
  const std::size_t winner = allowed.front();
  if (all[winner].validation.empty() || all[winner].validation.back() <= kFailed) {
    result.error = "every plan the search tried failed: " + all[winner].outcome;
    return result;
  }
  for (const std::size_t i : alive) {
    if (all[i].outcome.empty()) all[i].outcome = kLostLastRound;
  }
  all[winner].outcome = "chosen";
  search.chosen = static_cast<int>(winner);
  result.winnerState = states[winner];
  search.seconds = std::chrono::duration<double>(Clock::now() - began).count();
  if (allSecondsPerEpoch > 0) search.fullModelEpochs = search.seconds / allSecondsPerEpoch;
  logger("train")->info("plan search: {} runs in {:.1f} s ({:.1f} full-model epochs), chose {}",
                        search.runs, search.seconds, search.fullModelEpochs, all[winner].name);
  return result;
}

}  // namespace scalpel
