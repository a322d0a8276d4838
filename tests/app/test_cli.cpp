// scalpel-cli run as a user runs it: a real process on real model files.

#include <QJsonArray>
#include <QJsonDocument>
#include <QJsonObject>
#include <QProcess>
#include <QRegularExpression>
#include <QTemporaryDir>
#include <QtTest>

#include "support/reference.h"

class TestCli : public QObject {
  Q_OBJECT

 private Q_SLOTS:
  void inspectJsonMatchesPython();
  void inspectTextShowsTheTree();
  void inspectRejectsBadInput_data();
  void inspectRejectsBadInput();
  void version();
  void pretrainOnASmallSubset();
  void analyzeAndSuggest();
  void checkpointsOpenConvertAndGetANewHead();
  void trainExportAndSession();
  void trainRegression();
  void trainRejectsBadInput_data();
  void trainRejectsBadInput();

 private:
  struct Run {
    int exitCode = -1;
    QString out;
    QString err;
  };
  static Run cli(const QStringList& arguments);
};

TestCli::Run TestCli::cli(const QStringList& arguments) {
  QProcess process;
  process.start(SCALPEL_CLI, arguments);
  Run run;
  if (!process.waitForFinished(120000)) return run;
  run.exitCode = process.exitStatus() == QProcess::NormalExit ? process.exitCode() : -1;
  run.out = QString::fromUtf8(process.readAllStandardOutput());
  run.err = QString::fromUtf8(process.readAllStandardError());
  return run;
}

void TestCli::inspectJsonMatchesPython() {
  const auto run = cli({"inspect", scalpel::test::fixture("vit.pt"), "--json"});
  QCOMPARE(run.exitCode, 0);
  const auto json = QJsonDocument::fromJson(run.out.toUtf8()).object();
  const auto reference = scalpel::test::pythonReference("vit");
  QCOMPARE(json["modules"].toArray().size(), reference["modules"].toArray().size());
  QCOMPARE(json["input_shape"].toArray(), QJsonArray({1, 3, 32, 32}));
  // The encoder's attention module returns (output, weights): tapped on its first element.
  bool sawAttention = false;
  for (const auto& value : json["modules"].toArray()) {
    const auto module = value.toObject();
    if (module["name"] == "encoder.layers.encoder_layer_0.self_attention") {
      sawAttention = true;
      QCOMPARE(module["type"].toString(), QString("MultiheadAttention"));
      // 16 patches of 8×8 plus the class token
      QCOMPARE(module["output_shape"].toArray(), QJsonArray({1, 17, 32}));
    }
  }
  QVERIFY(sawAttention);
  QStringList blocks;
  for (const auto& block : json["blocks"].toArray()) blocks << block.toObject()["name"].toString();
  QCOMPARE(blocks, QStringList({"conv_proj", "encoder", "heads"}));
}

void TestCli::inspectTextShowsTheTree() {
  const auto run =
      cli({"inspect", scalpel::test::fixture("resnet18.pt"), "--input-shape", "1,3,64,64"});
  QCOMPARE(run.exitCode, 0);
  QVERIFY2(run.out.contains("layer4  [block layer4]"), qPrintable(run.out));
  QVERIFY(run.out.contains("maxpool  [block stem]"));
  QVERIFY(run.out.contains("1×512×2×2"));
  QVERIFY(run.out.contains("(called 2×)"));  // each BasicBlock's shared ReLU
  QVERIFY(run.out.contains("11.2M parameters"));
}

void TestCli::inspectRejectsBadInput_data() {
  QTest::addColumn<QStringList>("arguments");
  QTest::addColumn<int>("exitCode");
  QTest::addColumn<QString>("message");
  QTest::newRow("missing file") << QStringList{"inspect", "/nonexistent/model.pt"} << 1
                                << "no such file";
  QTest::newRow("not a model") << QStringList{"inspect", scalpel::test::fixture("not_a_model.zip")}
                               << 1 << "not a TorchScript model";
  QTest::newRow("bad shape") << QStringList{"inspect", scalpel::test::fixture("mlp.pt"),
                                            "--input-shape", "1,x"}
                             << 2 << "is not a shape";
  QTest::newRow("wrong shape") << QStringList{"inspect", scalpel::test::fixture("mlp.pt"),
                                              "--input-shape", "1,5"}
                               << 1 << "does not accept an input of shape 1×5";
  QTest::newRow("no subcommand") << QStringList{} << 106 << "subcommand";
}

