// Every activation tap of every fixture model against the output Python's forward hooks saw for
// the same input, and the model's own forward left untouched.

#include <torch/script.h>

#include <QtTest>

#include <map>
#include <set>

#include "analysis/activation_moments.h"
#include "model/activation_taps.h"
#include "model/channel_sums.h"
#include "model/script_model.h"
#include "support/reference.h"

using namespace scalpel;

namespace {

struct PythonTaps {
  torch::Tensor input;
  torch::Tensor output;
  std::map<std::string, torch::Tensor> taps;  // by call label ("pool", "pool#1")
};

PythonTaps readPythonTaps(const QString& model) {
  auto holder = torch::jit::load(test::fixture(model + ".reference.pt").toStdString());
  PythonTaps reference;
  reference.input = holder.attr("input").toTensor();
  reference.output = holder.attr("output").toTensor();
  for (const auto& item : holder.attr("taps").toGenericDict()) {
    reference.taps[item.key().toStringRef()] = item.value().toTensor();
  }
  return reference;
}

bool close(const torch::Tensor& a, const torch::Tensor& b) {
  return a.sizes() == b.sizes() && torch::allclose(a, b, 1e-4, 1e-5);
}

}  // namespace

class TestActivationTaps : public QObject {
  Q_OBJECT

 private Q_SLOTS:
  void initTestCase() { torch::manual_seed(0); }
  void matchPythonHooks_data();
  void matchPythonHooks();
  void selectedTapsOnly();
  void inPlaceOpsDoNotCorruptTaps();
  void onlyValuesWrittenInPlaceAreCopied();
  void channelSumsMatchPythonsActivations();
  void channelSumsOfEveryLayout_data();
  void channelSumsOfEveryLayout();
  void batchNormOutputSumsFromItsInput_data();
  void batchNormOutputSumsFromItsInput();
  void batchNormOutputsFollowTrainAndEval();
  void branchesOnAttributesAreFolded();
};

void TestActivationTaps::matchPythonHooks_data() {
  QTest::addColumn<QString>("model");
  for (const auto& model : test::fixtureModels()) QTest::newRow(qPrintable(model)) << model;
}

void TestActivationTaps::matchPythonHooks() {
  QFETCH(QString, model);
  auto loaded = ScriptModel::load(test::fixture(model + ".pt").toStdString());
  QVERIFY2(loaded, loaded.error.c_str());
  auto& module = loaded.model->module();
  module.eval();
  torch::NoGradGuard noGrad;
  const auto reference = readPythonTaps(model);

  const auto plainBefore = module.forward({reference.input}).toTensor();
  QVERIFY(close(plainBefore, reference.output));

  const ActivationTaps& taps = *loaded.model->taps();
  const auto result = taps.run(reference.input);
  QVERIFY(close(result.output.toTensor(), reference.output));

  // One tap per module call that returned a tensor, labelled as Python's hooks label them.
  std::map<std::string, torch::Tensor> ours;
  for (size_t i = 0; i < taps.tappedCalls().size(); ++i) {
    ours[taps.tappedCalls()[i].label()] = result.taps[i];
  }
  QStringList missing;
  for (const auto& [label, tensor] : reference.taps) {
    if (!ours.count(label)) missing << QString::fromStdString(label);
  }
  QVERIFY2(missing.isEmpty(), qPrintable("not tapped: " + missing.join(", ")));
  QCOMPARE(ours.size(), reference.taps.size());
  for (const auto& [label, expected] : reference.taps) {
    QVERIFY2(close(ours[label], expected), label.c_str());
  }

  // The model's own forward is untouched by the rewrite.
  const auto plainAfter = module.forward({reference.input}).toTensor();
  QVERIFY(torch::equal(plainBefore, plainAfter));
}

void TestActivationTaps::selectedTapsOnly() {
  auto loaded = ScriptModel::load(test::fixture("resnet18.pt").toStdString());
  QVERIFY(loaded);
  auto& module = loaded.model->module();
  module.eval();
  const ActivationTaps some(module, {"layer2.0.bn1", "layer1.0.relu", "fc"});
  QStringList labels;
  for (const auto& call : some.tappedCalls()) labels << QString::fromStdString(call.label());
  // In execution order; the shared relu is tapped at both of its calls.
  QCOMPARE(labels, QStringList({"layer1.0.relu", "layer1.0.relu#1", "layer2.0.bn1", "fc"}));
  // All calls are still listed (the order of the whole model), only four are returned.
  QCOMPARE(some.calls().size(), loaded.model->taps()->calls().size());

  torch::NoGradGuard noGrad;
  const auto reference = readPythonTaps("resnet18");
  const auto result = some.run(reference.input);
  QCOMPARE(result.taps.size(), size_t(4));
  QVERIFY(close(result.taps[2], reference.taps.at("layer2.0.bn1")));
  QVERIFY(close(result.taps[3], reference.output));
}

