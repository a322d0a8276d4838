// Checkpoints as training scripts write them, made by Debian's PyTorch and torchvision
// (tests/fixtures/make_checkpoints.py): state dicts of nine torchvision architectures, every
// wrapper (DataParallel, Lightning, {"model_state_dict": …}, half, bfloat16, safetensors) and
// bad files. Each good one must be recognised, rebuilt and give Python's own logits; each bad one
// refused with a message that says what is wrong.
#include <QJsonArray>
#include <QJsonDocument>
#include <QJsonObject>
#include <QProcess>
#include <QTemporaryDir>
#include <QtTest>

#include <fstream>
#include <random>

#include "analysis/advisor.h"
#include "checkpoint/architecture_library.h"
#include "checkpoint/checkpoint_reader.h"
#include "checkpoint/pickle_reader.h"
#include "data/batch_stream.h"
#include "data/idx_reader.h"
#include "io/model_export.h"
#include "model/loaded_model.h"
#include "model/script_model.h"
#include "support/reference.h"

using namespace scalpel;

namespace {

QString checkpoint(const QString& file) { return test::fixture("checkpoints/" + file); }

QJsonObject manifest() {
  QFile file(checkpoint("manifest.json"));
  if (!file.open(QIODevice::ReadOnly)) return {};
  return QJsonDocument::fromJson(file.readAll()).object();
}

torch::Tensor readFloats(const QString& file, const QJsonArray& shape) {
  const auto bytes = test::readBytes(checkpoint(file).toStdString());
  std::vector<std::int64_t> sizes;
  for (const auto& dim : shape) sizes.push_back(dim.toInteger());
  auto tensor = torch::empty(sizes, torch::kFloat32);
  if (bytes.size() != static_cast<std::size_t>(tensor.numel()) * sizeof(float)) return {};
  std::memcpy(tensor.data_ptr<float>(), bytes.data(), bytes.size());
  return tensor;
}

// The largest difference relative to the logits' own scale.
double relativeDifference(const torch::Tensor& a, const torch::Tensor& b) {
  return (a - b).abs().max().item<double>() / std::max(1.0, b.abs().max().item<double>());
}

torch::Tensor forward(const LoadedModel& model, const torch::Tensor& input) {
  torch::NoGradGuard noGrad;
  auto& module = model.script().module();
  module.eval();
  return module.forward({input}).toTensor();
}

// Runs Debian's Python on `code` with `arguments` (sys.argv[1:]); its standard output.
QString python(const QString& code, const QStringList& arguments, int* exitCode) {
  QProcess process;
  process.start("/usr/bin/python3", QStringList{"-c", code} + arguments);
  process.waitForFinished(300000);
  *exitCode = process.exitStatus() == QProcess::NormalExit ? process.exitCode() : -1;
  return QString::fromUtf8(process.readAllStandardOutput() + process.readAllStandardError());
}

}  // namespace

class TestCheckpoints : public QObject {
  Q_OBJECT

 private Q_SLOTS:
  void initTestCase();
  void libraryHoldsEveryTorchvisionClassifier();
  void checkpointsGivePythonsLogits_data();
  void checkpointsGivePythonsLogits();
  void badCheckpointsAreRefused_data();
  void badCheckpointsAreRefused();
  void exportsLoadInPython();
  void twoFittingArchitecturesAreAChoice();
  void newHeadFitsOtherClasses();
  void imagesAreFittedToTheModel();
  void damagedPicklesNeverCrash();
};

void TestCheckpoints::initTestCase() {
  QVERIFY2(!manifest().isEmpty(), "the checkpoint fixtures are missing: build the fixtures target");
  const auto& library = ArchitectureLibrary::standard();
  QVERIFY2(library.error().empty(), library.error().c_str());
}

