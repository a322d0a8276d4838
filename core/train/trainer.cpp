#include "train/trainer.h"

#include <ATen/autocast_mode.h>
#include <torch/script.h>
#include <torch/version.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <deque>
#include <fstream>
#include <functional>
#include <limits>
#include <map>
#include <mutex>
#include <numeric>
#include <optional>
#include <set>
#include <sstream>

#include "analysis/gradient_metrics.h"
#include "analysis/task_loss.h"
#include "data/batch_stream.h"
#include "data/splits.h"
#include "distributed/collective.h"
#include "distributed/gradient_averager.h"
#include "files/atomic_file.h"
#include "model/model_metadata.h"
#include "model/script_model.h"
#include "train/foreach_optimizer.h"
#include "train/frozen_part.h"
#include "util/device_info.h"
#include "util/logging.h"
#include "util/torch_errors.h"

namespace scalpel {

struct TrainState {
  std::string key;  // what must match for a run to go on from it (Attempt::resumeKey)
  // Trainable parameters and every buffer, by name ("parameter fc.weight", "buffer
  // stem.1.running_mean"): as training left them, and of the best state. Frozen parameters are
  // the model's own.
  std::vector<std::string> names;
  std::vector<torch::Tensor> end, best;
  std::vector<ForeachOptimizer::GroupState> optimizer;
  std::size_t steps = 0;
  int epochs = 0;
  std::vector<EvaluationPoint> history;
  std::vector<TrainEvent> events;  // its steps and evaluations, for curves to replay
  int bestEvaluation = -1;
  Evaluation bestValidation;
  Evaluation validationRecalibrated;
  std::size_t bytes = 0;
};

std::size_t trainStateBytes(const TrainState& state) { return state.bytes; }

// A run's frozen-part outputs: of every training item in order, and of the evaluation streams'
// items in the order they serve them.
struct FrozenValues {
  std::vector<torch::Tensor> train, validation, test;
  torch::Tensor trainTargets, validationTargets, testTargets;
};

struct FrozenOutputs {
  struct Entry {
    std::string key;  // the prefix's graph, and the items and compute it ran on
    std::vector<std::pair<std::string, c10::IValue>> attributes;  // what it read, as it was
    FrozenValues values;
    double bytes = 0;
  };
  std::mutex mutex;
  std::deque<Entry> entries;  // oldest first
  double bytes = 0;
};

std::shared_ptr<FrozenOutputs> makeFrozenOutputs() { return std::make_shared<FrozenOutputs>(); }

bool resumable(const TrainOptions& options) {
  return options.schedule == "constant" && options.warmupFraction == 0 && options.maxSteps == 0;
}

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
  if (!optimizers.count(options.optimizer))
    return "unknown optimiser '" + options.optimizer + "' — use adam, adamw or sgd";
  if (options.schedule != "constant" && options.schedule != "cosine")
    return "unknown schedule '" + options.schedule + "' — use constant or cosine";
  if (options.loss != "cross-entropy" && options.loss != "mse")
    return "unknown loss '" + options.loss + "' — use cross-entropy or mse";
  if (options.selectBy != "accuracy" && options.selectBy != "loss")
    return "unknown selection metric '" + options.selectBy + "' — use accuracy or loss";
  if (!(options.learningRate > 0) || !std::isfinite(options.learningRate))
    return "the learning rate must be a positive number";
  if (options.weightDecay < 0) return "the weight decay must not be negative";
  if (options.momentum < 0 || options.momentum >= 1) return "the momentum must be in [0, 1)";
  if (options.warmupFraction < 0 || options.warmupFraction >= 1)
    return "the warm-up fraction must be in [0, 1)";
  if (options.batchSize == 0) return "the batch size must be at least 1";
  if (options.epochs < 1 && options.maxSteps == 0)
    return "give at least one epoch or a step budget";
  if (options.patience < 0) return "the patience must not be negative";
  if (options.precision != "fp32" && options.precision != "bf16")
    return "unknown precision '" + options.precision + "' — use fp32 or bf16";
  if (options.dataPath != "auto" && options.dataPath != "streamed" &&
      options.dataPath != "synchronous")
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

std::unique_ptr<ForeachOptimizer> makeOptimizer(const TrainOptions& options,
                                                const std::vector<Group>& groups) {
  ForeachOptimizer::Settings settings;
  settings.kind = options.optimizer;
  settings.weightDecay = options.weightDecay;
  settings.momentum = options.momentum;
  auto optimizer = std::make_unique<ForeachOptimizer>(settings);
  for (const auto& group : groups)
    optimizer->addGroup(group.parameters, options.learningRate * group.scale);
  return optimizer;
}

double scheduleFactor(const TrainOptions& options, std::size_t step, std::size_t totalSteps) {
  const auto warmup = static_cast<std::size_t>(
      std::llround(options.warmupFraction * static_cast<double>(totalSteps)));
  if (step < warmup) return static_cast<double>(step + 1) / static_cast<double>(warmup);
  if (options.schedule == "constant") return 1;
  const double progress = static_cast<double>(step - warmup) /
                          static_cast<double>(std::max<std::size_t>(1, totalSteps - warmup));
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
    m_dtype =
        m_cuda ? at::autocast::get_autocast_gpu_dtype() : at::autocast::get_autocast_cpu_dtype();
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
  return channelsLast && inputs.dim() == 4 ? inputs.contiguous(at::MemoryFormat::ChannelsLast)
                                           : inputs;
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

torch::Tensor forwardOf(torch::jit::Module& model, const torch::Tensor& inputs,
                        const Compute& compute) {
  AutocastScope autocast(compute.bf16, compute.device);
  return model.forward({laidOut(inputs, compute.channelsLast)}).toTensor();
}

// A batch as the trainer feeds it: the items' inputs to the whole model, or, where the frozen
// part's outputs are cached, those outputs to the trainable part alone.
struct ModelBatch {
  std::vector<torch::Tensor> inputs;
  torch::Tensor targets;
};

// Where a run draws its batches from, one epoch at a time.
class Batches {
 public:
  virtual ~Batches() = default;
  virtual void startEpoch(int epoch) = 0;
  virtual std::optional<ModelBatch> next() = 0;
  virtual std::size_t batchesPerEpoch() const = 0;
};

// The data set itself, through a BatchStream.
class StreamBatches : public Batches {
 public:
  explicit StreamBatches(BatchStream& stream) : m_stream(stream) {}
  void startEpoch(int epoch) override { m_stream.startEpoch(epoch); }
  std::optional<ModelBatch> next() override {
    auto batch = m_stream.next();
    if (!batch) return std::nullopt;
    return ModelBatch{{std::move(batch->inputs)}, std::move(batch->targets)};
  }
  std::size_t batchesPerEpoch() const override { return m_stream.batchesPerEpoch(); }

 private:
  BatchStream& m_stream;
};

// The frozen part's outputs of every item, computed once: batches of them in the order a
// BatchStream with the same options serves the items (the same shuffle for each epoch, the same
// share of a process), so a cached run trains on exactly the batches an uncached one does.
class CachedBatches : public Batches {
 public:
  CachedBatches(std::vector<torch::Tensor> frontier, torch::Tensor targets,
                const BatchStream::Options& options)
      : m_frontier(std::move(frontier)), m_targets(std::move(targets)), m_options(options) {}

  void startEpoch(int epoch) override {
    std::vector<std::size_t> positions(static_cast<std::size_t>(m_targets.size(0)));
    std::iota(positions.begin(), positions.end(), 0);
    if (m_options.shuffle)
      seededShuffle(positions, m_options.seed + static_cast<std::uint64_t>(epoch));
    positions = shareOf(positions, m_options.share, m_options.shares, m_options.padShares);
    m_order =
        torch::tensor(std::vector<std::int64_t>(positions.begin(), positions.end()), torch::kInt64)
            .to(m_targets.device());
    m_cursor = 0;
  }

  std::optional<ModelBatch> next() override {
    const auto total = m_order.defined() ? m_order.size(0) : 0;
    const auto count =
        std::min<std::int64_t>(static_cast<std::int64_t>(m_options.batchSize), total - m_cursor);
    if (count <= 0 ||
        (count < static_cast<std::int64_t>(m_options.batchSize) && m_options.dropLast))
      return std::nullopt;
    const auto positions = m_order.narrow(0, m_cursor, count);
    m_cursor += count;
    ModelBatch batch;
    // The cache lives in RAM (its budget is the host's); a GPU gets each batch copied over.
    for (const auto& values : m_frontier) {
      batch.inputs.push_back(
          values.index_select(0, positions).to(m_options.device, /*non_blocking=*/true));
    }
    batch.targets =
        m_targets.index_select(0, positions).to(m_options.device, /*non_blocking=*/true);
    return batch;
  }

  std::size_t batchesPerEpoch() const override {
    const std::size_t items = m_targets.size(0),
                      shares = std::max<std::size_t>(1, m_options.shares);
    const std::size_t share = shares == 1 ? items
                              : m_options.padShares
                                  ? (items + shares - 1) / shares
                                  : items / shares + (m_options.share < items % shares ? 1 : 0);
    return share / m_options.batchSize +
           (!m_options.dropLast && share % m_options.batchSize ? 1 : 0);
  }

 private:
  std::vector<torch::Tensor> m_frontier;  // per frontier value: [items, ...]
  torch::Tensor m_targets;
  BatchStream::Options m_options;
  torch::Tensor m_order;
  std::int64_t m_cursor = 0;
};

// What turns a batch's inputs into the model's outputs: the whole forward, or the trainable part
// of it from cached frontier values.
using ForwardFn = std::function<torch::Tensor(const std::vector<torch::Tensor>&)>;

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
Evaluation evaluate(torch::jit::Module& model, Batches& batches, const ForwardFn& forward,
                    const std::string& loss, std::size_t classes, std::size_t targets,
                    const Compute& compute, Collective* collective) {
  torch::NoGradGuard noGrad;
  const bool wasTraining = model.is_training();
  model.eval();
  // Sums on the device, fetched once at the end (after the all-reduce).
  const auto sumOptions = torch::TensorOptions().dtype(torch::kFloat64).device(compute.device);
  const bool regression = targets > 0;
  const auto width = static_cast<std::int64_t>(regression ? targets : classes);
  auto lossSum = torch::zeros({1}, sumOptions), items = torch::zeros({1}, sumOptions);
  auto perClassCorrect = torch::zeros({width}, sumOptions),
       perClassTotal = torch::zeros({width}, sumOptions);
  auto regressionSums = torch::zeros({4, width}, sumOptions);
  batches.startEpoch(0);
  while (auto batch = batches.next()) {
    const auto outputs = forward(batch->inputs).to(torch::kFloat32);
    items += static_cast<double>(batch->targets.size(0));
    if (regression) {  // the loss comes from these sums too
      const auto y = batch->targets.to(torch::kFloat64);
      const auto error = outputs.reshape(batch->targets.sizes()).to(torch::kFloat64) - y;
      regressionSums +=
          torch::stack({y.sum(0), (y * y).sum(0), (error * error).sum(0), error.abs().sum(0)});
      continue;
    }
    lossSum +=
        (taskLoss(loss, outputs, batch->targets) * batch->targets.size(0)).to(torch::kFloat64);
    const auto hits = outputs.argmax(1).eq(batch->targets).to(torch::kFloat64);
    const auto onehot = at::one_hot(batch->targets, width).to(torch::kFloat64);
    perClassCorrect += (onehot * hits.unsqueeze(1)).sum(0);
    perClassTotal += onehot.sum(0);
  }
  if (wasTraining) model.train();
  std::vector<torch::Tensor> sums =
      regression ? std::vector<torch::Tensor>{items, regressionSums}
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
    result.perClassAccuracy.push_back(
        total > 0 ? hitsCpu[static_cast<std::int64_t>(c)].item<double>() / total : 0);
  }
  return result;
}

bool isBatchNorm(const torch::jit::Module& module) {
  return module.hasattr("running_mean") && module.attr("running_mean").isTensor();
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
  for (std::size_t i = 0; i < tensors.size() && i < snapshot.values.size(); ++i)
    tensors[i].copy_(snapshot.values[i]);
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

// "49 MB", "3.1 GB"
std::string formatBytes(double bytes) {
  std::ostringstream text;
  text.precision(bytes >= 1e9 ? 2 : 3);
  if (bytes >= 1e9) {
    text << bytes / 1e9 << " GB";
  } else if (bytes >= 1e6) {
    text << bytes / 1e6 << " MB";
  } else {
    text << bytes / 1e3 << " kB";
  }
  return text.str();
}

std::string formatSeconds(double seconds) {
  std::ostringstream text;
  text.precision(2);
  text << seconds << " s";
  return text.str();
}

// Half the memory this machine has available now (the cache lives in RAM).
double defaultCacheBudget() { return availableHostMemory() / 2; }

// Whether two lists of attributes hold the same values: tensors element for element (and of one
// type, shape and device), the rest as Python's == says.
bool sameAttributes(const std::vector<std::pair<std::string, c10::IValue>>& a,
                    const std::vector<std::pair<std::string, c10::IValue>>& b) {
  if (a.size() != b.size()) return false;
  try {
    for (std::size_t i = 0; i < a.size(); ++i) {
      const c10::IValue &x = a[i].second, &y = b[i].second;
      if (a[i].first != b[i].first || x.isTensor() != y.isTensor()) return false;
      if (!x.isTensor()) {
        if (!(x == y)) return false;
        continue;
      }
      const torch::Tensor &s = x.toTensor(), &t = y.toTensor();
      if (s.defined() != t.defined()) return false;
      if (s.defined() && (s.scalar_type() != t.scalar_type() || s.device() != t.device() ||
                          !s.sizes().equals(t.sizes()) || !torch::equal(s, t)))
        return false;
    }
  } catch (const std::exception&) {  // values == cannot compare (a list of tensors, say)
    return false;
  }
  return true;
}

double bytesOf(const FrozenValues& values) {
  double bytes = 0;
  for (const auto* tensors : {&values.train, &values.validation, &values.test}) {
    for (const auto& t : *tensors) bytes += static_cast<double>(t.numel() * t.element_size());
  }
  return bytes;
}

// One run at the options' batch size, step by step; trainModel retries it with smaller batches.
class Attempt {
 public:
  Attempt(const LoadedModel& model, const FreezePlan& plan, const TrainData& data,
          const TrainOptions& options, const std::function<void(const TrainEvent&)>& events,
          TrainControl* control)
      : m_source(model),
        m_plan(plan),
        m_data(data),
        m_options(options),
        m_events(events),
        m_control(control),
        m_collective(options.collective.get()),
        m_processes(m_collective ? static_cast<std::size_t>(m_collective->size()) : 1),
        m_rankZero(!m_collective || m_collective->rank() == 0) {
    m_result.batchSize = options.batchSize;
    m_result.processes = static_cast<int>(m_processes);
  }

  TrainResult run() {
    if (auto problem = checkRequest(); !problem.empty()) return fail(problem);
    try {
      if (auto problem = setUp(); !problem.empty()) return fail(problem);
      if (auto problem = openData(); !problem.empty()) return fail(problem);
      if (auto problem = checkShapes(); !problem.empty()) return fail(problem);
      measureBefore();
      if (!resume()) recalibrateBatchNorm();  // a resumed state has its statistics already
      cacheFrozenPart();
      train();
      finish();
    } catch (const std::exception& error) {
      // The TorchScript interpreter rethrows c10::OutOfMemoryError as a plain c10::Error with the
      // script's traceback (seen on an H200), so the message is what tells.
      const std::string what = error.what();
      if (dynamic_cast<const c10::OutOfMemoryError*>(&error) ||
          what.find("out of memory") != std::string::npos) {
        m_log->warn("out of memory on {} with batch {}", m_result.device, m_options.batchSize);
        m_result.outOfMemory = true;  // no Failed event: trainModel retries with a smaller batch
        m_result.error = m_result.device + " ran out of memory with batch " +
                         std::to_string(m_options.batchSize) + " — choose a smaller batch size";
        return m_result;
      }
      m_log->error("training {} failed: {}", m_source.path(), error.what());
      return fail("training failed: " + summariseTorchError(error.what()));
    }
    return m_result;
  }

 private:
  void emit(const TrainEvent& event) {
    // What a run that goes on from this one replays (keepEndState).
    if (m_options.keepEndState &&
        (event.kind == TrainEvent::Kind::Step || event.kind == TrainEvent::Kind::Evaluation))
      m_pastEvents.push_back(event);
    if (m_events) m_events(event);
  }

  TrainResult fail(const std::string& message) {
    m_result.error = message;
    TrainEvent event;
    event.kind = TrainEvent::Kind::Failed;
    event.message = message;
    emit(event);
    return m_result;
  }

  std::string checkRequest() const {
    if (auto problem = validateTrainOptions(m_options); !problem.empty()) return problem;
    if (!m_data.train || m_data.train->size() == 0)
      return "there is no labelled target data to train on";
    if (!m_data.validation || m_data.validation->size() == 0)
      return "there is no validation data to choose the best state with";
    if (m_plan.trainable.empty() && !m_plan.recalibrate)
      return "the freeze plan leaves nothing to train — unfreeze at least one layer";
    if (m_options.batchSize % m_processes != 0) {
      return "a batch of " + std::to_string(m_options.batchSize) + " does not split evenly over " +
             std::to_string(m_processes) + " processes — choose a multiple of " +
             std::to_string(m_processes) + " (each process takes batch ÷ processes)";
    }
    if (!m_source.ok()) return m_source.error();
    return {};
  }

  // A copy of its own on the run's device (training changes weights and flags), its parameters
  // in optimiser groups by plan entry, the BatchNorms that keep their statistics, the blocks.
  std::string setUp() {
    auto load = m_source.script().copy(m_options.device);
    if (!load) return load.error;
    m_loaded = std::move(load.model);
    torch::jit::Module& model = m_loaded->module();
    const torch::Device device = m_loaded->device();
    m_result.device = describeDevice(
        device.is_cuda() ? "cuda:" + std::to_string(std::max<int>(0, device.index())) : "cpu");
    if (m_collective)
      m_result.device = std::to_string(m_processes) + " processes, each on " + m_result.device;
    torch::manual_seed(m_options.seed);
    m_compute = Compute{device, m_options.precision == "bf16", m_options.channelsLast};
    if (m_compute.channelsLast) setChannelsLast(model, true);
    std::set<std::string> trainableModules;
    groupParameters(trainableModules);
    if (m_groups.empty() && !m_plan.trainable.empty()) {
      return "none of the plan's layers (" + m_plan.trainable.front() +
             (m_plan.trainable.size() > 1 ? ", …" : "") + ") has parameters in " + m_source.path() +
             " — is the plan for another model?";
    }
    if (auto problem = chooseFrozenNorms(trainableModules); !problem.empty()) return problem;
    // Blocks, for the per-block gradient norms of each step.
    const LayerTree& tree = m_loaded->tree();
    m_blockParameters.assign(tree.blocks().size(), {});
    for (const auto& group : m_groups) {
      for (std::size_t i = 0; i < group.names.size(); ++i) {
        for (std::size_t b = 0; b < tree.blocks().size(); ++b) {
          bool inside = false;
          for (int member : tree.blocks()[b].members)
            inside |= within(group.names[i], tree.node(member).name);
          if (inside) m_blockParameters[b].push_back(group.parameters[i]);
        }
      }
    }
    return {};
  }

  // Which parameters train, in which group (one per plan entry, with its learning-rate scale).
  void groupParameters(std::set<std::string>& trainableModules) {
    std::map<std::string, std::size_t> groupOf;
    for (const auto& item : m_loaded->module().named_parameters()) {
      auto parameter = item.value;
      const std::string* entry = owner(m_plan, item.name);
      if (!entry) {
        parameter.set_requires_grad(false);
        m_result.frozenParameters += parameter.numel();
        continue;
      }
      parameter.set_requires_grad(true);
      m_result.trainableParameters += parameter.numel();
      trainableModules.insert(moduleOf(item.name));
      if (!groupOf.count(*entry)) {
        groupOf[*entry] = m_groups.size();
        Group group;
        group.module = *entry;
        const auto scale = m_plan.learningRateScale.find(*entry);
        group.scale = scale == m_plan.learningRateScale.end() ? 1.0 : scale->second;
        m_groups.push_back(group);
      }
      auto& group = m_groups[groupOf[*entry]];
      group.names.push_back(item.name);
      group.parameters.push_back(parameter);
    }
  }

  // BatchNorms whose own parameters are frozen keep their running statistics (eval mode), and
  // every one does in BatchNorm eval mode (the plan's, else the options').
  std::string chooseFrozenNorms(const std::set<std::string>& trainableModules) {
    const bool allEval =
        m_plan.batchNorm.empty() ? m_options.batchNormEval : m_plan.batchNorm == "eval";
    std::string normInTrainMode;
    for (const auto& item : m_loaded->module().named_modules()) {
      if (!isBatchNorm(item.value)) continue;
      if (allEval || !trainableModules.count(item.name)) {
        m_frozenNorms.push_back(item.value);
        m_frozenNormNames.insert(item.name);
      } else if (normInTrainMode.empty()) {
        normInTrainMode = item.name;
      }
    }
    // In train mode a BatchNorm normalises by its batch's statistics, and each process sees only
    // its share of the batch: N processes would train another model than one does. (PyTorch's
    // SyncBatchNorm exchanges the statistics; a TorchScript model cannot be rewritten to do so.)
    if (m_collective && !normInTrainMode.empty()) {
      return "BatchNorm in train mode (" + normInTrainMode +
             " trains) normalises each process's share of a batch by its own statistics, so " +
             std::to_string(m_processes) +
             " processes would not train the model one process does — keep BatchNorm in eval mode "
             "(--bn-eval, the default) with several processes, or train in one";
    }
    return {};
  }

  void trainMode() {
    m_loaded->module().train();
    for (auto& norm : m_frozenNorms) norm.train(false);
  }

  // The training, validation and test streams: each process its share of the training batches;
  // evaluation counts every item once, summed over the processes.
  std::string openData() {
    auto streamOptions = m_loaded->batchOptions();
    streamOptions.batchSize = m_options.batchSize / m_processes;
    streamOptions.seed = m_options.seed;
    if (m_collective) {
      streamOptions.share = static_cast<std::size_t>(m_collective->rank());
      streamOptions.shares = m_processes;
    }
    if (m_options.dataPath != "auto") streamOptions.residentBytes = 0;
    streamOptions.background = m_options.dataPath != "synchronous";
    const auto everything = [](const Dataset& d) {
      std::vector<std::size_t> indices(d.size());
      std::iota(indices.begin(), indices.end(), 0);
      return indices;
    };
    m_trainBatches = std::make_unique<BatchStream>(BatchStream::borrow(*m_data.train),
                                                   everything(*m_data.train), streamOptions);
    auto evalOptions = streamOptions;
    evalOptions.shuffle = false;
    evalOptions.padShares = false;  // each item counted once
    evalOptions.batchSize = std::max<std::size_t>(m_options.batchSize, 256);
    m_validationBatches = std::make_unique<BatchStream>(
        BatchStream::borrow(*m_data.validation), everything(*m_data.validation), evalOptions);
    if (m_data.test && m_data.test->size()) {
      m_testBatches = std::make_unique<BatchStream>(BatchStream::borrow(*m_data.test),
                                                    everything(*m_data.test), evalOptions);
    }
    m_trainOptions = streamOptions;
    m_train = std::make_unique<StreamBatches>(*m_trainBatches);
    m_validation = std::make_unique<StreamBatches>(*m_validationBatches);
    if (m_testBatches) m_test = std::make_unique<StreamBatches>(*m_testBatches);
    // Source data counts only where its classes are the model's outputs.
    if (m_data.source && m_data.source->size() && !m_data.train->isRegression() &&
        m_data.source->classNames.size() == m_data.train->classNames.size()) {
      m_sourceBatches = std::make_unique<BatchStream>(BatchStream::borrow(*m_data.source),
                                                      everything(*m_data.source), evalOptions);
      m_sourceStream = std::make_unique<StreamBatches>(*m_sourceBatches);
    }
    m_forward = [this](const std::vector<torch::Tensor>& inputs) {
      return forwardOf(m_loaded->module(), inputs.front(), m_compute);
    };
    m_wholeForward = m_forward;
    const bool regression = m_data.train->isRegression();
    m_classes = m_data.train->classNames.size();
    m_targets = regression ? m_data.train->targetNames.size() : 0;
    return {};
  }

  // The model must take the data's items and give one output per class, or per regression target.
  std::string checkShapes() {
    torch::jit::Module& model = m_loaded->module();
    const auto& metadata = m_loaded->metadata();
    torch::NoGradGuard noGrad;
    model.eval();
    m_trainBatches->startEpoch(0);  // never empty: every process's training share is padded
    const auto first = m_trainBatches->next();
    // The items as served: images already fitted to the model's input (batchOptionsFor).
    auto itemShape = first->inputs.sizes().vec();
    itemShape[0] = 1;
    // Checked against the shape stored with the model (a guess proves nothing); for images only
    // the channels, since convolutional models take any size.
    const auto& expected = metadata.inputShape;
    const bool images = expected.size() == 4 && itemShape.size() == 4;
    const bool fits = !metadata.present || expected.empty() ||
                      (images ? expected[1] == itemShape[1] : expected == itemShape);
    if (!fits) {
      return m_source.path() + " takes inputs of shape " + formatShape(expected) +
             " but the data's items are " + formatShape(itemShape) +
             " — choose data made for this model";
    }
    const auto outputs = forwardOf(model, first->inputs.narrow(0, 0, 1), m_compute);
    // Autocast only reaches the operators it knows; a model without any stays in float32.
    if (m_compute.bf16 && outputs.scalar_type() != torch::kBFloat16) {
      m_compute.bf16 = false;
      m_result.note = "bf16 autocast had no effect on this model's output layer: trained in fp32";
      m_log->warn("{}", m_result.note);
    }
    m_result.precision = m_compute.bf16 ? "bf16" : "fp32";
    const bool regression = m_targets > 0;
    const std::size_t outputsNeeded = regression ? m_targets : m_classes;
    const bool fitsOutputs = outputs.dim() == 2
                                 ? outputs.size(1) == static_cast<std::int64_t>(outputsNeeded)
                                 : regression && outputs.dim() == 1 && outputsNeeded == 1;
    if (!fitsOutputs) {
      return m_source.path() + " gives outputs of shape " + formatShape(outputs.sizes().vec()) +
             " but the data has " + std::to_string(outputsNeeded) +
             (regression
                  ? " regression targets — the model's last layer needs one output per target"
                  : " classes — give the model a new head for them (the window offers one; "
                    "scalpel-cli: --new-head), or choose data with the model's classes");
    }
    return {};
  }

  Evaluation evaluateOn(Batches& batches) {
    return evaluate(m_loaded->module(), batches, m_forward, m_options.loss, m_classes, m_targets,
                    m_compute, m_collective);
  }

  // The source data never goes through the cache (it holds the target's items only).
  Evaluation evaluateSource() {
    if (!m_sourceStream) return {};
    return evaluate(m_loaded->module(), *m_sourceStream, m_wholeForward, m_options.loss, m_classes,
                    m_targets, m_compute, m_collective);
  }

  // The unmodified model's metrics; training starts from its state.
  void measureBefore() {
    m_bestState = takeSnapshot(m_loaded->module());
    if (!m_options.measureStart) {  // any evaluation beats it
      m_best.accuracy = m_best.r2 = -std::numeric_limits<double>::infinity();
      m_best.loss = std::numeric_limits<double>::infinity();
      return;
    }
    m_result.sourceBefore = evaluateSource();
    m_result.validationBefore = evaluateOn(*m_validation);
    if (m_test) m_result.testBefore = evaluateOn(*m_test);
    m_best = m_result.validationBefore;
  }

  // What a state must have been made with for this run to go on from it: everything that decides
  // what one more step does, except the run's length.
  std::string resumeKey() const {
    std::ostringstream key;
    key.precision(17);
    for (const auto& module : m_plan.trainable) {
      const auto scale = m_plan.learningRateScale.find(module);
      key << module << '*' << (scale == m_plan.learningRateScale.end() ? 1.0 : scale->second)
          << ' ';
    }
    key << "| bn " << m_plan.batchNorm << ' ' << m_options.batchNormEval << " rgn "
        << rescalesByRgn(m_plan) << " | " << m_options.optimizer << ' ' << m_options.learningRate
        << ' ' << m_options.weightDecay << ' ' << m_options.momentum << " batch "
        << m_options.batchSize << " seed " << m_options.seed << ' ' << m_options.loss << ' '
        << m_options.precision << ' ' << m_options.selectBy << " | " << m_data.train->size() << ' '
        << m_data.validation->size() << " processes " << m_processes;
    return key.str();
  }

  // The tensors a state holds, from `values` in stateTensors() order: the trainable parameters
  // and every buffer.
  std::vector<std::pair<std::string, torch::Tensor>> stateEntries(
      const std::vector<torch::Tensor>& values) {
    std::vector<std::pair<std::string, torch::Tensor>> entries;
    std::size_t i = 0;
    for (const auto& item : m_loaded->module().named_parameters()) {
      if (item.value.requires_grad()) entries.emplace_back("parameter " + item.name, values.at(i));
      ++i;
    }
    for (const auto& item : m_loaded->module().named_buffers())
      entries.emplace_back("buffer " + item.name, values.at(i++));
    return entries;
  }

  // Where this run ended, for TrainResult::endState (before the best state is restored).
  void keepEndState() {
    if (!m_options.keepEndState || m_groups.empty() || m_result.cancelled || m_result.diverged)
      return;
    torch::NoGradGuard noGrad;
    const auto host = [](const torch::Tensor& t) {
      return t.detach().to(t.options().device(torch::kCPU), false, /*copy=*/true);
    };
    auto state = std::make_shared<TrainState>();
    state->key = resumeKey();
    for (const auto& [name, value] : stateEntries(stateTensors(m_loaded->module()))) {
      state->names.push_back(name);
      state->end.push_back(host(value));
    }
    for (const auto& entry : stateEntries(m_bestState.values))
      state->best.push_back(host(entry.second));
    state->optimizer = m_optimizer->state();
    state->steps = m_step;
    state->epochs = static_cast<int>(m_step / std::max<std::size_t>(1, m_train->batchesPerEpoch()));
    state->history = m_result.history;
    state->events = m_pastEvents;
    state->bestEvaluation = m_result.bestEvaluation;
    state->bestValidation = m_best;
    state->validationRecalibrated = m_result.validationRecalibrated;
    for (const auto* tensors : {&state->end, &state->best}) {
      for (const auto& t : *tensors) state->bytes += t.numel() * t.element_size();
    }
    for (const auto& group : state->optimizer) {
      for (const auto* tensors : {&group.first, &group.second}) {
        for (const auto& t : *tensors) state->bytes += t.numel() * t.element_size();
      }
    }
    m_result.endState = std::move(state);
  }

  // Loads TrainOptions::resumeFrom into the run's copy: true when the run goes on from it.
  bool resume() {
    if (!m_options.resumeFrom) return false;
    const TrainState& state = *m_options.resumeFrom;
    const auto startAfresh = [&](const std::string& why) {
      m_log->warn("training from the start, not from the earlier run: {}", why);
      return false;
    };
    if (!resumable(m_options)) return startAfresh("this run's schedule follows its length");
    if (state.key != resumeKey()) return startAfresh("it had another plan, data or options");
    if (state.epochs > m_options.epochs)
      return startAfresh("it trained more epochs than this run has");
    torch::NoGradGuard noGrad;
    torch::jit::Module& model = m_loaded->module();
    auto live = stateEntries(stateTensors(model));
    if (live.size() != state.names.size()) return startAfresh("the model has other tensors");
    for (std::size_t i = 0; i < live.size(); ++i) {
      if (live[i].first != state.names[i] || !live[i].second.sizes().equals(state.end[i].sizes()))
        return startAfresh("the model has other tensors");
    }
    // The best state: the model as it starts, with the state's trainable parameters and buffers.
    Snapshot best = takeSnapshot(model);
    auto bestEntries = stateEntries(best.values);  // the snapshot's own tensors
    for (std::size_t i = 0; i < live.size(); ++i) {
      live[i].second.copy_(state.end[i]);
      bestEntries[i].second.copy_(state.best[i]);
    }
    // A run that measured the unmodified model keeps it when the earlier run never beat it, as
    // one long run would have.
    if (!m_options.measureStart || better(m_options, state.bestValidation, m_best)) {
      m_best = state.bestValidation;
      m_bestState = std::move(best);
      m_result.bestEvaluation = state.bestEvaluation;
    }
    m_result.history = state.history;
    m_pastEvents = state.events;
    m_result.validationRecalibrated = state.validationRecalibrated;
    m_step = state.steps;
    m_firstEpoch = state.epochs;
    m_resumeOptimizer = &state.optimizer;
    m_result.resumedEpochs = state.epochs;
    m_log->info("going on from an earlier run after {} epochs ({} steps)", state.epochs,
                state.steps);
    return true;
  }

  // AdaBN (Li et al. 2016; Schneider et al. 2020 on corruptions): every BatchNorm's running
  // statistics become the training split's, each normalising what the recalibrated ones before it
  // give it. One pass over the training split in order, at the run's batch size, in train mode
  // (BatchNorms only: dropout and the like stay in eval mode), with
  // the running buffers zeroed before each batch, so that after it they hold the batch's
  // statistics times the momentum the model was scripted with (1 for momentum None, with the
  // batch counter reset); summed and averaged, that is PyTorch's cumulative average. The
  // recalibrated model is where training starts.
  void recalibrateBatchNorm() {
    if (!m_plan.recalibrate) return;
    const auto began = Clock::now();
    torch::NoGradGuard noGrad;
    torch::jit::Module& model = m_loaded->module();
    struct Norm {
      torch::jit::Module module;
      torch::Tensor mean, var, meanSum, varSum;
      double factor = 0.1;
      bool cumulative = false;  // momentum None
    };
    std::vector<Norm> norms;
    model.eval();
    for (const auto& item : model.named_modules()) {
      if (!isBatchNorm(item.value) || !item.value.hasattr("running_var")) continue;
      Norm norm;
      norm.module = item.value;
      norm.mean = item.value.attr("running_mean").toTensor();
      norm.var = item.value.attr("running_var").toTensor();
      norm.meanSum = torch::zeros_like(norm.mean, torch::kFloat64);
      norm.varSum = torch::zeros_like(norm.var, torch::kFloat64);
      // A scripted BatchNorm holds its momentum as a constant; an eager-style one as an attribute.
      std::optional<c10::IValue> momentum = item.value.type()->findConstant("momentum");
      if (!momentum && item.value.hasattr("momentum")) momentum = item.value.attr("momentum");
      if (momentum && momentum->isDouble()) norm.factor = momentum->toDouble();
      norm.cumulative = momentum && momentum->isNone();
      if (norm.cumulative) norm.factor = 1;
      if (!(norm.factor > 0)) {  // momentum 0: its statistics never move, so none can be read
        m_log->warn("recalibration leaves {} as it is: its momentum is 0", item.name);
        continue;
      }
      norm.module.train(true);
      norms.push_back(std::move(norm));
    }
    if (norms.empty()) {
      m_log->info("recalibration: the model has no BatchNorm");
      model.train(false);
      return;
    }
    // The training items in their own order (this process's share), a batch at a time.
    auto inOrder = m_trainOptions;
    inOrder.shuffle = false;
    std::vector<std::size_t> items(m_data.train->size());
    std::iota(items.begin(), items.end(), 0);
    BatchStream stream(BatchStream::borrow(*m_data.train), items, inOrder);
    double batches = 0;
    stream.startEpoch(0);
    while (auto batch = stream.next()) {
      if (batch->inputs.size(0) < 2) continue;  // train-mode BatchNorm needs two items
      for (auto& norm : norms) {
        norm.mean.zero_();
        norm.var.zero_();
        if (norm.cumulative && norm.module.hasattr("num_batches_tracked"))
          norm.module.attr("num_batches_tracked").toTensor().zero_();
      }
      forwardOf(model, batch->inputs, m_compute);
      for (auto& norm : norms) {
        norm.meanSum += norm.mean.to(torch::kFloat64) / norm.factor;
        norm.varSum += norm.var.to(torch::kFloat64) / norm.factor;
      }
      batches += 1;
    }
    std::vector<torch::Tensor> sums;
    for (auto& norm : norms) {
      sums.push_back(norm.meanSum);
      sums.push_back(norm.varSum);
    }
    auto count = torch::full({1}, batches, norms.front().meanSum.options());
    sums.push_back(count);
    if (m_collective) m_collective->allReduceSum(sums);  // every process's share of the split
    const double total = count.item<double>();
    for (std::size_t i = 0; i < norms.size(); ++i) {
      norms[i].mean.copy_(total > 0 ? sums[2 * i] / total : sums[2 * i]);
      norms[i].var.copy_(total > 0 ? sums[2 * i + 1] / total : sums[2 * i + 1] + 1);
    }
    model.train(false);
    m_result.validationRecalibrated = evaluateOn(*m_validation);
    m_best = m_result.validationRecalibrated;
    m_bestState = takeSnapshot(model);
    m_recalibrationSeconds = std::chrono::duration<double>(Clock::now() - began).count();
    m_log->info("recalibrated {} BatchNorms on {} batches: validation {} {:.2f}% → {:.2f}%",
                norms.size(), total, m_best.scoreName(), 100 * m_result.validationBefore.score(),
                100 * m_best.score());
  }

  // Surgical fine-tuning leaves most of the model frozen: what the frozen part computes is the
  // same every epoch, so it is computed once per item and the trainable part trains on it. Only
  // where that is exact (FrozenPart refuses randomness and layers that act otherwise while
  // training; frozen BatchNorms are in eval mode) and the cache fits its memory budget; else the
  // run computes everything every step, as before, and says why.
  void cacheFrozenPart() {
    const auto skip = [&](const std::string& why) {
      m_result.frozenCache = "not cached: " + why;
      m_log->info("frozen part {}", m_result.frozenCache);
    };
    if (!m_options.cacheFrozenPart) return skip("turned off");
    torch::jit::Module& model = m_loaded->module();
    std::set<std::string> trainable, trainMode;
    for (const auto& group : m_groups) trainable.insert(group.names.begin(), group.names.end());
    for (const auto& item : model.named_modules()) {
      if (!m_frozenNormNames.count(item.name)) trainMode.insert(item.name);
    }
    std::string why;
    auto part = FrozenPart::split(model, trainable, trainMode, why);
    if (!part) return skip(why);
    torch::NoGradGuard noGrad;
    model.eval();
    // Two items tell the bytes per item and check that the split reproduces the forward.
    m_trainBatches->startEpoch(0);
    const auto probe = m_trainBatches->next();
    const auto inputs =
        probe->inputs.narrow(0, 0, std::min<std::int64_t>(2, probe->inputs.size(0)));
    const auto whole = forwardOf(model, inputs, m_compute).to(torch::kFloat32);
    const auto frontier = part->prefix(laidOut(inputs, m_compute.channelsLast));
    torch::Tensor split;
    {
      AutocastScope autocast(m_compute.bf16, m_compute.device);
      split = part->suffix(frontier).toTensor().to(torch::kFloat32);
    }
    if (!torch::allclose(whole, split, 1e-4, 1e-5)) {
      return skip("splitting the forward did not reproduce its outputs");
    }
    double perItem = 0;
    for (const auto& value : frontier) {
      perItem += static_cast<double>(value.numel() * value.element_size()) /
                 static_cast<double>(inputs.size(0));
    }
    const double items =
        static_cast<double>(m_data.train->size() + m_validationBatches->itemsPerEpoch() +
                            (m_testBatches ? m_testBatches->itemsPerEpoch() : 0));
    const double budget = m_options.cacheBudgetBytes
                              ? static_cast<double>(m_options.cacheBudgetBytes)
                              : defaultCacheBudget();
    if (items * perItem > budget) {
      return skip(formatBytes(items * perItem) + " over the " + formatBytes(budget) + " budget");
    }
    const auto began = Clock::now();
    const std::string key = frozenOutputsKey(*part);
    const auto attributes = part->attributesRead();
    const bool shared = takeSharedOutputs(key, attributes);
    if (!shared) {
      const FrozenValues values = computeFrozenValues(*part);
      useFrozenValues(values);
      shareOutputs(key, attributes, values, budget);
    }
    m_result.cacheSeconds = std::chrono::duration<double>(Clock::now() - began).count();
    m_result.frozenCache = "cached the outputs of " + part->describe() + ": " +
                           std::to_string(static_cast<std::size_t>(items)) + " items, " +
                           formatBytes(items * perItem) +
                           (shared ? ", computed by an earlier run from the same weights"
                                   : " in " + formatSeconds(m_result.cacheSeconds));
    m_log->info("frozen part {}", m_result.frozenCache);
    m_frozen = std::move(part);
    m_forward = [this](const std::vector<torch::Tensor>& frontier) {
      AutocastScope autocast(m_compute.bf16, m_compute.device);
      return m_frozen->suffix(frontier).toTensor();
    };
  }

  // What decides the frozen outputs besides the prefix's weights: its graph, the items (the data
  // sets themselves, this process's share of them) and how the items are served and computed.
  std::string frozenOutputsKey(const FrozenPart& part) const {
    std::ostringstream key;
    key.precision(17);
    key << part.signature() << "\n| train " << m_data.train << ' ' << m_data.train->size()
        << " validation " << m_data.validation << ' ' << m_data.validation->size() << " test "
        << m_data.test << ' ' << (m_data.test ? m_data.test->size() : 0) << " batch "
        << m_options.batchSize << " share " << m_trainOptions.share << '/' << m_trainOptions.shares
        << " device " << m_compute.device << " bf16 " << m_compute.bf16 << " channels-last "
        << m_compute.channelsLast << " fit";
    for (const auto size : m_trainOptions.fitTo) key << ' ' << size;
    key << " resize " << m_trainOptions.resize << " mean";
    for (const double value : m_trainOptions.mean) key << ' ' << value;
    key << " std";
    for (const double value : m_trainOptions.std) key << ' ' << value;
    return key.str();
  }

  // An earlier run's outputs (TrainOptions::frozenOutputs) where its frozen part read the same
  // values this one does: true when the run now trains on them.
  bool takeSharedOutputs(const std::string& key,
                         const std::vector<std::pair<std::string, c10::IValue>>& attributes) {
    if (!m_options.frozenOutputs) return false;
    FrozenOutputs& store = *m_options.frozenOutputs;
    std::lock_guard<std::mutex> lock(store.mutex);
    for (const auto& entry : store.entries) {
      if (entry.key != key || !sameAttributes(entry.attributes, attributes)) continue;
      useFrozenValues(entry.values);
      return true;
    }
    return false;
  }

  // Keeps this run's outputs for later runs, the oldest going where the budget would be passed.
  void shareOutputs(const std::string& key,
                    std::vector<std::pair<std::string, c10::IValue>> attributes,
                    const FrozenValues& values, double budget) {
    if (!m_options.frozenOutputs) return;
    FrozenOutputs& store = *m_options.frozenOutputs;
    for (auto& attribute : attributes) {  // as they are now: the run's copy goes on changing
      if (attribute.second.isTensor() && attribute.second.toTensor().defined())
        attribute.second = attribute.second.toTensor().detach().clone();
    }
    FrozenOutputs::Entry entry{key, std::move(attributes), values, bytesOf(values)};
    std::lock_guard<std::mutex> lock(store.mutex);
    while (!store.entries.empty() && store.bytes + entry.bytes > budget) {
      store.bytes -= store.entries.front().bytes;
      store.entries.pop_front();
    }
    if (entry.bytes > budget) return;
    store.bytes += entry.bytes;
    store.entries.push_back(std::move(entry));
  }

  // Training and evaluation draw from the frozen outputs (the epochs shuffle the training ones).
  void useFrozenValues(const FrozenValues& values) {
    const auto inOrder = cacheOrder();  // the evaluation streams serve this process's share
    m_train = std::make_unique<CachedBatches>(values.train, values.trainTargets, m_trainOptions);
    m_validation =
        std::make_unique<CachedBatches>(values.validation, values.validationTargets, inOrder);
    if (m_testBatches)
      m_test = std::make_unique<CachedBatches>(values.test, values.testTargets, inOrder);
  }

  // Every training item once, in order, in large batches.
  BatchStream::Options cacheOrder() const {
    auto everything = m_trainOptions;
    everything.shuffle = false;
    everything.shares = 1;
    everything.share = 0;
    everything.batchSize = std::max<std::size_t>(m_options.batchSize, 256);
    return everything;
  }

  // The frozen part's outputs of every training item, and of this process's share of the
  // validation and test items, in the order their streams serve them.
  FrozenValues computeFrozenValues(const FrozenPart& part) {
    const auto collect = [&](BatchStream& stream, std::vector<torch::Tensor>& frontier,
                             torch::Tensor& targets) {
      std::vector<std::vector<torch::Tensor>> pieces(part.frontierSize());
      std::vector<torch::Tensor> labels;
      stream.startEpoch(0);
      while (auto batch = stream.next()) {
        const auto values = part.prefix(laidOut(batch->inputs, m_compute.channelsLast));
        for (std::size_t i = 0; i < values.size(); ++i)
          pieces[i].push_back(values[i].to(torch::kCPU));
        labels.push_back(batch->targets.to(torch::kCPU));
      }
      frontier.clear();
      for (auto& piece : pieces) frontier.push_back(torch::cat(piece));
      targets = torch::cat(labels);
    };
    std::vector<std::size_t> all(m_data.train->size());
    std::iota(all.begin(), all.end(), 0);
    BatchStream trainItems(BatchStream::borrow(*m_data.train), all, cacheOrder());
    FrozenValues values;
    collect(trainItems, values.train, values.trainTargets);
    collect(*m_validationBatches, values.validation, values.validationTargets);
    if (m_testBatches) collect(*m_testBatches, values.test, values.testTargets);
    return values;
  }

  // The unmodified model's metrics, then epoch after epoch until the steps are done or a stop.
  void train() {
    if (m_groups.empty()) {  // a plan that only recalibrates
      m_result.seconds = m_recalibrationSeconds;
      return;
    }
    m_optimizer = makeOptimizer(m_options, m_groups);
    if (m_resumeOptimizer && !m_optimizer->setState(*m_resumeOptimizer))
      throw std::runtime_error("the optimiser state to go on from does not fit the plan");
    if (m_collective) {
      std::vector<torch::Tensor> trainable;
      for (const auto& group : m_groups)
        trainable.insert(trainable.end(), group.parameters.begin(), group.parameters.end());
      m_averager = std::make_unique<GradientAverager>(m_options.collective, trainable,
                                                      m_options.gradientBucketBytes);
    }
    const std::size_t stepsPerEpoch = m_train->batchesPerEpoch();
    m_totalSteps = m_options.maxSteps ? m_options.maxSteps
                                      : stepsPerEpoch * static_cast<std::size_t>(m_options.epochs);
    m_log->info("training {} of {} parameters ({} groups) on {} for {} steps",
                m_result.trainableParameters,
                m_result.trainableParameters + m_result.frozenParameters, m_groups.size(),
                m_result.device, m_totalSteps);
    m_start = Clock::now();
    replayHistory();
    for (int epoch = m_firstEpoch; m_step < m_totalSteps && !m_stop; ++epoch) {
      if (rescalesByRgn(m_plan)) rescaleByRgn(epoch);
      trainMode();
      m_train->startEpoch(epoch);
      while (m_step < m_totalSteps && !m_stop) {
        // With several processes, a stop is voted on with the step's loss: one process leaving
        // alone would leave the others waiting in their next all-reduce.
        if (!m_collective && m_control && (m_control->cancelled() || m_control->paused()) &&
            !m_control->waitWhilePaused()) {
          cancelled();
          break;
        }
        auto batch = m_train->next();
        if (!batch || !step(*batch, epoch)) break;
        if (m_options.evaluateEverySteps && m_step % m_options.evaluateEverySteps == 0)
          evaluateNow(epoch);
      }
      if (m_result.cancelled || m_result.diverged) break;
      // Every epoch, or every N steps (and once more at the end for the steps after the last).
      if (m_stepsSinceEvaluation > 0 && (!m_options.evaluateEverySteps || m_step >= m_totalSteps))
        evaluateNow(epoch);
    }
    m_result.steps = m_step;
    m_result.seconds = m_recalibrationSeconds + m_result.cacheSeconds +
                       std::chrono::duration<double>(Clock::now() - m_start).count();
    if (m_averager) {
      m_result.gradientBytesReduced = m_averager->bytesReduced();
      m_result.gradientBuckets = m_averager->buckets();
      m_log->info("all-reduced {} gradient bytes in {} steps ({} buckets; {} trainable parameters)",
                  m_result.gradientBytesReduced, m_step, m_result.gradientBuckets,
                  m_result.trainableParameters);
    }
  }

  // The paper's Auto-RGN: each group's learning rate follows its relative gradient norm, measured
  // at the start of every epoch on a few training batches (averaged over the processes).
  void rescaleByRgn(int epoch) {
    m_trainBatches->startEpoch(epoch);
    std::vector<Batch> probe;
    while (probe.size() < 3) {
      auto batch = m_trainBatches->next();
      if (!batch) break;
      probe.push_back(std::move(*batch));
    }
    const auto gradients = parameterGradients(m_loaded->module(), probe);
    std::map<std::string, std::vector<const ParameterGradient*>> byGroup;
    for (const auto& g : gradients) {
      if (const std::string* entry = owner(m_plan, g.name); entry && !g.batchNormAffine)
        byGroup[*entry].push_back(&g);
    }
    double largest = 0;
    for (auto& group : m_groups) {
      group.scale =
          byGroup.count(group.module) ? rollUp(group.module, byGroup[group.module]).rgn : 0;
      largest = std::max(largest, group.scale);
    }
    if (m_collective) {  // every process measured its own batches: all use the mean
      auto scales = torch::empty({static_cast<std::int64_t>(m_groups.size())}, torch::kFloat64);
      for (std::size_t g = 0; g < m_groups.size(); ++g)
        scales[static_cast<std::int64_t>(g)] = m_groups[g].scale;
      std::vector<torch::Tensor> shared{scales};
      m_collective->allReduceSum(shared);
      largest = 0;
      for (std::size_t g = 0; g < m_groups.size(); ++g) {
        m_groups[g].scale =
            scales[static_cast<std::int64_t>(g)].item<double>() / static_cast<double>(m_processes);
        largest = std::max(largest, m_groups[g].scale);
      }
    }
    for (auto& group : m_groups) group.scale = largest > 0 ? group.scale / largest : 1;
  }

  // One optimiser step. False when the run stops here (cancelled by any process, or diverged).
  bool step(const ModelBatch& batch, int epoch) {
    const double factor = scheduleFactor(m_options, m_step, m_totalSteps);
    for (std::size_t g = 0; g < m_groups.size(); ++g)
      m_optimizer->setLearningRate(g, m_options.learningRate * m_groups[g].scale * factor);
    m_optimizer->zeroGrad();
    const auto outputs = m_forward(batch.inputs).to(torch::kFloat32);
    const auto batchLoss = taskLoss(m_options.loss, outputs, batch.targets);
    if (m_averager) m_averager->arm();
    batchLoss.backward();
    if (m_averager) m_averager->finish();  // every process now holds the same mean gradient
    const auto fetched = fetchLossAndNorms(batchLoss);
    const double value = fetched[0].item<double>() / static_cast<double>(m_processes);
    const std::int64_t firstNorm = m_collective ? 2 : 1;  // after the loss (and the stop votes)
    if (m_collective && fetched[1].item<double>() > 0) {
      cancelled();
      return false;
    }
    if (!std::isfinite(value)) {
      diverged(value, epoch);
      return false;
    }
    m_optimizer->step();
    ++m_step;
    m_samples += static_cast<std::size_t>(batch.targets.size(0)) * m_processes;
    m_lossSinceEvaluation += value;
    ++m_stepsSinceEvaluation;
    TrainEvent event;
    event.kind = TrainEvent::Kind::Step;
    event.epoch = epoch;
    event.step = m_step;
    event.totalSteps = m_totalSteps;
    event.loss = value;
    for (std::size_t g = 0; g < m_groups.size(); ++g)
      event.learningRates.push_back(m_optimizer->learningRate(g));
    for (std::size_t b = 0; b < m_blockParameters.size(); ++b) {
      event.blockGradientNorms.push_back(
          std::sqrt(fetched[static_cast<std::int64_t>(b) + firstNorm].item<double>()));
    }
    event.elapsedSeconds = std::chrono::duration<double>(Clock::now() - m_start).count();
    event.samplesPerSecond =
        event.elapsedSeconds > 0 ? static_cast<double>(m_samples) / event.elapsedSeconds : 0;
    event.remainingSeconds = event.elapsedSeconds / static_cast<double>(m_step) *
                             static_cast<double>(m_totalSteps - m_step);
    emit(event);
    return true;
  }

  // The step's loss (with several processes: summed, and the stop votes) and each block's squared
  // gradient norm, reduced on the device and fetched in one copy. (_foreach_norm: one fused
  // kernel per block rather than three per tensor.)
  torch::Tensor fetchLossAndNorms(const torch::Tensor& batchLoss) {
    std::vector<torch::Tensor> reduced{batchLoss.detach().to(torch::kFloat64).reshape({1})};
    if (m_collective) {  // the curve shows the global batch's loss; all stop on a NaN together,
                         // and at the same step when any of them was asked to stop
      const double stopVote = m_control && m_control->cancelled() ? 1 : 0;
      reduced[0] = torch::cat({reduced[0], torch::full({1}, stopVote, reduced[0].options())});
      m_collective->allReduceSum(reduced);  // the loss summed: divided once fetched
    }
    for (const auto& parameters : m_blockParameters) {
      std::vector<torch::Tensor> grads;
      for (const auto& p : parameters) {
        if (p.grad().defined()) grads.push_back(p.grad().detach());
      }
      if (grads.empty()) {
        reduced.push_back(torch::zeros(
            {1}, torch::TensorOptions().dtype(torch::kFloat64).device(m_loaded->device())));
        continue;
      }
      reduced.push_back(
          torch::stack(at::_foreach_norm(grads)).to(torch::kFloat64).pow(2).sum().reshape({1}));
    }
    return torch::cat(reduced).cpu();
  }

  void keepBest() { restoreSnapshot(m_loaded->module(), m_bestState); }

  void cancelled() {
    keepBest();
    m_result.cancelled = true;
    m_result.error = "training was cancelled after " + std::to_string(m_step) +
                     " steps; the best state so far is kept";
  }

  void diverged(double value, int epoch) {
    keepBest();
    m_result.diverged = true;
    std::ostringstream message;
    message << "the training loss became " << value << " at step " << m_step + 1 << " (epoch "
            << epoch + 1 << ") — the learning rate " << m_options.learningRate
            << " is probably too high: try one ten times smaller. The best state so far is kept.";
    m_result.error = message.str();
  }

  // The best state so far on disk; serialise() leaves the model in eval mode with every parameter
  // requiring gradients, so both are put back.
  void writeCheckpoint() {
    if (m_options.checkpointPath.empty() || !m_rankZero) return;
    torch::jit::Module& model = m_loaded->module();
    std::vector<bool> requiresGrad;
    for (const auto& p : model.parameters()) requiresGrad.push_back(p.requires_grad());
    const auto bytes = serialise(*m_loaded);
    std::size_t k = 0;
    for (auto p : model.parameters()) p.set_requires_grad(requiresGrad[k++]);
    trainMode();
    if (auto problem = writeFileAtomically(m_options.checkpointPath, *bytes); !problem.empty())
      m_log->warn("checkpoint not written: {}", problem);
  }

  // Validation now: the best state is kept when it improves, the run stops early without.
  void evaluateNow(int epoch) {
    EvaluationPoint point;
    point.epoch = epoch;
    point.step = m_step;
    point.trainLoss = m_lossSinceEvaluation /
                      static_cast<double>(std::max<std::size_t>(1, m_stepsSinceEvaluation));
    point.validation = evaluateOn(*m_validation);
    m_lossSinceEvaluation = 0;
    m_stepsSinceEvaluation = 0;
    m_result.history.push_back(point);
    TrainEvent event;
    event.kind = TrainEvent::Kind::Evaluation;
    event.loss = point.trainLoss;
    event.epoch = epoch;
    event.step = m_step;
    event.totalSteps = m_totalSteps;
    event.validation = point.validation;
    if (better(m_options, point.validation, m_best)) {
      m_best = point.validation;
      m_bestState = takeSnapshot(m_loaded->module());
      m_result.bestEvaluation = static_cast<int>(m_result.history.size()) - 1;
      m_sinceImprovement = 0;
      event.best = true;
      writeCheckpoint();
    } else if (m_options.patience > 0 && ++m_sinceImprovement >= m_options.patience) {
      m_stop = true;
      m_result.stoppedEarly = true;
      m_stopReason = "stopped early: validation " +
                     (m_options.selectBy == "loss" ? "loss" : std::string(m_best.scoreName())) +
                     " did not improve for " + std::to_string(m_options.patience) + " evaluations";
    }
    m_log->info("epoch {} step {}: train loss {:.4f}, validation loss {:.4f}, {} {:.2f}%{}",
                epoch + 1, m_step, point.trainLoss, point.validation.loss,
                point.validation.scoreName(), 100 * point.validation.score(),
                event.best ? " (best)" : "");
    emit(event);
    trainMode();  // evaluate() put every module back in training, frozen BatchNorms too
  }

  // A resumed run first reports what the run it goes on from reported (its steps and
  // evaluations), so that its curves show the whole run.
  void replayHistory() {
    const auto past = std::move(m_pastEvents);
    m_pastEvents.clear();  // emit() records them again where this run's end is kept too
    for (auto event : past) {
      event.totalSteps = m_totalSteps;
      emit(event);
    }
  }

  // The best state is the result, whatever stopped the run.
  void finish() {
    keepEndState();
    keepBest();
    m_result.validationAfter = m_best;
    if (m_test) m_result.testAfter = evaluateOn(*m_test);
    m_result.sourceAfter = evaluateSource();
    if (m_compute.channelsLast)
      setChannelsLast(m_loaded->module(), false);  // saved in the layout it came in
    m_result.tunedModel = serialise(*m_loaded);
    TrainEvent last;
    last.step = m_step;
    last.totalSteps = m_totalSteps;
    last.validation = m_best;
    if (m_result.cancelled) {
      last.kind = TrainEvent::Kind::Cancelled;
      last.message = m_result.error;
    } else if (m_result.diverged) {
      last.kind = TrainEvent::Kind::Failed;
      last.message = m_result.error;
    } else {
      m_result.ok = true;
      last.kind = TrainEvent::Kind::Finished;
      last.message =
          m_result.stoppedEarly ? m_stopReason : "finished " + std::to_string(m_step) + " steps";
      if (m_result.stoppedEarly) m_result.error = m_stopReason;
    }
    m_log->info("{} in {:.1f} s: validation {} {:.2f}% → {:.2f}%", last.message, m_result.seconds,
                m_best.scoreName(), 100 * m_result.validationBefore.score(),
                100 * m_result.validationAfter.score());
    emit(last);
  }

  const LoadedModel& m_source;
  const FreezePlan& m_plan;
  const TrainData& m_data;
  const TrainOptions& m_options;
  const std::function<void(const TrainEvent&)>& m_events;
  TrainControl* m_control;
  Collective* const m_collective;
  const std::size_t m_processes;
  const bool m_rankZero;
  const std::shared_ptr<spdlog::logger> m_log = logger("train");
  TrainResult m_result;
  std::unique_ptr<ScriptModel> m_loaded;  // the run's own copy
  Compute m_compute;
  std::vector<Group> m_groups;
  std::vector<torch::jit::Module> m_frozenNorms;
  std::vector<std::vector<torch::Tensor>> m_blockParameters;
  std::unique_ptr<BatchStream> m_trainBatches, m_validationBatches,
      m_testBatches;  // the data itself
  BatchStream::Options m_trainOptions;
  std::unique_ptr<Batches> m_train, m_validation,
      m_test;                // what the run draws: those, or the cache
  ForwardFn m_forward;       // the training's: the whole model, or the part after the cache
  ForwardFn m_wholeForward;  // always the whole model
  std::unique_ptr<BatchStream> m_sourceBatches;
  std::unique_ptr<Batches> m_sourceStream;
  std::unique_ptr<FrozenPart> m_frozen;
  std::set<std::string> m_frozenNormNames;
  std::size_t m_classes = 0, m_targets = 0;  // targets: regression targets per item (0: classes)
  std::unique_ptr<ForeachOptimizer> m_optimizer;
  std::unique_ptr<GradientAverager> m_averager;
  Evaluation m_best;
  Snapshot m_bestState;
  std::size_t m_totalSteps = 0, m_step = 0, m_samples = 0, m_stepsSinceEvaluation = 0;
  double m_lossSinceEvaluation = 0;
  double m_recalibrationSeconds = 0;
  int m_firstEpoch = 0;                  // a resumed run's: the epochs the earlier run trained
  std::vector<TrainEvent> m_pastEvents;  // see emit()
  const std::vector<ForeachOptimizer::GroupState>* m_resumeOptimizer = nullptr;
  int m_sinceImprovement = 0;
  bool m_stop = false;
  std::string m_stopReason;
  Clock::time_point m_start;
};

TrainResult trainAttempt(const LoadedModel& model, const FreezePlan& plan, const TrainData& data,
                         const TrainOptions& options,
                         const std::function<void(const TrainEvent&)>& events,
                         TrainControl* control) {
  return Attempt(model, plan, data, options, events, control).run();
}

}  // namespace

TrainResult retryWithSmallerBatches(TrainOptions options,
                                    const std::function<TrainResult(const TrainOptions&)>& attempt,
                                    const std::function<void(const std::string&)>& retrying) {
  const std::size_t asked = options.batchSize;
  TrainResult result = attempt(options);
  while (result.outOfMemory && options.batchSize > 1) {
    const std::string reason = "out of memory with batch " + std::to_string(options.batchSize) +
                               ": starting again with batch " +
                               std::to_string(options.batchSize / 2);
    if (retrying) retrying(reason);
    options.batchSize /= 2;
    result = attempt(options);
  }
  if (result.batchSize != asked && !result.outOfMemory) {
    const std::string halved = "out of memory with batch " + std::to_string(asked) +
                               ": trained with batch " + std::to_string(result.batchSize);
    result.note = result.note.empty() ? halved : halved + "; " + result.note;
  }
  return result;
}

TrainResult trainModel(const LoadedModel& model, const FreezePlan& plan, const TrainData& data,
                       const TrainOptions& options,
                       const std::function<void(const TrainEvent&)>& events,
                       TrainControl* control) {
  // Processes training together cannot retry alone: an out-of-memory error ends the run.
  auto result = options.collective
                    ? trainAttempt(model, plan, data, options, events, control)
                    : retryWithSmallerBatches(
                          options,
                          [&](const TrainOptions& attempt) {
                            return trainAttempt(model, plan, data, attempt, events, control);
                          },
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
