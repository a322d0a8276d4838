#include "cli_sweep.h"

#include "app_paths.h"

#include <filesystem>
#include <iomanip>
#include <iostream>

namespace fs = std::filesystem;

namespace scalpel::cli {

CLI::App* addSweepCommand(CLI::App& app, SweepCommand& command) {
  auto* sweep = app.add_subcommand(
      "sweep", "Reproduce the paper: every freeze strategy on shifted target tasks, several seeds");
  command.app = sweep;
  SweepOptions& o = command.options;
  o.modelPath = app::demoModelPath();
  o.sourceArchitecture = app::demoArchitectureDir() + "/demo_untrained_5.pt";
  o.groupsFile = app::resourceDir() + "/shifts/fashion-mnist-superclasses.json";
  sweep
      ->add_option("--scenario", o.scenario,
                   "which sweep: fmnist-paper (METHOD.md's reference run)")
      ->check(CLI::IsMember(sweepScenarios()));
  sweep
      ->add_option("--seeds", o.seeds,
                   "seeds (each splits the target data and seeds training anew)")
      ->check(CLI::Range(1, 100));
  sweep->add_option("--out", command.out,
                    "folder for sweep.md, sweep.csv, sweep-runs.csv and the PNG charts");
  sweep->add_flag("--quick", command.quick,
                  "one seed, lr 1e-2, 2 epochs, a 1-epoch probe and source model (for CI)");
  sweep->add_flag_callback(
      "--no-frozen-cache", [&o] { o.cacheFrozenPart = false; },
      "compute every run's frozen layers every step (to compare: the cache gives the same runs)");
  sweep->add_option("--model", o.modelPath,
                    "the pretrained Fashion-MNIST model (default: the demo model)");
  sweep->add_option("--source-architecture", o.sourceArchitecture,
                    "untrained 5-output model for the super-class task");
  sweep->add_option("--groups", o.groupsFile, "super-classes of the sub-population task (JSON)");
  sweep->add_option(
      "--cache", o.cacheDir,
      "where to keep the super-class source model (default: beside --source-architecture)");
  sweep
      ->add_option("--tasks", o.tasks,
                   "only these: gaussian-noise, contrast, subpopulation, label-permutation, or any "
                   "other input-level shift")
      ->delimiter(',');
  sweep
      ->add_option("--severity", o.severity,
                   "severity of the input-level tasks, 1 (mild) to 5 (strong)")
      ->check(CLI::Range(1, 5));
  sweep
      ->add_option("--lr", o.learningRates,
                   "learning rates to choose from on validation, e.g. 1e-2,1e-3,1e-4")
      ->delimiter(',');
  sweep->add_option("--epochs", o.epochs, "epochs per run (the best is chosen on validation)")
      ->check(CLI::Range(1, 1000));
  sweep->add_option("--probe-epochs", o.probeEpochs, "epochs per block for the probe strategy")
      ->check(CLI::Range(1, 1000));
  sweep->add_option("--probe-lr", o.probeLearningRate,
                    "learning rate of the probe's runs (default: the largest of --lr)");
  sweep
      ->add_option("--parallel", o.parallel,
                   "training runs at a time, each with cores / N torch threads (default 0: one "
                   "single-threaded run per core on the CPU, one on a GPU)")
      ->check(CLI::Range(0, 256));
  sweep->add_option("--device", o.device, "cpu, auto, cuda or cuda:N");
  return sweep;
}

int runSweepCommand(SweepCommand& command, const std::vector<std::string>& arguments) {
  SweepOptions options = command.options;
  if (command.quick) {
    // The quick settings, with what was given explicitly on top.
    SweepOptions quick = quickSweepOptions(options);
    const auto given = [&](const char* name) { return command.app->count(name) > 0; };
    if (given("--seeds")) quick.seeds = options.seeds;
    if (given("--lr")) quick.learningRates = options.learningRates;
    if (given("--epochs")) quick.epochs = options.epochs;
    if (given("--probe-epochs")) quick.probeEpochs = options.probeEpochs;
    options = quick;
  }
  std::string line = "scalpel-cli";
  for (std::size_t i = 1; i < arguments.size(); ++i) {
    const std::string& a = arguments[i];
    line += " " + (a.find_first_of(" \t'\"$") == std::string::npos ? a : "'" + a + "'");
  }
  options.command = line;

  const auto result =
      runSweep(options, [](const std::string& status) { std::cerr << status << "\n"; });
  if (!result.ok) {
    std::cerr << "error: " << result.error << "\n";
    return 1;
  }
  std::cout << sweepTable(result);
  if (auto problem = writeSweep(result, command.out); !problem.empty()) {
    std::cerr << "error: " << problem << "\n";
    return 1;
  }
  std::cout << "took " << std::fixed << std::setprecision(1) << result.seconds / 60 << " min for "
            << result.runs.size() << " training runs; wrote "
            << (fs::path(command.out) / "sweep.md").string()
            << ", sweep.csv, sweep-runs.csv and a PNG per task\n";
  if (!result.failures.empty()) {
    std::cerr << result.failures.size() << " run(s) failed:\n";
    for (const auto& failure : result.failures) std::cerr << "  " << failure << "\n";
    return 1;
  }
  return 0;
}

}  // namespace scalpel::cli
