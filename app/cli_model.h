#pragma once

// The CLI's model commands: `inspect` (a model's layer tree) and `pretrain` (train an untrained
// model from scratch, e.g. the demo).

#include <CLI/CLI.hpp>

#include <string>

#include "train/pretrain.h"

namespace scalpel::cli {

struct InspectCommand {
  std::string model;
  std::string shape;  // "1,3,224,224"
  std::string device = "cpu";
  bool json = false;
};
CLI::App* addInspectCommand(CLI::App& app, InspectCommand& command);
int runInspectCommand(const InspectCommand& command);

struct PretrainCommand {
  std::string model;
  std::string out;
  PretrainOptions options;
};
CLI::App* addPretrainCommand(CLI::App& app, PretrainCommand& command);
int runPretrainCommand(const PretrainCommand& command);

}  // namespace scalpel::cli
