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
};
CLI::App* addTrainCommand(CLI::App& app, TrainCommand& command);
int runTrainCommand(TrainCommand& command);

struct ExportCommand {
  std::string model;
  std::string sessionFile;
  std::string out;
  std::string reportFolder;
};
CLI::App* addExportCommand(CLI::App& app, ExportCommand& command);
int runExportCommand(ExportCommand& command);

}  // namespace scalpel::cli
