#include "workflow/sweep.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <iomanip>
#include <limits>
#include <map>
#include <mutex>
#include <set>
#include <sstream>
#include <thread>

#include "analysis/shift_analysis.h"
#include "data/data_source.h"
#include "data/shifts.h"
#include "files/atomic_file.h"
#include "io/png_plot.h"
#include "model/loaded_model.h"
#include "scalpel/version.h"
#include "train/pretrain.h"
#include "util/device_info.h"
#include "util/fingerprint.h"
#include "util/logging.h"
#include "util/threads.h"
#include "workflow/fine_tuning.h"

namespace fs = std::filesystem;

namespace scalpel {

namespace {

using Clock = std::chrono::steady_clock;
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

double secondsSince(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

std::string fixed(double value, int digits) {
  if (!std::isfinite(value)) return "n/a";
  std::ostringstream text;
  text << std::fixed << std::setprecision(digits) << value;
  return text.str();
}

std::string join(const std::vector<std::string>& parts, const std::string& separator) {
  std::string out;
  for (const auto& part : parts) out += (out.empty() ? "" : separator) + part;
  return out;
}

// METHOD.md's reference run (Python PyTorch 1.13, one fixed split): target test accuracy in %.
// Its first block is stem+layer1; its shifts are defined a little differently (see shiftNote).
struct ReferenceRow {
  const char* task;
  const char* shift;  // as the reference defines it
  double none, firstBlock, layer2, layer3, fc, all, autoRgn;
};
constexpr ReferenceRow kReference[] = {
    {"gaussian-noise", "gaussian noise sigma = 0.5", 10.2, 67.7, 64.2, 60.2, 48.2, 64.5, 70.2},
    {"contrast", "contrast x0.2", 12.4, 83.2, 78.4, 75.0, 60.6, 79.8, 81.2},
    {"subpopulation", "the same super-classes, source = first member, target = second", 53.1, 81.6,
     84.9, 83.6, 81.6, 82.3, 84.0},
    {"label-permutation", "y -> (y + 3) mod 10", 0.6, 65.0, 74.3, 84.7, 90.4, 71.7, 75.4},
};

const ReferenceRow* referenceRow(const std::string& task) {
  for (const auto& row : kReference) {
    if (task == row.task) return &row;
  }
  return nullptr;
}

// The reference value (in %) of a strategy on a task, NaN where the reference has none.
double referenceValue(const std::string& task, const std::string& strategy) {
  const ReferenceRow* row = referenceRow(task);
  if (!row) return kNaN;
  if (strategy == "none") return row->none;
  if (strategy == "stem+layer1") return row->firstBlock;
  if (strategy == "block:layer2") return row->layer2;
  if (strategy == "block:layer3") return row->layer3;
  if (strategy == "block:fc" || strategy == "last") return row->fc;
  if (strategy == "all") return row->all;
  if (strategy == "auto-rgn") return row->autoRgn;
  return kNaN;
}

// How Scalpel's version of each task differs from the reference's (the parameters of
// shifts.cpp's severities 1-5).
std::string shiftNote(const std::string& task, int severity) {
  const int s = std::clamp(severity, 1, 5) - 1;
  const std::string level = "Scalpel's severity " + std::to_string(severity);
  if (task == "gaussian-noise") {
    constexpr double sigma[] = {0.08, 0.12, 0.18, 0.26, 0.38};
    return level + " adds noise of sigma = " + fixed(sigma[s], 2) + " (the reference: 0.5)";
  }
  if (task == "contrast") {
    constexpr double factor[] = {0.4, 0.3, 0.2, 0.1, 0.05};
    return level + " scales contrast by " + fixed(factor[s], 2) +
           (s == 2 ? ", as the reference does" : " (the reference: 0.2)");
  }
  if (task == "label-permutation") {
    return "Scalpel uses a seeded derangement (no class keeps its label) instead of (y + 3) mod "
           "10: the same kind of shift";
  }
  if (task == "subpopulation") {
    return "the same groups; the source model is pretrained here on the source sub-classes of the "
           "training split";
  }
  return {};
}

bool isSingleBlock(const std::string& strategy) { return strategy.rfind("block:", 0) == 0; }

struct TaskSetup {
  SweepTask info;
  Dataset all;        // the whole shifted target, before the split
  LoadedModel model;  // the source model it starts from
  Dataset source;     // clean data in the model's classes: what tuning may forget
};

struct PlanSlot {
  PlanChoice choice;
  double seconds = 0;
};

// A unique plan of one (task, seed): several strategies can share it (auto = block:stem ...).
struct UniquePlan {
  std::string key;  // planKey()
  FreezePlan plan;
  std::vector<std::string> strategies;
  std::vector<std::size_t> runs;  // indices into the result's runs, one per learning rate
};

std::string planKey(const FreezePlan& plan) {
  // A plan that says its BatchNorm mode trains in that mode alone.
  const std::string mode =
      plan.batchNorm.empty() && !plan.recalibrate ? "" : "|" + batchNormModeName(plan, true);
  if (rescalesByRgn(plan)) return "auto-rgn" + mode;  // scales recomputed every epoch
  std::vector<std::string> parts = plan.trainable;
  std::sort(parts.begin(), parts.end());
  std::string key = join(parts, ",") + mode;
  for (const auto& [module, scale] : plan.learningRateScale) {
    if (scale != 1.0) key += ";" + module + "=" + fixed(scale, 6);
  }
  return key;
}

std::string describePlan(const FreezePlan& plan, const LayerTree& tree) {
  if (rescalesByRgn(plan)) return "every layer, learning rates scaled by RGN";
  if (plan.trainable.empty())
    return plan.recalibrate ? "BatchNorm recalibration only" : "nothing (no tuning)";
  // Whole blocks by their names, else the modules.
  std::vector<std::string> names;
  std::set<std::string> covered;
  for (const auto& block : tree.blocks()) {
    std::vector<std::string> members;
    for (int member : block.members) {
      if (tree.node(member).totalParameters > 0) members.push_back(tree.node(member).name);
    }
    if (members.empty()) continue;
    if (std::all_of(members.begin(), members.end(), [&](const std::string& m) {
          return std::find(plan.trainable.begin(), plan.trainable.end(), m) != plan.trainable.end();
        })) {
      names.push_back(block.name);
      covered.insert(members.begin(), members.end());
    }
  }
  for (const auto& module : plan.trainable) {
    if (!covered.count(module)) names.push_back(module);
  }
  const bool everyBlock =
      std::all_of(tree.blocks().begin(), tree.blocks().end(), [&](const auto& block) {
        return block.totalParameters == 0 ||
               std::find(names.begin(), names.end(), block.name) != names.end();
      });
  return everyBlock && names.size() > 1 ? "every block" : join(names, "+");
}

// Runs jobs on `parallel` threads, each with `threads` torch threads; jobs must not throw.
void runJobs(const std::vector<std::function<void()>>& jobs, int parallel, int threads) {
  std::atomic<std::size_t> next{0};
  const auto worker = [&] {
    useTorchThreads(threads);
    for (std::size_t i = next++; i < jobs.size(); i = next++) jobs[i]();
  };
  if (parallel <= 1 || jobs.size() <= 1) {
    worker();
    return;
  }
  std::vector<std::thread> pool;
  for (int t = 0; t < parallel && static_cast<std::size_t>(t) < jobs.size(); ++t) {
    pool.emplace_back(worker);
  }
  for (auto& thread : pool) thread.join();
}

std::pair<double, double> meanAndDeviation(const std::vector<double>& values) {
  std::vector<double> finite;
  for (double v : values) {
    if (std::isfinite(v)) finite.push_back(v);
  }
  if (finite.size() != values.size() || finite.empty()) return {kNaN, kNaN};
  double mean = 0;
  for (double v : finite) mean += v;
  mean /= static_cast<double>(finite.size());
  double squares = 0;
  for (double v : finite) squares += (v - mean) * (v - mean);
  const double deviation =
      finite.size() > 1 ? std::sqrt(squares / static_cast<double>(finite.size() - 1)) : 0.0;
  return {mean, deviation};
}

// "70.1 ± 0.4" in %, or "70.1" for one seed.
std::string cellText(const SweepCell& cell, bool markdown = false) {
  if (!std::isfinite(cell.mean)) return "n/a";
  std::string text = fixed(100 * cell.mean, 1);
  if (cell.test.size() > 1) text += (markdown ? " ± " : " +- ") + fixed(100 * cell.stdev, 1);
  return text;
}

// The single block with the highest mean, or null.
const SweepCell* bestSingleBlock(const SweepTask& task) {
  const SweepCell* best = nullptr;
  for (const auto& cell : task.cells) {
    if (isSingleBlock(cell.strategy) && std::isfinite(cell.mean) &&
        (!best || cell.mean > best->mean)) {
      best = &cell;
    }
  }
  return best;
}

// "stem (3/3 seeds)" or "stem (2/3), layer1 (1/3)".
std::string tally(const std::vector<std::string>& picks) {
  std::vector<std::pair<std::string, int>> counts;
  for (const auto& pick : picks) {
    auto it =
        std::find_if(counts.begin(), counts.end(), [&](const auto& c) { return c.first == pick; });
    if (it == counts.end()) {
      counts.emplace_back(pick, 1);
    } else {
      ++it->second;
    }
  }
  std::vector<std::string> parts;
  parts.reserve(counts.size());
  for (const auto& [name, count] : counts) {
    parts.push_back(name + " (" + std::to_string(count) + "/" + std::to_string(picks.size()) +
                    (picks.size() > 1 ? " seeds)" : " seed)"));
  }
  return join(parts, ", ");
}

// CSV leaves missing numbers empty.
std::string csvNumber(double value, int digits) {
  return std::isfinite(value) ? fixed(value, digits) : "";
}

std::string csvField(const std::string& text) {
  if (text.find_first_of(",\"\n") == std::string::npos) return text;
  std::string out = "\"";
  for (char c : text) out += c == '"' ? std::string("\"\"") : std::string(1, c);
  return out + "\"";
}

}  // namespace

const std::vector<std::string>& sweepScenarios() {
  static const std::vector<std::string> names{"fmnist-paper"};
  return names;
}

SweepOptions quickSweepOptions(SweepOptions options) {
  options.seeds = 1;
  // 1e-2: at 1e-3, two epochs barely move the head (the output-level task stays near chance).
  options.learningRates = {1e-2};
  options.epochs = 2;
  options.probeEpochs = 1;
  options.sourceEpochs = 1;
  options.skipMergedFirstBlock = true;
  options.quick = true;
  return options;
}

const SweepCell* SweepTask::cell(const std::string& strategy) const {
  for (const auto& each : cells) {
    if (each.strategy == strategy) return &each;
  }
  return nullptr;
}

std::string sweepStrategyLabel(const std::string& strategy) {
  return isSingleBlock(strategy) ? strategy.substr(6) : strategy;
}

namespace {

// One sweep, step by step: the tasks and their source models, the strategies, every strategy's
// plan (phase 1), one training run per unique plan and learning rate (phase 2), and the cells.
// Each model is loaded once and every run trains a copy of it.
class SweepRunner {
 public:
  SweepRunner(const SweepOptions& options, const std::function<void(const std::string&)>& status)
      : m_options(options), m_status(status) {
    m_result.options = options;
  }

