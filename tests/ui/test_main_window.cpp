// The main window offscreen, driven as a user would: open a real model, expand a block with the
// mouse, drop a file, open a file that is not a model. Saves screenshots into the build folder.

#include <algorithm>
#include <cmath>
#include <limits>

#include <QAbstractItemModelTester>
#include <QDir>
#include <QDockWidget>
#include <QElapsedTimer>
#include <QFileDialog>
#include <QLabel>
#include <QLineEdit>
#include <QMenuBar>
#include <QMessageBox>
#include <QMimeData>
#include <QPlainTextEdit>
#include <QProgressDialog>
#include <QPushButton>
#include <QSignalSpy>
#include <QTemporaryDir>
#include <QTextBrowser>
#include <QtTest>

#include <QUndoStack>
#include "block_item.h"
#include "data/idx_reader.h"
#include "data_dialog.h"
#include "details_pane.h"
#include "diagram_style.h"
#include "diagram_view.h"
#include "freeze_state.h"
#include "io/model_export.h"
#include "layer_diagram_scene.h"
#include "layer_row_item.h"
#include "layer_table_model.h"
#include "main_window.h"
#include "session_controller.h"
#include "session_document.h"
#include "shift_heatmap.h"
#include "support/reference.h"
#include "training_panel.h"

#include <QSettings>
#include <QStandardPaths>
#include <QStatusBar>
#include <QTimer>

#include <QProcess>
#include <QRadioButton>
#include <QSpinBox>
#include "io/session.h"
#include "run_on_dialog.h"

using scalpel::test::screenshot;
using scalpel::ui::BlockItem;
using scalpel::ui::MainWindow;
using scalpel::ui::SessionController;
using scalpel::ui::SessionDocument;

namespace {

// The longest time the GUI thread's event loop went without running a 5 ms timer: how long
// the window would have been frozen. Asserted only against the same meter on an idle event loop
// in the same run (these machines are noisy).
class StallMeter : public QObject {
 public:
  StallMeter() {
    m_timer.setInterval(5);
    QObject::connect(&m_timer, &QTimer::timeout, this,
                     [this] { m_longest = std::max(m_longest, m_clock.restart()); });
  }
  void start() {
    m_longest = 0;
    m_clock.start();
    m_timer.start();
  }
  qint64 stopMs() {
    m_timer.stop();
    return std::max(m_longest, m_clock.elapsed());
  }

 private:
  QTimer m_timer;
  QElapsedTimer m_clock;
  qint64 m_longest = 0;
};

// Clicks `button` in the question box that the next call (e.g. close()) is about to show.
void answer(QMessageBox::StandardButton button) {
  QTimer::singleShot(300, [button] {
    auto* box = qobject_cast<QMessageBox*>(QApplication::activeModalWidget());
    if (box && box->button(button)) box->button(button)->click();
  });
}

// Drags `file` onto the window and drops it there, as a file manager does.
void dropFile(MainWindow& window, const QString& file) {
  QMimeData data;
  data.setUrls({QUrl::fromLocalFile(file)});
  QDragEnterEvent enter(QPoint(50, 50), Qt::CopyAction, &data, Qt::LeftButton, Qt::NoModifier);
  QApplication::sendEvent(&window, &enter);
  QVERIFY(enter.isAccepted());
  QDropEvent drop(QPointF(50, 50), Qt::CopyAction, &data, Qt::LeftButton, Qt::NoModifier);
  QApplication::sendEvent(&window, &drop);
}

bool openAndWait(MainWindow& window, const QString& model) {
  QSignalSpy shown(window.session(), &SessionController::modelOpened);
  window.session()->openModel(scalpel::test::fixture(model));
  return shown.wait(120000);
}

}  // namespace

class TestMainWindow : public QObject {
  Q_OBJECT

 private Q_SLOTS:
  // Settings, recent files and the autosave go to a throw-away test location.
  void initTestCase() { QStandardPaths::setTestModeEnabled(true); }
  void diagramHasOneItemPerBlock();
  void clickingTheExpanderShowsLayers();
  void droppedFileOpens();
  void checkpointsOpenFromTheMenuAndByDrop();
  void newestRequestWins();
  void notAModelShowsADialog();
  void demoTrainsOnceThenOpensFromCache();
  void demoTrainingCanBeCancelled();
  void badTargetDataShowsADialog();
  void demoTrainsStopsAndExports();
  void freezeMarksTableAndUndoAgree();
  void deviceSettingIsRememberedAndShown();
  void sessionsAutosaveAndCloseAsks();
  void dataDialogPreviewsAndOpens();
  void regressionTrainsInTheWindow();
  void severalProcessesTrainAndJobsComeBack();
  void largeModelsStayResponsive();
};

void TestMainWindow::diagramHasOneItemPerBlock() {
  MainWindow window;
  window.show();
  QVERIFY(openAndWait(window, "resnet18.pt"));
  const auto& blocks = window.session()->inspection().tree.blocks();
  // stem (conv1, bn1, relu, maxpool), layer1-4 (layer4 with avgpool), fc.
  QCOMPARE(blocks.size(), size_t(6));
  QCOMPARE(window.diagram()->blockItems().size(), 6);
  int blockItemsInScene = 0;
  for (auto* item : window.diagram()->items())
    blockItemsInScene += dynamic_cast<BlockItem*>(item) != nullptr;
  QCOMPARE(blockItemsInScene, 6);
  // Blocks are stacked in execution order.
  const auto items = window.diagram()->blockItems();
  for (int b = 1; b < items.size(); ++b) QVERIFY(items[b]->y() > items[b - 1]->y());
  QVERIFY(window.windowTitle().startsWith("resnet18.pt"));
}

void TestMainWindow::clickingTheExpanderShowsLayers() {
  MainWindow window;
  window.resize(1180, 900);
  window.show();
  QVERIFY(QTest::qWaitForWindowExposed(&window));
  QVERIFY(openAndWait(window, "resnet18.pt"));
  auto* view = window.diagramView();
  auto* layer1 = window.diagram()->blockItems().at(1);
  auto* layer2 = window.diagram()->blockItems().at(2);
  const qreal layer2Before = layer2->y();
  QVERIFY(!layer1->isExpanded());

  const QPoint click = view->mapFromScene(layer1->mapToScene(layer1->expanderRect().center()));
  QTest::mouseClick(view->viewport(), Qt::LeftButton, {}, click);
  QVERIFY(layer1->isExpanded());
  // layer1 = 2 BasicBlocks of 5 layers each: 12 rows, with type and output shape.
  QCOMPARE(layer1->rows().size(), 12);
  QVERIFY(layer2->y() > layer2Before + 12 * 20);

  window.diagram()->blockItems().at(0)->setExpanded(true);  // the stem: its four layers
  QCOMPARE(window.diagram()->blockItems().at(0)->rows().size(), 4);

  // Clicking a row selects it and the details pane shows it.
  auto* row = layer1->rows().at(1);
  QTest::mouseClick(view->viewport(), Qt::LeftButton, {},
                    view->mapFromScene(row->mapToScene(row->boundingRect().center())));
  QVERIFY(row->isSelected());

  const QImage picture = window.grab().toImage();
  QVERIFY(picture.save(screenshot("main_window_resnet18.png")));
  QVERIFY(picture.width() >= 1000);
}

