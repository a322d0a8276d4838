#pragma once

#include <QObject>
#include <QString>
#include <QVector>

#include <atomic>

#include "core_metatypes.h"

namespace scalpel::ui {

// Does the torch work of opening a model on its own thread (the GUI thread never runs torch).
// Requests come in over queued connections; results go out as plain values tagged with the
// request id, so the window can drop a result that a newer request has made stale.
class ModelWorker : public QObject {
  Q_OBJECT

 public:
  // Not a slot: set from the GUI thread while pretrain() runs, read between its steps.
  std::atomic<bool>& cancelFlag() { return m_cancel; }

 public Q_SLOTS:
  void inspect(quint64 requestId, const QString& path, const QVector<qint64>& inputShape);
  // Trains the untrained model at `modelPath` from scratch and saves it to `outPath`.
  void pretrain(const QString& modelPath, const QString& outPath,
                const scalpel::PretrainOptions& options);

 Q_SIGNALS:
  void inspected(quint64 requestId, const scalpel::ModelInspection& inspection);
  void pretrainProgress(const scalpel::PretrainProgress& progress);  // at most ~10 per second
  void pretrainFinished(const scalpel::PretrainResult& result, const QString& outPath);

 private:
  std::atomic<bool> m_cancel{false};
};

}  // namespace scalpel::ui
