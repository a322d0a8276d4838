// The layer tree against Python's named_modules() and forward hooks, for every fixture model;
// and the tree's own operations (blocks, regrouping, shapes).

#include <QtTest>

#include <set>

#include "model/layer_tree.h"
#include "model/model_inspection.h"
#include "support/reference.h"

using namespace scalpel;

class TestLayerTree : public QObject {
  Q_OBJECT

 private Q_SLOTS:
  void matchesPython_data();
  void matchesPython();
  void defaultBlocksAreTrainableUnits();
  void regroupValidates();
  void parsesShapes_data();
  void parsesShapes();
};

void TestLayerTree::matchesPython_data() {
  QTest::addColumn<QString>("model");
  for (const auto& model : test::fixtureModels()) QTest::newRow(qPrintable(model)) << model;
}

void TestLayerTree::matchesPython() {
  QFETCH(QString, model);
  const auto reference = test::pythonReference(model);
  QVERIFY2(!reference.isEmpty(), "fixture reference missing: run the make_fixtures test");

  InspectOptions options;
  options.inputShape = test::toShape(reference["input_shape"].toArray());
  const auto inspection = inspectModel(test::fixture(model + ".pt").toStdString(), options);
  QVERIFY2(inspection.ok, inspection.error.c_str());
  const LayerTree& tree = inspection.tree;

  // Same modules, with the same types, parameter counts, BatchNorm buffers and call counts.
  const auto modules = reference["modules"].toArray();
  QCOMPARE(tree.size(), modules.size());
  for (const auto& value : modules) {
    const auto expected = value.toObject();
    const auto name = expected["name"].toString().toStdString();
    const auto index = tree.find(name);
    QVERIFY2(index.has_value(), name.c_str());
    const auto& node = tree.node(*index);
    QCOMPARE(QString::fromStdString(node.typeName), expected["type"].toString());
    QCOMPARE(node.ownParameters, expected["own_parameters"].toInteger());
    QCOMPARE(node.totalParameters, expected["total_parameters"].toInteger());
    QCOMPARE(node.hasBatchNormStats, expected["batchnorm_stats"].toBool());
    QCOMPARE(node.callCount, expected["calls"].toInt());
  }

  // Execution order: the modules Python's pre-hooks saw start, in that order (first calls).
  QStringList pythonOrder;
  for (const auto& label : reference["call_order"].toArray()) {
    if (!label.toString().contains('#')) pythonOrder << label.toString();
  }
  QStringList ourOrder;
  for (int index : tree.preorder()) {
    if (tree.node(index).callCount > 0 && index != 0) {
      ourOrder << QString::fromStdString(tree.node(index).name);
    }
  }
  QCOMPARE(ourOrder, pythonOrder);

  // Output shapes from the probe equal the shapes the hooks saw.
  const auto shapes = reference["tap_shapes"].toObject();
  for (auto it = shapes.begin(); it != shapes.end(); ++it) {
    if (it.key().contains('#')) continue;
    const auto index = tree.find(it.key().toStdString());
    QVERIFY(index.has_value());
    QCOMPARE(tree.node(*index).outputShape, test::toShape(it.value().toArray()));
  }
}

void TestLayerTree::defaultBlocksAreTrainableUnits() {
  const auto inspection = inspectModel(test::fixture("resnet18.pt").toStdString());
  QVERIFY2(inspection.ok, inspection.error.c_str());
  QStringList names;
  for (const auto& block : inspection.tree.blocks()) names << QString::fromStdString(block.name);
  // conv1, bn1, relu and maxpool are the stem; the parameter-free avgpool joins layer4: never a
  // lone BatchNorm, activation or pooling block.
  QCOMPARE(names, QStringList({"stem", "layer1", "layer2", "layer3", "layer4", "fc"}));
  QCOMPARE(inspection.tree.blocks()[0].members.size(), size_t(4));
  const auto layer2 = inspection.tree.find("layer2.1.conv2");
  QVERIFY(layer2.has_value());
  QCOMPARE(inspection.tree.blockOf(*layer2), 2);
  QCOMPARE(inspection.tree.blockOf(*inspection.tree.find("avgpool")), 4);
  // Probed with the 224×224 input stored in the model's metadata.
  QCOMPARE(inspection.inputShape, (std::vector<std::int64_t>{1, 3, 224, 224}));
  QCOMPARE(inspection.tree.node(*inspection.tree.find("layer4")).outputShape,
           (std::vector<std::int64_t>{1, 512, 7, 7}));
}

void TestLayerTree::regroupValidates() {
  auto inspection = inspectModel(test::fixture("resnet18.pt").toStdString());
  QVERIFY(inspection.ok);
  LayerTree tree = inspection.tree;
  // The paper's ResNet blocks.
  QCOMPARE(tree.regroup({{"conv1", "bn1", "relu", "maxpool", "layer1"},
                         {"layer2"},
                         {"layer3"},
                         {"layer4"},
                         {"avgpool", "fc"}}),
           std::string());
  QCOMPARE(tree.blocks().size(), size_t(5));
  QCOMPARE(tree.blocks()[0].name, std::string("conv1+bn1+relu+maxpool+layer1"));
  QCOMPARE(tree.blockOf(*tree.find("layer1.1.bn2")), 0);
  QCOMPARE(tree.blockOf(*tree.find("fc")), 4);
  std::int64_t sum = 0;
  for (const auto& block : tree.blocks()) sum += block.totalParameters;
  QCOMPARE(sum, tree.node(0).totalParameters);

  const auto before = tree.blocks().size();
  QVERIFY(tree.regroup({{"layer2"}, {"conv1"}}).find("out of place") != std::string::npos);
  QVERIFY(tree.regroup({{"conv1", "bn1"}}).find("leave out 'relu'") != std::string::npos);
  QVERIFY(tree.regroup({{"layer1.0"}}).find("not a top-level layer") != std::string::npos);
  QCOMPARE(tree.blocks().size(), before);  // a failed regroup changes nothing
}

void TestLayerTree::parsesShapes_data() {
  QTest::addColumn<QString>("text");
  QTest::addColumn<bool>("valid");
  QTest::addColumn<QString>("formatted");
  QTest::newRow("commas") << "1,3,224,224" << true << "1×3×224×224";
  QTest::newRow("x") << "1x3x32x32" << true << "1×3×32×32";
  QTest::newRow("times sign") << "1×12" << true << "1×12";
  QTest::newRow("spaces") << "1, 3, 8, 8" << true << "1×3×8×8";
  QTest::newRow("empty") << "" << false << "";
  QTest::newRow("zero") << "1,0,4" << false << "";
  QTest::newRow("negative") << "1,-3" << false << "";
  QTest::newRow("letters") << "1,a,4" << false << "";
  QTest::newRow("trailing comma") << "1,3," << false << "";
  QTest::newRow("huge") << "1,99999999999" << false << "";
}

void TestLayerTree::parsesShapes() {
  QFETCH(QString, text);
  QFETCH(bool, valid);
  QFETCH(QString, formatted);
  const auto shape = parseShape(text.toStdString());
  QCOMPARE(shape.has_value(), valid);
  if (valid) QCOMPARE(QString::fromStdString(formatShape(*shape)), formatted);
}

QTEST_GUILESS_MAIN(TestLayerTree)
#include "test_layer_tree.moc"
