// The report folder of a fine-tuning run: report.md holds the numbers and links the charts,
// the charts read back as real, non-blank PNGs in the series' colours, degenerate reports and
// degenerate chart data never crash, and an unwritable folder gives a message and no files.

#include <stb_image.h>

#include <QDir>
#include <QFile>
#include <QTemporaryDir>
#include <QtTest>

#include <cmath>
#include <limits>
#include <set>

#include "io/png_plot.h"
#include "io/run_report.h"

using namespace scalpel;

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

Evaluation evaluation(double loss, double accuracy, std::size_t items, double classSpread = 0) {
  Evaluation e;
  e.loss = loss;
  e.accuracy = accuracy;
  e.items = items;
  if (classSpread > 0) {
    for (int c = 0; c < 10; ++c)
      e.perClassAccuracy.push_back(std::clamp(accuracy + classSpread * (c % 5 - 2) / 2, 0.0, 1.0));
  }
  return e;
}

// A run as the trainer and the advisor would leave it: feature-level shift, one block tuned.
RunReport realisticReport() {
  RunReport r;
  r.scalpelVersion = "0.4.0";
  r.torchVersion = "2.1.2";
  r.createdUtc = "2024-05-17T09:30:00Z";
  r.modelPath = "/data/models/fashion_cnn.pt";
  r.modelFingerprint = "fnv1a64:0123456789abcdef:1204733";
  r.diagnosis = "Feature-level shift: activations move from features.3 onwards.";
  r.evidence = {"features.3: KL 0.41, 37x its noise floor",
                "features.0: KL 0.004, below its noise floor"};
  r.plan.strategy = "block:features.3";
  r.plan.trainable = {"features.3", "features.4"};
  r.plan.learningRateScale = {{"features.3", 1.0}, {"features.4", 0.25}};
  r.plan.explanation =
      "Only the block where the shift starts trains; everything else keeps its weights.";
  r.options.learningRate = 3e-4;
  r.options.epochs = 3;
  r.options.evaluateEverySteps = 100;
  r.options.seed = 42;
  r.data = {{"train", "fashion-mnist:train | contrast severity 3", 6000,
             "fnv1a64:1111111111111111:4704000"},
            {"validation", "fashion-mnist:train | contrast severity 3 (held out)", 1000,
             "fnv1a64:2222222222222222:784000"},
            {"test", "fashion-mnist:test | contrast severity 3", 10000,
             "fnv1a64:3333333333333333:7840000"}};
  const char* layers[] = {"features.0", "features.1",   "features.3",
                          "features.4", "classifier.0", "classifier.2"};
  const double kl[] = {0.004, 0.012, 0.41, 0.95, 0.31, 0.08};
  const double noise[] = {0.006, 0.005, 0.011, 0.014, 0.009, 0.007};
  for (int i = 0; i < 6; ++i) r.layerShifts.push_back({layers[i], kl[i], noise[i]});
  r.device = "cpu (2 threads)";
  r.outcome = "finished";
  r.trainableParameters = 18816;
  r.frozenParameters = 402250;
  r.validationBefore = evaluation(1.7321, 0.4200, 1000);
  r.testBefore = evaluation(1.7544, 0.4187, 10000, 0.3);
  const double trainLoss[] = {1.52, 0.98, 0.77, 0.69, 0.66, 0.64};
  const double validLoss[] = {1.21, 0.88, 0.79, 0.75, 0.77, 0.78};
  const double validAccuracy[] = {0.571, 0.664, 0.702, 0.713, 0.709, 0.707};
  for (int i = 0; i < 6; ++i) {
    r.history.push_back({i / 2, static_cast<std::size_t>(100 * (i + 1)), trainLoss[i],
                         evaluation(validLoss[i], validAccuracy[i], 1000)});
  }
  r.bestEvaluation = 3;
  r.validationAfter = r.history[3].validation;
  r.testAfter = evaluation(0.7702, 0.7049, 10000, 0.2);
  r.steps = 600;
  r.seconds = 84.3;
  return r;
}

QString readText(const QString& file) {
  QFile f(file);
  return f.open(QIODevice::ReadOnly) ? QString::fromUtf8(f.readAll()) : QString();
}

struct Pixels {
  int width = 0, height = 0;
  std::set<int> colours;  // 0xRRGGBB
};

Pixels loadPng(const QString& file) {
  Pixels p;
  int channels = 0;
  unsigned char* data = stbi_load(file.toUtf8().constData(), &p.width, &p.height, &channels, 3);
  if (!data) return {};
  for (int i = 0; i < p.width * p.height; ++i)
    p.colours.insert(data[3 * i] << 16 | data[3 * i + 1] << 8 | data[3 * i + 2]);
  stbi_image_free(data);
  return p;
}

int code(Rgb c) { return c.r << 16 | c.g << 8 | c.b; }

