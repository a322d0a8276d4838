// MainWindow: the layout, and what the session says shown in the views. The menus and their
// dialogs are in main_window_menus.cpp.

#include "main_window.h"

#include <QAbstractButton>
#include <QApplication>
#include <QCloseEvent>
#include <QDockWidget>
#include <QFileDialog>
#include <QFileInfo>
#include <QFontDatabase>
#include <QHeaderView>
#include <QInputDialog>
#include <QLabel>
#include <QLineEdit>
#include <QMessageBox>
#include <QMimeData>
#include <QPlainTextEdit>
#include <QProgressDialog>
#include <QScreen>
#include <QSettings>
#include <QSortFilterProxyModel>
#include <QSplitter>
#include <QStatusBar>
#include <QTableView>
#include <QUndoStack>
#include <QUrl>
#include <QVBoxLayout>

#include "compare_panel.h"
#include "data_dialog.h"
#include "details_pane.h"
#include "diagram_view.h"
#include "freeze_state.h"
#include "layer_diagram_scene.h"
#include "layer_scores.h"
#include "layer_table_model.h"
#include "log_forwarder.h"
#include "model_worker.h"
#include "session_controller.h"
#include "session_document.h"
#include "shift_heatmap.h"
#include "training_panel.h"
#include "util/device_info.h"

// The help page is compiled into this static library; Q_INIT_RESOURCE must name it from the
// global namespace, or the linker may drop it.
static void initHelpResource() { Q_INIT_RESOURCE(help); }

