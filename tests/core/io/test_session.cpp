// Sessions and run reports on disk: a fully populated session survives a save and a load; paths
// are stored relative to the session file, so a project folder can move as a whole; missing
// files and a changed model are reported, not fatal; broken, foreign and newer files are refused
// with a message naming the file and the field; a failed save leaves the previous file as it was.
// Also the content fingerprints that tell whether a model or data set is the one saved.

#include <sys/resource.h>

#include <QTemporaryDir>
#include <QtTest>

#include <cmath>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <regex>

#include "io/run_report.h"
#include "io/session.h"
#include "io/train_format.h"
#include "scalpel/version.h"
#include "support/reference.h"
#include "util/fingerprint.h"

using namespace scalpel;
using scalpel::test::readBytes;
namespace fs = std::filesystem;

namespace {

void writeBytes(const fs::path& path, const std::string& bytes) {
  fs::create_directories(path.parent_path());
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << bytes;
}

nlohmann::json readJson(const fs::path& path) { return nlohmann::json::parse(readBytes(path)); }

fs::path tempPath(const QTemporaryDir& dir) { return fs::path(dir.path().toStdString()); }

Evaluation evaluation(double base, std::size_t items) {
  Evaluation e;
  e.loss = 2.5 - base;
  e.accuracy = base / 3;  // not a short decimal: checks that numbers are written exactly
  for (int c = 0; c < 10; ++c) e.perClassAccuracy.push_back(std::fmod(base * (c + 1) / 7, 1.0));
  e.items = items;
  return e;
}

// Everything set, nothing at its default. Run 1 diverged: its last loss is NaN.
RunReport fullReport(const fs::path& folder, int run) {
  RunReport r;
  r.scalpelVersion = kVersion;
  r.torchVersion = "1.13.0";
  r.createdUtc = "2024-05-01T12:00:0" + std::to_string(run) + "Z";
  r.modelPath = (folder / "model.pt").string();
  r.modelFingerprint = "fnv1a64:0123456789abcdef:42";
  r.diagnosis = "input-level shift: the stem's activations move most";
  r.evidence = {"stem.conv: KL 0.83, 41× its noise floor",
                "accuracy 43.2% — the outputs still rank classes"};
  r.plan.strategy = run == 0 ? "auto-rgn" : "block:stem";
  r.plan.trainable = {"stem.conv", "stem.bn", "head.fc"};
  r.plan.learningRateScale = {{"stem.conv", 1.0}, {"stem.bn", 0.25}, {"head.fc", 1.0 / 3}};
  r.plan.explanation = "train where the shift enters";
  r.options.optimizer = "sgd";
  r.options.learningRate = 0.0125;
  r.options.weightDecay = 0;
  r.options.momentum = 0.8;
  r.options.schedule = "cosine";
  r.options.warmupFraction = 0.1;
  r.options.batchSize = 32;
  r.options.epochs = 7;
  r.options.maxSteps = 1234;
  r.options.loss = "mse";
  r.options.evaluateEverySteps = 50;
  r.options.selectBy = "loss";
  r.options.patience = 3;
  r.options.batchNormEval = true;
  r.options.seed = std::numeric_limits<std::uint64_t>::max();
  r.options.device = "cuda:1";
  r.data = {
      {"train", "data + gaussian-noise (severity 5)", 1000, "fnv1a64:00000000000000aa:1000"},
      {"validation", "data + gaussian-noise (severity 5)", 500, "fnv1a64:00000000000000bb:500"},
      {"test", "data + gaussian-noise (severity 5)", 8500, "fnv1a64:00000000000000cc:8500"}};
  r.layerShifts = {
      {"stem.conv", 0.83, 0.02}, {"block1.conv1", 0.4, 0.015}, {"head.fc", 1e-5, 3e-7}};
  r.device = "cuda:1 (NVIDIA H100 80GB HBM3)";
  r.outcome = run == 0 ? "finished" : "diverged";
  r.message = run == 0 ? "" : "the loss became NaN at step 37 — lower the learning rate";
  r.trainableParameters = 123456789012LL;
  r.frozenParameters = 42 + run;
  r.validationBefore = evaluation(0.4, 500);
  r.testBefore = evaluation(0.41, 8500);
  r.validationAfter = evaluation(0.9, 500);
  r.testAfter = evaluation(0.91, 8500);
  for (int i = 0; i < 3; ++i) {
    EvaluationPoint point;
    point.epoch = i;
    point.step = 50 * std::size_t(i + 1);
    point.trainLoss = 1.0 / (i + 3);
    point.validation = evaluation(0.5 + 0.1 * i, 500);
    r.history.push_back(point);
  }
  if (run == 1) r.history.back().trainLoss = std::numeric_limits<double>::quiet_NaN();
  r.bestEvaluation = 1;
  r.steps = 150;
  r.seconds = 12.345678901234567;
  return r;
}

// A project folder: a model, an image folder of target data, a CSV of source data, and two runs'
// tuned models, with a session that uses them all. `folder` must not exist yet.
Session makeProject(const fs::path& folder) {
  writeBytes(folder / "model.pt", std::string(5000, 'm') + "model bytes");
  writeBytes(folder / "data" / "cat" / "1.png", "not really a png");
  writeBytes(folder / "source.csv", "x,label\n1,0\n");
  writeBytes(folder / "runs" / "a.pt", "tuned a");
  writeBytes(folder / "runs" / "b.pt", "tuned b");

  Session s;
  s.scalpelVersion = kVersion;  // what a load gives back: the version that saved it
  s.modelPath = (folder / "model.pt").string();
  s.modelFingerprint = fileFingerprint(s.modelPath);
  s.modelChoices.architecture = "resnet18";
  s.modelChoices.preprocessing = "custom";
  s.modelChoices.mean = {0.5, 0.25, 0.125};
  s.modelChoices.std = {0.2, 0.3, 0.4};
  s.modelChoices.newHeadClasses = {"cat", "dog"};
  s.target.source = (folder / "data").string();
  s.target.split = "train";
  s.target.shift = "gaussian-noise";
  s.target.severity = 5;
  s.target.seed = 7;
  s.target.itemShape = {3, 32, 32};
  s.target.classNames = {"cat", "dog"};
  s.reference = "data";
  s.source.source = (folder / "source.csv").string();
  s.source.split = "test";
  s.source.seed = 9;
  s.split = {120, 60, 11};
  s.strategy = "auto-rgn";
  s.plan = fullReport(folder, 0).plan;
  s.options = fullReport(folder, 0).options;
  s.runs = {{"auto-rgn", (folder / "runs" / "a.pt").string(), fullReport(folder, 0)},
            {"block:stem", (folder / "runs" / "b.pt").string(), fullReport(folder, 1)}};
  return s;
}

// The session's paths as they are after loading it from `folder`.
Session movedTo(Session s, const fs::path& from, const fs::path& to) {
  const auto move = [&](std::string& path) {
    path = (to / fs::path(path).lexically_relative(from)).lexically_normal().string();
  };
  move(s.modelPath);
  move(s.target.source);
  move(s.source.source);
  for (auto& run : s.runs) move(run.tunedModel);
  return s;
}

bool anyContains(const std::vector<std::string>& lines, const std::string& a,
                 const std::string& b) {
  for (const auto& line : lines) {
    if (line.find(a) != std::string::npos && line.find(b) != std::string::npos) return true;
  }
  return false;
}

QString joined(const std::vector<std::string>& lines) {
  QStringList list;
  for (const auto& line : lines) list << QString::fromStdString(line);
  return list.join(" | ");
}

}  // namespace