// A copy for a person to look at.
void keepScreenshot(const QString& file, const QString& name) {
  QDir().mkpath(SCALPEL_SCREENSHOT_DIR);
  const QString target = QDir(SCALPEL_SCREENSHOT_DIR).filePath(name);
  QFile::remove(target);
  QVERIFY(QFile::copy(file, target));
}

QStringList filesIn(const QString& folder) {
  return QDir(folder).entryList(QDir::AllEntries | QDir::NoDotAndDotDot | QDir::Hidden);
}

}  // namespace

class TestReportFolder : public QObject {
  Q_OBJECT

 private Q_SLOTS:
  void markdownHoldsTheNumbersAndLinksTheCharts();
  void chartsReadBackInTheSeriesColours();
  void degenerateReportStillWritesMarkdown();
  void chartsSurviveDegenerateData_data();
  void chartsSurviveDegenerateData();
  void unwritableFolderGivesAMessageAndNoFiles();
};

void TestReportFolder::markdownHoldsTheNumbersAndLinksTheCharts() {
  QTemporaryDir dir;
  const QString folder = dir.filePath("run-1/report");  // two levels that do not exist yet
  QCOMPARE(QString::fromStdString(writeReportFolder(realisticReport(), folder.toStdString())),
           QString());
  QCOMPARE(filesIn(folder), QStringList({"curves.png", "layer-shift.png", "report.md"}));
  const QString md = readText(folder + "/report.md");
  for (const char* expected : {"/data/models/fashion_cnn.pt",
                               "fnv1a64:0123456789abcdef:1204733",
                               "cpu (2 threads)",
                               "Feature-level shift",
                               "37x its noise floor",
                               "`block:features.3`",
                               "| `features.4` | 0.25 |",
                               "18,816",
                               "402,250",
                               "| learning rate | 0.0003 |",
                               "| seed | 42 |",
                               "fashion-mnist:train \\| contrast severity 3 (held out)",
                               "| 10000 |",
                               "fnv1a64:3333333333333333:7840000",
                               "| validation accuracy | 42.0% | 71.3% | +29.3 pp |",
                               "| test accuracy | 41.9% | 70.5% | +28.6 pp |",
                               "| validation loss | 1.7321 | 0.7500 |",
                               "Best evaluation: #4 (epoch 2, step 400)",
                               "| 6 | 3 | 600 | 0.6400 | 0.7800 | 70.7% |  |",
                               "| 4 | 2 | 400 | 0.6900 | 0.7500 | 71.3% | best |",
                               "![Loss and validation accuracy per evaluation](curves.png)",
                               "![Activation shift per layer](layer-shift.png)",
                               "| `features.4` | 0.95 | 0.014 | 67.9 |",
                               "finished after 600 steps in 84.3 s",
                               "Scalpel 0.4.0",
                               "LibTorch 2.1.2"}) {
    QVERIFY2(md.contains(QString::fromUtf8(expected)), expected);
  }
  // Per-class test accuracy: ten rows, class 0 lowest (spread -0.3 before, -0.2 after).
  QVERIFY(md.contains("### Test accuracy per class"));
  QVERIFY(md.contains("| 0 | 11.9% | 50.5% | +38.6 pp |"));
  QVERIFY(md.contains("| 9 | 71.9% | 90.5% | +18.6 pp |"));
}

void TestReportFolder::chartsReadBackInTheSeriesColours() {
  QTemporaryDir dir;
  QCOMPARE(QString::fromStdString(writeReportFolder(realisticReport(), dir.path().toStdString())),
           QString());
  const Pixels curves = loadPng(dir.filePath("curves.png"));
  QCOMPARE(curves.width, 800);
  QCOMPARE(curves.height, 900);  // loss above accuracy, 450 each
  QVERIFY(curves.colours.size() >= 5);
  for (std::size_t s : {0, 1, 2})
    QVERIFY2(curves.colours.count(code(plotPalette(s))), qPrintable(QString::number(s)));
  const Pixels shifts = loadPng(dir.filePath("layer-shift.png"));
  QCOMPARE(shifts.width, 800);
  QCOMPARE(shifts.height, 450);
  QVERIFY(shifts.colours.size() >= 4);
  QVERIFY(shifts.colours.count(code(plotPalette(0))));
  keepScreenshot(dir.filePath("curves.png"), "report-curves.png");
  keepScreenshot(dir.filePath("layer-shift.png"), "report-layer-shift.png");
}

