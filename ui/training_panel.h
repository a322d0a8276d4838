#pragma once

#include <QMap>
#include <QTimer>
#include <QWidget>

#include "core_metatypes.h"

class QCheckBox;
class QComboBox;
class QCPColorMap;
class QCPGraph;
class QCustomPlot;
class QDoubleSpinBox;
class QLabel;
class QProgressBar;
class QPushButton;
class QSpinBox;

namespace scalpel::ui {

// The training panel: strategy and hyper-parameters with the paper's defaults, Train / Pause /
// Stop, a progress bar with the time left, live curves (training loss per step, validation loss
// and accuracy per evaluation), and the before/after result. It only shows and asks: the window
// forwards its edits and requests to the session. Replots are coalesced (40 ms).
class TrainingPanel : public QWidget {
  Q_OBJECT

 public:
  explicit TrainingPanel(QWidget* parent = nullptr);

  QString strategy() const;
  scalpel::TrainOptions options() const;
  // The model's blocks become "block:NAME" strategies.
  void setBlocks(const QStringList& blocks);
  // Every block of the model in order (the rows of the gradient-norm map).
  void setModelBlocks(const QStringList& blocks);
  // Step events drawn in the gradient-norm map so far, and one cell (NaN: frozen or not drawn).
  int gradientSteps() const { return static_cast<int>(m_gradientNorms.size()); }
  double gradientNorm(int step, int block) const;
  void setStrategy(const QString& strategy);
  // What the line above the curves says about the plan: `ticked` of `layers` (modules with
  // parameters) ticked in the diagram, and the blocks the advisor suggests (none before an
  // analysis).
  void setPlanContext(int ticked, int layers, const QStringList& suggested);
  QString planHint() const;  // what Train will train, in words
  void setEpochs(int epochs);
  // The form's fields from saved options (a session); fields the form has no control for keep
  // their saved values in options() too.
  void setOptions(const scalpel::TrainOptions& options);
  bool isRunning() const { return m_running; }
  // "auto", "cpu" or "cuda:N"; one not offered here (a GPU gone) falls back to "auto".
  QString device() const;
  void setDevice(const QString& device);
  void setRunning(bool running);
  // What the idle status line says: what is still to open, or that Train can start.
  void setReadiness(bool model, bool target);
  QString statusText() const;
  QCustomPlot* curves() const { return m_curves; }
  QString resultText() const;
  int trainingPoints() const;    // training-loss points drawn
  int evaluationPoints() const;  // validation points drawn
  int candidateCurves() const;   // candidate runs drawn (strategy auto)
  QString scoreAxisLabel()
      const;  // "validation accuracy (%)", or "validation R² (%)" for regression

 public Q_SLOTS:
  void onStatus(const QString& message);
  // Training ▸ Pause / Resume: the Pause button's toggle, while a run is on.
  void togglePause();
  void onEvent(const scalpel::TrainEvent& event);
  // Strategy auto: an evaluation of a candidate plan's short run, drawn as its own thin curve.
  void onCandidateEvaluated(const QString& candidate, int round, const scalpel::TrainEvent& event);
  void onFinished(const scalpel::FineTuneRun& run, const QString& planError);
  // Shows a finished run (e.g. one opened from the Compare tab): its curves from the report's
  // evaluations (training loss as the mean between them) and its result.
  void showRun(const scalpel::FineTuneRun& run);

 Q_SIGNALS:
  void trainRequested(const QString& strategy, const scalpel::TrainOptions& options);
  void pauseRequested(bool paused);
  void stopRequested();
  void deviceChanged(const QString& device);
  // The form changed (plan, optimiser, rate, epochs, …): strategy() and options() say how.
  void edited();

 private:
  void buildCurves();
  void buildGradientMap();
  // Names the score curve and its axis after the evaluations: accuracy, or R² for regression.
  void nameScore(const Evaluation& evaluation);
  void showPlanHint();
  void redraw();
  void redrawGradients();
  void clearGradients();

  QComboBox* m_strategy;
  QLabel* m_planHint;
  int m_ticked = 0;
  int m_layers = 0;
  QStringList m_suggested;
  scalpel::TrainOptions m_hidden;  // what setOptions() got, for the fields without a control
  bool m_running = false;
  bool m_model = false, m_target = false;  // what setReadiness() was told
  QComboBox* m_optimizer;
  QDoubleSpinBox* m_learningRate;
  QSpinBox* m_epochs;
  QSpinBox* m_batchSize;
  QCheckBox* m_batchNormEval;
  QComboBox* m_device;
  QComboBox* m_precision;
  QCheckBox* m_channelsLast;
  QPushButton* m_train;
  QPushButton* m_pause;
  QPushButton* m_stop;
  QProgressBar* m_progress;
  QLabel* m_status;
  QLabel* m_result;
  QCustomPlot* m_curves;
  // Per-block gradient norm over steps: which parts of the model are learning, and how hard.
  QCustomPlot* m_gradientPlot;
  QCPColorMap* m_gradientMap;
  QStringList m_modelBlocks;
  QVector<QVector<double>> m_gradientNorms;  // per step event: per block (log10; NaN: frozen)
  QVector<double> m_gradientAt;              // the step of each (events come every few steps)
  QTimer m_replot;
  QMap<QString, QCPGraph*> m_candidateCurves;  // "candidate · round N" → its validation curve
};

}  // namespace scalpel::ui