void TestCheckpoints::libraryHoldsEveryTorchvisionClassifier() {
  const auto& library = ArchitectureLibrary::standard();
  // torchvision 0.14's 80 classification builders, and the ViTs of other image sizes.
  QVERIFY2(library.architectures().size() >= 80,
           qPrintable(QString::number(library.architectures().size())));
  for (const char* name : {"resnet18",          "resnext50_32x4d",    "wide_resnet50_2",
                           "mobilenet_v2",      "mobilenet_v3_large", "efficientnet_b7",
                           "efficientnet_v2_s", "densenet121",        "vgg16",
                           "vgg16_bn",          "convnext_tiny",      "regnet_x_400mf",
                           "regnet_y_400mf",    "shufflenet_v2_x1_0", "squeezenet1_0",
                           "mnasnet1_0",        "vit_b_16",           "swin_t",
                           "maxvit_t",          "googlenet",          "inception_v3"}) {
    QVERIFY2(library.find(name), name);
  }
  // A few MB, not the hundreds a scripted model with its weights takes.
  std::uintmax_t bytes = 0;
  for (const auto& entry : std::filesystem::directory_iterator(library.dir())) {
    bytes += entry.file_size();
  }
  QVERIFY2(bytes < 12u << 20, qPrintable(QString::number(bytes)));
  const auto* inception = library.find("inception_v3");
  QCOMPARE(inception->inputShape, (std::vector<std::int64_t>{1, 3, 299, 299}));
  QCOMPARE(inception->resize, 342);
}

void TestCheckpoints::checkpointsGivePythonsLogits_data() {
  QTest::addColumn<QJsonObject>("entry");
  for (const auto& value : manifest()["good"].toArray()) {
    const auto entry = value.toObject();
    QTest::newRow(qPrintable(entry["file"].toString())) << entry;
  }
}

void TestCheckpoints::checkpointsGivePythonsLogits() {
  QFETCH(QJsonObject, entry);
  const auto model = test::opened(checkpoint(entry["file"].toString()));
  QVERIFY2(model.ok(), model.error().c_str());
  const auto& inspection = model.inspection();
  QCOMPARE(QString::fromStdString(inspection.metadata.architecture),
           entry["architecture"].toString());
  QCOMPARE(inspection.tree.node(0).outputShape.back(), entry["classes"].toInteger());
  const QString wrapper = entry["wrapper"].toString();
  QCOMPARE(QString::fromStdString(inspection.format), wrapper.startsWith("safetensors")
                                                          ? QString("safetensors")
                                                          : QString("state dict (torch.save)"));
  // What was done to the file is said.
  std::string notes;
  for (const auto& note : inspection.notes) notes += note + "\n";
  if (wrapper == "dataparallel")
    QVERIFY2(notes.find("\"module.\"") != std::string::npos, notes.c_str());
  if (wrapper == "lightning")
    QVERIFY2(notes.find("\"model.\"") != std::string::npos, notes.c_str());
  if (wrapper == "half") QVERIFY2(notes.find("half") != std::string::npos, notes.c_str());
  if (wrapper == "bfloat16") QVERIFY2(notes.find("bfloat16") != std::string::npos, notes.c_str());
  // torchvision's preprocessing for its architectures.
  QCOMPARE(inspection.metadata.mean, (std::vector<double>{0.485, 0.456, 0.406}));
  QCOMPARE(inspection.metadata.resize, 256);

  const auto input = readFloats(entry["input"].toString(), entry["input_shape"].toArray());
  const auto expected = readFloats(entry["logits"].toString(), entry["logits_shape"].toArray());
  QVERIFY(input.defined() && expected.defined());
  const auto logits = forward(model, input);
  QCOMPARE(logits.sizes().vec(), expected.sizes().vec());
  const double difference = relativeDifference(logits, expected);
  QVERIFY2(difference < 1e-4, qPrintable(QString::number(difference)));
}

