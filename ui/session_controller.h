#pragma once

#include <QObject>
#include <QSet>
#include <QStringList>
#include <QThread>

#include <optional>
#include <vector>

#include "core_metatypes.h"

class QUndoStack;

namespace scalpel::ui {

class FreezeState;
class JobRunner;
class LayerScores;
class ModelWorker;
class SessionDocument;

// The application without its window: what a session is doing, headless (a QObject with no
// widget), as Tiled's MapDocument is to its MainWindow. It owns the torch worker and its thread,
// the request ids (the newest request of each kind wins; stale results are dropped), the open
// model and data, the analysis with its diagnosis and plan, the freeze marks and their undo
// stack, the per-layer scores, training and the compare queue, export, the session document and
// the runner of several-process jobs. Views observe its signals and accessors; it says what
// happened in statusChanged and what went wrong in errorRaised, and never opens a dialog itself.
class SessionController : public QObject {
  Q_OBJECT

 public:
  // The settings of the next run: the Training tab edits them, sessions keep them.
  struct Settings {
    QString strategy = "auto";  // a strategy of choosePlan(), "block:NAME", or "manual" (the marks)
    TrainOptions options;
    int processes = 1;  // 1: on the worker; N > 1: N processes on this machine (a job)
  };

  explicit SessionController(QObject* parent = nullptr);
  ~SessionController() override;  // cancels what runs and waits for the worker

  // ---- The model and the data.
  // Opens the model on the worker (the newest request wins), as `choices` say.
  void openModel(const QString& path, const ModelChoices& choices = {});
  // Opens the open (or last tried) model again with other choices: the architecture of a
  // checkpoint several fit, a preprocessing preset, a new head. The data stay; an analysis that
  // was shown runs again.
  void reopenModel(const ModelChoices& choices);
  void chooseArchitecture(const QString& name);
  // Preset of applyPreprocessing() ("" as stored); "custom" takes `mean` and `std`.
  void setPreprocessing(const QString& preset, const std::vector<double>& mean = {},
                        const std::vector<double>& std = {});
  // Replaces the model's last layer by a new one for the target data's classes.
  void useNewHead();
  const ModelChoices& modelChoices() const { return m_modelChoices; }
  // The target's classes when the model's outputs do not match them (else empty).
  QStringList classesWithoutOutputs() const;
  // The demo: the cached trained model at `trained`, else `untrained` trained on Fashion-MNIST
  // first (pretrainProgress, demoTrained); then its data (noisy test images as the target, clean
  // training images as the source) and their analysis.
  void openDemo(const QString& untrained, const QString& trained,
                const PretrainOptions& options = {});
  void cancelPretraining();
  // Loads the target (the analyst's shifted data) or the source reference, sized for the model.
  void openData(bool target, const DataRequest& request);
  // Loads data only to preview it (the data dialog): dataPreviewed.
  void previewData(const DataRequest& request);
  // `request` with the open model's input size and class names where it names none.
  DataRequest sizedForModel(DataRequest request) const;

  // ---- Analysis: the target against the model's own reference, or against the source data.
  void analyze(bool useSource);
  void stopAnalysis();

  // ---- The freeze marks (undoable) and the advisor's plan.
  void setTrainable(const QVector<int>& nodes, bool trainable, const QString& what);
  void setBlockTrainable(int node, bool trainable);  // the whole block of `node`
  void acceptSuggestedPlan();
  void resetPlan();  // every layer trains again, the strategy back to auto

  // ---- Training, one run at a time: in the worker, or as a job of several processes.
  void setSettings(const Settings& settings);
  void setStrategy(const QString& strategy);  // the other settings as they are
  const Settings& settings() const { return m_settings; }
  void train();
  void pause(bool paused);
  void stop();  // the run, a comparison, or the processes of a job
  // Trains these plans one after another with the same settings (the Compare tab).
  void compare(const QStringList& strategies);
  // A compared run becomes the current one, is exported, or becomes the freeze plan.
  void openComparedRun(int index);
  QString exportComparedRun(int index, const QString& path);
  void useComparedPlan(int index);

