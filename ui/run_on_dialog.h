#pragma once

#include <QDialog>

class QRadioButton;
class QSpinBox;

namespace scalpel::ui {

// Training ▸ Run On…: where Train runs. In this window (one process, the worker thread), or as
// several processes on this machine that train together (scalpel-cli train --nproc: one per GPU
// where there are GPUs, else CPU processes sharing the cores); or, for a cluster, Export Job…
class RunOnDialog : public QDialog {
  Q_OBJECT

 public:
  // `processes`: the current choice (1: in this window); `gpus`: this machine's.
  RunOnDialog(int processes, int gpus, QWidget* parent = nullptr);
  int processes() const;  // 1: in this window

 Q_SIGNALS:
  void exportJobRequested(int processes);

 private:
  QRadioButton* m_window = nullptr;
  QRadioButton* m_several = nullptr;
  QSpinBox* m_processes = nullptr;
};

}  // namespace scalpel::ui