void TestCheckpoints::badCheckpointsAreRefused_data() {
  QTest::addColumn<QString>("file");
  QTest::addColumn<QStringList>("expected");
  for (const auto& value : manifest()["bad"].toArray()) {
    const auto entry = value.toObject();
    QStringList words;
    for (const auto& word : entry["expect"].toArray()) words << word.toString();
    QTest::newRow(qPrintable(entry["why"].toString())) << entry["file"].toString() << words;
  }
}

void TestCheckpoints::badCheckpointsAreRefused() {
  QFETCH(QString, file);
  QFETCH(QStringList, expected);
  const auto inspection = inspectModel(checkpoint(file).toStdString());
  QVERIFY(!inspection.ok);
  const auto message = QString::fromStdString(inspection.error);
  qInfo("%s", qPrintable(message));
  for (const auto& word : expected) {
    QVERIFY2(message.contains(word, Qt::CaseInsensitive), qPrintable(word + ": " + message));
  }
  QVERIFY2(message.contains(" — "), qPrintable(message));  // and says what to do
  QVERIFY(!message.contains("Traceback") && !message.contains("torch::jit"));
}

void TestCheckpoints::exportsLoadInPython() {
  const auto model = test::opened(checkpoint("resnet18.pth"));
  QVERIFY2(model.ok(), model.error().c_str());
  QTemporaryDir dir;
  const QString pth = dir.filePath("tuned.pth"), safetensors = dir.filePath("tuned.safetensors"),
                script = dir.filePath("converted.pt");
  // The bytes a training run gives exportTunedModel: TorchScript with its preprocessing.
  QCOMPARE(saveAsTorchScript(model, script.toStdString()), std::string());
  const auto bytes = test::readBytes(script.toStdString());
  QCOMPARE(exportTunedModel(bytes, "{}", pth.toStdString()), std::string());
  QCOMPARE(exportTunedModel(bytes, "{}", safetensors.toStdString()), std::string());
  QVERIFY(QFile::exists(pth + ".json"));  // its preprocessing, beside it

  // Python loads each the usual way and gets the checkpoint's own logits.
  const char* check = R"(
import json, struct, sys, torch, torchvision
pth, safetensors, script, sidecar, inputs, logits = sys.argv[1:7]
x = torch.frombuffer(bytearray(open(inputs, 'rb').read()), dtype=torch.float32).reshape(2, 3, 224, 224)
want = torch.frombuffer(bytearray(open(logits, 'rb').read()), dtype=torch.float32).reshape(2, 10)
def check(name, model):
    model.eval()
    with torch.no_grad():
        got = model(x)
    print(name, float((got - want).abs().max()))
    assert torch.allclose(got, want, atol=1e-4), name
m = torchvision.models.resnet18(num_classes=10)
m.load_state_dict(torch.load(pth, weights_only=True))  # strict: every key, every shape
check('pth', m)
raw = open(safetensors, 'rb').read()
n = struct.unpack('<Q', raw[:8])[0]
header = json.loads(raw[8:8 + n])
meta = header.pop('__metadata__')
assert json.loads(meta['scalpel.model'])['architecture'] == 'resnet18'
types = {'F32': torch.float32, 'I64': torch.int64}
state = {k: torch.frombuffer(bytearray(raw[8 + n + v['data_offsets'][0]:8 + n + v['data_offsets'][1]]),
                             dtype=types[v['dtype']]).reshape(v['shape']) for k, v in header.items()}
m = torchvision.models.resnet18(num_classes=10)
m.load_state_dict(state)
check('safetensors', m)
extra = {'scalpel/model.json': ''}
check('torchscript', torch.jit.load(script, _extra_files=extra))
assert json.loads(extra['scalpel/model.json'])['preprocessing'] == 'imagenet'
assert json.load(open(sidecar))['resize'] == 256
print('ok')
)";
  int exitCode = 0;
  const auto output = python(check,
                             {pth, safetensors, script, pth + ".json", checkpoint("input_224.bin"),
                              checkpoint("resnet18.logits.bin")},
                             &exitCode);
  QVERIFY2(exitCode == 0 && output.contains("ok"), qPrintable(output));
}

