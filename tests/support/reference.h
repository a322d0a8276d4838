#pragma once

// Reads what tests/fixtures/make_models.py recorded in Python for a fixture model.

#include <QDir>
#include <QFile>
#include <QJsonArray>
#include <QJsonDocument>
#include <QJsonObject>
#include <QString>
#include <QStringList>
#include <QtGlobal>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "model/loaded_model.h"

namespace scalpel::test {

// A whole file's bytes ("" if it cannot be read).
inline std::string readBytes(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream bytes;
  bytes << in.rdbuf();
  return bytes.str();
}

inline QString fixture(const QString& file) {
  return QStringLiteral(SCALPEL_FIXTURE_DIR "/") + file;
}

// Where UI tests save their screenshots (the build folder's screenshots/, created on demand).
inline QString screenshot(const QString& name) {
  QDir().mkpath(SCALPEL_SCREENSHOT_DIR);
  return QStringLiteral(SCALPEL_SCREENSHOT_DIR "/") + name;
}

// The trained demo model every suite runs on: the build's own (the train_demo_model test trains
// it), or the file SCALPEL_TEST_DEMO_MODEL names. The demo_other_seed tests (and
// `SCALPEL_DEMO_SEED=N scripts/test`) set it to a demo model pretrained with another seed, so no
// assertion may hold for one model's digits only (bench/demo-spread measures the spread).
inline QString demoModel() {
  const QString other = qEnvironmentVariable("SCALPEL_TEST_DEMO_MODEL");
  return other.isEmpty() ? QStringLiteral(SCALPEL_DEMO_DIR "/demo_model.pt") : other;
}
inline std::string demoModelPath() { return demoModel().toStdString(); }

// A model file opened once (LoadedModel::open); a failure is in its error().
inline LoadedModel opened(const QString& path) { return LoadedModel::open(path.toStdString()); }
inline LoadedModel openedFixture(const QString& file) { return opened(fixture(file)); }
// The suite's demo model, opened once per test program.
inline const LoadedModel& demo() {
  static const LoadedModel model = opened(demoModel());
  return model;
}

// A figure of the trained demo model that an assertion depends on, printed as
// "figure NAME VALUE": bench/demo-spread collects them over demo models pretrained with several
// seeds and thread counts, which is where each assertion's margin comes from.
inline void figure(const char* name, double value) { qInfo("figure %s %.6g", name, value); }

inline const QStringList& fixtureModels() {
  static const QStringList models{"small_cnn", "sequential_cnn", "resnet18", "mobilenet_v2", "vit",
                                  "mlp",       "demo_net"};
  return models;
}

inline QJsonObject pythonReference(const QString& model) {
  QFile file(fixture(model + ".reference.json"));
  if (!file.open(QIODevice::ReadOnly)) return {};
  return QJsonDocument::fromJson(file.readAll()).object();
}

inline std::vector<std::int64_t> toShape(const QJsonArray& array) {
  std::vector<std::int64_t> shape;
  for (const auto& value : array) shape.push_back(value.toInteger());
  return shape;
}

}  // namespace scalpel::test
