// scalpel-cli: Scalpel's engine without a window (scripts, GPU servers, CI).

#include <CLI/CLI.hpp>

#include <iostream>

#include "io/layer_tree_format.h"
#include "model/model_inspection.h"
#include "scalpel/version.h"
#include "util/logging.h"
#include "util/threads.h"

int main(int argc, char** argv) {
  CLI::App app{"Scalpel — surgical fine-tuning of TorchScript models, from the command line"};
  app.set_version_flag("--version", std::string("scalpel-cli ") + scalpel::kVersion);
  std::string logLevel = "warn";
  app.add_option("--log-level", logLevel, "trace, debug, info, warn, error or off")
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error", "off"}));
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

  CLI11_PARSE(app, argc, argv);
  scalpel::initLogging(logLevel);
  scalpel::useAllCores();

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
