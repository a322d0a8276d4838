#pragma once

#include <QObject>
#include <QString>

namespace scalpel::ui {

// Forwards Scalpel's log lines (from any thread) to the GUI by a queued signal. One instance
// lives for the whole program, registered once as an spdlog sink, so log lines from a worker
// never reach a destroyed widget: widgets connect to it and disconnect when they go.
class LogForwarder : public QObject {
  Q_OBJECT

 public:
  static LogForwarder& instance();

 Q_SIGNALS:
  void line(const QString& text, int level);  // spdlog's level: 2 info, 3 warn, 4 error

 private:
  LogForwarder() = default;
};

}  // namespace scalpel::ui
