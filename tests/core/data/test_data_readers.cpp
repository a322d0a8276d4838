// The data readers on real files: the Fashion-MNIST package files, and IDX files, CSVs and image
// folders written here to disk — good ones and every malformed case, each with a clear message.

#include <stb_image_write.h>
#include <zlib.h>

#include <QDir>
#include <QElapsedTimer>
#include <QFile>
#include <QTemporaryDir>
#include <QtTest>

#include <numeric>
#include <set>

#include "data/csv_reader.h"
#include "data/data_request.h"
#include "data/data_source.h"
#include "data/idx_reader.h"
#include "data/image_folder_reader.h"
#include "data/splits.h"
#include "util/fingerprint.h"

using namespace scalpel;

namespace {

QByteArray idxHeader(quint32 magic, const std::vector<quint32>& dims) {
  QByteArray bytes;
  const auto put = [&](quint32 v) {
    for (int shift = 24; shift >= 0; shift -= 8) bytes.append(char((v >> shift) & 0xff));
  };
  put(magic);
  for (auto d : dims) put(d);
  return bytes;
}

QByteArray gzip(const QByteArray& raw) {
  z_stream stream{};
  deflateInit2(&stream, 6, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY);
  QByteArray out(int(deflateBound(&stream, uLong(raw.size()))), '\0');
  stream.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(raw.data()));
  stream.avail_in = uInt(raw.size());
  stream.next_out = reinterpret_cast<Bytef*>(out.data());
  stream.avail_out = uInt(out.size());
  deflate(&stream, Z_FINISH);
  out.resize(int(stream.total_out));
  deflateEnd(&stream);
  return out;
}

bool writePng(const QString& path, int width, int height, int channels, unsigned char value) {
  std::vector<unsigned char> pixels(size_t(width * height * channels));
  for (size_t i = 0; i < pixels.size(); ++i) pixels[i] = static_cast<unsigned char>(value + i % 7);
  return stbi_write_png(path.toUtf8().constData(), width, height, channels, pixels.data(),
                        width * channels) != 0;
}

}  // namespace

class TestDataReaders : public QObject {
  Q_OBJECT

 private Q_SLOTS:
  void initTestCase() { QVERIFY(m_dir.isValid()); }
  void readsFashionMnist();
  void idxGzippedAndRawAgree();
  void idxRefusesMalformed_data();
  void idxRefusesMalformed();
  void csvReads_data();
  void csvReads();
  void csvRefusesMalformed_data();
  void csvRefusesMalformed();
  void csvReadsRegressionTargets();
  void csvRefusesBadRegressionTargets_data();
  void csvRefusesBadRegressionTargets();
  void imageFolderReadsAndReportsMapping();
  void imageFolderSkipsUnreadableFiles();
  void imageFolderRefuses_data();
  void imageFolderRefuses();
  void splitsAreStratifiedAndDeterministic();
  void perClassSplitFollowsThePaper();

 private:
  QString write(const QString& name, const QByteArray& bytes) {
    const QString path = m_dir.filePath(name);
    QDir().mkpath(QFileInfo(path).absolutePath());
    QFile file(path);
    if (!file.open(QIODevice::WriteOnly) || file.write(bytes) != bytes.size()) return {};
    return path;
  }
  QTemporaryDir m_dir;
};

void TestDataReaders::readsFashionMnist() {
  QElapsedTimer timer;
  timer.start();
  const auto train = readFashionMnist("train");
  const auto test = readFashionMnist("test");
  qInfo("Fashion-MNIST train + test loaded in %lld ms", timer.elapsed());
  QVERIFY2(train, train.error.c_str());
  QVERIFY2(test, test.error.c_str());
  QCOMPARE(train.dataset->size(), size_t(60000));
  QCOMPARE(test.dataset->size(), size_t(10000));
  QCOMPARE(test.dataset->itemShape, (std::vector<std::int64_t>{1, 28, 28}));
  QCOMPARE(test.dataset->classNames.at(9), std::string("Ankle boot"));
  QCOMPARE(test.dataset->labels.front(), 9);  // the first test image is an ankle boot
  for (auto count : test.dataset->classCounts()) QCOMPARE(count, size_t(1000));
  const auto [low, high] =
      std::minmax_element(test.dataset->values.begin(), test.dataset->values.end());
  QCOMPARE(*low, 0.0f);
  QCOMPARE(*high, 1.0f);
  const auto missing = readFashionMnist("test", "/nonexistent");
  QVERIFY(QString::fromStdString(missing.error).contains("apt-get install dataset-fashion-mnist"));
}

