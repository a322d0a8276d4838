#include "cli_data.h"

#include <filesystem>

#include "app_paths.h"
#include "cli_output.h"
#include "data/data_source.h"
#include "data/image_export.h"
#include "data/shifts.h"

namespace scalpel::cli {

namespace {

// The data a command starts from, its warnings said; empty (after saying why) when it cannot open.
std::optional<Dataset> openClean(const std::string& data, const std::string& split) {
  auto loaded = openDataSource(data, split);
  if (!loaded) {
    fail(loaded.error);
    return std::nullopt;
  }
  for (const auto& warning : loaded.warnings) std::cerr << "warning: " << warning << "\n";
  return std::move(loaded.dataset);
}

}  // namespace

CLI::App* addShiftsCommand(CLI::App& app) {
  return app.add_subcommand("shifts", "List the shifts Scalpel can make");
}

int runShiftsCommand() {
  for (const auto& info : shiftCatalogue()) {
    std::cout << info.name << std::string(info.name.size() < 20 ? 20 - info.name.size() : 1, ' ')
              << shiftLevelName(info.level) << "   " << info.description
              << (info.usesSeverity ? " (severity 1-5)" : "") << "\n";
  }
  return 0;
}

CLI::App* addMakeShiftCommand(CLI::App& app, MakeShiftCommand& command) {
  auto* makeShift = app.add_subcommand("make-shift", "Write a shifted data set as an image folder");
  command.groupsFile = app::resourceDir() + "/shifts/fashion-mnist-superclasses.json";
  makeShift->add_option("--data", command.data, "fashion-mnist, an image folder or a .csv file");
  makeShift->add_option("--split", command.split, "train or test (for fashion-mnist)");
  makeShift->add_option("--shift", command.shift, "a shift name (scalpel-cli shifts lists them)")
      ->required();
  makeShift->add_option("--severity", command.severity, "1 (mild) to 5 (strong)");
  makeShift->add_option("--seed", command.seed, "the same seed gives the same shifted set");
  makeShift
      ->add_option("--out", command.out, "folder to write (subpopulation: source/ and target/)")
      ->required();
  makeShift->add_option("--limit", command.limit, "write at most this many images (0: all)");
  makeShift->add_option("--groups", command.groupsFile, "super-classes for subpopulation (JSON)");
  return makeShift;
}

int runMakeShiftCommand(const MakeShiftCommand& command) {
  const auto clean = openClean(command.data, command.split);
  if (!clean) return 1;
  const ShiftInfo* info = findShift(command.shift);
  if (info && info->level == ShiftLevel::Feature) {  // two folders: the source and target halves
    SuperClasses classes;
    if (auto problem = readSuperClasses(command.groupsFile, classes); !problem.empty())
      return fail(problem);
    SubpopulationData parts;
    if (auto problem = subpopulationShift(*clean, classes, parts); !problem.empty())
      return fail(problem);
    const std::filesystem::path folder(command.out);
    for (const auto& [name, part] :
         {std::pair{"source", &parts.source}, std::pair{"target", &parts.target}}) {
      if (auto problem = writeImageFolder(*part, folder / name, command.limit); !problem.empty())
        return fail(problem);
      std::cout << (folder / name).string() << ": " << part->size() << " images in "
                << part->classNames.size() << " super-classes\n";
    }
    return 0;
  }
  const auto result = applyShift(*clean, command.shift, command.severity, command.seed);
  if (!result) return fail(result.error);
  for (const auto& note : result.notes) std::cout << note << "\n";
  if (auto problem = writeImageFolder(*result.dataset, command.out, command.limit);
      !problem.empty())
    return fail(problem);
  const std::size_t written =
      command.limit ? std::min(command.limit, result.dataset->size()) : result.dataset->size();
  std::cout << command.out << ": " << written << " images of " << result.dataset->name << "\n";
  return 0;
}

CLI::App* addPreviewCommand(CLI::App& app, PreviewCommand& command) {
  auto* preview = app.add_subcommand("preview", "Render clean vs shifted samples as a PNG grid");
  preview->add_option("--data", command.data, "fashion-mnist, an image folder or a .csv file");
  preview->add_option("--split", command.split, "train or test (for fashion-mnist)");
  preview->add_option("--shift", command.shift, "an input-level shift name")->required();
  preview->add_option("--seed", command.seed, "the same seed gives the same picture");
  preview->add_option("--count", command.count, "images per row");
  preview->add_option("--scale", command.scale, "magnification")->check(CLI::Range(1, 16));
  preview->add_option("--out", command.out, "PNG file to write")->required();
  return preview;
}

int runPreviewCommand(const PreviewCommand& command) {
  const auto clean = openClean(command.data, command.split);
  if (!clean) return 1;
  std::vector<Dataset> shifted;  // one row per severity (one for a shift without any)
  for (int level = 1; level <= 5; ++level) {
    auto result = applyShift(*clean, command.shift, level, command.seed);
    if (!result) return fail(result.error);
    shifted.push_back(std::move(*result.dataset));
    if (!findShift(command.shift)->usesSeverity) break;
  }
  std::vector<const Dataset*> rows{&*clean};
  for (const auto& each : shifted) rows.push_back(&each);
  const std::size_t count = std::min(command.count, clean->size());
  std::vector<std::size_t> items;
  for (std::size_t i = 0; i < count; ++i) items.push_back(i * clean->size() / count);
  if (auto problem = writePreviewGrid(rows, items, command.scale, command.out); !problem.empty())
    return fail(problem);
  std::cout << command.out << ": clean (top row), then " << command.shift << " at severity 1 to "
            << shifted.size() << "\n";
  return 0;
}

}  // namespace scalpel::cli