void TestMainWindow::droppedFileOpens() {
  MainWindow window;
  window.show();
  QSignalSpy shown(window.session(), &SessionController::modelOpened);
  dropFile(window, scalpel::test::fixture("mobilenet_v2.pt"));
  QVERIFY(shown.wait(120000));
  QCOMPARE(window.diagram()->blockItems().size(), 2);  // features, classifier
  window.diagram()->setAllExpanded(true);
  QVERIFY(window.diagram()->blockItems().at(0)->rows().size() > 150);
  QVERIFY(window.grab().save(screenshot("main_window_mobilenet_expanded.png")));
}

void TestMainWindow::checkpointsOpenFromTheMenuAndByDrop() {
  MainWindow window;
  window.resize(1280, 860);
  window.show();
  QVERIFY(QTest::qWaitForWindowExposed(&window));
  // File ▸ Open Model…, its dialog answered with a state dict torch.save wrote.
  const QString resnet = scalpel::test::fixture("checkpoints/resnet18.pth");
  QAction* open = nullptr;
  for (auto* action : window.menuBar()->actions().first()->menu()->actions()) {
    if (action->text().startsWith("&Open Model")) open = action;
  }
  QVERIFY(open);
  QSignalSpy shown(window.session(), &SessionController::modelOpened);
  open->trigger();
  auto* dialog = window.findChild<QFileDialog*>("openModelDialog");
  QVERIFY(dialog && dialog->isVisible());
  QVERIFY(dialog->nameFilters().join(" ").contains("*.safetensors"));
  dialog->selectFile(resnet);
  QMetaObject::invokeMethod(dialog, "accept");
  QVERIFY(shown.wait(120000));
  const auto& inspection = window.session()->inspection();
  QCOMPARE(inspection.metadata.architecture, std::string("resnet18"));
  QCOMPARE(window.diagram()->blockItems().size(), 6);  // stem, layer1-4, fc
  QVERIFY(window.details()->toPlainText().contains("rebuilt as torchvision's resnet18"));

  // A drop: an ImageNet checkpoint (1000 outputs), then Fashion-MNIST's 10 classes as the target.
  // The window offers a new head; accepted, the model opens again with one output per class.
  dropFile(window, scalpel::test::fixture("checkpoints/mobilenet_v3_small.pth"));
  QVERIFY(shown.wait(120000));
  QCOMPARE(window.session()->inspection().metadata.architecture, std::string("mobilenet_v3_small"));
  QCOMPARE(window.session()->inspection().tree.node(0).outputShape.back(), std::int64_t(1000));
  window.session()->openData(true,
                             scalpel::DataRequest{"fashion-mnist", "test", "", 3, 0, {}, {}, {}});
  QMessageBox* question = nullptr;
  QTRY_VERIFY_WITH_TIMEOUT((question = window.findChild<QMessageBox*>("newHeadQuestion")), 60000);
  QVERIFY(question->text().contains("10 classes, but the model gives 1000 outputs"));
  QVERIFY(window.grab().save(screenshot("main_window_new_head_offer.png")));
  question->button(QMessageBox::Yes)->click();
  QVERIFY(shown.wait(120000));
  const auto& reopened = window.session()->inspection();
  QCOMPARE(reopened.tree.node(0).outputShape.back(), std::int64_t(10));
  QCOMPARE(reopened.metadata.classNames.size(), size_t(10));
  QCOMPARE(window.session()->modelChoices().newHeadClasses.size(), size_t(10));
  QVERIFY(window.session()->classesWithoutOutputs().isEmpty());
  QVERIFY(window.details()->toPlainText().contains("replaced by a new head with 10 outputs"));
  QVERIFY(window.grab().save(screenshot("main_window_checkpoint.png")));
}

void TestMainWindow::newestRequestWins() {
  MainWindow window;
  QSignalSpy shown(window.session(), &SessionController::modelOpened);
  window.session()->openModel(scalpel::test::fixture("resnet18.pt"));
  window.session()->openModel(scalpel::test::fixture("small_cnn.pt"));
  QVERIFY(shown.wait(120000));
  QTest::qWait(300);  // the stale resnet18 result must not replace it either
  QCOMPARE(shown.count(), 1);
  QVERIFY(window.session()->inspection().path.find("small_cnn.pt") != std::string::npos);
  QVERIFY(QApplication::overrideCursor() == nullptr);  // both requests gave their busy cursor back
}

void TestMainWindow::notAModelShowsADialog() {
  MainWindow window;
  window.show();
  QVERIFY(openAndWait(window, "small_cnn.pt"));
  QSignalSpy failed(window.session(), &SessionController::modelFailed);
  window.session()->openModel(scalpel::test::fixture("not_a_model.zip"));
  QVERIFY(failed.wait(60000));
  QMessageBox* dialog = window.errorDialog();
  QVERIFY(dialog);
  QVERIFY(dialog->isVisible());
  QVERIFY2(dialog->text().contains("is a zip archive but not a TorchScript model"),
           qPrintable(dialog->text()));
  QVERIFY(dialog->text().contains("torch.jit.script(model).save"));
  QVERIFY(dialog->informativeText().contains("Open Model"));
  QVERIFY(dialog->grab().save(screenshot("error_dialog_not_a_model.png")));
  // The model that was open stays open (stem, block + pool, conv2 + bn2 + relu, head).
  QCOMPARE(window.diagram()->blockItems().size(), 4);
  dialog->accept();
}

