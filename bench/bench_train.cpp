// Training step of Scalpel's trainer against the plain Python PyTorch loop (bench/train_loop.py)
// on the same TorchScript model, batch, optimiser (Adam) and threads, measured alternately in one
// run; and the step with only the last block trainable against all trainable. Prints ratios,
// asserts nothing.
//   bench_train MODEL --size C,H,W --batch B [--steps N] [--rounds R] [--device cpu|cuda]
//               [--precision fp32|bf16] [--channels-last 0|1] [--python PYTHON] [--label NAME]
// bf16 and channels-last apply to both sides (Python: torch.autocast and
// model.to(memory_format=torch.channels_last)).
//   bench_train MODEL ... --data-paths 1
// instead compares how batches reach the device (TrainOptions::dataPath), all layers training:
// samples/s with batches gathered on the training thread and copied blocking (the baseline),
// with the background producer (pinned memory, non-blocking copies), and resident on the device.
//   bench_train MODEL ... --runs "all;layer4,fc;fc" --epochs E --items N [--python-plan fc]
// instead times whole runs (the trainer's own reported seconds, the frozen part's cache included)
// of each plan (its trainable modules, comma-separated; the first is the baseline), over N random
// items for E epochs, and with --python-plan the same run in the plain Python loop, which
// recomputes the frozen part every step as the paper's code does.
//   bench_train MODEL ... --runs "layer3;layer3,fc" --epochs E --items N --shared 1
// instead runs the plans one after another in one process, as the plan search does: each
// computing its frozen part (the baseline) against sharing frozen outputs (TrainOptions::
// frozenOutputs), alternately.

#include <ATen/Parallel.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "model/model_inspection.h"
#include "train/trainer.h"
#include "util/threads.h"

