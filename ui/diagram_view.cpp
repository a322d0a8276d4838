#include "diagram_view.h"

#include <QWheelEvent>
#include <QtMath>

#include "shift_legend.h"

namespace scalpel::ui {

DiagramView::DiagramView(QWidget* parent) : QGraphicsView(parent) {
  setRenderHints(QPainter::Antialiasing | QPainter::TextAntialiasing);
  setDragMode(ScrollHandDrag);
  setTransformationAnchor(AnchorUnderMouse);
  setAlignment(Qt::AlignHCenter | Qt::AlignTop);
  setViewportUpdateMode(SmartViewportUpdate);
  // A child of the view, not of its viewport: scrolling moves the viewport's children.
  m_legend = new ShiftLegend(this);
  m_legend->hide();
}

void DiagramView::resizeEvent(QResizeEvent* event) {
  QGraphicsView::resizeEvent(event);
  placeLegend();
}

void DiagramView::setLegendVisible(bool visible) {
  if (visible == legendVisible()) return;
  setViewportMargins(0, visible ? ShiftLegend::kHeight : 0, 0, 0);
  m_legend->setVisible(visible);
  placeLegend();
}

bool DiagramView::legendVisible() const { return !m_legend->isHidden(); }

void DiagramView::placeLegend() {
  const QRect area = viewport()->geometry();
  m_legend->setGeometry(area.left(), area.top() - ShiftLegend::kHeight, area.width(),
                        ShiftLegend::kHeight);
}

void DiagramView::zoomBy(qreal factor) {
  const qreal next = qBound(0.1, zoom() * factor, 4.0);
  const qreal applied = next / zoom();
  scale(applied, applied);
}

void DiagramView::fitToView() {
  if (!scene()) return;
  const QRectF content = scene()->sceneRect();
  // Fit the width, never magnify, and keep text readable: tall models scroll instead.
  const qreal byWidth = viewport()->width() / content.width();
  const qreal target = qBound(0.5, byWidth, 1.0);
  resetTransform();
  scale(target, target);
  centerOn(content.center().x(), content.top());
}

void DiagramView::wheelEvent(QWheelEvent* event) {
  if (event->modifiers() & Qt::ControlModifier) {
    zoomBy(qPow(1.0015, event->angleDelta().y()));
    event->accept();
    return;
  }
  QGraphicsView::wheelEvent(event);
}

}  // namespace scalpel::ui
