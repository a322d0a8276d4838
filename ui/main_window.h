#pragma once

#include <QMainWindow>
#include <QPointer>

class QDialog;
class QDockWidget;
class QLabel;
class QMenu;
class QMessageBox;
class QProgressDialog;

namespace scalpel {
struct PretrainProgress;
}

namespace scalpel::ui {

class ComparePanel;
class DataDialog;
class DetailsPane;
class DiagramView;
class LayerDiagramScene;
class LayerTableModel;
class SessionController;
class ShiftHeatmap;
class TrainingPanel;

// Scalpel's window: a view of a SessionController (the application, headless). It lays out the
// layer diagram, the details pane and the bottom tabs (heatmap, training, compare, layers, log),
// holds the menus and the dialogs, and routes what the user asks for to the session; what the
// session says comes back to the views through its signals. It keeps no state of the session.
class MainWindow : public QMainWindow {
  Q_OBJECT

 public:
  explicit MainWindow(QWidget* parent = nullptr);
  ~MainWindow() override;

  SessionController* session() const { return m_session; }
  LayerDiagramScene* diagram() const { return m_scene; }
  DiagramView* diagramView() const { return m_view; }
  ShiftHeatmap* heatmap() const { return m_heatmap; }
  TrainingPanel* trainingPanel() const { return m_training; }
  ComparePanel* comparePanel() const { return m_compare; }
  LayerTableModel* layerTable() const { return m_layers; }
  DetailsPane* details() const { return m_details; }
  // The dialog of the last error, while it is open (for tests and screenshots).
  QMessageBox* errorDialog() const;
  QProgressDialog* trainingDialog() const;  // the demo's first run
  DataDialog* dataDialog() const;           // while it is open

 public Q_SLOTS:
  void openModelDialog();
  // Where to export a tuned model: TorchScript (.pt, the report inside), a state dict (.pth) or
  // safetensors; the chosen filter's extension is added when the name has none. "" if cancelled.
  QString chooseExportPath();
  // File ▸ Open Data…: the data dialog (reader, target or source, synthetic shift, preview).
  void openDataDialog();
  // A model, or a session (.json), by its name: for Recent Files and drops.
  void openFile(const QString& path);
  // Help ▸ How Surgical Fine-Tuning Works: the method in a page (ui/help/how_it_works.html).
  void showMethodHelp();
  void showRunOnDialog();  // Training ▸ Run On…
  // File ▸ New Session: asks to save changes first.
  void newSession();
  // Edit ▸ Freeze Block / Unfreeze Block: the block of the node last clicked in the diagram.
  void setSelectedBlockTrainable(bool trainable);

 protected:
  void dragEnterEvent(QDragEnterEvent* event) override;
  void dropEvent(QDropEvent* event) override;
  // Asks before stopping a run, autosaves, asks to save changes.
  void closeEvent(QCloseEvent* event) override;

 private:
  // The layout (main_window.cpp).
  QWidget* buildCentre();
  QWidget* buildLayersPane();
  QWidget* buildLogPanel();
  QDockWidget* addBottomTab(const QString& title, const QString& objectName, QWidget* widget);
  void raiseTab(const char* objectName);
  void fitToScreen();
  // What the session says, shown (main_window.cpp).
  void connectSession();
  void connectPanels();
  void showModel();
  void notBusy();
  void showDiagnosis();
  void showPlanContext();
  void showPretrainProgress(const scalpel::PretrainProgress& progress);
  void showDemoTraining();
  void showReadiness();
  void showTitle();
  void showError(const QString& title, const QString& message, const QString& hint = {});
  // The menus and their dialogs (main_window_menus.cpp).
  void buildMenus();
  void buildFileMenu();
  void buildEditAndViewMenus();
  void buildAnalysisAndTrainingMenus();
  void fillRecentMenu();
  bool saveCurrentSession();  // Save: to the session's file, or asks where
  bool saveSessionAs();
  bool maybeSave();  // Save / Discard / Cancel when there are unsaved changes; false: cancel
  void exportJobDialog(int processes);

  SessionController* m_session = nullptr;
  LayerDiagramScene* m_scene = nullptr;
  DiagramView* m_view = nullptr;
  DetailsPane* m_details = nullptr;
  ShiftHeatmap* m_heatmap = nullptr;
  TrainingPanel* m_training = nullptr;
  ComparePanel* m_compare = nullptr;
  LayerTableModel* m_layers = nullptr;
  QLabel* m_deviceLabel = nullptr;
  QMenu* m_recentMenu = nullptr;
  QAction* m_exportAction = nullptr;
  QAction* m_exportReportAction = nullptr;
  QDockWidget* m_firstBottomTab = nullptr;  // the others are tabbed beside it
  int m_selectedNode = -1;                  // last clicked in the diagram
  bool m_busy = false;                      // the busy cursor is on while a model opens
  bool m_showingSettings = false;           // the Training tab is being set from the session
  QPointer<QMessageBox> m_errorDialog;
  QPointer<QProgressDialog> m_trainingDialog;
  QPointer<DataDialog> m_dataDialog;
  QPointer<QDialog> m_helpDialog;
};

}  // namespace scalpel::ui
