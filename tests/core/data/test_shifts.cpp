// Shift scenarios on real Fashion-MNIST: severities get monotonically stronger, everything is
// deterministic for a seed, label permutations move every class, sub-populations are disjoint;
// and scalpel-cli make-shift / preview write files that read back.

#include <stb_image.h>

#include <QProcess>
#include <QTemporaryDir>
#include <QtTest>

#include <set>

#include "data/csv_reader.h"
#include "data/data_request.h"
#include "data/idx_reader.h"
#include "data/image_folder_reader.h"
#include "data/shifts.h"

using namespace scalpel;

namespace {

const Dataset& fashionTest() {
  static const Dataset data = *readFashionMnist("test").dataset;
  return data;
}

// The first n test images: enough for stable averages, fast to corrupt.
const Dataset& sample() {
  static const Dataset data = [] {
    Dataset d = fashionTest();
    const std::size_t n = 300;
    d.values.resize(n * d.itemSize());
    d.labels.resize(n);
    return d;
  }();
  return data;
}

double meanPsnr(const Dataset& clean, const Dataset& shifted) {
  double total = 0;
  for (std::size_t i = 0; i < clean.size(); ++i)
    total += psnr(clean.item(i), shifted.item(i), clean.itemSize());
  return total / static_cast<double>(clean.size());
}

int runCli(const QStringList& arguments, QString* output = nullptr) {
  QProcess process;
  process.start(SCALPEL_CLI, arguments);
  if (!process.waitForFinished(120000)) return -1;
  if (output)
    *output = QString::fromUtf8(process.readAllStandardOutput() + process.readAllStandardError());
  return process.exitStatus() == QProcess::NormalExit ? process.exitCode() : -1;
}

}  // namespace

class TestShifts : public QObject {
  Q_OBJECT

 private Q_SLOTS:
  void initTestCase() { QVERIFY(fashionTest().size() == 10000); }
  void corruptionsGetStrongerWithSeverity_data();
  void corruptionsGetStrongerWithSeverity();
  void deterministicForASeed();
  void benchmarkSpellingsAreAliases();
  void labelPermutationHasNoFixedPoint();
  void classPriorSkewsCounts();
  void subpopulationsAreDisjoint();
  void refusesWithAMessage_data();
  void refusesWithAMessage();
  void makeShiftWritesAnImageFolderThatReadsBack();
  void makeShiftSubpopulationWritesSourceAndTarget();
  void previewWritesAGrid();
};

void TestShifts::corruptionsGetStrongerWithSeverity_data() {
  QTest::addColumn<QString>("shift");
  for (const auto& info : shiftCatalogue()) {
    if (info.level == ShiftLevel::Input)
      QTest::newRow(info.name.c_str()) << QString::fromStdString(info.name);
  }
}

void TestShifts::corruptionsGetStrongerWithSeverity() {
  QFETCH(QString, shift);
  double previous = std::numeric_limits<double>::infinity();
  QString trace;
  for (int severity = 1; severity <= 5; ++severity) {
    const auto result = applyShift(sample(), shift.toStdString(), severity, 1);
    QVERIFY2(result, result.error.c_str());
    QCOMPARE(result.dataset->labels, sample().labels);  // input-level: labels untouched
    const double value = meanPsnr(sample(), *result.dataset);
    trace += QString(" %1:%2dB").arg(severity).arg(value, 0, 'f', 2);
    QVERIFY2(value < previous, qPrintable("PSNR must fall as severity rises:" + trace));
    previous = value;
  }
  qInfo("%s PSNR by severity:%s", qPrintable(shift), qPrintable(trace));
}

void TestShifts::deterministicForASeed() {
  for (const char* name :
       {"gaussian-noise", "motion-blur", "impulse-noise", "class-prior", "label-permutation"}) {
    const auto a = applyShift(sample(), name, 3, 5);
    const auto b = applyShift(sample(), name, 3, 5);
    const auto c = applyShift(sample(), name, 3, 6);
    QVERIFY(a && b && c);
    QVERIFY2(a.dataset->values == b.dataset->values && a.dataset->labels == b.dataset->labels,
             name);
    QVERIFY2(a.dataset->values != c.dataset->values || a.dataset->labels != c.dataset->labels,
             name);
  }
}