void TestActivationTaps::inPlaceOpsDoNotCorruptTaps() {
  // small_cnn's block: bn1 feeds ReLU(inplace=True) and bn2 feeds `out += identity`. Without the
  // clone, bn1's tap would equal relu's and bn2's would include the identity.
  auto loaded = ScriptModel::load(test::fixture("small_cnn.pt").toStdString());
  QVERIFY(loaded);
  loaded.model->module().eval();
  torch::NoGradGuard noGrad;
  const auto reference = readPythonTaps("small_cnn");
  const ActivationTaps taps(loaded.model->module(), {"block.bn1", "block.bn2", "block.relu"});
  const auto result = taps.run(reference.input);
  QCOMPARE(result.taps.size(), size_t(4));           // bn1, relu, bn2, relu#1
  QVERIFY(result.taps[0].lt(0).any().item<bool>());  // bn1 before ReLU has negatives
  QVERIFY(close(result.taps[0], reference.taps.at("block.bn1")));
  QVERIFY(close(result.taps[2], reference.taps.at("block.bn2")));
  QVERIFY(!close(result.taps[2], reference.taps.at("block")));
}

// A tap copies its value only where the model later writes to it in place: small_cnn's bn1 (its
// ReLU is in place) and bn2 (`out += identity`) need a copy; the BatchNorms' inputs (convolution
// outputs nothing writes to) are returned as they are, and still equal Python's.
void TestActivationTaps::onlyValuesWrittenInPlaceAreCopied() {
  auto loaded = ScriptModel::load(test::fixture("small_cnn.pt").toStdString());
  QVERIFY(loaded);
  loaded.model->module().eval();
  torch::NoGradGuard noGrad;
  const auto clones = [](const ActivationTaps& taps) {
    return static_cast<int>(QString::fromStdString(taps.graphText()).count("aten::clone"));
  };
  const ActivationTaps written(loaded.model->module(), {"block.bn1", "block.bn2"});
  QCOMPARE(clones(written), 2);
  const ActivationTaps inputs(loaded.model->module(), {"(no module outputs)"},
                              {"block.bn1", "block.bn2"});
  QCOMPARE(inputs.inputCalls().size(), size_t(2));
  QCOMPARE(clones(inputs), 0);
  const auto reference = readPythonTaps("small_cnn");
  const auto result = inputs.run(reference.input);
  QVERIFY(close(result.inputs[0], reference.taps.at("block.conv1")));
  QVERIFY(close(result.inputs[1], reference.taps.at("block.conv2")));
}

