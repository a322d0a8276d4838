#pragma once

#include <QColor>
#include <QFont>
#include <QRectF>

class QPainter;

namespace scalpel::ui {

// Sizes and colours shared by the diagram's items, in one place so they stay consistent.
struct DiagramStyle {
  static constexpr qreal kBlockWidth = 580;
  static constexpr qreal kHeaderHeight = 52;
  static constexpr qreal kRowHeight = 21;
  static constexpr qreal kBlockGap = 26;  // vertical space between blocks, holds the arrow
  static constexpr qreal kIndent = 16;
  static constexpr qreal kPadding = 10;

  static QColor blockFill(int blockIndex);
  static QColor border() { return QColor(0x5f, 0x6b, 0x7a); }
  static QColor selection() { return QColor(0x1f, 0x6f, 0xd1); }
  static QColor suggestion() {
    return QColor(0xc2, 0x41, 0x0c);
  }  // the advisor's plan: orange, apart from selection blue
  static QColor text() { return QColor(0x1d, 0x23, 0x2b); }
  static QColor mutedText() { return QColor(0x55, 0x5f, 0x6b); }
  static QFont titleFont();
  static QFont bodyFont();
  // The trains/frozen mark at the right of a block or row: a green tick (trains), a grey
  // padlock (frozen), half of each (partly). `rect` is where clicking toggles it.
  static QRectF freezeMarkRect(qreal width, qreal height);
  static void paintFreezeMark(QPainter* painter, const QRectF& rect, Qt::CheckState state);
  // A node's shift: a stripe of ShiftScale's colour along the left edge of `rect` (nothing for
  // NaN, not measured).
  static constexpr qreal kStripeWidth = 7;
  static void paintShiftStripe(QPainter* painter, const QRectF& rect, double level);
};

}  // namespace scalpel::ui
