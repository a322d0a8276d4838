#include "layer_diagram_scene.h"

#include <QGraphicsPathItem>
#include <QPainterPath>
#include <QPen>

#include "block_item.h"
#include "diagram_style.h"
#include "freeze_state.h"
#include "layer_row_item.h"
#include "layer_scores.h"
#include "shift_scale.h"

#include <cmath>
#include <limits>

namespace scalpel::ui {

namespace {

// A container's tooltip line: the largest shift among the layers inside it.
QString highestInside(double level) {
  return QStringLiteral("highest shift inside: %1× the noise floor")
      .arg(std::pow(10.0, level), 0, 'f', 0);
}

}  // namespace

LayerDiagramScene::LayerDiagramScene(QObject* parent) : QGraphicsScene(parent) {
  setBackgroundBrush(QColor(0xfb, 0xfc, 0xfd));
}

void LayerDiagramScene::clearTree() {
  clear();  // deletes the items, which point into m_tree
  m_blocks.clear();
  m_arrows.clear();
  m_tree = LayerTree();
  m_suggested.clear();
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

void LayerDiagramScene::setScores(const LayerScores* scores) {
  if (m_scores) disconnect(m_scores, nullptr, this, nullptr);
  m_scores = scores;
  if (m_scores) connect(m_scores, &LayerScores::changed, this, &LayerDiagramScene::refreshScores);
  refreshScores();
}

void LayerDiagramScene::setSuggestedBlocks(const QSet<int>& blocks) {
  m_suggested = blocks;
  update();
}

void LayerDiagramScene::refreshScores() {
  for (auto* block : m_blocks) block->refreshScores();
}

QString LayerDiagramScene::blockScoreText(int blockIndex) const {
  if (!m_scores || blockIndex < 0 || blockIndex >= static_cast<int>(m_tree.blocks().size()))
    return {};
  QStringList lines;
  const double highest = blockShiftLevel(blockIndex);
  if (!std::isnan(highest)) lines << highestInside(highest);
  const double rgn = m_scores->blockRgn(blockIndex);
  if (!std::isnan(rgn)) lines << QStringLiteral("block RGN: %1").arg(rgn, 0, 'g', 3);
  return lines.join("<br>");
}

double LayerDiagramScene::blockShiftLevel(int blockIndex) const {
  return m_scores ? m_scores->blockLevel(blockIndex) : std::numeric_limits<double>::quiet_NaN();
}

double LayerDiagramScene::shiftLevel(int node) const {
  return m_scores ? m_scores->level(node) : std::numeric_limits<double>::quiet_NaN();
}

QString LayerDiagramScene::scoreText(int node) const {
  if (!m_scores || node < 0 || node >= m_tree.size()) return {};
  QStringList lines;
  if (const auto* own = m_scores->score(node)) {
    lines << QStringLiteral("shift: %1").arg(ShiftScale::describe(own->kl, own->noiseFloor));
  } else if (!std::isnan(shiftLevel(node))) {
    lines << highestInside(shiftLevel(node));
  }
  const double rgn = m_scores->rgn(node);
  if (!std::isnan(rgn)) lines << QStringLiteral("RGN: %1").arg(rgn, 0, 'g', 3);
  return lines.join("<br>");
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
