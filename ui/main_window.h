#pragma once

#include <QMainWindow>
#include <QPointer>
#include <QThread>
#include <QTimer>

#include <optional>

#include "analysis/advisor.h"
#include "io/session.h"
#include "core_metatypes.h"

class QDialog;
class QDockWidget;
class QLabel;
class QMenu;
class QMessageBox;
class QProcess;
class QProgressDialog;
class QTextBrowser;
class QUndoStack;

namespace scalpel::ui {

class DataDialog;
class DiagramView;
class FreezeState;
class LayerTableModel;
class LayerDiagramScene;
class ModelWorker;
class ComparePanel;
class ShiftHeatmap;
class TrainingPanel;

// Scalpel's main window: menus, the layer diagram, a details pane, and the worker thread that
// opens models.
class MainWindow : public QMainWindow {
  Q_OBJECT

 public:
  explicit MainWindow(QWidget* parent = nullptr);
  ~MainWindow() override;

  LayerDiagramScene* diagram() const { return m_scene; }
  DiagramView* diagramView() const { return m_view; }
  const ModelInspection& inspection() const { return m_inspection; }
  // The dialog of the last refused model, while it is open (for tests and screenshots).
  QMessageBox* errorDialog() const;

 public Q_SLOTS:
  // Opens the model on the worker thread; the newest request wins.
  void openModel(const QString& path);
  void openModelDialog();
  // Opens the demo model: the cached trained one at `trained`, else trains `untrained` on
  // Fashion-MNIST first (once), with a progress dialog.
  void openDemo(const QString& untrained, const QString& trained,
                const scalpel::PretrainOptions& options = {});
  // Loads data on the worker: the target (the analyst's shifted data) or the source reference.
  void openData(bool target, const scalpel::DataRequest& given);
  // Streams the target data through the open model into the heatmap, against the model's own
  // reference (`useSource` false: a saved profile or its BatchNorm statistics) or the source data.
  void analyzeTarget(bool useSource);
  // Fine-tunes the open model on the target data (the paper's split) on the worker thread.
  void startTraining(const QString& strategy, const scalpel::TrainOptions& options);
  // Writes the last run's tuned model (its report inside) and, beside it, the report as Markdown
  // with plots in "<name>-report/". Returns "" or the error (also shown in a dialog).
  QString exportTunedModel(const QString& path);
  // File ▸ Export Report…: the last run's report as Markdown with PNG plots into `folder`.
  QString exportReport(const QString& folder);
  // Trains these plans one after another (same model, data and options) into the Compare tab.
  void startComparison(const QStringList& strategies, const scalpel::TrainOptions& options);
  // The Compare tab's row `row`: becomes the current run (Training tab, File ▸ Export), is
  // exported (returns "" or the error, also shown in a dialog), or becomes the freeze plan.
  void openComparedRun(int row);
  QString exportComparedRun(int row, const QString& path);
  void useComparedPlan(int row);
  // Marks the advisor's suggested plan in the diagram and the table (undoable).
  void acceptSuggestedPlan();
  // Analysis ▸ Reset Plan: every layer trainable again and the plan back to the advisor's (undoable).
  void resetPlan();
  // Makes these nodes' layers trainable or frozen (undoable).
  void setTrainable(const QVector<int>& nodes, bool trainable, const QString& what);
  // Edit ▸ Freeze Block / Unfreeze Block: the block of the node last clicked in the diagram.
  void setSelectedBlockTrainable(bool trainable);
  // Sessions (main_window_session.cpp). File ▸ New Session: asks to save changes, then empties
  // the window.
  void newSession();
  // Opens a session: its model, data, freeze marks and training settings (sessionRestored when
  // all is on screen). Returns "" or the error (also shown in a dialog).
  QString openSession(const QString& path);
  // Writes the window's state to `path` atomically and makes it the session's file. Returns ""
  // or the error (also shown in a dialog; the previous file stays intact).
  QString saveSession(const QString& path);
  bool restoreAutosave();
  // A model, or a session (.json), by its name: for Recent Files and drops.
  void openFile(const QString& path);
  // File ▸ Open Data…: the data dialog (reader, target or source, synthetic shift, preview).
  void openDataDialog();
  // Help ▸ How Surgical Fine-Tuning Works: the method in a page (ui/help/how_it_works.html).
  void showMethodHelp();
  // Several processes (main_window_jobs.cpp). Where Train runs: 1 in this window, N > 1 as N
  // processes on this machine (a job folder that `scalpel-cli train --nproc N` runs).
  void setTrainProcesses(int processes);
  void showRunOnDialog();  // Training ▸ Run On…
  // Training ▸ Export Job…: the session as a job folder for `processes` per machine. Returns ""
  // or the error (also shown in a dialog).
  QString exportJob(const QString& folder, int processes);
  // Training ▸ Open Job Results…: a job folder's tuned model and curves become the current run
  // and join the session. Returns "" or the error (also shown in a dialog).
  QString openJobResults(const QString& folder);
  // Training ▸ Stop: the run in the window, or the processes.
  void stopTraining();

