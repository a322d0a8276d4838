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
#include <QRegularExpression>
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

  m_preprocessing = new QComboBox(this);
  m_preprocessing->setObjectName("preprocessing");
  m_preprocessing->addItem("As stored with the model", QString());
  m_preprocessing->addItem("ImageNet: resize 256, centre crop 224, ImageNet mean and std",
                           "imagenet");
  m_preprocessing->addItem("None: pixels from 0 to 1", "none");
  m_preprocessing->addItem("From the source data: its mean and std per channel", "source");
  m_preprocessing->addItem("Custom mean and std", "custom");
  m_preprocessing->setToolTip(
      "How images are normalised before the model sees them. A model trained on ImageNet that "
      "gets other pixels shows a large input-level shift that is only a preprocessing mismatch. "
      "Grey and RGB are converted, and images scaled to the model's input, whatever is chosen.");
  m_mean = new QLineEdit(this);
  m_mean->setObjectName("preprocessingMean");
  m_mean->setPlaceholderText("e.g. 0.485, 0.456, 0.406");
  m_std = new QLineEdit(this);
  m_std->setObjectName("preprocessingStd");
  m_std->setPlaceholderText("e.g. 0.229, 0.224, 0.225");

  auto* form = new QFormLayout;
  form->addRow("Use as", m_role);
  form->addRow("Reader", m_reader);
  form->addRow("File or folder", pathRow);
  form->addRow("Split", m_split);
  form->addRow("Columns to predict", m_regress);
  form->addRow("Synthetic shift", m_shift);
  form->addRow("Severity (1–5)", m_severity);
  form->addRow(m_shiftHelp);
  form->addRow("Model preprocessing", m_preprocessing);
  form->addRow("Mean (custom)", m_mean);
  form->addRow("Std (custom)", m_std);

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
  connect(m_preprocessing, &QComboBox::currentIndexChanged, this, [this] {
    const bool custom = preprocessing() == "custom";
    m_mean->setEnabled(custom);
    m_std->setEnabled(custom);
  });
  m_mean->setEnabled(false);
  m_std->setEnabled(false);
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
    if (problem.isEmpty() && preprocessing() == "custom" &&
        (mean().empty() || mean().size() != stdev().size())) {
      problem =
          "Custom preprocessing needs a mean and a std for each channel (or one for all), "
          "as numbers separated by commas";
    }
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

void DataDialog::setPreprocessing(const QString& preset, const QString& stored) {
  m_preprocessing->setItemText(0, "As stored with the model: " + stored);
  const int index = m_preprocessing->findData(preset);
  m_preprocessing->setCurrentIndex(std::max(0, index));
}

QString DataDialog::preprocessing() const { return m_preprocessing->currentData().toString(); }

namespace {

std::vector<double> numbers(const QString& text) {
  std::vector<double> values;
  for (const auto& part : text.split(QRegularExpression("[,\\s/]+"), Qt::SkipEmptyParts)) {
    bool ok = false;
    const double value = part.toDouble(&ok);
    if (!ok) return {};
    values.push_back(value);
  }
  return values;
}

}  // namespace

std::vector<double> DataDialog::mean() const { return numbers(m_mean->text()); }
std::vector<double> DataDialog::stdev() const { return numbers(m_std->text()); }

}  // namespace scalpel::ui