void TestShifts::benchmarkSpellingsAreAliases() {
  // ImageNet-C's and CIFAR-10-C's names, as their users type them, give the same shift.
  for (const auto& [spelled, name] :
       std::vector<std::pair<std::string, std::string>>{{"gaussian_noise", "gaussian-noise"},
                                                        {"shot_noise", "shot-noise"},
                                                        {"impulse_noise", "impulse-noise"},
                                                        {"motion_blur", "motion-blur"},
                                                        {"gaussian_blur", "gaussian-blur"},
                                                        {"jpeg_compression", "jpeg"},
                                                        {"Contrast", "contrast"},
                                                        {"brightness", "brightness"},
                                                        {"pixelate", "pixelate"}}) {
    const auto* info = findShift(spelled);
    QVERIFY2(info && info->name == name, spelled.c_str());
    const auto a = applyShift(sample(), spelled, 2, 3);
    const auto b = applyShift(sample(), name, 2, 3);
    QVERIFY2(a && b && a.dataset->values == b.dataset->values, spelled.c_str());
  }
  const DataRequest request{"fashion-mnist", "test", "jpeg_compression", 4};
  QCOMPARE(request.describe(), std::string("fashion-mnist/test + jpeg (severity 4)"));
  const auto unknown = applyShift(sample(), "frost", 2, 3);
  QVERIFY(!unknown && unknown.error.find("ImageNet-C's spellings") != std::string::npos);
}

void TestShifts::labelPermutationHasNoFixedPoint() {
  for (int classes = 2; classes <= 20; ++classes) {
    for (std::uint64_t seed = 0; seed < 20; ++seed) {
      const auto target = labelDerangement(classes, seed);
      QCOMPARE(std::set<int>(target.begin(), target.end()).size(), size_t(classes));
      for (int c = 0; c < classes; ++c) QVERIFY(target[size_t(c)] != c);
    }
  }
  const auto shifted = applyShift(fashionTest(), "label-permutation", 1, 3);
  QVERIFY(shifted);
  for (std::size_t i = 0; i < fashionTest().size(); ++i)
    QVERIFY(shifted.dataset->labels[i] != fashionTest().labels[i]);
  QCOMPARE(shifted.dataset->values, fashionTest().values);
  for (auto count : shifted.dataset->classCounts()) QCOMPARE(count, size_t(1000));
}

void TestShifts::classPriorSkewsCounts() {
  const auto shifted = applyShift(fashionTest(), "class-prior", 4, 2);  // rarest keeps 5%
  QVERIFY(shifted);
  const auto counts = shifted.dataset->classCounts();
  QCOMPARE(*std::max_element(counts.begin(), counts.end()), size_t(1000));
  QCOMPARE(*std::min_element(counts.begin(), counts.end()), size_t(50));
  QVERIFY(shifted.dataset->size() < 5000);
}

void TestShifts::subpopulationsAreDisjoint() {
  SuperClasses classes;
  QCOMPARE(
      readSuperClasses(SCALPEL_RESOURCE_DIR "/shifts/fashion-mnist-superclasses.json", classes),
      std::string());
  SubpopulationData parts;
  QCOMPARE(subpopulationShift(fashionTest(), classes, parts), std::string());
  QCOMPARE(parts.source.size(), size_t(5000));
  QCOMPARE(parts.target.size(), size_t(5000));
  for (auto count : parts.source.classCounts()) QCOMPARE(count, size_t(1000));
  QCOMPARE(parts.source.classNames.size(), size_t(5));
  // No image of the source is in the target: their sub-classes are disjoint.
  std::set<std::vector<float>> source;
  for (std::size_t i = 0; i < parts.source.size(); ++i)
    source.emplace(parts.source.item(i), parts.source.item(i) + parts.source.itemSize());
  for (std::size_t i = 0; i < parts.target.size(); ++i)
    QVERIFY(!source.count(
        std::vector<float>(parts.target.item(i), parts.target.item(i) + parts.target.itemSize())));

  SuperClasses bad{{"x"}, {{0, 0}}};
  QVERIFY(subpopulationShift(fashionTest(), bad, parts).find("in two groups") != std::string::npos);
  bad = SuperClasses{{"x"}, {{0, 12}}};
  QVERIFY(subpopulationShift(fashionTest(), bad, parts).find("12 is not a class") !=
          std::string::npos);
}