 Q_SIGNALS:
  void modelShown();                     // a model is on screen
  void loadFailed(const QString& error); // and a dialog says why
  void requestInspection(quint64 requestId, const QString& path, const QVector<qint64>& shape);
  void requestPretrain(const QString& modelPath, const QString& outPath,
                       const scalpel::PretrainOptions& options);
  void demoTrained(double testAccuracy);  // the first-run training of the demo finished
  void requestData(int role, const scalpel::DataRequest& request);
  void requestPreview(const scalpel::DataRequest& request);
  void dataShown(bool target);  // a data set is loaded and summarised in the details pane
  void requestAnalysis(const QString& modelPath, bool useSource);
  void analysisShown();  // the heatmap is complete and the diagnosis is in the details pane
  void requestTraining(const QString& modelPath, const QString& strategy,
                       const scalpel::FreezePlan& plan, const scalpel::TrainOptions& options);
  void trainingFinished(bool ok);
  void comparisonFinished();  // every queued plan ran (or the comparison was stopped)
  void sessionRestored();  // an opened session's model, data and marks are on screen
  void gradientsShown();  // the layer table's RGN column is filled in  // a run ended (ok: a tuned model is ready to export)

 protected:
  void dragEnterEvent(QDragEnterEvent* event) override;
  void dropEvent(QDropEvent* event) override;
  // Asks before stopping a run, autosaves, asks to save changes.
  void closeEvent(QCloseEvent* event) override;

 private:
  void buildMenus();
  // A dock in the bottom area, as a tab beside the ones added before it.
  QDockWidget* addBottomTab(const QString& title, const QString& objectName, QWidget* widget);
  void onInspected(quint64 requestId, const scalpel::ModelInspection& inspection);
  void showDetails(int nodeIndex);
  // A window-modal warning; `hint` (smaller, under it) says what to do next when the message does not.
  void showError(const QString& title, const QString& message, const QString& hint = {});
  void onPretrainProgress(const scalpel::PretrainProgress& progress);
  void onPretrainFinished(const scalpel::PretrainResult& result, const QString& outPath);
  void onDataLoaded(int role, const scalpel::DataSummary& summary);
  void onAnalysisFinished(const scalpel::ShiftAnalysis& analysis);
  void onTrainingFinished(const scalpel::FineTuneRun& run, const QString& planError);
  bool canTrain();  // a model and target data are open; else says what to open
  void requestRun(const QString& strategy, const scalpel::TrainOptions& options);
  void runNextComparison();
  void onComparedRunFinished(const scalpel::FineTuneRun& run, const QString& planError);
  QString exportRun(const scalpel::FineTuneRun& run, const QString& path);
  QString diagnosisHtml() const;
  void showWelcome();  // the details pane with no model open
  void showSuggestion();  // outlines the blocks m_plan trains
  QSet<int> suggestedBlocks() const;  // those blocks: every unit of each in m_plan (none without a diagnosis)
  void showPlanContext();  // tells the Training tab what is ticked and suggested
  void enableRunActions();  // File ▸ Export Tuned Model / Report follow m_lastRun
  // `request` with the open model's input size and class names filled in where it has none.
  DataRequest sizedForModel(DataRequest request) const;
  // Sessions:
  void markDirty();  // unsaved changes; the autosave follows shortly
  void autosave();
  QString writeSession(const QString& path);
  bool saveCurrentSession();  // Save: to its file, or asks where
  bool saveSessionAs();
  bool maybeSave();  // Save / Discard / Cancel when there are unsaved changes; false: cancel
  void resetSession();
  void applyPendingSession();  // once its model is on screen
  void finishRestoring();
  void checkAutosave();  // at start: says whether one can be restored, sets an unreadable one aside
  void addRecentFile(const QString& path);
  void fillRecentMenu();
  QString dataHtml(bool target) const;
  // Jobs:
  Session sessionToRun(const QString& strategy, const TrainOptions& options) const;
  void exportJobDialog(int processes);
  void openJobResultsDialog();
  void startLocalJob(const QString& strategy, const TrainOptions& options);
  void pollJob();
  void onJobFinished(int exitCode);