void TestCli::inspectRejectsBadInput() {
  QFETCH(QStringList, arguments);
  QFETCH(int, exitCode);
  QFETCH(QString, message);
  const auto run = cli(arguments);
  QCOMPARE(run.exitCode, exitCode);
  QVERIFY2(run.err.contains(message), qPrintable(run.err));
}

void TestCli::version() {
  const auto run = cli({"--version"});
  QCOMPARE(run.exitCode, 0);
  QVERIFY(run.out.startsWith("scalpel-cli 0."));
}

void TestCli::pretrainOnASmallSubset() {
  QTemporaryDir dir;
  const QString out = dir.filePath("trained.pt");
  const auto run = cli({"pretrain", scalpel::test::fixture("demo_net.pt"), "--epochs", "1",
                        "--train-limit", "1000", "--test-limit", "500", "--out", out});
  QCOMPARE(run.exitCode, 0);
  QVERIFY2(run.out.contains("epoch 1/1: test accuracy"), qPrintable(run.out));
  QVERIFY(run.out.contains(out + ": test accuracy"));
  QVERIFY(QFile::exists(out));
  // The trained model carries its preprocessing: inspect probes it without --input-shape.
  const auto inspect = cli({"inspect", out});
  QCOMPARE(inspect.exitCode, 0);
  QVERIFY(inspect.out.contains("input 1×1×28×28"));
  const auto bad =
      cli({"pretrain", scalpel::test::fixture("not_a_model.zip"), "--out", dir.filePath("x.pt")});
  QCOMPARE(bad.exitCode, 1);
  QVERIFY(bad.err.contains("not a TorchScript model"));
}

