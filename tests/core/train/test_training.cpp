// Batches and pretraining on real Fashion-MNIST with a real scripted model: batches are
// normalised with the given statistics and cover an epoch in a seeded order; pretrain learns,
// saves its preprocessing with the model, is deterministic for a seed, and refuses a model
// whose outputs do not match the classes.

#include <torch/script.h>

#include <QTemporaryDir>
#include <QtTest>

#include <numeric>
#include <set>

#include "data/batch_stream.h"
#include "data/idx_reader.h"
#include "model/model_inspection.h"
#include "support/reference.h"
#include "train/pretrain.h"

using namespace scalpel;

class TestTraining : public QObject {
  Q_OBJECT

 private Q_SLOTS:
  void batchesCoverAnEpochInSeededOrder();
  void batchesAreNormalisedWithGivenStatistics();
  void residentBatchesEqualStreamedOnes();
  void regressionBatchesCarryTheirTargets();
  void pretrainLearnsAndStoresPreprocessing();
  void pretrainIsDeterministicForASeed();
  void pretrainRefusesMismatchedOutputs();
  void pretrainCanBeCancelled();

 private:
  static PretrainOptions smallRun() {
    PretrainOptions options;
    options.epochs = 2;
    options.batchSize = 64;
    options.trainLimit = 2000;
    options.testLimit = 1000;
    options.seed = 3;
    return options;
  }
};

void TestTraining::batchesCoverAnEpochInSeededOrder() {
  auto data = std::make_shared<const Dataset>(*readFashionMnist("test").dataset);
  std::vector<std::size_t> indices(1000);
  std::iota(indices.begin(), indices.end(), 0);
  BatchStream::Options options;
  options.batchSize = 64;
  options.seed = 9;
  BatchStream stream(data, indices, options);
  QCOMPARE(stream.batchesPerEpoch(), size_t(16));  // 15 full batches and one of 40
  std::size_t batches = 0;
  const auto labelsOfEpoch = [&](int epoch) -> std::vector<std::int64_t> {
    std::vector<std::int64_t> labels;
    stream.startEpoch(epoch);
    batches = 0;
    while (auto batch = stream.next()) {
      ++batches;
      const auto* p = batch->targets.data_ptr<std::int64_t>();
      labels.insert(labels.end(), p, p + batch->targets.size(0));
    }
    return labels;
  };
  const auto first = labelsOfEpoch(0);
  QCOMPARE(batches, size_t(16));
  QCOMPARE(first.size(), size_t(1000));
  QCOMPARE(labelsOfEpoch(0), first);  // same seed and epoch, same order
  const auto second = labelsOfEpoch(1);
  QVERIFY(second != first);  // reshuffled each epoch
  auto a = first, b = second;
  std::sort(a.begin(), a.end());
  std::sort(b.begin(), b.end());
  QCOMPARE(a, b);  // the same items
  // Stopping mid-epoch and starting the next one is safe.
  stream.startEpoch(2);
  QVERIFY(stream.next().has_value());
  stream.startEpoch(3);
  QVERIFY(stream.next().has_value());
}

void TestTraining::batchesAreNormalisedWithGivenStatistics() {
  auto data = std::make_shared<const Dataset>(*readFashionMnist("test").dataset);
  BatchStream::Options options;
  options.batchSize = 8;
  options.shuffle = false;
  options.mean = {0.25};
  options.std = {0.5};
  BatchStream stream(data, {0, 1, 2}, options);
  stream.startEpoch(0);
  const auto batch = stream.next();
  QVERIFY(batch);
  const auto expected =
      (torch::from_blob(const_cast<float*>(data->item(1)), {1, 28, 28}) - 0.25) / 0.5;
  QVERIFY(torch::allclose(batch->inputs[1], expected));
  QCOMPARE(batch->targets[1].item<std::int64_t>(), std::int64_t(data->labels[1]));
}

// The device-resident path (used on CUDA) and the caller-thread path (the benchmark's baseline)
// serve the very batches the streamed path does.
void TestTraining::residentBatchesEqualStreamedOnes() {
  auto data = std::make_shared<const Dataset>(*readFashionMnist("test").dataset);
  std::vector<std::size_t> indices(300);
  for (std::size_t i = 0; i < indices.size(); ++i) indices[i] = 7 * i + 3;
  BatchStream::Options options;
  options.batchSize = 64;
  options.seed = 4;
  options.mean = {0.3};
  options.std = {0.4};
  BatchStream streamed(data, indices, options);
  options.residentOnCpu = true;
  BatchStream resident(data, indices, options);
  options.residentOnCpu = false;
  options.background = false;
  BatchStream onCaller(data, indices, options);
  for (int epoch = 0; epoch < 2; ++epoch) {
    streamed.startEpoch(epoch);
    resident.startEpoch(epoch);
    onCaller.startEpoch(epoch);
    int batches = 0;
    while (auto a = streamed.next()) {
      for (BatchStream* other : {&resident, &onCaller}) {
        const auto b = other->next();
        QVERIFY(b.has_value());
        QVERIFY(torch::equal(a->inputs, b->inputs));
        QVERIFY(torch::equal(a->targets, b->targets));
      }
      ++batches;
    }
    QVERIFY(!resident.next().has_value());
    QVERIFY(!onCaller.next().has_value());
    QCOMPARE(batches, 5);
  }
}

