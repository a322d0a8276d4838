#pragma once

#include <QStringList>
#include <QTimer>
#include <QVector>
#include <QWidget>

#include "core_metatypes.h"

class QCPColorMap;
class QCPColorScale;
class QCustomPlot;
class QLabel;

namespace scalpel::ui {

// Layers × batches: each cell is how far a layer's activations have moved after that many target
// batches, as a multiple of the noise floor on a log scale, so the picture fills in live and
// visibly settles. Redraws are coalesced (one replot per 40 ms at most).
class ShiftHeatmap : public QWidget {
  Q_OBJECT

 public:
  explicit ShiftHeatmap(QWidget* parent = nullptr);

  void clear(const QString& caption);
  void setCaption(const QString& caption);
  // Draws what has arrived now, instead of at the next coalesced replot (e.g. when a run ends).
  void flush();
  // The first snapshot fixes the layers (rows, in execution order).
  void addSnapshot(const scalpel::ShiftSnapshot& snapshot);
  int layerCount() const { return static_cast<int>(m_layers.size()); }
  int batchCount() const { return static_cast<int>(m_columns.size()); }
  // log10(KL / noise floor), clamped to [0, kMaxDecades]; NaN outside the data.
  double cell(int batch, int layer) const;
  QCustomPlot* plot() const { return m_plot; }

  static constexpr double kMaxDecades = 3.0;  // colour saturates at 1000× the noise floor

 private:
  void redraw();

  QCustomPlot* m_plot;
  QCPColorMap* m_map;
  QCPColorScale* m_scale;
  QLabel* m_caption;
  QStringList m_layers;
  QVector<QVector<double>> m_columns;  // per batch: per layer
  QTimer m_replot;
};

}  // namespace scalpel::ui
