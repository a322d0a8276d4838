// scalpel-cli: Scalpel's engine without a window (scripts, GPU servers, CI).

#include <CLI/CLI.hpp>

#include <filesystem>
#include <fstream>
#include <iomanip>
#include <iostream>

#include "cli_sweep.h"
#include "cli_train.h"

#include "analysis/advisor.h"
#include "analysis/gradient_profile.h"
#include "analysis/shift_analysis.h"
#include "data/data_request.h"
#include "data/data_source.h"
#include "io/analysis_format.h"
#include "data/shifts.h"
#include "io/image_export.h"
#include "io/layer_tree_format.h"
#include "model/model_inspection.h"
#include "scalpel/version.h"
#include "train/pretrain.h"
#include "app_paths.h"
#include "util/logging.h"
#include "util/threads.h"

int main(int argc, char** argv) {
  CLI::App app{"Scalpel: surgical fine-tuning of TorchScript models, from the command line"};
  app.set_version_flag("--version", std::string("scalpel-cli ") + scalpel::kVersion);
  std::string logLevel = "warn";
  app.add_option("--log-level", logLevel, "trace, debug, info, warn, error or off")
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error", "off"}));
  int threads = 0;
  app.add_option("--threads", threads, "torch threads (default: every core, shared among local processes)")
      ->check(CLI::Range(1, 1024));
  app.require_subcommand(1);

  auto* inspect = app.add_subcommand("inspect", "Print a model's layer tree in execution order");
  std::string modelPath;
  std::string shapeText;
  std::string device = "cpu";
  bool asJson = false;
  inspect->add_option("MODEL", modelPath, "TorchScript file (torch.jit.script(model).save(...))")
      ->required();
  inspect->add_option("--input-shape", shapeText,
                      "input shape with batch, e.g. 1,3,224,224 (default: stored with the model)");
  inspect->add_option("--device", device, "cpu, cuda or cuda:N");
  inspect->add_flag("--json", asJson, "print JSON instead of text");

  // make-shift: a shifted copy of a data set, written as an image folder a person can look at.
  auto* makeShift = app.add_subcommand("make-shift", "Write a shifted data set as an image folder");
  std::string data = "fashion-mnist";
  std::string split = "test";
  std::string shift;
  int severity = 3;
  std::uint64_t seed = 0;
  std::string out;
  std::size_t limit = 0;
  std::string groupsFile = scalpel::app::resourceDir() + "/shifts/fashion-mnist-superclasses.json";
  for (auto* command : {makeShift}) {
    command->add_option("--data", data, "fashion-mnist, an image folder or a .csv file");
    command->add_option("--split", split, "train or test (for fashion-mnist)");
  }
  makeShift->add_option("--shift", shift, "a shift name (scalpel-cli shifts lists them)")->required();
  makeShift->add_option("--severity", severity, "1 (mild) to 5 (strong)");
  makeShift->add_option("--seed", seed, "the same seed gives the same shifted set");
  makeShift->add_option("--out", out, "folder to write (subpopulation: source/ and target/)")->required();
  makeShift->add_option("--limit", limit, "write at most this many images (0: all)");
  makeShift->add_option("--groups", groupsFile, "super-classes for subpopulation (JSON)");

  // preview: clean images over each severity of a corruption, as one PNG grid.
  auto* preview = app.add_subcommand("preview", "Render clean vs shifted samples as a PNG grid");
  std::size_t count = 10;
  int scale = 3;
  preview->add_option("--data", data, "fashion-mnist, an image folder or a .csv file");
  preview->add_option("--split", split, "train or test (for fashion-mnist)");
  preview->add_option("--shift", shift, "an input-level shift name")->required();
  preview->add_option("--seed", seed, "the same seed gives the same picture");
  preview->add_option("--count", count, "images per row");
  preview->add_option("--scale", scale, "magnification")->check(CLI::Range(1, 16));
  preview->add_option("--out", out, "PNG file to write")->required();

  auto* shifts = app.add_subcommand("shifts", "List the shifts Scalpel can make");

  // pretrain: train a new (scripted, untrained) model from scratch, e.g. the demo model.
  auto* pretrain = app.add_subcommand("pretrain", "Train a new model from scratch on a data set");
  scalpel::PretrainOptions pretrainOptions;
  pretrain->add_option("MODEL", modelPath, "untrained TorchScript model")->required();
  pretrain->add_option("--data", pretrainOptions.data, "fashion-mnist, an image folder or a .csv file");
  pretrain->add_option("--epochs", pretrainOptions.epochs, "passes over the training data")->check(CLI::Range(1, 1000));
  pretrain->add_option("--batch-size", pretrainOptions.batchSize, "items per step")->check(CLI::Range(1, 65536));
  pretrain->add_option("--lr", pretrainOptions.learningRate, "peak learning rate (AdamW, cosine schedule)");
  pretrain->add_option("--seed", pretrainOptions.seed, "the same seed gives the same model");
  pretrain->add_option("--train-limit", pretrainOptions.trainLimit, "use at most this many training items");
  pretrain->add_option("--test-limit", pretrainOptions.testLimit, "use at most this many test items");
  pretrain->add_option("--device", pretrainOptions.device, "cpu, cuda or cuda:N");
  pretrain->add_option("--out", out, "where to save the trained model")->required();

  // analyze: per-layer shift of target data against source data or BatchNorm statistics.
  auto* analyze = app.add_subcommand("analyze", "Measure how far each layer's activations shift on target data");
  auto* suggest = app.add_subcommand("suggest", "Diagnose the shift and suggest which layers to train");
  std::string strategy = "auto";
  suggest->add_option("--strategy", strategy, "auto, auto-rgn, block:NAME, all or last");
  scalpel::DataRequest targetRequest;
  std::string sourceSpec;
  std::string sourceSplit = "train";
  std::string jsonLines;
  scalpel::AnalysisOptions analysisOptions;
  analysisOptions.maxBatches = 20;
  for (auto* command : {analyze, suggest}) {
    command->add_option("--model", modelPath, "TorchScript model")->required();
    command->add_option("--target", targetRequest.source, "fashion-mnist, an image folder or a .csv file");
    command->add_option("--split", targetRequest.split, "train or test (for fashion-mnist)");
    command->add_option("--regress", targetRequest.regressionTargets, "CSV columns to predict (comma-separated): a regression task")->delimiter(',');
    command->add_option("--shift", targetRequest.shift, "put this shift on the target first (scalpel-cli shifts)");
    command->add_option("--severity", targetRequest.severity, "1 (mild) to 5 (strong)");
    command->add_option("--seed", targetRequest.seed, "seed of the shift and of the sampled items");
    command->add_option("--source", sourceSpec, "the data the model was trained on (default: BatchNorm statistics)");
    command->add_option("--source-split", sourceSplit, "train or test (for fashion-mnist)");
    command->add_option("--batches", analysisOptions.maxBatches, "target batches (0: all)");
    command->add_option("--batch-size", analysisOptions.batchSize, "items per batch")->check(CLI::Range(2, 65536));
    command->add_option("--device", analysisOptions.device, "auto (CUDA when available), cpu, cuda or cuda:N");
  }
  analyze->add_option("--json", jsonLines, "write every snapshot to FILE as JSON lines");
  std::string saveReference;
  analyze->add_option("--save-reference", saveReference,
                      "with --source: save a copy of the model carrying the source statistics, so later analyses need no source data");

  scalpel::cli::TrainCommand trainCommand;
  auto* train = scalpel::cli::addTrainCommand(app, trainCommand);
  scalpel::cli::ExportCommand exportCommand;
  auto* exporter = scalpel::cli::addExportCommand(app, exportCommand);
  scalpel::cli::JobCommand jobCommand;
  auto* job = scalpel::cli::addJobCommand(app, jobCommand);
  scalpel::cli::SweepCommand sweepCommand;
  auto* sweep = scalpel::cli::addSweepCommand(app, sweepCommand);

  CLI11_PARSE(app, argc, argv);
  scalpel::initLogging(logLevel);
  if (threads > 0) {
    scalpel::useTorchThreads(threads);
  } else {
    scalpel::useAllCores();
  }

  const auto fail = [](const std::string& message) {
    std::cerr << "error: " << message << "\n";
    return 1;
  };
  if (train->parsed()) return scalpel::cli::runTrainCommand(trainCommand, std::vector<std::string>(argv, argv + argc));
  if (exporter->parsed()) return scalpel::cli::runExportCommand(exportCommand);
  if (job->parsed()) return scalpel::cli::runJobCommand(jobCommand);
  if (sweep->parsed()) return scalpel::cli::runSweepCommand(sweepCommand, std::vector<std::string>(argv, argv + argc));
  if (shifts->parsed()) {
    for (const auto& info : scalpel::shiftCatalogue()) {
      std::cout << info.name << std::string(info.name.size() < 20 ? 20 - info.name.size() : 1, ' ')
                << scalpel::shiftLevelName(info.level) << "   " << info.description
                << (info.usesSeverity ? " (severity 1-5)" : "") << "\n";
    }
    return 0;
  }
  if (makeShift->parsed() || preview->parsed()) {
    const auto loaded = scalpel::openDataSource(data, split);
    if (!loaded) return fail(loaded.error);
    for (const auto& warning : loaded.warnings) std::cerr << "warning: " << warning << "\n";
    const scalpel::Dataset& clean = *loaded.dataset;
    if (preview->parsed()) {
      std::vector<scalpel::Dataset> shifted;
      for (int level = 1; level <= 5; ++level) {
        auto result = scalpel::applyShift(clean, shift, level, seed);
        if (!result) return fail(result.error);
        shifted.push_back(std::move(*result.dataset));
        if (!scalpel::findShift(shift)->usesSeverity) break;
      }
      std::vector<const scalpel::Dataset*> rows{&clean};
      for (const auto& each : shifted) rows.push_back(&each);
      std::vector<std::size_t> items;
      for (std::size_t i = 0; i < std::min(count, clean.size()); ++i) items.push_back(i * clean.size() / std::min(count, clean.size()));
      if (auto problem = scalpel::writePreviewGrid(rows, items, scale, out); !problem.empty()) return fail(problem);
      std::cout << out << ": clean (top row), then " << shift << " at severity 1 to " << shifted.size() << "\n";
      return 0;
    }
    const scalpel::ShiftInfo* info = scalpel::findShift(shift);
    if (info && info->level == scalpel::ShiftLevel::Feature) {
      scalpel::SuperClasses classes;
      if (auto problem = scalpel::readSuperClasses(groupsFile, classes); !problem.empty()) return fail(problem);
      scalpel::SubpopulationData parts;
      if (auto problem = scalpel::subpopulationShift(clean, classes, parts); !problem.empty()) return fail(problem);
      const std::filesystem::path folder(out);
      for (const auto& [name, part] : {std::pair{"source", &parts.source}, std::pair{"target", &parts.target}}) {
        if (auto problem = scalpel::writeImageFolder(*part, folder / name, limit); !problem.empty()) return fail(problem);
        std::cout << (folder / name).string() << ": " << part->size() << " images in " << part->classNames.size() << " super-classes\n";
      }
      return 0;
    }
    const auto result = scalpel::applyShift(clean, shift, severity, seed);
    if (!result) return fail(result.error);
    for (const auto& note : result.notes) std::cout << note << "\n";
    if (auto problem = scalpel::writeImageFolder(*result.dataset, out, limit); !problem.empty()) return fail(problem);
    std::cout << out << ": " << (limit ? std::min(limit, result.dataset->size()) : result.dataset->size()) << " images of " << result.dataset->name << "\n";
    return 0;
  }
  if (analyze->parsed() || suggest->parsed()) {
    scalpel::Dataset target;
    scalpel::DataSummary targetSummary;
    scalpel::loadRequestedData(targetRequest, target, targetSummary);
    if (!targetSummary.ok) return fail(targetSummary.error);
    scalpel::Dataset source;
    if (!sourceSpec.empty()) {
      scalpel::DataSummary sourceSummary;
      // The same columns to predict as the target's: they are not features.
      scalpel::loadRequestedData(scalpel::DataRequest{sourceSpec, sourceSplit, {}, 3, 0, {}, {}, targetRequest.regressionTargets}, source, sourceSummary);
      if (!sourceSummary.ok) return fail(sourceSummary.error);
    }
    analysisOptions.seed = targetRequest.seed;
    std::ofstream lines;
    if (!jsonLines.empty()) {
      lines.open(jsonLines);
      if (!lines) return fail("cannot write " + jsonLines);
    }
    const auto analysis = scalpel::analyzeShift(modelPath, target, sourceSpec.empty() ? nullptr : &source, analysisOptions,
        [&](const scalpel::ShiftSnapshot& snapshot) {
          if (lines.is_open()) lines << scalpel::snapshotToJson(snapshot) << "\n" << std::flush;
        });
    if (!analysis.ok) return fail(analysis.error);
    if (analyze->parsed()) {
      std::cout << scalpel::analysisToText(analysis, targetSummary.description);
      if (!saveReference.empty()) {
        if (analysis.profile.empty()) return fail("--save-reference needs --source: there are no source statistics to save");
        if (auto problem = scalpel::saveModelWithReference(modelPath, analysis.profile, saveReference); !problem.empty()) return fail(problem);
        std::cout << "\n" << saveReference << ": the model with its source reference (" << analysis.profile.layers.size() << " layers)\n";
      }
      return 0;
    }
    const auto inspection = scalpel::inspectModel(modelPath, {{}, analysisOptions.device});
    if (!inspection.ok) return fail(inspection.error);
    scalpel::GradientProfile gradients;
    if (strategy == "auto-rgn") {
      scalpel::GradientOptions gradientOptions;
      gradientOptions.device = analysisOptions.device;
      gradientOptions.seed = targetRequest.seed;
      gradients = scalpel::gradientProfile(modelPath, target, gradientOptions);
      if (!gradients.ok) return fail(gradients.error);
    }
    const auto diagnosis = scalpel::diagnose(analysis, inspection.tree);
    scalpel::FreezePlan plan;
    if (auto problem = scalpel::planFreeze(strategy, inspection.tree, diagnosis, &gradients, plan); !problem.empty()) return fail(problem);
    std::cout << scalpel::adviceToText(diagnosis, plan);
    return 0;
  }
  if (pretrain->parsed()) {
    int lastPercent = -1;
    const auto result = scalpel::pretrainModel(modelPath, out, pretrainOptions, [&](const scalpel::PretrainProgress& p) {
      if (p.testAccuracy >= 0) {
        std::cout << "epoch " << p.epoch + 1 << "/" << p.epochs << ": test accuracy " << std::fixed << std::setprecision(2) << 100 * p.testAccuracy << "% after " << std::setprecision(0) << p.elapsedSeconds << " s\n" << std::flush;
        return;
      }
      const int percent = static_cast<int>(100 * p.step / std::max<std::size_t>(1, p.stepsPerEpoch));
      if (percent / 10 != lastPercent / 10) {
        std::cerr << "epoch " << p.epoch + 1 << "/" << p.epochs << " " << percent << "%  loss " << std::setprecision(3) << p.loss << "  about " << std::setprecision(0) << std::fixed << p.remainingSeconds << " s left\n";
        lastPercent = percent;
      }
    });
    if (!result.ok) return fail(result.error);
    std::cout << out << ": test accuracy " << std::fixed << std::setprecision(2) << 100 * result.testAccuracy << "%, trained in " << std::setprecision(0) << result.seconds << " s\n";
    return 0;
  }
  if (inspect->parsed()) {
    scalpel::InspectOptions options;
    options.device = device;
    if (!shapeText.empty()) {
      const auto shape = scalpel::parseShape(shapeText);
      if (!shape) {
        std::cerr << "error: --input-shape '" << shapeText
                  << "' is not a shape — give sizes separated by commas, e.g. 1,3,224,224\n";
        return 2;
      }
      options.inputShape = *shape;
    }
    const auto inspection = scalpel::inspectModel(modelPath, options);
    if (!inspection.ok) {
      std::cerr << "error: " << inspection.error << "\n";
      return 1;
    }
    std::cout << (asJson ? scalpel::inspectionToJson(inspection) + "\n"
                         : scalpel::inspectionToText(inspection));
  }
  return 0;
}