void TestMainWindow::demoTrainsOnceThenOpensFromCache() {
  QTemporaryDir dir;
  const QString untrained = scalpel::test::fixture("demo_net.pt");
  const QString trained = dir.filePath("demo_model.pt");
  scalpel::PretrainOptions options;  // a small budget: the real demo trains 3 full epochs
  options.epochs = 1;
  options.trainLimit = 3000;
  options.testLimit = 500;

  MainWindow window;
  window.show();
  QSignalSpy finished(window.session(), &SessionController::demoTrained);
  QSignalSpy shown(window.session(), &SessionController::modelOpened);
  QSignalSpy analysed(window.session(), &SessionController::analysisFinished);
  window.session()->openDemo(untrained, trained, options);
  QVERIFY(window.trainingDialog());
  QVERIFY(window.trainingDialog()->isVisible());
  // The progress bar moves while the worker trains.
  QTRY_VERIFY_WITH_TIMEOUT(!window.trainingDialog() || window.trainingDialog()->value() > 0, 60000);
  if (window.trainingDialog()) {
    QVERIFY(window.trainingDialog()->labelText().contains("epoch 1 of 1"));
    QVERIFY(window.trainingDialog()->grab().save(screenshot("demo_first_run_training.png")));
  }
  QVERIFY(shown.wait(120000));
  QCOMPARE(finished.count(), 1);
  QVERIFY(finished.first().first().toDouble() > 0.3);
  QVERIFY(QFile::exists(trained));
  QVERIFY(!window.trainingDialog());
  QCOMPARE(window.diagram()->blockItems().size(), 5);  // stem, layer1, layer2, layer3 + pool, fc
  QCOMPARE(window.session()->inspection().metadata.classNames.size(), size_t(10));

  // The demo's data follows: noisy test images as the target, clean training images as source.
  QTRY_VERIFY_WITH_TIMEOUT(window.session()->targetData().ok && window.session()->sourceData().ok,
                           60000);
  // Every image of each split (10000 and 60000; scripts/sanitize thread reads a subset of them).
  const auto itemsOf = [](const char* split) {
    const auto read = scalpel::readFashionMnist(split);
    return read.dataset ? read.dataset->size() : 0;
  };
  QCOMPARE(window.session()->targetData().items, itemsOf("test"));
  QCOMPARE(window.session()->targetData().description,
           std::string("fashion-mnist/test + gaussian-noise (severity 5)"));
  QCOMPARE(window.session()->sourceData().items, itemsOf("train"));
  QCOMPARE(window.session()->targetData().preview.height,
           2 * (56 + 2) + 2);  // clean over noisy, 2× scale

  // Then the demo analyses its target: the heatmap fills in, the diagnosis and plan appear.
  QVERIFY(analysed.count() > 0 || analysed.wait(120000));
  QCOMPARE(window.heatmap()->layerCount(), 9);   // the inputs of the demo's nine BatchNorms
  QCOMPARE(window.heatmap()->batchCount(), 20);  // 20 batches of 100 noisy test images
  scalpel::test::figure("window.first_batchnorm_log10_floor_multiple",
                        window.heatmap()->cell(19, 0));
  QVERIFY(window.heatmap()->cell(19, 0) >= 1.5);  // first BatchNorm: ≥ 30× the noise floor
  QVERIFY(window.session()->diagnosis().has_value());
  QCOMPARE(window.session()->diagnosis()->kind, scalpel::ShiftKind::InputLevel);
  QVERIFY(window.findChild<QTextBrowser*>()->toPlainText().contains("Diagnosis: input-level"));
  QVERIFY(window.grab().save(screenshot("demo_with_data.png")));

  // Another model: the diagnosis and the heatmap were about the demo, so they go.
  QVERIFY(openAndWait(window, "small_cnn.pt"));
  QVERIFY(!window.session()->diagnosis().has_value());
  QCOMPARE(window.heatmap()->batchCount(), 0);

  // The next start opens the cached model at once.
  MainWindow again;
  QSignalSpy shownAgain(again.session(), &SessionController::modelOpened);
  again.session()->openDemo(untrained, trained, options);
  QVERIFY(!again.trainingDialog());
  QVERIFY(shownAgain.wait(60000));
}

void TestMainWindow::demoTrainingCanBeCancelled() {
  QTemporaryDir dir;
  const QString trained = dir.filePath("demo_model.pt");
  MainWindow window;
  window.show();
  window.session()->openDemo(scalpel::test::fixture("demo_net.pt"), trained,
                             {});  // the full budget
  QVERIFY(window.trainingDialog());
  QTest::qWait(300);
  auto* cancel = window.trainingDialog()->findChild<QPushButton*>();
  QVERIFY(cancel);
  QTest::mouseClick(cancel, Qt::LeftButton);
  QTRY_VERIFY_WITH_TIMEOUT(!window.trainingDialog(), 30000);
  QTRY_VERIFY_WITH_TIMEOUT(window.statusBar()->currentMessage().contains("cancelled"), 30000);
  QVERIFY(!QFile::exists(trained));
  // A missing architecture is an error dialog, not a crash.
  window.session()->openDemo(dir.filePath("missing.pt"), dir.filePath("also_missing.pt"));
  QVERIFY(window.errorDialog());
  QVERIFY(window.errorDialog()->text().contains("scripts/run --demo"));
}

void TestMainWindow::badTargetDataShowsADialog() {
  QTemporaryDir dir;
  QDir().mkpath(dir.filePath("empty_class/cat"));
  MainWindow window;
  window.show();
  QSignalSpy failed(window.session(), &SessionController::dataLoaded);
  window.session()->openData(
      true,
      scalpel::DataRequest{dir.filePath("empty_class").toStdString(), "test", {}, 3, 0, {}, {}});
  QTRY_VERIFY_WITH_TIMEOUT(window.errorDialog() != nullptr, 30000);
  QVERIFY2(window.errorDialog()->text().contains("no readable images"),
           qPrintable(window.errorDialog()->text()));
  QCOMPARE(failed.count(), 0);
  QVERIFY(!window.session()->targetData().ok);
}

