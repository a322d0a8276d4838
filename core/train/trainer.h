#pragma once

// Torch-free facade of the surgical trainer: fine-tunes a pretrained TorchScript model under a
// freeze plan on labelled target data, evaluating on a validation split, keeping the best state,
// and reporting every step to a UI or the CLI.

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "analysis/advisor.h"
#include "data/dataset.h"
#include "model/loaded_model.h"

namespace scalpel {

class Collective;  // distributed/collective.h

// Where a run ended, to go on from: its trainable parameters and every buffer as training left
// them, the optimiser's moments, the steps, the evaluations and the best state so far. Opaque
// (torch inside), in host memory; TrainResult::endState, TrainOptions::resumeFrom.
struct TrainState;
std::size_t trainStateBytes(const TrainState& state);

// Frozen-part outputs kept for other runs to train on (TrainOptions::frozenOutputs): a plan
// search tries many plans from one model on one data set, and plans whose trainable layers begin
// at the same layer compute the same frozen outputs. Opaque (torch inside), in memory within the
// cache budget; only for runs on the data it was filled from, while that data lives.
struct FrozenOutputs;
std::shared_ptr<FrozenOutputs> makeFrozenOutputs();

struct TrainOptions {
  std::string optimizer = "adam";  // "adam", "adamw" or "sgd" (with momentum)
  double learningRate = 1e-3;
  double weightDecay = 1e-4;
  double momentum = 0.9;              // sgd only
  std::string schedule = "constant";  // "constant" or "cosine" (to zero at the end)
  double warmupFraction = 0;          // of all steps, linear from ~0 to the learning rate
  std::size_t batchSize = 64;
  int epochs = 10;
  std::size_t maxSteps = 0;  // a step budget; 0: the epochs decide
  // For class labels: "cross-entropy" or "mse" (against one-hot targets). Regression targets
  // always train with "mse".
  std::string loss = "cross-entropy";
  std::size_t evaluateEverySteps = 0;  // 0: after every epoch
  // The validation metric that picks the best state: "accuracy" (R² for regression) or "loss".
  std::string selectBy = "accuracy";
  int patience = 0;  // stop after this many evaluations without improvement; 0: never stop early
  // BatchNorm in eval mode everywhere (the paper's protocol), not only in frozen parts; a plan
  // can say otherwise (FreezePlan::batchNorm).
  bool batchNormEval = true;
  // What may be lost: the validated plan ("auto") rules out candidates whose accuracy on the
  // source data drops by more than this many points (0.02 = 2 points); negative: no limit. Only
  // where labelled source data with the model's classes is given.
  double maxSourceDrop = -1;
  std::uint64_t seed = 0;
  std::string device = "auto";  // "auto" (CUDA when available), "cpu", "cuda", "cuda:N"
  // "fp32", or "bf16": autocast runs convolutions and matrix products in bfloat16 (weights,
  // optimiser state and reductions stay float32). Fastest on GPUs with bf16 tensor cores.
  std::string precision = "fp32";
  bool channelsLast = false;  // 4-D weights and image batches in NHWC layout (convolutional models)
  // How batches reach the device: "auto" (on CUDA a set up to 2 GiB is uploaded once and batches
  // are gathered there; otherwise "streamed"), "streamed" (a background thread gathers the next
  // batches into pinned memory, copied without blocking) or "synchronous" (gathered on the
  // training thread, blocking copies: slowest; the benchmark's baseline).
  std::string dataPath = "auto";
  // Where the best state so far is written (atomically) at every evaluation that improves on it,
  // so a run that dies keeps its last good model; "": nowhere. Rank 0 alone writes it.
  std::string checkpointPath;
  // Several processes training together (core/distributed): each takes its share of every
  // epoch's batches (batchSize stays the global batch: each takes batchSize ÷ processes), the
  // trainable parameters' gradients are averaged after each backward, and validation and test
  // metrics are summed over all shares. nullptr: this process alone. Not saved with sessions.
  std::shared_ptr<Collective> collective;
  // Gradients travel in buckets of about this size, each sent as soon as backward has filled it
  // (PyTorch DDP's bucket_cap_mb, 25 MB there; smaller here: fine-tuning sends few parameters).
  std::size_t gradientBucketBytes = std::size_t(4) << 20;
  // Computes the frozen part in front of the trainable layers once per item and trains on its
  // outputs (train/frozen_part.h), where that gives exactly the same run; within this many bytes
  // of memory (0: half of what is available).
  bool cacheFrozenPart = true;
  std::size_t cacheBudgetBytes = 0;
  // Shared by runs (makeFrozenOutputs()): a run whose frozen part computes what an earlier one's
  // did, from the same weights and the same items, trains on its outputs rather than computing
  // them again; nullptr: every run computes its own. Not saved with sessions.
  std::shared_ptr<FrozenOutputs> frozenOutputs;
  // Validation, test and source accuracy of the unmodified model before the first step
  // (validationBefore, testBefore, sourceBefore). Off for the plan search's short runs, which all
  // start from one model it has measured once: the run then keeps its best evaluated state.
  bool measureStart = true;
  // Keep TrainResult::endState, for a later run to go on from.
  bool keepEndState = false;
  // Goes on from where an earlier run ended (its endState) to this run's `epochs`, training
  // exactly what one run of that many epochs trains (on CPU the same numbers): the plan search's
  // survivors and its winner continue rather than start again. That run must have had the same
  // plan, data and options but fewer epochs, under a schedule that does not depend on the run's
  // length (resumable()); where it did not, this run trains from the start and says why in the
  // log. The unmodified model is still measured when measureStart says so. Not saved with
  // sessions.
  std::shared_ptr<const TrainState> resumeFrom;
};

// Whether a run under these options can be continued: a constant learning rate without warm-up
// (a cosine or a warm-up follows the run's length, so a short run is no prefix of a long one)
// and no step budget.
bool resumable(const TrainOptions& options);

// Target data, already shifted; labels index the model's outputs, or (regression) each target
// is one of the model's outputs, in order.
struct TrainData {
  const Dataset* train = nullptr;
  const Dataset* validation = nullptr;
  const Dataset* test = nullptr;  // optional: reported for the unmodified and the best state
  // Optional labelled source data in the model's classes: its accuracy before and after shows
  // what tuning forgets.
  const Dataset* source = nullptr;
};

struct Evaluation {
  double loss = 0;
  double accuracy = 0;                   // classification: the fraction predicted right
  std::vector<double> perClassAccuracy;  // by class index; NaN-free (0 for absent classes)
  // Regression (accuracy then stays 0): the coefficient of determination averaged over the
  // targets (1 − squared error ÷ the targets' own variance; 0 for predicting their mean) and the
  // mean absolute error. The loss is the mean squared error.
  bool regression = false;
  double r2 = 0;
  double meanAbsoluteError = 0;
  std::size_t items = 0;

