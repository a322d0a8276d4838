#include "cli_model.h"

#include "cli_output.h"
#include "io/layer_tree_format.h"
#include "model/model_inspection.h"

namespace scalpel::cli {

CLI::App* addInspectCommand(CLI::App& app, InspectCommand& command) {
  auto* inspect = app.add_subcommand("inspect", "Print a model's layer tree in execution order");
  inspect
      ->add_option("MODEL", command.model, "TorchScript file (torch.jit.script(model).save(...))")
      ->required();
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
  const auto inspection = inspectModel(command.model, options);
  if (!inspection.ok) return fail(inspection.error);
  std::cout << (command.json ? inspectionToJson(inspection) + "\n" : inspectionToText(inspection));
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