// The analyst's journey after the analysis: Train with the advisor's plan while the curves move,
// Stop a second run midway, export the tuned model with its report.
void TestMainWindow::demoTrainsStopsAndExports() {
  MainWindow window;
  window.resize(1280, 900);
  window.show();
  QSignalSpy analysed(window.session(), &SessionController::analysisFinished);
  StallMeter stalls;
  stalls.start();
  window.session()->openDemo(scalpel::test::fixture("demo_net.pt"), scalpel::test::demoModel());
  QVERIFY(analysed.wait(180000));
  const qint64 analysisStall = stalls.stopMs();
  // The layer table shows each layer's shift and, once gradients are measured, its RGN.
  QSignalSpy gradients(window.session(), &SessionController::gradientsMeasured);
  QVERIFY(gradients.count() > 0 || gradients.wait(60000));
  auto* table = window.layerTable();
  bool shiftShown = false, rgnShown = false;
  for (int row = 0; row < table->rowCount(); ++row) {
    shiftShown |= table->data(table->index(row, scalpel::ui::LayerTableModel::Shift), Qt::UserRole)
                      .toDouble() > 0;
    rgnShown |=
        table->data(table->index(row, scalpel::ui::LayerTableModel::Rgn), Qt::UserRole).toDouble() >
        0;
  }
  QVERIFY(shiftShown);
  QVERIFY(rgnShown);
  // The diagram is coloured by shift, with its key above it; tooltips give the score and RGN.
  const auto& nodes = window.session()->freezeState()->tree();
  QVERIFY(window.diagramView()->legendVisible());
  QVERIFY(window.diagram()->shiftLevel(*nodes.find("stem")) >= 1.5);  // input-level: ≥ 30× at once
  QVERIFY(std::isnan(window.diagram()->shiftLevel(*nodes.find("fc"))));  // no BatchNorm feeds it
  // The advisor's plan (stem + layer1) is outlined in the diagram before anyone accepts it.
  QVERIFY(window.diagram()->isSuggested(0));
  QVERIFY(window.diagram()->isSuggested(1));
  QVERIFY(!window.diagram()->isSuggested(2));
  // ... and named in the Training tab, where plan "auto" will train it.
  QCOMPARE(window.trainingPanel()->strategy(), QString("auto"));
  QVERIFY2(window.trainingPanel()->planHint().startsWith(
               "Plan auto: Tries the advisor's stem, layer1 against its neighbours"),
           qPrintable(window.trainingPanel()->planHint()));
  const QString stemTip = window.diagram()->blockItems().front()->toolTip();
  QVERIFY2(stemTip.contains("noise floor") && stemTip.contains("RGN"), qPrintable(stemTip));
  // The bars beside the heatmap: the shift per layer, then RGN and SNR per module.
  auto* heatmap = window.heatmap();
  QCOMPARE(heatmap->barValues().size(), 9);
  QCOMPARE(heatmap->barValues().front(), heatmap->cell(19, 0));
  heatmap->setMetric(scalpel::ui::ShiftHeatmap::Rgn);
  QVERIFY(heatmap->barLabels().contains("fc"));
  const auto rgnBars = heatmap->barValues();
  QVERIFY(*std::max_element(rgnBars.begin(), rgnBars.end()) > 0);
  QVERIFY(window.grab().save(screenshot("demo_rgn_bars.png")));
  heatmap->setMetric(scalpel::ui::ShiftHeatmap::Snr);
  QCOMPARE(heatmap->barLabels().size(), heatmap->barValues().size());
  const auto snrBars = heatmap->barValues();
  QVERIFY(*std::min_element(snrBars.begin(), snrBars.end()) >= 0);
  heatmap->setMetric(scalpel::ui::ShiftHeatmap::ActivationShift);
  auto* panel = window.trainingPanel();
  QCOMPARE(panel->strategy(), QString("auto"));
  panel->setEpochs(3);
  QSignalSpy finished(window.session(), &SessionController::trainingFinished);
  auto* train = panel->findChild<QPushButton*>();  // the first button is Train
  QCOMPARE(train->text(), QString("Train"));
  stalls.start();
  QTest::mouseClick(train, Qt::LeftButton);
  QVERIFY(!train->isEnabled());
  // The candidates' curves, then the winner's, move during the run.
  QTRY_VERIFY_WITH_TIMEOUT(panel->candidateCurves() > 0, 300000);
  QTRY_VERIFY_WITH_TIMEOUT(panel->trainingPoints() > 3, 400000);
  QVERIFY(finished.wait(400000));
  qInfo(
      "longest event-loop stall: %lld ms while opening and analysing the demo, %lld ms while "
      "training it (target < 50 ms)",
      analysisStall, stalls.stopMs());
  QCOMPARE(finished.first().first().toBool(), true);
  QCOMPARE(panel->evaluationPoints(), 3);
  // Plan auto tried its candidates first: each short run is a curve of its own under the winner's.
  const auto& run = *window.session()->currentRun();
  const auto& search = run.report.search;
  QVERIFY(search.chosen >= 0);
  QVERIFY2(panel->candidateCurves() >= int(search.candidates.size()),
           qPrintable(QString::number(panel->candidateCurves())));
  // The gradient-norm map has a column per step: the trained blocks have norms, frozen ones none.
  QVERIFY(panel->gradientSteps() > 3);
  int blocksWithNorms = 0;
  for (int b = 0; b < 5; ++b) blocksWithNorms += std::isnan(panel->gradientNorm(1, b)) ? 0 : 1;
  QVERIFY(blocksWithNorms > 0);
  QVERIFY2(panel->resultText().contains("Tried " + QString::number(search.candidates.size()) +
                                        " plans on the validation split"),
           qPrintable(panel->resultText()));
  QVERIFY(panel->resultText().contains("test accuracy"));
  QVERIFY2(panel->resultText().contains("source accuracy"), qPrintable(panel->resultText()));
  // The winner's run went on from its last short run (one that trains anything keeps one), and
  // its curves still start at the first step.
  if (!run.report.plan.trainable.empty()) {
    QVERIFY(run.result.resumedEpochs > 0);
    QCOMPARE(panel->trainingPoints(), int(run.result.steps));
    QVERIFY2(panel->resultText().contains("the search's last run"),
             qPrintable(panel->resultText()));
  }
  scalpel::test::figure("window.auto_gain",
                        run.result.testAfter.accuracy - run.result.testBefore.accuracy);
  QVERIFY(run.result.testAfter.accuracy > run.result.testBefore.accuracy + 0.1);
  QVERIFY(window.grab().save(screenshot("demo_trained.png")));
  // The log panel heard the trainer (from the worker thread).
  QTRY_VERIFY_WITH_TIMEOUT(
      window.findChild<QPlainTextEdit*>("logPanel")->toPlainText().contains("[train]"), 5000);
  QVERIFY(window.statusBar()->findChild<QLabel*>() != nullptr);

  QTemporaryDir dir;
  const QString path = dir.filePath("tuned.pt");
  QCOMPARE(window.session()->exportTunedModel(path), QString());
  QVERIFY(QFile::exists(dir.filePath("tuned-report/report.md")));
  QVERIFY(QFile::exists(dir.filePath("tuned-report/curves.png")));
  std::string report;
  QCOMPARE(QString::fromStdString(scalpel::readEmbeddedReport(path.toStdString(), report)),
           QString());
  QVERIFY(report.find("\"stem\"") != std::string::npos);
  // A failed export says so and keeps the previous file.
  QVERIFY(!window.session()->exportTunedModel(path + "/inside.pt").isEmpty());
  QTRY_VERIFY_WITH_TIMEOUT(window.errorDialog() != nullptr, 5000);
  window.errorDialog()->close();
  // File ▸ Export Report… writes the report alone.
  QCOMPARE(window.session()->exportReport(dir.filePath("report-only")), QString());
  QVERIFY(QFile::exists(dir.filePath("report-only/report.md")));

  // Accepting the advisor's plan marks it in the diagram and the table, and training follows it.
  window.session()->acceptSuggestedPlan();
  const auto& tree = window.session()->freezeState()->tree();
  QCOMPARE(window.session()->freezeState()->stateOf(*tree.find("stem")), Qt::Checked);
  QCOMPARE(window.session()->freezeState()->stateOf(*tree.find("layer1")), Qt::Checked);
  QCOMPARE(window.session()->freezeState()->stateOf(*tree.find("layer2")), Qt::Unchecked);
  QCOMPARE(window.session()->freezeState()->stateOf(*tree.find("fc")), Qt::Unchecked);
  QCOMPARE(panel->strategy(), QString("manual"));
  const auto trainable = window.session()->freezeState()->plan().trainable;
  QCOMPARE(trainable.front(), std::string("stem.0"));
  QVERIFY(std::find(trainable.begin(), trainable.end(), "layer1.conv1") != trainable.end());
  QVERIFY(std::find(trainable.begin(), trainable.end(), "layer2.conv1") == trainable.end());

  // Save the session and open it in a new window: the same model, data, marks, settings and runs.
  const QString sessionFile = dir.filePath("journey.json");
  QVERIFY(window.session()->document()->isDirty());
  QCOMPARE(window.session()->saveSession(sessionFile), QString());
  QVERIFY(!window.session()->document()->isDirty());
  QCOMPARE(window.session()->document()->path(), sessionFile);
  {
    MainWindow reopened;
    reopened.show();
    QSignalSpy restored(reopened.session(), &SessionController::sessionRestored);
    QCOMPARE(reopened.session()->openSession(sessionFile), QString());
    QVERIFY(restored.wait(120000));
    QCOMPARE(reopened.session()->inspection().path, window.session()->inspection().path);
    QCOMPARE(reopened.session()->targetData().description,
             window.session()->targetData().description);
    QCOMPARE(reopened.session()->targetData().items, window.session()->targetData().items);
    QCOMPARE(reopened.session()->freezeState()->plan().trainable,
             window.session()->freezeState()->plan().trainable);
    QCOMPARE(reopened.trainingPanel()->strategy(), QString("manual"));
    QCOMPARE(reopened.trainingPanel()->options().epochs, 3);
    const auto runs = reopened.session()->document()->session().runs;
    QCOMPARE(runs.size(), size_t(1));
    QCOMPARE(QString::fromStdString(runs.front().tunedModel), QFileInfo(path).absoluteFilePath());
    QCOMPARE(runs.front().report.testAfter.accuracy, run.report.testAfter.accuracy);
    QVERIFY(!reopened.session()->document()->isDirty());
    QCOMPARE(reopened.session()->undoStack()->count(), 0);  // restoring is not an edit
    // The analysis runs again: heatmap, colours and diagnosis come back.
    QSignalSpy reanalysed(reopened.session(), &SessionController::analysisFinished);
    QVERIFY(reanalysed.wait(120000));
    QCOMPARE(reopened.heatmap()->batchCount(), 20);
    QCOMPARE(reopened.session()->diagnosis()->kind, scalpel::ShiftKind::InputLevel);
    QVERIFY(!reopened.session()->document()->isDirty());
    QVERIFY(reopened.grab().save(screenshot("session_reopened.png")));
  }

  // Stop: a long run ends within a batch, keeping the best state so far.
  panel->setEpochs(200);
  finished.clear();
  QTest::mouseClick(train, Qt::LeftButton);
  QTRY_VERIFY_WITH_TIMEOUT(panel->trainingPoints() > 2, 120000);
  // Closing during training asks first; No keeps the window and the run.
  answer(QMessageBox::No);
  QVERIFY(!window.close());
  QVERIFY(panel->isRunning());
  auto buttons = panel->findChildren<QPushButton*>();
  QPushButton* stop = nullptr;
  for (auto* button : buttons)
    if (button->text() == "Stop") stop = button;
  QVERIFY(stop && stop->isEnabled());
  QTest::mouseClick(stop, Qt::LeftButton);
  QVERIFY(finished.wait(60000));
  QVERIFY(window.session()->currentRun()->result.cancelled);
  QVERIFY(train->isEnabled());
}