namespace {

using Clock = std::chrono::steady_clock;

double median(std::vector<double> values) {
  if (values.empty()) return 0;
  std::sort(values.begin(), values.end());
  return values[values.size() / 2];
}

// "a;b;c" split at `separator`: {"a", "b", "c"}.
std::vector<std::string> splitOn(const std::string& text, char separator) {
  std::vector<std::string> parts;
  for (std::size_t start = 0; start <= text.size();) {
    const auto end = std::min(text.find(separator, start), text.size());
    parts.push_back(text.substr(start, end - start));
    start = end + 1;
  }
  return parts;
}

// Random images of the model's input size: a step costs the same whatever the pixels are.
scalpel::Dataset randomImages(const std::vector<std::int64_t>& shape, std::size_t items) {
  scalpel::Dataset data;
  data.name = "random";
  data.itemShape = shape;
  for (int c = 0; c < 10; ++c) data.classNames.push_back("class " + std::to_string(c));
  std::mt19937 random(1);
  std::uniform_real_distribution<float> pixel(0, 1);
  data.values.resize(items * data.itemSize());
  for (auto& v : data.values) v = pixel(random);
  for (std::size_t i = 0; i < items; ++i) data.labels.push_back(static_cast<int>(i % 10));
  return data;
}

// One whole run of Scalpel's trainer, sharing frozen outputs with other runs through `shared`.
scalpel::TrainResult scalpelTrain(const scalpel::LoadedModel& model, const std::string& plan,
                                  const scalpel::Dataset& train, const scalpel::Dataset& validation,
                                  std::size_t batch, const std::string& device, int epochs,
                                  std::shared_ptr<scalpel::FrozenOutputs> shared = nullptr) {
  scalpel::FreezePlan freeze;
  freeze.strategy = "bench";
  for (const auto& module : splitOn(plan, ','))
    freeze.trainable.push_back(module == "all" ? "" : module);
  scalpel::TrainOptions options;
  options.batchSize = batch;
  options.epochs = epochs;
  options.learningRate = 1e-4;
  options.device = device;
  options.frozenOutputs = std::move(shared);
  auto result = scalpel::trainModel(model, freeze, {&train, &validation, nullptr}, options);
  if (!result.ok) std::fprintf(stderr, "scalpel: %s\n", result.error.c_str());
  return result;
}

// One whole run: "seconds cacheSeconds" and what it did with the frozen part.
std::string scalpelRun(const std::string& modelPath, const std::string& plan,
                       const scalpel::Dataset& train, const scalpel::Dataset& validation,
                       std::size_t batch, const std::string& device, int epochs) {
  const auto result = scalpelTrain(scalpel::LoadedModel::open(modelPath), plan, train, validation,
                                   batch, device, epochs);
  return std::to_string(result.ok ? result.seconds : 0) + " " +
         std::to_string(result.cacheSeconds) + " " + result.frozenCache;
}

// Every plan of `plans` one after another, as the plan search runs them: "seconds runs-that-
// shared", the wall time of them all, each computing its own frozen outputs or (`share`) taking
// those an earlier run computed from the same weights (TrainOptions::frozenOutputs).
std::string scalpelSequence(const std::string& modelPath, const std::vector<std::string>& plans,
                            const scalpel::Dataset& train, const scalpel::Dataset& validation,
                            std::size_t batch, const std::string& device, int epochs, bool share) {
  const auto model = scalpel::LoadedModel::open(modelPath);
  const auto shared = share ? scalpel::makeFrozenOutputs() : nullptr;
  int sharing = 0;
  const auto began = Clock::now();
  for (const auto& plan : plans) {
    const auto result = scalpelTrain(model, plan, train, validation, batch, device, epochs, shared);
    sharing += result.frozenCache.find("earlier run") != std::string::npos;
  }
  return std::to_string(std::chrono::duration<double>(Clock::now() - began).count()) + " " +
         std::to_string(sharing);
}

// Median step time of Scalpel's trainer (ms), from the time between its step events.
double scalpelStep(const std::string& modelPath, const std::string& trainable,
                   const scalpel::Dataset& train, const scalpel::Dataset& validation,
                   std::size_t batch, const std::string& device, int warmup,
                   const std::string& precision, bool channelsLast, const std::string& dataPath) {
  scalpel::FreezePlan plan;
  plan.strategy = "bench";
  plan.trainable = {trainable == "all" ? "" : trainable};
  scalpel::TrainOptions options;
  options.batchSize = batch;
  options.epochs = 1;
  options.learningRate = 1e-4;
  options.device = device;
  options.precision = precision;
  options.channelsLast = channelsLast;
  options.dataPath = dataPath;
  const auto model = scalpel::LoadedModel::open(modelPath);
  std::vector<double> times;
  auto last = Clock::now();
  int seen = 0;
  const auto result = scalpel::trainModel(
      model, plan, {&train, &validation, nullptr}, options, [&](const scalpel::TrainEvent& e) {
        if (e.kind != scalpel::TrainEvent::Kind::Step) return;
        const auto now = Clock::now();
        if (seen++ >= warmup)
          times.push_back(std::chrono::duration<double, std::milli>(now - last).count());
        last = now;
      });
  if (!result.ok) std::fprintf(stderr, "scalpel: %s\n", result.error.c_str());
  return median(times);
}

// Runs a command and returns the first line it prints.
std::string firstLine(const std::string& command) {
  std::unique_ptr<FILE, int (*)(FILE*)> pipe(popen(command.c_str(), "r"), pclose);
  char line[512] = {};
  if (!pipe || !std::fgets(line, sizeof line, pipe.get())) return "";
  std::string text = line;
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.pop_back();
  return text;
}

std::vector<std::int64_t> parseSize(const std::string& size) {
  std::vector<std::int64_t> shape;
  for (const auto& extent : splitOn(size, ',')) shape.push_back(std::stoll(extent));
  return shape;
}

// Whole runs of each plan in `runs` (';'-separated; the first is the baseline), alternating, each
// in a process of its own; the median of `rounds` per plan, and the Python loop's with
// `pythonPlan`. Prints one line per plan with its ratio to the baseline. With `sequence`, instead
// all plans one after another in one process, alternately each computing its frozen part and
// sharing frozen outputs.
int wholeRuns(const std::string& program, const std::string& model, const std::string& label,
              const std::string& size, std::size_t batch, std::size_t items, int epochs, int rounds,
              const std::string& device, const std::string& python, const std::string& runs,
              const std::string& pythonPlan, bool sequence) {
  scalpel::useAllCores();
  const int threads = at::get_num_threads();
  const auto plans = splitOn(runs, ';');
  const std::string common = " --size " + size + " --batch " + std::to_string(batch) + " --items " +
                             std::to_string(items) + " --epochs " + std::to_string(epochs) +
                             " --device " + device + " --threads " + std::to_string(threads);
  std::vector<std::vector<double>> seconds(plans.size()), caching(plans.size());
  std::vector<std::string> notes(plans.size());
  std::vector<double> pythonSeconds;
  for (int round = 0; round < rounds && !sequence; ++round) {
    for (std::size_t p = 0; p < plans.size(); ++p) {
      const std::string line =
          firstLine(program + " " + model + common + " --run '" + plans[p] + "' 2>/dev/null");
      double total = 0, cache = 0;
      int used = 0;
      std::sscanf(line.c_str(), "%lf %lf %n", &total, &cache, &used);
      seconds[p].push_back(total);
      caching[p].push_back(cache);
      notes[p] = line.substr(static_cast<std::size_t>(used));
    }
    if (!pythonPlan.empty()) {
      const std::string line =
          firstLine(python + " " + SCALPEL_BENCH_DIR "/train_loop.py " + model + " --size " + size +
                    " --batch " + std::to_string(batch) + " --items " + std::to_string(items) +
                    " --epochs " + std::to_string(epochs) + " --trainable " + pythonPlan +
                    " --threads " + std::to_string(threads) + " --device " + device);
      double runSeconds = 0;
      std::sscanf(line.c_str(), "{\"run_s\": %lf", &runSeconds);
      pythonSeconds.push_back(runSeconds);
    }
  }
  if (sequence) {  // the plans one after another, in one process: each its own against sharing
    std::vector<double> own, shared;
    int sharing = 0;
    for (int round = 0; round < rounds; ++round) {
      for (const bool share : {false, true}) {
        const std::string line = firstLine(program + " " + model + common + " --sequence '" + runs +
                                           "' --share " + (share ? "1" : "0") + " 2>/dev/null");
        double total = 0;
        std::sscanf(line.c_str(), "%lf %d", &total, &sharing);
        (share ? shared : own).push_back(total);
      }
    }
    const double a = median(own), b = median(shared);
    std::printf(
        "%s %s, %zu items x %d epochs, batch %zu, %d threads, %zu plans one after another "
        "(median of %d):\n  each computing its frozen part %8.3f s\n  sharing frozen outputs "
        "        %8.3f s  %.2fx faster (%d of %zu runs took an earlier run's)\n",
        label.c_str(), device.c_str(), items, epochs, batch, threads, plans.size(), rounds, a, b,
        b > 0 ? a / b : 0, sharing, plans.size());
    return 0;
  }
  const double base = median(seconds[0]);
  std::printf("%s %s, %zu items x %d epochs, batch %zu, %d threads, whole runs (median of %d):\n",
              label.c_str(), device.c_str(), items, epochs, batch, threads, rounds);
  for (std::size_t p = 0; p < plans.size(); ++p) {
    const double s = median(seconds[p]);
    std::printf("  %-14s %8.3f s  %6.2fx faster than %s  (cache %.3f s; %s)\n", plans[p].c_str(), s,
                s > 0 ? base / s : 0, plans[0].c_str(), median(caching[p]), notes[p].c_str());
  }
  if (!pythonPlan.empty()) {
    const double py = median(pythonSeconds);
    double ours = 0;
    for (std::size_t p = 0; p < plans.size(); ++p)
      ours = plans[p] == pythonPlan ? median(seconds[p]) : ours;
    std::printf(
        "  python %-7s %8.3f s  scalpel %.2fx faster (the paper's loop: the frozen part every "
        "step)\n",
        pythonPlan.c_str(), py, ours > 0 ? py / ours : 0);
  }
  return 0;
}

}  // namespace