// Output::ChannelSums reduces each tap where its module call returns, before any in-place op:
// the per-channel moments equal those of Python's own activations (float64 here) for every tap
// of small_cnn (in-place ReLU, `out += identity`), its BatchNorm inputs, and the ViT's tokens
// ([N, T, C]: channels last), and no activation is copied.
void TestActivationTaps::channelSumsMatchPythonsActivations() {
  for (const char* name : {"small_cnn", "vit"}) {
    auto loaded = ScriptModel::load(test::fixture(QString(name) + ".pt").toStdString());
    QVERIFY(loaded);
    auto& module = loaded.model->module();
    module.eval();
    torch::NoGradGuard noGrad;
    const auto reference = readPythonTaps(name);
    std::vector<std::string> inputsOf;
    if (std::string(name) == "small_cnn") inputsOf = {"block.bn1", "block.bn2"};
    const ActivationTaps sums(module, {}, inputsOf, ActivationTaps::Output::ChannelSums);
    const auto graph = QString::fromStdString(sums.graphText());
    QVERIFY(!graph.contains("aten::clone"));
    const auto result = sums.run(reference.input);
    QCOMPARE(result.taps.size(), sums.tappedCalls().size());
    // One reduction per distinct value: a block and its last layer (small_cnn's `stem` and
    // `stem.2`) share one, and every reduction in the graph is returned.
    std::set<const void*> distinct;
    for (const auto* list : {&result.taps, &result.inputs}) {
      for (const auto& tap : *list) distinct.insert(tap.unsafeGetTensorImpl());
    }
    const int derived = graph.count("scalpel::batch_norm_output_sums(");
    QCOMPARE(graph.count("scalpel::channel_sums(") + derived, static_cast<int>(distinct.size()));
    if (std::string(name) == "small_cnn") {
      QVERIFY(distinct.size() < result.taps.size() + result.inputs.size());
      QCOMPARE(derived, 4);  // every BatchNorm's output (stem.1, block.bn1, block.bn2, bn2): a
                             // tapped conv feeds each
    }
    const auto moments = momentsFromChannelSums(result.taps);
    int compared = 0;
    const auto check = [&](const ChannelMoments& got, const torch::Tensor& activation,
                           const std::string& label) {
      auto x = activation.to(torch::kFloat64);
      x = x.dim() == 3  ? x.reshape({-1, x.size(2)})
          : x.dim() < 2 ? x.reshape({-1, 1})
                        : x.transpose(0, 1).reshape({x.size(1), -1}).t();
      const auto mean = x.mean(0), variance = x.var(0, /*unbiased=*/false);
      QCOMPARE(got.channels(), static_cast<std::size_t>(mean.numel()));
      QCOMPARE(got.count, static_cast<double>(x.size(0)));
      for (std::int64_t c = 0; c < mean.numel(); ++c) {
        const double m = mean[c].item<double>(), v = variance[c].item<double>();
        QVERIFY2(std::abs(got.mean[c] - m) < 1e-5 * (1 + std::abs(m)), label.c_str());
        QVERIFY2(std::abs(got.m2[c] / got.count - v) < 1e-4 * (1e-3 + v), label.c_str());
      }
      ++compared;
    };
    for (std::size_t i = 0; i < sums.tappedCalls().size(); ++i) {
      const auto label = sums.tappedCalls()[i].label();
      if (const auto it = reference.taps.find(label); it != reference.taps.end())
        check(moments[i], it->second, label);
    }
    const auto inputMoments = momentsFromChannelSums(result.inputs);
    for (std::size_t i = 0; i < inputsOf.size(); ++i) {
      const auto conv = i == 0 ? "block.conv1" : "block.conv2";  // each BatchNorm's input
      check(inputMoments[i], reference.taps.at(conv), std::string("input of ") + inputsOf[i]);
    }
    QVERIFY2(compared > 5, name);
  }
}

// channelSums (and its ATen path, the one off the CPU) against float64 sums of the same values,
// for every layout a tap can return (channel = dim 1, or the last dim of [N, T, C]), dtypes it
// converts, views it must copy, runs longer than a flush of its float32 lanes, and no items at all.
void TestActivationTaps::channelSumsOfEveryLayout_data() {
  QTest::addColumn<torch::Tensor>("activation");
  torch::manual_seed(3);
  const auto offset = [](torch::Tensor x) {
    return x * 2 + 5;
  };  // means far from 0 test the Σx² precision
  QTest::newRow("images, odd runs") << offset(torch::randn({37, 5, 9, 11}));
  QTest::newRow("features [N, C]") << offset(torch::randn({50, 7}));
  QTest::newRow("tokens [N, T, C]") << offset(torch::randn({4, 13, 24}));
  QTest::newRow("one dim") << offset(torch::randn({17}));
  QTest::newRow("scalar") << torch::tensor(3.5);
  QTest::newRow("5 dims") << offset(torch::randn({3, 4, 2, 3, 5}));
  QTest::newRow("channels last")
      << offset(torch::randn({6, 8, 10, 12})).contiguous(at::MemoryFormat::ChannelsLast);
  QTest::newRow("transposed") << offset(torch::randn({9, 20})).t();
  QTest::newRow("float64") << offset(torch::randn({10, 3, 40}, torch::kFloat64));
  QTest::newRow("float16") << offset(torch::randn({10, 3, 40})).to(torch::kHalf);
  QTest::newRow("integers") << torch::randint(0, 10, {10, 3, 40});
  QTest::newRow("long runs") << offset(torch::randn({2, 3, 100000}));
  QTest::newRow("many channels") << offset(torch::randn({64, 300, 4, 4}));
  // Runs shorter than a loop step are summed four items at a time: items left over, a tail
  // shorter than a vector, and batches long enough to flush between groups.
  QTest::newRow("short runs, 37 items") << offset(torch::randn({37, 5, 7, 7}));
  QTest::newRow("short runs past a flush") << offset(torch::randn({5003, 2, 3, 5}));
  QTest::newRow("no items") << torch::randn({0, 4, 5, 5});
}

