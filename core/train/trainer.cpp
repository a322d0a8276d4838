#include "train/trainer.h"

#include <ATen/autocast_mode.h>
#include <torch/script.h>
#include <torch/version.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <map>
#include <numeric>
#include <set>
#include <sstream>

#include "analysis/gradient_metrics.h"
#include "data/batch_stream.h"
#include "distributed/collective.h"
#include "distributed/gradient_averager.h"
#include "io/atomic_file.h"
#include "model/model_metadata.h"
#include "model/script_model.h"
#include "train/foreach_optimizer.h"
#include "train/task_loss.h"
#include "util/device_info.h"
#include "util/logging.h"
#include "util/torch_errors.h"

namespace scalpel {

void TrainControl::pause() { m_pause = true; }

void TrainControl::resume() {
  {
    std::lock_guard<std::mutex> lock(m_mutex);
    m_pause = false;
  }
  m_wake.notify_all();
}

void TrainControl::cancel() {
  {
    std::lock_guard<std::mutex> lock(m_mutex);
    m_cancel = true;
  }
  m_wake.notify_all();
}

void TrainControl::reset() {
  std::lock_guard<std::mutex> lock(m_mutex);
  m_pause = false;
  m_cancel = false;
}

bool TrainControl::waitWhilePaused() {
  std::unique_lock<std::mutex> lock(m_mutex);
  m_wake.wait(lock, [this] { return !m_pause.load() || m_cancel.load(); });
  return !m_cancel.load();
}

std::string validateTrainOptions(const TrainOptions& options) {
  static const std::set<std::string> optimizers{"adam", "adamw", "sgd"};
  if (!optimizers.count(options.optimizer)) return "unknown optimiser '" + options.optimizer + "' — use adam, adamw or sgd";
  if (options.schedule != "constant" && options.schedule != "cosine") return "unknown schedule '" + options.schedule + "' — use constant or cosine";
  if (options.loss != "cross-entropy" && options.loss != "mse") return "unknown loss '" + options.loss + "' — use cross-entropy or mse";
  if (options.selectBy != "accuracy" && options.selectBy != "loss") return "unknown selection metric '" + options.selectBy + "' — use accuracy or loss";
  if (!(options.learningRate > 0) || !std::isfinite(options.learningRate)) return "the learning rate must be a positive number";
  if (options.weightDecay < 0) return "the weight decay must not be negative";
  if (options.momentum < 0 || options.momentum >= 1) return "the momentum must be in [0, 1)";
  if (options.warmupFraction < 0 || options.warmupFraction >= 1) return "the warm-up fraction must be in [0, 1)";
  if (options.batchSize == 0) return "the batch size must be at least 1";
  if (options.epochs < 1 && options.maxSteps == 0) return "give at least one epoch or a step budget";
  if (options.patience < 0) return "the patience must not be negative";
  if (options.precision != "fp32" && options.precision != "bf16") return "unknown precision '" + options.precision + "' — use fp32 or bf16";
  if (options.dataPath != "auto" && options.dataPath != "streamed" && options.dataPath != "synchronous")
    return "unknown data path '" + options.dataPath + "' — use auto, streamed or synchronous";
  return "";
}

namespace {

using Clock = std::chrono::steady_clock;

bool within(const std::string& name, const std::string& module) {
  return module.empty() || name == module || name.rfind(module + ".", 0) == 0;
}

std::string moduleOf(const std::string& parameter) {
  const auto dot = parameter.rfind('.');
  return dot == std::string::npos ? std::string() : parameter.substr(0, dot);
}

// The plan entry that owns a parameter: the longest trainable module containing it ("" if none).
const std::string* owner(const FreezePlan& plan, const std::string& parameter) {
  const std::string* best = nullptr;
  for (const auto& module : plan.trainable) {
    if (within(parameter, module) && (!best || module.size() > best->size())) best = &module;
  }
  return best;
}

// One optimiser parameter group per plan entry, so per-module learning-rate scales (and
// Auto-RGN's per-epoch rescaling) act on groups.
struct Group {
  std::string module;
  std::vector<std::string> names;
  std::vector<torch::Tensor> parameters;
  double scale = 1;
};

std::unique_ptr<ForeachOptimizer> makeOptimizer(const TrainOptions& options, const std::vector<Group>& groups) {
  ForeachOptimizer::Settings settings;
  settings.kind = options.optimizer;
  settings.weightDecay = options.weightDecay;
  settings.momentum = options.momentum;
  auto optimizer = std::make_unique<ForeachOptimizer>(settings);
  for (const auto& group : groups) optimizer->addGroup(group.parameters, options.learningRate * group.scale);
  return optimizer;
}

double scheduleFactor(const TrainOptions& options, std::size_t step, std::size_t totalSteps) {
  const auto warmup = static_cast<std::size_t>(std::llround(options.warmupFraction * static_cast<double>(totalSteps)));
  if (step < warmup) return static_cast<double>(step + 1) / static_cast<double>(warmup);
  if (options.schedule == "constant") return 1;
  const double progress = static_cast<double>(step - warmup) / static_cast<double>(std::max<std::size_t>(1, totalSteps - warmup));
  return 0.5 * (1 + std::cos(M_PI * progress));
}

// bf16 autocast around a forward pass and its loss (backward replays the same casts), restoring
// the thread's previous autocast state. LibTorch 2.4 made the state per device type.
class AutocastScope {
 public:
  AutocastScope(bool enabled, const torch::Device& device) : m_enabled(enabled) {
    if (!m_enabled) return;
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
    m_type = device.type();
    m_was = at::autocast::is_autocast_enabled(m_type);
    m_dtype = at::autocast::get_autocast_dtype(m_type);
    at::autocast::set_autocast_dtype(m_type, at::kBFloat16);
    at::autocast::set_autocast_enabled(m_type, true);
#else
    m_cuda = device.is_cuda();
    m_was = m_cuda ? at::autocast::is_enabled() : at::autocast::is_cpu_enabled();
    m_dtype = m_cuda ? at::autocast::get_autocast_gpu_dtype() : at::autocast::get_autocast_cpu_dtype();
    if (m_cuda) {
      at::autocast::set_autocast_gpu_dtype(at::kBFloat16);
      at::autocast::set_enabled(true);
    } else {
      at::autocast::set_autocast_cpu_dtype(at::kBFloat16);
      at::autocast::set_cpu_enabled(true);
    }
#endif
    at::autocast::increment_nesting();
  }
  ~AutocastScope() {
    if (!m_enabled) return;
    if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
    at::autocast::set_autocast_dtype(m_type, m_dtype);
    at::autocast::set_autocast_enabled(m_type, m_was);
#else
    if (m_cuda) {
      at::autocast::set_autocast_gpu_dtype(m_dtype);
      at::autocast::set_enabled(m_was);
    } else {
      at::autocast::set_autocast_cpu_dtype(m_dtype);
      at::autocast::set_cpu_enabled(m_was);
    }
#endif
  }
  AutocastScope(const AutocastScope&) = delete;
  AutocastScope& operator=(const AutocastScope&) = delete;

