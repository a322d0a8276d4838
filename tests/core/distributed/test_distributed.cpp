// Data-parallel fine-tuning with c10d (Gloo on loopback): real processes of scalpel-cli, the
// real regressor and demo models, real Fashion-MNIST.

#include <QJsonArray>
#include <QJsonDocument>
#include <QJsonObject>
#include <QProcess>
#include <QRegularExpression>
#include <QTemporaryDir>
#include <QtTest>

#include <signal.h>
#include <unistd.h>

#include <torch/script.h>

#include <cstdlib>
#include <map>
#include <numeric>

#include "data/batch_stream.h"
#include "data/csv_reader.h"
#include "data/splits.h"
#include "distributed/launch_environment.h"
#include "distributed/local_launcher.h"
#include "io/job_folder.h"
#include "support/reference.h"

using namespace scalpel;

class TestDistributed : public QObject {
  Q_OBJECT

 private Q_SLOTS:
  void sharesSplitLikeTheDistributedSampler();
  void shardedBatchesTogetherAreTheGlobalBatch();
  void launchEnvironmentIsChecked();
  void twoAndThreeProcessesTrainLikeOne();
  void batchNormModesAcrossProcesses();
  void onlyTrainableGradientsTravel();
  void killedRankStopsTheOthers();
  void stalledRankTimesOut();
  void stopSignalKeepsTheBestState_data();
  void stopSignalKeepsTheBestState();
  void jobFolderRunsUnderTorchrun();

 private:
  struct Run {
    int exitCode = -1;
    QString out;
    QString err;
  };
  static Run cli(const QStringList& arguments,
                 const QProcessEnvironment& environment = QProcessEnvironment::systemEnvironment());
  static QStringList regressionRun(const QString& out, int processes);
  // A demo run on `processes` that would train for ever (evaluating every step): for killing and
  // stopping its ranks.
  static QStringList endlessDemoRun(const QString& out, const QString& processes);
};

TestDistributed::Run TestDistributed::cli(const QStringList& arguments,
                                          const QProcessEnvironment& environment) {
  QProcess process;
  process.setProcessEnvironment(environment);
  process.start(SCALPEL_CLI, arguments);
  Run run;
  if (!process.waitForFinished(180000)) return run;
  run.exitCode = process.exitStatus() == QProcess::NormalExit ? process.exitCode() : -1;
  run.out = QString::fromUtf8(process.readAllStandardOutput());
  run.err = QString::fromUtf8(process.readAllStandardError());
  return run;
}

// 300 training rows, a global batch of 60: 5 steps per epoch for 1, 2 or 3 processes.
QStringList TestDistributed::endlessDemoRun(const QString& out, const QString& processes) {
  return {"train",
          "--model",
          scalpel::test::demoModel(),
          "--shift",
          "gaussian-noise",
          "--strategy",
          "all",
          "--train-per-class",
          "20",
          "--validation-per-class",
          "10",
          "--batch-size",
          "40",
          "--epochs",
          "100000",
          "--evaluate-every",
          "1",
          "--device",
          "cpu",
          "--nproc",
          processes,
          "--out",
          out};
}

QStringList TestDistributed::regressionRun(const QString& out, int processes) {
  return {"train",
          "--model",
          test::fixture("regressor.pt"),
          "--target",
          test::fixture("regression_target.csv"),
          "--regress",
          "ink,balance",
          "--strategy",
          "all",
          "--train-per-class",
          "300",
          "--validation-per-class",
          "100",
          "--batch-size",
          "60",
          "--epochs",
          "3",
          "--lr",
          "0.003",
          "--device",
          "cpu",
          "--nproc",
          QString::number(processes),
          "--out",
          out,
          "--session",
          out + ".session.json"};
}

