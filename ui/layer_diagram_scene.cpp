#include "layer_diagram_scene.h"

#include <QGraphicsPathItem>
#include <QPainterPath>
#include <QPen>

#include "block_item.h"
#include "diagram_style.h"
#include "freeze_state.h"
#include "layer_row_item.h"
#include "shift_scale.h"

#include <cmath>
#include <limits>

namespace scalpel::ui {

namespace {

// A container's tooltip line: the largest shift among the layers inside it.
QString highestInside(double level) {
  return QStringLiteral("highest shift inside: %1× the noise floor").arg(std::pow(10.0, level), 0, 'f', 0);
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
  m_level.clear();
  m_shiftText.clear();
  m_rgn.clear();
}

void LayerDiagramScene::setTree(const LayerTree& tree) {
  clearTree();
  m_tree = tree;
  clearScores();
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

void LayerDiagramScene::clearScores() {
  m_level.fill(std::numeric_limits<double>::quiet_NaN(), m_tree.size());
  m_shiftText.fill(QString(), m_tree.size());
  m_rgn.clear();
  refreshScores();
}

void LayerDiagramScene::setShift(const ShiftSnapshot& snapshot) {
  m_level.fill(std::numeric_limits<double>::quiet_NaN(), m_tree.size());
  m_shiftText.fill(QString(), m_tree.size());
  for (const auto& score : snapshot.layers) {
    // "layer1.0.bn1#1" is a second call of that module: the module shows its highest score.
    const std::string name = score.layer.substr(0, score.layer.find('#'));
    const auto node = m_tree.find(name);
    if (!node) continue;
    const double level = ShiftScale::level(score.kl, score.noiseFloor);
    if (std::isnan(m_level[*node]) || level > m_level[*node]) {
      m_shiftText[*node] = ShiftScale::describe(score.kl, score.noiseFloor);
    }
    // The module and every container above it.
    for (int at = *node; at >= 0; at = m_tree.node(at).parent) {
      if (std::isnan(m_level[at]) || level > m_level[at]) m_level[at] = level;
    }
  }
  refreshScores();
}

void LayerDiagramScene::setRgn(const QHash<QString, double>& rgn) {
  m_rgn = rgn;
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
  if (blockIndex < 0 || blockIndex >= static_cast<int>(m_tree.blocks().size())) return {};
  const auto& block = m_tree.blocks()[static_cast<size_t>(blockIndex)];
  QStringList lines;
  const double highest = blockShiftLevel(blockIndex);
  if (!std::isnan(highest)) lines << highestInside(highest);
  const auto rgn = m_rgn.find(QString::fromStdString(block.name));
  if (rgn != m_rgn.end()) lines << QStringLiteral("block RGN: %1").arg(*rgn, 0, 'g', 3);
  return lines.join("<br>");
}

double LayerDiagramScene::blockShiftLevel(int blockIndex) const {
  double highest = std::numeric_limits<double>::quiet_NaN();
  if (blockIndex < 0 || blockIndex >= static_cast<int>(m_tree.blocks().size())) return highest;
  for (int member : m_tree.blocks()[static_cast<size_t>(blockIndex)].members) {
    const double level = shiftLevel(member);
    if (!std::isnan(level) && (std::isnan(highest) || level > highest)) highest = level;
  }
  return highest;
}

double LayerDiagramScene::shiftLevel(int node) const {
  return node >= 0 && node < m_level.size() ? m_level[node] : std::numeric_limits<double>::quiet_NaN();
}

QString LayerDiagramScene::scoreText(int node) const {
  if (node < 0 || node >= m_tree.size()) return {};
  QStringList lines;
  if (node < m_shiftText.size() && !m_shiftText[node].isEmpty()) {
    lines << QStringLiteral("shift: %1").arg(m_shiftText[node]);
  } else if (!std::isnan(shiftLevel(node))) {
    lines << highestInside(shiftLevel(node));
  }
  const auto rgn = m_rgn.find(QString::fromStdString(m_tree.node(node).name));
  if (rgn != m_rgn.end()) lines << QStringLiteral("RGN: %1").arg(*rgn, 0, 'g', 3);
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