void TestCli::analyzeAndSuggest() {
  QTemporaryDir dir;
  const QString demo = scalpel::test::demoModel();
  const QString lines = dir.filePath("snapshots.jsonl");
  const auto run = cli({"analyze", "--model", demo, "--shift", "contrast", "--severity", "5",
                        "--batches", "3", "--json", lines});
  QCOMPARE(run.exitCode, 0);
  QVERIFY2(run.out.contains("reference: BatchNorm running statistics"), qPrintable(run.out));
  QVERIFY(run.out.contains("stem.1"));
  QFile file(lines);
  QVERIFY(file.open(QIODevice::ReadOnly));
  const auto snapshots = file.readAll().trimmed().split('\n');
  QCOMPARE(snapshots.size(), 3);  // one JSON line per batch
  QCOMPARE(QJsonDocument::fromJson(snapshots.last()).object()["batch"].toInt(), 3);

  // The analysis' plan alone, untried.
  const auto advice = cli({"suggest", "--model", demo, "--shift", "label-permutation", "--batches",
                           "5", "--strategy", "diagnosis"});
  QCOMPARE(advice.exitCode, 0);
  QVERIFY2(advice.out.contains("diagnosis: output-level"), qPrintable(advice.out));
  QVERIFY(advice.out.contains("train fc"));
  // The validated plan (the default): its candidates tried on a split of the target, a table of
  // how each did, and the winner with its BatchNorm mode; source accuracy from --source.
  // The same small search for suggest and train: 20 items per class, 3 epochs.
  const QStringList searchArguments{"--model",
                                    demo,
                                    "--shift",
                                    "label-permutation",
                                    "--train-per-class",
                                    "20",
                                    "--validation-per-class",
                                    "10",
                                    "--epochs",
                                    "3",
                                    "--lr",
                                    "0.01",
                                    "--source",
                                    "fashion-mnist",
                                    "--keep-source",
                                    "100"};
  const auto validated =
      cli(QStringList{"suggest", "--batches", "5", "--source-split", "test"} + searchArguments);
  QVERIFY2(validated.exitCode == 0, qPrintable(validated.err + validated.out));
  for (const char* expected :
       {"200 items to train, 100 to validate on", "for 1 epoch at lr 0.01 …", "candidate",
        "recalibrate", "chosen", "plan (auto): Tried",
        "BatchNorm: ", "source accuracy measured on 2000 of 10000 source items"}) {
    QVERIFY2(validated.out.contains(expected),
             qPrintable(QString(expected) + "\n" + validated.out));
  }
  // train --strategy auto records the candidates, their scores and the choice in the session,
  // and source accuracy before and after.
  const QString session = dir.filePath("auto.json");
  const auto trained = cli(QStringList{"train", "--strategy", "auto"} + searchArguments +
                           QStringList{"--session", session, "--out", dir.filePath("auto.pt")});
  QVERIFY2(trained.exitCode == 0, qPrintable(trained.err + trained.out));
  QVERIFY2(trained.out.contains("source accuracy "), qPrintable(trained.out));
  QFile saved(session);
  QVERIFY(saved.open(QIODevice::ReadOnly));
  const auto report = QJsonDocument::fromJson(saved.readAll())
                          .object()["runs"]
                          .toArray()[0]
                          .toObject()["report"]
                          .toObject();
  const auto search = report["search"].toObject();
  QVERIFY(search["candidates"].toArray().size() >= 5);
  const int chosen = search["chosen"].toInt();
  QCOMPARE(search["candidates"].toArray()[chosen].toObject()["outcome"].toString(),
           QString("chosen"));
  QCOMPARE(search["max_source_drop"].toDouble(), 1.0);
  QVERIFY(report["source_after"].toObject()["items"].toInt() > 0);
  QVERIFY(report["plan"].toObject()["explanation"].toString().startsWith("Tried "));
  const auto bad = cli({"suggest", "--model", demo, "--strategy", "block:nope", "--batches", "2"});
  QCOMPARE(bad.exitCode, 1);
  QVERIFY(bad.err.contains("no block 'nope'"));
  const auto noSource =
      cli({"analyze", "--model", demo, "--batches", "1", "--save-reference", dir.filePath("x.pt")});
  QCOMPARE(noSource.exitCode, 1);
  QVERIFY(noSource.err.contains("--save-reference needs --source"));
}

