#pragma once

#include <QObject>
#include <QProcess>
#include <QString>
#include <QTimer>

#include "core_metatypes.h"
#include "io/job_folder.h"

namespace scalpel::ui {

// Training on several processes of this machine: a job folder (core/io/job_folder.h) that
// `scalpel-cli train --nproc N` works through — the CLI's training path, which is core's — while
// this follows the job's metrics log and turns its lines into the events a run in the window
// sends. The destructor stops a job that still runs.
class JobRunner : public QObject {
  Q_OBJECT

 public:
  explicit JobRunner(QObject* parent = nullptr);
  ~JobRunner() override;

  bool running() const { return m_process != nullptr; }
  int processes() const { return m_processes; }
  // Writes a job folder for `session` (its strategy, plan and options) in the application's data
  // folder and starts its processes. Returns "" or the error.
  QString start(const Session& session, int processes);
  // Every process stops at the same step, and rank 0 writes the best state so far.
  void stop();

  // Training ▸ Export Job…: `session` as a job folder for `processes` per machine. "" or the error.
  static QString exportJob(const Session& session, const QString& folder, int processes);
  // A finished job's folder as a run of the window (its report and tuned model).
  static FineTuneRun runOf(const JobResults& results);
  // scalpel-cli beside this program.
  static QString scalpelCli();

 Q_SIGNALS:
  void event(const scalpel::TrainEvent& event);
  // The job ended: a run when rank 0 wrote a tuned model (finished, stopped or diverged), else why
  // the processes stopped, in `error`. `tunedModel`: where the job wrote it.
  void finished(const scalpel::FineTuneRun& run, const QString& error, const QString& tunedModel);

 private:
  void poll();
  void onFinished(int exitCode);

  QProcess* m_process = nullptr;
  int m_processes = 0;
  QString m_folder;
  QString m_output;
  QTimer m_poll;  // follows the metrics log
  int m_pointsShown = 0;
};

}  // namespace scalpel::ui