namespace {

std::map<std::string, torch::Tensor> state(const QString& path) {
  auto module = torch::jit::load(path.toStdString());
  std::map<std::string, torch::Tensor> tensors;
  for (const auto& p : module.named_parameters()) tensors[p.name] = p.value;
  for (const auto& b : module.named_buffers()) tensors[b.name] = b.value;
  return tensors;
}

QJsonArray history(const QString& sessionPath) {
  QFile file(sessionPath);
  if (!file.open(QIODevice::ReadOnly)) return {};
  const auto runs = QJsonDocument::fromJson(file.readAll()).object()["runs"].toArray();
  return runs.isEmpty() ? QJsonArray()
                        : runs.last().toObject()["report"].toObject()["history"].toArray();
}

Dataset regressionTarget() {
  CsvOptions options;
  options.targetColumns = {"ink", "balance"};
  auto loaded = readCsv(test::fixture("regression_target.csv").toStdString(), options);
  return loaded ? *loaded.dataset : Dataset{};
}

}  // namespace

void TestDistributed::sharesSplitLikeTheDistributedSampler() {
  const std::vector<std::size_t> order{7, 3, 9, 1, 4, 8, 2};
  // Padded (training): the order extended by its own beginning to 9 items, every 3rd from r.
  QCOMPARE(shareOf(order, 0, 3, true), (std::vector<std::size_t>{7, 1, 2}));
  QCOMPARE(shareOf(order, 1, 3, true), (std::vector<std::size_t>{3, 4, 7}));
  QCOMPARE(shareOf(order, 2, 3, true), (std::vector<std::size_t>{9, 8, 3}));
  // Not padded (evaluation): disjoint and together exactly the order.
  std::vector<std::size_t> all;
  for (std::size_t r = 0; r < 3; ++r) {
    const auto share = shareOf(order, r, 3, false);
    all.insert(all.end(), share.begin(), share.end());
  }
  std::sort(all.begin(), all.end());
  auto sorted = order;
  std::sort(sorted.begin(), sorted.end());
  QCOMPARE(all, sorted);
  QCOMPARE(shareOf(order, 0, 1, true), order);
}

// Batch k of each process's stream, together, holds the items of batch k of one stream with the
// global batch size (same seed, same epoch): the property that makes 1 and N processes agree.
void TestDistributed::shardedBatchesTogetherAreTheGlobalBatch() {
  const Dataset data = regressionTarget();
  QCOMPARE(data.size(), std::size_t(1000));
  std::vector<std::size_t> indices(300);
  std::iota(indices.begin(), indices.end(), 0);
  const auto sortedRows = [](const torch::Tensor& inputs) {
    std::vector<std::vector<float>> rows;
    for (std::int64_t i = 0; i < inputs.size(0); ++i) {
      const auto row = inputs[i].contiguous();
      rows.emplace_back(row.data_ptr<float>(), row.data_ptr<float>() + row.numel());
    }
    std::sort(rows.begin(), rows.end());
    return rows;
  };
  BatchStream::Options options;
  options.seed = 5;
  options.batchSize = 60;
  BatchStream whole(BatchStream::borrow(data), indices, options);
  std::vector<std::unique_ptr<BatchStream>> shares;
  for (std::size_t r = 0; r < 3; ++r) {
    auto share = options;
    share.batchSize = 20;
    share.share = r;
    share.shares = 3;
    shares.push_back(std::make_unique<BatchStream>(BatchStream::borrow(data), indices, share));
    QCOMPARE(shares.back()->batchesPerEpoch(), whole.batchesPerEpoch());
  }
  for (int epoch : {0, 1}) {
    whole.startEpoch(epoch);
    for (auto& share : shares) share->startEpoch(epoch);
    for (std::size_t k = 0; k < whole.batchesPerEpoch(); ++k) {
      const auto global = whole.next();
      std::vector<torch::Tensor> parts;
      for (auto& share : shares) parts.push_back(share->next()->inputs);
      QCOMPARE(sortedRows(torch::cat(parts)), sortedRows(global->inputs));
    }
  }
}