  // The higher-is-better metric curves, tables and "accuracy" selection use: accuracy, or R².
  double score() const { return regression ? r2 : accuracy; }
  const char* scoreName() const { return regression ? "R²" : "accuracy"; }
};

struct TrainEvent {
  enum class Kind { Step, Evaluation, Finished, Cancelled, Failed };
  Kind kind = Kind::Step;
  int epoch = 0;         // 0-based
  std::size_t step = 0;  // steps done so far (1-based after the first)
  std::size_t totalSteps = 0;
  // Step: the batch's loss. Evaluation: the mean training loss since the previous evaluation.
  double loss = 0;
  std::vector<double> learningRates;       // of the optimiser's parameter groups
  std::vector<double> blockGradientNorms;  // per block of the model's tree (0 where frozen)
  double samplesPerSecond = 0;
  double elapsedSeconds = 0;
  double remainingSeconds = 0;
  // Evaluation (on the validation split):
  Evaluation validation;
  bool best = false;  // this evaluation is the best so far
  // Finished, Cancelled, Failed:
  std::string message;
};

// Pause, resume and cancel from another thread; the trainer checks between batches.
class TrainControl {
 public:
  void pause();
  void resume();
  void cancel();
  bool cancelled() const { return m_cancel.load(); }
  bool paused() const { return m_pause.load(); }
  // Blocks while paused; returns false when cancelled.
  bool waitWhilePaused();
  // Ready for the next run: neither paused nor cancelled.
  void reset();

