#include "diagram_style.h"

#include <QApplication>

#include <QPainter>
#include <QPainterPath>
#include <cmath>

#include "shift_scale.h"

namespace scalpel::ui {

QRectF DiagramStyle::freezeMarkRect(qreal width, qreal height) {
  const qreal size = std::min<qreal>(18, height - 4);
  return {width - kPadding - size, (std::min(height, kHeaderHeight) - size) / 2, size, size};
}

void DiagramStyle::paintFreezeMark(QPainter* painter, const QRectF& rect, Qt::CheckState state) {
  const QColor trains(0x2c, 0xa0, 0x2c), frozen(0x8a, 0x94, 0xa0);
  painter->save();
  painter->setRenderHint(QPainter::Antialiasing);
  QPainterPath box;
  box.addRoundedRect(rect, 3, 3);
  if (state == Qt::PartiallyChecked) {
    painter->fillPath(box, frozen);
    painter->setClipRect(QRectF(rect.left(), rect.top(), rect.width() / 2, rect.height()));
    painter->fillPath(box, trains);
    painter->setClipping(false);
  } else {
    painter->fillPath(box, state == Qt::Checked ? trains : frozen);
  }
  painter->setPen(QPen(Qt::white, rect.width() / 9, Qt::SolidLine, Qt::RoundCap, Qt::RoundJoin));
  const auto at = [&](qreal x, qreal y) {
    return QPointF(rect.left() + x * rect.width(), rect.top() + y * rect.height());
  };
  if (state == Qt::Checked) {
    painter->drawPolyline(QPolygonF({at(0.25, 0.52), at(0.43, 0.70), at(0.76, 0.32)}));
  } else {  // a padlock: shackle and body
    painter->setBrush(Qt::NoBrush);
    painter->drawArc(QRectF(at(0.33, 0.18), at(0.67, 0.58)), 0, 180 * 16);
    painter->setPen(Qt::NoPen);
    painter->setBrush(Qt::white);
    painter->drawRect(QRectF(at(0.25, 0.42), at(0.75, 0.80)));
  }
  painter->restore();
}

QColor DiagramStyle::blockFill(int blockIndex) {
  // Two soft alternating tints separate neighbouring blocks; shift colours come later on top.
  return blockIndex % 2 == 0 ? QColor(0xee, 0xf3, 0xf9) : QColor(0xf6, 0xf1, 0xe8);
}

QFont DiagramStyle::titleFont() {
  QFont font = QApplication::font();
  font.setBold(true);
  font.setPointSizeF(font.pointSizeF() * 1.1);
  return font;
}

QFont DiagramStyle::bodyFont() { return QApplication::font(); }

void DiagramStyle::paintShiftStripe(QPainter* painter, const QRectF& rect, double level) {
  if (std::isnan(level)) return;
  painter->fillRect(QRectF(rect.left(), rect.top(), kStripeWidth, rect.height()),
                    ShiftScale::colour(level));
}

}  // namespace scalpel::ui
