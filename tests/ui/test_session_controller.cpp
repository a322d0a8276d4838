// The session without a window: the SessionController driven through its own API and observed
// with QSignalSpy, as Tiled's tests drive MapDocument. The newest request wins (a second
// analysis drops the first one's snapshots), the compare queue runs plan after plan, training
// and export work, and the layer table stays a well-behaved item model through it all.

#include <QAbstractItemModelTester>
#include <QSignalSpy>
#include <QStandardPaths>
#include <QTemporaryDir>
#include <QtTest>

#include "freeze_state.h"
#include "io/model_export.h"
#include "layer_scores.h"
#include "layer_table_model.h"
#include "session_controller.h"
#include "session_document.h"
#include "support/reference.h"

using scalpel::ui::SessionController;

class TestSessionController : public QObject {
  Q_OBJECT

 private Q_SLOTS:
  void initTestCase();
  void staleAnalysisIsDropped();
  void trainsAndExports();
  void compareQueueRunsEveryPlan();
  void refusesWhatItCannotDo();

 private:
  SessionController m_session;
};

void TestSessionController::initTestCase() {
  QStandardPaths::setTestModeEnabled(true);  // recent files and the autosave stay out of the way
  QSignalSpy opened(&m_session, &SessionController::modelOpened);
  m_session.openModel(scalpel::test::demoModel());
  QVERIFY(opened.wait(60000));
  QVERIFY(m_session.hasModel());
  QCOMPARE(m_session.scores()->tree().size(), m_session.inspection().tree.size());
  QSignalSpy loaded(&m_session, &SessionController::dataLoaded);
  m_session.openData(
      true, scalpel::DataRequest{"fashion-mnist", "test", "gaussian-noise", 5, 0, {}, {}, {}});
  QVERIFY(loaded.wait(60000));
  QVERIFY(m_session.targetData().ok);
}

// Two analyses one after the other: only the second one's snapshots reach the scores, each batch
// once and in order, and only its result ends the analysis.
void TestSessionController::staleAnalysisIsDropped() {
  scalpel::ui::LayerTableModel table(m_session.freezeState(), m_session.scores());
  table.reset();
  QAbstractItemModelTester tester(&table, QAbstractItemModelTester::FailureReportingMode::QtTest);
  QSignalSpy finished(&m_session, &SessionController::analysisFinished);
  QSignalSpy gradients(&m_session, &SessionController::gradientsMeasured);
  m_session.analyze(false);
  m_session.analyze(false);  // the newest request wins
  QVERIFY(finished.wait(120000));
  QTest::qWait(500);  // anything the first analysis still sends must not count either
  QCOMPARE(finished.count(), 1);
  QCOMPARE(finished.first().first().toBool(), true);
  const auto& snapshots = m_session.scores()->snapshots();
  QCOMPARE(snapshots.size(), std::size_t(20));
  for (std::size_t i = 0; i < snapshots.size(); ++i)
    QCOMPARE(snapshots[i].batch, static_cast<int>(i) + 1);
  QVERIFY(m_session.diagnosis().has_value());
  // Every score names its node: the store finds the first BatchNorm's by index, no label parsed.
  const auto& tree = m_session.inspection().tree;
  const auto* stem = m_session.scores()->score(*tree.find("stem.1"));
  QVERIFY(stem && stem->layer == "stem.1");
  QVERIFY(!std::isnan(m_session.scores()->level(*tree.find("stem"))));
  // The table shows the same score.
  for (int row = 0; row < table.rowCount(); ++row) {
    if (table.nodeOfRow(row) != *tree.find("stem.1")) continue;
    QCOMPARE(
        table.data(table.index(row, scalpel::ui::LayerTableModel::Shift), Qt::UserRole).toDouble(),
        stem->kl);
  }
  QVERIFY(gradients.count() > 0 || gradients.wait(60000));
  QCOMPARE(gradients.count(), 1);  // the stale analysis measured none, or they were dropped
  QVERIFY(m_session.scores()->hasGradients());
  QVERIFY(!std::isnan(m_session.scores()->rgn(*tree.find("fc"))));
}