  SweepResult run() {
    const auto start = Clock::now();
    try {
      if (setUp() && loadTasks()) {
        chooseStrategies();
        if (splitTasks()) {
          choosePlans();
          trainUniquePlans();
          tabulate();
          m_result.ok = true;
        }
      }
    } catch (const std::exception& error) {
      m_result.error = std::string("the sweep failed: ") + error.what();
    }
    m_result.seconds = secondsSince(start);
    return std::move(m_result);
  }

 private:
  struct Job {
    std::size_t task;
    int seed;
    std::size_t plan;
    double lr;
    std::string batchNorm;  // "eval" or "train": the mode of a plan that does not say its own
  };

  void say(const std::string& text) {
    std::lock_guard<std::mutex> lock(m_statusMutex);
    logger("train")->info("{}", text);
    if (m_status) m_status(text);
  }

  bool failWith(const std::string& error) {
    m_result.error = error;
    return false;
  }

  // Checks the options, picks the device and how many runs go at a time, opens the model.
  bool setUp() {
    const auto& o = m_options;
    if (std::find(sweepScenarios().begin(), sweepScenarios().end(), o.scenario) ==
        sweepScenarios().end()) {
      return failWith("unknown scenario '" + o.scenario +
                      "' — choose one of: " + join(sweepScenarios(), ", "));
    }
    if (o.seeds < 1 || o.learningRates.empty() || o.epochs < 1 || o.parallel < 0) {
      return failWith(
          "the sweep needs at least one seed, one learning rate, one epoch and one run at a time");
    }
    m_device = o.device == "auto" ? automaticDevice() : o.device;
    m_result.options.device = m_device;
    const bool cuda = m_device.rfind("cuda", 0) == 0;
    const int cores = std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
    m_parallel = o.parallel > 0 ? o.parallel : cuda ? 1 : cores;
    m_result.options.parallel = m_parallel;
    m_result.threadsPerRun = std::max(1, cores / m_parallel);
    m_result.device = cuda ? describeDevice(m_device) : "cpu (" + std::to_string(cores) + " cores)";
    useTorchThreads(m_result.threadsPerRun);
    m_model = LoadedModel::open(o.modelPath);
    if (!m_model.ok()) return failWith(m_model.error());
    return true;
  }

  // The unmodified model's accuracy on `data` (NaN where its outputs do not fit).
  double cleanAccuracy(const LoadedModel& model, const Dataset& data) const {
    AnalysisOptions check;
    check.device = m_device;
    const auto clean = analyzeShift(model, data, nullptr, check);
    return clean.ok && clean.output.measured ? clean.output.accuracy : kNaN;
  }

  TaskSetup task(const std::string& name, const std::string& level, const std::string& description,
                 Dataset data, const LoadedModel& model) const {
    TaskSetup setup;
    setup.info.name = name;
    setup.info.level = level;
    setup.info.description = description;
    setup.all = std::move(data);
    setup.model = model;
    return setup;
  }

  // The target data: the Fashion-MNIST test split under each task's shift.
  bool loadTasks() {
    const auto& o = m_options;
    say("loading Fashion-MNIST …");
    auto testLoad = openDataSource("fashion-mnist", "test");
    if (!testLoad) return failWith(testLoad.error);
    const Dataset test = std::move(*testLoad.dataset);
    m_result.modelCleanAccuracy =
        cleanAccuracy(m_model, test);  // to compare with the reference's model
    say(o.modelPath + ": " + fixed(100 * m_result.modelCleanAccuracy, 1) +
        "% on the clean Fashion-MNIST test split");
    const std::vector<std::string> names =
        o.tasks.empty() ? std::vector<std::string>{"gaussian-noise", "contrast", "subpopulation",
                                                   "label-permutation"}
                        : o.tasks;
    for (const auto& name : names) {
      const ShiftInfo* info = findShift(name);
      if (name != "subpopulation" && name != "label-permutation" &&
          !(info && info->level == ShiftLevel::Input)) {
        return failWith("unknown task '" + name +
                        "' — choose gaussian-noise, contrast, subpopulation, label-permutation or "
                        "another input-level shift (scalpel-cli shifts)");
      }
    }
    for (const auto& name : names) {
      if (name == "subpopulation" || name == "label-permutation") continue;
      auto shifted = applyShift(test, name, o.severity, o.dataSeed);
      if (!shifted) return failWith(shifted.error);
      m_tasks.push_back(
          task(name, "input-level",
               "Fashion-MNIST test split, " + name + " at severity " + std::to_string(o.severity),
               std::move(*shifted.dataset), m_model));
      m_tasks.back().source = test;  // the same images, clean: what tuning may forget
    }
    const auto wanted = [&](const std::string& name) {
      return std::find(names.begin(), names.end(), name) != names.end();
    };
    if (wanted("subpopulation") && !addSubpopulationTask(test)) return false;
    if (wanted("label-permutation")) {
      auto shifted = applyShift(test, "label-permutation", 5, o.dataSeed);
      if (!shifted) return failWith(shifted.error);
      const std::string how =
          shifted.notes.empty() ? std::string("labels permuted") : shifted.notes.front();
      m_tasks.push_back(task("label-permutation", "output-level",
                             "Fashion-MNIST test split, " + how, std::move(*shifted.dataset),
                             m_model));
      m_tasks.back().source = test;  // with their own labels
    }
    return true;
  }

