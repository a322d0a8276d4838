#pragma once

// The CLI's analysis commands: `analyze` (each layer's shift on target data) and `suggest` (the
// diagnosis and a freeze plan). They share their options.

#include <CLI/CLI.hpp>

#include <string>

#include "analysis/shift_analysis.h"
#include "cli_model.h"
#include "data/data_request.h"
#include "io/session.h"
#include "train/trainer.h"

namespace scalpel::cli {

struct AnalysisCommand {
  std::string model;
  ModelOptions modelOptions;
  DataRequest target;
  std::string source;  // the data the model was trained on ("": BatchNorm statistics)
  std::string sourceSplit = "train";
  AnalysisOptions options;
  std::string jsonLines;          // analyze: every snapshot as a JSON line
  std::string saveReference;      // analyze: the model with the source statistics
  std::string strategy = "auto";  // suggest
  // suggest --strategy auto: the split its candidates train and are validated on, and their runs.
  TargetSplit split;
  TrainOptions train;
};
// Adds both commands; they fill the same `command`.
void addAnalysisCommands(CLI::App& app, AnalysisCommand& command, CLI::App*& analyze,
                         CLI::App*& suggest);
int runAnalyzeCommand(const AnalysisCommand& command);
int runSuggestCommand(const AnalysisCommand& command);

}  // namespace scalpel::cli
