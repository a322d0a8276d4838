#pragma once

#include <QGraphicsScene>
#include <QVector>

#include "model/layer_tree.h"

namespace scalpel::ui {

class BlockItem;
class FreezeState;

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

 Q_SIGNALS:
  void nodeSelected(int nodeIndex);
  void layoutChanged();
  // A click on a block's or layer's mark: make these nodes' units trainable or frozen.
  void freezeToggleRequested(const QVector<int>& nodes, bool trainable, const QString& what);

 private:
  void relayout();

  LayerTree m_tree;  // the items point into it
  QVector<BlockItem*> m_blocks;
  QVector<QGraphicsItem*> m_arrows;
  FreezeState* m_freeze = nullptr;
};

}  // namespace scalpel::ui