void TestDistributed::launchEnvironmentIsChecked() {
  const auto with = [](const std::map<std::string, std::string>& variables) {
    for (const char* name :
         {"WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT", "SCALPEL_DIST_TIMEOUT"})
      unsetenv(name);
    for (const auto& [name, value] : variables) setenv(name.c_str(), value.c_str(), 1);
    LaunchEnvironment environment;
    const auto problem = readLaunchEnvironment(environment);
    return std::pair{problem, environment};
  };
  auto [none, single] = with({});
  QVERIFY(none.empty());
  QVERIFY(!single.distributed());
  auto [fine, two] = with({{"WORLD_SIZE", "2"},
                           {"RANK", "1"},
                           {"LOCAL_RANK", "1"},
                           {"MASTER_ADDR", "10.0.0.5"},
                           {"MASTER_PORT", "29511"},
                           {"SCALPEL_DIST_TIMEOUT", "7"}});
  QVERIFY2(fine.empty(), fine.c_str());
  QVERIFY(two.distributed());
  QCOMPARE(two.rank, 1);
  QCOMPARE(two.masterAddress, std::string("10.0.0.5"));
  QCOMPARE(two.masterPort, 29511);
  QCOMPARE(two.timeout.count(), 7L);
  QVERIFY(with({{"WORLD_SIZE", "2"}, {"MASTER_ADDR", "h"}, {"MASTER_PORT", "1"}})
              .first.find("RANK is not set") != std::string::npos);
  QVERIFY(with({{"WORLD_SIZE", "2"}, {"RANK", "2"}, {"MASTER_ADDR", "h"}, {"MASTER_PORT", "1"}})
              .first.find("not below WORLD_SIZE") != std::string::npos);
  QVERIFY(with({{"WORLD_SIZE", "2"}, {"RANK", "0"}}).first.find("MASTER_ADDR and MASTER_PORT") !=
          std::string::npos);
  QVERIFY(with({{"WORLD_SIZE", "two"}}).first.find("WORLD_SIZE=two is not a whole number") !=
          std::string::npos);
  with({});
}

// The same global batch and seed on 1, 2 and 3 processes: the same weights (float rounding of a
// mean over shares instead of over one batch) and the same curves.
void TestDistributed::twoAndThreeProcessesTrainLikeOne() {
  QTemporaryDir dir;
  std::map<int, QString> models;
  for (int processes : {1, 2, 3}) {
    models[processes] = dir.filePath(QString("tuned-%1.pt").arg(processes));
    const auto run = cli(regressionRun(models[processes], processes));
    QVERIFY2(run.exitCode == 0, qPrintable(run.err + run.out));
    if (processes > 1) {
      QVERIFY2(run.out.contains(QString("starting %1 processes").arg(processes)),
               qPrintable(run.out));
      QVERIFY2(run.out.contains(QString("on %1 processes: each all-reduced").arg(processes)),
               qPrintable(run.out));
      QCOMPARE(run.out.count("finished after 15 steps"), 1);  // rank 0 alone reports
      QVERIFY(QFile::exists(dir.filePath(QString("tuned-%1-checkpoint.pt").arg(processes))));
    }
  }
  const auto one = state(models[1]);
  for (int processes : {2, 3}) {
    const auto many = state(models[processes]);
    double largest = 0;
    for (const auto& [name, value] : one)
      largest = std::max(largest, (value - many.at(name)).abs().max().item<double>());
    QVERIFY2(largest < 1e-5,
             qPrintable(QString("%1 processes: weights differ by %2").arg(processes).arg(largest)));
    const auto a = history(models[1] + ".session.json"),
               b = history(models[processes] + ".session.json");
    QCOMPARE(a.size(), 3);
    QCOMPARE(b.size(), a.size());
    for (int i = 0; i < a.size(); ++i) {
      const auto x = a[i].toObject(), y = b[i].toObject();
      QCOMPARE(y["step"].toInt(), x["step"].toInt());
      QVERIFY(std::abs(y["train_loss"].toDouble() - x["train_loss"].toDouble()) < 1e-5);
      const auto vx = x["validation"].toObject(), vy = y["validation"].toObject();
      QVERIFY(std::abs(vy["loss"].toDouble() - vx["loss"].toDouble()) < 1e-5);
      QVERIFY(std::abs(vy["r2"].toDouble() - vx["r2"].toDouble()) < 1e-5);
      QCOMPARE(vy["items"].toInt(), 100);  // every validation row counted once across the shares
    }
  }
}

