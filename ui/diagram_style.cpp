#include "diagram_style.h"

#include <QApplication>

namespace scalpel::ui {

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

}  // namespace scalpel::ui
