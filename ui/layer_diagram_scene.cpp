#include "layer_diagram_scene.h"

#include <QGraphicsPathItem>
#include <QPainterPath>
#include <QPen>

#include "block_item.h"
#include "diagram_style.h"
#include "freeze_state.h"

namespace scalpel::ui {

LayerDiagramScene::LayerDiagramScene(QObject* parent) : QGraphicsScene(parent) {
  setBackgroundBrush(QColor(0xfb, 0xfc, 0xfd));
}

void LayerDiagramScene::clearTree() {
  clear();  // deletes the items, which point into m_tree
  m_blocks.clear();
  m_arrows.clear();
  m_tree = LayerTree();
}

void LayerDiagramScene::setTree(const LayerTree& tree) {
  clearTree();
  m_tree = tree;
  for (int b = 0; b < static_cast<int>(m_tree.blocks().size()); ++b) {
    auto* item = new BlockItem(&m_tree, b);
    addItem(item);
    connect(item, &BlockItem::expandedChanged, this, &LayerDiagramScene::relayout);
    connect(item, &BlockItem::selected, this, &LayerDiagramScene::nodeSelected);
    m_blocks.push_back(item);
  }
  relayout();
}

void LayerDiagramScene::setFreezeState(FreezeState* state) {
  m_freeze = state;
  if (m_freeze) connect(m_freeze, &FreezeState::changed, this, [this] { update(); });
}

void LayerDiagramScene::setAllExpanded(bool expanded) {
  for (auto* block : m_blocks) {
    const QSignalBlocker quiet(block);  // one relayout at the end, not one per block
    block->setExpanded(expanded);
  }
  relayout();
}

void LayerDiagramScene::relayout() {
  for (auto* arrow : m_arrows) delete arrow;
  m_arrows.clear();
  qreal y = 0;
  const qreal middle = DiagramStyle::kBlockWidth / 2;
  for (int b = 0; b < m_blocks.size(); ++b) {
    if (b > 0) {
      QPainterPath path(QPointF(middle, y - DiagramStyle::kBlockGap + 3));
      path.lineTo(middle, y - 4);
      path.moveTo(middle - 5, y - 10);
      path.lineTo(middle, y - 4);
      path.lineTo(middle + 5, y - 10);
      auto* arrow = addPath(path, QPen(DiagramStyle::border(), 1.4));
      m_arrows.push_back(arrow);
    }
    m_blocks[b]->setPos(0, y);
    y += m_blocks[b]->boundingRect().height() + DiagramStyle::kBlockGap;
  }
  setSceneRect(itemsBoundingRect().adjusted(-24, -24, 24, 24));
  Q_EMIT layoutChanged();
}

}  // namespace scalpel::ui