  // The feature-level task: the second member of each super-class, for a source model (the
  // 5-output architecture) pretrained on the first members of the training split, cached by what
  // it depends on.
  bool addSubpopulationTask(const Dataset& test) {
    const auto& o = m_options;
    SuperClasses classes;
    if (auto problem = readSuperClasses(o.groupsFile, classes); !problem.empty())
      return failWith(problem);
    SubpopulationData testParts;
    if (auto problem = subpopulationShift(test, classes, testParts); !problem.empty())
      return failWith(problem);
    if (!fs::exists(o.sourceArchitecture)) {
      return failWith(o.sourceArchitecture +
                      " is missing — build it with `ninja demo_architecture_5` "
                      "(tests/fixtures/make_models.py --demo --demo-classes 5)");
    }
    const auto hexOf = [](const std::string& fingerprint) {
      const auto a = fingerprint.find(':'), b = fingerprint.rfind(':');
      return a == std::string::npos || b <= a
                 ? std::string("0")
                 : fingerprint.substr(a + 1, std::min<std::size_t>(8, b - a - 1));
    };
    const fs::path cacheDir = o.cacheDir.empty() ? fs::absolute(o.sourceArchitecture).parent_path()
                                                 : fs::path(o.cacheDir);
    std::error_code ignored;
    fs::create_directories(cacheDir, ignored);
    const fs::path cached = cacheDir / ("superclass-source-" + std::to_string(o.sourceEpochs) +
                                        "ep-" + hexOf(fileFingerprint(o.sourceArchitecture)) + "-" +
                                        hexOf(fileFingerprint(o.groupsFile)) + ".pt");
    m_result.sourceModel = cached.string();
    const auto sourceStart = Clock::now();
    m_result.sourceCached = fs::exists(cached);
    if (m_result.sourceCached) {
      say("using the cached super-class source model " + cached.string());
    } else if (!pretrainSourceModel(classes, testParts, cached)) {
      return false;
    }
    const LoadedModel source = LoadedModel::open(cached.string());
    if (!source.ok()) return failWith(source.error());
    if (m_result.sourceCached) m_result.sourceAccuracy = cleanAccuracy(source, testParts.source);
    m_result.sourceSeconds = secondsSince(sourceStart);
    say("super-class source model: " + fixed(100 * m_result.sourceAccuracy, 1) +
        "% on the source sub-classes of the test split");
    m_tasks.push_back(task("subpopulation", "feature-level",
                           "Fashion-MNIST test split, the second member of each super-class (" +
                               std::to_string(classes.groups.size()) +
                               " groups), labelled by group",
                           std::move(testParts.target), source));
    m_tasks.back().source = testParts.source;  // the sub-classes it was trained on
    return true;
  }

  bool pretrainSourceModel(const SuperClasses& classes, const SubpopulationData& testParts,
                           const fs::path& cached) {
    auto trainLoad = openDataSource("fashion-mnist", "train");
    if (!trainLoad) return failWith(trainLoad.error);
    SubpopulationData trainParts;
    if (auto problem = subpopulationShift(*trainLoad.dataset, classes, trainParts);
        !problem.empty())
      return failWith(problem);
    say("pretraining the super-class source model on " + std::to_string(trainParts.source.size()) +
        " source images for " + std::to_string(m_options.sourceEpochs) + " epochs …");
    PretrainOptions pretrain;
    pretrain.epochs = m_options.sourceEpochs;
    pretrain.device = m_device;
    const auto trained = pretrainModel(m_options.sourceArchitecture, cached.string(),
                                       trainParts.source, testParts.source, pretrain);
    if (!trained.ok)
      return failWith("pretraining the super-class source model failed: " + trained.error);
    m_result.sourceAccuracy = trained.testAccuracy;
    return true;
  }

  // The strategies: every block with parameters alone, the first two together (the reference's
  // first block), and the baselines and automatic ones; and the options every run shares.
  void chooseStrategies() {
    for (const auto& block : m_model.tree().blocks()) {
      if (block.totalParameters > 0) m_blocks.push_back(block.name);
    }
    auto& strategies = m_result.strategies;
    strategies.emplace_back("none");
    for (const auto& block : m_blocks) strategies.push_back("block:" + block);
    if (!m_options.skipMergedFirstBlock && m_blocks.size() >= 3)
      m_mergedName = m_blocks[0] + "+" + m_blocks[1];
    if (!m_mergedName.empty()) strategies.push_back(m_mergedName);
    for (const char* s : {"all", "last", "auto-rgn", "recalibrate", "diagnosis", "auto"})
      strategies.emplace_back(s);

    m_train.optimizer = "adam";
    m_train.weightDecay = 1e-4;
    m_train.batchSize = 64;
    m_train.epochs = m_options.epochs;
    m_train.batchNormEval = true;
    m_train.selectBy = "accuracy";
    m_train.device = m_device;
    m_train.cacheFrozenPart = m_options.cacheFrozenPart;
    const auto& rates = m_options.learningRates;
    m_train.learningRate = m_options.probeLearningRate > 0
                               ? m_options.probeLearningRate
                               : *std::max_element(rates.begin(), rates.end());
    m_result.options.probeLearningRate = m_train.learningRate;
  }

  // The paper's split of every task, one per seed.
  bool splitTasks() {
    m_splits.resize(m_tasks.size());
    for (std::size_t t = 0; t < m_tasks.size(); ++t) {
      for (int s = 0; s < m_options.seeds; ++s) {
        const TargetSplit split{m_options.trainPerClass, m_options.validationPerClass,
                                static_cast<std::uint64_t>(s)};
        m_splits[t].push_back(splitTarget(m_tasks[t].all, split, m_tasks[t].info.description));
        if (!m_splits[t].back().ok) return failWith(m_splits[t].back().error);
        attachSource(m_splits[t].back(), m_tasks[t].source);
      }
      auto& info = m_tasks[t].info;
      info.trainItems = m_splits[t][0].train.size();
      info.validationItems = m_splits[t][0].validation.size();
      info.testItems = m_splits[t][0].test.size();
      info.model = m_tasks[t].model.path();
    }
    return true;
  }

  TrainOptions seeded(int seed) const {
    TrainOptions options = m_train;
    options.seed = static_cast<std::uint64_t>(seed);
    return options;
  }

  // Phase 1: every strategy's plan (auto analyses the target, auto-rgn measures gradients, probe
  // trains each block briefly), the expensive ones first.
  void choosePlans() {
    const auto planStart = Clock::now();
    std::vector<std::string> planned;  // strategies that need choosePlan
    for (const auto& s : m_result.strategies) {
      if (s != "none" && s != m_mergedName) planned.push_back(s);
    }
    const auto cost = [](const std::string& s) {
      return s == "probe" || s == "auto" ? 0 : s == "diagnosis" || s == "auto-rgn" ? 1 : 2;
    };
    std::stable_sort(planned.begin(), planned.end(),
                     [&](const std::string& a, const std::string& b) { return cost(a) < cost(b); });
    m_plans.assign(m_tasks.size(), std::vector<std::map<std::string, PlanSlot>>(
                                       static_cast<std::size_t>(m_options.seeds)));
    for (auto& perSeed : m_plans) {
      for (auto& slots : perSeed) {
        for (const auto& s : planned) slots[s];  // created here, filled by the jobs
      }
    }
    std::vector<std::function<void()>> jobs;
    for (const auto& strategy : planned) {
      for (std::size_t t = 0; t < m_tasks.size(); ++t) {
        for (int s = 0; s < m_options.seeds; ++s)
          jobs.emplace_back([this, strategy, t, s] { choosePlan(strategy, t, s); });
      }
    }
    runJobs(jobs, m_parallel, m_result.threadsPerRun);
    m_result.planSeconds = secondsSince(planStart);
    if (!m_mergedName.empty()) mergeFirstBlocks();
  }