// BatchNorm in eval mode (the default, as in the window): 1 and 2 processes train the same model.
// In train mode each process would normalise its half-batch by its own statistics, so 2 would
// train another model than 1: that is refused, saying why, while 1 process trains in it.
void TestDistributed::batchNormModesAcrossProcesses() {
  QTemporaryDir dir;
  const auto run = [&](const QString& name, int processes, const QString& mode) {
    QStringList arguments{"train",
                          "--model",
                          scalpel::test::demoModel(),
                          "--shift",
                          "gaussian-noise",
                          "--strategy",
                          "block:layer1",
                          "--train-per-class",
                          "20",
                          "--validation-per-class",
                          "10",
                          "--batch-size",
                          "40",
                          "--epochs",
                          "1",
                          "--seed",
                          "3",
                          "--device",
                          "cpu",
                          "--nproc",
                          QString::number(processes),
                          "--out",
                          dir.filePath(name)};
    if (!mode.isEmpty()) arguments << mode;
    return cli(arguments);
  };
  const auto one = run("eval-1.pt", 1, {}), two = run("eval-2.pt", 2, {});
  QVERIFY2(one.exitCode == 0 && two.exitCode == 0, qPrintable(one.err + two.err));
  const auto a = state(dir.filePath("eval-1.pt")), b = state(dir.filePath("eval-2.pt"));
  double largest = 0;
  for (const auto& [name, value] : a)
    largest = std::max(largest, (value - b.at(name)).abs().max().item<double>());
  QVERIFY2(
      largest < 1e-5,
      qPrintable(QString("BatchNorm in eval mode: 1 and 2 processes differ by %1").arg(largest)));
  const auto trainMode = run("train-1.pt", 1, "--bn-train");
  QVERIFY2(trainMode.exitCode == 0, qPrintable(trainMode.err));
  const auto refused = run("train-2.pt", 2, "--bn-train");
  QVERIFY(refused.exitCode != 0);
  QVERIFY2(refused.err.contains("BatchNorm in train mode (layer1.bn1 trains)") &&
               refused.err.contains("keep BatchNorm in eval mode"),
           qPrintable(refused.err));
  QVERIFY(!QFile::exists(dir.filePath("train-2.pt")));
}

// Surgical fine-tuning's bandwidth win: with only layer3 trainable, each step all-reduces
// exactly its parameters' bytes (counted at the calls into c10d, in several buckets), and the
// frozen tensors end bit-identical on every rank's model.
void TestDistributed::onlyTrainableGradientsTravel() {
  QTemporaryDir dir;
  const QString demo = scalpel::test::demoModel();
  const QString out = dir.filePath("tuned.pt");
  const auto run = cli({"train",
                        "--model",
                        demo,
                        "--shift",
                        "gaussian-noise",
                        "--severity",
                        "3",
                        "--strategy",
                        "block:layer3",
                        "--bn-eval",
                        "--train-per-class",
                        "20",
                        "--validation-per-class",
                        "10",
                        "--batch-size",
                        "40",
                        "--epochs",
                        "2",
                        "--device",
                        "cpu",
                        "--nproc",
                        "2",
                        "--bucket-mb",
                        "0.02",
                        "--out",
                        out});
  QVERIFY2(run.exitCode == 0, qPrintable(run.err + run.out));
  const auto trained = QRegularExpression("trained (\\d+) of (\\d+) parameters").match(run.out);
  const auto sent = QRegularExpression(
                        "each all-reduced (\\d+) bytes of gradients in (\\d+) steps \\((\\d+) per "
                        "step, in (\\d+) buckets")
                        .match(run.out);
  QVERIFY2(trained.hasMatch() && sent.hasMatch(), qPrintable(run.out));
  const qint64 trainable = trained.captured(1).toLongLong(),
               total = trained.captured(2).toLongLong();
  QVERIFY(trainable > 0 && trainable < total);
  QCOMPARE(sent.captured(3).toLongLong(), 4 * trainable);  // float32: exactly the trainable ones
  QCOMPARE(sent.captured(1).toLongLong(), 4 * trainable * sent.captured(2).toLongLong());
  QVERIFY2(sent.captured(4).toInt() > 1,
           qPrintable(run.out));  // buckets, launched as backward fills them
  const auto before = state(demo), after = state(out);
  int changed = 0;
  for (const auto& [name, value] : before) {
    const bool same = value.equal(after.at(name));
    if (name.rfind("layer3.", 0) != 0) QVERIFY2(same, name.c_str());
    changed += same ? 0 : 1;
  }
  QVERIFY(changed > 0);
}