class TestSession : public QObject {
  Q_OBJECT

 private Q_SLOTS:
  void roundTripsAFullSession();
  void roundTripsARegressionSession();
  void storesPathsRelativeToTheSessionFile();
  void storesEachKindOfPath_data();
  void storesEachKindOfPath();
  void loadsAMovedProjectFolder();
  void listsMissingFiles_data();
  void listsMissingFiles();
  void warnsWhenTheModelChanged();
  void refusesBrokenFiles_data();
  void refusesBrokenFiles();
  void failedSaveKeepsThePreviousFile();
  void fileFingerprintFollowsEveryByte_data();
  void fileFingerprintFollowsEveryByte();
  void fileFingerprintKnownValues();
  void datasetFingerprintFollowsTheContent();
  void runReportRoundTrips();
  void runReportRefusesWithAMessage_data();
  void runReportRefusesWithAMessage();
  void runReportToleratesMistypedFields();
  void fillRunReportNamesTheOutcome_data();
  void fillRunReportNamesTheOutcome();
};

void TestSession::roundTripsAFullSession() {
  QTemporaryDir dir;
  const fs::path folder = tempPath(dir) / "project";
  const Session saved = makeProject(folder);
  const fs::path file = folder / "session.json";
  QCOMPARE(saveSession(saved, file), std::string());

  Session loaded;
  const auto result = loadSession(file, loaded);
  QVERIFY2(result.ok, result.error.c_str());
  QVERIFY2(result.missing.empty(), qPrintable(joined(result.missing)));
  QVERIFY2(result.warnings.empty(), qPrintable(joined(result.warnings)));
  QVERIFY(loaded == saved);
  QCOMPARE(loaded.runs.size(), size_t(2));
  QCOMPARE(loaded.runs[1].report.history.size(), size_t(3));
  QVERIFY(std::isnan(loaded.runs[1].report.history[2].trainLoss));
  QCOMPARE(loaded.runs[0].report.validationAfter.perClassAccuracy,
           saved.runs[0].report.validationAfter.perClassAccuracy);
  QCOMPARE(loaded.options.seed, std::numeric_limits<std::uint64_t>::max());

  // Saving what was loaded writes the same file again.
  const std::string first = readBytes(file);
  QCOMPARE(saveSession(loaded, file), std::string());
  QCOMPARE(readBytes(file), first);

  // Equality is field-wise: one changed number in one run's history is a difference.
  Session changed = saved;
  changed.runs[0].report.history[1].validation.perClassAccuracy[3] += 1e-9;
  QVERIFY(!(changed == saved));
}

