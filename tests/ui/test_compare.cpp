// The Compare tab offscreen, as an analyst uses it: queue several plans on the demo (the real
// demo model, real noisy Fashion-MNIST), watch the overlaid validation curves fill in, read the
// results table with the best run highlighted, then open, export and adopt runs; stop a long
// comparison midway. Saves a screenshot into the build folder.

#include <QDir>
#include <QDockWidget>
#include <QMessageBox>
#include <QPushButton>
#include <QSignalSpy>
#include <QTableWidget>
#include <QTemporaryDir>
#include <QtTest>

#include "compare_panel.h"
#include "freeze_state.h"
#include "io/model_export.h"
#include "main_window.h"
#include "session_controller.h"
#include "session_document.h"
#include "support/reference.h"
#include "training_panel.h"

using scalpel::test::screenshot;
using scalpel::ui::ComparePanel;
using scalpel::ui::MainWindow;
using scalpel::ui::SessionController;

namespace {

QPushButton* button(QWidget* parent, const QString& text) {
  for (auto* b : parent->findChildren<QPushButton*>()) {
    if (b->text() == text) return b;
  }
  return nullptr;
}

int rowOf(const ComparePanel& panel, const QString& label) {
  for (int row = 0; row < panel.runCount(); ++row) {
    if (panel.labelOf(row) == label) return row;
  }
  return -1;
}

}  // namespace

class TestCompare : public QObject {
  Q_OBJECT

 private Q_SLOTS:
  void initTestCase();
  void comparesPlansSideBySide();
  void stopEndsTheComparison();
  void nothingTickedSaysSo();

 private:
  MainWindow m_window;
};

void TestCompare::initTestCase() {
  m_window.resize(1280, 900);
  m_window.show();
  QSignalSpy analysed(m_window.session(), &SessionController::analysisFinished);
  m_window.session()->openDemo(scalpel::test::fixture("demo_net.pt"), scalpel::test::demoModel());
  QVERIFY(analysed.wait(180000));
}

