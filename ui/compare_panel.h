#pragma once

#include <QTimer>
#include <QWidget>

#include <vector>

#include "core_metatypes.h"

class QCustomPlot;
class QLabel;
class QListWidget;
class QPushButton;
class QTableWidget;

namespace scalpel::ui {

class SessionController;

// The Compare tab: the analyst ticks several plans (each block alone, all, auto, …), the session
// trains them one after another on the same model, data and hyper-parameters, and this panel
// overlays their validation accuracy and lists the results with the best on validation data
// highlighted (the protocol's model selection: the test split stays untouched until reported).
// Any finished run can be opened (it becomes the current run: export, report), exported, or
// turned into the current freeze plan. Like the training panel, it only shows and asks.
class ComparePanel : public QWidget {
  Q_OBJECT

 public:
  // It shows `session`'s compared runs (not owned).
  explicit ComparePanel(const SessionController* session, QWidget* parent = nullptr);

  // The model's blocks become "block:NAME" plans; these are ticked by default with all and auto.
  void setBlocks(const QStringList& blocks);
  QStringList checkedStrategies() const;
  void setCheckedStrategies(const QStringList& strategies);
  void setRunning(bool running);

  // A comparison starts: forget the previous one.
  void clear();
  // The next queued run starts: its curve gets a colour and a legend entry.
  void beginRun(const QString& strategy);
  void onStatus(const QString& message);
  void onEvent(const scalpel::TrainEvent& event);
  // The session's compared run `index` ended.
  void showResult(int index);
  void finish(const QString& message);

  int runCount() const;
  const scalpel::FineTuneRun& run(int row) const;
  QString labelOf(int row) const;  // "only layer1"
  int bestRow() const;  // highest validation accuracy among the finished runs; -1 if none
  int selectedRow() const;
  void selectRow(int row);
  int curveCount() const;              // one validation-accuracy curve per run
  int curvePoints(int curve) const;    // its points so far
  QString curveName(int curve) const;  // its legend entry
  QTableWidget* table() const { return m_table; }
  QString statusText() const;

 Q_SIGNALS:
  void compareRequested(const QStringList& strategies);
  void stopRequested();
  void openRequested(int row);
  void exportRequested(int row);
  void usePlanRequested(int row);

 private:
  void refreshTable();
  void redraw();
  void updateButtons();

  QListWidget* m_plans;
  QPushButton* m_compare;
  QPushButton* m_stop;
  QLabel* m_status;
  QCustomPlot* m_curves;
  QTableWidget* m_table;
  QPushButton* m_open;
  QPushButton* m_export;
  QPushButton* m_usePlan;
  QTimer m_replot;
  const SessionController* m_session;
  bool m_running = false;
};

}  // namespace scalpel::ui