void TestSession::roundTripsARegressionSession() {
  QTemporaryDir dir;
  const fs::path folder = tempPath(dir) / "project";
  Session saved = makeProject(folder);
  saved.target.regressionTargets = {"price", "age"};
  for (Evaluation* e : {&saved.runs[0].report.validationBefore, &saved.runs[0].report.testAfter}) {
    e->regression = true;
    e->accuracy = 0;
    e->perClassAccuracy.clear();
    e->r2 = 0.8123456789;
    e->meanAbsoluteError = 1.0 / 3;
  }
  const fs::path file = folder / "session.json";
  QCOMPARE(saveSession(saved, file), std::string());
  Session loaded;
  const auto result = loadSession(file, loaded);
  QVERIFY2(result.ok, result.error.c_str());
  QVERIFY(loaded == saved);
  QCOMPARE(loaded.target.regressionTargets, (std::vector<std::string>{"price", "age"}));
  QVERIFY(loaded.runs[0].report.testAfter.regression);
  QCOMPARE(loaded.runs[0].report.testAfter.r2, 0.8123456789);
  // Regression fields are written only where they apply: a classification run's evaluations and
  // a classification target keep the files they had before regression existed.
  const auto raw = readJson(file);
  QVERIFY(raw["target"].contains("regression_targets"));
  QVERIFY(!raw["source"].contains("regression_targets"));
  QVERIFY(raw["runs"][0]["report"]["test_after"].contains("r2"));
  QVERIFY(!raw["runs"][1]["report"]["test_after"].contains("r2"));
  Session changed = saved;
  changed.runs[0].report.testAfter.r2 += 1e-9;
  QVERIFY(!(changed == saved));
  changed = saved;
  changed.target.regressionTargets = {"price"};
  QVERIFY(!(changed == saved));
}

void TestSession::storesPathsRelativeToTheSessionFile() {
  QTemporaryDir dir;
  const fs::path folder = tempPath(dir) / "project";
  const Session session = makeProject(folder);
  QCOMPARE(saveSession(session, folder / "session.json"), std::string());

  const auto raw = readJson(folder / "session.json");
  QCOMPARE(raw["format"].get<int>(), kSessionFormat);
  QCOMPARE(raw["scalpel_version"].get<std::string>(), std::string(kVersion));
  QCOMPARE(raw["model_path"].get<std::string>(), std::string("model.pt"));
  QCOMPARE(raw["target"]["source"].get<std::string>(), std::string("data"));
  QCOMPARE(raw["source"]["source"].get<std::string>(), std::string("source.csv"));
  QCOMPARE(raw["runs"][0]["tuned_model"].get<std::string>(), std::string("runs/a.pt"));
  QCOMPARE(raw["runs"][1]["tuned_model"].get<std::string>(), std::string("runs/b.pt"));
  // JSON has no NaN: the diverged run's last loss is null on disk.
  QVERIFY(raw["runs"][1]["report"]["history"][2]["train_loss"].is_null());
  // In a folder below: the paths climb out of it.
  fs::create_directories(folder / "sessions");
  QCOMPARE(saveSession(session, folder / "sessions" / "s.json"), std::string());
  const auto below = readJson(folder / "sessions" / "s.json");
  QCOMPARE(below["model_path"].get<std::string>(), std::string("../model.pt"));
  QCOMPARE(below["runs"][0]["tuned_model"].get<std::string>(), std::string("../runs/a.pt"));
}

