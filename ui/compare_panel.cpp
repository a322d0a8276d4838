#include "compare_panel.h"

#include <qcustomplot.h>

#include <QHBoxLayout>
#include <QHeaderView>
#include <QLabel>
#include <QListWidget>
#include <QPushButton>
#include <QSplitter>
#include <QTableWidget>
#include <QVBoxLayout>

#include <algorithm>
#include "score_text.h"
#include "session_controller.h"

namespace scalpel::ui {

namespace {

enum Column {
  PlanColumn,
  TrainsColumn,
  ValidationColumn,
  TestColumn,
  SourceColumn,  // accuracy on the source data after tuning: what is kept
  TimeColumn,
  OutcomeColumn,
  ColumnCount
};

// Distinct, colour-blind-friendly line colours (Okabe–Ito), then repeats with a dash.
QPen runPen(int index) {
  static const QColor colours[] = {{0, 114, 178}, {213, 94, 0},   {0, 158, 115}, {204, 121, 167},
                                   {230, 159, 0}, {86, 180, 233}, {0, 0, 0},     {240, 228, 66}};
  constexpr int count = sizeof colours / sizeof colours[0];
  QPen pen(colours[index % count], 2);
  if (index >= count) pen.setStyle(Qt::DashLine);
  return pen;
}

}  // namespace

ComparePanel::ComparePanel(const SessionController* session, QWidget* parent)
    : QWidget(parent), m_session(session) {
  m_plans = new QListWidget(this);
  m_plans->setObjectName("comparePlans");
  m_plans->setToolTip(
      "The plans to train one after another, with the Training tab's optimiser, learning rate, "
      "epochs and batch size");
  setBlocks({});
  m_compare = new QPushButton("Compare", this);
  m_compare->setToolTip("Train every ticked plan on the target data, one after another");
  m_stop = new QPushButton("Stop", this);
  m_stop->setToolTip("Stop the current run (its best state so far is kept) and skip the rest");
  auto* buttons = new QHBoxLayout;
  buttons->addWidget(m_compare);
  buttons->addWidget(m_stop);
  m_status = new QLabel("Tick the plans to compare, then Compare.", this);
  m_status->setWordWrap(true);
  m_status->setMinimumHeight(3 * fontMetrics().lineSpacing());
  m_status->setAlignment(Qt::AlignLeft | Qt::AlignTop);
  m_plans->setMinimumWidth(200);
  auto* left = new QVBoxLayout;
  left->addWidget(new QLabel("Plans", this));
  left->addWidget(m_plans, 1);
  left->addLayout(buttons);
  left->addWidget(m_status);

  m_curves = new QCustomPlot(this);
  m_curves->setMinimumSize(360, 200);
  m_curves->legend->setVisible(true);
  m_curves->legend->setFont(QFont(font().family(), 8));
  // The legend beside the plot, never over a curve.
  m_curves->axisRect()->insetLayout()->setInsetAlignment(0, Qt::AlignBottom | Qt::AlignRight);
  auto* legendRect = new QCPLayoutGrid;
  m_curves->plotLayout()->addElement(0, 1, legendRect);
  legendRect->addElement(0, 0, m_curves->legend);
  legendRect->setMargins(QMargins(0, 6, 6, 6));
  m_curves->plotLayout()->setColumnStretchFactor(1, 0.001);
  m_curves->xAxis->setLabel("step");
  m_curves->yAxis->setLabel("validation accuracy (%)");
  m_curves->yAxis->setRange(0, 100);

  m_table = new QTableWidget(0, ColumnCount, this);
  m_table->setObjectName("compareResults");
  m_table->setHorizontalHeaderLabels(
      {"Plan", "Trains", "Validation", "Test", "Source", "Time", "Outcome"});
  m_table->horizontalHeader()->setSectionResizeMode(QHeaderView::ResizeToContents);
  m_table->horizontalHeader()->setStretchLastSection(true);
  m_table->verticalHeader()->setVisible(false);
  m_table->setSelectionBehavior(QAbstractItemView::SelectRows);
  m_table->setSelectionMode(QAbstractItemView::SingleSelection);
  m_table->setEditTriggers(QAbstractItemView::NoEditTriggers);
  m_open = new QPushButton("Open", this);
  m_open->setToolTip(
      "Make this run the current one: its curves and result in the Training tab, File ▸ Export "
      "saves it");
  m_export = new QPushButton("Export…", this);
  m_export->setToolTip("Save this run's tuned model with its report");
  m_usePlan = new QPushButton("Use as Plan", this);
  m_usePlan->setToolTip(
      "Mark this run's trainable layers in the diagram and the layer table (undoable)");
  auto* runButtons = new QHBoxLayout;
  runButtons->addWidget(m_open);
  runButtons->addWidget(m_export);
  runButtons->addWidget(m_usePlan);
  runButtons->addStretch(1);

  // The curves above the table, in a splitter: the table shows at least five runs.
  m_table->setMinimumHeight(m_table->horizontalHeader()->sizeHint().height() +
                            5 * m_table->verticalHeader()->defaultSectionSize() + 4);
  auto* split = new QSplitter(Qt::Vertical, this);
  split->addWidget(m_curves);
  split->addWidget(m_table);
  split->setStretchFactor(0, 1);
  split->setStretchFactor(1, 1);
  split->setChildrenCollapsible(false);
  auto* right = new QVBoxLayout;
  right->addWidget(split, 1);
  right->addLayout(runButtons);
  auto* layout = new QHBoxLayout(this);
  layout->setContentsMargins(4, 4, 4, 4);
  layout->addLayout(left, 0);
  layout->addLayout(right, 1);

  connect(m_compare, &QPushButton::clicked, this,
          [this] { Q_EMIT compareRequested(checkedStrategies()); });
  connect(m_stop, &QPushButton::clicked, this, [this] { Q_EMIT stopRequested(); });
  connect(m_open, &QPushButton::clicked, this, [this] { Q_EMIT openRequested(selectedRow()); });
  connect(m_export, &QPushButton::clicked, this, [this] { Q_EMIT exportRequested(selectedRow()); });
  connect(m_usePlan, &QPushButton::clicked, this,
          [this] { Q_EMIT usePlanRequested(selectedRow()); });
  connect(m_table, &QTableWidget::itemSelectionChanged, this, &ComparePanel::updateButtons);
  connect(m_table, &QTableWidget::cellDoubleClicked, this,
          [this](int row) { Q_EMIT openRequested(row); });
  m_replot.setSingleShot(true);
  m_replot.setInterval(40);  // coalesce replots
  connect(&m_replot, &QTimer::timeout, this, &ComparePanel::redraw);
  setRunning(false);
}

void ComparePanel::setBlocks(const QStringList& blocks) {
  m_plans->clear();
  const auto add = [this](const QString& strategy, bool checked) {
    auto* item = new QListWidgetItem(planLabel(strategy), m_plans);
    item->setData(Qt::UserRole, strategy);
    item->setToolTip(planDescription(strategy));
    item->setFlags(Qt::ItemIsEnabled | Qt::ItemIsUserCheckable);
    item->setCheckState(checked ? Qt::Checked : Qt::Unchecked);
  };
  add("auto", true);
  for (const auto& block : blocks) add("block:" + block, true);
  add("all", true);
  add("last", false);
  add("auto-rgn", false);
  add("probe", false);
  add("manual", false);
}

QStringList ComparePanel::checkedStrategies() const {
  QStringList strategies;
  for (int i = 0; i < m_plans->count(); ++i) {
    if (m_plans->item(i)->checkState() == Qt::Checked)
      strategies << m_plans->item(i)->data(Qt::UserRole).toString();
  }
  return strategies;
}

void ComparePanel::setCheckedStrategies(const QStringList& strategies) {
  for (int i = 0; i < m_plans->count(); ++i) {
    auto* item = m_plans->item(i);
    item->setCheckState(strategies.contains(item->data(Qt::UserRole).toString()) ? Qt::Checked
                                                                                 : Qt::Unchecked);
  }
}

void ComparePanel::setRunning(bool running) {
  m_running = running;
  m_compare->setEnabled(!running);
  m_stop->setEnabled(running);
  m_plans->setEnabled(!running);
  updateButtons();
}

void ComparePanel::clear() {
  m_curves->clearGraphs();
  m_curves->replot();
  m_table->setRowCount(0);
  updateButtons();
}

void ComparePanel::beginRun(const QString& strategy) {
  auto* graph = m_curves->addGraph();
  graph->setName(planLabel(strategy));
  graph->setPen(runPen(m_curves->graphCount() - 1));
  graph->setScatterStyle(QCPScatterStyle(QCPScatterStyle::ssDisc, 5));
  m_status->setText("Training " + planLabel(strategy) + " …");
  m_replot.start();
}

void ComparePanel::onStatus(const QString& message) { m_status->setText(message); }

void ComparePanel::onEvent(const TrainEvent& event) {
  if (m_curves->graphCount() == 0) return;
  auto* graph = m_curves->graph(m_curves->graphCount() - 1);
  if (event.kind == TrainEvent::Kind::Evaluation) {
    graph->addData(static_cast<double>(event.step), 100 * event.validation.score());
    m_curves->yAxis->setLabel(QString("validation %1 (%)").arg(event.validation.scoreName()));
    if (!m_replot.isActive()) m_replot.start();
  } else if (event.kind == TrainEvent::Kind::Step) {
    m_status->setText(QString("%1: epoch %2, step %3 of %4 · loss %5")
                          .arg(graph->name())
                          .arg(event.epoch + 1)
                          .arg(event.step)
                          .arg(event.totalSteps)
                          .arg(event.loss, 0, 'f', 3));
  }
}

void ComparePanel::showResult(int index) {
  const auto& compared = m_session->comparedRuns().at(static_cast<std::size_t>(index));
  // The unmodified model's validation accuracy starts each curve, so the gain shows.
  if (compared.ok() && m_curves->graphCount()) {
    m_curves->graph(m_curves->graphCount() - 1)
        ->addData(0, 100 * compared.run.result.validationBefore.score());
  }
  refreshTable();
  m_replot.start();
}

void ComparePanel::redraw() {
  m_curves->xAxis->rescale();
  const auto range = m_curves->xAxis->range();
  m_curves->xAxis->setRange(0, std::max(1.0, range.upper * 1.03));  // room for the last dots
  m_curves->replot();
}

void ComparePanel::finish(const QString& message) {
  m_replot.stop();
  redraw();  // the last run's points now, not at the next coalesced replot
  setRunning(false);
  m_status->setText(message);
  const int best = bestRow();
  if (best >= 0) selectRow(best);
}

int ComparePanel::runCount() const { return static_cast<int>(m_session->comparedRuns().size()); }
const FineTuneRun& ComparePanel::run(int row) const {
  return m_session->comparedRuns().at(static_cast<std::size_t>(row)).run;
}
QString ComparePanel::labelOf(int row) const {
  return planLabel(m_session->comparedRuns().at(static_cast<std::size_t>(row)).strategy);
}
int ComparePanel::bestRow() const { return m_session->bestComparedRun(); }

int ComparePanel::selectedRow() const {
  const auto rows = m_table->selectionModel()->selectedRows();
  return rows.isEmpty() ? -1 : rows.front().row();
}

void ComparePanel::selectRow(int row) { m_table->selectRow(row); }

QString ComparePanel::statusText() const { return m_status->text(); }
int ComparePanel::curveCount() const { return m_curves->graphCount(); }
int ComparePanel::curvePoints(int curve) const { return m_curves->graph(curve)->dataCount(); }
QString ComparePanel::curveName(int curve) const { return m_curves->graph(curve)->name(); }

void ComparePanel::refreshTable() {
  m_table->setRowCount(runCount());
  const int best = bestRow();
  for (int row = 0; row < runCount(); ++row) {
    const auto& entry = m_session->comparedRuns()[static_cast<std::size_t>(row)];
    const bool ok = entry.ok();
    const TrainResult& r = entry.run.result;
    const auto total = r.trainableParameters + r.frozenParameters;
    const QString outcome =
        !ok ? (entry.error.isEmpty() ? QString::fromStdString(r.error) : entry.error)
            : QString::fromStdString(entry.run.report.outcome);
    const QStringList cells{
        planLabel(entry.strategy),
        ok && total > 0 ? QString("%1 of the parameters")
                              .arg(percent(static_cast<double>(r.trainableParameters) /
                                           static_cast<double>(total)))
                        : "",
        ok ? scoreChange(r.validationBefore, r.validationAfter) : "",
        ok && r.testAfter.items ? scoreChange(r.testBefore, r.testAfter) : "",
        ok && r.sourceAfter.items ? scoreChange(r.sourceBefore, r.sourceAfter) : "",
        ok ? QString::number(r.seconds, 'f', 1) + " s" : "",
        row == best ? outcome + " · best on validation" : outcome};
    for (int column = 0; column < ColumnCount; ++column) {
      auto* item = new QTableWidgetItem(cells[column]);
      if (column == PlanColumn) item->setForeground(runPen(row).color());
      if (row == best) {
        QFont bold = item->font();
        bold.setBold(true);
        item->setFont(bold);
        item->setBackground(QColor(220, 245, 220));
        item->setToolTip("The best validation accuracy of this comparison");
      } else if (column == OutcomeColumn && !ok) {
        item->setToolTip(cells[column]);
      }
      m_table->setItem(row, column, item);
    }
    if (!entry.run.report.plan.explanation.empty()) {
      m_table->item(row, PlanColumn)
          ->setToolTip(QString::fromStdString(entry.run.report.plan.explanation));
    }
  }
  updateButtons();
}

void ComparePanel::updateButtons() {
  const int row = selectedRow();
  const bool usable =
      row >= 0 && row < runCount() && m_session->comparedRuns()[static_cast<std::size_t>(row)].ok();
  m_open->setEnabled(usable);
  m_export->setEnabled(usable);
  m_usePlan->setEnabled(usable);
}

}  // namespace scalpel::ui
