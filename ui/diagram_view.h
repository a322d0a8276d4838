#pragma once

#include <QGraphicsView>

namespace scalpel::ui {

// A QGraphicsView with zoom (Ctrl+wheel, menu), pan (drag the background) and fit-to-view.
class DiagramView : public QGraphicsView {
  Q_OBJECT

 public:
  explicit DiagramView(QWidget* parent = nullptr);

  void zoomBy(qreal factor);
  void fitToView();
  qreal zoom() const { return transform().m11(); }

 protected:
  void wheelEvent(QWheelEvent* event) override;
};

}  // namespace scalpel::ui
