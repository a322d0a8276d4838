// The advisor on the trained demo model and real Fashion-MNIST shifts: each kind of shift gets
// its diagnosis, evidence with numbers, and the plan METHOD.md predicts; every strategy plans.

#include <limits>

#include <QtTest>

#include "analysis/advisor.h"
#include "analysis/gradient_profile.h"
#include "analysis/plan_candidates.h"
#include "analysis/shift_analysis.h"
#include "data/idx_reader.h"
#include "data/shifts.h"
#include "model/model_inspection.h"
#include "support/reference.h"
#include "util/number_text.h"

using namespace scalpel;

namespace {

const std::string kDemo = test::demoModelPath();

const Dataset& fashionTest() {
  static const Dataset data = *readFashionMnist("test").dataset;
  return data;
}

const LayerTree& demoTree() {
  static const LayerTree tree = inspectModel(kDemo).tree;
  return tree;
}

ShiftAnalysis analysed(const Dataset& target, const Dataset* source = nullptr) {
  AnalysisOptions options;
  options.maxBatches = 10;
  options.sourceItems = 2000;
  return analyzeShift(test::demo(), target, source, options);
}

Diagnosis diagnosed(const Dataset& target, const Dataset* source = nullptr) {
  return diagnose(analysed(target, source), demoTree());
}

const LayerScore& layerScore(const ShiftAnalysis& analysis, const std::string& name) {
  for (const auto& score : analysis.snapshots.back().layers) {
    if (score.layer == name) return score;
  }
  static const LayerScore none;
  return none;
}

QString joined(const Diagnosis& d) {
  QStringList lines{QString::fromStdString(d.summary)};
  for (const auto& e : d.evidence) lines << QString::fromStdString(e);
  return lines.join("\n");
}

std::vector<std::string> autoPlan(const Diagnosis& diagnosis) {
  FreezePlan plan;
  const auto problem = planFreeze("auto", demoTree(), diagnosis, nullptr, plan);
  return problem.empty() ? plan.trainable : std::vector<std::string>{"error: " + problem};
}

}  // namespace

class TestAdvisor : public QObject {
  Q_OBJECT

 private Q_SLOTS:
  void initTestCase() { QVERIFY(demoTree().size() > 10); }
  void gaussianNoiseIsInputLevel();
  void labelPermutationIsOutputLevel();
  void subpopulationIsFeatureLevel();
  void cleanDataHasNoShift();
  void strategies();
  void sentencesAgreeWithTheirFigures();
  void candidatePlans_data();
  void candidatePlans();
  void closeCallsAreSaid();
  void scoresAreWrittenAlike();
};

void TestAdvisor::gaussianNoiseIsInputLevel() {
  const auto analysis = analysed(*applyShift(fashionTest(), "gaussian-noise", 5, 0).dataset);
  const auto d = diagnose(analysis, demoTree());
  qInfo("%s", qPrintable(joined(d)));
  QCOMPARE(d.kind, ShiftKind::InputLevel);
  QCOMPARE(d.firstSignificantLayer, std::string("stem.1"));
  // The evidence quotes the analysis' own figures (whatever they are for this demo model).
  const auto& first = layerScore(analysis, "stem.1");
  test::figure("advisor.noise.stem1_floor_multiple", first.kl / first.noiseFloor);
  test::figure("advisor.noise.accuracy", analysis.output.accuracy);
  const auto quoted =
      QRegularExpression(R"(stem\.1 \(BatchNorm2d, KL ([0-9.e+-]+), ([0-9]+)× the noise floor\))")
          .match(joined(d));
  QVERIFY2(quoted.hasMatch(), qPrintable(joined(d)));
  QVERIFY2(std::abs(quoted.captured(1).toDouble() / first.kl - 1) < 0.006,
           qPrintable(quoted.captured(0)));
  QVERIFY2(std::abs(quoted.captured(2).toDouble() - first.kl / first.noiseFloor) <= 0.5,
           qPrintable(quoted.captured(0)));
  const auto accuracy =
      QRegularExpression(R"(accuracy on the target is ([0-9.]+)%)").match(joined(d));
  QVERIFY2(accuracy.hasMatch(), qPrintable(joined(d)));
  QVERIFY(std::abs(accuracy.captured(1).toDouble() - 100 * analysis.output.accuracy) <= 0.05);
  // stem holds 0.2% of the parameters, too few alone: the first blocks up to 0.5% train.
  QCOMPARE(autoPlan(d), (std::vector<std::string>{"stem", "layer1"}));
}