void TestCompare::comparesPlansSideBySide() {
  auto* panel = m_window.comparePanel();
  // The model's blocks are offered; each block alone, all and auto are ticked by default.
  const QStringList defaults = panel->checkedStrategies();
  for (const char* expected : {"auto", "block:stem", "block:layer1", "block:fc", "all"}) {
    QVERIFY2(defaults.contains(expected), expected);
  }
  QVERIFY(!defaults.contains("block:pool"));  // no parameters, nothing to train

  m_window.trainingPanel()->setEpochs(2);
  panel->setCheckedStrategies({"auto", "block:stem", "block:fc", "all"});
  QSignalSpy finished(m_window.session(), &SessionController::comparisonFinished);
  QTest::mouseClick(button(panel, "Compare"), Qt::LeftButton);
  QVERIFY(!button(panel, "Compare")->isEnabled());
  QVERIFY(!button(m_window.trainingPanel(), "Train")->isEnabled());  // one run at a time
  // The overlay moves while the runs train (the first, auto, tries its candidates first).
  QTRY_VERIFY_WITH_TIMEOUT(panel->curveCount() >= 1 && panel->curvePoints(0) >= 1, 400000);
  QVERIFY(finished.wait(600000));

  QCOMPARE(panel->runCount(), 4);
  QCOMPARE(panel->curveCount(), 4);
  for (int row = 0; row < 4; ++row) {
    // The unmodified model's point and one per epoch.
    QCOMPARE(panel->curvePoints(row), 3);
    QVERIFY(panel->run(row).result.ok);
  }
  QCOMPARE(panel->labelOf(1), QString("only stem"));
  QCOMPARE(panel->curveName(1), QString("only stem"));

  // The best on validation data is highlighted, selected and named.
  const int best = panel->bestRow();
  QVERIFY(best >= 0);
  for (int row = 0; row < 4; ++row) {
    QVERIFY(panel->run(row).result.validationAfter.accuracy <=
            panel->run(best).result.validationAfter.accuracy);
    QCOMPARE(panel->table()->item(row, 0)->font().bold(), row == best);
  }
  QCOMPARE(panel->selectedRow(), best);
  QVERIFY2(panel->statusText().contains(panel->labelOf(best) + " is best on validation data"),
           qPrintable(panel->statusText()));
  // Every plan tuned the noisy target well above the unmodified model's 26%.
  const auto& r = panel->run(best).result;
  scalpel::test::figure("compare.best_gain",
                        r.validationAfter.accuracy - r.validationBefore.accuracy);
  QVERIFY(r.validationAfter.accuracy > r.validationBefore.accuracy + 0.2);
  QVERIFY(panel->table()->item(best, 3)->text().contains("→"));  // test accuracy before → after
  // Each run trained its own plan: stem alone is a sliver of the model, all is all of it.
  const int stem = rowOf(*panel, "only stem"), all = rowOf(*panel, "all"),
            fc = rowOf(*panel, "only fc");
  QVERIFY(panel->run(stem).result.trainableParameters <
          panel->run(all).result.trainableParameters / 100);
  QCOMPARE(panel->run(all).result.frozenParameters, 0);
  m_window.findChild<QDockWidget*>("compareDock")->raise();
  QVERIFY(m_window.grab().save(screenshot("compare.png")));

  // Open: the run becomes the current one, its curves in the Training tab.
  m_window.session()->openComparedRun(fc);
  QVERIFY(m_window.session()->currentRun().has_value());
  QCOMPARE(m_window.session()->currentRun()->report.plan.trainable,
           panel->run(fc).report.plan.trainable);
  QCOMPARE(m_window.trainingPanel()->evaluationPoints(), 2);
  QVERIFY(m_window.trainingPanel()->resultText().contains("test accuracy"));

  // Export one run: a model Python can load, with its report inside naming its plan.
  QTemporaryDir dir;
  const QString path = dir.filePath("stem.pt");
  QCOMPARE(m_window.session()->exportComparedRun(stem, path), QString());
  std::string report;
  QCOMPARE(QString::fromStdString(scalpel::readEmbeddedReport(path.toStdString(), report)),
           QString());
  QVERIFY(report.find("\"stem\"") != std::string::npos);
  QVERIFY(report.find("\"fc\"") == std::string::npos);
  QVERIFY(QFile::exists(dir.filePath("stem-report/report.md")));

  // Use as plan: the diagram's marks follow the run, and Train uses them.
  m_window.session()->useComparedPlan(fc);
  const auto& tree = m_window.session()->freezeState()->tree();
  QCOMPARE(m_window.session()->freezeState()->stateOf(*tree.find("fc")), Qt::Checked);
  QCOMPARE(m_window.session()->freezeState()->stateOf(*tree.find("stem")), Qt::Unchecked);
  QCOMPARE(m_window.session()->freezeState()->stateOf(*tree.find("layer2")), Qt::Unchecked);
  QCOMPARE(m_window.trainingPanel()->strategy(), QString("manual"));
  QVERIFY(button(m_window.trainingPanel(), "Train")->isEnabled());
}

void TestCompare::stopEndsTheComparison() {
  auto* panel = m_window.comparePanel();
  m_window.trainingPanel()->setEpochs(300);
  panel->setCheckedStrategies({"all", "block:layer3"});
  QSignalSpy finished(m_window.session(), &SessionController::comparisonFinished);
  QTest::mouseClick(button(panel, "Compare"), Qt::LeftButton);
  QCOMPARE(panel->runCount(), 0);  // the previous comparison is cleared
  QTRY_VERIFY_WITH_TIMEOUT(panel->statusText().contains("step"), 60000);
  QTest::mouseClick(button(panel, "Stop"), Qt::LeftButton);
  QVERIFY(finished.wait(60000));
  QCOMPARE(panel->runCount(), 1);  // the queued layer3 run never started
  QVERIFY(panel->run(0).result.cancelled);
  QVERIFY(button(panel, "Compare")->isEnabled());
  QVERIFY(button(m_window.trainingPanel(), "Train")->isEnabled());
}

void TestCompare::nothingTickedSaysSo() {
  auto* panel = m_window.comparePanel();
  panel->setCheckedStrategies({});
  QTest::mouseClick(button(panel, "Compare"), Qt::LeftButton);
  QTRY_VERIFY_WITH_TIMEOUT(m_window.errorDialog() != nullptr, 5000);
  QVERIFY2(m_window.errorDialog()->text().contains("Tick at least one plan"),
           qPrintable(m_window.errorDialog()->text()));
  m_window.errorDialog()->close();
}

QTEST_MAIN(TestCompare)
#include "test_compare.moc"
