#include "model_worker.h"

#include <QElapsedTimer>

#include <algorithm>

#include "util/logging.h"
#include "util/threads.h"
#include "workflow/training_run.h"

namespace scalpel::ui {

namespace {

const char* const kNoTarget = "open target data first (File ▸ Open Data…)";

}  // namespace

void ModelWorker::setDevice(const std::string& device) {
  std::lock_guard<std::mutex> lock(m_deviceMutex);
  m_device = device;
}

std::string ModelWorker::device() const {
  std::lock_guard<std::mutex> lock(m_deviceMutex);
  return m_device;
}

void ModelWorker::open(quint64 request, const QString& path, const ModelChoices& choices) {
  useAllCores();            // torch's thread count is per thread: set it on this one
  m_model = LoadedModel();  // the previous model's memory goes first
  try {
    InspectOptions options;
    options.choices = choices;
    if (choices.preprocessing == "source" && choices.mean.empty() && m_data[1]) {
      channelStatistics(*m_data[1], options.choices.mean, options.choices.std);
    }
    m_model = LoadedModel::open(path.toStdString(), options);  // never throws; a slot stays safe
  } catch (const std::exception& error) {
    logger("ui")->error("opening {} failed: {}", path.toStdString(), error.what());
  }
  ModelInspection inspection = m_model.inspection();
  if (inspection.path.empty()) inspection.path = path.toStdString();
  if (!inspection.ok && inspection.error.empty())
    inspection.error = path.toStdString() + ": the model could not be opened";
  Q_EMIT opened(request, inspection);
}

void ModelWorker::pretrain(quint64 request, const QString& untrained, const QString& trained,
                           const PretrainOptions& options) {
  useAllCores();
  m_cancel = false;
  QElapsedTimer sinceReport;
  sinceReport.start();
  // pretrainModel() never throws; its progress is thinned out so the GUI redraws calmly.
  const auto result = pretrainModel(
      untrained.toStdString(), trained.toStdString(), options,
      [&](const PretrainProgress& progress) {
        if (progress.testAccuracy >= 0 || sinceReport.elapsed() >= 100) {
          sinceReport.restart();
          Q_EMIT pretrainProgress(request, progress);
        }
      },
      &m_cancel);
  Q_EMIT pretrainFinished(request, result, trained);
}

void ModelWorker::loadData(quint64 request, int role, const DataRequest& data) {
  auto loaded = std::make_shared<Dataset>();
  DataSummary summary;
  loadRequestedData(data, *loaded, summary);  // never throws
  if (summary.ok && m_model.ok()) {
    if (auto note = fittingNote(summary.itemShape, m_model.inspection().metadata); !note.empty())
      summary.notes.push_back(note);
  }
  if (summary.ok) m_data[role == static_cast<int>(DataRole::Source) ? 1 : 0] = std::move(loaded);
  Q_EMIT dataLoaded(request, role, summary);
}

void ModelWorker::previewData(quint64 request, const DataRequest& data) {
  Dataset loaded;
  DataSummary summary;
  loadRequestedData(data, loaded, summary);
  Q_EMIT dataPreviewed(request, summary);
}

void ModelWorker::analyze(quint64 request, bool useSource) {
  if (request != m_newestAnalysis) return;  // a newer one is queued: its result is the one wanted
  useAllCores();
  m_cancel = false;
  // Stops between batches when asked (Stop Analysis) or when a newer request supersedes it.
  std::atomic<bool> stop{false};
  const auto superseded = [&] {
    if (m_cancel || request != m_newestAnalysis) stop = true;
  };
  ShiftAnalysis analysis;
  const auto target = m_data[static_cast<int>(DataRole::Target)];
  const auto source = m_data[static_cast<int>(DataRole::Source)];
  if (!target) {
    analysis.error = kNoTarget;
  } else {
    AnalysisOptions options;
    options.maxBatches = 20;
    options.device = device();
    analysis = analyzeShift(
        m_model, *target, useSource ? source.get() : nullptr, options,
        [&](const ShiftSnapshot& snapshot) {
          Q_EMIT analysisSnapshot(request, snapshot);
          superseded();
        },
        &stop);
  }
  if (analysis.snapshots.size() > 1) {  // the others went out one by one already
    analysis.snapshots.erase(analysis.snapshots.begin(), analysis.snapshots.end() - 1);
  }
  const bool measured = analysis.ok && analysis.output.measured;
  Q_EMIT analysisFinished(request, analysis);
  superseded();
  if (measured && !stop) {
    GradientOptions options;
    options.device = device();
    Q_EMIT gradientsMeasured(request, gradientProfile(m_model, *target, options));  // never throws
  }
}

void ModelWorker::train(quint64 request, const Session& session) {
  useAllCores();
  m_trainControl.reset();
  const auto target = m_data[static_cast<int>(DataRole::Target)];
  const auto source = m_data[static_cast<int>(DataRole::Source)];
  if (!target) {
    Q_EMIT trainingFinished(request, {}, kNoTarget);
    return;
  }
  TrainingRequest job;
  job.session = session;
  job.model = &m_model;
  job.target = target.get();
  job.source = source.get();  // the analysis' reference only when the session says so
  TrainingHooks hooks;
  hooks.status = [&](const std::string& status) {
    Q_EMIT trainingStatus(request, QString::fromStdString(status));
  };
  hooks.planned = [&](const PlanChoice& choice) {
    Q_EMIT trainingStatus(request, QString::fromStdString("training: " + choice.plan.explanation));
  };
  // The plan search's short runs: their evaluations are the candidates' curves.
  hooks.candidateEvent = [&](const std::string& candidate, int round, const TrainEvent& event) {
    if (event.kind == TrainEvent::Kind::Evaluation)
      Q_EMIT candidateEvaluated(request, QString::fromStdString(candidate), round, event);
  };
  QElapsedTimer sinceReport;
  sinceReport.start();
  hooks.event = [&](const TrainEvent& event) {
    // Steps reach the window every 100 ms, and at least one in every 1/500 of the run, so a run
    // of a few hundred fast steps still draws its whole curve without flooding the window.
    const std::size_t stride = std::max<std::size_t>(1, event.totalSteps / 500);
    if (event.kind != TrainEvent::Kind::Step || sinceReport.elapsed() >= 100 ||
        event.step % stride == 0 || event.step == event.totalSteps) {
      sinceReport.restart();
      Q_EMIT trainingEvent(request, event);
    }
  };
  const auto outcome = runTraining(std::move(job), hooks, &m_trainControl);  // never throws
  // A run that trained says how it ended itself; one that did not start says why here.
  const bool started =
      outcome.run.result.tunedModel != nullptr || !outcome.run.result.error.empty();
  if (!outcome.error.empty() && !started) logger("ui")->error("training failed: {}", outcome.error);
  Q_EMIT trainingFinished(request, outcome.run,
                          started ? QString() : QString::fromStdString(outcome.error));
}

}  // namespace scalpel::ui
