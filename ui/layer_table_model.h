#pragma once

#include <QAbstractTableModel>

namespace scalpel::ui {

class FreezeState;
class LayerScores;

// Every module of the model as a row (execution order): name, block, type, parameters, a
// trainable checkbox, shift score and RGN. Ticking a box never edits the state: it asks for an
// undoable change (toggleRequested); rows update when the FreezeState or the LayerScores say
// they changed.
class LayerTableModel : public QAbstractTableModel {
  Q_OBJECT

 public:
  enum Column { Name, Block, Type, Parameters, Trainable, Shift, Rgn, ColumnCount };

  // Neither is owned; both outlive the model.
  LayerTableModel(FreezeState* state, const LayerScores* scores, QObject* parent = nullptr);

  // Call after the state got a new tree.
  void reset();
  int nodeOfRow(int row) const { return m_nodes.value(row, -1); }

  int rowCount(const QModelIndex& parent = {}) const override;
  int columnCount(const QModelIndex& parent = {}) const override;
  QVariant data(const QModelIndex& index, int role) const override;
  QVariant headerData(int section, Qt::Orientation orientation, int role) const override;
  Qt::ItemFlags flags(const QModelIndex& index) const override;
  bool setData(const QModelIndex& index, const QVariant& value, int role) override;

 Q_SIGNALS:
  void toggleRequested(int node, bool trainable);

 private:
  FreezeState* m_state;
  const LayerScores* m_scores;
  QVector<int> m_nodes;  // row → tree node
};

}  // namespace scalpel::ui
