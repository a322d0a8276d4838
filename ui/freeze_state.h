#pragma once

#include <QObject>
#include <QSet>
#include <QString>
#include <QUndoCommand>

#include "analysis/advisor.h"
#include "model/layer_tree.h"

namespace scalpel::ui {

// Which layers train and which are frozen: the one state that the diagram, the layer table and
// the trainer share. The unit is a module with parameters of its own; a container is trainable,
// frozen or partly so from its units. Changes go through SetTrainableCommand (undoable).
class FreezeState : public QObject {
  Q_OBJECT

 public:
  explicit FreezeState(QObject* parent = nullptr) : QObject(parent) {}

  // A new model: every unit trainable (ordinary fine-tuning) until a plan says otherwise.
  void setTree(const LayerTree& tree);
  const LayerTree& tree() const { return m_tree; }
  // The units (modules with parameters of their own) at or under `node`.
  QVector<int> unitsOf(int node) const;
  QVector<int> allUnits() const { return unitsOf(0); }
  // Qt::Checked (trains), Qt::Unchecked (frozen), Qt::PartiallyChecked (some units train).
  Qt::CheckState stateOf(int node) const;
  Qt::CheckState stateOfNodes(const std::vector<int>& nodes) const;  // e.g. a block's members
  QVector<int> unitsOfNodes(const std::vector<int>& nodes) const;
  bool isTrainable(int unit) const { return m_trainable.contains(unit); }
  // The units a plan trains (those inside any of its modules).
  QVector<int> unitsOfPlan(const FreezePlan& plan) const;
  // The state as a plan for the trainer (strategy "manual", one entry per trainable unit).
  FreezePlan plan() const;
  bool editedByHand() const { return m_edited; }

  // For SetTrainableCommand only: sets the units and says which changed.
  void apply(const QVector<int>& units, const QVector<bool>& trainable);

 Q_SIGNALS:
  void changed();

 private:
  LayerTree m_tree;
  QSet<int> m_trainable;
  bool m_edited = false;
};

// Marks units trainable or frozen; undo restores what each was before.
class SetTrainableCommand : public QUndoCommand {
 public:
  // `units` to `trainable`; the others in `frozenRest` (when set) are frozen at the same time,
  // as accepting a plan does.
  SetTrainableCommand(FreezeState* state, QVector<int> units, bool trainable, const QString& text,
                      bool freezeTheRest = false);
  void redo() override;
  void undo() override;

 private:
  FreezeState* m_state;
  QVector<int> m_units;
  QVector<bool> m_after;
  QVector<bool> m_before;
};

}  // namespace scalpel::ui
