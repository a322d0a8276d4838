// MainWindow's menus, and the dialogs they open: files, sessions, the data dialog, Run On…, the
// method's help page. Each action asks the session to do the work.

#include <QAction>
#include <QDialogButtonBox>
#include <QFile>
#include <QFileDialog>
#include <QFileInfo>
#include <QMenuBar>
#include <QMessageBox>
#include <QSettings>
#include <QStatusBar>
#include <QTextBrowser>
#include <QUndoStack>
#include <QVBoxLayout>

#include "data_dialog.h"
#include "diagram_view.h"
#include "layer_diagram_scene.h"
#include "main_window.h"
#include "run_on_dialog.h"
#include "scalpel/version.h"
#include "session_controller.h"
#include "session_document.h"
#include "training_panel.h"
#include "util/device_info.h"

namespace scalpel::ui {

namespace {

const char* const kSessionFilter = "Scalpel sessions (*.json);;All files (*)";

bool isSessionFile(const QString& path) { return path.endsWith(".json", Qt::CaseInsensitive); }

// A file dialog's choice, remembered per kind (`key`) for the next one.
QString chooseFile(QWidget* parent, const QString& title, const char* key, const QString& filter) {
  QSettings settings;
  const QString path =
      QFileDialog::getOpenFileName(parent, title, settings.value(key).toString(), filter);
  if (!path.isEmpty()) settings.setValue(key, QFileInfo(path).absolutePath());
  return path;
}

}  // namespace

void MainWindow::buildMenus() {
  buildFileMenu();
  buildEditAndViewMenus();
  buildAnalysisAndTrainingMenus();
  auto* help = menuBar()->addMenu("&Help");
  help->addAction("&How Surgical Fine-Tuning Works", QKeySequence::HelpContents, this,
                  &MainWindow::showMethodHelp);
  help->addAction("&About Scalpel", this, [this] {
    QMessageBox::about(this, "About Scalpel",
                       QStringLiteral("<h3>Scalpel %1</h3><p>Visual surgical fine-tuning: see "
                                      "which layers a distribution shift "
                                      "touches, and tune only those.</p>")
                           .arg(kVersion));
  });
}

void MainWindow::buildFileMenu() {
  auto* file = menuBar()->addMenu("&File");
  file->addAction("&New Session", QKeySequence::New, this, &MainWindow::newSession);
  file->addAction("&Open Model…", QKeySequence::Open, this, &MainWindow::openModelDialog);
  file->addAction("Open &Session…", QKeySequence(Qt::CTRL | Qt::SHIFT | Qt::Key_O), this, [this] {
    const QString path = chooseFile(this, "Open Session", "lastSessionFolder", kSessionFilter);
    if (!path.isEmpty() && maybeSave()) m_session->openSession(path);
  });
  m_recentMenu = file->addMenu("Recent &Files");
  connect(m_recentMenu, &QMenu::aboutToShow, this, &MainWindow::fillRecentMenu);
  file->addSeparator();
  file->addAction("Open &Data…", QKeySequence(Qt::CTRL | Qt::Key_D), this,
                  &MainWindow::openDataDialog);
  const auto openFolder = [this](bool target, const QString& title) {
    const QString folder = QFileDialog::getExistingDirectory(this, title);
    if (folder.isEmpty()) return;
    DataRequest request;
    request.source = folder.toStdString();
    m_session->openData(target, request);
  };
  file->addAction("Open Target &Image Folder…", this, [openFolder] {
    openFolder(true, "Target data: a folder with one subfolder of images per class");
  });
  file->addAction("Open Target &CSV…", this, [this] {
    const QString csv = QFileDialog::getOpenFileName(this, "Target data: a table", {},
                                                     "CSV files (*.csv);;All files (*)");
    if (csv.isEmpty()) return;
    DataRequest request;
    request.source = csv.toStdString();
    m_session->openData(true, request);
  });
  file->addAction("Open S&ource Image Folder…", this, [openFolder] {
    openFolder(false,
               "Source data (what the model was trained on): one subfolder of images per class");
  });
  file->addSeparator();
  file->addAction("&Save Session", QKeySequence::Save, this, [this] { saveCurrentSession(); });
  file->addAction("Save Session &As…", QKeySequence::SaveAs, this, [this] { saveSessionAs(); });
  file->addAction("Restore Auto&saved Session", this, [this] {
    if (maybeSave()) m_session->restoreAutosave();
  });
  file->addSeparator();
  m_exportAction =
      file->addAction("&Export Tuned Model…", QKeySequence(Qt::CTRL | Qt::Key_E), this, [this] {
        const QString path = chooseExportPath();
        if (!path.isEmpty()) m_session->exportTunedModel(path);
      });
  m_exportAction->setEnabled(false);
  m_exportReportAction = file->addAction("Export &Report…", this, [this] {
    const QString folder = QFileDialog::getExistingDirectory(
        this, "Export the last run's report (Markdown and PNG plots) into a folder");
    if (!folder.isEmpty()) m_session->exportReport(folder);
  });
  m_exportReportAction->setEnabled(false);
  file->addSeparator();
  file->addAction("&Quit", QKeySequence::Quit, this, &QWidget::close);
}

void MainWindow::buildEditAndViewMenus() {
  auto* edit = menuBar()->addMenu("&Edit");
  auto* undo = m_session->undoStack()->createUndoAction(this, "&Undo");
  undo->setShortcut(QKeySequence::Undo);
  auto* redo = m_session->undoStack()->createRedoAction(this, "&Redo");
  redo->setShortcut(QKeySequence::Redo);
  edit->addAction(undo);
  edit->addAction(redo);
  edit->addSeparator();
  edit->addAction("&Freeze All", this,
                  [this] { m_session->setTrainable({0}, false, "all layers"); });
  edit->addAction("&Unfreeze All", this,
                  [this] { m_session->setTrainable({0}, true, "all layers"); });
  edit->addAction("Freeze &Block", QKeySequence(Qt::CTRL | Qt::SHIFT | Qt::Key_F), this,
                  [this] { setSelectedBlockTrainable(false); });
  edit->addAction("Unfreeze Bl&ock", QKeySequence(Qt::CTRL | Qt::SHIFT | Qt::Key_U), this,
                  [this] { setSelectedBlockTrainable(true); });

  auto* view = menuBar()->addMenu("&View");
  view->addAction("Zoom &In", QKeySequence::ZoomIn, this, [this] { m_view->zoomBy(1.25); });
  view->addAction("Zoom &Out", QKeySequence::ZoomOut, this, [this] { m_view->zoomBy(0.8); });
  view->addAction("&Fit to View", QKeySequence(Qt::CTRL | Qt::Key_0), this,
                  [this] { m_view->fitToView(); });
  view->addSeparator();
  view->addAction("&Expand All Blocks", this, [this] { m_scene->setAllExpanded(true); });
  view->addAction("&Collapse All Blocks", this, [this] { m_scene->setAllExpanded(false); });
}

void MainWindow::buildAnalysisAndTrainingMenus() {
  auto* analysis = menuBar()->addMenu("&Analysis");
  analysis->addAction("&Analyse Target Data", QKeySequence(Qt::CTRL | Qt::Key_R), this,
                      [this] { m_session->analyze(false); });
  analysis->addAction("Analyse Against &Source Data", this, [this] { m_session->analyze(true); });
  analysis->addAction("S&top Analysis", m_session, &SessionController::stopAnalysis);
  analysis->addSeparator();
  analysis->addAction("A&ccept Suggested Plan", QKeySequence(Qt::CTRL | Qt::SHIFT | Qt::Key_A),
                      m_session, &SessionController::acceptSuggestedPlan);
  analysis->addAction("&Reset Plan", m_session, &SessionController::resetPlan);

  auto* training = menuBar()->addMenu("&Training");
  training->addAction("&Train", QKeySequence(Qt::CTRL | Qt::Key_T), this, [this] {
    Q_EMIT m_training->trainRequested(m_training->strategy(), m_training->options());
  });
  training->addAction("&Pause / Resume", QKeySequence(Qt::CTRL | Qt::Key_P), m_training,
                      &TrainingPanel::togglePause);
  training->addAction("&Stop", m_session, &SessionController::stop);
  training->addSeparator();
  training->addAction("&Run On…", this, &MainWindow::showRunOnDialog);
  training->addAction("&Export Job…", this,
                      [this] { exportJobDialog(std::max(2, m_session->settings().processes)); });
  training->addAction("&Open Job Results…", this, [this] {
    const QString folder =
        QFileDialog::getExistingDirectory(this, "Open Job Results: choose the job's folder");
    if (!folder.isEmpty()) m_session->openJobResults(folder);
  });
}

void MainWindow::fillRecentMenu() {
  m_recentMenu->clear();
  const QStringList recent = SessionDocument::recentFiles();
  for (const QString& path : recent) {
    auto* action =
        m_recentMenu->addAction(QFileInfo(path).fileName(), this, [this, path] { openFile(path); });
    action->setToolTip(path);
    action->setStatusTip(path);
  }
  if (recent.isEmpty()) m_recentMenu->addAction("(none yet)")->setEnabled(false);
}

void MainWindow::openModelDialog() {
  // Window-modal without blocking the event loop, as the other dialogs.
  QSettings settings;
  auto* dialog =
      new QFileDialog(this, "Open Model", settings.value("lastModelFolder").toString(),
                      "Models (*.pt *.pth *.ckpt *.safetensors *.ts *.zip *.torchscript);;"
                      "TorchScript models (*.pt *.ts *.zip *.torchscript);;"
                      "Checkpoints: state dicts and safetensors (*.pth *.pt *.ckpt "
                      "*.safetensors);;"
                      "All files (*)");
  dialog->setObjectName("openModelDialog");
  dialog->setAttribute(Qt::WA_DeleteOnClose);
  dialog->setFileMode(QFileDialog::ExistingFile);
  connect(dialog, &QFileDialog::fileSelected, this, [this](const QString& path) {
    QSettings().setValue("lastModelFolder", QFileInfo(path).absolutePath());
    m_session->openModel(path);
  });
  dialog->open();
}

QString MainWindow::chooseExportPath() {
  const QString torchScript = "TorchScript model, report inside (*.pt)";
  const QString stateDict = "State dict for load_state_dict (*.pth)";
  const QString safetensors = "Safetensors (*.safetensors)";
  QString filter = torchScript;
  QString path =
      QFileDialog::getSaveFileName(this, "Export the tuned model", "tuned.pt",
                                   torchScript + ";;" + stateDict + ";;" + safetensors, &filter);
  if (path.isEmpty() || !QFileInfo(path).suffix().isEmpty()) return path;
  return path + (filter == stateDict ? ".pth" : filter == safetensors ? ".safetensors" : ".pt");
}

void MainWindow::openFile(const QString& path) {
  if (!QFileInfo::exists(path)) {
    showError("Cannot open", path + " is not there any more.",
              "It may have been moved or deleted.");
    return;
  }
  if (!isSessionFile(path)) {
    m_session->openModel(path);
  } else if (maybeSave()) {
    m_session->openSession(path);
  }
}

void MainWindow::newSession() {
  if (maybeSave()) m_session->newSession();
}

bool MainWindow::maybeSave() {
  if (!m_session->document()->isDirty() || !m_session->hasModel()) return true;
  const auto answer = QMessageBox::question(
      this, "Unsaved changes",
      "This session has changes that are not saved. Save them before going on?\n\n"
      "(They are also in the autosave: File ▸ Restore Autosaved Session brings them back.)",
      QMessageBox::Save | QMessageBox::Discard | QMessageBox::Cancel, QMessageBox::Save);
  if (answer == QMessageBox::Cancel) return false;
  return answer == QMessageBox::Discard || saveCurrentSession();
}

bool MainWindow::saveSessionAs() {
  QSettings settings;
  const QString current = m_session->document()->path();
  const QString start =
      current.isEmpty()
          ? QDir(settings.value("lastSessionFolder").toString()).filePath("session.json")
          : current;
  const QString path = QFileDialog::getSaveFileName(this, "Save Session As", start, kSessionFilter);
  if (path.isEmpty()) return false;
  settings.setValue("lastSessionFolder", QFileInfo(path).absolutePath());
  return m_session->saveSession(path).isEmpty();
}

bool MainWindow::saveCurrentSession() {
  const QString path = m_session->document()->path();
  return path.isEmpty() ? saveSessionAs() : m_session->saveSession(path).isEmpty();
}

void MainWindow::setSelectedBlockTrainable(bool trainable) {
  m_session->setBlockTrainable(m_selectedNode, trainable);
}

void MainWindow::openDataDialog() {
  if (!m_dataDialog) {
    m_dataDialog = new DataDialog(this);
    m_dataDialog->setAttribute(Qt::WA_DeleteOnClose);
    connect(m_dataDialog, &DataDialog::previewRequested, m_session,
            &SessionController::previewData);
    connect(m_dataDialog, &QDialog::accepted, this, [this] {
      m_session->openData(m_dataDialog->isTarget(), m_dataDialog->request());
      if (m_session->hasModel()) {
        m_session->setPreprocessing(m_dataDialog->preprocessing(), m_dataDialog->mean(),
                                    m_dataDialog->stdev());
      }
    });
  }
  if (m_session->hasModel()) {
    m_dataDialog->setPreprocessing(
        QString::fromStdString(m_session->modelChoices().preprocessing),
        QString::fromStdString(preprocessingText(m_session->inspection().metadata)));
  }
  m_dataDialog->open();  // window-modal, without blocking the event loop
}

void MainWindow::showRunOnDialog() {
  const int gpus = static_cast<int>(availableDevices().size()) - 1;
  RunOnDialog dialog(m_session->settings().processes, gpus, this);
  connect(&dialog, &RunOnDialog::exportJobRequested, this,
          [this](int processes) { exportJobDialog(processes); });
  if (dialog.exec() != QDialog::Accepted) return;
  auto settings = m_session->settings();
  settings.processes = std::max(1, dialog.processes());
  m_session->setSettings(settings);
  statusBar()->showMessage(
      settings.processes > 1
          ? QString("Train runs as %1 processes on this machine").arg(settings.processes)
          : QString("Train runs in this window"));
}

void MainWindow::exportJobDialog(int processes) {
  const QString folder =
      QFileDialog::getExistingDirectory(this, "Export Job: choose a new, empty folder");
  if (!folder.isEmpty()) m_session->exportJob(folder, processes);
}

void MainWindow::showMethodHelp() {
  if (!m_helpDialog) {
    m_helpDialog = new QDialog(this);
    m_helpDialog->setWindowTitle("How surgical fine-tuning works");
    auto* text = new QTextBrowser(m_helpDialog);
    text->setObjectName("methodHelp");
    text->setOpenExternalLinks(true);
    QFile page(":/help/how_it_works.html");
    page.open(QIODevice::ReadOnly);
    text->setHtml(QString::fromUtf8(page.readAll()));
    auto* buttons = new QDialogButtonBox(QDialogButtonBox::Close, m_helpDialog);
    connect(buttons, &QDialogButtonBox::rejected, m_helpDialog, &QDialog::close);
    auto* layout = new QVBoxLayout(m_helpDialog);
    layout->addWidget(text);
    layout->addWidget(buttons);
    m_helpDialog->resize(720, 640);
  }
  m_helpDialog->show();
  m_helpDialog->raise();
}

}  // namespace scalpel::ui