void TestSession::storesEachKindOfPath_data() {
  QTest::addColumn<QString>("source");    // target data source; %1 is the project folder
  QTest::addColumn<QString>("stored");    // in the file
  QTest::addColumn<QString>("resolved");  // after loading
  QTest::newRow("built-in name") << "fashion-mnist"
                                 << "fashion-mnist"
                                 << "fashion-mnist";
  // Written as "fashion-mnist" it would read back as the built-in data set.
  QTest::newRow("folder named like a built-in") << "%1/fashion-mnist"
                                                << "./fashion-mnist"
                                                << "%1/fashion-mnist";
  QTest::newRow("not normalised") << "%1/runs/../data"
                                  << "data"
                                  << "%1/data";
  QTest::newRow("beside the folder") << "%1/../elsewhere/x.csv"
                                     << "../elsewhere/x.csv"
                                     << "%1/../elsewhere/x.csv";
  // Shares only the root with the session: a system path stays absolute.
  QTest::newRow("system path") << "/usr/share/x.csv"
                               << "/usr/share/x.csv"
                               << "/usr/share/x.csv";
  QTest::newRow("empty") << ""
                         << ""
                         << "";
}

void TestSession::storesEachKindOfPath() {
  QFETCH(QString, source);
  QFETCH(QString, stored);
  QFETCH(QString, resolved);
  QTemporaryDir dir;
  const fs::path folder = tempPath(dir) / "project";
  Session session = makeProject(folder);
  const QString root = QString::fromStdString(folder.string());
  session.target.source = (source.contains("%1") ? source.arg(root) : source).toStdString();
  QCOMPARE(saveSession(session, folder / "session.json"), std::string());
  const auto raw = readJson(folder / "session.json");
  QCOMPARE(QString::fromStdString(raw["target"]["source"].get<std::string>()), stored);

  Session loaded;
  const auto result = loadSession(folder / "session.json", loaded);
  QVERIFY2(result.ok, result.error.c_str());
  const std::string expected =
      resolved.contains("%1")
          ? fs::path(resolved.arg(root).toStdString()).lexically_normal().string()
          : resolved.toStdString();
  QCOMPARE(loaded.target.source, expected);
}

void TestSession::loadsAMovedProjectFolder() {
  QTemporaryDir dir;
  const fs::path folder = tempPath(dir) / "project";
  const Session saved = makeProject(folder);
  QCOMPARE(saveSession(saved, folder / "session.json"), std::string());

  const fs::path moved = tempPath(dir) / "renamed" / "deeper";
  fs::create_directories(moved.parent_path());
  fs::rename(folder, moved);
  Session loaded;
  const auto result = loadSession(moved / "session.json", loaded);
  QVERIFY2(result.ok, result.error.c_str());
  QVERIFY2(result.missing.empty(), qPrintable(joined(result.missing)));
  QVERIFY2(result.warnings.empty(), qPrintable(joined(result.warnings)));
  QVERIFY(fs::path(loaded.modelPath).is_absolute());
  QCOMPARE(loaded.modelPath, (moved / "model.pt").string());
  QCOMPARE(loaded.runs[1].tunedModel, (moved / "runs" / "b.pt").string());
  QVERIFY(loaded == movedTo(saved, folder, moved));

  // A relative path to the session file resolves against its folder, not the working directory.
  const fs::path previous = fs::current_path();
  fs::current_path(tempPath(dir) / "renamed");
  Session again;
  const auto relative = loadSession(fs::path("deeper") / "session.json", again);
  fs::current_path(previous);
  QVERIFY2(relative.ok, relative.error.c_str());
  QCOMPARE(again.modelPath, (moved / "model.pt").string());
}

