#pragma once

#include <QGraphicsObject>
#include <QVector>

#include "model/layer_tree.h"

namespace scalpel::ui {

class LayerRowItem;

// One block of the model as a box: a header with its name, type, parameters and output shape,
// and, when expanded, one row per module inside it. Holds a non-owning pointer into the
// scene's LayerTree.
class BlockItem : public QGraphicsObject {
  Q_OBJECT

 public:
  BlockItem(const LayerTree* tree, int blockIndex, QGraphicsItem* parent = nullptr);

  int blockIndex() const { return m_blockIndex; }
  bool isExpanded() const { return m_expanded; }
  void setExpanded(bool expanded);
  // Where clicking toggles expansion, in item coordinates.
  QRectF expanderRect() const;
  const QVector<LayerRowItem*>& rows() const { return m_rows; }
  // Takes the scene's current scores into its tooltip and its rows' (colours are read when
  // painting).
  void refreshScores();
  // The highest shift level of its members (NaN: not measured).
  double shiftLevel() const;
  bool diagramSuggests() const;  // the advisor's plan trains this block

  QRectF boundingRect() const override;
  void paint(QPainter* painter, const QStyleOptionGraphicsItem* option, QWidget* widget) override;

 Q_SIGNALS:
  void expandedChanged();
  void selected(int nodeIndex);

 protected:
  void mousePressEvent(QGraphicsSceneMouseEvent* event) override;
  void mouseDoubleClickEvent(QGraphicsSceneMouseEvent* event) override;

 private:
  // The modules listed when expanded: each member's subtree (members themselves only when the
  // block groups several).
  std::vector<int> listedNodes() const;
  QString title() const;
  QString subtitle() const;

  const LayerTree* m_tree;
  int m_blockIndex;
  std::vector<int> m_listed;  // listedNodes(), computed once
  QString m_title;
  QString m_subtitle;
  QString m_baseToolTip;
  bool m_expanded = false;
  QVector<LayerRowItem*> m_rows;
};

}  // namespace scalpel::ui