void TestSessionController::trainsAndExports() {
  auto settings = m_session.settings();
  QCOMPARE(settings.options.batchNormEval,
           true);  // core's default, the paper's protocol, as on the CLI
  settings.strategy = "last";
  settings.options.epochs = 1;
  m_session.setSettings(settings);
  QSignalSpy events(&m_session, &SessionController::trainingEvent);
  QSignalSpy finished(&m_session, &SessionController::trainingFinished);
  m_session.train();
  QVERIFY(m_session.isTraining());
  QVERIFY(finished.wait(120000));
  QCOMPARE(finished.first().first().toBool(), true);
  QVERIFY(events.count() > 1);
  QVERIFY(m_session.currentRun().has_value());
  QCOMPARE(m_session.currentRun()->report.plan.trainable, std::vector<std::string>{"fc"});
  QCOMPARE(m_session.document()->runs().size(), std::size_t(1));
  QVERIFY(m_session.document()->isDirty());

  QTemporaryDir dir;
  const QString path = dir.filePath("tuned.pt");
  QCOMPARE(m_session.exportTunedModel(path), QString());
  std::string report;
  QCOMPARE(QString::fromStdString(scalpel::readEmbeddedReport(path.toStdString(), report)),
           QString());
  QVERIFY(report.find("\"fc\"") != std::string::npos);
  QVERIFY(QFile::exists(dir.filePath("tuned-report/report.md")));
  // The session remembers where the run's model went.
  QCOMPARE(QString::fromStdString(m_session.document()->runs().back().tunedModel),
           QFileInfo(path).absoluteFilePath());
  QCOMPARE(m_session.exportReport(dir.filePath("report")), QString());
  QVERIFY(QFile::exists(dir.filePath("report/report.md")));
}

void TestSessionController::compareQueueRunsEveryPlan() {
  QSignalSpy started(&m_session, &SessionController::comparisonRunStarted);
  QSignalSpy ended(&m_session, &SessionController::comparisonRunFinished);
  QSignalSpy finished(&m_session, &SessionController::comparisonFinished);
  QSignalSpy trainingEvents(&m_session, &SessionController::trainingEvent);
  m_session.compare({"block:fc", "block:layer3"});
  QVERIFY(m_session.isComparing());
  QVERIFY(finished.wait(240000));
  QCOMPARE(started.count(), 2);
  QCOMPARE(started.at(0).first().toString(), QString("block:fc"));
  QCOMPARE(started.at(1).first().toString(), QString("block:layer3"));
  QCOMPARE(ended.count(), 2);
  QCOMPARE(trainingEvents.count(), 0);  // a comparison's events are its own
  QCOMPARE(m_session.comparedRuns().size(), std::size_t(2));
  for (const auto& run : m_session.comparedRuns()) QVERIFY(run.ok());
  const int best = m_session.bestComparedRun();
  QVERIFY(best >= 0);
  QVERIFY(finished.first().first().toString().contains("is best on validation data"));
  QVERIFY(!m_session.isTraining());
  // A compared run becomes the current one.
  m_session.openComparedRun(best);
  QCOMPARE(m_session.currentRun()->report.plan.trainable,
           m_session.comparedRuns()[static_cast<std::size_t>(best)].run.report.plan.trainable);
}

void TestSessionController::refusesWhatItCannotDo() {
  SessionController empty;
  QSignalSpy errors(&empty, &SessionController::errorRaised);
  empty.analyze(false);
  empty.train();
  empty.acceptSuggestedPlan();
  QCOMPARE(errors.count(), 3);
  QVERIFY(errors.at(0).at(1).toString().contains("Open a model first"));
  QVERIFY(errors.at(1).at(1).toString().contains("Open a model first"));
  QVERIFY(errors.at(2).at(1).toString().contains("Analyse the target data first"));
  QVERIFY(!empty.exportTunedModel("/tmp/nothing.pt").isEmpty());
}

QTEST_GUILESS_MAIN(TestSessionController)
#include "test_session_controller.moc"
