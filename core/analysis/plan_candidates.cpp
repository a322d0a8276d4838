#include "analysis/plan_candidates.h"

#include <algorithm>
#include <cmath>
#include <set>
#include <sstream>

#include "util/number_text.h"

namespace scalpel {

namespace {

// A finalist whose accuracy is within one standard error of the winner's (the binomial error of
// an accuracy measured on the validation split): a choice the split cannot make, said as such
// rather than hidden behind a winner's name. Empty when the margin is larger or unknown.
std::string closeCall(const PlanSearch& search, const PlanCandidate& winner) {
  if (search.scoreName != "accuracy" || search.validationItems == 0) return {};
  const PlanCandidate* runnerUp = nullptr;
  for (const auto& candidate : search.candidates) {
    // Only the finalists that lost on validation, not those ruled out for what they forgot.
    if (&candidate == &winner || candidate.outcome != kLostLastRound ||
        candidate.validation.empty())
      continue;
    if (!runnerUp || candidate.validation.back() > runnerUp->validation.back())
      runnerUp = &candidate;
  }
  if (!runnerUp) return {};
  const double p = winner.validation.back();
  const double error = std::sqrt(p * (1 - p) / static_cast<double>(search.validationItems));
  const double margin = p - runnerUp->validation.back();
  if (margin >= error) return {};
  return " " + runnerUp->name + " came within " + points(margin) + " points of " + winner.name +
         ", less than one standard error on " + std::to_string(search.validationItems) +
         " validation items (" + points(error) +
         "): this split cannot tell the two apart, and either is a sound choice; more "
         "validation data would separate them.";
}

bool hasBatchNorm(const LayerTree& tree) {
  return std::any_of(tree.nodes().begin(), tree.nodes().end(),
                     [](const LayerNode& node) { return node.hasBatchNormStats; });
}

}  // namespace

bool trainsBatchNorm(const LayerTree& tree, const FreezePlan& plan) {
  for (const auto& node : tree.nodes()) {
    if (!node.hasBatchNormStats) continue;
    for (const auto& module : plan.trainable) {
      if (module.empty() || node.name == module || node.name.rfind(module + ".", 0) == 0)
        return true;
    }
  }
  return false;
}

std::string candidateName(const std::string& name, const FreezePlan& plan) {
  const std::string base = name.substr(0, name.find(" · "));
  return plan.trainable.empty() ? base : base + " · BN " + batchNormModeName(plan, true);
}

std::vector<PlanCandidate> proposePlans(const LayerTree& tree, const Diagnosis& diagnosis,
                                        const FreezePlan* rgn,
                                        const AdvisorThresholds& thresholds) {
  std::vector<PlanCandidate> plans;
  const auto units = trainingUnits(tree, thresholds);
  if (units.empty()) return plans;
  // Units a..b (inclusive) trained together.
  const auto unitRange = [&](std::size_t a, std::size_t b) {
    PlanCandidate candidate;
    candidate.plan.strategy = "auto";
    std::string name;
    for (std::size_t u = a; u <= b; ++u) {
      for (const auto& block : units[u]) {
        FreezePlan part;
        if (!planFreeze("block:" + block, tree, diagnosis, nullptr, part, thresholds).empty())
          continue;
        for (const auto& module : part.trainable) {
          if (std::find(candidate.plan.trainable.begin(), candidate.plan.trainable.end(), module) ==
              candidate.plan.trainable.end())
            candidate.plan.trainable.push_back(module);
        }
        name += (name.empty() ? "" : "+") + block;
      }
    }
    candidate.name = name;
    return candidate;
  };
  // Which units the diagnosis trains (contiguous by construction); none: the last one stands in.
  // (A new head is in every plan: it says nothing about where the diagnosis points.)
  FreezePlan diagnosed;
  planFreeze("auto", tree, diagnosis, nullptr, diagnosed, thresholds);
  std::set<std::string> named(diagnosed.trainable.begin(), diagnosed.trainable.end());
  for (const auto& node : tree.nodes()) {
    if (node.freshHead) named.erase(node.name);
  }
  std::size_t first = units.size(), last = 0;
  for (std::size_t u = 0; u < units.size(); ++u) {
    const auto unit = unitRange(u, u).plan.trainable;
    if (std::any_of(unit.begin(), unit.end(),
                    [&](const std::string& module) { return named.count(module) > 0; })) {
      first = std::min(first, u);
      last = std::max(last, u);
    }
  }
  std::vector<PlanCandidate> base;
  if (first <= last) {
    auto candidate = unitRange(first, last);
    candidate.origin = "diagnosis";
    candidate.plan.explanation = diagnosed.explanation;
    base.push_back(candidate);
  } else {
    first = last = units.size() - 1;
    auto candidate = unitRange(first, last);
    candidate.origin = "neighbour";
    base.push_back(candidate);
  }
  if (first > 0) {
    auto candidate = unitRange(first - 1, last);
    candidate.origin = "neighbour";
    base.push_back(candidate);
  }
  if (last + 1 < units.size()) {
    auto candidate = unitRange(first, last + 1);
    candidate.origin = "neighbour";
    base.push_back(candidate);
  }
  if (rgn && !rgn->trainable.empty()) {
    PlanCandidate candidate;
    candidate.name = "auto-rgn";
    candidate.origin = "auto-rgn";
    candidate.plan = *rgn;
    base.push_back(candidate);
  }
  {
    PlanCandidate candidate;
    candidate.name = "all";
    candidate.origin = "all";
    planFreeze("all", tree, diagnosis, nullptr, candidate.plan, thresholds);
    base.push_back(candidate);
  }
  // No duplicates: the same modules at the same rates is the same plan.
  std::set<std::pair<std::set<std::string>, bool>> seen;
  for (auto& candidate : base) {
    const std::set<std::string> modules(candidate.plan.trainable.begin(),
                                        candidate.plan.trainable.end());
    if (!seen.insert({modules, !candidate.plan.learningRateScale.empty()}).second) continue;
    candidate.plan.strategy = "auto";
    for (const std::string mode : {"eval", "train"}) {
      if (mode == "train" && !trainsBatchNorm(tree, candidate.plan)) continue;
      PlanCandidate variant = candidate;
      variant.plan.batchNorm = mode;
      variant.name = candidateName(variant.name, variant.plan);
      plans.push_back(variant);
    }
  }
  if (hasBatchNorm(tree) && std::none_of(tree.nodes().begin(), tree.nodes().end(),
                                         [](const LayerNode& node) { return node.freshHead; })) {
    PlanCandidate candidate;
    candidate.name = "recalibrate";
    candidate.origin = "recalibrate";
    planFreeze("recalibrate", tree, diagnosis, nullptr, candidate.plan, thresholds);
    candidate.plan.strategy = "auto";
    plans.push_back(candidate);
  }
  return plans;
}

std::string searchTable(const PlanSearch& search) {
  std::vector<int> rounds;  // the epochs of each round, from the candidates that ran longest
  for (const auto& candidate : search.candidates) {
    if (candidate.epochs.size() > rounds.size()) rounds = candidate.epochs;
  }
  std::size_t nameWidth = 9;
  for (const auto& candidate : search.candidates)
    nameWidth = std::max(nameWidth, candidate.name.size() + 2);
  std::ostringstream out;
  const auto cell = [&](const std::string& text, std::size_t width) {
    out << text << std::string(width > text.size() ? width - text.size() : 1, ' ');
  };
  cell("candidate", nameWidth);
  cell("lr", 8);
  for (const int epochs : rounds) cell(epochs == 0 ? "start" : std::to_string(epochs) + " ep", 14);
  cell("source", 8);
  out << "outcome\n";
  for (const auto& candidate : search.candidates) {
    cell(candidate.name, nameWidth);
    std::ostringstream rate;
    if (candidate.learningRate > 0) rate << candidate.learningRate;
    cell(candidate.plan.trainable.empty() ? "-" : rate.str(), 8);
    for (std::size_t r = 0; r < rounds.size(); ++r) {
      std::string text;
      if (r < candidate.validation.size() && !candidate.plan.trainable.empty()) {
        text = candidate.validation[r] > -1 ? percent(candidate.validation[r]) : "failed";
      } else if (r == 0 && !candidate.validation.empty()) {
        text = percent(candidate.validation[0]);
      }
      cell(text.empty() ? "" : text, 14);
    }
    cell(std::isfinite(candidate.sourceAfter) ? percent(candidate.sourceAfter) : "", 8);
    out << candidate.outcome << "\n";
  }
  std::ostringstream cost;
  cost.precision(1);
  cost << std::fixed << search.seconds << " s";
  if (search.fullModelEpochs > 0) cost << ", " << search.fullModelEpochs << " full-model epochs";
  out << search.runs << " runs in " << cost.str() << "; validation " << search.scoreName
      << " of the unmodified model " << percent(search.validationBefore);
  if (std::isfinite(search.sourceBefore))
    out << ", its source accuracy " << percent(search.sourceBefore);
  out << "\n";
  return out.str();
}

std::string explainSearch(const PlanSearch& search) {
  if (search.chosen < 0) return {};
  const auto& winner = search.candidates[static_cast<std::size_t>(search.chosen)];
  const PlanCandidate* diagnosed = nullptr;
  const PlanCandidate* everything = nullptr;
  for (const auto& candidate : search.candidates) {
    if (candidate.validation.empty()) continue;
    // Of a plan's BatchNorm variants, the one that went furthest, then the better one.
    const auto better = [](const PlanCandidate* a, const PlanCandidate& b) {
      if (!a || b.epochs.size() != a->epochs.size())
        return !a || b.epochs.size() > a->epochs.size();
      return b.validation.back() > a->validation.back();
    };
    if (candidate.origin == "diagnosis" && better(diagnosed, candidate)) diagnosed = &candidate;
    if (candidate.origin == "all" && better(everything, candidate)) everything = &candidate;
  }
  const auto reached = [&](const PlanCandidate& c) {
    std::string text = c.name + " " + percent(c.validation.back());
    if (!c.plan.trainable.empty()) {
      text += " after " + std::to_string(c.epochs.back()) +
              (c.epochs.back() == 1 ? " epoch" : " epochs");
    }
    return text;
  };
  int rounds = 0;
  for (const auto& candidate : search.candidates)
    rounds = std::max<int>(rounds, static_cast<int>(candidate.epochs.size()));
  std::string text =
      "Tried " + std::to_string(search.candidates.size()) + " plans on the validation split (" +
      std::to_string(search.runs) +
      " short runs; each round the best third, and the diagnosed plan, trained on to three times "
      "the epochs). " +
      "On validation " + search.scoreName + ", " + reached(winner);
  std::string against;
  for (const auto* other : {diagnosed, everything}) {
    if (other && other != &winner) against += (against.empty() ? "" : ", ") + reached(*other);
  }
  if (!against.empty()) text += "; " + against;
  text += ". ";
  if (winner.origin == "diagnosis") {
    text += "The diagnosis held on the target's own data, so train what it names.";
  } else if (winner.origin == "neighbour") {
    text += "The shift reaches past the diagnosed blocks, so the blocks next to them train too.";
  } else if (winner.origin == "all") {
    text += "The shift reaches deeper than any few blocks, so everything trains.";
  } else if (winner.origin == "auto-rgn") {
    text += "Every layer trains, each at the rate its gradients suggest (Auto-RGN).";
  } else if (winner.origin == "recalibrate") {
    text +=
        "Re-estimating the BatchNorm statistics on the target did best: nothing needs to train.";
  }
  if (winner.plan.batchNorm == "train")
    text += " Its BatchNorms follow the target's statistics while it trains.";
  if (winner.plan.recalibrate && winner.origin != "recalibrate")
    text +=
        " BatchNorm statistics are first re-estimated on the target: that alone raised "
        "validation " +
        search.scoreName + " above the unmodified model's " + percent(search.validationBefore) +
        ".";
  if (std::isfinite(search.sourceBefore) && std::isfinite(winner.sourceAfter)) {
    text +=
        " Source accuracy " + percent(search.sourceBefore) + " → " + percent(winner.sourceAfter);
    if (everything && everything != &winner && std::isfinite(everything->sourceAfter))
      text += " (all: " + percent(everything->sourceAfter) + ")";
    text += ".";
  }
  // Last before the cost: a caveat on the choice, after what the choice is.
  text += closeCall(search, winner);
  std::ostringstream cost;
  cost.precision(1);
  cost << std::fixed << " The search took " << search.seconds << " s";
  if (search.fullModelEpochs > 0)
    cost << ", as long as " << search.fullModelEpochs << " epochs of training every layer";
  return text + cost.str() + ".";
}

}  // namespace scalpel