void TestCli::checkpointsOpenConvertAndGetANewHead() {
  const QString checkpoints = scalpel::test::fixture("checkpoints/");
  const auto inspected = cli({"inspect", checkpoints + "resnet18.pth"});
  QCOMPARE(inspected.exitCode, 0);
  QVERIFY2(
      inspected.out.contains("state dict (torch.save): torchvision's resnet18 with 10 classes"),
      qPrintable(inspected.out));
  QVERIFY(inspected.out.contains("preprocessing: imagenet: resize 256, centre crop 224"));
  QVERIFY(inspected.out.contains("conv1  [block stem]"));
  const auto custom = cli({"inspect", checkpoints + "resnet18.pth", "--preprocessing", "custom",
                           "--mean", "0.5", "--std", "0.25"});
  QVERIFY2(custom.out.contains("custom: resize 256, centre crop 224, mean 0.5, std 0.25"),
           qPrintable(custom.out + custom.err));
  const auto incomplete =
      cli({"inspect", checkpoints + "resnet18.pth", "--preprocessing", "custom"});
  QCOMPARE(incomplete.exitCode, 1);
  QVERIFY2(incomplete.err.contains("needs a mean and a std"), qPrintable(incomplete.err));
  const auto bad = cli({"inspect", checkpoints + "bad_unknown_architecture.pth"});
  QCOMPARE(bad.exitCode, 1);
  QVERIFY(bad.err.contains("not in Scalpel's library"));

  // convert: TorchScript that Python loads and that gives the checkpoint's logits.
  QTemporaryDir dir;
  const QString converted = dir.filePath("lightning.pt");
  const auto convert =
      cli({"convert", checkpoints + "shufflenet_v2_x0_5_10_lightning.ckpt", "--out", converted});
  QVERIFY2(convert.exitCode == 0, qPrintable(convert.err));
  QVERIFY(convert.out.contains("removed the prefix \"model.\""));
  QProcess python;
  python.start("/usr/bin/python3",
               {"-c",
                "import sys, torch\n"
                "x = torch.frombuffer(bytearray(open(sys.argv[2], 'rb').read()), "
                "dtype=torch.float32).reshape(2, 3, 224, 224)\n"
                "want = torch.frombuffer(bytearray(open(sys.argv[3], 'rb').read()), "
                "dtype=torch.float32).reshape(2, 10)\n"
                "got = torch.jit.load(sys.argv[1]).eval()(x)\n"
                "assert torch.allclose(got, want, atol=1e-4), (got - want).abs().max()\n"
                "print('same logits')",
                converted, checkpoints + "input_224.bin",
                checkpoints + "shufflenet_v2_x0_5_10_lightning.logits.bin"});
  QVERIFY(python.waitForFinished(120000));
  QVERIFY2(python.exitCode() == 0, python.readAllStandardError().constData());

  // An ImageNet model (1000 outputs) on Fashion-MNIST's 10 classes, with ImageNet-C's spelling of
  // the shift: the images are made RGB and scaled, and a new head fits the classes.
  const auto suggest = cli({"suggest", "--model", checkpoints + "mobilenet_v3_small.pth",
                            "--new-head", "--shift", "gaussian_noise", "--severity", "5",
                            "--batches", "2", "--batch-size", "8", "--strategy", "diagnosis"});
  QVERIFY2(suggest.exitCode == 0, qPrintable(suggest.err));
  QVERIFY2(suggest.err.contains("made RGB and scaled to 256 on its shorter side"),
           qPrintable(suggest.err));
  QVERIFY2(suggest.out.contains("The new head, classifier.3, always trains"),
           qPrintable(suggest.out));
  // Without one, training says how to get one.
  const auto mismatch =
      cli({"train", "--model", checkpoints + "mobilenet_v3_small.pth", "--strategy", "all",
           "--epochs", "1", "--out", dir.filePath("never.pt")});
  QCOMPARE(mismatch.exitCode, 1);
  QVERIFY2(mismatch.err.contains("--new-head"), qPrintable(mismatch.err));
}