void TestActivationTaps::channelSumsOfEveryLayout() {
  QFETCH(torch::Tensor, activation);
  auto x = activation.to(torch::kFloat64);
  x = x.dim() < 2    ? x.reshape({-1, 1})
      : x.dim() == 3 ? x.reshape({-1, x.size(2)})
                     : x.transpose(0, 1).reshape({x.size(1), -1}).t();
  const auto c = x.size(1);
  const auto sum = x.sum(0), square = (x * x).sum(0);
  const auto m2 = square - sum * sum / std::max<std::int64_t>(1, x.size(0));
  // The CPU pass, and ATen's reductions: the path a GPU takes, checked here on the CPU. ATen's
  // float32 reductions (a 2-norm for Σx²) are less exact: up to 8e-6 relative in Σx² and 7e-5 in
  // the spread on these rows (the CPU pass: 6e-8 and 1e-6), still far below any score's noise.
  struct Path {
    const char* name;
    torch::Tensor sums;
    double sumTolerance, squareTolerance, spreadTolerance;
  };
  for (const auto& [path, sums, sumTolerance, squareTolerance, spreadTolerance] :
       {Path{"CPU pass", channelSums(activation), 1e-6, 1e-6, 1e-4},
        Path{"ATen", channelSumsByAten(activation), 1e-5, 1e-4, 1e-3}}) {
    QCOMPARE(sums.scalar_type(), torch::kFloat64);
    QCOMPARE(sums.numel(), 2 * c + 1);
    QCOMPARE(sums[2 * c].item<double>(), static_cast<double>(x.size(0)));
    for (std::int64_t k = 0; k < c; ++k) {
      const auto where = std::string(path) + ", channel " + std::to_string(k);
      const double s = sums[k].item<double>(), q = sums[c + k].item<double>();
      QVERIFY2(std::abs(s - sum[k].item<double>()) <=
                   sumTolerance * (1 + std::abs(sum[k].item<double>())),
               where.c_str());
      QVERIFY2(std::abs(q - square[k].item<double>()) <=
                   squareTolerance * (1 + square[k].item<double>()),
               where.c_str());
      // The spread, what the shift scores use: Σx² - (Σx)²/n cancels most of Σx².
      const double got = q - s * s / std::max<double>(1, x.size(0));
      QVERIFY2(std::abs(got - m2[k].item<double>()) <= spreadTolerance * (1 + m2[k].item<double>()),
               where.c_str());
    }
  }
}

// batchNormOutputSums derives a BatchNorm's output sums from its input's (running statistics in
// eval, the batch's own in training), and reduces the output itself where it cannot. `output` is
// given as zeros: where the sums are derived they still match the real output's, where they are
// not they are 0.
void TestActivationTaps::batchNormOutputSumsFromItsInput_data() {
  QTest::addColumn<torch::Tensor>("input");
  QTest::addColumn<bool>("training");
  QTest::addColumn<bool>("runningStats");
  QTest::addColumn<bool>("derived");
  torch::manual_seed(5);
  const auto images = torch::randn({20, 6, 5, 7}) * 3 + 2;
  QTest::newRow("images, eval") << images << false << true << true;
  QTest::newRow("features [N, C], eval") << torch::randn({50, 6}) * 3 + 2 << false << true << true;
  QTest::newRow("5 dims, eval") << torch::randn({4, 6, 3, 4, 5}) << false << true << true;
  QTest::newRow("images, training") << images << true << true << true;
  QTest::newRow("training, no running statistics") << images << true << false << true;
  // channelSums reads [N, C, L] as tokens (channels last): nothing to derive from.
  QTest::newRow("[N, C, L], eval") << torch::randn({8, 6, 9}) << false << true << false;
  QTest::newRow("eval, no running statistics") << images << false << false << false;
}

