#include "main_window.h"

#include <QAction>
#include <QDialog>
#include <QDialogButtonBox>
#include <QFile>
#include <QApplication>
#include <QDockWidget>
#include <QProcess>
#include <QDragEnterEvent>
#include <QFileDialog>
#include <QDir>
#include <QFileInfo>
#include <QLabel>
#include <QMenuBar>
#include <QMessageBox>
#include <QMimeData>
#include <QProgressDialog>
#include <QSet>
#include <QSettings>
#include <QSplitter>
#include <QStatusBar>
#include <QTextBrowser>
#include <QUrl>
#include <QHeaderView>
#include <QLineEdit>
#include <QSortFilterProxyModel>
#include <QTableView>
#include <QUndoStack>
#include <QVBoxLayout>

#include "block_item.h"
#include "data_dialog.h"
#include "diagram_view.h"
#include "layer_diagram_scene.h"
#include "model_worker.h"
#include "shift_heatmap.h"
#include "compare_panel.h"
#include "training_panel.h"
#include "log_forwarder.h"
#include "util/device_info.h"
#include <QFontDatabase>
#include <QPlainTextEdit>
#include "freeze_state.h"
#include "layer_table_model.h"
#include "io/model_export.h"
#include "io/run_report.h"
#include "scalpel/version.h"
#include "util/logging.h"

namespace {

// The user's own data at `path` (an image folder, a table, an IDX file), as it is.
scalpel::DataRequest dataAt(const QString& path) {
  scalpel::DataRequest request;
  request.source = path.toStdString();
  return request;
}

}  // namespace

// The help page is compiled into this static library; Q_INIT_RESOURCE must name it from the
// global namespace, or the linker may drop it.
static void initHelpResource() { Q_INIT_RESOURCE(help); }