  void choosePlan(const std::string& strategy, std::size_t t, int s) {
    PlanSlot& slot = m_plans[t][static_cast<std::size_t>(s)].at(
        strategy);  // at(): no insertion, safe across threads
    const auto began = Clock::now();
    try {
      slot.choice =
          scalpel::choosePlan(m_tasks[t].model, strategy, m_splits[t][static_cast<std::size_t>(s)],
                              nullptr, seeded(s), m_options.probeEpochs);
    } catch (const std::exception& error) {
      slot.choice.ok = false;
      slot.choice.error = error.what();
    }
    slot.seconds = secondsSince(began);
    if (strategy == "probe" || strategy == "auto" || strategy == "auto-rgn" ||
        strategy == "diagnosis") {
      say(m_tasks[t].info.name + " seed " + std::to_string(s) + ": " + strategy + " → " +
          (slot.choice.ok ? describePlan(slot.choice.plan, m_model.tree())
                          : "failed: " + slot.choice.error) +
          " (" + fixed(slot.seconds, 1) + " s)");
    }
  }

  // The merged first block's plan: the first two blocks' plans together.
  void mergeFirstBlocks() {
    for (auto& perTask : m_plans) {
      for (auto& slots : perTask) {
        PlanSlot& slot = slots[m_mergedName];
        const PlanChoice& first = slots["block:" + m_blocks[0]].choice;
        const PlanChoice& second = slots["block:" + m_blocks[1]].choice;
        slot.choice.ok = first.ok && second.ok;
        slot.choice.error = first.ok ? second.error : first.error;
        slot.choice.plan.strategy = m_mergedName;
        slot.choice.plan.trainable = first.plan.trainable;
        slot.choice.plan.trainable.insert(slot.choice.plan.trainable.end(),
                                          second.plan.trainable.begin(),
                                          second.plan.trainable.end());
        slot.choice.plan.explanation =
            "Train the first two blocks together (the reference run's first block).";
      }
    }
  }

  // Several strategies can share a plan (auto = block:stem ...): each unique one trains once per
  // learning rate. Also keeps the advisor's diagnosis and the probe's scores per seed.
  void collectUniquePlans() {
    m_unique.assign(m_tasks.size(), std::vector<std::vector<UniquePlan>>(
                                        static_cast<std::size_t>(m_options.seeds)));
    for (std::size_t t = 0; t < m_tasks.size(); ++t) {
      SweepTask& info = m_tasks[t].info;
      for (int s = 0; s < m_options.seeds; ++s) {
        auto& slots = m_plans[t][static_cast<std::size_t>(s)];
        auto& list = m_unique[t][static_cast<std::size_t>(s)];
        for (const auto& strategy : m_result.strategies) {
          if (strategy == "none") continue;
          const PlanChoice& choice = slots[strategy].choice;
          if (!choice.ok) {
            m_result.failures.push_back(info.name + " seed " + std::to_string(s) + " " + strategy +
                                        ": " + choice.error);
            continue;
          }
          // Nothing to train and nothing to recalibrate: the unmodified model.
          if (choice.plan.trainable.empty() && !choice.plan.recalibrate) continue;
          const std::string key = planKey(choice.plan);
          auto it = std::find_if(list.begin(), list.end(),
                                 [&](const UniquePlan& u) { return u.key == key; });
          if (it == list.end()) {
            list.push_back({key, choice.plan, {}, {}});
            it = std::prev(list.end());
          }
          it->strategies.push_back(strategy);
        }
        if (slots.count("auto")) {
          info.searchTables.push_back(searchTable(slots["auto"].choice.search));
          info.autoSeconds.push_back(slots["auto"].seconds);
          info.autoRuns.emplace_back();
          info.autoAtSweepRate.push_back(kNaN);
        }
        if (slots.count("diagnosis")) {
          const PlanChoice& choice = slots["diagnosis"].choice;
          info.diagnosis.push_back(choice.ok ? choice.diagnosis.summary
                                             : "failed: " + choice.error);
          info.evidence.push_back(choice.diagnosis.evidence);
          info.firstShiftedLayer.push_back(choice.diagnosis.firstSignificantLayer);
        }
        if (slots.count("probe")) info.probeScores.push_back(slots["probe"].choice.probeScores);
      }
    }
  }

  // Phase 2: one training run per unique plan and learning rate.
  void trainUniquePlans() {
    collectUniquePlans();
    for (std::size_t t = 0; t < m_tasks.size(); ++t) {
      for (int s = 0; s < m_options.seeds; ++s) {
        auto& list = m_unique[t][static_cast<std::size_t>(s)];
        for (std::size_t p = 0; p < list.size(); ++p) {
          const FreezePlan& plan = list[p].plan;
          // Every strategy in both BatchNorm modes, unless its plan says its own (auto) or
          // trains no BatchNorm (then train mode is eval mode); recalibration alone has no rate.
          std::vector<std::string> modes{plan.batchNorm};
          if (plan.batchNorm.empty() && !plan.recalibrate) {
            modes = {"eval"};
            if (trainsBatchNorm(m_tasks[t].model.tree(), plan)) modes.push_back("train");
          }
          std::vector<double> rates = m_options.learningRates;
          if (plan.trainable.empty()) rates.resize(1);
          for (const auto& mode : modes) {
            for (double lr : rates) {
              list[p].runs.push_back(m_result.runs.size());
              FreezePlan asRun = plan;
              asRun.batchNorm = mode;
              SweepRun run;
              run.task = m_tasks[t].info.name;
              run.seed = s;
              run.plan = describePlan(plan, m_model.tree());
              run.batchNorm = batchNormModeName(asRun, true);
              run.strategies = list[p].strategies;
              run.learningRate = lr;
              m_result.runs.push_back(run);
              m_jobs.push_back({t, s, p, lr, mode});
            }
          }
        }
      }
    }
    const auto trainStart = Clock::now();
    std::vector<std::function<void()>> jobs;
    for (std::size_t j = 0; j < m_jobs.size(); ++j) jobs.emplace_back([this, j] { train(j); });
    for (std::size_t t = 0; t < m_tasks.size(); ++t) {
      for (int s = 0; s < m_options.seeds; ++s) {
        const auto& slots = m_plans[t][static_cast<std::size_t>(s)];
        const auto found = slots.find("auto");
        if (found != slots.end() && found->second.choice.ok &&
            !found->second.choice.plan.trainable.empty())
          jobs.emplace_back([this, t, s] { trainAutoAsUsersDo(t, s); });
      }
    }
    runJobs(jobs, m_parallel, m_result.threadsPerRun);
    m_result.trainSeconds = secondsSince(trainStart);
  }

  void train(std::size_t j) {
    const Job& job = m_jobs[j];
    SweepRun& run = m_result.runs[j];
    TrainOptions options = seeded(job.seed);
    options.learningRate = job.lr;
    const UniquePlan& plan = m_unique[job.task][static_cast<std::size_t>(job.seed)][job.plan];
    FreezePlan asRun = plan.plan;
    asRun.batchNorm = job.batchNorm;
    const auto began = Clock::now();
    TrainResult trained;
    try {
      trained = trainModel(m_tasks[job.task].model, asRun,
                           m_splits[job.task][static_cast<std::size_t>(job.seed)].view(), options);
    } catch (const std::exception& error) {
      trained.error = error.what();
    }
    run.seconds = secondsSince(began);
    // A diverged run keeps its best state, as the paper's selection would.
    run.ok = trained.validationAfter.items > 0;
    run.error = trained.error;
    run.validationAccuracy = run.ok ? trained.validationAfter.accuracy : kNaN;
    run.testAccuracy = run.ok ? trained.testAfter.accuracy : kNaN;
    run.testBefore = trained.testBefore.items > 0 ? trained.testBefore.accuracy : kNaN;
    run.sourceAccuracy = trained.sourceAfter.items > 0 ? trained.sourceAfter.accuracy : kNaN;
    if (trained.sourceBefore.items > 0) {
      std::lock_guard<std::mutex> lock(m_statusMutex);
      m_tasks[job.task].info.sourceBefore = trained.sourceBefore.accuracy;
    }
    for (const auto& point : trained.history) {
      if (run.validationByEpoch.size() <= static_cast<std::size_t>(point.epoch))
        run.validationByEpoch.resize(static_cast<std::size_t>(point.epoch) + 1, kNaN);
      run.validationByEpoch[static_cast<std::size_t>(point.epoch)] = point.validation.accuracy;
    }
    run.bestEpoch =
        trained.bestEvaluation >= 0
            ? trained.history[static_cast<std::size_t>(trained.bestEvaluation)].epoch + 1
            : 0;
    const std::size_t count = ++m_done;
    say("[" + std::to_string(count) + "/" + std::to_string(m_jobs.size()) + "] " + run.task +
        " seed " + std::to_string(run.seed) + " " + run.plan + " (BN " + run.batchNorm + ") lr " +
        learningRateText(run.learningRate) + ": " +
        (run.ok ? "validation " + fixed(100 * run.validationAccuracy, 1) + "%, test " +
                      fixed(100 * run.testAccuracy, 1) + "% (epoch " +
                      std::to_string(run.bestEpoch) + ")"
                : "failed: " + run.error) +
        " in " + fixed(run.seconds, 1) + " s");
  }