void TestAdvisor::labelPermutationIsOutputLevel() {
  const auto d = diagnosed(*applyShift(fashionTest(), "label-permutation", 1, 2).dataset);
  qInfo("%s", qPrintable(joined(d)));
  QCOMPARE(d.kind, ShiftKind::OutputLevel);
  QVERIFY(joined(d).contains("consistent permutation"));
  QCOMPARE(autoPlan(d), std::vector<std::string>{"fc"});
}

void TestAdvisor::subpopulationIsFeatureLevel() {
  SuperClasses classes;
  QCOMPARE(
      readSuperClasses(SCALPEL_RESOURCE_DIR "/shifts/fashion-mnist-superclasses.json", classes),
      std::string());
  SubpopulationData parts;
  QCOMPARE(subpopulationShift(fashionTest(), classes, parts), std::string());
  const auto d = diagnosed(parts.target, &parts.source);
  qInfo("%s", qPrintable(joined(d)));
  QCOMPARE(d.kind, ShiftKind::FeatureLevel);
  QVERIFY(joined(d).contains("layers before it are not significant"));
  QVERIFY(joined(d).contains("accuracy there is not measured"));  // 10 outputs, 5 super-classes
  const auto plan = autoPlan(d);
  QCOMPARE(plan.size(), size_t(1));
  QVERIFY2(plan.front() == "layer2" || plan.front() == "layer3", plan.front().c_str());
}

void TestAdvisor::cleanDataHasNoShift() {
  const auto d = diagnosed(fashionTest());
  qInfo("%s", qPrintable(joined(d)));
  QCOMPARE(d.kind, ShiftKind::None);
  QVERIFY(d.firstSignificantLayer.empty());
  QVERIFY(autoPlan(d).empty());
}

void TestAdvisor::sentencesAgreeWithTheirFigures() {
  // Two early layers below significance — one at 25× its floor but under the KL minimum — then a
  // shift in layer2: what the sentence calls not significant must not be, by its own figures.
  const auto& tree = demoTree();
  const auto node = [&](const char* name) { return *tree.find(name); };
  ShiftAnalysis analysis;
  analysis.ok = true;
  ShiftSnapshot snapshot;
  snapshot.targetItems = 500;
  snapshot.layers = {{"stem.1", node("stem.1"), 0, "BatchNorm2d", 16, 0.015, 0, 0.0006},
                     {"layer1.bn1", node("layer1.bn1"), 0, "BatchNorm2d", 16, 0.01, 0, 0.001},
                     {"layer2.bn1", node("layer2.bn1"), 0, "BatchNorm2d", 32, 0.6, 0, 0.001}};
  analysis.snapshots = {snapshot};
  const auto d = diagnose(analysis, tree);
  qInfo("%s", qPrintable(joined(d)));
  QCOMPARE(d.kind, ShiftKind::FeatureLevel);
  QVERIFY(
      joined(d).contains("the 2 layers before it are not significant (that takes a KL above "
                         "0.02 and above 20× the noise floor; the highest: stem.1 "
                         "(BatchNorm2d, KL 0.015, 25× the noise floor))"));
  QVERIFY(joined(d).contains("first rises above noise at layer2.bn1"));
  QVERIFY(!joined(d).contains("near the noise floor"));
}

void TestAdvisor::strategies() {
  const Diagnosis none;
  FreezePlan plan;
  QCOMPARE(planFreeze("all", demoTree(), none, nullptr, plan), std::string());
  QCOMPARE(plan.trainable, (std::vector<std::string>{"stem", "layer1", "layer2", "layer3",
                                                     "fc"}));  // pool has no parameters
  // What a plan trains alone: the blocks with parameters, the tiny stem (0.2%) with layer1.
  using Units = std::vector<std::vector<std::string>>;
  QCOMPARE(trainingUnits(demoTree()), (Units{{"stem", "layer1"}, {"layer2"}, {"layer3"}, {"fc"}}));
  AdvisorThresholds noMinimum;
  noMinimum.minimumInputShare = 0;
  QCOMPARE(trainingUnits(demoTree(), noMinimum),
           (Units{{"stem"}, {"layer1"}, {"layer2"}, {"layer3"}, {"fc"}}));
  QCOMPARE(planFreeze("last", demoTree(), none, nullptr, plan), std::string());
  QCOMPARE(plan.trainable, std::vector<std::string>{"fc"});
  QCOMPARE(planFreeze("block:layer2", demoTree(), none, nullptr, plan), std::string());
  QCOMPARE(plan.trainable, std::vector<std::string>{"layer2"});
  QVERIFY(planFreeze("block:pool", demoTree(), none, nullptr, plan)
              .find("no block 'pool' with parameters") != std::string::npos);
  QVERIFY(planFreeze("everything", demoTree(), none, nullptr, plan).find("unknown strategy") !=
          std::string::npos);
  QVERIFY(planFreeze("auto-rgn", demoTree(), none, nullptr, plan).find("needs the gradients") !=
          std::string::npos);

  GradientOptions options;
  options.batches = 3;
  const auto gradients = gradientProfile(
      test::demo(), *applyShift(fashionTest(), "gaussian-noise", 5, 0).dataset, options);
  QVERIFY2(gradients.ok, gradients.error.c_str());
  QCOMPARE(planFreeze("auto-rgn", demoTree(), none, &gradients, plan), std::string());
  QVERIFY(plan.trainable.size() >= 8);  // every conv and the head; BatchNorms are left out
  double largest = 0;
  for (const auto& [module, scale] : plan.learningRateScale) {
    QVERIFY(scale > 0 && scale <= 1);
    QVERIFY(module.find("bn") == std::string::npos);
    largest = std::max(largest, scale);
  }
  QCOMPARE(largest, 1.0);
}