void TestCli::trainExportAndSession() {
  QTemporaryDir dir;
  const QString demo = scalpel::test::demoModel();
  const QString session = dir.filePath("session.json");
  const QString tuned = dir.filePath("tuned.pt");
  const auto run = cli({"train",
                        "--model",
                        demo,
                        "--shift",
                        "label-permutation",
                        "--strategy",
                        "last",
                        "--train-per-class",
                        "50",
                        "--validation-per-class",
                        "20",
                        "--epochs",
                        "6",
                        "--lr",
                        "0.02",
                        "--bn-eval",
                        "--device",
                        "cpu",
                        "--out",
                        tuned,
                        "--session",
                        session,
                        "--report",
                        dir.filePath("report")});
  QVERIFY2(run.exitCode == 0, qPrintable(run.err + run.out));
  QVERIFY2(run.out.contains("plan (last): Train only the last block, fc"), qPrintable(run.out));
  QCOMPARE(
      run.out.count(QRegularExpression("^epoch \\d step", QRegularExpression::MultilineOption)), 6);
  QVERIFY(run.out.contains("test accuracy"));
  QVERIFY(QFile::exists(tuned));
  QVERIFY(QFile::exists(dir.filePath("report/report.md")));
  QVERIFY(QFile::exists(dir.filePath("report/curves.png")));

  // The session holds the run, with paths relative to it.
  QFile file(session);
  QVERIFY(file.open(QIODevice::ReadOnly));
  const auto json = QJsonDocument::fromJson(file.readAll()).object();
  QCOMPARE(json["format"].toInt(), 1);
  QCOMPARE(json["strategy"].toString(), QString("last"));
  const auto runs = json["runs"].toArray();
  QCOMPARE(runs.size(), 1);
  QCOMPARE(runs[0].toObject()["tuned_model"].toString(), QString("tuned.pt"));
  const auto report = runs[0].toObject()["report"].toObject();
  QCOMPARE(report["outcome"].toString(), QString("finished"));
  QCOMPARE(report["history"].toArray().size(), 6);
  scalpel::test::figure("cli.permutation.last_test_after",
                        report["test_after"].toObject()["accuracy"].toDouble());
  QVERIFY(report["test_after"].toObject()["accuracy"].toDouble() > 0.8);

  // Again from the session, one flag changed: a second run is added.
  const auto again =
      cli({"train", "--session", session, "--epochs", "1", "--out", dir.filePath("tuned2.pt")});
  QVERIFY2(again.exitCode == 0, qPrintable(again.err + again.out));
  QVERIFY(again.out.contains("label-permutation"));
  file.close();  // the session was replaced (renamed into place): read the new file
  QVERIFY(file.open(QIODevice::ReadOnly));
  QCOMPARE(QJsonDocument::fromJson(file.readAll()).object()["runs"].toArray().size(), 2);

  // Export: the session's last run, and a model file directly.
  const auto exported = cli({"export", "--session", session, "--out", dir.filePath("final.pt"),
                             "--report", dir.filePath("final")});
  QVERIFY2(exported.exitCode == 0, qPrintable(exported.err));
  QVERIFY(QFile::exists(dir.filePath("final.pt")));
  QVERIFY(QFile::exists(dir.filePath("final/report.md")));
  const auto untuned = cli({"export", "--model", demo, "--report", dir.filePath("none")});
  QCOMPARE(untuned.exitCode, 1);
  QVERIFY2(untuned.err.contains("carries no Scalpel report"), qPrintable(untuned.err));
}