  // `auto` as a user runs it: its own run, at the search's learning rate, going on from where the
  // search left the winner (fineTune), timed; the `auto` cell reports it.
  void trainAutoAsUsersDo(std::size_t t, int s) {
    const PlanChoice& choice = m_plans[t][static_cast<std::size_t>(s)].at("auto").choice;
    const auto began = Clock::now();
    FineTuneRun run;
    try {
      run = fineTune(m_tasks[t].model, choice, m_splits[t][static_cast<std::size_t>(s)], seeded(s));
    } catch (const std::exception& error) {
      run.result.error = error.what();
    }
    const double seconds = secondsSince(began);
    SweepTask& info = m_tasks[t].info;
    const auto seed = static_cast<std::size_t>(s);
    if (seed < info.autoSeconds.size()) info.autoSeconds[seed] += seconds;
    if (seed < info.autoRuns.size() && run.result.testAfter.items > 0) {
      SweepTask::AutoRun& own = info.autoRuns[seed];
      own.test = run.result.testAfter.accuracy;
      own.validation = run.result.validationAfter.accuracy;
      own.learningRate = choice.learningRate;
      if (run.result.sourceAfter.items > 0) own.source = run.result.sourceAfter.accuracy;
    } else if (seed < info.autoRuns.size()) {  // the cell shows NaN; the sweep lists why
      std::lock_guard<std::mutex> lock(m_statusMutex);
      m_result.failures.push_back(info.name + " seed " + std::to_string(s) +
                                  " auto's own run: " + run.result.error);
    }
    say(info.name + " seed " + std::to_string(s) + ": auto's own run at lr " +
        learningRateText(choice.learningRate) + ", going on after " +
        std::to_string(run.result.resumedEpochs) +
        (run.result.resumedEpochs == 1 ? " epoch: " : " epochs: ") +
        (run.result.testAfter.items > 0
             ? "test " + fixed(100 * run.result.testAfter.accuracy, 1) + "%"
             : "failed: " + run.result.error) +
        " in " + fixed(seconds, 1) + " s");
  }

  // Each plan's learning rate chosen on validation, per seed; then every strategy's cell.
  void tabulate() {
    for (std::size_t t = 0; t < m_tasks.size(); ++t) {
      SweepTask& info = m_tasks[t].info;
      for (const auto& strategy : m_result.strategies) {
        SweepCell cell;
        cell.strategy = strategy;
        info.cells.push_back(cell);
      }
      for (int s = 0; s < m_options.seeds; ++s) fillCells(t, s);
      for (auto& cell : info.cells) std::tie(cell.mean, cell.stdev) = meanAndDeviation(cell.test);
    }
    for (auto& task : m_tasks) m_result.tasks.push_back(std::move(task.info));
    auto& failures = m_result.failures;
    std::sort(failures.begin(), failures.end());
    failures.erase(std::unique(failures.begin(), failures.end()), failures.end());
  }

  void fillCells(std::size_t t, int s) {
    double none = kNaN;
    std::map<std::string, const SweepRun*> chosen;  // strategy → its chosen run
    // strategy → the chosen run of each BatchNorm mode alone ("eval", "train")
    std::map<std::string, std::map<std::string, const SweepRun*>> byMode;
    for (auto& plan : m_unique[t][static_cast<std::size_t>(s)]) {
      SweepRun* best = nullptr;
      std::map<std::string, const SweepRun*> bestOfMode;
      for (std::size_t index : plan.runs) {
        SweepRun& run = m_result.runs[index];
        if (std::isfinite(run.testBefore) && !std::isfinite(none)) none = run.testBefore;
        if (!run.ok) {
          m_result.failures.push_back(run.task + " seed " + std::to_string(run.seed) + " " +
                                      run.plan + " lr " + learningRateText(run.learningRate) +
                                      ": " + run.error);
          continue;
        }
        if (!best || run.validationAccuracy > best->validationAccuracy) best = &run;
        const std::string mode =
            run.batchNorm.find("train") != std::string::npos ? "train" : "eval";
        auto& modeBest = bestOfMode[mode];
        if (!modeBest || run.validationAccuracy > modeBest->validationAccuracy) modeBest = &run;
      }
      if (!best) continue;
      best->chosen = true;
      for (const auto& strategy : plan.strategies) {
        chosen[strategy] = best;
        byMode[strategy] = bestOfMode;
      }
    }
    const auto& slots = m_plans[t][static_cast<std::size_t>(s)];
    for (auto& cell : m_tasks[t].info.cells) {
      double value = kNaN, validation = kNaN, lr = kNaN;
      std::string planText = "failed";
      const auto found = chosen.find(cell.strategy);
      const auto slot = slots.find(cell.strategy);
      // "none", or a plan with nothing to train (auto saw no significant shift).
      const bool unmodified =
          cell.strategy == "none" ||
          (found == chosen.end() && slot != slots.end() && slot->second.choice.ok &&
           slot->second.choice.plan.trainable.empty());
      if (unmodified) {
        value = none;
        planText = "none";
      } else if (found != chosen.end()) {
        value = found->second->testAccuracy;
        validation = found->second->validationAccuracy;
        lr = found->second->learningRate;
        planText = found->second->plan;
      }
      cell.test.push_back(value);
      cell.validation.push_back(validation);
      cell.learningRate.push_back(lr);
      cell.plan.push_back(planText);
      const bool trained = !unmodified && found != chosen.end();
      cell.batchNorm.push_back(trained ? found->second->batchNorm : "");
      cell.source.push_back(trained ? found->second->sourceAccuracy : m_tasks[t].info.sourceBefore);
      const auto mode = [&](const char* name) {
        if (unmodified) return none;
        const auto modes = byMode.find(cell.strategy);
        if (modes == byMode.end()) return kNaN;
        const auto run = modes->second.find(name);
        return run == modes->second.end() ? kNaN : run->second->testAccuracy;
      };
      cell.evalMode.push_back(mode("eval"));
      cell.trainMode.push_back(mode("train"));
      if (cell.strategy == "auto") reportAutoAsUsersRunIt(cell, t, s);
      if (trained && cell.strategy == "all")
        m_tasks[t].info.allSeconds.push_back(found->second->seconds);
    }
  }

  // The `auto` cell's seed s becomes the run a user gets (trainAutoAsUsersDo): the procedure the
  // cost column times, at the rate the search chose; the run at the sweep's learning-rate choice,
  // which costs three more full runs, stays beside it (autoAtSweepRate).
  void reportAutoAsUsersRunIt(SweepCell& cell, std::size_t t, int s) {
    SweepTask& info = m_tasks[t].info;
    const auto seed = static_cast<std::size_t>(s);
    if (seed >= info.autoRuns.size() || cell.test.size() != seed + 1) return;
    info.autoAtSweepRate[seed] = cell.test[seed];
    if (cell.plan[seed] == "none") return;  // nothing to train: the unmodified model either way
    const SweepTask::AutoRun& own = info.autoRuns[seed];
    cell.test[seed] = own.test;
    cell.validation[seed] = own.validation;
    cell.learningRate[seed] = own.learningRate;
    cell.source[seed] = own.source;
  }

