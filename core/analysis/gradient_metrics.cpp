#include "analysis/gradient_metrics.h"

#include <cmath>
#include <map>
#include <memory>
#include <numeric>
#include <set>

#include "analysis/task_loss.h"
#include "data/splits.h"
#include "model/script_model.h"
#include "util/logging.h"
#include "util/torch_errors.h"

namespace scalpel {

namespace {

std::string moduleOf(const std::string& parameter) {
  const auto dot = parameter.rfind('.');
  return dot == std::string::npos ? std::string() : parameter.substr(0, dot);
}

}  // namespace

std::vector<ParameterGradient> parameterGradients(torch::jit::Module& model,
                                                  const std::vector<Batch>& batches) {
  torch::AutoGradMode enableGrad(true);  // grad mode is thread-local: set it here
  model.eval();
  std::vector<std::string> names;
  std::vector<torch::Tensor> parameters;
  for (const auto& item : model.named_parameters()) {
    names.push_back(item.name);
    parameters.push_back(item.value);
  }
  // Per tensor: the sum and the sum of squares of its gradients over batches (float64).
  std::vector<torch::Tensor> sum(parameters.size());
  std::vector<torch::Tensor> squares(parameters.size());
  for (const auto& batch : batches) {
    for (auto& p : parameters) p.mutable_grad() = torch::Tensor();
    const auto logits = model.forward({batch.inputs}).toTensor();
    taskLoss("cross-entropy", logits, batch.targets).backward();
    for (std::size_t i = 0; i < parameters.size(); ++i) {
      const auto& grad = parameters[i].grad();
      const auto g = grad.defined() ? grad.detach().to(torch::kFloat64)
                                    : torch::zeros_like(parameters[i], torch::kFloat64);
      sum[i] = sum[i].defined() ? sum[i] + g : g;
      squares[i] = squares[i].defined() ? squares[i] + g * g : g * g;
    }
  }
  for (auto& p : parameters) p.mutable_grad() = torch::Tensor();

  // Which modules are BatchNorms: those holding running statistics.
  std::set<std::string> batchNorms;
  for (const auto& item : model.named_modules()) {
    if (item.value.hasattr("running_mean") && item.value.attr("running_mean").isTensor())
      batchNorms.insert(item.name);
  }
  const double n = static_cast<double>(batches.size());
  std::vector<ParameterGradient> result;
  for (std::size_t i = 0; i < parameters.size() && n > 0; ++i) {
    ParameterGradient gradient;
    gradient.name = names[i];
    gradient.module = moduleOf(names[i]);
    gradient.numel = parameters[i].numel();
    const auto mean = sum[i] / n;
    gradient.meanGradNorm = mean.norm().item<double>();
    gradient.paramNorm = parameters[i].detach().to(torch::kFloat64).norm().item<double>();
    gradient.rgn = gradient.paramNorm > 0 ? gradient.meanGradNorm / gradient.paramNorm : 0;
    if (n > 1) {
      const auto variance = ((squares[i] - n * mean * mean) / (n - 1)).clamp_min(0);
      gradient.snr = (mean * mean / (variance + 1e-12)).mean().item<double>();
    }
    gradient.batchNormAffine = batchNorms.count(gradient.module) > 0;
    result.push_back(gradient);
  }
  return result;
}

GradientSummary rollUp(const std::string& name,
                       const std::vector<const ParameterGradient*>& parts) {
  GradientSummary summary;
  summary.name = name;
  double grad = 0, param = 0, snr = 0;
  for (const auto* part : parts) {
    summary.parameters += part->numel;
    grad += part->meanGradNorm * part->meanGradNorm;
    param += part->paramNorm * part->paramNorm;
    snr += part->snr * static_cast<double>(part->numel);
  }
  summary.rgn = param > 0 ? std::sqrt(grad) / std::sqrt(param) : 0;
  summary.snr = summary.parameters ? snr / static_cast<double>(summary.parameters) : 0;
  return summary;
}

GradientProfile gradientProfile(const LoadedModel& loaded, const Dataset& target,
                                const GradientOptions& options) {
  GradientProfile profile;
  if (!loaded.ok()) {
    profile.error = loaded.error();
    return profile;
  }
  const std::string& modelPath = loaded.path();
  try {
    // A copy: gradients set the parameters' flags and .grad fields.
    auto copy = loaded.script().copy(options.device);
    if (!copy) {
      profile.error = copy.error;
      return profile;
    }
    ScriptModel& model = *copy.model;
    auto streamOptions = model.batchOptions();
    streamOptions.batchSize = options.batchSize;
    streamOptions.seed = options.seed;
    std::vector<std::size_t> indices(target.size());
    std::iota(indices.begin(), indices.end(), 0);
    seededShuffle(indices, options.seed + 3);
    indices.resize(std::min(indices.size(), options.batches * options.batchSize));
    BatchStream stream(BatchStream::borrow(target), indices, streamOptions);
    stream.startEpoch(0);
    std::vector<Batch> batches;
    while (auto batch = stream.next()) batches.push_back(std::move(*batch));
    if (batches.size() < 2) {
      profile.error = "gradient statistics need at least two batches of labelled target data";
      return profile;
    }
    profile.parameters = parameterGradients(model.module(), batches);

    const auto included = [&](const ParameterGradient& p) {
      return options.includeBatchNormAffine || !p.batchNormAffine;
    };
    const LayerTree& tree = model.tree();
    const auto within = [](const std::string& parameterModule, const std::string& module) {
      return module.empty() || parameterModule == module ||
             parameterModule.rfind(module + ".", 0) == 0;
    };
    for (int index : tree.preorder()) {
      const auto& node = tree.node(index);
      if (index == 0 || node.totalParameters == 0) continue;
      std::vector<const ParameterGradient*> parts;
      for (const auto& p : profile.parameters) {
        if (included(p) && within(p.module, node.name)) parts.push_back(&p);
      }
      if (parts.empty()) continue;
      profile.modules.push_back(rollUp(node.name, parts));
      profile.modules.back().index = index;
    }
    for (std::size_t b = 0; b < tree.blocks().size(); ++b) {
      const auto& block = tree.blocks()[b];
      std::vector<const ParameterGradient*> parts;
      for (const auto& p : profile.parameters) {
        bool inside = false;
        for (int member : block.members) inside |= within(p.module, tree.node(member).name);
        if (inside && included(p)) parts.push_back(&p);
      }
      profile.blocks.push_back(rollUp(block.name, parts));
      profile.blocks.back().index = static_cast<int>(b);
    }
    profile.ok = true;
  } catch (const std::exception& error) {
    profile.error = "computing gradients failed: " + summariseTorchError(error.what());
    logger("core")->error("gradient profile of {} failed: {}", modelPath, error.what());
  }
  return profile;
}

}  // namespace scalpel
