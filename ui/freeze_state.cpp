#include "freeze_state.h"

namespace scalpel::ui {

void FreezeState::setTree(const LayerTree& tree) {
  m_tree = tree;
  m_trainable.clear();
  for (int unit : allUnits()) m_trainable.insert(unit);
  m_edited = false;
  Q_EMIT changed();
}

QVector<int> FreezeState::unitsOf(int node) const {
  QVector<int> units;
  if (m_tree.empty()) return units;
  for (int index : m_tree.subtree(node)) {
    if (m_tree.node(index).ownParameters > 0) units.push_back(index);
  }
  return units;
}

QVector<int> FreezeState::unitsOfNodes(const std::vector<int>& nodes) const {
  QVector<int> units;
  for (int node : nodes) units += unitsOf(node);
  return units;
}

Qt::CheckState FreezeState::stateOf(int node) const { return stateOfNodes({node}); }

Qt::CheckState FreezeState::stateOfNodes(const std::vector<int>& nodes) const {
  const auto units = unitsOfNodes(nodes);
  int trainable = 0;
  for (int unit : units) trainable += m_trainable.contains(unit) ? 1 : 0;
  if (units.isEmpty() || trainable == 0) return Qt::Unchecked;
  return trainable == units.size() ? Qt::Checked : Qt::PartiallyChecked;
}

QVector<int> FreezeState::unitsOfPlan(const FreezePlan& plan) const {
  QVector<int> units;
  for (int unit : allUnits()) {
    const std::string& name = m_tree.node(unit).name;
    for (const auto& module : plan.trainable) {
      if (module.empty() || name == module || name.rfind(module + ".", 0) == 0) {
        units.push_back(unit);
        break;
      }
    }
  }
  return units;
}

FreezePlan FreezeState::plan() const {
  FreezePlan plan;
  plan.strategy = "manual";
  for (int unit : allUnits()) {
    if (m_trainable.contains(unit)) plan.trainable.push_back(m_tree.node(unit).name);
  }
  plan.explanation = "Train the " + std::to_string(plan.trainable.size()) +
                     " layer(s) marked trainable in the diagram; the rest is frozen.";
  return plan;
}

void FreezeState::apply(const QVector<int>& units, const QVector<bool>& trainable) {
  for (int i = 0; i < units.size(); ++i) {
    if (trainable[i])
      m_trainable.insert(units[i]);
    else
      m_trainable.remove(units[i]);
  }
  m_edited = true;
  Q_EMIT changed();
}

SetTrainableCommand::SetTrainableCommand(FreezeState* state, QVector<int> units, bool trainable,
                                         const QString& text, bool freezeTheRest)
    : QUndoCommand(text), m_state(state) {
  if (freezeTheRest) {
    const QSet<int> chosen(units.begin(), units.end());
    units.clear();
    for (int unit : state->allUnits()) {
      units.push_back(unit);
      m_after.push_back(chosen.contains(unit) == trainable);
    }
  } else {
    m_after.fill(trainable, units.size());
  }
  m_units = std::move(units);
  for (int unit : m_units) m_before.push_back(state->isTrainable(unit));
}

void SetTrainableCommand::redo() { m_state->apply(m_units, m_after); }
void SetTrainableCommand::undo() { m_state->apply(m_units, m_before); }

}  // namespace scalpel::ui
