#include "run_on_dialog.h"

#include <QDialogButtonBox>
#include <QHBoxLayout>
#include <QLabel>
#include <QPushButton>
#include <QRadioButton>
#include <QSpinBox>
#include <QVBoxLayout>

namespace scalpel::ui {

RunOnDialog::RunOnDialog(int processes, int gpus, QWidget* parent) : QDialog(parent) {
  setWindowTitle("Run Training On");
  auto* layout = new QVBoxLayout(this);
  m_window =
      new QRadioButton("In this window: one process (CUDA when available, else every CPU core)");
  m_window->setObjectName("inThisWindow");
  m_several = new QRadioButton("Several processes on this machine, training together:");
  m_several->setObjectName("severalProcesses");
  m_processes = new QSpinBox;
  m_processes->setObjectName("processes");
  m_processes->setRange(2, 256);
  m_processes->setValue(processes > 1 ? processes : std::max(2, gpus));
  auto* several = new QHBoxLayout;
  several->addWidget(m_several);
  several->addWidget(m_processes);
  several->addStretch();
  layout->addWidget(m_window);
  layout->addLayout(several);
  auto* note =
      new QLabel(gpus > 0 ? QString("This machine has %1 GPU%2: one process per GPU uses them all.")
                                .arg(gpus)
                                .arg(gpus > 1 ? "s" : "")
                          : QString("No GPU here: the processes share the CPU cores (each takes "
                                    "its share of every batch; the batch size must be a "
                                    "multiple of the number of processes)."));
  note->setWordWrap(true);
  layout->addWidget(note);
  auto* cluster = new QLabel(
      "For a cluster or another machine, <b>Export Job…</b> writes a folder with the model, the "
      "data, this "
      "session and launch scripts for torchrun and Slurm; Training ▸ Open Job Results… brings its "
      "results back.");
  cluster->setWordWrap(true);
  layout->addWidget(cluster);
  (processes > 1 ? m_several : m_window)->setChecked(true);
  m_processes->setEnabled(processes > 1);
  connect(m_several, &QRadioButton::toggled, m_processes, &QSpinBox::setEnabled);

  auto* buttons = new QDialogButtonBox(QDialogButtonBox::Ok | QDialogButtonBox::Cancel);
  auto* exportJob = buttons->addButton("Export Job…", QDialogButtonBox::ActionRole);
  exportJob->setObjectName("exportJob");
  connect(buttons, &QDialogButtonBox::accepted, this, &QDialog::accept);
  connect(buttons, &QDialogButtonBox::rejected, this, &QDialog::reject);
  connect(exportJob, &QPushButton::clicked, this, [this] {
    Q_EMIT exportJobRequested(m_processes->value());
    reject();
  });
  layout->addWidget(buttons);
}

int RunOnDialog::processes() const { return m_several->isChecked() ? m_processes->value() : 1; }

}  // namespace scalpel::ui