void TestSession::listsMissingFiles_data() {
  QTest::addColumn<QString>("removed");  // relative to the project folder
  QTest::addColumn<QString>("named");    // what the message must name
  QTest::addColumn<QString>("advice");   // ... and what it must advise
  QTest::newRow("model") << "model.pt"
                         << "model.pt"
                         << "File ▸ Open Model";
  QTest::newRow("tuned model") << "runs/b.pt"
                               << "runs/b.pt"
                               << "block:stem";
  QTest::newRow("target data") << "data"
                               << "data"
                               << "Open Target";
  QTest::newRow("source data") << "source.csv"
                               << "source.csv"
                               << "Analyse Against Source Data";
}

void TestSession::listsMissingFiles() {
  QFETCH(QString, removed);
  QFETCH(QString, named);
  QFETCH(QString, advice);
  QTemporaryDir dir;
  const fs::path folder = tempPath(dir) / "project";
  const Session saved = makeProject(folder);
  QCOMPARE(saveSession(saved, folder / "session.json"), std::string());
  fs::remove_all(folder / removed.toStdString());

  Session loaded;
  const auto result = loadSession(folder / "session.json", loaded);
  QVERIFY2(result.ok, result.error.c_str());  // loaded anyway
  QCOMPARE(result.missing.size(), size_t(1));
  QVERIFY2(
      anyContains(result.missing, (folder / named.toStdString()).string(), advice.toStdString()),
      qPrintable(joined(result.missing)));
  QVERIFY2(anyContains(result.missing, "moved or deleted", " — "),
           qPrintable(joined(result.missing)));
  QVERIFY(result.warnings.empty());
  QVERIFY(loaded == saved);
}

void TestSession::warnsWhenTheModelChanged() {
  QTemporaryDir dir;
  const fs::path folder = tempPath(dir) / "project";
  Session saved = makeProject(folder);
  saved.modelFingerprint.clear();  // saveSession fills it in
  QCOMPARE(saveSession(saved, folder / "session.json"), std::string());
  QCOMPARE(readJson(folder / "session.json")["model_fingerprint"].get<std::string>(),
           fileFingerprint(folder / "model.pt"));

  std::string bytes = readBytes(folder / "model.pt");
  bytes[1234] ^= 1;
  writeBytes(folder / "model.pt", bytes);
  Session loaded;
  const auto result = loadSession(folder / "session.json", loaded);
  QVERIFY2(result.ok, result.error.c_str());
  QVERIFY(result.missing.empty());
  QCOMPARE(result.warnings.size(), size_t(1));
  QVERIFY2(anyContains(result.warnings, (folder / "model.pt").string(),
                       "changed since the session was saved"),
           qPrintable(joined(result.warnings)));
}

void TestSession::refusesBrokenFiles_data() {
  QTest::addColumn<QByteArray>("content");  // empty with a null QByteArray: no file at all
  QTest::addColumn<QString>("message");

  QTemporaryDir dir;
  const fs::path folder = tempPath(dir) / "project";
  QCOMPARE(saveSession(makeProject(folder), folder / "session.json"), std::string());
  const std::string valid = readBytes(folder / "session.json");
  auto withField = [&](const std::function<void(nlohmann::json&)>& edit) {
    auto json = nlohmann::json::parse(valid);
    edit(json);
    return QByteArray::fromStdString(json.dump(2));
  };

  QTest::newRow("no file") << QByteArray() << "cannot read";
  QTest::newRow("empty file") << QByteArray("") << "not a Scalpel session (not JSON";
  QTest::newRow("malformed") << QByteArray("{\"format\": 1, \"model_path\": }")
                             << "not a Scalpel session (not JSON: ";
  QTest::newRow("truncated") << QByteArray::fromStdString(valid.substr(0, valid.size() / 2))
                             << "not a Scalpel session (not JSON: ";
  QTest::newRow("array") << QByteArray("[1, 2, 3]") << "not a Scalpel session (it holds an array";
  QTest::newRow("no format") << QByteArray("{\"model_path\": \"m.pt\"}")
                             << "not a Scalpel session (no format field)";
  QTest::newRow("format a string")
      << QByteArray("{\"format\": \"1\"}") << "format should be a whole number";
  QTest::newRow("newer format") << withField([](auto& j) {
    j["format"] = 2;
  }) << "session format 2 is newer than this Scalpel (1) — update Scalpel";
  QTest::newRow("wrong type") << withField([](auto& j) { j["options"]["learning_rate"] = "fast"; })
                              << "options.learning_rate should be a number, not a string";
  QTest::newRow("wrong type deep") << withField([](auto& j) {
    j["runs"][1]["report"]["history"][2]["validation"]["items"] = -3;
  }) << "runs[1].report.history[2].validation.items should be a whole number from 0";
  QTest::newRow("list not a list")
      << withField([](auto& j) { j["runs"] = nlohmann::json::object(); })
      << "runs should be an array, not an object";
  QTest::newRow("object not an object")
      << withField([](auto& j) { j["split"] = 100; }) << "split should be an object, not 100";
  QTest::newRow("fraction for a count")
      << withField([](auto& j) { j["options"]["batch_size"] = 6.5; })
      << "options.batch_size should be a whole number, not 6.5";
  QTest::newRow("string list") << withField([](auto& j) { j["plan"]["trainable"][1] = 7; })
                               << "plan.trainable[1] should be a string, not 7";
}

