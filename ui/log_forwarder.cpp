#include "log_forwarder.h"

#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/base_sink.h>

#include <mutex>

#include "util/logging.h"

namespace scalpel::ui {

namespace {

class ForwardingSink : public spdlog::sinks::base_sink<std::mutex> {
 public:
  ForwardingSink() { set_pattern_("%H:%M:%S [%n] %v"); }

 protected:
  void sink_it_(const spdlog::details::log_msg& message) override {
    spdlog::memory_buf_t formatted;
    formatter_->format(message, formatted);
    QString text =
        QString::fromUtf8(formatted.data(), static_cast<int>(formatted.size())).trimmed();
    Q_EMIT LogForwarder::instance().line(text, static_cast<int>(message.level));
  }
  void flush_() override {}
};

}  // namespace

LogForwarder& LogForwarder::instance() {
  static LogForwarder* forwarder = [] {
    auto* created = new LogForwarder;  // never deleted: log lines may come until the very end
    addLogSink(std::make_shared<ForwardingSink>());
    return created;
  }();
  return *forwarder;
}

}  // namespace scalpel::ui
