// SessionController: the model, the data, the analysis, the freeze marks and sessions.
// Training, Compare and export are in session_controller_runs.cpp.

#include "session_controller.h"

#include <QFileInfo>
#include <QTimer>
#include <QUndoStack>

#include "freeze_state.h"
#include "io/train_format.h"
#include "job_runner.h"
#include "layer_scores.h"
#include "model_worker.h"
#include "session_document.h"
#include "util/device_info.h"
#include "util/logging.h"

namespace scalpel::ui {

SessionController::SessionController(QObject* parent) : QObject(parent) {
  for (const int id : {qRegisterMetaType<ModelInspection>(), qRegisterMetaType<ModelChoices>(),
                       qRegisterMetaType<PretrainOptions>(), qRegisterMetaType<PretrainProgress>(),
                       qRegisterMetaType<PretrainResult>(), qRegisterMetaType<DataRequest>(),
                       qRegisterMetaType<DataSummary>(), qRegisterMetaType<ShiftSnapshot>(),
                       qRegisterMetaType<ShiftAnalysis>(), qRegisterMetaType<TrainOptions>(),
                       qRegisterMetaType<TrainEvent>(), qRegisterMetaType<FineTuneRun>(),
                       qRegisterMetaType<FreezePlan>(), qRegisterMetaType<GradientProfile>(),
                       qRegisterMetaType<Session>()}) {
    Q_UNUSED(id);
  }
  m_freeze = new FreezeState(this);
  m_undo = new QUndoStack(this);
  m_scores = new LayerScores(this);
  m_document = new SessionDocument(this);
  m_document->setCurrent([this](Session& session) { fillSession(session); });
  m_jobs = new JobRunner(this);
  connect(m_jobs, &JobRunner::event, this, &SessionController::trainingEvent);
  connect(m_jobs, &JobRunner::finished, this, &SessionController::onJobFinished);
  // A freeze edit is a change of the session (the restore's own marks are not).
  connect(m_undo, &QUndoStack::indexChanged, m_document, &SessionDocument::markDirty);
  m_device = QString::fromStdString(describeDevice(automaticDevice()));
  m_worker = new ModelWorker;
  m_worker->moveToThread(&m_thread);
  connect(&m_thread, &QThread::finished, m_worker, &QObject::deleteLater);
  connectWorker();
  m_thread.start();
}

SessionController::~SessionController() {
  m_undo->disconnect(this);  // the undo stack says "index changed" as it is destroyed
  m_undo->disconnect(m_document);
  m_worker->cancelFlag() = true;      // a pretraining or analysis stops within one batch
  m_worker->trainControl().cancel();  // and so does fine-tuning
  m_thread.quit();
  m_thread.wait();
}

void SessionController::connectWorker() {
  // Requests go over queued connections (the worker's thread runs them in order); results come
  // back the same way, each with its request's id.
  connect(this, &SessionController::requestOpen, m_worker, &ModelWorker::open);
  connect(this, &SessionController::requestPretrain, m_worker, &ModelWorker::pretrain);
  connect(this, &SessionController::requestData, m_worker, &ModelWorker::loadData);
  connect(this, &SessionController::requestPreview, m_worker, &ModelWorker::previewData);
  connect(this, &SessionController::requestAnalysis, m_worker, &ModelWorker::analyze);
  connect(this, &SessionController::requestTraining, m_worker, &ModelWorker::train);
  connect(m_worker, &ModelWorker::opened, this, &SessionController::onOpened);
  connect(m_worker, &ModelWorker::pretrainProgress, this,
          [this](quint64 request, const PretrainProgress& progress) {
            if (request == m_pretrainRequest) Q_EMIT pretrainProgress(progress);
          });
  connect(m_worker, &ModelWorker::pretrainFinished, this, &SessionController::onPretrained);
  connect(m_worker, &ModelWorker::dataLoaded, this, &SessionController::onDataLoaded);
  connect(m_worker, &ModelWorker::dataPreviewed, this,
          [this](quint64 request, const DataSummary& summary) {
            if (request == m_previewRequest) Q_EMIT dataPreviewed(summary);
          });
  connect(m_worker, &ModelWorker::analysisSnapshot, this,
          [this](quint64 request, const ShiftSnapshot& snapshot) {
            if (request == m_analysisRequest)
              m_scores->addSnapshot(snapshot);  // a stale analysis' snapshots go
          });
  connect(m_worker, &ModelWorker::analysisFinished, this, &SessionController::onAnalysed);
  connect(m_worker, &ModelWorker::gradientsMeasured, this,
          [this](quint64 request, const GradientProfile& gradients) {
            if (request != m_analysisRequest || !gradients.ok) return;
            m_scores->setGradients(gradients);
            m_scores->flush();
            Q_EMIT gradientsMeasured();
          });
  connect(m_worker, &ModelWorker::trainingStatus, this,
          [this](quint64 request, const QString& message) {
            if (request != m_trainingRequest) return;
            if (isComparing())
              Q_EMIT comparisonStatus(message);
            else
              Q_EMIT trainingStatus(message);
          });
  connect(m_worker, &ModelWorker::trainingEvent, this,
          [this](quint64 request, const TrainEvent& event) {
            if (request != m_trainingRequest) return;
            if (isComparing())
              Q_EMIT comparisonEvent(event);
            else
              Q_EMIT trainingEvent(event);
          });
  connect(m_worker, &ModelWorker::candidateEvaluated, this,
          [this](quint64 request, const QString& candidate, int round, const TrainEvent& event) {
            if (request == m_trainingRequest && !isComparing())
              Q_EMIT candidateEvaluated(candidate, round, event);
          });
  connect(m_worker, &ModelWorker::trainingFinished, this, &SessionController::onTrained);
}

void SessionController::say(const QString& message) { Q_EMIT statusChanged(message); }

void SessionController::fail(const QString& title, const QString& message, const QString& hint) {
  Q_EMIT errorRaised(title, message, hint);
}

QString SessionController::device() const { return m_device; }

// ---- The model.

void SessionController::openModel(const QString& path, const ModelChoices& choices) {
  m_modelRequest = ++m_nextRequest;
  m_modelPath = path;
  m_modelChoices = choices;
  say(QStringLiteral("Opening %1…").arg(QFileInfo(path).fileName()));
  Q_EMIT modelOpening(path);
  Q_EMIT requestOpen(m_modelRequest, path, choices);
}

void SessionController::reopenModel(const ModelChoices& choices) {
  if (m_modelPath.isEmpty()) {
    fail("No model", "Open a model first (File ▸ Open Model…).");
    return;
  }
  m_reanalyse = m_diagnosis.has_value() || m_analysing;
  openModel(m_modelPath, choices);
}

void SessionController::chooseArchitecture(const QString& name) {
  ModelChoices choices = m_modelChoices;
  choices.architecture = name.toStdString();
  reopenModel(choices);
}

void SessionController::setPreprocessing(const QString& preset, const std::vector<double>& mean,
                                         const std::vector<double>& std) {
  ModelChoices choices = m_modelChoices;
  choices.preprocessing = preset.toStdString();
  choices.mean = preset == "custom" ? mean : std::vector<double>{};
  choices.std = preset == "custom" ? std : std::vector<double>{};
  if (choices == m_modelChoices) return;
  reopenModel(choices);
}

void SessionController::useNewHead() {
  if (!m_data[0].ok || m_data[0].classNames.empty()) {
    fail("No classes to fit", "Open classified target data first (File ▸ Open Data…).");
    return;
  }
  ModelChoices choices = m_modelChoices;
  choices.newHeadClasses = m_data[0].classNames;
  reopenModel(choices);
}

QStringList SessionController::classesWithoutOutputs() const {
  if (!m_inspection.ok || !m_data[0].ok || m_data[0].classNames.empty()) return {};
  const auto& output = m_inspection.tree.node(0).outputShape;
  if (output.size() != 2 || output[1] == static_cast<std::int64_t>(m_data[0].classNames.size()))
    return {};
  QStringList names;
  for (const auto& name : m_data[0].classNames) names << QString::fromStdString(name);
  return names;
}

void SessionController::clearModel() {
  m_inspection = ModelInspection{};
  m_diagnosis.reset();
  m_plan = FreezePlan{};
  m_freeze->setTree(LayerTree());
  m_scores->setTree(LayerTree());
  m_undo->clear();
}

void SessionController::onOpened(quint64 request, const ModelInspection& inspection) {
  if (request != m_modelRequest) return;  // a newer request is on its way
  if (!inspection.ok && !inspection.candidates.empty()) {
    say("Choose the checkpoint's architecture");
    QStringList candidates;
    for (const auto& name : inspection.candidates) candidates << QString::fromStdString(name);
    Q_EMIT modelFailed(QString::fromStdString(inspection.error));
    Q_EMIT architectureChoiceNeeded(candidates);
    return;
  }
  if (!inspection.ok) {
    m_demoPending = false;
    m_reanalyse = false;
    m_restoring.reset();  // a session whose model does not open is not restored half-way
    m_document->setRestoring(false);
    say("Could not open the model");
    fail("Cannot open model", QString::fromStdString(inspection.error),
         "Choose another file with File ▸ Open Model…, or drop one on this window.");
    Q_EMIT modelFailed(QString::fromStdString(inspection.error));
    return;
  }
  m_inspection = inspection;
  m_diagnosis.reset();  // it was about the previous model
  m_plan = FreezePlan{};
  m_scores->setTree(inspection.tree);
  m_freeze->setTree(inspection.tree);
  m_undo->clear();
  const QString file = QFileInfo(QString::fromStdString(inspection.path)).fileName();
  say(QStringLiteral("%1: %2 modules in %3 blocks, %4 parameters%5")
          .arg(file)
          .arg(inspection.tree.size() - 1)
          .arg(inspection.tree.blocks().size())
          .arg(QString::fromStdString(formatCount(inspection.tree.node(0).totalParameters)))
          .arg(inspection.warnings.empty()
                   ? QString()
                   : QStringLiteral(" — %1 warning(s), see the details pane")
                         .arg(inspection.warnings.size())));
  logger("ui")->info("showing {}", inspection.path);
  Q_EMIT modelOpened();
  Q_EMIT diagnosisChanged();
  if (m_restoring) {
    applyRestoredSession();
  } else {
    SessionDocument::addRecentFile(QString::fromStdString(inspection.path));
    m_document->markDirty();
  }
  if (m_reanalyse) {  // the same data, seen by the model as now opened
    m_reanalyse = false;
    if (m_data[0].ok) analyze(m_analysedWithSource && m_data[1].ok);
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

void SessionController::openDemo(const QString& untrained, const QString& trained,
                                 const PretrainOptions& options) {
  m_demoPending = true;  // its data follows once the model is open
  if (QFileInfo::exists(trained)) {
    openModel(trained);
    return;
  }
  if (!QFileInfo::exists(untrained)) {
    m_demoPending = false;
    fail("Cannot open the demo", QStringLiteral("The demo architecture %1 is missing — start the "
                                                "demo with scripts/run --demo, which makes it.")
                                     .arg(untrained));
    return;
  }
  m_pretrainRequest = ++m_nextRequest;
  say("Training the demo model…");
  Q_EMIT pretrainStarted();
  Q_EMIT requestPretrain(m_pretrainRequest, untrained, trained, options);
}

void SessionController::cancelPretraining() { m_worker->cancelFlag() = true; }

void SessionController::onPretrained(quint64 request, const PretrainResult& result,
                                     const QString& trained) {
  if (request != m_pretrainRequest) return;
  Q_EMIT pretrainEnded();
  if (result.cancelled) {
    m_demoPending = false;
    say("Demo training cancelled");
    return;
  }
  if (!result.ok) {
    m_demoPending = false;
    fail("Cannot train the demo model", QString::fromStdString(result.error));
    return;
  }
  say(QStringLiteral("Demo model trained: %1% test accuracy in %2 s")
          .arg(100 * result.testAccuracy, 0, 'f', 1)
          .arg(static_cast<int>(result.seconds)));
  Q_EMIT demoTrained(result.testAccuracy);
  openModel(trained);
}

// ---- The data.

DataRequest SessionController::sizedForModel(DataRequest request) const {
  // Images are read at the model's input size, and folders matched to the model's outputs.
  const auto& metadata = m_inspection.metadata;
  if (request.itemShape.empty() && metadata.inputShape.size() == 4) {
    request.itemShape.assign(metadata.inputShape.begin() + 1, metadata.inputShape.end());
    // Read at the resize, so the batches' centre crop is torchvision's.
    if (metadata.resize > request.itemShape[1])
      request.itemShape[1] = request.itemShape[2] = metadata.resize;
  }
  if (request.classNames.empty()) request.classNames = metadata.classNames;
  return request;
}

void SessionController::openData(bool target, const DataRequest& given) {
  const int role = target ? 0 : 1;
  m_dataAsked[role] = given;
  const DataRequest request = sizedForModel(given);
  m_dataRequest[role] = ++m_nextRequest;
  say(QStringLiteral("Loading %1…").arg(QString::fromStdString(request.describe())));
  const int workerRole = static_cast<int>(target ? DataRole::Target : DataRole::Source);
  Q_EMIT requestData(m_dataRequest[role], workerRole, request);
}

void SessionController::previewData(const DataRequest& request) {
  m_previewRequest = ++m_nextRequest;
  const DataRequest sized = sizedForModel(request);
  Q_EMIT requestPreview(m_previewRequest, sized);
}

void SessionController::onDataLoaded(quint64 request, int workerRole, const DataSummary& summary) {
  const bool target = workerRole == static_cast<int>(DataRole::Target);
  const int role = target ? 0 : 1;
  if (request != m_dataRequest[role]) return;
  const bool restoring = m_restoringData > 0;
  if (restoring && --m_restoringData == 0)
    QTimer::singleShot(0, this, &SessionController::finishRestoring);
  if (!summary.ok) {
    m_analyseDemo &= !target;
    say("Could not load the data");
    fail(target ? "Cannot open the target data" : "Cannot open the source data",
         QString::fromStdString(summary.error));
    return;
  }
  m_data[role] = summary;
  m_document->markDirty();
  say(QStringLiteral("%1: %2 items")
          .arg(QString::fromStdString(summary.description))
          .arg(summary.items));
  Q_EMIT dataLoaded(target);
  if (target) {
    if (const auto classes = classesWithoutOutputs(); !classes.isEmpty()) {
      Q_EMIT headMismatch(classes.size(),
                          static_cast<int>(m_inspection.tree.node(0).outputShape[1]));
    }
  }
  if (target && m_analyseDemo) {
    m_analyseDemo = false;
    analyze(false);
  }
}

// ---- The analysis.

void SessionController::analyze(bool useSource) {
  if (!m_inspection.ok) {
    fail("Nothing to analyse", "Open a model first (File ▸ Open Model…).");
    return;
  }
  if (!m_data[0].ok || (useSource && !m_data[1].ok)) {
    fail("Nothing to analyse", useSource ? "Open target and source data first."
                                         : "Open target data first (File ▸ Open Data…).");
    return;
  }
  m_diagnosis.reset();
  Q_EMIT diagnosisChanged();  // none until this analysis finishes
  m_analysedWithSource = useSource;
  m_analysing = true;
  m_analysisRequest = ++m_nextRequest;
  m_worker->supersedeAnalyses(m_analysisRequest);  // the one running stops at its next batch
  m_scores->clear();
  say("Analysing the target data…");
  Q_EMIT analysisStarted(
      QStringLiteral("Analysing %1 …").arg(QString::fromStdString(m_data[0].description)));
  Q_EMIT requestAnalysis(m_analysisRequest, useSource);
}

void SessionController::stopAnalysis() {
  if (m_analysing) m_worker->cancelFlag() = true;
}

void SessionController::onAnalysed(quint64 request, const ShiftAnalysis& analysis) {
  if (request != m_analysisRequest) return;  // a newer analysis replaced it
  m_analysing = false;
  m_scores->flush();
  if (!analysis.ok) {
    say(analysis.cancelled ? "Analysis stopped" : "The analysis did not finish");
    if (!analysis.cancelled)
      fail("Cannot analyse the target data", QString::fromStdString(analysis.error));
    Q_EMIT analysisFinished(false, "The analysis did not finish.");
    return;
  }
  m_diagnosis = diagnose(analysis, m_inspection.tree);
  planFreeze("auto", m_inspection.tree, *m_diagnosis, nullptr, m_plan);
  const auto& last = analysis.snapshots.back();
  const QString kind = QString::fromStdString(shiftKindName(m_diagnosis->kind));
  say(QStringLiteral("Diagnosis: %1").arg(kind));
  Q_EMIT diagnosisChanged();
  Q_EMIT analysisFinished(true, QStringLiteral("%1 (%2 items) against %3 — %4")
                                    .arg(QString::fromStdString(m_data[0].description))
                                    .arg(last.targetItems)
                                    .arg(QString::fromStdString(analysis.reference), kind));
}

QSet<int> SessionController::suggestedBlocks() const {
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

// ---- The freeze marks: every edit an undoable command; training then follows the marks.

void SessionController::setTrainable(const QVector<int>& nodes, bool trainable,
                                     const QString& what) {
  QVector<int> units;
  for (int node : nodes) units += m_freeze->unitsOf(node);
  if (units.isEmpty()) return;
  m_undo->push(new SetTrainableCommand(m_freeze, units, trainable,
                                       (trainable ? "Unfreeze " : "Freeze ") + what));
  setStrategy("manual");  // training now follows the marks
}

void SessionController::setBlockTrainable(int node, bool trainable) {
  const auto& tree = m_freeze->tree();
  if (tree.empty() || node <= 0 || node >= tree.size()) {
    fail(trainable ? "Unfreeze Block" : "Freeze Block",
         "Click a block or one of its layers in the diagram first: this freezes or unfreezes the "
         "whole block.");
    return;
  }
  const auto& block = tree.blocks().at(static_cast<size_t>(tree.blockOf(node)));
  setTrainable(QVector<int>(block.members.begin(), block.members.end()), trainable,
               QString::fromStdString(block.name));
}

void SessionController::acceptSuggestedPlan() {
  if (!m_diagnosis) {
    fail("No suggestion yet", "Analyse the target data first (Analysis ▸ Analyse Target Data).");
    return;
  }
  m_undo->push(new SetTrainableCommand(m_freeze, m_freeze->unitsOfPlan(m_plan), true,
                                       "Accept plan: " + QString::fromStdString(m_plan.explanation),
                                       true));
  setStrategy("manual");  // training now follows the marks
  say("Plan accepted: " + QString::fromStdString(m_plan.explanation));
}

void SessionController::resetPlan() {
  setTrainable({0}, true, "all layers (reset)");
  setStrategy("auto");
  say("Reset: every layer trains; the plan follows the advisor again (Ctrl+Z undoes)");
}

void SessionController::setStrategy(const QString& strategy) {
  Settings settings = m_settings;
  settings.strategy = strategy;
  setSettings(settings);
}

void SessionController::setSettings(const Settings& settings) {
  const bool same = settings.strategy == m_settings.strategy &&
                    settings.processes == m_settings.processes &&
                    settings.options == m_settings.options;
  m_settings = settings;
  m_worker->setDevice(settings.options.device);
  if (same) return;
  m_document->markDirty();
  Q_EMIT settingsChanged();
}

// ---- Sessions.

void SessionController::fillSession(Session& session) const {
  session.modelPath = m_inspection.ok ? m_inspection.path : std::string();
  session.modelChoices = m_modelChoices;
  if (m_data[0].ok) session.target = m_dataAsked[0];
  if (m_data[1].ok) session.source = m_dataAsked[1];
  session.reference = m_analysedWithSource ? "data" : "batchnorm";
  session.strategy = m_settings.strategy.toStdString();
  session.plan = m_freeze->tree().empty() ? FreezePlan{} : m_freeze->plan();
  session.options = m_settings.options;
}

void SessionController::newSession() {
  ++m_modelRequest;  // a model still being opened is no longer wanted
  m_restoring.reset();
  m_demoPending = m_analyseDemo = false;
  clearModel();
  m_data[0] = m_data[1] = DataSummary{};
  m_analysedWithSource = false;
  m_currentRun.reset();
  m_compared.clear();
  m_document->reset();
  Q_EMIT modelOpened();
  Q_EMIT diagnosisChanged();
  Q_EMIT currentRunChanged();
  say("New session: open a model to begin");
}

QString SessionController::openSession(const QString& path) {
  Session session;
  QStringList problems;
  const QString error = SessionDocument::read(path, session, problems);
  if (!error.isEmpty()) {
    fail("Cannot open the session", error,
         "Choose another session file with File ▸ Open Session….");
    return error;
  }
  newSession();
  SessionDocument::addRecentFile(path);
  m_document->adopt(session, path);
  if (!problems.isEmpty()) {
    fail("The session opened with problems", problems.join("\n"),
         "What could be found is open; open the missing files again from the File menu.");
  }
  if (session.modelPath.empty() || !QFileInfo::exists(QString::fromStdString(session.modelPath))) {
    say("Session opened without its model");
    Q_EMIT sessionRestored();
    return {};
  }
  m_restoring = session;
  m_document->setRestoring(true);
  openModel(QString::fromStdString(session.modelPath), session.modelChoices);
  return {};
}

void SessionController::applyRestoredSession() {
  const Session session = *m_restoring;
  m_restoring.reset();
  Settings settings;
  settings.strategy = QString::fromStdString(session.strategy);
  settings.options = session.options;
  settings.processes = m_settings.processes;
  setSettings(settings);
  if (!session.plan.trainable.empty() || session.plan.strategy == "manual") {
    // The marks as they were; not an edit the user can undo.
    SetTrainableCommand marks(m_freeze, m_freeze->unitsOfPlan(session.plan), true, "restore", true);
    marks.redo();
  }
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
  if (m_restoringData == 0) finishRestoring();
}

void SessionController::finishRestoring() {
  m_restoringData = 0;
  m_document->setRestoring(false);
  m_document->markClean();
  say("Session restored");
  Q_EMIT sessionRestored();
  // The analysis is not stored (it takes a second): run it again, so the heatmap, the colours
  // and the diagnosis are back as they were.
  const bool useSource = m_document->session().reference == "data";
  if (m_data[0].ok && (!useSource || m_data[1].ok)) analyze(useSource);
}

QString SessionController::saveSession(const QString& path) {
  const QString problem = m_document->save(path);
  if (!problem.isEmpty()) {
    fail("Cannot save the session",
         problem + "\n\nThe previous file, if any, is intact; choose another place.");
    return problem;
  }
  say("Session saved to " + path);
  return {};
}

bool SessionController::restoreAutosave() {
  if (!QFileInfo::exists(SessionDocument::autosavePath())) {
    fail("Nothing to restore",
         "There is no autosaved session yet: Scalpel saves one while you work.");
    return false;
  }
  return openSession(SessionDocument::autosavePath()).isEmpty();
}

void SessionController::autosave() { m_document->autosave(); }

}  // namespace scalpel::ui
