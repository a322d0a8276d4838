#include "job_runner.h"

#include <QCoreApplication>
#include <QDateTime>
#include <QDir>
#include <QStandardPaths>

namespace scalpel::ui {

JobRunner::JobRunner(QObject* parent) : QObject(parent) {
  connect(&m_poll, &QTimer::timeout, this, &JobRunner::poll);
}

JobRunner::~JobRunner() {
  if (!m_process) return;
  m_process->disconnect(this);
  m_process->terminate();
  m_process->waitForFinished(10000);
}

QString JobRunner::scalpelCli() {
  return QDir(QCoreApplication::applicationDirPath()).filePath("scalpel-cli");
}

QString JobRunner::exportJob(const Session& session, const QString& folder, int processes) {
  JobSettings settings;
  settings.processes = processes;
  settings.scalpelCli = scalpelCli().toStdString();
  return QString::fromStdString(writeJobFolder(session, folder.toStdString(), settings));
}

FineTuneRun JobRunner::runOf(const JobResults& results) {
  FineTuneRun run;
  run.report = results.report;
  run.result =
      resultOfReport(results.report, std::make_shared<const std::string>(results.tunedModelBytes));
  return run;
}

QString JobRunner::start(const Session& session, int processes) {
  if (m_process) return "a run on several processes is already going";
  const QString base = QStandardPaths::writableLocation(QStandardPaths::AppDataLocation);
  m_folder =
      QDir(base).filePath("jobs/" + QDateTime::currentDateTime().toString("yyyyMMdd-HHmmss-zzz"));
  if (auto problem = exportJob(session, m_folder, processes); !problem.isEmpty()) return problem;
  m_processes = processes;
  m_pointsShown = 0;
  m_output.clear();
  m_process = new QProcess(this);
  m_process->setWorkingDirectory(m_folder);
  m_process->setProcessChannelMode(QProcess::MergedChannels);
  connect(m_process, &QProcess::readyRead, this,
          [this] { m_output += QString::fromUtf8(m_process->readAll()); });
  connect(m_process, &QProcess::finished, this, [this](int exitCode) { onFinished(exitCode); });
  connect(m_process, &QProcess::errorOccurred, this, [this](QProcess::ProcessError error) {
    if (error == QProcess::FailedToStart) onFinished(-1);
  });
  m_process->start(scalpelCli(),
                   {"train", "--session", "session.json", "--out", "results/tuned.pt",
                    "--checkpoint", "results/checkpoint.pt", "--metrics", "results/metrics.jsonl",
                    "--report", "results/report", "--nproc", QString::number(processes)});
  m_poll.start(300);
  return {};
}

void JobRunner::stop() {
  // The launcher passes SIGTERM on; every process stops at the same step and rank 0 writes the
  // best state so far.
  if (m_process) m_process->terminate();
}

// New lines of the job's metrics log become events: the training loss since the previous
// evaluation as a step, then the evaluation.
void JobRunner::poll() {
  std::vector<EvaluationPoint> metrics;
  readJobMetrics(m_folder.toStdString(), metrics);  // a bad line shows when the job ends
  for (; m_pointsShown < static_cast<int>(metrics.size()); ++m_pointsShown) {
    const auto& point = metrics[static_cast<std::size_t>(m_pointsShown)];
    TrainEvent step;
    step.kind = TrainEvent::Kind::Step;
    step.epoch = point.epoch;
    step.step = point.step;
    step.loss = point.trainLoss;
    Q_EMIT event(step);
    TrainEvent evaluation = step;
    evaluation.kind = TrainEvent::Kind::Evaluation;
    evaluation.validation = point.validation;
    Q_EMIT event(evaluation);
  }
}

void JobRunner::onFinished(int exitCode) {
  if (!m_process) return;
  m_poll.stop();
  m_process->deleteLater();
  m_process = nullptr;
  poll();
  const auto results = readJobResults(m_folder.toStdString());
  // Rank 0 wrote a tuned model: the run is kept, as a run in the window is, whatever its outcome
  // (finished, cancelled by Stop, diverged: the processes then end with a non-zero status).
  if (results.ok) {
    Q_EMIT finished(runOf(results), {}, QString::fromStdString(results.tunedModelPath));
    return;
  }
  const QStringList lines = m_output.trimmed().split('\n');
  const QString tail =
      lines.mid(std::max<qsizetype>(0, lines.size() - 4)).join('\n');  // the launcher's last words
  Q_EMIT finished({},
                  QString("The %1 processes stopped (exit status %2):\n%3")
                      .arg(m_processes)
                      .arg(exitCode)
                      .arg(tail),
                  {});
}

}  // namespace scalpel::ui
