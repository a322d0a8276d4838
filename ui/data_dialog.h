#pragma once

#include <QDialog>

#include <vector>

#include "core_metatypes.h"

class QComboBox;
class QDialogButtonBox;
class QLabel;
class QLineEdit;
class QPushButton;
class QSpinBox;

namespace scalpel::ui {

// File ▸ Open Data…: which data (a reader: Fashion-MNIST built in, an IDX file, an image folder,
// a CSV table), whether it is the target (the analyst's data) or the source (what the model was
// trained on), and, for trying Scalpel out, a synthetic shift with its severity. Preview loads it
// on the worker and shows clean samples over shifted ones before anything is replaced.
class DataDialog : public QDialog {
  Q_OBJECT

 public:
  enum Reader { FashionMnist, IdxFile, ImageFolder, CsvTable };

  explicit DataDialog(QWidget* parent = nullptr);

  // The data as chosen; "" in `problem` or what is missing (e.g. no file chosen).
  scalpel::DataRequest request(QString* problem = nullptr) const;
  bool isTarget() const;
  void setTarget(bool target);
  void setReader(Reader reader, const QString& path = {});
  void setShift(const QString& name, int severity);
  // Shows a preview that the worker loaded (ignored if the choice changed since).
  void showPreview(const scalpel::DataSummary& summary);
  bool hasPreview() const;
  // The model's preprocessing (ModelMetadata presets): "" keeps what the model stores, which
  // `stored` describes; "custom" also takes mean() and stdev().
  void setPreprocessing(const QString& preset, const QString& stored);
  QString preprocessing() const;
  std::vector<double> mean() const;
  std::vector<double> stdev() const;

 Q_SIGNALS:
  void previewRequested(const scalpel::DataRequest& request);

 private:
  void browse();
  void updateControls();  // enables what the chosen reader and shift use; drops a stale preview

  QComboBox* m_role;
  QComboBox* m_reader;
  QLineEdit* m_path;
  QPushButton* m_browse;
  QComboBox* m_split;
  QLineEdit* m_regress;  // CSV: the columns to predict (regression)
  QComboBox* m_shift;
  QSpinBox* m_severity;
  QLabel* m_shiftHelp;
  QComboBox* m_preprocessing;
  QLineEdit* m_mean;
  QLineEdit* m_std;
  QPushButton* m_previewButton;
  QLabel* m_preview;
  QLabel* m_summary;
  QDialogButtonBox* m_buttons;
  std::string m_previewed;  // describe() of the request the preview shows
};

}  // namespace scalpel::ui
