#pragma once

#include <spdlog/logger.h>

#include <memory>
#include <string>

namespace scalpel {

// Named loggers ("core", "train", "ui", ...) share one set of sinks: stderr, and a rotating file
// once initLogging() has been given a folder. Unknown names are created on first use.
std::shared_ptr<spdlog::logger> logger(const std::string& name);

// Sets the level of every Scalpel logger and, when `logFolder` is non-empty, adds a rotating file
// sink there (scalpel.log, 5 × 2 MB). Safe to call more than once.
void initLogging(const std::string& level, const std::string& logFolder = {});

// Sinks added later (e.g. the GUI's log panel) reach loggers made before and after.
void addLogSink(std::shared_ptr<spdlog::sinks::sink> sink);

}  // namespace scalpel
