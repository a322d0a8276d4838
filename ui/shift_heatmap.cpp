#include "shift_heatmap.h"

#include <qcustomplot.h>

#include <QLabel>
#include <QVBoxLayout>
#include <cmath>
#include <limits>

namespace scalpel::ui {

namespace {

// Viridis (perceptually uniform, readable in grey and by colour-blind people): dark = at the
// noise floor, yellow = far above it.
QCPColorGradient viridis() {
  QCPColorGradient gradient;
  gradient.clearColorStops();
  const QVector<QColor> stops{QColor(68, 1, 84), QColor(59, 82, 139), QColor(33, 145, 140),
                              QColor(94, 201, 98), QColor(253, 231, 37)};
  for (int i = 0; i < stops.size(); ++i) gradient.setColorStopAt(double(i) / (stops.size() - 1), stops[i]);
  gradient.setNanHandling(QCPColorGradient::nhTransparent);
  return gradient;
}

}  // namespace

ShiftHeatmap::ShiftHeatmap(QWidget* parent) : QWidget(parent) {
  m_caption = new QLabel(this);
  m_caption->setWordWrap(true);
  m_plot = new QCustomPlot(this);
  m_plot->setMinimumHeight(220);
  m_map = new QCPColorMap(m_plot->xAxis, m_plot->yAxis);
  m_scale = new QCPColorScale(m_plot);
  m_plot->plotLayout()->addElement(0, 1, m_scale);
  m_scale->setLabel("shift: log₁₀(KL ÷ noise floor)\n0 = noise, 1 = 10×, 2 = 100×");
  m_map->setColorScale(m_scale);
  m_map->setGradient(viridis());
  m_map->setDataRange(QCPRange(0, kMaxDecades));
  m_map->setInterpolate(false);
  m_plot->xAxis->setLabel("target batches analysed");
  auto batches = QSharedPointer<QCPAxisTickerFixed>::create();  // whole batches only
  batches->setTickStep(1.0);
  batches->setScaleStrategy(QCPAxisTickerFixed::ssMultiples);
  m_plot->xAxis->setTicker(batches);
  m_plot->yAxis->setRangeReversed(true);  // the first layer on top, as in the diagram
  auto* margins = new QCPMarginGroup(m_plot);
  m_plot->axisRect()->setMarginGroup(QCP::msBottom | QCP::msTop, margins);
  m_scale->setMarginGroup(QCP::msBottom | QCP::msTop, margins);
  auto* layout = new QVBoxLayout(this);
  layout->setContentsMargins(4, 4, 4, 4);
  layout->addWidget(m_caption);
  layout->addWidget(m_plot, 1);
  m_replot.setSingleShot(true);
  m_replot.setInterval(40);
  connect(&m_replot, &QTimer::timeout, this, &ShiftHeatmap::redraw);
  clear("No analysis yet: open a model and target data, then Analysis ▸ Analyse Target Data.");
}

void ShiftHeatmap::clear(const QString& caption) {
  m_layers.clear();
  m_columns.clear();
  m_caption->setText(caption);
  redraw();
}

void ShiftHeatmap::setCaption(const QString& caption) { m_caption->setText(caption); }

void ShiftHeatmap::flush() {
  m_replot.stop();
  redraw();
  m_plot->replot(QCustomPlot::rpImmediateRefresh);
}

double ShiftHeatmap::cell(int batch, int layer) const {
  if (batch < 0 || batch >= batchCount() || layer < 0 || layer >= layerCount()) {
    return std::numeric_limits<double>::quiet_NaN();
  }
  return m_columns[batch][layer];
}

void ShiftHeatmap::addSnapshot(const ShiftSnapshot& snapshot) {
  if (m_layers.isEmpty()) {
    for (const auto& layer : snapshot.layers) m_layers << QString::fromStdString(layer.layer);
  }
  QVector<double> column;
  for (const auto& layer : snapshot.layers) {
    const double ratio = layer.noiseFloor > 0 ? layer.kl / layer.noiseFloor : 0;
    column << std::clamp(std::log10(std::max(ratio, 1.0)), 0.0, kMaxDecades);
  }
  column.resize(m_layers.size());
  m_columns << column;
  if (!m_replot.isActive()) m_replot.start();
}

void ShiftHeatmap::redraw() {
  const int batches = batchCount();
  const int layers = layerCount();
  auto* data = m_map->data();
  // At least two cells per axis: a colour map of one cell has no extent.
  const int keys = std::max(2, batches);
  const int values = std::max(2, layers);
  data->setSize(keys, values);
  data->setRange(QCPRange(1, keys), QCPRange(0, values - 1));
  for (int b = 0; b < keys; ++b) {
    for (int l = 0; l < values; ++l) data->setCell(b, l, cell(b, l));
  }
  auto ticker = QSharedPointer<QCPAxisTickerText>::create();
  for (int l = 0; l < layers; ++l) ticker->addTick(l, m_layers[l]);
  m_plot->yAxis->setTicker(ticker);
  m_plot->xAxis->setRange(0.5, keys + 0.5);
  m_plot->yAxis->setRange(-0.5, values - 0.5);
  m_plot->replot(QCustomPlot::rpQueuedReplot);
}

}  // namespace scalpel::ui