// A freeze toggle in the diagram shows in the table and the other way round; Ctrl+Z undoes both.
void TestMainWindow::freezeMarksTableAndUndoAgree() {
  MainWindow window;
  window.resize(1280, 900);
  window.show();
  QSignalSpy shown(window.session(), &SessionController::modelOpened);
  window.session()->openModel(scalpel::test::demoModel());
  QVERIFY(shown.wait(60000));
  auto* state = window.session()->freezeState();
  auto* table = window.layerTable();
  QAbstractItemModelTester tester(table, QAbstractItemModelTester::FailureReportingMode::QtTest);
  const auto& tree = state->tree();
  QCOMPARE(state->stateOf(0), Qt::Checked);  // everything trains until a plan says otherwise
  QCOMPARE(table->rowCount(), tree.size() - 1);
  // The line above the curves says what Train trains: with "auto" and no analysis yet, not the
  // ticks.
  auto* training = window.trainingPanel();
  QCOMPARE(training->strategy(), QString("auto"));
  QVERIFY2(training->planHint().startsWith("Plan auto: Analyses the target data") &&
               training->planHint().contains("only with the manual plan"),
           qPrintable(training->planHint()));
  const auto rowOf = [&](const std::string& name) {
    for (int row = 0; row < table->rowCount(); ++row) {
      if (tree.node(table->nodeOfRow(row)).name == name) return row;
    }
    return -1;
  };
  const auto tick = [&](const std::string& name) {
    return table
        ->data(table->index(rowOf(name), scalpel::ui::LayerTableModel::Trainable),
               Qt::CheckStateRole)
        .value<Qt::CheckState>();
  };

  // Click the stem block's mark in the diagram.
  auto* view = window.diagramView();
  auto* stem = window.diagram()->blockItems().front();
  const QRectF mark = scalpel::ui::DiagramStyle::freezeMarkRect(
      scalpel::ui::DiagramStyle::kBlockWidth, scalpel::ui::DiagramStyle::kHeaderHeight);
  const QPoint at = view->mapFromScene(stem->mapToScene(mark.center()));
  QTest::mouseClick(view->viewport(), Qt::LeftButton, {}, at);
  QCOMPARE(state->stateOf(*tree.find("stem")), Qt::Unchecked);
  QCOMPARE(tick("stem.0"), Qt::Unchecked);  // the table agrees
  QCOMPARE(tick("stem"), Qt::Unchecked);
  QCOMPARE(tick("layer1"), Qt::Checked);
  QCOMPARE(state->stateOf(0), Qt::PartiallyChecked);

  // Untick fc in the table: the diagram's state agrees.
  QVERIFY(table->setData(table->index(rowOf("fc"), scalpel::ui::LayerTableModel::Trainable),
                         Qt::Unchecked, Qt::CheckStateRole));
  QCOMPARE(state->stateOf(*tree.find("fc")), Qt::Unchecked);
  QCOMPARE(training->strategy(), QString("manual"));
  // Now the ticks are the plan: stem's two layers and fc are not among them (the demo has 19).
  const int layers = static_cast<int>(state->allUnits().size());
  QCOMPARE(layers, 19);
  QCOMPARE(
      training->planHint(),
      QString("Plan manual: Trains the %1 of %2 layers ticked in the diagram and the layer table.")
          .arg(layers - 3)
          .arg(layers));
  training->setStrategy("last");
  QCOMPARE(training->planHint(), QString("Plan last: Trains only the last block. The ticks in the "
                                         "diagram count only with the manual plan."));
  training->setStrategy("manual");
  window.diagram()->blockItems()[1]->setExpanded(true);
  QVERIFY(window.grab().save(screenshot("freeze_marks.png")));
  window.findChild<QDockWidget*>("layersDock")->raise();
  QVERIFY(window.grab().save(screenshot("layer_table.png")));

  // Undo both, redo one.
  QCOMPARE(window.session()->undoStack()->count(), 2);
  window.session()->undoStack()->undo();
  window.session()->undoStack()->undo();
  QCOMPARE(state->stateOf(0), Qt::Checked);
  QCOMPARE(tick("stem.0"), Qt::Checked);
  window.session()->undoStack()->redo();
  QCOMPARE(tick("stem.0"), Qt::Unchecked);
  QCOMPARE(tick("fc"), Qt::Checked);
  QCOMPARE(window.session()->undoStack()->undoText(), QString("Freeze stem"));

  // Analysis ▸ Reset Plan: every layer trains again, undoably.
  window.session()->resetPlan();
  QCOMPARE(state->stateOf(0), Qt::Checked);
  QCOMPARE(window.trainingPanel()->strategy(), QString("auto"));
  window.session()->undoStack()->undo();
  QCOMPARE(tick("stem.0"), Qt::Unchecked);
}

