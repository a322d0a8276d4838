#pragma once

#include <QGraphicsScene>
#include <QHash>
#include <QSet>
#include <QVector>

#include "core_metatypes.h"
#include "model/layer_tree.h"

namespace scalpel::ui {

class BlockItem;
class FreezeState;
class LayerScores;

// The model as a diagram: one BlockItem per block, top to bottom in execution order, joined by
// arrows; expanding a block lists its layers and pushes the blocks below it down.
class LayerDiagramScene : public QGraphicsScene {
  Q_OBJECT

 public:
  explicit LayerDiagramScene(QObject* parent = nullptr);

  void setTree(const LayerTree& tree);
  void clearTree();
  const LayerTree& tree() const { return m_tree; }
  const QVector<BlockItem*>& blockItems() const { return m_blocks; }
  void setAllExpanded(bool expanded);
  // The trains/frozen marks show this state (not owned); it may be null.
  void setFreezeState(FreezeState* state);
  FreezeState* freezeState() const { return m_freeze; }

  // The nodes are coloured by these scores' newest shift (ShiftScale): a tapped module by its own
  // score, a block or container by the highest score inside it; tooltips say the score and the
  // RGN. Redrawn when the store says it changed (not owned; it may be null).
  void setScores(const LayerScores* scores);
  // The advisor's suggestion: these blocks get a dashed outline and a "suggested" tag until the
  // plan changes (empty clears).
  void setSuggestedBlocks(const QSet<int>& blocks);
  bool isSuggested(int blockIndex) const { return m_suggested.contains(blockIndex); }
  // ShiftScale level of a node (NaN: not measured) and what its tooltip adds ("" if nothing).
  double shiftLevel(int node) const;
  double blockShiftLevel(int blockIndex) const;  // the highest of its members'
  QString scoreText(int node) const;
  QString blockScoreText(int blockIndex) const;  // its highest shift inside and its RGN

 Q_SIGNALS:
  void nodeSelected(int nodeIndex);
  void layoutChanged();
  // A click on a block's or layer's mark: make these nodes' units trainable or frozen.
  void freezeToggleRequested(const QVector<int>& nodes, bool trainable, const QString& what);

 private:
  void relayout();
  void refreshScores();  // tooltips and colours of every item

  LayerTree m_tree;  // the items point into it
  QVector<BlockItem*> m_blocks;
  QVector<QGraphicsItem*> m_arrows;
  FreezeState* m_freeze = nullptr;
  const LayerScores* m_scores = nullptr;
  QSet<int> m_suggested;
};

}  // namespace scalpel::ui
