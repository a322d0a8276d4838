#include "cli_train.h"

#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <sstream>

#include "cli_output.h"
#include "data/data_request.h"
#include "distributed/collective.h"
#include "distributed/launch_environment.h"
#include "distributed/local_launcher.h"
#include "io/job_folder.h"
#include "io/model_export.h"
#include "io/run_report.h"
#include "io/session.h"
#include "scalpel/version.h"
#include "stop_signals.h"
#include "util/device_info.h"
#include "workflow/training_run.h"

namespace fs = std::filesystem;

namespace scalpel::cli {

namespace {

// "[#########...........]  45%" for a terminal; nothing when stderr is a file or a pipe.
void drawProgress(const TrainEvent& event) {
  static const bool terminal = isatty(fileno(stderr));
  if (!terminal || event.totalSteps == 0) return;
  const int width = 30;
  const int filled = static_cast<int>(width * event.step / event.totalSteps);
  std::cerr << "\r[" << std::string(filled, '#') << std::string(width - filled, '.') << "] "
            << std::setw(3) << 100 * event.step / event.totalSteps << "%  loss " << std::fixed
            << std::setprecision(3) << event.loss << "  " << std::setprecision(0)
            << event.samplesPerSecond << " samples/s  ~" << event.remainingSeconds << " s left   "
            << std::flush;
  if (event.step == event.totalSteps) std::cerr << "\r" << std::string(90, ' ') << "\r";
}

// `scalpel-cli train --nproc N ...`: the same command line without --nproc, in N processes.
int launchWorkers(const TrainCommand& command, const std::vector<std::string>& arguments,
                  std::chrono::seconds timeout) {
  LocalLaunch launch;
  launch.grace =
      timeout + std::chrono::seconds(5);  // as long as the others take to notice a failure
  launch.program = fs::read_symlink("/proc/self/exe").string();
  launch.processes = command.processes;
  for (std::size_t i = 1; i < arguments.size(); ++i) {
    if (arguments[i] == "--nproc") {
      ++i;  // and its value
    } else if (arguments[i].rfind("--nproc=", 0) != 0) {
      launch.arguments.push_back(arguments[i]);
    }
  }
  std::cout << "starting " << launch.processes
            << " processes on this machine (Gloo over loopback); rank 0 reports\n"
            << std::flush;
  const auto outcome = launchLocalProcesses(launch, [](int rank, int pid) {
    std::cout << "rank " << rank << ": process " << pid << "\n" << std::flush;
  });
  if (outcome.exitCode != 0)
    std::cerr << (outcome.stopSignal ? "" : "error: ") << outcome.message << "\n";
  return outcome.exitCode;
}

}  // namespace

CLI::App* addTrainCommand(CLI::App& app, TrainCommand& command) {
  auto* train = app.add_subcommand("train", "Fine-tune a model on target data under a freeze plan");
  command.app = train;
  Session& s = command.session;
  train->add_option("--session", command.sessionFile,
                    "session file: its settings are the defaults (flags override them); the run is "
                    "added to it and it is autosaved while training");
  command.modelOption = train->add_option(
      "--model", s.modelPath,
      "pretrained model: TorchScript, state dict (.pth/.pt/.ckpt) or .safetensors");
  addModelOptions(train, command.modelOptions, true);
  train->add_option("--target", s.target.source, "fashion-mnist, an image folder or a .csv file");
  train->add_option("--split", s.target.split, "train or test (for fashion-mnist)");
  train
      ->add_option("--regress", s.target.regressionTargets,
                   "CSV columns to predict (comma-separated): a regression task, trained with mse")
      ->delimiter(',');
  train->add_option("--shift", s.target.shift,
                    "put this shift on the target first (scalpel-cli shifts)");
  train->add_option("--severity", s.target.severity, "1 (mild) to 5 (strong)");
  train->add_option("--data-seed", s.target.seed, "seed of the shift");
  train->add_option("--source", command.source,
                    "data the model was trained on, for the analysis of --strategy auto (default: "
                    "BatchNorm statistics)");
  train->add_option("--train-per-class", s.split.trainPerClass,
                    "labelled target items per class to train on (regression: in all)");
  train->add_option("--validation-per-class", s.split.validationPerClass,
                    "items per class to choose the best state with (regression: in all; the rest "
                    "is the test split)");
  train->add_option("--split-seed", s.split.seed, "seed of the split");
  train->add_option("--strategy", s.strategy,
                    "auto (candidate plans tried on the validation split), diagnosis (the "
                    "analysis' plan alone), auto-rgn, probe, recalibrate, all, last, block:NAME, "
                    "or manual (the session's plan as it is)");
  train
      ->add_option_function<double>(
          "--keep-source", [&s](double points) { s.options.maxSourceDrop = points / 100; },
          "--strategy auto with --source: rule out plans that lose more than this many points "
          "of source accuracy")
      ->check(CLI::Range(0.0, 100.0));
  train->add_option("--probe-epochs", command.probeEpochs,
                    "epochs of each block's run for --strategy probe");
  TrainOptions& o = s.options;
  train->add_option("--optimizer", o.optimizer, "adam, adamw or sgd");
  train->add_option("--lr", o.learningRate, "learning rate");
  train->add_option("--weight-decay", o.weightDecay, "weight decay");
  train->add_option("--momentum", o.momentum, "momentum (sgd)");
  train->add_option("--schedule", o.schedule, "constant or cosine");
  train->add_option("--warmup", o.warmupFraction, "warm-up, as a fraction of all steps");
  train->add_option("--batch-size", o.batchSize, "items per step")->check(CLI::Range(1, 65536));
  train->add_option("--epochs", o.epochs, "passes over the training split");
  train->add_option("--max-steps", o.maxSteps,
                    "a step budget instead of epochs (0: epochs decide)");
  train->add_option("--loss", o.loss,
                    "cross-entropy or mse (for class labels; regression always uses mse)");
  train->add_option("--evaluate-every", o.evaluateEverySteps,
                    "evaluate every N steps (0: every epoch)");
  train->add_option(
      "--select-by", o.selectBy,
      "accuracy (R² for regression) or loss: the validation metric that picks the best state");
  train->add_option("--patience", o.patience,
                    "stop after N evaluations without improvement (0: never)");
  auto* bnEval =
      train->add_flag("--bn-eval", o.batchNormEval,
                      "keep every BatchNorm in eval mode (the paper's protocol; the default)");
  train
      ->add_flag_callback(
          "--bn-train", [&o] { o.batchNormEval = false; },
          "put the trainable blocks' BatchNorms in train mode: their statistics follow the target "
          "(one process only)")
      ->excludes(bnEval);
  train->add_flag_callback(
      "--no-frozen-cache", [&o] { o.cacheFrozenPart = false; },
      "compute the frozen layers in front of the trainable ones every step, instead of once per "
      "item");
  train->add_option("--cache-budget-mb", command.cacheBudgetMegabytes,
                    "memory the frozen part's cache may take (default: half of what is free)");
  train->add_option("--seed", o.seed, "the same seed gives the same run");
  train->add_option("--device", o.device, "auto (CUDA when available), cpu, cuda or cuda:N");
  train->add_option("--precision", o.precision,
                    "fp32, or bf16 (autocast: convolutions and matrix products in bfloat16)");
  train->add_flag("--channels-last", o.channelsLast,
                  "NHWC layout for convolutional models (faster on tensor cores)");
  train->add_option(
      "--data-path", o.dataPath,
      "auto, streamed or synchronous: how batches reach the device (see docs/performance.md)");
  train->add_option("--out", command.out,
                    "where to write the tuned model (with its report inside)");
  train->add_option("--report", command.reportFolder,
                    "also write the report as Markdown with PNG plots into this folder");
  train->add_option("--checkpoint", command.checkpoint,
                    "write the best state so far here at every evaluation that improves it "
                    "(default for several processes: OUT's name with -checkpoint)");
  train->add_option(
      "--metrics", command.metrics,
      "append a JSON line per evaluation to this file as the run goes (a metrics log)");
  train
      ->add_option("--nproc", command.processes,
                   "train with N processes on this machine (data-parallel, Gloo); under torchrun "
                   "or srun leave it out: RANK, WORLD_SIZE, MASTER_ADDR and MASTER_PORT say it")
      ->check(CLI::Range(1, 256));
  train
      ->add_option("--bucket-mb", command.bucketMegabytes,
                   "several processes: gradients travel in buckets of this many MB, each sent "
                   "while backward goes on")
      ->check(CLI::Range(0.001, 1024.0));
  return train;
}

namespace {

// The session file's settings, with the flags given on the command line on top.
int mergeSessionFile(TrainCommand& command) {
  Session stored;
  const auto loaded = loadSession(command.sessionFile, stored);
  if (!loaded.ok) return fail(loaded.error);
  for (const auto& warning : loaded.warnings) std::cerr << "warning: " << warning << "\n";
  const Session flags = command.session;
  Session& session = command.session;
  session = stored;
  const auto given = [&](const char* name) { return command.app->count(name) > 0; };
  if (given("--model")) session.modelPath = flags.modelPath;
  if (given("--target")) session.target.source = flags.target.source;
  if (given("--split")) session.target.split = flags.target.split;
  if (given("--regress")) session.target.regressionTargets = flags.target.regressionTargets;
  if (given("--shift")) session.target.shift = flags.target.shift;
  if (given("--severity")) session.target.severity = flags.target.severity;
  if (given("--data-seed")) session.target.seed = flags.target.seed;
  if (given("--train-per-class")) session.split.trainPerClass = flags.split.trainPerClass;
  if (given("--validation-per-class"))
    session.split.validationPerClass = flags.split.validationPerClass;
  if (given("--split-seed")) session.split.seed = flags.split.seed;
  if (given("--strategy")) session.strategy = flags.strategy;
  TrainOptions& o = session.options;
  const TrainOptions& f = flags.options;
  if (given("--optimizer")) o.optimizer = f.optimizer;
  if (given("--lr")) o.learningRate = f.learningRate;
  if (given("--weight-decay")) o.weightDecay = f.weightDecay;
  if (given("--momentum")) o.momentum = f.momentum;
  if (given("--schedule")) o.schedule = f.schedule;
  if (given("--warmup")) o.warmupFraction = f.warmupFraction;
  if (given("--batch-size")) o.batchSize = f.batchSize;
  if (given("--epochs")) o.epochs = f.epochs;
  if (given("--max-steps")) o.maxSteps = f.maxSteps;
  if (given("--loss")) o.loss = f.loss;
  if (given("--evaluate-every")) o.evaluateEverySteps = f.evaluateEverySteps;
  if (given("--select-by")) o.selectBy = f.selectBy;
  if (given("--patience")) o.patience = f.patience;
  if (given("--bn-eval") || given("--bn-train")) o.batchNormEval = f.batchNormEval;
  if (given("--keep-source")) o.maxSourceDrop = f.maxSourceDrop;
  if (given("--seed")) o.seed = f.seed;
  if (given("--device")) o.device = f.device;
  if (given("--precision")) o.precision = f.precision;
  if (given("--channels-last")) o.channelsLast = f.channelsLast;
  if (given("--data-path")) o.dataPath = f.dataPath;
  if (given("--no-frozen-cache")) o.cacheFrozenPart = f.cacheFrozenPart;
  return 0;
}

// The model flags, when given, replace the session's choices. A new head takes the target's
// classes and "source" preprocessing the source's statistics, so those load the data first.
int resolveModelChoices(TrainCommand& command) {
  const ModelOptions& o = command.modelOptions;
  const bool given = !o.architecture.empty() || !o.preprocessing.empty() || o.newHead;
  if (!given) return 0;
  Session& session = command.session;
  Dataset target, source;
  DataSummary targetSummary, sourceSummary;
  if (o.newHead) {
    loadRequestedData(session.target, target, targetSummary);
    if (!targetSummary.ok) return fail(targetSummary.error);
  }
  if (o.preprocessing == "source" && !command.source.empty()) {
    loadRequestedData(
        DataRequest{command.source, "train", {}, 3, 0, {}, {}, session.target.regressionTargets},
        source, sourceSummary);
    if (!sourceSummary.ok) return fail(sourceSummary.error);
  }
  if (auto problem = modelChoicesFrom(o, o.newHead ? &targetSummary : nullptr,
                                      sourceSummary.ok ? &source : nullptr, session.modelChoices);
      !problem.empty()) {
    return fail(problem);
  }
  return 0;
}

// What the console shows of a run as it goes: the status lines, the diagnosis and plan, a line
// per evaluation and (on a terminal) a progress bar.
TrainingHooks consoleHooks(const TrainCommand& command, Session& session, bool rankZero) {
  TrainingHooks hooks;
  hooks.status = [](const std::string& line) { std::cout << line << "\n" << std::flush; };
  hooks.planned = [](const PlanChoice& choice) {
    if (choice.diagnosed) {
      std::cout << "diagnosis: " << choice.diagnosis.summary << "\n";
      for (const auto& line : choice.diagnosis.evidence) std::cout << "  - " << line << "\n";
    }
    if (!choice.search.candidates.empty()) std::cout << searchTable(choice.search);
    std::cout << "plan (" << choice.plan.strategy << "): " << choice.plan.explanation << "\n"
              << std::flush;
  };
  hooks.candidateEvent = [](const std::string&, int, const TrainEvent& event) {
    if (event.kind == TrainEvent::Kind::Finished)
      std::cout << "  validation " << event.validation.scoreName() << " "
                << percent(event.validation.score()) << "\n"
                << std::flush;
  };
  hooks.event = [rankZero](const TrainEvent& event) {
    if (event.kind == TrainEvent::Kind::Step) {
      if (rankZero) drawProgress(event);  // one progress bar on the terminal they share
      return;
    }
    if (event.kind != TrainEvent::Kind::Evaluation) return;
    std::cout << "epoch " << event.epoch + 1 << " step " << event.step << "/" << event.totalSteps
              << ": validation loss " << std::fixed << std::setprecision(4) << event.validation.loss
              << ", " << event.validation.scoreName() << " " << percent(event.validation.score())
              << (event.best ? "  (best)" : "") << "\n"
              << std::flush;
  };
  // The session file follows the run (autosaved at every evaluation).
  hooks.sessionChanged = [&command, &session](const Session& changed) {
    session = changed;
    if (command.sessionFile.empty()) return;
    if (auto problem = saveSession(session, command.sessionFile); !problem.empty())
      std::cerr << "warning: autosave failed: " << problem << "\n";
  };
  return hooks;
}

void printSummary(const TrainCommand& command, const FineTuneRun& run) {
  const TrainResult& result = run.result;
  std::cout << run.report.outcome << " after " << result.steps << " steps in " << std::fixed
            << std::setprecision(1) << result.seconds << " s on " << result.device << " in "
            << result.precision
            << (result.batchSize ? ", batch " + std::to_string(result.batchSize) : "") << "\n";
  if (!result.error.empty()) std::cout << "  " << result.error << "\n";
  if (!result.note.empty()) std::cout << "  note: " << result.note << "\n";
  std::cout << "trained " << result.trainableParameters << " of "
            << result.trainableParameters + result.frozenParameters << " parameters\n";
  if (!result.frozenCache.empty()) std::cout << "frozen part: " << result.frozenCache << "\n";
  if (result.resumedEpochs > 0) {
    std::cout << "went on from the search's last run of the plan, after " << result.resumedEpochs
              << (result.resumedEpochs == 1 ? " epoch\n" : " epochs\n");
  }
  if (result.processes > 1) {
    std::cout << "on " << result.processes << " processes: each all-reduced "
              << result.gradientBytesReduced << " bytes of gradients in " << result.steps
              << " steps (" << (result.steps ? result.gradientBytesReduced / result.steps : 0)
              << " per step, in " << result.gradientBuckets
              << " buckets: the trainable parameters only)\n";
  }
  const auto change = [](const char* split, const Evaluation& before, const Evaluation& after) {
    std::cout << split << " " << after.scoreName() << " " << percent(before.score()) << " -> "
              << percent(after.score());
    if (after.regression)
      std::cout << " (mean absolute error " << std::setprecision(4) << before.meanAbsoluteError
                << " -> " << after.meanAbsoluteError << ")";
    std::cout << "\n";
  };
  change("validation", result.validationBefore, result.validationAfter);
  if (result.testAfter.items) change("test", result.testBefore, result.testAfter);
  if (result.sourceAfter.items) change("source", result.sourceBefore, result.sourceAfter);
  std::cout << command.out << ": the tuned model, with its report inside\n";
  if (!command.reportFolder.empty())
    std::cout << (fs::path(command.reportFolder) / "report.md").string() << ": the report\n";
}

}  // namespace

int runTrainCommand(TrainCommand& command, const std::vector<std::string>& arguments) {
  LaunchEnvironment launch;
  if (auto problem = readLaunchEnvironment(launch); !problem.empty()) return fail(problem);
  if (command.processes > 1) {
    if (launch.distributed())
      return fail("--nproc starts its own processes, but this one already runs as " +
                  launch.describe() + " of a launcher — leave --nproc out");
    return launchWorkers(command, arguments, launch.timeout);
  }
  std::shared_ptr<Collective> collective;
  if (launch.distributed()) {
    std::string error;
    collective = Collective::connect(launch, error);
    if (!collective) return fail(error);
    if (launch.rank != 0) std::cout.setstate(std::ios::failbit);  // rank 0 speaks for all
  }
  const bool rankZero = launch.rank == 0;
  if (!command.sessionFile.empty() && fs::exists(command.sessionFile)) {
    if (const int status = mergeSessionFile(command)) return status;
  }
  Session& session = command.session;
  if (session.modelPath.empty())
    return fail("no model: give --model MODEL (or a --session that names one)");
  if (command.out.empty()) {
    const fs::path model(session.modelPath);
    command.out = (model.parent_path() / (model.stem().string() + "-tuned.pt")).string();
  }
  if (collective && command.checkpoint.empty()) {
    const fs::path out(command.out);
    command.checkpoint = (out.parent_path() / (out.stem().string() + "-checkpoint.pt")).string();
  }
  session.modelPath = fs::absolute(session.modelPath).string();
  if (const int status = resolveModelChoices(command)) return status;
  // Once, for every stage.
  const LoadedModel model =
      LoadedModel::open(session.modelPath, InspectOptions{{}, "cpu", session.modelChoices});
  if (!model.ok()) return fail(model.error());
  session.modelFingerprint = model.fingerprint();
  if (!command.source.empty()) {  // reference statistics for the analysis of --strategy auto
    session.reference = "data";
    session.source =
        DataRequest{command.source, "train", {}, 3, 0, {}, {}, session.target.regressionTargets};
  }

  if (command.cacheBudgetMegabytes > 0) {
    session.options.cacheBudgetBytes = static_cast<std::size_t>(command.cacheBudgetMegabytes * 1e6);
  }
  TrainingRequest request;
  request.session = session;
  request.model = &model;
  request.probeEpochs = command.probeEpochs;
  request.collective = collective;
  request.checkpointPath = command.checkpoint;
  request.metricsPath = command.metrics;
  request.bucketMegabytes = command.bucketMegabytes;
  static TrainControl control;  // lives as long as the process: the signal watcher holds it
  cancelTrainingOnStopSignals(control, rankZero);
  const auto outcome =
      runTraining(std::move(request), consoleHooks(command, session, rankZero), &control);
  const FineTuneRun& run = outcome.run;
  const TrainResult& result = run.result;
  if (!rankZero) {  // rank 0 writes the session, the model and the report
    if (!result.ok && !result.cancelled && !outcome.error.empty())
      std::cerr << "error: " << launch.describe() << ": " << outcome.error << "\n";
    return result.ok ? 0 : 1;
  }
  if (!result.tunedModel) return fail(outcome.error);
  if (auto problem = exportTunedModel(*result.tunedModel, runReportToJson(run.report), command.out);
      !problem.empty())
    return fail(problem);
  session.runs.back().tunedModel = fs::absolute(command.out).string();
  if (!command.sessionFile.empty()) {
    if (auto problem = saveSession(session, command.sessionFile); !problem.empty())
      std::cerr << "warning: autosave failed: " << problem << "\n";
  }
  if (!command.reportFolder.empty()) {
    if (auto problem = writeReportFolder(run.report, command.reportFolder); !problem.empty())
      return fail(problem);
  }
  printSummary(command, run);
  return result.ok ? 0 : 1;
}

CLI::App* addExportCommand(CLI::App& app, ExportCommand& command) {
  auto* exporter = app.add_subcommand("export", "Export a tuned model and its report");
  auto* model = exporter->add_option("--model", command.model,
                                     "a tuned model written by scalpel-cli train or the app");
  auto* session = exporter->add_option("--session", command.sessionFile,
                                       "export the session's last finished run instead");
  model->excludes(session);
  exporter->add_option("--out", command.out, "where to write the model (with its report inside)");
  exporter->add_option("--report", command.reportFolder,
                       "write the report as Markdown with PNG plots into this folder");
  return exporter;
}

int runExportCommand(ExportCommand& command) {
  std::string modelPath = command.model;
  if (!command.sessionFile.empty()) {
    Session session;
    const auto loaded = loadSession(command.sessionFile, session);
    if (!loaded.ok) return fail(loaded.error);
    for (auto it = session.runs.rbegin(); it != session.runs.rend() && modelPath.empty(); ++it) {
      if (!it->tunedModel.empty()) modelPath = it->tunedModel;
    }
    if (modelPath.empty())
      return fail(command.sessionFile +
                  " has no finished run to export — train first (scalpel-cli train --session " +
                  command.sessionFile + ")");
  }
  if (modelPath.empty()) return fail("give --model FILE or --session FILE");
  if (command.out.empty() && command.reportFolder.empty())
    return fail("nothing to do: give --out FILE and/or --report FOLDER");
  std::string reportJson;
  if (auto problem = readEmbeddedReport(modelPath, reportJson); !problem.empty())
    return fail(problem);
  if (reportJson.empty())
    return fail(modelPath +
                " carries no Scalpel report — was it written by scalpel-cli train or the app?");
  RunReport report;
  if (auto problem = parseRunReport(reportJson, report); !problem.empty())
    return fail(modelPath + ": " + problem);
  if (!command.out.empty()) {
    std::ifstream in(modelPath, std::ios::binary);
    const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (auto problem = exportTunedModel(bytes, reportJson, command.out); !problem.empty())
      return fail(problem);
    std::cout << command.out << ": the tuned model, with its report inside\n";
  }
  if (!command.reportFolder.empty()) {
    if (auto problem = writeReportFolder(report, command.reportFolder); !problem.empty())
      return fail(problem);
    std::cout << (fs::path(command.reportFolder) / "report.md").string() << ": the report ("
              << report.outcome << ", test " << report.testAfter.scoreName() << " "
              << percent(report.testBefore.score()) << " -> " << percent(report.testAfter.score())
              << ")\n";
  }
  return 0;
}

CLI::App* addJobCommand(CLI::App& app, JobCommand& command) {
  auto* job = app.add_subcommand(
      "job", "Write a session as a training job folder for torchrun, Slurm or this machine");
  job->add_option("--session", command.sessionFile,
                  "the session to train (its model, data, plan and options)")
      ->required();
  job->add_option("--out", command.out, "a new or empty folder for the job")->required();
  job->add_option("--nproc", command.processes, "processes per machine")->check(CLI::Range(1, 256));
  job->add_option("--nodes", command.machines, "machines")->check(CLI::Range(1, 4096));
  return job;
}

int runJobCommand(const JobCommand& command) {
  Session session;
  const auto loaded = loadSession(command.sessionFile, session);
  if (!loaded.ok) return fail(loaded.error);
  for (const auto& missing : loaded.missing) return fail(missing);
  JobSettings settings;
  settings.processes = command.processes;
  settings.machines = command.machines;
  settings.scalpelCli = fs::read_symlink("/proc/self/exe").string();
  if (auto problem = writeJobFolder(session, command.out, settings); !problem.empty())
    return fail(problem);
  std::cout << command.out << ": the job (" << command.machines * command.processes
            << " processes); run " << (fs::path(command.out) / "run-local.sh").string()
            << " here, run-torchrun.sh or run-slurm.sbatch elsewhere (see its README.md)\n";
  return 0;
}

}  // namespace scalpel::cli