void TestDataReaders::idxGzippedAndRawAgree() {
  QByteArray images = idxHeader(0x803, {3, 2, 2});
  images.append(
      QByteArray::fromHex("00ff8040"
                          "01020304"
                          "fffefdfc"));
  QByteArray labels = idxHeader(0x801, {3});
  labels.append(QByteArray::fromHex("020001"));
  const auto raw = readIdx(write("raw/images.idx", images).toStdString(),
                           write("raw/labels.idx", labels).toStdString());
  const auto packed = readIdx(write("gz/images.gz", gzip(images)).toStdString(),
                              write("gz/labels.gz", gzip(labels)).toStdString());
  QVERIFY2(raw, raw.error.c_str());
  QVERIFY2(packed, packed.error.c_str());
  QCOMPARE(raw.dataset->values, packed.dataset->values);
  QCOMPARE(raw.dataset->labels, (std::vector<int>{2, 0, 1}));
  QCOMPARE(raw.dataset->itemShape, (std::vector<std::int64_t>{1, 2, 2}));
  QCOMPARE(raw.dataset->values[1], 1.0f);
  QCOMPARE(raw.dataset->classNames.size(), size_t(3));

  // By its images file's name, as users give it (CLI, sessions, the data dialog): the labels
  // file beside it is found; without it, the message says what is missing.
  const QString named = write("own/train-images-idx3-ubyte.gz", gzip(images));
  write("own/train-labels-idx1-ubyte.gz", gzip(labels));
  const auto opened = openDataSource(named.toStdString());
  QVERIFY2(opened, opened.error.c_str());
  QCOMPARE(opened.dataset->values, raw.dataset->values);
  const auto alone = openDataSource(write("lonely/t10k-images-idx3-ubyte", images).toStdString());
  QVERIFY(!alone);
  QVERIFY2(QString::fromStdString(alone.error).contains("t10k-labels-idx1-ubyte is missing"),
           alone.error.c_str());
}

void TestDataReaders::idxRefusesMalformed_data() {
  QTest::addColumn<QByteArray>("images");
  QTest::addColumn<QByteArray>("labels");
  QTest::addColumn<QString>("expected");
  const QByteArray goodLabels = idxHeader(0x801, {2}) + QByteArray::fromHex("0001");
  const QByteArray pixels(2 * 4, '\x10');
  QTest::newRow("wrong magic") << idxHeader(0x12345678, {2, 2, 2}) + pixels << goodLabels
                               << "not an IDX file (magic number 0x12345678 at offset 0";
  QTest::newRow("float type") << idxHeader(0x0d03, {2, 2, 2}) + pixels << goodLabels
                              << "IDX element type 0xd is not supported";
  QTest::newRow("truncated header") << idxHeader(0x803, {2}) << goodLabels << "truncated header";
  QTest::newRow("truncated data")
      << idxHeader(0x803, {2, 2, 2}) + pixels.left(5) << goodLabels
      << "truncated — the header promises 8 bytes of data from offset 16, the file has 5";
  QTest::newRow("extra bytes") << idxHeader(0x803, {2, 2, 2}) + pixels + "xx" << goodLabels
                               << "2 unexpected bytes after the data (offset 24)";
  QTest::newRow("count mismatch") << idxHeader(0x803, {2, 2, 2}) + pixels
                                  << idxHeader(0x801, {3}) + QByteArray(3, '\0')
                                  << "holds 2 images but labels.idx holds 3 labels";
  QTest::newRow("labels not 1-D") << idxHeader(0x803, {2, 2, 2}) + pixels
                                  << idxHeader(0x802, {2, 1}) + QByteArray(2, '\0')
                                  << "labels must be one dimension";
  QTest::newRow("empty file") << QByteArray() << goodLabels << "too short for an IDX file (0 bytes";
  QByteArray forged = gzip(idxHeader(0x803, {2, 2, 2}) + pixels);
  forged.replace(forged.size() - 4, 4, QByteArray(4, '\xff'));  // footer claims 4 GiB (fuzz find)
  QTest::newRow("forged gzip size") << forged << goodLabels << "gzip data is damaged or truncated";
  QTest::newRow("broken gzip") << gzip(idxHeader(0x803, {2, 2, 2}) + pixels).left(20) << goodLabels
                               << "gzip data is damaged or truncated";
}