// Regression from the command line: CSV columns named by --regress, Auto-RGN measured on the
// squared error, R² and the mean absolute error printed, in the report and in the session.
void TestCli::trainRegression() {
  QTemporaryDir dir;
  const QString session = dir.filePath("session.json");
  const auto run = cli({"train",
                        "--model",
                        scalpel::test::fixture("regressor.pt"),
                        "--target",
                        scalpel::test::fixture("regression_target.csv"),
                        "--regress",
                        "ink,balance",
                        "--strategy",
                        "auto-rgn",
                        "--train-per-class",
                        "300",
                        "--validation-per-class",
                        "100",
                        "--epochs",
                        "8",
                        "--lr",
                        "0.01",
                        "--batch-size",
                        "32",
                        "--device",
                        "cpu",
                        "--out",
                        dir.filePath("tuned.pt"),
                        "--session",
                        session,
                        "--report",
                        dir.filePath("report")});
  QVERIFY2(run.exitCode == 0, qPrintable(run.err + run.out));
  QVERIFY2(run.out.contains("regression_target.csv → ink, balance"), qPrintable(run.out));
  QVERIFY2(run.out.contains("300 to train, 100 to validate, 600 to test"), qPrintable(run.out));
  QVERIFY2(run.out.contains("plan (auto-rgn)"), qPrintable(run.out));
  const QRegularExpression change(
      "test R² (-?[\\d.]+)% -> (-?[\\d.]+)% \\(mean absolute error ([\\d.]+) -> ([\\d.]+)\\)");
  const auto match = change.match(run.out);
  QVERIFY2(match.hasMatch(), qPrintable(run.out));
  QVERIFY2(match.captured(2).toDouble() > match.captured(1).toDouble() + 20,
           qPrintable(match.captured(0)));
  QVERIFY(match.captured(4).toDouble() < match.captured(3).toDouble());
  QFile report(dir.filePath("report/report.md"));
  QVERIFY(report.open(QIODevice::ReadOnly));
  const QString markdown = QString::fromUtf8(report.readAll());
  QVERIFY2(markdown.contains("| test R² |") && markdown.contains("| test mean absolute error |") &&
               markdown.contains("| loss | mse |"),
           qPrintable(markdown));
  QFile file(session);
  QVERIFY(file.open(QIODevice::ReadOnly));
  const auto json = QJsonDocument::fromJson(file.readAll()).object();
  QCOMPARE(json["target"].toObject()["regression_targets"].toArray(),
           QJsonArray({"ink", "balance"}));
  const auto testAfter =
      json["runs"].toArray()[0].toObject()["report"].toObject()["test_after"].toObject();
  QVERIFY(testAfter["regression"].toBool());
  QVERIFY(testAfter["r2"].toDouble() > 0.5);
  // The shift analysis and the advisor on the same numbers, against the rows it was trained on.
  const auto advice =
      cli({"suggest", "--model", scalpel::test::fixture("regressor.pt"), "--target",
           scalpel::test::fixture("regression_target.csv"), "--regress", "ink,balance", "--source",
           scalpel::test::fixture("regression_source.csv"), "--device", "cpu", "--strategy",
           "diagnosis"});
  QVERIFY2(advice.exitCode == 0, qPrintable(advice.err + advice.out));
  QVERIFY2(advice.out.contains("diagnosis: input-level"), qPrintable(advice.out));
  QVERIFY2(advice.out.contains("the targets are numbers (regression): the unmodified model's mean "
                               "squared error on them is"),
           qPrintable(advice.out));
  const auto analysis =
      cli({"analyze", "--model", scalpel::test::fixture("regressor.pt"), "--target",
           scalpel::test::fixture("regression_target.csv"), "--regress", "ink,balance", "--source",
           scalpel::test::fixture("regression_source.csv"), "--device", "cpu"});
  QVERIFY2(analysis.exitCode == 0, qPrintable(analysis.err + analysis.out));
  QVERIFY2(
      analysis.out.contains("mean squared error of the unmodified model on the target's numbers:"),
      qPrintable(analysis.out));
  // Label shifts have no meaning for numeric targets: refused, saying why.
  const auto shifted = cli({"train", "--model", scalpel::test::fixture("regressor.pt"), "--target",
                            scalpel::test::fixture("regression_target.csv"), "--regress",
                            "ink,balance", "--shift", "label-permutation"});
  QCOMPARE(shifted.exitCode, 1);
  QVERIFY2(shifted.err.contains("changes class labels, but") &&
               shifted.err.contains("numeric targets (regression)"),
           qPrintable(shifted.err));
}

void TestCli::trainRejectsBadInput_data() {
  QTest::addColumn<QStringList>("arguments");
  QTest::addColumn<QString>("expected");
  const QString demo = scalpel::test::demoModel();
  QTest::newRow("no model") << QStringList{"train"} << "no model";
  QTest::newRow("bad optimiser") << QStringList{"train", "--model", demo, "--optimizer", "rmsprop"}
                                 << "unknown optimiser";
  QTest::newRow("unknown block") << QStringList{"train", "--model", demo, "--strategy",
                                                "block:nope"}
                                 << "no block 'nope'";
  QTest::newRow("unknown shift") << QStringList{"train", "--model", demo, "--shift", "sunburn"}
                                 << "sunburn";
  QTest::newRow("newer session") << QStringList{"train", "--session", "NEWER"} << "newer";
}

void TestCli::trainRejectsBadInput() {
  QFETCH(QStringList, arguments);
  QFETCH(QString, expected);
  QTemporaryDir dir;
  const QString newer = dir.filePath("newer.json");
  QFile file(newer);
  QVERIFY(file.open(QIODevice::WriteOnly));
  file.write(R"({"format": 99})");
  file.close();
  arguments.replaceInStrings("NEWER", newer);
  const auto run = cli(arguments);
  QCOMPARE(run.exitCode, 1);
  QVERIFY2(run.err.contains(expected), qPrintable(run.err));
}

QTEST_GUILESS_MAIN(TestCli)
#include "test_cli.moc"