void TestCheckpoints::twoFittingArchitecturesAreAChoice() {
  // torchvision's own architectures never share a signature; a library with one twice does.
  const auto& standard = ArchitectureLibrary::standard();
  QTemporaryDir dir;
  std::ifstream in(std::filesystem::path(standard.dir()) / "index.json");
  auto index = QJsonDocument::fromJson(
                   QByteArray::fromStdString(std::string(std::istreambuf_iterator<char>(in), {})))
                   .object();
  QJsonArray twins;
  for (const auto& value : index["architectures"].toArray()) {
    auto entry = value.toObject();
    if (entry["name"].toString() != "resnet18") continue;
    QVERIFY(QFile::copy(QString::fromStdString(standard.dir()) + "/resnet18.pt",
                        dir.filePath("resnet18.pt")));
    twins.append(entry);
    entry["name"] = "resnet18_twin";
    twins.append(entry);
  }
  index["architectures"] = twins;
  QFile file(dir.filePath("index.json"));
  QVERIFY(file.open(QIODevice::WriteOnly));
  file.write(QJsonDocument(index).toJson());
  file.close();
  ArchitectureLibrary library;
  QCOMPARE(library.load(dir.path().toStdString()), std::string());
  const auto path = checkpoint("resnet18.pth").toStdString();
  const auto ambiguous = rebuildFromCheckpoint(path, "", torch::kCPU, library);
  QCOMPARE(ambiguous.candidates, (std::vector<std::string>{"resnet18", "resnet18_twin"}));
  QVERIFY2(ambiguous.error.find("fits several architectures") != std::string::npos,
           ambiguous.error.c_str());
  const auto chosen = rebuildFromCheckpoint(path, "resnet18_twin", torch::kCPU, library);
  QVERIFY2(chosen.error.empty(), chosen.error.c_str());
  QCOMPARE(chosen.architecture->name, std::string("resnet18_twin"));
  QCOMPARE(chosen.classes, std::int64_t(10));
  const auto wrong = rebuildFromCheckpoint(path, "vgg11", torch::kCPU, library);
  QVERIFY2(wrong.error.find("does not fit the architecture vgg11") != std::string::npos,
           wrong.error.c_str());
}

void TestCheckpoints::newHeadFitsOtherClasses() {
  InspectOptions options;
  options.choices.newHeadClasses = {"cat", "dog", "fox"};
  const auto model = LoadedModel::open(checkpoint("resnet18.pth").toStdString(), options);
  QVERIFY2(model.ok(), model.error().c_str());
  const auto& inspection = model.inspection();
  QCOMPARE(inspection.tree.node(0).outputShape, (std::vector<std::int64_t>{1, 3}));
  QCOMPARE(inspection.metadata.classNames, options.choices.newHeadClasses);
  const auto fc = inspection.tree.find("fc");
  QVERIFY(fc && inspection.tree.node(*fc).freshHead);
  // Every plan trains it, and says so.
  FreezePlan plan;
  QCOMPARE(planFreeze("block:layer1", inspection.tree, Diagnosis{}, nullptr, plan), std::string());
  QCOMPARE(plan.trainable, (std::vector<std::string>{"layer1", "fc"}));
  QVERIFY2(plan.explanation.find("new head, fc, always trains") != std::string::npos,
           plan.explanation.c_str());
  // The rest of the network keeps the checkpoint's weights.
  const auto plain = test::opened(checkpoint("resnet18.pth"));
  QVERIFY(torch::equal(model.script().module().attr("conv1").toModule().attr("weight").toTensor(),
                       plain.script().module().attr("conv1").toModule().attr("weight").toTensor()));
  // SqueezeNet classifies with a last 1×1 convolution: that is its head.
  InspectOptions two;
  two.choices.newHeadClasses = {"a", "b"};
  const auto squeezenet = LoadedModel::open(checkpoint("squeezenet1_1.pth").toStdString(), two);
  QVERIFY2(squeezenet.ok(), squeezenet.error().c_str());
  QCOMPARE(squeezenet.inspection().tree.node(0).outputShape, (std::vector<std::int64_t>{1, 2}));
}