 private:
  bool m_enabled;
  bool m_was = false;
  at::ScalarType m_dtype = at::kFloat;
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
  at::DeviceType m_type = at::kCPU;
#else
  bool m_cuda = false;
#endif
};

// The layout a run feeds its model: NHWC for 4-D image batches when asked.
torch::Tensor laidOut(const torch::Tensor& inputs, bool channelsLast) {
  return channelsLast && inputs.dim() == 4 ? inputs.contiguous(at::MemoryFormat::ChannelsLast) : inputs;
}

// Moves the model's 4-D weights (and buffers) to NHWC, or back to the default layout.
void setChannelsLast(torch::jit::Module& model, bool channelsLast) {
  torch::NoGradGuard noGrad;
  const auto format = channelsLast ? at::MemoryFormat::ChannelsLast : at::MemoryFormat::Contiguous;
  for (auto p : model.parameters()) {
    if (p.dim() == 4) p.set_data(p.data().contiguous(format));
  }
  for (auto b : model.buffers()) {
    if (b.dim() == 4) b.set_data(b.data().contiguous(format));
  }
}

// How a run computes: the autocast precision and the input layout, for every forward pass.
struct Compute {
  torch::Device device = torch::kCPU;
  bool bf16 = false;
  bool channelsLast = false;
};

torch::Tensor forwardOf(torch::jit::Module& model, const torch::Tensor& inputs, const Compute& compute) {
  AutocastScope autocast(compute.bf16, compute.device);
  return model.forward({laidOut(inputs, compute.channelsLast)}).toTensor();
}

// Regression metrics from per-target sums over all items (float64, on the device): Σy, Σy²,
// Σ(ŷ − y)², Σ|ŷ − y|. The loss is the mean squared error, as taskLoss() computes it.
void regressionMetrics(Evaluation& result, const torch::Tensor& sums, double items) {
  const auto cpu = sums.cpu();
  const auto s = cpu.accessor<double, 2>();
  const auto targets = cpu.size(1);
  double r2 = 0, squaredError = 0, absoluteError = 0;
  for (std::int64_t t = 0; t < targets; ++t) {
    const double total = s[1][t] - s[0][t] * s[0][t] / items;  // the target's own squared deviation
    // A constant target: perfect predictions explain it all, anything else nothing (as sklearn).
    r2 += total > 1e-12 * std::max(1.0, s[1][t]) ? 1 - s[2][t] / total : (s[2][t] == 0 ? 1 : 0);
    squaredError += s[2][t];
    absoluteError += s[3][t];
  }
  const double values = items * static_cast<double>(targets);
  result.regression = true;
  result.items = static_cast<std::size_t>(items);
  result.loss = squaredError / values;
  result.r2 = r2 / static_cast<double>(targets);
  result.meanAbsoluteError = absoluteError / values;
}

// Validation or test metrics over the stream's items; with `collective`, over every process's
// share (the sums are added up across processes, so every process gets the same evaluation).
// `targets`: regression targets per item, 0 for class labels.
Evaluation evaluate(torch::jit::Module& model, BatchStream& batches, const std::string& loss, std::size_t classes,
                    std::size_t targets, const Compute& compute, Collective* collective) {
  torch::NoGradGuard noGrad;
  const bool wasTraining = model.is_training();
  model.eval();
  // Sums on the device, fetched once at the end (after the all-reduce).
  const auto sumOptions = torch::TensorOptions().dtype(torch::kFloat64).device(compute.device);
  const bool regression = targets > 0;
  const auto width = static_cast<std::int64_t>(regression ? targets : classes);
  auto lossSum = torch::zeros({1}, sumOptions), items = torch::zeros({1}, sumOptions);
  auto perClassCorrect = torch::zeros({width}, sumOptions), perClassTotal = torch::zeros({width}, sumOptions);
  auto regressionSums = torch::zeros({4, width}, sumOptions);
  batches.startEpoch(0);
  while (auto batch = batches.next()) {
    const auto outputs = forwardOf(model, batch->inputs, compute).to(torch::kFloat32);
    items += static_cast<double>(batch->targets.size(0));
    if (regression) {  // the loss comes from these sums too
      const auto y = batch->targets.to(torch::kFloat64);
      const auto error = outputs.reshape(batch->targets.sizes()).to(torch::kFloat64) - y;
      regressionSums += torch::stack({y.sum(0), (y * y).sum(0), (error * error).sum(0), error.abs().sum(0)});
      continue;
    }
    lossSum += (taskLoss(loss, outputs, batch->targets) * batch->targets.size(0)).to(torch::kFloat64);
    const auto hits = outputs.argmax(1).eq(batch->targets).to(torch::kFloat64);
    const auto onehot = at::one_hot(batch->targets, width).to(torch::kFloat64);
    perClassCorrect += (onehot * hits.unsqueeze(1)).sum(0);
    perClassTotal += onehot.sum(0);
  }
  if (wasTraining) model.train();
  std::vector<torch::Tensor> sums = regression ? std::vector<torch::Tensor>{items, regressionSums}
                                               : std::vector<torch::Tensor>{items, lossSum, perClassCorrect, perClassTotal};
  if (collective) collective->allReduceSum(sums);
  Evaluation result;
  const double count = items.item<double>();
  if (count == 0) return result;
  if (regression) {
    regressionMetrics(result, regressionSums, count);
    return result;
  }
  const auto hitsCpu = perClassCorrect.cpu();
  const auto totalCpu = perClassTotal.cpu();
  result.items = static_cast<std::size_t>(count);
  result.loss = lossSum.item<double>() / count;
  result.accuracy = hitsCpu.sum().item<double>() / count;
  for (std::size_t c = 0; c < classes; ++c) {
    const double total = totalCpu[static_cast<std::int64_t>(c)].item<double>();
    result.perClassAccuracy.push_back(total > 0 ? hitsCpu[static_cast<std::int64_t>(c)].item<double>() / total : 0);
  }
  return result;
}

// A copy of every parameter and buffer: the best state so far.
struct Snapshot {
  std::vector<torch::Tensor> values;
};

std::vector<torch::Tensor> stateTensors(torch::jit::Module& model) {
  std::vector<torch::Tensor> tensors;
  for (const auto& p : model.parameters()) tensors.push_back(p);
  for (const auto& b : model.buffers()) tensors.push_back(b);
  return tensors;
}

Snapshot takeSnapshot(torch::jit::Module& model) {
  torch::NoGradGuard noGrad;
  Snapshot snapshot;
  for (const auto& t : stateTensors(model)) snapshot.values.push_back(t.detach().clone());
  return snapshot;
}

void restoreSnapshot(torch::jit::Module& model, const Snapshot& snapshot) {
  torch::NoGradGuard noGrad;
  auto tensors = stateTensors(model);
  for (std::size_t i = 0; i < tensors.size() && i < snapshot.values.size(); ++i) tensors[i].copy_(snapshot.values[i]);
}

bool better(const TrainOptions& options, const Evaluation& candidate, const Evaluation& best) {
  return options.selectBy == "loss" ? candidate.loss < best.loss : candidate.score() > best.score();
}

std::shared_ptr<const std::string> serialise(ScriptModel& loaded) {
  torch::jit::Module& model = loaded.module();
  model.eval();
  for (auto p : model.parameters()) p.set_requires_grad(true);  // a normal model again
  torch::jit::ExtraFilesMap extra;
  if (loaded.metadata().present) extra[kModelMetadataFile] = modelMetadataToJson(loaded.metadata());
  if (!loaded.referenceJson().empty()) extra[kReferenceProfileFile] = loaded.referenceJson();
  std::ostringstream bytes;
  model.save(bytes, extra);
  return std::make_shared<const std::string>(bytes.str());
}

// One run at the options' batch size; trainModel retries it with smaller batches.
TrainResult trainAttempt(const std::string& modelPath, const FreezePlan& plan, const TrainData& data,
                         const TrainOptions& options,
                         const std::function<void(const TrainEvent&)>& events,
                         TrainControl* control) {
  TrainResult result;
  result.batchSize = options.batchSize;
  const auto log = logger("train");
  const auto emit = [&](TrainEvent event) {
    if (events) events(event);
  };
  const auto fail = [&](const std::string& message) {
    result.error = message;
    TrainEvent event;
    event.kind = TrainEvent::Kind::Failed;
    event.message = message;
    emit(event);
    return result;
  };
  if (auto problem = validateTrainOptions(options); !problem.empty()) return fail(problem);
  if (!data.train || data.train->size() == 0) return fail("there is no labelled target data to train on");
  if (!data.validation || data.validation->size() == 0) return fail("there is no validation data to choose the best state with");
  if (plan.trainable.empty()) return fail("the freeze plan leaves nothing to train — unfreeze at least one layer");
  Collective* const collective = options.collective.get();
  const std::size_t processes = collective ? static_cast<std::size_t>(collective->size()) : 1;
  const bool rankZero = !collective || collective->rank() == 0;
  result.processes = static_cast<int>(processes);
  if (options.batchSize % processes != 0) {
    return fail("a batch of " + std::to_string(options.batchSize) + " does not split evenly over " + std::to_string(processes) +
                " processes — choose a multiple of " + std::to_string(processes) + " (each process takes batch ÷ processes)");
  }

  std::unique_ptr<ScriptModel> loaded;
  try {
    auto load = ScriptModel::load(modelPath, options.device);
    if (!load) return fail(load.error);
    loaded = std::move(load.model);
    torch::jit::Module& model = loaded->module();
    const torch::Device device = loaded->device();
    result.device = describeDevice(device.is_cuda() ? "cuda:" + std::to_string(std::max<int>(0, device.index())) : "cpu");
    if (collective) result.device = std::to_string(processes) + " processes, each on " + result.device;
    torch::manual_seed(options.seed);
    Compute compute{device, options.precision == "bf16", options.channelsLast};
    if (compute.channelsLast) setChannelsLast(model, true);

    // Which parameters train, in which group.
    std::vector<Group> groups;
    std::map<std::string, std::size_t> groupOf;
    std::set<std::string> trainableModules;
    for (const auto& item : model.named_parameters()) {
      auto parameter = item.value;
      const std::string* entry = owner(plan, item.name);
      if (!entry) {
        parameter.set_requires_grad(false);
        result.frozenParameters += parameter.numel();
        continue;
      }
      parameter.set_requires_grad(true);
      result.trainableParameters += parameter.numel();
      trainableModules.insert(moduleOf(item.name));
      if (!groupOf.count(*entry)) {
        groupOf[*entry] = groups.size();
        Group group;
        group.module = *entry;
        const auto scale = plan.learningRateScale.find(*entry);
        group.scale = scale == plan.learningRateScale.end() ? 1.0 : scale->second;
        groups.push_back(group);
      }
      auto& group = groups[groupOf[*entry]];
      group.names.push_back(item.name);
      group.parameters.push_back(parameter);
    }
    if (groups.empty()) return fail("none of the plan's layers (" + plan.trainable.front() + (plan.trainable.size() > 1 ? ", …" : "") + ") has parameters in " + modelPath + " — is the plan for another model?");

    // BatchNorms whose own parameters are frozen keep their running statistics (eval mode).
    std::vector<torch::jit::Module> frozenNorms;
    for (const auto& item : model.named_modules()) {
      if (!(item.value.hasattr("running_mean") && item.value.attr("running_mean").isTensor())) continue;
      if (options.batchNormEval || !trainableModules.count(item.name)) frozenNorms.push_back(item.value);
    }
    const auto trainMode = [&] {
      model.train();
      for (auto& norm : frozenNorms) norm.train(false);
    };

    // Blocks, for the per-block gradient norms of each step.
    const LayerTree& tree = loaded->tree();
    std::vector<std::vector<torch::Tensor>> blockParameters(tree.blocks().size());
    for (const auto& group : groups) {
      for (std::size_t i = 0; i < group.names.size(); ++i) {
        for (std::size_t b = 0; b < tree.blocks().size(); ++b) {
          bool inside = false;
          for (int member : tree.blocks()[b].members) inside |= within(group.names[i], tree.node(member).name);
          if (inside) blockParameters[b].push_back(group.parameters[i]);
        }
      }
    }

    // Data.
    const auto& metadata = loaded->metadata();
    auto streamOptions = BatchStream::forModel(metadata.mean, metadata.std, device);
    streamOptions.batchSize = options.batchSize / processes;
    streamOptions.seed = options.seed;
    if (collective) {
      streamOptions.share = static_cast<std::size_t>(collective->rank());
      streamOptions.shares = processes;
    }
    if (options.dataPath != "auto") streamOptions.residentBytes = 0;
    streamOptions.background = options.dataPath != "synchronous";
    const auto everything = [](const Dataset& d) {
      std::vector<std::size_t> indices(d.size());
      std::iota(indices.begin(), indices.end(), 0);
      return indices;
    };
    BatchStream trainBatches(BatchStream::borrow(*data.train), everything(*data.train), streamOptions);
    auto evalOptions = streamOptions;
    evalOptions.shuffle = false;
    evalOptions.padShares = false;  // each item counted once
    evalOptions.batchSize = std::max<std::size_t>(options.batchSize, 256);
    BatchStream validationBatches(BatchStream::borrow(*data.validation), everything(*data.validation), evalOptions);
    std::unique_ptr<BatchStream> testBatches;
    if (data.test && data.test->size()) testBatches = std::make_unique<BatchStream>(BatchStream::borrow(*data.test), everything(*data.test), evalOptions);

    // The model must have one output per class, or per regression target.
    const bool regression = data.train->isRegression();
    const std::size_t classes = data.train->classNames.size();
    const std::size_t outputsNeeded = regression ? data.train->targetNames.size() : classes;
    const std::size_t targets = regression ? outputsNeeded : 0;
    {
      torch::NoGradGuard noGrad;
      model.eval();
      trainBatches.startEpoch(0);  // never empty: every process's training share is padded
      const auto first = trainBatches.next();
      std::vector<std::int64_t> itemShape{1};
      itemShape.insert(itemShape.end(), data.train->itemShape.begin(), data.train->itemShape.end());
      // Checked against the shape stored with the model (a guess proves nothing); for images
      // only the channels, since convolutional models take any size.
      const auto& expected = metadata.inputShape;
      const bool images = expected.size() == 4 && itemShape.size() == 4;
      const bool fits = !metadata.present || expected.empty() ||
                        (images ? expected[1] == itemShape[1] : expected == itemShape);
      if (!fits) {
        return fail(modelPath + " takes inputs of shape " + formatShape(expected) + " but the data's items are " + formatShape(itemShape) + " — choose data made for this model");
      }
      const auto outputs = forwardOf(model, first->inputs.narrow(0, 0, 1), compute);
      // Autocast only reaches the operators it knows; a model without any stays in float32.
      if (compute.bf16 && outputs.scalar_type() != torch::kBFloat16) {
        compute.bf16 = false;
        result.note = "bf16 autocast had no effect on this model's output layer: trained in fp32";
        log->warn("{}", result.note);
      }
      result.precision = compute.bf16 ? "bf16" : "fp32";
      const bool fitsOutputs = outputs.dim() == 2 ? outputs.size(1) == static_cast<std::int64_t>(outputsNeeded)
                                                  : regression && outputs.dim() == 1 && outputsNeeded == 1;
      if (!fitsOutputs) {
        return fail(modelPath + " gives outputs of shape " + formatShape(outputs.sizes().vec()) + " but the data has " + std::to_string(outputsNeeded) +
                    (regression ? " regression targets — the model's last layer needs one output per target" : " classes — the model's last layer needs one output per class"));
      }
    }

    result.validationBefore = evaluate(model, validationBatches, options.loss, classes, targets, compute, collective);
    if (testBatches) result.testBefore = evaluate(model, *testBatches, options.loss, classes, targets, compute, collective);
    Evaluation best = result.validationBefore;
    Snapshot bestState = takeSnapshot(model);

    auto optimizer = makeOptimizer(options, groups);
    std::unique_ptr<GradientAverager> averager;
    if (collective) {
      std::vector<torch::Tensor> trainable;
      for (const auto& group : groups) trainable.insert(trainable.end(), group.parameters.begin(), group.parameters.end());
      averager = std::make_unique<GradientAverager>(options.collective, trainable, options.gradientBucketBytes);
    }
    const std::size_t stepsPerEpoch = trainBatches.batchesPerEpoch();
    const std::size_t totalSteps = options.maxSteps ? options.maxSteps : stepsPerEpoch * static_cast<std::size_t>(options.epochs);
    const bool autoRgn = plan.strategy == "auto-rgn";
    log->info("training {} of {} parameters ({} groups) on {} for {} steps", result.trainableParameters,
              result.trainableParameters + result.frozenParameters, groups.size(), result.device, totalSteps);

    const auto start = Clock::now();
    std::size_t step = 0;
    std::size_t samples = 0;
    int sinceImprovement = 0;
    double lossSinceEvaluation = 0;
    std::size_t stepsSinceEvaluation = 0;
    bool stop = false;
    std::string stopReason;

    const auto keepBest = [&] { restoreSnapshot(model, bestState); };
    const auto cancelled = [&] {
      keepBest();
      result.cancelled = true;
      result.error = "training was cancelled after " + std::to_string(step) + " steps; the best state so far is kept";
    };
    // The best state so far on disk; serialise() leaves the model in eval mode with every
    // parameter requiring gradients, so both are put back.
    const auto writeCheckpoint = [&] {
      if (options.checkpointPath.empty() || !rankZero) return;
      std::vector<bool> requiresGrad;
      for (const auto& p : model.parameters()) requiresGrad.push_back(p.requires_grad());
      const auto bytes = serialise(*loaded);
      std::size_t k = 0;
      for (auto p : model.parameters()) p.set_requires_grad(requiresGrad[k++]);
      trainMode();
      if (auto problem = writeFileAtomically(options.checkpointPath, *bytes); !problem.empty()) log->warn("checkpoint not written: {}", problem);
    };
    const auto runEvaluation = [&](int epoch) {
      EvaluationPoint point;
      point.epoch = epoch;
      point.step = step;
      point.trainLoss = lossSinceEvaluation / static_cast<double>(std::max<std::size_t>(1, stepsSinceEvaluation));
      point.validation = evaluate(model, validationBatches, options.loss, classes, targets, compute, collective);
      lossSinceEvaluation = 0;
      stepsSinceEvaluation = 0;
      result.history.push_back(point);
      TrainEvent event;
      event.kind = TrainEvent::Kind::Evaluation;
      event.loss = point.trainLoss;
      event.epoch = epoch;
      event.step = step;
      event.totalSteps = totalSteps;
      event.validation = point.validation;
      if (better(options, point.validation, best)) {
        best = point.validation;
        bestState = takeSnapshot(model);
        result.bestEvaluation = static_cast<int>(result.history.size()) - 1;
        sinceImprovement = 0;
        event.best = true;
        writeCheckpoint();
      } else if (options.patience > 0 && ++sinceImprovement >= options.patience) {
        stop = true;
        result.stoppedEarly = true;
        stopReason = "stopped early: validation " + (options.selectBy == "loss" ? "loss" : std::string(best.scoreName())) + " did not improve for " + std::to_string(options.patience) + " evaluations";
      }
      log->info("epoch {} step {}: train loss {:.4f}, validation loss {:.4f}, {} {:.2f}%{}", epoch + 1, step, point.trainLoss,
                point.validation.loss, point.validation.scoreName(), 100 * point.validation.score(), event.best ? " (best)" : "");
      emit(event);
      trainMode();  // evaluate() put every module back in training, frozen BatchNorms too
    };

    for (int epoch = 0; step < totalSteps && !stop; ++epoch) {
      if (autoRgn) {
        // The paper's Auto-RGN: each group's learning rate follows its relative gradient norm,
        // measured at the start of every epoch on a few training batches.
        trainBatches.startEpoch(epoch);
        std::vector<Batch> probe;
        while (probe.size() < 3) {
          auto batch = trainBatches.next();
          if (!batch) break;
          probe.push_back(std::move(*batch));
        }
        const auto gradients = parameterGradients(model, probe);
        std::map<std::string, std::vector<const ParameterGradient*>> byGroup;
        for (const auto& g : gradients) {
          if (const std::string* entry = owner(plan, g.name); entry && !g.batchNormAffine) byGroup[*entry].push_back(&g);
        }
        double largest = 0;
        for (auto& group : groups) {
          group.scale = byGroup.count(group.module) ? rollUp(group.module, byGroup[group.module]).rgn : 0;
          largest = std::max(largest, group.scale);
        }
        if (collective) {  // every process measured its own batches: all use the mean
          auto scales = torch::empty({static_cast<std::int64_t>(groups.size())}, torch::kFloat64);
          for (std::size_t g = 0; g < groups.size(); ++g) scales[static_cast<std::int64_t>(g)] = groups[g].scale;
          std::vector<torch::Tensor> shared{scales};
          collective->allReduceSum(shared);
          largest = 0;
          for (std::size_t g = 0; g < groups.size(); ++g) {
            groups[g].scale = scales[static_cast<std::int64_t>(g)].item<double>() / static_cast<double>(processes);
            largest = std::max(largest, groups[g].scale);
          }
        }
        for (auto& group : groups) group.scale = largest > 0 ? group.scale / largest : 1;
      }
      trainMode();
      trainBatches.startEpoch(epoch);
      while (step < totalSteps && !stop) {
        // With several processes, a stop is voted on with the step's loss below: one process
        // leaving alone would leave the others waiting in their next all-reduce.
        if (!collective && control && (control->cancelled() || control->paused()) && !control->waitWhilePaused()) {
          cancelled();
          break;
        }
        auto batch = trainBatches.next();
        if (!batch) break;
        const double factor = scheduleFactor(options, step, totalSteps);
        for (std::size_t g = 0; g < groups.size(); ++g) optimizer->setLearningRate(g, options.learningRate * groups[g].scale * factor);

        optimizer->zeroGrad();
        const auto outputs = forwardOf(model, batch->inputs, compute).to(torch::kFloat32);
        const auto batchLoss = taskLoss(options.loss, outputs, batch->targets);
        if (averager) averager->arm();
        batchLoss.backward();
        if (averager) averager->finish();  // every process now holds the same mean gradient
        // Gradient norms per block, reduced on the device and fetched with the loss in one copy.
        // (_foreach_norm: one fused kernel per block rather than three per tensor.)
        std::vector<torch::Tensor> reduced{batchLoss.detach().to(torch::kFloat64).reshape({1})};
        if (collective) {  // the curve shows the global batch's loss; all stop on a NaN together,
                           // and at the same step when any of them was asked to stop
          const double stopVote = control && control->cancelled() ? 1 : 0;
          reduced[0] = torch::cat({reduced[0], torch::full({1}, stopVote, reduced[0].options())});
          collective->allReduceSum(reduced);  // the loss summed: divided once fetched
        }
        for (const auto& parameters : blockParameters) {
          std::vector<torch::Tensor> grads;
          for (const auto& p : parameters) {
            if (p.grad().defined()) grads.push_back(p.grad().detach());
          }
          if (grads.empty()) {
            reduced.push_back(torch::zeros({1}, torch::TensorOptions().dtype(torch::kFloat64).device(device)));
            continue;
          }
          reduced.push_back(torch::stack(at::_foreach_norm(grads)).to(torch::kFloat64).pow(2).sum().reshape({1}));
        }
        const auto fetched = torch::cat(reduced).cpu();
        const double value = fetched[0].item<double>() / static_cast<double>(processes);
        const std::int64_t firstNorm = collective ? 2 : 1;  // after the loss (and the stop votes)
        if (collective && fetched[1].item<double>() > 0) {
          cancelled();
          break;
        }
        if (!std::isfinite(value)) {
          keepBest();
          result.diverged = true;
          std::ostringstream message;
          message << "the training loss became " << value << " at step " << step + 1 << " (epoch " << epoch + 1
                  << ") — the learning rate " << options.learningRate << " is probably too high: try one ten times smaller. The best state so far is kept.";
          result.error = message.str();
          break;
        }
        optimizer->step();
        ++step;
        samples += static_cast<std::size_t>(batch->targets.size(0)) * processes;
        lossSinceEvaluation += value;
        ++stepsSinceEvaluation;

        TrainEvent event;
        event.kind = TrainEvent::Kind::Step;
        event.epoch = epoch;
        event.step = step;
        event.totalSteps = totalSteps;
        event.loss = value;
        for (std::size_t g = 0; g < groups.size(); ++g) event.learningRates.push_back(optimizer->learningRate(g));
        for (std::size_t b = 0; b < blockParameters.size(); ++b) event.blockGradientNorms.push_back(std::sqrt(fetched[static_cast<std::int64_t>(b) + firstNorm].item<double>()));
        event.elapsedSeconds = std::chrono::duration<double>(Clock::now() - start).count();
        event.samplesPerSecond = event.elapsedSeconds > 0 ? static_cast<double>(samples) / event.elapsedSeconds : 0;
        event.remainingSeconds = event.elapsedSeconds / static_cast<double>(step) * static_cast<double>(totalSteps - step);
        emit(event);
        if (options.evaluateEverySteps && step % options.evaluateEverySteps == 0) runEvaluation(epoch);
      }
      if (result.cancelled || result.diverged) break;
      // Every epoch, or every N steps (and once more at the end for the steps after the last).
      if (stepsSinceEvaluation > 0 && (!options.evaluateEverySteps || step >= totalSteps)) runEvaluation(epoch);
    }
    result.steps = step;
    result.seconds = std::chrono::duration<double>(Clock::now() - start).count();
    if (averager) {
      result.gradientBytesReduced = averager->bytesReduced();
      result.gradientBuckets = averager->buckets();
      log->info("all-reduced {} gradient bytes in {} steps ({} buckets; {} trainable parameters)", result.gradientBytesReduced, step,
                result.gradientBuckets, result.trainableParameters);
    }

    // The best state is the result, whatever stopped the run.
    keepBest();
    result.validationAfter = best;
    if (testBatches) result.testAfter = evaluate(model, *testBatches, options.loss, classes, targets, compute, collective);
    if (compute.channelsLast) setChannelsLast(model, false);  // saved in the layout it came in
    result.tunedModel = serialise(*loaded);

    TrainEvent last;
    last.step = step;
    last.totalSteps = totalSteps;
    last.validation = best;
    if (result.cancelled) {
      last.kind = TrainEvent::Kind::Cancelled;
      last.message = result.error;
    } else if (result.diverged) {
      last.kind = TrainEvent::Kind::Failed;
      last.message = result.error;
    } else {
      result.ok = true;
      last.kind = TrainEvent::Kind::Finished;
      last.message = result.stoppedEarly ? stopReason : "finished " + std::to_string(step) + " steps";
      if (result.stoppedEarly) result.error = stopReason;
    }
    log->info("{} in {:.1f} s: validation {} {:.2f}% → {:.2f}%", last.message, result.seconds, best.scoreName(),
              100 * result.validationBefore.score(), 100 * result.validationAfter.score());
    emit(last);
  } catch (const std::exception& error) {
    // The TorchScript interpreter rethrows c10::OutOfMemoryError as a plain c10::Error with the
    // script's traceback (seen on an H200), so the message is what tells.
    const std::string what = error.what();
    if (dynamic_cast<const c10::OutOfMemoryError*>(&error) || what.find("out of memory") != std::string::npos) {
      log->warn("out of memory on {} with batch {}", result.device, options.batchSize);
      result.outOfMemory = true;  // no Failed event: trainModel retries with a smaller batch
      result.error = result.device + " ran out of memory with batch " + std::to_string(options.batchSize) +
                     " — choose a smaller batch size";
      return result;
    }
    log->error("training {} failed: {}", modelPath, error.what());
    return fail("training failed: " + summariseTorchError(error.what()));
  }
  return result;
}

}  // namespace

TrainResult retryWithSmallerBatches(TrainOptions options,
                                    const std::function<TrainResult(const TrainOptions&)>& attempt,
                                    const std::function<void(const std::string&)>& retrying) {
  const std::size_t asked = options.batchSize;
  TrainResult result = attempt(options);
  while (result.outOfMemory && options.batchSize > 1) {
    const std::string reason = "out of memory with batch " + std::to_string(options.batchSize) +
                               ": starting again with batch " + std::to_string(options.batchSize / 2);
    if (retrying) retrying(reason);
    options.batchSize /= 2;
    result = attempt(options);
  }
  if (result.batchSize != asked && !result.outOfMemory) {
    const std::string halved = "out of memory with batch " + std::to_string(asked) + ": trained with batch " + std::to_string(result.batchSize);
    result.note = result.note.empty() ? halved : halved + "; " + result.note;
  }
  return result;
}

TrainResult trainModel(const std::string& modelPath, const FreezePlan& plan, const TrainData& data,
                       const TrainOptions& options,
                       const std::function<void(const TrainEvent&)>& events,
                       TrainControl* control) {
  // Processes training together cannot retry alone: an out-of-memory error ends the run.
  auto result = options.collective ? trainAttempt(modelPath, plan, data, options, events, control) : retryWithSmallerBatches(
      options,
      [&](const TrainOptions& attempt) { return trainAttempt(modelPath, plan, data, attempt, events, control); },
      [](const std::string& reason) { logger("train")->warn("{}", reason); });
  if (result.outOfMemory && events) {  // even one item at a time did not fit
    TrainEvent event;
    event.kind = TrainEvent::Kind::Failed;
    event.message = result.error;
    events(event);
  }
  return result;
}

}  // namespace scalpel
