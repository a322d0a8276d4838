// SessionController: training (in the worker, or as several processes), the compare queue, the
// current run and its export, job folders. Every run goes through core's runTraining: the worker
// calls it, and a job's processes run scalpel-cli, which calls it too.

#include <QDir>
#include <QFileInfo>
#include <QUndoStack>

#include "freeze_state.h"
#include "io/model_export.h"
#include "io/run_report.h"
#include "job_runner.h"
#include "model_worker.h"
#include "score_text.h"
#include "session_controller.h"
#include "session_document.h"
#include "util/device_info.h"

namespace scalpel::ui {

bool SessionController::canTrain() {
  if (!m_inspection.ok) {
    fail("Nothing to train", "Open a model first (File ▸ Open Model…).");
    return false;
  }
  if (!m_data[0].ok) {
    fail("No target data", "Open the data to tune on first (File ▸ Open Data…).");
    return false;
  }
  if (isTraining()) {
    fail(isComparing() ? "A comparison is running" : "A run is going",
         isComparing() ? "Wait for it to finish, or Stop it in the Compare tab."
                       : "Wait for it to finish, or Stop it.");
    return false;
  }
  return true;
}

// The session a run of `strategy` trains: the window's state, with the marks as the plan when
// the strategy is manual.
Session SessionController::sessionFor(const QString& strategy) const {
  Session session = m_document->session();
  session.strategy = strategy.toStdString();
  if (strategy == "manual") session.plan = m_freeze->plan();
  session.runs.clear();  // a run needs only its own
  return session;
}

void SessionController::train() {
  if (!canTrain()) return;
  m_running = Running::Training;
  Q_EMIT trainingStarted();
  if (m_settings.processes > 1) {
    Session session = sessionFor(m_settings.strategy);
    session.runs = m_document->runs();
    if (auto problem = m_jobs->start(session, m_settings.processes); !problem.isEmpty()) {
      finishTraining({}, problem);
      return;
    }
    say(QString("Training on %1 processes…").arg(m_settings.processes));
    return;
  }
  say("Training …");
  startRun(m_settings.strategy);
}

void SessionController::startRun(const QString& strategy) {
  m_trainingRequest = ++m_nextRequest;
  const Session session = sessionFor(strategy);
  Q_EMIT requestTraining(m_trainingRequest, session);
}

void SessionController::pause(bool paused) {
  // Straight to the worker's control (thread-safe), not through its queue, which is busy with the
  // run.
  if (paused)
    m_worker->trainControl().pause();
  else
    m_worker->trainControl().resume();
}

void SessionController::stop() {
  m_compareQueue.clear();  // Stop ends the whole comparison
  m_worker->trainControl().cancel();
  m_jobs->stop();
}

void SessionController::onTrained(quint64 request, const FineTuneRun& run, const QString& error) {
  if (request != m_trainingRequest) return;
  if (!run.result.device.empty()) {
    m_device = QString::fromStdString(run.result.device);
    Q_EMIT deviceChanged(m_device);
  }
  if (isComparing()) {
    finishComparedRun(run, error);
  } else {
    finishTraining(run, error);
  }
}

void SessionController::onJobFinished(const FineTuneRun& run, const QString& error,
                                      const QString& tunedModel) {
  finishTraining(run, error);
  if (!tunedModel.isEmpty()) m_document->setRunModel(run.report, tunedModel.toStdString());
}

void SessionController::finishTraining(const FineTuneRun& run, const QString& error) {
  const bool ok = error.isEmpty() && run.result.tunedModel != nullptr;
  if (!error.isEmpty()) {
    fail("Cannot train", error);
  } else if (!run.result.ok && !run.result.cancelled) {
    fail("Training stopped", QString::fromStdString(run.result.error));
  }
  if (ok) {
    setCurrentRun(run);  // still training: the views drew this run as it went
    m_document->addRun(SessionRun{run.report.plan.strategy, {}, run.report});
  }
  m_running = Running::Nothing;
  say(ok ? "Training finished: File ▸ Export Tuned Model… saves the result"
         : "Training did not finish");
  Q_EMIT trainingFinished(ok);
}

void SessionController::setCurrentRun(const FineTuneRun& run) {
  m_currentRun = run;
  Q_EMIT currentRunChanged();
}

// ---- Compare: the plans one after another, with the same settings.

void SessionController::compare(const QStringList& strategies) {
  if (strategies.isEmpty()) {
    fail("Nothing to compare", "Tick at least one plan in the Compare tab.");
    return;
  }
  if (!canTrain()) return;
  m_compareQueue = strategies;
  m_compared.clear();
  m_running = Running::Comparison;
  Q_EMIT comparisonStarted(strategies);
  runNextComparison();
}

void SessionController::runNextComparison() {
  if (m_compareQueue.isEmpty()) {
    m_running = Running::Nothing;
    const int best = bestComparedRun();
    const QString message =
        best >= 0 ? QString("Compared %1 plans: %2 is best on validation data.")
                        .arg(m_compared.size())
                        .arg(planLabel(m_compared[static_cast<std::size_t>(best)].strategy))
                  : QString("No plan finished.");
    say(message);
    Q_EMIT comparisonFinished(message);
    return;
  }
  const QString strategy = m_compareQueue.takeFirst();
  m_comparedStrategy = strategy;
  const int total =
      static_cast<int>(m_compared.size()) + static_cast<int>(m_compareQueue.size()) + 1;
  say(QString("Comparing: run %1 of %2 …").arg(m_compared.size() + 1).arg(total));
  Q_EMIT comparisonRunStarted(strategy);
  startRun(strategy);
}

void SessionController::finishComparedRun(const FineTuneRun& run, const QString& error) {
  m_compared.push_back(ComparedRun{m_comparedStrategy, run, error});
  if (run.result.cancelled) m_compareQueue.clear();  // Stop ends the whole comparison
  Q_EMIT comparisonRunFinished(static_cast<int>(m_compared.size()) - 1);
  runNextComparison();
}

int SessionController::bestComparedRun() const {
  int best = -1;
  for (int i = 0; i < static_cast<int>(m_compared.size()); ++i) {
    const auto& run = m_compared[static_cast<std::size_t>(i)];
    if (!run.ok()) continue;
    if (best < 0 ||
        run.run.result.validationAfter.score() >
            m_compared[static_cast<std::size_t>(best)].run.result.validationAfter.score()) {
      best = i;
    }
  }
  return best;
}

void SessionController::openComparedRun(int index) {
  if (index < 0 || index >= static_cast<int>(m_compared.size()) ||
      !m_compared[static_cast<std::size_t>(index)].ok())
    return;
  setCurrentRun(m_compared[static_cast<std::size_t>(index)].run);
  say("Opened " + planLabel(m_compared[static_cast<std::size_t>(index)].strategy) +
      ": File ▸ Export Tuned Model… saves it");
}

QString SessionController::exportComparedRun(int index, const QString& path) {
  if (index < 0 || index >= static_cast<int>(m_compared.size()) ||
      !m_compared[static_cast<std::size_t>(index)].ok()) {
    const QString error = "Choose a finished run in the Compare tab's table first.";
    fail("Nothing to export", error);
    return error;
  }
  return exportRun(m_compared[static_cast<std::size_t>(index)].run, path);
}

void SessionController::useComparedPlan(int index) {
  if (index < 0 || index >= static_cast<int>(m_compared.size())) return;
  const auto& compared = m_compared[static_cast<std::size_t>(index)];
  const FreezePlan& plan = compared.run.report.plan;
  m_undo->push(new SetTrainableCommand(m_freeze, m_freeze->unitsOfPlan(plan), true,
                                       "Use plan: " + planLabel(compared.strategy), true));
  setStrategy("manual");  // training now follows the marks
  QString message =
      "Plan of " + planLabel(compared.strategy) + " marked: Train uses it (strategy manual).";
  if (!plan.learningRateScale.empty())
    message += " Its per-layer learning-rate scales are not kept: manual plans train at one rate.";
  say(message);
}

// ---- Export.

QString SessionController::exportTunedModel(const QString& path) {
  if (!m_currentRun || !m_currentRun->result.tunedModel) {
    const QString error = "There is no tuned model yet: train first (Training ▸ Train).";
    fail("Nothing to export", error);
    return error;
  }
  return exportRun(*m_currentRun, path);
}

QString SessionController::exportRun(const FineTuneRun& run, const QString& path) {
  std::string problem = scalpel::exportTunedModel(*run.result.tunedModel,
                                                  runReportToJson(run.report), path.toStdString());
  const QFileInfo info(path);
  const QString folder = info.dir().filePath(info.completeBaseName() + "-report");
  if (problem.empty()) problem = writeReportFolder(run.report, folder.toStdString());
  if (!problem.empty()) {
    fail("Cannot export",
         QString::fromStdString(problem) + "\n\nNothing was overwritten; choose another place.");
    return QString::fromStdString(problem);
  }
  say(QString("Exported %1 and its report in %2").arg(path, folder));
  m_document->setRunModel(
      run.report, info.absoluteFilePath().toStdString());  // the session remembers where it went
  return {};
}

QString SessionController::exportReport(const QString& folder) {
  if (!m_currentRun) {
    const QString error = "There is no run to report on yet: train first (Training ▸ Train).";
    fail("Nothing to export", error);
    return error;
  }
  const std::string problem = writeReportFolder(m_currentRun->report, folder.toStdString());
  if (!problem.empty()) {
    fail("Cannot export the report",
         QString::fromStdString(problem) + "\n\nNothing was overwritten; choose another folder.");
    return QString::fromStdString(problem);
  }
  say("Report written to " + folder);
  return {};
}

// ---- Job folders.

QString SessionController::exportJob(const QString& folder, int processes) {
  if (!canTrain()) return "nothing to train";
  const QString problem = JobRunner::exportJob(sessionFor(m_settings.strategy), folder, processes);
  if (!problem.isEmpty()) {
    fail("Cannot export the job", problem);
    return problem;
  }
  say(QString("Job written to %1: run run-local.sh, run-torchrun.sh or sbatch run-slurm.sbatch "
              "there, then Training ▸ Open Job Results…")
          .arg(folder));
  return {};
}

QString SessionController::openJobResults(const QString& folder) {
  const auto results = readJobResults(folder.toStdString());
  if (!results.ok) {
    fail("Cannot open the job's results", QString::fromStdString(results.error));
    return QString::fromStdString(results.error);
  }
  const FineTuneRun run = JobRunner::runOf(results);
  setCurrentRun(run);
  m_document->addRun(SessionRun{run.report.plan.strategy, results.tunedModelPath, run.report});
  say("Opened the job's run (" + QString::fromStdString(run.report.outcome) +
      "): File ▸ Export Tuned Model… saves it");
  return {};
}

}  // namespace scalpel::ui
