#pragma once

#include <QGraphicsObject>

#include "model/layer_tree.h"

namespace scalpel::ui {

// One module inside an expanded block: indented name, type, parameters and output shape.
// Holds a non-owning pointer into the scene's LayerTree.
class LayerRowItem : public QGraphicsObject {
  Q_OBJECT

 public:
  LayerRowItem(const LayerTree* tree, int nodeIndex, qreal width, QGraphicsItem* parent);

  int nodeIndex() const { return m_nodeIndex; }
  // Takes the scene's current scores into the tooltip (the colour is read when painting).
  void refreshScores();
  QRectF boundingRect() const override;
  void paint(QPainter* painter, const QStyleOptionGraphicsItem* option, QWidget* widget) override;

 Q_SIGNALS:
  void selected(int nodeIndex);

 protected:
  void mousePressEvent(QGraphicsSceneMouseEvent* event) override;

 private:
  const LayerTree* m_tree;
  int m_nodeIndex;
  qreal m_width;
  QString m_baseToolTip;  // type, parameters, shape; the scores are added below it
};

}  // namespace scalpel::ui
