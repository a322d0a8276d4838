// Loading real files: each way a file can fail to be a usable model gets a message that says what
// is wrong and what to do; traced models load with a warning.

#include <QDir>
#include <QFile>
#include <QRandomGenerator>
#include <QTemporaryDir>
#include <QtTest>

#include "model/model_inspection.h"
#include "support/reference.h"

using namespace scalpel;

class TestModelLoading : public QObject {
  Q_OBJECT

 private Q_SLOTS:
  void initTestCase();
  void refusesWithAClearMessage_data();
  void refusesWithAClearMessage();
  void tracedModelLoadsWithWarning();
  void wrongInputShapeIsAnError();
  void guessesInputShapeWithoutMetadata();
  void readsStoredMetadata();
  void cudaWhenUnavailableIsRefused();

 private:
  QTemporaryDir m_dir;
  QString write(const QString& name, const QByteArray& bytes);
};

QString TestModelLoading::write(const QString& name, const QByteArray& bytes) {
  const QString path = m_dir.filePath(name);
  QFile file(path);
  if (!file.open(QIODevice::WriteOnly) || file.write(bytes) != bytes.size()) return {};
  return path;
}

void TestModelLoading::initTestCase() {
  QVERIFY(m_dir.isValid());
  QVERIFY(QFile::exists(test::fixture("fixtures.stamp")));
}

void TestModelLoading::refusesWithAClearMessage_data() {
  QTest::addColumn<QString>("path");
  QTest::addColumn<QString>("expected");  // a part of the message the user must see

  QByteArray random(4096, '\0');
  QRandomGenerator generator(42);
  for (auto& byte : random) byte = static_cast<char>(generator.bounded(256));
  QFile model(test::fixture("small_cnn.pt"));
  QVERIFY(model.open(QIODevice::ReadOnly));
  const QByteArray whole = model.readAll();
  QDir(m_dir.path()).mkdir("a_folder.pt");

  QTest::newRow("random bytes")
      << write("random.pt", random)
      << "is not a model file (it is neither a zip archive nor safetensors)";
  QTest::newRow("empty file") << write("empty.pt", {}) << "is empty (0 bytes)";
  QTest::newRow("three bytes") << write("tiny.pt", "PK\x03") << "too short";
  QTest::newRow("truncated")
      << write("truncated.pt", whole.left(whole.size() / 2))
      << "looks truncated or damaged (the end of its zip archive is missing)";
  // One byte changed inside the pickled module (a bad copy): refused by its checksum, before
  // LibTorch's parser (which does not check, and crashed on such a file found by fuzzing).
  QByteArray flipped = whole;
  const auto pickle = flipped.indexOf("data.pkl");
  QVERIFY(pickle > 0);
  const auto body = flipped.indexOf('\x80', pickle);  // the pickle's first opcode (PROTO)
  flipped[body + 8] = static_cast<char>(flipped[body + 8] ^ 0x20);
  QTest::newRow("damaged entry")
      << write("damaged.pt", flipped)
      << "is damaged: the entry 'small_cnn.pt/data.pkl' of its zip archive fails its checksum";
  QTest::newRow("fuzz finding")
      << QStringLiteral(SCALPEL_SOURCE_DIR
                        "/tests/fuzz/corpus/model/regression_crc_torch_parser_segv.pt")
      << "of its zip archive fails its checksum";
  // An entry whose zip directory claims 4 GiB (0xFFFFFFFF, with no ZIP64 field) while its
  // data inflate to 436 bytes with the right checksum: LibTorch allocated the 4 GiB (fuzzing).
  QTest::newRow("fuzz finding: a 4 GiB size")
      << QStringLiteral(SCALPEL_SOURCE_DIR "/tests/fuzz/corpus/model/regression_zip_size_oom.pt")
      << "of its zip archive is damaged (it gives no size)";
  QTest::newRow("directory") << m_dir.filePath("a_folder.pt") << "is a folder, not a model file";
  QTest::newRow("missing path") << m_dir.filePath("nowhere/model.pt") << "no such file";
  QTest::newRow("zip, not a model")
      << test::fixture("not_a_model.zip") << "is a zip archive but not a TorchScript model";
  QTest::newRow("torch.save of a whole model")
      << test::fixture("torch_save.pt") << "holds a whole pickled Python model (__main__.SmallCNN)";
  QTest::newRow("frozen") << test::fixture("frozen.pt")
                          << "no trainable parameters — was it saved with torch.jit.freeze?";
  QTest::newRow("two inputs") << test::fixture("two_inputs.pt")
                              << "forward takes (x: Tensor, y: Tensor)";
}