namespace scalpel::ui {

namespace {

QString html(const std::string& text) { return QString::fromStdString(text).toHtmlEscaped(); }

}  // namespace

MainWindow::MainWindow(QWidget* parent) : QMainWindow(parent) {
  qRegisterMetaType<scalpel::ModelInspection>();
  qRegisterMetaType<scalpel::PretrainOptions>();
  qRegisterMetaType<scalpel::PretrainProgress>();
  qRegisterMetaType<scalpel::PretrainResult>();
  qRegisterMetaType<scalpel::DataRequest>();
  qRegisterMetaType<scalpel::DataSummary>();
  qRegisterMetaType<scalpel::ShiftSnapshot>();
  qRegisterMetaType<scalpel::ShiftAnalysis>();
  qRegisterMetaType<scalpel::TrainOptions>();
  qRegisterMetaType<scalpel::TrainEvent>();
  qRegisterMetaType<scalpel::FineTuneRun>();
  qRegisterMetaType<scalpel::FreezePlan>();
  qRegisterMetaType<scalpel::GradientProfile>();
  initHelpResource();
  setWindowTitle("Scalpel[*]");
  setAcceptDrops(true);
  m_autosaveTimer.setSingleShot(true);
  m_autosaveTimer.setInterval(2000);
  connect(&m_autosaveTimer, &QTimer::timeout, this, &MainWindow::autosave);

  m_scene = new LayerDiagramScene(this);
  m_view = new DiagramView(this);
  m_view->setScene(m_scene);
  m_details = new QTextBrowser(this);
  m_details->setMinimumWidth(260);
  auto* splitter = new QSplitter(this);
  splitter->addWidget(m_view);
  splitter->addWidget(m_details);
  splitter->setStretchFactor(0, 1);  // the diagram takes what the window gains
  splitter->setStretchFactor(1, 0);
  splitter->setCollapsible(0, false);
  splitter->setSizes({840, 340});
  setCentralWidget(splitter);
  showWelcome();

  m_heatmap = new ShiftHeatmap(this);
  auto* dock = addBottomTab("Shift heatmap", "shiftHeatmapDock", m_heatmap);
  // One freeze state, two views: the diagram's marks and the layer table; edits are undoable.
  m_freeze = new FreezeState(this);
  m_undo = new QUndoStack(this);
  connect(m_undo, &QUndoStack::indexChanged, this, [this] { if (!m_pendingSession) markDirty(); });
  m_scene->setFreezeState(m_freeze);
  connect(m_scene, &LayerDiagramScene::freezeToggleRequested, this, &MainWindow::setTrainable);
  m_layers = new LayerTableModel(m_freeze, this);
  connect(m_layers, &LayerTableModel::toggleRequested, this, [this](int node, bool trainable) {
    setTrainable({node}, trainable, QString::fromStdString(m_freeze->tree().node(node).name));
  });
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
  auto* layersPane = new QWidget(this);
  auto* layersLayout = new QVBoxLayout(layersPane);
  layersLayout->setContentsMargins(4, 4, 4, 4);
  layersLayout->addWidget(filter);
  layersLayout->addWidget(table);

  m_training = new TrainingPanel(this);
  connect(m_freeze, &FreezeState::changed, this, &MainWindow::showPlanContext);
  addBottomTab("Training", "trainingDock", m_training);
  m_compare = new ComparePanel(this);
  addBottomTab("Compare", "compareDock", m_compare);
  addBottomTab("Layers", "layersDock", layersPane);

  // The log panel: every Scalpel logger's lines, from every thread.
  auto* log = new QPlainTextEdit(this);
  log->setObjectName("logPanel");
  log->setReadOnly(true);
  log->setMaximumBlockCount(5000);
  log->setFont(QFontDatabase::systemFont(QFontDatabase::FixedFont));
  connect(&LogForwarder::instance(), &LogForwarder::line, log, [log](const QString& text, int level) {
    log->appendHtml(level >= 3 ? QString("<span style='color:#b00020'>%1</span>").arg(text.toHtmlEscaped()) : text.toHtmlEscaped());
  });
  addBottomTab("Log", "logDock", log);
  dock->raise();

  m_deviceLabel = new QLabel(QString::fromStdString("device: " + describeDevice(automaticDevice())), this);
  m_deviceLabel->setToolTip("Where analysis and training run: CUDA when available, else the CPU with all its cores");
  statusBar()->addPermanentWidget(m_deviceLabel);
  statusBar()->showMessage("Ready");

  connect(m_scene, &LayerDiagramScene::nodeSelected, this, &MainWindow::showDetails);
  connect(m_scene, &LayerDiagramScene::nodeSelected, this, [this](int node) { m_selectedNode = node; });

  m_worker = new ModelWorker;
  m_worker->moveToThread(&m_workerThread);
  connect(&m_workerThread, &QThread::finished, m_worker, &QObject::deleteLater);
  connect(this, &MainWindow::requestInspection, m_worker, &ModelWorker::inspect);
  connect(m_worker, &ModelWorker::inspected, this, &MainWindow::onInspected);
  connect(this, &MainWindow::requestPretrain, m_worker, &ModelWorker::pretrain);
  connect(m_worker, &ModelWorker::pretrainProgress, this, &MainWindow::onPretrainProgress);
  connect(m_worker, &ModelWorker::pretrainFinished, this, &MainWindow::onPretrainFinished);
  connect(this, &MainWindow::requestData, m_worker, &ModelWorker::loadData);
  connect(m_worker, &ModelWorker::dataLoaded, this, &MainWindow::onDataLoaded);
  connect(this, &MainWindow::requestPreview, m_worker, &ModelWorker::previewData);
  connect(m_worker, &ModelWorker::dataPreviewed, this, [this](const DataSummary& summary) {
    if (m_dataDialog) m_dataDialog->showPreview(summary);
  });
  connect(this, &MainWindow::requestAnalysis, m_worker, &ModelWorker::analyze);
  connect(m_worker, &ModelWorker::analysisSnapshot, m_heatmap, &ShiftHeatmap::addSnapshot);
  connect(m_worker, &ModelWorker::analysisSnapshot, this, [this](const ShiftSnapshot& snapshot) {
    m_scene->setShift(snapshot);  // the diagram's stripes follow the heatmap's newest column
    m_view->setLegendVisible(true);
  });
  connect(m_worker, &ModelWorker::analysisFinished, this, &MainWindow::onAnalysisFinished);
  connect(m_worker, &ModelWorker::gradientsFinished, this, [this](const GradientProfile& gradients) {
    QHash<QString, double> rgn;
    for (const auto& module : gradients.modules) rgn[QString::fromStdString(module.name)] = module.rgn;
    m_layers->setRgn(rgn);
    for (const auto& block : gradients.blocks) rgn[QString::fromStdString(block.name)] = block.rgn;
    m_scene->setRgn(rgn);
    m_heatmap->setGradients(gradients);
    Q_EMIT gradientsShown();
  });
  connect(this, &MainWindow::requestTraining, m_worker, &ModelWorker::train);
  // The worker's runs belong to the Compare tab while a comparison is on, else to the Training tab.
  connect(m_worker, &ModelWorker::trainingStatus, this, [this](const QString& message) {
    if (m_comparing) m_compare->onStatus(message); else m_training->onStatus(message);
  });
  connect(m_worker, &ModelWorker::trainingEvent, this, [this](const TrainEvent& event) {
    if (m_comparing) m_compare->onEvent(event); else m_training->onEvent(event);
  });
  connect(m_worker, &ModelWorker::trainingFinished, this, [this](const FineTuneRun& run, const QString& planError) {
    if (m_comparing) onComparedRunFinished(run, planError); else onTrainingFinished(run, planError);
  });
  connect(m_compare, &ComparePanel::compareRequested, this, [this](const QStringList& strategies) {
    startComparison(strategies, m_training->options());
  });
  connect(m_compare, &ComparePanel::stopRequested, this, [this] {
    m_compareQueue.clear();
    m_worker->trainControl().cancel();
  });
  connect(m_compare, &ComparePanel::openRequested, this, &MainWindow::openComparedRun);
  connect(m_compare, &ComparePanel::usePlanRequested, this, &MainWindow::useComparedPlan);
  connect(m_compare, &ComparePanel::exportRequested, this, [this](int row) {
    const QString path = QFileDialog::getSaveFileName(this, "Export Tuned Model", "tuned.pt", "TorchScript models (*.pt)");
    if (!path.isEmpty()) exportComparedRun(row, path);
  });
  connect(m_training, &TrainingPanel::trainRequested, this, &MainWindow::startTraining);
  // Pause and stop go straight to the worker's control (thread-safe), not through its queue,
  // which is busy with the run.
  connect(m_training, &TrainingPanel::pauseRequested, this, [this](bool paused) {
    if (paused) m_worker->trainControl().pause(); else m_worker->trainControl().resume();
  });
  connect(m_training, &TrainingPanel::stopRequested, this, &MainWindow::stopTraining);
  connect(&m_jobPoll, &QTimer::timeout, this, &MainWindow::pollJob);
  // The device setting (Training tab) steers the worker's analyses too, and is remembered.
  const auto useDevice = [this](const QString& device) {
    m_worker->setDevice(device.toStdString());
    QSettings().setValue("device", device);
    const std::string chosen = device == "auto" ? automaticDevice() : device.toStdString();
    m_deviceLabel->setText(QString::fromStdString("device: " + describeDevice(chosen)));
  };
  connect(m_training, &TrainingPanel::deviceChanged, this, useDevice);
  m_training->setDevice(QSettings().value("device", "auto").toString());
  useDevice(m_training->device());
  m_workerThread.start();

  buildMenus();
  resize(1180, 780);
  // The bottom tabs share the height with the diagram and the details pane, whose diagnosis and
  // suggestion must stay readable without scrolling: give the tabs a bit under half.
  resizeDocks({dock}, {330}, Qt::Vertical);
  checkAutosave();
}

MainWindow::~MainWindow() {
  // QWidget's destructor deletes the children before QObject's cuts the connections: the undo
  // stack says "index changed" as it goes, and must not reach this half-destroyed window.
  disconnect(m_undo, nullptr, this, nullptr);
  m_worker->cancelFlag() = true;  // a pretraining run stops within one step
  m_worker->trainControl().cancel();  // and so does fine-tuning
  if (m_job) {  // and the processes of a run on several
    m_job->disconnect(this);
    m_job->terminate();
    m_job->waitForFinished(10000);
  }
  m_workerThread.quit();
  m_workerThread.wait();
}

void MainWindow::buildMenus() {
  auto* file = menuBar()->addMenu("&File");
  file->addAction("&New Session", QKeySequence::New, this, &MainWindow::newSession);
  auto* open = file->addAction("&Open Model…", this, &MainWindow::openModelDialog);
  open->setShortcut(QKeySequence::Open);
  file->addAction("Open &Session…", QKeySequence(Qt::CTRL | Qt::SHIFT | Qt::Key_O), this, [this] {
    QSettings settings;
    const QString path = QFileDialog::getOpenFileName(this, "Open Session", settings.value("lastSessionFolder").toString(),
                                                      "Scalpel sessions (*.json);;All files (*)");
    if (path.isEmpty() || !maybeSave()) return;
    settings.setValue("lastSessionFolder", QFileInfo(path).absolutePath());
    openSession(path);
  });
  m_recentMenu = file->addMenu("Recent &Files");
  connect(m_recentMenu, &QMenu::aboutToShow, this, &MainWindow::fillRecentMenu);
  file->addSeparator();
  file->addAction("Open &Data…", QKeySequence(Qt::CTRL | Qt::Key_D), this, &MainWindow::openDataDialog);
  file->addAction("Open Target &Image Folder…", this, [this] {
    const QString folder = QFileDialog::getExistingDirectory(
        this, "Target data: a folder with one subfolder of images per class");
    if (!folder.isEmpty()) openData(true, dataAt(folder));
  });
  file->addAction("Open Target &CSV…", this, [this] {
    const QString csv = QFileDialog::getOpenFileName(this, "Target data: a table", {},
                                                     "CSV files (*.csv);;All files (*)");
    if (!csv.isEmpty()) openData(true, dataAt(csv));
  });
  file->addAction("Open S&ource Image Folder…", this, [this] {
    const QString folder = QFileDialog::getExistingDirectory(
        this, "Source data (what the model was trained on): one subfolder of images per class");
    if (!folder.isEmpty()) openData(false, dataAt(folder));
  });
  file->addSeparator();
  file->addAction("&Save Session", QKeySequence::Save, this, [this] { saveCurrentSession(); });
  file->addAction("Save Session &As…", QKeySequence::SaveAs, this, [this] { saveSessionAs(); });
  file->addAction("Restore Auto&saved Session", this, [this] {
    if (maybeSave()) restoreAutosave();
  });
  file->addSeparator();
  m_exportAction = file->addAction("&Export Tuned Model…", this, [this] {
    const QString path = QFileDialog::getSaveFileName(this, "Export the tuned model", "tuned.pt",
                                                      "TorchScript models (*.pt);;All files (*)");
    if (!path.isEmpty()) exportTunedModel(path);
  });
  m_exportAction->setShortcut(QKeySequence(Qt::CTRL | Qt::Key_E));
  m_exportAction->setEnabled(false);
  m_exportReportAction = file->addAction("Export &Report…", this, [this] {
    const QString folder = QFileDialog::getExistingDirectory(this, "Export the last run's report (Markdown and PNG plots) into a folder");
    if (!folder.isEmpty()) exportReport(folder);
  });
  m_exportReportAction->setEnabled(false);
  file->addSeparator();
  auto* quit = file->addAction("&Quit", this, &QWidget::close);
  quit->setShortcut(QKeySequence::Quit);

  auto* edit = menuBar()->addMenu("&Edit");
  auto* undo = m_undo->createUndoAction(this, "&Undo");
  undo->setShortcut(QKeySequence::Undo);
  auto* redo = m_undo->createRedoAction(this, "&Redo");
  redo->setShortcut(QKeySequence::Redo);
  edit->addAction(undo);
  edit->addAction(redo);
  edit->addSeparator();
  edit->addAction("&Freeze All", this, [this] { setTrainable({0}, false, "all layers"); });
  edit->addAction("&Unfreeze All", this, [this] { setTrainable({0}, true, "all layers"); });
  edit->addAction("Freeze &Block", QKeySequence(Qt::CTRL | Qt::SHIFT | Qt::Key_F), this, [this] { setSelectedBlockTrainable(false); });
  edit->addAction("Unfreeze Bl&ock", QKeySequence(Qt::CTRL | Qt::SHIFT | Qt::Key_U), this, [this] { setSelectedBlockTrainable(true); });

  auto* view = menuBar()->addMenu("&View");
  view->addAction("Zoom &In", QKeySequence::ZoomIn, this, [this] { m_view->zoomBy(1.25); });
  view->addAction("Zoom &Out", QKeySequence::ZoomOut, this, [this] { m_view->zoomBy(0.8); });
  view->addAction("&Fit to View", QKeySequence(Qt::CTRL | Qt::Key_0), this,
                  [this] { m_view->fitToView(); });
  view->addSeparator();
  view->addAction("&Expand All Blocks", this, [this] { m_scene->setAllExpanded(true); });
  view->addAction("&Collapse All Blocks", this, [this] { m_scene->setAllExpanded(false); });

  auto* analysis = menuBar()->addMenu("&Analysis");
  analysis->addAction("&Analyse Target Data", QKeySequence(Qt::CTRL | Qt::Key_R), this,
                      [this] { analyzeTarget(false); });
  analysis->addAction("Analyse Against &Source Data", this, [this] { analyzeTarget(true); });
  analysis->addAction("S&top Analysis", this, [this] { m_worker->cancelFlag() = true; });
  analysis->addSeparator();
  analysis->addAction("A&ccept Suggested Plan", QKeySequence(Qt::CTRL | Qt::SHIFT | Qt::Key_A), this,
                      &MainWindow::acceptSuggestedPlan);
  analysis->addAction("&Reset Plan", this, &MainWindow::resetPlan);

  auto* training = menuBar()->addMenu("&Training");
  training->addAction("&Train", QKeySequence(Qt::CTRL | Qt::Key_T), this, [this] {
    startTraining(m_training->strategy(), m_training->options());
  });
  training->addAction("&Pause / Resume", QKeySequence(Qt::CTRL | Qt::Key_P), m_training, &TrainingPanel::togglePause);
  training->addAction("&Stop", this, &MainWindow::stopTraining);
  training->addSeparator();
  training->addAction("&Run On…", this, &MainWindow::showRunOnDialog);
  training->addAction("&Export Job…", this, [this] { exportJobDialog(std::max(2, m_trainProcesses)); });
  training->addAction("&Open Job Results…", this, &MainWindow::openJobResultsDialog);

  auto* help = menuBar()->addMenu("&Help");
  help->addAction("&How Surgical Fine-Tuning Works", QKeySequence::HelpContents, this, &MainWindow::showMethodHelp);
  help->addAction("&About Scalpel", this, [this] {
    QMessageBox::about(this, "About Scalpel",
                       QStringLiteral("<h3>Scalpel %1</h3><p>Visual surgical fine-tuning: see "
                                      "which layers a distribution shift touches, and tune only "
                                      "those.</p>")
                           .arg(kVersion));
  });
}

void MainWindow::showWelcome() {
  m_details->setHtml(
      "<h3>No model open</h3><p>Open a TorchScript model with <b>File ▸ Open Model…</b> or drop "
      "a <tt>.pt</tt> file on this window.</p><p>Save one from Python with "
      "<tt>torch.jit.script(model).save(\"model.pt\")</tt>.</p>"
      "<p>Or come back to earlier work: <b>File ▸ Open Session…</b>, <b>Recent Files</b>, or "
      "<b>Restore Autosaved Session</b>.</p>");
}

DataDialog* MainWindow::dataDialog() const { return m_dataDialog; }

void MainWindow::openDataDialog() {
  if (!m_dataDialog) {
    m_dataDialog = new DataDialog(this);
    m_dataDialog->setAttribute(Qt::WA_DeleteOnClose);
    connect(m_dataDialog, &DataDialog::previewRequested, this,
            [this](const DataRequest& request) { Q_EMIT requestPreview(sizedForModel(request)); });
    connect(m_dataDialog, &QDialog::accepted, this, [this] {
      openData(m_dataDialog->isTarget(), m_dataDialog->request());
    });
  }
  m_dataDialog->open();  // window-modal, without blocking the event loop
}

QSet<int> MainWindow::suggestedBlocks() const {
  // A block is suggested when the plan trains all of its units.
  QSet<int> blocks;
  if (!m_diagnosis) return blocks;
  const auto planned = m_freeze->unitsOfPlan(m_plan);
  const QSet<int> plannedUnits(planned.begin(), planned.end());
  const auto& tree = m_freeze->tree();
  for (int b = 0; b < static_cast<int>(tree.blocks().size()); ++b) {
    const auto units = m_freeze->unitsOfNodes(tree.blocks()[static_cast<size_t>(b)].members);
    bool all = !units.isEmpty();
    for (int unit : units) all &= plannedUnits.contains(unit);
    if (all) blocks.insert(b);
  }
  return blocks;
}

void MainWindow::showSuggestion() {
  m_scene->setSuggestedBlocks(suggestedBlocks());
  showPlanContext();
}

void MainWindow::showPlanContext() {
  const int ticked = static_cast<int>(m_freeze->plan().trainable.size());  // the manual plan's layers
  auto blocks = suggestedBlocks().values();
  std::sort(blocks.begin(), blocks.end());
  QStringList names;
  for (int b : blocks) names << QString::fromStdString(m_freeze->tree().blocks()[static_cast<size_t>(b)].name);
  m_training->setPlanContext(ticked, static_cast<int>(m_freeze->allUnits().size()), names);
}

void MainWindow::resetPlan() {
  setTrainable({0}, true, "all layers (reset)");
  m_training->setStrategy("auto");
  statusBar()->showMessage("Reset: every layer trains; the plan follows the advisor again (Ctrl+Z undoes)");
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

void MainWindow::setSelectedBlockTrainable(bool trainable) {
  const auto& tree = m_freeze->tree();
  if (tree.empty() || m_selectedNode <= 0 || m_selectedNode >= tree.size()) {
    showError(trainable ? "Unfreeze Block" : "Freeze Block",
              "Click a block or one of its layers in the diagram first: this freezes or unfreezes the whole block.");
    return;
  }
  const auto& block = tree.blocks().at(static_cast<size_t>(tree.blockOf(m_selectedNode)));
  setTrainable(QVector<int>(block.members.begin(), block.members.end()), trainable, QString::fromStdString(block.name));
}

void MainWindow::openModelDialog() {
  QSettings settings;
  const QString start = settings.value("lastModelFolder").toString();
  const QString path = QFileDialog::getOpenFileName(
      this, "Open TorchScript Model", start,
      "TorchScript models (*.pt *.pth *.ts *.zip *.torchscript);;All files (*)");
  if (path.isEmpty()) return;
  settings.setValue("lastModelFolder", QFileInfo(path).absolutePath());
  openModel(path);
}

void MainWindow::openModel(const QString& path) {
  const quint64 request = ++m_lastRequest;
  statusBar()->showMessage(QStringLiteral("Opening %1…").arg(QFileInfo(path).fileName()));
  QApplication::setOverrideCursor(Qt::BusyCursor);
  Q_EMIT requestInspection(request, path, {});
}

void MainWindow::onInspected(quint64 requestId, const ModelInspection& inspection) {
  QApplication::restoreOverrideCursor();  // one per request, stale or not
  if (requestId != m_lastRequest) return;  // a newer request is on its way
  if (!inspection.ok) {
    m_demoPending = false;
    m_pendingSession.reset();  // a session whose model does not open is not restored half-way
    statusBar()->showMessage("Could not open the model");
    showError("Cannot open model", QString::fromStdString(inspection.error),
              "Choose another file with File ▸ Open Model…, or drop one on this window.");
    Q_EMIT loadFailed(QString::fromStdString(inspection.error));
    return;
  }
  m_inspection = inspection;
  QStringList trainable, blocks;
  for (const auto& block : inspection.tree.blocks()) {
    blocks << QString::fromStdString(block.name);
    if (block.totalParameters > 0) trainable << QString::fromStdString(block.name);
  }
  m_training->setBlocks(trainable);
  m_training->setModelBlocks(blocks);
  m_compare->setBlocks(trainable);
  m_diagnosis.reset();  // it was about the previous model
  m_freeze->setTree(inspection.tree);
  m_selectedNode = -1;
  m_layers->reset();
  m_undo->clear();
  m_heatmap->clear("Analysis ▸ Analyse Target Data (Ctrl+R) measures this model's shift on the target data.");
  m_scene->setTree(inspection.tree);
  m_view->setLegendVisible(false);  // until this model's first scores
  m_view->fitToView();
  const QString file = QFileInfo(QString::fromStdString(inspection.path)).fileName();
  setWindowTitle(QStringLiteral("%1[*] — Scalpel").arg(file));
  statusBar()->showMessage(
      QStringLiteral("%1: %2 modules in %3 blocks, %4 parameters%5")
          .arg(file)
          .arg(inspection.tree.size() - 1)
          .arg(inspection.tree.blocks().size())
          .arg(QString::fromStdString(formatCount(inspection.tree.node(0).totalParameters)))
          .arg(inspection.warnings.empty()
                   ? QString()
                   : QStringLiteral(" — %1 warning(s), see the details pane")
                         .arg(inspection.warnings.size())));
  showDetails(0);
  logger("ui")->info("showing {}", inspection.path);
  Q_EMIT modelShown();
  if (m_pendingSession) {
    applyPendingSession();
  } else {
    addRecentFile(QString::fromStdString(inspection.path));
    markDirty();
  }
  if (m_demoPending) {
    // The demo's story: Fashion-MNIST test images under heavy Gaussian noise are the analyst's
    // shifted data; the clean training images are the source reference.
    m_demoPending = false;
    m_analyseDemo = true;
    openData(true, DataRequest{"fashion-mnist", "test", "gaussian-noise", 5, 0, {}, {}, {}});
    openData(false, DataRequest{"fashion-mnist", "train", {}, 3, 0, {}, {}, {}});
  }
}

void MainWindow::showDetails(int nodeIndex) {
  const auto& tree = m_scene->tree();
  if (tree.empty()) {  // no model yet: show what data there is
    if (m_targetData.ok || m_sourceData.ok) m_details->setHtml(dataHtml(true) + dataHtml(false));
    return;
  }
  QString text;
  if (nodeIndex == 0) {
    const auto& metadata = m_inspection.metadata;
    text += QStringLiteral("<h3>%1</h3><p><tt>%2</tt></p>")
                .arg(html(tree.node(0).typeName), html(m_inspection.path));
    text += QStringLiteral("<p>%1 parameters · %2 modules · %3 blocks<br>input %4</p>")
                .arg(QString::number(tree.node(0).totalParameters))
                .arg(tree.size() - 1)
                .arg(tree.blocks().size())
                .arg(html(formatShape(m_inspection.inputShape)));
    if (!metadata.classNames.empty()) {
      text += QStringLiteral("<p>%1 classes</p>").arg(metadata.classNames.size());
    }
    for (const auto& warning : m_inspection.warnings) {
      text += QStringLiteral("<p style='color:#a15c00'>⚠ %1</p>").arg(html(warning));
    }
    text += "<p style='color:#555'>Click ▸ or double-click a block to see its layers; "
            "click a layer for its details.</p>";
    text += diagnosisHtml() + dataHtml(true) + dataHtml(false);
  } else {
    const auto& node = tree.node(nodeIndex);
    text += QStringLiteral("<h3>%1</h3><p>%2</p>").arg(html(node.name), html(node.typeName));
    text += QStringLiteral("<table cellpadding=2>"
                           "<tr><td>block</td><td>%1</td></tr>"
                           "<tr><td>parameters</td><td>%2 (own %3)</td></tr>"
                           "<tr><td>output</td><td>%4</td></tr>"
                           "<tr><td>calls per forward</td><td>%5</td></tr>"
                           "<tr><td>BatchNorm statistics</td><td>%6</td></tr></table>")
                .arg(html(tree.blocks().at(static_cast<size_t>(tree.blockOf(nodeIndex))).name))
                .arg(node.totalParameters)
                .arg(node.ownParameters)
                .arg(html(formatShape(node.outputShape)))
                .arg(node.callCount)
                .arg(node.hasBatchNormStats ? "yes" : "no");
  }
  m_details->setHtml(text);
}

void MainWindow::openDemo(const QString& untrained, const QString& trained,
                          const PretrainOptions& options) {
  m_demoPending = true;  // its data follows once the model is on screen
  if (QFileInfo::exists(trained)) {
    openModel(trained);
    return;
  }
  if (!QFileInfo::exists(untrained)) {
    showError("Cannot open the demo",
              QStringLiteral("The demo architecture %1 is missing — start the demo with "
                             "scripts/run --demo, which makes it.").arg(untrained));
    return;
  }
  auto* dialog = new QProgressDialog(
      "Training the demo model on Fashion-MNIST.\nThis happens once; later starts open it at once.",
      "Cancel", 0, 1000, this);
  dialog->setWindowTitle("Preparing the demo");
  dialog->setAttribute(Qt::WA_DeleteOnClose);
  dialog->setMinimumDuration(0);
  dialog->setMinimumWidth(460);
  dialog->setValue(0);
  connect(dialog, &QProgressDialog::canceled, this, [this] { m_worker->cancelFlag() = true; });
  m_trainingDialog = dialog;
  dialog->show();
  statusBar()->showMessage("Training the demo model…");
  Q_EMIT requestPretrain(untrained, trained, options);
}

void MainWindow::onPretrainProgress(const PretrainProgress& progress) {
  if (!m_trainingDialog) return;
  const double done = (progress.epoch + static_cast<double>(progress.step) /
                                            std::max<std::size_t>(1, progress.stepsPerEpoch)) /
                      std::max(1, progress.epochs);
  m_trainingDialog->setValue(static_cast<int>(done * 1000));
  QString text = QStringLiteral("Training the demo model on Fashion-MNIST: epoch %1 of %2, "
                                "about %3 s left.\nThis happens once; later starts open it at once.")
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

void MainWindow::onPretrainFinished(const PretrainResult& result, const QString& outPath) {
  if (m_trainingDialog) m_trainingDialog->close();
  if (result.cancelled) {
    statusBar()->showMessage("Demo training cancelled");
    return;
  }
  if (!result.ok) {
    showError("Cannot train the demo model", QString::fromStdString(result.error));
    return;
  }
  statusBar()->showMessage(QStringLiteral("Demo model trained: %1% test accuracy in %2 s")
                               .arg(100 * result.testAccuracy, 0, 'f', 1)
                               .arg(static_cast<int>(result.seconds)));
  Q_EMIT demoTrained(result.testAccuracy);
  openModel(outPath);
}

DataRequest MainWindow::sizedForModel(DataRequest request) const {
  // Images are read at the model's input size, and folders matched to the model's outputs.
  const auto& metadata = m_inspection.metadata;
  if (request.itemShape.empty() && metadata.inputShape.size() == 4) {
    request.itemShape.assign(metadata.inputShape.begin() + 1, metadata.inputShape.end());
  }
  if (request.classNames.empty()) request.classNames = metadata.classNames;
  return request;
}

void MainWindow::openData(bool target, const DataRequest& given) {
  const DataRequest request = sizedForModel(given);
  (target ? m_targetRequest : m_sourceRequest) = given;  // as asked: the model's shape is added again on reopening
  statusBar()->showMessage(QStringLiteral("Loading %1…").arg(QString::fromStdString(request.describe())));
  Q_EMIT requestData(static_cast<int>(target ? DataRole::Target : DataRole::Source), request);
}

void MainWindow::onDataLoaded(int role, const DataSummary& summary) {
  const bool target = role == static_cast<int>(DataRole::Target);
  const bool restoring = m_restoringData > 0;
  if (restoring && --m_restoringData == 0) QTimer::singleShot(0, this, &MainWindow::finishRestoring);
  if (!restoring) markDirty();
  if (!summary.ok) {
    statusBar()->showMessage("Could not load the data");
    showError(target ? "Cannot open the target data" : "Cannot open the source data",
              QString::fromStdString(summary.error));
    return;
  }
  (target ? m_targetData : m_sourceData) = summary;
  const QImage preview(summary.preview.pixels.data(), summary.preview.width, summary.preview.height,
                       summary.preview.width * 3, QImage::Format_RGB888);
  m_details->document()->addResource(QTextDocument::ImageResource,
                                     QUrl(target ? "scalpel:target-preview" : "scalpel:source-preview"),
                                     preview.copy());  // copy: the summary's pixels are not ours
  statusBar()->showMessage(QStringLiteral("%1: %2 items").arg(QString::fromStdString(summary.description)).arg(summary.items));
  showDetails(0);
  Q_EMIT dataShown(target);
  if (target && m_analyseDemo) {
    m_analyseDemo = false;
    analyzeTarget(false);
  }
}

void MainWindow::analyzeTarget(bool useSource) {
  if (m_inspection.tree.empty()) {
    showError("Nothing to analyse", "Open a model first (File ▸ Open Model…).");
    return;
  }
  if (!m_targetData.ok || (useSource && !m_sourceData.ok)) {
    showError("Nothing to analyse",
              useSource ? "Open target and source data first." : "Open target data first (File ▸ Open Target Image Folder… or CSV…).");
    return;
  }
  m_diagnosis.reset();
  showSuggestion();  // none until this analysis finishes
  m_analysedWithSource = useSource;
  m_heatmap->clear(QStringLiteral("Analysing %1 …").arg(QString::fromStdString(m_targetData.description)));
  m_scene->clearScores();
  statusBar()->showMessage("Analysing the target data…");
  Q_EMIT requestAnalysis(QString::fromStdString(m_inspection.path), useSource);
}

void MainWindow::onAnalysisFinished(const ShiftAnalysis& analysis) {
  if (!analysis.ok) {
    m_heatmap->clear("The analysis did not finish.");
    if (!analysis.cancelled) showError("Cannot analyse the target data", QString::fromStdString(analysis.error));
    return;
  }
  m_diagnosis = diagnose(analysis, m_inspection.tree);
  planFreeze("auto", m_inspection.tree, *m_diagnosis, nullptr, m_plan);
  showSuggestion();
  const auto& last = analysis.snapshots.back();
  QHash<QString, double> shifts;
  for (const auto& layer : last.layers) shifts[QString::fromStdString(layer.layer)] = layer.kl;
  m_layers->setShift(shifts);
  m_heatmap->setCaption(QStringLiteral("%1 (%2 items) against %3 — %4")
                       .arg(QString::fromStdString(m_targetData.description))
                       .arg(last.targetItems)
                       .arg(QString::fromStdString(analysis.reference),
                            QString::fromStdString(shiftKindName(m_diagnosis->kind))));
  m_heatmap->flush();
  statusBar()->showMessage(QStringLiteral("Diagnosis: %1").arg(QString::fromStdString(shiftKindName(m_diagnosis->kind))));
  showDetails(0);
  m_details->scrollToAnchor("diagnosis");  // the diagnosis and the suggestion in view, not the model's summary
  Q_EMIT analysisShown();
}

QString MainWindow::diagnosisHtml() const {
  if (!m_diagnosis) return {};
  QString text = QStringLiteral("<a name='diagnosis'></a><h4>Diagnosis: %1</h4><p>%2</p><ul>")
                     .arg(html(shiftKindName(m_diagnosis->kind)), html(m_diagnosis->summary));
  for (const auto& line : m_diagnosis->evidence) text += QStringLiteral("<li>%1</li>").arg(html(line));
  text += QStringLiteral("</ul><p><b>Suggestion:</b> %1").arg(html(m_plan.explanation));
  if (!m_plan.trainable.empty()) {
    QStringList modules;
    for (const auto& m : m_plan.trainable) modules << html(m);
    text += QStringLiteral("<br>train: <tt>%1</tt>; freeze the rest").arg(modules.join(", "));
  }
  return text + "</p>";
}

QString MainWindow::dataHtml(bool target) const {
  const DataSummary& data = target ? m_targetData : m_sourceData;
  if (!data.ok) return {};
  QString text = QStringLiteral("<h4>%1</h4><p><tt>%2</tt><br>%3 items of %4 · %5</p>")
                     .arg(target ? "Target data (shifted)" : "Source reference",
                          html(data.description))
                     .arg(data.items)
                     .arg(html(formatShape(data.itemShape)))
                     .arg(html(data.labelling()));
  if (data.preview.width > 0) {
    text += QStringLiteral("<p><img src='%1'><br><span style='color:#555'>%2</span></p>")
                .arg(target ? "scalpel:target-preview" : "scalpel:source-preview",
                     target && m_targetData.description.find(" + ") != std::string::npos
                         ? "top: clean · bottom: as the model will see them"
                         : "samples");
  }
  for (const auto& note : data.notes) text += QStringLiteral("<p style='color:#555'>%1</p>").arg(html(note));
  for (const auto& warning : data.warnings) {
    text += QStringLiteral("<p style='color:#a15c00'>⚠ %1</p>").arg(html(warning));
  }
  return text;
}

QProgressDialog* MainWindow::trainingDialog() const { return m_trainingDialog.data(); }

QMessageBox* MainWindow::errorDialog() const { return m_errorDialog.data(); }

QDockWidget* MainWindow::addBottomTab(const QString& title, const QString& objectName, QWidget* widget) {
  auto* dock = new QDockWidget(title, this);
  dock->setObjectName(objectName);
  dock->setWidget(widget);
  dock->setFeatures(QDockWidget::DockWidgetMovable | QDockWidget::DockWidgetFloatable);
  addDockWidget(Qt::BottomDockWidgetArea, dock);
  if (m_firstBottomTab) tabifyDockWidget(m_firstBottomTab, dock); else m_firstBottomTab = dock;
  return dock;
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
    openData(true, dataAt(path));
  } else {
    openFile(path);
  }
}

}  // namespace scalpel::ui

namespace scalpel::ui {

bool MainWindow::canTrain() {
  if (m_inspection.path.empty() || !m_inspection.ok) {
    showError("Nothing to train", "Open a model first (File ▸ Open Model…).");
    return false;
  }
  if (!m_targetData.ok) {
    showError("No target data", "Open the data to tune on first (File ▸ Open Target Image Folder… or CSV…).");
    return false;
  }
  if (m_comparing) {
    showError("A comparison is running", "Wait for it to finish, or Stop it in the Compare tab.");
    return false;
  }
  return true;
}

void MainWindow::requestRun(const QString& strategy, const TrainOptions& options) {
  Q_EMIT requestTraining(QString::fromStdString(m_inspection.path), strategy,
                         strategy == "manual" ? m_freeze->plan() : m_plan, options);
}

void MainWindow::startTraining(const QString& strategy, const TrainOptions& options) {
  if (!canTrain()) return;
  m_training->setRunning(true);
  if (auto* dock = findChild<QDockWidget*>("trainingDock")) dock->raise();
  if (m_trainProcesses > 1) {
    startLocalJob(strategy, options);
    return;
  }
  statusBar()->showMessage("Training …");
  requestRun(strategy, options);
}

void MainWindow::onTrainingFinished(const FineTuneRun& run, const QString& planError) {
  m_training->onFinished(run, planError);
  const bool ok = planError.isEmpty() && run.result.tunedModel != nullptr;
  if (!planError.isEmpty()) {
    showError("Cannot train", planError);
  } else if (!run.result.ok && !run.result.cancelled) {
    showError("Training stopped", QString::fromStdString(run.result.error));
  }
  if (ok) m_lastRun = run;
  if (!run.result.device.empty()) m_deviceLabel->setText(QString::fromStdString("device: " + run.result.device));
  enableRunActions();
  if (ok) {
    m_sessionRuns.push_back(SessionRun{run.report.plan.strategy, {}, run.report});
    markDirty();
  }
  statusBar()->showMessage(ok ? "Training finished: File ▸ Export Tuned Model… saves the result" : "Training did not finish");
  Q_EMIT trainingFinished(ok);
}

QString MainWindow::exportTunedModel(const QString& path) {
  if (!m_lastRun || !m_lastRun->result.tunedModel) {
    const QString error = "There is no tuned model yet: train first (Training ▸ Train).";
    showError("Nothing to export", error);
    return error;
  }
  return exportRun(*m_lastRun, path);
}

QString MainWindow::exportRun(const FineTuneRun& run, const QString& path) {
  std::string problem = scalpel::exportTunedModel(*run.result.tunedModel, runReportToJson(run.report), path.toStdString());
  const QFileInfo info(path);
  const QString folder = info.dir().filePath(info.completeBaseName() + "-report");
  if (problem.empty()) problem = writeReportFolder(run.report, folder.toStdString());
  if (!problem.empty()) {
    showError("Cannot export", QString::fromStdString(problem) + "\n\nNothing was overwritten; choose another place.");
    return QString::fromStdString(problem);
  }
  statusBar()->showMessage(QString("Exported %1 and its report in %2").arg(path, folder));
  // The session remembers where this run's tuned model went.
  for (auto& saved : m_sessionRuns) {
    if (saved.report.createdUtc == run.report.createdUtc && saved.name == run.report.plan.strategy) {
      saved.tunedModel = QFileInfo(path).absoluteFilePath().toStdString();
      markDirty();
    }
  }
  return {};
}

void MainWindow::enableRunActions() {
  m_exportAction->setEnabled(m_lastRun.has_value());
  m_exportReportAction->setEnabled(m_lastRun.has_value());
}

QString MainWindow::exportReport(const QString& folder) {
  if (!m_lastRun) {
    const QString error = "There is no run to report on yet: train first (Training ▸ Train).";
    showError("Nothing to export", error);
    return error;
  }
  const std::string problem = writeReportFolder(m_lastRun->report, folder.toStdString());
  if (!problem.empty()) {
    showError("Cannot export the report", QString::fromStdString(problem) + "\n\nNothing was overwritten; choose another folder.");
    return QString::fromStdString(problem);
  }
  statusBar()->showMessage("Report written to " + folder);
  return {};
}

}  // namespace scalpel::ui

namespace scalpel::ui {

void MainWindow::setTrainable(const QVector<int>& nodes, bool trainable, const QString& what) {
  QVector<int> units;
  for (int node : nodes) units += m_freeze->unitsOf(node);
  if (units.isEmpty()) return;
  m_undo->push(new SetTrainableCommand(m_freeze, units, trainable, (trainable ? "Unfreeze " : "Freeze ") + what));
  m_training->setStrategy("manual");  // training now follows the marks
}

void MainWindow::acceptSuggestedPlan() {
  if (!m_diagnosis) {
    showError("No suggestion yet", "Analyse the target data first (Analysis ▸ Analyse Target Data).");
    return;
  }
  m_undo->push(new SetTrainableCommand(m_freeze, m_freeze->unitsOfPlan(m_plan), true,
                                       "Accept plan: " + QString::fromStdString(m_plan.explanation), true));
  m_training->setStrategy("manual");
  statusBar()->showMessage("Plan accepted: " + QString::fromStdString(m_plan.explanation));
}

}  // namespace scalpel::ui

namespace scalpel::ui {

void MainWindow::startComparison(const QStringList& strategies, const TrainOptions& options) {
  if (strategies.isEmpty()) {
    showError("Nothing to compare", "Tick at least one plan in the Compare tab.");
    return;
  }
  if (!canTrain()) return;
  m_compareQueue = strategies;
  m_compareOptions = options;
  m_comparing = true;
  m_compare->clear();
  m_compare->setRunning(true);
  m_training->setRunning(true);  // one run at a time: the Training tab's Train waits
  if (auto* dock = findChild<QDockWidget*>("compareDock")) dock->raise();
  runNextComparison();
}

void MainWindow::runNextComparison() {
  const int total = m_compare->runCount() + static_cast<int>(m_compareQueue.size());
  if (m_compareQueue.isEmpty()) {
    m_comparing = false;
    m_training->setRunning(false);
    const int best = m_compare->bestRow();
    const QString message = best >= 0 ? QString("Compared %1 plans: %2 is best on validation data.").arg(m_compare->runCount()).arg(m_compare->labelOf(best))
                                      : QString("No plan finished.");
    m_compare->finish(message);
    statusBar()->showMessage(message);
    Q_EMIT comparisonFinished();
    return;
  }
  const QString strategy = m_compareQueue.takeFirst();
  m_compare->beginRun(strategy);
  statusBar()->showMessage(QString("Comparing: run %1 of %2 …").arg(m_compare->runCount() + 1).arg(total));
  requestRun(strategy, m_compareOptions);
}

void MainWindow::onComparedRunFinished(const FineTuneRun& run, const QString& planError) {
  m_compare->addResult(run, planError);
  if (!run.result.device.empty()) m_deviceLabel->setText(QString::fromStdString("device: " + run.result.device));
  if (run.result.cancelled) m_compareQueue.clear();  // Stop ends the whole comparison
  runNextComparison();
}

void MainWindow::openComparedRun(int row) {
  if (row < 0 || row >= m_compare->runCount() || !m_compare->run(row).result.tunedModel) return;
  m_lastRun = m_compare->run(row);
  m_training->showRun(*m_lastRun);
  enableRunActions();
  if (auto* dock = findChild<QDockWidget*>("trainingDock")) dock->raise();
  statusBar()->showMessage("Opened " + m_compare->labelOf(row) + ": File ▸ Export Tuned Model… saves it");
}

QString MainWindow::exportComparedRun(int row, const QString& path) {
  if (row < 0 || row >= m_compare->runCount() || !m_compare->run(row).result.tunedModel) {
    const QString error = "Choose a finished run in the Compare tab's table first.";
    showError("Nothing to export", error);
    return error;
  }
  return exportRun(m_compare->run(row), path);
}

void MainWindow::useComparedPlan(int row) {
  if (row < 0 || row >= m_compare->runCount()) return;
  const FreezePlan& plan = m_compare->run(row).report.plan;
  m_undo->push(new SetTrainableCommand(m_freeze, m_freeze->unitsOfPlan(plan), true,
                                       "Use plan: " + m_compare->labelOf(row), true));
  m_training->setStrategy("manual");
  QString message = "Plan of " + m_compare->labelOf(row) + " marked: Train uses it (strategy manual).";
  if (!plan.learningRateScale.empty()) message += " Its per-layer learning-rate scales are not kept: manual plans train at one rate.";
  statusBar()->showMessage(message);
}

}  // namespace scalpel::ui