// What the validated plan weighs, per kind of shift: the diagnosed unit, it joined with each
// neighbour, Auto-RGN, every layer; both BatchNorm modes where the plan trains a BatchNorm (the
// linear head has none); recalibration alone. No two candidates are the same plan.
void TestAdvisor::candidatePlans_data() {
  QTest::addColumn<int>("kind");
  QTest::addColumn<QStringList>("expected");
  QTest::newRow("input-level") << int(ShiftKind::InputLevel)
                               << QStringList{"stem+layer1 · BN eval",
                                              "stem+layer1 · BN train",
                                              "stem+layer1+layer2 · BN eval",
                                              "stem+layer1+layer2 · BN train",
                                              "auto-rgn · BN eval",
                                              "all · BN eval",
                                              "all · BN train",
                                              "recalibrate"};
  QTest::newRow("feature-level") << int(ShiftKind::FeatureLevel)
                                 << QStringList{
                                        "layer3 · BN eval",        "layer3 · BN train",
                                        "layer2+layer3 · BN eval", "layer2+layer3 · BN train",
                                        "layer3+fc · BN eval",     "layer3+fc · BN train",
                                        "auto-rgn · BN eval",      "all · BN eval",
                                        "all · BN train",          "recalibrate"};
  QTest::newRow("output-level") << int(ShiftKind::OutputLevel)
                                << QStringList{"fc · BN eval",         "layer3+fc · BN eval",
                                               "layer3+fc · BN train", "auto-rgn · BN eval",
                                               "all · BN eval",        "all · BN train",
                                               "recalibrate"};
  // No shift names no block: the last one stands in for it.
  QTest::newRow("none") << int(ShiftKind::None)
                        << QStringList{"fc · BN eval",         "layer3+fc · BN eval",
                                       "layer3+fc · BN train", "auto-rgn · BN eval",
                                       "all · BN eval",        "all · BN train",
                                       "recalibrate"};
}

void TestAdvisor::candidatePlans() {
  QFETCH(int, kind);
  QFETCH(QStringList, expected);
  const auto& tree = demoTree();
  Diagnosis diagnosis;
  diagnosis.kind = static_cast<ShiftKind>(kind);
  if (diagnosis.kind == ShiftKind::FeatureLevel) {
    for (int i = 0; i < static_cast<int>(tree.size()); ++i) {
      if (tree.node(i).name == "layer3.conv1") diagnosis.firstSignificantNode = i;
    }
  }
  // Auto-RGN's plan as planFreeze makes it from gradients: every module with weights, scaled.
  FreezePlan rgn;
  rgn.strategy = "auto-rgn";
  for (const char* module : {"stem.0", "layer1.conv1", "fc"}) {
    rgn.trainable.push_back(module);
    rgn.learningRateScale[module] = 0.5;
  }
  const auto candidates = proposePlans(tree, diagnosis, &rgn);
  QStringList names;
  for (const auto& candidate : candidates) names << QString::fromStdString(candidate.name);
  QCOMPARE(names, expected);
  QCOMPARE(QString::fromStdString(candidates.front().origin),
           diagnosis.kind == ShiftKind::None ? QString("neighbour") : QString("diagnosis"));
  for (const auto& candidate : candidates) {
    QCOMPARE(candidate.plan.strategy, std::string("auto"));
    if (candidate.origin == "recalibrate") {
      QVERIFY(candidate.plan.trainable.empty() && candidate.plan.recalibrate);
      continue;
    }
    QVERIFY(!candidate.plan.trainable.empty());
    QVERIFY(!candidate.plan.recalibrate);  // only once the search has seen it help
    QCOMPARE(rescalesByRgn(candidate.plan), candidate.origin == "auto-rgn");
    QVERIFY(candidate.plan.batchNorm == "eval" || candidate.plan.batchNorm == "train");
  }
  // The merged first unit: its blocks, in order.
  if (diagnosis.kind == ShiftKind::InputLevel) {
    FreezePlan stem, layer1;
    planFreeze("block:stem", tree, diagnosis, nullptr, stem);
    planFreeze("block:layer1", tree, diagnosis, nullptr, layer1);
    auto both = stem.trainable;
    both.insert(both.end(), layer1.trainable.begin(), layer1.trainable.end());
    QCOMPARE(candidates.front().plan.trainable, both);
  }
}