// A rank killed mid-run: the others stop with a message at once (its sockets close), the
// launcher names the rank and how it died, and the last checkpoint still loads.
void TestDistributed::killedRankStopsTheOthers() {
  QTemporaryDir dir;
  const QString out = dir.filePath("tuned.pt"), checkpoint = dir.filePath("tuned-checkpoint.pt");
  QProcess process;
  process.start(SCALPEL_CLI, endlessDemoRun(out, "2"));
  QString output;
  qint64 victim = 0;
  QElapsedTimer waited;
  waited.start();
  while (waited.elapsed() < 120000 && (victim == 0 || !QFile::exists(checkpoint))) {
    process.waitForReadyRead(200);
    output += QString::fromUtf8(process.readAllStandardOutput());
    const auto match = QRegularExpression("rank 1: process (\\d+)").match(output);
    if (match.hasMatch()) victim = match.captured(1).toLongLong();
    QVERIFY2(process.state() == QProcess::Running,
             qPrintable(output + process.readAllStandardError()));
  }
  QVERIFY2(victim > 0 && QFile::exists(checkpoint), qPrintable(output));
  QTest::qWait(500);  // mid-epoch, a few steps on
  QElapsedTimer stopping;
  stopping.start();
  QCOMPARE(kill(static_cast<pid_t>(victim), SIGKILL), 0);
  QVERIFY2(process.waitForFinished(60000), "the other rank did not stop within a minute");
  const qint64 seconds = stopping.elapsed() / 1000;
  QVERIFY2(seconds < 30, qPrintable(QString("took %1 s").arg(seconds)));
  const QString errors = QString::fromUtf8(process.readAllStandardError());
  QVERIFY(process.exitCode() != 0);
  QVERIFY2(errors.contains(QString("rank 1 (process %1) was killed by signal 9").arg(victim)),
           qPrintable(errors));
  QVERIFY2(errors.contains("the distributed run broke off"), qPrintable(errors));
  QVERIFY(!QFile::exists(out));
  auto model = torch::jit::load(checkpoint.toStdString());  // intact: written atomically
  model.eval();
  torch::NoGradGuard noGrad;
  QVERIFY(model.forward({torch::rand({2, 1, 28, 28})}).toTensor().isfinite().all().item<bool>());
}

