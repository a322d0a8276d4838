#include "model_worker.h"

#include "util/logging.h"

namespace scalpel::ui {

void ModelWorker::inspect(quint64 requestId, const QString& path,
                          const QVector<qint64>& inputShape) {
  ModelInspection inspection;
  // An exception escaping a slot would end the program: everything stops here.
  try {
    InspectOptions options;
    options.inputShape.assign(inputShape.begin(), inputShape.end());
    inspection = inspectModel(path.toStdString(), options);
  } catch (const std::exception& error) {
    inspection.path = path.toStdString();
    inspection.error = path.toStdString() + ": " + error.what();
    logger("ui")->error("opening {} failed: {}", path.toStdString(), error.what());
  }
  Q_EMIT inspected(requestId, inspection);
}

}  // namespace scalpel::ui
