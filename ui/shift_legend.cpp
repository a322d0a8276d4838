#include "shift_legend.h"

#include <QLinearGradient>
#include <QPainter>

#include "diagram_style.h"
#include "shift_scale.h"

namespace scalpel::ui {

ShiftLegend::ShiftLegend(QWidget* parent) : QWidget(parent) {
  setToolTip(
      "Each block and layer has a stripe on its left in the colour of its shift: how far the "
      "target data moved its activations, as a multiple of the noise floor (the score "
      "sampling error alone would give). No stripe: not measured.");
}

void ShiftLegend::paintEvent(QPaintEvent*) {
  QPainter painter(this);
  painter.fillRect(rect(), QColor(0xf2, 0xf4, 0xf7));
  painter.setPen(QPen(DiagramStyle::border(), 0.6));
  painter.drawLine(0, height() - 1, width(), height() - 1);
  painter.setFont(DiagramStyle::bodyFont());
  painter.setPen(DiagramStyle::text());
  const QString title = "Stripe colour = shift ÷ noise floor:";
  const int titleWidth = painter.fontMetrics().horizontalAdvance(title);
  painter.drawText(QRect(10, 0, titleWidth, height()), Qt::AlignVCenter, title);

  const QRectF bar(titleWidth + 24, 6, 180, 10);
  QLinearGradient gradient(bar.topLeft(), bar.topRight());
  const auto& stops = ShiftScale::stops();
  for (int i = 0; i < stops.size(); ++i)
    gradient.setColorAt(double(i) / (stops.size() - 1), stops[i]);
  painter.fillRect(bar, gradient);
  painter.setPen(DiagramStyle::mutedText());
  QFont small = DiagramStyle::bodyFont();
  small.setPointSizeF(small.pointSizeF() * 0.85);
  painter.setFont(small);
  const char* labels[] = {"1×", "10×", "100×", "1000×"};
  for (int decade = 0; decade <= 3; ++decade) {
    const qreal x = bar.left() + bar.width() * decade / ShiftScale::kMaxDecades;
    painter.drawText(QRectF(x - 24, bar.bottom(), 48, height() - bar.bottom()), Qt::AlignCenter,
                     labels[decade]);
  }
  painter.setFont(DiagramStyle::bodyFont());
  // A narrow diagram pane has no room for the key's last part: the tooltip says it too, so it is
  // left out whole rather than cut mid-word.
  const QString unmeasured = "no stripe: not measured";
  const QRectF rest(bar.right() + 30, 0, width() - bar.right() - 40, height());
  if (painter.fontMetrics().horizontalAdvance(unmeasured) <= rest.width())
    painter.drawText(rest, Qt::AlignVCenter, unmeasured);
}

}  // namespace scalpel::ui
