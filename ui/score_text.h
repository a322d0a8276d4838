#pragma once

// How the window writes evaluation results: the same words in the training and compare panels.

#include <QString>

#include "train/trainer.h"

namespace scalpel::ui {

// "91.4%"
QString percent(double fraction);
// "12.3% → 85.1%" for an evaluation's score (accuracy, or R² for regression), the second in bold
// when asked; regression adds the mean absolute error after.
QString scoreChange(const Evaluation& before, const Evaluation& after, bool boldAfter = false);

}  // namespace scalpel::ui
