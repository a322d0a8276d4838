// RGN and SNR against a Python reference computed by Debian's PyTorch on the same model, weights
// and batches; and the roll-ups per module and block on the demo model.

#include <torch/script.h>

#include <QtTest>

#include "analysis/gradient_metrics.h"
#include "analysis/gradient_profile.h"
#include "data/idx_reader.h"
#include "support/reference.h"

using namespace scalpel;

class TestGradients : public QObject {
  Q_OBJECT

 private Q_SLOTS:
  void matchPython_data();
  void matchPython();
  void rollUpsLeaveOutBatchNormAffine();
};

void TestGradients::matchPython_data() {
  QTest::addColumn<QString>("model");
  QTest::newRow("small_cnn") << "small_cnn";
  QTest::newRow("mlp") << "mlp";
}

void TestGradients::matchPython() {
  QFETCH(QString, model);
  const auto reference = test::pythonReference(model)["gradients"].toObject();
  QVERIFY(!reference.isEmpty());
  auto holder = torch::jit::load(test::fixture(model + ".reference.pt").toStdString());
  const auto inputs = holder.attr("grad_inputs").toList();
  const auto labels = holder.attr("grad_labels").toList();
  std::vector<Batch> batches;
  for (size_t b = 0; b < inputs.size(); ++b) {
    batches.push_back(Batch{inputs.get(b).toTensor(), labels.get(b).toTensor()});
  }
  auto module = torch::jit::load(test::fixture(model + ".pt").toStdString());
  const auto gradients = parameterGradients(module, batches);
  QCOMPARE(int(gradients.size()), reference.size());
  const auto close = [](double a, double b) {
    return std::abs(a - b) <= 1e-4 * std::abs(b) + 1e-9;
  };
  for (const auto& g : gradients) {
    const auto expected = reference[QString::fromStdString(g.name)].toObject();
    QVERIFY2(close(g.rgn, expected["rgn"].toDouble()),
             qPrintable(QString("%1 RGN %2 vs %3")
                            .arg(g.name.c_str())
                            .arg(g.rgn)
                            .arg(expected["rgn"].toDouble())));
    QVERIFY2(close(g.snr, expected["snr"].toDouble()),
             qPrintable(QString("%1 SNR %2 vs %3")
                            .arg(g.name.c_str())
                            .arg(g.snr)
                            .arg(expected["snr"].toDouble())));
  }
  // BatchNorm weights and biases are marked as such.
  for (const auto& g : gradients) {
    QCOMPARE(g.batchNormAffine, model == "small_cnn" && (g.module == "stem.1" ||
                                                         g.module.find("bn") != std::string::npos));
  }
}

void TestGradients::rollUpsLeaveOutBatchNormAffine() {
  const Dataset test = *readFashionMnist("test").dataset;
  GradientOptions options;
  options.batches = 3;
  const auto profile = gradientProfile(test::openedFixture("demo_net.pt"), test, options);
  QVERIFY2(profile.ok, profile.error.c_str());
  QStringList blocks;
  for (const auto& block : profile.blocks) blocks << QString::fromStdString(block.name);
  // The parameter-free pool joins layer3's block: nothing to train on its own.
  QCOMPARE(blocks, QStringList({"stem", "layer1", "layer2", "layer3", "fc"}));
  bool sawBatchNorm = false;
  for (const auto& module : profile.modules) sawBatchNorm |= module.name == "layer1.bn1";
  QVERIFY(!sawBatchNorm);  // its only parameters are affine
  QVERIFY(profile.blocks[4].parameters > 0);
  QVERIFY(profile.blocks[4].rgn > 0);

  options.includeBatchNormAffine = true;
  const auto withAffine = gradientProfile(test::openedFixture("demo_net.pt"), test, options);
  QVERIFY(withAffine.ok);
  sawBatchNorm = false;
  for (const auto& module : withAffine.modules) sawBatchNorm |= module.name == "layer1.bn1";
  QVERIFY(sawBatchNorm);
  // A block's roll-up: the RGN of all its tensors together.
  std::vector<const ParameterGradient*> fc;
  for (const auto& p : withAffine.parameters) {
    if (p.module == "fc") fc.push_back(&p);
  }
  QCOMPARE(rollUp("fc", fc).rgn, withAffine.blocks[4].rgn);
}

QTEST_GUILESS_MAIN(TestGradients)
#include "test_gradients.moc"