void TestShifts::refusesWithAMessage_data() {
  QTest::addColumn<QString>("shift");
  QTest::addColumn<int>("severity");
  QTest::addColumn<bool>("tabular");
  QTest::addColumn<QString>("expected");
  QTest::newRow("unknown") << "fog" << 3 << false
                           << "unknown shift 'fog' — choose one of: gaussian-noise";
  QTest::newRow("severity 0") << "contrast" << 0 << false
                              << "severity 0 — choose 1 (mild) to 5 (strong)";
  QTest::newRow("severity 6") << "jpeg" << 6 << false << "severity 6";
  QTest::newRow("needs groups") << "subpopulation" << 1 << false << "needs super-classes";
  QTest::newRow("tabular data") << "gaussian-blur" << 2 << true << "corrupts images, but";
}

void TestShifts::refusesWithAMessage() {
  QFETCH(QString, shift);
  QFETCH(int, severity);
  QFETCH(bool, tabular);
  QFETCH(QString, expected);
  const auto table = parseCsv("1,2,0\n3,4,1\n", "table.csv");
  const auto result =
      applyShift(tabular ? *table.dataset : sample(), shift.toStdString(), severity, 0);
  QVERIFY(!result);
  QVERIFY2(QString::fromStdString(result.error).contains(expected), result.error.c_str());
}

void TestShifts::makeShiftWritesAnImageFolderThatReadsBack() {
  QTemporaryDir dir;
  QString output;
  QCOMPARE(runCli({"make-shift", "--shift", "gaussian-noise", "--severity", "5", "--seed", "4",
                   "--limit", "200", "--out", dir.filePath("noisy")},
                  &output),
           0);
  QVERIFY2(output.contains("200 images"), qPrintable(output));
  const auto back = readImageFolder(dir.filePath("noisy").toStdString());
  QVERIFY2(back, back.error.c_str());
  QCOMPARE(back.dataset->size(), size_t(200));
  QCOMPARE(back.dataset->classNames, fashionMnistClassNames());  // via classes.txt
  QVERIFY(QString::fromStdString(back.notes.front()).contains("(classes.txt)"));
  // Files are read class by class; compare as multisets of (label, pixels).
  const auto expected = applyShift(fashionTest(), "gaussian-noise", 5, 4);
  std::multiset<std::pair<int, std::vector<int>>> want, got;
  const auto quantise = [](const float* p, std::size_t n) {
    std::vector<int> q(n);
    for (std::size_t i = 0; i < n; ++i) q[i] = int(std::lround(p[i] * 255));
    return q;
  };
  for (std::size_t i = 0; i < 200; ++i)
    want.emplace(expected.dataset->labels[i], quantise(expected.dataset->item(i), 784));
  for (std::size_t i = 0; i < 200; ++i)
    got.emplace(back.dataset->labels[i], quantise(back.dataset->item(i), 784));
  QVERIFY(want == got);
}

void TestShifts::makeShiftSubpopulationWritesSourceAndTarget() {
  QTemporaryDir dir;
  QString output;
  QCOMPARE(runCli({"make-shift", "--shift", "subpopulation", "--limit", "50", "--out", dir.path()},
                  &output),
           0);
  for (const char* part : {"source", "target"}) {
    const auto back = readImageFolder(dir.filePath(part).toStdString());
    QVERIFY2(back, back.error.c_str());
    QCOMPARE(back.dataset->size(), size_t(50));
    QCOMPARE(back.dataset->classNames.size(), size_t(5));
  }
  QCOMPARE(runCli({"make-shift", "--shift", "fog", "--out", dir.path()}, &output), 1);
  QVERIFY(output.contains("unknown shift 'fog'"));
}

void TestShifts::previewWritesAGrid() {
  QTemporaryDir dir;
  const QString file = dir.filePath("grid.png");
  QCOMPARE(
      runCli({"preview", "--shift", "contrast", "--count", "6", "--scale", "2", "--out", file}), 0);
  int width = 0, height = 0, channels = 0;
  QVERIFY(stbi_info(file.toUtf8().constData(), &width, &height, &channels));
  QCOMPARE(width, 6 * (56 + 2) + 2);   // six images of 28×2 with 2-pixel gaps
  QCOMPARE(height, 6 * (56 + 2) + 2);  // clean + five severities
}

QTEST_GUILESS_MAIN(TestShifts)
#include "test_shifts.moc"
