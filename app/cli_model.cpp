#include "cli_model.h"

#include <iomanip>
#include <iostream>

#include "cli_output.h"
#include "io/layer_tree_format.h"
#include "io/model_export.h"
#include "model/loaded_model.h"
#include "model/model_inspection.h"

namespace scalpel::cli {

namespace {

const char* const kModelHelp =
    "TorchScript file, state dict (.pth/.pt/.ckpt from torch.save) or .safetensors";

}  // namespace

void addModelOptions(CLI::App* command, ModelOptions& options, bool withData) {
  command->add_option("--architecture", options.architecture,
                      "the library architecture of a checkpoint that several fit, e.g. resnet18");
  command->add_option("--preprocessing", options.preprocessing,
                      withData ? "imagenet, none, source (the --source data's mean and std) or "
                                 "custom (--mean, --std); default: as stored with the model"
                               : "imagenet, none or custom (--mean, --std); default: as stored");
  command->add_option("--mean", options.mean, "per-channel mean for --preprocessing custom")
      ->delimiter(',');
  command->add_option("--std", options.std, "per-channel std for --preprocessing custom")
      ->delimiter(',');
  if (withData) {
    command->add_flag("--new-head", options.newHead,
                      "replace the model's last Linear by a new one for the data's classes");
  }
}

std::string modelChoicesFrom(const ModelOptions& options, const DataSummary* target,
                             const Dataset* source, ModelChoices& out) {
  out.architecture = options.architecture;
  out.preprocessing = options.preprocessing;
  out.mean = options.mean;
  out.std = options.std;
  if (options.preprocessing == "source") {
    if (!source || source->size() == 0) {
      return "--preprocessing source needs the data the model was trained on: give --source";
    }
    channelStatistics(*source, out.mean, out.std);
  } else if (options.preprocessing != "custom" && (!options.mean.empty() || !options.std.empty())) {
    return "--mean and --std go with --preprocessing custom";
  }
  if (options.newHead) {
    if (!target || target->classNames.empty()) {
      return "--new-head needs classified target data (its classes become the head's outputs)";
    }
    out.newHeadClasses = target->classNames;
  }
  return {};
}

CLI::App* addInspectCommand(CLI::App& app, InspectCommand& command) {
  auto* inspect = app.add_subcommand("inspect", "Print a model's layer tree in execution order");
  inspect->add_option("MODEL", command.model, kModelHelp)->required();
  addModelOptions(inspect, command.modelOptions, false);
  inspect->add_option("--input-shape", command.shape,
                      "input shape with batch, e.g. 1,3,224,224 (default: stored with the model)");
  inspect->add_option("--device", command.device, "cpu, cuda or cuda:N");
  inspect->add_flag("--json", command.json, "print JSON instead of text");
  return inspect;
}

int runInspectCommand(const InspectCommand& command) {
  InspectOptions options;
  options.device = command.device;
  if (!command.shape.empty()) {
    const auto shape = parseShape(command.shape);
    if (!shape) {
      std::cerr << "error: --input-shape '" << command.shape
                << "' is not a shape — give sizes separated by commas, e.g. 1,3,224,224\n";
      return 2;
    }
    options.inputShape = *shape;
  }
  if (auto problem = modelChoicesFrom(command.modelOptions, nullptr, nullptr, options.choices);
      !problem.empty()) {
    return fail(problem);
  }
  const auto inspection = inspectModel(command.model, options);
  if (!inspection.ok) return fail(inspection.error);
  std::cout << (command.json ? inspectionToJson(inspection) + "\n" : inspectionToText(inspection));
  return 0;
}

CLI::App* addConvertCommand(CLI::App& app, ConvertCommand& command) {
  auto* convert = app.add_subcommand(
      "convert", "Write a checkpoint as a TorchScript model with its preprocessing stored");
  convert->add_option("MODEL", command.model, kModelHelp)->required();
  convert->add_option("--out", command.out, "the TorchScript file to write")->required();
  addModelOptions(convert, command.modelOptions, false);
  return convert;
}

int runConvertCommand(const ConvertCommand& command) {
  InspectOptions options;
  if (auto problem = modelChoicesFrom(command.modelOptions, nullptr, nullptr, options.choices);
      !problem.empty()) {
    return fail(problem);
  }
  const auto model = LoadedModel::open(command.model, options);
  if (!model.ok()) return fail(model.error());
  if (auto problem = saveAsTorchScript(model, command.out); !problem.empty()) return fail(problem);
  const auto& inspection = model.inspection();
  std::cout << command.out << ": " << inspection.format;
  if (!inspection.metadata.architecture.empty()) {
    std::cout << " of torchvision's " << inspection.metadata.architecture;
  }
  std::cout << " as TorchScript; preprocessing " << preprocessingText(inspection.metadata) << "\n";
  for (const auto& note : inspection.notes) std::cout << "  " << note << "\n";
  return 0;
}

CLI::App* addPretrainCommand(CLI::App& app, PretrainCommand& command) {
  auto* pretrain = app.add_subcommand("pretrain", "Train a new model from scratch on a data set");
  PretrainOptions& o = command.options;
  pretrain->add_option("MODEL", command.model, "untrained TorchScript model")->required();
  pretrain->add_option("--data", o.data, "fashion-mnist, an image folder or a .csv file");
  pretrain->add_option("--epochs", o.epochs, "passes over the training data")
      ->check(CLI::Range(1, 1000));
  pretrain->add_option("--batch-size", o.batchSize, "items per step")->check(CLI::Range(1, 65536));
  pretrain->add_option("--lr", o.learningRate, "peak learning rate (AdamW, cosine schedule)");
  pretrain->add_option("--seed", o.seed,
                       "the same seed gives the same model on the same kind of machine");
  pretrain->add_option("--train-limit", o.trainLimit, "use at most this many training items");
  pretrain->add_option("--test-limit", o.testLimit, "use at most this many test items");
  pretrain->add_option("--device", o.device, "cpu, cuda or cuda:N");
  pretrain->add_option("--out", command.out, "where to save the trained model")->required();
  return pretrain;
}

int runPretrainCommand(const PretrainCommand& command) {
  int lastPercent = -1;
  const auto result =
      pretrainModel(command.model, command.out, command.options, [&](const PretrainProgress& p) {
        if (p.testAccuracy >= 0) {
          std::cout << "epoch " << p.epoch + 1 << "/" << p.epochs << ": test accuracy "
                    << std::fixed << std::setprecision(2) << 100 * p.testAccuracy << "% after "
                    << std::setprecision(0) << p.elapsedSeconds << " s\n"
                    << std::flush;
          return;
        }
        const int done = static_cast<int>(100 * p.step / std::max<std::size_t>(1, p.stepsPerEpoch));
        if (done / 10 != lastPercent / 10) {
          std::cerr << "epoch " << p.epoch + 1 << "/" << p.epochs << " " << done << "%  loss "
                    << std::setprecision(3) << p.loss << "  about " << std::setprecision(0)
                    << std::fixed << p.remainingSeconds << " s left\n";
          lastPercent = done;
        }
      });
  if (!result.ok) return fail(result.error);
  std::cout << command.out << ": test accuracy " << std::fixed << std::setprecision(2)
            << 100 * result.testAccuracy << "%, trained in " << std::setprecision(0)
            << result.seconds << " s\n";
  return 0;
}

}  // namespace scalpel::cli