// The device chosen in the Training tab goes into every run's options, shows in the status bar,
// and a new window starts with it.
void TestMainWindow::deviceSettingIsRememberedAndShown() {
  {
    MainWindow window;
    window.trainingPanel()->setDevice("cpu");
    QCOMPARE(window.trainingPanel()->options().device, std::string("cpu"));
    QCOMPARE(window.trainingPanel()->options().precision, std::string("fp32"));
  }
  MainWindow again;
  QCOMPARE(again.trainingPanel()->device(), QString("cpu"));
  bool shown = false;
  for (auto* l : again.statusBar()->findChildren<QLabel*>())
    shown |= l->text().startsWith("device: cpu (");
  QVERIFY(shown);
  again.trainingPanel()->setDevice("cuda:7");  // not here: falls back to automatic
  QCOMPARE(again.trainingPanel()->device(), QString("auto"));
}

// The work is autosaved; a corrupt autosave is refused with a message; closing with unsaved
// changes asks (Cancel keeps the window open); Freeze Block, recent files and the method help.
void TestMainWindow::sessionsAutosaveAndCloseAsks() {
  QFile::remove(SessionDocument::autosavePath());
  MainWindow window;
  window.resize(1280, 900);
  window.show();
  QVERIFY(openAndWait(window, "small_cnn.pt"));
  QVERIFY(window.session()->document()->isDirty());
  QVERIFY(window.windowTitle().contains("small_cnn.pt"));
  QTRY_VERIFY_WITH_TIMEOUT(QFile::exists(SessionDocument::autosavePath()), 10000);
  scalpel::Session saved;
  QVERIFY(scalpel::loadSession(SessionDocument::autosavePath().toStdString(), saved).ok);
  QCOMPARE(QString::fromStdString(saved.modelPath), scalpel::test::fixture("small_cnn.pt"));
  QVERIFY(QSettings()
              .value("recentFiles")
              .toStringList()
              .contains(scalpel::test::fixture("small_cnn.pt")));

  // Freeze Block: the block of the layer last clicked, undoable.
  const auto& tree = window.session()->freezeState()->tree();
  int block = 1;
  while (tree.blocks().at(block).totalParameters == 0) ++block;
  const auto& members = tree.blocks().at(block).members;
  auto* item = window.diagram()->blockItems().at(block);
  auto* view = window.diagramView();
  QTest::mouseClick(view->viewport(), Qt::LeftButton, {},
                    view->mapFromScene(item->mapToScene(QPointF(200, 30))));
  window.setSelectedBlockTrainable(false);
  QCOMPARE(window.session()->freezeState()->stateOfNodes(members), Qt::Unchecked);
  QCOMPARE(window.session()->freezeState()->stateOf(0), Qt::PartiallyChecked);
  window.session()->undoStack()->undo();
  QCOMPARE(window.session()->freezeState()->stateOfNodes(members), Qt::Checked);

  window.showMethodHelp();
  auto* help = window.findChild<QTextBrowser*>("methodHelp");
  QVERIFY(help && help->toPlainText().contains("input-level"));
  QVERIFY(help->window()->grab().save(screenshot("method_help.png")));
  help->window()->close();

  // Closing with unsaved changes asks; Cancel keeps the window and its work.
  answer(QMessageBox::Cancel);
  QVERIFY(!window.close());
  QVERIFY(window.isVisible());
  QVERIFY(window.session()->document()->isDirty());

  // A corrupt autosave is refused with a message that says so; the open work stays.
  {
    QFile file(SessionDocument::autosavePath());
    QVERIFY(file.open(QIODevice::WriteOnly | QIODevice::Truncate));
    file.write("{ this is not a session");
  }
  // The next start sets it aside and says so; the app starts empty.
  MainWindow fresh;
  fresh.show();
  QVERIFY2(fresh.statusBar()->currentMessage().contains("could not be read and was ignored"),
           qPrintable(fresh.statusBar()->currentMessage()));
  QVERIFY(QFile::exists(SessionDocument::autosavePath() + ".unreadable"));
  QVERIFY(!fresh.session()->restoreAutosave());  // nothing left to restore, and a dialog says so
  QVERIFY(fresh.errorDialog());
  QVERIFY(fresh.errorDialog()->text().contains("no autosaved session"));
  fresh.errorDialog()->close();
  QVERIFY(fresh.session()->inspection().path.empty());

  // Saved, then File ▸ New Session empties the window without asking; Recent Files (openFile)
  // brings the session back.
  QTemporaryDir dir;
  const QString saved1 = dir.filePath("small.json");
  QCOMPARE(window.session()->saveSession(saved1), QString());
  window.newSession();
  QVERIFY(window.session()->inspection().path.empty());
  QVERIFY(window.diagram()->blockItems().isEmpty());
  QVERIFY(!window.session()->document()->isDirty());
  QSignalSpy restored(window.session(), &SessionController::sessionRestored);
  window.openFile(saved1);
  QVERIFY(restored.wait(60000));
  QCOMPARE(QString::fromStdString(window.session()->inspection().path),
           scalpel::test::fixture("small_cnn.pt"));
  window.session()->setTrainable({0}, false, "all layers");  // an edit, so closing asks again
  QVERIFY(window.session()->document()->isDirty());

  answer(QMessageBox::Discard);
  QVERIFY(window.close());
  // Closing autosaved first: the autosave is a session again.
  QVERIFY(scalpel::loadSession(SessionDocument::autosavePath().toStdString(), saved).ok);
}