void TestSession::refusesBrokenFiles() {
  QFETCH(QByteArray, content);
  QFETCH(QString, message);
  QTemporaryDir dir;
  const fs::path file = tempPath(dir) / "session.json";
  if (!content.isNull()) writeBytes(file, content.toStdString());

  Session session;
  session.strategy = "untouched";
  const auto result = loadSession(file, session);
  QVERIFY(!result.ok);
  QVERIFY2(QString::fromStdString(result.error).contains(message), result.error.c_str());
  QVERIFY2(result.error.find(file.string()) != std::string::npos, result.error.c_str());
  QCOMPARE(session.strategy, std::string("untouched"));
  qInfo("%s", result.error.c_str());
}

void TestSession::failedSaveKeepsThePreviousFile() {
  QTemporaryDir dir;
  const fs::path folder = tempPath(dir) / "project";
  const Session first = makeProject(folder);
  const fs::path file = folder / "session.json";
  QCOMPARE(saveSession(first, file), std::string());
  const std::string before = readBytes(file);
  Session second = first;
  second.strategy = "all";
  second.runs.push_back(second.runs[0]);

  // Into a folder that cannot exist: its parent is a regular file.
  writeBytes(folder / "blocker", "a file");
  const std::string impossible = saveSession(second, folder / "blocker" / "session.json");
  QVERIFY(!impossible.empty());
  QVERIFY2(impossible.find((folder / "blocker" / "session.json").string()) != std::string::npos,
           impossible.c_str());
  QCOMPARE(readBytes(file), before);

  // Over the previous file, failing half-way (the file-size limit stops the write even as root).
  rlimit old{};
  QCOMPARE(getrlimit(RLIMIT_FSIZE, &old), 0);
  const auto oldHandler = std::signal(SIGXFSZ, SIG_IGN);
  rlimit small = old;
  small.rlim_cur = before.size() / 2;
  QCOMPARE(setrlimit(RLIMIT_FSIZE, &small), 0);
  const std::string halfWay = saveSession(second, file);
  setrlimit(RLIMIT_FSIZE, &old);
  std::signal(SIGXFSZ, oldHandler);
  QVERIFY(!halfWay.empty());
  QVERIFY2(halfWay.find("previous file is unchanged") != std::string::npos, halfWay.c_str());
  QCOMPARE(readBytes(file), before);
  // ... and no temporary file is left beside it.
  std::size_t entries = 0;
  for (const auto& entry : fs::directory_iterator(folder)) {
    ++entries;
    QVERIFY2(entry.path().filename().string().find(".tmp") == std::string::npos,
             entry.path().c_str());
  }
  QCOMPARE(entries, size_t(6));  // model.pt data source.csv runs session.json blocker
}

void TestSession::fileFingerprintFollowsEveryByte_data() {
  QTest::addColumn<int>("offset");
  // 200000 bytes span several read chunks: a change anywhere counts.
  QTest::newRow("first byte") << 0;
  QTest::newRow("last byte of a chunk") << 65535;
  QTest::newRow("first byte of the next chunk") << 65536;
  QTest::newRow("middle") << 123457;
  QTest::newRow("last byte") << 199999;
}

