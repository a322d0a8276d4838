#pragma once

// The CLI's data commands: `shifts` (the catalogue), `make-shift` (a shifted copy of a data set
// as an image folder a person can look at) and `preview` (clean over shifted samples as a PNG).

#include <CLI/CLI.hpp>

#include <cstddef>
#include <cstdint>
#include <string>

namespace scalpel::cli {

CLI::App* addShiftsCommand(CLI::App& app);
int runShiftsCommand();

struct MakeShiftCommand {
  std::string data = "fashion-mnist";
  std::string split = "test";
  std::string shift;
  int severity = 3;
  std::uint64_t seed = 0;
  std::string out;
  std::size_t limit = 0;
  std::string groupsFile;  // super-classes of the sub-population shift
};
CLI::App* addMakeShiftCommand(CLI::App& app, MakeShiftCommand& command);
int runMakeShiftCommand(const MakeShiftCommand& command);

struct PreviewCommand {
  std::string data = "fashion-mnist";
  std::string split = "test";
  std::string shift;
  std::uint64_t seed = 0;
  std::size_t count = 10;
  int scale = 3;
  std::string out;
};
CLI::App* addPreviewCommand(CLI::App& app, PreviewCommand& command);
int runPreviewCommand(const PreviewCommand& command);

}  // namespace scalpel::cli
