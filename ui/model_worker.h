#pragma once

#include <QObject>
#include <QString>
#include <QVector>

#include <atomic>
#include <memory>
#include <mutex>
#include <string>

#include "core_metatypes.h"

namespace scalpel::ui {

// Which data set of a session a request is about.
enum class DataRole { Target, Source };

// Does the torch and data work of a session on its own thread (the GUI thread never runs it):
// opening models, pretraining, loading data. It keeps the loaded data sets for the analysis.
// Requests come in over queued connections; results go out as plain values tagged with the
// request id, so the window can drop a result that a newer request has made stale.
class ModelWorker : public QObject {
  Q_OBJECT

 public:
  // Not a slot: set from the GUI thread while pretrain() runs, read between its steps.
  std::atomic<bool>& cancelFlag() { return m_cancel; }
  // Not a slot either: pause, resume and stop a fine-tuning run from the GUI thread.
  TrainControl& trainControl() { return m_trainControl; }
  // Where analyses and gradients run: "auto", "cpu" or "cuda:N". Set from the GUI thread.
  void setDevice(const std::string& device);
  std::string device() const;

 public Q_SLOTS:
  void inspect(quint64 requestId, const QString& path, const QVector<qint64>& inputShape);
  // Trains the untrained model at `modelPath` from scratch and saves it to `outPath`.
  void pretrain(const QString& modelPath, const QString& outPath,
                const scalpel::PretrainOptions& options);
  // Loads (and shifts) a data set; it replaces the one held for `role`.
  void loadData(int role, const scalpel::DataRequest& request);
  // Loads a data set only to show its summary and preview (the data dialog); nothing is kept.
  void previewData(const scalpel::DataRequest& request);
  // Analyses the held target data against the held source data, or against the model's own
  // reference (stored profile or BatchNorm statistics) when `useSource` is false.
  void analyze(const QString& modelPath, bool useSource);
  // Fine-tunes the model on the held target data (split by the paper's protocol), choosing the
  // plan by `strategy` (see choosePlan()); `plan` is used as it is when strategy is "manual".
  void train(const QString& modelPath, const QString& strategy, const scalpel::FreezePlan& plan,
             const scalpel::TrainOptions& options);

 Q_SIGNALS:
  void inspected(quint64 requestId, const scalpel::ModelInspection& inspection);
  void pretrainProgress(const scalpel::PretrainProgress& progress);  // at most ~10 per second
  void pretrainFinished(const scalpel::PretrainResult& result, const QString& outPath);
  void dataLoaded(int role, const scalpel::DataSummary& summary);
  void dataPreviewed(const scalpel::DataSummary& summary);
  void analysisSnapshot(const scalpel::ShiftSnapshot& snapshot);
  void analysisFinished(const scalpel::ShiftAnalysis& analysis);
  // After an analysis: RGN and SNR per module on the (labelled) target, for the layer table.
  void gradientsFinished(const scalpel::GradientProfile& gradients);
  void trainingStatus(const QString& message);
  void trainingEvent(const scalpel::TrainEvent& event);  // steps thinned to ~10 per second
  void trainingFinished(const scalpel::FineTuneRun& run, const QString& planError);

 private:
  std::atomic<bool> m_cancel{false};
  TrainControl m_trainControl;
  mutable std::mutex m_deviceMutex;
  std::string m_device = "auto";
  std::shared_ptr<const Dataset> m_data[2];  // by DataRole
};

}  // namespace scalpel::ui