// File ▸ Open Data…: pick the reader and a synthetic shift, preview clean over shifted samples,
// then open it as the target; a reader without its file says what to do.
void TestMainWindow::dataDialogPreviewsAndOpens() {
  MainWindow window;
  window.show();
  QSignalSpy shown(window.session(), &SessionController::modelOpened);
  window.session()->openModel(scalpel::test::demoModel());
  QVERIFY(shown.wait(60000));
  window.openDataDialog();
  auto* dialog = window.dataDialog();
  QVERIFY(dialog && dialog->isVisible());
  dialog->setReader(scalpel::ui::DataDialog::FashionMnist);
  dialog->setShift("contrast", 4);
  QPushButton* preview = nullptr;
  QPushButton* open = nullptr;
  for (auto* button : dialog->findChildren<QPushButton*>()) {
    if (button->text() == "Preview") preview = button;
    if (button->text().remove('&') == "Open") open = button;
  }
  QVERIFY(preview && open);
  QTest::mouseClick(preview, Qt::LeftButton);
  QTRY_VERIFY_WITH_TIMEOUT(dialog->hasPreview(), 60000);
  const auto* image = dialog->findChild<QLabel*>("dataPreview");
  QVERIFY(image && !image->pixmap().isNull() && image->pixmap().height() > 100);  // two rows
  QVERIFY(dialog->grab().save(screenshot("data_dialog.png")));
  QVERIFY(!window.session()->targetData().ok);  // a preview replaces nothing

  // Changing the choice drops the preview; a reader with no file chosen says so and stays open.
  dialog->setReader(scalpel::ui::DataDialog::ImageFolder);
  QVERIFY(!dialog->hasPreview());
  QTest::mouseClick(open, Qt::LeftButton);
  QVERIFY(dialog->isVisible());
  QVERIFY(dialog->findChildren<QLabel*>().size() > 0);
  bool said = false;
  for (auto* label : dialog->findChildren<QLabel*>()) said |= label->text().contains("Browse");
  QVERIFY(said);

  dialog->setReader(scalpel::ui::DataDialog::FashionMnist);
  QSignalSpy loaded(window.session(), &SessionController::dataLoaded);
  QTest::mouseClick(open, Qt::LeftButton);
  QVERIFY(loaded.wait(60000));
  QCOMPARE(window.session()->targetData().description,
           std::string("fashion-mnist/test + contrast (severity 4)"));
}

// A regression CSV opened from the data dialog (its columns to predict named there), one block
// trained: the window speaks of R² and the mean absolute error, not of classes and accuracy.
void TestMainWindow::regressionTrainsInTheWindow() {
  MainWindow window;
  window.resize(1280, 900);
  window.show();
  QVERIFY(openAndWait(window, "regressor.pt"));
  window.openDataDialog();
  auto* dialog = window.dataDialog();
  QVERIFY(dialog && dialog->isVisible());
  dialog->setReader(scalpel::ui::DataDialog::CsvTable,
                    scalpel::test::fixture("regression_target.csv"));
  auto* columns = dialog->findChild<QLineEdit*>("regressionTargets");
  QVERIFY(columns && columns->isEnabled());
  QTest::keyClicks(columns, "ink, balance");
  QPushButton* open = nullptr;
  for (auto* button : dialog->findChildren<QPushButton*>()) {
    if (button->text().remove('&') == "Open") open = button;
  }
  QSignalSpy loaded(window.session(), &SessionController::dataLoaded);
  QTest::mouseClick(open, Qt::LeftButton);
  QVERIFY(loaded.wait(60000));
  QCOMPARE(window.session()->targetData().labelling(), std::string("regression on ink, balance"));
  QCOMPARE(window.session()->targetData().items, std::size_t(1000));

  auto* panel = window.trainingPanel();
  panel->setStrategy("block:input");
  QCOMPARE(panel->strategy(), QString("block:input"));
  panel->setEpochs(10);
  QSignalSpy finished(window.session(), &SessionController::trainingFinished);
  auto* train = panel->findChild<QPushButton*>();
  QTest::mouseClick(train, Qt::LeftButton);
  QVERIFY(finished.wait(180000));
  QCOMPARE(finished.first().first().toBool(), true);
  const auto& run = *window.session()->currentRun();
  QVERIFY(run.result.testAfter.regression);
  QVERIFY2(
      run.result.testAfter.r2 > run.result.testBefore.r2 + 0.1,
      qPrintable(QString("R² %1 → %2").arg(run.result.testBefore.r2).arg(run.result.testAfter.r2)));
  QVERIFY2(panel->resultText().contains("Validation R²") &&
               panel->resultText().contains("mean absolute error"),
           qPrintable(panel->resultText()));
  QCOMPARE(panel->scoreAxisLabel(), QString("validation R² (%)"));
  QCOMPARE(panel->evaluationPoints(), 10);
  QCOMPARE(panel->trainingPoints(), 20);  // 100 rows in batches of 64, 10 epochs: every step drawn
  QVERIFY(window.grab().save(screenshot("regression_trained.png")));
}