void TestDataReaders::idxRefusesMalformed() {
  QFETCH(QByteArray, images);
  QFETCH(QByteArray, labels);
  QFETCH(QString, expected);
  const auto result = readIdx(write("bad/images.idx", images).toStdString(),
                              write("bad/labels.idx", labels).toStdString());
  QVERIFY(!result);
  QVERIFY2(QString::fromStdString(result.error).contains(expected), result.error.c_str());
}

void TestDataReaders::csvReads_data() {
  QTest::addColumn<QByteArray>("text");
  QTest::addColumn<QString>("labelColumn");
  QTest::addColumn<int>("rows");
  QTest::addColumn<int>("features");
  QTest::addColumn<QStringList>("classes");
  QTest::addColumn<int>("firstLabel");
  QTest::newRow("header, string labels")
      << QByteArray("a,b,kind\n1,2,dog\n3,4.5,cat\n\n5,6e-1,dog\n") << "" << 3 << 2
      << QStringList{"cat", "dog"} << 1;
  QTest::newRow("no header, integer labels")
      << QByteArray("0.5,1,2\r\n1.5,2,0\r\n") << "" << 2 << 2 << QStringList{"0", "1", "2"} << 2;
  QTest::newRow("named label column first") << QByteArray("y,x1,x2\n1,0.1,0.2\n0,0.3,0.4\n") << "y"
                                            << 2 << 2 << QStringList{"0", "1"} << 1;
  QTest::newRow("quoted fields") << QByteArray("\"f,1\",f2,label\n1,2,\"big, red\"\n3,4,small\n")
                                 << "" << 2 << 2 << QStringList{"big, red", "small"} << 0;
}

void TestDataReaders::csvReads() {
  QFETCH(QByteArray, text);
  QFETCH(QString, labelColumn);
  QFETCH(int, rows);
  QFETCH(int, features);
  QFETCH(QStringList, classes);
  QFETCH(int, firstLabel);
  const auto result =
      readCsv(write("table.csv", text).toStdString(), CsvOptions{labelColumn.toStdString(), ','});
  QVERIFY2(result, result.error.c_str());
  QCOMPARE(int(result.dataset->size()), rows);
  QCOMPARE(result.dataset->itemShape, (std::vector<std::int64_t>{features}));
  QStringList names;
  for (const auto& name : result.dataset->classNames) names << QString::fromStdString(name);
  QCOMPARE(names, classes);
  QCOMPARE(result.dataset->labels.front(), firstLabel);
  QCOMPARE(result.dataset->values.size(), size_t(rows * features));
  QCOMPARE(result.notes.size(), size_t(1));
}

void TestDataReaders::csvRefusesMalformed_data() {
  QTest::addColumn<QByteArray>("text");
  QTest::addColumn<QString>("labelColumn");
  QTest::addColumn<QString>("expected");
  QTest::newRow("ragged rows")
      << QByteArray("a,b,y\n1,2,0\n1,0\n1,2,3,4\n") << ""
      << "2 bad rows — line 3: 2 fields, expected 3; line 4: 4 fields, expected 3";
  QTest::newRow("non-numeric feature") << QByteArray("a,b,y\n1,2,0\n1,abc,1\n") << ""
                                       << "line 3: b is 'abc', not a number";
  QTest::newRow("empty label") << QByteArray("1,2,\n") << ""
                               << "line 1: the label is empty";
  QTest::newRow("empty file") << QByteArray("\n\n") << ""
                              << "no rows — the file is empty";
  QTest::newRow("header only") << QByteArray("a,b,y\n") << ""
                               << "a header but no data rows";
  QTest::newRow("one column") << QByteArray("1\n2\n") << ""
                              << "one column only";
  QTest::newRow("unknown label column") << QByteArray("a,b,y\n1,2,0\n") << "class"
                                        << "no column named 'class'";
}

void TestDataReaders::csvRefusesMalformed() {
  QFETCH(QByteArray, text);
  QFETCH(QString, labelColumn);
  QFETCH(QString, expected);
  const auto result =
      readCsv(write("bad.csv", text).toStdString(), CsvOptions{labelColumn.toStdString(), ','});
  QVERIFY(!result);
  QVERIFY2(QString::fromStdString(result.error).contains(expected), result.error.c_str());
  QVERIFY2(QString::fromStdString(result.error).contains("bad.csv"), result.error.c_str());
}

