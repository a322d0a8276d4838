// Checks of the CUDA path, for a GPU machine without Qt (scripts/device-check runs it): device
// selection, analysis and gradients agreeing with the CPU, the trainer on CUDA (freezing exact,
// tuning helps, cancel), and a tuned model that loads back on the CPU. Plain C++: prints one line
// per check and exits non-zero when any failed. Timings are printed, never asserted.
//   cuda_checks            (SCALPEL_DEMO_DIR / SCALPEL_FASHION_MNIST_DIR from the environment)

#include <torch/cuda.h>
#include <torch/script.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <sstream>
#include <string>

#include "analysis/gradient_profile.h"
#include "analysis/shift_analysis.h"
#include "data/csv_reader.h"
#include "data/idx_reader.h"
#include "data/shifts.h"
#include "data/splits.h"
#include "model/script_model.h"
#include "train/trainer.h"
#include "util/device_info.h"
#include "util/threads.h"

using namespace scalpel;

namespace {

int failures = 0;

void check(bool ok, const std::string& what, const std::string& detail = {}) {
  std::printf("%s  %s%s%s\n", ok ? "PASS" : "FAIL", what.c_str(), detail.empty() ? "" : ": ",
              detail.c_str());
  std::fflush(stdout);
  failures += ok ? 0 : 1;
}

std::string demoModel() {
  const char* dir = std::getenv("SCALPEL_DEMO_DIR");
  return std::string(dir ? dir : SCALPEL_DEMO_DIR) + "/demo_model.pt";
}

double seconds(std::chrono::steady_clock::time_point since) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - since).count();
}

std::string format(const char* pattern, double a, double b = 0, double c = 0, double d = 0) {
  char text[256];
  std::snprintf(text, sizeof text, pattern, a, b, c, d);
  return text;
}

torch::jit::Module fromBytes(const std::string& bytes) {
  std::istringstream in(bytes);
  return torch::jit::load(in, torch::kCPU);
}

}  // namespace