void TestSession::fileFingerprintFollowsEveryByte() {
  QFETCH(int, offset);
  QTemporaryDir dir;
  const fs::path file = tempPath(dir) / "model.pt";
  std::string bytes(200000, '\0');
  for (std::size_t i = 0; i < bytes.size(); ++i) bytes[i] = char((i * 2654435761u) >> 13);
  writeBytes(file, bytes);
  const std::string original = fileFingerprint(file);
  QVERIFY(std::regex_match(original, std::regex("fnv1a64:[0-9a-f]{16}:200000")));
  QCOMPARE(fileFingerprint(file), original);  // stable

  bytes[std::size_t(offset)] ^= 0x01;
  writeBytes(file, bytes);
  const std::string changed = fileFingerprint(file);
  QVERIFY(changed != original);
  QCOMPARE(changed.substr(changed.rfind(':')), std::string(":200000"));
  bytes[std::size_t(offset)] ^= 0x01;
  writeBytes(file, bytes);
  QCOMPARE(fileFingerprint(file), original);
}

void TestSession::fileFingerprintKnownValues() {
  QTemporaryDir dir;
  const fs::path folder = tempPath(dir);
  // The published FNV-1a 64 test vectors.
  writeBytes(folder / "empty", "");
  writeBytes(folder / "a", "a");
  writeBytes(folder / "foobar", "foobar");
  QCOMPARE(fileFingerprint(folder / "empty"), std::string("fnv1a64:cbf29ce484222325:0"));
  QCOMPARE(fileFingerprint(folder / "a"), std::string("fnv1a64:af63dc4c8601ec8c:1"));
  QCOMPARE(fileFingerprint(folder / "foobar"), std::string("fnv1a64:85944171f73967e8:6"));
  QCOMPARE(fileFingerprint(folder / "no such file"), std::string());
  QCOMPARE(fileFingerprint(folder), std::string());  // a folder has no bytes to hash
}

void TestSession::datasetFingerprintFollowsTheContent() {
  Dataset data;
  data.name = "tiny";
  data.itemShape = {1, 2, 2};
  data.values = {0.f, 0.25f, 0.5f, 1.f, 0.1f, 0.2f, 0.3f, 0.4f, 1.f, 1.f, 0.f, 0.f};
  data.labels = {0, 1, 1};
  data.classNames = {"ab", "c"};
  const std::string original = datasetFingerprint(data);
  QVERIFY(std::regex_match(original, std::regex("fnv1a64:[0-9a-f]{16}:3")));
  QCOMPARE(datasetFingerprint(data), original);
  Dataset renamed = data;
  renamed.name = "elsewhere";  // where it came from is not what it holds
  QCOMPARE(datasetFingerprint(renamed), original);

  const std::vector<std::pair<const char*, std::function<void(Dataset&)>>> changes = {
      {"one value", [](Dataset& d) { d.values[5] = std::nextafter(d.values[5], 1.f); }},
      {"one label", [](Dataset& d) { d.labels[2] = 0; }},
      {"a class name", [](Dataset& d) { d.classNames[1] = "d"; }},
      {"a class-name boundary",
       [](Dataset& d) {
         d.classNames = {"a", "bc"};
       }},
      {"the item shape",
       [](Dataset& d) {
         d.itemShape = {1, 4, 1};
       }},
      {"negative zero", [](Dataset& d) { d.values[0] = -0.f; }},
  };
  for (const auto& [what, change] : changes) {
    Dataset changed = data;
    change(changed);
    QVERIFY2(datasetFingerprint(changed) != original, what);
  }
}

void TestSession::runReportRoundTrips() {
  for (int run : {0, 1}) {
    const RunReport report = fullReport("/models", run);
    const std::string json = runReportToJson(report);
    QVERIFY(json.find("\n  \"format\": 1,\n") != std::string::npos);  // pretty, 2 spaces, first
    RunReport parsed;
    QCOMPARE(parseRunReport(json, parsed), std::string());
    QVERIFY(parsed == report);
    QCOMPARE(runReportToJson(parsed), json);
  }
}