  // ---- Results.
  // Writes the current run's tuned model (its report inside) and, beside it, the report as
  // Markdown with plots in "<name>-report/". Returns "" or the error (also in errorRaised).
  QString exportTunedModel(const QString& path);
  QString exportReport(const QString& folder);  // the current run's report alone
  QString exportJob(const QString& folder, int processes);
  QString openJobResults(const QString& folder);

  // ---- Sessions.
  void newSession();
  // Opens a session file: its model, data, marks and settings (sessionRestored when all is
  // there, then the analysis runs again). Returns "" or the error (also in errorRaised).
  QString openSession(const QString& path);
  QString saveSession(const QString& path);
  bool restoreAutosave();
  void autosave();

  // ---- What views read.
  const ModelInspection& inspection() const { return m_inspection; }
  bool hasModel() const { return m_inspection.ok; }
  const DataSummary& targetData() const { return m_data[0]; }
  const DataSummary& sourceData() const { return m_data[1]; }
  const std::optional<Diagnosis>& diagnosis() const { return m_diagnosis; }
  const FreezePlan& suggestedPlan() const { return m_plan; }
  // The blocks the advisor's plan trains whole (none without a diagnosis).
  QSet<int> suggestedBlocks() const;
  bool isAnalysing() const { return m_analysing; }
  bool isTraining() const { return m_running != Running::Nothing; }
  bool isComparing() const { return m_running == Running::Comparison; }
  const std::optional<FineTuneRun>& currentRun() const { return m_currentRun; }
  struct ComparedRun {
    QString strategy;
    FineTuneRun run;
    QString error;  // its plan could not be made
    bool ok() const { return error.isEmpty() && run.result.tunedModel != nullptr; }
  };
  const std::vector<ComparedRun>& comparedRuns() const { return m_compared; }
  int bestComparedRun() const;  // highest validation score among those that trained; -1 if none
  FreezeState* freezeState() const { return m_freeze; }
  QUndoStack* undoStack() const { return m_undo; }
  LayerScores* scores() const { return m_scores; }
  SessionDocument* document() const { return m_document; }
  ModelWorker* worker() const { return m_worker; }
  QString device() const;  // where the last run or the analysis ran, described

 Q_SIGNALS:
  void statusChanged(const QString& message);
  void errorRaised(const QString& title, const QString& message, const QString& hint);
  void modelOpening(const QString& path);
  void modelOpened();  // inspection() is the new model; the freeze state and scores follow it
  void modelFailed(const QString& error);
  // A checkpoint fits several library architectures: chooseArchitecture() one of them.
  void architectureChoiceNeeded(const QStringList& candidates);
  // The target's classes differ from the model's outputs: useNewHead() would fit them.
  void headMismatch(int classes, int outputs);
  void pretrainStarted();
  void pretrainProgress(const scalpel::PretrainProgress& progress);
  void pretrainEnded();
  void demoTrained(double testAccuracy);
  void dataLoaded(bool target);
  void dataPreviewed(const scalpel::DataSummary& summary);
  void analysisStarted(const QString& what);
  void analysisFinished(bool ok, const QString& caption);  // scores() and diagnosis() are final
  void gradientsMeasured();
  void diagnosisChanged();  // diagnosis(), suggestedPlan(), suggestedBlocks()
  void settingsChanged();
  void trainingStarted();
  void trainingStatus(const QString& message);
  void trainingEvent(const scalpel::TrainEvent& event);
  // Strategy auto: an evaluation of a candidate plan's short run (before the chosen plan trains).
  void candidateEvaluated(const QString& candidate, int round, const scalpel::TrainEvent& event);
  void trainingFinished(bool ok);  // a tuned model is currentRun()
  void comparisonStarted(const QStringList& strategies);
  void comparisonRunStarted(const QString& strategy);
  void comparisonStatus(const QString& message);
  void comparisonEvent(const scalpel::TrainEvent& event);
  void comparisonRunFinished(int index);
  void comparisonFinished(const QString& message);
  void currentRunChanged();  // a run to show and export, from training, Compare or a job
  void sessionRestored();
  void deviceChanged(const QString& description);
  // To the worker (connected in connectWorker(); not for views).
  void requestOpen(quint64 request, const QString& path, const scalpel::ModelChoices& choices);
  void requestPretrain(quint64 request, const QString& untrained, const QString& trained,
                       const scalpel::PretrainOptions& options);
  void requestData(quint64 request, int role, const scalpel::DataRequest& data);
  void requestPreview(quint64 request, const scalpel::DataRequest& data);
  void requestAnalysis(quint64 request, bool useSource);
  void requestTraining(quint64 request, const scalpel::Session& session);

