#include "train/pretrain.h"

#include <torch/optim/adamw.h>
#include <torch/script.h>

#include <chrono>
#include <cmath>
#include <memory>
#include <numeric>
#include <sstream>

#include "data/batch_stream.h"
#include "data/data_source.h"
#include "data/splits.h"
#include "files/atomic_file.h"
#include "model/model_metadata.h"
#include "model/script_model.h"
#include "util/logging.h"
#include "util/torch_errors.h"

namespace scalpel {

namespace {

using Clock = std::chrono::steady_clock;

double accuracy(torch::jit::Module& model, BatchStream& batches) {
  torch::NoGradGuard noGrad;
  model.eval();
  std::int64_t correct = 0;
  std::int64_t total = 0;
  batches.startEpoch(0);
  while (auto batch = batches.next()) {
    const auto logits = model.forward({batch->inputs}).toTensor();
    correct += logits.argmax(1).eq(batch->targets).sum().item<std::int64_t>();
    total += batch->targets.size(0);
  }
  return total ? static_cast<double>(correct) / static_cast<double>(total) : 0.0;
}

// Loads the model and trains it on `train` (shared, so a caller's data can be borrowed),
// reporting accuracy on `test`; then saves it with its preprocessing.
PretrainResult pretrainOn(const std::string& modelPath, const std::string& outPath,
                          const std::shared_ptr<const Dataset>& trainShared,
                          const std::shared_ptr<const Dataset>& testShared,
                          const PretrainOptions& options,
                          const std::function<void(const PretrainProgress&)>& progress,
                          const std::atomic<bool>* cancel) {
  PretrainResult result;
  const auto log = logger("train");
  try {
    if (trainShared->size() == 0 || testShared->size() == 0) {
      result.error = "there is no data to train or test on";
      return result;
    }
    auto loaded = ScriptModel::load(modelPath, options.device);
    if (!loaded) {
      result.error = loaded.error;
      return result;
    }
    torch::jit::Module& model = loaded.model->module();
    const torch::Device device = loaded.model->device();
    const Dataset& train = *trainShared;

    ModelMetadata metadata;
    metadata.inputShape = {1};
    metadata.inputShape.insert(metadata.inputShape.end(), train.itemShape.begin(),
                               train.itemShape.end());
    channelStatistics(train, metadata.mean, metadata.std);
    metadata.classNames = train.classNames;

    torch::manual_seed(options.seed);
    auto streamOptions = batchOptionsFor(metadata, device);
    streamOptions.batchSize = options.batchSize;
    streamOptions.seed = options.seed;
    std::vector<std::size_t> all(trainShared->size());
    std::iota(all.begin(), all.end(), 0);
    BatchStream trainBatches(trainShared, all, streamOptions);
    streamOptions.shuffle = false;
    streamOptions.batchSize = 500;
    std::vector<std::size_t> allTest(testShared->size());
    std::iota(allTest.begin(), allTest.end(), 0);
    BatchStream testBatches(testShared, allTest, streamOptions);

    // The model must have one output per class.
    {
      torch::NoGradGuard noGrad;
      model.eval();
      testBatches.startEpoch(0);
      const auto first = testBatches.next();
      const auto logits = model.forward({first->inputs.narrow(0, 0, 1)}).toTensor();
      if (logits.dim() != 2 ||
          logits.size(1) != static_cast<std::int64_t>(metadata.classNames.size())) {
        result.error = modelPath + " gives outputs of shape " + formatShape(logits.sizes().vec()) +
                       " but the data has " + std::to_string(metadata.classNames.size()) +
                       " classes — the last layer needs one output per class";
        return result;
      }
    }

    std::vector<torch::Tensor> parameters;
    for (const auto& parameter : model.parameters()) parameters.push_back(parameter);
    torch::optim::AdamW optimizer(
        parameters,
        torch::optim::AdamWOptions(options.learningRate).weight_decay(options.weightDecay));
    const std::size_t stepsPerEpoch = trainBatches.batchesPerEpoch();
    const std::size_t totalSteps = stepsPerEpoch * static_cast<std::size_t>(options.epochs);
    const std::size_t warmup = std::max<std::size_t>(1, totalSteps / 20);
    const auto start = Clock::now();
    std::size_t globalStep = 0;
    PretrainProgress report;
    report.epochs = options.epochs;
    report.stepsPerEpoch = stepsPerEpoch;
    for (int epoch = 0; epoch < options.epochs; ++epoch) {
      model.train();
      trainBatches.startEpoch(epoch);
      double lossSum = 0;
      std::size_t step = 0;
      while (auto batch = trainBatches.next()) {
        if (cancel && cancel->load()) {
          result.cancelled = true;
          result.error = "training was cancelled; nothing was saved";
          return result;
        }
        const double fraction =
            globalStep < warmup
                ? static_cast<double>(globalStep + 1) / static_cast<double>(warmup)
                : 0.5 * (1 + std::cos(M_PI * static_cast<double>(globalStep - warmup) /
                                      static_cast<double>(
                                          std::max<std::size_t>(1, totalSteps - warmup))));
        for (auto& group : optimizer.param_groups()) {
          static_cast<torch::optim::AdamWOptions&>(group.options())
              .lr(options.learningRate * fraction);
        }
        optimizer.zero_grad();
        const auto logits = model.forward({batch->inputs}).toTensor();
        const auto loss = at::cross_entropy_loss(logits, batch->targets);
        loss.backward();
        optimizer.step();
        const double value = loss.item<double>();
        if (!std::isfinite(value)) {
          result.error = "the training loss became " + std::to_string(value) +
                         " — try a smaller learning rate";
          return result;
        }
        lossSum += value;
        ++step;
        ++globalStep;
        if (progress) {
          report.epoch = epoch;
          report.step = step;
          report.loss = value;
          report.elapsedSeconds = std::chrono::duration<double>(Clock::now() - start).count();
          report.remainingSeconds = report.elapsedSeconds / static_cast<double>(globalStep) *
                                    static_cast<double>(totalSteps - globalStep);
          report.testAccuracy = -1;
          progress(report);
        }
      }
      result.epochLosses.push_back(lossSum / static_cast<double>(std::max<std::size_t>(1, step)));
      result.epochAccuracies.push_back(accuracy(model, testBatches));
      log->info("epoch {}/{}: loss {:.4f}, test accuracy {:.2f}%", epoch + 1, options.epochs,
                result.epochLosses.back(), 100 * result.epochAccuracies.back());
      if (progress) {
        report.testAccuracy = result.epochAccuracies.back();
        progress(report);
      }
    }
    result.seconds = std::chrono::duration<double>(Clock::now() - start).count();
    result.testAccuracy = result.epochAccuracies.empty() ? accuracy(model, testBatches)
                                                         : result.epochAccuracies.back();

    model.eval();
    std::ostringstream bytes;
    model.save(bytes, {{kModelMetadataFile, modelMetadataToJson(metadata)}});
    if (auto problem = writeFileAtomically(outPath, bytes.str()); !problem.empty()) {
      result.error = problem;
      return result;
    }
    result.ok = true;
  } catch (const std::exception& error) {
    result.error = "training failed: " + summariseTorchError(error.what());
    log->error("pretraining {} failed: {}", modelPath, error.what());
  }
  return result;
}

}  // namespace

PretrainResult pretrainModel(const std::string& modelPath, const std::string& outPath,
                             const PretrainOptions& options,
                             const std::function<void(const PretrainProgress&)>& progress,
                             const std::atomic<bool>* cancel) {
  PretrainResult result;
  try {
    // Data: Fashion-MNIST has its own test split; anything else is split 80/20 by seed.
    auto trainLoad = openDataSource(options.data, "train");
    if (!trainLoad) {
      result.error = trainLoad.error;
      return result;
    }
    Dataset train = std::move(*trainLoad.dataset);
    Dataset test;
    if (options.data == "fashion-mnist") {
      auto testLoad = openDataSource(options.data, "test");
      if (!testLoad) {
        result.error = testLoad.error;
        return result;
      }
      test = std::move(*testLoad.dataset);
    } else {
      const auto split = stratifiedSplit(train.labels, 0.8, 0.0, options.seed);
      test = train.subset(split.test);
      train = train.subset(split.train);
    }
    const auto limit = [&](Dataset& data, std::size_t count, std::uint64_t seed) {
      if (count && count < data.size())
        data = data.subset(
            stratifiedSplit(data.labels,
                            static_cast<double>(count) / static_cast<double>(data.size()), 0, seed)
                .train);
    };
    limit(train, options.trainLimit, options.seed + 11);
    limit(test, options.testLimit, options.seed + 12);
    return pretrainOn(modelPath, outPath, std::make_shared<const Dataset>(std::move(train)),
                      std::make_shared<const Dataset>(std::move(test)), options, progress, cancel);
  } catch (const std::exception& error) {
    result.error = "training failed: " + summariseTorchError(error.what());
    logger("train")->error("pretraining {} failed: {}", modelPath, error.what());
  }
  return result;
}

PretrainResult pretrainModel(const std::string& modelPath, const std::string& outPath,
                             const Dataset& train, const Dataset& test,
                             const PretrainOptions& options,
                             const std::function<void(const PretrainProgress&)>& progress,
                             const std::atomic<bool>* cancel) {
  return pretrainOn(modelPath, outPath, BatchStream::borrow(train), BatchStream::borrow(test),
                    options, progress, cancel);
}

}  // namespace scalpel