void TestCheckpoints::imagesAreFittedToTheModel() {
  // Fashion-MNIST (1×28×28 grey) for a 3×224×224 ImageNet model: made RGB, scaled to 256 on its
  // shorter side, centre-cropped to 224 and normalised with ImageNet's statistics.
  const auto model = test::opened(checkpoint("resnet18.pth"));
  QVERIFY2(model.ok(), model.error().c_str());
  auto read = readFashionMnist("test");
  QVERIFY(read);
  const Dataset data = read.dataset->subset({0, 1, 2, 3});
  const auto note = fittingNote(data.itemShape, model.inspection().metadata);
  QVERIFY2(note.find("made RGB and scaled to 256 on its shorter side and centre-cropped to "
                     "3×224×224") != std::string::npos,
           note.c_str());
  auto options = model.script().batchOptions();
  options.shuffle = false;
  BatchStream stream(BatchStream::borrow(data), {0, 1, 2, 3}, options);
  stream.startEpoch(0);
  const auto batch = stream.next();
  QVERIFY(batch);
  QCOMPARE(batch->inputs.sizes().vec(), (std::vector<std::int64_t>{4, 3, 224, 224}));
  // Grey made RGB: the three channels differ only by their normalisation.
  const auto inputs = batch->inputs;
  const auto red = inputs.select(1, 0) * 0.229 + 0.485, blue = inputs.select(1, 2) * 0.225 + 0.406;
  QVERIFY((red - blue).abs().max().item<double>() < 1e-5);
  QVERIFY(red.min().item<double>() > -1e-4 && red.max().item<double>() < 1 + 1e-4);
  // And the model runs on them: no channel or size error reaches the user.
  QCOMPARE(forward(model, inputs).sizes().vec(), (std::vector<std::int64_t>{4, 10}));
  // "none" leaves the pixels as they are (still fitted).
  InspectOptions none;
  none.choices.preprocessing = "none";
  const auto raw = LoadedModel::open(checkpoint("resnet18.pth").toStdString(), none);
  QVERIFY(raw.ok());
  QVERIFY(raw.inspection().metadata.mean.empty());
  BatchStream plain(BatchStream::borrow(data), {0}, raw.script().batchOptions());
  plain.startEpoch(0);
  const auto unnormalised = plain.next()->inputs;
  QCOMPARE(unnormalised.sizes().vec(), (std::vector<std::int64_t>{1, 3, 224, 224}));
  QVERIFY(unnormalised.min().item<double>() >= -1e-4 &&
          unnormalised.max().item<double>() <= 1 + 1e-4);
}

void TestCheckpoints::damagedPicklesNeverCrash() {
  // The state dict's own pickle, damaged at random: refused with a PickleError, or read.
  caffe2::serialize::PyTorchStreamReader reader(checkpoint("shufflenet_v2_x0_5.pth").toStdString());
  const auto [data, size] = reader.getRecord("data.pkl");
  const std::string pickle(static_cast<const char*>(data.get()), size);
  QVERIFY(parsePickle(pickle)->kind == PickleValue::Kind::Dict);
  std::mt19937 random(7);
  int refused = 0;
  for (int i = 0; i < 2000; ++i) {
    std::string damaged = pickle;
    for (int flips = 0; flips < 4; ++flips) {
      damaged[random() % damaged.size()] = static_cast<char>(random());
    }
    if (i % 5 == 0) damaged.resize(random() % damaged.size());
    try {
      parsePickle(damaged);
    } catch (const PickleError&) {
      ++refused;
    }
  }
  QVERIFY(refused > 0);
}

QTEST_GUILESS_MAIN(TestCheckpoints)
#include "test_checkpoints.moc"