// Training ▸ Run On… two processes: Train runs `scalpel-cli train --nproc 2` on a job folder
// and the curves follow its metrics log; Export Job… writes a folder whose run-local.sh runs
// here, and Open Job Results… brings its run back into the window and the session.
void TestMainWindow::severalProcessesTrainAndJobsComeBack() {
  QStandardPaths::setTestModeEnabled(true);  // the jobs go to a test folder
  MainWindow window;
  window.resize(1280, 900);
  window.show();
  QVERIFY(openAndWait(window, "regressor.pt"));
  QSignalSpy loaded(window.session(), &SessionController::dataLoaded);
  scalpel::DataRequest request;
  request.source = scalpel::test::fixture("regression_target.csv").toStdString();
  request.regressionTargets = {"ink", "balance"};
  window.session()->openData(true, request);
  QVERIFY(loaded.wait(60000));

  // The dialog, as a user clicks it.
  QTimer::singleShot(0, [] {
    auto* dialog = qobject_cast<scalpel::ui::RunOnDialog*>(QApplication::activeModalWidget());
    QVERIFY(dialog);
    dialog->findChild<QRadioButton*>("severalProcesses")->setChecked(true);
    dialog->findChild<QSpinBox*>("processes")->setValue(2);
    QVERIFY(dialog->grab().save(screenshot("run_on_dialog.png")));
    dialog->accept();
  });
  window.showRunOnDialog();
  QCOMPARE(window.session()->settings().processes, 2);

  auto* panel = window.trainingPanel();
  panel->setStrategy("block:input");
  panel->setEpochs(6);
  QSignalSpy finished(window.session(), &SessionController::trainingFinished);
  QTest::mouseClick(panel->findChild<QPushButton*>(), Qt::LeftButton);
  QVERIFY(finished.wait(180000));
  QVERIFY2(finished.first().first().toBool(), qPrintable(panel->resultText()));
  const auto& run = *window.session()->currentRun();
  QVERIFY(run.result.tunedModel && !run.result.tunedModel->empty());
  QVERIFY2(run.result.testAfter.r2 > run.result.testBefore.r2 + 0.1,
           qPrintable(panel->resultText()));
  QCOMPARE(panel->evaluationPoints(), 6);  // every evaluation of the log reached the curves
  QCOMPARE(window.session()->document()->session().runs.size(), std::size_t(1));
  QVERIFY(QFile::exists(
      QString::fromStdString(window.session()->document()->session().runs.back().tunedModel)));
  QVERIFY(window.grab().save(screenshot("several_processes_trained.png")));

  // Stop: both processes stop at the same step, and the best state so far comes back as the run.
  panel->setEpochs(100000);
  finished.clear();
  QTest::mouseClick(panel->findChild<QPushButton*>(), Qt::LeftButton);
  QTRY_VERIFY_WITH_TIMEOUT(panel->evaluationPoints() >= 2, 120000);
  QPushButton* stop = nullptr;
  for (auto* button : panel->findChildren<QPushButton*>())
    if (button->text() == "Stop") stop = button;
  QVERIFY(stop && stop->isEnabled());
  QTest::mouseClick(stop, Qt::LeftButton);
  QVERIFY(finished.wait(60000));
  QVERIFY2(finished.first().first().toBool(), qPrintable(panel->resultText()));
  QVERIFY(window.session()->currentRun()->result.cancelled);
  QVERIFY(window.session()->currentRun()->report.history.size() >= 2);
  QCOMPARE(window.session()->document()->session().runs.size(), std::size_t(2));
  QVERIFY(window.grab().save(screenshot("several_processes_stopped.png")));
  panel->setEpochs(6);

  // Export Job…, run its script (2 processes), Open Job Results…
  QTemporaryDir dir;
  const QString job = dir.filePath("job");
  QCOMPARE(window.session()->exportJob(job, 2), QString());
  for (const char* file :
       {"model.pt", "session.json", "data-manifest.json", "data/regression_target.csv",
        "run-local.sh", "run-torchrun.sh", "run-slurm.sbatch", "README.md"}) {
    QVERIFY2(QFile::exists(job + "/" + file), file);
  }
  QVERIFY2(!window.session()->openJobResults(job).isEmpty(),
           "a job that has not run has no results");
  if (auto* box = window.errorDialog()) box->close();
  QProcess script;
  script.start("bash", {job + "/run-local.sh"});
  QVERIFY(script.waitForFinished(180000));
  QVERIFY2(script.exitCode() == 0, script.readAll().constData());
  QCOMPARE(window.session()->openJobResults(job), QString());
  QCOMPARE(window.session()->currentRun()->report.history.size(), std::size_t(6));
  QCOMPARE(window.session()->document()->session().runs.size(), std::size_t(3));
  QCOMPARE(panel->evaluationPoints(), 6);
  // Its model exports like any run's.
  QCOMPARE(window.session()->exportTunedModel(dir.filePath("from-job.pt")), QString());
  QVERIFY(QFile::exists(dir.filePath("from-job.pt")));

  // A folder that is no job says so.
  const QString error = window.session()->openJobResults(dir.path());
  QVERIFY2(error.contains("not a Scalpel job folder"), qPrintable(error));
  QVERIFY(window.errorDialog());
}

// Models with hundreds of modules (a 12-block ViT, MobileNetV2): open, expand every block, fit,
// zoom. The torch work runs on the worker, so the window's event loop keeps running while a model
// opens: the longest stall of three opens of each model stays within a few times the longest
// stall of an idle event loop over the same time, measured in the same run (the least of three,
// as a busy host's hiccups come and go).
void TestMainWindow::largeModelsStayResponsive() {
  MainWindow window;
  window.resize(1280, 900);
  window.show();
  for (const char* model : {"vit12.pt", "mobilenet_v2.pt", "resnet18.pt"}) {
    qint64 openStall = std::numeric_limits<qint64>::max(), idleStall = openStall, openMs = 0;
    for (int round = 0; round < 3; ++round) {
      StallMeter stalls;
      QElapsedTimer clock;
      clock.start();
      stalls.start();
      QVERIFY(openAndWait(window, model));
      openStall = std::min(openStall, stalls.stopMs());
      openMs = clock.elapsed();
      stalls.start();  // the baseline: the same meter with nothing to do for as long
      QTest::qWait(static_cast<int>(std::max<qint64>(50, openMs)));
      idleStall = std::min(idleStall, stalls.stopMs());
    }
    QElapsedTimer clock;
    clock.start();
    window.diagram()->setAllExpanded(true);
    window.diagramView()->fitToView();
    window.diagramView()->zoomBy(1.25);
    QApplication::processEvents();
    const qint64 expandMs = clock.elapsed();
    int rows = 0;
    for (auto* block : window.diagram()->blockItems()) rows += block->rows().size();
    qInfo(
        "%s: %d modules, %d layer rows; opening (%lld ms): longest stall %lld ms, idle baseline "
        "%lld ms; expand all + fit + zoom %lld ms",
        model, window.session()->freezeState()->tree().size() - 1, rows, openMs, openStall,
        idleStall, expandMs);
    QVERIFY(rows > 20);  // every block lists its layers
    QVERIFY2(openStall <= 4 * idleStall + 40,
             qPrintable(QString("%1: the window stalled %2 ms while opening it (idle: %3 ms)")
                            .arg(model)
                            .arg(openStall)
                            .arg(idleStall)));
    if (QString(model) == "vit12.pt") QVERIFY(window.grab().save(screenshot("vit_expanded.png")));
  }
}

QTEST_MAIN(TestMainWindow)
#include "test_main_window.moc"
