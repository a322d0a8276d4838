#include "cli_analysis.h"

#include <fstream>

#include "analysis/advisor.h"
#include "analysis/gradient_profile.h"
#include "cli_output.h"
#include "io/analysis_format.h"
#include "workflow/fine_tuning.h"

namespace scalpel::cli {

namespace {

// What both commands start from: the model opened once, the target (and source) loaded, the
// target analysed.
struct Analysed {
  LoadedModel model;
  Dataset target, source;
  DataSummary targetSummary;
  ShiftAnalysis analysis;
};

int analyse(const AnalysisCommand& command, Analysed& out) {
  // The data first: a new head takes the target's classes, "source" preprocessing the source's
  // statistics.
  loadRequestedData(command.target, out.target, out.targetSummary);
  if (!out.targetSummary.ok) return fail(out.targetSummary.error);
  Dataset& source = out.source;
  if (!command.source.empty()) {
    DataSummary summary;
    // The same columns to predict as the target's: they are not features.
    loadRequestedData(DataRequest{command.source,
                                  command.sourceSplit,
                                  {},
                                  3,
                                  0,
                                  {},
                                  {},
                                  command.target.regressionTargets},
                      source, summary);
    if (!summary.ok) return fail(summary.error);
  }
  InspectOptions open;
  if (auto problem =
          modelChoicesFrom(command.modelOptions, &out.targetSummary, &source, open.choices);
      !problem.empty()) {
    return fail(problem);
  }
  out.model = LoadedModel::open(command.model, open);
  if (!out.model.ok()) return fail(out.model.error());
  for (const auto& note : out.model.inspection().notes) std::cerr << "note: " << note << "\n";
  if (auto note = fittingNote(out.targetSummary.itemShape, out.model.inspection().metadata);
      !note.empty()) {
    std::cerr << "note: " << note << "\n";
  }
  AnalysisOptions options = command.options;
  options.seed = command.target.seed;
  std::ofstream lines;
  if (!command.jsonLines.empty()) {
    lines.open(command.jsonLines);
    if (!lines) return fail("cannot write " + command.jsonLines);
  }
  out.analysis = analyzeShift(out.model, out.target, command.source.empty() ? nullptr : &source,
                              options, [&](const ShiftSnapshot& snapshot) {
                                if (lines.is_open())
                                  lines << snapshotToJson(snapshot) << "\n" << std::flush;
                              });
  if (!out.analysis.ok) return fail(out.analysis.error);
  return 0;
}

// suggest --strategy auto: the diagnosis, then its candidates tried on a split of the target.
int suggestValidatedPlan(const AnalysisCommand& command, const Analysed& analysed) {
  TargetData data = splitTarget(analysed.target, command.split, analysed.targetSummary.description);
  if (!data.ok) return fail(data.error);
  if (analysed.source.size()) {
    if (auto note = attachSource(data, analysed.source); !note.empty()) std::cout << note << "\n";
  }
  std::cout << data.train.size() << " items to train, " << data.validation.size()
            << " to validate on\n";
  TrainOptions options = command.train;
  options.device = command.options.device;
  options.seed = command.split.seed;
  const auto choice = choosePlan(
      analysed.model, "auto", data, analysed.source.size() ? &analysed.source : nullptr, options, 2,
      [](const std::string& line) { std::cout << line << "\n"
                                              << std::flush; }, nullptr,
      [](const std::string&, int, const TrainEvent& event) {
        if (event.kind == TrainEvent::Kind::Finished)
          std::cout << "  validation " << event.validation.scoreName() << " "
                    << percent(event.validation.score()) << "\n"
                    << std::flush;
      });
  if (!choice.ok) return fail(choice.error);
  std::cout << "\n"
            << searchTable(choice.search) << "\n"
            << adviceToText(choice.diagnosis, choice.plan);
  return 0;
}

}  // namespace

void addAnalysisCommands(CLI::App& app, AnalysisCommand& command, CLI::App*& analyze,
                         CLI::App*& suggest) {
  analyze = app.add_subcommand("analyze",
                               "Measure how far each layer's activations shift on target data");
  suggest = app.add_subcommand("suggest", "Diagnose the shift and suggest which layers to train");
  command.options.maxBatches = 20;
  for (auto* each : {analyze, suggest}) {
    each->add_option("--model", command.model,
                     "TorchScript model, state dict (.pth/.pt/.ckpt) or .safetensors")
        ->required();
    addModelOptions(each, command.modelOptions, true);
    each->add_option("--target", command.target.source,
                     "fashion-mnist, an image folder or a .csv file");
    each->add_option("--split", command.target.split, "train or test (for fashion-mnist)");
    each->add_option("--regress", command.target.regressionTargets,
                     "CSV columns to predict (comma-separated): a regression task")
        ->delimiter(',');
    each->add_option("--shift", command.target.shift,
                     "put this shift on the target first (scalpel-cli shifts)");
    each->add_option("--severity", command.target.severity, "1 (mild) to 5 (strong)");
    each->add_option("--seed", command.target.seed, "seed of the shift and of the sampled items");
    each->add_option("--source", command.source,
                     "the data the model was trained on (default: BatchNorm statistics)");
    each->add_option("--source-split", command.sourceSplit, "train or test (for fashion-mnist)");
    each->add_option("--batches", command.options.maxBatches, "target batches (0: all)");
    each->add_option("--batch-size", command.options.batchSize, "items per batch")
        ->check(CLI::Range(2, 65536));
    each->add_option("--device", command.options.device,
                     "auto (CUDA when available), cpu, cuda or cuda:N");
  }
  analyze->add_option("--json", command.jsonLines, "write every snapshot to FILE as JSON lines");
  analyze->add_option("--save-reference", command.saveReference,
                      "with --source: save a copy of the model carrying the source statistics, so "
                      "later analyses need no source data");
  suggest->add_option("--strategy", command.strategy,
                      "auto (candidate plans tried on a validation split), diagnosis (the "
                      "analysis' plan alone, no training), auto-rgn, recalibrate, block:NAME, all "
                      "or last");
  suggest->add_option("--train-per-class", command.split.trainPerClass,
                      "auto: labelled items per class its candidates train on");
  suggest->add_option("--validation-per-class", command.split.validationPerClass,
                      "auto: items per class they are compared on");
  suggest->add_option("--split-seed", command.split.seed, "auto: seed of the split");
  suggest->add_option("--epochs", command.train.epochs,
                      "auto: the run's epochs (the first round trains a tenth of them)");
  suggest->add_option("--lr", command.train.learningRate,
                      "auto: the learning rate (candidates also try a tenth of it)");
  suggest
      ->add_option_function<double>(
          "--keep-source",
          [&command](double points) { command.train.maxSourceDrop = points / 100; },
          "auto with --source: rule out plans that lose more than this many points of source "
          "accuracy")
      ->check(CLI::Range(0.0, 100.0));
}

int runAnalyzeCommand(const AnalysisCommand& command) {
  if (!command.saveReference.empty() && command.source.empty()) {
    return fail("--save-reference needs --source: there are no source statistics to save");
  }
  Analysed analysed;
  if (const int status = analyse(command, analysed)) return status;
  const auto& analysis = analysed.analysis;
  std::cout << analysisToText(analysis, analysed.targetSummary.description);
  if (!command.saveReference.empty()) {
    if (auto problem =
            saveModelWithReference(analysed.model, analysis.profile, command.saveReference);
        !problem.empty())
      return fail(problem);
    std::cout << "\n"
              << command.saveReference << ": the model with its source reference ("
              << analysis.profile.layers.size() << " layers)\n";
  }
  return 0;
}

int runSuggestCommand(const AnalysisCommand& command) {
  Analysed analysed;
  if (const int status = analyse(command, analysed)) return status;
  if (command.strategy == "auto") return suggestValidatedPlan(command, analysed);
  GradientProfile gradients;
  if (command.strategy == "auto-rgn") {
    GradientOptions options;
    options.device = command.options.device;
    options.seed = command.target.seed;
    gradients = gradientProfile(analysed.model, analysed.target, options);
    if (!gradients.ok) return fail(gradients.error);
  }
  const auto diagnosis = diagnose(analysed.analysis, analysed.model.tree());
  FreezePlan plan;
  const std::string strategy = command.strategy == "diagnosis" ? "auto" : command.strategy;
  if (auto problem = planFreeze(strategy, analysed.model.tree(), diagnosis, &gradients, plan);
      !problem.empty())
    return fail(problem);
  std::cout << adviceToText(diagnosis, plan);
  return 0;
}

}  // namespace scalpel::cli