void TestDataReaders::csvReadsRegressionTargets() {
  // Targets anywhere in the row, in the order named; the rest are the features.
  const auto path =
      write("houses.csv", "price,rooms,area,age\n250.5,3,80,12\n410,5,140.5,3\n99.9,1,35,40\n")
          .toStdString();
  auto result = readCsv(path, CsvOptions{"", ',', {"age", "price"}});
  QVERIFY2(result, result.error.c_str());
  const Dataset& data = *result.dataset;
  QVERIFY(data.isRegression());
  QCOMPARE(data.size(), std::size_t(3));
  QCOMPARE(data.targetNames, (std::vector<std::string>{"age", "price"}));
  QCOMPARE(data.targets, (std::vector<float>{12, 250.5f, 3, 410, 40, 99.9f}));
  QCOMPARE(data.itemShape, (std::vector<std::int64_t>{2}));
  QCOMPARE(data.values, (std::vector<float>{3, 80, 5, 140.5f, 1, 35}));
  QVERIFY(data.labels.empty() && data.classNames.empty() && data.classCounts().empty());
  QCOMPARE(result.notes.front(), path + ": 3 rows, 2 features, regression targets 'age', 'price'");
  // A subset keeps each item's targets with it; a split sees one group.
  const Dataset part = data.subset({2, 0});
  QCOMPARE(part.targets, (std::vector<float>{40, 99.9f, 12, 250.5f}));
  QCOMPARE(part.values, (std::vector<float>{1, 35, 3, 80}));
  QCOMPARE(data.strata(), (std::vector<int>{0, 0, 0}));
  // The fingerprint covers the targets, and which columns they are.
  Dataset moved = data;
  moved.targets[0] = 13;
  QVERIFY(datasetFingerprint(moved) != datasetFingerprint(data));
  moved = data;
  moved.targetNames = {"age", "cost"};
  QVERIFY(datasetFingerprint(moved) != datasetFingerprint(data));
  // Through a data request, as the CLI and the window open it.
  DataRequest request;
  request.source = path;
  request.regressionTargets = {"price"};
  Dataset loaded;
  DataSummary summary;
  loadRequestedData(request, loaded, summary);
  QVERIFY2(summary.ok, summary.error.c_str());
  QCOMPARE(summary.labelling(), std::string("regression on price"));
  QCOMPARE(request.describe(), path + " → price");
  QCOMPARE(loaded.itemShape, (std::vector<std::int64_t>{3}));
}

void TestDataReaders::csvRefusesBadRegressionTargets_data() {
  QTest::addColumn<QByteArray>("text");
  QTest::addColumn<QStringList>("targets");
  QTest::addColumn<QString>("expected");
  QTest::newRow("no such column")
      << QByteArray("a,b,y\n1,2,0.5\n") << QStringList{"price"}
      << "no column named 'price' in the header — name one of its columns";
  QTest::newRow("no header") << QByteArray("1,2,0.5\n3,4,1.5\n") << QStringList{"y"}
                             << "no column named 'y'";
  QTest::newRow("text target") << QByteArray("a,b,y\n1,2,0.5\n3,4,high\n") << QStringList{"y"}
                               << "line 3: y is 'high', not a number";
  QTest::newRow("empty target") << QByteArray("a,b,y\n1,2,\n") << QStringList{"y"}
                                << "line 2: y is '', not a number";
  QTest::newRow("only targets") << QByteArray("a,y\n1,2\n") << QStringList{"a", "y"}
                                << "every column is a target";
}

void TestDataReaders::csvRefusesBadRegressionTargets() {
  QFETCH(QByteArray, text);
  QFETCH(QStringList, targets);
  QFETCH(QString, expected);
  CsvOptions options;
  for (const auto& t : targets) options.targetColumns.push_back(t.toStdString());
  const auto result = readCsv(write("bad.csv", text).toStdString(), options);
  QVERIFY(!result);
  QVERIFY2(QString::fromStdString(result.error).contains(expected), result.error.c_str());
  // Both a label column and targets: one or the other.
  options.labelColumn = "y";
  QVERIFY(QString::fromStdString(readCsv(write("bad.csv", text).toStdString(), options).error)
              .contains("not both"));
  // Regression targets are columns of a CSV: other sources say so.
  const auto mnist = openDataSource("fashion-mnist", "test", {}, {"y"});
  QVERIFY2(mnist.error.find("regression targets are columns of a .csv file") != std::string::npos,
           mnist.error.c_str());
}