void TestSession::runReportRefusesWithAMessage_data() {
  QTest::addColumn<QByteArray>("json");
  QTest::addColumn<QString>("message");
  QTest::newRow("not JSON") << QByteArray("{\"format\": 1") << "not JSON: ";
  QTest::newRow("empty") << QByteArray("") << "not JSON: ";
  QTest::newRow("array") << QByteArray("[]") << "not a Scalpel run report (the JSON holds an array";
  QTest::newRow("no format") << QByteArray("{\"outcome\": \"finished\"}") << "no format field";
  QTest::newRow("newer")
      << QByteArray("{\"format\": 2, \"outcome\": \"finished\"}")
      << "report format 2 is newer than this Scalpel understands (1) — update Scalpel";
}

void TestSession::runReportRefusesWithAMessage() {
  QFETCH(QByteArray, json);
  QFETCH(QString, message);
  RunReport report;
  report.outcome = "untouched";
  const std::string error = parseRunReport(json.toStdString(), report);
  QVERIFY2(QString::fromStdString(error).contains(message), error.c_str());
  QCOMPARE(report.outcome, std::string("untouched"));
}

void TestSession::runReportToleratesMistypedFields() {
  const RunReport report = fullReport("/models", 1);
  auto json = nlohmann::json::parse(runReportToJson(report));
  json["seconds"] = "a while";
  json["options"]["epochs"] = "many";
  json["history"][0]["validation"]["per_class_accuracy"] = "none";
  json.erase("device");
  RunReport parsed;
  QCOMPARE(parseRunReport(json.dump(), parsed), std::string());
  QCOMPARE(parsed.seconds, 0.0);
  QCOMPARE(parsed.options.epochs, TrainOptions().epochs);
  QVERIFY(parsed.history[0].validation.perClassAccuracy.empty());
  QCOMPARE(parsed.device, std::string());
  // The rest is as written.
  QCOMPARE(parsed.outcome, report.outcome);
  QCOMPARE(parsed.options.learningRate, report.options.learningRate);
  QVERIFY(parsed.history[1] == report.history[1]);
  QVERIFY(std::isnan(parsed.history[2].trainLoss));
}

void TestSession::fillRunReportNamesTheOutcome_data() {
  QTest::addColumn<bool>("ok");
  QTest::addColumn<bool>("cancelled");
  QTest::addColumn<bool>("diverged");
  QTest::addColumn<bool>("stoppedEarly");
  QTest::addColumn<QString>("outcome");
  QTest::newRow("finished") << true << false << false << false << "finished";
  QTest::newRow("stopped early") << true << false << false << true << "stopped early";
  QTest::newRow("cancelled") << false << true << false << false << "cancelled";
  QTest::newRow("diverged") << false << false << true << false << "diverged";
  QTest::newRow("failed") << false << false << false << false << "failed";
}

void TestSession::fillRunReportNamesTheOutcome() {
  QFETCH(bool, ok);
  QFETCH(bool, cancelled);
  QFETCH(bool, diverged);
  QFETCH(bool, stoppedEarly);
  QFETCH(QString, outcome);
  const RunReport full = fullReport("/models", 0);
  TrainResult result;
  result.ok = ok;
  result.cancelled = cancelled;
  result.diverged = diverged;
  result.stoppedEarly = stoppedEarly;
  result.error = ok ? "" : "why it ended";
  result.device = "cpu (2 threads)";
  result.trainableParameters = 1000;
  result.frozenParameters = 2000;
  result.validationBefore = full.validationBefore;
  result.testBefore = full.testBefore;
  result.validationAfter = full.validationAfter;
  result.testAfter = full.testAfter;
  result.history = full.history;
  result.bestEvaluation = 2;
  result.steps = 77;
  result.seconds = 3.5;

  RunReport report;
  report.modelPath = "/models/m.pt";  // the caller's part stays
  fillRunReport(result, report);
  QCOMPARE(QString::fromStdString(report.outcome), outcome);
  QCOMPARE(report.message, result.error);
  QCOMPARE(report.device, result.device);
  QCOMPARE(report.trainableParameters, std::int64_t(1000));
  QCOMPARE(report.frozenParameters, std::int64_t(2000));
  QVERIFY(report.validationBefore == result.validationBefore &&
          report.testAfter == result.testAfter);
  QVERIFY(report.history == result.history);
  QCOMPARE(report.bestEvaluation, 2);
  QCOMPARE(report.steps, size_t(77));
  QCOMPARE(report.seconds, 3.5);
  QCOMPARE(report.modelPath, std::string("/models/m.pt"));
}

QTEST_GUILESS_MAIN(TestSession)
#include "test_session.moc"
