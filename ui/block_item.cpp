#include "block_item.h"

#include <QGraphicsSceneMouseEvent>
#include <QPainter>
#include <QPainterPath>

#include <limits>

#include "diagram_style.h"
#include "freeze_state.h"
#include "layer_diagram_scene.h"
#include "layer_row_item.h"

namespace scalpel::ui {

BlockItem::BlockItem(const LayerTree* tree, int blockIndex, QGraphicsItem* parent)
    : QGraphicsObject(parent), m_tree(tree), m_blockIndex(blockIndex) {
  m_listed = listedNodes();
  m_title = title();
  m_subtitle = subtitle();
  setFlag(ItemIsSelectable);
  m_baseToolTip =
      QStringLiteral("<b>%1</b><br>%2%3")
          .arg(m_title.toHtmlEscaped(), m_subtitle.toHtmlEscaped(),
               m_listed.empty() ? QString()
                                : QStringLiteral("<br>Double-click or click ▸ to show its layers"));
  setToolTip(m_baseToolTip);
}

bool BlockItem::diagramSuggests() const {
  auto* diagram = qobject_cast<LayerDiagramScene*>(scene());
  return diagram && diagram->isSuggested(m_blockIndex);
}

double BlockItem::shiftLevel() const {
  auto* diagram = qobject_cast<LayerDiagramScene*>(scene());
  return diagram ? diagram->blockShiftLevel(m_blockIndex)
                 : std::numeric_limits<double>::quiet_NaN();
}

void BlockItem::refreshScores() {
  auto* diagram = qobject_cast<LayerDiagramScene*>(scene());
  const auto& members = m_tree->blocks().at(static_cast<size_t>(m_blockIndex)).members;
  const QString scores = !diagram              ? QString()
                         : members.size() == 1 ? diagram->scoreText(members.front())
                                               : diagram->blockScoreText(m_blockIndex);
  setToolTip(scores.isEmpty() ? m_baseToolTip : m_baseToolTip + "<br>" + scores);
  for (auto* row : m_rows) row->refreshScores();
  update();
}

std::vector<int> BlockItem::listedNodes() const {
  const auto& members = m_tree->blocks().at(static_cast<size_t>(m_blockIndex)).members;
  std::vector<int> nodes;
  for (int member : members) {
    auto subtree = m_tree->subtree(member);
    nodes.insert(nodes.end(), subtree.begin() + (members.size() == 1 ? 1 : 0), subtree.end());
  }
  return nodes;
}

QString BlockItem::title() const {
  const auto& block = m_tree->blocks().at(static_cast<size_t>(m_blockIndex));
  QString types;
  for (int member : block.members) {
    types += (types.isEmpty() ? "" : " + ") + QString::fromStdString(m_tree->node(member).typeName);
  }
  return QStringLiteral("%1   %2").arg(QString::fromStdString(block.name), types);
}

QString BlockItem::subtitle() const {
  const auto& block = m_tree->blocks().at(static_cast<size_t>(m_blockIndex));
  const auto& last = m_tree->node(block.members.back());
  const auto layers = m_listed.size();
  return QStringLiteral("%1 parameters  ·  %2  ·  output %3")
      .arg(QString::fromStdString(formatCount(block.totalParameters)),
           layers ? QStringLiteral("%1 layers inside").arg(layers) : QStringLiteral("one layer"),
           QString::fromStdString(formatShape(last.outputShape)));
}

void BlockItem::setExpanded(bool expanded) {
  if (expanded == m_expanded) return;
  prepareGeometryChange();
  m_expanded = expanded;
  qDeleteAll(m_rows);
  m_rows.clear();
  if (m_expanded) {
    qreal y = DiagramStyle::kHeaderHeight;
    for (int node : m_listed) {
      auto* row = new LayerRowItem(m_tree, node, DiagramStyle::kBlockWidth, this);
      row->setPos(0, y);
      y += DiagramStyle::kRowHeight;
      connect(row, &LayerRowItem::selected, this, &BlockItem::selected);
      row->refreshScores();
      m_rows.push_back(row);
    }
  }
  update();
  Q_EMIT expandedChanged();
}

QRectF BlockItem::expanderRect() const {
  return {0, 0, DiagramStyle::kPadding + 22, DiagramStyle::kHeaderHeight};
}

QRectF BlockItem::boundingRect() const {
  const qreal rows = m_expanded ? m_rows.size() * DiagramStyle::kRowHeight + 6 : 0;
  return {0, 0, DiagramStyle::kBlockWidth, DiagramStyle::kHeaderHeight + rows};
}

void BlockItem::paint(QPainter* painter, const QStyleOptionGraphicsItem*, QWidget*) {
  painter->setRenderHint(QPainter::Antialiasing);
  const QRectF box = boundingRect().adjusted(0.5, 0.5, -0.5, -0.5);
  QPainterPath outline;
  outline.addRoundedRect(box, 7, 7);
  painter->fillPath(outline, DiagramStyle::blockFill(m_blockIndex));
  painter->save();
  painter->setClipPath(outline);
  DiagramStyle::paintShiftStripe(
      painter, QRectF(box.left(), box.top(), 0, DiagramStyle::kHeaderHeight), shiftLevel());
  painter->restore();
  painter->setPen(QPen(isSelected() ? DiagramStyle::selection() : DiagramStyle::border(),
                       isSelected() ? 2.2 : 1.0));
  painter->drawPath(outline);
  if (diagramSuggests()) {  // the advisor's plan: a dashed accent outline and a tag
    painter->setPen(QPen(DiagramStyle::suggestion(), 2.2, Qt::DashLine));
    painter->setBrush(Qt::NoBrush);
    painter->drawRoundedRect(box.adjusted(1.5, 1.5, -1.5, -1.5), 6,
                             6);  // inside: items paint within their bounds
    const QRectF tag(DiagramStyle::kBlockWidth - 150, 4, 100, 16);
    painter->setPen(DiagramStyle::suggestion());
    painter->setFont(DiagramStyle::bodyFont());
    painter->drawText(tag, Qt::AlignRight | Qt::AlignVCenter, "suggested: train");
  }
  if (m_expanded) {
    painter->setPen(QPen(DiagramStyle::border(), 0.6));
    painter->drawLine(QPointF(6, DiagramStyle::kHeaderHeight),
                      QPointF(box.right() - 6, DiagramStyle::kHeaderHeight));
  }

  const bool hasLayers = !m_listed.empty();
  const qreal x = DiagramStyle::kPadding;
  if (hasLayers) {  // the expander triangle
    painter->setPen(Qt::NoPen);
    painter->setBrush(DiagramStyle::mutedText());
    const QPointF c(x + 6, 18);
    QPolygonF triangle =
        m_expanded ? QPolygonF({c + QPointF(-5, -3), c + QPointF(5, -3), c + QPointF(0, 4)})
                   : QPolygonF({c + QPointF(-3, -5), c + QPointF(-3, 5), c + QPointF(4, 0)});
    painter->drawPolygon(triangle);
  }
  const qreal textX = x + (hasLayers ? 20 : 0);
  painter->setPen(DiagramStyle::text());
  painter->setFont(DiagramStyle::titleFont());
  painter->drawText(QRectF(textX, 5, DiagramStyle::kBlockWidth - textX - x, 24),
                    Qt::AlignLeft | Qt::AlignVCenter, m_title);
  painter->setFont(DiagramStyle::bodyFont());
  painter->setPen(DiagramStyle::mutedText());
  painter->drawText(QRectF(textX, 27, DiagramStyle::kBlockWidth - textX - x, 20),
                    Qt::AlignLeft | Qt::AlignVCenter, m_subtitle);
  const auto& block = m_tree->blocks().at(static_cast<size_t>(m_blockIndex));
  auto* diagram = qobject_cast<LayerDiagramScene*>(scene());
  if (diagram && diagram->freezeState() && block.totalParameters > 0) {
    DiagramStyle::paintFreezeMark(
        painter,
        DiagramStyle::freezeMarkRect(DiagramStyle::kBlockWidth, DiagramStyle::kHeaderHeight),
        diagram->freezeState()->stateOfNodes(block.members));
  }
}

void BlockItem::mousePressEvent(QGraphicsSceneMouseEvent* event) {
  QGraphicsObject::mousePressEvent(event);
  const auto& block = m_tree->blocks().at(static_cast<size_t>(m_blockIndex));
  auto* diagram = qobject_cast<LayerDiagramScene*>(scene());
  if (diagram && diagram->freezeState() && block.totalParameters > 0 &&
      DiagramStyle::freezeMarkRect(DiagramStyle::kBlockWidth, DiagramStyle::kHeaderHeight)
          .contains(event->pos())) {
    const bool trains = diagram->freezeState()->stateOfNodes(block.members) == Qt::Checked;
    Q_EMIT diagram->freezeToggleRequested(QVector<int>(block.members.begin(), block.members.end()),
                                          !trains, QString::fromStdString(block.name));
    return;
  }
  if (expanderRect().contains(event->pos()) && event->pos().y() < DiagramStyle::kHeaderHeight) {
    setExpanded(!m_expanded);
  }
  Q_EMIT selected(m_tree->blocks().at(static_cast<size_t>(m_blockIndex)).members.front());
}

void BlockItem::mouseDoubleClickEvent(QGraphicsSceneMouseEvent* event) {
  if (event->pos().y() < DiagramStyle::kHeaderHeight) setExpanded(!m_expanded);
  QGraphicsObject::mouseDoubleClickEvent(event);
}

}  // namespace scalpel::ui
