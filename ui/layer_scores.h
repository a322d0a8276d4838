#pragma once

#include <QObject>
#include <QString>
#include <QTimer>
#include <QVector>

#include <vector>

#include "core_metatypes.h"
#include "model/layer_tree.h"

namespace scalpel::ui {

// The per-layer results of the open model's latest analysis, in one place: every snapshot's shift
// (the heatmap's columns), the newest score of each node (the diagram's stripes, the layer
// table's Shift column) and the gradient metrics (RGN and SNR per module and block). The
// heatmap, the diagram and the layer table all observe it. Scores name their node (core's
// LayerScore::node), so nothing here reads layer labels. A burst of updates reaches the views as
// one `changed`, at most every 40 ms.
class LayerScores : public QObject {
  Q_OBJECT

 public:
  explicit LayerScores(QObject* parent = nullptr);

  // A new model: its tree, and no scores yet.
  void setTree(const LayerTree& tree);
  const LayerTree& tree() const { return m_tree; }
  // A new analysis starts: the shift and the gradients go.
  void clear();
  void addSnapshot(const scalpel::ShiftSnapshot& snapshot);
  void setGradients(const scalpel::GradientProfile& gradients);
  // Tells the views now what would reach them at the next coalesced `changed`.
  void flush();

  const std::vector<scalpel::ShiftSnapshot>& snapshots() const { return m_snapshots; }
  const scalpel::ShiftSnapshot* latest() const {
    return m_snapshots.empty() ? nullptr : &m_snapshots.back();
  }
  const scalpel::GradientProfile& gradients() const { return m_gradients; }
  bool hasGradients() const { return m_gradients.ok; }

  // ShiftScale level of a node in the newest snapshot: a tapped module's highest call, a
  // container's highest inside it; NaN where nothing was measured.
  double level(int node) const;
  double blockLevel(int block) const;  // the highest of its members'
  // A tapped module's own newest score (its call with the highest level), or null.
  const scalpel::LayerScore* score(int node) const;
  // Relative gradient norm of a module with parameters, or of a block; NaN before gradients.
  double rgn(int node) const;
  double blockRgn(int block) const;

 Q_SIGNALS:
  void changed();

 private:
  void rebuildLatest();
  void scheduleChanged();

  LayerTree m_tree;
  std::vector<scalpel::ShiftSnapshot> m_snapshots;
  scalpel::GradientProfile m_gradients;
  QVector<double> m_level;            // per node, from the newest snapshot
  QVector<int> m_score;               // per node: index into the newest snapshot's layers, or -1
  QVector<double> m_rgn, m_blockRgn;  // NaN where not measured
  QTimer m_coalesce;
};

}  // namespace scalpel::ui
