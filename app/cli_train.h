#pragma once

// The CLI's fine-tuning commands: `train` (from flags or a session) and `export`.

#include <CLI/CLI.hpp>

#include <string>

#include "cli_model.h"
#include "io/session.h"

namespace scalpel::cli {

struct TrainCommand {
  CLI::App* app = nullptr;
  CLI::Option* modelOption = nullptr;
  Session session;  // the flags land here (defaults: Session's own)
  std::string sessionFile;
  std::string source;
  ModelOptions modelOptions;  // given: replaces the session's model choices
  int probeEpochs = 2;
  std::string out;
  std::string reportFolder;
  std::string checkpoint;
  std::string metrics;  // JSON lines, one per evaluation
  int processes = 1;
  double bucketMegabytes = 4;
  double cacheBudgetMegabytes = 0;  // 0: TrainOptions' default  // --nproc: local processes to
                                    // start (this one only launches them)
};
CLI::App* addTrainCommand(CLI::App& app, TrainCommand& command);
// `arguments`: the whole command line, for --nproc to start its processes with.
int runTrainCommand(TrainCommand& command, const std::vector<std::string>& arguments);

struct ExportCommand {
  std::string model;
  std::string sessionFile;
  std::string out;
  std::string reportFolder;
};
CLI::App* addExportCommand(CLI::App& app, ExportCommand& command);
int runExportCommand(ExportCommand& command);

// `job`: a session as a self-contained job folder (distributed/job_folder.h).
struct JobCommand {
  std::string sessionFile;
  std::string out;
  int processes = 2;
  int machines = 1;
};
CLI::App* addJobCommand(CLI::App& app, JobCommand& command);
int runJobCommand(const JobCommand& command);

}  // namespace scalpel::cli