void TestReportFolder::degenerateReportStillWritesMarkdown() {
  QTemporaryDir dir;
  RunReport empty;
  empty.outcome = "failed";
  empty.message = "model.pt: no trainable parameters";
  QCOMPARE(QString::fromStdString(writeReportFolder(empty, dir.path().toStdString())), QString());
  QCOMPARE(filesIn(dir.path()), QStringList({"report.md"}));
  const QString md = readText(dir.filePath("report.md"));
  QVERIFY(md.contains("No evaluations were recorded."));
  QVERIFY(md.contains("model.pt: no trainable parameters"));
  QVERIFY(!md.contains(".png"));

  // Only the unmodified model evaluated (failed at the first step): a one-point chart.
  RunReport early = empty;
  early.validationBefore = evaluation(2.3, 0.1, 100);
  QCOMPARE(QString::fromStdString(writeReportFolder(early, dir.path().toStdString())), QString());
  QCOMPARE(loadPng(dir.filePath("curves.png")).height, 900);
  QVERIFY(readText(dir.filePath("report.md")).contains("(curves.png)"));
  keepScreenshot(dir.filePath("curves.png"), "report-curves-single-point.png");

  // Rewritten without evaluations, the stale chart goes.
  QCOMPARE(QString::fromStdString(writeReportFolder(empty, dir.path().toStdString())), QString());
  QCOMPARE(filesIn(dir.path()), QStringList({"report.md"}));
}

void TestReportFolder::chartsSurviveDegenerateData_data() {
  QTest::addColumn<std::vector<double>>("x");
  QTest::addColumn<std::vector<double>>("y");
  QTest::newRow("empty") << std::vector<double>{} << std::vector<double>{};
  QTest::newRow("single point") << std::vector<double>{5} << std::vector<double>{0.3};
  QTest::newRow("all equal") << std::vector<double>{1, 2, 3} << std::vector<double>{7, 7, 7};
  QTest::newRow("all zero") << std::vector<double>{0, 0} << std::vector<double>{0, 0};
  QTest::newRow("NaN and infinity")
      << std::vector<double>{1, 2, 3, 4}
      << std::vector<double>{0.5, kNaN, std::numeric_limits<double>::infinity(), 0.2};
  QTest::newRow("only NaN") << std::vector<double>{kNaN} << std::vector<double>{kNaN};
  QTest::newRow("huge and tiny") << std::vector<double>{0, 1e9} << std::vector<double>{1e-9, 3e-9};
  QTest::newRow("range beyond doubles")
      << std::vector<double>{-1e308, 1e308} << std::vector<double>{-1e308, 1e308};
  QTest::newRow("lengths differ") << std::vector<double>{1, 2, 3} << std::vector<double>{1};
}

void TestReportFolder::chartsSurviveDegenerateData() {
  QFETCH(std::vector<double>, x);
  QFETCH(std::vector<double>, y);
  const RgbImage line = renderLineChart({"Title", "x", "y", {{"series", x, y}}});
  QCOMPARE(line.width, 800);
  QCOMPARE(line.height, 450);
  QCOMPARE(line.pixels.size(), std::size_t(800 * 450 * 3));
  BarChart bars;
  bars.names = {"a", "b", "c"};
  bars.values = y;
  bars.values.resize(3, kNaN);
  bars.markers = x;
  bars.errors = x;                  // whiskers from degenerate errors too
  bars.barColours = {{200, 0, 0}};  // fewer colours than bars
  for (bool log : {false, true}) {
    for (bool horizontal : {true, false}) {
      bars.logScale = log;
      bars.horizontal = horizontal;
      const RgbImage image = renderBarChart(bars);
      QCOMPARE(image.pixels.size(), std::size_t(800 * 450 * 3));
      QVERIFY(!encodePng(image).empty());
    }
  }
  // Tiny sizes and no names at all.
  QCOMPARE(renderLineChart({"", "", "", {{"s", x, y}}, 1, 1}).pixels.size(), std::size_t(3));
  BarChart none;
  none.width = 20, none.height = 10;
  QCOMPARE(renderBarChart(none).pixels.size(), std::size_t(20 * 10 * 3));
}

void TestReportFolder::unwritableFolderGivesAMessageAndNoFiles() {
  QTemporaryDir dir;
  // A regular file where a folder should be: fails even for root, unlike chmod.
  QFile blocker(dir.filePath("blocker"));
  QVERIFY(blocker.open(QIODevice::WriteOnly));
  blocker.close();
  const QString folder = dir.filePath("blocker/report");
  const QString error =
      QString::fromStdString(writeReportFolder(realisticReport(), folder.toStdString()));
  QVERIFY(!error.isEmpty());
  QVERIFY2(error.contains(folder), qPrintable(error));
  QCOMPARE(filesIn(dir.path()), QStringList({"blocker"}));

  // report.md cannot be renamed into place (a folder holds its name): no temporary file is left.
  const QString taken = dir.filePath("taken");
  QVERIFY(QDir().mkpath(taken + "/report.md/inside"));
  const QString second =
      QString::fromStdString(writeReportFolder(realisticReport(), taken.toStdString()));
  QVERIFY2(second.contains("report.md"), qPrintable(second));
  for (const QString& name : filesIn(taken)) QVERIFY2(!name.contains(".tmp"), qPrintable(name));
}

QTEST_GUILESS_MAIN(TestReportFolder)
#include "test_report_folder.moc"