 private:
  std::atomic<bool> m_pause{false};
  std::atomic<bool> m_cancel{false};
  std::mutex m_mutex;
  std::condition_variable m_wake;
};

struct EvaluationPoint {
  int epoch = 0;
  std::size_t step = 0;
  double trainLoss = 0;  // mean over the steps since the previous evaluation
  Evaluation validation;
};

struct TrainResult {
  bool ok = false;  // finished (possibly early); the tuned model is the best state
  bool cancelled = false;
  bool diverged = false;  // stopped by a NaN or infinite loss (the best state so far is kept)
  bool stoppedEarly = false;
  bool outOfMemory =
      false;  // the device ran out of memory (trainModel retries with a smaller batch)
  std::size_t batchSize = 0;  // the batch size the run trained with
  std::string precision;      // "fp32" or "bf16", as it ran (bf16 only where autocast took effect)
  std::string note;    // what changed from the request (a halved batch, fp32 instead of bf16)
  std::string error;   // why it failed or stopped
  std::string device;  // "cpu (2 threads)", "cuda:0 (NVIDIA H100 80GB HBM3)", "2 processes, each on
                       // cpu (1 threads)"
  std::int64_t trainableParameters = 0;
  std::int64_t frozenParameters = 0;
  Evaluation validationBefore, testBefore;  // the unmodified model
  Evaluation validationAfter, testAfter;    // the best state
  Evaluation sourceBefore, sourceAfter;     // on TrainData::source (items 0: none given)
  // With FreezePlan::recalibrate: the recalibrated model, where training starts (and what the
  // run keeps when no epoch beats it); items 0 otherwise.
  Evaluation validationRecalibrated;
  std::vector<EvaluationPoint> history;
  int bestEvaluation = -1;  // index into history; -1: the unmodified model stayed best
  std::size_t steps = 0;
  double seconds = 0;
  // The best state as a TorchScript file (eval mode, the input model's extra files kept): written
  // out by exportTunedModel(). Also set on cancel and divergence (the best state so far).
  std::shared_ptr<const std::string> tunedModel;
  // Distributed runs: how many processes trained, and the gradient bytes this process
  // all-reduced (trainable parameters only, every step) in how many buckets.
  int processes = 1;
  std::uint64_t gradientBytesReduced = 0;
  std::size_t gradientBuckets = 0;
  // What the run did with its frozen part: "cached the outputs of stem … layer2: 1000 items,
  // 49 MB in 0.3 s", or "not cached: " and why. Empty when it did not get that far.
  std::string frozenCache;
  double cacheSeconds = 0;  // building the cache (part of `seconds`)
  // With TrainOptions::keepEndState (and a run that finished): where it ended.
  std::shared_ptr<const TrainState> endState;
  int resumedEpochs = 0;  // the epochs an earlier run (TrainOptions::resumeFrom) had trained
};

// Fine-tunes a copy of `model` under `plan`: parameters outside plan.trainable are
// frozen (requires_grad false, not in the optimiser) and BatchNorms outside it stay in eval mode
// so their running statistics do not move; plan.learningRateScale become parameter groups;
// plan.recalibrate first re-estimates every BatchNorm's statistics on the training split (a plan
// with nothing trainable then only does that);
// strategy "auto-rgn" recomputes its scales at the start of every epoch on training batches.
// Deterministic for a seed on CPU. Never throws; `events` is called on the calling thread.
// When the device runs out of memory the run starts again with half the batch (saying so in
// TrainResult::note and the log), down to one item.
TrainResult trainModel(const LoadedModel& model, const FreezePlan& plan, const TrainData& data,
                       const TrainOptions& options,
                       const std::function<void(const TrainEvent&)>& events = {},
                       TrainControl* control = nullptr);

// The retry policy of trainModel, apart from the training: runs `attempt` with the options'
// batch size and, while it reports outOfMemory, again with half of it. `retrying` hears each
// retry's reason.
TrainResult retryWithSmallerBatches(TrainOptions options,
                                    const std::function<TrainResult(const TrainOptions&)>& attempt,
                                    const std::function<void(const std::string&)>& retrying = {});

// Checks options before a run; returns "" or what is wrong and how to fix it.
std::string validateTrainOptions(const TrainOptions& options);

}  // namespace scalpel