// Each measurement runs in a process of its own (this program with --worker, or Python): an idle
// parent holding torch's thread pools would steal cycles from the measured side.
int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr,
                 "usage: bench_train MODEL --size C,H,W --batch B [--steps N] [--rounds R] "
                 "[--device D] [--python P] [--label NAME]\n");
    return 2;
  }
  std::string model = argv[1], size = "1,28,28", device = "cpu", python = SCALPEL_PYTHON, label,
              worker, precision = "fp32", dataPath = "auto";
  bool channelsLast = false, dataPaths = false;
  std::size_t batch = 64, items = 0;
  int steps = 20, rounds = 3, threads = 0, epochs = 0;
  std::string runs, runPlan, pythonPlan, sequencePlans;
  bool share = false, sequence = false;
  for (int i = 2; i + 1 < argc; i += 2) {
    const std::string flag = argv[i], value = argv[i + 1];
    if (flag == "--size")
      size = value;
    else if (flag == "--batch")
      batch = std::stoul(value);
    else if (flag == "--steps")
      steps = std::stoi(value);
    else if (flag == "--rounds")
      rounds = std::stoi(value);
    else if (flag == "--device")
      device = value;
    else if (flag == "--python")
      python = value;
    else if (flag == "--label")
      label = value;
    else if (flag == "--worker")
      worker = value;  // "last-block", or what to train: "all" / a block
    else if (flag == "--threads")
      threads = std::stoi(value);
    else if (flag == "--precision")
      precision = value;
    else if (flag == "--channels-last")
      channelsLast = value == "1";
    else if (flag == "--data-path")
      dataPath = value;
    else if (flag == "--data-paths")
      dataPaths = value == "1";
    else if (flag == "--runs")
      runs = value;
    else if (flag == "--run")
      runPlan = value;  // a worker: one whole run of this plan
    else if (flag == "--sequence")
      sequencePlans = value;  // a worker: these plans one after another
    else if (flag == "--share")
      share = value == "1";
    else if (flag == "--shared")
      sequence = value == "1";
    else if (flag == "--python-plan")
      pythonPlan = value;
    else if (flag == "--epochs")
      epochs = std::stoi(value);
    else if (flag == "--items")
      items = std::stoul(value);
  }
  const int warmup = 3;
  if (!runPlan.empty()) {
    if (threads) at::set_num_threads(threads);
    const auto shape = parseSize(size);
    std::printf("%s\n", scalpelRun(model, runPlan, randomImages(shape, items),
                                   randomImages(shape, batch), batch, device, epochs)
                            .c_str());
    return 0;
  }
  if (!sequencePlans.empty()) {
    if (threads) at::set_num_threads(threads);
    const auto shape = parseSize(size);
    std::printf("%s\n",
                scalpelSequence(model, splitOn(sequencePlans, ';'), randomImages(shape, items),
                                randomImages(shape, batch), batch, device, epochs, share)
                    .c_str());
    return 0;
  }
  if (!worker.empty()) {
    if (threads) at::set_num_threads(threads);
    if (worker == "last-block") {
      const auto inspection = scalpel::inspectModel(model, {});
      std::string lastBlock;
      for (const auto& block : inspection.tree.blocks()) {
        if (block.totalParameters > 0) lastBlock = block.name;
      }
      std::printf("%s %d\n", inspection.ok ? lastBlock.c_str() : "?", at::get_num_threads());
      return inspection.ok ? 0 : 1;
    }
    const auto shape = parseSize(size);
    const auto train = randomImages(shape, batch * static_cast<std::size_t>(steps + warmup));
    const auto validation = randomImages(shape, batch);
    std::printf("%f\n", scalpelStep(model, worker, train, validation, batch, device, warmup,
                                    precision, channelsLast, dataPath));
    return 0;
  }
  if (label.empty()) label = model.substr(model.find_last_of('/') + 1);
  if (precision != "fp32" || channelsLast)
    label +=
        std::string(" ") + (precision == "fp32" ? "" : precision) + (channelsLast ? "+NHWC" : "");
  scalpel::useAllCores();
  threads = at::get_num_threads();
  const std::string self = std::string(argv[0]) + " " + model + " --size " + size + " --batch " +
                           std::to_string(batch) + " --steps " + std::to_string(steps) +
                           " --device " + device + " --threads " + std::to_string(threads) +
                           " --precision " + precision + " --channels-last " +
                           (channelsLast ? "1" : "0") + " --worker ";
  if (!runs.empty())
    return wholeRuns(argv[0], model, label, size, batch, items, epochs, rounds, device, python,
                     runs, pythonPlan, sequence);
  if (dataPaths) {
    const std::vector<std::string> paths{"synchronous", "streamed", "auto"};
    std::vector<std::vector<double>> times(paths.size());
    for (int round = 0; round < rounds; ++round) {
      for (std::size_t p = 0; p < paths.size(); ++p) {
        times[p].push_back(
            std::atof(firstLine(self + "all --data-path " + paths[p] + " 2>/dev/null").c_str()));
      }
    }
    const double base = median(times[0]);
    std::printf("%-12s %-5s batch %3zu %-9s data path, samples/s:", label.c_str(), device.c_str(),
                batch, size.c_str());
    for (std::size_t p = 0; p < paths.size(); ++p) {
      const double ms = median(times[p]);
      std::printf(" %s %.0f (%.2fx)", p == 2 ? "resident(auto)" : paths[p].c_str(),
                  ms > 0 ? 1000.0 * batch / ms : 0, ms > 0 ? base / ms : 0);
    }
    std::printf("  [baseline: synchronous, %d threads]\n", threads);
    return 0;
  }
  char lastBlock[128] = {};
  std::sscanf(firstLine(self + "last-block 2>/dev/null").c_str(), "%127s", lastBlock);
  if (!*lastBlock || std::string(lastBlock) == "?") {
    std::fprintf(stderr, "cannot open %s\n", model.c_str());
    return 1;
  }
  const std::string script = SCALPEL_BENCH_DIR "/train_loop.py";
  const auto pythonRun = [&](const std::string& trainable, std::string& version) {
    const std::string line =
        firstLine(python + " " + script + " " + model + " --size " + size + " --batch " +
                  std::to_string(batch) + " --steps " + std::to_string(steps) + " --trainable " +
                  trainable + " --threads " + std::to_string(threads) + " --device " + device +
                  " --precision " + precision + (channelsLast ? " --channels-last" : ""));
    double ms = 0;
    char text[64] = {};
    std::sscanf(line.c_str(), "{\"step_ms\": %lf, \"torch\": \"%63[^\"]\"", &ms, text);
    version = text;
    return ms;
  };
  const auto scalpelRun = [&](const std::string& trainable) {
    return std::atof(firstLine(self + trainable + " 2>/dev/null").c_str());
  };

  std::vector<double> scalpelAll, pythonAll, scalpelLast, pythonLast;
  std::string torchVersion;
  for (int round = 0; round < rounds; ++round) {  // alternating, so drifts hit both sides
    pythonAll.push_back(pythonRun("all", torchVersion));
    scalpelAll.push_back(scalpelRun("all"));
    pythonLast.push_back(pythonRun(lastBlock, torchVersion));
    scalpelLast.push_back(scalpelRun(lastBlock));
  }
  const double sa = median(scalpelAll), pa = median(pythonAll), sl = median(scalpelLast),
               pl = median(pythonLast);
  std::printf(
      "%-12s %-5s batch %3zu %-9s all: scalpel %8.2f ms  python %8.2f ms  ratio %.2fx | only %s: "
      "scalpel %7.2f ms  python %7.2f ms  ratio %.2fx | freeze speed-up %.2fx (python %.2fx)  "
      "[python torch %s, %d threads]\n",
      label.c_str(), device.c_str(), batch, size.c_str(), sa, pa, pa > 0 ? sa / pa : 0, lastBlock,
      sl, pl, pl > 0 ? sl / pl : 0, sl > 0 ? sa / sl : 0, pl > 0 ? pa / pl : 0,
      torchVersion.c_str(), threads);
  return 0;
}
