// MainWindow's training on several processes: Training ▸ Run On…, Export Job… and Open Job
// Results… A run on this machine is a job folder (core/distributed/job_folder.h) that
// `scalpel-cli train --nproc N` works through while the window follows its metrics log.

#include <QCoreApplication>
#include <QDateTime>
#include <QDir>
#include <QDockWidget>
#include <QFileDialog>
#include <QMessageBox>
#include <QProcess>
#include <QStandardPaths>
#include <QStatusBar>

#include "distributed/job_folder.h"
#include "freeze_state.h"
#include "main_window.h"
#include "model_worker.h"
#include "run_on_dialog.h"
#include "training_panel.h"
#include "util/device_info.h"

namespace scalpel::ui {

namespace {

QString scalpelCli() { return QDir(QCoreApplication::applicationDirPath()).filePath("scalpel-cli"); }

FineTuneRun runOf(const JobResults& results) {
  FineTuneRun run;
  run.report = results.report;
  run.result = resultOfReport(results.report, std::make_shared<const std::string>(results.tunedModelBytes));
  return run;
}

}  // namespace

void MainWindow::setTrainProcesses(int processes) { m_trainProcesses = std::max(1, processes); }

void MainWindow::showRunOnDialog() {
  const int gpus = static_cast<int>(availableDevices().size()) - 1;
  RunOnDialog dialog(m_trainProcesses, gpus, this);
  connect(&dialog, &RunOnDialog::exportJobRequested, this, [this](int processes) { exportJobDialog(processes); });
  if (dialog.exec() != QDialog::Accepted) return;
  setTrainProcesses(dialog.processes());
  statusBar()->showMessage(m_trainProcesses > 1 ? QString("Train runs as %1 processes on this machine").arg(m_trainProcesses)
                                                : QString("Train runs in this window"));
}

Session MainWindow::sessionToRun(const QString& strategy, const TrainOptions& options) const {
  Session session = currentSession();
  session.strategy = strategy.toStdString();
  session.options = options;
  if (strategy == "manual") session.plan = m_freeze->plan();
  return session;
}

void MainWindow::exportJobDialog(int processes) {
  if (!canTrain()) return;
  const QString folder = QFileDialog::getExistingDirectory(this, "Export Job: choose a new, empty folder");
  if (!folder.isEmpty()) exportJob(folder, processes);
}

QString MainWindow::exportJob(const QString& folder, int processes) {
  JobSettings settings;
  settings.processes = processes;
  settings.scalpelCli = scalpelCli().toStdString();
  const auto problem = writeJobFolder(sessionToRun(m_training->strategy(), m_training->options()), folder.toStdString(), settings);
  if (!problem.empty()) {
    showError("Cannot export the job", QString::fromStdString(problem));
    return QString::fromStdString(problem);
  }
  statusBar()->showMessage(QString("Job written to %1: run run-local.sh, run-torchrun.sh or sbatch run-slurm.sbatch there, "
                                   "then Training ▸ Open Job Results…").arg(folder));
  return {};
}

void MainWindow::openJobResultsDialog() {
  const QString folder = QFileDialog::getExistingDirectory(this, "Open Job Results: choose the job's folder");
  if (!folder.isEmpty()) openJobResults(folder);
}

QString MainWindow::openJobResults(const QString& folder) {
  const auto results = readJobResults(folder.toStdString());
  if (!results.ok) {
    showError("Cannot open the job's results", QString::fromStdString(results.error));
    return QString::fromStdString(results.error);
  }
  const FineTuneRun run = runOf(results);
  m_lastRun = run;
  m_training->showRun(run);
  m_sessionRuns.push_back(SessionRun{run.report.plan.strategy, results.tunedModelPath, run.report});
  markDirty();
  enableRunActions();
  if (auto* dock = findChild<QDockWidget*>("trainingDock")) dock->raise();
  statusBar()->showMessage("Opened the job's run (" + QString::fromStdString(run.report.outcome) + "): File ▸ Export Tuned Model… saves it");
  return {};
}

void MainWindow::startLocalJob(const QString& strategy, const TrainOptions& options) {
  const QString base = QStandardPaths::writableLocation(QStandardPaths::AppDataLocation);
  m_jobFolder = QDir(base).filePath("jobs/" + QDateTime::currentDateTime().toString("yyyyMMdd-HHmmss-zzz"));
  JobSettings settings;
  settings.processes = m_trainProcesses;
  settings.scalpelCli = scalpelCli().toStdString();
  if (auto problem = writeJobFolder(sessionToRun(strategy, options), m_jobFolder.toStdString(), settings); !problem.empty()) {
    FineTuneRun failed;
    failed.result.error = problem;
    onTrainingFinished(failed, {});
    return;
  }
  m_jobPointsShown = 0;
  m_jobOutput.clear();
  m_job = new QProcess(this);
  m_job->setWorkingDirectory(m_jobFolder);
  m_job->setProcessChannelMode(QProcess::MergedChannels);
  connect(m_job, &QProcess::readyRead, this, [this] { m_jobOutput += QString::fromUtf8(m_job->readAll()); });
  connect(m_job, &QProcess::finished, this, [this](int exitCode) { onJobFinished(exitCode); });
  connect(m_job, &QProcess::errorOccurred, this, [this](QProcess::ProcessError error) {
    if (error == QProcess::FailedToStart) onJobFinished(-1);
  });
  m_job->start(scalpelCli(), {"train", "--session", "session.json", "--out", "results/tuned.pt", "--checkpoint", "results/checkpoint.pt",
                              "--metrics", "results/metrics.jsonl", "--report", "results/report", "--nproc", QString::number(m_trainProcesses)});
  statusBar()->showMessage(QString("Training on %1 processes (%2)…").arg(m_trainProcesses).arg(m_jobFolder));
  m_jobPoll.start(300);
}

// New lines of the job's metrics log become the panel's points: the training loss since the
// previous evaluation, then the evaluation.
void MainWindow::pollJob() {
  std::vector<EvaluationPoint> metrics;
  readJobMetrics(m_jobFolder.toStdString(), metrics);  // a bad line shows when the job ends
  for (; m_jobPointsShown < static_cast<int>(metrics.size()); ++m_jobPointsShown) {
    const auto& point = metrics[static_cast<std::size_t>(m_jobPointsShown)];
    TrainEvent step;
    step.kind = TrainEvent::Kind::Step;
    step.epoch = point.epoch;
    step.step = point.step;
    step.loss = point.trainLoss;
    m_training->onEvent(step);
    TrainEvent evaluation = step;
    evaluation.kind = TrainEvent::Kind::Evaluation;
    evaluation.validation = point.validation;
    m_training->onEvent(evaluation);
  }
}

void MainWindow::onJobFinished(int exitCode) {
  if (!m_job) return;
  m_jobPoll.stop();
  m_job->deleteLater();
  m_job = nullptr;
  pollJob();
  const auto results = readJobResults(m_jobFolder.toStdString());
  // Rank 0 wrote a tuned model: the run is kept, as a run in this window is, whatever its outcome
  // (finished, cancelled by Stop, diverged: the processes then end with a non-zero status).
  if (results.ok) {
    FineTuneRun run = runOf(results);
    onTrainingFinished(run, {});
    if (!m_sessionRuns.empty()) m_sessionRuns.back().tunedModel = results.tunedModelPath;
    return;
  }
  FineTuneRun failed;
  const QStringList lines = m_jobOutput.trimmed().split('\n');
  const QString tail = lines.mid(std::max<qsizetype>(0, lines.size() - 4)).join('\n');  // the launcher's last words
  failed.result.error = QString("The %1 processes stopped (exit status %2):\n%3").arg(m_trainProcesses).arg(exitCode).arg(tail).toStdString();
  onTrainingFinished(failed, {});
}

void MainWindow::stopTraining() {
  m_worker->trainControl().cancel();
  // The launcher passes SIGTERM on; every process stops at the same step and rank 0 writes the
  // best state so far.
  if (m_job) m_job->terminate();
}

}  // namespace scalpel::ui
