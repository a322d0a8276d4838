#include "analysis/advisor.h"

#include <algorithm>
#include <cstdio>

#include "util/number_text.h"

namespace scalpel {

namespace {

std::string format(const char* pattern, double a, double b = 0, double c = 0) {
  char text[160];
  std::snprintf(text, sizeof text, pattern, a, b, c);
  return text;
}

std::vector<int> blocksWithParameters(const LayerTree& tree) {
  std::vector<int> blocks;
  for (std::size_t b = 0; b < tree.blocks().size(); ++b) {
    if (tree.blocks()[b].totalParameters > 0) blocks.push_back(static_cast<int>(b));
  }
  return blocks;
}

double ratio(const LayerScore& layer) {
  return layer.noiseFloor > 0 ? layer.kl / layer.noiseFloor : 0;
}

std::string describe(const LayerScore& layer) {
  return layer.layer + " (" + layer.typeName + ", KL " + format("%.3g", layer.kl) + ", " +
         format("%.0f", ratio(layer)) + "× the noise floor)";
}

void addBlock(const LayerTree& tree, int block, FreezePlan& plan) {
  for (int member : tree.blocks().at(static_cast<std::size_t>(block)).members) {
    if (tree.node(member).totalParameters > 0) plan.trainable.push_back(tree.node(member).name);
  }
}

}  // namespace

std::vector<std::vector<std::string>> trainingUnits(const LayerTree& tree,
                                                    const AdvisorThresholds& thresholds) {
  const auto blocks = blocksWithParameters(tree);
  std::int64_t total = 0;
  for (int b : blocks) total += tree.blocks().at(static_cast<std::size_t>(b)).totalParameters;
  std::vector<std::vector<std::string>> units;
  std::int64_t first = 0;  // parameters in the first unit so far
  for (int b : blocks) {
    const auto& block = tree.blocks().at(static_cast<std::size_t>(b));
    if (units.empty() || first < thresholds.minimumInputShare * static_cast<double>(total)) {
      if (units.empty()) units.emplace_back();
      units.front().push_back(block.name);
      first += block.totalParameters;
    } else {
      units.push_back({block.name});
    }
  }
  return units;
}

bool rescalesByRgn(const FreezePlan& plan) {
  return plan.strategy == "auto-rgn" ||
         (plan.strategy == "auto" && !plan.learningRateScale.empty());
}

std::string batchNormModeName(const FreezePlan& plan, bool optionsBatchNormEval) {
  const bool eval = plan.batchNorm.empty() ? optionsBatchNormEval : plan.batchNorm == "eval";
  return std::string(plan.recalibrate ? "recalibrated, " : "") + (eval ? "eval" : "train");
}

std::string shiftKindName(ShiftKind kind) {
  switch (kind) {
    case ShiftKind::None:
      return "no significant shift";
    case ShiftKind::InputLevel:
      return "input-level";
    case ShiftKind::FeatureLevel:
      return "feature-level";
    case ShiftKind::OutputLevel:
      return "output-level";
  }
  return "?";
}

Diagnosis diagnose(const ShiftAnalysis& analysis, const LayerTree& tree,
                   const AdvisorThresholds& thresholds) {
  Diagnosis diagnosis;
  if (analysis.snapshots.empty()) {
    diagnosis.summary = "nothing was analysed";
    return diagnosis;
  }
  const auto& layers = analysis.snapshots.back().layers;
  const auto& output = analysis.output;
  const auto significant = [&](const LayerScore& l) {
    return l.kl > thresholds.minimumKl && l.kl > thresholds.noiseMultiple * l.noiseFloor;
  };
  const auto first = std::find_if(layers.begin(), layers.end(), significant);
  const auto largest = std::max_element(layers.begin(), layers.end(),
                                        [](const auto& a, const auto& b) { return a.kl < b.kl; });
  const std::string accuracy =
      output.regression ? "the targets are numbers (regression): the unmodified model's mean "
                          "squared error on them is " +
                              format("%.4g", output.loss) +
                              "; output-level shift is judged from class predictions, so only the "
                              "activations speak here"
      : output.measured
          ? "the unmodified model's accuracy on the target is " + percent(output.accuracy) +
                " (loss " + format("%.3f", output.loss) + ")"
          : "the model's outputs do not match the target's classes, so its accuracy there is not "
            "measured";

  if (output.permutation) {
    diagnosis.kind = ShiftKind::OutputLevel;
    diagnosis.summary =
        "The labels changed: the model still recognises the inputs but names them differently.";
    diagnosis.evidence.push_back(
        "its predictions follow a consistent permutation of the labels: mapped through it, "
        "accuracy would be " +
        percent(output.mappedAccuracy) + " instead of " + percent(output.accuracy));
  } else if (first == layers.end()) {
    diagnosis.kind = output.measured && output.accuracy < thresholds.lowAccuracy
                         ? ShiftKind::OutputLevel
                         : ShiftKind::None;
    diagnosis.summary =
        diagnosis.kind == ShiftKind::None
            ? "No significant shift: the target looks like the source to every layer."
            : "The inputs look like the source to every layer, yet the predictions are wrong: what "
              "the outputs mean changed.";
  } else {
    diagnosis.firstSignificantLayer = first->layer;
    diagnosis.firstSignificantNode = first->node;
    const auto blocks = blocksWithParameters(tree);
    const int node = first->node;
    const bool inFirstBlock = !blocks.empty() && node >= 0 && tree.blockOf(node) <= blocks.front();
    diagnosis.kind = inFirstBlock ? ShiftKind::InputLevel : ShiftKind::FeatureLevel;
    if (inFirstBlock) {
      diagnosis.summary =
          "The inputs themselves changed: the first layers already see different data.";
      diagnosis.evidence.push_back("the first layer analysed, " + describe(layers.front()) +
                                   ", already differs from the reference");
    } else {
      diagnosis.summary =
          "The inputs look alike but their features differ: the shift appears part-way through the "
          "network.";
      if (first != layers.begin()) {
        // The earlier layers' highest ratio, so the sentence and its figure agree.
        const auto highest =
            std::max_element(layers.begin(), first,
                             [](const auto& a, const auto& b) { return ratio(a) < ratio(b); });
        diagnosis.evidence.push_back(
            "the " + std::to_string(first - layers.begin()) +
            " layers before it are not significant (that takes a KL above " +
            format("%.3g", thresholds.minimumKl) + " and above " +
            format("%.0f", thresholds.noiseMultiple) +
            "× the noise floor; the highest: " + describe(*highest) + ")");
      }
      diagnosis.evidence.push_back("the shift first rises above noise at " + describe(*first));
    }
  }
  if (largest != layers.end()) {
    diagnosis.evidence.push_back("the largest shift is at " + describe(*largest));
  }
  diagnosis.evidence.push_back(accuracy);
  diagnosis.evidence.push_back("reference: " + analysis.reference + "; " +
                               std::to_string(analysis.snapshots.back().targetItems) +
                               " target items");
  return diagnosis;
}

std::string planFreeze(const std::string& strategy, const LayerTree& tree,
                       const Diagnosis& diagnosis, const GradientProfile* gradients,
                       FreezePlan& plan, const AdvisorThresholds& thresholds) {
  plan = FreezePlan();
  plan.strategy = strategy;
  const auto blocks = blocksWithParameters(tree);
  if (blocks.empty()) return "the model has no parameters to train";
  const auto blockName = [&](int b) { return tree.blocks().at(static_cast<std::size_t>(b)).name; };

  if (strategy == "all") {
    for (int b : blocks) addBlock(tree, b, plan);
    plan.explanation =
        "Train every layer (the usual fine-tuning; with little target data it tends to overfit and "
        "forget).";
  } else if (strategy == "recalibrate") {
    plan.recalibrate = true;
    plan.batchNorm = "eval";
    plan.explanation =
        "Train nothing: re-estimate every BatchNorm's statistics on the target's training split "
        "(AdaBN), so each layer sees its inputs normalised as it did on the source.";
    return {};
  } else if (strategy == "last") {
    addBlock(tree, blocks.back(), plan);
    plan.explanation = "Train only the last block, " + blockName(blocks.back()) +
                       " (a linear probe when it is the head).";
  } else if (strategy.rfind("block:", 0) == 0) {
    const std::string name = strategy.substr(6);
    const auto it =
        std::find_if(blocks.begin(), blocks.end(), [&](int b) { return blockName(b) == name; });
    if (it == blocks.end()) {
      std::string known;
      for (int b : blocks) known += (known.empty() ? "" : ", ") + blockName(b);
      return "no block '" + name + "' with parameters — choose one of: " + known;
    }
    addBlock(tree, *it, plan);
    plan.explanation = "Train only block " + name + ".";
  } else if (strategy == "auto-rgn") {
    if (!gradients || !gradients->ok) return "auto-rgn needs the gradients of labelled target data";
    // Each module's own parameters, scaled by its RGN relative to the largest (the paper).
    std::map<std::string, std::vector<const ParameterGradient*>> byModule;
    for (const auto& p : gradients->parameters) {
      if (!p.batchNormAffine) byModule[p.module].push_back(&p);
    }
    double largest = 0;
    std::map<std::string, double> rgn;
    for (const auto& [module, parts] : byModule) {
      rgn[module] = rollUp(module, parts).rgn;
      largest = std::max(largest, rgn[module]);
    }
    for (int index : tree.preorder()) {
      const auto& name = tree.node(index).name;
      if (!rgn.count(name) || largest <= 0) continue;
      plan.trainable.push_back(name);
      plan.learningRateScale[name] = rgn[name] / largest;
    }
    plan.explanation =
        "Train every layer, each at a learning rate scaled by its relative gradient norm on the "
        "target (Auto-RGN, Lee et al. 2023); BatchNorm weights are left out, as in the paper's "
        "code.";
  } else if (strategy == "auto") {
    switch (diagnosis.kind) {
      case ShiftKind::InputLevel: {
        // The first unit: the first blocks from the input, enough to hold a real share of the
        // model.
        const auto first = trainingUnits(tree, thresholds).front();
        std::int64_t total = 0, taken = 0;
        std::string names;
        for (int b : blocks) {
          const auto& block = tree.blocks().at(static_cast<std::size_t>(b));
          total += block.totalParameters;
          if (std::find(first.begin(), first.end(), block.name) == first.end()) continue;
          addBlock(tree, b, plan);
          names += (names.empty() ? "" : " + ") + block.name;
          taken += block.totalParameters;
        }
        plan.explanation = "Input-level shift: train the first " +
                           std::string(first.size() == 1 ? "block, " : "blocks, ") + names + " (" +
                           percent(static_cast<double>(taken) / static_cast<double>(total)) +
                           " of the parameters), so they learn to read the new inputs; the rest "
                           "keeps what it knows.";
        if (first.size() > 1) {
          plan.explanation += " " + first.front() + " alone holds under " +
                              percent(thresholds.minimumInputShare) +
                              " of them, too few to relearn the inputs.";
        }
        break;
      }
      case ShiftKind::OutputLevel:
        addBlock(tree, blocks.back(), plan);
        plan.explanation =
            "Output-level shift: the features still work, so train only the last block, " +
            blockName(blocks.back()) + ", to map them to the new labels.";
        break;
      case ShiftKind::FeatureLevel: {
        const int node = diagnosis.firstSignificantNode;
        int block = node >= 0 ? tree.blockOf(node) : blocks.back();
        // The block where the shift emerges, or the next one with parameters.
        const auto it = std::lower_bound(blocks.begin(), blocks.end(), block);
        block = it == blocks.end() ? blocks.back() : *it;
        addBlock(tree, block, plan);
        plan.explanation = "Feature-level shift: train block " + blockName(block) +
                           ", where the shift first rises above noise.";
        break;
      }
      case ShiftKind::None:
        plan.explanation =
            "No significant shift: tuning is unlikely to help. If accuracy is still too low, try "
            "the last block (strategy last).";
        break;
    }
  } else {
    return "unknown strategy '" + strategy +
           "' — choose auto, auto-rgn, recalibrate, block:NAME, all or last";
  }
  // A new head starts untrained: whatever else a plan freezes, it trains.
  for (const auto& node : tree.nodes()) {
    if (!node.freshHead) continue;
    const bool covered = std::any_of(
        plan.trainable.begin(), plan.trainable.end(),
        [&](const auto& t) { return node.name == t || node.name.rfind(t + ".", 0) == 0; });
    if (!covered) plan.trainable.push_back(node.name);
    plan.explanation += " The new head, " + node.name +
                        ", always trains: its weights start untrained" +
                        (covered ? "." : ", so it is added to the plan.");
  }
  return {};
}

}  // namespace scalpel
