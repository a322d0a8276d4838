#include "layer_row_item.h"

#include <QGraphicsSceneMouseEvent>
#include <QPainter>
#include <QStyleOptionGraphicsItem>

#include "diagram_style.h"
#include "freeze_state.h"
#include "layer_diagram_scene.h"

namespace scalpel::ui {

LayerRowItem::LayerRowItem(const LayerTree* tree, int nodeIndex, qreal width, QGraphicsItem* parent)
    : QGraphicsObject(parent), m_tree(tree), m_nodeIndex(nodeIndex), m_width(width) {
  const auto& node = m_tree->node(nodeIndex);
  setFlag(ItemIsSelectable);
  m_baseToolTip =
      (QStringLiteral("<b>%1</b><br>%2<br>%3 parameters (%4 own)<br>output %5%6")
           .arg(QString::fromStdString(node.name), QString::fromStdString(node.typeName),
                QString::number(node.totalParameters), QString::number(node.ownParameters),
                QString::fromStdString(formatShape(node.outputShape)),
                node.callCount > 1    ? QStringLiteral("<br>called %1 times").arg(node.callCount)
                : node.callCount == 0 ? QStringLiteral("<br>never called by forward")
                                      : QString()));
  setToolTip(m_baseToolTip);
}

void LayerRowItem::refreshScores() {
  auto* diagram = qobject_cast<LayerDiagramScene*>(scene());
  const QString scores = diagram ? diagram->scoreText(m_nodeIndex) : QString();
  setToolTip(scores.isEmpty() ? m_baseToolTip : m_baseToolTip + "<br>" + scores);
  update();
}

QRectF LayerRowItem::boundingRect() const { return {0, 0, m_width, DiagramStyle::kRowHeight}; }

void LayerRowItem::paint(QPainter* painter, const QStyleOptionGraphicsItem*, QWidget*) {
  const auto& node = m_tree->node(m_nodeIndex);
  const QRectF row = boundingRect();
  if (isSelected()) painter->fillRect(row, DiagramStyle::selection().lighter(175));
  auto* diagram = qobject_cast<LayerDiagramScene*>(scene());
  if (diagram) DiagramStyle::paintShiftStripe(painter, row, diagram->shiftLevel(m_nodeIndex));
  painter->setFont(DiagramStyle::bodyFont());
  const qreal indent = DiagramStyle::kPadding + (node.depth - 2) * DiagramStyle::kIndent;
  const qreal typeX = m_width * 0.36;
  const qreal paramsX = m_width * 0.66;
  const qreal shapeX = m_width * 0.76;
  painter->setPen(node.callCount == 0 ? DiagramStyle::mutedText() : DiagramStyle::text());
  const auto textRect = [&](qreal from, qreal to) {
    return QRectF(from, 0, to - from - 4, DiagramStyle::kRowHeight);
  };
  const int flags = Qt::AlignVCenter | Qt::AlignLeft;
  painter->drawText(textRect(indent, typeX), flags, QString::fromStdString(node.shortName()));
  painter->drawText(textRect(typeX, paramsX), flags, QString::fromStdString(node.typeName));
  painter->setPen(DiagramStyle::mutedText());
  painter->drawText(textRect(paramsX, shapeX), Qt::AlignVCenter | Qt::AlignRight,
                    node.totalParameters ? QString::fromStdString(formatCount(node.totalParameters))
                                         : QStringLiteral("–"));
  painter->drawText(textRect(shapeX + 8, m_width - 28), flags,
                    QString::fromStdString(formatShape(node.outputShape)));
  if (diagram && diagram->freezeState() && node.totalParameters > 0) {
    DiagramStyle::paintFreezeMark(painter,
                                  DiagramStyle::freezeMarkRect(m_width, DiagramStyle::kRowHeight),
                                  diagram->freezeState()->stateOf(m_nodeIndex));
  }
}

void LayerRowItem::mousePressEvent(QGraphicsSceneMouseEvent* event) {
  QGraphicsObject::mousePressEvent(event);
  const auto& node = m_tree->node(m_nodeIndex);
  auto* diagram = qobject_cast<LayerDiagramScene*>(scene());
  if (diagram && diagram->freezeState() && node.totalParameters > 0 &&
      DiagramStyle::freezeMarkRect(m_width, DiagramStyle::kRowHeight).contains(event->pos())) {
    Q_EMIT diagram->freezeToggleRequested(
        {m_nodeIndex}, diagram->freezeState()->stateOf(m_nodeIndex) != Qt::Checked,
        QString::fromStdString(node.name));
    return;
  }
  Q_EMIT selected(m_nodeIndex);
}

}  // namespace scalpel::ui
