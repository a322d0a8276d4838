#pragma once

// Torch-free facade: trains a new model from scratch on a whole data set (all layers), for the
// demo model and for users who bring an untrained architecture. Surgical fine-tuning of a
// pretrained model is the trainer's job, not this.

#include <atomic>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "data/dataset.h"

namespace scalpel {

struct PretrainOptions {
  std::string data = "fashion-mnist";  // see openDataSource(); others are split 80/20 by seed
  int epochs = 3;
  std::size_t batchSize = 128;
  double learningRate = 3e-3;  // peak of a cosine schedule with 5% warm-up (AdamW)
  double weightDecay = 1e-4;
  std::uint64_t seed = 0;
  std::size_t trainLimit = 0;  // use only this many training items (0: all), e.g. in tests
  std::size_t testLimit = 0;
  std::string device = "cpu";
};

struct PretrainProgress {
  int epoch = 0;  // 0-based
  int epochs = 0;
  std::size_t step = 0;  // within the epoch
  std::size_t stepsPerEpoch = 0;
  double loss = 0;  // of this step
  double elapsedSeconds = 0;
  double remainingSeconds = 0;  // estimate
  double testAccuracy = -1;     // set once per epoch, at its end
};

struct PretrainResult {
  bool ok = false;
  bool cancelled = false;
  std::string error;
  double testAccuracy = 0;  // of the saved model on the test split
  double seconds = 0;
  std::vector<double> epochLosses;      // mean training loss per epoch
  std::vector<double> epochAccuracies;  // test accuracy after each epoch
};

// Loads the (untrained) TorchScript model at `modelPath`, trains it, and saves it atomically to
// `outPath` with its preprocessing (input shape, the training data's mean/std, class names).
// Deterministic for a seed on CPU. Never throws. `progress` is called after every step;
// `cancel` is checked between steps.
PretrainResult pretrainModel(const std::string& modelPath, const std::string& outPath,
                             const PretrainOptions& options,
                             const std::function<void(const PretrainProgress&)>& progress = {},
                             const std::atomic<bool>* cancel = nullptr);

// The same on data already in memory (e.g. the source half of a sub-population shift): trains
// on `train`, reports accuracy on `test`; options.data, trainLimit and testLimit are not used.
// Both data sets are borrowed for the call.
PretrainResult pretrainModel(const std::string& modelPath, const std::string& outPath,
                             const Dataset& train, const Dataset& test,
                             const PretrainOptions& options,
                             const std::function<void(const PretrainProgress&)>& progress = {},
                             const std::atomic<bool>* cancel = nullptr);

}  // namespace scalpel
