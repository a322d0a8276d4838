#pragma once

#include <QGraphicsView>

namespace scalpel::ui {

class ShiftLegend;

// A QGraphicsView with zoom (Ctrl+wheel, menu), pan (drag the background) and fit-to-view.
class DiagramView : public QGraphicsView {
  Q_OBJECT

 public:
  explicit DiagramView(QWidget* parent = nullptr);

  void zoomBy(qreal factor);
  void fitToView();
  qreal zoom() const { return transform().m11(); }
  // The shift colour key, a line above the diagram; hidden until there are scores to read.
  void setLegendVisible(bool visible);
  bool legendVisible() const;

 protected:
  void wheelEvent(QWheelEvent* event) override;
  void resizeEvent(QResizeEvent* event) override;

 private:
  void placeLegend();
  ShiftLegend* m_legend;
};

}  // namespace scalpel::ui
