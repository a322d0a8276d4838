// What the analyst waits for after opening the demo, on the window's own core calls: the layer
// diagram (inspect), the noisy target loaded, the first heatmap column (the analysis' first
// snapshot), the whole analysis (20 batches, as the window runs it) and the advisor's plan.
// Baseline in the same run: loading the model and one plain forward pass over the same items.
// Prints seconds and ratios (median of the rounds), asserts nothing.
//   bench_end_to_end DEMO_MODEL [--device cpu|cuda] [--rounds R]

#include <torch/script.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "analysis/advisor.h"
#include "analysis/shift_analysis.h"
#include "data/data_request.h"
#include "data/dataset.h"
#include "model/loaded_model.h"
#include "util/device_info.h"
#include "util/threads.h"

namespace {

using Clock = std::chrono::steady_clock;

double since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

double median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  return values.empty() ? 0 : values[values.size() / 2];
}

struct Timeline {
  double diagram = 0, data = 0, firstColumn = 0, analysis = 0, plan = 0, baseline = 0;
};

Timeline once(const std::string& modelPath, const std::string& device, std::size_t batches,
              std::string& planText) {
  Timeline t;
  const auto start = Clock::now();
  const auto model = scalpel::LoadedModel::open(modelPath, {{}, device});
  const auto& inspection = model.inspection();
  t.diagram = since(start);
  scalpel::Dataset target;
  scalpel::DataSummary summary;
  scalpel::loadRequestedData({"fashion-mnist", "test", "gaussian-noise", 5, 0, {}, {}}, target,
                             summary);
  t.data = since(start);
  if (!inspection.ok || !summary.ok) {
    std::fprintf(stderr, "%s\n", inspection.ok ? summary.error.c_str() : inspection.error.c_str());
    std::exit(1);
  }
  scalpel::AnalysisOptions options;
  options.maxBatches = batches;
  options.device = device;
  const auto analysis =
      scalpel::analyzeShift(model, target, nullptr, options, [&](const scalpel::ShiftSnapshot&) {
        if (t.firstColumn == 0) t.firstColumn = since(start);
      });
  t.analysis = since(start);
  const auto diagnosis = scalpel::diagnose(analysis, inspection.tree);
  scalpel::FreezePlan plan;
  scalpel::planFreeze("auto", inspection.tree, diagnosis, nullptr, plan);
  t.plan = since(start);
  planText = plan.explanation;

  // Baseline: load the model and run it once over the analysed items, nothing else.
  const auto baselineStart = Clock::now();
  const torch::Device on(device == "cpu" ? "cpu" : "cuda:0");
  auto plain = torch::jit::load(modelPath, on);
  plain.eval();
  torch::NoGradGuard noGrad;
  const auto items = std::min(target.size(), batches * options.batchSize);
  std::vector<std::int64_t> shape{static_cast<std::int64_t>(items)};
  shape.insert(shape.end(), target.itemShape.begin(), target.itemShape.end());
  const auto inputs = torch::from_blob(target.values.data(), shape, torch::kFloat32).to(on);
  for (std::int64_t first = 0; first < shape[0];
       first += static_cast<std::int64_t>(options.batchSize)) {
    plain.forward({inputs.narrow(
        0, first,
        std::min<std::int64_t>(static_cast<std::int64_t>(options.batchSize), shape[0] - first))});
  }
  if (on.is_cuda()) inputs.sum().item<double>();  // wait for the device
  t.baseline = since(baselineStart);
  return t;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: bench_end_to_end DEMO_MODEL [--device cpu|cuda] [--rounds R]\n");
    return 2;
  }
  scalpel::useAllCores();
  std::string device = "cpu";
  int rounds = 3;
  for (int i = 2; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    if (flag == "--device")
      device = argv[i + 1];
    else if (flag == "--rounds")
      rounds = std::max(1, std::atoi(argv[i + 1]));
  }
  const std::size_t batches = 20;  // the window analyses 20 batches of 100
  std::vector<double> diagram, data, first, analysis, plan, baseline;
  std::string planText;
  for (int round = 0; round < rounds; ++round) {
    const auto t = once(argv[1], device, batches, planText);
    diagram.push_back(t.diagram);
    data.push_back(t.data);
    first.push_back(t.firstColumn);
    analysis.push_back(t.analysis);
    plan.push_back(t.plan);
    baseline.push_back(t.baseline);
  }
  const double base = median(baseline);
  std::printf(
      "opening the demo on %s, median of %d rounds (seconds from the request; ratio to loading the "
      "model and one plain forward over the same %zu items, %.3f s):\n",
      scalpel::describeDevice(device == "cpu" ? "cpu" : "cuda:0").c_str(), rounds, batches * 100,
      base);
  const auto row = [&](const char* what, double seconds) {
    std::printf("  %-34s %7.3f s  %6.1fx\n", what, seconds, base > 0 ? seconds / base : 0);
  };
  row("layer diagram (inspect)", median(diagram));
  row("target data loaded", median(data));
  row("first heatmap column", median(first));
  row("analysis complete (20 batches)", median(analysis));
  row("advisor's plan", median(plan));
  std::printf("  plan: %s\n", planText.c_str());
  return 0;
}