  const SweepOptions& m_options;
  std::function<void(const std::string&)> m_status;
  std::mutex m_statusMutex;
  SweepResult m_result;
  std::string m_device;
  int m_parallel = 1;
  LoadedModel m_model;  // the 10-class source model; the subpopulation task has its own
  std::vector<TaskSetup> m_tasks;
  std::vector<std::string> m_blocks;  // with parameters
  std::string m_mergedName;           // "stem+layer1", or "" without the merged first block
  TrainOptions m_train;               // what every run shares (the probe's learning rate)
  std::vector<std::vector<TargetData>> m_splits;                      // [task][seed]
  std::vector<std::vector<std::map<std::string, PlanSlot>>> m_plans;  // [task][seed][strategy]
  std::vector<std::vector<std::vector<UniquePlan>>> m_unique;         // [task][seed]
  std::vector<Job> m_jobs;                                            // one per run of result.runs
  std::atomic<std::size_t> m_done{0};
};

}  // namespace

SweepResult runSweep(const SweepOptions& options,
                     const std::function<void(const std::string&)>& status) {
  return SweepRunner(options, status).run();
}

std::string sweepTable(const SweepResult& result) {
  std::ostringstream out;
  const int first = 20, width = 13;
  out << "Target test accuracy (%), mean +- std over " << result.options.seeds
      << (result.options.seeds == 1 ? " seed" : " seeds") << "\n";
  out << std::left << std::setw(first) << "strategy";
  for (const auto& task : result.tasks) out << std::right << std::setw(width + 4) << task.name;
  out << "\n";
  for (const auto& strategy : result.strategies) {
    out << std::left << std::setw(first) << sweepStrategyLabel(strategy);
    for (const auto& task : result.tasks) {
      const SweepCell* cell = task.cell(strategy);
      out << std::right << std::setw(width + 4) << (cell ? cellText(*cell) : "n/a");
    }
    out << "\n";
  }
  for (const auto& task : result.tasks) {
    const SweepCell* best = bestSingleBlock(task);
    const SweepCell* automatic = task.cell("auto");
    out << task.name << ": best single block "
        << (best ? sweepStrategyLabel(best->strategy) + " " + cellText(*best) : "n/a");
    if (automatic) {
      out << "; auto trained " << tally(automatic->plan) << " → " << cellText(*automatic);
    }
    out << "\n";
  }
  return out.str();
}

std::string sweepCsv(const SweepResult& result) {
  std::ostringstream out;
  out << "task,level,strategy,mean_test_accuracy,std_test_accuracy,seeds,reference_test_accuracy";
  for (int s = 0; s < result.options.seeds; ++s) out << ",seed" << s << "_test_accuracy";
  for (int s = 0; s < result.options.seeds; ++s) {
    out << ",seed" << s << "_plan,seed" << s << "_learning_rate,seed" << s << "_batch_norm,seed"
        << s << "_source_accuracy,seed" << s << "_eval_mode,seed" << s << "_train_mode";
  }
  out << "\n";
  for (const auto& task : result.tasks) {
    for (const auto& cell : task.cells) {
      out << task.name << "," << task.level << "," << csvField(sweepStrategyLabel(cell.strategy))
          << "," << csvNumber(100 * cell.mean, 2) << "," << csvNumber(100 * cell.stdev, 2) << ","
          << cell.test.size() << "," << csvNumber(referenceValue(task.name, cell.strategy), 1);
      for (double v : cell.test) out << "," << csvNumber(100 * v, 2);
      for (std::size_t s = 0; s < cell.test.size(); ++s) {
        out << "," << csvField(cell.plan[s]) << ","
            << (std::isfinite(cell.learningRate[s]) ? learningRateText(cell.learningRate[s]) : "")
            << "," << csvField(cell.batchNorm[s]) << "," << csvNumber(100 * cell.source[s], 2)
            << "," << csvNumber(100 * cell.evalMode[s], 2) << ","
            << csvNumber(100 * cell.trainMode[s], 2);
      }
      out << "\n";
    }
  }
  return out.str();
}

std::string sweepRunsCsv(const SweepResult& result) {
  std::ostringstream out;
  out << "task,seed,plan,strategies,batch_norm,learning_rate,chosen,best_epoch,validation_"
         "accuracy,test_accuracy,source_accuracy,seconds,validation_by_epoch,error\n";
  for (const auto& run : result.runs) {
    std::vector<std::string> labels;
    for (const auto& s : run.strategies) labels.push_back(sweepStrategyLabel(s));
    std::vector<std::string> epochs;
    for (double v : run.validationByEpoch) epochs.push_back(csvNumber(100 * v, 2));
    out << run.task << "," << run.seed << "," << csvField(run.plan) << ","
        << csvField(join(labels, " ")) << "," << csvField(run.batchNorm) << ","
        << learningRateText(run.learningRate) << "," << (run.chosen ? 1 : 0) << "," << run.bestEpoch
        << "," << csvNumber(100 * run.validationAccuracy, 2) << ","
        << csvNumber(100 * run.testAccuracy, 2) << "," << csvNumber(100 * run.sourceAccuracy, 2)
        << "," << fixed(run.seconds, 2) << "," << join(epochs, " ") << ","
        << csvField(run.ok ? "" : run.error) << "\n";
  }
  return out.str();
}

namespace {

// sweep.md, section by section.
void markdownProtocol(std::ostringstream& md, const SweepResult& result) {
  const SweepOptions& o = result.options;
  md << "# Surgical fine-tuning sweep: " << o.scenario << "\n\n";
  if (!o.command.empty()) md << "```sh\n" << o.command << "\n```\n\n";
  if (o.quick) {
    md << "> A **quick** sweep (one seed, one learning rate, " << o.epochs
       << " epochs): it checks the machinery, it does not follow the paper's protocol — compare "
          "only a full sweep with the reference.\n\n";
  }
  std::vector<std::string> lrs;
  for (double lr : o.learningRates) lrs.push_back(learningRateText(lr));
  md << "Scalpel " << kVersion << " on " << result.device << ", " << o.parallel << " run"
     << (o.parallel == 1 ? "" : "s") << " at a time with " << result.threadsPerRun
     << " torch thread" << (result.threadsPerRun == 1 ? "" : "s") << " each. " << result.runs.size()
     << " training runs in " << fixed(result.seconds / 60, 1) << " min (source model "
     << (result.sourceCached ? "cached" : fixed(result.sourceSeconds, 0) + " s")
     << ", plans and probes " << fixed(result.planSeconds, 0) << " s, training "
     << fixed(result.trainSeconds, 0) << " s).\n\n";
  md << "**Protocol** (METHOD.md): each target task is split per class into " << o.trainPerClass
     << " images to train, " << o.validationPerClass << " to validate, the rest to test; seed s (0…"
     << o.seeds - 1
     << ") chooses the split and seeds the training. Adam, weight decay 1e-4, batch 64; every "
        "strategy runs with BatchNorm in eval mode and with the trainable blocks' BatchNorms in "
        "train mode (where it trains one); "
     << "learning rate from {" << join(lrs, ", ") << "}, BatchNorm mode and epoch (≤ " << o.epochs
     << ") chosen by validation accuracy (epoch 0, the unmodified model, counts too); the tables "
        "report the chosen run's **test** accuracy. "
     << "`auto` is Scalpel's validated plan: the analysis' diagnosis (`diagnosis`, the plan "
        "it names, untried), the diagnosed blocks joined with their neighbours, Auto-RGN's plan "
        "and every layer, each in both BatchNorm modes, and BatchNorm recalibration alone "
        "(`recalibrate`), tried in short runs on the training split at lr "
     << learningRateText(o.probeLearningRate) << " and "
     << learningRateText(o.probeLearningRate / 10)
     << " by successive halving (the best third, and the diagnosed plan, train on from where they "
        "stopped to three times the epochs) from "
     << std::max(1, o.epochs / 10)
     << " epoch; its winner (with its BatchNorm mode, recalibrated first when recalibration alone "
        "beat the unmodified model) then trains on from its last short run at the rate the search "
        "chose, to the same epoch limit, as `scalpel-cli train --strategy auto` does (its plan "
        "also gets every strategy's learning-rate choice, reported beside it). "
     << "`auto-rgn` is the paper's Auto-RGN (learning rates scaled per layer by relative gradient "
        "norm, recomputed every epoch); `last` is the last block with parameters. Source accuracy: "
        "the tuned model on clean images of the model's own task (a sample of 2000; the source "
        "sub-classes for the sub-population task).";
  if (std::find(result.strategies.begin(), result.strategies.end(), "stem+layer1") !=
      result.strategies.end()) {
    md << " `stem+layer1` trains the first two blocks together: the reference run's first block.";
  }
  md << "\n\n";
}

void markdownAccuracyTable(std::ostringstream& md, const SweepResult& result) {
  const SweepOptions& o = result.options;
  md << "## Target test accuracy (%), mean ± std over " << o.seeds
     << (o.seeds == 1 ? " seed" : " seeds") << "\n\n";
  md << "| strategy |";
  for (const auto& task : result.tasks) md << " " << task.name << " (" << task.level << ") |";
  md << "\n|---|";
  for (std::size_t i = 0; i < result.tasks.size(); ++i) md << "---|";
  md << "\n";
  for (const auto& strategy : result.strategies) {
    md << "| " << sweepStrategyLabel(strategy) << " |";
    for (const auto& task : result.tasks) {
      const SweepCell* cell = task.cell(strategy);
      const SweepCell* best = bestSingleBlock(task);
      const bool bold = cell && best && cell == best;
      md << " " << (bold ? "**" : "") << (cell ? cellText(*cell, true) : "n/a")
         << (bold ? "**" : "") << " |";
    }
    md << "\n";
  }
  md << "\nBold: the best single block. Per-seed values, plans and chosen learning rates: "
        "`sweep.csv`; every run: `sweep-runs.csv`.\n\n";
}

// "76.4 ± 0.3" (percent over seeds), "–" for none.
std::string meanText(const std::vector<double>& values) {
  const auto [mean, deviation] = meanAndDeviation(values);
  if (!std::isfinite(mean)) return "–";
  return fixed(100 * mean, 1) + (values.size() > 1 ? " ± " + fixed(100 * deviation, 1) : "");
}

// Each strategy's BatchNorm modes alone, and what it keeps of the source task.
void markdownModesAndSource(std::ostringstream& md, const SweepResult& result) {
  md << "## Each BatchNorm mode alone: eval / train (target test accuracy, %)\n\n";
  md << "| strategy |";
  for (const auto& task : result.tasks) md << " " << task.name << " |";
  md << "\n|---|";
  for (std::size_t i = 0; i < result.tasks.size(); ++i) md << "---|";
  md << "\n";
  for (const auto& strategy : result.strategies) {
    if (strategy == "none" || strategy == "auto" || strategy == "recalibrate") continue;
    md << "| " << sweepStrategyLabel(strategy) << " |";
    for (const auto& task : result.tasks) {
      const SweepCell* cell = task.cell(strategy);
      md << " " << (cell ? meanText(cell->evalMode) + " / " + meanText(cell->trainMode) : "n/a")
         << " |";
    }
    md << "\n";
  }
  md << "\n– : the plan trains no BatchNorm, so train mode is eval mode. `auto` chooses its mode "
        "itself (sweep.csv).\n\n";
  md << "## Source accuracy after tuning (%): what is kept\n\n| strategy |";
  for (const auto& task : result.tasks) md << " " << task.name << " |";
  md << "\n|---|";
  for (std::size_t i = 0; i < result.tasks.size(); ++i) md << "---|";
  md << "\n| unmodified model |";
  for (const auto& task : result.tasks)
    md << " " << (std::isfinite(task.sourceBefore) ? fixed(100 * task.sourceBefore, 1) : "n/a")
       << " |";
  md << "\n";
  for (const auto& strategy : result.strategies) {
    if (strategy == "none") continue;
    md << "| " << sweepStrategyLabel(strategy) << " |";
    for (const auto& task : result.tasks) {
      const SweepCell* cell = task.cell(strategy);
      md << " " << (cell ? meanText(cell->source) : "n/a") << " |";
    }
    md << "\n";
  }
  md << "\nThe label permutation renames every class, so a model tuned to it must lose its "
        "source labels: there, source accuracy measures how completely the head was remapped.\n\n";
}

// The goals: auto against the better of every baseline, against all, and its cost.
void markdownWinners(std::ostringstream& md, const SweepResult& result) {
  md << "## Does `auto` beat training everything?\n\n";
  md << "| task | shift level | best single block | Auto-RGN | all | `auto` | `auto`'s plan at the "
        "sweep's lr choice | `auto` − max(all, best block, Auto-RGN) | `auto` − all | `auto` "
        "trained | `auto`'s time ÷ one `all` run |\n";
  md << "|---|---|---|---|---|---|---|---|---|---|---|\n";
  double gainSum = 0;
  int gains = 0;
  for (const auto& task : result.tasks) {
    const SweepCell* best = bestSingleBlock(task);
    const SweepCell* rgn = task.cell("auto-rgn");
    const SweepCell* all = task.cell("all");
    const SweepCell* automatic = task.cell("auto");
    double target = kNaN;
    for (const SweepCell* c : {best, rgn, all}) {
      if (c && std::isfinite(c->mean))
        target = std::isfinite(target) ? std::max(target, c->mean) : c->mean;
    }
    const auto difference = [&](double other) {
      return automatic && std::isfinite(other) && std::isfinite(automatic->mean)
                 ? fixed(100 * (automatic->mean - other), 1)
                 : std::string("n/a");
    };
    std::vector<std::string> picks;
    if (automatic) {
      for (std::size_t s = 0; s < automatic->plan.size(); ++s)
        picks.push_back(automatic->plan[s] +
                        (s < automatic->batchNorm.size() && !automatic->batchNorm[s].empty()
                             ? " (BN " + automatic->batchNorm[s] + ")"
                             : ""));
    }
    double ratio = kNaN;
    if (!task.autoSeconds.empty() && task.allSeconds.size() == task.autoSeconds.size()) {
      double a = 0, b = 0;
      for (std::size_t s = 0; s < task.autoSeconds.size(); ++s) {
        a += task.autoSeconds[s];
        b += task.allSeconds[s];
      }
      if (b > 0) ratio = a / b;
    }
    if (automatic && all && std::isfinite(automatic->mean) && std::isfinite(all->mean)) {
      gainSum += automatic->mean - all->mean;
      ++gains;
    }
    md << "| " << task.name << " | " << task.level << " | "
       << (best ? sweepStrategyLabel(best->strategy) + " " + cellText(*best, true) : "n/a") << " | "
       << (rgn ? cellText(*rgn, true) : "n/a") << " | " << (all ? cellText(*all, true) : "n/a")
       << " | " << (automatic ? cellText(*automatic, true) : "n/a") << " | "
       << meanText(task.autoAtSweepRate) << " | " << difference(target) << " | "
       << difference(all ? all->mean : kNaN) << " | " << (picks.empty() ? "n/a" : tally(picks))
       << " | " << (std::isfinite(ratio) ? fixed(ratio, 1) + "×" : "n/a") << " |\n";
  }
  if (gains)
    md << "\nOn average over the tasks `auto` − `all` = " << fixed(100 * gainSum / gains, 1)
       << " points. Each baseline's number is its better BatchNorm mode, picked on validation. "
          "`auto`: the run a user gets, at the learning rate the search chose, going on from the "
          "winner's last short run; its time: the analysis, the search and that run, against the "
          "chosen `all` run, both as the sweep ran them. `auto`'s plan at the sweep's lr choice: "
          "the same plan given the learning-rate choice every strategy gets (three more full "
          "runs, not in the time).\n";
  md << "\n";
}

void markdownTasks(std::ostringstream& md, const SweepResult& result) {
  const SweepOptions& o = result.options;
  md << "## The tasks and the advisor's diagnosis\n\n";
  for (const auto& task : result.tasks) {
    md << "### " << task.name << " (" << task.level << ")\n\n";
    md << "![" << task.name << "](" << task.name << ".png)\n\n";
    md << "- Data: " << task.description << "; " << task.trainItems << " train, "
       << task.validationItems << " validation, " << task.testItems << " test images per seed.\n";
    md << "- Source model: `" << fs::path(task.model).filename().string() << "`";
    if (task.name == "subpopulation" && std::isfinite(result.sourceAccuracy)) {
      md << " (5 outputs, pretrained by Scalpel on the source sub-classes: "
         << fixed(100 * result.sourceAccuracy, 1) << "% on the test split's source sub-classes)";
    }
    md << ".\n";
    if (!task.diagnosis.empty()) {
      const bool same = std::all_of(task.diagnosis.begin(), task.diagnosis.end(),
                                    [&](const std::string& d) { return d == task.diagnosis[0]; });
      md << "- Diagnosis"
         << (same ? (task.diagnosis.size() > 1 ? " (the same for every seed)" : "")
                  : " (seed 0; it differs between seeds)")
         << ": " << task.diagnosis[0] << "\n";
      if (!task.evidence.empty()) {
        for (const auto& line : task.evidence[0]) md << "  - " << line << "\n";
      }
      if (!same) {
        for (std::size_t s = 1; s < task.diagnosis.size(); ++s) {
          md << "  - seed " << s << ": " << task.diagnosis[s] << "\n";
        }
      }
    }
    if (!task.searchTables.empty() && !task.searchTables[0].empty()) {
      md << "- `auto`'s candidates, seed 0 (validation accuracy per round):\n\n"
            "```\n"
         << task.searchTables[0] << "```\n";
    }
    if (!task.probeScores.empty()) {
      md << "- Probe validation accuracy (" << o.probeEpochs
         << (o.probeEpochs == 1 ? " epoch" : " epochs")
         << " per block at the better of two learning rates, a tiny first block with the next; "
            "then the better half for twice as long):";
      for (std::size_t s = 0; s < task.probeScores.size(); ++s) {
        md << (s ? ";" : "") << " seed " << s << ":";
        for (const auto& [block, accuracy] : task.probeScores[s]) {
          md << " " << block << " " << fixed(100 * accuracy, 1);
        }
      }
      md << ".\n";
    }
    md << "\n";
  }
}

void markdownReference(std::ostringstream& md, const SweepResult& result) {
  const SweepOptions& o = result.options;
  md << "## Compared with METHOD.md's reference run\n\n";
  md << "The reference: Python PyTorch 1.13, one fixed split, a model of the same design "
        "pretrained 2 epochs to 91.0% "
        "on clean Fashion-MNIST test images (the demo model here: "
     << fixed(100 * result.modelCleanAccuracy, 1)
     << "%). It groups stem+layer1 as its first block. Each cell: reference → Scalpel (Δ in "
        "points); in bold where "
        "|Δ| exceeds both 3 points and 3 standard deviations of Scalpel's seeds.\n\n";
  const std::vector<std::pair<std::string, std::string>> columns{
      {"none", "none"},           {"stem+layer1", "stem+layer1"},
      {"block:layer2", "layer2"}, {"block:layer3", "layer3"},
      {"block:fc", "fc"},         {"all", "all"},
      {"auto-rgn", "Auto-RGN"}};
  md << "| task |";
  for (const auto& column : columns) md << " " << column.second << " |";
  md << "\n|---|";
  for (std::size_t i = 0; i < columns.size(); ++i) md << "---|";
  md << "\n";
  for (const auto& task : result.tasks) {
    if (!referenceRow(task.name)) continue;
    md << "| " << task.name << " |";
    for (const auto& column : columns) {
      const double reference = referenceValue(task.name, column.first);
      const SweepCell* cell = task.cell(column.first);
      if (!cell || !std::isfinite(cell->mean)) {
        md << " " << fixed(reference, 1) << " → n/a |";
        continue;
      }
      const double delta = 100 * cell->mean - reference;
      const bool far = std::fabs(delta) > 3 && std::fabs(delta) > 3 * 100 * cell->stdev;
      md << " " << (far ? "**" : "") << fixed(reference, 1) << " → " << fixed(100 * cell->mean, 1)
         << " (" << (delta >= 0 ? "+" : "") << fixed(delta, 1) << ")" << (far ? "**" : "") << " |";
    }
    md << "\n";
  }
  md << "\nHow the tasks differ from the reference's:\n\n";
  for (const auto& task : result.tasks) {
    if (const ReferenceRow* row = referenceRow(task.name)) {
      md << "- " << task.name << " (reference: " << row->shift
         << "): " << shiftNote(task.name, o.severity) << ".\n";
    }
  }
  md << "\nWinning block, among the reference's partition stem+layer1 | layer2 | layer3 | fc: ";
  std::vector<std::string> winners;
  for (const auto& task : result.tasks) {
    const ReferenceRow* row = referenceRow(task.name);
    const SweepCell* best = bestSingleBlock(task);
    if (!row || !best) continue;
    const std::pair<const char*, double> ref[] = {{"stem+layer1", row->firstBlock},
                                                  {"layer2", row->layer2},
                                                  {"layer3", row->layer3},
                                                  {"fc", row->fc}};
    const auto refBest =
        std::max_element(std::begin(ref), std::end(ref),
                         [](const auto& a, const auto& b) { return a.second < b.second; });
    // Among the reference's blocks (stem+layer1 | layer2 | layer3 | fc), where Scalpel ran them
    // all.
    const SweepCell* ours = nullptr;
    for (const char* strategy : {"stem+layer1", "block:layer2", "block:layer3", "block:fc"}) {
      const SweepCell* cell = task.cell(strategy);
      if (!cell || !std::isfinite(cell->mean)) {
        ours = nullptr;
        break;
      }
      if (!ours || cell->mean > ours->mean) ours = cell;
    }
    winners.push_back(task.name + ": reference " + refBest->first + ", Scalpel " +
                      (ours ? sweepStrategyLabel(ours->strategy) +
                                  " (of the same four; of all five single blocks: " +
                                  sweepStrategyLabel(best->strategy) + ")"
                            : sweepStrategyLabel(best->strategy)));
  }
  md << join(winners, "; ") << ".\n";
}

}  // namespace

std::string sweepMarkdown(const SweepResult& result) {
  std::ostringstream md;
  markdownProtocol(md, result);
  markdownAccuracyTable(md, result);
  markdownWinners(md, result);
  markdownModesAndSource(md, result);
  markdownTasks(md, result);
  markdownReference(md, result);
  if (!result.failures.empty()) {
    md << "\n## Failed runs\n\n";
    for (const auto& failure : result.failures) md << "- " << failure << "\n";
  }
  return md.str();
}

std::string writeSweep(const SweepResult& result, const fs::path& folder) {
  std::error_code error;
  fs::create_directories(folder, error);
  if (error) return "cannot create " + folder.string() + ": " + error.message();
  for (const auto& [name, text] :
       {std::pair<std::string, std::string>{"sweep.csv", sweepCsv(result)},
        {"sweep-runs.csv", sweepRunsCsv(result)},
        {"sweep.md", sweepMarkdown(result)}}) {
    if (auto problem = writeFileAtomically(folder / name, text); !problem.empty()) return problem;
  }
  std::vector<RgbImage> charts;
  for (const auto& task : result.tasks) {
    BarChart chart;
    chart.title = task.name + " (" + task.level + "), mean over " +
                  std::to_string(result.options.seeds) +
                  (result.options.seeds == 1 ? " seed" : " seeds");
    chart.valueLabel = "target test accuracy (%)";
    chart.horizontal = true;  // the strategies' names fit on the left
    chart.width = 900;
    chart.height = 110 + 30 * static_cast<int>(task.cells.size());
    chart.colour = Rgb{0, 114, 178};
    chart.valueName = "Scalpel (blue: blocks, orange: automatic, grey: baselines; whisker: std)";
    chart.markerName = "METHOD.md reference";
    for (const auto& cell : task.cells) {
      chart.names.push_back(sweepStrategyLabel(cell.strategy));
      chart.values.push_back(100 * cell.mean);
      chart.errors.push_back(100 * cell.stdev);
      chart.markers.push_back(referenceValue(task.name, cell.strategy));
      // Baselines grey, single blocks blue, automatic strategies orange.
      const std::string& s = cell.strategy;
      chart.barColours.push_back(s == "none" || s == "all" || s == "last" ? Rgb{150, 150, 150}
                                 : isSingleBlock(s) || s.find('+') != std::string::npos
                                     ? Rgb{0, 114, 178}
                                     : Rgb{230, 159, 0});
    }
    RgbImage image = renderBarChart(chart);
    if (auto problem = writePng(image, folder / (task.name + ".png")); !problem.empty()) {
      return problem;
    }
    charts.push_back(std::move(image));
  }
  if (!charts.empty()) {
    if (auto problem = writePng(stackImages(charts), folder / "sweep.png"); !problem.empty()) {
      return problem;
    }
  }
  return {};
}

}  // namespace scalpel
