#include "layer_table_model.h"

#include <cmath>

#include "freeze_state.h"
#include "layer_scores.h"

namespace scalpel::ui {

LayerTableModel::LayerTableModel(FreezeState* state, const LayerScores* scores, QObject* parent)
    : QAbstractTableModel(parent), m_state(state), m_scores(scores) {
  connect(m_state, &FreezeState::changed, this, [this] {
    if (!m_nodes.isEmpty())
      Q_EMIT dataChanged(index(0, Trainable), index(rowCount() - 1, Trainable),
                         {Qt::CheckStateRole});
  });
  connect(m_scores, &LayerScores::changed, this, [this] {
    if (!m_nodes.isEmpty()) Q_EMIT dataChanged(index(0, Shift), index(rowCount() - 1, Rgn));
  });
}

void LayerTableModel::reset() {
  beginResetModel();
  m_nodes.clear();
  const auto& tree = m_state->tree();
  if (!tree.empty()) {
    for (int node : tree.preorder()) {
      if (node != 0) m_nodes.push_back(node);
    }
  }
  endResetModel();
}

int LayerTableModel::rowCount(const QModelIndex& parent) const {
  return parent.isValid() ? 0 : m_nodes.size();
}
int LayerTableModel::columnCount(const QModelIndex& parent) const {
  return parent.isValid() ? 0 : ColumnCount;
}

QVariant LayerTableModel::data(const QModelIndex& index, int role) const {
  if (!index.isValid() || index.row() >= m_nodes.size()) return {};
  const auto& tree = m_state->tree();
  const int nodeIndex = m_nodes[index.row()];
  const auto& node = tree.node(nodeIndex);
  const QString name = QString::fromStdString(node.name);
  const bool hasParameters = node.totalParameters > 0;
  if (role == Qt::CheckStateRole && index.column() == Trainable && hasParameters)
    return m_state->stateOf(nodeIndex);
  // Numbers sort as numbers (the proxy sorts by this role).
  const bool sortRole = role == Qt::UserRole;
  if (role != Qt::DisplayRole && !sortRole && role != Qt::ToolTipRole &&
      role != Qt::TextAlignmentRole)
    return {};
  if (role == Qt::TextAlignmentRole) {
    return index.column() == Parameters || index.column() == Shift || index.column() == Rgn
               ? QVariant(Qt::AlignRight | Qt::AlignVCenter)
               : QVariant();
  }
  switch (index.column()) {
    case Name:
      return name;
    case Block: {
      const int block = tree.blockOf(nodeIndex);
      return block >= 0 ? QString::fromStdString(tree.blocks()[static_cast<size_t>(block)].name)
                        : QString();
    }
    case Type:
      return QString::fromStdString(node.typeName);
    case Parameters:
      if (sortRole) return static_cast<qlonglong>(node.totalParameters);
      return hasParameters ? QString::fromStdString(formatCount(node.totalParameters))
                           : QString("–");
    case Trainable:
      if (!hasParameters) return role == Qt::DisplayRole ? QString("no parameters") : QVariant();
      if (sortRole) return static_cast<int>(m_state->stateOf(nodeIndex));
      return role == Qt::ToolTipRole
                 ? QString("Tick to train this module, untick to freeze it (Ctrl+Z undoes)")
                 : QVariant();
    case Shift: {  // the module's own activation KL in the newest snapshot
      const auto* score = m_scores->score(nodeIndex);
      if (!score) return sortRole ? QVariant(-1.0) : QVariant(QString("–"));
      return sortRole ? QVariant(score->kl) : QVariant(QString::number(score->kl, 'g', 3));
    }
    case Rgn: {
      const double rgn = m_scores->rgn(nodeIndex);
      if (std::isnan(rgn)) return sortRole ? QVariant(-1.0) : QVariant(QString("–"));
      return sortRole ? QVariant(rgn) : QVariant(QString::number(rgn, 'g', 3));
    }
    default:
      return {};
  }
}

QVariant LayerTableModel::headerData(int section, Qt::Orientation orientation, int role) const {
  if (orientation != Qt::Horizontal || role != Qt::DisplayRole) return {};
  static const char* names[] = {"Layer",  "Block",      "Type", "Parameters",
                                "Trains", "Shift (KL)", "RGN"};
  return section >= 0 && section < ColumnCount ? QString(names[section]) : QVariant();
}

Qt::ItemFlags LayerTableModel::flags(const QModelIndex& index) const {
  auto flags = QAbstractTableModel::flags(index);
  if (index.isValid() && index.column() == Trainable &&
      m_state->tree().node(m_nodes[index.row()]).totalParameters > 0) {
    flags |= Qt::ItemIsUserCheckable;
  }
  return flags;
}

bool LayerTableModel::setData(const QModelIndex& index, const QVariant& value, int role) {
  if (role != Qt::CheckStateRole || index.column() != Trainable) return false;
  // The state changes through the undo stack; the view hears about it from FreezeState::changed.
  const int node = m_nodes[index.row()];
  Q_EMIT toggleRequested(node, m_state->stateOf(node) != Qt::Checked);
  Q_UNUSED(value);
  return true;
}

}  // namespace scalpel::ui
