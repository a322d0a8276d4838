#pragma once

#include <QStringList>
#include <QVector>
#include <QWidget>

#include "core_metatypes.h"

class QCPBars;
class QCPColorMap;
class QCPColorScale;
class QCPErrorBars;
class QComboBox;
class QCustomPlot;
class QLabel;

namespace scalpel::ui {

class LayerScores;

// Left, layers × batches: each cell is how far a layer's activations have moved after that many
// target batches, as a multiple of the noise floor on a log scale (ShiftScale), so the picture
// fills in live and visibly settles. Right, a bar chart of the current per-layer values of the
// chosen metric: activation shift (with its uncertainty), or, once the gradients are measured,
// RGN or gradient SNR per module with parameters. It draws the scores of a LayerScores store, whose
// `changed` comes at most every 40 ms.
class ShiftHeatmap : public QWidget {
  Q_OBJECT

 public:
  enum Metric { ActivationShift, Rgn, Snr };

  explicit ShiftHeatmap(QWidget* parent = nullptr);

  // The store it draws (not owned; it may be null). The first snapshot fixes the layers (rows, in
  // execution order).
  void setScores(const LayerScores* scores);
  void setCaption(const QString& caption);
  QString caption() const;
  // Draws the store as it is now, instead of at its next `changed` (e.g. when an analysis ends).
  void flush();
  int layerCount() const { return static_cast<int>(m_layers.size()); }
  int batchCount() const { return static_cast<int>(m_columns.size()); }
  // ShiftScale level of a cell; NaN outside the data.
  double cell(int batch, int layer) const;

  Metric metric() const { return m_metric; }
  void setMetric(Metric metric);
  // What the bar chart shows now: one label and value per bar, top to bottom.
  QStringList barLabels() const { return m_barLabels; }
  QVector<double> barValues() const { return m_barValues; }
  QCustomPlot* plot() const { return m_plot; }
  QCustomPlot* barPlot() const { return m_barPlot; }

 private:
  void redraw();
  void redrawBars();
  void readScores();

  QCustomPlot* m_plot;
  QCPColorMap* m_map;
  QCPColorScale* m_scale;
  QCustomPlot* m_barPlot;
  QCPBars* m_bars;
  QCPErrorBars* m_errors;
  QComboBox* m_metricBox;
  QLabel* m_caption;
  Metric m_metric = ActivationShift;
  const LayerScores* m_scores = nullptr;
  QStringList m_layers;
  QVector<QVector<double>> m_columns;  // per batch: per layer, ShiftScale levels
  QStringList m_barLabels;
  QVector<double> m_barValues;
};

}  // namespace scalpel::ui
