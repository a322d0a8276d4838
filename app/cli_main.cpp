// scalpel-cli: Scalpel's engine without a window (scripts, GPU servers, CI). Each command has its
// own add/run pair (cli_*.h); main parses, sets up logging and threads, and dispatches.

#include <CLI/CLI.hpp>

#include "app_paths.h"
#include "checkpoint/architecture_library.h"
#include "cli_analysis.h"
#include "cli_data.h"
#include "cli_model.h"
#include "cli_sweep.h"
#include "cli_train.h"
#include "scalpel/version.h"
#include "util/logging.h"
#include "util/threads.h"

int main(int argc, char** argv) {
  using namespace scalpel::cli;
  if (const auto dir = scalpel::app::architectureDir(); !dir.empty()) {
    scalpel::setArchitectureLibraryDir(dir);  // installed: share/scalpel/architectures
  }
  CLI::App app{"Scalpel: surgical fine-tuning of TorchScript models, from the command line"};
  app.set_version_flag("--version", std::string("scalpel-cli ") + scalpel::kVersion);
  std::string logLevel = "warn";
  app.add_option("--log-level", logLevel, "trace, debug, info, warn, error or off")
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error", "off"}));
  int threads = 0;
  app.add_option("--threads", threads,
                 "torch threads (default: every core, shared among local processes)")
      ->check(CLI::Range(1, 1024));
  app.require_subcommand(1);

  InspectCommand inspectCommand;
  auto* inspect = addInspectCommand(app, inspectCommand);
  ConvertCommand convertCommand;
  auto* convert = addConvertCommand(app, convertCommand);
  MakeShiftCommand makeShiftCommand;
  auto* makeShift = addMakeShiftCommand(app, makeShiftCommand);
  PreviewCommand previewCommand;
  auto* preview = addPreviewCommand(app, previewCommand);
  auto* shifts = addShiftsCommand(app);
  PretrainCommand pretrainCommand;
  auto* pretrain = addPretrainCommand(app, pretrainCommand);
  AnalysisCommand analysisCommand;
  CLI::App *analyze = nullptr, *suggest = nullptr;
  addAnalysisCommands(app, analysisCommand, analyze, suggest);
  TrainCommand trainCommand;
  auto* train = addTrainCommand(app, trainCommand);
  ExportCommand exportCommand;
  auto* exporter = addExportCommand(app, exportCommand);
  JobCommand jobCommand;
  auto* job = addJobCommand(app, jobCommand);
  SweepCommand sweepCommand;
  auto* sweep = addSweepCommand(app, sweepCommand);

  CLI11_PARSE(app, argc, argv);
  scalpel::initLogging(logLevel);
  if (threads > 0) {
    scalpel::useTorchThreads(threads);
  } else {
    scalpel::useAllCores();
  }
  const std::vector<std::string> arguments(argv, argv + argc);
  if (inspect->parsed()) return runInspectCommand(inspectCommand);
  if (convert->parsed()) return runConvertCommand(convertCommand);
  if (makeShift->parsed()) return runMakeShiftCommand(makeShiftCommand);
  if (preview->parsed()) return runPreviewCommand(previewCommand);
  if (shifts->parsed()) return runShiftsCommand();
  if (pretrain->parsed()) return runPretrainCommand(pretrainCommand);
  if (analyze->parsed()) return runAnalyzeCommand(analysisCommand);
  if (suggest->parsed()) return runSuggestCommand(analysisCommand);
  if (train->parsed()) return runTrainCommand(trainCommand, arguments);
  if (exporter->parsed()) return runExportCommand(exportCommand);
  if (job->parsed()) return runJobCommand(jobCommand);
  if (sweep->parsed()) return runSweepCommand(sweepCommand, arguments);
  return 0;
}