void TestModelLoading::refusesWithAClearMessage() {
  QFETCH(QString, path);
  QFETCH(QString, expected);
  QVERIFY(!path.isEmpty());
  const auto inspection = inspectModel(path.toStdString());
  QVERIFY(!inspection.ok);
  const auto message = QString::fromStdString(inspection.error);
  QVERIFY2(message.contains(expected), qPrintable(message));
  // Every refusal tells the user what to do, not only what went wrong.
  QVERIFY2(message.contains("—"), qPrintable(message));
}

void TestModelLoading::tracedModelLoadsWithWarning() {
  const auto inspection = inspectModel(test::fixture("traced_cnn.pt").toStdString(),
                                       InspectOptions{{1, 1, 28, 28}, "cpu"});
  QVERIFY2(inspection.ok, inspection.error.c_str());
  QCOMPARE(inspection.warnings.size(), size_t(1));
  QVERIFY(QString::fromStdString(inspection.warnings[0]).contains("looks traced"));
  // A scripted model of the same class gets no such warning.
  const auto scripted = inspectModel(test::fixture("small_cnn.pt").toStdString());
  QVERIFY(scripted.ok);
  QVERIFY(scripted.warnings.empty());
}

void TestModelLoading::wrongInputShapeIsAnError() {
  const auto inspection = inspectModel(test::fixture("small_cnn.pt").toStdString(),
                                       InspectOptions{{1, 3, 28, 28}, "cpu"});
  QVERIFY(!inspection.ok);
  const auto message = QString::fromStdString(inspection.error);
  QVERIFY2(message.contains("does not accept an input of shape 1×3×28×28"), qPrintable(message));
  // Said in words first, ATen's own line after it.
  QVERIFY2(message.contains("the model takes images with 1 channels but got 3 — choose images"),
           qPrintable(message));
  QVERIFY2(message.contains("expected input[1, 3, 28, 28] to have 1 channels"),
           qPrintable(message));
  // The size of a Linear model's input.
  const auto mlp =
      inspectModel(test::fixture("mlp.pt").toStdString(), InspectOptions{{1, 5}, "cpu"});
  QVERIFY(!mlp.ok);
  QVERIFY2(mlp.error.find("values where it takes") != std::string::npos, mlp.error.c_str());
}

void TestModelLoading::guessesInputShapeWithoutMetadata() {
  // The traced model carries no metadata: its first Conv2d has 1 input channel, so the guess is
  // 1×1×224×224, which this CNN's head cannot take — a warning, not an error.
  const auto inspection = inspectModel(test::fixture("traced_cnn.pt").toStdString());
  QVERIFY2(inspection.ok, inspection.error.c_str());
  QVERIFY(inspection.inputShape.empty());
  QCOMPARE(inspection.warnings.size(), size_t(2));
  QVERIFY(QString::fromStdString(inspection.warnings[1]).contains("1×1×224×224"));
  QVERIFY(QString::fromStdString(inspection.warnings[1]).contains("guessed"));
}

void TestModelLoading::readsStoredMetadata() {
  const auto inspection = inspectModel(test::fixture("small_cnn.pt").toStdString());
  QVERIFY(inspection.ok);
  QVERIFY(inspection.metadata.present);
  QCOMPARE(inspection.metadata.inputShape, (std::vector<std::int64_t>{1, 1, 28, 28}));
  QCOMPARE(inspection.metadata.classNames.size(), size_t(10));
  QCOMPARE(inspection.metadata.classNames[9], std::string("Ankle boot"));
  QCOMPARE(inspection.inputShape, inspection.metadata.inputShape);
}

void TestModelLoading::cudaWhenUnavailableIsRefused() {
  const auto inspection =
      inspectModel(test::fixture("mlp.pt").toStdString(), InspectOptions{{}, "cuda"});
  if (inspection.ok) {
    QCOMPARE(inspection.device, std::string("cuda"));  // a CUDA machine: it must just work
    return;
  }
  QVERIFY2(QString::fromStdString(inspection.error).contains("no usable CUDA device"),
           inspection.error.c_str());
  const auto bad = inspectModel(test::fixture("mlp.pt").toStdString(), InspectOptions{{}, "gpu7"});
  QVERIFY(!bad.ok);
  QVERIFY(QString::fromStdString(bad.error).contains("unknown device 'gpu7'"));
  // "auto" takes CUDA when there is one, else the CPU: always loads.
  QVERIFY(inspectModel(test::fixture("mlp.pt").toStdString(), InspectOptions{{}, "auto"}).ok);
}

QTEST_GUILESS_MAIN(TestModelLoading)
#include "test_model_loading.moc"
