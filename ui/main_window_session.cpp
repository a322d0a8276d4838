// MainWindow's sessions: New / Open / Save / Save As, recent files, the autosave and what
// happens on close. A session (core/io/session.h) holds the model, the data requests, the
// freeze marks, the training settings and the runs, so an analyst can come back to the work.

#include <QAction>
#include <QApplication>
#include <QCloseEvent>
#include <QDateTime>
#include <QDir>
#include <QFileDialog>
#include <QFileInfo>
#include <QMenu>
#include <QMessageBox>
#include <QSettings>
#include <QStandardPaths>
#include <QStatusBar>
#include <QTextBrowser>
#include <QUndoStack>

#include "diagram_view.h"
#include "freeze_state.h"
#include "layer_diagram_scene.h"
#include "compare_panel.h"
#include "layer_table_model.h"
#include "main_window.h"
#include "model_worker.h"
#include "shift_heatmap.h"
#include "training_panel.h"
#include "util/logging.h"

namespace scalpel::ui {

namespace {

constexpr int kMaxRecentFiles = 8;
const char* kSessionFilter = "Scalpel sessions (*.json);;All files (*)";

bool isSessionFile(const QString& path) { return path.endsWith(".json", Qt::CaseInsensitive); }

}  // namespace

QString MainWindow::autosavePath() {
  const QString folder = QStandardPaths::writableLocation(QStandardPaths::AppDataLocation);
  return QDir(folder).filePath("autosave-session.json");
}

Session MainWindow::currentSession() const {
  Session session = m_session;  // what the window does not edit (split, reference details) stays
  session.modelPath = m_inspection.ok ? m_inspection.path : std::string();
  if (m_targetData.ok) session.target = m_targetRequest;
  if (m_sourceData.ok) session.source = m_sourceRequest;
  session.reference = m_analysedWithSource ? "data" : "batchnorm";
  session.strategy = m_training->strategy().toStdString();
  session.plan = m_freeze->tree().empty() ? FreezePlan{} : m_freeze->plan();
  session.options = m_training->options();
  session.runs = m_sessionRuns;
  return session;
}

void MainWindow::markDirty() {
  m_dirty = true;
  setWindowModified(true);
  m_autosaveTimer.start();  // coalesces a burst of changes into one write
}

QString MainWindow::writeSession(const QString& path) {
  const Session session = currentSession();
  return QString::fromStdString(scalpel::saveSession(session, path.toStdString()));
}

void MainWindow::autosave() {
  if (!m_inspection.ok) return;  // nothing worth restoring yet
  QDir().mkpath(QFileInfo(autosavePath()).absolutePath());
  const QString problem = writeSession(autosavePath());
  if (!problem.isEmpty()) logger("ui")->warn("autosave failed: {}", problem.toStdString());
}

QString MainWindow::saveSession(const QString& path) {
  const QString problem = writeSession(path);
  if (!problem.isEmpty()) {
    showError("Cannot save the session", problem + "\n\nThe previous file, if any, is intact; choose another place.");
    return problem;
  }
  m_sessionPath = path;
  m_dirty = false;
  setWindowModified(false);
  addRecentFile(path);
  statusBar()->showMessage("Session saved to " + path);
  return {};
}

bool MainWindow::saveSessionAs() {
  QSettings settings;
  const QString start = m_sessionPath.isEmpty() ? QDir(settings.value("lastSessionFolder").toString()).filePath("session.json") : m_sessionPath;
  const QString path = QFileDialog::getSaveFileName(this, "Save Session As", start, kSessionFilter);
  if (path.isEmpty()) return false;
  settings.setValue("lastSessionFolder", QFileInfo(path).absolutePath());
  return saveSession(path).isEmpty();
}

bool MainWindow::saveCurrentSession() {
  return m_sessionPath.isEmpty() ? saveSessionAs() : saveSession(m_sessionPath).isEmpty();
}

bool MainWindow::maybeSave() {
  if (!m_dirty || !m_inspection.ok) return true;
  const auto answer = QMessageBox::question(
      this, "Unsaved changes",
      "This session has changes that are not saved. Save them before going on?\n\n"
      "(They are also in the autosave: File ▸ Restore Autosaved Session brings them back.)",
      QMessageBox::Save | QMessageBox::Discard | QMessageBox::Cancel, QMessageBox::Save);
  if (answer == QMessageBox::Cancel) return false;
  return answer == QMessageBox::Discard || saveCurrentSession();
}

void MainWindow::newSession() {
  if (!maybeSave()) return;
  resetSession();
  statusBar()->showMessage("New session: open a model to begin");
}

void MainWindow::resetSession() {
  ++m_lastRequest;  // a model still being opened is no longer wanted
  m_pendingSession.reset();
  m_session = Session{};
  m_sessionPath.clear();
  m_sessionRuns.clear();
  m_inspection = ModelInspection{};
  m_targetData = DataSummary{};
  m_sourceData = DataSummary{};
  m_analysedWithSource = false;
  m_diagnosis.reset();
  m_plan = FreezePlan{};
  m_lastRun.reset();
  enableRunActions();
  m_scene->clearTree();
  m_view->setLegendVisible(false);
  m_freeze->setTree(LayerTree());
  m_layers->reset();
  m_training->setBlocks({});
  m_training->setModelBlocks({});
  m_compare->setBlocks({});
  m_undo->clear();
  m_selectedNode = -1;
  m_heatmap->clear("No analysis yet: open a model and target data, then Analysis ▸ Analyse Target Data.");
  showWelcome();
  m_dirty = false;
  setWindowModified(false);
  setWindowTitle("Scalpel[*]");
}

QString MainWindow::openSession(const QString& path) {
  Session session;
  const auto loaded = scalpel::loadSession(path.toStdString(), session);
  if (!loaded.ok) {
    showError("Cannot open the session", QString::fromStdString(loaded.error),
              "Choose another session file with File ▸ Open Session….");
    return QString::fromStdString(loaded.error);
  }
  resetSession();
  addRecentFile(path);
  QStringList problems;
  for (const auto& line : loaded.missing) problems << QString::fromStdString(line);
  for (const auto& line : loaded.warnings) problems << QString::fromStdString(line);
  for (const auto& line : problems) logger("ui")->warn("session {}: {}", path.toStdString(), line.toStdString());
  m_session = session;
  m_sessionRuns = session.runs;
  m_sessionPath = path == autosavePath() ? QString() : path;  // Save asks where, not into the autosave
  if (!problems.isEmpty()) {
    showError("The session opened with problems", problems.join("\n"),
              "What could be found is open; open the missing files again from the File menu.");
  }
  if (session.modelPath.empty() || !QFileInfo::exists(QString::fromStdString(session.modelPath))) {
    statusBar()->showMessage("Session opened without its model");
    Q_EMIT sessionRestored();
    return {};
  }
  m_pendingSession = session;
  openModel(QString::fromStdString(session.modelPath));
  return {};
}

void MainWindow::applyPendingSession() {
  if (!m_pendingSession) return;
  const Session session = *m_pendingSession;
  m_pendingSession.reset();
  m_training->setOptions(session.options);
  if (!session.plan.trainable.empty() || session.plan.strategy == "manual") {
    // The marks as they were; not an edit the user can undo.
    SetTrainableCommand marks(m_freeze, m_freeze->unitsOfPlan(session.plan), true, "restore", true);
    marks.redo();
  }
  m_training->setStrategy(QString::fromStdString(session.strategy));
  m_undo->clear();
  m_restoringData = 0;
  if (!session.target.source.empty()) {
    ++m_restoringData;
    openData(true, session.target);
  }
  if (session.reference == "data" && !session.source.source.empty()) {
    ++m_restoringData;
    openData(false, session.source);
  }
  const QString where = m_sessionPath.isEmpty() ? QStringLiteral("the autosave") : QFileInfo(m_sessionPath).fileName();
  setWindowTitle(QStringLiteral("%1 — %2[*] — Scalpel").arg(where, QFileInfo(QString::fromStdString(session.modelPath)).fileName()));
  if (m_restoringData == 0) finishRestoring();
}

void MainWindow::finishRestoring() {
  m_restoringData = 0;
  m_dirty = false;
  setWindowModified(false);
  statusBar()->showMessage("Session restored");
  Q_EMIT sessionRestored();
  // The analysis is not stored (it takes a second): run it again, so the heatmap, the colours
  // and the diagnosis are back as they were.
  const bool useSource = m_session.reference == "data";
  if (m_targetData.ok && (!useSource || m_sourceData.ok)) analyzeTarget(useSource);
}

void MainWindow::checkAutosave() {
  const QString path = autosavePath();
  if (!QFileInfo::exists(path)) return;
  Session session;
  const auto loaded = scalpel::loadSession(path.toStdString(), session);
  if (loaded.ok) {
    statusBar()->showMessage(QStringLiteral("An autosaved session from %1 can be restored: File ▸ Restore Autosaved Session")
                                 .arg(QFileInfo(path).lastModified().toString("d MMM, hh:mm")));
    return;
  }
  // Unreadable (a crash of something else, a hand edit): keep it aside for a look, start clean.
  const QString aside = path + ".unreadable";
  QFile::remove(aside);
  QFile::rename(path, aside);
  logger("ui")->warn("ignored the autosaved session: {} (kept as {})", loaded.error, aside.toStdString());
  statusBar()->showMessage(QStringLiteral("The autosaved session could not be read and was ignored (%1); it was kept as %2")
                               .arg(QString::fromStdString(loaded.error), aside));
}

bool MainWindow::restoreAutosave() {
  if (!QFileInfo::exists(autosavePath())) {
    showError("Nothing to restore", "There is no autosaved session yet: Scalpel saves one while you work.");
    return false;
  }
  return openSession(autosavePath()).isEmpty();
}

void MainWindow::addRecentFile(const QString& path) {
  QSettings settings;
  QStringList recent = settings.value("recentFiles").toStringList();
  const QString absolute = QFileInfo(path).absoluteFilePath();
  recent.removeAll(absolute);
  recent.prepend(absolute);
  while (recent.size() > kMaxRecentFiles) recent.removeLast();
  settings.setValue("recentFiles", recent);
}

void MainWindow::fillRecentMenu() {
  m_recentMenu->clear();
  const QStringList recent = QSettings().value("recentFiles").toStringList();
  for (const QString& path : recent) {
    auto* action = m_recentMenu->addAction(QFileInfo(path).fileName(), this, [this, path] { openFile(path); });
    action->setToolTip(path);
    action->setStatusTip(path);
  }
  if (recent.isEmpty()) m_recentMenu->addAction("(none yet)")->setEnabled(false);
}

void MainWindow::openFile(const QString& path) {
  if (!QFileInfo::exists(path)) {
    showError("Cannot open", path + " is not there any more.", "It may have been moved or deleted.");
    return;
  }
  if (isSessionFile(path)) {
    if (maybeSave()) openSession(path);
  } else {
    openModel(path);
  }
}

void MainWindow::closeEvent(QCloseEvent* event) {
  if (m_training->isRunning()) {
    const auto answer = QMessageBox::question(
        this, "Training is running",
        "A fine-tuning run is in progress. Stop it and close Scalpel?\n\n"
        "The run's best state so far is dropped; the session is autosaved.",
        QMessageBox::Yes | QMessageBox::No, QMessageBox::No);
    if (answer != QMessageBox::Yes) {
      event->ignore();
      return;
    }
    m_compareQueue.clear();
    m_worker->trainControl().cancel();
  }
  autosave();
  if (!maybeSave()) {
    event->ignore();
    return;
  }
  QSettings().setValue("windowState", saveState());
  QSettings().setValue("windowGeometry", saveGeometry());
  event->accept();
}

}  // namespace scalpel::ui
