#pragma once

#include <QObject>
#include <QString>

#include <atomic>
#include <memory>
#include <mutex>
#include <string>

#include "core_metatypes.h"

namespace scalpel::ui {

// Which data set of a session a request is about.
enum class DataRole { Target, Source };

// Does the torch and data work of a session on its own thread (the GUI thread never runs it):
// opening the model (once: every later stage works on that load), pretraining, loading data,
// analysing and training. It keeps the open model and the loaded data sets. Requests come in over
// queued connections, each with the id the SessionController gave it; results go out as plain
// values with that id, so the controller drops those a newer request has made stale. Every slot
// catches what torch throws: an exception escaping a slot would end the program.
class ModelWorker : public QObject {
  Q_OBJECT

 public:
  // Not slots: set from the GUI thread while a job runs, read between its batches or steps.
  std::atomic<bool>& cancelFlag() { return m_cancel; }  // pretraining and analysis
  // The newest analysis request: older ones stop at their next batch (or do not start).
  void supersedeAnalyses(quint64 newest) { m_newestAnalysis = newest; }
  TrainControl& trainControl() { return m_trainControl; }
  // Where analyses and gradients run: "auto", "cpu" or "cuda:N". Set from the GUI thread.
  void setDevice(const std::string& device);
  std::string device() const;

 public Q_SLOTS:
  // `choices`: preprocessing "source" without a mean takes the held source data's statistics.
  void open(quint64 request, const QString& path, const scalpel::ModelChoices& choices);
  // Trains the untrained model at `untrained` from scratch and saves it to `trained`.
  void pretrain(quint64 request, const QString& untrained, const QString& trained,
                const scalpel::PretrainOptions& options);
  // Loads (and shifts) a data set; it replaces the one held for `role`.
  void loadData(quint64 request, int role, const scalpel::DataRequest& data);
  // Loads a data set only to show its summary and preview (the data dialog); nothing is kept.
  void previewData(quint64 request, const scalpel::DataRequest& data);
  // Analyses the held target data against the held source data, or against the model's own
  // reference (stored profile or BatchNorm statistics) when `useSource` is false; then measures
  // the gradients on it when it is labelled for the model's outputs.
  void analyze(quint64 request, bool useSource);
  // Fine-tunes the open model on the held data as the session says (core's runTraining: split,
  // strategy or its manual plan, options).
  void train(quint64 request, const scalpel::Session& session);

 Q_SIGNALS:
  void opened(quint64 request, const scalpel::ModelInspection& inspection);
  void pretrainProgress(quint64 request,
                        const scalpel::PretrainProgress& progress);  // at most ~10 per second
  void pretrainFinished(quint64 request, const scalpel::PretrainResult& result,
                        const QString& trained);
  void dataLoaded(quint64 request, int role, const scalpel::DataSummary& summary);
  void dataPreviewed(quint64 request, const scalpel::DataSummary& summary);
  void analysisSnapshot(quint64 request, const scalpel::ShiftSnapshot& snapshot);
  void analysisFinished(quint64 request, const scalpel::ShiftAnalysis& analysis);
  void gradientsMeasured(quint64 request, const scalpel::GradientProfile& gradients);
  void trainingStatus(quint64 request, const QString& message);
  // Strategy auto: an evaluation in a candidate plan's short run, in `round` (0-based).
  void candidateEvaluated(quint64 request, const QString& candidate, int round,
                          const scalpel::TrainEvent& event);
  void trainingEvent(quint64 request,
                     const scalpel::TrainEvent& event);  // steps thinned to ~10 per second
  // `error`: why the run did not start (no data, a plan that could not be made); a run that
  // started says how it ended in run.result.
  void trainingFinished(quint64 request, const scalpel::FineTuneRun& run, const QString& error);

 private:
  std::atomic<bool> m_cancel{false};
  std::atomic<quint64> m_newestAnalysis{0};
  TrainControl m_trainControl;
  mutable std::mutex m_deviceMutex;
  std::string m_device = "auto";
  LoadedModel m_model;                       // the open model, loaded once for every stage
  std::shared_ptr<const Dataset> m_data[2];  // by DataRole
};

}  // namespace scalpel::ui
