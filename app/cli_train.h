#pragma once

// The CLI's fine-tuning commands: `train` (from flags or a session) and `export`.

#include <CLI/CLI.hpp>

#include <string>

#include "io/session.h"

namespace scalpel::cli {

struct TrainCommand {
  CLI::App* app = nullptr;
  CLI::Option* modelOption = nullptr;
  Session session;  // the flags land here (defaults: Session's own)
  std::string sessionFile;
  std::string source;
  int probeEpochs = 2;
  std::string out;
  std::string reportFolder;
  std::string checkpoint;
  int processes = 1;
  double bucketMegabytes = 4;  // --nproc: local processes to start (this one only launches them)
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

}  // namespace scalpel::cli