namespace scalpel::ui {

namespace {

// The user's own data at `path` (an image folder, a table, an IDX file), as it is.
DataRequest dataAt(const QString& path) {
  DataRequest request;
  request.source = path.toStdString();
  return request;
}

}  // namespace

MainWindow::MainWindow(QWidget* parent) : QMainWindow(parent) {
  initHelpResource();
  setWindowTitle("Scalpel[*]");
  setAcceptDrops(true);
  m_session = new SessionController(this);
  setCentralWidget(buildCentre());
  m_heatmap = new ShiftHeatmap(this);
  m_heatmap->setScores(m_session->scores());
  auto* heatmapTab = addBottomTab("Shift heatmap", "shiftHeatmapDock", m_heatmap);
  m_training = new TrainingPanel(this);
  addBottomTab("Training", "trainingDock", m_training);
  m_compare = new ComparePanel(m_session, this);
  addBottomTab("Compare", "compareDock", m_compare);
  addBottomTab("Layers", "layersDock", buildLayersPane());
  addBottomTab("Log", "logDock", buildLogPanel());
  heatmapTab->raise();
  m_deviceLabel =
      new QLabel(QString::fromStdString("device: " + describeDevice(automaticDevice())), this);
  m_deviceLabel->setToolTip(
      "Where analysis and training run: CUDA when available, else the CPU with all its cores");
  statusBar()->addPermanentWidget(m_deviceLabel);
  statusBar()->showMessage("Ready");
  connectSession();
  connectPanels();
  buildMenus();
  m_training->setDevice(QSettings().value("device", "auto").toString());
  fitToScreen();
  // The bottom tabs share the height with the diagram and the details pane, whose diagnosis and
  // suggestion must stay readable without scrolling: give the tabs a bit under half.
  resizeDocks({heatmapTab}, {height() * 42 / 100}, Qt::Vertical);
  const QString autosave = SessionDocument::checkAutosave();
  if (!autosave.isEmpty()) statusBar()->showMessage(autosave);
}

MainWindow::~MainWindow() {
  // QWidget's destructor deletes the children before QObject's cuts the connections: nothing the
  // session says while it stops may reach this half-destroyed window.
  m_session->disconnect(this);
  m_session->undoStack()->disconnect(this);
  notBusy();
}

QMessageBox* MainWindow::errorDialog() const { return m_errorDialog.data(); }
QProgressDialog* MainWindow::trainingDialog() const { return m_trainingDialog.data(); }
DataDialog* MainWindow::dataDialog() const { return m_dataDialog.data(); }

QWidget* MainWindow::buildCentre() {
  m_scene = new LayerDiagramScene(this);
  m_scene->setFreezeState(m_session->freezeState());
  m_scene->setScores(m_session->scores());
  m_view = new DiagramView(this);
  m_view->setScene(m_scene);
  m_details = new DetailsPane(m_session, this);
  auto* splitter = new QSplitter(this);
  splitter->addWidget(m_view);
  splitter->addWidget(m_details);
  splitter->setStretchFactor(0, 1);  // the diagram takes what the window gains
  splitter->setStretchFactor(1, 0);
  splitter->setCollapsible(0, false);
  splitter->setSizes({840, 340});
  return splitter;
}

QWidget* MainWindow::buildLayersPane() {
  // One freeze state, two views: the diagram's marks and the layer table; edits are undoable.
  m_layers = new LayerTableModel(m_session->freezeState(), m_session->scores(), this);
  auto* proxy = new QSortFilterProxyModel(this);
  proxy->setSourceModel(m_layers);
  proxy->setSortRole(Qt::UserRole);
  proxy->setFilterKeyColumn(-1);
  proxy->setFilterCaseSensitivity(Qt::CaseInsensitive);
  auto* table = new QTableView(this);
  table->setObjectName("layerTable");
  table->setModel(proxy);
  table->setSortingEnabled(true);
  table->sortByColumn(-1, Qt::AscendingOrder);  // execution order until a header is clicked
  table->verticalHeader()->hide();
  table->horizontalHeader()->setStretchLastSection(true);
  table->setSelectionBehavior(QAbstractItemView::SelectRows);
  auto* filter = new QLineEdit(this);
  filter->setObjectName("layerFilter");
  filter->setPlaceholderText("Filter layers by name, block or type…");
  filter->setClearButtonEnabled(true);
  connect(filter, &QLineEdit::textChanged, proxy, &QSortFilterProxyModel::setFilterFixedString);
  auto* pane = new QWidget(this);
  auto* layout = new QVBoxLayout(pane);
  layout->setContentsMargins(4, 4, 4, 4);
  layout->addWidget(filter);
  layout->addWidget(table);
  return pane;
}

QWidget* MainWindow::buildLogPanel() {
  // Every Scalpel logger's lines, from every thread.
  auto* log = new QPlainTextEdit(this);
  log->setObjectName("logPanel");
  log->setReadOnly(true);
  log->setMaximumBlockCount(5000);
  log->setFont(QFontDatabase::systemFont(QFontDatabase::FixedFont));
  connect(
      &LogForwarder::instance(), &LogForwarder::line, log, [log](const QString& text, int level) {
        log->appendHtml(
            level >= 3 ? QString("<span style='color:#b00020'>%1</span>").arg(text.toHtmlEscaped())
                       : text.toHtmlEscaped());
      });
  return log;
}

QDockWidget* MainWindow::addBottomTab(const QString& title, const QString& objectName,
                                      QWidget* widget) {
  auto* dock = new QDockWidget(title, this);
  dock->setObjectName(objectName);
  dock->setWidget(widget);
  dock->setFeatures(QDockWidget::DockWidgetMovable | QDockWidget::DockWidgetFloatable);
  addDockWidget(Qt::BottomDockWidgetArea, dock);
  if (m_firstBottomTab)
    tabifyDockWidget(m_firstBottomTab, dock);
  else
    m_firstBottomTab = dock;
  return dock;
}

void MainWindow::raiseTab(const char* objectName) {
  if (auto* dock = findChild<QDockWidget*>(objectName)) dock->raise();
}

// Most of the screen, whatever its size: the diagram, the details and the tabs all need room.
void MainWindow::fitToScreen() {
  const QScreen* screen = this->screen() ? this->screen() : QGuiApplication::primaryScreen();
  const QRect available = screen ? screen->availableGeometry() : QRect(0, 0, 1280, 800);
  const QSize size(std::min(available.width(), std::max(1024, available.width() * 9 / 10)),
                   std::min(available.height(), std::max(680, available.height() * 9 / 10)));
  resize(size.boundedTo(available.size()));
  move(available.center() - rect().center());
}

void MainWindow::connectSession() {
  auto* session = m_session;
  connect(session, &SessionController::statusChanged, this,
          [this](const QString& message) { statusBar()->showMessage(message); });
  connect(session, &SessionController::errorRaised, this, &MainWindow::showError);
  // Busy while a model opens; a newer request keeps it busy, and only the newest one answers.
  connect(session, &SessionController::modelOpening, this, [this] {
    if (!m_busy) QApplication::setOverrideCursor(Qt::BusyCursor);
    m_busy = true;
  });
  connect(session, &SessionController::modelFailed, this, &MainWindow::notBusy);
  // Both questions are window-modal, without blocking the event loop.
  connect(session, &SessionController::architectureChoiceNeeded, this,
          [this](const QStringList& candidates) {
            auto* dialog = new QInputDialog(this);
            dialog->setAttribute(Qt::WA_DeleteOnClose);
            dialog->setObjectName("architectureDialog");
            dialog->setWindowTitle("Choose the architecture");
            dialog->setLabelText(
                "These weights fit more than one architecture of Scalpel's library. Which is it?");
            dialog->setComboBoxItems(candidates);
            connect(dialog, &QInputDialog::textValueSelected, m_session,
                    &SessionController::chooseArchitecture);
            dialog->open();
          });
  connect(session, &SessionController::headMismatch, this, [this](int classes, int outputs) {
    auto* box = new QMessageBox(
        QMessageBox::Question, "Give the model a new head?",
        QStringLiteral("The target data has %1 classes, but the model gives %2 outputs.")
            .arg(classes)
            .arg(outputs),
        QMessageBox::Yes | QMessageBox::No, this);
    box->setObjectName("newHeadQuestion");
    box->setAttribute(Qt::WA_DeleteOnClose);
    box->setInformativeText(
        QStringLiteral("Replace the model's last layer with a new one for these %1 classes? It "
                       "starts untrained, so every plan trains it (transfer learning).")
            .arg(classes));
    connect(box, &QMessageBox::buttonClicked, m_session, [this, box](QAbstractButton* button) {
      if (box->standardButton(button) == QMessageBox::Yes) m_session->useNewHead();
    });
    box->open();
  });
  connect(session, &SessionController::modelOpened, this, &MainWindow::showModel);
  connect(session, &SessionController::pretrainStarted, this, &MainWindow::showDemoTraining);
  connect(session, &SessionController::pretrainProgress, this, &MainWindow::showPretrainProgress);
  connect(session, &SessionController::pretrainEnded, this, [this] {
    if (m_trainingDialog) m_trainingDialog->close();
  });
  connect(session, &SessionController::dataLoaded, this, [this] {
    m_details->showNode(0);
    showReadiness();
  });
  connect(session, &SessionController::dataPreviewed, this, [this](const DataSummary& summary) {
    if (m_dataDialog) m_dataDialog->showPreview(summary);
  });
  connect(session, &SessionController::analysisStarted, this, [this](const QString& what) {
    m_heatmap->setCaption(what);
    m_view->setLegendVisible(true);
  });
  connect(session, &SessionController::analysisFinished, this,
          [this](bool ok, const QString& caption) {
            m_heatmap->setCaption(caption);
            m_heatmap->flush();
            if (!ok) return;
            m_details->showNode(0);
            m_details->scrollToDiagnosis();
          });
  connect(session, &SessionController::diagnosisChanged, this, &MainWindow::showDiagnosis);
  connect(session->freezeState(), &FreezeState::changed, this, &MainWindow::showPlanContext);
  connect(session, &SessionController::settingsChanged, this, [this] {
    // The form shows the session's settings; its edits while it does are not the user's.
    m_showingSettings = true;
    const auto& settings = m_session->settings();
    m_training->setStrategy(settings.strategy);
    m_training->setOptions(settings.options);
    m_showingSettings = false;
  });
  connect(session, &SessionController::deviceChanged, this,
          [this](const QString& device) { m_deviceLabel->setText("device: " + device); });
  connect(session->document(), &SessionDocument::dirtyChanged, this, &QWidget::setWindowModified);
  connect(session->document(), &SessionDocument::pathChanged, this, &MainWindow::showTitle);
  connect(session, &SessionController::currentRunChanged, this, [this] {
    const bool run = m_session->currentRun().has_value();
    m_exportAction->setEnabled(run);
    m_exportReportAction->setEnabled(run);
  });
}

void MainWindow::connectPanels() {
  auto* session = m_session;
  connect(m_scene, &LayerDiagramScene::freezeToggleRequested, session,
          &SessionController::setTrainable);
  connect(m_scene, &LayerDiagramScene::nodeSelected, m_details, &DetailsPane::showNode);
  connect(m_scene, &LayerDiagramScene::nodeSelected, this,
          [this](int node) { m_selectedNode = node; });
  connect(m_layers, &LayerTableModel::toggleRequested, this, [this](int node, bool trainable) {
    m_session->setTrainable(
        {node}, trainable,
        QString::fromStdString(m_session->freezeState()->tree().node(node).name));
  });
  // The Training tab edits the session's settings and starts its runs.
  connect(m_training, &TrainingPanel::edited, this, [this] {
    if (m_showingSettings) return;
    auto settings = m_session->settings();
    settings.strategy = m_training->strategy();
    settings.options = m_training->options();
    m_session->setSettings(settings);
  });
  connect(m_training, &TrainingPanel::deviceChanged, this, [this](const QString& device) {
    QSettings().setValue("device", device);
    const std::string chosen = device == "auto" ? automaticDevice() : device.toStdString();
    m_deviceLabel->setText(QString::fromStdString("device: " + describeDevice(chosen)));
  });
  connect(m_training, &TrainingPanel::trainRequested, this,
          [this](const QString& strategy, const TrainOptions& options) {
            auto settings = m_session->settings();
            settings.strategy = strategy;
            settings.options = options;
            m_session->setSettings(settings);
            m_session->train();
          });
  connect(m_training, &TrainingPanel::pauseRequested, session, &SessionController::pause);
  connect(m_training, &TrainingPanel::stopRequested, session, &SessionController::stop);
  connect(session, &SessionController::trainingStarted, this, [this] {
    m_training->setRunning(true);
    raiseTab("trainingDock");
  });
  connect(session, &SessionController::trainingStatus, m_training, &TrainingPanel::onStatus);
  connect(session, &SessionController::trainingEvent, m_training, &TrainingPanel::onEvent);
  connect(session, &SessionController::candidateEvaluated, m_training,
          &TrainingPanel::onCandidateEvaluated);
  connect(session, &SessionController::trainingFinished, this, [this](bool ok) {
    if (ok && m_session->currentRun()) {
      m_training->onFinished(*m_session->currentRun(), {});
    } else {
      m_training->setRunning(false);
      m_training->onStatus("Training did not finish");
    }
  });
  connect(session, &SessionController::currentRunChanged, this, [this] {
    if (m_session->currentRun() && !m_session->isTraining())
      m_training->showRun(*m_session->currentRun());
  });
  // The Compare tab: one plan after another, one run at a time (Train waits).
  connect(m_compare, &ComparePanel::compareRequested, session, &SessionController::compare);
  connect(m_compare, &ComparePanel::stopRequested, session, &SessionController::stop);
  connect(m_compare, &ComparePanel::openRequested, this, [this](int row) {
    m_session->openComparedRun(row);
    raiseTab("trainingDock");
  });
  connect(m_compare, &ComparePanel::usePlanRequested, session, &SessionController::useComparedPlan);
  connect(m_compare, &ComparePanel::exportRequested, this, [this](int row) {
    const QString path = chooseExportPath();
    if (!path.isEmpty()) m_session->exportComparedRun(row, path);
  });
  connect(session, &SessionController::comparisonStarted, this, [this] {
    m_compare->clear();
    m_compare->setRunning(true);
    m_training->setRunning(true);
    raiseTab("compareDock");
  });
  connect(session, &SessionController::comparisonRunStarted, m_compare, &ComparePanel::beginRun);
  connect(session, &SessionController::comparisonStatus, m_compare, &ComparePanel::onStatus);
  connect(session, &SessionController::comparisonEvent, m_compare, &ComparePanel::onEvent);
  connect(session, &SessionController::comparisonRunFinished, m_compare, &ComparePanel::showResult);
  connect(session, &SessionController::comparisonFinished, this, [this](const QString& message) {
    m_training->setRunning(false);
    m_compare->finish(message);
    showReadiness();
  });
}

// A new model, or none: the diagram, the table, the plans and the panels follow it.
void MainWindow::notBusy() {
  if (m_busy) QApplication::restoreOverrideCursor();
  m_busy = false;
}

void MainWindow::showModel() {
  notBusy();
  const auto& inspection = m_session->inspection();
  QStringList trainable, blocks;
  for (const auto& block : inspection.tree.blocks()) {
    blocks << QString::fromStdString(block.name);
    if (block.totalParameters > 0) trainable << QString::fromStdString(block.name);
  }
  m_training->setBlocks(trainable);
  m_training->setModelBlocks(blocks);
  m_compare->setBlocks(trainable);
  m_selectedNode = -1;
  m_layers->reset();
  m_heatmap->setCaption(
      inspection.ok
          ? "Analysis ▸ Analyse Target Data (Ctrl+R) measures this model's shift on the target "
            "data."
          : "No analysis yet: open a model and target data, then Analysis ▸ Analyse Target Data.");
  if (inspection.ok) {
    m_scene->setTree(inspection.tree);
  } else {
    m_scene->clearTree();
  }
  m_view->setLegendVisible(false);  // until this model's first scores
  m_view->fitToView();
  m_heatmap->flush();  // the previous model's columns go now
  showTitle();
  m_details->showNode(0);
  showReadiness();
}

void MainWindow::showDiagnosis() {
  m_scene->setSuggestedBlocks(m_session->suggestedBlocks());
  showPlanContext();
  if (m_session->hasModel()) m_details->showNode(0);
}

// The Training tab's line about the plan: what is ticked, and what the advisor suggests.
void MainWindow::showPlanContext() {
  const auto* freeze = m_session->freezeState();
  auto blocks = m_session->suggestedBlocks().values();
  std::sort(blocks.begin(), blocks.end());
  QStringList names;
  for (int b : blocks)
    names << QString::fromStdString(freeze->tree().blocks()[static_cast<size_t>(b)].name);
  m_training->setPlanContext(static_cast<int>(freeze->plan().trainable.size()),
                             static_cast<int>(freeze->allUnits().size()), names);
}

void MainWindow::showReadiness() {
  m_training->setReadiness(m_session->hasModel(), m_session->targetData().ok);
}

void MainWindow::showTitle() {
  const auto& inspection = m_session->inspection();
  const QString model =
      inspection.ok ? QFileInfo(QString::fromStdString(inspection.path)).fileName() : QString();
  const QString file = QFileInfo(m_session->document()->path()).fileName();
  if (model.isEmpty()) {
    setWindowTitle("Scalpel[*]");
  } else if (file.isEmpty()) {
    setWindowTitle(QStringLiteral("%1[*] — Scalpel").arg(model));
  } else {
    setWindowTitle(QStringLiteral("%1 — %2[*] — Scalpel").arg(file, model));
  }
}

void MainWindow::showDemoTraining() {
  auto* dialog = new QProgressDialog(
      "Training the demo model on Fashion-MNIST.\nThis happens once; later starts open it at once.",
      "Cancel", 0, 1000, this);
  dialog->setWindowTitle("Preparing the demo");
  dialog->setAttribute(Qt::WA_DeleteOnClose);
  dialog->setMinimumDuration(0);
  dialog->setMinimumWidth(460);
  dialog->setValue(0);
  connect(dialog, &QProgressDialog::canceled, m_session, &SessionController::cancelPretraining);
  m_trainingDialog = dialog;
  dialog->show();
}

void MainWindow::showPretrainProgress(const PretrainProgress& progress) {
  if (!m_trainingDialog) return;
  const double done = (progress.epoch + static_cast<double>(progress.step) /
                                            std::max<std::size_t>(1, progress.stepsPerEpoch)) /
                      std::max(1, progress.epochs);
  m_trainingDialog->setValue(static_cast<int>(done * 1000));
  QString text = QStringLiteral(
                     "Training the demo model on Fashion-MNIST: epoch %1 of %2, about %3 s left.\n"
                     "This happens once; later starts open it at once.")
                     .arg(progress.epoch + 1)
                     .arg(progress.epochs)
                     .arg(static_cast<int>(progress.remainingSeconds));
  if (progress.testAccuracy >= 0) {
    text += QStringLiteral("\nTest accuracy after epoch %1: %2%")
                .arg(progress.epoch + 1)
                .arg(100 * progress.testAccuracy, 0, 'f', 1);
  }
  m_trainingDialog->setLabelText(text);
}

void MainWindow::showError(const QString& title, const QString& message, const QString& hint) {
  if (m_errorDialog) m_errorDialog->close();
  auto* box = new QMessageBox(QMessageBox::Warning, title, message, QMessageBox::Ok, this);
  box->setAttribute(Qt::WA_DeleteOnClose);
  box->setInformativeText(hint);
  m_errorDialog = box;
  box->open();  // window-modal, without blocking the event loop
}

void MainWindow::dragEnterEvent(QDragEnterEvent* event) {
  const auto urls = event->mimeData()->urls();
  if (urls.size() == 1 && urls.front().isLocalFile()) event->acceptProposedAction();
}

void MainWindow::dropEvent(QDropEvent* event) {
  const auto urls = event->mimeData()->urls();
  if (urls.size() != 1 || !urls.front().isLocalFile()) return;
  event->acceptProposedAction();
  // A folder or a table is target data; a .json a session; anything else a model.
  const QString path = urls.front().toLocalFile();
  const QFileInfo info(path);
  if (info.isDir() || info.suffix().compare("csv", Qt::CaseInsensitive) == 0) {
    m_session->openData(true, dataAt(path));
  } else {
    openFile(path);
  }
}

void MainWindow::closeEvent(QCloseEvent* event) {
  if (m_session->isTraining()) {
    const auto answer =
        QMessageBox::question(this, "Training is running",
                              "A fine-tuning run is in progress. Stop it and close Scalpel?\n\n"
                              "The run's best state so far is dropped; the session is autosaved.",
                              QMessageBox::Yes | QMessageBox::No, QMessageBox::No);
    if (answer != QMessageBox::Yes) {
      event->ignore();
      return;
    }
    m_session->stop();
  }
  m_session->autosave();
  if (!maybeSave()) {
    event->ignore();
    return;
  }
  QSettings().setValue("windowState", saveState());
  QSettings().setValue("windowGeometry", saveGeometry());
  event->accept();
}

}  // namespace scalpel::ui