int main() {
  useAllCores();
  const bool cuda = torch::cuda::is_available();
  check(cuda, "CUDA is available", describeDevice("cuda:0"));
  if (!cuda) return 1;
  check(automaticDevice() == "cuda:0", "device 'auto' picks CUDA");
  check(describeDevice("cuda:0").find('(') != std::string::npos, "the GPU's name is known",
        describeDevice("cuda:0"));

  const std::string model = demoModel();
  const LoadedModel demo = LoadedModel::open(model);  // once: every stage below works on it
  {
    auto loaded = ScriptModel::load(model, "auto");
    check(loaded && loaded.model->device().is_cuda(),
          "the demo model loads on CUDA with device auto", loaded ? "" : loaded.error);
    auto bad = ScriptModel::load(model, "cuda:7");
    check(!bad && bad.error.find("there is no GPU cuda:7") != std::string::npos,
          "a GPU index that does not exist is refused with a message", bad ? "loaded" : bad.error);
  }

  const auto loaded = readFashionMnist("test");
  check(static_cast<bool>(loaded), "Fashion-MNIST test split", loaded ? "" : loaded.error);
  if (!loaded) return 1;
  const Dataset noisy = *applyShift(*loaded.dataset, "gaussian-noise", 5, 7).dataset;

  // Analysis: the same scores on both devices (float32 sums in a different order, TF32 convs).
  {
    AnalysisOptions options;
    options.maxBatches = 10;
    options.device = "cpu";
    auto start = std::chrono::steady_clock::now();
    const auto onCpu = analyzeShift(demo, noisy, nullptr, options);
    const double cpuSeconds = seconds(start);
    options.device = "cuda";
    start = std::chrono::steady_clock::now();
    const auto onCuda = analyzeShift(demo, noisy, nullptr, options);
    const double cudaSeconds = seconds(start);
    check(onCpu.ok && onCuda.ok, "analysis runs on CPU and CUDA", onCpu.error + onCuda.error);
    if (onCpu.ok && onCuda.ok) {
      const auto& a = onCpu.snapshots.back().layers;
      const auto& b = onCuda.snapshots.back().layers;
      double worst = 0;
      for (std::size_t i = 0; i < a.size() && i < b.size(); ++i)
        worst = std::max(worst, std::abs(a[i].kl - b[i].kl) / (std::abs(a[i].kl) + 1e-3));
      check(a.size() == b.size() && worst < 0.02, "CPU and CUDA layer KL agree",
            format("largest relative difference %.2g over %.0f layers", worst,
                   static_cast<double>(a.size())));
      check(std::abs(onCpu.output.accuracy - onCuda.output.accuracy) < 0.005,
            "CPU and CUDA accuracy agree",
            format("%.4f vs %.4f", onCpu.output.accuracy, onCuda.output.accuracy));
      std::printf(
          "      analysis of 10 batches of 100: cpu %.2f s, cuda %.2f s (model load included)\n",
          cpuSeconds, cudaSeconds);
    }
  }

  // Gradients: RGN per tensor agrees.
  {
    GradientOptions options;
    options.device = "cpu";
    const auto onCpu = gradientProfile(demo, noisy, options);
    options.device = "cuda";
    const auto onCuda = gradientProfile(demo, noisy, options);
    check(onCpu.ok && onCuda.ok, "gradient profile on CPU and CUDA", onCpu.error + onCuda.error);
    if (onCpu.ok && onCuda.ok) {
      double worst = 0;
      for (std::size_t i = 0; i < onCpu.parameters.size(); ++i) {
        const double x = onCpu.parameters[i].rgn, y = onCuda.parameters[i].rgn;
        if (x > 0) worst = std::max(worst, std::abs(x - y) / x);
      }
      check(worst < 0.02, "CPU and CUDA RGN agree",
            format("largest relative difference %.2g", worst));
    }
  }

  // The trainer on CUDA: the first block on the noisy target, the paper's protocol.
  const auto split = stratifiedSplitPerClass(noisy.labels, 100, 50, 1);
  const Dataset train = noisy.subset(split.train), validation = noisy.subset(split.validation),
                test = noisy.subset(split.test);
  FreezePlan plan;
  plan.strategy = "block:stem";
  plan.trainable = {"stem"};
  TrainOptions options;
  options.epochs = 4;
  options.batchNormEval = true;
  options.device = "cuda";
  double cudaAccuracy = 0;
  {
    const auto start = std::chrono::steady_clock::now();
    const auto result = trainModel(demo, plan, {&train, &validation, &test}, options);
    check(result.ok, "training on CUDA", result.ok ? result.device : result.error);
    if (result.ok) {
      cudaAccuracy = result.testAfter.accuracy;
      check(result.testAfter.accuracy > result.testBefore.accuracy + 0.15,
            "tuning the first block on CUDA helps",
            format("test accuracy %.1f%% -> %.1f%% in %.1f s", 100 * result.testBefore.accuracy,
                   100 * result.testAfter.accuracy, seconds(start)));
      // Frozen tensors are bit-identical, on the GPU too.
      auto before = torch::jit::load(model, torch::kCPU);
      auto after = fromBytes(*result.tunedModel);
      std::map<std::string, torch::Tensor> tuned;
      for (const auto& p : after.named_parameters()) tuned[p.name] = p.value;
      for (const auto& b : after.named_buffers()) tuned[b.name] = b.value;
      int changedFrozen = 0, changedTrainable = 0;
      const auto compare = [&](const std::string& name, const torch::Tensor& value) {
        const bool same = torch::equal(value, tuned.at(name));
        if (name.rfind("stem.", 0) == 0)
          changedTrainable += same ? 0 : 1;
        else
          changedFrozen += same ? 0 : 1;
      };
      for (const auto& p : before.named_parameters()) compare(p.name, p.value);
      for (const auto& b : before.named_buffers()) compare(b.name, b.value);
      check(changedFrozen == 0 && changedTrainable > 0,
            "frozen tensors are bit-identical after CUDA training",
            format("%.0f frozen changed, %.0f trainable changed", changedFrozen, changedTrainable));
    }
  }
  {
    options.device = "cpu";
    const auto result = trainModel(demo, plan, {&train, &validation, &test}, options);
    check(result.ok && std::abs(result.testAfter.accuracy - cudaAccuracy) < 0.03,
          "CPU and CUDA training land within 3 points",
          format("cpu %.1f%%, cuda %.1f%%", 100 * result.testAfter.accuracy, 100 * cudaAccuracy));
    options.device = "cuda";
  }
  {
    TrainControl control;
    const auto result = trainModel(
        demo, plan, {&train, &validation, &test}, options,
        [&](const TrainEvent& e) {
          if (e.kind == TrainEvent::Kind::Step && e.step == 5) control.cancel();
        },
        &control);
    bool finite = false;
    if (result.tunedModel) {
      auto tuned = fromBytes(*result.tunedModel);
      tuned.eval();
      torch::NoGradGuard noGrad;
      finite =
          tuned.forward({torch::rand({2, 1, 28, 28})}).toTensor().isfinite().all().item<bool>();
    }
    check(result.cancelled && finite,
          "cancel on CUDA keeps a consistent model that loads on the CPU");
  }
  // bf16 autocast and channels-last on CUDA: the same run within the trainer's stated tolerance.
  for (const bool channelsLast : {false, true}) {
    auto fast = options;
    fast.precision = "bf16";
    fast.channelsLast = channelsLast;
    const auto start = std::chrono::steady_clock::now();
    const auto result = trainModel(demo, plan, {&train, &validation, &test}, fast);
    const std::string name =
        std::string("bf16 autocast") + (channelsLast ? " + channels-last" : "") + " on CUDA";
    check(result.ok && result.precision == "bf16" &&
              std::abs(result.testAfter.accuracy - cudaAccuracy) < 0.03,
          name + " lands within 3 points of fp32",
          result.ok ? format("fp32 %.1f%%, this %.1f%% in %.1f s", 100 * cudaAccuracy,
                             100 * result.testAfter.accuracy, seconds(start)) +
                          " (" + result.precision + ")"
                    : result.error);
  }
  // Out of GPU memory: with every layer training, 768x768 inputs make the demo keep ~0.13 GB of
  // activations per item for backward, so a batch of 2048 cannot fit even on an H200 (a frozen
  // model keeps almost none: freezing saves memory too); the run starts again with halved
  // batches and says so, never a crash.
  {
    Dataset big;
    big.name = "768x768 noise";
    big.itemShape = {1, 768, 768};
    big.classNames = train.classNames;
    const std::size_t items = 2048;
    big.values.resize(items * 768 * 768);
    for (std::size_t i = 0; i < big.values.size(); ++i)
      big.values[i] = static_cast<float>((i * 2654435761u) % 255) / 255.f;
    for (std::size_t i = 0; i < items; ++i) big.labels.push_back(static_cast<int>(i % 10));
    std::vector<std::size_t> few(32);
    for (std::size_t i = 0; i < few.size(); ++i) few[i] = i;
    const Dataset small = big.subset(few);
    auto huge = options;
    huge.batchSize = items;
    huge.maxSteps = 2;
    const auto start = std::chrono::steady_clock::now();
    FreezePlan everything;
    everything.strategy = "all";
    everything.trainable = {""};  // the root: every parameter
    const auto result = trainModel(demo, everything, {&big, &small, nullptr}, huge);
    check(result.ok && result.batchSize < items &&
              result.note.find("out of memory with batch 2048") != std::string::npos,
          "out of GPU memory: the run retries with a smaller batch",
          (result.ok
               ? "trained with batch " + std::to_string(result.batchSize) + " (" + result.note + ")"
               : result.error) +
              format(" in %.1f s", seconds(start)));
  }
  // Regression targets on CUDA: tuning the regressor's input layer lifts R² as on the CPU, and
  // both devices land on the same metrics (float32 sums in another order).
  if (const char* fixtures = std::getenv("SCALPEL_FIXTURE_DIR")) {
    CsvOptions csv;
    csv.targetColumns = {"ink", "balance"};
    const auto table = readCsv(std::string(fixtures) + "/regression_target.csv", csv);
    check(static_cast<bool>(table), "the regression CSV reads", table ? "" : table.error);
    if (table) {
      const Dataset& all = *table.dataset;
      const auto split = stratifiedSplitPerClass(all.strata(), 300, 100, 1);
      const Dataset train = all.subset(split.train), validation = all.subset(split.validation),
                    test = all.subset(split.test);
      FreezePlan input;
      input.strategy = "block:input";
      input.trainable = {"input"};
      TrainOptions regression;
      regression.epochs = 15;
      regression.learningRate = 1e-2;
      regression.batchSize = 32;
      const LoadedModel regressor = LoadedModel::open(std::string(fixtures) + "/regressor.pt");
      regression.device = "cuda";
      const auto onCuda = trainModel(regressor, input, {&train, &validation, &test}, regression);
      regression.device = "cpu";
      const auto onCpu = trainModel(regressor, input, {&train, &validation, &test}, regression);
      check(onCuda.ok && onCuda.testAfter.regression && onCuda.testAfter.r2 > 0.9 &&
                onCuda.testBefore.r2 < 0.5,
            "regression on CUDA: tuning the input layer lifts R²",
            onCuda.ok ? format("test R² %.1f%% -> %.1f%%", 100 * onCuda.testBefore.r2,
                               100 * onCuda.testAfter.r2)
                      : onCuda.error);
      check(onCpu.ok && std::abs(onCpu.testAfter.r2 - onCuda.testAfter.r2) < 0.02 &&
                std::abs(onCpu.testBefore.r2 - onCuda.testBefore.r2) < 1e-4,
            "regression: CPU and CUDA agree",
            format("R² before %.5f / %.5f, after %.4f / %.4f", onCpu.testBefore.r2,
                   onCuda.testBefore.r2, onCpu.testAfter.r2, onCuda.testAfter.r2));
    }
  }
  std::printf("%d check(s) failed\n", failures);
  return failures ? 1 : 0;
}