// A finalist within one standard error of the winner on the validation split is named as a tie
// that split cannot break (on the demo's sub-population task layer3 and layer2+layer3 were one:
// docs/sweep); a clear margin, a rival ruled out for what it forgot, or an R² says nothing.
void TestAdvisor::closeCallsAreSaid() {
  PlanCandidate winner;
  winner.name = "layer2+layer3 · BN train";
  winner.origin = "neighbour";
  winner.plan.trainable = {"layer2", "layer3"};
  winner.epochs = {1, 3};
  winner.validation = {0.752, 0.880};
  winner.outcome = "chosen";
  PlanCandidate rival = winner;
  rival.name = "layer3 · BN train";
  rival.origin = "diagnosis";
  rival.plan.trainable = {"layer3"};
  rival.validation = {0.652, 0.872};
  rival.outcome = kLostLastRound;
  PlanCandidate early = rival;
  early.name = "layer3+fc · BN eval";
  early.epochs = {1};
  early.validation = {0.876};  // higher, but after one epoch: not a finalist
  early.outcome = "out after round 1";
  PlanSearch search;
  search.candidates = {winner, rival, early};
  search.chosen = 0;
  search.runs = 5;
  search.validationItems = 250;  // one standard error at 88 %: 2.1 points
  const auto said = [&] { return explainSearch(search); };
  QVERIFY2(
      said().find("layer3 · BN train came within 0.8 points of layer2+layer3 · BN train, less "
                  "than one standard error on 250 validation items (2.1)") != std::string::npos,
      said().c_str());
  QVERIFY(said().find("layer3+fc") == std::string::npos);
  // A caveat on the choice, said after what the choice is and what it keeps, before its cost.
  search.sourceBefore = 0.973;
  search.candidates[0].sourceAfter = 0.754;
  QVERIFY2(said().find("came within") > said().find("Source accuracy 97.3% → 75.4%"),
           said().c_str());
  QVERIFY2(said().find("came within") < said().find("The search took"), said().c_str());

  search.validationItems = 10000;  // the same margin, measured on 40× the items: clear
  QVERIFY2(said().find("came within") == std::string::npos, said().c_str());
  search.validationItems = 250;
  search.candidates[1].validation.back() = 0.84;
  QVERIFY2(said().find("came within") == std::string::npos, said().c_str());
  search.candidates[1].validation.back() = 0.879;
  search.candidates[1].outcome = "lost 6.1 source points (limit 2.0)";
  QVERIFY2(said().find("came within") == std::string::npos, said().c_str());
  search.candidates[1].outcome = kLostLastRound;
  QVERIFY(said().find("came within 0.1 points") != std::string::npos);
  search.scoreName = "R²";
  QVERIFY2(said().find("came within") == std::string::npos, said().c_str());
  search.scoreName = "accuracy";
  search.validationItems = 0;  // a report from before the split's size was kept
  QVERIFY2(said().find("came within") == std::string::npos, said().c_str());
}

// The one way scores are written (util/number_text.h): the CLI, the window, the reports and the
// explanations print the same digits, and a score that was never measured reads "n/a", not "nan".
void TestAdvisor::scoresAreWrittenAlike() {
  QCOMPARE(percent(0.912), std::string("91.2%"));
  QCOMPARE(percent(0.91249), std::string("91.2%"));
  QCOMPARE(percent(1.0), std::string("100.0%"));
  QCOMPARE(points(0.123), std::string("12.3"));
  QCOMPARE(points(-0.021), std::string("-2.1"));
  QCOMPARE(percent(std::numeric_limits<double>::quiet_NaN()), std::string("n/a"));
  QCOMPARE(points(std::numeric_limits<double>::infinity()), std::string("n/a"));
}

QTEST_GUILESS_MAIN(TestAdvisor)
#include "test_advisor.moc"