// A rank that stops answering without dying (SIGSTOP): the others give up after
// SCALPEL_DIST_TIMEOUT with a message, and the launcher then ends the stalled one.
void TestDistributed::stalledRankTimesOut() {
  QTemporaryDir dir;
  auto environment = QProcessEnvironment::systemEnvironment();
  environment.insert("SCALPEL_DIST_TIMEOUT", "4");
  QProcess process;
  process.setProcessEnvironment(environment);
  process.start(SCALPEL_CLI, {"train",
                              "--model",
                              test::fixture("regressor.pt"),
                              "--target",
                              test::fixture("regression_target.csv"),
                              "--regress",
                              "ink,balance",
                              "--strategy",
                              "all",
                              "--train-per-class",
                              "300",
                              "--validation-per-class",
                              "100",
                              "--batch-size",
                              "60",
                              "--epochs",
                              "1000000",
                              "--device",
                              "cpu",
                              "--nproc",
                              "2",
                              "--out",
                              dir.filePath("tuned.pt")});
  QString output;
  qint64 victim = 0;
  QElapsedTimer waited;
  waited.start();
  while (waited.elapsed() < 60000 && (victim == 0 || !output.contains("plan (all)"))) {
    process.waitForReadyRead(200);
    output += QString::fromUtf8(process.readAllStandardOutput());
    const auto match = QRegularExpression("rank 1: process (\\d+)").match(output);
    if (match.hasMatch()) victim = match.captured(1).toLongLong();
  }
  QVERIFY2(victim > 0, qPrintable(output));
  QTest::qWait(1500);  // training
  QElapsedTimer stopping;
  stopping.start();
  QCOMPARE(kill(static_cast<pid_t>(victim), SIGSTOP), 0);
  const bool finished = process.waitForFinished(60000);
  kill(static_cast<pid_t>(victim), SIGKILL);  // never leave it behind
  QVERIFY2(finished, "the run hung");
  const qint64 seconds = stopping.elapsed() / 1000;
  // 4 s for the collective to time out, 4 + 5 s of grace, 5 s from SIGTERM to SIGKILL.
  QVERIFY2(seconds < 30, qPrintable(QString("took %1 s").arg(seconds)));
  const QString errors = QString::fromUtf8(process.readAllStandardError());
  QVERIFY(process.exitCode() != 0);
  QVERIFY2(errors.contains("rank 0") && errors.contains("the distributed run broke off"),
           qPrintable(errors));
  QVERIFY2(errors.contains("were stopped"), qPrintable(errors));
}

// SIGTERM or Ctrl-C (the window's Stop, scancel, a terminal) while training, alone or on 2
// processes: every process stops at the same step, and the best state so far is written as the
// tuned model with the outcome "cancelled" — nothing trained is lost, and no process is left.
void TestDistributed::stopSignalKeepsTheBestState_data() {
  QTest::addColumn<int>("processes");
  QTest::addColumn<int>("signal");
  QTest::addColumn<bool>(
      "toTheGroup");  // as a terminal's Ctrl-C: every process gets it, and again from the launcher
  QTest::newRow("1 process, SIGINT") << 1 << SIGINT << false;
  QTest::newRow("2 processes, SIGTERM to the launcher (the window's Stop)")
      << 2 << SIGTERM << false;
  QTest::newRow("2 processes, Ctrl-C in a terminal") << 2 << SIGINT << true;
}

void TestDistributed::stopSignalKeepsTheBestState() {
  QFETCH(int, processes);
  QFETCH(int, signal);
  QFETCH(bool, toTheGroup);
  QTemporaryDir dir;
  const QString out = dir.filePath("tuned.pt"), session = dir.filePath("session.json");
  QProcess process;
  process.setChildProcessModifier(
      [] { setsid(); });  // a process group of its own, as a shell gives it
  process.start(SCALPEL_CLI, endlessDemoRun(out, QString::number(processes)) +
                                 QStringList{"--session", session});
  QString output;
  QElapsedTimer waited;
  waited.start();
  while (waited.elapsed() < 120000 && output.count("validation loss") < 3) {
    process.waitForReadyRead(200);
    output += QString::fromUtf8(process.readAllStandardOutput());
    QVERIFY2(process.state() == QProcess::Running,
             qPrintable(output + process.readAllStandardError()));
  }
  QVERIFY2(output.count("validation loss") >= 3, qPrintable(output));
  QElapsedTimer stopping;
  stopping.start();
  const auto pid = static_cast<pid_t>(process.processId());
  QCOMPARE(kill(toTheGroup ? -pid : pid, signal), 0);
  QVERIFY2(process.waitForFinished(60000), "the run did not stop within a minute");
  const qint64 seconds = stopping.elapsed() / 1000;
  QVERIFY2(seconds < 30, qPrintable(QString("took %1 s").arg(seconds)));
  output += QString::fromUtf8(process.readAllStandardOutput());
  const QString errors = QString::fromUtf8(process.readAllStandardError());
  QVERIFY2(errors.contains("stopping after this step"), qPrintable(errors));
  QVERIFY2(!errors.contains("broke off"), qPrintable(errors));  // together, not one after another
  QVERIFY2(output.contains("cancelled after"), qPrintable(output));
  QVERIFY2(output.contains(out + ": the tuned model"), qPrintable(output));

  QFile file(session);
  QVERIFY(file.open(QIODevice::ReadOnly));
  const auto run =
      QJsonDocument::fromJson(file.readAll()).object()["runs"].toArray().last().toObject();
  QCOMPARE(run["report"].toObject()["outcome"].toString(), QString("cancelled"));
  QVERIFY(run["report"].toObject()["history"].toArray().size() >= 3);
  QCOMPARE(QFileInfo(QDir(dir.path()).filePath(run["tuned_model"].toString())).absoluteFilePath(),
           QFileInfo(out).absoluteFilePath());
  auto model = torch::jit::load(out.toStdString());
  model.eval();
  torch::NoGradGuard noGrad;
  QVERIFY(model.forward({torch::rand({2, 1, 28, 28})}).toTensor().isfinite().all().item<bool>());
}

