#include "analysis/shift_analysis.h"

#include <torch/script.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <memory>
#include <numeric>
#include <set>
#include <sstream>

#include "analysis/activation_moments.h"
#include "analysis/channel_moments.h"
#include "analysis/shift_metrics.h"
#include "analysis/task_loss.h"
#include "data/batch_stream.h"
#include "data/splits.h"
#include "model/activation_taps.h"
#include "model/script_model.h"
#include "util/logging.h"
#include "util/torch_errors.h"

namespace scalpel {

namespace {

// Running mean and variance of a layer's per-batch scores, for the uncertainty.
struct ScoreSpread {
  double n = 0, mean = 0, m2 = 0;
  void add(double x) {
    n += 1;
    const double d = x - mean;
    mean += d / n;
    m2 += d * (x - mean);
  }
  double standardError() const { return n > 1 ? std::sqrt(m2 / (n - 1) / n) : 0.0; }
};

struct Layer {
  std::string label;
  int node = -1;
  int call = 0;
  std::string typeName;
  ChannelMoments reference;
  double referenceItems = 0;  // 0: exact (BatchNorm running statistics)
  ChannelMoments target;
  ScoreSpread spread;
};

std::vector<std::size_t> sampleIndices(std::size_t size, std::size_t limit, std::uint64_t seed) {
  std::vector<std::size_t> indices(size);
  std::iota(indices.begin(), indices.end(), 0);
  seededShuffle(indices, seed);
  if (limit && limit < indices.size()) indices.resize(limit);
  return indices;
}

void evaluateOutputs(OutputEvidence& evidence, std::size_t items) {
  const std::size_t classes = evidence.confusion.size();
  std::int64_t correct = 0;
  for (std::size_t t = 0; t < classes; ++t) correct += evidence.confusion[t][t];
  evidence.accuracy = items ? static_cast<double>(correct) / static_cast<double>(items) : 0;
  evidence.mapping.assign(classes, 0);
  std::int64_t mapped = 0;
  std::set<int> used;
  for (std::size_t t = 0; t < classes; ++t) {
    const auto& row = evidence.confusion[t];
    evidence.mapping[t] = static_cast<int>(std::max_element(row.begin(), row.end()) - row.begin());
    mapped += row[static_cast<std::size_t>(evidence.mapping[t])];
    used.insert(evidence.mapping[t]);
  }
  evidence.mappedAccuracy = items ? static_cast<double>(mapped) / static_cast<double>(items) : 0;
  bool identity = true;
  for (std::size_t t = 0; t < classes; ++t) identity &= evidence.mapping[t] == static_cast<int>(t);
  evidence.permutation = used.size() == classes && !identity &&
                         evidence.mappedAccuracy > std::max(0.5, 2 * evidence.accuracy);
}

// The layers an analysis scores and the reference each is compared with.
struct References {
  std::vector<Layer> layers;
  std::vector<std::size_t> tapIndex;  // which tap each layer reads
  bool tapOutputs = false;            // layers are module outputs (else BatchNorm inputs)
};

// The tapped calls as layers, each with its node in the tree.
std::vector<Layer> layersOf(const std::vector<ModuleCall>& calls, const LayerTree& tree) {
  std::vector<Layer> layers(calls.size());
  for (std::size_t i = 0; i < calls.size(); ++i) {
    layers[i].label = calls[i].label();
    layers[i].typeName = calls[i].typeName;
    layers[i].node = tree.find(calls[i].module).value_or(-1);
    layers[i].call = calls[i].call;
  }
  return layers;
}

// The reference from source data processed as the target is: its per-layer moments, also kept as
// the profile that can be saved with the model.
void referenceFromSource(const ActivationTaps& taps, const Dataset& source,
                         const AnalysisOptions& options, const BatchStream::Options& streamOptions,
                         const std::function<bool()>& cancelled, References& references,
                         ShiftAnalysis& analysis) {
  BatchStream stream(BatchStream::borrow(source),
                     sampleIndices(source.size(), options.sourceItems, options.seed + 1),
                     streamOptions);
  stream.startEpoch(0);
  auto& layers = references.layers;
  while (auto batch = stream.next()) {
    if (cancelled()) return;
    const auto moments = momentsFromChannelSums(taps.run(batch->inputs).taps);
    for (std::size_t i = 0; i < layers.size(); ++i) layers[i].reference.merge(moments[i]);
  }
  for (auto& layer : layers) layer.referenceItems = static_cast<double>(stream.items());
  analysis.reference =
      "source data (" + std::to_string(stream.items()) + " items of " + source.name + ")";
  analysis.profile.description = analysis.reference;
  analysis.profile.items = static_cast<double>(stream.items());
  for (const auto& layer : layers) {
    analysis.profile.layers.push_back(layer.label);
    analysis.profile.moments.push_back(layer.reference);
  }
}

// The reference saved with the model; layers it does not know (a different model?) are left out.
// Returns "" or what is wrong.
std::string referenceFromStored(const ReferenceProfile& stored, const std::string& modelPath,
                                References& references, ShiftAnalysis& analysis) {
  std::vector<Layer> known;
  std::vector<std::size_t> knownTaps;
  for (std::size_t i = 0; i < references.layers.size(); ++i) {
    auto& layer = references.layers[i];
    const auto it = std::find(stored.layers.begin(), stored.layers.end(), layer.label);
    if (it == stored.layers.end()) continue;
    layer.reference = stored.moments[static_cast<std::size_t>(it - stored.layers.begin())];
    layer.referenceItems = stored.items;
    known.push_back(layer);
    knownTaps.push_back(i);
  }
  if (known.empty())
    return modelPath +
           ": its stored reference names none of its layers — analyse it with source data again";
  references.layers = std::move(known);
  references.tapIndex = std::move(knownTaps);
  analysis.reference = "the reference stored with the model: " + stored.description;
  return {};
}

// Each BatchNorm's running statistics: exactly the source statistics of its input.
void referenceFromBatchNorms(const torch::jit::Module& module, const std::vector<ModuleCall>& calls,
                             References& references, ShiftAnalysis& analysis) {
  for (std::size_t i = 0; i < references.layers.size(); ++i) {
    auto bn = module;
    std::stringstream path(calls[i].module);
    std::string part;
    while (std::getline(path, part, '.')) bn = bn.attr(part).toModule();
    const auto mean =
        bn.attr("running_mean").toTensor().to(torch::kCPU, torch::kFloat64).contiguous();
    const auto var =
        bn.attr("running_var").toTensor().to(torch::kCPU, torch::kFloat64).contiguous();
    // count 2 and m2 = var make variance() return the running variance exactly.
    auto& reference = references.layers[i].reference;
    reference.count = 2;
    reference.mean.assign(mean.data_ptr<double>(), mean.data_ptr<double>() + mean.numel());
    reference.m2.assign(var.data_ptr<double>(), var.data_ptr<double>() + var.numel());
  }
  analysis.reference = "BatchNorm running statistics";
}

// What the unmodified model's outputs on one batch add to the output-level evidence.
void addOutputEvidence(const torch::jit::IValue& outputs, const Batch& batch, const Dataset& target,
                       OutputEvidence& evidence, double& lossSum) {
  const auto items = static_cast<double>(batch.targets.size(0));
  if (target.isRegression()) {
    if (outputs.isTensor() && outputs.toTensor().numel() == batch.targets.numel()) {
      lossSum +=
          taskLoss("mse", outputs.toTensor().to(torch::kFloat32), batch.targets).item<double>() *
          items;
    }
    return;
  }
  if (!outputs.isTensor() || outputs.toTensor().dim() != 2) return;
  const auto logits = outputs.toTensor();
  if (static_cast<std::size_t>(logits.size(1)) != target.classNames.size()) return;
  evidence.measured = true;
  lossSum += at::cross_entropy_loss(logits, batch.targets, {}, at::Reduction::Sum).item<double>();
  const auto predicted = logits.argmax(1).cpu();
  const auto labels = batch.targets.cpu();
  for (std::int64_t k = 0; k < labels.size(0); ++k) {
    ++evidence.confusion[static_cast<std::size_t>(labels[k].item<std::int64_t>())]
                        [static_cast<std::size_t>(predicted[k].item<std::int64_t>())];
  }
}

// Streams the target batch by batch: after each, every layer's cumulative score and the outputs'
// evidence so far, as a snapshot.
void analyseTarget(const ActivationTaps& taps, const Dataset& target,
                   const AnalysisOptions& options, const BatchStream::Options& streamOptions,
                   const std::function<bool()>& cancelled, References& references,
                   ShiftAnalysis& analysis,
                   const std::function<void(const ShiftSnapshot&)>& onSnapshot) {
  const std::size_t classes = target.classNames.size();
  analysis.output.confusion.assign(classes, std::vector<std::int64_t>(classes, 0));
  analysis.output.regression = target.isRegression();
  auto indices =
      sampleIndices(target.size(), options.maxBatches * options.batchSize, options.seed + 2);
  BatchStream stream(BatchStream::borrow(target), indices, streamOptions);
  stream.startEpoch(0);
  double lossSum = 0;
  std::size_t items = 0;
  auto& layers = references.layers;
  while (auto batch = stream.next()) {
    if (cancelled()) return;
    const auto result = taps.run(batch->inputs);
    const auto& activations = references.tapOutputs ? result.taps : result.inputs;
    const auto batchItems = static_cast<double>(batch->targets.size(0));
    items += batch->targets.size(0);
    ShiftSnapshot snapshot;
    snapshot.batch = static_cast<int>(analysis.snapshots.size()) + 1;
    snapshot.targetItems = items;
    const auto batchMoments = momentsFromChannelSums(activations);
    for (std::size_t i = 0; i < layers.size(); ++i) {
      const auto& moments = batchMoments[references.tapIndex[i]];
      auto& layer = layers[i];
      layer.spread.add(
          compareMoments(layer.reference, layer.referenceItems, moments, batchItems).kl);
      layer.target.merge(moments);
      const auto shift = compareMoments(layer.reference, layer.referenceItems, layer.target,
                                        static_cast<double>(items));
      snapshot.layers.push_back(LayerScore{layer.label, layer.node, layer.call, layer.typeName,
                                           static_cast<std::int64_t>(moments.channels()), shift.kl,
                                           shift.smd, shift.noiseFloor,
                                           layer.spread.standardError()});
    }
    addOutputEvidence(result.output, *batch, target, analysis.output, lossSum);
    evaluateOutputs(analysis.output, items);
    snapshot.accuracy = analysis.output.accuracy;
    analysis.snapshots.push_back(snapshot);
    if (onSnapshot) onSnapshot(analysis.snapshots.back());
  }
  analysis.output.loss = items ? lossSum / static_cast<double>(items) : 0;
}

}  // namespace

ShiftAnalysis analyzeShift(const LoadedModel& loaded, const Dataset& target, const Dataset* source,
                           const AnalysisOptions& options,
                           const std::function<void(const ShiftSnapshot&)>& onSnapshot,
                           const std::atomic<bool>* cancel) {
  ShiftAnalysis analysis;
  if (!loaded.ok()) {
    analysis.error = loaded.error();
    return analysis;
  }
  const std::string& modelPath = loaded.path();
  try {
    // The loaded model itself where it already is (it is only read), else a copy there.
    ScriptModel* model = &loaded.script();
    ModelLoadResult elsewhere;
    if (!model->isOn(options.device)) {
      elsewhere = model->copy(options.device);
      if (!elsewhere) {
        analysis.error = elsewhere.error;
        return analysis;
      }
      model = elsewhere.model.get();
    }
    const LayerTree& tree = model->tree();
    torch::jit::Module& module = model->module();
    torch::NoGradGuard noGrad;
    module.eval();  // BatchNorm uses its running statistics: the model as it was trained

    // Which layers, and their reference.
    std::vector<std::string> batchNorms;
    for (const auto& node : tree.nodes()) {
      if (node.hasBatchNormStats && node.callCount > 0) batchNorms.push_back(node.name);
    }
    ReferenceProfile stored;
    if (!source && !model->referenceJson().empty()) {
      if (auto problem = parseReferenceProfile(model->referenceJson(), stored); !problem.empty()) {
        logger("core")->warn("{}: ignoring its stored reference ({})", modelPath, problem);
        stored = ReferenceProfile();
      }
    }
    const bool useStored = !source && !stored.empty();
    if (!source && !useStored && batchNorms.empty()) {
      analysis.error = model->path().filename().string() +
                       " has no BatchNorm layers, so its source statistics are unknown — give "
                       "source data (the data it was trained on) as the reference";
      return analysis;
    }
    References references;
    references.tapOutputs = source || useStored;
    // Reduced inside the forward: per-channel sums leave it, never whole activations.
    const ActivationTaps taps(module, {},
                              references.tapOutputs ? std::vector<std::string>{} : batchNorms,
                              ActivationTaps::Output::ChannelSums);
    const auto& calls = references.tapOutputs ? taps.tappedCalls() : taps.inputCalls();
    references.layers = layersOf(calls, tree);
    references.tapIndex.resize(calls.size());
    std::iota(references.tapIndex.begin(), references.tapIndex.end(), 0);

    auto streamOptions = model->batchOptions();
    streamOptions.batchSize = options.batchSize;
    streamOptions.shuffle = false;  // the order is fixed by sampleIndices
    const std::function<bool()> cancelled = [&] {
      if (!cancel || !cancel->load()) return false;
      analysis.cancelled = true;
      analysis.error = "the analysis was cancelled";
      return true;
    };

    if (source) {
      referenceFromSource(taps, *source, options, streamOptions, cancelled, references, analysis);
      if (analysis.cancelled) return analysis;
    } else if (useStored) {
      if (auto problem = referenceFromStored(stored, modelPath, references, analysis);
          !problem.empty()) {
        analysis.error = problem;
        return analysis;
      }
    } else {
      referenceFromBatchNorms(module, calls, references, analysis);
    }
    analyseTarget(taps, target, options, streamOptions, cancelled, references, analysis,
                  onSnapshot);
    if (analysis.cancelled) return analysis;
    analysis.ok = !analysis.snapshots.empty();
    if (!analysis.ok) analysis.error = target.name + ": no items to analyse";
  } catch (const std::exception& error) {
    analysis.error = "the analysis failed: " + summariseTorchError(error.what());
    logger("core")->error("analysis of {} failed: {}", modelPath, error.what());
  }
  return analysis;
}

}  // namespace scalpel
