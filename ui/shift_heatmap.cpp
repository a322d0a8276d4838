#include "shift_heatmap.h"

#include "layer_scores.h"
#include "shift_scale.h"

#include <qcustomplot.h>

#include <QComboBox>
#include <QHBoxLayout>
#include <QLabel>
#include <QSplitter>
#include <QVBoxLayout>
#include <cmath>
#include <limits>

namespace scalpel::ui {

namespace {

QCPColorGradient shiftGradient() {
  QCPColorGradient gradient;
  gradient.clearColorStops();
  const auto& stops = ShiftScale::stops();
  for (int i = 0; i < stops.size(); ++i)
    gradient.setColorStopAt(double(i) / (stops.size() - 1), stops[i]);
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
  m_map->setGradient(shiftGradient());
  m_map->setDataRange(QCPRange(0, ShiftScale::kMaxDecades));
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

  // The bars: horizontal, first row on top like the heatmap's.
  m_barPlot = new QCustomPlot(this);
  m_barPlot->setMinimumWidth(220);
  m_bars = new QCPBars(m_barPlot->yAxis, m_barPlot->xAxis);
  m_bars->setWidth(0.7);
  m_bars->setPen(Qt::NoPen);
  m_bars->setBrush(ShiftScale::colour(1.6));
  m_errors = new QCPErrorBars(m_barPlot->xAxis, m_barPlot->yAxis);
  m_errors->setDataPlottable(m_bars);
  m_errors->setErrorType(QCPErrorBars::etValueError);
  m_errors->setPen(QPen(QColor(40, 40, 40), 1.2));
  m_barPlot->yAxis->setRangeReversed(true);
  m_barPlot->yAxis->grid()->setVisible(false);  // the rows are labels, not values
  m_metricBox = new QComboBox(this);
  m_metricBox->setObjectName("barMetric");
  m_metricBox->addItem("Activation shift (± uncertainty)", ActivationShift);
  m_metricBox->addItem("RGN: relative gradient norm", Rgn);
  m_metricBox->addItem("Gradient SNR", Snr);
  m_metricBox->setToolTip(
      "What the bars show. Shift is measured per tapped layer; RGN and SNR per "
      "module with parameters, from a few labelled target batches");
  connect(m_metricBox, &QComboBox::currentIndexChanged, this, [this](int index) {
    setMetric(static_cast<Metric>(m_metricBox->itemData(index).toInt()));
  });
  auto* barPane = new QWidget(this);
  auto* barLayout = new QVBoxLayout(barPane);
  barLayout->setContentsMargins(0, 0, 0, 0);
  auto* pick = new QHBoxLayout;
  pick->addWidget(new QLabel("Bars:", barPane));
  pick->addWidget(m_metricBox, 1);
  barLayout->addLayout(pick);
  barLayout->addWidget(m_barPlot, 1);

  auto* splitter = new QSplitter(this);
  splitter->addWidget(m_plot);
  splitter->addWidget(barPane);
  splitter->setStretchFactor(0, 3);
  splitter->setStretchFactor(1, 2);
  splitter->setSizes({600, 400});  // proportions: Qt scales them to the width there is
  auto* layout = new QVBoxLayout(this);
  layout->setContentsMargins(4, 4, 4, 4);
  layout->addWidget(m_caption);
  layout->addWidget(splitter, 1);
  setCaption("No analysis yet: open a model and target data, then Analysis ▸ Analyse Target Data.");
  redraw();
}

void ShiftHeatmap::setScores(const LayerScores* scores) {
  if (m_scores) disconnect(m_scores, nullptr, this, nullptr);
  m_scores = scores;
  if (m_scores) {
    connect(m_scores, &LayerScores::changed, this, [this] {
      readScores();
      redraw();
    });
  }
  readScores();
  redraw();
}

void ShiftHeatmap::setCaption(const QString& caption) { m_caption->setText(caption); }

QString ShiftHeatmap::caption() const { return m_caption->text(); }

void ShiftHeatmap::flush() {
  readScores();
  redraw();
  m_plot->replot(QCustomPlot::rpImmediateRefresh);
  m_barPlot->replot(QCustomPlot::rpImmediateRefresh);
}

void ShiftHeatmap::readScores() {
  m_layers.clear();
  m_columns.clear();
  if (!m_scores || m_scores->snapshots().empty()) return;
  const auto& snapshots = m_scores->snapshots();
  for (const auto& layer : snapshots.front().layers)
    m_layers << QString::fromStdString(layer.layer);
  for (const auto& snapshot : snapshots) {
    QVector<double> column;
    for (const auto& layer : snapshot.layers)
      column << ShiftScale::level(layer.kl, layer.noiseFloor);
    column.resize(m_layers.size());
    m_columns << column;
  }
}

double ShiftHeatmap::cell(int batch, int layer) const {
  if (batch < 0 || batch >= batchCount() || layer < 0 || layer >= layerCount()) {
    return std::numeric_limits<double>::quiet_NaN();
  }
  return m_columns[batch][layer];
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
  redrawBars();
}

void ShiftHeatmap::setMetric(Metric metric) {
  m_metric = metric;
  const int index = m_metricBox->findData(metric);
  if (index != m_metricBox->currentIndex()) m_metricBox->setCurrentIndex(index);
  redrawBars();
  m_barPlot->replot(
      QCustomPlot::rpImmediateRefresh);  // a choice shows at once, not at the next frame
}

void ShiftHeatmap::redrawBars() {
  m_barLabels.clear();
  m_barValues.clear();
  QVector<double> below, above;  // error bars, in the bars' units
  QString axis;
  if (m_metric == ActivationShift) {
    axis = "log₁₀(KL ÷ noise floor), latest batch";
    const auto* latest = m_scores ? m_scores->latest() : nullptr;
    for (const auto& layer : latest ? latest->layers : std::vector<LayerScore>{}) {
      const double level = ShiftScale::level(layer.kl, layer.noiseFloor);
      m_barLabels << QString::fromStdString(layer.layer);
      m_barValues << level;
      below << level -
                   ShiftScale::level(std::max(0.0, layer.kl - layer.uncertainty), layer.noiseFloor);
      above << ShiftScale::level(layer.kl + layer.uncertainty, layer.noiseFloor) - level;
    }
  } else {
    axis = m_metric == Rgn ? "RGN: ‖mean gradient‖ ÷ ‖weights‖" : "gradient SNR (mean² ÷ variance)";
    for (const auto& module :
         m_scores ? m_scores->gradients().modules : std::vector<GradientSummary>{}) {
      m_barLabels << QString::fromStdString(module.name);
      m_barValues << (m_metric == Rgn ? module.rgn : module.snr);
      below << 0;
      above << 0;
    }
  }
  QVector<double> keys;
  for (int i = 0; i < m_barValues.size(); ++i) keys << i;
  m_bars->setData(keys, m_barValues, true);
  m_errors->setData(below, above);
  m_errors->setVisible(m_metric == ActivationShift);
  auto ticker = QSharedPointer<QCPAxisTickerText>::create();
  for (int i = 0; i < m_barLabels.size(); ++i) ticker->addTick(i, m_barLabels[i]);
  m_barPlot->yAxis->setTicker(ticker);
  m_barPlot->yAxis->setRange(-0.6, std::max<int>(1, m_barLabels.size()) - 0.4);
  double highest = m_metric == ActivationShift ? ShiftScale::kMaxDecades : 0;
  for (int i = 0; i < m_barValues.size(); ++i)
    highest = std::max(highest, m_barValues[i] + above.value(i));
  m_barPlot->xAxis->setRange(0, highest > 0 ? highest * 1.05 : 1);
  m_barPlot->xAxis->setLabel(
      m_barLabels.isEmpty() && m_metric != ActivationShift
          ? "measured after an analysis (gradients of labelled target batches)"
          : axis);
  m_barPlot->replot(QCustomPlot::rpQueuedReplot);
}

}  // namespace scalpel::ui
