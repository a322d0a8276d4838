// Analysis forward against the plain forward of the same model and batch: "taps" returns the
// tapped activations themselves (copied where an in-place op follows), "analysis" the analysis
// path (per-channel sums reduced inside the forward, then moments). Each measured in pairs with
// the plain forward in one run; prints ratios, asserts nothing.
//   bench_analysis FIXTURE_DIR DEMO_MODEL [--quick] [--device cpu|cuda] [--scale K] [--reps N]
//   [--threads N]

#include <ATen/Parallel.h>
#include <ATen/record_function.h>
#include <torch/cuda.h>
#include <torch/script.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "analysis/activation_moments.h"
#include "model/activation_taps.h"
#include "model/script_model.h"
#include "util/device_info.h"
#include "util/threads.h"

namespace {

using Clock = std::chrono::steady_clock;

double median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  return values[values.size() / 2];
}

bool onCuda = false;

// Wall time of `work`, waiting for the GPU's queue to drain when there is one.
template <typename Work>
double seconds(Work&& work) {
  const auto start = Clock::now();
  work();
  if (onCuda) torch::cuda::synchronize();
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// Seconds spent inside Scalpel's own operators (scalpel::channel_sums and the BatchNorm ones)
// while `work` runs, timed by ATen's RecordFunction around each call. Unlike the ratio, this is the
// analysis' cost alone: on this shared machine the host's load moves the forward around it by
// up to 2× between runs. Host time, so meaningless on a GPU, whose kernels run asynchronously.
double scalpelOperatorSeconds(const std::function<void()>& work) {
  struct Started : at::ObserverContext {
    Clock::time_point at = Clock::now();
  };
  static double total =
      0;  // the callbacks are plain functions; the interpreter calls them on this thread
  total = 0;
  const auto handle = at::addThreadLocalCallback(
      at::RecordFunctionCallback(
          [](const at::RecordFunction& call) -> std::unique_ptr<at::ObserverContext> {
            if (std::strncmp(call.name(), "scalpel::", 9) != 0) return nullptr;
            return std::make_unique<Started>();
          },
          [](const at::RecordFunction&, at::ObserverContext* started) {
            if (started)
              total +=
                  std::chrono::duration<double>(Clock::now() - static_cast<Started*>(started)->at)
                      .count();
          })
          .scopes({at::RecordScope::FUNCTION}));
  work();
  at::removeCallback(handle);
  return total;
}

// `rounds` paired rounds: the plain forward's wall time, then `measure()`'s seconds, so drift on
// a noisy machine hits both halves of a round. Returns {baseline, measured} per round.
template <typename Plain, typename Measure>
std::vector<std::pair<double, double>> pairedRounds(int rounds, Plain&& plain, Measure&& measure) {
  std::vector<std::pair<double, double>> pairs;
  for (int r = 0; r < rounds; ++r) {
    const double baseline = seconds(plain);
    pairs.emplace_back(baseline, measure());
  }
  return pairs;
}

// Medians of a paired run: the baseline, the measured seconds, and the rounds' own ratios.
struct PairedMedians {
  double baseline, measured, ratio;
};
PairedMedians medians(const std::vector<std::pair<double, double>>& pairs) {
  std::vector<double> baselines, measured, ratios;
  for (const auto& [baseline, other] : pairs) {
    baselines.push_back(baseline);
    measured.push_back(other);
    ratios.push_back(other / baseline);
  }
  return {median(baselines), median(measured), median(ratios)};
}

// `batchNormInputs`: tap only what the default analysis (no source data) reads.
void bench(const std::string& name, const std::string& path, std::vector<std::int64_t> shape,
           int reps, bool batchNormInputs) {
  auto loaded = scalpel::ScriptModel::load(path, onCuda ? "cuda" : "cpu");
  if (!loaded) {
    std::printf("%-10s %s\n", name.c_str(), loaded.error.c_str());
    return;
  }
  auto& module = loaded.model->module();
  module.eval();
  torch::NoGradGuard noGrad;
  std::vector<std::string> batchNorms;
  for (const auto& node : loaded.model->tree().nodes()) {
    if (node.hasBatchNormStats) batchNorms.push_back(node.name);
  }
  const scalpel::ActivationTaps allTaps(module);
  const scalpel::ActivationTaps bnTaps(module, {"(no module outputs)"}, batchNorms);
  const auto& taps = batchNormInputs ? bnTaps : allTaps;
  using Output = scalpel::ActivationTaps::Output;
  const scalpel::ActivationTaps allSums(module, {}, {}, Output::ChannelSums);
  const scalpel::ActivationTaps bnSums(module, {"(no module outputs)"}, batchNorms,
                                       Output::ChannelSums);
  const auto& sums = batchNormInputs ? bnSums : allSums;
  const auto tapCount = batchNormInputs ? taps.inputCalls().size() : taps.tappedCalls().size();
  const auto input = torch::randn(shape).to(loaded.model->device());
  const auto plain = [&] { module.forward({input}); };
  const auto tapped = [&] { taps.run(input); };
  const auto analysed = [&] {
    const auto result = sums.run(input);
    scalpel::momentsFromChannelSums(batchNormInputs ? result.inputs : result.taps);
  };
  for (int i = 0; i < 2; ++i) {  // warm-up: the profiling executor optimises after a few runs
    plain();
    tapped();
    analysed();
  }
  // Each ratio is the median of paired rounds' own ratios. The tapped activations and the analysis
  // are paired in separate loops: the copies a tapped run allocates and frees would slow whatever
  // ran next. Then the operators' share: their time in an analysis forward over the plain
  // forward (a median of 20 is steady enough: each ResNet-18 round takes half a second).
  const auto analysisRun = medians(pairedRounds(reps, plain, [&] { return seconds(analysed); }));
  const auto tappedRun = medians(pairedRounds(reps, plain, [&] { return seconds(tapped); }));
  std::string share = "-";
  if (!onCuda) {
    const double ratio = medians(pairedRounds(std::min(reps, 20), plain, [&] {
                           return scalpelOperatorSeconds(analysed);
                         })).ratio;
    share = std::to_string(static_cast<int>(100 * ratio + 0.5)) + "%";
  }
  std::printf("%-10s %-16s %3zu %-9s %9.1f ms %9.1f ms %6.2fx %9.1f ms %6.2fx %8.1f %7s\n",
              name.c_str(), scalpel::formatShape(shape).c_str(), tapCount,
              batchNormInputs ? "BN inputs" : "outputs", 1e3 * analysisRun.baseline,
              1e3 * tappedRun.measured, tappedRun.ratio, 1e3 * analysisRun.measured,
              analysisRun.ratio, 1.0 / analysisRun.measured, share.c_str());
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr,
                 "usage: bench_analysis FIXTURE_DIR DEMO_MODEL [--quick] [--device cpu|cuda] "
                 "[--scale K] [--reps N] [--threads N]\n");
    return 2;
  }
  scalpel::useAllCores();
  const std::string fixtures = argv[1];
  bool quick = false;
  int reps = 0;
  int threads = 0;         // all cores
  std::int64_t scale = 1;  // batches K times the usual (on a GPU: past the launch-bound sizes)
  for (int i = 3; i < argc; ++i) {
    const std::string flag = argv[i];
    if (flag == "--quick") quick = true;
    if (flag == "--scale" && i + 1 < argc) scale = std::max<std::int64_t>(1, std::atoll(argv[++i]));
    if (flag == "--device" && i + 1 < argc) onCuda = std::string(argv[++i]).rfind("cuda", 0) == 0;
    if (flag == "--reps" && i + 1 < argc) reps = std::max(1, std::atoi(argv[++i]));
    if (flag == "--threads" && i + 1 < argc) threads = std::max(1, std::atoi(argv[++i]));
  }
  if (threads > 0) at::set_num_threads(threads);
  if (reps == 0) reps = quick ? 2 : 15;
  std::printf("analysis forward vs plain forward, median of %d paired runs, on %s\n", reps,
              scalpel::describeDevice(onCuda ? "cuda:0" : "cpu").c_str());
  std::printf(
      "own ops: the time inside the analysis' operators per forward, over the plain forward (CPU "
      "only)\n");
  std::printf("%-10s %-16s %-13s %12s %12s %7s %12s %7s %8s %7s\n", "model", "batch", "taps",
              "plain", "taps", "ratio", "analysis", "ratio", "batch/s", "own ops");
  for (const bool batchNormInputs : {false, true}) {
    bench("demo", argv[2], {100 * scale, 1, 28, 28}, reps, batchNormInputs);
    bench("resnet18", fixtures + "/resnet18.pt", {(quick ? 1 : 8) * scale, 3, 224, 224}, reps,
          batchNormInputs);
  }
  return 0;
}
