#pragma once

// The CLI's model commands: `inspect` (a model's layer tree) and `pretrain` (train an untrained
// model from scratch, e.g. the demo).

#include <CLI/CLI.hpp>

#include <string>

#include "data/data_request.h"
#include "model/model_inspection.h"
#include "train/pretrain.h"

namespace scalpel::cli {

// The flags of every command that opens a model, beyond its file: which library architecture a
// checkpoint is (when several fit), its preprocessing, and a new head for the data's classes.
struct ModelOptions {
  std::string architecture;
  std::string preprocessing;  // "": as stored (a checkpoint: its architecture's, ImageNet's)
  std::vector<double> mean, std;
  bool newHead = false;
};
void addModelOptions(CLI::App* command, ModelOptions& options, bool withData);
// The choices those flags make: the new head takes `target`'s classes, "source" preprocessing the
// statistics of `source` (either may be null for a command without data). Returns "" or what is
// wrong.
std::string modelChoicesFrom(const ModelOptions& options, const DataSummary* target,
                             const Dataset* source, ModelChoices& out);

struct InspectCommand {
  std::string model;
  ModelOptions modelOptions;
  std::string shape;  // "1,3,224,224"
  std::string device = "cpu";
  bool json = false;
};
CLI::App* addInspectCommand(CLI::App& app, InspectCommand& command);
int runInspectCommand(const InspectCommand& command);

// `convert`: a checkpoint (state dict, safetensors) or any model as a TorchScript file with its
// preprocessing stored.
struct ConvertCommand {
  std::string model;
  std::string out;
  ModelOptions modelOptions;
};
CLI::App* addConvertCommand(CLI::App& app, ConvertCommand& command);
int runConvertCommand(const ConvertCommand& command);

struct PretrainCommand {
  std::string model;
  std::string out;
  PretrainOptions options;
};
CLI::App* addPretrainCommand(CLI::App& app, PretrainCommand& command);
int runPretrainCommand(const PretrainCommand& command);

}  // namespace scalpel::cli