  QThread m_workerThread;
  ModelWorker* m_worker = nullptr;
  quint64 m_lastRequest = 0;
  ModelInspection m_inspection;
  DataSummary m_targetData;
  DataSummary m_sourceData;
  bool m_demoPending = false;  // open the demo's data once its model is shown
  bool m_analyseDemo = false;  // analyse the demo's target once it is loaded
  std::optional<Diagnosis> m_diagnosis;
  FreezePlan m_plan;
  ShiftHeatmap* m_heatmap = nullptr;
  TrainingPanel* m_training = nullptr;
  ComparePanel* m_compare = nullptr;
  QStringList m_compareQueue;  // plans still to train in this comparison
  scalpel::TrainOptions m_compareOptions;
  bool m_comparing = false;
  FreezeState* m_freeze = nullptr;
  QUndoStack* m_undo = nullptr;
  LayerTableModel* m_layers = nullptr;
  std::optional<FineTuneRun> m_lastRun;
  QAction* m_exportAction = nullptr;
  QAction* m_exportReportAction = nullptr;
  int m_selectedNode = -1;
  QPointer<QDialog> m_helpDialog;
  QPointer<DataDialog> m_dataDialog;
  // The session: what the window shows, plus what it keeps for the file.
  Session m_session;             // as opened (fields the window does not edit)
  std::optional<Session> m_pendingSession;  // being restored, until its model is shown
  std::vector<SessionRun> m_sessionRuns;
  QString m_sessionPath;          // "" until saved or opened
  bool m_dirty = false;
  int m_restoringData = 0;        // data sets of a restored session still loading
  DataRequest m_targetRequest, m_sourceRequest;  // of the data on screen
  bool m_analysedWithSource = false;
  QTimer m_autosaveTimer;
  QMenu* m_recentMenu = nullptr;  // last clicked in the diagram

  LayerDiagramScene* m_scene = nullptr;
  DiagramView* m_view = nullptr;
  QTextBrowser* m_details = nullptr;
  QLabel* m_deviceLabel = nullptr;
  QPointer<QMessageBox> m_errorDialog;
  QDockWidget* m_firstBottomTab = nullptr;  // the others are tabbed beside it
  QPointer<QProgressDialog> m_trainingDialog;
  int m_trainProcesses = 1;        // Training ▸ Run On…
  QProcess* m_job = nullptr;       // the processes training now, if any
  QString m_jobFolder;
  QString m_jobOutput;
  QTimer m_jobPoll;                // follows the job's metrics log
  int m_jobPointsShown = 0;

 public:
  QProgressDialog* trainingDialog() const;
  DataDialog* dataDialog() const;  // while it is open
  const DataSummary& targetData() const { return m_targetData; }
  const DataSummary& sourceData() const { return m_sourceData; }
  ShiftHeatmap* heatmap() const { return m_heatmap; }
  TrainingPanel* trainingPanel() const { return m_training; }
  ComparePanel* comparePanel() const { return m_compare; }
  FreezeState* freezeState() const { return m_freeze; }
  QUndoStack* undoStack() const { return m_undo; }
  LayerTableModel* layerTable() const { return m_layers; }
  const std::optional<FineTuneRun>& lastRun() const { return m_lastRun; }
  int trainProcesses() const { return m_trainProcesses; }
  const std::optional<Diagnosis>& diagnosis() const { return m_diagnosis; }
  Session currentSession() const;
  const QString& sessionPath() const { return m_sessionPath; }
  bool hasUnsavedChanges() const { return m_dirty; }
  static QString autosavePath();
};

}  // namespace scalpel::ui