// A regression set's batches carry each item's targets as float rows, in every path.
void TestTraining::regressionBatchesCarryTheirTargets() {
  Dataset table;
  table.name = "table";
  table.itemShape = {2};
  table.targetNames = {"y", "z"};
  for (int i = 0; i < 10; ++i) {
    table.values.insert(table.values.end(), {float(i), float(-i)});
    table.targets.insert(table.targets.end(), {0.5f * float(i), float(i * i)});
  }
  auto data = std::make_shared<const Dataset>(table);
  BatchStream::Options options;
  options.batchSize = 4;
  options.seed = 2;
  for (int path = 0; path < 3; ++path) {
    options.residentOnCpu = path == 1;
    options.background = path != 2;
    BatchStream stream(data, {1, 3, 5, 7, 9}, options);
    stream.startEpoch(0);
    std::size_t items = 0;
    while (auto batch = stream.next()) {
      QCOMPARE(batch->targets.scalar_type(), torch::kFloat32);
      QCOMPARE(batch->targets.size(1), std::int64_t(2));
      for (std::int64_t b = 0; b < batch->targets.size(0); ++b) {
        const float i = batch->inputs[b][0].item<float>();  // the item's index
        QCOMPARE(batch->targets[b][0].item<float>(), 0.5f * i);
        QCOMPARE(batch->targets[b][1].item<float>(), i * i);
      }
      items += static_cast<std::size_t>(batch->targets.size(0));
    }
    QCOMPARE(items, std::size_t(5));
  }
}

void TestTraining::pretrainLearnsAndStoresPreprocessing() {
  QTemporaryDir dir;
  const auto out = dir.filePath("trained.pt").toStdString();
  std::vector<double> accuracies;
  const auto result = pretrainModel(test::fixture("demo_net.pt").toStdString(), out, smallRun(),
                                    [&](const PretrainProgress& p) {
                                      if (p.testAccuracy >= 0) accuracies.push_back(p.testAccuracy);
                                    });
  QVERIFY2(result.ok, result.error.c_str());
  QCOMPARE(accuracies.size(), size_t(2));
  QCOMPARE(result.epochLosses.size(), size_t(2));
  QVERIFY(result.epochLosses[1] < result.epochLosses[0]);
  QVERIFY2(result.testAccuracy > 0.6,
           qPrintable(QString::number(result.testAccuracy)));  // chance is 0.1
  qInfo("2 epochs on 2000 images: test accuracy %.1f%% in %.1f s", 100 * result.testAccuracy,
        result.seconds);

  const auto saved = inspectModel(out);
  QVERIFY2(saved.ok, saved.error.c_str());
  QCOMPARE(saved.metadata.inputShape, (std::vector<std::int64_t>{1, 1, 28, 28}));
  QCOMPARE(saved.metadata.mean.size(), size_t(1));
  QVERIFY(saved.metadata.mean[0] > 0.2 && saved.metadata.mean[0] < 0.4);  // Fashion-MNIST's
  QVERIFY(saved.metadata.std[0] > 0.25 && saved.metadata.std[0] < 0.45);
  QCOMPARE(saved.metadata.classNames, fashionMnistClassNames());
}

void TestTraining::pretrainIsDeterministicForASeed() {
  QTemporaryDir dir;
  auto options = smallRun();
  options.epochs = 1;
  options.trainLimit = 640;
  const auto a = pretrainModel(test::fixture("demo_net.pt").toStdString(),
                               dir.filePath("a.pt").toStdString(), options);
  const auto b = pretrainModel(test::fixture("demo_net.pt").toStdString(),
                               dir.filePath("b.pt").toStdString(), options);
  QVERIFY(a.ok && b.ok);
  QCOMPARE(a.epochLosses, b.epochLosses);
  QCOMPARE(a.testAccuracy, b.testAccuracy);
  auto ma = torch::jit::load(dir.filePath("a.pt").toStdString());
  auto mb = torch::jit::load(dir.filePath("b.pt").toStdString());
  auto pa = ma.parameters().begin();
  for (const auto& p : mb.parameters()) {
    QVERIFY(torch::equal(*pa, p));
    ++pa;
  }
}

void TestTraining::pretrainRefusesMismatchedOutputs() {
  QTemporaryDir dir;
  const auto five = pretrainModel(test::fixture("five_outputs.pt").toStdString(),
                                  dir.filePath("x.pt").toStdString(), smallRun());
  QVERIFY(!five.ok);
  QVERIFY2(QString::fromStdString(five.error)
               .contains("gives outputs of shape 1×5 but the data has 10 classes"),
           five.error.c_str());
  // The MLP takes 12 features, not 28×28 images: a message, not a crash, and no file.
  const auto mlp = pretrainModel(test::fixture("mlp.pt").toStdString(),
                                 dir.filePath("y.pt").toStdString(), smallRun());
  QVERIFY(!mlp.ok);
  QVERIFY2(QString::fromStdString(mlp.error).startsWith("training failed: "), mlp.error.c_str());
  QVERIFY(!QFile::exists(dir.filePath("x.pt")));
  QVERIFY(!QFile::exists(dir.filePath("y.pt")));
}

void TestTraining::pretrainCanBeCancelled() {
  QTemporaryDir dir;
  std::atomic<bool> cancel{false};
  int steps = 0;
  const auto result = pretrainModel(
      test::fixture("demo_net.pt").toStdString(), dir.filePath("c.pt").toStdString(), smallRun(),
      [&](const PretrainProgress&) {
        if (++steps == 3) cancel = true;
      },
      &cancel);
  QVERIFY(!result.ok);
  QVERIFY(result.cancelled);
  QCOMPARE(steps, 3);  // stopped before the next step
  QVERIFY(!QFile::exists(dir.filePath("c.pt")));
}

QTEST_GUILESS_MAIN(TestTraining)
#include "test_training.moc"
