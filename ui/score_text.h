#pragma once

// How the window writes evaluation results and plans: the same words in the training and compare
// panels.

#include <QString>

#include "train/trainer.h"

namespace scalpel::ui {

// "91.4%"
QString percent(double fraction);
// "12.3% → 85.1%" for an evaluation's score (accuracy, or R² for regression), the second in bold
// when asked; regression adds the mean absolute error after.
QString scoreChange(const Evaluation& before, const Evaluation& after, bool boldAfter = false);
// What Train trains with a plan ("auto", "manual", "block:NAME", ...), as a sentence.
QString planDescription(const QString& strategy);
// A plan's name in lists and legends: "only stem" for "block:stem", else the strategy itself.
QString planLabel(const QString& strategy);

}  // namespace scalpel::ui