void TestDataReaders::imageFolderReadsAndReportsMapping() {
  const QString root = m_dir.filePath("images");
  QDir().mkpath(root + "/zebra");
  QDir().mkpath(root + "/ant");
  QVERIFY(writePng(root + "/zebra/1.png", 40, 30, 3, 200));
  QVERIFY(writePng(root + "/zebra/2.png", 20, 20, 1, 10));  // gray: converted to RGB
  QVERIFY(writePng(root + "/ant/1.png", 28, 28, 3, 50));
  // Name order: ant → 0, zebra → 1; every image resized to the model's 3×16×16.
  auto result = readImageFolder(root.toStdString(), ImageFolderOptions{{3, 16, 16}, {}});
  QVERIFY2(result, result.error.c_str());
  QCOMPARE(result.dataset->size(), size_t(3));
  QCOMPARE(result.dataset->itemShape, (std::vector<std::int64_t>{3, 16, 16}));
  QCOMPARE(result.dataset->labels, (std::vector<int>{0, 1, 1}));
  QVERIFY2(QString::fromStdString(result.notes.front())
               .contains("(folder names in sorted order): ant→0 zebra→1"),
           result.notes.front().c_str());

  // The model's class names decide the mapping.
  result =
      readImageFolder(root.toStdString(), ImageFolderOptions{{1, 8, 8}, {"zebra", "bird", "ant"}});
  QVERIFY2(result, result.error.c_str());
  QCOMPARE(result.dataset->labels, (std::vector<int>{2, 0, 0}));
  QCOMPARE(result.dataset->classNames.size(), size_t(3));
  QVERIFY(QString::fromStdString(result.notes.front())
              .contains("(the model's class names): ant→2 zebra→0"));

  // A classes.txt in the folder decides it when the model names none.
  QVERIFY(!write("images/classes.txt", "zebra\nant\n").isEmpty());
  result = readImageFolder(root.toStdString());
  QVERIFY2(result, result.error.c_str());
  QCOMPARE(result.dataset->labels, (std::vector<int>{1, 0, 0}));
  QCOMPARE(result.dataset->itemShape,
           (std::vector<std::int64_t>{3, 28, 28}));  // from the first image
  QVERIFY(QString::fromStdString(result.notes.front()).contains("(classes.txt)"));
}

void TestDataReaders::imageFolderSkipsUnreadableFiles() {
  const QString root = m_dir.filePath("partly_broken");
  QDir().mkpath(root + "/a");
  QVERIFY(writePng(root + "/a/good.png", 8, 8, 1, 0));
  QVERIFY(!write("partly_broken/a/broken.png", "not a png at all").isEmpty());
  QVERIFY(!write("partly_broken/a/notes.txt", "ignored: not an image").isEmpty());
  const auto result = readImageFolder(root.toStdString(), ImageFolderOptions{{1, 8, 8}, {}});
  QVERIFY2(result, result.error.c_str());
  QCOMPARE(result.dataset->size(), size_t(1));
  QCOMPARE(result.warnings.size(), size_t(1));
  QVERIFY2(QString::fromStdString(result.warnings.front())
               .contains("skipped 1 unreadable image: broken.png"),
           result.warnings.front().c_str());

  // Damaged headers found by fuzzing: a BMP that stb reads as 0 pixels wide (its resize then
  // divided by zero), and one claiming 100000×100000 pixels (stb would try to allocate 10 GB).
  std::vector<float> pixels;
  const QString zeroWide = SCALPEL_SOURCE_DIR "/tests/fuzz/corpus/image/regression_zero_width_bmp";
  QVERIFY(QString::fromStdString(decodeImage(zeroWide.toStdString(), 3, 28, 28, pixels))
              .contains("a damaged header: 0×393476 pixels"));
  QByteArray huge("BM");
  huge += QByteArray(52, '\0');
  const auto put32 = [&](int at, quint32 v) {
    for (int i = 0; i < 4; ++i) huge[at + i] = static_cast<char>((v >> (8 * i)) & 0xff);
  };
  put32(10, 54);      // pixel data offset
  put32(14, 40);      // BITMAPINFOHEADER
  put32(18, 100000);  // width
  put32(22, 100000);  // height
  huge[26] = 1;       // planes
  huge[28] = 24;      // bits per pixel
  const auto refused = decodeImage(write("huge.bmp", huge).toStdString(), 3, 28, 28, pixels);
  QVERIFY2(QString::fromStdString(refused).contains(
               "100000×100000 pixels: larger than the 64 megapixels Scalpel reads"),
           refused.c_str());
  put32(18, 4);  // a 4×589828 strip: resizing it took a minute
  put32(22, 589828);
  const auto strip = decodeImage(write("strip.bmp", huge).toStdString(), 3, 28, 28, pixels);
  QVERIFY2(QString::fromStdString(strip).contains("a damaged header: 4×589828 pixels"),
           strip.c_str());
  // A 65-byte PNG whose second image chunk claims 2 GB: stb reserved the 2 GB before reading it.
  const QString longChunk =
      SCALPEL_SOURCE_DIR "/tests/fuzz/corpus/image/regression_png_chunk_length";
  const auto chunk = decodeImage(longChunk.toStdString(), 1, 28, 28, pixels);
  QVERIFY2(QString::fromStdString(chunk).contains(
               "a damaged PNG: its chunk 'IDAT' claims 2147483392 bytes, but only 2 follow"),
           chunk.c_str());
}

