#pragma once

#include <QTextBrowser>

namespace scalpel::ui {

class SessionController;

// The details pane beside the diagram: with no model, what to open; for the model, its summary,
// the diagnosis and the suggestion, and the data with its previews; for a layer, its details.
// It reads the session and shows it; it keeps nothing of its own.
class DetailsPane : public QTextBrowser {
  Q_OBJECT

 public:
  explicit DetailsPane(const SessionController* session, QWidget* parent = nullptr);

  // The model (node 0) or one of its layers; the data alone when no model is open.
  void showNode(int node);
  void showWelcome();
  // The diagnosis and the suggestion in view, not the model's summary.
  void scrollToDiagnosis();

 private:
  QString modelHtml() const;
  QString layerHtml(int node) const;
  QString diagnosisHtml() const;
  QString dataHtml(bool target) const;
  void addPreviews();

  const SessionController* m_session;
};

}  // namespace scalpel::ui
