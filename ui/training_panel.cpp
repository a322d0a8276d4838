#include "training_panel.h"

#include <qcustomplot.h>

#include <QCheckBox>
#include <QComboBox>
#include <QDoubleSpinBox>
#include <QFormLayout>
#include <QHBoxLayout>
#include <QLabel>
#include <QProgressBar>
#include <QPushButton>
#include <QSpinBox>
#include <QVBoxLayout>
#include <cmath>
#include <limits>

#include "score_text.h"
#include "util/device_info.h"

namespace scalpel::ui {

namespace {

// The plans every model has, in the menu's order; "block:NAME" entries follow them.
const QStringList kPlans{"auto",        "diagnosis", "auto-rgn", "probe",
                         "recalibrate", "last",      "all",      "manual"};

QString duration(double seconds) {
  const int s = static_cast<int>(seconds + 0.5);
  return s >= 60 ? QString("%1 min %2 s").arg(s / 60).arg(s % 60) : QString("%1 s").arg(s);
}

}  // namespace

TrainingPanel::TrainingPanel(QWidget* parent) : QWidget(parent) {
  m_strategy = new QComboBox(this);
  // Each plan's tooltip says what Train then trains; the line above the curves repeats it.
  for (const QString name : kPlans) {
    m_strategy->addItem(name, name);
    m_strategy->setItemData(m_strategy->count() - 1, planDescription(name), Qt::ToolTipRole);
  }
  m_planHint = new QLabel(this);
  m_planHint->setObjectName("planHint");
  m_planHint->setWordWrap(true);
  QFont hintFont = m_planHint->font();
  hintFont.setItalic(true);
  m_planHint->setFont(hintFont);
  m_optimizer = new QComboBox(this);
  m_optimizer->addItems({"adam", "adamw", "sgd"});
  m_learningRate = new QDoubleSpinBox(this);
  m_learningRate->setDecimals(5);
  m_learningRate->setRange(1e-5, 1.0);
  m_learningRate->setSingleStep(1e-4);
  m_epochs = new QSpinBox(this);
  m_epochs->setRange(1, 1000);
  m_batchSize = new QSpinBox(this);
  m_batchSize->setRange(1, 4096);
  m_batchNormEval = new QCheckBox("BatchNorm in eval mode everywhere", this);
  m_batchNormEval->setToolTip(
      "The paper's protocol. Unchecked: only BatchNorms in frozen layers keep their statistics.");

  m_device = new QComboBox(this);
  m_device->addItem(QString::fromStdString("automatic: " + describeDevice(automaticDevice())),
                    "auto");
  for (const auto& device : availableDevices()) {
    m_device->addItem(QString::fromStdString(describeDevice(device)),
                      QString::fromStdString(device));
  }
  m_device->setToolTip(
      "Where training and the analysis run; automatic picks the first GPU when there is one");
  m_precision = new QComboBox(this);
  m_precision->addItem("fp32", "fp32");
  m_precision->addItem("bf16 autocast", "bf16");
  m_precision->setToolTip(
      "bf16: convolutions and matrix products in bfloat16, weights in float32 — about twice as "
      "fast on recent GPUs, within a point or two of fp32");
  m_channelsLast = new QCheckBox("Channels-last layout", this);
  m_channelsLast->setToolTip(
      "NHWC tensors for convolutional models: faster with bf16 on GPU tensor cores");

  auto* form = new QFormLayout;
  form->addRow("Plan", m_strategy);
  form->addRow("Optimiser", m_optimizer);
  form->addRow("Learning rate", m_learningRate);
  form->addRow("Epochs", m_epochs);
  form->addRow("Batch size", m_batchSize);
  form->addRow(m_batchNormEval);
  form->addRow("Device", m_device);
  form->addRow("Precision", m_precision);
  form->addRow(m_channelsLast);

  m_train = new QPushButton("Train", this);
  m_pause = new QPushButton("Pause", this);
  m_pause->setCheckable(true);
  m_stop = new QPushButton("Stop", this);
  auto* buttons = new QHBoxLayout;
  buttons->addWidget(m_train);
  buttons->addWidget(m_pause);
  buttons->addWidget(m_stop);
  m_progress = new QProgressBar(this);
  m_progress->setFormat("%p%");
  m_status = new QLabel(this);
  m_status->setWordWrap(true);
  m_result = new QLabel(this);
  m_result->setWordWrap(true);
  m_result->setTextFormat(Qt::RichText);

  auto* left = new QVBoxLayout;
  left->addLayout(form);
  left->addLayout(buttons);
  left->addWidget(m_progress);
  left->addWidget(m_status);
  left->addStretch(1);

  buildCurves();
  buildGradientMap();

  // The result sits under the curves, where it has the width to be read in one go.
  auto* plots = new QHBoxLayout;
  plots->addWidget(m_curves, 3);
  plots->addWidget(m_gradientPlot, 2);
  // What the plan trains heads the curves: the form beside it has no room for a sentence.
  auto* right = new QVBoxLayout;
  right->addWidget(m_planHint);
  right->addLayout(plots, 1);
  right->addWidget(m_result);
  auto* layout = new QHBoxLayout(this);
  layout->setContentsMargins(4, 4, 4, 4);
  layout->addLayout(left, 0);
  layout->addLayout(right, 1);

  connect(m_strategy, &QComboBox::currentIndexChanged, this, &TrainingPanel::showPlanHint);
  connect(m_device, &QComboBox::currentIndexChanged, this,
          [this] { Q_EMIT deviceChanged(device()); });
  connect(m_train, &QPushButton::clicked, this,
          [this] { Q_EMIT trainRequested(strategy(), options()); });
  connect(m_pause, &QPushButton::toggled, this, [this](bool paused) {
    m_pause->setText(paused ? "Resume" : "Pause");
    m_status->setText(paused ? "Paused: Resume continues from the next batch." : "Training …");
    Q_EMIT pauseRequested(paused);
  });
  connect(m_stop, &QPushButton::clicked, this, [this] { Q_EMIT stopRequested(); });
  // Every edit of the form is an edit of the session's settings.
  connect(m_strategy, &QComboBox::currentIndexChanged, this, &TrainingPanel::edited);
  connect(m_optimizer, &QComboBox::currentIndexChanged, this, &TrainingPanel::edited);
  connect(m_learningRate, &QDoubleSpinBox::valueChanged, this, &TrainingPanel::edited);
  connect(m_epochs, &QSpinBox::valueChanged, this, &TrainingPanel::edited);
  connect(m_batchSize, &QSpinBox::valueChanged, this, &TrainingPanel::edited);
  connect(m_batchNormEval, &QCheckBox::toggled, this, &TrainingPanel::edited);
  connect(m_device, &QComboBox::currentIndexChanged, this, &TrainingPanel::edited);
  connect(m_precision, &QComboBox::currentIndexChanged, this, &TrainingPanel::edited);
  connect(m_channelsLast, &QCheckBox::toggled, this, &TrainingPanel::edited);
  m_replot.setSingleShot(true);
  m_replot.setInterval(40);
  connect(&m_replot, &QTimer::timeout, this, &TrainingPanel::redraw);
  setOptions(TrainOptions{});  // core's defaults, the CLI's too: the paper's protocol
  setRunning(false);
  setReadiness(false, false);
  showPlanHint();
}

void TrainingPanel::setReadiness(bool model, bool target) {
  m_model = model;
  m_target = target;
  if (m_running || !m_result->text().isEmpty()) return;  // the run's own status stands
  m_status->setText(!model    ? "Open a model and target data, then Train."
                    : !target ? "Open the target data (File ▸ Open Data…), then Train."
                              : "Ready: Train (Ctrl+T) fine-tunes the model on the target data.");
}

// Training loss per step, validation loss and accuracy per evaluation.
void TrainingPanel::buildCurves() {
  m_curves = new QCustomPlot(this);
  m_curves->setMinimumSize(360, 220);
  // The legend in a row under the plot, where it covers no curve.
  m_curves->legend->setVisible(true);
  m_curves->legend->setFont(QFont(font().family(), 8));
  m_curves->legend->setFillOrder(QCPLayoutGrid::foColumnsFirst);
  m_curves->plotLayout()->addElement(1, 0, m_curves->legend);
  m_curves->plotLayout()->setRowStretchFactor(1, 0.001);
  m_curves->xAxis->setLabel("step");
  m_curves->yAxis->setLabel("loss");
  m_curves->yAxis2->setVisible(true);
  m_curves->yAxis2->setLabel("validation accuracy (%)");
  m_curves->yAxis2->setRange(0, 100);
  auto* trainLoss = m_curves->addGraph();
  trainLoss->setName("training loss");
  trainLoss->setPen(QPen(QColor(31, 119, 180, 150), 1));
  auto* validationLoss = m_curves->addGraph();
  validationLoss->setName("validation loss");
  validationLoss->setPen(QPen(QColor(214, 39, 40), 2));
  validationLoss->setScatterStyle(QCPScatterStyle(QCPScatterStyle::ssCircle, 6));
  auto* accuracy = m_curves->addGraph(m_curves->xAxis, m_curves->yAxis2);
  accuracy->setName("validation accuracy");
  accuracy->setPen(QPen(QColor(44, 160, 44), 2));
  accuracy->setScatterStyle(QCPScatterStyle(QCPScatterStyle::ssDisc, 6));
}

// Per-block gradient norm over steps: which parts of the model are learning, and how hard.
void TrainingPanel::buildGradientMap() {
  m_gradientPlot = new QCustomPlot(this);
  m_gradientPlot->setMinimumSize(240, 220);
  m_gradientMap = new QCPColorMap(m_gradientPlot->xAxis, m_gradientPlot->yAxis);
  auto* gradientScale = new QCPColorScale(m_gradientPlot);
  m_gradientPlot->plotLayout()->addElement(0, 1, gradientScale);
  gradientScale->setLabel("log₁₀ gradient norm");
  m_gradientMap->setColorScale(gradientScale);
  QCPColorGradient gradient(QCPColorGradient::gpHot);
  gradient.setNanHandling(QCPColorGradient::nhTransparent);  // frozen blocks have no gradient
  m_gradientMap->setGradient(gradient);
  m_gradientMap->setInterpolate(false);
  m_gradientPlot->xAxis->setLabel("step (blank rows: frozen)");
  m_gradientPlot->yAxis->setRangeReversed(true);  // the first block on top, as in the diagram
  m_gradientPlot->yAxis->grid()->setVisible(false);
}

QString TrainingPanel::strategy() const { return m_strategy->currentData().toString(); }

TrainOptions TrainingPanel::options() const {
  TrainOptions options = m_hidden;
  options.optimizer = m_optimizer->currentText().toStdString();
  options.learningRate = m_learningRate->value();
  options.epochs = m_epochs->value();
  options.batchSize = static_cast<std::size_t>(m_batchSize->value());
  options.batchNormEval = m_batchNormEval->isChecked();
  options.device = device().toStdString();
  options.precision = m_precision->currentData().toString().toStdString();
  options.channelsLast = m_channelsLast->isChecked();
  return options;
}

QString TrainingPanel::device() const { return m_device->currentData().toString(); }

void TrainingPanel::setDevice(const QString& device) {
  const int index = m_device->findData(device);
  m_device->setCurrentIndex(index >= 0 ? index : 0);
}

void TrainingPanel::setBlocks(const QStringList& blocks) {
  // The fixed plans stay; the blocks after them are the model's.
  while (m_strategy->count() > kPlans.size()) m_strategy->removeItem(m_strategy->count() - 1);
  for (const auto& block : blocks) {
    m_strategy->addItem("only " + block, "block:" + block);
    m_strategy->setItemData(m_strategy->count() - 1, planDescription("block:" + block),
                            Qt::ToolTipRole);
  }
}

void TrainingPanel::setPlanContext(int ticked, int layers, const QStringList& suggested) {
  m_ticked = ticked;
  m_layers = layers;
  m_suggested = suggested;
  showPlanHint();
}

QString TrainingPanel::planHint() const { return m_planHint->text(); }

// The ticks in the diagram stay as the user left them whatever the plan; beside any plan but
// "manual" they would seem to say what trains, so the line says what does.
void TrainingPanel::showPlanHint() {
  const QString plan = strategy();
  QString hint = planDescription(plan);
  if (plan == "manual") {
    hint = QString("Trains the %1 of %2 layers ticked in the diagram and the layer table.")
               .arg(m_ticked)
               .arg(m_layers);
  } else if (plan == "auto") {
    hint = m_suggested.isEmpty()
               ? "Analyses the target data, tries the suggested plan against its neighbours, "
                 "Auto-RGN, every layer and BatchNorm recalibration in short runs, then trains "
                 "the best on validation data."
               : "Tries the advisor's " + m_suggested.join(", ") +
                     " against its neighbours, Auto-RGN, every layer and BatchNorm recalibration "
                     "in short runs, then trains the best on validation data.";
  } else if (plan == "diagnosis") {
    hint = m_suggested.isEmpty()
               ? "Analyses the target data, then trains what the advisor suggests, untried."
               : "Trains what the advisor suggests, untried: " + m_suggested.join(", ") + ".";
  }
  if (plan != "manual") hint += " The ticks in the diagram count only with the manual plan.";
  m_planHint->setText("Plan " + m_strategy->currentText() + ": " + hint);
}

void TrainingPanel::setStrategy(const QString& strategy) {
  const int index = m_strategy->findData(strategy);
  if (index >= 0) m_strategy->setCurrentIndex(index);
}

void TrainingPanel::setEpochs(int epochs) { m_epochs->setValue(epochs); }

void TrainingPanel::setOptions(const TrainOptions& options) {
  m_hidden = options;
  m_optimizer->setCurrentText(QString::fromStdString(options.optimizer));
  m_learningRate->setValue(options.learningRate);
  m_epochs->setValue(options.epochs);
  m_batchSize->setValue(static_cast<int>(options.batchSize));
  m_batchNormEval->setChecked(options.batchNormEval);
  setDevice(QString::fromStdString(options.device));
  const int precision = m_precision->findData(QString::fromStdString(options.precision));
  if (precision >= 0) m_precision->setCurrentIndex(precision);
  m_channelsLast->setChecked(options.channelsLast);
}

void TrainingPanel::setRunning(bool running) {
  m_running = running;
  m_train->setEnabled(!running);
  m_pause->setEnabled(running);
  m_stop->setEnabled(running);
  if (!running && m_pause->isChecked()) {
    const QSignalBlocker block(m_pause);
    m_pause->setChecked(false);
    m_pause->setText("Pause");
  }
  if (running) {
    for (auto* graph : std::as_const(m_candidateCurves)) m_curves->removeGraph(graph);
    m_candidateCurves.clear();
    for (int g = 0; g < m_curves->graphCount(); ++g) m_curves->graph(g)->data()->clear();
    clearGradients();
    m_progress->setValue(0);
    m_result->clear();
    m_status->setText("Starting …");
    m_replot.start();
  }
}

QString TrainingPanel::resultText() const { return m_result->text(); }
QString TrainingPanel::statusText() const { return m_status->text(); }
int TrainingPanel::trainingPoints() const { return m_curves->graph(0)->dataCount(); }
int TrainingPanel::evaluationPoints() const { return m_curves->graph(1)->dataCount(); }

void TrainingPanel::onStatus(const QString& message) { m_status->setText(message); }

void TrainingPanel::togglePause() {
  if (m_pause->isEnabled()) m_pause->toggle();
}

void TrainingPanel::onEvent(const TrainEvent& event) {
  if (event.kind == TrainEvent::Kind::Step) {
    m_curves->graph(0)->addData(static_cast<double>(event.step), event.loss);
    QVector<double> norms;
    for (double norm : event.blockGradientNorms)
      norms << (norm > 0 ? std::log10(norm) : std::numeric_limits<double>::quiet_NaN());
    m_gradientNorms << norms;
    m_gradientAt << static_cast<double>(event.step);
    m_progress->setMaximum(static_cast<int>(event.totalSteps));
    m_progress->setValue(static_cast<int>(event.step));
    m_progress->setFormat(QString("%p% · about %1 left").arg(duration(event.remainingSeconds)));
    m_status->setText(QString("Epoch %1, step %2 of %3 · loss %4 · %5 samples/s")
                          .arg(event.epoch + 1)
                          .arg(event.step)
                          .arg(event.totalSteps)
                          .arg(event.loss, 0, 'f', 3)
                          .arg(event.samplesPerSecond, 0, 'f', 0));
  } else if (event.kind == TrainEvent::Kind::Evaluation) {
    m_curves->graph(1)->addData(static_cast<double>(event.step), event.validation.loss);
    m_curves->graph(2)->addData(static_cast<double>(event.step), 100 * event.validation.score());
    nameScore(event.validation);
  }
  if (!m_replot.isActive()) m_replot.start();
}

// Each candidate run's validation score, thin and dashed under the chosen plan's curves; one
// legend entry stands for them all, so the legend stays one row.
void TrainingPanel::onCandidateEvaluated(const QString& candidate, int round,
                                         const TrainEvent& event) {
  const QString key = candidate + " · round " + QString::number(round + 1);
  QCPGraph* graph = m_candidateCurves.value(key);
  if (!graph) {
    graph = m_curves->addGraph(m_curves->xAxis, m_curves->yAxis2);
    const int index = static_cast<int>(m_candidateCurves.size());
    graph->setPen(QPen(QColor::fromHsv((index * 47) % 360, 140, 200), 1, Qt::DashLine));
    // A round of one epoch has one evaluation: a point, which a line alone would not show. A
    // later round goes on from the earlier one, so its curve starts where that point is.
    graph->setScatterStyle(QCPScatterStyle(QCPScatterStyle::ssCircle, 4));
    graph->setName("plan candidates");
    if (!m_candidateCurves.isEmpty()) graph->removeFromLegend();
    m_candidateCurves.insert(key, graph);
    m_status->setText("Trying " + key + " …");
  }
  graph->addData(static_cast<double>(event.step), 100 * event.validation.score());
  nameScore(event.validation);
  if (!m_replot.isActive()) m_replot.start();
}

int TrainingPanel::candidateCurves() const { return static_cast<int>(m_candidateCurves.size()); }

void TrainingPanel::onFinished(const FineTuneRun& run, const QString& planError) {
  setRunning(false);
  m_replot.stop();
  redraw();
  if (!planError.isEmpty()) {
    m_status->setText(planError);
    return;
  }
  const TrainResult& r = run.result;
  m_progress->setFormat(r.ok ? "done" : "%p%");
  m_status->setText(QString::fromStdString(
      r.ok && r.error.empty() ? "Finished " + std::to_string(r.steps) + " steps in " +
                                    duration(r.seconds).toStdString() + " on " + r.device
                              : r.error));
  QString text = QString("Validation %1 %2")
                     .arg(r.validationAfter.scoreName(),
                          scoreChange(r.validationBefore, r.validationAfter, true));
  if (r.testAfter.items)
    text += QString(" · test %1 %2")
                .arg(r.testAfter.scoreName(), scoreChange(r.testBefore, r.testAfter, true));
  if (r.sourceAfter.items)
    text += QString(" · source %1 %2")
                .arg(r.sourceAfter.scoreName(), scoreChange(r.sourceBefore, r.sourceAfter, false));
  text += QString(" · trained %1 of %2 parameters")
              .arg(r.trainableParameters)
              .arg(r.trainableParameters + r.frozenParameters);
  text +=
      QString("<br>%1").arg(QString::fromStdString(run.report.plan.explanation).toHtmlEscaped());
  if (r.tunedModel) text += " File ▸ Export Tuned Model… saves it with its report.";
  if (!r.frozenCache.empty()) {
    text += QString("<br><span style='color:#555'>Frozen part: %1</span>")
                .arg(QString::fromStdString(r.frozenCache).toHtmlEscaped());
  }
  if (r.resumedEpochs > 0) {
    text += QString(
                "<br><span style='color:#555'>Epochs 1–%1 are the search's last run of this "
                "plan: the run went on from there.</span>")
                .arg(r.resumedEpochs);
  }
  m_result->setText(text);
}

void TrainingPanel::showRun(const FineTuneRun& run) {
  for (int g = 0; g < m_curves->graphCount(); ++g) m_curves->graph(g)->data()->clear();
  clearGradients();  // a report keeps the curves, not every step's gradients
  for (const auto& point : run.report.history) {
    const auto step = static_cast<double>(point.step);
    m_curves->graph(0)->addData(step, point.trainLoss);
    m_curves->graph(1)->addData(step, point.validation.loss);
    m_curves->graph(2)->addData(step, 100 * point.validation.score());
    nameScore(point.validation);
  }
  onFinished(run, {});
}

QString TrainingPanel::scoreAxisLabel() const { return m_curves->yAxis2->label(); }

void TrainingPanel::nameScore(const Evaluation& evaluation) {
  const QString name = QString("validation %1").arg(evaluation.scoreName());
  m_curves->graph(2)->setName(name);
  m_curves->yAxis2->setLabel(name + " (%)");
}

void TrainingPanel::redraw() {
  m_curves->xAxis->rescale();
  m_curves->yAxis->rescale();
  const auto range = m_curves->yAxis->range();
  m_curves->yAxis->setRange(0, std::max(range.upper * 1.05, 0.1));
  m_curves->replot();
  redrawGradients();
}

void TrainingPanel::setModelBlocks(const QStringList& blocks) {
  m_modelBlocks = blocks;
  clearGradients();
  redrawGradients();
}

void TrainingPanel::clearGradients() {
  m_gradientNorms.clear();
  m_gradientAt.clear();
}

double TrainingPanel::gradientNorm(int step, int block) const {
  if (step < 0 || step >= m_gradientNorms.size() || block < 0 ||
      block >= m_gradientNorms[step].size()) {
    return std::numeric_limits<double>::quiet_NaN();
  }
  return m_gradientNorms[step][block];
}

void TrainingPanel::redrawGradients() {
  const int steps = std::max(2, gradientSteps());
  const int blocks = std::max<int>(2, m_modelBlocks.size());
  auto* data = m_gradientMap->data();
  data->setSize(steps, blocks);
  // Step events come at a steady stride: the cells span the steps they were measured at.
  const double first = m_gradientAt.value(0, 1);
  const double last = m_gradientAt.size() > 1 ? m_gradientAt.last() : first + 1;
  data->setRange(QCPRange(first, last), QCPRange(0, blocks - 1));
  double low = std::numeric_limits<double>::infinity(), high = -low;
  for (int s = 0; s < steps; ++s) {
    for (int b = 0; b < blocks; ++b) {
      const double value = gradientNorm(s, b);
      data->setCell(s, b, value);
      if (!std::isnan(value)) {
        low = std::min(low, value);
        high = std::max(high, value);
      }
    }
  }
  if (low <= high) m_gradientMap->setDataRange(QCPRange(low, std::max(high, low + 0.1)));
  auto ticker = QSharedPointer<QCPAxisTickerText>::create();
  for (int b = 0; b < m_modelBlocks.size(); ++b) ticker->addTick(b, m_modelBlocks[b]);
  m_gradientPlot->yAxis->setTicker(ticker);
  const double half = (last - first) / std::max(1, steps - 1) / 2;
  m_gradientPlot->xAxis->setRange(first - half, last + half);
  m_gradientPlot->yAxis->setRange(-0.5, blocks - 0.5);
  m_gradientPlot->replot();
}

}  // namespace scalpel::ui
