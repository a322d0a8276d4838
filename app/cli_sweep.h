#pragma once

// The CLI's `sweep` command: the paper-reproduction sweep (core/train/sweep.h).

#include <CLI/CLI.hpp>

#include <string>
#include <vector>

#include "workflow/sweep.h"

namespace scalpel::cli {

struct SweepCommand {
  CLI::App* app = nullptr;
  SweepOptions options;
  std::string out = "sweep";
  bool quick = false;
};
CLI::App* addSweepCommand(CLI::App& app, SweepCommand& command);
// `arguments` (argv) are recorded in sweep.md as the command that made it.
int runSweepCommand(SweepCommand& command, const std::vector<std::string>& arguments);

}  // namespace scalpel::cli