// `scalpel-cli job` writes a session as a folder whose torchrun script (Debian's torchrun, c10d
// rendezvous) trains it on 2 processes; the results read back as a finished run with its curve.
void TestDistributed::jobFolderRunsUnderTorchrun() {
  QTemporaryDir dir;
  const QString session = dir.filePath("session.json");
  auto arguments = regressionRun(dir.filePath("first.pt"), 1);
  arguments.replace(arguments.indexOf(dir.filePath("first.pt") + ".session.json"), session);
  arguments.replace(arguments.indexOf("all"), "block:input");
  const auto first = cli(arguments);
  QVERIFY2(first.exitCode == 0, qPrintable(first.err));
  const QString job = dir.filePath("job");
  const auto written = cli({"job", "--session", session, "--out", job, "--nproc", "2"});
  QVERIFY2(written.exitCode == 0, qPrintable(written.err));
  QVERIFY(QFile::exists(job + "/data/regression_target.csv"));
  QVERIFY2(!readJobResults(job.toStdString()).ok, "nothing has run yet");
  const auto again = cli({"job", "--session", session, "--out", job});
  QVERIFY2(again.exitCode != 0 && again.err.contains("is not empty"), qPrintable(again.err));

  QProcess torchrun;
  auto environment = QProcessEnvironment::systemEnvironment();
  environment.insert("NPROC_PER_NODE", "2");
  environment.insert("RDZV_ENDPOINT", QString("localhost:%1").arg(freeLocalPort()));
  torchrun.setProcessEnvironment(environment);
  torchrun.start("bash", {job + "/run-torchrun.sh"});
  QVERIFY(torchrun.waitForFinished(180000));
  const QString output = QString::fromUtf8(torchrun.readAll());
  QVERIFY2(torchrun.exitCode() == 0, qPrintable(output));
  QVERIFY2(output.contains("on 2 processes: each all-reduced"), qPrintable(output));
  const auto results = readJobResults(job.toStdString());
  QVERIFY2(results.ok, results.error.c_str());
  QCOMPARE(results.report.outcome, std::string("finished"));
  QCOMPARE(results.report.plan.trainable, std::vector<std::string>{"input"});
  QCOMPARE(results.metrics.size(), std::size_t(3));  // one line per evaluation
  QCOMPARE(results.metrics.size(), results.report.history.size());
  QVERIFY(std::abs(results.metrics.back().validation.r2 -
                   results.report.history.back().validation.r2) < 1e-12);
  QVERIFY(QFile::exists(job + "/results/report/report.md"));
}

QTEST_GUILESS_MAIN(TestDistributed)
#include "test_distributed.moc"