void TestDataReaders::imageFolderRefuses_data() {
  QTest::addColumn<QString>("folder");
  QTest::addColumn<QStringList>("classes");
  QTest::addColumn<QString>("expected");
  QDir().mkpath(m_dir.filePath("empty_folder"));
  QDir().mkpath(m_dir.filePath("no_images/cat"));
  write("no_images/cat/broken.jpg", "garbage");
  QDir().mkpath(m_dir.filePath("unknown_class/unicorn"));
  writePng(m_dir.filePath("unknown_class/unicorn/1.png"), 4, 4, 1, 0);
  QTest::newRow("missing") << m_dir.filePath("nowhere") << QStringList() << "not a folder";
  QTest::newRow("empty") << m_dir.filePath("empty_folder") << QStringList()
                         << "no class subfolders";
  QTest::newRow("nothing readable")
      << m_dir.filePath("no_images") << QStringList() << "no readable images";
  QTest::newRow("folder not a class")
      << m_dir.filePath("unknown_class") << QStringList{"cat", "dog"}
      << "folder 'unicorn' is not one of the 2 classes";
}

void TestDataReaders::imageFolderRefuses() {
  QFETCH(QString, folder);
  QFETCH(QStringList, classes);
  QFETCH(QString, expected);
  ImageFolderOptions options;
  for (const auto& c : classes) options.classNames.push_back(c.toStdString());
  const auto result = readImageFolder(folder.toStdString(), options);
  QVERIFY(!result);
  QVERIFY2(QString::fromStdString(result.error).contains(expected), result.error.c_str());
}

void TestDataReaders::splitsAreStratifiedAndDeterministic() {
  const auto test = readFashionMnist("test");
  QVERIFY(test);
  const auto& labels = test.dataset->labels;
  const auto a = stratifiedSplit(labels, 0.6, 0.2, 7);
  const auto b = stratifiedSplit(labels, 0.6, 0.2, 7);
  const auto c = stratifiedSplit(labels, 0.6, 0.2, 8);
  QCOMPARE(a.train, b.train);
  QCOMPARE(a.test, b.test);
  QVERIFY(a.train != c.train);
  QCOMPARE(a.train.size(), size_t(6000));
  QCOMPARE(a.validation.size(), size_t(2000));
  QCOMPARE(a.test.size(), size_t(2000));
  std::vector<int> perClass(10, 0);
  for (auto i : a.validation) ++perClass[size_t(labels[i])];
  for (int count : perClass) QCOMPARE(count, 200);
  std::set<size_t> all(a.train.begin(), a.train.end());
  all.insert(a.validation.begin(), a.validation.end());
  all.insert(a.test.begin(), a.test.end());
  QCOMPARE(all.size(), labels.size());  // disjoint and complete
}

void TestDataReaders::perClassSplitFollowsThePaper() {
  const auto test = readFashionMnist("test");
  QVERIFY(test);
  const auto split = stratifiedSplitPerClass(test.dataset->labels, 100, 50, 0);
  QCOMPARE(split.train.size(), size_t(1000));
  QCOMPARE(split.validation.size(), size_t(500));
  QCOMPARE(split.test.size(), size_t(8500));
  std::vector<int> perClass(10, 0);
  for (auto i : split.train) ++perClass[size_t(test.dataset->labels[i])];
  for (int count : perClass) QCOMPARE(count, 100);
  // Classes interleave within a part (not 100 of class 0 first).
  std::set<int> firstTwenty;
  for (size_t i = 0; i < 20; ++i) firstTwenty.insert(test.dataset->labels[split.train[i]]);
  QVERIFY(firstTwenty.size() > 3);
}

QTEST_GUILESS_MAIN(TestDataReaders)
#include "test_data_readers.moc"
