#include "data_dialog.h"

#include <QComboBox>
#include <QDialogButtonBox>
#include <QFileDialog>
#include <QFormLayout>
#include <QHBoxLayout>
#include <QImage>
#include <QLabel>
#include <QLineEdit>
#include <QPixmap>
#include <QPushButton>
#include <QSpinBox>
#include <QVBoxLayout>

#include "data/shifts.h"

namespace scalpel::ui {

DataDialog::DataDialog(QWidget* parent) : QDialog(parent) {
  setWindowTitle("Open Data");
  m_role = new QComboBox(this);
  m_role->addItem("Target — your data, to analyse and tune on", true);
  m_role->addItem("Source — what the model was trained on (reference)", false);
  m_reader = new QComboBox(this);
  m_reader->addItem("Fashion-MNIST (built in, IDX)", FashionMnist);
  m_reader->addItem("IDX images file (MNIST style)", IdxFile);
  m_reader->addItem("Image folder (one subfolder per class)", ImageFolder);
  m_reader->addItem("CSV table (label in the last column, or columns to predict)", CsvTable);
  m_path = new QLineEdit(this);
  m_path->setPlaceholderText("Type a path, or pick one with Browse…");
  m_browse = new QPushButton("Browse…", this);
  auto* pathRow = new QHBoxLayout;
  pathRow->addWidget(m_path, 1);
  pathRow->addWidget(m_browse);
  m_split = new QComboBox(this);
  m_split->addItems({"test", "train"});
  m_regress = new QLineEdit(this);
  m_regress->setObjectName("regressionTargets");
  m_regress->setPlaceholderText("empty: classify by the label in the last column");
  m_regress->setToolTip(
      "Regression: the numeric columns of the CSV to predict, by their header names, separated by "
      "commas. "
      "The model needs one output per column; it is trained with mean squared error and scored by "
      "R².");
  m_shift = new QComboBox(this);
  m_shift->addItem("none (the data as it is)", QString());
  for (const auto& shift : shiftCatalogue()) {
    if (shift.level == ShiftLevel::Feature)
      continue;  // sub-population shifts need class groups (CLI sweep)
    m_shift->addItem(
        QStringLiteral("%1 (%2)").arg(QString::fromStdString(shift.name),
                                      QString::fromStdString(shiftLevelName(shift.level))),
        QString::fromStdString(shift.name));
    m_shift->setItemData(m_shift->count() - 1, QString::fromStdString(shift.description),
                         Qt::ToolTipRole);
  }
  m_severity = new QSpinBox(this);
  m_severity->setRange(1, 5);
  m_severity->setValue(3);
  m_shiftHelp = new QLabel(this);
  m_shiftHelp->setWordWrap(true);
  m_shiftHelp->setStyleSheet("color: #555");

  auto* form = new QFormLayout;
  form->addRow("Use as", m_role);
  form->addRow("Reader", m_reader);
  form->addRow("File or folder", pathRow);
  form->addRow("Split", m_split);
  form->addRow("Columns to predict", m_regress);
  form->addRow("Synthetic shift", m_shift);
  form->addRow("Severity (1–5)", m_severity);
  form->addRow(m_shiftHelp);

  m_previewButton = new QPushButton("Preview", this);
  m_previewButton->setToolTip(
      "Load the data on the worker and show clean samples over shifted ones");
  m_preview = new QLabel(this);
  m_preview->setObjectName("dataPreview");
  m_preview->setMinimumHeight(130);
  m_preview->setAlignment(Qt::AlignCenter);
  m_preview->setFrameShape(QFrame::StyledPanel);
  m_summary = new QLabel(this);
  m_summary->setWordWrap(true);
  m_buttons = new QDialogButtonBox(QDialogButtonBox::Open | QDialogButtonBox::Cancel, this);

  auto* layout = new QVBoxLayout(this);
  layout->addLayout(form);
  layout->addWidget(m_previewButton, 0, Qt::AlignLeft);
  layout->addWidget(m_preview, 1);
  layout->addWidget(m_summary);
  layout->addWidget(m_buttons);
  resize(620, 560);

  connect(m_browse, &QPushButton::clicked, this, &DataDialog::browse);
  for (auto* box : {m_role, m_reader, m_split, m_shift}) {
    connect(box, &QComboBox::currentIndexChanged, this, &DataDialog::updateControls);
  }
  connect(m_severity, &QSpinBox::valueChanged, this, &DataDialog::updateControls);
  connect(m_path, &QLineEdit::textChanged, this, &DataDialog::updateControls);
  connect(m_regress, &QLineEdit::textChanged, this, &DataDialog::updateControls);
  connect(m_previewButton, &QPushButton::clicked, this, [this] {
    QString problem;
    const auto chosen = request(&problem);
    if (!problem.isEmpty()) {
      m_summary->setText(problem);
      return;
    }
    m_summary->setText("Loading a preview …");
    Q_EMIT previewRequested(chosen);
  });
  connect(m_buttons, &QDialogButtonBox::accepted, this, [this] {
    QString problem;
    request(&problem);
    if (problem.isEmpty())
      accept();
    else
      m_summary->setText(problem);
  });
  connect(m_buttons, &QDialogButtonBox::rejected, this, &QDialog::reject);
  updateControls();
}

bool DataDialog::isTarget() const { return m_role->currentData().toBool(); }

void DataDialog::setTarget(bool target) { m_role->setCurrentIndex(target ? 0 : 1); }

void DataDialog::setReader(Reader reader, const QString& path) {
  m_reader->setCurrentIndex(m_reader->findData(reader));
  m_path->setText(path);
}

void DataDialog::setShift(const QString& name, int severity) {
  const int index = m_shift->findData(name);
  m_shift->setCurrentIndex(index >= 0 ? index : 0);
  m_severity->setValue(severity);
}

DataRequest DataDialog::request(QString* problem) const {
  DataRequest chosen;
  const auto reader = static_cast<Reader>(m_reader->currentData().toInt());
  chosen.source = reader == FashionMnist ? std::string("fashion-mnist")
                                         : m_path->text().trimmed().toStdString();
  chosen.split = m_split->currentText().toStdString();
  chosen.shift = m_shift->currentData().toString().toStdString();
  chosen.severity = m_severity->value();
  if (reader == CsvTable) {
    for (const auto& column : m_regress->text().split(',', Qt::SkipEmptyParts)) {
      if (!column.trimmed().isEmpty())
        chosen.regressionTargets.push_back(column.trimmed().toStdString());
    }
  }
  if (problem) {
    *problem = reader != FashionMnist && chosen.source.empty()
                   ? QStringLiteral("Choose a file or folder with Browse… first.")
                   : QString();
  }
  return chosen;
}

void DataDialog::browse() {
  const auto reader = static_cast<Reader>(m_reader->currentData().toInt());
  QString chosen;
  if (reader == ImageFolder) {
    chosen = QFileDialog::getExistingDirectory(
        this, "An image folder: one subfolder of images per class");
  } else if (reader == IdxFile) {
    chosen = QFileDialog::getOpenFileName(
        this, "An IDX images file (its labels file beside it)", {},
        "IDX images (*images-idx3-ubyte *images-idx3-ubyte.gz);;All files (*)");
  } else if (reader == CsvTable) {
    chosen =
        QFileDialog::getOpenFileName(this, "A CSV table", {}, "CSV files (*.csv);;All files (*)");
  }
  if (!chosen.isEmpty()) m_path->setText(chosen);
}

void DataDialog::updateControls() {
  const auto reader = static_cast<Reader>(m_reader->currentData().toInt());
  m_path->setEnabled(reader != FashionMnist);
  m_browse->setEnabled(reader != FashionMnist);
  m_split->setEnabled(reader == FashionMnist);
  m_regress->setEnabled(reader == CsvTable);
  const auto* shift = findShift(m_shift->currentData().toString().toStdString());
  m_severity->setEnabled(shift && shift->usesSeverity);
  m_shiftHelp->setText(shift ? QString::fromStdString(shift->description)
                             : QStringLiteral("A synthetic shift makes a target to try Scalpel on: "
                                              "pick one to see what each kind of shift does."));
  if (!m_previewed.empty() && m_previewed != request().describe()) {  // the choice moved on
    m_previewed.clear();
    m_preview->clear();
    m_summary->clear();
  }
}

bool DataDialog::hasPreview() const { return !m_previewed.empty(); }

void DataDialog::showPreview(const DataSummary& summary) {
  if (summary.description != request().describe()) return;  // a preview of an older choice
  if (!summary.ok) {
    m_summary->setText(QString::fromStdString(summary.error));
    return;
  }
  const QImage image(summary.preview.pixels.data(), summary.preview.width, summary.preview.height,
                     summary.preview.width * 3, QImage::Format_RGB888);
  m_preview->setPixmap(QPixmap::fromImage(image.copy()));
  m_previewed = summary.description;
  QString text = QStringLiteral("<b>%1</b>: %2 items, %3")
                     .arg(QString::fromStdString(summary.description).toHtmlEscaped())
                     .arg(summary.items)
                     .arg(QString::fromStdString(summary.labelling()).toHtmlEscaped());
  if (summary.preview.height > 0 && !m_shift->currentData().toString().isEmpty())
    text += " — top row clean, bottom row shifted";
  for (const auto& warning : summary.warnings)
    text += "<br>⚠ " + QString::fromStdString(warning).toHtmlEscaped();
  m_summary->setText(text);
}

}  // namespace scalpel::ui
