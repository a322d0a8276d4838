#pragma once

// The paper-reproduction sweep (METHOD.md, issue 7): target tasks × freeze strategies × learning
// rates × seeds under the paper's protocol, every run independent, summarised as target test
// accuracy (mean ± standard deviation over seeds) in a console table, CSV, Markdown and one bar
// chart per task, next to METHOD.md's Python reference run. Torch-free.

#include <cstdint>
#include <filesystem>
#include <functional>
#include <limits>
#include <string>
#include <vector>

namespace scalpel {

struct SweepOptions {
  std::string scenario = "fmnist-paper";  // the only one so far (sweepScenarios())
  std::string modelPath;                  // the pretrained 10-class source model (the demo model)
  std::string sourceArchitecture;         // untrained 5-output model for the super-class task
  std::string groupsFile;  // super-classes (resources/shifts/fashion-mnist-superclasses.json)
  // Keeps the super-class source model between runs ("": the folder of sourceArchitecture, i.e.
  // the build's demo folder).
  std::string cacheDir;
  int seeds = 3;  // seed s splits the target data and seeds training
  std::vector<double> learningRates{1e-2, 1e-3, 1e-4};
  int epochs = 10;      // at most; the best epoch is chosen on validation accuracy
  int probeEpochs = 2;  // per block, for strategy "probe"
  // The probe's learning rate; 0: the largest of learningRates (a short budget needs large steps:
  // at 1e-3 two epochs barely move a linear head, so the probe would never pick it).
  double probeLearningRate = 0;
  int sourceEpochs = 3;  // pretraining of the super-class source model (the demo's recipe)
  std::size_t trainPerClass = 100, validationPerClass = 50;  // the rest is the test split
  std::uint64_t dataSeed = 0;  // of the shifts (the same target data for every seed)
  // Trainings at a time, each with cores / parallel torch threads; 0: one per core on the CPU
  // (single-threaded runs: on 2 cores 23% faster than one run on 2 threads, and they do not
  // collapse when other processes compete for the cores, as OpenMP's spinning threads do), one
  // at a time on a GPU.
  int parallel = 0;
  std::string device = "cpu";  // or "auto", "cuda", "cuda:N"
  // Leaves out the first two blocks trained together (the reference's first block).
  bool skipMergedFirstBlock = false;
  // Empty: the scenario's four (gaussian-noise, contrast, subpopulation, label-permutation);
  // any other input-level shift (shiftCatalogue()) can be a task too, e.g. to check the advisor.
  std::vector<std::string> tasks;
  int severity = 5;                // of the input-level tasks
  std::string command;             // the command line, recorded in sweep.md
  std::string modelName = "demo";  // what sweep.md calls the 10-class model
  bool quick = false;              // set by quickSweepOptions(): sweep.md then says so
  bool cacheFrozenPart = true;     // TrainOptions::cacheFrozenPart for every run
};

// What --quick means: one seed, one learning rate (1e-2), 2 epochs, a 1-epoch probe and source
// pretraining, without the merged first block. For CI: it checks the machinery, not the paper.
SweepOptions quickSweepOptions(SweepOptions options);

const std::vector<std::string>& sweepScenarios();

// One training run: one plan on one task, split and seed, at one learning rate.
struct SweepRun {
  std::string task;
  int seed = 0;
  std::string plan;       // its trainable modules ("stem"; "auto-rgn: every layer, scaled")
  std::string batchNorm;  // batchNormModeName(): "eval", "train", "recalibrated, eval" ...
  std::vector<std::string> strategies;  // every strategy whose plan this is
  double learningRate = 0;
  bool ok = false;
  std::string error;
  bool chosen = false;  // the learning rate picked on validation for this plan
  int bestEpoch = 0;    // 1-based; 0: the unmodified model stayed best on validation
  double validationAccuracy = 0, testAccuracy = 0, testBefore = 0;
  double sourceAccuracy = 0;              // after tuning, on clean source data (NaN: none)
  std::vector<double> validationByEpoch;  // the validation accuracy after each epoch
  double seconds = 0;
};

// A strategy's outcome on a task: per seed, after the learning-rate choice.
struct SweepCell {
  std::string strategy;      // "none", "block:stem", "stem+layer1", "all", "last", "auto-rgn", ...
  std::vector<double> test;  // target test accuracy per seed (NaN: failed)
  std::vector<double> validation;      // the validation accuracy it was chosen by
  std::vector<double> learningRate;    // chosen, per seed (NaN for none)
  std::vector<std::string> plan;       // per seed ("stem", "none" ...)
  std::vector<std::string> batchNorm;  // per seed: the BatchNorm mode chosen on validation
  std::vector<double> source;          // source accuracy after tuning, per seed (NaN: none)
  // Per seed, the test accuracy of the BatchNorm mode alone (its learning rate chosen on
  // validation; NaN where the plan has no such mode: a head without BatchNorm trains in eval).
  std::vector<double> evalMode, trainMode;
  double mean = 0, stdev = 0;  // over seeds (sample standard deviation; 0 for one seed)
};

struct SweepTask {
  std::string name;   // "gaussian-noise", "contrast", "subpopulation", "label-permutation"
  std::string level;  // "input-level" ... (what the shift is, by construction)
  std::string description;
  std::string model;  // the source model the task starts from
  std::size_t trainItems = 0, validationItems = 0, testItems = 0;
  std::vector<std::string> diagnosis;              // the advisor's summary, per seed
  std::vector<std::vector<std::string>> evidence;  // per seed
  std::vector<std::string> firstShiftedLayer;      // per seed
  std::vector<std::vector<std::pair<std::string, double>>> probeScores;  // per seed
  std::vector<std::string> searchTables;  // auto: searchTable() of its candidates, per seed
  // Per seed, in seconds: auto as a user runs it (its analysis, its search and its own run at the
  // learning rate the search chose, going on from the winner's last short run), and the chosen
  // `all` run.
  std::vector<double> autoSeconds, allSeconds;
  // Per seed, that own run: what the `auto` cell reports, since it is the procedure timed and the
  // one a user gets (NaN: it failed).
  struct AutoRun {
    double test = std::numeric_limits<double>::quiet_NaN();
    double validation = std::numeric_limits<double>::quiet_NaN();
    double source = std::numeric_limits<double>::quiet_NaN();
    double learningRate = std::numeric_limits<double>::quiet_NaN();  // the search's
  };
  std::vector<AutoRun> autoRuns;
  // Per seed: the test accuracy of auto's plan given the sweep's learning-rate choice instead, as
  // every strategy gets (NaN: none).
  std::vector<double> autoAtSweepRate;
  // The unmodified model on the clean source data (NaN: none).
  double sourceBefore = std::numeric_limits<double>::quiet_NaN();
  std::vector<SweepCell> cells;  // in strategy order
  const SweepCell* cell(const std::string& strategy) const;
};

struct SweepResult {
  bool ok = false;
  std::string error;                  // the sweep could not run at all
  std::vector<std::string> failures;  // runs that failed (the table shows NaN there)
  SweepOptions options;               // as run
  std::vector<std::string> strategies;
  std::vector<SweepTask> tasks;
  std::vector<SweepRun> runs;
  std::string device;  // "cpu (2 threads)"
  int threadsPerRun = 1;
  double modelCleanAccuracy = 0;  // of the 10-class model on the clean test split
  std::string sourceModel;        // the super-class source model
  bool sourceCached = false;
  double sourceAccuracy = 0;  // on the test split's source sub-classes
  double sourceSeconds = 0, planSeconds = 0, trainSeconds = 0, seconds = 0;
};

// Runs the sweep. `status` hears progress lines (from worker threads, one call at a time).
// Sets torch's thread count (see useTorchThreads()). Never throws.
SweepResult runSweep(const SweepOptions& options,
                     const std::function<void(const std::string&)>& status = {});

// Display name of a strategy: "block:stem" → "stem".
std::string sweepStrategyLabel(const std::string& strategy);
// The results as a fixed-width console table (%, mean ± std).
std::string sweepTable(const SweepResult& result);
// One row per task × strategy (mean, std, seeds, each seed, the reference value).
std::string sweepCsv(const SweepResult& result);
// One row per training run (every learning rate).
std::string sweepRunsCsv(const SweepResult& result);
std::string sweepMarkdown(const SweepResult& result);

// Writes sweep.csv, sweep-runs.csv, sweep.md, TASK.png for each task and sweep.png (all of them
// stacked), atomically, into `folder` (created). Returns "" or what went wrong.
std::string writeSweep(const SweepResult& result, const std::filesystem::path& folder);

}  // namespace scalpel
