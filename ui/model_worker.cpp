#include "model_worker.h"

#include <QElapsedTimer>

#include <algorithm>

#include "util/logging.h"
#include "util/threads.h"

namespace scalpel::ui {

void ModelWorker::inspect(quint64 requestId, const QString& path,
                          const QVector<qint64>& inputShape) {
  ModelInspection inspection;
  // An exception escaping a slot would end the program: everything stops here.
  try {
    InspectOptions options;
    options.inputShape.assign(inputShape.begin(), inputShape.end());
    inspection = inspectModel(path.toStdString(), options);
  } catch (const std::exception& error) {
    inspection.path = path.toStdString();
    inspection.error = path.toStdString() + ": " + error.what();
    logger("ui")->error("opening {} failed: {}", path.toStdString(), error.what());
  }
  Q_EMIT inspected(requestId, inspection);
}

}  // namespace scalpel::ui

namespace scalpel::ui {

void ModelWorker::pretrain(const QString& modelPath, const QString& outPath,
                           const PretrainOptions& options) {
  useAllCores();  // torch's thread count is per thread: set it on this one
  m_cancel = false;
  QElapsedTimer sinceReport;
  sinceReport.start();
  // pretrainModel() never throws; its progress is thinned out so the GUI redraws calmly.
  const auto result = pretrainModel(
      modelPath.toStdString(), outPath.toStdString(), options,
      [&](const PretrainProgress& progress) {
        if (progress.testAccuracy >= 0 || sinceReport.elapsed() >= 100) {
          sinceReport.restart();
          Q_EMIT pretrainProgress(progress);
        }
      },
      &m_cancel);
  Q_EMIT pretrainFinished(result, outPath);
}

}  // namespace scalpel::ui

namespace scalpel::ui {

void ModelWorker::loadData(int role, const DataRequest& request) {
  auto data = std::make_shared<Dataset>();
  DataSummary summary;
  loadRequestedData(request, *data, summary);  // never throws
  if (summary.ok) m_data[role == static_cast<int>(DataRole::Source) ? 1 : 0] = std::move(data);  // by DataRole
  Q_EMIT dataLoaded(role, summary);
}

void ModelWorker::previewData(const DataRequest& request) {
  Dataset data;
  DataSummary summary;
  loadRequestedData(request, data, summary);
  Q_EMIT dataPreviewed(summary);
}

}  // namespace scalpel::ui

namespace scalpel::ui {

void ModelWorker::setDevice(const std::string& device) {
  std::lock_guard<std::mutex> lock(m_deviceMutex);
  m_device = device;
}

std::string ModelWorker::device() const {
  std::lock_guard<std::mutex> lock(m_deviceMutex);
  return m_device;
}

void ModelWorker::analyze(const QString& modelPath, bool useSource) {
  useAllCores();  // torch's thread count is per thread: set it on this one
  m_cancel = false;
  ShiftAnalysis analysis;
  const auto& target = m_data[static_cast<int>(DataRole::Target)];
  const auto& source = m_data[static_cast<int>(DataRole::Source)];
  if (!target) {
    analysis.error = "open target data first (File ▸ Open Target Image Folder… or CSV…)";
  } else {
    AnalysisOptions options;
    options.maxBatches = 20;
    options.device = device();
    analysis = analyzeShift(modelPath.toStdString(), *target, useSource ? source.get() : nullptr,
                            options, [this](const ShiftSnapshot& s) { Q_EMIT analysisSnapshot(s); },
                            &m_cancel);
  }
  if (analysis.snapshots.size() > 1) {  // the others went out one by one already
    analysis.snapshots.erase(analysis.snapshots.begin(), analysis.snapshots.end() - 1);
  }
  const bool measured = analysis.ok && analysis.output.measured;
  Q_EMIT analysisFinished(analysis);
  if (measured && !m_cancel) {
    GradientOptions options;
    options.device = device();
    Q_EMIT gradientsFinished(gradientProfile(modelPath.toStdString(), *target, options));  // never throws
  }
}

}  // namespace scalpel::ui

namespace scalpel::ui {

void ModelWorker::train(const QString& modelPath, const QString& strategy, const FreezePlan& plan,
                        const TrainOptions& options) {
  useAllCores();  // torch's thread count is per thread: set it on this one
  m_trainControl.reset();
  FineTuneRun run;
  const auto& target = m_data[static_cast<int>(DataRole::Target)];
  const auto& source = m_data[static_cast<int>(DataRole::Source)];
  if (!target) {
    Q_EMIT trainingFinished(run, "open target data first (File ▸ Open Target Image Folder… or CSV…)");
    return;
  }
  try {
    const TargetData data = splitTarget(*target, TargetSplit{}, target->name);
    if (!data.ok) {
      Q_EMIT trainingFinished(run, QString::fromStdString(data.error));
      return;
    }
    PlanChoice choice;
    if (strategy == "manual") {
      choice.ok = true;
      choice.plan = plan;
    } else {
      choice = choosePlan(modelPath.toStdString(), strategy.toStdString(), data, source.get(), options, 2,
                          [this](const std::string& status) { Q_EMIT trainingStatus(QString::fromStdString(status)); },
                          &m_trainControl);
    }
    if (!choice.ok) {
      Q_EMIT trainingFinished(run, QString::fromStdString(choice.error));
      return;
    }
    Q_EMIT trainingStatus(QString::fromStdString("training: " + choice.plan.explanation));
    QElapsedTimer sinceReport;
    sinceReport.start();
    run = fineTune(modelPath.toStdString(), choice, data, options, [&](const TrainEvent& event) {
      // Steps reach the window every 100 ms, and at least one in every 1/500 of the run, so a
      // run of a few hundred fast steps still draws its whole curve without flooding the window.
      const std::size_t stride = std::max<std::size_t>(1, event.totalSteps / 500);
      if (event.kind != TrainEvent::Kind::Step || sinceReport.elapsed() >= 100 || event.step % stride == 0 || event.step == event.totalSteps) {
        sinceReport.restart();
        Q_EMIT trainingEvent(event);
      }
    }, &m_trainControl);
    Q_EMIT trainingFinished(run, {});
  } catch (const std::exception& error) {  // never out of a slot
    logger("ui")->error("training failed: {}", error.what());
    Q_EMIT trainingFinished(run, QString("training failed: ") + error.what());
  }
}

}  // namespace scalpel::ui
