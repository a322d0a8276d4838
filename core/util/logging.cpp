#include "util/logging.h"

#include <spdlog/sinks/rotating_file_sink.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <filesystem>
#include <mutex>
#include <vector>

namespace scalpel {

namespace {

std::mutex& registryMutex() {
  static std::mutex mutex;
  return mutex;
}

std::vector<spdlog::sink_ptr>& sharedSinks() {
  static std::vector<spdlog::sink_ptr> sinks{
      std::make_shared<spdlog::sinks::stderr_color_sink_mt>()};
  return sinks;
}

spdlog::level::level_enum& sharedLevel() {
  static auto level = spdlog::level::info;
  return level;
}

}  // namespace

std::shared_ptr<spdlog::logger> logger(const std::string& name) {
  std::lock_guard lock(registryMutex());
  if (auto existing = spdlog::get(name)) return existing;
  auto created = std::make_shared<spdlog::logger>(name, sharedSinks().begin(), sharedSinks().end());
  created->set_level(sharedLevel());
  spdlog::register_logger(created);
  return created;
}

void addLogSink(std::shared_ptr<spdlog::sinks::sink> sink) {
  std::lock_guard lock(registryMutex());
  sharedSinks().push_back(sink);
  spdlog::apply_all(
      [&](const std::shared_ptr<spdlog::logger>& each) { each->sinks().push_back(sink); });
}

void initLogging(const std::string& level, const std::string& logFolder) {
  sharedLevel() = spdlog::level::from_str(level);
  spdlog::apply_all(
      [](const std::shared_ptr<spdlog::logger>& each) { each->set_level(sharedLevel()); });
  if (logFolder.empty()) return;
  std::error_code error;
  std::filesystem::create_directories(logFolder, error);
  try {
    addLogSink(std::make_shared<spdlog::sinks::rotating_file_sink_mt>(
        (std::filesystem::path(logFolder) / "scalpel.log").string(), 2 * 1024 * 1024, 5));
  } catch (const spdlog::spdlog_ex& failure) {
    logger("core")->warn("not logging to {}: {}", logFolder, failure.what());
  }
}

}  // namespace scalpel