 private:
  enum class Running { Nothing, Training, Comparison };
  void connectWorker();
  void onOpened(quint64 request, const ModelInspection& inspection);
  void onPretrained(quint64 request, const PretrainResult& result, const QString& trained);
  void onDataLoaded(quint64 request, int role, const DataSummary& summary);
  void onAnalysed(quint64 request, const ShiftAnalysis& analysis);
  void onTrained(quint64 request, const FineTuneRun& run, const QString& error);
  void onJobFinished(const FineTuneRun& run, const QString& error, const QString& tunedModel);
  void startRun(const QString& strategy);
  void runNextComparison();
  void finishTraining(const FineTuneRun& run, const QString& error);
  void finishComparedRun(const FineTuneRun& run, const QString& error);
  bool canTrain();
  Session sessionFor(const QString& strategy) const;
  void fillSession(Session& session) const;
  void setCurrentRun(const FineTuneRun& run);
  QString exportRun(const FineTuneRun& run, const QString& path);
  void clearModel();
  void applyRestoredSession();
  void finishRestoring();
  void fail(const QString& title, const QString& message, const QString& hint = {});
  void say(const QString& message);

  QThread m_thread;
  ModelWorker* m_worker = nullptr;
  JobRunner* m_jobs = nullptr;
  SessionDocument* m_document = nullptr;
  FreezeState* m_freeze = nullptr;
  QUndoStack* m_undo = nullptr;
  LayerScores* m_scores = nullptr;
  // The newest request of each kind; a result with another id is stale.
  quint64 m_nextRequest = 0;
  quint64 m_modelRequest = 0, m_pretrainRequest = 0, m_previewRequest = 0, m_analysisRequest = 0,
          m_trainingRequest = 0;
  quint64 m_dataRequest[2] = {0, 0};
  ModelInspection m_inspection;
  QString m_modelPath;          // the model asked for last (open, or failing)
  ModelChoices m_modelChoices;  // how it is opened (sessions keep them)
  bool m_reanalyse = false;     // after a reopen: the analysis shown runs again
  DataSummary m_data[2];        // target, source
  DataRequest m_dataAsked[2];   // as asked (the model's shape is added again on reopening)
  bool m_analysedWithSource = false;
  bool m_analysing = false;
  std::optional<Diagnosis> m_diagnosis;
  FreezePlan m_plan;
  Settings m_settings;
  Running m_running = Running::Nothing;
  QStringList m_compareQueue;  // plans still to train in this comparison
  QString m_comparedStrategy;  // the one training now
  std::vector<ComparedRun> m_compared;
  std::optional<FineTuneRun> m_currentRun;
  QString m_device;
  // The demo's story, step by step: its data once its model is open, its analysis once the
  // target is loaded.
  bool m_demoPending = false;
  bool m_analyseDemo = false;
  std::optional<Session> m_restoring;  // a session whose model is being opened
  int m_restoringData = 0;             // its data sets still loading
};

}  // namespace scalpel::ui