void TestActivationTaps::batchNormOutputSumsFromItsInput() {
  QFETCH(torch::Tensor, input);
  QFETCH(bool, training);
  QFETCH(bool, runningStats);
  QFETCH(bool, derived);
  const auto mean = torch::randn({6}), variance = torch::rand({6}) + 0.5;
  const auto weight = torch::randn({6}), bias = torch::randn({6});
  const auto given = [&](const torch::Tensor& t) {
    return runningStats ? c10::optional<torch::Tensor>(t.clone()) : c10::nullopt;
  };
  // The layer's real output (in eval without running statistics BatchNorm refuses: any will do).
  const bool batchStats = training || !runningStats;
  const auto output =
      torch::batch_norm(input, weight, bias, batchStats ? torch::Tensor() : mean,
                        batchStats ? torch::Tensor() : variance, batchStats, 0.1, 1e-3, false);
  const auto got = batchNormOutputSums(torch::zeros_like(output), channelSums(input), given(mean),
                                       given(variance), weight, bias, training, 1e-3);
  const auto expected = channelSums(derived ? output : torch::zeros_like(output));
  QCOMPARE(got.sizes(), expected.sizes());
  const auto c = (got.numel() - 1) / 2;
  const auto n = got[2 * c].item<double>();
  QCOMPARE(n, expected[2 * c].item<double>());
  for (std::int64_t k = 0; k < c; ++k) {
    const double s = got[k].item<double>(), q = got[c + k].item<double>();
    const double es = expected[k].item<double>(), eq = expected[c + k].item<double>();
    QVERIFY2(std::abs(s - es) <= 1e-5 * (1 + std::abs(es)), std::to_string(k).c_str());
    QVERIFY2(std::abs((q - s * s / n) - (eq - es * es / n)) <= 1e-5 * (1 + eq),
             std::to_string(k).c_str());
  }
}

// In a rewritten forward every BatchNorm's output sums are derived from its input's, in eval
// (running statistics) and in train mode (the batch's own), and equal channelSums of the
// activation itself.
void TestActivationTaps::batchNormOutputsFollowTrainAndEval() {
  auto loaded = ScriptModel::load(test::fixture("demo_net.pt").toStdString());
  QVERIFY(loaded);
  auto& module = loaded.model->module();
  torch::NoGradGuard noGrad;
  const ActivationTaps sums(module, {}, {}, ActivationTaps::Output::ChannelSums);
  const ActivationTaps activations(module);
  QVERIFY(QString::fromStdString(sums.graphText()).count("scalpel::batch_norm_output_sums(") >= 9);
  torch::manual_seed(2);
  const auto input = torch::randn({16, 1, 28, 28});
  for (const bool training : {false, true}) {
    module.train(training);
    const auto reduced = sums.run(input).taps;
    const auto tapped = activations.run(input).taps;
    QCOMPARE(reduced.size(), tapped.size());
    int batchNorms = 0;
    for (std::size_t i = 0; i < tapped.size(); ++i) {
      const auto label = sums.tappedCalls()[i].label();
      batchNorms += sums.tappedCalls()[i].typeName == "BatchNorm2d";
      QVERIFY2(torch::allclose(reduced[i], channelSums(tapped[i]), 1e-5, 1e-4), label.c_str());
    }
    QCOMPARE(batchNorms, 9);
  }
  module.eval();
}

void TestActivationTaps::branchesOnAttributesAreFolded() {
  // mobilenet_v2's InvertedResidual calls self.conv in both arms of `if self.use_res_connect`:
  // after folding, each block's conv is called once and is tappable.
  auto loaded = ScriptModel::load(test::fixture("mobilenet_v2.pt").toStdString());
  QVERIFY(loaded);
  int convCalls = 0;
  for (const auto& call : loaded.model->taps()->calls()) {
    if (call.module == "features.3.conv") {
      ++convCalls;
      QVERIFY(call.tappable);
    }
  }
  QCOMPARE(convCalls, 1);
  // Training mode still switches: `training` is never folded.
  auto& module = loaded.model->module();
  const auto reference = readPythonTaps("mobilenet_v2");
  torch::NoGradGuard noGrad;
  module.eval();
  const auto evalOut = loaded.model->taps()->run(reference.input).output.toTensor();
  QVERIFY(close(evalOut, reference.output));
  module.train();  // BatchNorm now uses batch statistics (and updates its running ones)
  const auto trainOut = loaded.model->taps()->run(reference.input).output.toTensor();
  QVERIFY(!close(trainOut, evalOut));
}

QTEST_GUILESS_MAIN(TestActivationTaps)
#include "test_activation_taps.moc"
