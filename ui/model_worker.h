#pragma once

#include <QMetaType>
#include <QObject>
#include <QString>
#include <QVector>

#include "model/model_inspection.h"

Q_DECLARE_METATYPE(scalpel::ModelInspection)

namespace scalpel::ui {

// Does the torch work of opening a model on its own thread (the GUI thread never runs torch).
// Requests come in over queued connections; results go out as plain values tagged with the
// request id, so the window can drop a result that a newer request has made stale.
class ModelWorker : public QObject {
  Q_OBJECT

 public Q_SLOTS:
  void inspect(quint64 requestId, const QString& path, const QVector<qint64>& inputShape);

 Q_SIGNALS:
  void inspected(quint64 requestId, const scalpel::ModelInspection& inspection);
};

}  // namespace scalpel::ui
